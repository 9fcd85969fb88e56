//! The other answers an unsafe request's success invalidates (RFC 9111
//! §4.4): those of the URIs in its response's `Location` and
//! `Content-Location`, when they share the request's origin. Another
//! origin's answers are never touched: a response could otherwise evict
//! whatever it names.
//!
//! A target's key is the request's key with the target's path and query in
//! place of the request's. That holds for keys made by [`default_key`] and
//! [`KeyBuilder`](crate::KeyBuilder) (which begin with the request's scheme,
//! authority, path and query, as sent, and may go on with request headers:
//! the target is keyed with the same headers); for a key that does not begin
//! with the request's URI, no target is known and only the request's own
//! key is invalidated.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, Request};

use crate::key::{HttpKey, default_key};

/// The most targets one response invalidates: RFC 9111 names one
/// `Location` and one `Content-Location`; an origin that sends hundreds
/// does not get hundreds of invalidations.
const MAX_TARGETS: usize = 4;

/// What an unsafe request's targets are resolved against.
#[derive(Debug, Clone)]
pub(crate) struct LocationTargets {
    /// The request's URI as [`default_key`] writes it:
    /// `scheme "://" authority path [ "?" query ]`.
    uri: Bytes,
    /// Where its authority ends.
    origin_len: usize,
}

impl LocationTargets {
    /// The request's URI, if it names one resource for certain.
    pub(crate) fn of<B>(request: &Request<B>) -> Option<Self> {
        let key = default_key(request)?;
        let bytes = key.as_bytes();
        let uri_len = bytes
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(bytes.len());
        let uri = Bytes::copy_from_slice(&bytes[..uri_len]);
        let authority_start = uri.windows(3).position(|w| w == b"://")? + 3;
        let origin_len =
            authority_start + uri[authority_start..].iter().position(|&b| b == b'/')?;
        Some(Self { uri, origin_len })
    }

    /// The keys of the same-origin `Location` and `Content-Location` targets
    /// of a response to the request keyed `key`, other than `key` itself.
    pub(crate) fn targets(&self, key: &HttpKey, response: &HeaderMap) -> Vec<HttpKey> {
        let Some(rest) = key.as_bytes().strip_prefix(&self.uri[..]) else {
            return Vec::new();
        };
        if !(rest.is_empty() || rest.starts_with(b"\n")) {
            return Vec::new();
        }
        let references = response
            .get_all(LOCATION)
            .iter()
            .chain(response.get_all(CONTENT_LOCATION).iter())
            .take(MAX_TARGETS);
        let mut keys: Vec<HttpKey> = Vec::new();
        for reference in references {
            let Some(path) = reference.to_str().ok().and_then(|r| self.resolve(r)) else {
                continue;
            };
            let mut target = BytesMut::with_capacity(self.origin_len + path.len() + rest.len());
            target.put_slice(&self.uri[..self.origin_len]);
            target.put_slice(path.as_bytes());
            target.put_slice(rest);
            let target = HttpKey::from(target.freeze());
            if target != *key && !keys.contains(&target) {
                keys.push(target);
            }
        }
        keys
    }

    /// The path and query of `reference` resolved against the request's
    /// URI (RFC 3986 §5.2), if it has the request's origin.
    fn resolve(&self, reference: &str) -> Option<String> {
        let reference = reference.split('#').next().unwrap_or_default();
        let (scheme, authority) = self.origin();
        let rest = match scheme_of(reference) {
            Some(other) if other.eq_ignore_ascii_case(scheme) => &reference[other.len() + 1..],
            Some(_) => return None,
            None => reference,
        };
        if let Some(network_path) = rest.strip_prefix("//") {
            let end = network_path.find(['/', '?']).unwrap_or(network_path.len());
            if !same_authority(scheme, authority, &network_path[..end]) {
                return None;
            }
            let path_and_query = &network_path[end..];
            let (path, query) = split_query(path_and_query);
            return Some(join(&remove_dot_segments(or_root(path)), query));
        }
        if scheme_of(reference).is_some() {
            // `http:path` names no authority: not one this cache keys.
            return None;
        }
        let (path, query) = split_query(rest);
        let (base_path, base_query) = split_query(self.path_and_query());
        let resolved = match (path, query) {
            ("", None) => return Some(join(base_path, base_query)),
            ("", Some(query)) => return Some(join(base_path, Some(query))),
            (path, _) if path.starts_with('/') => remove_dot_segments(path),
            (path, _) => {
                let directory = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
                remove_dot_segments(&format!("{}{path}", or_root(directory)))
            }
        };
        Some(join(&resolved, query))
    }

    fn origin(&self) -> (&str, &str) {
        let origin = std::str::from_utf8(&self.uri[..self.origin_len]).unwrap_or_default();
        origin.split_once("://").unwrap_or_default()
    }

    fn path_and_query(&self) -> &str {
        std::str::from_utf8(&self.uri[self.origin_len..]).unwrap_or("/")
    }
}

/// The scheme of an absolute reference (`scheme ":"`, RFC 3986 §3.1).
fn scheme_of(reference: &str) -> Option<&str> {
    let end = reference.find(':')?;
    let scheme = &reference[..end];
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// Whether two authorities name the same host and port (a missing port is
/// the scheme's default).
fn same_authority(scheme: &str, ours: &str, theirs: &str) -> bool {
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        _ => "80",
    };
    let host_port = |authority: &str| -> Option<(String, String)> {
        if authority.contains('@') {
            return None;
        }
        // An IPv6 literal holds colons: the port follows its `]`.
        let port_at = match authority.rfind(']') {
            Some(close) => authority[close..].find(':').map(|i| close + i),
            None => authority.rfind(':'),
        };
        let (host, port) = match port_at {
            Some(i) => (&authority[..i], &authority[i + 1..]),
            None => (authority, ""),
        };
        let port = if port.is_empty() { default_port } else { port };
        Some((host.to_ascii_lowercase(), port.to_owned()))
    };
    host_port(ours).is_some_and(|ours| host_port(theirs) == Some(ours))
}

fn split_query(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    }
}

fn or_root(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

fn join(path: &str, query: Option<&str>) -> String {
    match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    }
}

/// RFC 3986 §5.2.4 for an absolute path: `.` and `..` segments removed.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *segment {
            "." if last => segments.push(""),
            "." => {}
            ".." => {
                segments.pop();
                if last {
                    segments.push("");
                }
            }
            segment => segments.push(segment),
        }
    }
    format!("/{}", segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(base: &str, reference: &str) -> Option<String> {
        let request = Request::post(base).body(()).unwrap();
        LocationTargets::of(&request).unwrap().resolve(reference)
    }

    #[test]
    fn references_resolve_against_the_request_uri() {
        let base = "http://a.test/b/c/d?q";
        let cases = [
            ("/x", Some("/x")),
            ("g", Some("/b/c/g")),
            ("./g", Some("/b/c/g")),
            ("g/", Some("/b/c/g/")),
            ("../g", Some("/b/g")),
            ("../../../g", Some("/g")),
            ("?y", Some("/b/c/d?y")),
            ("", Some("/b/c/d?q")),
            ("g#frag", Some("/b/c/g")),
            ("..", Some("/b/")),
            ("//a.test/z?k=1", Some("/z?k=1")),
            ("http://A.TEST:80/z", Some("/z")),
            ("HTTP://a.test", Some("/")),
            ("https://a.test/z", None),
            ("//b.test/z", None),
            ("http://a.test:8080/z", None),
            ("http://user@a.test/z", None),
            ("mailto:x@a.test", None),
            ("http:z", None),
        ];
        for (reference, expected) in cases {
            assert_eq!(
                resolve(base, reference).as_deref(),
                expected,
                "{reference:?}"
            );
        }
        assert_eq!(
            resolve("https://[::1]:8443/a", "//[::1]:8443/b").as_deref(),
            Some("/b")
        );
        assert_eq!(
            resolve("https://[::1]/a", "https://[::1]:443/b").as_deref(),
            Some("/b")
        );
    }
}
