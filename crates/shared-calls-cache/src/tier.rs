//! The storage tier behind the cache: look up and store, nothing else.
//!
//! Loading is not a tier's business: the cache's flights load, then store
//! through this boundary. A second, shared tier (Redis, for a fleet) slots in
//! as another implementation consulted after this one inside the flight.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// What moka (0.12) keeps per entry besides the key and the entry, as a
/// heap profile counts it: the entry's node (24 B besides the entry), its
/// info (64: hash, counters, the key's `Arc`), its queue links (48) and
/// access-order node (24), the key's `Arc` (16 besides the key), the hash
/// table's bucket (16) and slot (about 16).
const MOKA_OVERHEAD: usize = 208;

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
    cache: moka::sync::Cache<K, Entry<V>, KeyHasher>,
    weigh: EntryWeigher<K, V>,
    /// Weight inserted since the store last caught up with its evictions.
    unsettled: AtomicU64,
    /// How much weight may be inserted before it catches up.
    settle_every: u64,
}

/// How the in-memory tier hashes keys: foldhash, randomly seeded per
/// process and per cache, as keys may be chosen by clients (URLs). moka's
/// default, SipHash-1-3, takes a good share of a hit's lookup.
type KeyHasher = foldhash::fast::RandomState;

/// The weight of a stored entry, as the bound counts it.
type EntryWeigher<K, V> = Arc<dyn Fn(&K, &Entry<V>) -> u32 + Send + Sync + 'static>;

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
        let counts_entries = matches!(capacity, Capacity::Entries(_));
        let (max, weigh): (u64, EntryWeigher<K, V>) = match capacity {
            Capacity::Entries(max) => (max, Arc::new(|_: &K, _: &Entry<V>| 1)),
            Capacity::Bytes { max, weighers } => (
                max,
                Arc::new(move |key: &K, entry: &Entry<V>| weighers.weigh(key, entry)),
            ),
            Capacity::Weight { max, weigher } => (
                max,
                Arc::new(move |key: &K, entry: &Entry<V>| match &entry.content {
                    crate::fetch::Content::Value(value) => weigher(key, value).max(1),
                    _ => 1,
                }),
            ),
        };
        let builder = builder.max_capacity(max);
        let hasher = KeyHasher::default();
        let cache = if counts_entries {
            builder.build_with_hasher(hasher)
        } else {
            let weigher = weigh.clone();
            builder
                .weigher(move |key: &K, entry: &Entry<V>| weigher(key, entry))
                .build_with_hasher(hasher)
        };
        Self {
            cache,
            weigh,
            unsettled: AtomicU64::new(0),
            settle_every: (max / 16).max(1),
        }
    }

    /// moka evicts past its bound only when its upkeep runs, by default
    /// after hundreds of writes, which could be hundreds of large answers:
    /// catch up once a sixteenth of the bound has been inserted, so that the
    /// bound holds within that.
    fn settle(&self, weight: u64) {
        let unsettled = self.unsettled.fetch_add(weight, Ordering::Relaxed) + weight;
        if unsettled >= self.settle_every {
            self.unsettled.fetch_sub(unsettled, Ordering::Relaxed);
            // Twice: the values one run evicts are released by the next.
            self.cache.run_pending_tasks();
            self.cache.run_pending_tasks();
        }
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
        let weight = (self.weigh)(&key, &entry);
        self.cache.insert(key, entry);
        self.settle(u64::from(weight));
    }

    fn remove_if_same(&self, key: &K, entry: &Entry<V>) {
        self.cache
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                // Two loads of one key never end at the same instant, bar a
                // paused clock; and removing a newer entry only costs a load.
                Some(current) if current.value().loaded_at() == entry.loaded_at() => Op::Remove,
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
