//! What a caller's read of the store saw before it joined its key's flight,
//! so that the flight's work reads the store again only when something may
//! have changed since: a store, an invalidation or a sweep that reached the
//! key's stripe.
//!
//! The stamps are taken before the read. A store counts itself after its
//! insert, and a flight's earlier leader stores before its flight ends, so a
//! store the read missed has counted itself by the time the new leader
//! compares.

#[cfg(shared_calls_loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(shared_calls_loom))]
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fetch::Entry;
use crate::generations::{Generation, Generations};

const STRIPES: usize = 1024;

/// Stores counted by stripes of key hashes: fixed memory whatever the key
/// churn; two keys sharing a stripe only cost each other a read.
pub(super) struct Stores {
    stripes: Box<[AtomicU64]>,
}

impl Stores {
    pub(super) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn stripe(&self, hash: u64) -> &AtomicU64 {
        &self.stripes[(hash as usize) % STRIPES]
    }

    /// Counts a store of the key with this hash, once it is in the tier.
    pub(super) fn stored(&self, hash: u64) {
        self.stripe(hash).fetch_add(1, Ordering::SeqCst);
    }
}

/// A read of the store, and what tells whether it still holds.
pub(super) struct Seen<V> {
    pub(super) hash: u64,
    stores: u64,
    generation: Generation,
    /// What the read found.
    pub(super) entry: Option<Entry<V>>,
}

impl<V> Seen<V> {
    /// The stamps of a read about to be made of the key with this hash.
    pub(super) fn stamp(hash: u64, stores: &Stores, generations: &Generations) -> Self {
        Self {
            hash,
            stores: stores.stripe(hash).load(Ordering::SeqCst),
            generation: generations.snapshot(hash),
            entry: None,
        }
    }

    /// Whether the store has changed nothing of the key's stripe since the
    /// read: reading it again would find the same entry (or one evicted
    /// meanwhile).
    pub(super) fn holds(&self, stores: &Stores, generations: &Generations) -> bool {
        stores.stripe(self.hash).load(Ordering::SeqCst) == self.stores
            && generations.is_current(self.hash, self.generation)
            && !generations.swept_since(self.generation)
    }
}
