//! A read-through cache that stops cache breakdown: fresh hits answer from
//! memory (a bounded store), and misses go through one flight per key
//! ([`shared_calls_flight`]), so a hot key that expires under load reaches the
//! backend once, not once per waiting caller. Only a flight's own, fresh
//! result is stored; followers share it and write nothing.
//!
//! Around a database query, as go-zero's `cachedsql` does around SQL:
//!
//! ```
//! # mod shared_calls { pub use shared_calls_cache as cache; }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use shared_calls::cache::{Cache, Fetch, LoadError};
//! use std::time::Duration;
//!
//! #[derive(Clone, Debug, PartialEq)]
//! struct User { name: String }
//!
//! async fn select_user(id: u64) -> Result<Option<User>, String> {
//!     Ok((id == 7).then(|| User { name: "ada".into() }))
//! }
//!
//! let users: Cache<u64, User, String> = Cache::builder()
//!     .ttl(Duration::from_secs(60))
//!     .negative_ttl(Duration::from_secs(5))
//!     .build();
//!
//! let load = |id| move || async move {
//!     Ok(match select_user(id).await? {
//!         Some(user) => Fetch::value(user),
//!         None => Fetch::absent(), // remembered for the negative TTL
//!     })
//! };
//! let ada = users.get_or_load(&7, load(7)).await.unwrap();
//! assert_eq!(ada.value().name, "ada");
//! assert_eq!(users.get_or_load(&8, load(8)).await.unwrap_err(), LoadError::NotFound);
//! # }
//! ```
//!
//! Per-result storage policy ([`Fetch`]): TTL (clamped and jittered),
//! do-not-store (the key becomes hit-for-miss), stale-while-revalidate and
//! stale-if-error windows. See [`Cache`] for the guarantees under
//! concurrency, expiry, invalidation, cancellation and panics, and
//! [`Stats`] for the counters.

mod builder;
mod cache;
mod fetch;
mod generations;
pub mod l2;
mod outcome;
mod stats;
mod tier;

pub use builder::{CacheBuilder, DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_BYTES, DEFAULT_NEGATIVE_TTL};
pub use cache::Cache;
pub use fetch::Fetch;
pub use l2::L2Stats;
pub use outcome::{Accepts, LoadError, Lookup, Outcome, Timing};
pub use stats::Stats;
