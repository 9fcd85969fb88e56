//! Hostile input: very long URIs and header values, hundreds of `Vary`
//! names, bodies that fail midway, and a million distinct keys churned
//! through a small cache.
//!
//! Cache poisoning between users, hosts, query orders and forwarded hosts,
//! `Set-Cookie` replay, `Vary` variants and stored 5xx are covered, each
//! with a real server, in `tests/security.rs`; the buffering body (a body
//! that never ends is bounded by the limit) in
//! `crates/shared-calls-http/tests/body.rs`; and the parsers' property tests
//! in `crates/shared-calls-http/tests/parse_props.rs`.
//!
//! A million distinct keys churned through a small cache: `tests/reliability_churn.rs`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::BodyExt;
use shared_calls::Outcome;
use tower::ServiceExt;

use support::exact_ttl_layer;

/// The layer's TTL.
const TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Calls(AtomicUsize);

impl Calls {
    fn add(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct Got {
    status: StatusCode,
    outcome: Outcome,
    cache_status: String,
    body: Result<Bytes, String>,
}

impl Got {
    fn text(&self) -> &str {
        std::str::from_utf8(self.body.as_ref().expect("a whole body")).unwrap()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Got {
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Got {
        status: parts.status,
        outcome: *parts.extensions.get::<Outcome>().unwrap(),
        cache_status: parts.headers["cache-status"].to_str().unwrap().to_owned(),
        body: body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .map_err(|e| e.to_string()),
    }
}

fn get_request(uri: &str) -> http::request::Builder {
    Request::get(uri)
}

/// Echoes what identifies the request: its URI and its `X-Echo` header.
async fn echo(State(calls): State<Arc<Calls>>, request: Request<Body>) -> String {
    calls.add();
    let echo = request
        .headers()
        .get("x-echo")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    format!("{} {echo}", request.uri())
}

#[tokio::test]
async fn very_long_uris_and_header_values_are_keyed_exactly() {
    let calls = Arc::new(Calls::default());
    let app = Router::new()
        .fallback(get(echo))
        .with_state(calls.clone())
        .layer(exact_ttl_layer(TTL));
    // 8 KiB of path and query, differing only in the last byte.
    let long = |last: char| {
        let path = "p".repeat(4096);
        let query = "q".repeat(4096 - 1);
        format!("http://hostile.test/{path}?{query}{last}")
    };
    let (a, b) = (long('a'), long('b'));
    assert!(a.len() > 8192);
    // A 64 KiB header value the key ignores, and a 16 KiB one it includes.
    let junk = "j".repeat(64 * 1024);
    let forwarded = |c: char| c.to_string().repeat(16 * 1024);
    let request = |uri: &str, host: char| {
        get_request(uri)
            .header("x-junk", junk.as_str())
            .header("x-forwarded-host", forwarded(host))
            .header("x-echo", host.to_string())
            .body(Body::empty())
            .unwrap()
    };
    for (uri, host) in [(&a, 'x'), (&b, 'x'), (&a, 'y')] {
        let got = send(&app, request(uri, host)).await;
        assert_eq!(got.outcome, Outcome::Miss);
        let uri: Uri = uri.parse().unwrap();
        assert_eq!(got.text(), format!("{} {host}", uri));
    }
    assert_eq!(calls.get(), 3);
    for (uri, host) in [(&a, 'x'), (&b, 'x'), (&a, 'y')] {
        let got = send(&app, request(uri, host)).await;
        assert_eq!(got.outcome, Outcome::Hit);
        let uri: Uri = uri.parse().unwrap();
        assert_eq!(got.text(), format!("{} {host}", uri));
    }
    assert_eq!(calls.get(), 3);
}

/// `Vary` with `names` header names, in lines of 50.
fn vary_lines(names: usize) -> Vec<String> {
    let names: Vec<String> = (0..names).map(|i| format!("x-v{i}")).collect();
    names.chunks(50).map(|chunk| chunk.join(", ")).collect()
}

#[tokio::test(start_paused = true)]
async fn hundreds_of_vary_names_are_never_stored_nor_shared() {
    let calls = Arc::new(Calls::default());
    let app = Router::new()
        .fallback(get(
            |State(calls): State<Arc<Calls>>, headers: HeaderMap| async move {
                calls.add();
                // Long enough for every request below to be waiting.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let mut response = headers["x-v0"].to_str().unwrap().to_owned().into_response();
                for line in vary_lines(300) {
                    response
                        .headers_mut()
                        .append(http::header::VARY, line.parse().unwrap());
                }
                response
            },
        ))
        .with_state(calls.clone())
        .layer(exact_ttl_layer(TTL));
    let request = |user: usize| {
        get_request("http://hostile.test/varies")
            .header("x-v0", format!("user {user}"))
            .body(Body::empty())
            .unwrap()
    };
    const USERS: usize = 20;
    let tasks: Vec<_> = (0..USERS)
        .map(|user| {
            let app = app.clone();
            tokio::spawn(async move { (user, send(&app, request(user)).await) })
        })
        .collect();
    for task in tasks {
        let (user, got) = task.await.unwrap();
        assert_eq!(
            got.text(),
            format!("user {user}"),
            "never another's variant"
        );
        assert_ne!(got.outcome, Outcome::Collapsed);
        assert!(!got.cache_status.contains("stored"), "{got:?}");
    }
    // The waiters were released to call on their own; nothing was stored.
    assert_eq!(calls.get(), USERS);
    let got = send(&app, request(0)).await;
    assert_eq!(got.text(), "user 0");
    assert_ne!(got.outcome, Outcome::Hit);
    assert_eq!(calls.get(), USERS + 1);
}

#[tokio::test(start_paused = true)]
async fn a_body_that_fails_midway_is_never_stored_nor_shared_as_complete() {
    let calls = Arc::new(Calls::default());
    let app = Router::new()
        .fallback(get(
            |State(calls): State<Arc<Calls>>, uri: Uri| async move {
                calls.add();
                tokio::time::sleep(Duration::from_millis(100)).await;
                let status = match uri.path() {
                    "/fails-5xx" => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::OK,
                };
                let frames: Vec<Result<Bytes, std::io::Error>> = vec![
                    Ok(Bytes::from_static(b"the first half, ")),
                    Ok(Bytes::from_static(b"and then ")),
                    Err(std::io::Error::other("the backend went away")),
                ];
                let mut response = Response::new(Body::from_stream(futures::stream::iter(frames)));
                *response.status_mut() = status;
                response
            },
        ))
        .with_state(calls.clone())
        .layer(exact_ttl_layer(TTL));
    const N: usize = 10;
    for (path, status) in [
        ("/fails", StatusCode::OK),
        ("/fails-5xx", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let uri = format!("http://hostile.test{path}");
        let before = calls.get();
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let (app, uri) = (app.clone(), uri.clone());
                tokio::spawn(async move {
                    send(&app, get_request(&uri).body(Body::empty()).unwrap()).await
                })
            })
            .collect();
        let mut own_calls = 0;
        for task in tasks {
            let got = task.await.unwrap();
            assert!(!got.cache_status.contains("stored"), "{got:?}");
            match got.body {
                // An answer from a call that failed midway: the error reaches
                // the client, after exactly the bytes that came before it.
                Err(_) => {
                    assert_eq!(got.status, status);
                    own_calls += 1;
                }
                // Never the truncated body as if it were whole: only the
                // cache's own 502 for the requests that waited for a failure.
                Ok(body) => {
                    assert_eq!(got.status, StatusCode::BAD_GATEWAY, "{body:?}");
                    assert!(got.cache_status.ends_with("detail=upstream-error"));
                }
            }
        }
        // A body that fails midway is a failed call, whatever its status:
        // shared as a 502 with the requests that waited, never a herd of
        // their own calls.
        assert_eq!((own_calls, calls.get() - before), (1, 1));
        // Nothing stored: the next request calls again.
        let got = send(&app, get_request(&uri).body(Body::empty()).unwrap()).await;
        assert!(got.body.is_err());
        assert_ne!(got.outcome, Outcome::Hit);
    }
}

/// The byte bound (`max_bytes`) counts what an entry holds because of the
/// request: its key and the request headers it varies on. Otherwise long
/// URIs (or long varying headers) on distinct keys fill the memory many
/// times over the configured weight.
#[tokio::test]
async fn long_keys_and_varying_headers_count_towards_the_byte_bound() {
    const MAX_WEIGHT: u64 = 1024 * 1024;
    const LONG: usize = 8 * 1024;
    const REQUESTS: usize = 2000;
    for varying in [false, true] {
        let layer = exact_ttl_layer(TTL).max_bytes(MAX_WEIGHT);
        let cache = layer.cache_handle();
        let app = Router::new()
            .fallback(get(|| async {
                ([(http::header::VARY, "user-agent")], "ok").into_response()
            }))
            .layer(layer);
        for i in 0..REQUESTS {
            let (uri, agent) = match varying {
                false => (
                    format!("http://hostile.test/{i}/{}", "p".repeat(LONG)),
                    "a".to_owned(),
                ),
                true => (format!("http://hostile.test/{i}"), "a".repeat(LONG)),
            };
            let request = get_request(&uri)
                .header("user-agent", agent)
                .body(Body::empty())
                .unwrap();
            assert_eq!(send(&app, request).await.text(), "ok");
        }
        let stats = cache.stats();
        assert!(stats.weight <= MAX_WEIGHT, "{stats:?}");
        // What the entries hold because of the requests alone fits the budget.
        assert!(
            stats.entries * LONG as u64 <= MAX_WEIGHT,
            "varying {varying}: {} entries hold {} KiB of request bytes, max_bytes is {} KiB",
            stats.entries,
            stats.entries * LONG as u64 / 1024,
            MAX_WEIGHT / 1024
        );
    }
}
