//! What a *shared* cache may collapse, store, and for how long (RFC 9111).
//!
//! Pure functions over a request's method and headers and a response's status
//! and headers; the service calls them and acts on the answer.
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
//! 5. `If-None-Match`, `If-Modified-Since`, `If-Match`, `If-Unmodified-Since`,
//!    `If-Range` → [`BypassReason::Conditional`]: this cache does not evaluate
//!    preconditions (RFC 9111 §4.3.2), so the origin does.
//! 6. `Authorization` or `Cookie`, unless [`Rules::credentials_in_key`] says
//!    the key already includes them → [`BypassReason::Credentials`]. A shared
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
//!    to the service ([`CacheControl::from_headers_lenient`] exposes them).
//!
//! A malformed request `Cache-Control` is read leniently: malformed directives
//! are ignored as if absent, the well-formed ones (a `no-store` next to
//! garbage) still count. Ignoring is safe on the request side because request
//! directives can only make this cache do *less*.
//!
//! # Responses: [`storability`]
//!
//! A response is stored only when all of these hold (RFC 9111 §3, for a
//! shared cache):
//!
//! - the request method is `GET` (`HEAD` responses are not stored: the `GET`
//!   entry answers `HEAD` requests, RFC 9110 §9.3.2) → [`Reason::Method`];
//! - the status is final, not `206` (no partial storage, §3.3), not `304` (we
//!   do not revalidate, §4.3.4) and not `5xx` — a server error is never
//!   stored as fresh, whatever it says; serving stale on error is the
//!   `stale-if-error` window of the *previous* good response →
//!   [`Reason::Status`];
//! - the response `Cache-Control` parses ([`CacheControl::from_headers`]);
//!   otherwise [`Reason::InvalidHeader`]`("cache-control")` (§4.2.1: invalid
//!   freshness information should be considered stale);
//! - no request `no-store` (§5.2.1.5), no response `no-store` (§5.2.2.5) →
//!   [`Reason::NoStore`];
//! - no `private` (§5.2.2.7), qualified or not → [`Reason::Private`];
//! - no `no-cache` (§5.2.2.4), qualified or not: it allows storing but never
//!   reusing without revalidation, which this cache does not do; nor, when the
//!   response has no `Cache-Control` at all, `Pragma: no-cache` (its response
//!   meaning was never specified, §5.4; refusing is the safe reading) →
//!   [`Reason::NoCache`];
//! - if the request carried `Authorization`, the response has `public`,
//!   `s-maxage` or `must-revalidate` (§3.5). This holds even when the key
//!   includes the credentials → [`Reason::Authorization`];
//! - if the request carried `Cookie` and the key does not include it, the
//!   response has `public` or `s-maxage` → [`Reason::Cookie`];
//! - no `Set-Cookie`, unless [`Rules::store_set_cookie`] → [`Reason::SetCookie`];
//! - `Vary` is not `*` (§4.1) → [`Reason::VaryAny`], and is well formed with
//!   at most [`MAX_VARY_NAMES`](crate::cache_control::MAX_VARY_NAMES) names →
//!   [`Reason::Vary`];
//! - the freshness lifetime is known (§4.2.1), first match wins:
//!   `s-maxage` (§5.2.2.10), `max-age` (§5.2.2.1), `Expires` − `Date`
//!   (§5.3; `Date` defaults to `now`, §4.2.1; `Expires` is ignored when
//!   `max-age` or `s-maxage` is present), then the status's configured TTL
//!   ([`Rules::status_ttl`], the heuristic freshness of §4.2.2, used only when
//!   there is no explicit expiration time) → otherwise [`Reason::NoFreshness`].
//!   An invalid `Expires` means "already expired" (§5.3) →
//!   [`Reason::InvalidHeader`]`("expires")`; an invalid `Date` beside it →
//!   `InvalidHeader("date")`; several different `Expires` or `Date` lines are
//!   invalid (§4.2.1 allows "considered stale");
//! - the TTL is the lifetime minus the response's current age (§4.2.3). The
//!   response has just arrived, so its age is its `Age` header (`age_value`;
//!   response delay ≈ 0). The `apparent_age` from `Date` is not used: it
//!   depends on the origin's clock agreeing with ours, and a skewed origin
//!   would make every response stale on arrival. An invalid `Age` →
//!   [`Reason::InvalidHeader`]`("age")`;
//! - the TTL is then clamped to [`Rules::min_ttl`], [`Rules::max_ttl`]; a TTL
//!   of zero → [`Reason::StaleOnArrival`].
//!
//! The stale windows come from `stale-while-revalidate` and `stale-if-error`
//! (RFC 5861), zero when absent, and are forced to zero when a directive
//! forbids serving stale (§4.2.4): `must-revalidate` (§5.2.2.2),
//! `proxy-revalidate` (§5.2.2.8), `s-maxage` (§5.2.2.10: it "incorporates
//! the semantics of the proxy-revalidate response directive" for a shared
//! cache) and `no-cache`. They are capped at [`Rules::max_ttl`] too.
//!
//! Not implemented, and safe to leave out: `must-understand` (§5.2.2.3: a
//! cache that ignores it still honours `no-store`), storing `206` (§3.3),
//! revalidation (§4.3), invalidation by unsafe methods (§4.4, the service's
//! business).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, COOKIE, DATE, EXPIRES, HeaderMap,
    HeaderName, HeaderValue, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE,
    IF_UNMODIFIED_SINCE, PRAGMA, RANGE, SET_COOKIE, TRANSFER_ENCODING, UPGRADE,
};
use http::{Method, StatusCode};

use crate::cache_control::{
    CacheControl, DELTA_SECONDS_MAX, Vary, VaryError, parse_delta_seconds, trim_ows, vary,
};

/// The statuses stored without explicit freshness, at [`Rules::default_ttl`],
/// unless configured otherwise. The heuristically cacheable statuses of
/// RFC 9110 §15.1, less `206` (partial), `405`, `414` and `501`.
const DEFAULT_STATUSES: [u16; 8] = [200, 203, 204, 300, 301, 308, 404, 410];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusTtl {
    /// Follows [`Rules::default_ttl`].
    Default,
    Fixed(Duration),
}

/// Configuration of [`classify_request`] and [`storability`].
///
/// ```
/// use std::time::Duration;
/// use http::StatusCode;
/// use shared_calls_http::freshness::Rules;
///
/// let rules = Rules::default()
///     .default_ttl(Duration::from_secs(30))
///     .status_ttl(StatusCode::NOT_FOUND, Duration::from_secs(5))
///     .max_ttl(Duration::from_secs(3600));
/// assert_eq!(rules.heuristic_ttl(StatusCode::OK), Some(Duration::from_secs(30)));
/// assert_eq!(rules.heuristic_ttl(StatusCode::NOT_FOUND), Some(Duration::from_secs(5)));
/// assert_eq!(rules.heuristic_ttl(StatusCode::FOUND), None);
/// ```
#[derive(Clone, Debug)]
pub struct Rules {
    status_ttls: Vec<(StatusCode, StatusTtl)>,
    default_ttl: Duration,
    /// Whether [`Rules::default_ttl`] was called: otherwise the HTTP policy
    /// leaves the TTL of responses without explicit freshness to the cache.
    default_ttl_set: bool,
    min_ttl: Duration,
    max_ttl: Duration,
    store_set_cookie: bool,
    credentials_in_key: bool,
    honour_request_no_cache: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            status_ttls: DEFAULT_STATUSES
                .iter()
                .filter_map(|&code| StatusCode::from_u16(code).ok())
                .map(|status| (status, StatusTtl::Default))
                .collect(),
            default_ttl: Duration::from_secs(60),
            default_ttl_set: false,
            min_ttl: Duration::ZERO,
            max_ttl: Duration::from_secs(24 * 60 * 60),
            store_set_cookie: false,
            credentials_in_key: false,
            honour_request_no_cache: false,
        }
    }
}

impl Rules {
    /// The defaults: `200, 203, 204, 300, 301, 308, 404, 410` stored for
    /// 60 s without explicit freshness, TTLs clamped to `[0, 24 h]`, no
    /// `Set-Cookie` stored, credentials not in the key, request `no-cache`
    /// ignored.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores responses of `status` that carry no explicit freshness
    /// (`s-maxage`, `max-age`, `Expires`) for `ttl` (RFC 9111 §4.2.2).
    ///
    /// `5xx`, `1xx`, `206` and `304` are never stored, whatever is configured
    /// here. A zero `ttl` stores nothing for that status (unless
    /// [`min_ttl`](Self::min_ttl) raises it).
    #[must_use]
    pub fn status_ttl(mut self, status: StatusCode, ttl: Duration) -> Self {
        self.set_status(status, StatusTtl::Fixed(ttl));
        self
    }

    /// Stops storing responses of `status` that carry no explicit freshness.
    #[must_use]
    pub fn remove_status_ttl(mut self, status: StatusCode) -> Self {
        self.status_ttls.retain(|(s, _)| *s != status);
        self
    }

    /// Stores no response without explicit freshness; add statuses back with
    /// [`status_ttl`](Self::status_ttl).
    #[must_use]
    pub fn clear_status_ttls(mut self) -> Self {
        self.status_ttls.clear();
        self
    }

    /// The TTL of the default statuses (`200, 203, 204, 300, 301, 308, 404,
    /// 410`) that were not given their own with
    /// [`status_ttl`](Self::status_ttl). Default 60 s.
    ///
    /// Unless this is called, the HTTP policy stores such responses for the
    /// cache's own TTL (the layer's `ttl`, itself 60 s by default).
    #[must_use]
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self.default_ttl_set = true;
        self
    }

    /// The shortest TTL a stored response gets, default zero.
    ///
    /// This overrides the origin: with a non-zero `min_ttl`, a response whose
    /// explicit freshness is shorter (even `max-age=0`) is kept fresh for
    /// `min_ttl`. Privacy rules (`no-store`, `private`, `no-cache`,
    /// credentials) are never overridden. If it exceeds
    /// [`max_ttl`](Self::max_ttl), `max_ttl` wins.
    #[must_use]
    pub fn min_ttl(mut self, ttl: Duration) -> Self {
        self.min_ttl = ttl;
        self
    }

    /// The longest TTL (and stale window) a stored response gets, default
    /// 24 h.
    #[must_use]
    pub fn max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// Whether responses with `Set-Cookie` may be stored, default `false`.
    ///
    /// When `true`, the stored `Set-Cookie` is replayed to every client that
    /// gets the cached response: only for cookies that are the same for
    /// everyone.
    #[must_use]
    pub fn store_set_cookie(mut self, store: bool) -> Self {
        self.store_set_cookie = store;
        self
    }

    /// Whether the cache key already includes the request's `Authorization`
    /// and `Cookie`, default `false`.
    ///
    /// When `false`, requests with either header bypass the cache. When
    /// `true` they are collapsed and may be stored, still subject to the
    /// `Authorization` rule of RFC 9111 §3.5.
    #[must_use]
    pub fn credentials_in_key(mut self, in_key: bool) -> Self {
        self.credentials_in_key = in_key;
        self
    }

    /// Whether a client's `Cache-Control: no-cache`, `max-age=0` or
    /// `Pragma: no-cache` makes its request bypass the cache, default
    /// `false` (ignored, so that clients can't force backend calls).
    #[must_use]
    pub fn honour_request_no_cache(mut self, honour: bool) -> Self {
        self.honour_request_no_cache = honour;
        self
    }

    /// The TTL for a response of `status` without explicit freshness, before
    /// the [`min_ttl`](Self::min_ttl)/[`max_ttl`](Self::max_ttl) clamp;
    /// `None` if such responses are not stored.
    pub fn heuristic_ttl(&self, status: StatusCode) -> Option<Duration> {
        self.status_ttls
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, ttl)| match ttl {
                StatusTtl::Default => self.default_ttl,
                StatusTtl::Fixed(ttl) => *ttl,
            })
    }

    /// Whether the heuristic TTL of `status` was configured here
    /// ([`status_ttl`](Self::status_ttl) or [`default_ttl`](Self::default_ttl))
    /// rather than left to the defaults.
    pub(crate) fn heuristic_ttl_configured(&self, status: StatusCode) -> bool {
        self.status_ttls
            .iter()
            .find(|(s, _)| *s == status)
            .is_some_and(|(_, ttl)| match ttl {
                StatusTtl::Default => self.default_ttl_set,
                StatusTtl::Fixed(_) => true,
            })
    }

    fn set_status(&mut self, status: StatusCode, ttl: StatusTtl) {
        match self.status_ttls.iter_mut().find(|(s, _)| *s == status) {
            Some(entry) => entry.1 = ttl,
            None => self.status_ttls.push((status, ttl)),
        }
    }

    fn clamp(&self, ttl: Duration) -> Duration {
        ttl.max(self.min_ttl).min(self.max_ttl)
    }
}

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

const CONDITIONALS: [HeaderName; 5] = [
    IF_NONE_MATCH,
    IF_MODIFIED_SINCE,
    IF_MATCH,
    IF_UNMODIFIED_SINCE,
    IF_RANGE,
];

/// Decides whether a request may be collapsed and served from the cache (see
/// the [module docs](self) for the rules and their order).
pub fn classify_request(rules: &Rules, method: &Method, headers: &HeaderMap) -> RequestDecision {
    use RequestDecision::Bypass;

    if method != Method::GET && method != Method::HEAD {
        return Bypass(BypassReason::Method);
    }
    // One pass over the request's header names (a handful, usually) rather
    // than a lookup per rule: this runs for every request, hits included.
    let found = RequestHeaders::scan(headers);
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
    if found.credentials && !rules.credentials_in_key {
        return Bypass(BypassReason::Credentials);
    }
    if !found.cache_control && !found.pragma {
        return RequestDecision::Collapse;
    }
    let cc = CacheControl::from_headers_lenient(headers);
    if cc.no_store() {
        return Bypass(BypassReason::NoStore);
    }
    if rules.honour_request_no_cache
        && (cc.no_cache()
            || cc.max_age() == Some(Duration::ZERO)
            || (!found.cache_control && pragma_no_cache(headers)))
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
    credentials: bool,
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
            } else if CONDITIONALS.contains(name) {
                found.conditional = true;
            } else if name == AUTHORIZATION || name == COOKIE {
                found.credentials = true;
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
    !rules.credentials_in_key
        && (headers.contains_key(AUTHORIZATION) || headers.contains_key(COOKIE))
}

/// Whether a response must reach its own client only, whatever its status:
/// `no-store`, `private`, a `Set-Cookie` (unless [`Rules::store_set_cookie`]),
/// `Vary: *`, or a `Cache-Control` or `Vary` that does not parse (what it
/// would have said can't be known). Such a response is not handed even to
/// the requests waiting for the same call; [`storability`] alone decides
/// what is stored, and checks these only for statuses it would store.
pub(crate) fn for_its_client_only(rules: &Rules, response_headers: &HeaderMap) -> bool {
    let private = match CacheControl::from_headers(response_headers) {
        Ok(cc) => cc.no_store() || cc.private(),
        Err(_) => true,
    };
    private
        || (response_headers.contains_key(SET_COOKIE) && !rules.store_set_cookie)
        || vary(response_headers).is_err()
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .any(|v| trim_ows(v.as_bytes()) != b"0")
}

/// `Pragma` contains the element `no-cache`.
fn pragma_no_cache(headers: &HeaderMap) -> bool {
    headers.get_all(PRAGMA).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|e| trim_ows(e).eq_ignore_ascii_case(b"no-cache"))
    })
}

/// Whether and for how long a response may be stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Storability {
    /// Store it, fresh for [`Freshness::ttl`].
    Store(Freshness),
    /// Do not store it (followers fetch on their own).
    DoNotStore(Reason),
}

/// How long a stored response is fresh, how long it may be served stale, and
/// what it varies on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Freshness {
    /// Remaining freshness, counted from now: the freshness lifetime minus the
    /// response's age, clamped to the rules' `[min_ttl, max_ttl]`; never zero.
    pub ttl: Duration,
    /// After `ttl`, how long the response may be served stale while one
    /// background refresh runs (RFC 5861 §3); zero when not allowed.
    pub stale_while_revalidate: Duration,
    /// After `ttl`, how long the response may be served stale when a refresh
    /// fails (RFC 5861 §4); zero when not allowed.
    pub stale_if_error: Duration,
    /// The response's age on arrival (its `Age` header, zero when absent).
    /// The `Age` to send when serving it later is this plus the time it has
    /// been stored (RFC 9111 §4.2.3, §5.1).
    pub initial_age: Duration,
    /// The request headers the response varies on, `None` when it does not
    /// vary. Store it with the entry and keep
    /// [`Vary::capture`]`(request headers)` to match later requests.
    pub vary: Option<Vary>,
}

/// Why a response is not stored (see [`storability`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The request method was not `GET`.
    Method,
    /// A status that is never stored: `1xx`, `206`, `304`, `5xx`.
    Status,
    /// `no-store` in the request or the response.
    NoStore,
    /// `private` in the response.
    Private,
    /// `no-cache` in the response (or `Pragma: no-cache` without
    /// `Cache-Control`).
    NoCache,
    /// `Vary: *`.
    VaryAny,
    /// A malformed `Vary`, or one with too many names.
    Vary,
    /// The response sets a cookie.
    SetCookie,
    /// The request had `Authorization` and the response does not allow
    /// shared caching (RFC 9111 §3.5).
    Authorization,
    /// The request had `Cookie`, the key does not include it, and the
    /// response is not `public` nor `s-maxage`.
    Cookie,
    /// A header needed to decide is invalid; the lowercase header name.
    InvalidHeader(&'static str),
    /// Already stale when it arrived (TTL zero after the `Age` and clamp).
    StaleOnArrival,
    /// No explicit freshness and no TTL configured for its status.
    NoFreshness,
}

impl Reason {
    /// A short token for logs and a `Cache-Status` `detail` parameter.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Method => "method",
            Reason::Status => "status",
            Reason::NoStore => "no-store",
            Reason::Private => "private",
            Reason::NoCache => "no-cache",
            Reason::VaryAny => "vary-any",
            Reason::Vary => "vary-invalid",
            Reason::SetCookie => "set-cookie",
            Reason::Authorization => "authorization",
            Reason::Cookie => "cookie",
            Reason::InvalidHeader(name) => match name.as_bytes() {
                b"cache-control" => "invalid-cache-control",
                b"expires" => "invalid-expires",
                b"date" => "invalid-date",
                b"age" => "invalid-age",
                _ => "invalid-header",
            },
            Reason::StaleOnArrival => "stale-on-arrival",
            Reason::NoFreshness => "no-freshness",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decides whether a response may be stored by a shared cache and computes
/// its freshness (see the [module docs](self) for the rules and their order).
///
/// `now` is the time the response was received; it stands in for a missing
/// `Date`.
pub fn storability(
    rules: &Rules,
    method: &Method,
    request_headers: &HeaderMap,
    status: StatusCode,
    response_headers: &HeaderMap,
    now: SystemTime,
) -> Storability {
    match decide(
        rules,
        method,
        request_headers,
        status,
        response_headers,
        now,
    ) {
        Ok(freshness) => Storability::Store(freshness),
        Err(reason) => Storability::DoNotStore(reason),
    }
}

fn decide(
    rules: &Rules,
    method: &Method,
    request_headers: &HeaderMap,
    status: StatusCode,
    response_headers: &HeaderMap,
    now: SystemTime,
) -> Result<Freshness, Reason> {
    if method != Method::GET {
        return Err(Reason::Method);
    }
    if status.is_informational()
        || status.is_server_error()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.as_u16() >= 600
    {
        return Err(Reason::Status);
    }
    let cc = CacheControl::from_headers(response_headers)
        .map_err(|_| Reason::InvalidHeader("cache-control"))?;
    if cc.no_store() || CacheControl::from_headers_lenient(request_headers).no_store() {
        return Err(Reason::NoStore);
    }
    if cc.private() {
        return Err(Reason::Private);
    }
    if cc.no_cache()
        || (!response_headers.contains_key(CACHE_CONTROL) && pragma_no_cache(response_headers))
    {
        return Err(Reason::NoCache);
    }
    if request_headers.contains_key(AUTHORIZATION)
        && !(cc.public() || cc.s_maxage().is_some() || cc.must_revalidate())
    {
        return Err(Reason::Authorization);
    }
    if request_headers.contains_key(COOKIE)
        && !rules.credentials_in_key
        && !(cc.public() || cc.s_maxage().is_some())
    {
        return Err(Reason::Cookie);
    }
    if response_headers.contains_key(SET_COOKIE) && !rules.store_set_cookie {
        return Err(Reason::SetCookie);
    }
    let vary = match vary(response_headers) {
        Ok(v) if v.is_empty() => None,
        Ok(v) => Some(v),
        Err(VaryError::Any) => return Err(Reason::VaryAny),
        Err(_) => return Err(Reason::Vary),
    };
    let age = age(response_headers)?;
    let lifetime = freshness_lifetime(rules, &cc, status, response_headers, now)?;
    let ttl = rules.clamp(lifetime.saturating_sub(age));
    if ttl.is_zero() {
        return Err(Reason::StaleOnArrival);
    }
    let no_stale =
        cc.must_revalidate() || cc.proxy_revalidate() || cc.s_maxage().is_some() || cc.no_cache();
    let window = |d: Option<Duration>| {
        if no_stale {
            Duration::ZERO
        } else {
            d.unwrap_or(Duration::ZERO).min(rules.max_ttl)
        }
    };
    Ok(Freshness {
        ttl,
        stale_while_revalidate: window(cc.stale_while_revalidate()),
        stale_if_error: window(cc.stale_if_error()),
        initial_age: age,
        vary,
    })
}

/// The freshness lifetime of RFC 9111 §4.2.1, for a shared cache.
fn freshness_lifetime(
    rules: &Rules,
    cc: &CacheControl,
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<Duration, Reason> {
    if let Some(s_maxage) = cc.s_maxage() {
        return Ok(s_maxage);
    }
    if let Some(max_age) = cc.max_age() {
        return Ok(max_age);
    }
    if headers.contains_key(EXPIRES) {
        let expires = single_date(headers, &EXPIRES)
            .flatten()
            .ok_or(Reason::InvalidHeader("expires"))?;
        let date = match single_date(headers, &DATE) {
            None => now,
            Some(Some(date)) => date,
            Some(None) => return Err(Reason::InvalidHeader("date")),
        };
        return Ok(expires.duration_since(date).unwrap_or(Duration::ZERO));
    }
    rules.heuristic_ttl(status).ok_or(Reason::NoFreshness)
}

/// `None`: the header is absent. `Some(None)`: present but invalid (not an
/// HTTP-date, or several lines that differ). `Some(Some(t))`: the date.
fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<Option<SystemTime>> {
    let mut values = headers.get_all(name).into_iter();
    let first = values.next()?;
    if values.any(|v| v != first) {
        return Some(None);
    }
    Some(parse_http_date(first))
}

/// The response's `Age` (RFC 9111 §5.1), zero when absent, saturated at 2^31 s.
fn age(headers: &HeaderMap) -> Result<Duration, Reason> {
    let mut values = headers.get_all(AGE).into_iter();
    let Some(first) = values.next() else {
        return Ok(Duration::ZERO);
    };
    if values.any(|v| v != first) {
        return Err(Reason::InvalidHeader("age"));
    }
    parse_delta_seconds(trim_ows(first.as_bytes()).iter().copied())
        .ok_or(Reason::InvalidHeader("age"))
}

/// Parses an HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850
/// and asctime forms). `None` when the value is not one, including `0` and
/// dates before 1970.
pub fn parse_http_date(value: &HeaderValue) -> Option<SystemTime> {
    let text = value.to_str().ok()?;
    httpdate::parse_http_date(text).ok()
}

/// An `Age` header value: whole seconds, saturated at 2^31 (RFC 9111 §1.2.2,
/// §5.1).
pub fn age_header_value(age: Duration) -> HeaderValue {
    HeaderValue::from(age.as_secs().min(DELTA_SECONDS_MAX))
}

/// An IMF-fixdate header value (for `Date`, RFC 9110 §6.6.1). Times before
/// 1970 or after 9999 are clamped into that range.
pub fn http_date(time: SystemTime) -> HeaderValue {
    // 9999-12-31T23:59:59Z, the last second an IMF-fixdate can express.
    const LAST: u64 = 253_402_300_799;
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs().min(LAST));
    let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
    HeaderValue::try_from(text)
        .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"))
}
