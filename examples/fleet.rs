//! A fleet of four instances of one axum service behind a round-robin
//! client, with a hot key that expires every 100 ms: how many calls reach
//! the backend with each instance's memory alone (L1), and with Redis as the
//! fleet's second tier (L1 + Redis).
//!
//! ```text
//! cargo run --release --example fleet --features redis
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --release --example fleet --features redis
//! ```
//!
//! Without `REDIS_URL` it starts its own `redis-server` (which must be
//! installed) on a free loopback port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use shared_calls::SharedCallsLayer;
use shared_calls::http_policy::{HttpCodec, HttpKey};
use shared_calls::redis::RedisTier;
use shared_calls::redis::local::LocalRedis;

const INSTANCES: usize = 4;
const TTL: Duration = Duration::from_millis(100);
const RUN: Duration = Duration::from_secs(3);
const CLIENTS: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, url) = match std::env::var("REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = LocalRedis::start()?;
            let url = server.url();
            (Some(server), url)
        }
    };
    for (name, redis) in [("L1 only", None), ("L1 + Redis", Some(url.as_str()))] {
        let backend_calls = Arc::new(AtomicUsize::new(0));
        let fleet: Vec<Instance> = (0..INSTANCES)
            .map(|_| Instance::start(redis.map(str::to_owned), backend_calls.clone()))
            .collect();
        let (requests, elapsed) = hammer(&fleet)?;
        let calls = backend_calls.load(Ordering::Relaxed);
        let expiries = elapsed.as_secs_f64() / TTL.as_secs_f64();
        println!(
            "{name:>10}: {requests} requests over {INSTANCES} instances in {elapsed:.1?}, \
             {calls} backend calls ({:.2} per 100 ms lifetime of the key)",
            calls as f64 / expiries
        );
    }
    Ok(())
}

/// One instance: its own runtime, layer, cache and axum server.
struct Instance {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Instance {
    fn start(redis: Option<String>, backend_calls: Arc<AtomicUsize>) -> Self {
        let (ready, address) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                // Instances listen on different ports: key by path alone.
                let key = |request: &axum::extract::Request| {
                    Some(HttpKey::from(request.uri().path().to_owned()))
                };
                let mut layer = SharedCallsLayer::new(key).ttl(TTL).jitter(0.0);
                if let Some(url) = redis {
                    let tier = RedisTier::builder(url)
                        .timeout(Duration::from_millis(50))
                        .build()
                        .await
                        .expect("the redis tier");
                    layer = layer.second_tier(tier, HttpCodec);
                }
                let app = Router::new()
                    .route(
                        "/hot",
                        get(move || async move {
                            backend_calls.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            "an expensive answer"
                        }),
                    )
                    .layer(layer);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Self {
            address: address.recv().expect("the instance starts"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `CLIENTS` clients, each sending to the instances in turn, for `RUN`.
fn hammer(fleet: &[Instance]) -> Result<(usize, Duration), Box<dyn std::error::Error>> {
    let uris: Arc<Vec<String>> = Arc::new(
        fleet
            .iter()
            .map(|instance| format!("http://{}/hot", instance.address))
            .collect(),
    );
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let started = Instant::now();
        let sent = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        for n in 0..CLIENTS {
            let (client, uris, sent) = (client.clone(), uris.clone(), sent.clone());
            clients.push(tokio::spawn(async move {
                let mut turn = n;
                while started.elapsed() < RUN {
                    let uri = uris[turn % uris.len()].parse().expect("a uri");
                    let response = client.get(uri).await.expect("the instance answers");
                    assert!(response.status().is_success());
                    response.into_body().collect().await.expect("a body");
                    sent.fetch_add(1, Ordering::Relaxed);
                    turn += 1;
                }
            }));
        }
        for client in clients {
            client.await?;
        }
        Ok((sent.load(Ordering::Relaxed), started.elapsed()))
    })
}
