//! What a *shared* cache may collapse, store, and for how long (RFC 9111).
//!
//! Pure functions over a request's method and headers and a response's status
//! and headers; the service calls them and acts on the answer.
//!
//! Request admission ([`classify_request`]) lives in [`admission`](crate::admission)
//! and is re-exported here.
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
    AGE, AUTHORIZATION, CACHE_CONTROL, COOKIE, DATE, EXPIRES, HeaderMap, HeaderName, HeaderValue,
    PRAGMA, SET_COOKIE,
};
use http::{Method, StatusCode};

pub use crate::admission::{BypassReason, RequestDecision, classify_request};
use crate::cache_control::{
    CacheControl, DELTA_SECONDS_MAX, InvalidCacheControl, Vary, VaryError, parse_delta_seconds,
    trim_ows, vary,
};

/// A request header that tells users apart, which a cache key may include
/// ([`Rules::credentials_in_key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Credential {
    /// `Authorization` (gRPC: `authorization` metadata).
    Authorization,
    /// `Cookie`.
    Cookie,
}

/// The credential headers a cache key includes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct KeyedCredentials {
    pub(crate) authorization: bool,
    pub(crate) cookie: bool,
}

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
/// # mod shared_calls { pub use shared_calls_http as http_policy; }
/// use std::time::Duration;
/// use http::StatusCode;
/// use shared_calls::http_policy::freshness::Rules;
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
    pub(crate) keyed_credentials: KeyedCredentials,
    pub(crate) honour_request_no_cache: bool,
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
            keyed_credentials: KeyedCredentials::default(),
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

    /// Which credential headers the cache key includes; none by default.
    ///
    /// A request carrying a credential the key does not include bypasses
    /// the cache: keying `Authorization` still sends a request with a
    /// `Cookie` to the inner service on its own. A request whose credentials
    /// are all keyed is collapsed and may be stored, still subject to the
    /// `Authorization` rule of RFC 9111 §3.5.
    ///
    /// ```
    /// # mod shared_calls { pub use shared_calls_http as http_policy; }
    /// use shared_calls::http_policy::freshness::{Credential, Rules};
    ///
    /// let rules = Rules::new().credentials_in_key([Credential::Authorization]);
    /// # let _ = rules;
    /// ```
    #[must_use]
    pub fn credentials_in_key(mut self, keyed: impl IntoIterator<Item = Credential>) -> Self {
        self.keyed_credentials = KeyedCredentials::default();
        for credential in keyed {
            match credential {
                Credential::Authorization => self.keyed_credentials.authorization = true,
                Credential::Cookie => self.keyed_credentials.cookie = true,
            }
        }
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

/// `Pragma` contains the element `no-cache`.
pub(crate) fn pragma_no_cache(headers: &HeaderMap) -> bool {
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
    let response = Reading::of(status, response_headers);
    analyze(rules, method, request_headers, &response, now).storability
}

/// One reading of a response's head: each header the rules look at is
/// parsed here once.
pub(crate) struct Reading<'a> {
    status: StatusCode,
    headers: &'a HeaderMap,
    /// The strict reading of `Cache-Control`.
    cc: Result<CacheControl, InvalidCacheControl>,
    /// What a malformed `Cache-Control` still says (the strict reading when
    /// it is well formed).
    lenient: CacheControl,
    vary: Result<Vary, VaryError>,
}

impl<'a> Reading<'a> {
    pub(crate) fn of(status: StatusCode, headers: &'a HeaderMap) -> Self {
        let cc = CacheControl::from_headers(headers);
        let lenient = cc.unwrap_or_else(|_| CacheControl::from_headers_lenient(headers));
        Self {
            status,
            headers,
            cc,
            lenient,
            vary: vary(headers),
        }
    }
}

/// Everything the HTTP policy needs to know of a response's head.
#[derive(Debug)]
pub(crate) struct Analysis {
    pub(crate) storability: Storability,
    /// The request headers it varies on: well formed, not `*`, not empty.
    pub(crate) vary: Option<Vary>,
    /// It must reach its own client only, whatever its status: `no-store`,
    /// `private`, a `Set-Cookie` (unless [`Rules::store_set_cookie`]),
    /// `Vary: *`, or a `Cache-Control` or `Vary` that does not parse (what
    /// it would have said can't be known). [`storability`] alone decides
    /// what is stored, and checks these only for statuses it would store.
    pub(crate) own_client_only: bool,
    pub(crate) says: Says,
}

/// Reads a response's head once for every decision about it.
pub(crate) fn analyze(
    rules: &Rules,
    method: &Method,
    request_headers: &HeaderMap,
    response: &Reading<'_>,
    now: SystemTime,
) -> Analysis {
    let set_cookie = response.headers.contains_key(SET_COOKIE) && !rules.store_set_cookie;
    let own_client_only = response.cc.is_err()
        || response.lenient.no_store()
        || response.lenient.private()
        || set_cookie
        || response.vary.is_err();
    let storability = match decide(rules, method, request_headers, response, now) {
        Ok(freshness) => Storability::Store(freshness),
        Err(reason) => Storability::DoNotStore(reason),
    };
    Analysis {
        storability,
        vary: response.vary.clone().ok().filter(|vary| !vary.is_empty()),
        own_client_only,
        says: Says::of(rules, response),
    }
}

/// Which lifetimes a stored response sets itself, over the cache's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Says {
    pub(crate) ttl: bool,
    /// The origin stated the lifetime (`s-maxage`, `max-age`, `Expires`),
    /// rather than the rules' heuristics: jitter may only shorten it.
    pub(crate) ttl_is_explicit: bool,
    pub(crate) stale_while_revalidate: bool,
    pub(crate) stale_if_error: bool,
}

impl Says {
    fn of(rules: &Rules, response: &Reading<'_>) -> Self {
        let cc = &response.lenient;
        let explicit = cc.s_maxage().is_some()
            || cc.max_age().is_some()
            || response.headers.contains_key(EXPIRES);
        // RFC 9111 §4.2.4: these forbid serving stale whatever the cache's settings.
        let no_stale = forbids_stale(cc);
        Self {
            ttl: explicit || rules.heuristic_ttl_configured(response.status),
            ttl_is_explicit: explicit,
            stale_while_revalidate: no_stale || cc.stale_while_revalidate().is_some(),
            stale_if_error: no_stale || cc.stale_if_error().is_some(),
        }
    }
}

/// Directives that forbid serving the response stale (RFC 9111 §4.2.4).
fn forbids_stale(cc: &CacheControl) -> bool {
    cc.must_revalidate() || cc.proxy_revalidate() || cc.s_maxage().is_some() || cc.no_cache()
}

fn decide(
    rules: &Rules,
    method: &Method,
    request_headers: &HeaderMap,
    response: &Reading<'_>,
    now: SystemTime,
) -> Result<Freshness, Reason> {
    if method != Method::GET {
        return Err(Reason::Method);
    }
    let status = response.status;
    if status.is_informational()
        || status.is_server_error()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.as_u16() >= 600
    {
        return Err(Reason::Status);
    }
    let cc = response
        .cc
        .map_err(|_| Reason::InvalidHeader("cache-control"))?;
    may_share(rules, request_headers, response.headers, &cc)?;
    let vary = match &response.vary {
        Ok(v) if v.is_empty() => None,
        Ok(v) => Some(v.clone()),
        Err(VaryError::Any) => return Err(Reason::VaryAny),
        Err(_) => return Err(Reason::Vary),
    };
    let age = age(response.headers)?;
    let lifetime = freshness_lifetime(rules, &cc, status, response.headers, now)?;
    let ttl = rules.clamp(lifetime.saturating_sub(age));
    if ttl.is_zero() {
        return Err(Reason::StaleOnArrival);
    }
    let window = |d: Option<Duration>| match forbids_stale(&cc) {
        true => Duration::ZERO,
        false => d.unwrap_or(Duration::ZERO).min(rules.max_ttl),
    };
    Ok(Freshness {
        ttl,
        stale_while_revalidate: window(cc.stale_while_revalidate()),
        stale_if_error: window(cc.stale_if_error()),
        initial_age: age,
        vary,
    })
}

/// The privacy rules: whether a well-formed response may be stored for
/// everyone.
fn may_share(
    rules: &Rules,
    request_headers: &HeaderMap,
    response_headers: &HeaderMap,
    cc: &CacheControl,
) -> Result<(), Reason> {
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
        && !rules.keyed_credentials.cookie
        && !(cc.public() || cc.s_maxage().is_some())
    {
        return Err(Reason::Cookie);
    }
    if response_headers.contains_key(SET_COOKIE) && !rules.store_set_cookie {
        return Err(Reason::SetCookie);
    }
    Ok(())
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
