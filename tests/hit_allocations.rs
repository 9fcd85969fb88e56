//! What a hit allocates: a fresh stored answer served through the layer,
//! counted by a global allocator, against a stated number per request.
//!
//! The response itself takes some: its header map (index and entries) and
//! its extensions (the [`Outcome`]). Of the rest of the hit path, the key
//! takes one; the lookup and the response's head (rendered once a second
//! per entry and thread, then cloned) take none beyond the map, and the
//! body is never copied.
//!
//! A test binary of its own: the counting allocator sees the whole process,
//! so its one test measures with nothing else running.
//!
//! `cargo test --test hit_allocations -- --nocapture` prints the count.

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

/// The most allocations one hit may make, its response included: the
/// response's header map (index and entries, 2), its extensions (a box, its
/// table and the boxed `Outcome`, 3), and the key (1).
const MAX_ALLOCATIONS_PER_HIT: u64 = 6;

const HITS: u64 = 1_000;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_hit_allocates_only_its_response_and_never_copies_the_body() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let layer = SharedCallsLayer::new(default_key as KeyFn);
    let mut service = layer.layer(service_fn(|_: Request<Empty<Bytes>>| async {
        Ok::<_, Infallible>(answer())
    }));
    // The miss that stores the answer, then hits to warm the cache's tables
    // and the head this thread remembers for the entry.
    let mut bodies = Vec::new();
    for _ in 0..100 {
        let response = send(&mut service, request("hot")).await;
        bodies.push(response.into_body().collect().await.unwrap().to_bytes());
    }
    let stored = bodies.last().unwrap().clone();
    drop(bodies);
    let requests: Vec<_> = (0..HITS).map(|_| request("hot")).collect();
    let mut responses = Vec::with_capacity(requests.len());

    let before = dhat::HeapStats::get();
    for request in requests {
        responses.push(send(&mut service, request).await);
    }
    let after = dhat::HeapStats::get();

    let allocations = after.total_blocks - before.total_blocks;
    let per_hit = allocations as f64 / HITS as f64;
    println!("allocations per hit: {per_hit:.2} (at most {MAX_ALLOCATIONS_PER_HIT})");
    for response in responses {
        assert_eq!(response.extensions().get(), Some(&Outcome::Hit));
        assert!(response.headers().contains_key(http::header::AGE));
        assert!(response.headers().contains_key("cache-status"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        // The very bytes stored: a handle on the entry's copy, not a copy.
        assert_eq!(body.as_ptr(), stored.as_ptr());
        assert_eq!(body.len(), 1024);
    }
    assert!(
        allocations <= HITS * MAX_ALLOCATIONS_PER_HIT,
        "a hit makes {per_hit:.2} allocations, more than {MAX_ALLOCATIONS_PER_HIT}"
    );
}
