//! The second tier of shared-calls on Redis (or Valkey): a fleet of
//! instances shares one backend call per key, each invalidation reaches
//! every instance, and Redis trouble never fails a request.
//!
//! Each instance keeps its in-memory cache and its flights. On a miss, the
//! flight's leader reads Redis; a fresh entry there fills memory with its
//! remaining lifetime. Otherwise one instance of the fleet takes the key's
//! fill lock (`SET NX PX` with a random token, released by compare-and-delete
//! in a script), calls the backend, and writes Redis then memory; the others
//! wait for its entry. See [`shared_calls_cache::l2`] for the whole path.
//!
//! ```no_run
//! # mod shared_calls { pub use shared_calls_cache as cache; pub use shared_calls_redis as redis; }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use shared_calls::cache::l2::TextCodec;
//! use shared_calls::cache::{Cache, Fetch};
//! use shared_calls::redis::RedisTier;
//!
//! let redis = RedisTier::builder("redis://127.0.0.1:6379").build().await?;
//! let users: Cache<String, String> = Cache::builder().second_tier(redis, TextCodec).build();
//! let ada = users
//!     .get_or_load("user:7", || async { Ok(Fetch::value("ada".to_string())) })
//!     .await?;
//! assert_eq!(ada.value(), "ada");
//! # Ok(()) }
//! ```
//!
//! # Keys
//!
//! Every Redis key is `<prefix>{<hash>}:<role>:<key>`: the entry, its lock
//! and its invalidation generation share one hash tag, so one cluster slot,
//! and the scripts that touch them work on a cluster.
//!
//! # Waiting for another instance
//!
//! An instance that finds the lock held polls the entry and the lock in one
//! script, 1 ms after the first look and then doubling up to the
//! [poll interval](RedisTierBuilder::poll_interval), until the entry comes,
//! the lock goes, or the wait's bound passes.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod breaker;
mod builder;
mod connection;
mod keys;
mod listener;
pub mod local;
mod metrics;
mod scripts;
mod tier;

pub use builder::{ConnectError, RedisTierBuilder};
pub use tier::RedisTier;

/// Exports a cache's [`L2Stats`](shared_calls_cache::L2Stats) through the
/// `metrics` facade as gauges named `shared_calls_l2_<counter>`, labelled
/// with `cache`: call it on a timer, with `cache.stats().l2`.
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub fn record_stats(cache: &'static str, stats: &shared_calls_cache::L2Stats) {
    let counters = [
        ("hits", stats.hits),
        ("misses", stats.misses),
        ("corrupt", stats.corrupt),
        ("stale", stats.stale),
        ("locks_taken", stats.locks_taken),
        ("lock_waits", stats.lock_waits),
        ("lock_wait_misses", stats.lock_wait_misses),
        ("writes", stats.writes),
        ("fallbacks", stats.fallbacks),
        ("errors", stats.tier.errors),
        ("timeouts", stats.tier.timeouts),
        ("rejected", stats.tier.rejected),
        ("oversized", stats.tier.oversized),
        ("breaker_trips", stats.tier.breaker_trips),
        ("breaker_open", u64::from(stats.tier.breaker_open)),
    ];
    for (name, value) in counters {
        ::metrics::gauge!(format!("shared_calls_l2_{name}"), "cache" => cache).set(value as f64);
    }
}
