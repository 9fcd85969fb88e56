//! [`HttpCodec`]: stored HTTP answers as bytes, for a fleet's second tier
//! (`shared-calls-redis`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};
use shared_calls_cache::l2::Codec;

use crate::body::Collected;
use crate::cache_control::VaryKey;
use crate::key::HttpKey;
use crate::shared::{HttpShared, Shared, StoredResponse};

/// The codec of the HTTP layer's keys and stored answers: status, version,
/// headers, body, trailers, the request values of its `Vary`, and its `Age`
/// on arrival. Hand it to `SharedCallsLayer::second_tier` with a tier.
///
/// Answers that only their own caller may take (streamed, private) never
/// leave the process. Bytes that do not read back as a valid answer (bad
/// status, header name or value, wrong lengths) are refused, which the cache
/// counts as a miss.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpCodec;

const FORMAT: u8 = 1;

impl Codec<HttpKey, HttpShared> for HttpCodec {
    fn encode_key(&self, key: &HttpKey, out: &mut Vec<u8>) {
        out.extend_from_slice(key.as_bytes());
    }

    fn decode_key(&self, bytes: &[u8]) -> Option<HttpKey> {
        Some(HttpKey::from(bytes.to_vec()))
    }

    fn encode_value(&self, value: &HttpShared, out: &mut Vec<u8>) -> bool {
        match &value.0 {
            Shared::Complete(stored) => encode(stored, out).is_some(),
            Shared::OwnClientOnly(_) => false,
        }
    }

    fn decode_value(&self, bytes: &[u8]) -> Option<HttpShared> {
        let mut reader = Reader(bytes);
        let stored = decode(&mut reader)?;
        reader
            .0
            .is_empty()
            .then(|| HttpShared(Shared::Complete(Arc::new(stored))))
    }
}

fn encode(stored: &StoredResponse, out: &mut Vec<u8>) -> Option<()> {
    out.push(FORMAT);
    out.extend_from_slice(&stored.status.as_u16().to_be_bytes());
    out.push(version_byte(stored.version)?);
    let age = u64::try_from(stored.initial_age.as_millis()).unwrap_or(u64::MAX);
    out.extend_from_slice(&age.to_be_bytes());
    put_headers(out, &stored.headers())?;
    put_bytes(out, stored.body.data())?;
    match stored.body.trailers() {
        Some(trailers) => {
            out.push(1);
            put_headers(out, trailers)?;
        }
        None => out.push(0),
    }
    match &stored.vary {
        Some(vary) => {
            out.push(1);
            let entries: Vec<_> = vary.entries().collect();
            put_len(out, entries.len())?;
            for (name, value) in entries {
                put_bytes(out, name.as_str().as_bytes())?;
                match value {
                    Some(value) => {
                        out.push(1);
                        put_bytes(out, value)?;
                    }
                    None => out.push(0),
                }
            }
        }
        None => out.push(0),
    }
    Some(())
}

fn decode(reader: &mut Reader<'_>) -> Option<StoredResponse> {
    if reader.byte()? != FORMAT {
        return None;
    }
    let status = StatusCode::from_u16(u16::from_be_bytes(reader.take(2)?.try_into().ok()?)).ok()?;
    let version = from_version_byte(reader.byte()?)?;
    let initial_age = Duration::from_millis(u64::from_be_bytes(reader.take(8)?.try_into().ok()?));
    let headers = reader.headers()?;
    let data = Bytes::copy_from_slice(reader.field()?);
    let trailers = match reader.byte()? {
        0 => None,
        1 => Some(reader.headers()?),
        _ => return None,
    };
    let vary = match reader.byte()? {
        0 => None,
        1 => {
            let count = reader.len()?;
            let mut entries = Vec::with_capacity(count.min(64));
            for _ in 0..count {
                let name = HeaderName::from_bytes(reader.field()?).ok()?;
                let value = match reader.byte()? {
                    0 => None,
                    1 => Some(Box::from(reader.field()?)),
                    _ => return None,
                };
                entries.push((name, value));
            }
            Some(VaryKey::from_entries(entries))
        }
        _ => return None,
    };
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Some(StoredResponse::new(
        parts,
        Collected::new(data, trailers),
        vary,
        initial_age,
    ))
}

fn version_byte(version: Version) -> Option<u8> {
    Some(match version {
        Version::HTTP_09 => 0,
        Version::HTTP_10 => 1,
        Version::HTTP_11 => 2,
        Version::HTTP_2 => 3,
        Version::HTTP_3 => 4,
        _ => return None,
    })
}

fn from_version_byte(byte: u8) -> Option<Version> {
    Some(match byte {
        0 => Version::HTTP_09,
        1 => Version::HTTP_10,
        2 => Version::HTTP_11,
        3 => Version::HTTP_2,
        4 => Version::HTTP_3,
        _ => return None,
    })
}

fn put_len(out: &mut Vec<u8>, len: usize) -> Option<()> {
    out.extend_from_slice(&u32::try_from(len).ok()?.to_be_bytes());
    Some(())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    put_len(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Some(())
}

fn put_headers(out: &mut Vec<u8>, headers: &HeaderMap) -> Option<()> {
    put_len(out, headers.len())?;
    for (name, value) in headers {
        put_bytes(out, name.as_str().as_bytes())?;
        put_bytes(out, value.as_bytes())?;
    }
    Some(())
}

/// Reads what the `put_` functions wrote; `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(taken)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn len(&mut self) -> Option<usize> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn field(&mut self) -> Option<&'a [u8]> {
        let len = self.len()?;
        self.take(len)
    }

    fn headers(&mut self) -> Option<HeaderMap> {
        let count = self.len()?;
        // Each line takes at least 8 bytes: a count cannot outgrow the input.
        let mut headers = HeaderMap::with_capacity(count.min(self.0.len() / 8));
        for _ in 0..count {
            let name = HeaderName::from_bytes(self.field()?).ok()?;
            let value = HeaderValue::from_bytes(self.field()?).ok()?;
            headers.append(name, value);
        }
        Some(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{CONTENT_TYPE, VARY};

    fn stored() -> HttpShared {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::NOT_FOUND;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
            .headers_mut()
            .append("x-many", HeaderValue::from_static("a"));
        response
            .headers_mut()
            .append("x-many", HeaderValue::from_static("b"));
        response
            .headers_mut()
            .insert(VARY, HeaderValue::from_static("accept-language"));
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let mut request = HeaderMap::new();
        request.insert("accept-language", HeaderValue::from_static("fr"));
        let vary = crate::cache_control::vary(response.headers())
            .unwrap()
            .capture(&request);
        let (parts, ()) = response.into_parts();
        HttpShared(Shared::Complete(Arc::new(StoredResponse::new(
            parts,
            Collected::new(Bytes::from_static(b"body"), Some(trailers)),
            Some(vary),
            Duration::from_secs(3),
        ))))
    }

    fn complete(shared: &HttpShared) -> &StoredResponse {
        match &shared.0 {
            Shared::Complete(stored) => stored,
            Shared::OwnClientOnly(_) => panic!("an answer for its own client only"),
        }
    }

    #[test]
    fn a_stored_answer_round_trips_whole() {
        let mut bytes = Vec::new();
        assert!(HttpCodec.encode_value(&stored(), &mut bytes));
        let decoded = HttpCodec.decode_value(&bytes).unwrap();
        let (original, decoded) = (stored(), decoded);
        let (a, b) = (complete(&original), complete(&decoded));
        assert_eq!(a.status, b.status);
        assert_eq!(a.version, b.version);
        assert_eq!(a.headers(), b.headers());
        assert_eq!(a.body.data(), b.body.data());
        assert_eq!(a.body.trailers(), b.body.trailers());
        assert_eq!(a.vary, b.vary);
        assert_eq!(a.initial_age, b.initial_age);
    }

    #[test]
    fn truncated_or_extended_bytes_are_refused() {
        let mut bytes = Vec::new();
        assert!(HttpCodec.encode_value(&stored(), &mut bytes));
        for length in 0..bytes.len() {
            assert!(
                HttpCodec.decode_value(&bytes[..length]).is_none(),
                "{length}"
            );
        }
        bytes.push(0);
        assert!(HttpCodec.decode_value(&bytes).is_none());
    }

    #[test]
    fn an_answer_for_its_own_caller_only_is_not_encoded() {
        let own_client_only = HttpShared(Shared::OwnClientOnly(crate::shared::TakeOnce::new(())));
        assert!(!HttpCodec.encode_value(&own_client_only, &mut Vec::new()));
    }

    #[test]
    fn keys_round_trip() {
        let key = HttpKey::from("http://a/b?c");
        let mut bytes = Vec::new();
        HttpCodec.encode_key(&key, &mut bytes);
        assert_eq!(HttpCodec.decode_key(&bytes), Some(key));
    }
}
