//! A client's own limits on the stored answers it takes (RFC 9111
//! §5.2.1.1–3: request `max-age`, `min-fresh`, `max-stale`), honoured when
//! [`Rules::honour_request_freshness`](crate::freshness::Rules::honour_request_freshness)
//! says so.

use std::sync::Arc;
use std::time::Duration;

use shared_calls_tower::{Accepts, Timing};

use crate::cache_control::CacheControl;
use crate::shared::{HttpShared, Shared};

/// The request directives that bound a stored answer's age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    max_age: Option<Duration>,
    min_fresh: Option<Duration>,
    max_stale: Option<Duration>,
}

impl Limits {
    /// The limits of a request with `cc`, if it sets any.
    pub(crate) fn of(cc: &CacheControl) -> Option<Self> {
        let limits = Self {
            max_age: cc.max_age(),
            min_fresh: cc.min_fresh(),
            max_stale: cc.max_stale(),
        };
        let none = limits.max_age.is_none() && limits.min_fresh.is_none();
        (!none || limits.max_stale.is_some()).then_some(limits)
    }

    /// Which stored answers the request takes.
    pub(crate) fn accepts(self) -> Accepts<HttpShared> {
        Arc::new(move |shared: &HttpShared, timing: &Timing| {
            let Shared::Complete(stored) = &shared.0 else {
                return false;
            };
            self.take(stored.initial_age + timing.age(), timing)
        })
    }

    /// Whether an answer `age` old (its `Age` when it arrived included),
    /// stored with `timing`, is one the request takes: no older than
    /// `max-age`, fresh for at least `min-fresh`, and fresh or stale by no
    /// more than `max-stale`.
    fn take(&self, age: Duration, timing: &Timing) -> bool {
        let fresh_for = timing.fresh_for();
        let young_enough = self.max_age.is_none_or(|max| age <= max);
        let fresh_enough = self.min_fresh.is_none_or(|min| fresh_for >= min);
        let stale_allowed =
            !fresh_for.is_zero() || self.max_stale.is_some_and(|max| timing.stale_for() <= max);
        young_enough && fresh_enough && stale_allowed
    }
}
