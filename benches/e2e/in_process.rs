//! The layer's own cost without the network: requests sent straight into
//! the server's `Router` on one thread, building the request and reading
//! the body included.
//!
//! Every case is measured in slices of requests, the cases in turn (each
//! round starting with another), so that all of them meet the same machine:
//! on a shared machine the speed drifts within seconds. Each figure is the
//! median over the rounds, and each difference the median of the rounds'
//! differences.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use tower::{Service, ServiceExt};

use super::{BODY_SIZE, Backend, Error, Keys, Protocol, Variant, Workload, app};

/// The largest body of the run: hits should cost the same at any size.
pub(crate) const LARGE_BODY: usize = 4 * 1024 * 1024;

/// One thing measured: a variant, the size of its answers, and whether
/// every request asks for a key of its own.
struct Case {
    variant: Variant,
    body: usize,
    misses: bool,
    router: Router,
    requests: u64,
    ns: Vec<f64>,
}

impl Case {
    fn new(variant: Variant, body: usize, misses: bool) -> Self {
        let workload = Workload {
            name: "in-process",
            protocol: Protocol::Http1,
            keys: Keys::One,
            // Hits stay fresh for the whole run; misses are new keys.
            ttl: Duration::from_secs(3600),
            delay: Duration::ZERO,
            duration: Duration::ZERO,
        };
        let backend = Backend {
            calls: Arc::new(AtomicU64::new(0)),
            delay: Duration::ZERO,
            body: Bytes::from(vec![b'x'; body]),
        };
        Self {
            variant,
            body,
            misses,
            router: app(variant, &workload, backend),
            requests: 0,
            ns: Vec::new(),
        }
    }

    fn name(&self) -> String {
        let size = match self.body {
            size if size >= 1024 * 1024 => format!("{} MiB", size / (1024 * 1024)),
            size => format!("{} KiB", size / 1024),
        };
        let keys = if self.misses {
            "a new key each"
        } else {
            "one key"
        };
        format!("{}, {size}, {keys}", self.variant.name())
    }

    /// One request, answered and read to its end.
    async fn one(&mut self) -> Result<(), Error> {
        self.requests += 1;
        let uri = match self.misses {
            true => format!("/item/miss-{}", self.requests),
            false => "/item/hot-0".to_owned(),
        };
        let request = http::Request::get(uri)
            .header(http::header::HOST, "bench.test")
            .body(axum::body::Body::empty())?;
        let response = ServiceExt::<http::Request<axum::body::Body>>::ready(&mut self.router)
            .await?
            .call(request)
            .await?;
        let body = response.into_body().collect().await?.to_bytes();
        if body.len() != self.body {
            return Err(format!("body of {} bytes", body.len()).into());
        }
        Ok(())
    }

    /// Nanoseconds per request over `requests` requests.
    async fn slice(&mut self, requests: u32) -> Result<f64, Error> {
        let start = Instant::now();
        for _ in 0..requests {
            self.one().await?;
        }
        Ok(start.elapsed().as_nanos() as f64 / f64::from(requests))
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs every case (whose name contains `only`, if given) in turn and
/// prints the tables.
pub(crate) fn print(quick: bool, only: Option<&str>) -> Result<(), Error> {
    let (rounds, slice) = if quick { (7, 2_000) } else { (21, 10_000) };
    let cases = vec![
        Case::new(Variant::NoLayer, BODY_SIZE, false),
        Case::new(Variant::AxumResponseCache, BODY_SIZE, false),
        Case::new(Variant::SharedCalls, BODY_SIZE, false),
        Case::new(Variant::SharedCalls, 64 * 1024, false),
        Case::new(Variant::SharedCalls, LARGE_BODY, false),
        Case::new(Variant::NoLayer, BODY_SIZE, true),
        Case::new(Variant::SharedCalls, BODY_SIZE, true),
    ];
    let cases: Vec<Case> = cases
        .into_iter()
        .filter(|case| only.is_none_or(|only| case.name().contains(only)))
        .collect();
    println!();
    println!(
        "In process (one thread, no network): {rounds} rounds of {slice} requests per case, \
         the cases in turn; load average before: {}",
        super::load_average()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cases = runtime.block_on(async {
        let mut cases = cases;
        // Warm up: the stored answers, the allocator, the caches' tables.
        for case in &mut cases {
            case.slice(slice / 10).await?;
        }
        for round in 0..rounds {
            let n = cases.len();
            for i in 0..n {
                let case = &mut cases[(round + i) % n];
                let ns = case.slice(slice).await?;
                case.ns.push(ns);
            }
        }
        Ok::<_, Error>(cases)
    })?;
    println!("load average after: {}", super::load_average());
    println!();
    println!("| case | ns per request | over no layer (same keys) | ratio |");
    println!("|---|---:|---:|---:|");
    // Each case against the no-layer case with the same keys.
    let baseline = |case: &Case| {
        cases.iter().find(|base| {
            case.variant != Variant::NoLayer
                && base.variant == Variant::NoLayer
                && base.misses == case.misses
        })
    };
    for case in &cases {
        let ns = median(case.ns.clone());
        let (over, ratio) = match baseline(case) {
            Some(base) => {
                let over = median(case.ns.iter().zip(&base.ns).map(|(a, b)| a - b).collect());
                let ratio = median(case.ns.iter().zip(&base.ns).map(|(a, b)| b / a).collect());
                (format!("{over:+.0} ns"), format!("{ratio:.2}x"))
            }
            None => (String::new(), String::new()),
        };
        println!("| {} | {ns:.0} | {over} | {ratio} |", case.name());
    }
    // Hits across body sizes, against the 1 KiB hit of the same round.
    let hits: Vec<&Case> = cases
        .iter()
        .filter(|case| case.variant == Variant::SharedCalls && !case.misses)
        .collect();
    if hits.is_empty() {
        return Ok(());
    }
    println!();
    println!("| shared-calls hit | ns per request | cost / 1 KiB hit |");
    println!("|---|---:|---:|");
    for case in &hits {
        let ratio = median(
            case.ns
                .iter()
                .zip(&hits[0].ns)
                .map(|(a, b)| a / b)
                .collect(),
        );
        println!(
            "| {} | {:.0} | {ratio:.2}x |",
            case.name(),
            median(case.ns.clone())
        );
    }
    Ok(())
}
