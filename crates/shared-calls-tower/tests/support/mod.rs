//! Helpers shared by the layer's integration tests: a counting backend
//! service whose calls can be held at a gate, bounded waits, and ways to know
//! that a request has joined its key's flight without sleeping.

#![allow(dead_code)] // each test binary uses a different part of this module

#[path = "../../../shared-calls-cache/tests/support/waits.rs"]
mod waits;

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use shared_calls_tower::{CachingLayer, CloneResponses};
use tokio::sync::{Semaphore, watch};
use tower::Service;

#[allow(unused_imports)] // as dead_code above: not every test binary uses every one
pub(crate) use waits::{bounded, signal_entered, until_entered};

/// The policy of most tests: `u32` requests are their own keys, `String`
/// answers, `io::Error` failures.
pub(crate) type Policy = CloneResponses<u32, String, io::Error>;

/// A key function that a type can name.
pub(crate) type KeyFn = fn(&u32) -> Option<u32>;

/// Every request is shared under its own value.
pub(crate) fn own_key(request: &u32) -> Option<u32> {
    Some(*request)
}

/// Odd requests bypass; even ones are shared.
pub(crate) fn even_key(request: &u32) -> Option<u32> {
    request.is_multiple_of(2).then_some(*request)
}

/// A layer with the default settings and [`own_key`].
pub(crate) fn layer() -> CachingLayer<KeyFn, Policy> {
    CachingLayer::new(own_key as KeyFn)
}

/// What the backend answers for `request` when it succeeds.
pub(crate) fn answer(request: u32) -> String {
    format!("v{request}")
}

/// Polls `future` once, with a waker that does nothing.
pub(crate) fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// Lets every task of a current-thread runtime with paused time run until
/// all of them wait for something: paused time only moves when nothing else
/// can run, so the 1 ms sleep ends after everything else settled.
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Spawns `n` tasks that each send `request` through their own clone of
/// `service` (`ready`, then `call`), and waits until every response future
/// has been polled once: every one of them has joined the key's flight.
pub(crate) async fn spawn_callers<S>(
    service: &S,
    request: u32,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<S::Response, S::Error>>>
where
    S: Service<u32> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    use tower::ServiceExt;
    let entered = Arc::new(Semaphore::new(0));
    let callers = (0..n)
        .map(|_| {
            let (service, entered) = (service.clone(), entered.clone());
            tokio::spawn(async move {
                let mut service = service;
                let future = match service.ready().await {
                    Ok(ready) => ready.call(request),
                    Err(error) => return Err(error),
                };
                signal_entered(future, entered).await
            })
        })
        .collect();
    until_entered(&entered, n).await;
    callers
}

/// Spawns `n` tasks that each send `request` through their own clone of
/// `service` (`ready`, then `call`), without waiting for anything: for
/// services in front of which a request may wait (a buffer, a concurrency
/// limit), followed by [`settle`].
pub(crate) fn spawn_all<S>(
    service: &S,
    request: u32,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<S::Response, S::Error>>>
where
    S: Service<u32> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    use tower::ServiceExt;
    (0..n)
        .map(|_| tokio::spawn(service.clone().oneshot(request)))
        .collect()
}

/// Awaits every task, failing the test if one hangs or panics.
pub(crate) async fn join_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(bounded(handle).await.expect("a caller panicked"));
    }
    outputs
}

/// What the backend does with one call.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    /// Answers [`answer`] of the request.
    Answer,
    /// Fails with an `io::Error` whose message is this.
    Fail(&'static str),
    /// Panics inside `call`, before making a future.
    PanicInCall,
    /// Panics inside the future, after the gate.
    PanicInFuture,
    /// Answers after this long (tokio time), ignoring the gate.
    Sleep(Duration),
}

/// A backend service: counts its calls, holds them at a gate until
/// [`open`](Self::open) when gated, follows a script of [`Step`]s (answering
/// once the script is empty), and counts calls that finished and calls that
/// were dropped before they did. Clones share everything; `poll_ready` is
/// always ready.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    inner: Arc<BackendInner>,
}

#[derive(Debug)]
struct BackendInner {
    calls: AtomicUsize,
    finished: AtomicUsize,
    cancelled: AtomicUsize,
    requests: Mutex<Vec<u32>>,
    script: Mutex<VecDeque<Step>>,
    gate: watch::Sender<bool>,
    started: Semaphore,
}

impl Backend {
    /// A backend that answers at once.
    pub(crate) fn open_now() -> Self {
        let backend = Self::gated();
        backend.open();
        backend
    }

    /// A backend whose calls wait for [`open`](Self::open).
    pub(crate) fn gated() -> Self {
        Self {
            inner: Arc::new(BackendInner {
                calls: AtomicUsize::new(0),
                finished: AtomicUsize::new(0),
                cancelled: AtomicUsize::new(0),
                requests: Mutex::new(Vec::new()),
                script: Mutex::new(VecDeque::new()),
                gate: watch::Sender::new(false),
                started: Semaphore::new(0),
            }),
        }
    }

    /// The next calls follow these steps, in order.
    pub(crate) fn script(&self, steps: impl IntoIterator<Item = Step>) {
        self.inner.script.lock().unwrap().extend(steps);
    }

    /// Lets every gated call, present and future, go on.
    pub(crate) fn open(&self) {
        self.inner.gate.send_replace(true);
    }

    /// Holds the calls that start from now on.
    pub(crate) fn close(&self) {
        self.inner.gate.send_replace(false);
    }

    /// Calls made (`call` invoked).
    pub(crate) fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    /// Calls whose future returned.
    pub(crate) fn finished(&self) -> usize {
        self.inner.finished.load(Ordering::SeqCst)
    }

    /// Calls whose future was dropped before it returned.
    pub(crate) fn cancelled(&self) -> usize {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// The requests received, in order.
    pub(crate) fn requests(&self) -> Vec<u32> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Waits until `n` calls in all have been made.
    pub(crate) async fn until_called(&self, n: usize) {
        bounded(self.inner.started.acquire_many(u32::try_from(n).unwrap()))
            .await
            .unwrap()
            .forget();
    }
}

/// The backend's response future.
pub(crate) type BackendFuture =
    Pin<Box<dyn Future<Output = Result<String, io::Error>> + Send + Sync + 'static>>;

impl Service<u32> for Backend {
    type Response = String;
    type Error = io::Error;
    type Future = BackendFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u32) -> BackendFuture {
        self.inner.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.requests.lock().unwrap().push(request);
        self.inner.started.add_permits(1);
        let step = self
            .inner
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Step::Answer);
        if let Step::PanicInCall = step {
            panic!("backend panicked in call");
        }
        let mut gate = self.inner.gate.subscribe();
        let running = Running {
            backend: self.inner.clone(),
            finished: false,
        };
        Box::pin(async move {
            let mut running = running;
            if let Step::Sleep(delay) = step {
                tokio::time::sleep(delay).await;
            } else {
                gate.wait_for(|open| *open)
                    .await
                    .expect("the gate lives as long as the backend");
            }
            running.finished = true;
            running.backend.finished.fetch_add(1, Ordering::SeqCst);
            match step {
                Step::Answer | Step::Sleep(_) => Ok(answer(request)),
                Step::Fail(message) => Err(io::Error::other(message)),
                Step::PanicInFuture => panic!("backend panicked in its future"),
                Step::PanicInCall => unreachable!(),
            }
        })
    }
}

/// One call's bookkeeping: dropped unfinished means cancelled.
struct Running {
    backend: Arc<BackendInner>,
    finished: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.finished {
            self.backend.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}
