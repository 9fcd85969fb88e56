//! The tower readiness contract, with `tower-test` mocks (their clones start
//! not ready, and calling one panics): `poll_ready` delegates, `call` uses
//! the ready service and never a not-ready clone, a hit leaves the ready
//! service in place, and a request that shares another's call does not use
//! up the inner service's capacity.

mod support;

use std::task::Poll;

use shared_calls_tower::{CloneResponses, SharedCallsLayer, SharedError};
use support::{KeyFn, bounded, own_key, poll_once};
use tokio_test::{assert_pending, assert_ready, assert_ready_ok};
use tower_test::mock;

type MockError = Box<dyn std::error::Error + Send + Sync>;
type Policy = CloneResponses<u32, String, MockError>;

fn layer() -> SharedCallsLayer<KeyFn, Policy> {
    SharedCallsLayer::new(own_key as KeyFn)
}

/// A not-ready inner service makes the layer not ready; when it becomes
/// ready, the layer's task is woken and the layer is ready.
#[tokio::test(start_paused = true)]
async fn poll_ready_delegates_to_the_inner_service() {
    let (mut service, mut handle) = mock::spawn_layer::<u32, String, _>(layer());
    handle.allow(0);
    assert_pending!(service.poll_ready());
    assert_pending!(service.poll_ready());
    assert!(!service.is_woken());

    handle.allow(1);
    assert!(
        service.is_woken(),
        "readiness of the inner service wakes the layer's task"
    );
    assert_ready_ok!(service.poll_ready());
}

/// An error from the inner service's `poll_ready` comes out of the layer's,
/// as the policy's error.
#[tokio::test(start_paused = true)]
async fn poll_ready_passes_the_inner_error_on() {
    let (mut service, mut handle) = mock::spawn_layer::<u32, String, _>(layer());
    handle.send_error("not today");
    match assert_ready!(service.poll_ready()) {
        Err(SharedError::Inner(error)) => assert_eq!(error.to_string(), "not today"),
        other => panic!("expected the inner error, got {other:?}"),
    }
}

/// `call` after `poll_ready` sends the request through the ready service
/// (the mock panics if a not-ready clone is called) and leaves a not-ready
/// clone behind: with the inner service's capacity used up, the layer is not
/// ready again until the inner service is.
#[tokio::test(start_paused = true)]
async fn call_uses_the_ready_service_and_leaves_a_clone_that_must_be_polled() {
    let (mut service, mut handle) = mock::spawn_layer::<u32, String, _>(layer());
    handle.allow(1);
    assert_ready_ok!(service.poll_ready());
    let mut response = service.call(1);
    assert_pending!(poll_once(&mut response));

    let (request, send) = bounded(handle.next_request()).await.unwrap();
    assert_eq!(request, 1);
    send.send_response("v1".to_owned());
    assert_eq!(bounded(response).await.unwrap(), "v1");

    // The clone left in place is not ready, and the mock allows no more.
    assert_pending!(service.poll_ready());
    handle.allow(1);
    assert!(service.is_woken());
    assert_ready_ok!(service.poll_ready());
    let mut response = service.call(2);
    assert_pending!(poll_once(&mut response));
    let (request, send) = bounded(handle.next_request()).await.unwrap();
    assert_eq!(request, 2);
    send.send_response("v2".to_owned());
    assert_eq!(bounded(response).await.unwrap(), "v2");
}

/// A bypassed request (no key) goes through the ready service too.
#[tokio::test(start_paused = true)]
async fn a_bypassed_call_uses_the_ready_service() {
    let layer = SharedCallsLayer::<_, Policy>::new(|_: &u32| None::<u32>);
    let (mut service, mut handle) = mock::spawn_layer::<u32, String, _>(layer);
    for request in 0..3 {
        handle.allow(1);
        assert_ready_ok!(service.poll_ready());
        let response = service.call(request);
        let (received, send) = bounded(handle.next_request()).await.unwrap();
        assert_eq!(received, request);
        send.send_response(format!("v{request}"));
        assert_eq!(bounded(response).await.unwrap(), format!("v{request}"));
        assert_pending!(service.poll_ready(), "a bypass consumes the ready service");
    }
}

/// A fresh hit answers in `call` without touching the inner service: the
/// mock receives no request, and the ready inner service stays in place,
/// ready, for the next call — which then reaches the mock without another
/// unit of its capacity.
#[tokio::test(start_paused = true)]
async fn a_hit_leaves_the_ready_inner_service_in_place() {
    let layer = layer();
    let (mut service, mut handle) = mock::spawn_layer::<u32, String, _>(layer.clone());
    handle.allow(1);
    assert_ready_ok!(service.poll_ready());
    let mut response = service.call(7);
    // The call starts when its future is first polled.
    assert_pending!(poll_once(&mut response));
    let (_, send) = bounded(handle.next_request()).await.unwrap();
    send.send_response("v7".to_owned());
    assert_eq!(bounded(response).await.unwrap(), "v7");

    // One more unit of capacity: the clone left behind takes it.
    handle.allow(1);
    assert_ready_ok!(service.poll_ready());
    for _ in 0..3 {
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
        // Still ready, without asking the mock for more capacity.
        assert_ready_ok!(service.poll_ready());
    }
    assert_eq!(layer.cache_handle().stats().hits, 3);

    // The same ready service carries the next miss.
    let mut miss = service.call(8);
    assert_pending!(poll_once(&mut miss));
    let (request, send) = bounded(handle.next_request()).await.unwrap();
    assert_eq!(request, 8);
    send.send_response("v8".to_owned());
    assert_eq!(bounded(miss).await.unwrap(), "v8");
    // And that used the one unit of capacity there was.
    assert_pending!(service.poll_ready());
}

/// Requests that share another's call take the ready service in `call` but
/// never call it: with capacity for two calls, a leader and four followers
/// cost one, and the other remains for the next key. Every `call` follows a
/// `poll_ready` that returned ready, and nothing panics.
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
    assert_ready_ok!(service.poll_ready());
    let mut response = service.call(8);
    assert_pending!(poll_once(&mut response));
    let (request, send) = bounded(handle.next_request()).await.unwrap();
    assert_eq!(request, 8);
    send.send_response("v8".to_owned());
    assert_eq!(bounded(response).await.unwrap(), "v8");
    assert_pending!(service.poll_ready(), "both units are used now");
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
