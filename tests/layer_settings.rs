//! The layer's cache settings reach HTTP responses that do not set their
//! own lifetimes; responses that do set them win.

mod support;

use std::time::Duration;

use axum::{Router, http::header, response::IntoResponse, routing::get};
use shared_calls::{Outcome, SharedCallsLayer};

/// The layer's TTL.
const TTL: Duration = Duration::from_millis(50);
use tower::ServiceExt;

use support::{KeyFn, exact_ttl_layer};

fn request(path: &str) -> http::Request<axum::body::Body> {
    http::Request::get(format!("http://example.test{path}"))
        .body(axum::body::Body::empty())
        .unwrap()
}

async fn outcome(app: &Router, path: &str) -> Outcome {
    let response = app.clone().oneshot(request(path)).await.unwrap();
    *response.extensions().get::<Outcome>().unwrap()
}

fn app(layer: SharedCallsLayer<KeyFn>) -> Router {
    Router::new()
        .route("/plain", get(|| async { "plain" }))
        .route(
            "/max-age",
            get(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "explicit").into_response() }),
        )
        .route(
            "/must-revalidate",
            get(|| async {
                ([(header::CACHE_CONTROL, "must-revalidate")], "no stale").into_response()
            }),
        )
        .layer(layer)
}

#[tokio::test(start_paused = true)]
async fn the_layer_ttl_applies_to_responses_without_freshness() {
    let app = app(exact_ttl_layer(TTL));
    assert_eq!(outcome(&app, "/plain").await, Outcome::Miss);
    assert_eq!(outcome(&app, "/plain").await, Outcome::Hit);
    tokio::time::advance(Duration::from_millis(60)).await;
    assert_eq!(outcome(&app, "/plain").await, Outcome::Miss);
}

#[tokio::test(start_paused = true)]
async fn explicit_freshness_wins_over_the_layer_ttl() {
    let app = app(exact_ttl_layer(TTL));
    assert_eq!(outcome(&app, "/max-age").await, Outcome::Miss);
    tokio::time::advance(Duration::from_millis(60)).await;
    assert_eq!(outcome(&app, "/max-age").await, Outcome::Hit);
}

#[tokio::test(start_paused = true)]
async fn the_layer_stale_window_applies_unless_the_response_forbids_it() {
    let app = app(exact_ttl_layer(TTL).stale_while_revalidate(Duration::from_secs(5)));
    assert_eq!(outcome(&app, "/plain").await, Outcome::Miss);
    assert_eq!(outcome(&app, "/must-revalidate").await, Outcome::Miss);
    tokio::time::advance(Duration::from_millis(60)).await;
    assert_eq!(outcome(&app, "/plain").await, Outcome::Stale);
    assert_eq!(outcome(&app, "/must-revalidate").await, Outcome::Miss);
}
