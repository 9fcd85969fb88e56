//! Entity tags (RFC 9110 §8.8.3), read from `ETag` and from the lists of
//! `If-None-Match`.

use http::HeaderMap;
use http::header::{ETAG, HeaderValue};

/// An entity tag: its opaque part (quotes removed), whether it is weak, and
/// the whole value.
pub(crate) struct EntityTag<'a> {
    pub(crate) weak: bool,
    pub(crate) opaque: &'a [u8],
    pub(crate) value: &'a HeaderValue,
}

/// The response's one well-formed `ETag`, if it has one.
pub(crate) fn of(headers: &HeaderMap) -> Option<EntityTag<'_>> {
    let mut values = headers.get_all(ETAG).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let (weak, opaque) = parse(value.as_bytes().trim_ascii())?;
    Some(EntityTag {
        weak,
        opaque,
        value,
    })
}

/// Whether `tag` is weak, and its opaque part without the quotes, if it is
/// well formed: `[W/] DQUOTE *etagc DQUOTE`.
pub(crate) fn parse(tag: &[u8]) -> Option<(bool, &[u8])> {
    let (weak, quoted) = match tag.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, tag),
    };
    let opaque = quoted.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    // etagc = %x21 / %x23-7E / obs-text
    let etagc = |&b: &u8| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80;
    opaque.iter().all(etagc).then_some((weak, opaque))
}
