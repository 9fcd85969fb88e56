//! Headers that belong to one connection (RFC 9110 §7.6.1): neither passed
//! on to the next hop nor stored.

use http::HeaderMap;
use http::header::{self, HeaderName};

/// Connection-specific by definition, whether `Connection` names them or not
/// (RFC 9110 §7.6.1, plus the proxy's own authentication headers).
const ALWAYS: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop headers and every header the `Connection` lines
/// name.
pub(crate) fn strip(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(&ALWAYS) {
        headers.remove(name);
    }
}
