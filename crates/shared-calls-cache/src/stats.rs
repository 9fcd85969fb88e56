//! Counters of what the cache did, and their snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{L2Stats, Outcome};

/// Counters updated on the hot path: relaxed increments, each on its own
/// cache line so that cores counting different things do not contend.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: Padded,
    misses: Padded,
    collapsed: Padded,
    stale: Padded,
    stale_if_error: Padded,
    passes: Padded,
    lock_timeouts: Padded,
    pub(crate) refreshes: Padded,
    pub(crate) load_failures: Padded,
    pub(crate) evictions: Padded,
}

#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded(AtomicU64);

impl Padded {
    pub(crate) fn add(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn sub(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Counters {
    pub(crate) fn record(&self, outcome: Outcome) {
        if let Some(counter) = self.counter(outcome) {
            counter.add();
        }
    }

    /// Takes back one [`record`](Self::record)ed `outcome`.
    pub(crate) fn unrecord(&self, outcome: Outcome) {
        if let Some(counter) = self.counter(outcome) {
            counter.sub();
        }
    }

    fn counter(&self, outcome: Outcome) -> Option<&Padded> {
        Some(match outcome {
            Outcome::Hit => &self.hits,
            Outcome::Miss => &self.misses,
            Outcome::Collapsed => &self.collapsed,
            Outcome::Stale => &self.stale,
            Outcome::StaleIfError => &self.stale_if_error,
            Outcome::Pass => &self.passes,
            Outcome::LockTimeout => &self.lock_timeouts,
            Outcome::Bypass => return None,
        })
    }

    pub(crate) fn snapshot(&self, entries: u64, weight: u64, in_flight: usize) -> Stats {
        Stats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            collapsed: self.collapsed.get(),
            stale: self.stale.get(),
            stale_if_error: self.stale_if_error.get(),
            passes: self.passes.get(),
            lock_timeouts: self.lock_timeouts.get(),
            refreshes: self.refreshes.get(),
            load_failures: self.load_failures.get(),
            evictions: self.evictions.get(),
            entries,
            weight,
            in_flight,
            l2: L2Stats::default(),
        }
    }
}

/// A snapshot of a cache's counters, taken by [`Cache::stats`](crate::Cache::stats).
///
/// Each caller counts once, under the [`Outcome`] it received; negative hits
/// count as hits. A layer's request whose lookup brought an answer it could
/// not use (another HTTP `Vary` variant's) counts under what answered it in
/// the end ([`Cache::recount`](crate::Cache::recount)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lookups answered by a fresh entry.
    pub hits: u64,
    /// Lookups whose own load ran.
    pub misses: u64,
    /// Lookups answered by another caller's load.
    pub collapsed: u64,
    /// Lookups answered stale while a refresh ran.
    pub stale: u64,
    /// Lookups answered stale because their load failed.
    pub stale_if_error: u64,
    /// Lookups of hit-for-miss keys, loaded without a flight.
    pub passes: u64,
    /// Lookups that stopped waiting after the lock timeout.
    pub lock_timeouts: u64,
    /// Background refreshes whose load ran.
    pub refreshes: u64,
    /// Loads that failed or panicked (once per load, not per waiter).
    pub load_failures: u64,
    /// Entries evicted to respect the capacity, and entries too heavy to be
    /// kept ([Memory](crate::CacheBuilder#memory)).
    pub evictions: u64,
    /// Entries stored now, including expired ones
    /// that no load has replaced and capacity has not evicted yet.
    pub entries: u64,
    /// Their total weight: entries, or the weigher's unit.
    pub weight: u64,
    /// Keys with a load in flight now.
    pub in_flight: usize,
    /// What the [second tier](crate::l2) did (zeros without one).
    pub l2: L2Stats,
}
