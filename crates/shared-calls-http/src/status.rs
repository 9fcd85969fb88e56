//! The headers that say what the cache did: RFC 9211 `Cache-Status`, the
//! nginx-style `X-Cache-Status`, and `Age`.

use std::cell::RefCell;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use shared_calls_tower::{Answer, Outcome};

use crate::freshness;

/// Slots of each thread's memo of hit header values: room for the hot
/// entries of a busy second, each with its own age and freshness left.
const HIT_MEMO_SLOTS: usize = 64;

/// A hit's `Age` and `Cache-Status` values, and what they were made for.
struct HitValues {
    /// The `Cache-Status` name, held so that its address names it alone.
    name: Option<Arc<str>>,
    age_secs: u64,
    ttl_secs: u64,
    age: HeaderValue,
    cache_status: Option<HeaderValue>,
}

thread_local! {
    /// Hit header values made on this thread, by age and freshness left in
    /// whole seconds: a hot entry answers many hits a second with the same
    /// two values, which would otherwise be formatted and allocated anew
    /// for each. Per thread rather than per entry, so that stored entries
    /// carry nothing for it.
    static HIT_MEMO: RefCell<[Option<HitValues>; HIT_MEMO_SLOTS]> =
        const { RefCell::new([const { None }; HIT_MEMO_SLOTS]) };
}

/// The `Age` and `Cache-Status` (named `name`, if any) of a fresh hit of
/// the first tier, `age` old with `answer.fresh_for()` left.
pub(crate) fn hit_headers(
    name: Option<&Arc<str>>,
    age: Duration,
    answer: &Answer,
) -> (HeaderValue, Option<HeaderValue>) {
    let (age_secs, ttl_secs) = (age.as_secs(), answer.fresh_for().as_secs());
    let name_address = name.map_or(0, |name| Arc::as_ptr(name).cast::<u8>() as usize);
    let mixed = (age_secs ^ ttl_secs.rotate_left(29) ^ (name_address as u64 >> 4))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let slot = (mixed >> 58) as usize % HIT_MEMO_SLOTS;
    let make = || {
        let age = freshness::age_header_value(age);
        let cache_status = name.map(|name| cache_status(name, answer, None));
        (age, cache_status)
    };
    let remembered = HIT_MEMO.try_with(|memo| {
        // Borrowed only here, and making values reaches no memo.
        let mut memo = memo.borrow_mut();
        let slot = &mut memo[slot];
        if !slot
            .as_ref()
            .is_some_and(|values| values.made_for(name, age_secs, ttl_secs))
        {
            *slot = None;
        }
        let values = slot.get_or_insert_with(|| {
            let (age, cache_status) = make();
            HitValues {
                name: name.cloned(),
                age_secs,
                ttl_secs,
                age,
                cache_status,
            }
        });
        (values.age.clone(), values.cache_status.clone())
    });
    // A thread being torn down has no memo left.
    remembered.unwrap_or_else(|_| make())
}

impl HitValues {
    fn made_for(&self, name: Option<&Arc<str>>, age_secs: u64, ttl_secs: u64) -> bool {
        let same_name = match (&self.name, name) {
            (Some(own), Some(name)) => Arc::ptr_eq(own, name),
            (own, name) => own.is_none() && name.is_none(),
        };
        same_name && self.age_secs == age_secs && self.ttl_secs == ttl_secs
    }
}

/// The `Cache-Status` entry of this cache for an answer (RFC 9211 §2).
pub(crate) fn cache_status(name: &str, answer: &Answer, detail: Option<&str>) -> HeaderValue {
    let mut value = String::with_capacity(64);
    value.push_str(name);
    match answer.outcome {
        Outcome::Hit => {
            let _ = write!(value, "; hit; ttl={}", answer.fresh_for().as_secs());
            if answer.from_second_tier() {
                value.push_str("; detail=l2");
            }
        }
        Outcome::Stale => value.push_str("; hit; fwd=stale; detail=stale-while-revalidate"),
        Outcome::StaleIfError => value.push_str("; fwd=stale; detail=stale-if-error"),
        Outcome::Bypass => value.push_str("; fwd=bypass"),
        Outcome::Miss | Outcome::Collapsed | Outcome::Pass | Outcome::LockTimeout => {
            value.push_str("; fwd=miss");
            if answer.outcome == Outcome::Collapsed {
                value.push_str("; collapsed");
            }
            if answer.stored {
                let _ = write!(value, "; stored; ttl={}", answer.fresh_for().as_secs());
            }
            match answer.outcome {
                Outcome::Pass => value.push_str("; detail=hit-for-miss"),
                Outcome::LockTimeout => value.push_str("; detail=lock-timeout"),
                _ => {}
            }
        }
        _ => value.push_str("; fwd=miss"),
    }
    if let Some(detail) = detail
        && !value.contains("; detail=")
    {
        let _ = write!(value, "; detail={detail}");
    }
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("shared-calls"))
}

/// The `Cache-Status` entry of an answer made by this cache that neither
/// came from its store nor went forward, with why.
pub(crate) fn not_stored(name: &str, detail: &str) -> HeaderValue {
    HeaderValue::try_from(format!("{name}; detail={detail}"))
        .unwrap_or_else(|_| HeaderValue::from_static("shared-calls"))
}

/// The `Cache-Status` entry of an answer that a kept entry gave once the
/// origin's `304` confirmed it (RFC 9211 §2.2, §2.3): the request went
/// forward because the entry was stale.
pub(crate) fn revalidated(name: &str, answer: &Answer) -> HeaderValue {
    let mut value = String::with_capacity(96);
    value.push_str(name);
    value.push_str("; fwd=stale; fwd-status=304");
    if answer.outcome == Outcome::Collapsed {
        value.push_str("; collapsed");
    }
    if answer.stored {
        let _ = write!(value, "; stored; ttl={}", answer.fresh_for().as_secs());
    }
    value.push_str(match answer.outcome {
        Outcome::LockTimeout => "; detail=lock-timeout",
        _ => "; detail=revalidated",
    });
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static("shared-calls"))
}

/// The nginx `$upstream_cache_status` word for an answer.
pub(crate) fn x_cache_status(outcome: Outcome) -> HeaderValue {
    HeaderValue::from_static(match outcome {
        Outcome::Hit | Outcome::Collapsed => "HIT",
        Outcome::Stale => "UPDATING",
        Outcome::StaleIfError => "STALE",
        Outcome::Bypass => "BYPASS",
        _ => "MISS",
    })
}
