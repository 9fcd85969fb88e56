//! Helpers shared by the flight's integration tests.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// What a piece of work did: started, finished, dropped. The work records
/// itself in the fields; the tests read them through the methods.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    pub(crate) started: AtomicUsize,
    pub(crate) finished: AtomicUsize,
    pub(crate) dropped: AtomicBool,
}

impl Probe {
    pub(crate) fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    pub(crate) fn finished(&self) -> usize {
        self.finished.load(Ordering::SeqCst)
    }

    pub(crate) fn dropped(&self) -> bool {
        self.dropped.load(Ordering::SeqCst)
    }
}
