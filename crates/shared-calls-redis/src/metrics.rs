//! The tier's events through the `metrics` facade (feature `metrics`):
//! `shared_calls_redis_errors_total` and `shared_calls_redis_timeouts_total`
//! (label `operation`), `shared_calls_redis_rejected_total`, and the gauge
//! `shared_calls_redis_breaker_open` (1 while open). The cache's own L2
//! counters are in [`Stats::l2`](shared_calls_cache::Stats::l2), and
//! [`record_stats`](crate::record_stats) exports them.

#[cfg(feature = "metrics")]
mod enabled {
    pub(crate) fn error(operation: &'static str) {
        metrics::counter!("shared_calls_redis_errors_total", "operation" => operation).increment(1);
    }

    pub(crate) fn timeout(operation: &'static str) {
        metrics::counter!("shared_calls_redis_timeouts_total", "operation" => operation)
            .increment(1);
    }

    pub(crate) fn rejected() {
        metrics::counter!("shared_calls_redis_rejected_total").increment(1);
    }

    pub(crate) fn breaker(open: bool) {
        metrics::gauge!("shared_calls_redis_breaker_open").set(if open { 1.0 } else { 0.0 });
    }
}

#[cfg(not(feature = "metrics"))]
mod enabled {
    pub(crate) fn error(_: &'static str) {}
    pub(crate) fn timeout(_: &'static str) {}
    pub(crate) fn rejected() {}
    pub(crate) fn breaker(_: bool) {}
}

pub(crate) use enabled::{breaker, error, rejected, timeout};
