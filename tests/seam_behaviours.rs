//! Behaviours of one decision per request and per response, each through
//! the public API on tokio's paused clock: stale-if-error survives a failure
//! meant for its own client, answers that need revalidation are not handed
//! to waiters, the origin's `Age` stands, every unsafe method invalidates,
//! and each `Vary` variant of a URI collapses and is stored under a key of
//! its own.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{HeaderMap, HeaderName, Method, Request, StatusCode};
use http_body_util::BodyExt;
use shared_calls::{Outcome, SharedCallsLayer, default_key};
use tokio::sync::Barrier;
use tower::ServiceExt;

use support::{KeyFn, exact_ttl_layer};

/// The layer's TTL.
const TTL: Duration = Duration::from_secs(1);

/// What the handler answers: headers for a good answer, and for a failed one.
#[derive(Debug, Default)]
struct Origin {
    calls: AtomicUsize,
    failing: AtomicBool,
    good: Vec<(&'static str, &'static str)>,
    failed: Vec<(&'static str, &'static str)>,
    /// Answers in the request's `Accept-Language` rather than naming its
    /// method, with `Vary: Accept-Language`.
    varies_on_language: bool,
}

async fn handler(
    State(origin): State<Arc<Origin>>,
    method: Method,
    request_headers: HeaderMap,
) -> Response {
    let n = origin.calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, headers) = match origin.failing.load(Ordering::SeqCst) {
        true => (StatusCode::SERVICE_UNAVAILABLE, &origin.failed),
        false => (StatusCode::OK, &origin.good),
    };
    let tag = match origin.varies_on_language {
        true => request_headers
            .get("accept-language")
            .map_or("none", |v| v.to_str().unwrap())
            .to_owned(),
        false => method.to_string(),
    };
    let mut response = (status, format!("{tag} {n}")).into_response();
    if origin.varies_on_language {
        let vary = HeaderName::from_static("vary");
        response
            .headers_mut()
            .insert(vary, "accept-language".parse().unwrap());
    }
    for (name, value) in headers {
        let name = HeaderName::from_static(name);
        response.headers_mut().append(name, value.parse().unwrap());
    }
    response
}

fn app(origin: &Arc<Origin>, layer: SharedCallsLayer<KeyFn>) -> Router {
    Router::new()
        .route("/r", any(handler))
        .with_state(origin.clone())
        .layer(layer)
}

#[derive(Debug)]
struct Got {
    status: StatusCode,
    outcome: Option<Outcome>,
    age: Option<String>,
    body: String,
}

async fn send(app: &Router, method: Method) -> Got {
    send_to(app, method, "/r").await
}

async fn send_to(app: &Router, method: Method, path_and_query: &str) -> Got {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://seam.test{path_and_query}"));
    send_request(app, request).await
}

/// A request for `/r` accepting `language`.
async fn send_in(app: &Router, method: Method, language: &str) -> Got {
    let request = Request::builder()
        .method(method)
        .uri("http://seam.test/r")
        .header("accept-language", language);
    send_request(app, request).await
}

async fn send_request(app: &Router, request: http::request::Builder) -> Got {
    let request = request.body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Got {
        status: parts.status,
        outcome: parts.extensions.get::<Outcome>().copied(),
        age: parts
            .headers
            .get("age")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap(),
    }
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_holds_when_the_failing_5xx_is_for_its_own_client_only() {
    for failed in [
        ("cache-control", "no-store"),
        ("cache-control", "private"),
        ("set-cookie", "session=1"),
        ("vary", "accept-language"),
    ] {
        let origin = Arc::new(Origin {
            failed: vec![failed],
            ..Origin::default()
        });
        let app = app(
            &origin,
            exact_ttl_layer(TTL).stale_if_error(Duration::from_secs(60)),
        );
        assert_eq!(send(&app, Method::GET).await.outcome, Some(Outcome::Miss));
        tokio::time::advance(Duration::from_millis(1500)).await;
        origin.failing.store(true, Ordering::SeqCst);
        for _ in 0..2 {
            let got = send(&app, Method::GET).await;
            assert_eq!(got.status, StatusCode::OK, "{failed:?}: {got:?}");
            assert_eq!(got.outcome, Some(Outcome::StaleIfError), "{failed:?}");
            assert_eq!(got.body, "GET 0");
        }
        assert_eq!(origin.calls.load(Ordering::SeqCst), 3, "{failed:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn answers_that_need_revalidation_are_not_handed_to_waiters() {
    const N: usize = 4;
    for good in [
        ("cache-control", "no-cache"),
        ("cache-control", "max-age=0"),
        ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("expires", "soon"),
    ] {
        let origin = Arc::new(Origin {
            good: vec![good],
            ..Origin::default()
        });
        let app = app(&origin, exact_ttl_layer(TTL));
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move { send(&app, Method::GET).await })
            })
            .collect();
        let mut bodies = Vec::new();
        for task in tasks {
            let got = task.await.unwrap();
            assert_eq!(got.status, StatusCode::OK);
            assert_ne!(got.outcome, Some(Outcome::Collapsed), "{good:?}");
            bodies.push(got.body);
        }
        bodies.sort();
        bodies.dedup();
        assert_eq!(bodies.len(), N, "{good:?}: each its own answer");
        assert_eq!(origin.calls.load(Ordering::SeqCst), N, "{good:?}");
    }
}

/// Jitter spreads lifetimes so that keys loaded together do not expire
/// together, but never keeps an answer fresh longer than its origin said.
#[tokio::test(start_paused = true)]
async fn jitter_shortens_a_stated_lifetime_and_spreads_a_default_one_both_ways() {
    /// Of `KEYS` answers loaded together, how many are still fresh `after`.
    async fn fresh_after(stated: bool, after: Duration) -> usize {
        const KEYS: usize = 64;
        let origin = Arc::new(Origin {
            good: if stated {
                vec![("cache-control", "max-age=10")]
            } else {
                Vec::new()
            },
            ..Origin::default()
        });
        let layer = SharedCallsLayer::new(default_key as KeyFn)
            .ttl(Duration::from_secs(10))
            .jitter(0.5);
        let app = app(&origin, layer);
        let mut hits = 0;
        for round in [Duration::ZERO, after] {
            tokio::time::advance(round).await;
            let sends: Vec<_> = (0..KEYS)
                .map(|i| {
                    let app = app.clone();
                    tokio::spawn(
                        async move { send_to(&app, Method::GET, &format!("/r?{i}")).await },
                    )
                })
                .collect();
            hits = 0;
            for send in sends {
                hits += usize::from(send.await.unwrap().outcome == Some(Outcome::Hit));
            }
        }
        assert_eq!(origin.calls.load(Ordering::SeqCst), 2 * KEYS - hits);
        hits
    }
    // Lifetimes are spread over 5–10 s for `max-age=10`, 5–15 s by default.
    assert!(
        fresh_after(true, Duration::from_secs(7)).await < 64,
        "none shortened"
    );
    assert_eq!(
        fresh_after(true, Duration::from_millis(10_500)).await,
        0,
        "stretched"
    );
    assert!(
        fresh_after(false, Duration::from_secs(7)).await < 64,
        "none shortened"
    );
    assert!(
        fresh_after(false, Duration::from_millis(10_500)).await > 0,
        "none lengthened"
    );
}

#[tokio::test(start_paused = true)]
async fn the_origin_age_is_kept_on_a_miss_and_counted_on_hits() {
    let origin = Arc::new(Origin {
        good: vec![("cache-control", "max-age=100"), ("age", "30")],
        ..Origin::default()
    });
    let app = app(&origin, exact_ttl_layer(TTL));
    let miss = send(&app, Method::GET).await;
    assert_eq!(
        (miss.outcome, miss.age.as_deref()),
        (Some(Outcome::Miss), Some("30"))
    );
    tokio::time::advance(Duration::from_secs(5)).await;
    let hit = send(&app, Method::GET).await;
    assert_eq!(
        (hit.outcome, hit.age.as_deref()),
        (Some(Outcome::Hit), Some("35"))
    );
}

#[tokio::test(start_paused = true)]
async fn every_unsafe_or_unknown_method_invalidates_on_success() {
    let origin = Arc::new(Origin {
        good: vec![("cache-control", "max-age=100")],
        ..Origin::default()
    });
    let app = app(&origin, exact_ttl_layer(TTL));
    let safe = [Method::OPTIONS, Method::TRACE];
    let unsafe_methods = [
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::from_bytes(b"PURGE").unwrap(),
        Method::from_bytes(b"LINK").unwrap(),
    ];
    assert_eq!(send(&app, Method::GET).await.outcome, Some(Outcome::Miss));
    for method in safe {
        assert_eq!(send(&app, method.clone()).await.status, StatusCode::OK);
        let got = send(&app, Method::GET).await;
        assert_eq!(got.outcome, Some(Outcome::Hit), "after {method}");
    }
    for method in unsafe_methods {
        assert_eq!(send(&app, method.clone()).await.status, StatusCode::OK);
        let got = send(&app, Method::GET).await;
        assert_eq!(got.outcome, Some(Outcome::Miss), "after {method}");
    }
}

fn language(got: &Got) -> &str {
    got.body.split(' ').next().unwrap()
}

#[tokio::test(start_paused = true)]
async fn two_variants_requested_together_make_one_call_each_then_hit() {
    const N: usize = 8;
    let origin = Arc::new(Origin {
        varies_on_language: true,
        ..Origin::default()
    });
    let app = app(&origin, exact_ttl_layer(TTL));
    let start = Arc::new(Barrier::new(2 * N));
    let tasks: Vec<_> = ["en", "fr"]
        .into_iter()
        .flat_map(|lang| std::iter::repeat_n(lang, N))
        .map(|lang| {
            let (app, start) = (app.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                (lang, send_in(&app, Method::GET, lang).await)
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
        let got = send_in(&app, Method::GET, lang).await;
        assert_eq!(got.outcome, Some(Outcome::Hit), "{lang}: {got:?}");
        assert_eq!(language(&got), lang);
    }
    assert_eq!(origin.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn another_variant_during_a_stale_window_is_served_by_its_own_call() {
    let origin = Arc::new(Origin {
        varies_on_language: true,
        ..Origin::default()
    });
    let app = app(
        &origin,
        exact_ttl_layer(TTL).stale_while_revalidate(Duration::from_secs(60)),
    );
    assert_eq!(send_in(&app, Method::GET, "en").await.body, "en 0");
    tokio::time::advance(Duration::from_millis(1500)).await;
    let fr = send_in(&app, Method::GET, "fr").await;
    assert_eq!(fr.status, StatusCode::OK, "{fr:?}");
    assert_eq!(fr.body, "fr 1");
    assert_eq!(fr.outcome, Some(Outcome::Miss));
    let en = send_in(&app, Method::GET, "en").await;
    assert_eq!(
        (en.outcome, en.body.as_str()),
        (Some(Outcome::Stale), "en 0")
    );
    assert_eq!(
        send_in(&app, Method::GET, "fr").await.outcome,
        Some(Outcome::Hit)
    );
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_answers_only_from_the_same_variant() {
    let origin = Arc::new(Origin {
        varies_on_language: true,
        ..Origin::default()
    });
    let app = app(
        &origin,
        exact_ttl_layer(TTL).stale_if_error(Duration::from_secs(60)),
    );
    assert_eq!(send_in(&app, Method::GET, "en").await.body, "en 0");
    assert_eq!(send_in(&app, Method::GET, "fr").await.body, "fr 1");
    tokio::time::advance(Duration::from_millis(1500)).await;
    origin.failing.store(true, Ordering::SeqCst);
    for (lang, body) in [("fr", "fr 1"), ("en", "en 0")] {
        let got = send_in(&app, Method::GET, lang).await;
        assert_eq!(got.outcome, Some(Outcome::StaleIfError), "{lang}: {got:?}");
        assert_eq!((got.status, got.body.as_str()), (StatusCode::OK, body));
    }
    let de = send_in(&app, Method::GET, "de").await;
    assert_eq!(de.status, StatusCode::SERVICE_UNAVAILABLE, "{de:?}");
    assert_eq!(language(&de), "de");
    assert_eq!(origin.calls.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn an_unsafe_method_invalidates_every_variant() {
    let origin = Arc::new(Origin {
        varies_on_language: true,
        ..Origin::default()
    });
    let app = app(&origin, exact_ttl_layer(TTL).ttl(Duration::from_secs(60)));
    assert_eq!(send_in(&app, Method::GET, "en").await.body, "en 0");
    assert_eq!(send_in(&app, Method::GET, "fr").await.body, "fr 1");
    assert_eq!(
        send_in(&app, Method::GET, "fr").await.outcome,
        Some(Outcome::Hit)
    );
    assert_eq!(
        send_in(&app, Method::POST, "en").await.status,
        StatusCode::OK
    );
    for (lang, body) in [("fr", "fr 3"), ("en", "en 4")] {
        let got = send_in(&app, Method::GET, lang).await;
        assert_eq!(
            (got.outcome, got.body.as_str()),
            (Some(Outcome::Miss), body)
        );
    }
}
