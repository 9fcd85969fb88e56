//! `stats()` counts what users received: requests that waited for another
//! `Vary` variant's call and then made or shared a call of their own count
//! once, under the outcome their response carries.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::get;
use http::Request;
use http::header::{CACHE_CONTROL, VARY};
use shared_calls::{Outcome, SharedCallsLayer, default_key};
use tower::ServiceExt;

use support::{CountWaiting, Counter, Gate, bounded, wait_until};

/// Greets in the request's language, once the gate opens.
fn app(calls: &Counter, waiting: &Counter, gate: &Gate) -> (Router, shared_calls::HttpCache) {
    let (calls, gate) = (calls.clone(), gate.clone());
    let layer = SharedCallsLayer::new(default_key);
    let cache = layer.cache_handle();
    let greet = get(move |headers: HeaderMap| async move {
        calls.hit();
        gate.wait().await;
        let greeting = match headers.get("accept-language").map(|v| v.as_bytes()) {
            Some(b"fr") => "bonjour",
            _ => "hello",
        };
        (
            [(CACHE_CONTROL, "max-age=60"), (VARY, "accept-language")],
            greeting,
        )
            .into_response()
    });
    let router = Router::new()
        .route("/greeting", greet)
        .layer(layer)
        .layer(CountWaiting(waiting.clone()));
    (router, cache)
}

/// Sends a GET in `language` and returns the outcome its response carries,
/// once its body is read.
fn greet(app: &Router, language: &'static str) -> tokio::task::JoinHandle<Outcome> {
    let app = app.clone();
    tokio::spawn(async move {
        let request = Request::get("http://app.test/greeting")
            .header("accept-language", language)
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let outcome = *response.extensions().get::<Outcome>().unwrap();
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        outcome
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_turned_away_by_vary_count_once_under_what_they_received() {
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let (app, cache) = app(&calls, &waiting, &gate);

    // An English call holds the key; three French requests wait for it.
    let mut requests = vec![greet(&app, "en")];
    wait_until("the English call to start", || calls.get() == 1).await;
    requests.extend((0..3).map(|_| greet(&app, "fr")));
    wait_until("the French requests to wait", || waiting.get() == 4).await;
    gate.release();

    let mut received = Vec::new();
    for request in requests {
        received.push(bounded("a greeting", request).await.unwrap());
    }
    // The English answer does not serve French: they share one call of
    // their own (those that look after it stored its answer find a hit).
    assert_eq!(calls.get(), 2);
    let count = |wanted: Outcome| received.iter().filter(|&&got| got == wanted).count() as u64;
    assert_eq!(count(Outcome::Miss), 2, "{received:?}");
    let (hits, collapsed) = (count(Outcome::Hit), count(Outcome::Collapsed));
    assert_eq!(hits + collapsed, 2, "{received:?}");
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.collapsed, stats.passes),
        (hits, 2, collapsed, 0),
        "stats count what was received: {received:?}, {stats:?}"
    );

    // Each language is now a hit, counted once each.
    for language in ["en", "fr"] {
        assert_eq!(
            bounded("a hit", greet(&app, language)).await.unwrap(),
            Outcome::Hit
        );
    }
    let stats = cache.stats();
    assert_eq!(
        (stats.hits, stats.misses, stats.collapsed),
        (hits + 2, 2, collapsed),
        "{stats:?}"
    );
    assert_eq!(calls.get(), 2);
}
