//! The read-through cache against moka, in one run (`cargo bench -p
//! shared-calls-cache`):
//!
//! - **hit path**: `Cache::get` and `Cache::get_or_load` on a present key
//!   against `moka::sync::Cache::get` and `moka::future::Cache::get` of the
//!   same key type (target: our hit at most 1.3x moka's);
//! - **miss with collapse**: 64 tasks on a 2-worker runtime missing fresh
//!   keys, 8 tasks per key, against `moka::future::Cache::get_with` on the
//!   same workload (time per call and loads per key);
//! - **expiry stampede**: 1,000 callers on one key that expires every 100 ms,
//!   for 5 s of real time, with a 20 ms load: loads against the ideal of one
//!   per expiry, for this cache and for moka's `get_with` (target: at most
//!   1.05x the ideal).
//!
//! Criterion reports the first two; a summary table of all three is printed
//! at the end.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use shared_calls_cache::{Cache, Fetch};

type Value = Arc<str>;
type Ours = Cache<u64, Value>;

/// Keys present in every cache of the hit path; lookups cycle through them.
const PRESENT: u64 = 1_024;

/// Time per operation of every sample criterion took of each function
/// (warm-up included), for the summary table, which shows their median: a
/// shared machine's noise moves the mean more than the median.
#[derive(Default)]
struct Samples(Mutex<BTreeMap<&'static str, Vec<f64>>>);

impl Samples {
    fn record(&self, name: &'static str, elapsed: Duration, ops: u64) {
        let ns_per_op = elapsed.as_nanos() as f64 / ops as f64;
        self.0
            .lock()
            .unwrap()
            .entry(name)
            .or_default()
            .push(ns_per_op);
    }

    /// NaN when the group did not run (a filter was given).
    fn median(&self, name: &str) -> f64 {
        let Some(mut samples) = self.0.lock().unwrap().get(name).cloned() else {
            return f64::NAN;
        };
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    }
}

fn value(key: u64) -> Value {
    Arc::from(format!("value of {key}").as_str())
}

/// The store under this crate's cache, alone: a `quick_cache` store with
/// foldhash, values with their lifetimes. Not a peer: it shows what the
/// store costs by itself.
type Store = quick_cache::sync::Cache<
    u64,
    Arc<(Value, tokio::time::Instant)>,
    quick_cache::UnitWeighter,
    foldhash::fast::RandomState,
>;

fn the_store_alone() -> Store {
    Store::with(
        10_000,
        10_000,
        quick_cache::UnitWeighter,
        foldhash::fast::RandomState::default(),
        quick_cache::sync::DefaultLifecycle::default(),
    )
}

/// Times `lookup` over the present keys, one after the other, on this thread.
fn sync_lookup(
    group: &mut BenchmarkGroup<'_, WallTime>,
    samples: &Samples,
    name: &str,
    label: &'static str,
    lookup: impl Fn(u64),
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for i in 0..iters {
                lookup(i % PRESENT);
            }
            let elapsed = start.elapsed();
            samples.record(label, elapsed, iters);
            elapsed
        })
    });
}

fn hit_path(c: &mut Criterion, samples: &Samples) {
    let ours: Ours = Cache::builder()
        .max_entries(10_000)
        .ttl(Duration::from_secs(3_600))
        .build();
    let raw_sync: moka::sync::Cache<u64, Value> = moka::sync::Cache::new(10_000);
    let raw_future: moka::future::Cache<u64, Value> = moka::future::Cache::new(10_000);
    let store = the_store_alone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for key in 0..PRESENT {
        ours.insert(key, Fetch::value(value(key)));
        raw_sync.insert(key, value(key));
        store.insert(key, Arc::new((value(key), tokio::time::Instant::now())));
        runtime.block_on(raw_future.insert(key, value(key)));
    }
    raw_sync.run_pending_tasks();
    runtime.block_on(raw_future.run_pending_tasks());

    let mut group = c.benchmark_group("hit");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));

    sync_lookup(
        &mut group,
        samples,
        "moka::sync::Cache::get",
        "moka sync get",
        |key| {
            black_box(raw_sync.get(&key));
        },
    );
    sync_lookup(
        &mut group,
        samples,
        "the store alone (quick_cache::sync::Cache::get)",
        "the store alone",
        |key| {
            black_box(store.get(&key));
        },
    );
    sync_lookup(
        &mut group,
        samples,
        "tokio::time::Instant::now",
        "tokio Instant::now",
        |_| {
            black_box(tokio::time::Instant::now());
        },
    );
    sync_lookup(&mut group, samples, "Cache::get", "ours get", |key| {
        black_box(ours.get(&key));
    });
    group.bench_function("moka::future::Cache::get", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(raw_future.get(&(i % PRESENT)).await);
                }
                let elapsed = start.elapsed();
                samples.record("moka future get", elapsed, iters);
                elapsed
            })
        })
    });
    group.bench_function("Cache::get_or_load", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for i in 0..iters {
                    let key = i % PRESENT;
                    let lookup = ours
                        .get_or_load(&key, move || async move { Ok(Fetch::value(value(key))) })
                        .await;
                    black_box(lookup.unwrap());
                }
                let elapsed = start.elapsed();
                samples.record("ours get_or_load", elapsed, iters);
                elapsed
            })
        })
    });
    group.finish();
    assert_eq!(ours.stats().misses, 0, "the hit path never loaded");
}

/// The miss workload: `TASKS` tasks, each making `CALLS` calls; call `r` of
/// task `t` asks for key `base + r * GROUPS + t % GROUPS`, so `TASKS /
/// GROUPS` tasks ask for each key, roughly at the same time, and every key
/// is new. A load yields once to the runtime, as a call to a backend would.
/// Both caches are emptied between rounds, outside the timed part, so that
/// moka's admission policy never refuses a new key of a full cache.
const TASKS: u64 = 64;
const GROUPS: u64 = 8;
const CALLS: u64 = 64;

#[derive(Default)]
struct MissCounts {
    calls: AtomicU64,
    loads: AtomicU64,
    keys: AtomicU64,
}

async fn miss_round_ours(cache: &Ours, base: u64, counts: &Arc<MissCounts>) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (cache, counts) = (cache.clone(), counts.clone());
            tokio::spawn(async move {
                for r in 0..CALLS {
                    let key = base + r * GROUPS + t % GROUPS;
                    let counts = counts.clone();
                    let lookup = cache
                        .get_or_load(&key, move || async move {
                            counts.loads.fetch_add(1, Ordering::Relaxed);
                            tokio::task::yield_now().await;
                            Ok(Fetch::value(value(key)))
                        })
                        .await;
                    black_box(lookup.unwrap());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    counts.calls.fetch_add(TASKS * CALLS, Ordering::Relaxed);
    counts.keys.fetch_add(GROUPS * CALLS, Ordering::Relaxed);
}

async fn miss_round_moka(
    cache: &moka::future::Cache<u64, Value>,
    base: u64,
    counts: &Arc<MissCounts>,
) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (cache, counts) = (cache.clone(), counts.clone());
            tokio::spawn(async move {
                for r in 0..CALLS {
                    let key = base + r * GROUPS + t % GROUPS;
                    let counts = counts.clone();
                    let got = cache
                        .get_with(key, async move {
                            counts.loads.fetch_add(1, Ordering::Relaxed);
                            tokio::task::yield_now().await;
                            value(key)
                        })
                        .await;
                    black_box(got);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    counts.calls.fetch_add(TASKS * CALLS, Ordering::Relaxed);
    counts.keys.fetch_add(GROUPS * CALLS, Ordering::Relaxed);
}

fn miss_with_collapse(c: &mut Criterion, samples: &Samples) -> ([(String, f64); 2], String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ours: Ours = Cache::builder().max_entries(100_000).build();
    let moka: moka::future::Cache<u64, Value> = moka::future::Cache::new(100_000);
    let (ours_counts, moka_counts) = (
        Arc::new(MissCounts::default()),
        Arc::new(MissCounts::default()),
    );
    let next_base = AtomicU64::new(0);
    let fresh_base = || next_base.fetch_add(GROUPS * CALLS, Ordering::Relaxed);

    let mut group = c.benchmark_group("miss with collapse (64 tasks, 8 per key)");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(20)
        .throughput(Throughput::Elements(TASKS * CALLS));
    group.bench_function("moka::future::Cache::get_with", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                runtime.block_on(miss_round_moka(&moka, fresh_base(), &moka_counts));
                elapsed += start.elapsed();
                moka.invalidate_all();
                runtime.block_on(moka.run_pending_tasks());
            }
            samples.record("moka get_with miss", elapsed, iters * TASKS * CALLS);
            elapsed
        })
    });
    group.bench_function("Cache::get_or_load", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                runtime.block_on(miss_round_ours(&ours, fresh_base(), &ours_counts));
                elapsed += start.elapsed();
                ours.invalidate_all();
            }
            samples.record("ours get_or_load miss", elapsed, iters * TASKS * CALLS);
            elapsed
        })
    });
    group.finish();
    let stats = ours.stats();
    let lookups = (stats.misses + stats.collapsed + stats.hits) as f64;
    let breakdown = format!(
        "our lookups in the miss workload: {:.1}% misses, {:.1}% collapsed, {:.1}% hits",
        100.0 * stats.misses as f64 / lookups,
        100.0 * stats.collapsed as f64 / lookups,
        100.0 * stats.hits as f64 / lookups
    );

    let per_key = |counts: &MissCounts| {
        counts.loads.load(Ordering::Relaxed) as f64 / counts.keys.load(Ordering::Relaxed) as f64
    };
    let rows = [
        ("moka get_with miss".to_owned(), per_key(&moka_counts)),
        ("ours get_or_load miss".to_owned(), per_key(&ours_counts)),
    ];
    (rows, breakdown)
}

/// The stampede: `CALLERS` tasks ask for one key in a loop for `RUN`; the
/// key lives `TTL` from the end of its load, which takes `LOAD`.
const CALLERS: usize = 1_000;
const RUN: Duration = Duration::from_secs(5);
const TTL: Duration = Duration::from_millis(100);
const LOAD: Duration = Duration::from_millis(20);

/// Load start times and durations, and how many calls were made.
#[derive(Default)]
struct Stampede {
    starts: Mutex<Vec<(Instant, Duration)>>,
    calls: AtomicUsize,
}

impl Stampede {
    async fn load(&self) -> Value {
        let start = Instant::now();
        tokio::time::sleep(LOAD).await;
        self.starts.lock().unwrap().push((start, start.elapsed()));
        value(0)
    }
}

struct StampedeRow {
    name: &'static str,
    calls: usize,
    loads: usize,
    ideal: f64,
    early: usize,
}

/// Runs `call` from `CALLERS` tasks for `RUN` on a 2-worker runtime.
fn stampede<F, Fut>(name: &'static str, call: F) -> StampedeRow
where
    F: Fn(Arc<Stampede>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let record = Arc::new(Stampede::default());
    let began = Instant::now();
    let end = began + RUN;
    runtime.block_on(async {
        let tasks: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (call, record) = (call.clone(), record.clone());
                tokio::spawn(async move {
                    while Instant::now() < end {
                        call(record.clone()).await;
                        record.calls.fetch_add(1, Ordering::Relaxed);
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let mut loads = record.starts.lock().unwrap().clone();
    loads.sort();
    let mean_load = loads.iter().map(|(_, took)| *took).sum::<Duration>() / loads.len() as u32;
    // One load per expiry: a load, TTL of freshness, the next load, ...
    // starting at 0, P, 2P, ... while before the end of the run.
    let ideal = (RUN.as_secs_f64() / (TTL + mean_load).as_secs_f64()).ceil();
    // Loads that began before the previous load's value expired (less 1 ms
    // of measurement slack): duplicates, which a perfect cache never makes.
    let early = loads
        .windows(2)
        .filter(|pair| pair[1].0 + Duration::from_millis(1) < pair[0].0 + pair[0].1 + TTL)
        .count();
    StampedeRow {
        name,
        calls: record.calls.load(Ordering::Relaxed),
        loads: loads.len(),
        ideal,
        early,
    }
}

fn stampedes() -> Vec<StampedeRow> {
    let ours: Ours = Cache::builder().ttl(TTL).jitter(0.0).build();
    let ours_row = stampede("shared-calls-cache get_or_load", move |record| {
        let cache = ours.clone();
        async move {
            let loader = record.clone();
            let lookup = cache
                .get_or_load(
                    &0,
                    move || async move { Ok(Fetch::value(loader.load().await)) },
                )
                .await;
            black_box(lookup.unwrap());
        }
    });
    let moka: moka::future::Cache<u64, Value> = moka::future::Cache::builder()
        .max_capacity(10)
        .time_to_live(TTL)
        .build();
    let moka_row = stampede("moka::future get_with (TTL 100 ms)", move |record| {
        let cache = moka.clone();
        async move {
            let loader = record.clone();
            black_box(cache.get_with(0, async move { loader.load().await }).await);
        }
    });
    vec![ours_row, moka_row]
}

fn main() {
    let samples = Samples::default();
    let mut criterion = Criterion::default().configure_from_args();
    hit_path(&mut criterion, &samples);
    let (collapse, breakdown) = miss_with_collapse(&mut criterion, &samples);
    criterion.final_summary();
    if std::env::args().any(|arg| arg == "--profile-time" || arg == "--list") {
        return; // profiling one function, or listing: no summary
    }
    let rows = stampedes();

    println!("\nSummary (medians over the samples of this run)\n");
    println!("| hit path | ns/op | vs moka |");
    println!("|---|---:|---:|");
    let sync = samples.median("moka sync get");
    let future = samples.median("moka future get");
    for (name, base) in [
        ("moka sync get", sync),
        ("the store alone", sync),
        ("tokio Instant::now", sync),
        ("ours get", sync),
        ("moka future get", future),
        ("ours get_or_load", future),
    ] {
        let ns = samples.median(name);
        println!("| {name} | {ns:.1} | {:.2}x |", ns / base);
    }
    println!("\n| miss with collapse (64 tasks, 2 workers, 8 per key) | ns/call | loads per key |");
    println!("|---|---:|---:|");
    for (name, loads_per_key) in &collapse {
        println!(
            "| {name} | {:.1} | {loads_per_key:.2} |",
            samples.median(name)
        );
    }
    println!("\n{breakdown}");
    println!(
        "\n| stampede: {CALLERS} callers, {}s, TTL {} ms, load {} ms | calls | loads | ideal | loads / ideal | loads before expiry |",
        RUN.as_secs(),
        TTL.as_millis(),
        LOAD.as_millis()
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {:.3}x | {} |",
            row.name,
            row.calls,
            row.loads,
            row.ideal,
            row.loads as f64 / row.ideal,
            row.early
        );
    }
}
