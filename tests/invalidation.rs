//! Invalidation from application code, in an axum app over real HTTP/1
//! connections: by path (every host, query, keyed header and `Vary`
//! variant of it, and nothing else), by request (without knowing the
//! `Host` clients used), and by exact key.

mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::IntoResponse;
use axum::routing::get;
use http::header::{CACHE_CONTROL, VARY};
use shared_calls::http_policy::KeyBuilder;
use shared_calls::{HttpCache, HttpCacheExt, SharedCallsLayer};

use support::{fetch_with, serve_axum};

/// Every call the handlers received: host, path and query, language, tenant.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn take(&self) -> Vec<String> {
        let mut calls = std::mem::take(&mut *self.0.lock().unwrap());
        calls.sort();
        calls
    }
}

async fn user(State(calls): State<Calls>, request: Request) -> impl IntoResponse {
    let header = |name| {
        request
            .headers()
            .get(name)
            .map_or("-", |value| value.to_str().unwrap())
    };
    let call = format!(
        "{} {} {} {}",
        header("host"),
        request.uri(),
        header("accept-language"),
        header("x-tenant")
    );
    calls.0.lock().unwrap().push(call.clone());
    (
        [(CACHE_CONTROL, "max-age=60"), (VARY, "accept-language")],
        call,
    )
}

const HOSTS: [&str; 2] = ["a.test", "b.test"];
const TARGETS: [&str; 5] = [
    "/users/7",
    "/users/7?tab=orders",
    "/users/70",
    "/users/7/orders",
    "/users/8",
];
const LANGUAGES: [&str; 2] = ["en", "fr"];
const TENANTS: [Option<&str>; 2] = [None, Some("acme")];

/// The app, keyed per tenant, and its cache handle.
async fn app() -> (std::net::SocketAddr, Calls, HttpCache) {
    let calls = Calls::default();
    let key = KeyBuilder::new().header("x-tenant");
    let layer = SharedCallsLayer::new(move |request: &Request| key.key(request));
    let cache = layer.cache_handle();
    let router = Router::new()
        .route("/users/{id}", get(user))
        .route("/users/{id}/orders", get(user))
        .with_state(calls.clone())
        .layer(layer);
    (serve_axum(router).await, calls, cache)
}

/// Sends every combination of host, target, language and tenant once, and
/// returns the calls that reached the handlers.
async fn get_everything(addr: std::net::SocketAddr, calls: &Calls) -> Vec<String> {
    for host in HOSTS {
        for target in TARGETS {
            for language in LANGUAGES {
                for tenant in TENANTS {
                    let mut headers = vec![("host", host), ("accept-language", language)];
                    headers.extend(tenant.map(|tenant| ("x-tenant", tenant)));
                    let got = fetch_with(addr, target, &headers).await;
                    let expected = format!("{host} {target} {language} {}", tenant.unwrap_or("-"));
                    assert_eq!(got.text(), expected, "each request its own answer");
                }
            }
        }
    }
    calls.take()
}

/// The calls `get_everything` makes for the targets `which` keeps.
fn calls_for(which: impl Fn(&str, &str) -> bool) -> Vec<String> {
    let mut expected = Vec::new();
    for host in HOSTS {
        for target in TARGETS.into_iter().filter(|target| which(host, target)) {
            for language in LANGUAGES {
                for tenant in TENANTS {
                    expected.push(format!(
                        "{host} {target} {language} {}",
                        tenant.unwrap_or("-")
                    ));
                }
            }
        }
    }
    expected.sort();
    expected
}

/// Fills the cache: every combination reaches the handlers once, then none.
async fn filled() -> (std::net::SocketAddr, Calls, HttpCache) {
    let (addr, calls, cache) = app().await;
    assert_eq!(get_everything(addr, &calls).await, calls_for(|_, _| true));
    assert_eq!(
        get_everything(addr, &calls).await,
        Vec::<String>::new(),
        "all stored"
    );
    (addr, calls, cache)
}

#[tokio::test]
async fn invalidating_a_path_clears_every_host_query_and_variant_of_it_and_nothing_else() {
    let (addr, calls, cache) = filled().await;

    cache.invalidate_path("/users/7");

    // Two hosts, two queries, two languages, two tenants: 16 calls, and the
    // 24 answers of other paths (`/users/70`, `/users/7/orders`) stay stored.
    let reloaded = get_everything(addr, &calls).await;
    assert_eq!(reloaded.len(), 16);
    assert_eq!(
        reloaded,
        calls_for(|_, target| target.split('?').next() == Some("/users/7"))
    );
    assert_eq!(get_everything(addr, &calls).await, Vec::<String>::new());
}

#[tokio::test]
async fn invalidating_a_request_without_a_host_clears_that_uri_on_every_host() {
    let (addr, calls, cache) = filled().await;

    cache.invalidate_request(&http::Request::get("/users/7?tab=orders").body(()).unwrap());

    assert_eq!(
        get_everything(addr, &calls).await,
        calls_for(|_, target| target == "/users/7?tab=orders"),
        "the query's answers on both hosts, every variant and tenant; not the bare path"
    );
}

#[tokio::test]
async fn invalidating_a_request_with_a_host_clears_that_host_only() {
    let (addr, calls, cache) = filled().await;

    let request = http::Request::get("/users/7").header("host", "b.test");
    cache.invalidate_request(&request.body(()).unwrap());

    assert_eq!(
        get_everything(addr, &calls).await,
        calls_for(|host, target| host == "b.test" && target == "/users/7")
    );
}

#[tokio::test]
async fn invalidating_an_exact_key_clears_its_variants_and_no_other_key() {
    let (addr, calls, cache) = filled().await;

    let request = http::Request::get("http://a.test/users/8").header("x-tenant", "acme");
    let key = KeyBuilder::new()
        .header("x-tenant")
        .key(&request.body(()).unwrap())
        .unwrap();
    cache.invalidate(&key);

    // Both languages of that tenant on that host; the other tenant stays.
    assert_eq!(
        get_everything(addr, &calls).await,
        ["a.test /users/8 en acme", "a.test /users/8 fr acme"]
    );
}
