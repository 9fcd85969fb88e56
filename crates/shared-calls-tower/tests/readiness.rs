//! The tower readiness contract, with `tower-test` mocks (their clones start
//! not ready, and calling one panics): `poll_ready` reserves nothing, every
//! inner call readies its own clone of the inner service inside its response
//! future (as tower's `Buffer` does), a hit never waits for the inner
//! service, and a request that shares another's call holds none of its
//! capacity.

mod support;

use std::task::Poll;

use shared_calls_tower::{CachingLayer, CloneResponses, SharedError};
use support::{KeyFn, bounded, own_key, poll_once};
use tokio_test::{assert_pending, assert_ready_ok};
use tower_test::mock;

type MockError = Box<dyn std::error::Error + Send + Sync>;
type Policy = CloneResponses<u32, String, MockError>;

fn layer() -> CachingLayer<KeyFn, Policy> {
    CachingLayer::new(own_key as KeyFn)
}

/// The layer is ready while the inner service is not: a request that may be
/// a hit reserves nothing of it.
#[tokio::test(start_paused = true)]
async fn poll_ready_reserves_nothing_of_the_inner_service() {
    let (mut service, mut handle) = mock::spawn_layer::<u32, String, _>(layer());
    handle.allow(0);
    assert_ready_ok!(service.poll_ready());
    assert_ready_ok!(service.poll_ready());
}

/// A miss readies its own clone inside its response future: it waits there
/// while the inner service has no capacity, and is sent once it has.
#[tokio::test(start_paused = true)]
async fn a_miss_readies_the_inner_service_inside_its_future() {
    let (mut service, mut handle) = mock::spawn_layer::<u32, String, _>(layer());
    handle.allow(0);
    assert_ready_ok!(service.poll_ready());
    let mut response = service.call(1);
    assert_pending!(poll_once(&mut response));
    assert_pending!(handle.poll_request(), "nothing is sent without capacity");

    let response = tokio::spawn(response);
    handle.allow(1);
    let (request, send) = bounded(handle.next_request()).await.unwrap();
    assert_eq!(request, 1);
    send.send_response("v1".to_owned());
    assert_eq!(bounded(response).await.unwrap().unwrap(), "v1");
}

/// An error from the inner service's `poll_ready` reaches the request that
/// readied it, as the policy's error.
#[tokio::test(start_paused = true)]
async fn the_inner_readiness_error_reaches_the_caller() {
    let (mut service, mut handle) = mock::spawn_layer::<u32, String, _>(layer());
    handle.send_error("not today");
    assert_ready_ok!(service.poll_ready());
    match bounded(service.call(1)).await {
        Err(SharedError::Inner(error)) => assert_eq!(error.to_string(), "not today"),
        other => panic!("expected the inner error, got {other:?}"),
    }
}

/// A bypassed request (no key) readies its own clone too: each one is sent
/// as soon as there is capacity for it.
#[tokio::test(start_paused = true)]
async fn a_bypassed_call_readies_its_own_service() {
    let layer = CachingLayer::<_, Policy>::new(|_: &u32| None::<u32>);
    let (mut service, mut handle) = mock::spawn_layer::<u32, String, _>(layer);
    for request in 0..3 {
        handle.allow(1);
        assert_ready_ok!(service.poll_ready());
        let response = service.call(request);
        let response = tokio::spawn(response);
        let (received, send) = bounded(handle.next_request()).await.unwrap();
        assert_eq!(received, request);
        send.send_response(format!("v{request}"));
        assert_eq!(
            bounded(response).await.unwrap().unwrap(),
            format!("v{request}")
        );
    }
}

/// A fresh hit answers in `call` while the inner service has no capacity
/// at all: the mock receives nothing.
#[tokio::test(start_paused = true)]
async fn a_hit_is_answered_without_inner_capacity() {
    let layer = layer();
    let (mut service, mut handle) = mock::spawn_layer::<u32, String, _>(layer.clone());
    handle.allow(1);
    let response = tokio::spawn(service.call(7));
    let (_, send) = bounded(handle.next_request()).await.unwrap();
    send.send_response("v7".to_owned());
    assert_eq!(bounded(response).await.unwrap().unwrap(), "v7");

    handle.allow(0);
    for _ in 0..3 {
        assert_ready_ok!(service.poll_ready());
        let mut hit = service.call(7);
        assert_eq!(
            poll_once(&mut hit).map(Result::unwrap),
            Poll::Ready("v7".to_owned()),
            "a hit answers without waiting"
        );
        assert_pending!(
            handle.poll_request(),
            "a hit sends nothing to the inner service"
        );
    }
    assert_eq!(layer.cache_handle().stats().hits, 3);
}

/// Requests that share another's call never ready the inner service: with
/// capacity for two calls, a leader and four followers cost one, and the
/// other remains for the next key.
#[tokio::test(start_paused = true)]
async fn followers_do_not_use_the_inner_capacity() {
    let layer = layer();
    let (mut service, mut handle) = mock::spawn_layer::<u32, String, _>(layer.clone());
    handle.allow(2);
    let mut responses = Vec::new();
    for _ in 0..5 {
        assert_ready_ok!(service.poll_ready());
        let mut response = service.call(7);
        // Joins (or leads) the flight.
        assert_pending!(poll_once(&mut response));
        responses.push(response);
    }
    let (request, send) = bounded(handle.next_request()).await.unwrap();
    assert_eq!(request, 7);
    assert_pending!(handle.poll_request(), "one inner call for five requests");
    send.send_response("v7".to_owned());
    for response in responses {
        assert_eq!(bounded(response).await.unwrap(), "v7");
    }
    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.collapsed), (1, 4));

    // One unit of capacity is left for another key.
    let mut response = service.call(8);
    assert_pending!(poll_once(&mut response));
    let (request, send) = bounded(handle.next_request()).await.unwrap();
    assert_eq!(request, 8);
    send.send_response("v8".to_owned());
    assert_eq!(bounded(response).await.unwrap(), "v8");
    // Both units are used now: a third key waits inside its future.
    let mut response = service.call(9);
    assert_pending!(poll_once(&mut response));
    assert_pending!(handle.poll_request());
}

/// Many tasks, each with its own clone of the layer's service over one mock
/// (every clone starts not ready), driven with `ServiceExt::ready` and
/// `call`: nothing panics, the mock sees one request.
#[tokio::test(start_paused = true)]
async fn clones_of_the_service_are_polled_before_they_are_called() {
    use tower::{Layer, ServiceExt};
    let layer = layer();
    let (mock, mut handle) = mock::pair::<u32, String>();
    let service = layer.layer(mock);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(service.oneshot(7))
        })
        .collect();
    let (request, send) = bounded(handle.next_request()).await.unwrap();
    assert_eq!(request, 7);
    support::settle().await;
    send.send_response("v7".to_owned());
    for task in tasks {
        assert_eq!(bounded(task).await.unwrap().unwrap(), "v7");
    }
    assert_pending!(handle.poll_request(), "one request for twenty callers");
    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.collapsed, stats.hits), (1, 19, 0));
}
