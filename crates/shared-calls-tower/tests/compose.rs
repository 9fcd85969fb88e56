//! The layer in `ServiceBuilder` stacks with tower's `timeout`,
//! `concurrency_limit` and `buffer`, each outside and inside it.

mod support;

use std::sync::Arc;
use std::time::Duration;

use shared_calls_tower::{CachingLayer, CloneResponses, SharedError};
use support::{Backend, KeyFn, Step, bounded, join_all, layer, own_key, settle, spawn_all};
use tokio::time::Instant;
use tower::timeout::error::Elapsed;
use tower::{BoxError, ServiceBuilder, ServiceExt};

/// A layer for an inner service whose error is tower's `BoxError`.
fn boxed_layer() -> CachingLayer<KeyFn, CloneResponses<u32, String, BoxError>> {
    CachingLayer::new(own_key as KeyFn)
}

/// `timeout` outside: the callers' deadline passes while the shared call is
/// slow; they all receive `Elapsed`, but the call goes on, and once it
/// returns its answer is stored: the next request is a hit.
#[tokio::test(start_paused = true)]
async fn timeout_outside_gives_up_while_the_call_goes_on_and_fills_the_cache() {
    let layer = layer();
    let backend = Backend::open_now();
    backend.script([Step::Sleep(Duration::from_secs(5))]);
    let service = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .layer(layer.clone())
        .service(backend.clone());

    let started = Instant::now();
    let callers = spawn_all(&service, 7, 3);
    for result in join_all(callers).await {
        assert!(result.unwrap_err().is::<Elapsed>());
    }
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(
        (backend.calls(), backend.cancelled()),
        (1, 0),
        "the call goes on"
    );
    assert_eq!(layer.cache_handle().in_flight(), 1);

    tokio::time::sleep(Duration::from_secs(4)).await;
    settle().await;
    assert_eq!(backend.finished(), 1);
    assert_eq!(bounded(service.oneshot(7)).await.unwrap(), "v7");
    assert_eq!(backend.calls(), 1, "the abandoned call stored its answer");
}

/// `timeout` inside: the inner call times out, and its `Elapsed` error is
/// shared with every waiter as one `Arc`; it is not stored, so the next
/// request calls again.
#[tokio::test(start_paused = true)]
async fn timeout_inside_is_a_shared_error_that_is_not_stored() {
    let layer = boxed_layer();
    let backend = Backend::open_now();
    backend.script([Step::Sleep(Duration::from_secs(5))]);
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .timeout(Duration::from_secs(1))
        .service(backend.clone());

    let callers = support::spawn_callers(&service, 7, 5).await;
    let errors: Vec<Arc<BoxError>> = join_all(callers)
        .await
        .into_iter()
        .map(|result| match result {
            Err(SharedError::Inner(error)) => error,
            other => panic!("expected the shared timeout, got {other:?}"),
        })
        .collect();
    assert!(errors[0].is::<Elapsed>());
    assert!(errors.iter().all(|error| Arc::ptr_eq(error, &errors[0])));
    assert_eq!((backend.calls(), backend.cancelled()), (1, 1));

    assert_eq!(bounded(service.oneshot(7)).await.unwrap(), "v7");
    assert_eq!(backend.calls(), 2);
}

/// `concurrency_limit(4)` outside: four requests at a time reach the layer
/// (one leads, three follow); the other sixteen wait for a permit and then
/// hit the stored answer. One inner call for twenty requests.
#[tokio::test(start_paused = true)]
async fn concurrency_limit_outside_lets_waiting_requests_hit() {
    let layer = layer();
    let backend = Backend::gated();
    let service = ServiceBuilder::new()
        .concurrency_limit(4)
        .layer(layer.clone())
        .service(backend.clone());

    let callers = spawn_all(&service, 7, 20);
    settle().await;
    assert_eq!(backend.calls(), 1);
    backend.open();
    for result in join_all(callers).await {
        assert_eq!(result.unwrap(), "v7");
    }
    assert_eq!(backend.calls(), 1);
    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.collapsed, stats.hits), (1, 3, 16));
}

/// `concurrency_limit(1)` inside: the leader's call holds the only permit;
/// the other requests reserve none (a follower holds no readied service)
/// and wait for its answer: no deadlock, one inner call.
#[tokio::test(start_paused = true)]
async fn concurrency_limit_inside_does_not_deadlock() {
    let layer = layer();
    let backend = Backend::gated();
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .concurrency_limit(1)
        .service(backend.clone());

    let callers = spawn_all(&service, 7, 10);
    settle().await;
    assert_eq!(backend.calls(), 1);
    backend.open();
    for result in join_all(callers).await {
        assert_eq!(result.unwrap(), "v7");
    }
    assert_eq!(backend.calls(), 1);
    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.collapsed, stats.hits), (1, 9, 0));
}

/// `concurrency_limit(1)` inside, and the leader is aborted while its call
/// holds the only permit: the call, abandoned, still runs to its end, which
/// gives the permit back, and the waiting requests receive its answer.
#[tokio::test(start_paused = true)]
async fn concurrency_limit_inside_survives_an_aborted_leader() {
    let layer = layer();
    let backend = Backend::gated();
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .concurrency_limit(1)
        .service(backend.clone());

    let leader = spawn_all(&service, 7, 1).pop().unwrap();
    settle().await;
    let waiting = spawn_all(&service, 7, 5);
    settle().await;
    assert_eq!(backend.calls(), 1);
    leader.abort();
    assert!(bounded(leader).await.unwrap_err().is_cancelled());

    backend.open();
    for result in join_all(waiting).await {
        assert_eq!(result.unwrap(), "v7");
    }
    assert_eq!((backend.calls(), backend.cancelled()), (1, 0));
    assert_eq!(layer.cache_handle().stats().collapsed, 5);
}

/// `buffer` outside: fifty concurrent requests through one buffer (its
/// worker calls the layer's service, each caller polls its own response
/// future) make one inner call.
#[tokio::test(start_paused = true)]
async fn buffer_outside_still_collapses() {
    let layer = layer();
    let backend = Backend::gated();
    let service = ServiceBuilder::new()
        .buffer(64)
        .layer(layer.clone())
        .service(backend.clone());

    let callers = spawn_all(&service, 7, 50);
    settle().await;
    assert_eq!(backend.calls(), 1);
    backend.open();
    for result in join_all(callers).await {
        assert_eq!(result.unwrap(), "v7");
    }
    assert_eq!(backend.calls(), 1);
    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.collapsed), (1, 49));
}

/// `buffer(4)` inside: only the leader readies the buffer (taking a slot
/// for its call); the nineteen followers hold no slot and receive its
/// answer. One request reaches the buffer's worker.
#[tokio::test(start_paused = true)]
async fn buffer_inside_makes_one_inner_call() {
    let layer = boxed_layer();
    let backend = Backend::gated();
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .buffer(4)
        .service(backend.clone());

    let callers = spawn_all(&service, 7, 20);
    settle().await;
    assert_eq!(backend.calls(), 1);
    backend.open();
    for result in join_all(callers).await {
        assert_eq!(result.unwrap(), "v7");
    }
    assert_eq!(backend.requests(), [7]);
    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.collapsed, stats.hits), (1, 19, 0));
}

/// Hits never wait for the inner service: `concurrency_limit(2)` inside the
/// layer charges its capacity in `poll_ready` (a permit per call), two slow
/// misses hold both permits, and a hit on another key is answered at once
/// while a third miss waits for a permit.
#[tokio::test(start_paused = true)]
async fn a_hit_is_answered_while_two_slow_misses_hold_the_concurrency_limit() {
    let layer = layer();
    let backend = Backend::open_now();
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .concurrency_limit(2)
        .service(backend.clone());
    hit_while_two_misses_hold_the_capacity(service, &backend).await;
    assert_eq!(layer.cache_handle().stats().hits, 1);
}

/// The same with tower's `Buffer` (one slot) in front of the limit.
#[tokio::test(start_paused = true)]
async fn a_hit_is_answered_while_two_slow_misses_hold_a_buffered_limit() {
    let layer = boxed_layer();
    let backend = Backend::open_now();
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .buffer(1)
        .concurrency_limit(2)
        .service(backend.clone());
    hit_while_two_misses_hold_the_capacity(service, &backend).await;
    assert_eq!(layer.cache_handle().stats().hits, 1);
}

async fn hit_while_two_misses_hold_the_capacity<S, E>(service: S, backend: &Backend)
where
    S: tower::Service<u32, Response = String, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    E: std::fmt::Debug + Send + 'static,
{
    assert_eq!(bounded(service.clone().oneshot(1)).await.unwrap(), "v1");
    backend.close();
    let slow: Vec<_> = [2, 3]
        .map(|key| tokio::spawn(service.clone().oneshot(key)))
        .into();
    backend.until_called(3).await;
    let waiting = tokio::spawn(service.clone().oneshot(4));
    settle().await;
    assert_eq!(backend.calls(), 3, "the third miss waits for a permit");

    let hit = tokio::time::timeout(Duration::from_millis(1), service.clone().oneshot(1)).await;
    assert_eq!(hit.expect("a hit never waits").unwrap(), "v1");

    backend.open();
    for result in join_all(slow).await {
        result.unwrap();
    }
    assert_eq!(bounded(waiting).await.unwrap().unwrap(), "v4");
    assert_eq!(backend.calls(), 4);
}
