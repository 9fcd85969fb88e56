//! Misses stream: the leader's head reaches its client as soon as the
//! handler answers, its body is buffered for the others at the handler's
//! pace whatever its client does, and an event stream goes to its own
//! client untouched, as without the layer.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::sse::{Event, Sse};
use axum::routing::get;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use shared_calls::{HttpCache, SharedCallsLayer, default_key};
use tower::ServiceExt;

use support::{
    CountWaiting, Counter, Gate, bounded, concurrent_gets, fetch, join_all, request, serve_axum,
    wait_until,
};

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 8;

/// Chunk `i` is filled with the byte `i + 1`.
fn expected() -> Vec<u8> {
    (0..CHUNKS).flat_map(|i| vec![i as u8 + 1; CHUNK]).collect()
}

/// `/big` sends its first chunk, waits at `gate`, then the rest; `/events`
/// is a never-ending event stream. Every route counts its calls.
fn app(calls: &Counter, waiting: &Counter, gate: &Gate) -> (Router, HttpCache) {
    let (big_calls, gate) = (calls.clone(), gate.clone());
    let events_calls = calls.clone();
    let layer = SharedCallsLayer::new(default_key);
    let cache = layer.cache_handle();
    let router = Router::new()
        .route(
            "/big",
            get(move || {
                big_calls.hit();
                let gate = gate.clone();
                let chunks = futures::stream::unfold(0, move |i| {
                    let gate = gate.clone();
                    async move {
                        if i == CHUNKS {
                            return None;
                        }
                        if i == 1 {
                            gate.wait().await;
                        }
                        let chunk = Bytes::from(vec![i as u8 + 1; CHUNK]);
                        Some((Ok::<_, Infallible>(chunk), i + 1))
                    }
                });
                async move { Body::from_stream(chunks) }
            }),
        )
        .route(
            "/events",
            get(move || {
                events_calls.hit();
                let ticks = futures::stream::unfold(0u64, |n| async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Some((
                        Ok::<_, Infallible>(Event::default().data(format!("tick {n}"))),
                        n + 1,
                    ))
                });
                async move { Sse::new(ticks) }
            }),
        )
        .layer(layer)
        .layer(CountWaiting(waiting.clone()));
    (router, cache)
}

/// Sends a GET and returns the response as soon as its head arrives.
async fn open(addr: SocketAddr, path: &str) -> Response<Incoming> {
    bounded("a response head", async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        sender
            .send_request(request(Method::GET, path, &[]))
            .await
            .unwrap()
    })
    .await
}

/// Reads exactly `n` bytes of the body.
async fn read_exactly(body: &mut Incoming, n: usize) -> Vec<u8> {
    let mut read = Vec::with_capacity(n);
    while read.len() < n {
        let frame = bounded("a body frame", body.frame())
            .await
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            read.extend_from_slice(&data);
        }
    }
    read
}

/// Spawns `n` GETs of `/big` and waits until they all wait inside the layer.
async fn followers(
    addr: SocketAddr,
    waiting: &Counter,
    n: usize,
) -> Vec<tokio::task::JoinHandle<support::Got>> {
    let before = waiting.get();
    let tasks = concurrent_gets(addr, "/big", &[], n);
    wait_until("the followers to wait", || waiting.get() == before + n).await;
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_answers_its_head_before_its_body_is_complete() {
    const FOLLOWERS: usize = 3;
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let (app, cache) = app(&calls, &waiting, &gate);
    let addr = serve_axum(app).await;

    // The handler is held after its first chunk, and the head is here.
    let leader = open(addr, "/big").await;
    assert_eq!(leader.status(), StatusCode::OK);
    assert_eq!(leader.headers()["cache-status"], "shared-calls; fwd=miss");
    let mut body = leader.into_body();
    assert!(read_exactly(&mut body, CHUNK).await == vec![1; CHUNK]);

    let followers = followers(addr, &waiting, FOLLOWERS).await;
    gate.release();
    let mut rest = bounded("the leader's body", body.collect())
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    rest.splice(0..0, vec![1; CHUNK]);
    assert!(rest == expected(), "the leader's body, byte for byte");
    for got in join_all(followers).await {
        assert!(got.body == expected());
        assert!(got.cache_status().contains("collapsed"), "{got:?}");
    }
    assert_eq!(calls.get(), 1);
    assert!(fetch(addr, "/big").await.cache_status().contains("hit"));
    assert_eq!((calls.get(), cache.stats().hits), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_leader_client_neither_delays_nor_aborts_the_fill() {
    const FOLLOWERS: usize = 3;
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let (app, _) = app(&calls, &waiting, &gate);
    let addr = serve_axum(app).await;

    let leader = open(addr, "/big").await;
    let followers = followers(addr, &waiting, FOLLOWERS).await;
    drop(leader);
    gate.release();
    for got in join_all(followers).await {
        assert!(got.body == expected());
    }
    assert!(fetch(addr, "/big").await.cache_status().contains("hit"));
    assert_eq!(
        calls.get(),
        1,
        "the fill went on without its leader's client"
    );
}

/// In process, so that nothing buffers for the leader's client: it holds
/// its response and reads nothing while the followers are answered whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_leader_client_delays_no_follower() {
    const FOLLOWERS: usize = 3;
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let (app, _) = app(&calls, &waiting, &gate);
    let get_big = || {
        let request = http::Request::get("http://example.test/big").body(Body::empty());
        app.clone().oneshot(request.unwrap())
    };

    let leader = bounded("the leader's head", get_big()).await.unwrap();
    let before = waiting.get();
    let followers: Vec<_> = (0..FOLLOWERS).map(|_| tokio::spawn(get_big())).collect();
    wait_until("the followers to wait", || {
        waiting.get() == before + FOLLOWERS
    })
    .await;
    gate.release();
    for follower in followers {
        let response = bounded("a follower", follower).await.unwrap().unwrap();
        let body = bounded("its body", response.into_body().collect())
            .await
            .unwrap();
        assert!(body.to_bytes() == expected());
    }
    let body = bounded("the leader's body", leader.into_body().collect())
        .await
        .unwrap();
    assert!(
        body.to_bytes() == expected(),
        "the leader's body, byte for byte"
    );
    assert_eq!(calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_answers_its_head_at_once_and_is_never_buffered() {
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let (app, cache) = app(&calls, &waiting, &gate);
    let addr = serve_axum(app).await;

    let mut streams = Vec::new();
    for _ in 0..2 {
        let events = open(addr, "/events").await;
        assert_eq!(events.headers()["content-type"], "text/event-stream");
        let mut body = events.into_body();
        for n in 0..3 {
            let event = format!("data: tick {n}\n\n");
            assert_eq!(read_exactly(&mut body, event.len()).await, event.as_bytes());
        }
        streams.push(body);
    }
    assert_eq!(calls.get(), 2, "each client has its own stream");
    // Nothing of the streams is held: at most the key's hit-for-miss marker,
    // which weighs its key and bookkeeping alone.
    let stats = cache.stats();
    assert!(stats.entries <= 1 && stats.weight <= 512, "{stats:?}");
    assert_eq!(cache.in_flight(), 0);
}
