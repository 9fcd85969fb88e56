//! The layer on a whole axum `Router`, the way an application puts it: an
//! event stream, a per-user header, two `Vary` variants of one URI and a slow
//! route, every route behind one global concurrency limit of two, over real
//! HTTP/1 connections on loopback.

mod support;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use futures::stream::{self, Stream};
use http::header::{CACHE_CONTROL, VARY};
use http::{HeaderMap, Method};
use http_body_util::BodyExt;
use shared_calls::SharedCallsLayer;
use shared_calls::http_policy::KeyBuilder;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;

use support::{
    Counter, bounded, concurrent_gets, fetch_with, join_all, request, serve_axum, wait_until,
};

#[derive(Clone, Debug, Default)]
struct Calls {
    me: Counter,
    hello: Counter,
    slow: Counter,
}

async fn events() -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticks = stream::unfold(0u64, |n| async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        Some((Ok(Event::default().data(format!("tick {n}"))), n + 1))
    });
    Sse::new(ticks)
}

async fn me(State(calls): State<Calls>, headers: HeaderMap) -> impl IntoResponse {
    calls.me.hit();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let user = headers
        .get("x-user-id")
        .map_or("nobody", |v| v.to_str().unwrap());
    (
        [(CACHE_CONTROL, "public, max-age=60")],
        format!("profile of {user}"),
    )
}

async fn hello(State(calls): State<Calls>, headers: HeaderMap) -> impl IntoResponse {
    calls.hello.hit();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let greeting = match headers.get("accept-language").map(|v| v.as_bytes()) {
        Some(b"fr") => "bonjour",
        _ => "hello",
    };
    (
        [(CACHE_CONTROL, "max-age=60"), (VARY, "accept-language")],
        greeting,
    )
}

async fn slow(State(calls): State<Calls>) -> &'static str {
    calls.slow.hit();
    tokio::time::sleep(Duration::from_millis(800)).await;
    "slow"
}

async fn app() -> (std::net::SocketAddr, Calls) {
    let calls = Calls::default();
    let key = KeyBuilder::new().header("x-user-id");
    let layer =
        SharedCallsLayer::new(move |request: &http::Request<axum::body::Body>| key.key(request));
    let router = Router::new()
        .route("/events", get(events))
        .route("/me", get(me))
        .route("/hello", get(hello))
        .route("/slow/{n}", get(slow))
        .with_state(calls.clone())
        .layer(
            ServiceBuilder::new()
                .layer(layer)
                .layer(GlobalConcurrencyLimitLayer::new(2)),
        );
    (serve_axum(router).await, calls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_router_with_streams_users_variants_and_a_limit_behaves() {
    let (addr, calls) = app().await;

    // Each user collapses onto one call and gets their own profile.
    let alice = concurrent_gets(addr, "/me", &[("x-user-id", "alice")], 5);
    let bob = concurrent_gets(addr, "/me", &[("x-user-id", "bob")], 5);
    for (user, tasks) in [("alice", alice), ("bob", bob)] {
        for got in join_all(tasks).await {
            assert_eq!(got.text(), format!("profile of {user}"));
        }
    }
    assert_eq!(calls.me.get(), 2, "one call per user");

    // Each language collapses onto one call and gets its own greeting.
    let en = concurrent_gets(addr, "/hello", &[("accept-language", "en")], 5);
    let fr = concurrent_gets(addr, "/hello", &[("accept-language", "fr")], 5);
    for (greeting, tasks) in [("hello", en), ("bonjour", fr)] {
        for got in join_all(tasks).await {
            assert_eq!(got.text(), greeting);
        }
    }
    assert_eq!(calls.hello.get(), 2, "one call per variant");

    // Two slow requests hold the whole limit; stored answers still come at once.
    let slow = concurrent_gets(addr, "/slow/1", &[], 1)
        .into_iter()
        .chain(concurrent_gets(addr, "/slow/2", &[], 1))
        .collect::<Vec<_>>();
    wait_until("the slow calls to hold the limit", || calls.slow.get() == 2).await;
    let started = Instant::now();
    let fr = fetch_with(addr, "/hello", &[("accept-language", "fr")]).await;
    let bob = fetch_with(addr, "/me", &[("x-user-id", "bob")]).await;
    let waited = started.elapsed();
    assert_eq!((fr.text(), bob.text()), ("bonjour", "profile of bob"));
    assert!(fr.cache_status().contains("hit") && bob.cache_status().contains("hit"));
    assert!(
        waited < Duration::from_millis(400),
        "hits waited {waited:?} for the limit"
    );
    assert_eq!((calls.hello.get(), calls.me.get()), (2, 2));
    join_all(slow).await;

    // An event stream answers its head at once and keeps streaming.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let events = bounded(
        "the event stream's head",
        sender.send_request(request(Method::GET, "/events", &[])),
    )
    .await
    .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut body = events.into_body();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("tick 2") {
        let frame = bounded("an event", body.frame()).await.unwrap().unwrap();
        if let Ok(data) = frame.into_data() {
            seen.extend_from_slice(&data);
        }
    }
}
