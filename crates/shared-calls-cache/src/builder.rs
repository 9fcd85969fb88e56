//! The cache's settings.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::Cache;
use crate::l2::SecondTier;
use crate::tier::Capacity;

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) default_ttl: Duration,
    pub(crate) negative_ttl: Duration,
    pub(crate) min_ttl: Duration,
    pub(crate) max_ttl: Duration,
    pub(crate) jitter: Jitter,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
    pub(crate) hit_for_miss: Duration,
    pub(crate) lock_timeout: Option<Duration>,
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

    pub(crate) fn apply(&self, ttl: Duration) -> Duration {
        if self.fraction == 0.0 {
            return ttl;
        }
        // A counter hashed with a random key: uniform enough, and no lock.
        let mut hasher = std::hash::DefaultHasher::new();
        self.state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .hash(&mut hasher);
        let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
        ttl.mul_f64(1.0 + self.fraction * (2.0 * unit - 1.0))
    }
}

/// Builds a [`Cache`].
///
/// ```
/// use shared_calls_cache::Cache;
/// use std::time::Duration;
///
/// let cache: Cache<String, String> = Cache::builder()
///     .max_entries(10_000)
///     .ttl(Duration::from_secs(30))
///     .stale_while_revalidate(Duration::from_secs(10))
///     .build();
/// # let _ = cache;
/// ```
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
                negative_ttl: Duration::from_secs(60),
                min_ttl: Duration::ZERO,
                max_ttl: Duration::from_secs(24 * 60 * 60),
                jitter: Jitter::new(0.05),
                stale_while_revalidate: Duration::ZERO,
                stale_if_error: Duration::ZERO,
                hit_for_miss: Duration::from_secs(10),
                lock_timeout: None,
                finish_abandoned: true,
                max_waiters: usize::MAX,
            },
            capacity: Capacity::Entries(10_000),
            second_tier: None,
            _types: PhantomData,
        }
    }
}

impl<K, V> CacheBuilder<K, V> {
    /// How long a stored value stays fresh unless its [`Fetch`](crate::Fetch)
    /// says otherwise. Defaults to 60 s.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.default_ttl = ttl;
        self
    }

    /// How long an [absent](crate::Fetch::absent) result is remembered.
    /// Defaults to 60 s.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.config.negative_ttl = ttl;
        self
    }

    /// Every TTL, default or per fetch, is clamped into `min..=max` before
    /// jitter. Defaults to zero and 24 h.
    ///
    /// # Panics
    ///
    /// If `min > max`.
    pub fn ttl_bounds(mut self, min: Duration, max: Duration) -> Self {
        assert!(
            min <= max,
            "ttl_bounds: min ({min:?}) is greater than max ({max:?})"
        );
        self.config.min_ttl = min;
        self.config.max_ttl = max;
        self
    }

    /// Spreads every TTL uniformly by up to ± `fraction` of itself, so that
    /// keys loaded together do not expire together. Defaults to 0.05 (5 %,
    /// as go-zero does); zero turns it off.
    ///
    /// # Panics
    ///
    /// If `fraction` is not in `0.0..1.0`.
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
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.config.stale_while_revalidate = window;
        self
    }

    /// After an entry expires, it may answer for this long when a load
    /// fails. Defaults to zero (off).
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.config.stale_if_error = window;
        self
    }

    /// How long a key whose result could not be stored is remembered as
    /// hit-for-miss: its callers load without queueing behind one another.
    /// Defaults to 10 s; zero turns it off.
    pub fn hit_for_miss(mut self, duration: Duration) -> Self {
        self.config.hit_for_miss = duration;
        self
    }

    /// A caller that waited this long for another caller's load loads by
    /// itself and does not store its result (nginx's `proxy_cache_lock_timeout`).
    /// Unbounded by default.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.config.lock_timeout = Some(timeout);
        self
    }

    /// At most this many callers wait for one key's load; more are refused
    /// at once with [`LoadError::Overloaded`](crate::LoadError::Overloaded).
    /// Unbounded by default.
    pub fn max_waiters(mut self, max: usize) -> Self {
        self.config.max_waiters = max;
        self
    }

    /// Whether a load whose every caller has gone away still finishes and
    /// stores its result (the default), or is cancelled.
    pub fn finish_abandoned_loads(mut self, finish: bool) -> Self {
        self.config.finish_abandoned = finish;
        self
    }

    /// Holds at most this many entries (the default bound, 10,000).
    pub fn max_entries(mut self, max: u64) -> Self {
        self.capacity = Capacity::Entries(max);
        self
    }

    /// Holds entries whose total weight, by `weigher` (bytes, say), is at
    /// most `max`. Absent and hit-for-miss entries weigh 1.
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
