//! The HTTP policy of shared-calls.

pub mod body;
pub mod cache_control;
pub mod freshness;
