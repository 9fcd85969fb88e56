//! Which requests may be collapsed and answered from the cache (RFC 9111
//! for a *shared* cache).
//!
//! # Requests: [`classify_request`]
//!
//! Decides whether a request may join a flight (and be answered from the
//! cache) or must go to the inner service on its own. In order:
//!
//! 1. Only `GET` and `HEAD` are collapsed (RFC 9111 §2, §4: other methods'
//!    responses are not reused here) → [`BypassReason::Method`].
//! 2. `Upgrade` (WebSocket and friends, RFC 9110 §7.8) → [`BypassReason::Upgrade`]:
//!    a connection can't be shared.
//! 3. A request body (`Transfer-Encoding`, or `Content-Length` other than 0)
//!    → [`BypassReason::Body`]: content in a `GET` has no defined semantics
//!    (RFC 9110 §9.3.1), yet two bodies behind one URI may differ.
//! 4. `Range` → [`BypassReason::Range`]: partial responses are not stored
//!    (RFC 9111 §3.3 is optional and not implemented).
//! 5. `If-Match`, `If-Unmodified-Since`, `If-Range` →
//!    [`BypassReason::Conditional`]: preconditions meant for the origin
//!    (RFC 9111 §4.3.2), which the origin evaluates. A client's
//!    `If-None-Match` and `If-Modified-Since` do not bypass: the cache
//!    answers them itself, with a `304` when the answer it gives has not
//!    changed (they never reach the inner service on a shared call).
//! 6. `Authorization` or `Cookie` that [`Rules::credentials_in_key`] does not
//!    say the key includes → [`BypassReason::Credentials`]; keying one of
//!    them opens nothing to the other. A shared
//!    cache must never hand one user's answer to another (RFC 9111 §3.5,
//!    §7.5 for `Authorization`; `Cookie` by the same reasoning).
//! 7. Request `Cache-Control: no-store` (§5.2.1.5) → [`BypassReason::NoStore`].
//! 8. Only with [`Rules::honour_request_no_cache`]: request `no-cache`
//!    (§5.2.1.4), request `max-age=0` (§5.2.1.1: nothing older than zero
//!    seconds is acceptable, the browser "reload"), or `Pragma: no-cache` when
//!    the request has no `Cache-Control` (the HTTP/1.0 form; RFC 9111 §5.4
//!    deprecates `Pragma`) → [`BypassReason::NoCache`]. By default they are
//!    ignored: a cache in front of an origin protects that origin, and
//!    letting every client force a backend call defeats the stampede
//!    protection. Other request directives (`max-stale`, `min-fresh`,
//!    `only-if-cached`, `max-age=N`) depend on a stored entry's age and are left
//!    to the service: `only-if-cached` is always answered from a fresh stored
//!    entry or with a `504`; the others are honoured only with
//!    [`Rules::honour_request_freshness`].
//!
//! A malformed request `Cache-Control` is read leniently: malformed directives
//! are ignored as if absent, the well-formed ones (a `no-store` next to
//! garbage) still count. Ignoring is safe on the request side: an ignored
//! directive leaves the cache answering as it would anyway.
//!

use std::fmt;
use std::time::Duration;

use http::Method;
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, COOKIE, HeaderMap, HeaderName, IF_MATCH,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, PRAGMA, RANGE,
    TRANSFER_ENCODING, UPGRADE,
};

use crate::cache_control::{CacheControl, trim_ows};
use crate::conditional::Conditions;
use crate::freshness::{Rules, pragma_no_cache};
use crate::request_freshness::Limits;

/// What to do with a request before any cache lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestDecision {
    /// Look it up, and on a miss join (or lead) the flight for its key.
    Collapse,
    /// Call the inner service directly: nothing shared, nothing stored.
    Bypass(BypassReason),
}

/// Why a request bypasses the cache (see [`classify_request`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BypassReason {
    /// Not `GET` or `HEAD`.
    Method,
    /// An `Upgrade` request.
    Upgrade,
    /// The request has a body.
    Body,
    /// A `Range` request.
    Range,
    /// A conditional request (`If-*`).
    Conditional,
    /// `Authorization` or `Cookie`, and the key does not include them.
    Credentials,
    /// Request `Cache-Control: no-store`.
    NoStore,
    /// Request `no-cache`, `max-age=0` or `Pragma: no-cache`, honoured.
    NoCache,
}

impl BypassReason {
    /// A short token for logs and a `Cache-Status` `detail` parameter.
    pub const fn as_str(self) -> &'static str {
        match self {
            BypassReason::Method => "method",
            BypassReason::Upgrade => "upgrade",
            BypassReason::Body => "request-body",
            BypassReason::Range => "range",
            BypassReason::Conditional => "conditional",
            BypassReason::Credentials => "credentials",
            BypassReason::NoStore => "no-store",
            BypassReason::NoCache => "no-cache",
        }
    }
}

impl fmt::Display for BypassReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Preconditions meant for the origin: the request bypasses.
const PRECONDITIONS: [HeaderName; 3] = [IF_MATCH, IF_UNMODIFIED_SINCE, IF_RANGE];

/// Decides whether a request may be collapsed and served from the cache (see
/// the [module docs](self) for the rules and their order).
pub fn classify_request(rules: &Rules, method: &Method, headers: &HeaderMap) -> RequestDecision {
    read_request(rules, method, headers).decision
}

/// What the cache takes from a request: [`classify_request`]'s decision and
/// the directives and conditions it answers itself.
#[derive(Debug)]
pub(crate) struct RequestReading {
    pub(crate) decision: RequestDecision,
    /// `If-None-Match` / `If-Modified-Since` of a collapsed request.
    pub(crate) conditions: Option<Conditions>,
    /// `Cache-Control: only-if-cached`: a stored answer or a `504`.
    pub(crate) only_if_cached: bool,
    /// Which stored answers a collapsed request takes, by its own `max-age`,
    /// `min-fresh` and `max-stale`, when the rules honour them.
    pub(crate) limits: Option<Limits>,
}

/// Reads a request once: one pass over its header names (a handful,
/// usually) rather than a lookup per rule, since this runs for every
/// request, hits included.
pub(crate) fn read_request(rules: &Rules, method: &Method, headers: &HeaderMap) -> RequestReading {
    let found = RequestHeaders::scan(headers);
    let cc = found
        .cache_control
        .then(|| CacheControl::from_headers_lenient(headers));
    let decision = decide(rules, method, headers, &found, cc.as_ref());
    let collapsed = decision == RequestDecision::Collapse;
    RequestReading {
        decision,
        conditions: (collapsed && found.validation)
            .then(|| Conditions::of(headers))
            .flatten(),
        only_if_cached: cc.as_ref().is_some_and(CacheControl::only_if_cached),
        limits: match &cc {
            Some(cc) if collapsed && rules.honour_request_freshness => Limits::of(cc),
            _ => None,
        },
    }
}

fn decide(
    rules: &Rules,
    method: &Method,
    headers: &HeaderMap,
    found: &RequestHeaders,
    cc: Option<&CacheControl>,
) -> RequestDecision {
    use RequestDecision::Bypass;

    if method != Method::GET && method != Method::HEAD {
        return Bypass(BypassReason::Method);
    }
    if found.upgrade {
        return Bypass(BypassReason::Upgrade);
    }
    if found.body_framing && has_body(headers) {
        return Bypass(BypassReason::Body);
    }
    if found.range {
        return Bypass(BypassReason::Range);
    }
    if found.conditional {
        return Bypass(BypassReason::Conditional);
    }
    if (found.authorization && !rules.keyed_credentials.authorization)
        || (found.cookie && !rules.keyed_credentials.cookie)
    {
        return Bypass(BypassReason::Credentials);
    }
    if !found.cache_control && !found.pragma {
        return RequestDecision::Collapse;
    }
    if cc.is_some_and(CacheControl::no_store) {
        return Bypass(BypassReason::NoStore);
    }
    if rules.honour_request_no_cache
        && (cc.is_some_and(CacheControl::no_cache)
            || cc.and_then(CacheControl::max_age) == Some(Duration::ZERO)
            || (cc.is_none() && pragma_no_cache(headers)))
    {
        return Bypass(BypassReason::NoCache);
    }
    RequestDecision::Collapse
}

/// Which of the headers that [`classify_request`] cares about a request has.
#[derive(Default)]
struct RequestHeaders {
    upgrade: bool,
    body_framing: bool,
    range: bool,
    conditional: bool,
    validation: bool,
    authorization: bool,
    cookie: bool,
    cache_control: bool,
    pragma: bool,
}

impl RequestHeaders {
    fn scan(headers: &HeaderMap) -> Self {
        let mut found = Self::default();
        for name in headers.keys() {
            if name == UPGRADE {
                found.upgrade = true;
            } else if name == TRANSFER_ENCODING || name == CONTENT_LENGTH {
                found.body_framing = true;
            } else if name == RANGE {
                found.range = true;
            } else if name == IF_NONE_MATCH || name == IF_MODIFIED_SINCE {
                found.validation = true;
            } else if PRECONDITIONS.contains(name) {
                found.conditional = true;
            } else if name == AUTHORIZATION {
                found.authorization = true;
            } else if name == COOKIE {
                found.cookie = true;
            } else if name == CACHE_CONTROL {
                found.cache_control = true;
            } else if name == PRAGMA {
                found.pragma = true;
            }
        }
        found
    }
}

/// `Authorization` or `Cookie` that the key does not include
/// ([`Rules::credentials_in_key`]): the request must not share.
pub(crate) fn unkeyed_credentials(rules: &Rules, headers: &HeaderMap) -> bool {
    let keyed = rules.keyed_credentials;
    (!keyed.authorization && headers.contains_key(AUTHORIZATION))
        || (!keyed.cookie && headers.contains_key(COOKIE))
}

/// Whether a request announces a body: `Transfer-Encoding`, or a
/// `Content-Length` other than 0.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .any(|v| trim_ows(v.as_bytes()) != b"0")
}
