//! The storage tier behind the cache: look up and store, nothing else.
//!
//! Loading is not a tier's business: the cache's flights load, then store
//! through this boundary. A second, shared tier (Redis, for a fleet) slots in
//! as another implementation consulted after this one inside the flight.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;

use moka::ops::compute::Op;

use crate::fetch::Entry;
use crate::stats::Counters;

/// One storage tier.
pub(crate) trait Tier<K, V>: Send + Sync + 'static {
    fn get<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    fn insert(&self, key: K, entry: Entry<V>);

    /// Removes the entry of `key` only if it is still the one `entry` copies.
    fn remove_if_same(&self, key: &K, entry: &Entry<V>);

    fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized;

    fn invalidate_all(&self);

    fn invalidate_if(&self, predicate: Box<dyn Fn(&K) -> bool + Send + Sync + 'static>);

    /// Entries and their total weight (eventually consistent).
    fn size(&self) -> (u64, u64);

    /// Applies pending evictions, so that `size` is exact.
    fn run_pending_tasks(&self);
}

/// A user's weigher of entries.
pub(crate) type Weigher<K, V> = Arc<dyn Fn(&K, &V) -> u32 + Send + Sync + 'static>;

/// How many bytes a key or a value holds on the heap.
pub(crate) type HeapSize<T> = Arc<dyn Fn(&T) -> usize + Send + Sync + 'static>;

/// What the byte bound adds to an entry's inline size: what the user's
/// weighers report the key and the value hold on the heap.
pub(crate) struct Weighers<K, V> {
    pub(crate) keys: Option<HeapSize<K>>,
    pub(crate) values: Option<HeapSize<V>>,
}

impl<K, V> Default for Weighers<K, V> {
    fn default() -> Self {
        Self {
            keys: None,
            values: None,
        }
    }
}

impl<K, V> Clone for Weighers<K, V> {
    fn clone(&self) -> Self {
        Self {
            keys: self.keys.clone(),
            values: self.values.clone(),
        }
    }
}

/// What moka keeps per entry besides the key and the entry: its node, the
/// key's `Arc` and hash, access-order links, counters (an estimate).
const MOKA_OVERHEAD: usize = 160;

impl<K, V> Weighers<K, V> {
    /// The bytes an entry holds: inline, its bookkeeping, and the heap.
    fn weigh(&self, key: &K, entry: &Entry<V>) -> u32 {
        let inline = size_of::<K>() + size_of::<Entry<V>>() + MOKA_OVERHEAD;
        let key = self.keys.as_ref().map_or(0, |weigh| weigh(key));
        let value = match (&entry.content, &self.values) {
            (crate::fetch::Content::Value(value), Some(weigh)) => weigh(value),
            _ => 0,
        };
        let bytes = inline.saturating_add(key).saturating_add(value);
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// How the in-memory tier bounds itself.
pub(crate) enum Capacity<K, V> {
    Entries(u64),
    Bytes { max: u64, weighers: Weighers<K, V> },
    Weight { max: u64, weigher: Weigher<K, V> },
}

impl<K, V> Clone for Capacity<K, V> {
    fn clone(&self) -> Self {
        match self {
            Capacity::Entries(max) => Capacity::Entries(*max),
            Capacity::Bytes { max, weighers } => Capacity::Bytes {
                max: *max,
                weighers: weighers.clone(),
            },
            Capacity::Weight { max, weigher } => Capacity::Weight {
                max: *max,
                weigher: weigher.clone(),
            },
        }
    }
}

/// The in-memory tier: a moka cache bounded by capacity alone.
///
/// Entries carry their own lifetimes, which the cache checks on every read,
/// so moka needs no per-entry expiry: its `Expiry` hook would cost every read
/// about a fifth of a moka `get`. An entry past its last window stays until a
/// load of its key replaces it or capacity evicts it; either way the memory
/// stays within the configured bound, and freshness follows tokio's clock
/// alone, paused or not.
pub(crate) struct MokaTier<K, V> {
    cache: moka::sync::Cache<K, Entry<V>>,
}

impl<K, V> MokaTier<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(capacity: Capacity<K, V>, counters: Arc<Counters>) -> Self {
        let builder = moka::sync::Cache::builder().eviction_listener(move |_, _, cause| {
            if cause == moka::notification::RemovalCause::Size {
                counters.evictions.add();
            }
        });
        let cache = match capacity {
            Capacity::Entries(max) => builder.max_capacity(max).build(),
            Capacity::Bytes { max, weighers } => builder
                .max_capacity(max)
                .weigher(move |key: &K, entry: &Entry<V>| weighers.weigh(key, entry))
                .build(),
            Capacity::Weight { max, weigher } => builder
                .max_capacity(max)
                .weigher(move |key: &K, entry: &Entry<V>| match &entry.content {
                    crate::fetch::Content::Value(value) => weigher(key, value).max(1),
                    _ => 1,
                })
                .build(),
        };
        Self { cache }
    }
}

impl<K, V> Tier<K, V> for MokaTier<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn get<Q>(&self, key: &Q) -> Option<Entry<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache.get(key)
    }

    fn insert(&self, key: K, entry: Entry<V>) {
        self.cache.insert(key, entry);
    }

    fn remove_if_same(&self, key: &K, entry: &Entry<V>) {
        self.cache
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                // Two loads of one key never end at the same instant, bar a
                // paused clock; and removing a newer entry only costs a load.
                Some(current) if current.value().loaded_at == entry.loaded_at => Op::Remove,
                _ => Op::Nop,
            });
    }

    fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache.invalidate(key);
    }

    fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    fn invalidate_if(&self, predicate: Box<dyn Fn(&K) -> bool + Send + Sync + 'static>) {
        // A walk over the entries, rather than moka's invalidation closures,
        // which would tax every read to serve this rare call.
        for (key, _) in self.cache.iter() {
            if predicate(&key) {
                self.cache.invalidate(&*key);
            }
        }
    }

    fn size(&self) -> (u64, u64) {
        (self.cache.entry_count(), self.cache.weighted_size())
    }

    fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }
}
