//! Property tests of key derivation: `default_key` and `grpc_key` never
//! panic, stay proportional to the request, and never give two different
//! resources the same key.

use bytes::Bytes;
use http::{HeaderValue, Request};
use proptest::prelude::*;
use shared_calls_http::{BufferedRequest, default_key, grpc_key};

/// A request for `host` and `path_and_query`, with optional routing headers.
fn request(host: &str, path: &str, forwarded_host: Option<&str>) -> Option<Request<()>> {
    let mut builder = Request::get(path).header("host", host);
    if let Some(forwarded) = forwarded_host {
        builder = builder.header("x-forwarded-host", forwarded);
    }
    builder.body(()).ok()
}

fn host() -> impl Strategy<Value = String> {
    "[a-z0-9.-]{1,40}(:[0-9]{1,5})?"
}

fn path() -> impl Strategy<Value = String> {
    "/[a-zA-Z0-9/._~%-]{0,200}(\\?[a-zA-Z0-9=&%._-]{0,200})?"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any request that `http` accepts has a key, no longer than what the
    /// request itself carries plus a constant.
    #[test]
    fn every_request_has_a_bounded_key(host in host(), path in path(), forwarded in proptest::option::of("[ -~]{0,300}")) {
        let Some(request) = request(&host, &path, forwarded.as_deref()) else { return Ok(()) };
        let key = default_key(&request).expect("the default key never bypasses");
        let carried = host.len() + path.len() + forwarded.as_ref().map_or(0, String::len);
        prop_assert!(key.as_bytes().len() <= carried + 64, "{} bytes for {} carried", key.as_bytes().len(), carried);
    }

    /// Requests for different hosts, paths, queries or forwarded hosts never
    /// share a key; the same request always has the same key.
    #[test]
    fn different_resources_have_different_keys(
        a in (host(), path(), proptest::option::of("[a-z.]{1,20}")),
        b in (host(), path(), proptest::option::of("[a-z.]{1,20}")),
    ) {
        let (Some(first), Some(second)) = (request(&a.0, &a.1, a.2.as_deref()), request(&b.0, &b.1, b.2.as_deref())) else {
            return Ok(());
        };
        let again = request(&a.0, &a.1, a.2.as_deref()).unwrap();
        prop_assert_eq!(default_key(&first), default_key(&again));
        if a != b {
            prop_assert_ne!(default_key(&first), default_key(&second));
        }
    }

    /// A buffered gRPC message is part of its key: different messages on one
    /// method, or one message on different methods, never share a key.
    #[test]
    fn grpc_keys_tell_messages_and_methods_apart(
        methods in ("/pkg\\.Svc/[A-Za-z]{1,20}", "/pkg\\.Svc/[A-Za-z]{1,20}"),
        messages in (proptest::collection::vec(any::<u8>(), 0..512), proptest::collection::vec(any::<u8>(), 0..512)),
    ) {
        let grpc = |method: &str, message: &[u8]| {
            let mut request = Request::post(method).body(()).unwrap();
            request.headers_mut().insert("content-type", HeaderValue::from_static("application/grpc"));
            request.extensions_mut().insert(BufferedRequest(Bytes::copy_from_slice(message)));
            grpc_key(&request).expect("a buffered gRPC request has a key")
        };
        let first = grpc(&methods.0, &messages.0);
        prop_assert_eq!(&first, &grpc(&methods.0, &messages.0));
        if methods.0 != methods.1 || messages.0 != messages.1 {
            prop_assert_ne!(first, grpc(&methods.1, &messages.1));
        }
    }
}

/// Without a buffered message, or for a request that is not gRPC, there is
/// no gRPC key (the request bypasses).
#[test]
fn grpc_key_needs_a_buffered_grpc_request() {
    let plain = Request::post("/pkg.Svc/Get").body(()).unwrap();
    assert!(grpc_key(&plain).is_none());
    let mut not_grpc = Request::post("/pkg.Svc/Get").body(()).unwrap();
    not_grpc
        .extensions_mut()
        .insert(BufferedRequest(Bytes::from_static(b"m")));
    assert!(grpc_key(&not_grpc).is_none());
}
