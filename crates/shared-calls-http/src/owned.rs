//! What a stored answer owns, and what that weighs.
//!
//! hyper hands out header values and body chunks as `Bytes` slices of its
//! connection read buffers (8 KiB and up), and HTTP/2 trailers as slices of
//! their frames: an entry that kept them would keep every such buffer alive
//! for as long as it is stored. [`own`] copies the header values, the body
//! and the trailer values of an answer into one allocation of its own, the
//! header lines into a list of exactly their number ([`HeaderLines`], each
//! name a number shared by every entry) and the trailers into a map of
//! exactly their size.
//!
//! [`weight`] and [`key_weight`] count the heap an entry then holds, in
//! requested bytes, so that a cache bounded by weight is bounded in memory.

use std::mem::size_of;

use bytes::Bytes;
use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::body::Collected;
use crate::cache_control::VaryKey;
use crate::key::HttpKey;
use crate::shared::StoredResponse;
use crate::shared_names;

/// What a `Bytes` shared by several handles allocates besides its data (its
/// reference count and the buffer's capacity).
const SHARED_BYTES: usize = 24;

/// A stored answer's header lines, names with their values, in the order
/// the origin sent them.
///
/// A list rather than a map: a hit builds its response's own map anyway, and
/// a map's tables (an index, and a 104-byte entry per line at a power-of-two
/// capacity) would weigh more than the lines themselves. Each line names
/// its header by number ([`shared_names`]) unless one of its names has
/// none: 48 bytes a line rather than 72.
#[derive(Debug)]
pub(crate) enum HeaderLines {
    Numbered(Box<[NumberedLine]>),
    /// Boxed twice, so that the list takes 16 bytes in every entry, not 24:
    /// the rare answer that has a name without a number pays for it.
    Named(Box<Box<[(HeaderName, HeaderValue)]>>),
}

/// A line whose name is numbered.
#[derive(Debug)]
pub(crate) struct NumberedLine {
    value: HeaderValue,
    name: u16,
}

impl HeaderLines {
    fn new(lines: Vec<(HeaderName, HeaderValue)>) -> Self {
        let numbered = lines
            .iter()
            .map(|(name, value)| {
                let name = shared_names::number(name)?;
                Some(NumberedLine {
                    value: value.clone(),
                    name,
                })
            })
            .collect::<Option<_>>();
        match numbered {
            Some(numbered) => Self::Numbered(numbered),
            None => Self::Named(Box::new(lines.into_boxed_slice())),
        }
    }

    /// Each line's name and value.
    fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        let (numbered, named) = match self {
            Self::Numbered(lines) => (&lines[..], &[][..]),
            Self::Named(lines) => (&[][..], &lines[..]),
        };
        // Every number names a kept name: none is skipped.
        let numbered = numbered
            .iter()
            .filter_map(|line| Some((shared_names::name(line.name)?, &line.value)));
        numbered.chain(named.iter().map(|(name, value)| (name, value)))
    }

    pub(crate) fn contains_key(&self, name: &HeaderName) -> bool {
        self.iter().any(|(line, _)| line == name)
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Numbered(lines) => lines.len(),
            Self::Named(lines) => lines.len(),
        }
    }

    /// The lines in a map with room for `more` lines besides, so that adding
    /// them allocates nothing more.
    pub(crate) fn to_map(&self, more: usize) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.len() + more);
        map.extend(
            self.iter()
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        map
    }
}

/// A header map's index slot.
const INDEX: usize = 4;
/// A header map's entry: name, value, hash and links to further values.
const BUCKET: usize = size_of::<HeaderName>() + size_of::<HeaderValue>() + 32;
/// A header map's further value of a name: the value and two links.
const EXTRA_VALUE: usize = size_of::<HeaderValue>() + 32;
/// The answer's header lines, body and trailers, with every header value,
/// the body and every trailer value copied into one allocation of their own,
/// the lines listed and the trailers' map rebuilt at its exact size.
pub(crate) fn own(headers: HeaderMap, body: Collected) -> (HeaderLines, Collected) {
    let (data, trailers) = body.into_parts();
    let maps = || std::iter::once(&headers).chain(&trailers);
    let len = maps()
        .flat_map(HeaderMap::values)
        .map(HeaderValue::len)
        .sum::<usize>();
    let mut buffer = Vec::with_capacity(len + data.len());
    for value in maps().flat_map(HeaderMap::values) {
        buffer.extend_from_slice(value.as_bytes());
    }
    buffer.extend_from_slice(&data);
    // Exactly its length: `Bytes` keeps the allocation as it is.
    let buffer = Bytes::from(buffer);
    let mut copies = Copies { buffer, at: 0 };
    let headers = copies.lines(headers);
    let trailers = trailers.map(|trailers| copies.rebuild(trailers));
    (headers, Collected::new(copies.take(data.len()), trailers))
}

/// Slices of the copy, handed out in the order they were copied in.
struct Copies {
    buffer: Bytes,
    at: usize,
}

impl Copies {
    fn take(&mut self, len: usize) -> Bytes {
        let slice = self.buffer.slice(self.at..self.at + len);
        self.at += len;
        slice
    }

    /// The next slice as a copy of `value`.
    fn value(&mut self, value: HeaderValue) -> HeaderValue {
        let sensitive = value.is_sensitive();
        let mut copy = match HeaderValue::from_maybe_shared(self.take(value.len())) {
            Ok(copy) => copy,
            // Cannot happen: the bytes were this valid value's.
            Err(_) => value,
        };
        copy.set_sensitive(sensitive);
        copy
    }

    /// The lines of `headers`, names moved, values the next slices
    /// (`values()` and `into_iter()` go through a map in the same order).
    fn lines(&mut self, headers: HeaderMap) -> HeaderLines {
        let mut lines: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let value = self.value(value);
            // `into_iter` names each key before its values; a further value
            // of the same name comes without it.
            let name = match (name, lines.last()) {
                (Some(name), _) => name,
                (None, Some((previous, _))) => previous.clone(),
                (None, None) => continue,
            };
            lines.push((name, value));
        }
        HeaderLines::new(lines)
    }

    /// `headers`, its names moved, its values the next slices.
    fn rebuild(&mut self, headers: HeaderMap) -> HeaderMap {
        // The map it came from held as many names: the size is within limits.
        let mut map = HeaderMap::try_with_capacity(headers.keys_len()).unwrap_or_default();
        let mut last = None;
        for (name, value) in headers {
            let copy = self.value(value);
            match (name, &mut last) {
                (Some(name), _) => {
                    last = Some(match map.entry(name) {
                        Entry::Vacant(vacant) => vacant.insert_entry(copy),
                        Entry::Occupied(mut occupied) => {
                            occupied.append(copy);
                            occupied
                        }
                    });
                }
                (None, Some(entry)) => entry.append(copy),
                // `into_iter` names each key before its values.
                (None, None) => {}
            }
        }
        map
    }
}

/// The heap a stored answer holds, in requested bytes: the response, its
/// copy of values and body, its header tables and the request values it
/// varies on.
pub(crate) fn weight(stored: &StoredResponse) -> usize {
    let (data, trailers) = (stored.body.data(), stored.body.trailers());
    let lines = stored.header_lines();
    let copy = lines.iter().map(|(_, value)| value.len()).sum::<usize>()
        + trailers
            .iter()
            .flat_map(|trailers| trailers.values())
            .map(HeaderValue::len)
            .sum::<usize>()
        + data.len();
    // The response sits behind an `Arc`, with two reference counts.
    size_of::<StoredResponse>()
        + 2 * size_of::<usize>()
        + copy
        + SHARED_BYTES
        + list(lines)
        + trailers.map_or(0, table)
        + stored.vary.as_ref().map_or(0, VaryKey::weight)
}

/// The heap a stored key holds (the cache counts its own record of the
/// entry): its bytes after their two reference counts, and its variant.
pub(crate) fn key_weight(key: &HttpKey) -> usize {
    2 * size_of::<usize>() + key.as_bytes().len() + key.variant_weight()
}

/// The heap of a list of header lines and of the names it holds a copy of.
fn list(lines: &HeaderLines) -> usize {
    match lines {
        HeaderLines::Numbered(lines) => lines.len() * size_of::<NumberedLine>(),
        HeaderLines::Named(lines) => {
            size_of::<Box<[(HeaderName, HeaderValue)]>>()
                + lines.len() * size_of::<(HeaderName, HeaderValue)>()
                + names(lines.iter().map(|(name, _)| name))
        }
    }
}

/// The heap of the copies of `names` that are not http's own.
fn names<'a>(names: impl Iterator<Item = &'a HeaderName>) -> usize {
    names
        .filter(|name| holds_heap(name))
        .map(|name| name.as_str().len() + SHARED_BYTES)
        .sum()
}

/// The heap of a header map's tables and of the names it holds a copy of.
fn table(map: &HeaderMap) -> usize {
    let capacity = map.capacity();
    // `capacity` is three quarters of the index table's length.
    let indices = (capacity * 4).div_ceil(3) * INDEX;
    let extra = match map.len() - map.keys_len() {
        0 => 0,
        extra => extra.next_power_of_two().max(4) * EXTRA_VALUE,
    };
    indices + capacity * BUCKET + extra + names(map.keys())
}

/// Whether `name` holds a copy of its own. http spells its standard names
/// from static strings: parsed again, a standard name points at the same
/// string, any other at a copy of its own.
fn holds_heap(name: &HeaderName) -> bool {
    HeaderName::from_bytes(name.as_str().as_bytes())
        .is_ok_and(|parsed| parsed.as_str().as_ptr() != name.as_str().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Header values and a body as hyper hands them out: slices of one
    /// read buffer.
    fn read_buffer() -> Bytes {
        Bytes::from(b"text/plain; charset=utf-8a=1b=2hello, world".to_vec())
    }

    fn value(buffer: &Bytes, range: std::ops::Range<usize>) -> HeaderValue {
        HeaderValue::from_maybe_shared(buffer.slice(range)).unwrap()
    }

    #[test]
    fn owned_answers_keep_every_value_and_none_of_the_read_buffer() {
        let buffer = read_buffer();
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, value(&buffer, 0..25));
        let custom = HeaderName::from_static("x-part");
        headers.append(custom.clone(), value(&buffer, 25..28));
        let mut secret = value(&buffer, 28..31);
        secret.set_sensitive(true);
        headers.append(custom.clone(), secret);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", value(&buffer, 25..26));
        let body = Collected::new(buffer.slice(31..), Some(trailers.clone()));

        let (owned_headers, owned_body) = own(headers.clone(), body.clone());

        assert_eq!(owned_headers.to_map(0), headers);
        let parts: Vec<_> = owned_headers
            .iter()
            .filter(|(name, _)| **name == custom)
            .map(|(_, value)| value)
            .collect();
        assert_eq!(parts, [&"a=1", &"b=2"]);
        assert!(!parts[0].is_sensitive() && parts[1].is_sensitive());
        assert_eq!(owned_body, body);
        assert_eq!(owned_body.trailers(), Some(&trailers));
        drop((headers, body, trailers));
        // The copies hold none of the buffer they came from.
        assert!(buffer.is_unique());
    }

    #[test]
    fn header_lines_take_two_words_in_every_entry() {
        assert_eq!(size_of::<HeaderLines>(), 16);
    }

    #[test]
    fn an_answer_without_headers_or_body_owns_nothing() {
        let (headers, body) = own(HeaderMap::new(), Collected::default());
        assert_eq!(headers.len(), 0);
        assert!(body.data().is_empty() && body.trailers().is_none());
        assert_eq!(list(&headers), 0);
    }

    #[test]
    fn lines_name_their_headers_by_number_and_weigh_no_copy_of_them() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ETAG, HeaderValue::from_static("\"a\""));
        let custom = HeaderName::from_bytes(b"x-line-number-test").unwrap();
        headers.insert(custom.clone(), HeaderValue::from_static("b"));
        let (lines, _) = own(headers.clone(), Collected::default());
        assert!(matches!(lines, HeaderLines::Numbered(_)));
        assert_eq!(lines.to_map(0), headers);
        assert!(lines.contains_key(&custom));
        assert_eq!(list(&lines), 2 * size_of::<NumberedLine>());
    }

    #[test]
    fn lines_with_a_name_too_long_to_number_keep_their_names() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::ETAG, HeaderValue::from_static("\"a\""));
        let long = HeaderName::from_bytes(&[b'x'; 100]).unwrap();
        headers.insert(long.clone(), HeaderValue::from_static("b"));
        let (lines, _) = own(headers.clone(), Collected::default());
        assert!(matches!(lines, HeaderLines::Named(_)));
        assert_eq!(lines.to_map(0), headers);
        let list_of_two = 16 + 2 * size_of::<(HeaderName, HeaderValue)>();
        assert_eq!(list(&lines), list_of_two + 100 + SHARED_BYTES);
    }

    #[test]
    fn standard_names_hold_no_copy_and_others_do() {
        assert!(!holds_heap(&http::header::CONTENT_TYPE));
        assert!(holds_heap(
            &HeaderName::from_bytes(b"x-request-id").unwrap()
        ));
    }
}
