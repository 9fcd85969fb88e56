//! What a stored answer keeps of its origin's headers, and whether its
//! origin's framing can be trusted (RFC 9112 §6, RFC 9110 §7.6.1).
//!
//! A cache replays its answers on other clients' connections: an answer whose
//! framing contradicts itself or the bytes received (`Content-Length` beside
//! `Transfer-Encoding`, a `Content-Length` list, a transfer coding other than
//! `chunked`, a length the body did not have) is never stored, and a stored
//! answer carries framing computed from what is stored.

use http::StatusCode;
use http::header::{
    AGE, CONNECTION, CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};

use crate::cache_control::trim_ows;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The hop-by-hop headers of RFC 9110 §7.6.1 (and their older relatives):
/// they describe the connection an answer came over, never stored.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    KEEP_ALIVE,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    PROXY_CONNECTION,
];

/// How a response says its body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// One valid `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked` alone.
    Chunked,
    /// Neither: the body ends when the stream does.
    Unframed,
    /// Framing that contradicts itself, or a transfer coding this cache
    /// does not decode.
    Contradictory,
}

impl Framing {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
        let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
        match (lengths.next(), codings.next()) {
            (Some(_), Some(_)) => Framing::Contradictory,
            (None, Some(coding)) => {
                let chunked = trim_ows(coding.as_bytes()).eq_ignore_ascii_case(b"chunked");
                match chunked && codings.next().is_none() {
                    true => Framing::Chunked,
                    false => Framing::Contradictory,
                }
            }
            (Some(length), None) => match (parse_length(length), lengths.next()) {
                (Some(length), None) => Framing::Length(length),
                _ => Framing::Contradictory,
            },
            (None, None) => Framing::Unframed,
        }
    }

    /// Whether a body of `received` bytes is what this framing announced.
    pub(crate) fn agrees_with(self, received: usize) -> bool {
        match self {
            Framing::Length(length) => u64::try_from(received).is_ok_and(|r| r == length),
            Framing::Chunked | Framing::Unframed => true,
            Framing::Contradictory => false,
        }
    }
}

/// A `Content-Length` value: digits only, no list.
fn parse_length(value: &HeaderValue) -> Option<u64> {
    let digits = trim_ows(value.as_bytes());
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The headers of an answer as it is stored: without hop-by-hop headers
/// (those `Connection` names included), without the origin's `Age` (every
/// answer computes its own), and with a `Content-Length` that is the stored
/// body's own, for the statuses that carry one.
pub(crate) fn stored_headers(headers: &mut HeaderMap, status: StatusCode, body_len: usize) {
    for name in HOP_BY_HOP
        .iter()
        .chain(&connection_named(headers))
        .chain([&AGE, &CONTENT_LENGTH])
    {
        headers.remove(name);
    }
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if !bodiless {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body_len));
    }
}

/// The fields `Connection` names (RFC 9110 §7.6.1).
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .filter_map(|name| HeaderName::from_bytes(trim_ows(name)).ok())
        .collect()
}

/// The headers of a shared answer as its leader's client gets them, streamed
/// while it is stored: without the fields that describe the connection it
/// came over (as the stored copy), its framing and trailer fields kept for
/// the body that follows.
pub(crate) fn streamed_headers(headers: &mut HeaderMap) {
    let framing = [CONTENT_LENGTH, TRANSFER_ENCODING, TRAILER];
    for name in HOP_BY_HOP.iter().chain(&connection_named(headers)) {
        if !framing.contains(name) {
            headers.remove(name);
        }
    }
}

/// The headers of an answer whose framing is [`Framing::Contradictory`], for
/// its own client: without the framing headers, so that the server frames
/// the bytes that really came.
pub(crate) fn drop_framing(headers: &mut HeaderMap) {
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRANSFER_ENCODING);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header map of static pairs, for this crate's unit tests.
    pub(crate) fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn framing_that_contradicts_itself_is_recognised() {
        let both = headers(&[("content-length", "5"), ("transfer-encoding", "chunked")]);
        assert_eq!(Framing::of(&both), Framing::Contradictory);
        let list = headers(&[("content-length", "5, 5")]);
        assert_eq!(Framing::of(&list), Framing::Contradictory);
        let gzip = headers(&[("transfer-encoding", "gzip")]);
        assert_eq!(Framing::of(&gzip), Framing::Contradictory);
        let gzip_chunked = headers(&[("transfer-encoding", "gzip, chunked")]);
        assert_eq!(Framing::of(&gzip_chunked), Framing::Contradictory);
        assert_eq!(
            Framing::of(&headers(&[("content-length", "12")])),
            Framing::Length(12)
        );
        assert_eq!(
            Framing::of(&headers(&[("transfer-encoding", "Chunked")])),
            Framing::Chunked
        );
        assert!(!Framing::Length(50).agrees_with(10));
    }

    #[test]
    fn stored_headers_lose_hop_by_hop_and_get_their_own_length() {
        let mut stored = headers(&[
            ("connection", "x-secret, close"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-length", "99"),
            ("content-type", "text/plain"),
        ]);
        stored_headers(&mut stored, StatusCode::OK, 7);
        let names: Vec<_> = stored.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "content-length"]);
        assert_eq!(stored[CONTENT_LENGTH], "7");
    }
}
