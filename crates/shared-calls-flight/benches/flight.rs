//! Our `Group` against the request-collapsing peers, in one run:
//! `async_singleflight`, `singleflight-async`, a `Mutex<HashMap<K, Shared<..>>>`
//! and moka's `get_with` on a cache of capacity 0 (which stores nothing, so
//! that it acts as a collapsing loader, as the others do).
//!
//! - `solo`: sequential calls on distinct keys, work ready at once (criterion).
//! - `hot`: 64 tasks on a 2-worker runtime cycling over 16 keys, work = one
//!   `yield_now` (criterion, calls per second), with a reference row that
//!   collapses nothing.
//! - `hot, interleaved`: the same workload in slices of 250 ms, this group
//!   and one peer in turn on one runtime, so that both meet the same machine:
//!   the median ratio of their throughputs.
//! - `herd`: 10,000 tasks on one key, 20 ms of work: executions, wall time.
//! - `cancel`: the leader is aborted 5 ms into 50 ms of work, 100 followers
//!   wait: executions, and when the followers are done.
//!
//! Run with `cargo bench -p shared-calls-flight`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use shared_calls_flight::Group;
use tokio::runtime::Runtime;

/// A way to collapse concurrent calls on a key.
trait Peer: Send + Sync + 'static {
    const NAME: &'static str;
    fn new() -> Self;
    fn call<F>(&self, key: u64, work: F) -> impl Future<Output = u64> + Send
    where
        F: Future<Output = u64> + Send + 'static;
}

struct Ours(Group<u64, u64>);

impl Peer for Ours {
    const NAME: &'static str = "shared-calls-flight";
    fn new() -> Self {
        Self(Group::new())
    }
    fn call<F>(&self, key: u64, work: F) -> impl Future<Output = u64> + Send
    where
        F: Future<Output = u64> + Send + 'static,
    {
        Unwrapped(self.0.call(&key, work))
    }
}

/// Our call's value, unwrapped where it lies: futures' `Map` would move the
/// finished call out of itself first, a cost of the adaptor, not of the call.
struct Unwrapped<F>(F);

impl<F, T, E> Future for Unwrapped<F>
where
    F: Future<Output = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0).poll(cx).map(Result::unwrap)
    }
}

/// No collapsing at all: every call runs its own work. In *hot*, the
/// throughput of the runtime itself, which no collapsing peer can exceed by
/// much (their followers still wait and are woken).
struct NoCollapsing;

impl Peer for NoCollapsing {
    const NAME: &'static str = "no collapsing (reference)";
    fn new() -> Self {
        Self
    }
    fn call<F>(&self, _key: u64, work: F) -> impl Future<Output = u64> + Send
    where
        F: Future<Output = u64> + Send + 'static,
    {
        work
    }
}

struct AsyncSingleflight(async_singleflight::UnaryGroup<u64, u64>);

impl Peer for AsyncSingleflight {
    const NAME: &'static str = "async_singleflight";
    fn new() -> Self {
        Self(async_singleflight::UnaryGroup::new())
    }
    async fn call<F>(&self, key: u64, work: F) -> u64
    where
        F: Future<Output = u64> + Send + 'static,
    {
        self.0.work(&key, work).await
    }
}

struct SingleflightAsync(singleflight_async::SingleFlight<u64, u64>);

impl Peer for SingleflightAsync {
    const NAME: &'static str = "singleflight-async";
    fn new() -> Self {
        Self(singleflight_async::SingleFlight::new())
    }
    fn call<F>(&self, key: u64, work: F) -> impl Future<Output = u64> + Send
    where
        F: Future<Output = u64> + Send + 'static,
    {
        self.0.work(key, move || work)
    }
}

/// The baseline everyone writes first: a map of shared boxed futures.
struct SharedMap(Mutex<HashMap<u64, Shared<BoxFuture<'static, u64>>>>);

impl Peer for SharedMap {
    const NAME: &'static str = "Mutex<HashMap<_, Shared>>";
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
    fn call<F>(&self, key: u64, work: F) -> impl Future<Output = u64> + Send
    where
        F: Future<Output = u64> + Send + 'static,
    {
        let flight = {
            let mut map = self.0.lock().unwrap();
            match map.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    let flight = work.boxed().shared();
                    map.insert(key, flight.clone());
                    flight
                }
            }
        };
        async move {
            let value = flight.clone().await;
            let mut map = self.0.lock().unwrap();
            if map.get(&key).is_some_and(|current| current.ptr_eq(&flight)) {
                map.remove(&key);
            }
            value
        }
    }
}

/// moka's loader: with capacity 0 nothing is stored, so every call either
/// joins the init in progress or runs its own.
struct MokaGetWith(moka::future::Cache<u64, u64>);

impl Peer for MokaGetWith {
    const NAME: &'static str = "moka get_with (cap 0)";
    fn new() -> Self {
        Self(moka::future::Cache::builder().max_capacity(0).build())
    }
    fn call<F>(&self, key: u64, work: F) -> impl Future<Output = u64> + Send
    where
        F: Future<Output = u64> + Send + 'static,
    {
        self.0.get_with(key, work)
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn solo<P: Peer>(c: &mut Criterion) {
    let rt = current_thread();
    let peer = P::new();
    let mut group = c.benchmark_group("solo");
    group.throughput(Throughput::Elements(1));
    let mut next = 0u64;
    group.bench_function(BenchmarkId::from_parameter(P::NAME), |b| {
        b.to_async(&rt).iter(|| {
            next += 1;
            let key = next;
            peer.call(key, async move { key })
        });
    });
    group.finish();
}

const HOT_TASKS: u64 = 64;
const HOT_KEYS: u64 = 16;
const HOT_CALLS_PER_TASK: u64 = 100;

async fn hot_round<P: Peer>(peer: &Arc<P>) {
    let tasks: Vec<_> = (0..HOT_TASKS)
        .map(|task| {
            let peer = peer.clone();
            tokio::spawn(async move {
                for i in 0..HOT_CALLS_PER_TASK {
                    let key = (task + i) % HOT_KEYS;
                    let work = async move {
                        tokio::task::yield_now().await;
                        key
                    };
                    assert_eq!(peer.call(key, work).await, key);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

fn hot<P: Peer>(c: &mut Criterion) {
    let rt = two_workers();
    let peer = Arc::new(P::new());
    let mut group = c.benchmark_group("hot");
    group.throughput(Throughput::Elements(HOT_TASKS * HOT_CALLS_PER_TASK));
    group.bench_function(BenchmarkId::from_parameter(P::NAME), |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let peer = peer.clone();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    hot_round(&peer).await;
                }
                start.elapsed()
            }
        });
    });
    group.finish();
}

const PAIR_SLICES: usize = 20;
const PAIR_SLICE: Duration = Duration::from_millis(250);

/// Runs rounds of *hot* for [`PAIR_SLICE`]: calls per second.
async fn hot_rate<P: Peer>(peer: &Arc<P>) -> f64 {
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < PAIR_SLICE {
        hot_round(peer).await;
        calls += HOT_TASKS * HOT_CALLS_PER_TASK;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}

/// *hot* for this group and `P` in turn, slice after slice, each going first
/// in every other slice. A shared machine's speed drifts by half within
/// seconds, more than the gap between peers: rows measured one after the
/// other, as criterion does, compare different machines.
fn hot_pair<P: Peer>() {
    let rt = two_workers();
    let (ours, peer) = (Arc::new(Ours::new()), Arc::new(P::new()));
    let (mut our_rates, mut peer_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        for slice in 0..PAIR_SLICES {
            let (our_rate, peer_rate) = if slice % 2 == 0 {
                (hot_rate(&ours).await, hot_rate(&peer).await)
            } else {
                let peer_rate = hot_rate(&peer).await;
                (hot_rate(&ours).await, peer_rate)
            };
            our_rates.push(our_rate);
            peer_rates.push(peer_rate);
            ratios.push(our_rate / peer_rate);
        }
    });
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    // Sorted by `median`, so the ratios' range is their first and last.
    let (ours, peer, ratio) = (
        median(&mut our_rates),
        median(&mut peer_rates),
        median(&mut ratios),
    );
    println!(
        "| {:<26} | {:>10.2} | {:>8.2} | {:>6.2}x | {:>5.2} – {:<5.2} |",
        P::NAME,
        ours / 1e6,
        peer / 1e6,
        ratio,
        ratios[0],
        ratios[ratios.len() - 1],
    );
}

const RUNS: usize = 5;

/// One line of the herd or cancel table.
struct Row {
    name: &'static str,
    executions: Vec<usize>,
    times: Vec<Duration>,
}

impl Row {
    /// Runs `run` [`RUNS`] times, each on a new peer with a new execution
    /// counter; `run` returns the time it measured.
    fn measure<P: Peer>(run: impl Fn(&Runtime, Arc<P>, &Arc<AtomicUsize>) -> Duration) -> Self {
        let rt = two_workers();
        let mut row = Row {
            name: P::NAME,
            executions: Vec::new(),
            times: Vec::new(),
        };
        for _ in 0..RUNS {
            let executions = Arc::new(AtomicUsize::new(0));
            row.times.push(run(&rt, Arc::new(P::new()), &executions));
            row.executions.push(executions.load(Ordering::SeqCst));
        }
        row
    }

    fn print(&self) {
        let mut times = self.times.clone();
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "| {:<26} | {:<15} | {:>8.1} ms | {:>6.1} – {:<6.1} ms |",
            self.name,
            format!("{:?}", self.executions),
            median.as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
        );
    }
}

const HERD_TASKS: usize = 10_000;
const HERD_WORK: Duration = Duration::from_millis(20);

/// 10,000 tasks call one key at once: how many executions, how long for all.
fn herd<P: Peer>() -> Row {
    Row::measure(|rt, peer: Arc<P>, executions| {
        rt.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (0..HERD_TASKS)
                .map(|_| {
                    let (peer, executions) = (peer.clone(), executions.clone());
                    tokio::spawn(async move {
                        let work = async move {
                            executions.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(HERD_WORK).await;
                            7
                        };
                        assert_eq!(peer.call(0, work).await, 7);
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            start.elapsed()
        })
    })
}

const CANCEL_FOLLOWERS: usize = 100;
const CANCEL_WORK: Duration = Duration::from_millis(50);
const CANCEL_AFTER: Duration = Duration::from_millis(5);

/// The leader is aborted 5 ms into its 50 ms of work while 100 followers
/// wait: how many executions, and when (from the start of the work) the last
/// follower is done.
fn cancel<P: Peer>() -> Row {
    Row::measure(|rt, peer: Arc<P>, executions| {
        let started = Arc::new(tokio::sync::Notify::new());
        let work = {
            let (executions, started) = (executions.clone(), started.clone());
            move || async move {
                executions.fetch_add(1, Ordering::SeqCst);
                started.notify_one();
                tokio::time::sleep(CANCEL_WORK).await;
                7
            }
        };
        rt.block_on(async {
            let leader = {
                let (peer, work) = (peer.clone(), work.clone());
                tokio::spawn(async move { peer.call(0, work()).await })
            };
            started.notified().await;
            let start = Instant::now();
            let followers: Vec<_> = (0..CANCEL_FOLLOWERS)
                .map(|_| {
                    let (peer, work) = (peer.clone(), work.clone());
                    tokio::spawn(async move {
                        assert_eq!(peer.call(0, work()).await, 7);
                        Instant::now()
                    })
                })
                .collect();
            tokio::time::sleep(CANCEL_AFTER).await;
            leader.abort();
            let _ = leader.await;
            let mut last = start;
            for follower in followers {
                last = last.max(follower.await.unwrap());
            }
            last - start
        })
    })
}

fn hot_pairs() {
    println!();
    println!(
        "hot, interleaved: {PAIR_SLICES} slices of {} ms for this group, then the peer (or the \
         reverse); medians, M calls/s",
        PAIR_SLICE.as_millis()
    );
    println!("| peer                       | this group | peer     | ratio   | ratio range   |");
    println!("|----------------------------|------------|----------|---------|---------------|");
    hot_pair::<AsyncSingleflight>();
    hot_pair::<SingleflightAsync>();
    hot_pair::<SharedMap>();
    hot_pair::<MokaGetWith>();
    hot_pair::<NoCollapsing>();
}

fn tables() {
    println!();
    println!(
        "herd: {HERD_TASKS} tasks on one key, {} ms of work, {RUNS} runs",
        HERD_WORK.as_millis()
    );
    println!(
        "| peer                       | executions      | wall time   | range               |"
    );
    println!(
        "|----------------------------|-----------------|-------------|---------------------|"
    );
    for row in [
        herd::<Ours>(),
        herd::<AsyncSingleflight>(),
        herd::<SingleflightAsync>(),
        herd::<SharedMap>(),
        herd::<MokaGetWith>(),
    ] {
        row.print();
    }
    println!();
    println!(
        "cancel: leader aborted {} ms into {} ms of work, {CANCEL_FOLLOWERS} followers, {RUNS} runs; \
         time = when the last follower is done, from the start of the work",
        CANCEL_AFTER.as_millis(),
        CANCEL_WORK.as_millis()
    );
    println!(
        "| peer                       | executions      | followers   | range               |"
    );
    println!(
        "|----------------------------|-----------------|-------------|---------------------|"
    );
    for row in [
        cancel::<Ours>(),
        cancel::<AsyncSingleflight>(),
        cancel::<SingleflightAsync>(),
        cancel::<SharedMap>(),
        cancel::<MokaGetWith>(),
    ] {
        row.print();
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    solo::<Ours>(&mut c);
    solo::<AsyncSingleflight>(&mut c);
    solo::<SingleflightAsync>(&mut c);
    solo::<SharedMap>(&mut c);
    solo::<MokaGetWith>(&mut c);
    hot::<NoCollapsing>(&mut c);
    hot::<Ours>(&mut c);
    hot::<AsyncSingleflight>(&mut c);
    hot::<SingleflightAsync>(&mut c);
    hot::<SharedMap>(&mut c);
    hot::<MokaGetWith>(&mut c);
    c.final_summary();
    // `cargo test --benches` runs each criterion benchmark once; the tables
    // are measurements, for `cargo bench` only.
    // A name filter that matches neither table skips them.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filter = args
        .iter()
        .enumerate()
        .find(|&(i, arg)| {
            let after_option = i > 0 && TAKES_VALUE.contains(&args[i - 1].as_str());
            !arg.starts_with('-') && !after_option
        })
        .map(|(_, arg)| arg);
    let wanted = |table: &str| filter.is_none_or(|filter| table.contains(filter.as_str()));
    if args.iter().any(|arg| arg == "--bench") {
        if wanted("hot, interleaved") {
            hot_pairs();
        }
        if wanted("herd cancel") {
            tables();
        }
    }
}

/// Criterion's options that take a value, so as to tell a name filter apart.
const TAKES_VALUE: &[&str] = &[
    "--baseline",
    "--baseline-lenient",
    "--color",
    "--confidence-level",
    "--load-baseline",
    "--measurement-time",
    "--noise-threshold",
    "--nresamples",
    "--output-format",
    "--plotting-backend",
    "--profile-time",
    "--sample-size",
    "--save-baseline",
    "--significance-level",
    "--warm-up-time",
];
