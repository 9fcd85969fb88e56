//! What a layer on a whole axum `Router` stores: by default, answers that
//! set no freshness for the layer's `ttl` (a health page too) and `404`s
//! for the shorter negative TTL; with `explicit_freshness_only`, only the
//! answers that say how long they stay fresh.

mod support;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use http::header::CACHE_CONTROL;
use http::{Request, StatusCode};
use shared_calls::http_policy::HttpKey;
use shared_calls::http_policy::freshness::Rules;
use shared_calls::{Outcome, SharedCallsLayer, default_key};
use tower::ServiceExt;

use support::Counter;

/// The layer with the default key, as a type a test can name.
type Layer = SharedCallsLayer<fn(&Request<Body>) -> Option<HttpKey>>;

fn layer() -> Layer {
    SharedCallsLayer::new(default_key::<Body>)
}

#[derive(Clone, Debug, Default)]
struct Calls {
    health: Counter,
    products: Counter,
    missing: Counter,
}

async fn health(State(calls): State<Calls>) -> String {
    format!("ok #{}", calls.health.hit())
}

async fn product(State(calls): State<Calls>) -> impl IntoResponse {
    calls.products.hit();
    ([(CACHE_CONTROL, "max-age=60")], "a product")
}

async fn not_found(State(calls): State<Calls>) -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        format!("no such page #{}", calls.missing.hit()),
    )
}

/// The whole `Router` behind one layer.
fn app(layer: Layer) -> (Router, Calls) {
    let calls = Calls::default();
    let router = Router::new()
        .route("/health", get(health))
        .route("/products/{id}", get(product))
        .fallback(not_found)
        .with_state(calls.clone())
        .layer(layer);
    (router, calls)
}

/// Sends a GET and reads the whole answer: status, outcome, `Cache-Status`, body.
async fn get_page(app: &Router, path: &str) -> (StatusCode, Outcome, String, String) {
    let request = Request::get(format!("http://app.test{path}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let outcome = *response.extensions().get::<Outcome>().unwrap();
    let cache_status = response.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        outcome,
        cache_status,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// The `ttl=` of a `Cache-Status`.
fn ttl_of(cache_status: &str) -> u64 {
    let ttl = cache_status
        .split("; ")
        .find_map(|part| part.strip_prefix("ttl="));
    ttl.expect("a stored answer says its ttl").parse().unwrap()
}

#[tokio::test(start_paused = true)]
async fn by_default_a_whole_router_stores_the_health_page_and_404s_briefly() {
    let (app, calls) = app(layer().ttl(Duration::from_secs(60)));

    // The health page sets no freshness: kept for the layer's ttl.
    assert_eq!(get_page(&app, "/health").await.3, "ok #1");
    let (_, outcome, _, body) = get_page(&app, "/health").await;
    assert_eq!((outcome, body.as_str()), (Outcome::Hit, "ok #1"));

    // A 404 is kept for the negative TTL, 10 s, not 60.
    let (status, outcome, cache_status, _) = get_page(&app, "/nowhere").await;
    assert_eq!((status, outcome), (StatusCode::NOT_FOUND, Outcome::Miss));
    assert!((9..=11).contains(&ttl_of(&cache_status)), "{cache_status}");
    assert_eq!(get_page(&app, "/nowhere").await.1, Outcome::Hit);
    assert_eq!(calls.missing.get(), 1);

    tokio::time::advance(Duration::from_secs(12)).await;
    let (status, outcome, _, body) = get_page(&app, "/nowhere").await;
    assert_eq!((status, outcome), (StatusCode::NOT_FOUND, Outcome::Miss));
    assert_eq!(body, "no such page #2");
    assert_eq!(
        get_page(&app, "/health").await.1,
        Outcome::Hit,
        "still within 60 s"
    );
    assert_eq!((calls.health.get(), calls.missing.get()), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn a_404_is_never_kept_longer_than_a_shorter_layer_ttl() {
    let (app, calls) = app(layer().ttl(Duration::from_secs(2)));

    let (_, _, cache_status, _) = get_page(&app, "/nowhere").await;
    assert!(ttl_of(&cache_status) <= 2, "{cache_status}");
    tokio::time::advance(Duration::from_secs(3)).await;
    assert_eq!(get_page(&app, "/nowhere").await.1, Outcome::Miss);
    assert_eq!(calls.missing.get(), 2);
}

#[tokio::test(start_paused = true)]
async fn with_explicit_freshness_only_a_whole_router_stores_only_what_says_max_age() {
    let explicit_only = |rules: Rules| rules.explicit_freshness_only(true);
    let (app, calls) = app(layer().map_policy(|http| http.map_rules(explicit_only)));

    for _ in 0..3 {
        assert_eq!(get_page(&app, "/products/7").await.3, "a product");
        get_page(&app, "/health").await;
        let (status, outcome, _, _) = get_page(&app, "/nowhere").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!outcome.is_from_cache(), "a 404 is not stored");
    }
    let (_, outcome, _, body) = get_page(&app, "/health").await;
    assert_eq!((outcome, body.as_str()), (Outcome::Pass, "ok #4"));

    assert_eq!(calls.products.get(), 1, "max-age=60: stored");
    assert_eq!(calls.health.get(), 4, "no freshness: never stored");
    assert_eq!(calls.missing.get(), 3, "no freshness: never stored");
}
