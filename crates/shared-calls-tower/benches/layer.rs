//! What the layer costs, in one run:
//!
//! - `hit`: one request answered by a fresh stored entry, through
//!   `Caching` over a bare `service_fn`, next to the `service_fn` called
//!   directly, a raw get of the same key from the cache's store
//!   (`quick_cache`, with the cache's hasher), and that get followed by the
//!   bare call. Each request is `poll_ready`, `call` and one
//!   poll of the response future, on a current-thread runtime; the response
//!   is a clone of a 40-byte `String`.
//! - `hot`: the flight benchmark's hot-key workload: 64 tasks on a 2-worker
//!   runtime cycling over 16 keys, inner work = one `yield_now`, through the
//!   layer with a 200 µs TTL (so that both hits and collapsed misses happen),
//!   and through the bare `service_fn` (every request does the work).
//!
//! Run with `cargo bench -p shared-calls-tower`; a summary with the ratio
//! and the hot workload's mix of outcomes is printed at the end.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use shared_calls_tower::{CachingLayer, CloneResponses, Stats};
use tower::{Layer, Service, ServiceExt, service_fn};

/// Per-sample times (ns per request) of each benchmark, kept for the summary.
#[derive(Default)]
struct Samples(Mutex<Vec<(&'static str, Vec<f64>)>>);

impl Samples {
    fn record(&self, name: &'static str, elapsed: Duration, iters: u64) {
        let per_iter = elapsed.as_secs_f64() * 1e9 / iters as f64;
        let mut all = self.0.lock().unwrap();
        match all.iter_mut().find(|(n, _)| *n == name) {
            Some((_, samples)) => samples.push(per_iter),
            None => all.push((name, vec![per_iter])),
        }
    }

    /// The median, or NaN when the benchmark did not run (filtered out).
    fn median(&self, name: &str) -> f64 {
        let all = self.0.lock().unwrap();
        let Some((_, samples)) = all.iter().find(|(n, _)| *n == name) else {
            return f64::NAN;
        };
        let mut samples = samples.clone();
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    }
}

const KEY: u64 = 7;

fn stored_value() -> String {
    "user 7: Ada Lovelace <ada@example.org>".to_owned()
}

/// `poll_ready`, `call`, and one poll of the response future, which must be
/// ready (a hit, or a bare call that answers at once).
fn request<S>(service: &mut S, cx: &mut Context<'_>, key: u64) -> S::Response
where
    S: Service<u64>,
    S::Error: std::fmt::Debug,
{
    match service.poll_ready(cx) {
        Poll::Ready(Ok(())) => {}
        _ => unreachable!("the service is always ready"),
    }
    let mut future = pin!(service.call(key));
    match future.as_mut().poll(cx) {
        Poll::Ready(Ok(response)) => response,
        _ => unreachable!("a hit answers at once"),
    }
}

fn measure(
    samples: &Samples,
    name: &'static str,
    mut one: impl FnMut(&mut Context<'_>),
) -> impl FnMut(u64) -> Duration {
    move |iters| {
        let mut cx = Context::from_waker(Waker::noop());
        let start = Instant::now();
        for _ in 0..iters {
            one(&mut cx);
        }
        let elapsed = start.elapsed();
        samples.record(name, elapsed, iters);
        elapsed
    }
}

fn hit(c: &mut Criterion, samples: &Samples) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let value = stored_value();
    let bare = service_fn(move |_: u64| std::future::ready(Ok::<_, Infallible>(value.clone())));

    let store = quick_cache::sync::Cache::with(
        10_000,
        10_000,
        quick_cache::UnitWeighter,
        foldhash::fast::RandomState::default(),
        quick_cache::sync::DefaultLifecycle::default(),
    );
    store.insert(KEY, stored_value());

    let layer =
        CachingLayer::<_, CloneResponses<u64, String, Infallible>>::new(|key: &u64| Some(*key))
            .ttl(Duration::from_secs(3_600));
    let mut through_layer = layer.layer(bare.clone());
    // The first request stores the answer; every measured one is a hit.
    // The measurements run outside the runtime's context: the benchmark is
    // built with the dev-dependencies' tokio `test-util`, under which
    // tokio's clock takes a lock inside a runtime; outside one it is std's
    // clock, as it is in a build without `test-util`.
    assert_eq!(
        rt.block_on(through_layer.clone().oneshot(KEY)).unwrap(),
        stored_value()
    );

    let mut group = c.benchmark_group("hit");
    group.throughput(Throughput::Elements(1));
    let mut service = bare.clone();
    group.bench_function("bare service_fn", |b| {
        b.iter_custom(measure(samples, "bare", |cx| {
            black_box(request(&mut service, cx, black_box(KEY)));
        }));
    });
    group.bench_function("raw store get", |b| {
        b.iter_custom(measure(samples, "store", |_| {
            black_box(store.get(&black_box(KEY)));
        }));
    });
    let mut service = bare.clone();
    group.bench_function("raw store get + bare service_fn", |b| {
        b.iter_custom(measure(samples, "store+bare", |cx| {
            black_box(store.get(&black_box(KEY)));
            black_box(request(&mut service, cx, black_box(KEY)));
        }));
    });
    group.bench_function("Caching hit", |b| {
        b.iter_custom(measure(samples, "layer", |cx| {
            black_box(request(&mut through_layer, cx, black_box(KEY)));
        }));
    });
    group.finish();
    let stats = layer.cache_handle().stats();
    assert_eq!(stats.misses, 1, "every measured request was a hit");
}

const HOT_TASKS: u64 = 64;
const HOT_KEYS: u64 = 16;
const HOT_CALLS_PER_TASK: u64 = 100;
const HOT_TTL: Duration = Duration::from_micros(200);

async fn hot_round<S>(service: &S)
where
    S: Service<u64, Response = u64> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let tasks: Vec<_> = (0..HOT_TASKS)
        .map(|task| {
            let mut service = service.clone();
            tokio::spawn(async move {
                for i in 0..HOT_CALLS_PER_TASK {
                    let key = (task + i) % HOT_KEYS;
                    let ready = service.ready().await.unwrap();
                    assert_eq!(ready.call(key).await.unwrap(), key);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn hot_bench<S>(c: &mut Criterion, samples: &Samples, name: &'static str, service: S)
where
    S: Service<u64, Response = u64> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let service = Arc::new(service);
    let mut group = c.benchmark_group("hot");
    group.throughput(Throughput::Elements(HOT_TASKS * HOT_CALLS_PER_TASK));
    group.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let service = service.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    hot_round(&*service).await;
                }
                let elapsed = start.elapsed();
                samples.record(name, elapsed, iters * HOT_TASKS * HOT_CALLS_PER_TASK);
                elapsed
            }
        });
    });
    group.finish();
}

fn hot(c: &mut Criterion, samples: &Samples) -> Stats {
    let work = service_fn(|key: u64| async move {
        tokio::task::yield_now().await;
        Ok::<_, Infallible>(key)
    });
    let layer =
        CachingLayer::<_, CloneResponses<u64, u64, Infallible>>::new(|key: &u64| Some(*key))
            .ttl(HOT_TTL)
            .jitter(0.0);
    hot_bench(c, samples, "Caching", layer.layer(work));
    hot_bench(c, samples, "bare service_fn", work);
    layer.cache_handle().stats()
}

/// Prints the figures of the groups that ran (a filter may leave one out).
fn summary(samples: &Samples, hot: &Stats) {
    let [bare, store, both, layer] =
        ["bare", "store", "store+bare", "layer"].map(|name| samples.median(name));
    println!();
    if !layer.is_nan() {
        println!("hit (median of criterion's samples, ns per request)");
        println!("  bare service_fn                {bare:8.1}");
        println!("  raw store get                   {store:8.1}");
        println!("  raw store get + bare service_fn {both:8.1}");
        println!("  Caching hit                {layer:8.1}");
        println!(
            "  hit through layer / (raw store get + bare call): {:.2}x (measured together), {:.2}x (sum of the two)",
            layer / both,
            layer / (store + bare)
        );
    }
    let [through, direct] = ["Caching", "bare service_fn"].map(|name| samples.median(name));
    if !through.is_nan() {
        println!("hot (median of criterion's samples, calls per second)");
        println!("  Caching                    {:8.2} M/s", 1e3 / through);
        println!("  bare service_fn                {:8.2} M/s", 1e3 / direct);
        let lookups = hot.hits + hot.misses + hot.collapsed;
        let share = |n: u64| 100.0 * n as f64 / lookups as f64;
        println!(
            "  outcomes through the layer: {:.1} % hit, {:.1} % miss, {:.1} % collapsed ({lookups} requests)",
            share(hot.hits),
            share(hot.misses),
            share(hot.collapsed)
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    let samples = Samples::default();
    hit(&mut c, &samples);
    let hot = hot(&mut c, &samples);
    c.final_summary();
    // `cargo test --benches` runs each benchmark once: no summary then.
    if std::env::args().any(|arg| arg == "--bench") {
        summary(&samples, &hot);
    }
}
