//! The fleet: four instances, each with its own runtime, layer, cache and
//! axum server, behind one client; one Redis (or a three-node cluster)
//! between them.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use shared_calls_http::{HttpCodec, HttpKey, SharedCallsLayer};
use shared_calls_redis::RedisTier;
use shared_calls_redis::local::{LocalCluster, LocalRedis};

/// Where the fleet's second tier is.
#[derive(Clone)]
enum Tier {
    None,
    Server(String),
    Cluster(Vec<String>),
}

struct Instance {
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Instance {
    fn start(tier: Tier, ttl: Duration, backend_calls: Arc<AtomicUsize>) -> Self {
        let (ready, address) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let key = |request: &axum::extract::Request| {
                    Some(HttpKey::from(request.uri().path().to_owned()))
                };
                let layer = SharedCallsLayer::new(key).ttl(ttl).jitter(0.0);
                let tier = match tier {
                    Tier::None => None,
                    Tier::Server(url) => Some(RedisTier::builder(url)),
                    Tier::Cluster(nodes) => Some(RedisTier::cluster_builder(nodes)),
                };
                let layer = match tier {
                    Some(tier) => {
                        let tier = tier.timeout(support::TIMEOUT).build().await.unwrap();
                        layer.second_tier(tier, HttpCodec)
                    }
                    None => layer,
                };
                let app = Router::new()
                    .route(
                        "/hot",
                        get(move || async move {
                            backend_calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            "the hot answer"
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
            address: address.recv().unwrap(),
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

struct Fleet {
    instances: Vec<Instance>,
    backend_calls: Arc<AtomicUsize>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Fleet {
    fn start(tier: Tier, ttl: Duration) -> Self {
        let backend_calls = Arc::new(AtomicUsize::new(0));
        let instances = (0..4)
            .map(|_| Instance::start(tier.clone(), ttl, backend_calls.clone()))
            .collect();
        Self {
            instances,
            backend_calls,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// GET `/hot` from instance `n % 4`: its status, `Cache-Status` and body.
    fn get(&self, n: usize) -> impl Future<Output = (u16, String, Bytes)> + Send + 'static {
        let uri = format!("http://{}/hot", self.instances[n % 4].address);
        let client = self.client.clone();
        async move {
            let response =
                tokio::time::timeout(Duration::from_secs(10), client.get(uri.parse().unwrap()))
                    .await
                    .expect("answered in time")
                    .expect("answered");
            let status = response.status().as_u16();
            let cache_status = response
                .headers()
                .get("cache-status")
                .map(|value| value.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, cache_status, body)
        }
    }

    fn calls(&self) -> usize {
        self.backend_calls.load(Ordering::SeqCst)
    }
}

/// 1,000 concurrent requests over the fleet for one cold key.
async fn one_cold_key(fleet: &Fleet) {
    let requests: Vec<_> = (0..1_000).map(|n| tokio::spawn(fleet.get(n))).collect();
    for request in requests {
        let (status, _, body) = request.await.unwrap();
        assert_eq!((status, &body[..]), (200, &b"the hot answer"[..]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_over_four_instances_make_one_backend_call() {
    let Some(redis) = LocalRedis::start_or_skip(
        "a_thousand_concurrent_requests_over_four_instances_make_one_backend_call",
    ) else {
        return;
    };
    let fleet = Fleet::start(Tier::Server(redis.url()), Duration::from_secs(30));
    one_cold_key(&fleet).await;
    assert_eq!(fleet.calls(), 1);

    // An instance that never served the key answers from Redis, and says so.
    let newcomer = Instance::start(
        Tier::Server(redis.url()),
        Duration::from_secs(30),
        fleet.backend_calls.clone(),
    );
    let uri = format!("http://{}/hot", newcomer.address);
    let response = fleet.client.get(uri.parse().unwrap()).await.unwrap();
    let cache_status = response.headers()["cache-status"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cache_status.starts_with("shared-calls; hit; ttl="),
        "{cache_status}"
    );
    assert!(cache_status.ends_with("; detail=l2"), "{cache_status}");
    assert_eq!(fleet.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_fleet_on_a_three_node_cluster_makes_one_backend_call() {
    let Some(cluster) = LocalCluster::start_or_skip(
        "the_same_fleet_on_a_three_node_cluster_makes_one_backend_call",
    ) else {
        return;
    };
    let fleet = Fleet::start(Tier::Cluster(cluster.urls()), Duration::from_secs(30));
    one_cold_key(&fleet).await;
    assert_eq!(fleet.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_expiring_every_100_ms_is_loaded_once_per_expiry_across_the_fleet() {
    let Some(redis) = LocalRedis::start_or_skip(
        "a_key_expiring_every_100_ms_is_loaded_once_per_expiry_across_the_fleet",
    ) else {
        return;
    };
    let ttl = Duration::from_millis(100);
    let run = Duration::from_secs(5);
    let mut figures = Vec::new();
    for tier in [Tier::None, Tier::Server(redis.url())] {
        let fleet = Arc::new(Fleet::start(tier, ttl));
        let started = Instant::now();
        let clients: Vec<_> = (0..16)
            .map(|n| {
                let fleet = fleet.clone();
                tokio::spawn(async move {
                    let mut turn = n;
                    while started.elapsed() < run {
                        let (status, _, _) = fleet.get(turn).await;
                        assert_eq!(status, 200);
                        turn += 1;
                    }
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
        let elapsed = started.elapsed();
        let expiries = (elapsed.as_millis() / ttl.as_millis()) as usize + 1;
        figures.push((fleet.calls(), expiries));
    }
    let [(l1_only, _), (with_redis, expiries)] = figures[..] else {
        unreachable!()
    };
    eprintln!(
        "a key expiring every 100 ms for 5 s over 4 instances: {l1_only} backend calls with L1 only, \
         {with_redis} with L1 + Redis ({expiries} expiries at most)"
    );
    assert!(
        with_redis <= expiries,
        "{with_redis} calls for {expiries} expiries"
    );
    assert!(l1_only > with_redis);
}
