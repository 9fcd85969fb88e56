//! A service that tells users apart by a header of its own: keyed with
//! `KeyBuilder::header`, one user's answer never reaches another.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use http::header::CACHE_CONTROL;
use http::{HeaderMap, Request};
use http_body_util::BodyExt;
use shared_calls::http_policy::KeyBuilder;
use shared_calls::{Outcome, SharedCallsLayer};
use tower::ServiceExt;

/// Answers "feed of <user> #<call>", shareable for a minute.
async fn feed(State(calls): State<Arc<AtomicUsize>>, headers: HeaderMap) -> impl IntoResponse {
    let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
    let user = headers
        .get("x-user-id")
        .map_or("nobody", |user| user.to_str().unwrap());
    (
        [(CACHE_CONTROL, "public, max-age=60")],
        format!("feed of {user} #{call}"),
    )
}

async fn get_feed(app: &Router, user: Option<&str>) -> (Outcome, String) {
    let mut request = Request::get("/feed?utm_source=mail").header("host", "app.test");
    if let Some(user) = user {
        request = request.header("x-user-id", user);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let outcome = *response.extensions().get::<Outcome>().unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (outcome, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn a_custom_identity_header_never_crosses_users_with_the_key_builder() {
    let calls = Arc::new(AtomicUsize::new(0));
    let key = KeyBuilder::new()
        .header("x-user-id")
        .drop_query_param("utm_source");
    let app = Router::new()
        .route("/feed", get(feed))
        .with_state(calls.clone())
        .layer(SharedCallsLayer::new(move |request: &Request<Body>| {
            key.key(request)
        }));

    let users = [Some("alice"), Some("bob"), Some(""), None];
    for (n, user) in users.iter().enumerate() {
        let expected = format!("feed of {} #{}", user.unwrap_or("nobody"), n + 1);
        assert_eq!(get_feed(&app, *user).await, (Outcome::Miss, expected));
    }
    for (n, user) in users.iter().enumerate() {
        let expected = format!("feed of {} #{}", user.unwrap_or("nobody"), n + 1);
        assert_eq!(
            get_feed(&app, *user).await,
            (Outcome::Hit, expected),
            "each user's own answer"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), users.len());
}
