//! A tower layer that collapses concurrent identical requests onto one
//! inner call and keeps fresh answers in a shared cache, so that a hot key
//! never stampedes the backend.
//!
//! [`CachingLayer`] derives a key per request, or `None` to bypass. What
//! happens to responses is the business of a [`Policy`]: this crate ships
//! [`CloneResponses`] for services whose responses can be cloned; the HTTP
//! policy lives in `shared-calls-http`, and any protocol can have its own.
//!
//! The machinery underneath is [`shared_calls_cache`] (the read-through
//! cache) over [`shared_calls_cache`]'s flights: see [`Caching`] for the
//! guarantees under concurrency, cancellation and panics.

mod clone_policy;
mod future;
mod layer;
mod miss;
mod policy;
mod service;

pub use clone_policy::{CloneResponses, SharedError};
pub use future::ResponseFuture;
pub use layer::{CachingLayer, PolicyCache};
pub use policy::{Admission, Answer, Leader, Policy, Rejected, Reply, ServicePolicy};
pub use service::Caching;
pub use shared_calls_cache::{Accepts, Cache, CacheBuilder, Fetch, Outcome, Stats, Timing};
