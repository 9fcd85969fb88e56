//! The headers that say what the cache did: RFC 9211 `Cache-Status`, the
//! nginx-style `X-Cache-Status`, and `Age`.

use std::fmt::Write;

use http::HeaderValue;
use shared_calls_tower::{Answer, Outcome};

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
