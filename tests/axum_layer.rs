//! `SharedCallsLayer` in a real axum 0.8 server on loopback: `Router::layer`
//! and `Router::route_layer`, exact `Cache-Status` headers, the `Outcome`
//! extension, `X-Cache-Status`, extractors, `HEAD`, and unsafe methods.

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Path;
use axum::middleware::map_response;
use axum::response::Response;
use axum::routing::{MethodRouter, any, get};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use shared_calls::{Outcome, SharedCallsLayer, default_key};

use support::{
    CountWaiting, Counter, Gate, Got, assert_hit, assert_one_stored_rest_collapsed, burst, fetch,
    request, send, serve_axum,
};

const BURST: usize = 50;

/// An outer layer that reads the `Outcome` extension the shared-calls layer
/// put on the response and reports it as `x-outcome`.
async fn tag_outcome(mut response: Response) -> Response {
    let outcome = match response.extensions().get::<Outcome>() {
        Some(outcome) => HeaderValue::from_static(outcome.as_str()),
        None => HeaderValue::from_static("missing"),
    };
    response.headers_mut().insert("x-outcome", outcome);
    response
}

/// A GET handler that counts its calls and waits at `gate`.
fn gated(calls: &Counter, gate: &Gate, body: &'static str) -> MethodRouter {
    let (calls, gate) = (calls.clone(), gate.clone());
    get(move || {
        let (calls, gate) = (calls.clone(), gate.clone());
        async move {
            calls.hit();
            gate.wait().await;
            body
        }
    })
}

fn assert_outcomes(answers: &[Got]) {
    let misses = answers
        .iter()
        .filter(|got| got.header("x-outcome") == Some("miss"))
        .count();
    let collapsed = answers
        .iter()
        .filter(|got| got.header("x-outcome") == Some("collapsed"))
        .count();
    assert_eq!((misses, collapsed), (1, answers.len() - 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_layer_collapses_a_burst_onto_one_handler_call() {
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let app = Router::new()
        .route("/hot", gated(&calls, &gate, "hot answer"))
        .layer(SharedCallsLayer::new(default_key).jitter(0.0))
        .layer(CountWaiting(waiting.clone()))
        .layer(map_response(tag_outcome));
    let addr = serve_axum(app).await;

    let answers = burst(addr, "/hot", &[], BURST, &calls, &waiting, &gate).await;
    assert_eq!(calls.get(), 1);
    assert_one_stored_rest_collapsed(&answers, "hot answer");
    assert_outcomes(&answers);

    let hit = fetch(addr, "/hot").await;
    assert_hit(&hit, "hot answer");
    assert_eq!(hit.header("x-outcome"), Some("hit"));
    assert_eq!(hit.header("x-cache-status"), None, "off by default");
    assert_eq!(calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_layer_collapses_a_burst_onto_one_handler_call() {
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let app = Router::new()
        .route("/hot", gated(&calls, &gate, "route answer"))
        .route_layer(SharedCallsLayer::new(default_key).jitter(0.0))
        .route_layer(CountWaiting(waiting.clone()))
        .layer(map_response(tag_outcome));
    let addr = serve_axum(app).await;

    let answers = burst(addr, "/hot", &[], BURST, &calls, &waiting, &gate).await;
    assert_eq!(calls.get(), 1);
    assert_one_stored_rest_collapsed(&answers, "route answer");
    assert_outcomes(&answers);

    let hit = fetch(addr, "/hot").await;
    assert_hit(&hit, "route answer");
    assert_eq!(hit.header("x-outcome"), Some("hit"));
    assert_eq!(calls.get(), 1);

    // route_layer leaves unmatched paths alone: axum's own 404, untouched.
    let missing = fetch(addr, "/nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("cache-status"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_cache_status_when_enabled() {
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let posts = Counter::default();
    let post_calls = posts.clone();
    let app = Router::new()
        .route(
            "/hot",
            gated(&calls, &gate, "x answer").post(move || {
                post_calls.hit();
                async { "posted" }
            }),
        )
        .layer(
            SharedCallsLayer::new(default_key)
                .jitter(0.0)
                .map_policy(|policy| policy.x_cache_status(true)),
        )
        .layer(CountWaiting(waiting.clone()));
    let addr = serve_axum(app).await;

    let answers = burst(addr, "/hot", &[], BURST, &calls, &waiting, &gate).await;
    assert_one_stored_rest_collapsed(&answers, "x answer");
    let words: Vec<_> = answers
        .iter()
        .map(|got| got.header("x-cache-status").unwrap())
        .collect();
    assert_eq!(
        words.iter().filter(|w| **w == "MISS").count(),
        1,
        "{words:?}"
    );
    assert_eq!(
        words.iter().filter(|w| **w == "HIT").count(),
        BURST - 1,
        "{words:?}"
    );

    let hit = fetch(addr, "/hot").await;
    assert_hit(&hit, "x answer");
    assert_eq!(hit.header("x-cache-status"), Some("HIT"));

    let post = send(addr, request(Method::POST, "/hot", &[])).await;
    assert_eq!(post.text(), "posted");
    assert_eq!(post.header("x-cache-status"), Some("BYPASS"));
    assert_eq!(
        post.cache_status(),
        "shared-calls; fwd=bypass; detail=method"
    );
    assert_eq!((calls.get(), posts.get()), (1, 1));
}

/// A router with a `Path` extractor behind the layer, applied with
/// `Router::layer` or `Router::route_layer`.
fn users(calls: &Counter, route_layer: bool) -> Router {
    let calls = calls.clone();
    let router = Router::new().route(
        "/users/{id}",
        get(move |Path(id): Path<u32>| {
            calls.hit();
            async move { format!("user {id}") }
        }),
    );
    let layer = SharedCallsLayer::new(default_key).jitter(0.0);
    if route_layer {
        router.route_layer(layer)
    } else {
        router.layer(layer)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_extractor_works_behind_the_layer() {
    for route_layer in [false, true] {
        let calls = Counter::default();
        let addr = serve_axum(users(&calls, route_layer)).await;

        let seven = fetch(addr, "/users/7").await;
        assert_eq!((seven.status, seven.text()), (StatusCode::OK, "user 7"));
        assert_eq!(
            seven.cache_status_shape().0,
            "shared-calls; fwd=miss; stored; ttl=N"
        );
        let eight = fetch(addr, "/users/8").await;
        assert_eq!((eight.status, eight.text()), (StatusCode::OK, "user 8"));
        assert_eq!(calls.get(), 2);

        assert_hit(&fetch(addr, "/users/7").await, "user 7");
        assert_hit(&fetch(addr, "/users/8").await, "user 8");
        assert_eq!(calls.get(), 2, "route_layer: {route_layer}");

        // A failed extraction is axum's own 400, shared like any answer.
        let bad = fetch(addr, "/users/seven").await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(calls.get(), 2);
    }
}

/// A GET handler that records the methods it sees.
fn recording(methods: &Arc<Mutex<Vec<Method>>>, body: &'static str) -> MethodRouter {
    let methods = methods.clone();
    get(move |method: Method| {
        methods.lock().unwrap().push(method);
        async move { ([("content-type", "text/plain")], body) }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_answered_from_the_stored_get() {
    let methods = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/page", recording(&methods, "the page"))
        .layer(SharedCallsLayer::new(default_key).jitter(0.0));
    let addr = serve_axum(app).await;

    let first = fetch(addr, "/page").await;
    assert_eq!(first.text(), "the page");
    let head = send(addr, request(Method::HEAD, "/page", &[])).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.cache_status_shape().0, "shared-calls; hit; ttl=N");
    assert_eq!(head.header("content-type"), Some("text/plain"));
    assert_eq!(
        head.header("content-length"),
        Some("8"),
        "{:?}",
        head.headers
    );
    assert_eq!(*methods.lock().unwrap(), [Method::GET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_miss_fetches_the_get_for_everyone() {
    let methods = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/page", recording(&methods, "the page"))
        .layer(SharedCallsLayer::new(default_key).jitter(0.0));
    let addr = serve_axum(app).await;

    let head = send(addr, request(Method::HEAD, "/page", &[])).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(
        head.cache_status_shape().0,
        "shared-calls; fwd=miss; stored; ttl=N"
    );
    assert_eq!(head.header("content-length"), Some("8"), "the GET's length");
    assert_eq!(
        *methods.lock().unwrap(),
        [Method::GET],
        "the handler saw a GET"
    );

    let body = fetch(addr, "/page").await;
    assert_hit(&body, "the page");
    assert_eq!(methods.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_post_invalidates_the_stored_get() {
    let gets = Counter::default();
    let posts = Counter::default();
    let (get_calls, post_calls) = (gets.clone(), posts.clone());
    let app = Router::new()
        .route(
            "/item",
            get(move || {
                let n = get_calls.hit();
                async move { format!("version {n}") }
            })
            .post(move |headers: HeaderMap| {
                post_calls.hit();
                async move {
                    match headers.contains_key("x-fail") {
                        true => (StatusCode::BAD_REQUEST, "rejected"),
                        false => (StatusCode::OK, "updated"),
                    }
                }
            }),
        )
        .layer(SharedCallsLayer::new(default_key).jitter(0.0));
    let addr = serve_axum(app).await;

    assert_eq!(fetch(addr, "/item").await.text(), "version 1");
    assert_hit(&fetch(addr, "/item").await, "version 1");

    // A failed write leaves the entry alone.
    let rejected = send(addr, request(Method::POST, "/item", &[("x-fail", "1")])).await;
    assert_eq!(rejected.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        rejected.cache_status(),
        "shared-calls; fwd=bypass; detail=method"
    );
    assert_hit(&fetch(addr, "/item").await, "version 1");

    // A successful one invalidates it: the next GET reaches the handler.
    let updated = send(addr, request(Method::POST, "/item", &[])).await;
    assert_eq!(
        (updated.status, updated.text()),
        (StatusCode::OK, "updated")
    );
    assert_eq!(
        updated.cache_status(),
        "shared-calls; fwd=bypass; detail=method"
    );
    let fresh = fetch(addr, "/item").await;
    assert_eq!(fresh.text(), "version 2");
    assert_eq!(
        fresh.cache_status_shape().0,
        "shared-calls; fwd=miss; stored; ttl=N"
    );
    assert_eq!((gets.get(), posts.get()), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_bypass() {
    let calls = Counter::default();
    let handler_calls = calls.clone();
    let app = Router::new()
        .route(
            "/any",
            any(move |method: Method| {
                let n = handler_calls.hit();
                async move { format!("{method} {n}") }
            }),
        )
        .layer(SharedCallsLayer::new(default_key).jitter(0.0));
    let addr = serve_axum(app).await;

    let mut n = 0;
    for method in [Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS] {
        for _ in 0..2 {
            n += 1;
            let got = send(addr, request(method.clone(), "/any", &[])).await;
            assert_eq!(got.text(), format!("{method} {n}"));
            assert_eq!(
                got.cache_status(),
                "shared-calls; fwd=bypass; detail=method"
            );
        }
    }
    assert_eq!(calls.get(), 8);
}
