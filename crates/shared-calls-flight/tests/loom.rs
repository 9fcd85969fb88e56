//! Loom models of the flight's races; run with `RUSTFLAGS="--cfg shared_calls_loom"`.
#![cfg(shared_calls_loom)]
