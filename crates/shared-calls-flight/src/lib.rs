//! One in-flight call per key: concurrent callers of an equal key share the
//! output of a single call, and each learns whether its value was fresh or
//! shared.
//!
//! This is go-zero's `SharedCalls` (`Do` and `DoEx`) for async Rust, with the
//! semantics a cache in front of a fragile backend needs:
//!
//! - a flight belongs to no single caller: dropping the caller that started
//!   it hands the work to another waiter instead of restarting or failing it;
//! - a panic in the work reaches every waiter as a typed
//!   [`FlightError::Panicked`], never a hang, and the key recovers at once;
//! - [`Group::forget`] lets new callers start a new flight while the old one
//!   finishes for its own waiters, and the old one never removes the new one;
//! - optional bounded waiting ([`GroupBuilder::wait_timeout`], feature `tokio`),
//!   a cap on waiters per key, and detached completion of abandoned work.
//!
//! ```
//! # mod shared_calls { pub use shared_calls_flight as flight; }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use shared_calls::flight::{Group, Source};
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//!
//! let group: Group<String, String> = Group::new();
//! let runs = Arc::new(AtomicUsize::new(0));
//! let load = |runs: Arc<AtomicUsize>| async move {
//!     runs.fetch_add(1, Ordering::SeqCst);
//!     tokio::task::yield_now().await;
//!     "row 7".to_string()
//! };
//!
//! // Two concurrent callers of one key: the work runs once.
//! let (a, b) = tokio::join!(
//!     group.call_ex("user:7", load(runs.clone())),
//!     group.call_ex("user:7", load(runs.clone())),
//! );
//! assert_eq!(a.unwrap(), ("row 7".to_string(), Source::Fresh));
//! assert_eq!(b.unwrap(), ("row 7".to_string(), Source::Shared));
//! assert_eq!(runs.load(Ordering::SeqCst), 1);
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod call;
mod detached;
mod entries;
mod error;
mod flight;
mod group;
mod shard;
mod sync;

pub use call::{Call, Source};
pub use error::FlightError;
pub use group::{Group, GroupBuilder};
