//! The heap stays within the cache's byte bound: large bodies and long keys,
//! many times the bound, through an axum `Router` behind the layer, with
//! every allocation of the process counted.
//!
//! A test binary of its own: the counting allocator sees the whole process,
//! so nothing else may run in it.

use std::alloc::System;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use bytes::Bytes;
use cap::Cap;
use http::Request;
use http_body_util::BodyExt;
use shared_calls::http_policy::HttpKey;
use shared_calls::{Outcome, SharedCallsLayer, default_key};
use tower::ServiceExt;

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// The cache's bound for this test.
const BOUND: u64 = 32 * 1024 * 1024;
/// What the heap may hold beyond the bound: the store's tables and the
/// recently evicted keys it remembers, the answer in flight, the allocator's
/// slack. The store evicts as it inserts, so this is a wide margin.
const OVERHEAD: usize = BOUND as usize / 16 + 16 * 1024 * 1024;
const BODY: usize = 512 * 1024;
/// A key of about 24 KiB, under the 32 KiB maximum.
const KEY_PADDING: usize = 24 * 1024;

type KeyFn = fn(&Request<Body>) -> Option<HttpKey>;

/// `/<padding>/<n>/<size>`: `size` bytes, a fresh allocation per call.
async fn answer(Path((_, n, size)): Path<(String, u32, usize)>) -> Bytes {
    let mut body = vec![b'a'; size];
    body[..4].copy_from_slice(&n.to_le_bytes());
    Bytes::from(body)
}

async fn fetch(app: &Router, n: u32, size: usize) -> Outcome {
    let padding = "p".repeat(KEY_PADDING);
    let request = Request::get(format!("/{padding}/{n}/{size}"))
        .header("host", "memory.test")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let outcome = *response.extensions().get::<Outcome>().unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), size);
    assert_eq!(body[..4], n.to_le_bytes());
    outcome
}

#[tokio::test(flavor = "current_thread")]
async fn the_heap_stays_within_the_byte_bound_under_large_bodies_and_long_keys() {
    let layer = SharedCallsLayer::new(default_key as KeyFn)
        .ttl(Duration::from_secs(600))
        .max_bytes(BOUND);
    let cache = layer.cache_handle();
    let app = Router::new()
        .route("/{padding}/{n}/{size}", get(answer))
        .layer(layer);
    assert_eq!(fetch(&app, u32::MAX, 16).await, Outcome::Miss);
    let baseline = HEAP.allocated();

    let mut peak = baseline;
    let mut stored = 0u64;
    // Six times the bound in large bodies, then as much again in long keys
    // with small bodies.
    let large = (6 * BOUND as usize / BODY) as u32;
    let small = (6 * BOUND as usize / KEY_PADDING) as u32;
    for (n, size) in (0..large)
        .map(|n| (n, BODY))
        .chain((large..large + small).map(|n| (n, 64)))
    {
        assert_eq!(fetch(&app, n, size).await, Outcome::Miss);
        stored += 1;
        peak = peak.max(HEAP.allocated());
    }
    let settled = HEAP.allocated();
    let stats = cache.stats();
    println!(
        "bound {} MiB: peak {:.1} MiB, settled {:.1} MiB above the baseline; {} of {stored} answers kept, weight {:.1} MiB",
        BOUND >> 20,
        (peak - baseline) as f64 / (1 << 20) as f64,
        settled.saturating_sub(baseline) as f64 / (1 << 20) as f64,
        stats.entries,
        stats.weight as f64 / (1 << 20) as f64,
    );
    assert!(stats.weight <= BOUND);
    assert!(stats.evictions > 0 && stats.entries < stored);
    assert!(
        peak - baseline <= BOUND as usize + OVERHEAD,
        "peak {} bytes above the baseline, bound {BOUND} + {OVERHEAD}",
        peak - baseline
    );
}
