//! The HTTP layer in a real axum server on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::{Router, routing::get};
use shared_calls::{SharedCallsLayer, default_key};

async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn fetch(addr: std::net::SocketAddr, path: &str) -> (u16, Option<String>, String) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header("host", "example.test")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let cache_status = response
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        cache_status,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_reach_the_handler_once() {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler_calls = calls.clone();
    let app = Router::new()
        .route(
            "/hot",
            get(move || {
                let calls = handler_calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    "hot answer"
                }
            }),
        )
        .layer(
            SharedCallsLayer::new(default_key)
                .ttl(Duration::from_secs(60))
                .jitter(0.0),
        );
    let addr = serve(app).await;
    let results = tokio::time::timeout(Duration::from_secs(10), async {
        let tasks: Vec<_> = (0..20).map(|_| tokio::spawn(fetch(addr, "/hot"))).collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        results
    })
    .await
    .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        results
            .iter()
            .all(|(status, _, body)| *status == 200 && body == "hot answer")
    );
    let statuses: Vec<_> = results
        .iter()
        .map(|(_, cs, _)| cs.clone().unwrap())
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| s.contains("stored") && !s.contains("collapsed"))
            .count(),
        1,
        "{statuses:?}"
    );
    let (_, hit, _) = fetch(addr, "/hot").await;
    assert!(hit.unwrap().starts_with("shared-calls; hit; ttl="));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
