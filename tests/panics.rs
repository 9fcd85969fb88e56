//! A panicking axum handler behind the layer: the request that led the call
//! and every request collapsed onto it get a `500` (`detail=panicked`), none
//! hangs, and the key works again at once.

mod support;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use shared_calls::{Outcome, SharedCallsLayer, default_key};

use support::{CountWaiting, Counter, Gate, assert_hit, burst, fetch, serve_axum};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_fails_every_waiter_with_500_and_frees_the_key() {
    const N: usize = 10;
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let (handler_calls, handler_gate) = (calls.clone(), gate.clone());
    let app = Router::new()
        .route(
            "/fragile",
            get(move || {
                let (calls, gate) = (handler_calls.clone(), handler_gate.clone());
                async move {
                    let n = calls.hit();
                    gate.wait().await;
                    if n == 1 {
                        panic!("the first call panics");
                    }
                    "recovered"
                }
            }),
        )
        .layer(SharedCallsLayer::new(default_key).jitter(0.0))
        .layer(CountWaiting(waiting.clone()))
        .layer(axum::middleware::map_response(
            |response: axum::response::Response| async move {
                // The outcome extension is there on synthesized answers too.
                let outcome = response.extensions().get::<Outcome>().copied();
                let mut response = response;
                let tag = outcome.map_or("missing", Outcome::as_str);
                response
                    .headers_mut()
                    .insert("x-outcome", http::HeaderValue::from_static(tag));
                response
            },
        ));
    let addr = serve_axum(app).await;

    let answers = burst(addr, "/fragile", &[], N, &calls, &waiting, &gate).await;
    assert_eq!(calls.get(), 1);
    for got in &answers {
        assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR, "{got:?}");
        assert_eq!(
            got.cache_status(),
            "shared-calls; fwd=miss; detail=panicked"
        );
        assert_eq!(got.header("x-outcome"), Some("miss"));
        assert_eq!(got.text(), "Internal Server Error");
    }

    // The key is free at once, and nothing was stored.
    let next = fetch(addr, "/fragile").await;
    assert_eq!((next.status, next.text()), (StatusCode::OK, "recovered"));
    assert_eq!(
        next.cache_status_shape().0,
        "shared-calls; fwd=miss; stored; ttl=N"
    );
    assert_hit(&fetch(addr, "/fragile").await, "recovered");
    assert_eq!(calls.get(), 2);
}
