//! A client's own conditional `GET`/`HEAD` (RFC 9111 §4.3.2), answered by
//! the cache: `304 Not Modified` when the answer the cache gives satisfies
//! the client's `If-None-Match` or `If-Modified-Since`, the full answer
//! otherwise.
//!
//! The conditions are taken off the request before it may reach the inner
//! service for everyone waiting on its key: the shared call fetches the full
//! answer, and each client's conditions are evaluated against it on the way
//! out.

use std::time::SystemTime;

use http::header::{
    CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, HeaderMap, HeaderName, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, VARY,
};
use http::{HeaderValue, StatusCode};

use crate::cache_control::trim_ows;
use crate::etag;
use crate::freshness::parse_http_date;

/// The header fields a `304` carries from the answer it stands for
/// (RFC 9110 §15.4.5).
const NOT_MODIFIED_FIELDS: [HeaderName; 6] =
    [CACHE_CONTROL, CONTENT_LOCATION, DATE, ETAG, EXPIRES, VARY];

/// A request's `If-None-Match` or `If-Modified-Since`, as the cache
/// evaluates them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Conditions {
    /// `If-None-Match`: `*`, or the entity tags the client holds. It takes
    /// precedence over `If-Modified-Since` (RFC 9110 §13.2.2).
    NoneMatch(NoneMatch),
    /// `If-Modified-Since` with a valid date.
    ModifiedSince(SystemTime),
    /// Only an `If-Modified-Since` that is not one valid HTTP date, ignored
    /// (RFC 9110 §13.1.3): the full answer.
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoneMatch {
    Any,
    /// The opaque tags (without their quotes and `W/`): the weak comparison
    /// of RFC 9110 §8.8.3.2 compares just these.
    Tags(Vec<Vec<u8>>),
}

impl Conditions {
    /// The conditions of a request that has `If-None-Match` or
    /// `If-Modified-Since`, `None` if it has neither.
    pub(crate) fn of(headers: &HeaderMap) -> Option<Self> {
        if headers.contains_key(IF_NONE_MATCH) {
            return Some(Conditions::NoneMatch(none_match(headers)));
        }
        let mut dates = headers.get_all(IF_MODIFIED_SINCE).iter();
        let first = dates.next()?;
        match (dates.next(), parse_http_date(first)) {
            (None, Some(date)) => Some(Conditions::ModifiedSince(date)),
            _ => Some(Conditions::Ignored),
        }
    }

    /// Removes the fields from a request sent on behalf of every client
    /// waiting on its key.
    pub(crate) fn strip(headers: &mut HeaderMap) {
        headers.remove(IF_NONE_MATCH);
        headers.remove(IF_MODIFIED_SINCE);
    }

    /// Whether an answer with `status` and `headers`, received by the cache
    /// at `received`, is one the client has already: a `2xx` whose entity
    /// tag matches `If-None-Match` (weakly), or, without `If-None-Match`,
    /// that was last modified no later than `If-Modified-Since` (its
    /// `Last-Modified`, else its `Date`, else `received`: RFC 9111 §4.3.2).
    pub(crate) fn not_modified(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        received: SystemTime,
    ) -> bool {
        if !status.is_success() {
            return false;
        }
        match self {
            Conditions::NoneMatch(NoneMatch::Any) => true,
            Conditions::NoneMatch(NoneMatch::Tags(tags)) => {
                etag::of(headers).is_some_and(|etag| tags.iter().any(|tag| tag == etag.opaque))
            }
            Conditions::ModifiedSince(since) => {
                let modified = single_date(headers, &LAST_MODIFIED)
                    .or_else(|| single_date(headers, &DATE))
                    .unwrap_or(received);
                modified <= *since
            }
            Conditions::Ignored => false,
        }
    }
}

/// The header fields of the `304` that stands for an answer with
/// `headers`: those of RFC 9110 §15.4.5, and `Last-Modified` when there is
/// no `ETag` (it is what a client's cache then updates with).
pub(crate) fn not_modified_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = HeaderMap::with_capacity(NOT_MODIFIED_FIELDS.len());
    let fields = NOT_MODIFIED_FIELDS.iter();
    let last_modified = (!headers.contains_key(ETAG)).then_some(&LAST_MODIFIED);
    for name in fields.chain(last_modified) {
        for value in headers.get_all(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

/// `If-None-Match`: `*` or a list of entity tags over any number of lines.
/// A malformed member matches nothing.
fn none_match(headers: &HeaderMap) -> NoneMatch {
    let mut tags = Vec::new();
    for value in headers.get_all(IF_NONE_MATCH) {
        if trim_ows(value.as_bytes()) == b"*" {
            return NoneMatch::Any;
        }
        tags.extend(entity_tags(value.as_bytes()));
    }
    NoneMatch::Tags(tags)
}

/// The opaque tags of a comma-separated list of entity tags, skipping the
/// malformed members.
fn entity_tags(list: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut rest = list;
    std::iter::from_fn(move || {
        loop {
            rest = trim_ows(rest);
            while let Some(after) = rest.strip_prefix(b",") {
                rest = trim_ows(after);
            }
            if rest.is_empty() {
                return None;
            }
            // An opaque tag holds no `"`: the member ends at its closing
            // quote, or at the next comma when it is malformed.
            let (member, next) = split_member(rest);
            rest = next;
            if let Some((_, opaque)) = etag::parse(trim_ows(member)) {
                return Some(opaque.to_vec());
            }
        }
    })
}

/// The first member of a list and what follows it.
fn split_member(list: &[u8]) -> (&[u8], &[u8]) {
    let start = if list.starts_with(b"W/") { 2 } else { 0 };
    if list.get(start) == Some(&b'"')
        && let Some(close) = list[start + 1..].iter().position(|&b| b == b'"')
    {
        let end = start + close + 2;
        return (&list[..end], &list[end..]);
    }
    let end = list.iter().position(|&b| b == b',').unwrap_or(list.len());
    (&list[..end], &list[end..])
}

/// The date of a header with exactly one valid value.
fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let value: &HeaderValue = values.next()?;
    match values.next() {
        None => parse_http_date(value),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &str) -> Vec<String> {
        entity_tags(list.as_bytes())
            .map(|tag| String::from_utf8(tag).unwrap())
            .collect()
    }

    #[test]
    fn entity_tag_lists_keep_well_formed_members_only() {
        assert_eq!(
            tags(r#""a", W/"b",,"c,d", W/"e,f""#),
            ["a", "b", "c,d", "e,f"]
        );
        assert_eq!(tags(r#"a, "b"#), Vec::<String>::new());
        assert_eq!(tags(r#"x"y", "z""#), ["z"]);
        assert_eq!(tags(r#""""#), [""]);
    }
}
