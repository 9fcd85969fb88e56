//! Which site a request is for, decided once: the cache key is made from it
//! and the origin receives exactly it, whatever form the client used
//! (`Host`, an absolute-form target, HTTP/2's `:authority`).

use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Method, Request, StatusCode, Uri, Version};

/// Why a request is answered by the proxy itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A `Host` or target authority that is not `host[:port]`.
    InvalidAuthority,
    /// More than one `Host` line.
    DuplicateHost,
    /// An HTTP/1.1 request without `Host` (RFC 9112 §3.2).
    MissingHost,
    /// HTTP/2 `:authority` and `Host` naming different sites (RFC 9113 §8.3.1).
    ConflictingAuthority,
    /// `CONNECT`: this is a reverse proxy, not a tunnel.
    Connect,
}

impl Refusal {
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::Connect => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::InvalidAuthority => "invalid Host or target authority",
            Self::DuplicateHost => "more than one Host header",
            Self::MissingHost => "HTTP/1.1 request without Host",
            Self::ConflictingAuthority => ":authority and Host differ",
            Self::Connect => "CONNECT is not proxied",
        }
    }
}

/// The site `request` is for, lowercased.
///
/// HTTP/1: an absolute-form target's authority wins over `Host` (RFC 9112
/// §3.2.2); an HTTP/1.0 request naming neither is for `fallback` (the
/// origin's own authority). HTTP/2: `:authority`, which a `Host` line may
/// repeat but not contradict. Every `Host` line is checked whichever wins.
pub(crate) fn of<B>(request: &Request<B>, fallback: &Authority) -> Result<Authority, Refusal> {
    if request.method() == Method::CONNECT {
        return Err(Refusal::Connect);
    }
    let mut hosts = request.headers().get_all(HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err(Refusal::DuplicateHost),
        (Some(host), None) => Some(parse(host.as_bytes())?),
        (None, _) => None,
    };
    let target = match request.uri().authority() {
        Some(authority) => Some(parse(authority.as_str().as_bytes())?),
        None => None,
    };
    match (request.version(), target, host) {
        (Version::HTTP_2, Some(target), Some(host)) if target != host => {
            Err(Refusal::ConflictingAuthority)
        }
        (Version::HTTP_11, _, None) => Err(Refusal::MissingHost),
        (_, Some(target), _) => Ok(target),
        (_, None, Some(host)) => Ok(host),
        (_, None, None) => Ok(fallback.clone()),
    }
}

/// Puts `request` in the one form the key is made from and the origin
/// receives: an origin-form target and exactly one `Host`, `authority`.
pub(crate) fn apply<B>(request: &mut Request<B>, authority: &Authority) {
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
    let host = HeaderValue::from_str(authority.as_str())
        .expect("a checked authority is a valid header value");
    request.headers_mut().insert(HOST, host);
}

/// The longest `host[:port]` accepted: a DNS name's 253 bytes, a colon and
/// five digits.
const MAX_AUTHORITY: usize = 253 + 6;

/// `host[:port]` as RFC 9110 §7.2 allows in `Host` (no userinfo, no path),
/// lowercased. The host is a DNS name or IPv4 address (letters, digits, `-`,
/// `.`, `_`) or an IPv6 literal in brackets; the port is 1 to 5 digits below
/// 65536. Anything else is refused rather than guessed at: an origin that
/// read it differently would answer for another site.
fn parse(raw: &[u8]) -> Result<Authority, Refusal> {
    if raw.is_empty() || raw.len() > MAX_AUTHORITY {
        return Err(Refusal::InvalidAuthority);
    }
    let host_end = if raw[0] == b'[' {
        let close = raw.iter().position(|&byte| byte == b']');
        let close = close.ok_or(Refusal::InvalidAuthority)?;
        let literal = &raw[1..close];
        let ipv6 = |byte: &u8| byte.is_ascii_hexdigit() || matches!(byte, b':' | b'.');
        if literal.is_empty() || !literal.iter().all(ipv6) {
            return Err(Refusal::InvalidAuthority);
        }
        close + 1
    } else {
        let end = raw
            .iter()
            .position(|&byte| byte == b':')
            .unwrap_or(raw.len());
        let name = |byte: &u8| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_');
        if end == 0 || !raw[..end].iter().all(name) {
            return Err(Refusal::InvalidAuthority);
        }
        end
    };
    match &raw[host_end..] {
        [] => {}
        [b':', port @ ..]
            if (1..=5).contains(&port.len()) && port.iter().all(u8::is_ascii_digit) =>
        {
            let port = std::str::from_utf8(port).map_err(|_| Refusal::InvalidAuthority)?;
            port.parse::<u16>().map_err(|_| Refusal::InvalidAuthority)?;
        }
        _ => return Err(Refusal::InvalidAuthority),
    }
    Authority::try_from(raw.to_ascii_lowercase()).map_err(|_| Refusal::InvalidAuthority)
}
