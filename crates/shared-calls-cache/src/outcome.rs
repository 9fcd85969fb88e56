//! What a lookup tells its caller.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How a value reached its caller.
///
/// The tower and HTTP layers surface it as a response extension and as the
/// `Cache-Status` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A fresh stored entry answered; nothing was loaded.
    Hit,
    /// This caller's load ran: it led the flight for the key.
    Miss,
    /// Another caller's load was in flight and answered this caller too.
    Collapsed,
    /// An expired entry inside its stale-while-revalidate window answered at
    /// once, while one background refresh reloads the key.
    Stale,
    /// The load failed and an expired entry inside its stale-if-error window
    /// answered instead.
    StaleIfError,
    /// The key is marked hit-for-miss (its last answer could not be stored):
    /// this caller loaded without queueing behind anyone.
    Pass,
    /// This caller waited longer than the lock timeout for another caller's
    /// load, then loaded alone; its result was not stored.
    LockTimeout,
    /// The cache was not consulted at all (the request had no key).
    Bypass,
}

impl Outcome {
    /// A short lower-case name: `hit`, `miss`, `collapsed`, `stale`,
    /// `stale-if-error`, `pass`, `lock-timeout`, `bypass`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Collapsed => "collapsed",
            Outcome::Stale => "stale",
            Outcome::StaleIfError => "stale-if-error",
            Outcome::Pass => "pass",
            Outcome::LockTimeout => "lock-timeout",
            Outcome::Bypass => "bypass",
        }
    }

    /// Whether the answer came from a stored entry rather than a load.
    pub fn is_from_cache(self) -> bool {
        matches!(self, Outcome::Hit | Outcome::Stale | Outcome::StaleIfError)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value and how it was found.
#[derive(Debug, Clone)]
pub struct Lookup<V> {
    pub(crate) value: V,
    pub(crate) outcome: Outcome,
    pub(crate) stored: bool,
    pub(crate) timing: Timing,
}

impl<V> Lookup<V> {
    /// The value.
    pub fn value(&self) -> &V {
        &self.value
    }

    /// The value, by value.
    pub fn into_value(self) -> V {
        self.value
    }

    /// How the value was found.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether this lookup's load stored its result.
    pub fn stored(&self) -> bool {
        self.stored
    }

    /// How long ago the value was loaded (zero for a value just loaded).
    pub fn age(&self) -> Duration {
        self.timing.age()
    }

    /// How much longer the stored entry stays fresh (zero when stale or not
    /// stored).
    pub fn fresh_for(&self) -> Duration {
        self.timing.fresh_for()
    }

    /// Whether the value came from the [second tier](crate::l2): another
    /// instance of the fleet loaded it.
    pub fn from_second_tier(&self) -> bool {
        self.timing.from_second_tier
    }

    /// The [age](Self::age) and [remaining freshness](Self::fresh_for) of
    /// the value, to keep after the value has been taken.
    pub fn timing(&self) -> Timing {
        self.timing
    }
}

/// When a looked-up value was loaded and until when it is fresh, as seen at
/// the lookup. The durations are worked out only when asked for: a hit that
/// never reports them does not pay for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub(crate) loaded_at: Instant,
    pub(crate) fresh_until: Instant,
    pub(crate) looked_up_at: Instant,
    pub(crate) from_second_tier: bool,
}

impl Timing {
    /// How long before the lookup the value was loaded.
    pub fn age(&self) -> Duration {
        self.looked_up_at.saturating_duration_since(self.loaded_at)
    }

    /// How much longer after the lookup the stored entry stays fresh (zero
    /// when stale or not stored).
    pub fn fresh_for(&self) -> Duration {
        self.fresh_until
            .saturating_duration_since(self.looked_up_at)
    }

    /// How long before the lookup the stored entry stopped being fresh
    /// (zero while fresh).
    pub fn stale_for(&self) -> Duration {
        self.looked_up_at
            .saturating_duration_since(self.fresh_until)
    }

    /// Whether the value came from the [second tier](crate::l2): another
    /// instance of the fleet loaded it.
    pub fn from_second_tier(&self) -> bool {
        self.from_second_tier
    }
}

/// Which stored values a caller takes, whatever their freshness says: an
/// HTTP client's own `max-age`, `min-fresh` or `max-stale` (see
/// [`Cache::get_or_load_accepting`](crate::Cache::get_or_load_accepting)).
pub type Accepts<V> = Arc<dyn Fn(&V, &Timing) -> bool + Send + Sync>;

/// Why [`Cache::get_or_load`](crate::Cache::get_or_load) has no value.
///
/// Waiters of one flight all receive a clone of the same error: a failed
/// load is shared with the callers that were waiting for it, and never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadError<E> {
    /// The loader failed.
    Load(E),
    /// The key is known to be absent: the loader said so with
    /// [`Fetch::absent`](crate::Fetch::absent), now or within the negative TTL.
    NotFound,
    /// The loader panicked; the message of the panic.
    Panicked(Arc<str>),
    /// Too many callers were already waiting for this key
    /// ([`CacheBuilder::max_waiters`](crate::CacheBuilder::max_waiters)).
    Overloaded,
}

impl<E: fmt::Display> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Load(error) => write!(f, "the load failed: {error}"),
            LoadError::NotFound => f.write_str("not found"),
            LoadError::Panicked(message) => write!(f, "the load panicked: {message}"),
            LoadError::Overloaded => f.write_str("too many callers are waiting for this key"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Load(error) => Some(error),
            _ => None,
        }
    }
}
