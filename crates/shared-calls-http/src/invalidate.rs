//! Invalidation from application code, by what the application knows after
//! a write: a path, or the request that would read it.

use http::Request;

use crate::HttpCache;
use crate::key::HttpKey;

/// Invalidation of stored HTTP answers by path or by request, on the
/// layer's cache handle ([`HttpCache`]).
///
/// An exact key is invalidated with [`HttpCache::invalidate`]
/// (`cache.invalidate(&key)`, with the key your key function makes); the
/// answers of every `Vary` variant of it go with it. For any other choice,
/// [`HttpCache::invalidate_if`] takes a predicate on the key's parts
/// ([`HttpKey::path`], [`HttpKey::authority`], ...).
///
/// ```
/// # mod shared_calls { pub use shared_calls_http::{HttpCacheExt, SharedCallsLayer, default_key}; }
/// use http::Request;
/// use shared_calls::{HttpCacheExt, SharedCallsLayer, default_key};
///
/// let layer = SharedCallsLayer::new(|request: &Request<String>| default_key(request));
/// let cache = layer.cache_handle();
/// // After a write to user 7, wherever its answers were stored:
/// cache.invalidate_path("/users/7");
/// cache.invalidate_request(&Request::get("/users/7?tab=orders").body(()).unwrap());
/// ```
///
/// Both walk every stored entry, as [`HttpCache::invalidate_if`] does, so
/// their cost grows with the cache's size. They act on this
/// instance's cache only; with a fleet's second tier,
/// [`HttpCache::invalidate`] of each exact key reaches every instance.
pub trait HttpCacheExt {
    /// Removes every stored answer of `path` (a path alone, `/users/7`, no
    /// query): for every scheme, host and query, every keyed header value
    /// and every `Vary` variant. No load of such a key in flight now stores
    /// its answer. Keys that have no [parts](HttpKey#parts) are left alone.
    fn invalidate_path(&self, path: &str);

    /// Removes every stored answer of the resource `request` names: its
    /// path and query as sent; its scheme and authority when it names them
    /// (an absolute URI, or a `Host` header), and every scheme and host
    /// when it does not, so that `Request::get("/users/7")` needs no guess
    /// of the `Host` clients used. Every keyed header value and `Vary`
    /// variant goes too. A query that a [`KeyBuilder`](crate::KeyBuilder)
    /// sorts or trims is matched as keyed: use
    /// [`invalidate_path`](Self::invalidate_path) for those.
    fn invalidate_request<B>(&self, request: &Request<B>);
}

impl HttpCacheExt for HttpCache {
    fn invalidate_path(&self, path: &str) {
        let path: Box<str> = normalized(path).into();
        self.invalidate_if(move |key: &HttpKey| key.path() == Some(&*path));
    }

    fn invalidate_request<B>(&self, request: &Request<B>) {
        let uri = request.uri();
        let target = Target {
            scheme: uri.scheme_str().map(Into::into),
            authority: uri
                .authority()
                .map(|authority| authority.as_str().into())
                .or_else(|| {
                    let host = request.headers().get(http::header::HOST)?;
                    host.to_str().ok().map(Into::into)
                }),
            path: normalized(uri.path()).into(),
            query: uri.query().map(Into::into),
        };
        self.invalidate_if(move |key: &HttpKey| target.matches(key));
    }
}

/// The path as keys hold it: `/` for an empty one.
fn normalized(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

/// The resource a request names, with `None` for a part it leaves open.
struct Target {
    scheme: Option<Box<str>>,
    authority: Option<Box<str>>,
    path: Box<str>,
    query: Option<Box<str>>,
}

impl Target {
    fn matches(&self, key: &HttpKey) -> bool {
        let open_or = |wanted: &Option<Box<str>>, found: Option<&str>| {
            wanted
                .as_deref()
                .is_none_or(|wanted| found.is_some_and(|found| found.eq_ignore_ascii_case(wanted)))
        };
        key.path() == Some(&*self.path)
            && key.query() == self.query.as_deref()
            && open_or(&self.scheme, key.scheme())
            && open_or(&self.authority, key.authority())
    }
}
