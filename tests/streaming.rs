//! A streamed response over `max_body_size`, behind the layer in axum: the
//! leader's client receives it whole, nothing is stored, and the requests
//! that waited for it call the handler on their own.

mod support;

use std::convert::Infallible;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use shared_calls::{SharedCallsLayer, default_key};

use support::{CountWaiting, Counter, Gate, Got, burst, fetch, serve_axum};

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 8;
const LIMIT: usize = 128 * 1024;

/// Chunk `i` is filled with the byte `i + 1`, so that a lost, repeated or
/// reordered chunk shows.
fn expected() -> Vec<u8> {
    (0..CHUNKS).flat_map(|i| vec![i as u8 + 1; CHUNK]).collect()
}

/// A handler that counts, waits at `gate`, and streams the chunks one by
/// one, yielding to the runtime between them.
fn app(calls: &Counter, waiting: &Counter, gate: &Gate) -> Router {
    let (calls, gate) = (calls.clone(), gate.clone());
    Router::new()
        .route(
            "/big",
            get(move || {
                let (calls, gate) = (calls.clone(), gate.clone());
                async move {
                    calls.hit();
                    gate.wait().await;
                    let chunks = futures::stream::unfold(0, |i| async move {
                        if i == CHUNKS {
                            return None;
                        }
                        tokio::task::yield_now().await;
                        let chunk = Bytes::from(vec![i as u8 + 1; CHUNK]);
                        Some((Ok::<_, Infallible>(chunk), i + 1))
                    });
                    Body::from_stream(chunks)
                }
            }),
        )
        .layer(
            SharedCallsLayer::new(default_key)
                .jitter(0.0)
                .map_policy(|policy| policy.max_body_size(LIMIT)),
        )
        .layer(CountWaiting(waiting.clone()))
}

fn assert_whole(got: &Got) {
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body.len(), CHUNK * CHUNKS);
    assert!(got.body == expected(), "the body arrived byte for byte");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_the_leader_gets_it_whole_and_nothing_is_stored() {
    let (calls, waiting) = (Counter::default(), Counter::default());
    let addr = serve_axum(app(&calls, &waiting, &Gate::open())).await;

    let first = fetch(addr, "/big").await;
    assert_whole(&first);
    assert_eq!(first.cache_status(), "shared-calls; fwd=miss");
    assert_eq!(calls.get(), 1);

    // Not stored: the next request calls the handler, without queueing
    // behind anyone (the key is remembered as hit-for-miss).
    let second = fetch(addr, "/big").await;
    assert_whole(&second);
    assert_eq!(
        second.cache_status(),
        "shared-calls; fwd=miss; detail=hit-for-miss"
    );
    assert_eq!(calls.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_waiting_requests_call_on_their_own() {
    const N: usize = 4;
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let addr = serve_axum(app(&calls, &waiting, &gate)).await;

    let answers = burst(addr, "/big", &[], N, &calls, &waiting, &gate).await;
    for got in &answers {
        assert_whole(got);
        assert_eq!(got.cache_status(), "shared-calls; fwd=miss");
    }
    assert_eq!(calls.get(), N, "one call per request");
}
