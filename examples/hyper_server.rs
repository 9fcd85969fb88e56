//! A plain hyper 1 server (hyper-util's HTTP/1 + HTTP/2 connection builder)
//! with the layer in front of a tower service.
//!
//! ```sh
//! cargo run --example hyper_server                  # listens on 127.0.0.1:3001
//! cargo run --example hyper_server -- 127.0.0.1:8080
//! curl -si http://127.0.0.1:3001/report?day=monday
//! ```
//!
//! It runs until interrupted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use shared_calls::{SharedCallsLayer, default_key};
use tower::{ServiceBuilder, ServiceExt};

/// A slow report, one per URI (path and query are the key).
async fn report(
    request: Request<Incoming>,
    calls: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let call = calls.fetch_add(1, Ordering::Relaxed) + 1;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body = format!("report for {} (handler call {call})\n", request.uri());
    Ok(Response::builder()
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".to_owned())
        .parse()?;

    let calls = Arc::new(AtomicU64::new(0));
    let service = ServiceBuilder::new()
        .layer(SharedCallsLayer::new(default_key).ttl(Duration::from_secs(5)))
        .service(tower::service_fn(move |request| {
            report(request, calls.clone())
        }));

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "listening on http://{} (Ctrl-C to stop)",
        listener.local_addr()?
    );
    println!(
        "curl -si 'http://{}/report?day=monday'",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            // hyper calls `&self` services; each request gets a clone of the
            // tower service (cheap: the cache is shared).
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                service.clone().oneshot(request)
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {error}");
            }
        });
    }
}
