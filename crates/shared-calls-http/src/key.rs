//! Cache keys for HTTP requests.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use http::Request;
use http::header::{FORWARDED, HOST, HeaderName};

/// The key of a stored HTTP answer: opaque bytes, cheap to clone.
///
/// A key function may return anything that converts into it: a `String`, a
/// `&'static str`, `Bytes` or a `Vec<u8>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HttpKey(Bytes);

impl HttpKey {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for HttpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HttpKey({:?})", String::from_utf8_lossy(&self.0))
    }
}

impl From<String> for HttpKey {
    fn from(key: String) -> Self {
        Self(Bytes::from(key))
    }
}

impl From<&'static str> for HttpKey {
    fn from(key: &'static str) -> Self {
        Self(Bytes::from_static(key.as_bytes()))
    }
}

impl From<Vec<u8>> for HttpKey {
    fn from(key: Vec<u8>) -> Self {
        Self(Bytes::from(key))
    }
}

impl From<Bytes> for HttpKey {
    fn from(key: Bytes) -> Self {
        Self(key)
    }
}

/// Headers that change what an origin behind a proxy answers without being
/// part of the URI; keyed so that one value's answer never reaches another.
const ROUTING_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    FORWARDED,
];

/// The default key: the resource a `GET` would retrieve — scheme (`http` when
/// the request line has none), authority
/// (from the URI, or the `Host` header), path and query, exactly as sent —
/// and the proxy routing headers `X-Forwarded-Host`, `X-Forwarded-Proto` and
/// `Forwarded`.
///
/// The method is not part of it: only `GET` and `HEAD` are shared, and they
/// share one entry (a `HEAD` is answered from the `GET`); an unsafe method
/// that succeeds invalidates the key of its target. Requests that differ in
/// the query's order are different keys. `Authorization` and `Cookie` are not
/// keyed: requests carrying them bypass the cache unless your key includes
/// them and says so ([`HttpPolicy::credentials_in_key`](crate::HttpPolicy::credentials_in_key)).
///
/// Never fails; returns `Option` to fit `SharedCallsLayer::new`.
pub fn default_key<B>(request: &Request<B>) -> Option<HttpKey> {
    let uri = request.uri();
    let authority = uri
        .authority()
        .map(|authority| authority.as_str().as_bytes())
        .or_else(|| request.headers().get(HOST).map(|host| host.as_bytes()))
        .unwrap_or_default();
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let mut key = BytesMut::with_capacity(authority.len() + path.len() + 16);
    // An origin-form request (HTTP/1) carries no scheme: count it as `http`,
    // so that HTTP/1 and cleartext HTTP/2 requests share one entry.
    key.put_slice(uri.scheme_str().unwrap_or("http").as_bytes());
    key.put_slice(b"://");
    key.put_slice(authority);
    key.put_slice(path.as_bytes());
    for name in &ROUTING_HEADERS {
        for value in request.headers().get_all(name) {
            // A separator that cannot occur in a header value.
            key.put_u8(b'\n');
            key.put_slice(name.as_str().as_bytes());
            key.put_u8(b':');
            key.put_slice(value.as_bytes());
        }
    }
    Some(HttpKey(key.freeze()))
}
