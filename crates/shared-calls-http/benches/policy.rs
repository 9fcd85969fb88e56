//! The response analysis on the hit and miss paths, this crate's against
//! `http-cache-semantics` 3 on the same exchange (`cargo bench -p
//! shared-calls-http --bench policy`):
//!
//! - **hit**: is a stored response fresh for this request, and for how
//!   long. Ours is what the layer does on a hit: the `Vary` values compared
//!   and the time to live read off the deadline stored with the entry.
//!   Theirs is `CachePolicy::time_to_live` alone, and
//!   `CachePolicy::before_request` (the call that also checks the request,
//!   `Vary` included, and makes the response headers to send);
//! - **miss**: the analysis of a response that just arrived: `storability`
//!   against `CachePolicy::new_options` followed by `is_storable` and
//!   `time_to_live`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Method, Request, Response, StatusCode};
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};
use shared_calls_http::freshness::{Rules, Storability, http_date, storability};

/// A browser's request for a typical API answer.
const REQUEST: &[(&str, &str)] = &[
    ("host", "api.test"),
    ("accept", "application/json"),
    ("accept-encoding", "gzip, br"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0",
    ),
];

/// The origin's answer to [`REQUEST`], dated `now`.
fn response(now: SystemTime) -> Response<()> {
    Response::builder()
        .header("content-type", "application/json; charset=utf-8")
        .header("content-length", "1024")
        .header(
            "cache-control",
            "public, max-age=600, stale-while-revalidate=30",
        )
        .header("etag", "\"5f3a-1024\"")
        .header("last-modified", "Sat, 05 Dec 2026 20:00:00 GMT")
        .header("vary", "Accept-Encoding")
        .header("date", http_date(now))
        .body(())
        .unwrap()
}

fn request() -> Request<()> {
    let mut request = Request::builder().uri("http://api.test/users/7");
    for (name, value) in REQUEST {
        request = request.header(*name, *value);
    }
    request.body(()).unwrap()
}

fn bench(c: &mut Criterion) {
    let now = SystemTime::now();
    let request = request();
    let response = response(now);
    let response_headers = response.headers().clone();
    let options = CacheOptions {
        shared: true,
        ..CacheOptions::default()
    };

    // What the layer keeps of a stored response: the deadline and the Vary
    // values of the request that fetched it.
    let Storability::Store(freshness) = storability(
        &Rules::default(),
        &Method::GET,
        request.headers(),
        StatusCode::OK,
        &response_headers,
        now,
    ) else {
        panic!("the response is stored");
    };
    let vary = freshness.vary.as_ref().unwrap().capture(request.headers());
    let fresh_until = Instant::now() + freshness.ttl;
    let policy = CachePolicy::new_options(&request, &response, now, options);
    assert!(matches!(
        policy.before_request(&request, now),
        BeforeRequest::Fresh(_)
    ));

    let mut hit = c.benchmark_group("hit");
    hit.bench_function("ours: vary matches + time to live", |b| {
        b.iter(|| {
            let matches = black_box(&vary).matches(black_box(&request).headers());
            let ttl = black_box(fresh_until).saturating_duration_since(Instant::now());
            black_box((matches, ttl))
        })
    });
    hit.bench_function("http-cache-semantics: time_to_live", |b| {
        b.iter(|| black_box(&policy).time_to_live(black_box(SystemTime::now())))
    });
    hit.bench_function("http-cache-semantics: before_request", |b| {
        b.iter(|| black_box(&policy).before_request(black_box(&request), SystemTime::now()))
    });
    hit.finish();

    let mut miss = c.benchmark_group("miss");
    miss.bench_function("ours: storability", |b| {
        b.iter(|| {
            storability(
                black_box(&Rules::default()),
                &Method::GET,
                black_box(request.headers()),
                StatusCode::OK,
                black_box(&response_headers),
                now,
            )
        })
    });
    miss.bench_function(
        "http-cache-semantics: new_options + is_storable + time_to_live",
        |b| {
            b.iter(|| {
                let policy = CachePolicy::new_options(
                    black_box(&request),
                    black_box(&response),
                    now,
                    options,
                );
                black_box((policy.is_storable(), policy.time_to_live(now)))
            })
        },
    );
    miss.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench
}
criterion_main!(benches);
