//! Property tests of key derivation: `default_key`, `KeyBuilder` and
//! `grpc_key` never panic, stay proportional to the request, and never give
//! two different resources the same key.

use bytes::Bytes;
use http::{HeaderValue, Request};
use proptest::prelude::*;
use shared_calls_http::{BufferedRequest, KeyBuilder, MAX_KEY_LEN, default_key, grpc_key};

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

    /// A key reads back as the parts of the request it was made from.
    #[test]
    fn a_key_reads_back_as_its_request_parts(host in host(), path in path(), forwarded in proptest::option::of("[a-z.]{1,20}")) {
        let Some(request) = request(&host, &path, forwarded.as_deref()) else { return Ok(()) };
        let key = KeyBuilder::new().header("x-tenant").key(&request).unwrap();
        let uri = request.uri();
        prop_assert_eq!(key.scheme(), Some("http"));
        prop_assert_eq!(key.authority(), Some(host.as_str()));
        prop_assert_eq!(key.path(), Some(uri.path()));
        prop_assert_eq!(key.query(), uri.query());
        let mut expected: Vec<(&str, Option<&[u8]>)> = Vec::new();
        if let Some(forwarded) = &forwarded {
            expected.push(("x-forwarded-host", Some(forwarded.as_bytes())));
        }
        expected.push(("x-tenant", None));
        prop_assert_eq!(key.headers().collect::<Vec<_>>(), expected);
    }

    /// Reading parts of any bytes never panics, and bytes that are not a
    /// key's layout have none.
    #[test]
    fn parts_of_any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let key = shared_calls_http::HttpKey::from(bytes);
        let _ = (key.scheme(), key.authority(), key.query(), key.headers().count());
        if let Some(path) = key.path() {
            prop_assert!(path.starts_with('/') && key.scheme().is_some());
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

/// What a request names, as an origin reads it: scheme (`http` when the
/// request line has none), authority, path and query.
fn resource(request: &Request<()>) -> (String, String, String, Option<String>) {
    let uri = request.uri();
    let authority = match uri.authority() {
        Some(authority) => authority.as_str().to_owned(),
        None => String::from_utf8_lossy(request.headers()["host"].as_bytes()).into_owned(),
    };
    let path = if uri.path().is_empty() {
        "/"
    } else {
        uri.path()
    };
    (
        uri.scheme_str().unwrap_or("http").to_owned(),
        authority.to_ascii_lowercase(),
        path.to_owned(),
        uri.query().map(str::to_owned),
    )
}

/// Host values as a hostile client sends them: plain ones, and ones with
/// every character that could blur where the authority ends.
fn hostile_host() -> impl Strategy<Value = String> {
    prop_oneof![host(), "[a-z0-9./?#@:\\[\\] \t%_~!$&'()*+,;=-]{0,30}",]
}

/// Request targets in origin form or absolute form, `http` or `https`.
fn target() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just(""), Just("http://"), Just("https://")],
        "[a-z.]{1,8}",
        path(),
    )
        .prop_map(|(scheme, authority, path)| {
            if scheme.is_empty() {
                path
            } else {
                format!("{scheme}{authority}{path}")
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Two requests share a key only if they name the same scheme,
    /// authority, path and query, whatever their `Host` holds.
    #[test]
    fn equal_keys_mean_the_same_scheme_authority_path_and_query(
        a in (target(), hostile_host()),
        b in (target(), hostile_host()),
    ) {
        let build = |(target, host): &(String, String)| Request::get(target.as_str()).header("host", host.as_str()).body(()).ok();
        let (Some(first), Some(second)) = (build(&a), build(&b)) else { return Ok(()) };
        if let (Some(x), Some(y)) = (default_key(&first), default_key(&second)) && x == y {
            prop_assert_eq!(resource(&first), resource(&second));
        }
    }

    /// A `Host` that is not a plain `host[:port]` bypasses the cache.
    #[test]
    fn hosts_that_are_not_plain_authorities_bypass(host in hostile_host(), path in path()) {
        let Ok(request) = Request::get(path.as_str()).header("host", host.as_str()).body(()) else {
            return Ok(());
        };
        let blurs = host.is_empty()
            || host.bytes().any(|b| b"/?#@ \t%!$&'()*+,;=".contains(&b))
            || host.matches(':').count() > 1 && !host.starts_with('[');
        if blurs {
            prop_assert_eq!(default_key(&request), None, "{:?}", host);
        }
    }

    /// A header named with `KeyBuilder::header` keeps its users apart:
    /// different values, or a value and none, never share a key.
    #[test]
    fn a_named_identity_header_never_crosses_users(
        path in path(),
        users in (proptest::option::of("[ -~]{0,20}"), proptest::option::of("[ -~]{0,20}")),
    ) {
        let builder = KeyBuilder::new().header("x-user-id");
        let request = |user: &Option<String>| {
            let mut request = Request::get(path.as_str()).header("host", "example.com");
            if let Some(user) = user {
                request = request.header("x-user-id", user.as_str());
            }
            request.body(()).ok()
        };
        let (Some(first), Some(second)) = (request(&users.0), request(&users.1)) else { return Ok(()) };
        let (x, y) = (builder.key(&first).unwrap(), builder.key(&second).unwrap());
        prop_assert_eq!(x == y, users.0 == users.1);
    }
}

fn get(target: &str, hosts: &[&str]) -> Request<()> {
    let mut request = Request::get(target);
    for host in hosts {
        request = request.header("host", *host);
    }
    request.body(()).unwrap()
}

#[test]
fn a_request_without_one_plain_host_bypasses() {
    assert!(default_key(&get("/a", &["example.com"])).is_some());
    assert_eq!(default_key(&get("/a", &[])), None, "no host at all");
    assert_eq!(
        default_key(&get("/a", &["a.test", "b.test"])),
        None,
        "two Host lines"
    );
    assert_eq!(
        default_key(&get("/a", &["a.test", "a.test"])),
        None,
        "two equal Host lines"
    );
    for host in [
        "a.test/b",
        "a.test?b",
        "a.test#b",
        "user@a.test",
        "a.test b",
        "a.test:",
        "a.test:123456",
        "",
    ] {
        assert_eq!(default_key(&get("/a", &[host])), None, "{host:?}");
    }
    for host in [
        "a.test:8080",
        "[::1]:8080",
        "127.0.0.1",
        "xn--bcher-kva.test",
    ] {
        assert!(default_key(&get("/a", &[host])).is_some(), "{host:?}");
    }
}

#[test]
fn a_host_that_disagrees_with_the_target_authority_bypasses() {
    assert_eq!(default_key(&get("http://a.test/x", &["b.test"])), None);
    assert!(default_key(&get("http://a.test/x", &["A.test"])).is_some());
    assert_eq!(
        default_key(&get("http://a.test/x", &[])),
        default_key(&get("/x", &["a.test"])),
        "absolute form and Host name one resource"
    );
}

#[test]
fn tls_and_cleartext_never_share() {
    let https = default_key(&get("https://a.test/x", &[])).unwrap();
    let http = default_key(&get("http://a.test/x", &[])).unwrap();
    let origin_form = default_key(&get("/x", &["a.test"])).unwrap();
    assert_ne!(https, http);
    assert_ne!(https, origin_form);
    assert_eq!(https.as_bytes(), b"https://a.test/x");
}

#[test]
fn a_key_longer_than_the_maximum_bypasses() {
    let path = format!("/{}", "a".repeat(MAX_KEY_LEN));
    assert_eq!(default_key(&get(&path, &["a.test"])), None);
    let mut request = get("/x", &["a.test"]);
    let forwarded = HeaderValue::from_str(&"f".repeat(300_000)).unwrap();
    request.headers_mut().insert("x-forwarded-host", forwarded);
    assert_eq!(default_key(&request), None, "a 300 KB forwarded host");
    let fits = format!("/{}", "a".repeat(MAX_KEY_LEN - "http://a.test/".len()));
    assert_eq!(
        default_key(&get(&fits, &["a.test"]))
            .unwrap()
            .as_bytes()
            .len(),
        MAX_KEY_LEN
    );
}

#[test]
fn the_builder_sorts_or_drops_query_parameters() {
    let key = |builder: &KeyBuilder, target: &str| builder.key(&get(target, &["a.test"])).unwrap();
    let plain = KeyBuilder::new();
    assert_ne!(key(&plain, "/q?b=2&a=1"), key(&plain, "/q?a=1&b=2"));
    let sorted = KeyBuilder::new().sort_query();
    assert_eq!(key(&sorted, "/q?b=2&a=1"), key(&sorted, "/q?a=1&b=2"));
    assert_ne!(key(&sorted, "/q?a=1&b=2"), key(&sorted, "/q?a=1&b=3"));
    let dropped = KeyBuilder::new().drop_query_param("utm_source");
    assert_eq!(
        key(&dropped, "/q?utm_source=x&a=1"),
        key(&dropped, "/q?a=1")
    );
    assert_eq!(key(&dropped, "/q?a=1&utm_source"), key(&dropped, "/q?a=1"));
    assert_ne!(key(&dropped, "/q?a=1"), key(&dropped, "/q?a=2"));
    assert_eq!(
        key(&plain, "/q?a=1"),
        default_key(&get("/q?a=1", &["a.test"])).unwrap()
    );
}

#[test]
fn a_host_cannot_poison_another_path() {
    let pairs = [
        (("/y", "a.test/x"), ("/x/y", "a.test")),
        (("/y", "a.test?x"), ("/?x/y", "a.test")),
        (("/", "a.test:80/admin"), ("/admin/", "a.test:80")),
    ];
    for ((hostile_path, hostile_host), (path, host)) in pairs {
        let hostile = default_key(&get(hostile_path, &[hostile_host]));
        let ordinary = default_key(&get(path, &[host]));
        assert!(ordinary.is_some());
        assert_ne!(hostile, ordinary, "{hostile_host:?} {hostile_path:?}");
        assert_eq!(hostile, None);
    }
}
