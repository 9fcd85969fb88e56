//! The public types are `Send` and `Sync` where their parts are, and the
//! response future is `'static`, so that axum, hyper and `tokio::spawn`
//! accept them.

mod support;

use std::io;

use shared_calls_tower::{
    Answer, Caching, CachingLayer, CloneResponses, Rejected, ResponseFuture, SharedError,
};
use support::{Backend, KeyFn, Policy};
use tower::Layer;
use tower::util::ServiceFn;

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_static<T: 'static>() {}
fn assert_send_sync_static<T: Send + Sync + 'static>() {}

type MockPolicy = CloneResponses<u32, String, Box<dyn std::error::Error + Send + Sync>>;
type Mock = tower_test::mock::Mock<u32, String>;

type Closure = fn(u32) -> std::future::Ready<Result<String, io::Error>>;

#[test]
fn layer_is_send_and_sync() {
    assert_send::<CachingLayer<KeyFn, Policy>>();
    assert_sync::<CachingLayer<KeyFn, Policy>>();
    assert_static::<CachingLayer<KeyFn, Policy>>();
}

#[test]
fn service_is_send_and_sync() {
    assert_send_sync_static::<Caching<Backend, KeyFn, Policy>>();
    assert_send_sync_static::<Caching<Mock, KeyFn, MockPolicy>>();
    assert_send_sync_static::<Caching<ServiceFn<Closure>, KeyFn, Policy>>();
}

#[test]
fn response_future_is_send_sync_and_static() {
    assert_send_sync_static::<ResponseFuture<u32, Backend, Policy>>();
    assert_send_sync_static::<ResponseFuture<u32, Mock, MockPolicy>>();
    assert_send_sync_static::<ResponseFuture<u32, ServiceFn<Closure>, Policy>>();
}

#[test]
fn errors_and_answers_are_send_and_sync() {
    assert_send_sync_static::<SharedError<io::Error>>();
    assert_send_sync_static::<SharedError<Box<dyn std::error::Error + Send + Sync>>>();
    assert_send_sync_static::<Answer>();
    assert_send_sync_static::<Rejected>();
    assert_send_sync_static::<CloneResponses<u32, String, io::Error>>();
}

/// A service made by the layer, over a `service_fn` whose closure captures
/// state, answers from a spawned task: its future is `Send + 'static` in
/// practice, not only by the assertions above.
#[tokio::test]
async fn a_response_future_can_be_spawned() {
    use tower::{ServiceExt, service_fn};
    let prefix = String::from("v");
    let service = support::layer().layer(service_fn(move |request: u32| {
        let prefix = prefix.clone();
        async move { Ok::<_, io::Error>(format!("{prefix}{request}")) }
    }));
    let future = service.oneshot(3);
    let answer = support::bounded(tokio::spawn(future)).await.unwrap();
    assert_eq!(answer.unwrap(), "v3");
}
