//! Revalidation (RFC 9111 §4.3): the conditional request that refreshes a
//! kept answer, whether a `304` (or a `HEAD`'s `200`) answers for it, and
//! the answer it freshens.
//!
//! A stored answer with a validator (`ETag`, `Last-Modified`) is kept past
//! its freshness, never served unrefreshed, and the request that refreshes
//! it asks `If-None-Match` / `If-Modified-Since` with the stored values
//! (§4.3.1). A `304` that identifies it (§4.3.4) freshens it: its fields
//! replace the stored ones but for those that describe the body or the
//! connection (§3.2), freshness is computed anew from the merged fields,
//! and the stored body is reused, not copied. A `304` that identifies
//! nothing is not applied.

use std::sync::atomic::Ordering;

use http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, ETAG, HeaderMap, HeaderName,
    IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED,
};

use crate::etag;
use crate::framing;
use crate::shared::StoredResponse;

const CONTENT_MD5: HeaderName = HeaderName::from_static("content-md5");

/// The fields a `304` never replaces (RFC 9111 §3.2): they describe the
/// stored body, which the `304` did not carry, or name it (`ETag`).
const KEPT_FROM_STORED: [HeaderName; 5] = [
    CONTENT_LENGTH,
    CONTENT_ENCODING,
    CONTENT_RANGE,
    CONTENT_MD5,
    ETAG,
];

/// Whether a response carries a validator a conditional request can use.
pub(crate) fn has_validator(headers: &HeaderMap) -> bool {
    etag::of(headers).is_some() || headers.contains_key(LAST_MODIFIED)
}

/// Adds to `request_headers` the conditions that ask whether `stored` still
/// holds; `false` (nothing added) when it has no validator, or when a `304`
/// already failed to identify it (the refresh then fetches it whole).
pub(crate) fn make_conditional(request_headers: &mut HeaderMap, stored: &StoredResponse) -> bool {
    if stored.unidentified.load(Ordering::Relaxed) {
        return false;
    }
    let stored_headers = stored.headers();
    let etag = etag::of(&stored_headers);
    let last_modified = stored_headers.get(LAST_MODIFIED);
    if etag.is_none() && last_modified.is_none() {
        return false;
    }
    if let Some(etag) = etag {
        request_headers.insert(IF_NONE_MATCH, etag.value.clone());
    }
    if let Some(last_modified) = last_modified {
        request_headers.insert(IF_MODIFIED_SINCE, last_modified.clone());
    }
    true
}

/// Whether a `304` (or a `HEAD`'s answer) with `headers` identifies
/// `stored` (RFC 9111 §4.3.4): the same strong entity tag, or a weak one
/// that matches weakly; without an entity tag, the same `Last-Modified`.
/// An answer without any validator identifies nothing: `stored` has one.
pub(crate) fn identifies(headers: &HeaderMap, stored: &StoredResponse) -> bool {
    let stored_headers = stored.headers();
    let stored_tag = etag::of(&stored_headers);
    match (etag::of(headers), stored_tag) {
        (Some(new), Some(old)) if !new.weak => !old.weak && new.opaque == old.opaque,
        (Some(new), Some(old)) => new.opaque == old.opaque,
        (Some(_), None) => false,
        (None, _) => match (
            headers.get(LAST_MODIFIED),
            stored_headers.get(LAST_MODIFIED),
        ) {
            (Some(new), Some(old)) => new == old,
            _ => false,
        },
    }
}

/// Whether the `304` to a conditional refresh of `stored` confirms it
/// (RFC 9111 §4.3.4): one that names a validator must identify `stored`;
/// one that names none answers the conditions the refresh sent, which were
/// `stored`'s alone. Origins send such `304`s (RFC 9110 §15.4.5 asks only
/// for the `ETag` the `200` would have carried, not its `Last-Modified`).
pub(crate) fn confirms(not_modified: &HeaderMap, stored: &StoredResponse) -> bool {
    !has_validator(not_modified) || identifies(not_modified, stored)
}

/// Marks `stored` as not identified by the `304` its conditional refresh
/// got: the next refresh fetches it whole.
pub(crate) fn unidentified(stored: &StoredResponse) {
    stored.unidentified.store(true, Ordering::Relaxed);
}

/// The stored fields updated with those of a `304` (RFC 9111 §3.2): each
/// field it sends replaces the stored lines of that name, but for those
/// that describe the stored body and the hop-by-hop ones; fields it omits
/// are kept. The `304`'s `Age` is left out, as in every stored answer.
pub(crate) fn merged_headers(stored: &HeaderMap, not_modified: &HeaderMap) -> HeaderMap {
    let mut update = not_modified.clone();
    framing::stored_headers(&mut update, http::StatusCode::NOT_MODIFIED, 0);
    let mut merged = stored.clone();
    for name in update.keys() {
        if !KEPT_FROM_STORED.contains(name) {
            merged.remove(name);
        }
    }
    for (name, value) in update.iter() {
        if !KEPT_FROM_STORED.contains(name) {
            merged.append(name.clone(), value.clone());
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::tests::headers;

    #[test]
    fn a_304_replaces_what_it_sends_but_the_body_fields_and_keeps_the_rest() {
        let stored = headers(&[
            ("content-type", "text/plain"),
            ("content-length", "5"),
            ("content-encoding", "gzip"),
            ("etag", "\"a\""),
            ("cache-control", "max-age=1"),
            ("x-kept", "1"),
        ]);
        let not_modified = headers(&[
            ("cache-control", "max-age=60"),
            ("content-length", "0"),
            ("content-encoding", "br"),
            ("etag", "\"b\""),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("age", "3"),
            ("x-new", "2"),
        ]);
        let merged = merged_headers(&stored, &not_modified);
        assert_eq!(merged["cache-control"], "max-age=60");
        assert_eq!(merged["content-length"], "5");
        assert_eq!(merged["content-encoding"], "gzip");
        assert_eq!(merged["etag"], "\"a\"");
        assert_eq!(merged["x-kept"], "1");
        assert_eq!(merged["x-new"], "2");
        for gone in ["connection", "x-hop", "age"] {
            assert!(!merged.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn malformed_entity_tags_are_no_validators() {
        for bad in ["a", "\"a", "W/a", "\"a\"b\"", "\"a b\""] {
            let map = headers(&[("etag", bad)]);
            assert!(etag::of(&map).is_none(), "{bad}");
        }
        let weak = headers(&[("etag", "W/\"x\"")]);
        let tag = etag::of(&weak).unwrap();
        assert!(tag.weak && tag.opaque == b"x");
    }
}
