//! Overload: a backend far slower than the request rate (2 s a call), 1,000
//! concurrent clients on 4 keys, on tokio's paused clock so that the run is
//! exact and takes no real time.
//!
//! - With a lock timeout, waiting is bounded in time: the followers give up
//!   after the timeout and call the backend alone, so every request is
//!   answered within `lock_timeout + backend time`.
//! - With a cap on waiters, the requests over the cap get a `503`
//!   (`detail=overloaded`, `Retry-After`) at once, before the backend
//!   answers anyone, and the backend sees at most `keys × (1 + cap)` calls.
//! - The layer's in-flight map holds at most one flight per key, and none
//!   once the load is over.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Router, response::Response};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use shared_calls::{Outcome, SharedCallsLayer};
use tokio::time::Instant;
use tower::ServiceExt;

use support::{KeyFn, exact_ttl_layer};

/// The layer's TTL.
const TTL: Duration = Duration::from_secs(60);

const CLIENTS: usize = 1000;
const KEYS: usize = 4;
const BACKEND_TIME: Duration = Duration::from_secs(2);
const LOCK_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_WAITERS: usize = 10;

#[derive(Debug, Default)]
struct Backend {
    calls: AtomicUsize,
}

async fn slow(State(backend): State<Arc<Backend>>, Path(key): Path<usize>) -> String {
    backend.calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(BACKEND_TIME).await;
    format!("key={key}")
}

/// What one client saw, and when (on the paused clock).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    outcome: Option<Outcome>,
    cache_status: String,
    retry_after: bool,
    at: Duration,
}

/// The figures of one overload run.
#[derive(Debug)]
struct Run {
    answers: Vec<Answer>,
    backend_calls: usize,
    /// Keys with a flight, sampled while the backend was busy.
    in_flight_during: usize,
    in_flight_after: usize,
    entries_after: u64,
}

impl Run {
    fn count(&self, status: StatusCode) -> usize {
        self.answers.iter().filter(|a| a.status == status).count()
    }

    fn outcomes(&self, outcome: Outcome) -> usize {
        self.answers
            .iter()
            .filter(|a| a.outcome == Some(outcome))
            .count()
    }

    fn latest(&self, status: StatusCode) -> Duration {
        self.answers
            .iter()
            .filter(|a| a.status == status)
            .map(|a| a.at)
            .max()
            .unwrap_or_default()
    }

    fn print(&self, name: &str) {
        println!(
            "{name}: {CLIENTS} clients on {KEYS} keys, backend {BACKEND_TIME:?} a call: \
             {} backend calls, {} × 200 (last at {:?}), {} × 503 (last at {:?}), \
             {} flights during, {} after, {} entries stored; process peak memory {}",
            self.backend_calls,
            self.count(StatusCode::OK),
            self.latest(StatusCode::OK),
            self.count(StatusCode::SERVICE_UNAVAILABLE),
            self.latest(StatusCode::SERVICE_UNAVAILABLE),
            self.in_flight_during,
            self.in_flight_after,
            self.entries_after,
            peak_memory(),
        );
    }
}

/// The process's peak resident memory (`VmHWM`, Linux), for the record.
fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            Some(line["VmHWM:".len()..].trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `CLIENTS` requests at once, spread evenly over `KEYS` keys.
async fn overload(layer: SharedCallsLayer<KeyFn>) -> Run {
    let backend = Arc::new(Backend::default());
    let cache = layer.cache_handle();
    let app = Router::new()
        .route("/k/{key}", get(slow))
        .with_state(backend.clone())
        .layer(layer);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let app = app.clone();
            tokio::spawn(async move {
                let key = client % KEYS;
                let request = Request::get(format!("http://overload.test/k/{key}"))
                    .body(Body::empty())
                    .unwrap();
                let response: Response = app.oneshot(request).await.unwrap();
                let at = start.elapsed();
                let (parts, body) = response.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                if parts.status == StatusCode::OK {
                    assert_eq!(body, format!("key={key}"), "another key's answer");
                }
                Answer {
                    status: parts.status,
                    outcome: parts.extensions.get::<Outcome>().copied(),
                    cache_status: parts.headers["cache-status"].to_str().unwrap().to_owned(),
                    retry_after: parts.headers.contains_key("retry-after"),
                    at,
                }
            })
        })
        .collect();
    tokio::time::sleep(BACKEND_TIME / 2).await;
    let in_flight_during = cache.in_flight();
    let mut answers = Vec::with_capacity(CLIENTS);
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    Run {
        answers,
        backend_calls: backend.calls.load(Ordering::SeqCst),
        in_flight_during,
        in_flight_after: cache.in_flight(),
        entries_after: cache.stats().entries,
    }
}

#[tokio::test(start_paused = true)]
async fn with_a_lock_timeout_every_wait_is_bounded_in_time() {
    let run = overload(exact_ttl_layer(TTL).lock_timeout(LOCK_TIMEOUT)).await;
    run.print("lock timeout 500 ms");

    // One flight per key; every follower gave up after the lock timeout and
    // called the backend alone, without storing.
    assert_eq!(run.backend_calls, CLIENTS);
    assert_eq!(run.outcomes(Outcome::Miss), KEYS);
    assert_eq!(run.outcomes(Outcome::LockTimeout), CLIENTS - KEYS);
    assert!(
        run.answers
            .iter()
            .filter(|a| a.outcome == Some(Outcome::LockTimeout))
            .all(|a| a.cache_status == "shared-calls; fwd=miss; detail=lock-timeout")
    );
    assert_eq!(run.count(StatusCode::OK), CLIENTS);
    for answer in &run.answers {
        let bound = match answer.outcome {
            Some(Outcome::Miss) => BACKEND_TIME,
            _ => LOCK_TIMEOUT + BACKEND_TIME,
        };
        assert_eq!(answer.at, bound, "{answer:?}");
    }
    assert_eq!(run.in_flight_during, KEYS);
    assert_eq!(run.in_flight_after, 0);
    // Only the flights' own answers were stored.
    assert_eq!(run.entries_after, KEYS as u64);
}

#[tokio::test(start_paused = true)]
async fn with_a_cap_on_waiters_the_excess_gets_503_at_once() {
    let run = overload(exact_ttl_layer(TTL).max_waiters(MAX_WAITERS)).await;
    run.print("max_waiters 10");

    let admitted = KEYS * (1 + MAX_WAITERS);
    assert_eq!(run.backend_calls, KEYS);
    assert_eq!(run.count(StatusCode::OK), admitted);
    assert_eq!(run.outcomes(Outcome::Collapsed), KEYS * MAX_WAITERS);
    assert_eq!(
        run.count(StatusCode::SERVICE_UNAVAILABLE),
        CLIENTS - admitted
    );
    for answer in &run.answers {
        if answer.status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(answer.at, Duration::ZERO, "refused at once: {answer:?}");
            assert!(answer.retry_after);
            assert!(
                answer.cache_status.ends_with("detail=overloaded"),
                "{answer:?}"
            );
        } else {
            assert_eq!(answer.at, BACKEND_TIME, "{answer:?}");
        }
    }
    assert_eq!(run.in_flight_during, KEYS);
    assert_eq!(run.in_flight_after, 0);
    assert_eq!(run.entries_after, KEYS as u64);
}

#[tokio::test(start_paused = true)]
async fn with_both_the_backend_sees_at_most_one_call_per_admitted_request() {
    let run = overload(
        exact_ttl_layer(TTL)
            .lock_timeout(LOCK_TIMEOUT)
            .max_waiters(MAX_WAITERS),
    )
    .await;
    run.print("lock timeout 500 ms + max_waiters 10");

    let admitted = KEYS * (1 + MAX_WAITERS);
    // The leaders, then each admitted follower alone after the lock timeout.
    assert_eq!(run.backend_calls, admitted);
    assert_eq!(run.outcomes(Outcome::LockTimeout), KEYS * MAX_WAITERS);
    assert_eq!(
        run.count(StatusCode::SERVICE_UNAVAILABLE),
        CLIENTS - admitted
    );
    assert_eq!(
        run.latest(StatusCode::SERVICE_UNAVAILABLE),
        Duration::ZERO,
        "refused before the backend answered anyone"
    );
    assert_eq!(run.latest(StatusCode::OK), LOCK_TIMEOUT + BACKEND_TIME);
    assert_eq!(run.in_flight_after, 0);
}

#[tokio::test(start_paused = true)]
async fn once_the_slow_answer_is_stored_the_same_crowd_costs_nothing() {
    let layer = exact_ttl_layer(TTL)
        .lock_timeout(LOCK_TIMEOUT)
        .max_waiters(MAX_WAITERS);
    let backend = Arc::new(Backend::default());
    let app = Router::new()
        .route("/k/{key}", get(slow))
        .with_state(backend.clone())
        .layer(layer);
    let request = |key: usize| {
        Request::get(format!("http://overload.test/k/{key}"))
            .body(Body::empty())
            .unwrap()
    };
    for key in 0..KEYS {
        let response = app.clone().oneshot(request(key)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| tokio::spawn(app.clone().oneshot(request(client % KEYS))))
        .collect();
    for task in tasks {
        let response = task.await.unwrap().unwrap();
        assert_eq!(response.extensions().get::<Outcome>(), Some(&Outcome::Hit));
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(backend.calls.load(Ordering::SeqCst), KEYS);
}
