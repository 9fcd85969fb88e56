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
//! - the status is final, not `206` (no partial storage, §3.3), not `304` (it
//!   freshens a stored answer instead, §4.3.4) and not `5xx` — a server error is never
//!   stored as fresh, whatever it says; serving stale on error is the
//!   `stale-if-error` window of the *previous* good response →
//!   [`Reason::Status`];
//! - the response `Cache-Control` parses ([`CacheControl::from_headers`]);
//!   otherwise [`Reason::InvalidHeader`]`("cache-control")` (§4.2.1: invalid
//!   freshness information should be considered stale);
//! - no request `no-store` (§5.2.1.5), no response `no-store` (§5.2.2.5) →
//!   [`Reason::NoStore`];
//! - no unqualified `private` (§5.2.2.7) → [`Reason::Private`];
//! - unqualified `no-cache` (§5.2.2.4), or, when the response has no
//!   `Cache-Control` at all, `Pragma: no-cache` (§5.4): stored only with a
//!   validator (`ETag`, `Last-Modified`), never fresh ([`Freshness::ttl`]
//!   zero), and revalidated on every use; without one → [`Reason::NoCache`].
//!   The qualified forms `no-cache="f"` and `private="f"` do not prevent
//!   storing: the stored copy goes without the fields they name
//!   ([`qualified_fields`]), which only the client of the call that fetched
//!   it receives;
//! - if the request carried `Authorization`, the response has `public`,
//!   `s-maxage` or `must-revalidate` (§3.5). This holds even when the key
//!   includes the credentials → [`Reason::Authorization`];
//! - if the request carried `Cookie` and the key does not include it, the
//!   response has `public` or `s-maxage` → [`Reason::Cookie`];
//! - no `Set-Cookie`, unless [`Rules::store_set_cookie`] or a qualified
//!   `private="set-cookie"` (or `no-cache`) keeps it out of the stored copy →
//!   [`Reason::SetCookie`];
//! - `Vary` is not `*` (§4.1) → [`Reason::VaryAny`], and is well formed with
//!   at most [`MAX_VARY_NAMES`](crate::cache_control::MAX_VARY_NAMES) names →
//!   [`Reason::Vary`];
//! - the freshness lifetime is known (§4.2.1), first match wins:
//!   `s-maxage` (§5.2.2.10), `max-age` (§5.2.2.1), `Expires` − `Date`
//!   (§5.3; `Date` defaults to `now`, §4.2.1; `Expires` is ignored when
//!   `max-age` or `s-maxage` is present), then the heuristic freshness of
//!   §4.2.2, only for the statuses stored without explicit freshness
//!   ([`Rules::status_ttl`]): a TTL set for that status with
//!   [`Rules::status_ttl`], else 10 % of the time since `Last-Modified`
//!   (counted from `Date`, or `now`), else the default TTL → otherwise
//!   [`Reason::NoFreshness`].
//!   An invalid `Expires` means "already expired" (§5.3) →
//!   [`Reason::InvalidHeader`]`("expires")`; an invalid `Date` beside it →
//!   `InvalidHeader("date")`; several different `Expires` or `Date` lines are
//!   invalid (§4.2.1 allows "considered stale");
//! - the TTL is the lifetime minus the response's current age (§4.2.3). The
//!   response has just arrived, so its age is its `Age` header (`age_value`;
//!   response delay ≈ 0). The `apparent_age` from `Date` is not used: it
//!   depends on the origin's clock agreeing with ours, and a skewed origin
//!   would make every response stale on arrival. An `Age` that is not one
//!   delta-seconds value (several lines, a list such as `0, old`, a word)
//!   says nothing reliable about the age (§5.1): the response counts as
//!   stale on arrival, as does one whose `Age` reaches its lifetime;
//! - the TTL is then clamped to [`Rules::min_ttl`], [`Rules::max_ttl`]. A
//!   response stale on arrival (TTL zero) is stored, with a TTL of zero,
//!   when its stale windows let it be served stale, or when its lifetime
//!   was explicit and it has a validator (then revalidated on every use,
//!   like a `no-cache` one); otherwise → [`Reason::StaleOnArrival`].
//!
//! The stale windows come from `stale-while-revalidate` and `stale-if-error`
//! (RFC 5861), zero when absent, and are forced to zero when a directive
//! forbids serving stale (§4.2.4): `must-revalidate` (§5.2.2.2),
//! `proxy-revalidate` (§5.2.2.8), `s-maxage` (§5.2.2.10: it "incorporates
//! the semantics of the proxy-revalidate response directive" for a shared
//! cache) and `no-cache`. They are capped at [`Rules::max_ttl`] too.
//!
//! Not implemented, and safe to leave out: `must-understand` (§5.2.2.3: a
//! cache that ignores it still honours `no-store`) and storing `206` (§3.3;
//! a `206` goes to its own client only). Invalidation by unsafe methods
//! (§4.4) is the service's business: a success invalidates the request's
//! key and its same-origin `Location` / `Content-Location` targets.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{
    AGE, AUTHORIZATION, CACHE_CONTROL, COOKIE, DATE, EXPIRES, HeaderMap, HeaderName, HeaderValue,
    LAST_MODIFIED, PRAGMA, SET_COOKIE,
};
use http::{Method, StatusCode};

pub use crate::admission::{BypassReason, RequestDecision, classify_request};
use crate::cache_control::{
    CacheControl, DELTA_SECONDS_MAX, InvalidCacheControl, Vary, VaryError, parse_delta_seconds,
    qualified_fields, trim_ows, vary,
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

/// The statuses stored without explicit freshness, for the layer's `ttl`,
/// unless configured otherwise. The heuristically cacheable statuses of
/// RFC 9110 §15.1, less `206` (partial), `405`, `414` and `501`, and the
/// negative ones.
const DEFAULT_STATUSES: [u16; 6] = [200, 203, 204, 300, 301, 308];

/// The negative statuses stored without explicit freshness, for the layer's
/// `negative_ttl`.
const NEGATIVE_STATUSES: [u16; 2] = [404, 410];

/// The layer's default `ttl` and `negative_ttl`, with which [`storability`]
/// reports the statuses left to them.
const LAYER_TTL: Duration = Duration::from_secs(60);
const LAYER_NEGATIVE_TTL: Duration = shared_calls_cache::DEFAULT_NEGATIVE_TTL;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusTtl {
    /// Follows the layer's `ttl`.
    Default,
    /// Follows the layer's `negative_ttl`.
    Negative,
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
///     .status_ttl(StatusCode::NOT_FOUND, Duration::from_secs(5))
///     .max_ttl(Duration::from_secs(3600));
/// assert_eq!(rules.heuristic_ttl(StatusCode::OK), Some(Duration::from_secs(60)));
/// assert_eq!(rules.heuristic_ttl(StatusCode::NOT_FOUND), Some(Duration::from_secs(5)));
/// assert_eq!(rules.heuristic_ttl(StatusCode::FOUND), None);
///
/// let explicit_only = Rules::default().explicit_freshness_only(true);
/// assert_eq!(explicit_only.heuristic_ttl(StatusCode::OK), None);
/// ```
#[derive(Clone, Debug)]
pub struct Rules {
    status_ttls: Vec<(StatusCode, StatusTtl)>,
    explicit_freshness_only: bool,
    min_ttl: Duration,
    max_ttl: Duration,
    store_set_cookie: bool,
    pub(crate) keyed_credentials: KeyedCredentials,
    pub(crate) honour_request_no_cache: bool,
    pub(crate) honour_request_freshness: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            status_ttls: statuses(&DEFAULT_STATUSES, StatusTtl::Default)
                .chain(statuses(&NEGATIVE_STATUSES, StatusTtl::Negative))
                .collect(),
            explicit_freshness_only: false,
            min_ttl: Duration::ZERO,
            max_ttl: Duration::from_secs(24 * 60 * 60),
            store_set_cookie: false,
            keyed_credentials: KeyedCredentials::default(),
            honour_request_no_cache: false,
            honour_request_freshness: false,
        }
    }
}

/// Each of `codes` with `ttl`.
fn statuses(codes: &[u16], ttl: StatusTtl) -> impl Iterator<Item = (StatusCode, StatusTtl)> + '_ {
    codes
        .iter()
        .filter_map(|&code| StatusCode::from_u16(code).ok())
        .map(move |status| (status, ttl))
}

impl Rules {
    /// The defaults: without explicit freshness, `200, 203, 204, 300, 301,
    /// 308` stored for 10 % of the time since their `Last-Modified`, or
    /// without one for the layer's `ttl`, and `404, 410` for its
    /// `negative_ttl`; TTLs clamped to `[0, 24 h]`, no `Set-Cookie` stored,
    /// credentials not in the key, request `no-cache`, `max-age`, `min-fresh`
    /// and `max-stale` ignored.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores responses of `status` that carry no explicit freshness
    /// (`s-maxage`, `max-age`, `Expires`) for `ttl` (RFC 9111 §4.2.2), with
    /// or without `Last-Modified`.
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

    /// Stores only responses that state their freshness (`s-maxage`,
    /// `max-age`, `Expires`), when `true`: nothing is stored for a status's
    /// TTL or a heuristic. Off by default. For a layer on a whole `Router`,
    /// where health pages, error pages and per-request answers that set no
    /// freshness would otherwise be kept for the layer's `ttl`.
    #[must_use]
    pub fn explicit_freshness_only(mut self, only: bool) -> Self {
        self.explicit_freshness_only = only;
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
    /// This says what the key function does; it does not change the key:
    /// name the same header in the key, with
    /// [`KeyBuilder::header`](crate::KeyBuilder::header).
    ///
    /// ```
    /// # mod shared_calls { pub use shared_calls_http as http_policy; }
    /// use shared_calls::http_policy::freshness::{Credential, Rules};
    /// use shared_calls::http_policy::KeyBuilder;
    ///
    /// let key = KeyBuilder::new().header("authorization");
    /// let rules = Rules::new().credentials_in_key([Credential::Authorization]);
    /// # let _ = (key, rules);
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

    /// Whether a client's request `max-age`, `min-fresh` and `max-stale`
    /// (RFC 9111 §5.2.1.1–3) decide which stored answers it takes, default
    /// `false` (ignored).
    ///
    /// When `true`, a stored answer older than the request's `max-age`, or
    /// fresh for less than its `min-fresh`, is not served: the request goes
    /// to the key's flight, collapsed with the others, and its answer
    /// replaces the stored one. A stale stored answer the cache still holds
    /// is served when `max-stale` allows it (a background refresh starts),
    /// and only then. Off by default because it lets any client force a
    /// backend call.
    #[must_use]
    pub fn honour_request_freshness(mut self, honour: bool) -> Self {
        self.honour_request_freshness = honour;
        self
    }

    /// The TTL for a response of `status` without explicit freshness, before
    /// the [`min_ttl`](Self::min_ttl)/[`max_ttl`](Self::max_ttl) clamp;
    /// `None` if such responses are not stored. The statuses left to the
    /// layer report its default `ttl` (60 s) and `negative_ttl` (10 s); the
    /// layer stores them for its own settings.
    pub fn heuristic_ttl(&self, status: StatusCode) -> Option<Duration> {
        self.status_ttl_of(status).map(|ttl| match ttl {
            StatusTtl::Default => LAYER_TTL,
            StatusTtl::Negative => LAYER_NEGATIVE_TTL,
            StatusTtl::Fixed(ttl) => ttl,
        })
    }

    fn status_ttl_of(&self, status: StatusCode) -> Option<StatusTtl> {
        if self.explicit_freshness_only {
            return None;
        }
        self.status_ttls
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, ttl)| *ttl)
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
    /// response's age, clamped to the rules' `[min_ttl, max_ttl]`. Zero only
    /// for a response stale on arrival that may be served stale (a stale
    /// window is not zero), or one stored to be revalidated on every use:
    /// `no-cache`, or stale on arrival, with a validator.
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
    /// Already stale when it arrived (TTL zero after the `Age` and clamp, or
    /// an `Age` that is not one number), and no stale window to serve it in.
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
    /// The fields a stored copy goes without (`no-cache="f"`, `private="f"`).
    stripped: Vec<HeaderName>,
}

impl<'a> Reading<'a> {
    pub(crate) fn of(status: StatusCode, headers: &'a HeaderMap) -> Self {
        let cc = CacheControl::from_headers(headers);
        let lenient = cc.unwrap_or_else(|_| CacheControl::from_headers_lenient(headers));
        let stripped = match lenient.no_cache_qualified() || lenient.private_qualified() {
            true => qualified_fields(headers),
            false => Vec::new(),
        };
        Self {
            status,
            headers,
            cc,
            lenient,
            vary: vary(headers),
            stripped,
        }
    }

    /// A `Set-Cookie` that would be stored: not named by a qualified
    /// `private` or `no-cache`, and not allowed by the rules.
    fn stores_set_cookie(&self, rules: &Rules) -> bool {
        self.headers.contains_key(SET_COOKIE)
            && !rules.store_set_cookie
            && !self.stripped.contains(&SET_COOKIE)
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
    /// The fields a stored copy goes without (`no-cache="f"`, `private="f"`).
    pub(crate) stripped: Vec<HeaderName>,
}

/// Reads a response's head once for every decision about it.
pub(crate) fn analyze(
    rules: &Rules,
    method: &Method,
    request_headers: &HeaderMap,
    response: &Reading<'_>,
    now: SystemTime,
) -> Analysis {
    let set_cookie = response.stores_set_cookie(rules);
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
        says: Says::of(rules, response, now),
        stripped: response.stripped.clone(),
    }
}

/// Which lifetimes a stored response sets itself, over the cache's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Says {
    pub(crate) ttl: bool,
    /// Without a TTL of its own, a negative answer: kept for the layer's
    /// `negative_ttl` rather than its `ttl`.
    pub(crate) negative: bool,
    /// The origin stated the lifetime (`s-maxage`, `max-age`, `Expires`),
    /// rather than the rules' heuristics: jitter may only shorten it.
    pub(crate) ttl_is_explicit: bool,
    pub(crate) stale_while_revalidate: bool,
    pub(crate) stale_if_error: bool,
}

impl Says {
    fn of(rules: &Rules, response: &Reading<'_>, now: SystemTime) -> Self {
        let cc = &response.lenient;
        let explicit = cc.s_maxage().is_some()
            || cc.max_age().is_some()
            || response.headers.contains_key(EXPIRES);
        // RFC 9111 §4.2.4: these forbid serving stale whatever the cache's settings.
        let no_stale = forbids_stale(cc);
        let status_ttl = rules.status_ttl_of(response.status);
        let heuristic = matches!(status_ttl, Some(StatusTtl::Fixed(_)))
            || last_modified_heuristic(rules, response.status, response.headers, now).is_some();
        Self {
            ttl: explicit || heuristic,
            negative: !explicit && status_ttl == Some(StatusTtl::Negative),
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
    may_share(rules, request_headers, response, &cc)?;
    let vary = match &response.vary {
        Ok(v) if v.is_empty() => None,
        Ok(v) => Some(v.clone()),
        Err(VaryError::Any) => return Err(Reason::VaryAny),
        Err(_) => return Err(Reason::Vary),
    };
    let reported_age = age(response.headers);
    if cc.no_cache()
        || (!response.headers.contains_key(CACHE_CONTROL) && pragma_no_cache(response.headers))
    {
        // Never fresh, whatever `min_ttl` says (§5.2.2.4).
        let age = reported_age.unwrap_or_default();
        return revalidated_on_every_use(response.headers, age, vary).ok_or(Reason::NoCache);
    }
    let lifetime = freshness_lifetime(rules, &cc, status, response.headers, now)?;
    // An `Age` that says nothing reliable makes it as old as its lifetime.
    let age = reported_age.unwrap_or(lifetime);
    let ttl = rules.clamp(lifetime.saturating_sub(age));
    let window = |d: Option<Duration>| match forbids_stale(&cc) {
        true => Duration::ZERO,
        false => d.unwrap_or(Duration::ZERO).min(rules.max_ttl),
    };
    let (stale_while_revalidate, stale_if_error) = (
        window(cc.stale_while_revalidate()),
        window(cc.stale_if_error()),
    );
    if ttl.is_zero() && stale_while_revalidate.is_zero() && stale_if_error.is_zero() {
        // A lifetime the origin stated, already over (`max-age=0`, an
        // `Age` past it): as good as `no-cache` when it can be revalidated.
        let explicit = cc.s_maxage().is_some()
            || cc.max_age().is_some()
            || response.headers.contains_key(EXPIRES);
        return explicit
            .then(|| revalidated_on_every_use(response.headers, age, vary))
            .flatten()
            .ok_or(Reason::StaleOnArrival);
    }
    Ok(Freshness {
        ttl,
        stale_while_revalidate,
        stale_if_error,
        initial_age: age,
        vary,
    })
}

/// The freshness of a response stored to be revalidated on every use
/// (never fresh, never served stale), if it has a validator to revalidate
/// it with.
fn revalidated_on_every_use(
    headers: &HeaderMap,
    age: Duration,
    vary: Option<Vary>,
) -> Option<Freshness> {
    crate::revalidate::has_validator(headers).then_some(Freshness {
        ttl: Duration::ZERO,
        stale_while_revalidate: Duration::ZERO,
        stale_if_error: Duration::ZERO,
        initial_age: age,
        vary,
    })
}

/// The privacy rules: whether a well-formed response may be stored for
/// everyone.
fn may_share(
    rules: &Rules,
    request_headers: &HeaderMap,
    response: &Reading<'_>,
    cc: &CacheControl,
) -> Result<(), Reason> {
    if cc.no_store() || CacheControl::from_headers_lenient(request_headers).no_store() {
        return Err(Reason::NoStore);
    }
    if cc.private() {
        return Err(Reason::Private);
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
    if response.stores_set_cookie(rules) {
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
    let configured = rules.heuristic_ttl(status).ok_or(Reason::NoFreshness)?;
    Ok(last_modified_heuristic(rules, status, headers, now).unwrap_or(configured))
}

/// The fraction of the time since `Last-Modified` a response is presumed
/// fresh (RFC 9111 §4.2.2: "typically [...] no more than some fraction").
const LAST_MODIFIED_FRACTION: u32 = 10;

/// 10 % of the time between `Last-Modified` and `Date` (or `now`), for a
/// status stored without explicit freshness whose TTL was not set for it
/// alone; `None` without a usable `Last-Modified` (absent, invalid, or
/// after `Date`).
fn last_modified_heuristic(
    rules: &Rules,
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    let ttl = rules.status_ttl_of(status)?;
    if ttl != StatusTtl::Default {
        return None;
    }
    let modified = single_date(headers, &LAST_MODIFIED)??;
    let date = match single_date(headers, &DATE) {
        Some(Some(date)) => date,
        _ => now,
    };
    let since = date.duration_since(modified).ok()?;
    Some(since / LAST_MODIFIED_FRACTION)
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

/// The response's `Age` (RFC 9111 §5.1), zero when absent, saturated at
/// 2^31 s; `None` when it is not one delta-seconds value (several lines, a
/// list, anything but digits).
fn age(headers: &HeaderMap) -> Option<Duration> {
    let mut values = headers.get_all(AGE).into_iter();
    let Some(first) = values.next() else {
        return Some(Duration::ZERO);
    };
    if values.next().is_some() {
        return None;
    }
    parse_delta_seconds(trim_ows(first.as_bytes()).iter().copied())
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
