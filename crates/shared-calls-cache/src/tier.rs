//! The storage tier behind the cache: look up and store, nothing else.
//!
//! Loading is not a tier's business: the cache's flights load, then store
//! through this boundary. A second, shared tier (Redis, for a fleet) slots in
//! as another implementation consulted after this one inside the flight.

use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::Arc;

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

    /// Entries and their total weight.
    fn size(&self) -> (u64, u64);
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

/// What the store keeps per entry besides the key and the entry: its slot's
/// links and state, its hash table's index, and their growth slack (an
/// estimate, measured).
const STORE_OVERHEAD: usize = 24;

impl<K, V> Weighers<K, V> {
    /// The bytes an entry holds: inline, its bookkeeping, and the heap.
    fn weigh(&self, key: &K, entry: &Entry<V>) -> u32 {
        let inline = size_of::<K>() + size_of::<Entry<V>>() + STORE_OVERHEAD;
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

/// How the cache hashes keys, in its store and for its own bookkeeping
/// (invalidation generations, store stripes): foldhash, randomly seeded per
/// process and per cache, as keys may be chosen by clients (URLs), and
/// several times faster than SipHash on a URL-sized key.
pub(crate) type KeyHasher = foldhash::fast::RandomState;

/// The weight of a stored entry, as the bound counts it.
type EntryWeigher<K, V> = Arc<dyn Fn(&K, &Entry<V>) -> u32 + Send + Sync + 'static>;

/// How many parts the in-memory store splits into, each with its own lock
/// and a share of the bound: enough that writers on many cores rarely meet,
/// few enough that an entry of up to a sixteenth of the bound is kept.
const SHARDS: usize = 16;

/// The weight of an entry a bound in bytes or weight is sized for. The
/// number of entries it implies sets how many recently evicted keys the
/// store remembers (half of it), each a slot of the store (100 to 200 bytes)
/// that the bound does not count: at most about a tenth of the bound.
const TYPICAL_ENTRY_WEIGHT: u64 = 1024;

/// The in-memory tier: a sharded `quick_cache` store bounded by capacity
/// alone, with scan-resistant eviction (S3-FIFO) that remembers the keys it
/// recently evicted.
///
/// Entries carry their own lifetimes, which the cache checks on every read,
/// so the store needs no per-entry expiry. An entry past its last window
/// stays until a load of its key replaces it or capacity evicts it; either
/// way the memory stays within the configured bound, and freshness follows
/// tokio's clock alone, paused or not. The store evicts as it inserts, so
/// its sizes are always exact.
pub(crate) struct MemoryTier<K, V> {
    cache: quick_cache::sync::Cache<K, Entry<V>, Weigh<K, V>, KeyHasher, CountEvictions>,
}

/// The store's weigher: the bound's weight of an entry, never zero (the
/// store never evicts an entry of weight zero).
struct Weigh<K, V>(EntryWeigher<K, V>);

impl<K, V> Clone for Weigh<K, V> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K, V> quick_cache::Weighter<K, Entry<V>> for Weigh<K, V> {
    fn weight(&self, key: &K, entry: &Entry<V>) -> u64 {
        u64::from((self.0)(key, entry))
    }
}

/// Counts the entries the bound evicts, and those too heavy to be kept.
#[derive(Clone)]
struct CountEvictions(Arc<Counters>);

impl<K, V> quick_cache::Lifecycle<K, Entry<V>> for CountEvictions {
    /// The evicted entries, released once the store's lock is (up to two;
    /// any more are released under it).
    type RequestState = [Option<(K, Entry<V>)>; 2];

    fn on_evict(&self, evicted: &mut Self::RequestState, key: K, entry: Entry<V>) {
        self.0.evictions.add();
        if let Some(slot) = evicted.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some((key, entry));
        }
    }
}

impl<K, V> MemoryTier<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub(crate) fn new(capacity: Capacity<K, V>, counters: Arc<Counters>) -> Self {
        let (max, entries, weigh): (u64, u64, EntryWeigher<K, V>) = match capacity {
            Capacity::Entries(max) => (max, max, Arc::new(|_: &K, _: &Entry<V>| 1)),
            Capacity::Bytes { max, weighers } => (
                max,
                max / TYPICAL_ENTRY_WEIGHT,
                Arc::new(move |key: &K, entry: &Entry<V>| weighers.weigh(key, entry)),
            ),
            Capacity::Weight { max, weigher } => (
                max,
                max / TYPICAL_ENTRY_WEIGHT,
                Arc::new(move |key: &K, entry: &Entry<V>| match &entry.content {
                    crate::fetch::Content::Value(value) => weigher(key, value).max(1),
                    _ => 1,
                }),
            ),
        };
        let shards = shards_for(entries);
        let options = quick_cache::OptionsBuilder::new()
            .shards(shards as usize)
            .estimated_items_capacity(usize::try_from(entries).unwrap_or(usize::MAX))
            // Each shard holds an equal share: the shares never add up to
            // more than the bound.
            .weight_capacity(max / shards * shards)
            .build()
            .expect("every option is set");
        Self {
            cache: quick_cache::sync::Cache::with_options(
                options,
                Weigh(weigh),
                KeyHasher::default(),
                CountEvictions(counters),
            ),
        }
    }
}

/// How many shards a store of about `entries` entries has: [`SHARDS`], or
/// fewer so that each holds at least 32 entries.
fn shards_for(entries: u64) -> u64 {
    let mut shards = SHARDS as u64;
    while shards > 1 && entries / shards < 32 {
        shards /= 2;
    }
    shards
}

impl<K, V> Tier<K, V> for MemoryTier<K, V>
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
        // Two loads of one key never end at the same instant, bar a paused
        // clock; and removing a newer entry only costs a load.
        self.cache
            .remove_if(key, |current| current.loaded_at() == entry.loaded_at());
    }

    fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.cache.remove(key);
    }

    fn invalidate_all(&self) {
        self.cache.clear();
    }

    fn invalidate_if(&self, predicate: Box<dyn Fn(&K) -> bool + Send + Sync + 'static>) {
        // A walk over copies of the entries rather than `retain`, which
        // would call the user's predicate under the store's locks.
        for (key, _) in self.cache.iter() {
            if predicate(&key) {
                self.cache.remove(&key);
            }
        }
    }

    fn size(&self) -> (u64, u64) {
        (self.cache.len() as u64, self.cache.weight())
    }
}
