//! What a miss allocates: every request a new key, its answer loaded from
//! the inner service, stored and served through the layer, counted by a
//! global allocator against a stated number per request.
//!
//! A test binary of its own: the counting allocator sees the whole process,
//! so its one test measures with nothing else running.
//!
//! `cargo test --test miss_allocations -- --nocapture` prints the count.

use std::convert::Infallible;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use shared_calls::{Outcome, SharedCallsLayer, default_key};
use tower::{Layer, service_fn};

#[path = "support/allocations.rs"]
mod allocations;

use allocations::{KeyFn, answer, request, send};

#[global_allocator]
static HEAP: dhat::Alloc = dhat::Alloc;

/// The most allocations one miss may make, the inner service's answer and
/// the response to the client included (35.0 on average when it was set):
/// the key's and the answer's records in the store, the stored copy, the
/// request's headers kept for the answer's analysis, the flight's boxed
/// work and the policy's, the response's header map and extensions.
const MAX_ALLOCATIONS_PER_MISS: u64 = 36;

const MISSES: u64 = 1_000;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_miss_allocates_at_most_the_stated_number() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let layer = SharedCallsLayer::new(default_key as KeyFn);
    let mut service = layer.layer(service_fn(|_: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(answer())
    }));
    let cache = layer.cache_handle();
    // Misses to warm the cache's tables and the runtime.
    for n in 0..MISSES {
        let response = send(&mut service, request(n)).await;
        response.into_body().collect().await.unwrap();
    }
    let requests: Vec<_> = (MISSES..2 * MISSES).map(request).collect();
    let mut responses = Vec::with_capacity(requests.len());

    let before = dhat::HeapStats::get();
    for request in requests {
        responses.push(send(&mut service, request).await);
    }
    let after = dhat::HeapStats::get();

    let allocations = after.total_blocks - before.total_blocks;
    let per_miss = allocations as f64 / MISSES as f64;
    println!("allocations per miss: {per_miss:.2} (at most {MAX_ALLOCATIONS_PER_MISS})");
    for response in responses {
        assert_eq!(response.extensions().get(), Some(&Outcome::Miss));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), 1024);
    }
    // Every answer was stored.
    for n in [MISSES, 2 * MISSES - 1] {
        let response = send(&mut service, request(n)).await;
        assert_eq!(response.extensions().get(), Some(&Outcome::Hit));
    }
    assert_eq!(cache.stats().misses, 2 * MISSES);
    assert!(
        allocations <= MISSES * MAX_ALLOCATIONS_PER_MISS,
        "a miss makes {per_miss:.2} allocations, more than {MAX_ALLOCATIONS_PER_MISS}"
    );
}
