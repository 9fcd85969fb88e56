//! Read-through caching middleware for tower: one backend call per key at a
//! time, every concurrent identical request sharing its answer.
//!
//! The crates behind this facade, one concern each:
//!
//! - [`flight`]: the collapsing primitive ([`flight::Group`]).

#[doc(inline)]
pub use shared_calls_flight as flight;
