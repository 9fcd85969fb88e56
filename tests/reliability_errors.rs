//! Backend errors: an error storm does not become a retry storm, stale
//! answers stand in for errors when allowed, and recovery is immediate.
//! On tokio's paused clock, so that every count is exact.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use shared_calls::{Outcome, SharedCallsLayer};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

use support::{KeyFn, exact_ttl_layer};

/// The layer's TTL.
const TTL: Duration = Duration::from_secs(1);

const KEYS: usize = 4;
const PER_KEY: usize = 50;
const BACKEND_TIME: Duration = Duration::from_millis(100);

/// A backend that answers `503` while `failing`, and the version it serves.
#[derive(Debug, Default)]
struct Backend {
    calls: AtomicUsize,
    failing: AtomicBool,
    version: AtomicUsize,
    /// A `Cache-Control` of its own for good answers.
    cache_control: Option<&'static str>,
}

impl Backend {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

async fn handler(State(backend): State<Arc<Backend>>, Path(key): Path<usize>) -> Response {
    backend.calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BACKEND_TIME).await;
    if backend.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("key={key} down")).into_response();
    }
    let body = format!("key={key} v{}", backend.version.load(Ordering::SeqCst));
    match backend.cache_control {
        Some(cc) => ([(http::header::CACHE_CONTROL, cc)], body).into_response(),
        None => body.into_response(),
    }
}

fn app(backend: &Arc<Backend>, layer: SharedCallsLayer<KeyFn>) -> Router {
    Router::new()
        .route("/k/{key}", get(handler))
        .with_state(backend.clone())
        .layer(layer)
}

fn request(key: usize) -> Request<Body> {
    Request::get(format!("http://errors.test/k/{key}"))
        .body(Body::empty())
        .unwrap()
}

#[derive(Debug)]
struct Got {
    key: usize,
    status: StatusCode,
    outcome: Outcome,
    cache_status: String,
    body: String,
}

async fn get_one(app: Router, key: usize) -> Got {
    let response = app.oneshot(request(key)).await.unwrap();
    let (parts, body) = response.into_parts();
    Got {
        key,
        status: parts.status,
        outcome: *parts.extensions.get::<Outcome>().unwrap(),
        cache_status: parts.headers["cache-status"].to_str().unwrap().to_owned(),
        body: String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap(),
    }
}

/// `PER_KEY` concurrent requests on each of `keys`.
async fn wave(app: &Router, keys: usize) -> Vec<Got> {
    let tasks: Vec<_> = (0..keys * PER_KEY)
        .map(|i| tokio::spawn(get_one(app.clone(), i % keys)))
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test(start_paused = true)]
async fn an_error_storm_costs_one_backend_call_per_key_per_flight() {
    let backend = Arc::new(Backend::default());
    let app = app(&backend, exact_ttl_layer(TTL));
    backend.fail(true);
    const WAVES: usize = 5;
    for round in 1..=WAVES {
        let answers = wave(&app, KEYS).await;
        // Nothing was stored: each wave is one new flight per key, and only one.
        assert_eq!(backend.calls(), round * KEYS, "wave {round}");
        for got in &answers {
            assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(got.body, format!("key={} down", got.key));
        }
        let leaders: Vec<_> = answers
            .iter()
            .filter(|got| got.cache_status == "shared-calls; fwd=miss")
            .collect();
        assert_eq!(leaders.len(), KEYS, "one call per key");
        assert!(
            answers
                .iter()
                .filter(|got| got.outcome == Outcome::Collapsed)
                .all(|got| got.cache_status == "shared-calls; fwd=miss; collapsed")
        );
        assert_eq!(
            answers
                .iter()
                .filter(|got| got.outcome == Outcome::Collapsed)
                .count(),
            KEYS * (PER_KEY - 1)
        );
    }
    println!(
        "error storm: {} requests in {WAVES} waves of {PER_KEY} per key on {KEYS} keys, {} backend calls",
        WAVES * KEYS * PER_KEY,
        backend.calls()
    );

    // The backend recovers: the very next request gets a fresh answer, stored.
    backend.fail(false);
    let calls = backend.calls();
    for key in 0..KEYS {
        let got = get_one(app.clone(), key).await;
        assert_eq!((got.status, got.outcome), (StatusCode::OK, Outcome::Miss));
        assert_eq!(got.body, format!("key={key} v0"));
        assert!(got.cache_status.contains("; stored; "), "{got:?}");
    }
    assert_eq!(backend.calls(), calls + KEYS);
    for got in wave(&app, KEYS).await {
        assert_eq!(got.outcome, Outcome::Hit);
        assert_eq!(got.body, format!("key={} v0", got.key));
    }
    assert_eq!(backend.calls(), calls + KEYS);
}

#[tokio::test(start_paused = true)]
async fn stale_if_error_answers_with_the_last_good_body_until_recovery() {
    let backend = Arc::new(Backend::default());
    let app = app(
        &backend,
        exact_ttl_layer(TTL).stale_if_error(Duration::from_secs(60)),
    );
    let got = get_one(app.clone(), 0).await;
    assert_eq!(
        (got.outcome, got.body.as_str()),
        (Outcome::Miss, "key=0 v0")
    );

    // Expired, and the backend fails: one call per flight, every waiter
    // gets the old good body, marked as such.
    tokio::time::advance(Duration::from_millis(1500)).await;
    backend.fail(true);
    backend.version.store(1, Ordering::SeqCst);
    for round in 1..=3 {
        let answers = wave(&app, 1).await;
        assert_eq!(backend.calls(), 1 + round);
        for got in answers {
            assert_eq!(got.status, StatusCode::OK);
            assert_eq!(got.body, "key=0 v0");
            assert_eq!(got.outcome, Outcome::StaleIfError);
            assert_eq!(
                got.cache_status,
                "shared-calls; fwd=stale; detail=stale-if-error"
            );
        }
    }

    // Recovery is immediate: the next request gets the new body, stored.
    backend.fail(false);
    let got = get_one(app.clone(), 0).await;
    assert_eq!(
        (got.outcome, got.body.as_str()),
        (Outcome::Miss, "key=0 v1")
    );
    assert!(got.cache_status.contains("; stored; "), "{got:?}");
    let got = get_one(app.clone(), 0).await;
    assert_eq!((got.outcome, got.body.as_str()), (Outcome::Hit, "key=0 v1"));
    assert_eq!(backend.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn the_response_own_stale_if_error_is_honoured_and_its_window_ends() {
    let backend = Arc::new(Backend {
        cache_control: Some("max-age=1, stale-if-error=5"),
        ..Backend::default()
    });
    let app = app(&backend, exact_ttl_layer(TTL));
    assert_eq!(get_one(app.clone(), 0).await.outcome, Outcome::Miss);
    backend.fail(true);
    tokio::time::advance(Duration::from_secs(2)).await;
    let got = get_one(app.clone(), 0).await;
    assert_eq!(
        (got.outcome, got.body.as_str()),
        (Outcome::StaleIfError, "key=0 v0")
    );
    // Past the window, the error goes through: never a stale answer forever.
    tokio::time::advance(Duration::from_secs(5)).await;
    let got = get_one(app.clone(), 0).await;
    assert_eq!(got.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(got.outcome, Outcome::Miss);
}

#[tokio::test(start_paused = true)]
async fn an_inner_error_goes_to_its_caller_and_a_502_to_the_others_once_per_flight() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let inner = service_fn(move |_: Request<Body>| {
        let calls = counted.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(BACKEND_TIME).await;
            Err::<Response, _>(std::io::Error::other("connection refused"))
        }
    });
    let service = ServiceBuilder::new()
        .layer(exact_ttl_layer(TTL))
        .service(inner);
    for round in 1..=3 {
        let tasks: Vec<_> = (0..PER_KEY)
            .map(|_| {
                let mut service = service.clone();
                tokio::spawn(async move {
                    let service = service.ready().await.unwrap();
                    service.call(request(0)).await
                })
            })
            .collect();
        let (mut errors, mut bad_gateways) = (0, 0);
        for task in tasks {
            match task.await.unwrap() {
                Err(error) => {
                    assert_eq!(error.to_string(), "connection refused");
                    errors += 1;
                }
                Ok(response) => {
                    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
                    assert_eq!(
                        response.headers()["cache-status"],
                        "shared-calls; fwd=miss; collapsed; detail=upstream-error"
                    );
                    bad_gateways += 1;
                }
            }
        }
        assert_eq!((errors, bad_gateways), (1, PER_KEY - 1));
        assert_eq!(calls.load(Ordering::SeqCst), round, "one call per flight");
    }
}
