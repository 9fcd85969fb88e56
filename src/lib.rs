#![cfg_attr(feature = "http", doc = include_str!("../README.md"))]
#![cfg_attr(
    not(feature = "http"),
    doc = "Read-through caching middleware for tower: one backend call per key at a time, \
           shared answers, and a cache against stampedes. The HTTP layer needs the `http` \
           feature (on by default); without it, the collapsing primitive, the cache and the \
           generic layer are available."
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(inline)]
pub use shared_calls_cache as cache;
#[doc(inline)]
pub use shared_calls_flight as flight;
// The modules are named so that none of them shadows the `http` or `tower`
// crate in a user's `use` lines.
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
#[doc(inline)]
pub use shared_calls_http as http_policy;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[doc(inline)]
pub use shared_calls_redis as redis;
#[doc(inline)]
pub use shared_calls_tower as layer;

pub use shared_calls_cache::Outcome;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use shared_calls_http::{
    HttpCache, HttpCacheExt, HttpPolicy, SharedCalls, SharedCallsLayer, default_key,
};
