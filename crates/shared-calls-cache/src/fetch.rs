//! What a loader returns, and the stored entry made from it.

use std::time::Duration;

use tokio::time::Instant;

use crate::Timing;
use crate::builder::Config;

/// A loader's result: a value (or "absent") and how it may be stored.
///
/// ```
/// # mod shared_calls { pub use shared_calls_cache as cache; }
/// use shared_calls::cache::Fetch;
/// use std::time::Duration;
///
/// let row = Fetch::value("row 7").ttl(Duration::from_secs(30));
/// let gone: Fetch<&str> = Fetch::absent(); // cached for the negative TTL
/// let volatile = Fetch::value("now").do_not_store();
/// # let _ = (row, gone, volatile);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Fetch<V> {
    pub(crate) value: Option<V>,
    pub(crate) store: bool,
    pub(crate) ttl: Option<Duration>,
    /// Whether `ttl` is a lifetime the source stated, which jitter may
    /// shorten but never stretch.
    pub(crate) ttl_is_explicit: bool,
    /// A value that says "not found": without a `ttl`, kept for the
    /// negative TTL.
    pub(crate) negative: bool,
    pub(crate) stale_while_revalidate: Option<Duration>,
    pub(crate) stale_if_error: Option<Duration>,
    /// After its last window, how long the entry is kept as the basis of a
    /// conditional refresh.
    pub(crate) keep_for_revalidation: Duration,
    /// Stored, but never fresh: every use refreshes it.
    pub(crate) always_revalidate: bool,
}

impl<V> Fetch<V> {
    /// A value, stored for the cache's default TTL.
    pub fn value(value: V) -> Self {
        Self {
            value: Some(value),
            store: true,
            ttl: None,
            ttl_is_explicit: false,
            negative: false,
            stale_while_revalidate: None,
            stale_if_error: None,
            keep_for_revalidation: Duration::ZERO,
            always_revalidate: false,
        }
    }

    /// The key has no value (a "not found"), remembered for the cache's
    /// negative TTL: callers receive [`LoadError::NotFound`](crate::LoadError::NotFound).
    pub fn absent() -> Self {
        Self {
            value: None,
            store: true,
            ttl: None,
            ttl_is_explicit: false,
            negative: false,
            stale_while_revalidate: None,
            stale_if_error: None,
            keep_for_revalidation: Duration::ZERO,
            always_revalidate: false,
        }
    }

    /// A value that says its key has nothing (an HTTP `404` page): callers
    /// receive it like any value, and unless [`ttl`](Self::ttl) says
    /// otherwise it stays fresh for the cache's
    /// [negative TTL](crate::CacheBuilder::negative_ttl), not its default
    /// TTL.
    pub fn negative(value: V) -> Self {
        Self {
            negative: true,
            ..Self::value(value)
        }
    }

    /// Stores this result for `ttl` instead of the default: a lifetime the
    /// source stated (an HTTP `max-age`, say). It is clamped to the cache's
    /// minimum and maximum, and jitter only ever shortens it, so the value is
    /// never kept fresh longer than its source allows.
    #[must_use = "a setter returns the changed Fetch"]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self.ttl_is_explicit = true;
        self
    }

    /// Stores this result for `ttl` instead of the default, a lifetime
    /// guessed rather than stated (HTTP's heuristic freshness, a per-status
    /// default): clamped like any TTL, and jittered both ways like the
    /// default TTL.
    #[must_use = "a setter returns the changed Fetch"]
    pub fn heuristic_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self.ttl_is_explicit = false;
        self
    }

    /// Do not store this result: the current waiters receive it, and the key
    /// is remembered as hit-for-miss so that the next callers load without
    /// queueing behind one another.
    #[must_use = "a setter returns the changed Fetch"]
    pub fn do_not_store(mut self) -> Self {
        self.store = false;
        self
    }

    /// After it expires, this entry may still answer at once for `window`
    /// while one background refresh reloads it.
    #[must_use = "a setter returns the changed Fetch"]
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.stale_while_revalidate = Some(window);
        self
    }

    /// After it expires, this entry may still answer for `window` when a
    /// load fails.
    #[must_use = "a setter returns the changed Fetch"]
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = Some(window);
        self
    }

    /// After it expires and its stale windows end, this entry is kept for
    /// `window` more, never answering, as what the next load refreshes: a
    /// load started through
    /// [`get_or_revalidate`](crate::Cache::get_or_revalidate) is handed its
    /// value (an HTTP answer with an `ETag`, refreshed by a conditional
    /// request).
    pub fn keep_for_revalidation(mut self, window: Duration) -> Self {
        self.keep_for_revalidation = window;
        self
    }

    /// Stores this result but never answers with it unrefreshed: every use
    /// loads again (collapsed like any load), handed this value to
    /// revalidate (an HTTP `no-cache` answer). No TTL, bound or stale
    /// window makes it fresh.
    pub fn always_revalidate(mut self) -> Self {
        self.always_revalidate = true;
        self
    }

    /// Whether the result is to be stored.
    pub fn is_stored(&self) -> bool {
        self.store
    }
}

/// The longest window the cache keeps: 2^31 seconds (about 68 years, RFC
/// 9111's largest delta-seconds). Longer settings (`Duration::MAX` included)
/// count as this, so that no deadline overflows `Instant`, even with the
/// jitter and the stale windows added.
pub(crate) const LONGEST_WINDOW: Duration = Duration::from_secs(1 << 31);

/// `duration`, capped at [`LONGEST_WINDOW`].
pub(crate) fn window(duration: Duration) -> Duration {
    duration.min(LONGEST_WINDOW)
}

/// What a stored entry holds.
#[derive(Debug, Clone)]
pub(crate) enum Content<V> {
    Value(V),
    Absent,
    /// The last load of this key could not be stored: load without a flight.
    HitForMiss,
}

/// Where an entry is in its life at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Fresh,
    /// Expired, inside the stale-while-revalidate window.
    Stale,
    /// Expired; may only answer if a load fails.
    StaleIfError,
    Expired,
}

/// A stored entry. The store hands each reader its own copy, so that a hit
/// costs one clone of the value and nothing else.
///
/// Its five instants are kept as one instant, the end of its freshness, and
/// four offsets from it: 48 bytes rather than 80 in every entry. Every
/// window ends at or after its freshness, and it was loaded at or before.
#[derive(Debug, Clone)]
pub(crate) struct Entry<V> {
    pub(crate) content: Content<V>,
    fresh_until: Instant,
    /// How long before `fresh_until` it was loaded.
    fresh_for: Offset,
    /// How long after `fresh_until` each later window ends.
    stale_for: Offset,
    error_for: Offset,
    /// Until when an expired value is handed to the load that refreshes it.
    kept_for: Offset,
}

/// A non-negative span in nanoseconds, saturating at `u64::MAX` (584 years,
/// beyond twice [`LONGEST_WINDOW`] and any jitter: never reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offset(u64);

impl Offset {
    /// From `earlier` to `later`; zero if `later` is not later.
    fn between(earlier: Instant, later: Instant) -> Self {
        let span = later.saturating_duration_since(earlier);
        Self(u64::try_from(span.as_nanos()).unwrap_or(u64::MAX))
    }

    fn duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

impl<V> Entry<V> {
    /// An entry loaded at `loaded_at` whose windows end at these instants.
    /// A window that ends before freshness does ends with it; a load after
    /// it counts as at its end.
    pub(crate) fn with_ends(
        content: Content<V>,
        loaded_at: Instant,
        fresh_until: Instant,
        [stale_until, error_until, kept_until]: [Instant; 3],
    ) -> Self {
        Self {
            content,
            fresh_until,
            fresh_for: Offset::between(loaded_at, fresh_until),
            stale_for: Offset::between(fresh_until, stale_until),
            error_for: Offset::between(fresh_until, error_until),
            kept_for: Offset::between(fresh_until, kept_until),
        }
    }

    /// The entry for a loader's result, with its lifetimes from the fetch
    /// and the cache's settings.
    pub(crate) fn new(fetch: &Fetch<V>, value: Content<V>, config: &Config, now: Instant) -> Self {
        let ttl = match (&fetch.ttl, &value) {
            (Some(ttl), _) => *ttl,
            (None, Content::Absent) => config.negative_ttl(),
            (None, _) if fetch.negative => config.negative_ttl(),
            (None, _) => config.default_ttl,
        };
        let clamped = window(ttl.clamp(config.min_ttl, config.max_ttl));
        let fresh_until = now + config.jitter.apply(clamped, fetch.ttl_is_explicit);
        let stale_while_revalidate = fetch
            .stale_while_revalidate
            .unwrap_or(config.stale_while_revalidate);
        let stale_if_error = fetch.stale_if_error.unwrap_or(config.stale_if_error);
        if fetch.always_revalidate {
            let kept_until = now + window(fetch.keep_for_revalidation);
            return Self::with_ends(value, now, now, [now, now, kept_until]);
        }
        let stale_until = fresh_until + window(stale_while_revalidate);
        let error_until = fresh_until + window(stale_if_error);
        let kept_until = stale_until
            .max(error_until)
            .max(fresh_until + window(fetch.keep_for_revalidation));
        Self::with_ends(
            value,
            now,
            fresh_until,
            [stale_until, error_until, kept_until],
        )
    }

    /// A hit-for-miss marker for `ttl`.
    pub(crate) fn hit_for_miss(ttl: Duration, now: Instant) -> Self {
        let until = now + window(ttl);
        Self::with_ends(Content::HitForMiss, now, until, [until; 3])
    }

    pub(crate) fn loaded_at(&self) -> Instant {
        // It was an instant before `fresh_until`: no underflow.
        self.fresh_until
            .checked_sub(self.fresh_for.duration())
            .unwrap_or(self.fresh_until)
    }

    pub(crate) fn fresh_until(&self) -> Instant {
        self.fresh_until
    }

    pub(crate) fn stale_until(&self) -> Instant {
        self.fresh_until + self.stale_for.duration()
    }

    pub(crate) fn error_until(&self) -> Instant {
        self.fresh_until + self.error_for.duration()
    }

    fn kept_until(&self) -> Instant {
        self.fresh_until + self.kept_for.duration()
    }

    /// Its timing for a lookup at `now`.
    pub(crate) fn timing(&self, now: Instant) -> Timing {
        Timing {
            loaded_at: self.loaded_at(),
            fresh_until: self.fresh_until,
            looked_up_at: now,
            from_second_tier: false,
        }
    }

    pub(crate) fn phase(&self, now: Instant) -> Phase {
        if now < self.fresh_until {
            Phase::Fresh
        } else if now < self.stale_until() {
            Phase::Stale
        } else if now < self.error_until() {
            Phase::StaleIfError
        } else {
            Phase::Expired
        }
    }

    /// The value a load refreshing this entry at `now` is handed: an
    /// expired value still kept.
    pub(crate) fn kept_value(self, now: Instant) -> Option<V> {
        match self.content {
            Content::Value(value) if now < self.kept_until() => Some(value),
            _ => None,
        }
    }

    /// Whether the entry may answer for a failed load at `now`.
    pub(crate) fn may_answer_error(&self, now: Instant) -> bool {
        now < self.error_until()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_keeps_its_instants_as_one_instant_and_four_offsets() {
        let now = Instant::now();
        let at = |ms| now + Duration::from_millis(ms);
        let entry = Entry::with_ends(Content::Value(7_u64), now, at(10), [at(20), at(30), at(40)]);
        assert_eq!(entry.loaded_at(), now);
        assert_eq!(entry.fresh_until(), at(10));
        assert_eq!(entry.stale_until(), at(20));
        assert_eq!(entry.error_until(), at(30));
        assert_eq!(entry.kept_until(), at(40));
        assert_eq!(entry.phase(at(15)), Phase::Stale);
        assert_eq!(entry.phase(at(25)), Phase::StaleIfError);
        assert_eq!(entry.phase(at(30)), Phase::Expired);
        assert_eq!(entry.kept_value(at(39)), Some(7));
        // The value's 16 bytes, one instant and four offsets.
        assert_eq!(size_of::<Entry<u64>>(), 16 + 16 + 4 * 8);
    }

    #[test]
    fn a_window_that_ends_before_freshness_ends_with_it() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let entry = Entry::with_ends(Content::<()>::Absent, later, now, [now; 3]);
        // Loaded after its freshness ended: counted as loaded at its end.
        assert_eq!(entry.loaded_at(), now);
        assert_eq!(entry.stale_until(), now);
    }
}
