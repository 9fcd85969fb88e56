//! Table-driven tests of the RFC 9111 rules in `cache_control` and
//! `freshness`: each row is one exchange and the decision it must get.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use shared_calls_http::cache_control::{
    CacheControl, MAX_VARY_NAMES, Vary, VaryError, VaryKey, vary,
};
use shared_calls_http::freshness::{
    BypassReason, Credential, Freshness, Reason, RequestDecision, Rules, Storability,
    age_header_value, classify_request, http_date, parse_http_date, storability,
};

/// Tue, 14 Nov 2023 22:13:20 GMT.
const NOW_SECS: u64 = 1_700_000_000;
const NOW_DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
/// `NOW` + 120 s.
const PLUS_2M: &str = "Tue, 14 Nov 2023 22:15:20 GMT";
/// `NOW` − 60 s.
const MINUS_1M: &str = "Tue, 14 Nov 2023 22:12:20 GMT";
/// `NOW` − 1000 s.
const MINUS_1000S: &str = "Tue, 14 Nov 2023 21:56:40 GMT";
/// `NOW` + 1 h.
const PLUS_1H: &str = "Tue, 14 Nov 2023 23:13:20 GMT";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
            HeaderValue::from_str(value).expect("test header value"),
        );
    }
    map
}

type Configure = fn(Rules) -> Rules;

fn defaults(rules: Rules) -> Rules {
    rules
}

#[test]
fn fixed_dates_are_what_the_table_says() {
    let parse = |s: &str| parse_http_date(&HeaderValue::from_str(s).unwrap()).unwrap();
    assert_eq!(parse(NOW_DATE), now());
    assert_eq!(parse(PLUS_2M), now() + secs(120));
    assert_eq!(parse(MINUS_1M), now() - secs(60));
    assert_eq!(parse(PLUS_1H), now() + secs(3600));
    assert_eq!(parse(MINUS_1000S), now() - secs(1000));
}

// ---------------------------------------------------------------------------
// Cache-Control parsing (RFC 9111 §5.2)
// ---------------------------------------------------------------------------

/// A canonical, order-fixed rendering of every parsed directive.
fn summary(cc: &CacheControl) -> String {
    let mut out: Vec<String> = Vec::new();
    let flags = [
        ("no-store", cc.no_store()),
        ("no-cache", cc.no_cache()),
        ("no-cache=fields", cc.no_cache_qualified()),
        ("private", cc.private()),
        ("private=fields", cc.private_qualified()),
        ("public", cc.public()),
        ("must-revalidate", cc.must_revalidate()),
        ("proxy-revalidate", cc.proxy_revalidate()),
        ("immutable", cc.immutable()),
        ("only-if-cached", cc.only_if_cached()),
    ];
    out.extend(
        flags
            .iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| n.to_string()),
    );
    let deltas = [
        ("max-age", cc.max_age()),
        ("s-maxage", cc.s_maxage()),
        ("stale-while-revalidate", cc.stale_while_revalidate()),
        ("stale-if-error", cc.stale_if_error()),
        ("max-stale", cc.max_stale()),
        ("min-fresh", cc.min_fresh()),
    ];
    for (name, value) in deltas {
        match value {
            Some(Duration::MAX) => out.push(name.to_string()),
            Some(d) => out.push(format!("{name}={}", d.as_secs())),
            None => {}
        }
    }
    out.join(" ")
}

#[test]
fn cache_control_parsing() {
    // (field lines, Some(summary) when valid / None when invalid)
    let rows: &[(&[&str], Option<&str>)] = &[
        (&[], Some("")),
        (&[""], Some("")),
        (&[" , ,, "], Some("")),
        (&["max-age=60"], Some("max-age=60")),
        (&["MAX-AGE=60"], Some("max-age=60")),
        (&["Max-Age=60, No-Store"], Some("no-store max-age=60")),
        (&["max-age=\"60\""], Some("max-age=60")),
        (&["max-age = 60"], Some("max-age=60")),
        (&["\tmax-age=60 ,\tpublic\t"], Some("public max-age=60")),
        (&["max-age=060"], Some("max-age=60")),
        (&["max-age=0"], Some("max-age=0")),
        (
            &["max-age=60", "s-maxage=120"],
            Some("max-age=60 s-maxage=120"),
        ),
        (&["max-age=60, max-age=60"], Some("max-age=60")),
        (&["max-age=60, max-age=\"60\""], Some("max-age=60")),
        (&["max-age=60", "max-age=60"], Some("max-age=60")),
        (&["max-age=2147483648"], Some("max-age=2147483648")),
        (&["max-age=2147483649"], Some("max-age=2147483648")),
        (
            &["max-age=99999999999999999999999999999999999999"],
            Some("max-age=2147483648"),
        ),
        (&["no-cache"], Some("no-cache")),
        (&["no-cache=\"set-cookie\""], Some("no-cache=fields")),
        (
            &["no-cache=\"set-cookie, x-foo\", max-age=5"],
            Some("no-cache=fields max-age=5"),
        ),
        (&["no-cache=set-cookie"], Some("no-cache=fields")),
        // A qualifier that names no field counts as unqualified.
        (&["no-cache=\"\""], Some("no-cache")),
        (&["no-cache=\"a b\""], Some("no-cache")),
        (
            &["no-cache, no-cache=\"x\""],
            Some("no-cache no-cache=fields"),
        ),
        (&["private"], Some("private")),
        (&["private=\"authorization\""], Some("private=fields")),
        (&["private=\", ,\""], Some("private")),
        (
            &["public, must-revalidate, proxy-revalidate, immutable"],
            Some("public must-revalidate proxy-revalidate immutable"),
        ),
        (
            &["stale-while-revalidate=30, stale-if-error=600"],
            Some("stale-while-revalidate=30 stale-if-error=600"),
        ),
        (&["only-if-cached"], Some("only-if-cached")),
        (&["max-stale"], Some("max-stale")),
        (&["max-stale=10"], Some("max-stale=10")),
        (&["min-fresh=5"], Some("min-fresh=5")),
        // Unknown extensions are ignored, with or without arguments.
        (&["community=\"UCI\", max-age=5"], Some("max-age=5")),
        (&["foo, bar=baz, qux=\"a,b\\\"c\""], Some("")),
        (
            &["no-transform, must-understand, no-store"],
            Some("no-store"),
        ),
        // Invalid: the caller must not guess.
        (&["max-age=abc"], None),
        (&["max-age=-1"], None),
        (&["max-age=+1"], None),
        (&["max-age=1.5"], None),
        (&["max-age="], None),
        (&["max-age"], None),
        (&["max-age=\"\""], None),
        (&["max-age=\" 60\""], None),
        (&["max-age=60 120"], None),
        (&["max-age=60;"], None),
        (&["max-age=60, max-age=120"], None),
        (&["max-age=60", "max-age=120"], None),
        (&["s-maxage=1, s-maxage=2"], None),
        (&["max-stale, max-stale=5"], None),
        (&["no-store=1"], None),
        (&["public=\"yes\""], None),
        (&["max-age=\"60"], None),
        (&["no-cache=\"unterminated"], None),
        (&["=60"], None),
        (&["max age=60"], None),
        (&["max-age==60"], None),
        (&["no-store; max-age=60"], None),
        (&["\"quoted\""], None),
        (&["stale-if-error"], None),
    ];
    for (lines, expected) in rows {
        let map = headers(
            &lines
                .iter()
                .map(|l| ("cache-control", *l))
                .collect::<Vec<_>>(),
        );
        let got = CacheControl::from_headers(&map);
        match expected {
            Some(want) => {
                let got = got.unwrap_or_else(|e| panic!("{lines:?}: {e}"));
                assert_eq!(summary(&got), *want, "{lines:?}");
                assert_eq!(CacheControl::from_headers_lenient(&map), got, "{lines:?}");
            }
            None => assert!(got.is_err(), "{lines:?} should be invalid, got {got:?}"),
        }
    }
}

#[test]
fn cache_control_rejects_bytes_outside_visible_ascii() {
    for bytes in [
        &b"max-age=60, \xff"[..],
        b"no-cache=\"caf\xc3\xa9\"",
        b"max-age=6\x800",
        b"private=\"a\\\xff\"",
    ] {
        let mut map = HeaderMap::new();
        map.append("cache-control", HeaderValue::from_bytes(bytes).unwrap());
        assert!(CacheControl::from_headers(&map).is_err(), "{bytes:?}");
    }
}

#[test]
fn cache_control_lenient_keeps_what_is_well_formed() {
    // (field lines, lenient summary)
    let rows: &[(&[&str], &str)] = &[
        (&["no-store, max-age=abc"], "no-store"),
        (&["max-age=abc, no-store"], "no-store"),
        (&["garbage;;;, no-store"], "no-store"),
        (&["no-store=1"], "no-store"),
        (&["no-cache=\"a, b\" junk junk, max-age=5"], "max-age=5"),
        (&["max-age=1, max-age=2, max-age=1"], ""),
        (&["max-age=1", "max-age=2"], ""),
        (&["\"open, no-store"], ""),
        (
            &["max-age=10, \"x\", min-fresh=3"],
            "max-age=10 min-fresh=3",
        ),
    ];
    for (lines, want) in rows {
        let map = headers(
            &lines
                .iter()
                .map(|l| ("cache-control", *l))
                .collect::<Vec<_>>(),
        );
        assert_eq!(
            summary(&CacheControl::from_headers_lenient(&map)),
            *want,
            "{lines:?}"
        );
    }
}

#[test]
fn invalid_cache_control_is_an_error_with_a_message() {
    let map = headers(&[("cache-control", "max-age=1, max-age=2")]);
    let err = CacheControl::from_headers(&map).unwrap_err();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    assert!(boxed.to_string().starts_with("invalid Cache-Control"));
}

// ---------------------------------------------------------------------------
// Vary (RFC 9111 §4.1)
// ---------------------------------------------------------------------------

#[test]
fn vary_parsing() {
    let too_many = (0..=MAX_VARY_NAMES)
        .map(|i| format!("x-h{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let just_enough = (0..MAX_VARY_NAMES)
        .map(|i| format!("x-h{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let just_enough_names: Vec<String> = (0..MAX_VARY_NAMES).map(|i| format!("x-h{i}")).collect();
    let repeated = vec!["Accept"; 500].join(",");
    type VaryRow<'a> = (Vec<&'a str>, Result<Vec<&'a str>, VaryError>);
    let rows: Vec<VaryRow<'_>> = vec![
        (vec![], Ok(vec![])),
        (vec![""], Ok(vec![])),
        (vec![" , "], Ok(vec![])),
        (vec!["Accept-Encoding"], Ok(vec!["accept-encoding"])),
        (
            vec!["Accept-Encoding, accept-language", "ACCEPT-ENCODING"],
            Ok(vec!["accept-encoding", "accept-language"]),
        ),
        (vec!["accept,\torigin ,"], Ok(vec!["accept", "origin"])),
        (vec![&repeated], Ok(vec!["accept"])),
        (
            vec![&just_enough],
            Ok(just_enough_names.iter().map(String::as_str).collect()),
        ),
        (vec!["*"], Err(VaryError::Any)),
        (vec!["accept, *"], Err(VaryError::Any)),
        (vec!["accept", " * "], Err(VaryError::Any)),
        (vec![&too_many], Err(VaryError::TooMany)),
        (vec!["accept encoding"], Err(VaryError::Malformed)),
        (vec!["accept;q=1"], Err(VaryError::Malformed)),
        (vec!["\"accept\""], Err(VaryError::Malformed)),
        (vec!["**"], Ok(vec!["**"])),
    ];
    for (lines, want) in rows {
        let map = headers(&lines.iter().map(|l| ("vary", *l)).collect::<Vec<_>>());
        let got = vary(&map).map(|v| {
            v.names()
                .iter()
                .map(|n| n.as_str().to_owned())
                .collect::<Vec<_>>()
        });
        let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{lines:?}");
    }
    let mut map = HeaderMap::new();
    map.append("vary", HeaderValue::from_bytes(b"accept, x-\xe9").unwrap());
    assert_eq!(vary(&map), Err(VaryError::Malformed));
}

#[test]
#[rustfmt::skip]
fn vary_key_matching() {
    // (vary, stored request headers, later request headers, match?)
    type H = &'static [(&'static str, &'static str)];
    let rows: &[(&str, H, H, bool)] = &[
        ("accept-encoding", &[("accept-encoding", "gzip")], &[("accept-encoding", "gzip")], true),
        ("Accept-Encoding", &[("accept-encoding", "gzip")], &[("accept-encoding", "br")], false),
        // Whitespace around commas is not significant…
        ("accept-encoding", &[("accept-encoding", "gzip, br")], &[("accept-encoding", "gzip,br")], true),
        ("accept-encoding", &[("accept-encoding", " gzip ,\tbr ")], &[("accept-encoding", "gzip, br")], true),
        // …several lines equal one combined line…
        ("accept-encoding", &[("accept-encoding", "gzip"), ("accept-encoding", "br")], &[("accept-encoding", "gzip, br")], true),
        // …but order, case and other whitespace are.
        ("accept-encoding", &[("accept-encoding", "gzip, br")], &[("accept-encoding", "br, gzip")], false),
        ("accept-encoding", &[("accept-encoding", "gzip")], &[("accept-encoding", "GZIP")], false),
        ("accept-encoding", &[("accept-encoding", "gzip;q=1")], &[("accept-encoding", "gzip; q=1")], false),
        ("accept-encoding", &[("accept-encoding", "gzip")], &[("accept-encoding", "gzip, ")], false),
        ("accept-encoding", &[("accept-encoding", "gzip")], &[("accept-encoding", "gzi")], false),
        ("accept-encoding", &[("accept-encoding", "gz")], &[("accept-encoding", "gzip")], false),
        // Absent only matches absent (§4.1); empty is not absent.
        ("accept-encoding", &[], &[], true),
        ("accept-encoding", &[], &[("accept-encoding", "gzip")], false),
        ("accept-encoding", &[("accept-encoding", "gzip")], &[], false),
        ("accept-encoding", &[("accept-encoding", "")], &[], false),
        ("accept-encoding", &[], &[("accept-encoding", "")], false),
        ("accept-encoding", &[("accept-encoding", "")], &[("accept-encoding", "")], true),
        // Every listed header must match; others don't matter.
        ("accept, accept-language", &[("accept", "text/html"), ("accept-language", "en"), ("x-other", "1")], &[("accept", "text/html"), ("accept-language", "en"), ("x-other", "2")], true),
        ("accept, accept-language", &[("accept", "text/html"), ("accept-language", "en")], &[("accept", "text/html"), ("accept-language", "fr")], false),
        ("", &[("accept", "a")], &[("accept", "b")], true),
    ];
    for (vary_value, stored, later, want) in rows {
        let v = vary(&headers(&[("vary", vary_value)])).unwrap();
        let key = v.capture(&headers(stored));
        assert_eq!(
            key.matches(&headers(later)),
            *want,
            "{vary_value} {stored:?} {later:?}"
        );
        // Capturing the later request gives an equal key exactly when it matches.
        assert_eq!(
            key == v.capture(&headers(later)),
            *want,
            "{vary_value} {stored:?} {later:?}"
        );
        assert!(key.matches(&headers(stored)));
    }
}

#[test]
fn vary_types_are_cheap_shareable_values() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + Eq + std::hash::Hash + 'static>() {}
    assert_traits::<Vary>();
    assert_traits::<VaryKey>();
    assert_traits::<CacheControl>();
    assert_traits::<Freshness>();
    assert_traits::<Storability>();
    assert_traits::<Reason>();
    assert_traits::<RequestDecision>();
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<VaryError>();
    assert_error::<shared_calls_http::cache_control::InvalidCacheControl>();
    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_send_sync::<Rules>();
}

// ---------------------------------------------------------------------------
// Requests (classify_request)
// ---------------------------------------------------------------------------

#[test]
#[rustfmt::skip]
fn request_classification() {
    use BypassReason as B;
    use RequestDecision::{Bypass, Collapse};
    let in_key: Configure = |r| r.credentials_in_key([Credential::Authorization, Credential::Cookie]);
    let auth_keyed: Configure = |r| r.credentials_in_key([Credential::Authorization]);
    let cookie_keyed: Configure = |r| r.credentials_in_key([Credential::Cookie]);
    let honour: Configure = |r| r.honour_request_no_cache(true);
    // (what, rules, method, request headers, decision)
    type Headers = &'static [(&'static str, &'static str)];
    let rows: &[(&str, Configure, Method, Headers, RequestDecision)] = &[
        ("plain GET", defaults, Method::GET, &[], Collapse),
        ("plain HEAD", defaults, Method::HEAD, &[], Collapse),
        ("POST", defaults, Method::POST, &[], Bypass(B::Method)),
        ("PUT", defaults, Method::PUT, &[], Bypass(B::Method)),
        ("DELETE", defaults, Method::DELETE, &[], Bypass(B::Method)),
        ("PATCH", defaults, Method::PATCH, &[], Bypass(B::Method)),
        ("OPTIONS", defaults, Method::OPTIONS, &[], Bypass(B::Method)),
        ("CONNECT", defaults, Method::CONNECT, &[], Bypass(B::Method)),
        ("TRACE", defaults, Method::TRACE, &[], Bypass(B::Method)),
        ("POST no-store", defaults, Method::POST, &[("cache-control", "no-store")], Bypass(B::Method)),
        ("websocket", defaults, Method::GET, &[("upgrade", "websocket"), ("connection", "upgrade")], Bypass(B::Upgrade)),
        ("content-length", defaults, Method::GET, &[("content-length", "12")], Bypass(B::Body)),
        ("content-length 0", defaults, Method::GET, &[("content-length", "0")], Collapse),
        ("bad content-length", defaults, Method::GET, &[("content-length", "x")], Bypass(B::Body)),
        ("chunked", defaults, Method::GET, &[("transfer-encoding", "chunked")], Bypass(B::Body)),
        ("range", defaults, Method::GET, &[("range", "bytes=0-10")], Bypass(B::Range)),
        ("if-none-match, answered by the cache", defaults, Method::GET, &[("if-none-match", "\"abc\"")], Collapse),
        ("if-modified-since, answered by the cache", defaults, Method::GET, &[("if-modified-since", NOW_DATE)], Collapse),
        ("if-none-match beside if-match", defaults, Method::GET, &[("if-none-match", "*"), ("if-match", "*")], Bypass(B::Conditional)),
        ("if-match", defaults, Method::GET, &[("if-match", "*")], Bypass(B::Conditional)),
        ("if-unmodified-since", defaults, Method::GET, &[("if-unmodified-since", NOW_DATE)], Bypass(B::Conditional)),
        ("if-range", defaults, Method::GET, &[("if-range", "\"abc\"")], Bypass(B::Conditional)),
        ("authorization", defaults, Method::GET, &[("authorization", "Bearer x")], Bypass(B::Credentials)),
        ("cookie", defaults, Method::GET, &[("cookie", "session=1")], Bypass(B::Credentials)),
        ("HEAD cookie", defaults, Method::HEAD, &[("cookie", "session=1")], Bypass(B::Credentials)),
        ("authorization, keyed", in_key, Method::GET, &[("authorization", "Bearer x")], Collapse),
        ("cookie, keyed", in_key, Method::GET, &[("cookie", "session=1")], Collapse),
        ("authorization keyed alone", auth_keyed, Method::GET, &[("authorization", "Bearer x")], Collapse),
        ("cookie, authorization keyed alone", auth_keyed, Method::GET, &[("cookie", "session=1")], Bypass(B::Credentials)),
        ("both, authorization keyed alone", auth_keyed, Method::GET, &[("authorization", "Bearer x"), ("cookie", "session=1")], Bypass(B::Credentials)),
        ("authorization, cookie keyed alone", cookie_keyed, Method::GET, &[("authorization", "Bearer x")], Bypass(B::Credentials)),
        ("keyed POST", in_key, Method::POST, &[("cookie", "session=1")], Bypass(B::Method)),
        ("no-store", defaults, Method::GET, &[("cache-control", "no-store")], Bypass(B::NoStore)),
        ("NO-STORE", defaults, Method::GET, &[("cache-control", "NO-STORE")], Bypass(B::NoStore)),
        ("no-store, second line", defaults, Method::GET, &[("cache-control", "max-age=5"), ("cache-control", "no-store")], Bypass(B::NoStore)),
        ("no-store beside garbage", defaults, Method::GET, &[("cache-control", "max-age=abc, no-store")], Bypass(B::NoStore)),
        ("no-store after junk", defaults, Method::GET, &[("cache-control", ";;junk, no-store")], Bypass(B::NoStore)),
        ("no-store, keyed credentials", in_key, Method::GET, &[("cookie", "a=b"), ("cache-control", "no-store")], Bypass(B::NoStore)),
        ("malformed cc ignored", defaults, Method::GET, &[("cache-control", "max-age=abc")], Collapse),
        ("no-cache ignored", defaults, Method::GET, &[("cache-control", "no-cache")], Collapse),
        ("max-age=0 ignored", defaults, Method::GET, &[("cache-control", "max-age=0")], Collapse),
        ("pragma ignored", defaults, Method::GET, &[("pragma", "no-cache")], Collapse),
        ("other request directives", defaults, Method::GET, &[("cache-control", "max-stale, min-fresh=5, only-if-cached")], Collapse),
        ("no-cache honoured", honour, Method::GET, &[("cache-control", "no-cache")], Bypass(B::NoCache)),
        ("max-age=0 honoured", honour, Method::GET, &[("cache-control", "max-age=0")], Bypass(B::NoCache)),
        ("max-age=5 is not no-cache", honour, Method::GET, &[("cache-control", "max-age=5")], Collapse),
        ("pragma honoured", honour, Method::GET, &[("pragma", "no-cache")], Bypass(B::NoCache)),
        ("pragma list honoured", honour, Method::GET, &[("pragma", "x-foo, No-Cache")], Bypass(B::NoCache)),
        ("pragma under cache-control", honour, Method::GET, &[("pragma", "no-cache"), ("cache-control", "max-age=5")], Collapse),
        ("other pragma", honour, Method::GET, &[("pragma", "x-no-cache")], Collapse),
        ("no-store wins over no-cache", honour, Method::GET, &[("cache-control", "no-cache, no-store")], Bypass(B::NoStore)),
        ("credentials before no-store", defaults, Method::GET, &[("cookie", "a=b"), ("cache-control", "no-store")], Bypass(B::Credentials)),
        ("range before credentials", defaults, Method::GET, &[("range", "bytes=0-1"), ("authorization", "x")], Bypass(B::Range)),
        ("unrelated headers", defaults, Method::GET, &[("accept", "*/*"), ("user-agent", "t"), ("x-forwarded-for", "10.0.0.1")], Collapse),
    ];
    for (what, configure, method, request, want) in rows {
        let rules = configure(Rules::default());
        assert_eq!(
            classify_request(&rules, method, &headers(request)),
            *want,
            "{what}"
        );
    }
}

#[test]
fn bypass_reasons_are_distinct_tokens() {
    use BypassReason as B;
    let all = [
        B::Method,
        B::Upgrade,
        B::Body,
        B::Range,
        B::Conditional,
        B::Credentials,
        B::NoStore,
        B::NoCache,
    ];
    let tokens: Vec<&str> = all.iter().map(|r| r.as_str()).collect();
    for (i, t) in tokens.iter().enumerate() {
        assert!(is_sf_token(t), "{t}");
        assert!(!tokens[..i].contains(t), "{t} twice");
        assert_eq!(all[i].to_string(), *t);
    }
}

// ---------------------------------------------------------------------------
// Responses (storability)
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum Expect {
    /// ttl, stale-while-revalidate, stale-if-error (seconds).
    Store(u64, u64, u64),
    No(Reason),
}

struct Row {
    what: &'static str,
    rules: Configure,
    method: Method,
    request: &'static [(&'static str, &'static str)],
    status: u16,
    response: &'static [(&'static str, &'static str)],
    expect: Expect,
}

fn row(
    what: &'static str,
    request: &'static [(&'static str, &'static str)],
    status: u16,
    response: &'static [(&'static str, &'static str)],
    expect: Expect,
) -> Row {
    Row {
        what,
        rules: defaults,
        method: Method::GET,
        request,
        status,
        response,
        expect,
    }
}

impl Row {
    fn rules(mut self, rules: Configure) -> Self {
        self.rules = rules;
        self
    }

    fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
}

#[rustfmt::skip]
fn storability_rows() -> Vec<Row> {
    use Expect::{No, Store};
    vec![
        // Freshness sources, in order (§4.2.1).
        row("heuristic 200", &[], 200, &[], Store(60, 0, 0)),
        row("max-age", &[], 200, &[("cache-control", "max-age=120")], Store(120, 0, 0)),
        row("quoted max-age", &[], 200, &[("cache-control", "max-age=\"120\"")], Store(120, 0, 0)),
        row("s-maxage beats max-age", &[], 200, &[("cache-control", "max-age=60, s-maxage=300")], Store(300, 0, 0)),
        row("s-maxage shorter than max-age", &[], 200, &[("cache-control", "max-age=600, s-maxage=30")], Store(30, 0, 0)),
        row("max-age beats Expires", &[], 200, &[("cache-control", "max-age=30"), ("expires", PLUS_1H), ("date", NOW_DATE)], Store(30, 0, 0)),
        row("max-age ignores invalid Expires", &[], 200, &[("cache-control", "max-age=30"), ("expires", "0")], Store(30, 0, 0)),
        row("s-maxage ignores invalid Expires", &[], 200, &[("cache-control", "s-maxage=30"), ("expires", "never")], Store(30, 0, 0)),
        row("Expires - Date", &[], 200, &[("expires", PLUS_1H), ("date", PLUS_2M)], Store(3480, 0, 0)),
        row("Expires - now", &[], 200, &[("expires", PLUS_2M)], Store(120, 0, 0)),
        row("Expires beats heuristic", &[], 200, &[("expires", PLUS_2M), ("date", NOW_DATE)], Store(120, 0, 0)),
        row("Expires rfc850", &[], 200, &[("expires", "Tuesday, 14-Nov-23 22:15:20 GMT"), ("date", NOW_DATE)], Store(120, 0, 0)),
        row("Expires asctime", &[], 200, &[("expires", "Tue Nov 14 22:15:20 2023"), ("date", NOW_DATE)], Store(120, 0, 0)),
        row("Expires in the past", &[], 200, &[("expires", MINUS_1M), ("date", NOW_DATE)], No(Reason::StaleOnArrival)),
        row("Expires equal to Date", &[], 200, &[("expires", NOW_DATE), ("date", NOW_DATE)], No(Reason::StaleOnArrival)),
        row("Expires: 0", &[], 200, &[("expires", "0")], No(Reason::InvalidHeader("expires"))),
        row("Expires garbage", &[], 200, &[("expires", "tomorrow")], No(Reason::InvalidHeader("expires"))),
        row("Expires empty", &[], 200, &[("expires", "")], No(Reason::InvalidHeader("expires"))),
        row("Expires wrong weekday", &[], 200, &[("expires", "Mon, 14 Nov 2023 22:15:20 GMT")], No(Reason::InvalidHeader("expires"))),
        row("two different Expires", &[], 200, &[("expires", PLUS_2M), ("expires", PLUS_1H)], No(Reason::InvalidHeader("expires"))),
        row("two equal Expires", &[], 200, &[("expires", PLUS_2M), ("expires", PLUS_2M)], Store(120, 0, 0)),
        row("invalid Date with Expires", &[], 200, &[("expires", PLUS_2M), ("date", "yesterday")], No(Reason::InvalidHeader("date"))),
        row("two different Dates", &[], 200, &[("expires", PLUS_1H), ("date", NOW_DATE), ("date", PLUS_2M)], No(Reason::InvalidHeader("date"))),
        row("invalid Date without Expires is irrelevant", &[], 200, &[("cache-control", "max-age=10"), ("date", "yesterday")], Store(10, 0, 0)),
        row("Date is not used for age", &[], 200, &[("cache-control", "max-age=100"), ("date", MINUS_1M)], Store(100, 0, 0)),
        // Age (§4.2.3).
        row("Age subtracted", &[], 200, &[("cache-control", "max-age=100"), ("age", "30")], Store(70, 0, 0)),
        row("Age subtracted from heuristic", &[], 200, &[("age", "20")], Store(40, 0, 0)),
        row("Age subtracted from Expires", &[], 200, &[("expires", PLUS_2M), ("age", "20")], Store(100, 0, 0)),
        row("Age equals max-age", &[], 200, &[("cache-control", "max-age=100"), ("age", "100")], No(Reason::StaleOnArrival)),
        row("Age beyond max-age", &[], 200, &[("cache-control", "max-age=100"), ("age", "1000")], No(Reason::StaleOnArrival)),
        row("huge Age saturates", &[], 200, &[("cache-control", "max-age=100"), ("age", "99999999999999999999999")], No(Reason::StaleOnArrival)),
        row("Age with spaces", &[], 200, &[("cache-control", "max-age=100"), ("age", " 30 ")], Store(70, 0, 0)),
        // §5.1: an Age that is not one delta-seconds value is stale on arrival.
        row("negative Age", &[], 200, &[("cache-control", "max-age=100"), ("age", "-5")], No(Reason::StaleOnArrival)),
        row("Age not a number", &[], 200, &[("cache-control", "max-age=100"), ("age", "5s")], No(Reason::StaleOnArrival)),
        row("Age empty", &[], 200, &[("cache-control", "max-age=100"), ("age", "")], No(Reason::StaleOnArrival)),
        row("Age list", &[], 200, &[("cache-control", "max-age=100"), ("age", "5, 6")], No(Reason::StaleOnArrival)),
        row("Age list 0, old", &[], 200, &[("cache-control", "max-age=100"), ("age", "0, old")], No(Reason::StaleOnArrival)),
        row("two different Ages", &[], 200, &[("cache-control", "max-age=100"), ("age", "5"), ("age", "6")], No(Reason::StaleOnArrival)),
        row("two equal Ages", &[], 200, &[("cache-control", "max-age=100"), ("age", "5"), ("age", "5")], No(Reason::StaleOnArrival)),
        row("invalid Age with a stale window", &[], 200, &[("cache-control", "max-age=100, stale-if-error=60"), ("age", "old")], Store(0, 0, 60)),
        row("invalid Age under must-revalidate", &[], 200, &[("cache-control", "max-age=100, must-revalidate, stale-if-error=60"), ("age", "old")], No(Reason::StaleOnArrival)),
        row("Age with OWS", &[], 200, &[("cache-control", "max-age=100"), ("age", " 5 ")], Store(95, 0, 0)),
        // Zero and huge lifetimes, clamps.
        row("max-age=0", &[], 200, &[("cache-control", "max-age=0")], No(Reason::StaleOnArrival)),
        row("s-maxage=0 beats max-age", &[], 200, &[("cache-control", "max-age=60, s-maxage=0")], No(Reason::StaleOnArrival)),
        row("clamped to max_ttl", &[], 200, &[("cache-control", "max-age=999999999")], Store(86_400, 0, 0)),
        row("saturated then clamped", &[], 200, &[("cache-control", "max-age=999999999999999999999")], Store(86_400, 0, 0)),
        row("saturates at 2^31", &[], 200, &[("cache-control", "max-age=999999999999999999999")], Store(2_147_483_648, 0, 0)) .rules(|r| r.max_ttl(Duration::MAX)), row("max_ttl", &[], 200, &[("cache-control", "max-age=600")], Store(300, 0, 0)) .rules(|r| r.max_ttl(secs(300))), row("min_ttl raises short max-age", &[], 200, &[("cache-control", "max-age=5")], Store(30, 0, 0)) .rules(|r| r.min_ttl(secs(30))), row("min_ttl raises max-age=0", &[], 200, &[("cache-control", "max-age=0")], Store(30, 0, 0)) .rules(|r| r.min_ttl(secs(30))), row("min_ttl does not store no-store", &[], 200, &[("cache-control", "no-store")], No(Reason::NoStore)) .rules(|r| r.min_ttl(secs(30))), row("min_ttl does not store invalid Expires", &[], 200, &[("expires", "0")], No(Reason::InvalidHeader("expires"))) .rules(|r| r.min_ttl(secs(30))), row("min_ttl above max_ttl: max wins", &[], 200, &[("cache-control", "max-age=5")], Store(20, 0, 0)) .rules(|r| r.min_ttl(secs(30)).max_ttl(secs(20))), // Heuristic TTLs per status (§4.2.2). row("203 heuristic", &[], 203, &[], Store(60, 0, 0)), row("204 heuristic", &[], 204, &[], Store(60, 0, 0)), row("300 heuristic", &[], 300, &[], Store(60, 0, 0)), row("301 heuristic", &[], 301, &[], Store(60, 0, 0)), row("308 heuristic", &[], 308, &[], Store(60, 0, 0)), row("404 heuristic", &[], 404, &[], Store(10, 0, 0)), row("410 heuristic", &[], 410, &[], Store(10, 0, 0)), row("201 no freshness", &[], 201, &[], No(Reason::NoFreshness)), row("302 no freshness", &[], 302, &[], No(Reason::NoFreshness)), row("307 no freshness", &[], 307, &[], No(Reason::NoFreshness)), row("400 no freshness", &[], 400, &[], No(Reason::NoFreshness)), row("403 no freshness", &[], 403, &[], No(Reason::NoFreshness)), row("405 no freshness", &[], 405, &[], No(Reason::NoFreshness)), row("public alone is not freshness", &[], 302, &[("cache-control", "public")], No(Reason::NoFreshness)),
        row("302 with max-age", &[], 302, &[("cache-control", "max-age=60")], Store(60, 0, 0)),
        row("403 with Expires", &[], 403, &[("expires", PLUS_2M)], Store(120, 0, 0)),
        row("explicit_freshness_only", &[], 200, &[], No(Reason::NoFreshness))
            .rules(|r| r.explicit_freshness_only(true)),
        row("explicit_freshness_only for 404", &[], 404, &[], No(Reason::NoFreshness))
            .rules(|r| r.explicit_freshness_only(true)),
        row("explicit_freshness_only keeps max-age", &[], 200, &[("cache-control", "max-age=9")], Store(9, 0, 0))
            .rules(|r| r.explicit_freshness_only(true)),
        row("status_ttl", &[], 404, &[], Store(5, 0, 0))
            .rules(|r| r.status_ttl(StatusCode::NOT_FOUND, secs(5))),
        row("status_ttl for 404", &[], 404, &[], Store(5, 0, 0)).rules(|r| r.status_ttl(StatusCode::NOT_FOUND, secs(5))), row("status_ttl spares the others", &[], 200, &[], Store(60, 0, 0)) .rules(|r| r.status_ttl(StatusCode::NOT_FOUND, secs(5))), row("status_ttl new status", &[], 302, &[], Store(7, 0, 0)) .rules(|r| r.status_ttl(StatusCode::FOUND, secs(7))), row("status_ttl zero", &[], 200, &[], No(Reason::StaleOnArrival)) .rules(|r| r.status_ttl(StatusCode::OK, Duration::ZERO)), row("remove_status_ttl", &[], 404, &[], No(Reason::NoFreshness)) .rules(|r| r.remove_status_ttl(StatusCode::NOT_FOUND)), row("clear_status_ttls", &[], 200, &[], No(Reason::NoFreshness)) .rules(Rules::clear_status_ttls), row("clear_status_ttls keeps explicit", &[], 200, &[("cache-control", "max-age=9")], Store(9, 0, 0)) .rules(Rules::clear_status_ttls), row("clear then add", &[], 200, &[], Store(3, 0, 0)) .rules(|r| r.clear_status_ttls().status_ttl(StatusCode::OK, secs(3))), row("heuristic capped by max_ttl", &[], 200, &[], Store(20, 0, 0)) .rules(|r| r.max_ttl(secs(20))), // Statuses never stored. row("500 with max-age", &[], 500, &[("cache-control", "max-age=60")], No(Reason::Status)),
        row("502", &[], 502, &[("cache-control", "public, s-maxage=60")], No(Reason::Status)),
        row("503", &[], 503, &[], No(Reason::Status)),
        row("504 with Expires", &[], 504, &[("expires", PLUS_1H)], No(Reason::Status)),
        row("5xx despite status_ttl", &[], 503, &[], No(Reason::Status))
            .rules(|r| r.status_ttl(StatusCode::SERVICE_UNAVAILABLE, secs(5))),
        row("206", &[], 206, &[("cache-control", "max-age=60")], No(Reason::Status)),
        row("206 despite status_ttl", &[], 206, &[], No(Reason::Status))
            .rules(|r| r.status_ttl(StatusCode::PARTIAL_CONTENT, secs(5))),
        row("304", &[], 304, &[("cache-control", "max-age=60")], No(Reason::Status)),
        row("101", &[], 101, &[("cache-control", "max-age=60")], No(Reason::Status)),
        row("103", &[], 103, &[], No(Reason::Status)),
        row("600", &[], 600, &[("cache-control", "max-age=60")], No(Reason::Status)),
        row("999", &[], 999, &[("cache-control", "max-age=60")], No(Reason::Status)),
        // Methods.
        row("HEAD", &[], 200, &[("cache-control", "max-age=60")], No(Reason::Method)) .method(Method::HEAD), row("POST", &[], 200, &[("cache-control", "max-age=60")], No(Reason::Method)) .method(Method::POST), row("PUT", &[], 200, &[("cache-control", "public, max-age=60")], No(Reason::Method)) .method(Method::PUT), // no-store, private, no-cache (§5.2.2.5, §5.2.2.7, §5.2.2.4). row("no-store", &[], 200, &[("cache-control", "no-store")], No(Reason::NoStore)),
        row("no-store beats max-age", &[], 200, &[("cache-control", "max-age=60, no-store")], No(Reason::NoStore)),
        row("no-store beats public", &[], 200, &[("cache-control", "public, no-store, s-maxage=9")], No(Reason::NoStore)),
        row("no-store on second line", &[], 200, &[("cache-control", "max-age=60"), ("cache-control", "no-store")], No(Reason::NoStore)),
        row("no-store with must-understand", &[], 200, &[("cache-control", "must-understand, no-store, max-age=60")], No(Reason::NoStore)),
        row("request no-store", &[("cache-control", "no-store")], 200, &[("cache-control", "max-age=60")], No(Reason::NoStore)),
        row("request no-store inside an unterminated quote", &[("cache-control", "x=\", no-store, max-age=-1")], 200, &[("cache-control", "max-age=60")], Store(60, 0, 0)),
        row("request no-store after garbage", &[("cache-control", "max-age=-1, no-store")], 200, &[("cache-control", "max-age=60")], No(Reason::NoStore)),
        row("request no-cache does not prevent storing", &[("cache-control", "no-cache")], 200, &[("cache-control", "max-age=60")], Store(60, 0, 0)),
        row("private", &[], 200, &[("cache-control", "private, max-age=60")], No(Reason::Private)),
        row("PRIVATE", &[], 200, &[("cache-control", "PRIVATE")], No(Reason::Private)),
        row("private qualified: stored without the field", &[], 200, &[("cache-control", "private=\"set-cookie\", max-age=60")], Store(60, 0, 0)),
        row("private beats public", &[], 200, &[("cache-control", "public, private, s-maxage=60")], No(Reason::Private)),
        row("no-cache", &[], 200, &[("cache-control", "no-cache, max-age=60")], No(Reason::NoCache)),
        row("no-cache qualified: stored without the field", &[], 200, &[("cache-control", "no-cache=\"set-cookie\", max-age=60")], Store(60, 0, 0)),
        row("no-cache with public", &[], 200, &[("cache-control", "public, no-cache")], No(Reason::NoCache)),
        row("pragma no-cache alone", &[], 200, &[("pragma", "no-cache")], No(Reason::NoCache)),
        row("pragma no-cache with Expires", &[], 200, &[("pragma", "no-cache"), ("expires", PLUS_2M)], No(Reason::NoCache)),
        row("pragma under cache-control", &[], 200, &[("pragma", "no-cache"), ("cache-control", "max-age=60")], Store(60, 0, 0)),
        // Invalid Cache-Control (§4.2.1).
        row("max-age=abc", &[], 200, &[("cache-control", "max-age=abc")], No(Reason::InvalidHeader("cache-control"))),
        row("max-age=-1", &[], 200, &[("cache-control", "max-age=-1")], No(Reason::InvalidHeader("cache-control"))),
        row("conflicting max-age", &[], 200, &[("cache-control", "max-age=60, max-age=120")], No(Reason::InvalidHeader("cache-control"))),
        row("conflicting max-age across lines", &[], 200, &[("cache-control", "max-age=60"), ("cache-control", "max-age=120")], No(Reason::InvalidHeader("cache-control"))),
        row("repeated equal max-age", &[], 200, &[("cache-control", "max-age=60, max-age=60")], Store(60, 0, 0)),
        row("conflicting s-maxage", &[], 200, &[("cache-control", "s-maxage=1, s-maxage=2")], No(Reason::InvalidHeader("cache-control"))),
        row("garbage", &[], 200, &[("cache-control", "max-age=60; public")], No(Reason::InvalidHeader("cache-control"))),
        row("invalid before no-store", &[], 200, &[("cache-control", "no-store, max-age=x")], No(Reason::InvalidHeader("cache-control"))),
        row("status checked before cache-control", &[], 500, &[("cache-control", "max-age=x")], No(Reason::Status)),
        row("unknown extension ignored", &[], 200, &[("cache-control", "max-age=60, x-ext=\"a, b\", community=UCI")], Store(60, 0, 0)),
        // Authorization (§3.5): applies even when credentials are keyed.
        row("authorization", &[("authorization", "Bearer t")], 200, &[("cache-control", "max-age=60")], No(Reason::Authorization)),
        row("authorization heuristic", &[("authorization", "Bearer t")], 200, &[], No(Reason::Authorization)),
        row("authorization public", &[("authorization", "Bearer t")], 200, &[("cache-control", "public, max-age=60")], Store(60, 0, 0)),
        row("authorization s-maxage", &[("authorization", "Bearer t")], 200, &[("cache-control", "s-maxage=60")], Store(60, 0, 0)),
        row("authorization must-revalidate", &[("authorization", "Bearer t")], 200, &[("cache-control", "must-revalidate, max-age=60, stale-if-error=60")], Store(60, 0, 0)),
        row("authorization proxy-revalidate is not enough", &[("authorization", "Bearer t")], 200, &[("cache-control", "proxy-revalidate, max-age=60")], No(Reason::Authorization)),
        row("authorization keyed", &[("authorization", "Bearer t")], 200, &[("cache-control", "max-age=60")], No(Reason::Authorization)) .rules(|r| r.credentials_in_key([Credential::Authorization, Credential::Cookie])), row("authorization keyed public", &[("authorization", "Bearer t")], 200, &[("cache-control", "public, max-age=60")], Store(60, 0, 0)) .rules(|r| r.credentials_in_key([Credential::Authorization, Credential::Cookie])), row("authorization private", &[("authorization", "Bearer t")], 200, &[("cache-control", "private, max-age=60")], No(Reason::Private)),
        // Cookie (not keyed: only if the response is explicitly shareable).
        row("cookie", &[("cookie", "id=1")], 200, &[("cache-control", "max-age=60")], No(Reason::Cookie)),
        row("cookie heuristic", &[("cookie", "id=1")], 200, &[], No(Reason::Cookie)),
        row("cookie public", &[("cookie", "id=1")], 200, &[("cache-control", "public, max-age=60")], Store(60, 0, 0)),
        row("cookie s-maxage", &[("cookie", "id=1")], 200, &[("cache-control", "s-maxage=60")], Store(60, 0, 0)),
        row("cookie keyed", &[("cookie", "id=1")], 200, &[("cache-control", "max-age=60")], Store(60, 0, 0)) .rules(|r| r.credentials_in_key([Credential::Authorization, Credential::Cookie])), // Set-Cookie. row("set-cookie", &[], 200, &[("cache-control", "public, max-age=60"), ("set-cookie", "id=1")], No(Reason::SetCookie)),
        row("set-cookie heuristic", &[], 200, &[("set-cookie", "id=1")], No(Reason::SetCookie)),
        row("set-cookie allowed", &[], 200, &[("cache-control", "max-age=60"), ("set-cookie", "id=1")], Store(60, 0, 0)) .rules(|r| r.store_set_cookie(true)), row("set-cookie allowed, still private", &[], 200, &[("cache-control", "private"), ("set-cookie", "id=1")], No(Reason::Private)) .rules(|r| r.store_set_cookie(true)), // Vary (§4.1). row("vary *", &[], 200, &[("cache-control", "max-age=60"), ("vary", "*")], No(Reason::VaryAny)),
        row("vary list with *", &[], 200, &[("cache-control", "max-age=60"), ("vary", "accept"), ("vary", "*")], No(Reason::VaryAny)),
        row("vary malformed", &[], 200, &[("cache-control", "max-age=60"), ("vary", "accept encoding")], No(Reason::Vary)),
        row("vary accepted", &[], 200, &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")], Store(60, 0, 0)),
        // Stale windows (RFC 5861, §4.2.4).
        row("stale windows", &[], 200, &[("cache-control", "max-age=60, stale-while-revalidate=30, stale-if-error=600")], Store(60, 30, 600)),
        row("stale windows with heuristic", &[], 200, &[("cache-control", "stale-while-revalidate=30")], Store(60, 30, 0)),
        row("stale windows with Expires", &[], 200, &[("cache-control", "stale-if-error=30"), ("expires", PLUS_2M)], Store(120, 0, 30)),
        row("must-revalidate: no stale", &[], 200, &[("cache-control", "max-age=60, must-revalidate, stale-while-revalidate=30, stale-if-error=600")], Store(60, 0, 0)),
        row("proxy-revalidate: no stale", &[], 200, &[("cache-control", "max-age=60, proxy-revalidate, stale-while-revalidate=30, stale-if-error=600")], Store(60, 0, 0)),
        row("s-maxage: no stale", &[], 200, &[("cache-control", "s-maxage=60, stale-while-revalidate=30, stale-if-error=600")], Store(60, 0, 0)),
        row("stale windows capped", &[], 200, &[("cache-control", "max-age=60, stale-while-revalidate=99999999, stale-if-error=99999999")], Store(60, 86_400, 86_400)),
        row("stale windows capped by max_ttl", &[], 200, &[("cache-control", "max-age=60, stale-while-revalidate=999")], Store(50, 50, 0)) .rules(|r| r.max_ttl(secs(50))), row("invalid stale window", &[], 200, &[("cache-control", "max-age=60, stale-while-revalidate")], No(Reason::InvalidHeader("cache-control"))),
        row("stale on arrival, kept for its window", &[], 200, &[("cache-control", "max-age=10, stale-while-revalidate=60"), ("age", "10")], Store(0, 60, 0)),
        row("stale on arrival, no window", &[], 200, &[("cache-control", "max-age=10"), ("age", "10")], No(Reason::StaleOnArrival)),
        row("stale on arrival, s-maxage forbids stale", &[], 200, &[("cache-control", "s-maxage=10, stale-while-revalidate=60"), ("age", "10")], No(Reason::StaleOnArrival)),
        // Heuristic freshness from Last-Modified (§4.2.2): 10 % of Date − Last-Modified.
        row("Last-Modified heuristic", &[], 200, &[("date", NOW_DATE), ("last-modified", MINUS_1000S)], Store(100, 0, 0)),
        row("Last-Modified heuristic without Date", &[], 200, &[("last-modified", MINUS_1000S)], Store(100, 0, 0)),
        row("Last-Modified heuristic minus Age", &[], 200, &[("date", NOW_DATE), ("last-modified", MINUS_1000S), ("age", "30")], Store(70, 0, 0)),
        row("Last-Modified heuristic capped by max_ttl", &[], 200, &[("date", NOW_DATE), ("last-modified", MINUS_1000S)], Store(40, 0, 0)).rules(|r| r.max_ttl(secs(40))),
        row("Last-Modified heuristic raised to min_ttl", &[], 200, &[("date", NOW_DATE), ("last-modified", MINUS_1000S)], Store(300, 0, 0)).rules(|r| r.min_ttl(secs(300))),
        row("a 404 with Last-Modified keeps the negative TTL", &[], 404, &[("date", NOW_DATE), ("last-modified", MINUS_1000S)], Store(10, 0, 0)),
        row("no Last-Modified heuristic when only explicit freshness is stored", &[], 200, &[("date", NOW_DATE), ("last-modified", MINUS_1000S)], No(Reason::NoFreshness)).rules(|r| r.explicit_freshness_only(true)),
        row("status_ttl wins over Last-Modified", &[], 200, &[("date", NOW_DATE), ("last-modified", MINUS_1000S)], Store(7, 0, 0)).rules(|r| r.status_ttl(StatusCode::OK, secs(7))),
        row("Last-Modified on a 302: not heuristically cacheable", &[], 302, &[("date", NOW_DATE), ("last-modified", MINUS_1000S)], No(Reason::NoFreshness)),
        row("Last-Modified after Date: the default", &[], 200, &[("date", NOW_DATE), ("last-modified", PLUS_2M)], Store(60, 0, 0)),
        row("invalid Last-Modified: the default", &[], 200, &[("date", NOW_DATE), ("last-modified", "yesterday")], Store(60, 0, 0)),
        row("max-age wins over Last-Modified", &[], 200, &[("cache-control", "max-age=9"), ("last-modified", MINUS_1000S)], Store(9, 0, 0)),
        row("Expires wins over Last-Modified", &[], 200, &[("date", NOW_DATE), ("expires", PLUS_2M), ("last-modified", MINUS_1000S)], Store(120, 0, 0)),
        // Qualified no-cache and private (§5.2.2.4, §5.2.2.7): stored without the fields.
        row("no-cache naming a field", &[], 200, &[("cache-control", r#"max-age=60, no-cache="x-a""#)], Store(60, 0, 0)),
        row("private naming a field", &[], 200, &[("cache-control", r#"max-age=60, private="x-a""#)], Store(60, 0, 0)),
        row("private naming Set-Cookie", &[], 200, &[("cache-control", r#"max-age=60, private="set-cookie""#), ("set-cookie", "a=b")], Store(60, 0, 0)),
        row("no-cache naming another field keeps Set-Cookie out", &[], 200, &[("cache-control", r#"max-age=60, no-cache="x-a""#), ("set-cookie", "a=b")], No(Reason::SetCookie)),
        row("empty qualifier is unqualified private", &[], 200, &[("cache-control", r#"max-age=60, private="""#)], No(Reason::Private)),
        row("qualified and unqualified no-cache", &[], 200, &[("cache-control", r#"max-age=60, no-cache="x-a", no-cache"#)], No(Reason::NoCache)),
        // Precedence between reasons.
        row("method before status", &[], 500, &[], No(Reason::Method)).method(Method::POST),
        row("status before cache-control", &[], 206, &[("cache-control", "no-store")], No(Reason::Status)),
        row("no-store before authorization", &[("authorization", "t")], 200, &[("cache-control", "no-store")], No(Reason::NoStore)),
        row("authorization before set-cookie", &[("authorization", "t")], 200, &[("set-cookie", "a=b")], No(Reason::Authorization)),
        row("set-cookie before vary", &[], 200, &[("set-cookie", "a=b"), ("vary", "*")], No(Reason::SetCookie)),
        row("vary before freshness", &[], 302, &[("vary", "*")], No(Reason::VaryAny)),
    ]
}

#[test]
fn response_storability() {
    for row in storability_rows() {
        let rules = (row.rules)(Rules::default());
        let got = storability(
            &rules,
            &row.method,
            &headers(row.request),
            StatusCode::from_u16(row.status).unwrap(),
            &headers(row.response),
            now(),
        );
        match (&row.expect, &got) {
            (Expect::Store(ttl, swr, sie), Storability::Store(f)) => {
                assert_eq!(
                    (f.ttl, f.stale_while_revalidate, f.stale_if_error),
                    (secs(*ttl), secs(*swr), secs(*sie)),
                    "{}",
                    row.what
                );
            }
            (Expect::No(reason), Storability::DoNotStore(got_reason)) => {
                assert_eq!(reason, got_reason, "{}", row.what);
            }
            _ => panic!("{}: expected {:?}, got {got:?}", row.what, row.expect),
        }
    }
}

#[test]
fn stored_freshness_carries_vary_and_age() {
    let rules = Rules::default();
    let request = headers(&[("accept-encoding", "gzip, br"), ("accept-language", "en")]);
    let response = headers(&[
        ("cache-control", "max-age=100"),
        ("age", "25"),
        ("vary", "Accept-Encoding"),
        ("vary", "accept-language, ACCEPT-ENCODING"),
    ]);
    let Storability::Store(f) = storability(
        &rules,
        &Method::GET,
        &request,
        StatusCode::OK,
        &response,
        now(),
    ) else {
        panic!("not stored");
    };
    assert_eq!(f.ttl, secs(75));
    assert_eq!(f.initial_age, secs(25));
    let v = f.vary.expect("varies");
    let names: Vec<&str> = v.names().iter().map(HeaderName::as_str).collect();
    assert_eq!(names, ["accept-encoding", "accept-language"]);
    let key = v.capture(&request);
    assert!(key.matches(&headers(&[
        ("accept-encoding", "gzip,br"),
        ("accept-language", "en")
    ])));
    assert!(!key.matches(&headers(&[("accept-encoding", "gzip, br")])));

    let plain = storability(
        &rules,
        &Method::GET,
        &request,
        StatusCode::OK,
        &headers(&[("cache-control", "max-age=100")]),
        now(),
    );
    let Storability::Store(f) = plain else {
        panic!("not stored");
    };
    assert_eq!(f.vary, None);
    assert_eq!(f.initial_age, Duration::ZERO);
    // An empty Vary varies on nothing.
    let empty = storability(
        &rules,
        &Method::GET,
        &request,
        StatusCode::OK,
        &headers(&[("cache-control", "max-age=100"), ("vary", " , ")]),
        now(),
    );
    assert!(matches!(
        empty,
        Storability::Store(Freshness { vary: None, .. })
    ));
}

fn is_sf_token(s: &str) -> bool {
    // RFC 8941 §3.3.4: ( ALPHA / "*" ) *( tchar / ":" / "/" )
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'*'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b))
}

#[test]
fn reasons_are_distinct_cache_status_tokens() {
    let all = [
        Reason::Method,
        Reason::Status,
        Reason::NoStore,
        Reason::Private,
        Reason::NoCache,
        Reason::VaryAny,
        Reason::Vary,
        Reason::SetCookie,
        Reason::Authorization,
        Reason::Cookie,
        Reason::InvalidHeader("cache-control"),
        Reason::InvalidHeader("expires"),
        Reason::InvalidHeader("date"),
        Reason::InvalidHeader("age"),
        Reason::InvalidHeader("x-other"),
        Reason::StaleOnArrival,
        Reason::NoFreshness,
    ];
    let tokens: Vec<&str> = all.iter().map(|r| r.as_str()).collect();
    for (i, t) in tokens.iter().enumerate() {
        assert!(is_sf_token(t), "{t}");
        assert!(!tokens[..i].contains(t), "{t} twice");
        assert_eq!(all[i].to_string(), *t);
    }
}

// ---------------------------------------------------------------------------
// Header values the service sends
// ---------------------------------------------------------------------------

#[test]
fn age_header_values() {
    let rows: &[(Duration, &str)] = &[
        (Duration::ZERO, "0"),
        (Duration::from_millis(999), "0"),
        (Duration::from_millis(1500), "1"),
        (secs(86_400), "86400"),
        (secs(2_147_483_648), "2147483648"),
        (secs(2_147_483_649), "2147483648"),
        (Duration::MAX, "2147483648"),
    ];
    for (age, want) in rows {
        assert_eq!(age_header_value(*age), *want, "{age:?}");
    }
}

#[test]
fn http_dates() {
    let rows: &[(SystemTime, &str)] = &[
        (now(), NOW_DATE),
        (now() + Duration::from_millis(999), NOW_DATE),
        (UNIX_EPOCH, "Thu, 01 Jan 1970 00:00:00 GMT"),
        (UNIX_EPOCH - secs(1), "Thu, 01 Jan 1970 00:00:00 GMT"),
        (
            UNIX_EPOCH + secs(253_402_300_799),
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ),
        (
            UNIX_EPOCH + secs(253_402_300_800 + 86_400),
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ),
    ];
    for (time, want) in rows {
        let value = http_date(*time);
        assert_eq!(value, *want);
        assert!(parse_http_date(&value).is_some());
    }
}

#[test]
fn http_date_parsing() {
    let rows: &[(&[u8], Option<u64>)] = &[
        (b"Tue, 14 Nov 2023 22:13:20 GMT", Some(NOW_SECS)),
        (b"Tuesday, 14-Nov-23 22:13:20 GMT", Some(NOW_SECS)),
        (b"Tue Nov 14 22:13:20 2023", Some(NOW_SECS)),
        (b" Tue, 14 Nov 2023 22:13:20 GMT ", Some(NOW_SECS)),
        (b"0", None),
        (b"-1", None),
        (b"", None),
        (b"Tue, 14 Nov 2023 22:13:20 UTC", None),
        (b"Tue, 14 Nov 2023 25:13:20 GMT", None),
        (b"Tue, 31 Feb 2023 22:13:20 GMT", None),
        (b"Wed, 31 Dec 1969 23:59:59 GMT", None),
        (b"Tue, 14 Nov 2023 22:13:20 GMT\xff", None),
    ];
    for (bytes, want) in rows {
        let value = HeaderValue::from_bytes(bytes).unwrap();
        assert_eq!(
            parse_http_date(&value),
            want.map(|s| UNIX_EPOCH + secs(s)),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}
