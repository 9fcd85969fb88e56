//! What a stored answer costs: the heap each entry holds, counted by a global
//! allocator, against the bytes it carries, and the weight the cache bounds
//! itself with against that heap.
//!
//! The origin answers the way hyper hands answers out: header values and
//! body are `Bytes` slices of one 8 KiB read buffer per response. An entry
//! that kept such slices would hold the whole buffer.
//!
//! A test binary of its own: the counting allocator sees the whole process,
//! so its one test measures with nothing else running.
//!
//! `ENTRY_MEMORY_ENTRIES=100000 cargo test --release --test entry_memory -- --nocapture`
//! stores more entries per case than the 10,000 CI stores, and prints the
//! figures; `ENTRY_MEMORY_BODY=1024` measures that body size alone (for a
//! heap profile of one case).

use std::alloc::System;
use std::convert::Infallible;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cap::Cap;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use shared_calls::http_policy::HttpKey;
use shared_calls::{HttpCache, Outcome, SharedCallsLayer, default_key};
use tower::{Layer, ServiceExt, service_fn};

#[global_allocator]
static HEAP: Cap<System> = Cap::new(System, usize::MAX);

/// What an entry holds beyond its body, header lines and key, measured
/// (235 B over 100,000 entries; up to 292 B over the 1,250 of a default
/// run's largest case, which share the store's tables' slack): the stored response's fields behind their `Arc` (120 B and its
/// counts), the shared handle of its copy (24 B), the key's reference
/// counts (16 B) and the cache's record of the entry (its lifetimes and the
/// store's slot and index: about 130 B); less the header names counted in
/// its content, which entries share (68 B here).
const FIXED_OVERHEAD: usize = 320;

/// What a header line costs besides its name and value bytes: its place in
/// the stored list, the value's handle and the name's number.
const HEADER_LINE: usize = 48;

/// The goal's form: an entry's heap within this many times its body, header
/// names and values and key plus [`GOAL_OVERHEAD`]. Printed, not asserted.
const GOAL_RATIO: f64 = 1.25;
const GOAL_OVERHEAD: usize = 512;

/// How far the cache's weight of an entry may be from the heap it holds.
const WEIGHT_TOLERANCE: f64 = 0.10;

/// The size of hyper's first read buffer on a connection.
const READ_BUFFER: usize = 8 * 1024;

const HOST: &str = "memory.test";

type KeyFn = fn(&Request<Empty<Bytes>>) -> Option<HttpKey>;

/// The headers a typical origin sends, with a name hyper allocates on its
/// own (`x-request-id`) among the standard ones.
fn origin_headers(n: u32, body_len: usize) -> Vec<(HeaderName, String)> {
    vec![
        (
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8".into(),
        ),
        (http::header::CONTENT_LENGTH, body_len.to_string()),
        (http::header::CACHE_CONTROL, "public, max-age=600".into()),
        (http::header::ETAG, format!("\"{n:08x}-{body_len:x}\"")),
        (
            http::header::LAST_MODIFIED,
            "Sat, 05 Dec 2026 20:00:00 GMT".into(),
        ),
        // Parsed as hyper parses it: a copy of its own.
        (
            HeaderName::from_bytes(b"x-request-id").unwrap(),
            format!("req-{n:016x}"),
        ),
    ]
}

/// An answer as hyper parses it: its header values and body are slices of
/// one read buffer of at least 8 KiB.
fn answer_as_hyper_would(n: u32, body_len: usize) -> Response<Full<Bytes>> {
    let headers = origin_headers(n, body_len);
    let mut buffer = BytesMut::with_capacity(READ_BUFFER.max(body_len + 1024));
    let mut ranges = Vec::with_capacity(headers.len());
    for (_, value) in &headers {
        let start = buffer.len();
        buffer.extend_from_slice(value.as_bytes());
        ranges.push(start..buffer.len());
    }
    let head_len = buffer.len();
    buffer.resize(head_len + body_len, b'x');
    buffer[head_len..head_len + 4].copy_from_slice(&n.to_le_bytes());
    let buffer = buffer.freeze();

    let mut map = HeaderMap::with_capacity(headers.len());
    for ((name, _), range) in headers.into_iter().zip(ranges) {
        map.append(
            name,
            HeaderValue::from_maybe_shared(buffer.slice(range)).unwrap(),
        );
    }
    let mut response = Response::new(Full::new(buffer.slice(head_len..)));
    *response.headers_mut() = map;
    response
}

fn request(n: u32) -> Request<Empty<Bytes>> {
    Request::get(format!("/entry/{n}"))
        .header("host", HOST)
        .body(Empty::new())
        .unwrap()
}

/// What an entry carries: body, header lines, key.
fn content_of(n: u32, body_len: usize) -> usize {
    let headers: usize = origin_headers(n, body_len)
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + HEADER_LINE)
        .sum();
    let key = default_key(&request(n)).unwrap();
    body_len + headers + key.as_bytes().len()
}

/// Asks for the answers `range` through the layer, each body read to its
/// end, and checks they came as `outcome`.
async fn fetch<S>(service: &S, range: std::ops::Range<u32>, body_len: usize, outcome: Outcome)
where
    S: tower::Service<
            Request<Empty<Bytes>>,
            Response = Response<shared_calls::http_policy::SharedBody<Full<Bytes>>>,
            Error = Infallible,
        > + Clone,
{
    for n in range {
        let response = service.clone().oneshot(request(n)).await.unwrap();
        assert_eq!(response.extensions().get::<Outcome>(), Some(&outcome));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), body_len);
    }
}

/// Heap, weight and content per entry of `entries` answers of `body_len`.
struct Measured {
    heap: f64,
    weight: f64,
    content: f64,
}

async fn measure(entries: u32, body_len: usize) -> Measured {
    let layer = SharedCallsLayer::new(default_key as KeyFn)
        .ttl(Duration::from_secs(600))
        .max_bytes(16 << 30);
    let cache: HttpCache = layer.cache_handle();
    let service = layer.layer(service_fn(move |request: Request<Empty<Bytes>>| {
        let n: u32 = request.uri().path()["/entry/".len()..].parse().unwrap();
        async move { Ok::<_, Infallible>(answer_as_hyper_would(n, body_len)) }
    }));
    // Warm up: the runtime, the cache's first tables.
    let warm_up = 1_000;
    fetch(
        &service,
        u32::MAX - warm_up..u32::MAX,
        body_len,
        Outcome::Miss,
    )
    .await;
    let (heap_before, weight_before) = (HEAP.allocated(), cache.stats().weight);

    fetch(&service, 0..entries, body_len, Outcome::Miss).await;
    // A hit leaves what every hit entry keeps: its last `Age` and
    // `Cache-Status`.
    fetch(&service, 0..entries, body_len, Outcome::Hit).await;
    let stats = cache.stats();
    assert_eq!(
        stats.entries,
        u64::from(entries + warm_up),
        "every answer is stored"
    );
    let heap = HEAP.allocated().saturating_sub(heap_before);
    let weight = stats.weight - weight_before;
    let content: usize = (0..entries).map(|n| content_of(n, body_len)).sum();
    let per_entry = |total: f64| total / f64::from(entries);
    Measured {
        heap: per_entry(heap as f64),
        weight: per_entry(weight as f64),
        content: per_entry(content as f64),
    }
}

fn entries() -> u32 {
    std::env::var("ENTRY_MEMORY_ENTRIES")
        .ok()
        .and_then(|entries| entries.parse().ok())
        .unwrap_or(10_000)
}

#[tokio::test(flavor = "current_thread")]
async fn a_stored_entry_holds_its_content_not_the_read_buffer_and_weighs_its_heap() {
    let entries = entries();
    let only: Option<usize> = std::env::var("ENTRY_MEMORY_BODY")
        .ok()
        .and_then(|body| body.parse().ok());
    // Large bodies: fewer of them, the same order of heap.
    let cases = [(64, entries), (1024, entries), (16 * 1024, entries / 8)];
    for (body_len, entries) in cases
        .into_iter()
        .filter(|(body_len, _)| only.is_none_or(|only| only == *body_len))
    {
        let measured = measure(entries, body_len).await;
        let bound = measured.content + FIXED_OVERHEAD as f64;
        println!(
            "{entries} entries of a {body_len} B body: heap {:.0} B per entry (bound {bound:.0}: \
             {:.0} B of body, header lines and key + {FIXED_OVERHEAD} B), weight {:.0} B ({:+.1} %)",
            measured.heap,
            measured.content,
            measured.weight,
            (measured.weight / measured.heap - 1.0) * 100.0,
        );
        // The goal's form: without the lines' handles.
        let bytes = measured.content - (HEADER_LINE * origin_headers(0, body_len).len()) as f64;
        let goal = GOAL_RATIO * (bytes + GOAL_OVERHEAD as f64);
        println!(
            "  {:.2} x its body, header names and values and key + {GOAL_OVERHEAD} B \
             (goal {GOAL_RATIO}: {goal:.0} B)",
            measured.heap / (bytes + GOAL_OVERHEAD as f64)
        );
        assert!(
            measured.heap <= bound,
            "a {body_len} B answer holds {:.0} B of heap, over the bound of {bound:.0} B",
            measured.heap
        );
        let off = (measured.weight - measured.heap).abs() / measured.heap;
        assert!(
            off <= WEIGHT_TOLERANCE,
            "a {body_len} B answer weighs {:.0} for {:.0} B of heap: off by {:.1} %",
            measured.weight,
            measured.heap,
            off * 100.0
        );
    }
}
