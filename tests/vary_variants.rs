//! The variants of a URI whose answers vary (`Vary: Accept-Language`), each
//! collapsed and stored under a key of its own, through the public API on
//! tokio's paused clock: one backend call per variant, never another
//! variant's answer, never a made-up error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use shared_calls::http::HttpKey;
use shared_calls::{Outcome, SharedCallsLayer, default_key};
use tokio::sync::Barrier;
use tower::ServiceExt;

type KeyFn = fn(&Request<Body>) -> Option<HttpKey>;

/// An origin that answers in the request's language, varying on it.
#[derive(Debug, Default)]
struct Origin {
    calls: AtomicUsize,
    failing: AtomicBool,
}

async fn handler(State(origin): State<Arc<Origin>>, headers: HeaderMap) -> Response {
    let n = origin.calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let language = headers
        .get("accept-language")
        .map_or("none", |v| v.to_str().unwrap())
        .to_owned();
    let status = match origin.failing.load(Ordering::SeqCst) {
        true => StatusCode::SERVICE_UNAVAILABLE,
        false => StatusCode::OK,
    };
    let mut response = (status, format!("{language} {n}")).into_response();
    response
        .headers_mut()
        .insert("vary", "accept-language".parse().unwrap());
    response
}

fn app(origin: &Arc<Origin>, layer: SharedCallsLayer<KeyFn>) -> Router {
    Router::new()
        .route("/r", any(handler))
        .with_state(origin.clone())
        .layer(layer)
}

fn layer() -> SharedCallsLayer<KeyFn> {
    SharedCallsLayer::new(default_key as KeyFn)
        .ttl(Duration::from_secs(1))
        .jitter(0.0)
}

#[derive(Debug)]
struct Got {
    status: StatusCode,
    outcome: Option<Outcome>,
    body: String,
}

async fn send(app: &Router, method: Method, language: &str) -> Got {
    let request = Request::builder()
        .method(method)
        .uri("http://vary.test/r")
        .header("accept-language", language)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Got {
        status: parts.status,
        outcome: parts.extensions.get::<Outcome>().copied(),
        body: String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap(),
    }
}

fn language(got: &Got) -> &str {
    got.body.split(' ').next().unwrap()
}

#[tokio::test(start_paused = true)]
async fn two_variants_requested_together_make_one_call_each_then_hit() {
    const N: usize = 8;
    let origin = Arc::new(Origin::default());
    let app = app(&origin, layer());
    let start = Arc::new(Barrier::new(2 * N));
    let tasks: Vec<_> = ["en", "fr"]
        .into_iter()
        .flat_map(|lang| std::iter::repeat_n(lang, N))
        .map(|lang| {
            let (app, start) = (app.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                (lang, send(&app, Method::GET, lang).await)
            })
        })
        .collect();
    for task in tasks {
        let (lang, got) = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.status, StatusCode::OK, "{lang}: {got:?}");
        assert_eq!(language(&got), lang, "{got:?}");
    }
    assert_eq!(
        origin.calls.load(Ordering::SeqCst),
        2,
        "one call per variant"
    );
    for lang in ["en", "fr"] {
        let got = send(&app, Method::GET, lang).await;
        assert_eq!(got.outcome, Some(Outcome::Hit), "{lang}: {got:?}");
        assert_eq!(language(&got), lang);
    }
    assert_eq!(origin.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn another_variant_during_a_stale_window_is_served_by_its_own_call() {
    let origin = Arc::new(Origin::default());
    let app = app(
        &origin,
        layer().stale_while_revalidate(Duration::from_secs(60)),
    );
    assert_eq!(send(&app, Method::GET, "en").await.body, "en 0");
    tokio::time::advance(Duration::from_millis(1500)).await;
    let fr = send(&app, Method::GET, "fr").await;
    assert_eq!(fr.status, StatusCode::OK, "{fr:?}");
    assert_eq!(fr.body, "fr 1");
    assert_eq!(fr.outcome, Some(Outcome::Miss));
    let en = send(&app, Method::GET, "en").await;
    assert_eq!(
        (en.outcome, en.body.as_str()),
        (Some(Outcome::Stale), "en 0")
    );
    assert_eq!(
        send(&app, Method::GET, "fr").await.outcome,
        Some(Outcome::Hit)
    );
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_answers_only_from_the_same_variant() {
    let origin = Arc::new(Origin::default());
    let app = app(&origin, layer().stale_if_error(Duration::from_secs(60)));
    assert_eq!(send(&app, Method::GET, "en").await.body, "en 0");
    assert_eq!(send(&app, Method::GET, "fr").await.body, "fr 1");
    tokio::time::advance(Duration::from_millis(1500)).await;
    origin.failing.store(true, Ordering::SeqCst);
    for (lang, body) in [("fr", "fr 1"), ("en", "en 0")] {
        let got = send(&app, Method::GET, lang).await;
        assert_eq!(got.outcome, Some(Outcome::StaleIfError), "{lang}: {got:?}");
        assert_eq!((got.status, got.body.as_str()), (StatusCode::OK, body));
    }
    let de = send(&app, Method::GET, "de").await;
    assert_eq!(de.status, StatusCode::SERVICE_UNAVAILABLE, "{de:?}");
    assert_eq!(language(&de), "de");
    assert_eq!(origin.calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn an_unsafe_method_invalidates_every_variant() {
    let origin = Arc::new(Origin::default());
    let app = app(&origin, layer().ttl(Duration::from_secs(60)));
    assert_eq!(send(&app, Method::GET, "en").await.body, "en 0");
    assert_eq!(send(&app, Method::GET, "fr").await.body, "fr 1");
    assert_eq!(
        send(&app, Method::GET, "fr").await.outcome,
        Some(Outcome::Hit)
    );
    assert_eq!(send(&app, Method::POST, "en").await.status, StatusCode::OK);
    for (lang, body) in [("fr", "fr 3"), ("en", "en 4")] {
        let got = send(&app, Method::GET, lang).await;
        assert_eq!(
            (got.outcome, got.body.as_str()),
            (Some(Outcome::Miss), body)
        );
    }
}
