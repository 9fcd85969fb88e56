//! Panics, dropped callers and bounded waiting: nobody hangs, the backend
//! sees one call per flight, and the key is usable again at once.

mod support;

use std::sync::Arc;
use std::time::Duration;

use shared_calls_tower::{Rejected, SharedError};
use support::{Backend, Step, bounded, join_all, layer, poll_once, settle, spawn_callers};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

/// The backend behind a `service_fn`, so that a panic in the backend's
/// `call` is a panic in the `service_fn`'s.
fn as_service_fn(
    backend: &Backend,
) -> impl Service<u32, Response = String, Error = std::io::Error, Future = support::BackendFuture>
+ Clone
+ Send
+ Sync
+ 'static {
    let backend = backend.clone();
    service_fn(move |request: u32| backend.clone().call(request))
}

fn expect_panicked(result: Result<String, SharedError<std::io::Error>>) -> Arc<str> {
    match result {
        Err(SharedError::Rejected(Rejected::Panicked(message))) => message,
        other => panic!("expected Rejected::Panicked, got {other:?}"),
    }
}

/// A panic inside the inner service's future, while 20 requests wait for
/// it: every one of them receives `Rejected::Panicked` with the panic's
/// message at once (no time passes), and the next request calls again and
/// succeeds.
#[tokio::test(start_paused = true)]
async fn a_panic_in_the_inner_future_reaches_every_waiter_and_the_key_recovers() {
    let layer = layer();
    let backend = Backend::gated();
    backend.script([Step::PanicInFuture]);
    let service = layer.layer(as_service_fn(&backend));

    let callers = spawn_callers(&service, 7, 20).await;
    let opened = Instant::now();
    backend.open();
    for result in join_all(callers).await {
        assert_eq!(&*expect_panicked(result), "backend panicked in its future");
    }
    assert_eq!(opened.elapsed(), Duration::ZERO, "answered at once");
    assert_eq!(backend.calls(), 1);

    let stats = layer.cache_handle().stats();
    assert_eq!((stats.load_failures, stats.in_flight), (1, 0));
    assert_eq!(bounded(service.clone().oneshot(7)).await.unwrap(), "v7");
    assert_eq!(bounded(service.oneshot(7)).await.unwrap(), "v7");
    assert_eq!(
        backend.calls(),
        2,
        "called again after the panic, then stored"
    );
}

/// A `service_fn` that panics in `call` itself (before it makes a future):
/// the request that led receives `Rejected::Panicked`, the panic does not
/// unwind into its task, and the requests that arrive next lead a new call
/// at once and share it.
#[tokio::test(start_paused = true)]
async fn a_panic_in_call_is_a_rejection_and_the_key_recovers() {
    let layer = layer();
    let backend = Backend::gated();
    backend.script([Step::PanicInCall]);
    let service = layer.layer(as_service_fn(&backend));

    let mut first = Box::pin(service.clone().oneshot(7));
    let first = match poll_once(&mut first) {
        std::task::Poll::Ready(result) => result,
        std::task::Poll::Pending => panic!("a panic in call answers at once"),
    };
    assert_eq!(&*expect_panicked(first), "backend panicked in call");
    assert_eq!(backend.calls(), 1);
    assert_eq!(layer.cache_handle().stats().in_flight, 0, "the key is free");

    // Nine concurrent requests right after: one new call, shared.
    let callers = spawn_callers(&service, 7, 9).await;
    backend.open();
    for result in join_all(callers).await {
        assert_eq!(result.unwrap(), "v7");
    }
    assert_eq!(backend.calls(), 2);
    let stats = layer.cache_handle().stats();
    assert_eq!(
        (stats.load_failures, stats.misses, stats.collapsed),
        (1, 2, 8)
    );
}

/// The leader's task is aborted while its call runs: the followers still
/// receive that call's answer, the call is neither restarted nor cancelled,
/// and the answer is stored.
#[tokio::test(start_paused = true)]
async fn an_aborted_leader_does_not_fail_its_followers() {
    let layer = layer();
    let backend = Backend::gated();
    let service = layer.layer(backend.clone());

    let leader = spawn_callers(&service, 7, 1).await.pop().unwrap();
    backend.until_called(1).await;
    let followers = spawn_callers(&service, 7, 9).await;
    leader.abort();
    assert!(bounded(leader).await.unwrap_err().is_cancelled());

    backend.open();
    for result in join_all(followers).await {
        assert_eq!(result.unwrap(), "v7");
    }
    assert_eq!(
        (backend.calls(), backend.finished(), backend.cancelled()),
        (1, 1, 0)
    );
    // The leader's lookup never finished; its nine followers were collapsed.
    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.collapsed), (0, 9));

    assert_eq!(bounded(service.oneshot(7)).await.unwrap(), "v7");
    assert_eq!(backend.calls(), 1, "the followers' answer was stored");
}

/// The leader's response future is dropped mid-call, after followers have
/// joined: same as an abort.
#[tokio::test(start_paused = true)]
async fn a_dropped_leader_future_does_not_fail_its_followers() {
    let layer = layer();
    let backend = Backend::gated();
    let service = layer.layer(backend.clone());

    let mut leader = Box::pin(service.clone().oneshot(7));
    assert!(poll_once(&mut leader).is_pending());
    assert_eq!(backend.calls(), 1);
    let followers = spawn_callers(&service, 7, 5).await;
    drop(leader);

    backend.open();
    for result in join_all(followers).await {
        assert_eq!(result.unwrap(), "v7");
    }
    assert_eq!((backend.calls(), backend.cancelled()), (1, 0));
}

/// Every caller leaves while the call runs: by default the call finishes on
/// its own and stores its answer, and requests that arrive meanwhile join
/// it. One inner call in all; later requests are hits.
#[tokio::test(start_paused = true)]
async fn a_call_whose_callers_all_left_finishes_and_stores() {
    let layer = layer();
    let backend = Backend::gated();
    let service = layer.layer(backend.clone());

    let mut leader = Box::pin(service.clone().oneshot(7));
    assert!(poll_once(&mut leader).is_pending());
    drop(leader);
    settle().await;
    assert_eq!((backend.calls(), backend.cancelled()), (1, 0));
    assert_eq!(layer.cache_handle().in_flight(), 1, "the call goes on");

    // A request arriving now joins the abandoned call.
    let late = spawn_callers(&service, 7, 1).await;
    backend.open();
    assert_eq!(join_all(late).await.pop().unwrap().unwrap(), "v7");
    settle().await;
    assert_eq!((backend.calls(), backend.finished()), (1, 1));
    assert_eq!(layer.cache_handle().in_flight(), 0);

    // The abandoned call stored its answer.
    assert_eq!(bounded(service.clone().oneshot(7)).await.unwrap(), "v7");
    assert_eq!(backend.calls(), 1);

    // And with nobody joining it at all, too.
    backend.close();
    let mut lonely = Box::pin(service.clone().oneshot(8));
    assert!(poll_once(&mut lonely).is_pending());
    drop(lonely);
    backend.open();
    settle().await;
    assert_eq!((backend.calls(), backend.finished()), (2, 2));
    assert_eq!(bounded(service.oneshot(8)).await.unwrap(), "v8");
    assert_eq!(backend.calls(), 2);
    assert_eq!(layer.cache_handle().stats().hits, 2);
}

/// With `finish_abandoned(false)`, a call whose every caller left is
/// cancelled (the inner future is dropped) and nothing is stored.
#[tokio::test(start_paused = true)]
async fn an_abandoned_call_can_be_cancelled_instead() {
    let layer = layer().finish_abandoned(false);
    let backend = Backend::gated();
    let service = layer.layer(backend.clone());

    let mut leader = Box::pin(service.clone().oneshot(7));
    assert!(poll_once(&mut leader).is_pending());
    drop(leader);
    assert_eq!((backend.calls(), backend.cancelled()), (1, 1));
    assert_eq!(layer.cache_handle().in_flight(), 0);

    backend.open();
    assert_eq!(bounded(service.oneshot(7)).await.unwrap(), "v7");
    assert_eq!(backend.calls(), 2);
}

/// A follower that waited longer than the lock timeout calls the inner
/// service itself, with its own request and its own ready service, and
/// does not store its answer; the original call still stores its own.
#[tokio::test(start_paused = true)]
async fn a_follower_past_the_lock_timeout_calls_alone() {
    let layer = layer().lock_timeout(Duration::from_secs(1)).jitter(0.0);
    let backend = Backend::open_now();
    backend.script([Step::Sleep(Duration::from_secs(10))]);
    let service = layer.layer(backend.clone());

    let started = Instant::now();
    let leader = spawn_callers(&service, 7, 1).await;
    let follower = spawn_callers(&service, 7, 1).await;
    assert_eq!(join_all(follower).await.pop().unwrap().unwrap(), "v7");
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(backend.calls(), 2);
    assert_eq!(layer.cache_handle().stats().lock_timeouts, 1);

    assert_eq!(join_all(leader).await.pop().unwrap().unwrap(), "v7");
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    assert_eq!(bounded(service.oneshot(7)).await.unwrap(), "v7");
    assert_eq!(backend.calls(), 2, "the leader's answer was stored");
}
