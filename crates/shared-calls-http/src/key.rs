//! Cache keys for HTTP requests.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{FORWARDED, HOST, HeaderName};
use http::{HeaderMap, Request};

use crate::cache_control::VaryKey;

/// The key of a stored HTTP answer: bytes, cheap to clone.
///
/// A key function may return anything that converts into it: a `String`, a
/// `&'static str`, `Bytes` or a `Vec<u8>`, copied into one allocation of
/// the key's exact size (with its reference count, so that clones share it).
///
/// # Parts
///
/// A key made by [`default_key`] or [`KeyBuilder`] reads back as its parts:
/// [`scheme`](Self::scheme), [`authority`](Self::authority),
/// [`path`](Self::path), [`query`](Self::query) and the keyed request
/// headers ([`headers`](Self::headers)). A key of any other shape (a key
/// function's own string, [`grpc_key`](crate::grpc_key)) has no parts: those
/// accessors return `None` and [`as_bytes`](Self::as_bytes) is all there is.
/// The method is no part of a key: `GET` and `HEAD` share one entry.
///
/// ```
/// # mod shared_calls { pub use shared_calls_http as http_policy; }
/// use http::Request;
/// use shared_calls::http_policy::{HttpKey, KeyBuilder};
///
/// let request = Request::get("https://shop.test/users/7?tab=orders")
///     .header("x-tenant", "acme").body(()).unwrap();
/// let key = KeyBuilder::new().header("x-tenant").key(&request).unwrap();
/// assert_eq!(key.scheme(), Some("https"));
/// assert_eq!(key.authority(), Some("shop.test"));
/// assert_eq!(key.path(), Some("/users/7"));
/// assert_eq!(key.query(), Some("tab=orders"));
/// assert_eq!(key.headers().collect::<Vec<_>>(), [("x-tenant", Some(&b"acme"[..]))]);
///
/// let own = HttpKey::from("user:7");
/// assert_eq!((own.path(), own.headers().count()), (None, 0));
/// ```
///
/// The answers of a URI that vary (`Vary: Accept-Language`) are kept one
/// per variant, each under the key function's key with the request values
/// it varies on added: such a key has the same bytes and parts, so that
/// invalidating by a predicate on them reaches every variant.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HttpKey {
    bytes: Arc<[u8]>,
    // Boxed: most keys have none, and the cache keeps a copy of every key.
    variant: Option<Box<Variant>>,
}

/// The part of a variant's key that the key function did not make: which
/// stored answer told it how the URI varies, and this variant's values.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Variant {
    /// The id of the answer stored under the key function's key: when that
    /// answer is replaced or invalidated, its variants are no longer reached.
    of: u64,
    values: VaryKey,
}

impl HttpKey {
    fn new(bytes: &[u8]) -> Self {
        Self::written(bytes.len(), |key| key.copy_from_slice(bytes))
    }

    /// The key of `len` bytes that `write` writes, in one allocation.
    fn written(len: usize, write: impl FnOnce(&mut [u8])) -> Self {
        let mut bytes: Arc<[u8]> = std::iter::repeat_n(0, len).collect();
        // The `Arc` was just made: no other handle shares it.
        if let Some(bytes) = Arc::get_mut(&mut bytes) {
            write(bytes);
        }
        Self {
            bytes,
            variant: None,
        }
    }

    /// The key's bytes, as the key function made them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The scheme, `http` or `https`, of a key made by [`default_key`] or
    /// [`KeyBuilder`]; `None` for a key of another shape.
    pub fn scheme(&self) -> Option<&str> {
        self.parts().map(|parts| parts.scheme)
    }

    /// The authority, `host[:port]` as the request named it.
    pub fn authority(&self) -> Option<&str> {
        self.parts().map(|parts| parts.authority)
    }

    /// The path, `/` at least.
    pub fn path(&self) -> Option<&str> {
        self.parts().map(|parts| parts.path)
    }

    /// The query without its `?` as keyed (sorted or with parameters
    /// dropped if the [`KeyBuilder`] said so); `None` without a query, or
    /// for a key of another shape.
    pub fn query(&self) -> Option<&str> {
        self.parts().and_then(|parts| parts.query)
    }

    /// The keyed request headers, in key order: the proxy routing headers
    /// that were present, then each header named with
    /// [`KeyBuilder::header`] (`None`: the request had no such header).
    /// Empty for a key of another shape.
    pub fn headers(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        let lines = self.parts().map_or(&[][..], |parts| parts.headers);
        lines
            .split(|&b| b == b'\n')
            .skip(1)
            .map(|line| match line.iter().position(|&b| b == b':') {
                Some(colon) => (&line[..colon], Some(&line[colon + 1..])),
                None => (line, None),
            })
            .map(|(name, value)| (std::str::from_utf8(name).unwrap_or_default(), value))
    }

    /// The parts of a key laid out as [`default_key`] lays them out.
    fn parts(&self) -> Option<Parts<'_>> {
        Parts::parse(&self.bytes)
    }

    /// The key of the variant with `values` of the answer `of` stored under
    /// this key's bytes.
    pub(crate) fn variant(&self, of: u64, values: VaryKey) -> Self {
        Self {
            bytes: self.bytes.clone(),
            variant: Some(Box::new(Variant { of, values })),
        }
    }

    /// The heap its variant and the variant's values take.
    pub(crate) fn variant_weight(&self) -> usize {
        self.variant.as_ref().map_or(0, |variant| {
            std::mem::size_of::<Variant>() + variant.values.weight()
        })
    }
}

/// A key's parts: `scheme "://" authority path ["?" query]`, then the
/// header lines, each starting with `"\n"`.
struct Parts<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a [u8],
}

impl<'a> Parts<'a> {
    fn parse(key: &'a [u8]) -> Option<Self> {
        let line_end = key.iter().position(|&b| b == b'\n').unwrap_or(key.len());
        let (uri, headers) = key.split_at(line_end);
        let uri = std::str::from_utf8(uri).ok()?;
        let (scheme, rest) = uri.split_once("://")?;
        let path_start = rest.find('/')?;
        let (authority, path_and_query) = rest.split_at(path_start);
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        let is_scheme = |s: &str| {
            s.starts_with(|c: char| c.is_ascii_alphabetic())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        };
        let plain = is_scheme(scheme) && is_plain_authority(authority.as_bytes());
        plain.then_some(Self {
            scheme,
            authority,
            path,
            query,
            headers,
        })
    }
}

impl fmt::Debug for HttpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = String::from_utf8_lossy(&self.bytes);
        match &self.variant {
            None => write!(f, "HttpKey({bytes:?})"),
            Some(variant) => write!(f, "HttpKey({bytes:?}, {:?})", variant.values),
        }
    }
}

impl From<String> for HttpKey {
    fn from(key: String) -> Self {
        Self::new(key.as_bytes())
    }
}

impl From<&'static str> for HttpKey {
    fn from(key: &'static str) -> Self {
        Self::new(key.as_bytes())
    }
}

impl From<Vec<u8>> for HttpKey {
    fn from(key: Vec<u8>) -> Self {
        Self::new(&key)
    }
}

impl From<Bytes> for HttpKey {
    fn from(key: Bytes) -> Self {
        Self::new(&key)
    }
}

/// The longest key [`default_key`] and [`KeyBuilder`] make, in bytes: 32 KiB
/// (Varnish's limit on a whole request head). A request whose key would be
/// longer bypasses the cache, so that no request makes the cache hold a key
/// of any size.
pub const MAX_KEY_LEN: usize = 32 * 1024;

/// Headers that change what an origin behind a proxy answers without being
/// part of the URI; keyed so that one value's answer never reaches another.
static ROUTING_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    FORWARDED,
];

/// The default key: the resource a `GET` would retrieve — scheme, authority,
/// path and query, exactly as sent — and the proxy routing headers
/// `X-Forwarded-Host`, `X-Forwarded-Proto` and `Forwarded`; `None` (the
/// request bypasses the cache) when the request does not name one resource
/// for certain.
///
/// # Layout
///
/// `scheme "://" authority path-and-query`, then for each routing header
/// line, in order, `"\n" name ":" value`: `http://example.com/a?b=1`, say.
/// The parts cannot run into each other: the authority holds no `/`, `?`
/// or `#`, the path and query no line break, a header name no `:` and a
/// value no line break. So two requests share a key only if they agree on
/// every part.
///
/// - **Scheme**: the URI's (HTTP/2 and absolute-form requests carry it, so
///   `https` and `http` never share), or `http` for an origin-form HTTP/1
///   request, which carries none. A server that accepts HTTP/1 over TLS and
///   in cleartext behind one layer must tell them apart itself: set the
///   URI's scheme, or give each listener its own layer.
/// - **Authority**: the URI's, or the single `Host` header's. The request
///   bypasses when it has neither, has several `Host` lines, a `Host` that
///   differs from the URI's authority, or an authority that is not a plain
///   `host[:port]` (user info, `/`, `?`, `#`, whitespace or any other
///   character a host name or IP literal cannot hold).
/// - **Path and query**: exactly as sent; requests that differ in the
///   query's order are different keys (see [`KeyBuilder`] to sort or drop
///   query parameters).
///
/// A key longer than [`MAX_KEY_LEN`] bypasses too.
///
/// The method is not part of it: only `GET` and `HEAD` are shared, and they
/// share one entry (a `HEAD` is answered from the `GET`); an unsafe method
/// that succeeds invalidates the key of its target, and of the same-origin
/// `Location` and `Content-Location` of its answer, keyed alike (the same
/// scheme, authority and keyed headers). `Authorization` and
/// `Cookie` are not keyed: requests carrying them bypass the cache unless
/// your key includes them and says so
/// ([`Rules::credentials_in_key`](crate::freshness::Rules::credentials_in_key)).
/// Nor is any other header that may tell users apart (`X-User-Id`, an API
/// key): name those with [`KeyBuilder::header`].
pub fn default_key<B>(request: &Request<B>) -> Option<HttpKey> {
    KeyBuilder::new().key(request)
}

/// A key made of [`default_key`]'s parts and more: named request headers,
/// and the query's parameters sorted or some of them dropped.
///
/// ```
/// # mod shared_calls { pub use shared_calls_http as http_policy; }
/// use http::Request;
/// use shared_calls::http_policy::KeyBuilder;
///
/// // Each user, told apart by `X-User-Id`, gets answers of their own.
/// let key = KeyBuilder::new().header("x-user-id").drop_query_param("utm_source");
/// let key_fn = move |request: &Request<()>| key.key(request);
///
/// let alice = Request::get("/feed?utm_source=mail").header("host", "example.com")
///     .header("x-user-id", "alice").body(()).unwrap();
/// let bob = Request::get("/feed").header("host", "example.com")
///     .header("x-user-id", "bob").body(()).unwrap();
/// assert_ne!(key_fn(&alice), key_fn(&bob));
/// ```
///
/// With the layer: `SharedCallsLayer::new(move |request: &Request<_>| key.key(request))`.
///
/// Named headers follow the routing headers in the key, each line as
/// `"\n" name ":" value`, or `"\n" name` for a header that is absent (so
/// that absent and empty differ). Sorting the query keys `?b=2&a=1` as `?a=1&b=2`;
/// dropping a parameter keys the query as if it were not there.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct KeyBuilder {
    headers: Vec<HeaderName>,
    sort_query: bool,
    dropped_params: Vec<Box<str>>,
}

impl KeyBuilder {
    /// The parts of [`default_key`], nothing more.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys the values of request header `name` too: requests that differ
    /// in it never share an answer.
    ///
    /// # Panics
    ///
    /// If `name` is not a valid header name.
    #[must_use = "a setter returns the changed builder"]
    pub fn header(mut self, name: &str) -> Self {
        let name = HeaderName::try_from(name)
            .unwrap_or_else(|_| panic!("KeyBuilder::header: {name:?} is not a header name"));
        self.headers.push(name);
        self
    }

    /// Keys the query's parameters in sorted order, so that `?b=2&a=1` and
    /// `?a=1&b=2` share an entry. Only for origins that read the query as an
    /// unordered set of parameters.
    #[must_use = "a setter returns the changed builder"]
    pub fn sort_query(mut self) -> Self {
        self.sort_query = true;
        self
    }

    /// Leaves every query parameter called `name` out of the key (a
    /// tracking parameter the origin ignores, say).
    #[must_use = "a setter returns the changed builder"]
    pub fn drop_query_param(mut self, name: &str) -> Self {
        self.dropped_params.push(name.into());
        self
    }

    /// The key of `request`, or `None` (bypass) as for [`default_key`].
    pub fn key<B>(&self, request: &Request<B>) -> Option<HttpKey> {
        let uri = request.uri();
        let found = KeyedLines::scan(request.headers());
        let authority = authority(uri, found.host?)?;
        let scheme = uri.scheme_str().unwrap_or("http");
        let path = match uri.path() {
            "" => "/",
            path => path,
        };
        let query = self.query(uri.query());
        // Each line is a header lookup: made once, for the length and the
        // bytes. A request without them, the usual case, allocates nothing
        // here.
        let lines: Vec<_> = match found.routed || !self.headers.is_empty() {
            true => self
                .keyed_headers(request.headers(), found.routed)
                .collect(),
            false => Vec::new(),
        };
        let uri_parts = [scheme.as_bytes(), b"://", authority, path.as_bytes()];
        let len = uri_parts.iter().map(|part| part.len()).sum::<usize>()
            + query.as_ref().map_or(0, |query| 1 + query.len())
            + lines
                .iter()
                .map(|(name, value)| 1 + name.len() + value.map_or(0, |value| 1 + value.len()))
                .sum::<usize>();
        if len > MAX_KEY_LEN {
            return None;
        }
        // Written in place: the key is one allocation.
        Some(HttpKey::written(len, |key| {
            let mut at = 0;
            // `len` counted exactly these parts: every one has its place.
            let mut put = |part: &[u8]| {
                if let Some(place) = key.get_mut(at..at + part.len()) {
                    place.copy_from_slice(part);
                }
                at += part.len();
            };
            uri_parts.iter().for_each(|part| put(part));
            if let Some(query) = &query {
                put(b"?");
                put(query.as_bytes());
            }
            for &(name, value) in &lines {
                put(b"\n");
                put(name.as_bytes());
                // An absent header has no `:`, an empty one has.
                if let Some(value) = value {
                    put(b":");
                    put(value);
                }
            }
        }))
    }

    /// Every keyed header line: the routing headers, each value present,
    /// then the named headers, with `None` for one that is absent.
    fn keyed_headers<'a>(
        &'a self,
        headers: &'a HeaderMap,
        routed: bool,
    ) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        let lines = |name: &'a HeaderName| {
            headers
                .get_all(name)
                .iter()
                .map(move |value| (name.as_str(), Some(value.as_bytes())))
        };
        let routing = ROUTING_HEADERS
            .iter()
            .take(if routed { ROUTING_HEADERS.len() } else { 0 })
            .flat_map(lines);
        let named = self.headers.iter().flat_map(move |name| {
            let absent = (!headers.contains_key(name)).then_some((name.as_str(), None));
            lines(name).chain(absent)
        });
        routing.chain(named)
    }

    /// The query as keyed: as sent, unless parameters are sorted or dropped.
    fn query<'a>(&self, query: Option<&'a str>) -> Option<std::borrow::Cow<'a, str>> {
        let query = query?;
        if !self.sort_query && self.dropped_params.is_empty() {
            return Some(query.into());
        }
        let name = |param: &'a str| param.split_once('=').map_or(param, |(name, _)| name);
        let mut params: Vec<&str> = query
            .split('&')
            .filter(|param| {
                !self
                    .dropped_params
                    .iter()
                    .any(|dropped| **dropped == *name(param))
            })
            .collect();
        if self.sort_query {
            params.sort_unstable();
        }
        Some(params.join("&").into())
    }
}

/// What a request's header lines say of its key, found in one pass over
/// them (a handful, usually) rather than a lookup of each header, most of
/// which a request lacks.
struct KeyedLines<'a> {
    /// Its `Host`; `Some(None)` without one, `None` with several.
    host: Option<Option<&'a [u8]>>,
    /// Whether it has any of the routing headers.
    routed: bool,
}

impl<'a> KeyedLines<'a> {
    fn scan(headers: &'a HeaderMap) -> Self {
        let mut found = Self {
            host: Some(None),
            routed: false,
        };
        for (name, value) in headers {
            if name == HOST {
                found.host = match found.host {
                    Some(None) => Some(Some(value.as_bytes())),
                    _ => None,
                };
            } else if ROUTING_HEADERS.contains(name) {
                found.routed = true;
            }
        }
        found
    }
}

/// The authority a request names: the URI's, or its `Host`, as long as both
/// agree and it is a plain `host[:port]`.
fn authority<'a>(uri: &'a http::Uri, host: Option<&'a [u8]>) -> Option<&'a [u8]> {
    let authority = match (uri.authority(), host) {
        (Some(authority), Some(host))
            if !authority.as_str().as_bytes().eq_ignore_ascii_case(host) =>
        {
            return None;
        }
        (Some(authority), _) => authority.as_str().as_bytes(),
        (None, Some(host)) => host,
        (None, None) => return None,
    };
    is_plain_authority(authority).then_some(authority)
}

/// Whether `authority` is `host[:port]`: a registered name or an IPv4
/// address (letters, digits, `-`, `.`, `_`, `~`), or an IP literal in
/// brackets, then optionally `:` and one to five digits.
fn is_plain_authority(authority: &[u8]) -> bool {
    let (host, port) = match authority.iter().rposition(|&b| b == b':') {
        Some(colon) if !authority[colon..].contains(&b']') => {
            (&authority[..colon], Some(&authority[colon + 1..]))
        }
        _ => (authority, None),
    };
    let port_ok = port
        .is_none_or(|port| (1..=5).contains(&port.len()) && port.iter().all(u8::is_ascii_digit));
    let host_ok = match host {
        [b'[', literal @ .., b']'] => {
            !literal.is_empty()
                && literal
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
        _ => !host.is_empty() && host.iter().all(|&b| NAME_BYTES[usize::from(b)]),
    };
    port_ok && host_ok
}

/// The bytes of a registered name or an IPv4 address, as a table: the test
/// runs for every byte of every request's authority.
static NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < table.len() {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_its_bytes_whatever_it_was_made_from() {
        let made = [
            HttpKey::from("user:7"),
            HttpKey::from(String::from("user:7")),
            HttpKey::from(b"user:7".to_vec()),
            HttpKey::from(Bytes::from_static(b"user:7")),
        ];
        assert!(made.iter().all(|key| *key == made[0]));
        assert_eq!(made[0].as_bytes(), b"user:7");
        let clone = made[0].clone();
        assert_eq!(clone.as_bytes().as_ptr(), made[0].as_bytes().as_ptr());
    }

    #[test]
    fn a_built_key_is_written_whole() {
        let request = Request::get("http://shop.test/a?b=1")
            .header("x-tenant", "acme")
            .body(())
            .unwrap();
        let key = KeyBuilder::new().header("x-tenant").key(&request).unwrap();
        assert_eq!(key.as_bytes(), b"http://shop.test/a?b=1\nx-tenant:acme");
    }
}
