//! Read-through caching middleware for tower: one backend call per key at a
//! time, every concurrent identical request sharing its answer, and fresh
//! answers kept in a cache so that a hot key never stampedes the backend
//! when it expires.
//!
//! ```
//! # #[cfg(feature = "http")] {
//! use axum::{Router, routing::get};
//! use shared_calls::{SharedCallsLayer, default_key};
//! use std::time::Duration;
//!
//! let app: Router = Router::new()
//!     .route("/hot", get(|| async { "an expensive answer" }))
//!     .layer(SharedCallsLayer::new(default_key).ttl(Duration::from_secs(1)));
//! # let _ = app; }
//! ```
//!
//! # What it does
//!
//! For every request the key function returns a key, or `None` to bypass.
//! A fresh stored answer is returned at once (a *hit*). Otherwise the first
//! request for the key calls the inner service (a *miss*), and every request
//! for that key arriving meanwhile waits for that one call and receives its
//! answer too (*collapsed*). The answer is stored, if the policy allows, for
//! its TTL. Expired answers can be served *stale* while one background
//! refresh runs, or when the backend fails.
//!
//! Every HTTP response says what happened in a `Cache-Status` header (RFC
//! 9211) and an [`Outcome`] extension; see [`http`] for the table.
//!
//! # The crates behind it
//!
//! - [`flight`]: the collapsing primitive ([`flight::Group`]), go-zero's
//!   `SharedCalls` for async Rust.
//! - [`cache`]: the read-through cache ([`cache::Cache`]) around any async
//!   loader, a database query say: TTLs, stale windows, negative caching,
//!   hit-for-miss, invalidation.
//! - [`tower`]: the layer, generic over a [`tower::Policy`];
//!   [`tower::CloneResponses`] for any service whose responses can be cloned.
//! - [`http`] (feature `http`, on by default): the HTTP policy, so that
//!   [`SharedCallsLayer`] is the layer for axum, hyper and tonic.
//! - `redis` (feature `redis`): the second tier for a fleet of instances,
//!   one backend call per key across all of them
//!   (`SharedCallsLayer::new(key_fn).second_tier(tier, HttpCodec)`).

#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use shared_calls_cache as cache;
#[doc(inline)]
pub use shared_calls_flight as flight;
#[cfg(feature = "http")]
#[doc(inline)]
pub use shared_calls_http as http;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc(inline)]
pub use shared_calls_redis as redis;
#[doc(inline)]
pub use shared_calls_tower as tower;

pub use shared_calls_cache::Outcome;
#[cfg(feature = "http")]
pub use shared_calls_http::{HttpCache, HttpPolicy, SharedCallsLayer, default_key};
