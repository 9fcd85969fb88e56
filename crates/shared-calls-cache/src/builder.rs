//! The cache's settings.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::Cache;
use crate::fetch::window;
use crate::l2::SecondTier;
use crate::tier::{Capacity, Weighers};

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) default_ttl: Duration,
    /// `None`: [`DEFAULT_NEGATIVE_TTL`], or the default TTL if shorter.
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) jitter: Jitter,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
    pub(crate) hit_for_miss: Duration,
    pub(crate) lock_timeout: Duration,
    pub(crate) finish_abandoned: bool,
    pub(crate) max_waiters: usize,
}

/// Spreads TTLs by up to ± a fraction, so that keys loaded together do not
/// expire together.
#[derive(Debug)]
pub(crate) struct Jitter {
    fraction: f64,
    state: AtomicU64,
}

impl Clone for Jitter {
    fn clone(&self) -> Self {
        Self::new(self.fraction)
    }
}

impl Jitter {
    fn new(fraction: f64) -> Self {
        Self {
            fraction,
            state: AtomicU64::new(RandomState::new().hash_one(0u8) | 1),
        }
    }

    /// `ttl`, jittered: shortened only when it is `explicit` (the source
    /// stated it), spread both ways otherwise.
    pub(crate) fn apply(&self, ttl: Duration, explicit: bool) -> Duration {
        if self.fraction == 0.0 {
            return ttl;
        }
        // A counter hashed with a random key: uniform enough, and no lock.
        let mut hasher = std::hash::DefaultHasher::new();
        self.state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .hash(&mut hasher);
        let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        if explicit {
            // `min`: the float round trip may not add a nanosecond either.
            ttl.mul_f64(1.0 - self.fraction * unit).min(ttl)
        } else {
            ttl.mul_f64(1.0 + self.fraction * (2.0 * unit - 1.0))
        }
    }
}

/// The default bound on what the cache holds: 256 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The default negative TTL: 10 s ([`CacheBuilder::negative_ttl`]).
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// How long a caller waits by default for another caller's load of the same
/// key before it loads alone: 5 s, as nginx's `proxy_cache_lock_timeout`.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds a [`Cache`].
///
/// ```
/// # mod shared_calls { pub use shared_calls_cache as cache; }
/// use shared_calls::cache::Cache;
/// use std::time::Duration;
///
/// let cache: Cache<String, String> = Cache::builder()
///     .max_bytes(64 * 1024 * 1024)
///     .weigh_keys(|key: &String| key.capacity())
///     .weigh_values(|value: &String| value.capacity())
///     .ttl(Duration::from_secs(30))
///     .stale_while_revalidate(Duration::from_secs(10))
///     .build();
/// # let _ = cache;
/// ```
///
/// # Defaults
///
/// At most [`DEFAULT_MAX_BYTES`] (256 MiB) held, 60 s TTL with 5 % jitter,
/// a negative TTL of [`DEFAULT_NEGATIVE_TTL`] (10 s, or the TTL if shorter),
/// TTLs clamped to 24 h, no stale windows, 10 s hit-for-miss, a
/// [`DEFAULT_LOCK_TIMEOUT`] of 5 s, abandoned loads finished.
///
/// Every window (TTLs and their bounds, stale windows, hit-for-miss, the lock
/// timeout) longer than 2^31 seconds (about 68 years, `Duration::MAX`
/// included) counts as 2^31 seconds: no setting can overflow a deadline.
///
/// # Memory
///
/// The byte bound counts, for each entry, the key and the value as they lie
/// in the entry (`size_of`), a fixed bookkeeping overhead, and what the key
/// and the value hold on the heap as [`weigh_keys`](Self::weigh_keys) and
/// [`weigh_values`](Self::weigh_values) report it. Without weighers, only
/// the first two count: set them for keys and values that own heap memory
/// (`String`, `Vec`, `Bytes`), or bound the entries instead with
/// [`max_entries`](Self::max_entries).
///
/// The store splits into up to 16 shards, each holding an equal share of the
/// bound, so that writers on different cores rarely wait for each other. An
/// entry heavier than a shard's share (a sixteenth of the bound; a larger
/// share under 512 entries or 512 KiB) is not kept, and counts as an
/// eviction.
#[must_use]
pub struct CacheBuilder<K, V> {
    config: Config,
    capacity: Capacity<K, V>,
    pub(crate) second_tier: Option<SecondTier<K, V>>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for CacheBuilder<K, V> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            capacity: self.capacity.clone(),
            second_tier: self.second_tier.clone(),
            _types: PhantomData,
        }
    }
}

impl<K, V> fmt::Debug for CacheBuilder<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let capacity = match &self.capacity {
            Capacity::Entries(max) => format!("{max} entries"),
            Capacity::Bytes { max, .. } => format!("{max} bytes"),
            Capacity::Weight { max, .. } => format!("weight {max}"),
        };
        f.debug_struct("CacheBuilder")
            .field("config", &self.config)
            .field("capacity", &capacity)
            .field("second_tier", &self.second_tier)
            .finish()
    }
}

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        Self {
            config: Config {
                default_ttl: Duration::from_secs(60),
                negative_ttl: None,
                min_ttl: Duration::ZERO,
                max_ttl: Duration::from_secs(24 * 60 * 60),
                jitter: Jitter::new(0.05),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                hit_for_miss: Duration::from_secs(10),
                lock_timeout: DEFAULT_LOCK_TIMEOUT,
                finish_abandoned: true,
                max_waiters: usize::MAX,
            },
            capacity: Capacity::Bytes {
                max: DEFAULT_MAX_BYTES,
                weighers: Weighers::default(),
            },
            second_tier: None,
            _types: PhantomData,
        }
    }
}

impl<K, V> CacheBuilder<K, V> {
    /// How long a stored value stays fresh unless its [`Fetch`](crate::Fetch)
    /// says otherwise. Defaults to 60 s.
    #[must_use = "a setter returns the changed builder"]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.default_ttl = window(ttl);
        self
    }

    /// How long a negative result, [absent](crate::Fetch::absent) or a
    /// [negative value](crate::Fetch::negative) (an HTTP `404`), stays
    /// fresh unless its fetch says otherwise. Defaults to
    /// [`DEFAULT_NEGATIVE_TTL`], or the [`ttl`](Self::ttl) if that is
    /// shorter: a resource created just after a "not found" is not hidden
    /// for long.
    #[must_use = "a setter returns the changed builder"]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.config.negative_ttl = Some(window(ttl));
        self
    }

    /// Every TTL, default or per fetch, is clamped into `min..=max` before
    /// jitter. Defaults to zero and 24 h.
    ///
    /// # Panics
    ///
    /// If `min > max`.
    #[must_use = "a setter returns the changed builder"]
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        assert!(
            min <= max,
            "ttl_bounds: min ({min:?}) is greater than max ({max:?})"
        );
        self.config.min_ttl = window(min);
        self.config.max_ttl = window(max);
        self
    }

    /// Spreads TTLs by up to `fraction` of themselves, so that keys loaded
    /// together do not expire together: the default TTL, the negative TTL
    /// and [heuristic](crate::Fetch::heuristic_ttl) ones uniformly by up to
    /// ± `fraction`; a TTL the source stated ([`Fetch::ttl`](crate::Fetch::ttl))
    /// is only ever shortened, by up to `fraction`. Defaults to 0.05 (5 %, as
    /// go-zero does); zero turns it off.
    ///
    /// # Panics
    ///
    /// If `fraction` is not in `0.0..1.0`.
    #[must_use = "a setter returns the changed builder"]
    pub fn jitter(mut self, fraction: f64) -> Self {
        assert!(
            (0.0..1.0).contains(&fraction),
            "jitter: {fraction} is not in 0.0..1.0"
        );
        self.config.jitter = Jitter::new(fraction);
        self
    }

    /// After an entry expires, it may answer at once for this long while
    /// one background refresh reloads it. Defaults to zero (off).
    #[must_use = "a setter returns the changed builder"]
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.config.stale_while_revalidate = self::window(window);
        self
    }

    /// After an entry expires, it may answer for this long when a load
    /// fails. Defaults to zero (off).
    #[must_use = "a setter returns the changed builder"]
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.config.stale_if_error = self::window(window);
        self
    }

    /// How long a key whose result could not be stored is remembered as
    /// hit-for-miss: its callers load without queueing behind one another.
    /// Defaults to 10 s; zero turns it off.
    #[must_use = "a setter returns the changed builder"]
    pub fn hit_for_miss(mut self, duration: Duration) -> Self {
        self.config.hit_for_miss = window(duration);
        self
    }

    /// A caller that waited this long for another caller's load loads by
    /// itself and does not store its result (nginx's `proxy_cache_lock_timeout`).
    /// Defaults to [`DEFAULT_LOCK_TIMEOUT`] (5 s); `Duration::MAX` waits as
    /// long as the load takes.
    ///
    /// The lock timeout releases the waiters, not the load they waited for:
    /// a backend that never answers still holds the caller that started the
    /// load, and each released waiter's own load. Bound the backend's calls
    /// too, inside the cache: a timeout in the loader
    /// (`tokio::time::timeout`), or with the tower layer, tower's
    /// `TimeoutLayer` between the layer and the service it wraps
    /// (`ServiceBuilder::new().layer(shared_calls).layer(TimeoutLayer::new(..))`),
    /// so that a timed-out call is a failed load, shared with its waiters and
    /// never stored.
    ///
    /// Waiting callers need a tokio runtime with its time driver enabled
    /// (outside any runtime they wait without a timeout).
    #[must_use = "a setter returns the changed builder"]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.config.lock_timeout = window(timeout);
        self
    }

    /// At most this many callers wait for one key's load; more are refused
    /// at once with [`LoadError::Overloaded`](crate::LoadError::Overloaded).
    /// Unbounded by default.
    #[must_use = "a setter returns the changed builder"]
    pub fn max_waiters(mut self, max: usize) -> Self {
        self.config.max_waiters = max;
        self
    }

    /// Whether a load whose every caller has gone away still finishes and
    /// stores its result (the default), or is cancelled.
    #[must_use = "a setter returns the changed builder"]
    pub fn finish_abandoned(mut self, finish: bool) -> Self {
        self.config.finish_abandoned = finish;
        self
    }

    /// Holds at most this many entries, whatever their size, instead of a
    /// byte bound.
    #[must_use = "a setter returns the changed builder"]
    pub fn max_entries(mut self, max: u64) -> Self {
        self.capacity = Capacity::Entries(max);
        self
    }

    /// Holds at most `max` bytes (the default bound, [`DEFAULT_MAX_BYTES`]),
    /// as the [weighers](#memory) count them.
    #[must_use = "a setter returns the changed builder"]
    pub fn max_bytes(mut self, max: u64) -> Self {
        let weighers = match &self.capacity {
            Capacity::Bytes { weighers, .. } => weighers.clone(),
            _ => Weighers::default(),
        };
        self.capacity = Capacity::Bytes { max, weighers };
        self
    }

    /// How many bytes a key holds on the heap (a `String`'s capacity, say),
    /// for the byte bound. Zero by default.
    #[must_use = "a setter returns the changed builder"]
    pub fn weigh_keys(mut self, weigh: impl Fn(&K) -> usize + Send + Sync + 'static) -> Self {
        self.weighers().keys = Some(Arc::new(weigh));
        self
    }

    /// How many bytes a value holds on the heap, for the byte bound. Zero by
    /// default.
    #[must_use = "a setter returns the changed builder"]
    pub fn weigh_values(mut self, weigh: impl Fn(&V) -> usize + Send + Sync + 'static) -> Self {
        self.weighers().values = Some(Arc::new(weigh));
        self
    }

    /// The weighers of the byte bound, which they imply.
    fn weighers(&mut self) -> &mut Weighers<K, V> {
        if !matches!(self.capacity, Capacity::Bytes { .. }) {
            self.capacity = Capacity::Bytes {
                max: DEFAULT_MAX_BYTES,
                weighers: Weighers::default(),
            };
        }
        match &mut self.capacity {
            Capacity::Bytes { weighers, .. } => weighers,
            _ => unreachable!("set above"),
        }
    }

    /// Holds entries whose total weight, by `weigher` in a unit of your
    /// choice, is at most `max`, instead of a byte bound. Absent and
    /// hit-for-miss entries weigh 1.
    pub fn max_weight(
        mut self,
        max: u64,
        weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static,
    ) -> Self {
        self.capacity = Capacity::Weight {
            max,
            weigher: Arc::new(weigher),
        };
        self
    }
}

impl Config {
    /// The negative TTL in effect.
    pub(crate) fn negative_ttl(&self) -> Duration {
        self.negative_ttl
            .unwrap_or(DEFAULT_NEGATIVE_TTL.min(self.default_ttl))
    }
}

impl<K, V> CacheBuilder<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Builds the cache. `E` is the loaders' error type.
    pub fn build<E>(self) -> Cache<K, V, E>
    where
        E: Clone + Send + Sync + 'static,
    {
        Cache::from_parts(self.config, self.capacity, self.second_tier)
    }
}
