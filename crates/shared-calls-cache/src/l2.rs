//! The second tier: a store that a fleet of caches shares (Redis, say),
//! consulted by a flight's leader after the in-memory tier misses.
//!
//! The cache speaks to it in bytes: a [`Codec`] turns keys and values into
//! bytes, the cache wraps them in its own versioned, checksummed envelope
//! (absolute expiry and stale windows included, so that every instance agrees
//! on freshness), and a [`SharedTier`] stores them and holds the per-key fill
//! locks. The tier crate (`shared-calls-redis`) implements [`SharedTier`]; the
//! protocol policy (the HTTP one, say) implements [`Codec`]. Neither sees the
//! other.
//!
//! # The path of a miss
//!
//! 1. The local flight's leader reads the second tier. A fresh entry fills the
//!    first tier with its *remaining* lifetime and answers
//!    [`Outcome::Hit`](crate::Outcome::Hit) ([`Lookup::from_second_tier`](crate::Lookup::from_second_tier)).
//! 2. Otherwise it takes the key's fill lock. The holder loads, writes the
//!    second tier, then the first, and releases the lock; a stale entry inside
//!    its stale-while-revalidate window answers at once while the holder
//!    refreshes it in the background, once for the whole fleet.
//! 3. An instance that finds the lock held waits for the holder's entry, at
//!    most the [lock timeout](crate::CacheBuilder::lock_timeout) (or the
//!    tier's own bound), then loads by itself as a single instance would.
//!
//! # Fail-open
//!
//! Any [`TierError`] (down, slow, garbage, breaker open) leaves the request
//! to the first tier and local flights: it never fails a request. A value
//! that does not decode is a miss.

mod envelope;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(crate) use envelope::{decode, encode};

/// A boxed future of a [`SharedTier`] operation.
pub type TierFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the second tier gave no answer. The cache goes on without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TierError {
    /// The operation failed: connection refused or reset, an error reply.
    Failed,
    /// The operation took longer than the tier's timeout.
    TimedOut,
    /// The tier did not try: its circuit breaker is open.
    Unavailable,
}

impl fmt::Display for TierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TierError::Failed => "the second tier failed",
            TierError::TimedOut => "the second tier timed out",
            TierError::Unavailable => "the second tier is unavailable (circuit open)",
        })
    }
}

impl std::error::Error for TierError {}

/// What [`SharedTier::lock`] found: whether this instance now holds the key's
/// fill lock, and the key's invalidation generation in the tier when it
/// looked. A [`fill`](SharedTier::fill) with this ticket stores only if no
/// invalidation came since, anywhere in the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillTicket {
    token: Option<u128>,
    generation: u64,
}

impl FillTicket {
    /// This instance holds the lock, with this random token.
    pub fn held(token: u128, generation: u64) -> Self {
        Self {
            token: Some(token),
            generation,
        }
    }

    /// Another instance holds the lock.
    pub fn busy(generation: u64) -> Self {
        Self {
            token: None,
            generation,
        }
    }

    /// The lock's token, if this instance holds it.
    pub fn token(&self) -> Option<u128> {
        self.token
    }

    /// Whether this instance holds the lock.
    pub fn is_held(&self) -> bool {
        self.token.is_some()
    }

    /// The key's invalidation generation when the lock was tried.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// A fleet-wide invalidation, as a [`SharedTier`] delivers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation<'a> {
    /// Drop this key (its bytes as the [`Codec`] encoded it).
    Key(&'a [u8]),
    /// Drop everything: the tier may have missed invalidations (it lost
    /// its subscription for a while).
    All,
}

/// Receives the fleet's invalidations: handed to [`SharedTier::listen`] by
/// each cache built over the tier.
pub type InvalidationListener = Arc<dyn Fn(Invalidation<'_>) + Send + Sync>;

/// A store of encoded entries shared by a fleet, with a fill lock per key.
///
/// Keys and values are bytes; every operation is bounded in time by the
/// tier itself and fails with a [`TierError`] rather than waiting. Implemented
/// by `shared-calls-redis`.
pub trait SharedTier: fmt::Debug + Send + Sync + 'static {
    /// The stored bytes of `key`, if any.
    fn get<'a>(&'a self, key: &'a [u8]) -> TierFuture<'a, Result<Option<Vec<u8>>, TierError>>;

    /// Tries to take `key`'s fill lock (bounded in time: a crashed holder
    /// delays the others by at most the lock's expiry), and reads the
    /// key's entry at the same instant: one that another instance stored
    /// since this one looked needs no load.
    #[allow(clippy::type_complexity)]
    fn lock<'a>(
        &'a self,
        key: &'a [u8],
    ) -> TierFuture<'a, Result<(FillTicket, Option<Vec<u8>>), TierError>>;

    /// Waits until `key` has an entry (returned) or its lock is gone
    /// (`None`), for at most `timeout` or the tier's own bound, whichever is
    /// shorter.
    fn wait<'a>(
        &'a self,
        key: &'a [u8],
        timeout: Option<Duration>,
    ) -> TierFuture<'a, Result<Option<Vec<u8>>, TierError>>;

    /// Stores `value` for `ttl` unless `key` was invalidated since `ticket`
    /// was taken, then releases the lock if `ticket` holds it. `None` only
    /// releases. Returns whether the value was stored.
    fn fill<'a>(
        &'a self,
        key: &'a [u8],
        value: Option<(Vec<u8>, Duration)>,
        ticket: FillTicket,
    ) -> TierFuture<'a, Result<bool, TierError>>;

    /// Removes `key`'s entry, so that loads in flight anywhere cannot store
    /// over it, and tells every listening cache of the fleet to drop it.
    fn invalidate<'a>(&'a self, key: &'a [u8]) -> TierFuture<'a, Result<(), TierError>>;

    /// Delivers the fleet's invalidations to `listener` from now on.
    fn listen(&self, listener: InvalidationListener);

    /// The tier's own counters and state.
    fn health(&self) -> TierHealth;
}

/// Turns a cache's keys and values into bytes for a [`SharedTier`], and back.
///
/// Decoding sees only bytes that this codec encoded (the cache checks its
/// envelope first), but must still refuse what it cannot read with `None`
/// rather than panic: a value written by another version of the program is
/// a miss.
pub trait Codec<K, V>: Send + Sync + 'static {
    /// Appends the bytes of `key`.
    fn encode_key(&self, key: &K, out: &mut Vec<u8>);

    /// The key these bytes encode.
    fn decode_key(&self, bytes: &[u8]) -> Option<K>;

    /// Appends the bytes of `value`; returns `false` when this value must
    /// not leave the process (it then stays in the first tier only).
    fn encode_value(&self, value: &V, out: &mut Vec<u8>) -> bool;

    /// The value these bytes encode.
    fn decode_value(&self, bytes: &[u8]) -> Option<V>;
}

/// The codec of text keys and values (`String`, say): their UTF-8 bytes.
/// Bytes that are not UTF-8 do not decode.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextCodec;

impl<K, V> Codec<K, V> for TextCodec
where
    K: AsRef<str> + From<String> + 'static,
    V: AsRef<str> + From<String> + 'static,
{
    fn encode_key(&self, key: &K, out: &mut Vec<u8>) {
        out.extend_from_slice(key.as_ref().as_bytes());
    }

    fn decode_key(&self, bytes: &[u8]) -> Option<K> {
        Some(String::from_utf8(bytes.to_vec()).ok()?.into())
    }

    fn encode_value(&self, value: &V, out: &mut Vec<u8>) -> bool {
        out.extend_from_slice(value.as_ref().as_bytes());
        true
    }

    fn decode_value(&self, bytes: &[u8]) -> Option<V> {
        Some(String::from_utf8(bytes.to_vec()).ok()?.into())
    }
}

/// A tier's own counters and state, part of [`L2Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierHealth {
    /// Operations that failed.
    pub errors: u64,
    /// Operations that took longer than the timeout.
    pub timeouts: u64,
    /// Operations refused at once because the circuit breaker was open.
    pub rejected: u64,
    /// Values not written because they were larger than the tier's limit.
    pub oversized: u64,
    /// How many times the circuit breaker opened.
    pub breaker_trips: u64,
    /// Whether the circuit breaker is open now.
    pub breaker_open: bool,
}

/// What the second tier did for a cache, in [`Stats::l2`](crate::Stats::l2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct L2Stats {
    /// Flights answered by a fresh second-tier entry (their own read, or
    /// after waiting for another instance's fill).
    pub hits: u64,
    /// Flights whose read found no usable entry.
    pub misses: u64,
    /// Entries that did not decode (corrupt, truncated, foreign): misses.
    pub corrupt: u64,
    /// Flights answered stale from the second tier while one instance of the
    /// fleet refreshed the entry.
    pub stale: u64,
    /// Fill locks taken by this instance (its loads filled the fleet).
    pub locks_taken: u64,
    /// Flights that found the lock held and waited for another instance.
    pub lock_waits: u64,
    /// Waits that ended without an entry (timeout, or the holder stored
    /// nothing): the flight then loaded by itself.
    pub lock_wait_misses: u64,
    /// Entries written to the second tier.
    pub writes: u64,
    /// Flights that went on without the second tier after a [`TierError`].
    pub fallbacks: u64,
    /// The tier's own counters and state.
    pub tier: TierHealth,
}

/// The counters behind [`L2Stats`].
#[derive(Debug, Default)]
pub(crate) struct L2Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) locks_taken: AtomicU64,
    pub(crate) lock_waits: AtomicU64,
    pub(crate) lock_wait_misses: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A cache's second tier: the shared store and the codec of its keys and
/// values.
pub(crate) struct SecondTier<K, V> {
    pub(crate) tier: Arc<dyn SharedTier>,
    pub(crate) codec: Arc<dyn Codec<K, V>>,
    pub(crate) counters: Arc<L2Counters>,
}

impl<K, V> Clone for SecondTier<K, V> {
    fn clone(&self) -> Self {
        Self {
            tier: self.tier.clone(),
            codec: self.codec.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl<K, V> fmt::Debug for SecondTier<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecondTier")
            .field("tier", &self.tier)
            .finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> SecondTier<K, V> {
    pub(crate) fn new(tier: Arc<dyn SharedTier>, codec: Arc<dyn Codec<K, V>>) -> Self {
        Self {
            tier,
            codec,
            counters: Arc::default(),
        }
    }

    pub(crate) fn key_bytes(&self, key: &K) -> Vec<u8> {
        let mut out = Vec::new();
        self.codec.encode_key(key, &mut out);
        out
    }

    pub(crate) fn stats(&self) -> L2Stats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let counters = &self.counters;
        L2Stats {
            hits: get(&counters.hits),
            misses: get(&counters.misses),
            corrupt: get(&counters.corrupt),
            stale: get(&counters.stale),
            locks_taken: get(&counters.locks_taken),
            lock_waits: get(&counters.lock_waits),
            lock_wait_misses: get(&counters.lock_wait_misses),
            writes: get(&counters.writes),
            fallbacks: get(&counters.fallbacks),
            tier: self.tier.health(),
        }
    }
}

impl<K: 'static, V: 'static> crate::CacheBuilder<K, V> {
    /// Shares entries, fill locks and invalidations with a fleet through
    /// `tier` (Redis, with `shared-calls-redis`), its keys and values encoded
    /// by `codec`. See the [second tier's path](crate::l2).
    ///
    /// One tier (one key prefix) per cache: the fleet's invalidations of a
    /// tier are decoded with this cache's codec.
    #[must_use = "a setter returns the changed builder"]
    pub fn second_tier(mut self, tier: impl SharedTier, codec: impl Codec<K, V>) -> Self {
        self.second_tier = Some(SecondTier::new(Arc::new(tier), Arc::new(codec)));
        self
    }
}
