//! Helpers shared by the cache's integration tests: a counting backend whose
//! loads can be held at a gate, bounded waits, and ways to know that a caller
//! has joined a flight without sleeping.

#![allow(dead_code)] // each test binary uses a different part of this module

mod waits;

use std::future::Future;
use std::ops::Range;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use shared_calls_cache::{Cache, Fetch, Lookup, Outcome};
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[allow(unused_imports)] // as dead_code above: not every test binary uses every one
pub(crate) use waits::{LIMIT, bounded, signal_entered, until_entered};

/// A cache of strings whose loads fail with a `&'static str`.
pub(crate) type Strings = shared_calls_cache::Cache<String, String, &'static str>;

/// A loader's result: `v`, stored for the default TTL.
pub(crate) fn value(v: &str) -> Result<Fetch<String>, &'static str> {
    Ok(Fetch::value(v.to_owned()))
}

/// Asserts what a caller received: the value, and how it was answered.
#[track_caller]
pub(crate) fn assert_answer(lookup: &Lookup<String>, value: &str, outcome: Outcome) {
    assert_eq!(
        (lookup.value().as_str(), lookup.outcome()),
        (value, outcome)
    );
}

/// Loads every key of `keys`, each a miss that stores the key as its value,
/// then lets the cache finish its pending work (evictions, weights).
pub(crate) async fn fill<E>(cache: &Cache<u64, u64, E>, keys: Range<u64>)
where
    E: Clone + Send + Sync + std::fmt::Debug + 'static,
{
    for key in keys {
        cache
            .get_or_load(&key, move || async move { Ok(Fetch::value(key)) })
            .await
            .unwrap();
    }
}

/// Polls `future` once, with a waker that does nothing: `Ready` means the
/// future answered without waiting for anything.
pub(crate) fn poll_once<F: Future>(future: F) -> Poll<F::Output> {
    pin!(future)
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

/// Lets the runtime run what is ready until `done` holds, without letting
/// paused time move (a bounded number of yields).
pub(crate) async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition did not hold after 10,000 yields");
}

/// Lets every spawned task run until none is left alive.
pub(crate) async fn until_tasks_done() {
    let metrics = tokio::runtime::Handle::current().metrics();
    until(|| metrics.num_alive_tasks() == 0).await;
}

/// A backend that counts its loads, can hold them at a gate, and records
/// how many run at once and when each started.
#[derive(Debug)]
pub(crate) struct Backend {
    loads: AtomicUsize,
    completed: AtomicUsize,
    running: AtomicUsize,
    max_running: AtomicUsize,
    dropped_unfinished: AtomicUsize,
    starts: Mutex<Vec<Instant>>,
    gate: Semaphore,
    gate_open: AtomicBool,
    started: Semaphore,
}

impl Backend {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            loads: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            dropped_unfinished: AtomicUsize::new(0),
            starts: Mutex::new(Vec::new()),
            gate: Semaphore::new(0),
            gate_open: AtomicBool::new(false),
            started: Semaphore::new(0),
        })
    }

    /// Loads started.
    pub(crate) fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    /// Loads that returned.
    pub(crate) fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }

    /// Loads dropped before they returned (cancelled).
    pub(crate) fn cancelled(&self) -> usize {
        self.dropped_unfinished.load(Ordering::SeqCst)
    }

    /// The most loads that ran at the same time.
    pub(crate) fn max_running(&self) -> usize {
        self.max_running.load(Ordering::SeqCst)
    }

    /// When each load started.
    pub(crate) fn starts(&self) -> Vec<Instant> {
        self.starts.lock().unwrap().clone()
    }

    /// Lets every gated load, present and future, return.
    pub(crate) fn open(&self) {
        if !self.gate_open.swap(true, Ordering::SeqCst) {
            self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
        }
    }

    /// Waits until `n` loads in all have started.
    pub(crate) async fn until_started(&self, n: usize) {
        bounded(self.started.acquire_many(u32::try_from(n).unwrap()))
            .await
            .unwrap()
            .forget();
    }

    /// A loader that returns `result` at once.
    pub(crate) fn ready<V, E>(
        self: &Arc<Self>,
        result: Result<Fetch<V>, E>,
    ) -> impl FnOnce() -> BoxedLoad<V, E> + Send + 'static
    where
        V: Send + 'static,
        E: Send + 'static,
    {
        self.loader(false, Duration::ZERO, result)
    }

    /// A loader that waits for [`open`](Self::open), then returns `result`.
    pub(crate) fn gated<V, E>(
        self: &Arc<Self>,
        result: Result<Fetch<V>, E>,
    ) -> impl FnOnce() -> BoxedLoad<V, E> + Send + 'static
    where
        V: Send + 'static,
        E: Send + 'static,
    {
        self.loader(true, Duration::ZERO, result)
    }

    /// A loader that takes `delay` (tokio time), then returns `result`.
    pub(crate) fn slow<V, E>(
        self: &Arc<Self>,
        delay: Duration,
        result: Result<Fetch<V>, E>,
    ) -> impl FnOnce() -> BoxedLoad<V, E> + Send + 'static
    where
        V: Send + 'static,
        E: Send + 'static,
    {
        self.loader(false, delay, result)
    }

    /// A loader that waits for [`open`](Self::open), then takes `delay`
    /// (tokio time), then returns `result`.
    pub(crate) fn gated_slow<V, E>(
        self: &Arc<Self>,
        delay: Duration,
        result: Result<Fetch<V>, E>,
    ) -> impl FnOnce() -> BoxedLoad<V, E> + Send + 'static
    where
        V: Send + 'static,
        E: Send + 'static,
    {
        self.loader(true, delay, result)
    }

    fn loader<V, E>(
        self: &Arc<Self>,
        gated: bool,
        delay: Duration,
        result: Result<Fetch<V>, E>,
    ) -> impl FnOnce() -> BoxedLoad<V, E> + Send + 'static
    where
        V: Send + 'static,
        E: Send + 'static,
    {
        let backend = self.clone();
        move || {
            Box::pin(async move {
                let running = Running::start(&backend);
                if gated {
                    drop(backend.gate.acquire().await.unwrap());
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                running.finish();
                result
            })
        }
    }
}

/// A load's future, boxed so that loaders of one test share a type.
pub(crate) type BoxedLoad<V, E> =
    std::pin::Pin<Box<dyn Future<Output = Result<Fetch<V>, E>> + Send + 'static>>;

/// Bookkeeping of one load; dropped unfinished means the load was cancelled.
struct Running {
    backend: Arc<Backend>,
    finished: bool,
}

impl Running {
    fn start(backend: &Arc<Backend>) -> Self {
        backend.loads.fetch_add(1, Ordering::SeqCst);
        backend.starts.lock().unwrap().push(Instant::now());
        let now = backend.running.fetch_add(1, Ordering::SeqCst) + 1;
        backend.max_running.fetch_max(now, Ordering::SeqCst);
        backend.started.add_permits(1);
        Self {
            backend: backend.clone(),
            finished: false,
        }
    }

    fn finish(mut self) {
        self.finished = true;
        self.backend.completed.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.backend.running.fetch_sub(1, Ordering::SeqCst);
        if !self.finished {
            self.backend
                .dropped_unfinished
                .fetch_add(1, Ordering::SeqCst);
        }
    }
}
