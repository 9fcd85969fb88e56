//! An axum server to play with: curl it and watch `Cache-Status`.
//!
//! ```sh
//! cargo run --example axum_server                  # listens on 127.0.0.1:3000
//! cargo run --example axum_server -- 127.0.0.1:8080
//! ```
//!
//! It runs until interrupted, and prints the curl commands to try.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::routing::get;
use shared_calls::{HttpCache, SharedCallsLayer, default_key};

/// What the handlers share: how often each ran, and the cache, for `/stats`.
#[derive(Clone, Debug)]
struct App {
    handler_calls: Arc<AtomicU64>,
    cache: HttpCache,
}

impl App {
    fn called(&self) -> u64 {
        self.handler_calls.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A slow page without any `Cache-Control`: stored for the layer's TTL.
async fn slow(State(app): State<App>) -> String {
    let call = app.called();
    tokio::time::sleep(Duration::from_secs(1)).await;
    format!("rendered by handler call {call}\n")
}

/// A page whose own `Cache-Control: max-age=2` wins over the layer's TTL.
async fn short(State(app): State<App>) -> impl IntoResponse {
    let call = app.called();
    (
        [(CACHE_CONTROL, "max-age=2")],
        format!("fresh for 2 s; handler call {call}\n"),
    )
}

/// `Cache-Control: private`: never shared, never stored.
async fn private(State(app): State<App>) -> impl IntoResponse {
    let call = app.called();
    (
        [(CACHE_CONTROL, "private")],
        format!("for your eyes only; handler call {call}\n"),
    )
}

/// A user profile; `POST` to the same path updates it and, because it
/// succeeds, invalidates the stored `GET`.
async fn user(State(app): State<App>, Path(id): Path<u64>) -> String {
    let call = app.called();
    tokio::time::sleep(Duration::from_millis(200)).await;
    format!("user {id}, loaded by handler call {call}\n")
}

async fn update_user(Path(id): Path<u64>) -> String {
    format!("user {id} updated\n")
}

/// The cache's counters; this route is not behind the layer.
async fn stats(State(app): State<App>) -> String {
    let stats = app.cache.stats();
    format!(
        "handler calls {}; hits {}, misses {}, collapsed {}, stale {}, refreshes {}, passes {}\n",
        app.handler_calls.load(Ordering::Relaxed),
        stats.hits,
        stats.misses,
        stats.collapsed,
        stats.stale,
        stats.refreshes,
        stats.passes,
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned())
        .parse()?;

    let layer = SharedCallsLayer::new(default_key)
        .ttl(Duration::from_secs(10))
        .stale_while_revalidate(Duration::from_secs(30))
        .map_policy(|policy| policy.x_cache_status(true));
    let app = App {
        handler_calls: Arc::new(AtomicU64::new(0)),
        cache: layer.cache_handle(),
    };
    let router = Router::new()
        .route("/slow", get(slow))
        .route("/short", get(short))
        .route("/private", get(private))
        .route("/users/{id}", get(user).post(update_user))
        // Every route above is cached: those that set no freshness for the
        // layer's `ttl`, `404`s for its `negative_ttl`. To keep only answers
        // that say `max-age`, set `Rules::explicit_freshness_only`.
        .layer(layer)
        // Added after `.layer`, so not behind it.
        .route("/stats", get(stats))
        .with_state(app);

    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr} (Ctrl-C to stop)\n");
    println!(
        "# 1 s handler: the first request waits, then hits for 10 s, then stale while one refresh runs"
    );
    println!("curl -si http://{addr}/slow | grep -iE 'cache-status|age|handler'");
    println!("# ten at once: one handler call, nine collapsed onto it");
    println!(
        "for i in $(seq 10); do curl -s -o /dev/null -D - http://{addr}/users/3 | grep -i '^cache-status' & done; wait"
    );
    println!("# the response's own max-age=2 wins over the layer's TTL");
    println!("curl -si http://{addr}/short | grep -i cache-status");
    println!("# Cache-Control: private is never stored");
    println!("curl -si http://{addr}/private | grep -i cache-status");
    println!("# a successful POST invalidates the GET of the same path");
    println!("curl -s http://{addr}/users/7; curl -s http://{addr}/users/7");
    println!(
        "curl -s -X POST http://{addr}/users/7; curl -si http://{addr}/users/7 | grep -i cache-status"
    );
    println!("# requests with credentials bypass the cache");
    println!("curl -si -H 'Authorization: Bearer x' http://{addr}/slow | grep -i cache-status");
    println!("# the counters");
    println!("curl -s http://{addr}/stats");
    axum::serve(listener, router).await?;
    Ok(())
}
