//! Property tests: the header parsers never panic on any bytes a `HeaderValue`
//! can hold, their results stay within the documented bounds, and the
//! lenient, strict and streaming code paths agree with each other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use proptest::collection::vec;
use proptest::prelude::*;
use shared_calls_http::cache_control::{
    CacheControl, DELTA_SECONDS_MAX, MAX_VARY_NAMES, VaryError, vary,
};
use shared_calls_http::freshness::{
    Credential, RequestDecision, Rules, Storability, age_header_value, classify_request, http_date,
    parse_http_date, storability,
};

const MAX_DELTA: Duration = Duration::from_secs(DELTA_SECONDS_MAX);

/// Pieces that make near-valid header values likely.
const FRAGMENTS: &[&str] = &[
    "max-age",
    "s-maxage",
    "no-store",
    "no-cache",
    "private",
    "public",
    "must-revalidate",
    "proxy-revalidate",
    "immutable",
    "stale-while-revalidate",
    "stale-if-error",
    "max-stale",
    "min-fresh",
    "only-if-cached",
    "MAX-AGE",
    "No-Cache",
    "x-ext",
    "=",
    "=",
    ",",
    ",",
    ", ",
    "\"",
    "\"",
    "\\",
    " ",
    "\t",
    "0",
    "1",
    "60",
    "-1",
    "+5",
    "2147483648",
    "99999999999999999999999999",
    "*",
    "accept",
    "Accept-Encoding",
    "cookie",
    ";",
    "a b",
    "GMT",
    "Tue, 14 Nov 2023 22:13:20 GMT",
    "Thu, 01 Jan 1970 00:00:00 GMT",
    "gzip",
    "br",
];

/// Maps any byte onto the bytes `HeaderValue::from_bytes` accepts, weighted
/// towards the ones that matter to the parsers (cheaper to generate than a
/// per-byte `prop_oneof!`).
fn to_value_byte(b: u8) -> u8 {
    const SPECIAL: &[u8] = b" \t,=\"\\-*;09aZ";
    match b {
        0..=95 => SPECIAL[usize::from(b) % SPECIAL.len()],
        96..=103 => b'\t',
        104..=223 => 0x20 + (b - 104) % 0x5f,
        _ => 0x80 + (b - 224) * 4,
    }
}

fn value_bytes(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), len).prop_map(|bytes| bytes.into_iter().map(to_value_byte).collect())
}

fn soup() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            3 => prop::sample::select(FRAGMENTS).prop_map(|s| s.as_bytes().to_vec()),
            1 => value_bytes(1..8),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

/// Arbitrary header value bytes: mostly near-valid, sometimes random, sometimes
/// very long (a random or near-valid piece repeated).
fn value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        6 => soup(),
        3 => value_bytes(0..256),
        1 => (prop_oneof![soup(), value_bytes(1..64)], 64usize..1_024)
            .prop_map(|(piece, times)| piece.repeat(times)),
    ]
    .prop_filter_map("HeaderValue rejects it", |bytes| {
        HeaderValue::from_bytes(&bytes).ok()
    })
}

fn map_of(name: &'static str, values: Vec<HeaderValue>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for v in values {
        map.append(name, v);
    }
    map
}

fn lines() -> impl Strategy<Value = Vec<HeaderValue>> {
    vec(value(), 0..4)
}

fn assert_bounded(cc: &CacheControl) {
    for d in [
        cc.max_age(),
        cc.s_maxage(),
        cc.stale_while_revalidate(),
        cc.stale_if_error(),
        cc.min_fresh(),
    ]
    .into_iter()
    .flatten()
    {
        assert!(d <= MAX_DELTA, "{d:?}");
    }
    if let Some(d) = cc.max_stale() {
        assert!(d <= MAX_DELTA || d == Duration::MAX, "{d:?}");
    }
}

/// A header map built from a few of `names`, each with arbitrary values.
fn headers_among(names: &'static [&'static str]) -> impl Strategy<Value = HeaderMap> {
    vec((prop::sample::select(names), value()), 0..8).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, v) in pairs {
            map.append(HeaderName::from_static(name), v);
        }
        map
    })
}

const REQUEST_NAMES: &[&str] = &[
    "cache-control",
    "pragma",
    "authorization",
    "cookie",
    "range",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "accept",
    "accept-encoding",
];

const RESPONSE_NAMES: &[&str] = &[
    "cache-control",
    "cache-control",
    "expires",
    "date",
    "age",
    "vary",
    "pragma",
    "set-cookie",
];

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::OPTIONS,
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cache_control_never_panics_and_is_bounded(values in lines()) {
        let map = map_of("cache-control", values);
        let lenient = CacheControl::from_headers_lenient(&map);
        assert_bounded(&lenient);
        if let Ok(strict) = CacheControl::from_headers(&map) {
            assert_bounded(&strict);
            // Where the strict parser succeeds, leniency changes nothing.
            prop_assert_eq!(strict, lenient);
        }
    }

    #[test]
    fn cache_control_lines_are_one_list(values in lines()) {
        // Valid lines parse as their comma-joined single line does
        // (RFC 9110 §5.3).
        let map = map_of("cache-control", values.clone());
        let joined: Vec<u8> = values
            .iter()
            .map(HeaderValue::as_bytes)
            .collect::<Vec<_>>()
            .join(&b","[..]);
        let one = map_of("cache-control", vec![HeaderValue::from_bytes(&joined).unwrap()]);
        if let Ok(cc) = CacheControl::from_headers(&map) {
            prop_assert_eq!(CacheControl::from_headers(&one), Ok(cc));
        }
    }

    #[test]
    fn cache_control_renders_and_parses_back(
        max_age in proptest::option::of(0u64..5_000_000_000),
        s_maxage in proptest::option::of(0u64..100_000),
        swr in proptest::option::of(0u64..100_000),
        flags in vec(any::<bool>(), 6),
        quote in any::<bool>(),
        upper in any::<bool>(),
        space in prop::sample::select(vec!["", " ", "\t", "  \t "]),
        split in any::<bool>(),
    ) {
        let mut parts: Vec<String> = Vec::new();
        let names = ["no-store", "no-cache", "private", "public", "must-revalidate", "immutable"];
        for (name, on) in names.iter().zip(&flags) {
            if *on {
                parts.push((*name).to_owned());
            }
        }
        for (name, v) in [("max-age", max_age), ("s-maxage", s_maxage), ("stale-while-revalidate", swr)] {
            if let Some(v) = v {
                parts.push(if quote { format!("{name}=\"{v}\"") } else { format!("{name}={v}") });
            }
        }
        let parts: Vec<String> = parts
            .into_iter()
            .map(|p| if upper { p.to_ascii_uppercase() } else { p })
            .collect();
        let sep = format!("{space},{space}");
        let values: Vec<HeaderValue> = if split {
            parts.iter().map(|p| HeaderValue::from_str(p).unwrap()).collect()
        } else {
            vec![HeaderValue::from_str(&format!("{space}{}{space}", parts.join(&sep))).unwrap()]
        };
        let cc = CacheControl::from_headers(&map_of("cache-control", values)).unwrap();
        let sat = |v: Option<u64>| v.map(|v| Duration::from_secs(v.min(DELTA_SECONDS_MAX)));
        prop_assert_eq!(cc.max_age(), sat(max_age));
        prop_assert_eq!(cc.s_maxage(), sat(s_maxage));
        prop_assert_eq!(cc.stale_while_revalidate(), sat(swr));
        prop_assert_eq!(
            [cc.no_store(), cc.no_cache(), cc.private(), cc.public(), cc.must_revalidate(), cc.immutable()],
            [flags[0], flags[1], flags[2], flags[3], flags[4], flags[5]]
        );
    }

    #[test]
    fn vary_never_panics_and_is_bounded(values in lines(), request in headers_among(REQUEST_NAMES)) {
        let map = map_of("vary", values);
        if let Ok(v) = vary(&map) {
            prop_assert!(v.names().len() <= MAX_VARY_NAMES);
            for (i, name) in v.names().iter().enumerate() {
                prop_assert_eq!(name.as_str(), name.as_str().to_ascii_lowercase());
                prop_assert!(!v.names()[..i].contains(name));
            }
            let key = v.capture(&request);
            prop_assert!(key.matches(&request));
        }
    }

    #[test]
    fn vary_handles_hundreds_of_names(
        count in 0usize..600,
        distinct in 1usize..80,
        per_line in 1usize..200,
    ) {
        let names: Vec<String> = (0..count).map(|i| format!("X-Header-{}", i % distinct)).collect();
        let lines: Vec<HeaderValue> = names
            .chunks(per_line)
            .map(|chunk| HeaderValue::from_str(&chunk.join(", ")).unwrap())
            .collect();
        let got = vary(&map_of("vary", lines));
        let unique = count.min(distinct);
        if unique <= MAX_VARY_NAMES {
            prop_assert_eq!(got.map(|v| v.names().len()), Ok(unique));
        } else {
            prop_assert_eq!(got, Err(VaryError::TooMany));
        }
    }

    #[test]
    fn vary_key_matches_exactly_when_captures_are_equal(
        stored in vec(proptest::option::of(vec(prop::sample::select(vec!["gzip", "br", " ", ",", "\t", "a", ""]), 0..6)), 2),
        later in vec(proptest::option::of(vec(prop::sample::select(vec!["gzip", "br", " ", ",", "\t", "a", ""]), 0..6)), 2),
    ) {
        let v = vary(&map_of("vary", vec![HeaderValue::from_static("accept-encoding, accept-language")])).unwrap();
        let build = |spec: &Vec<Option<Vec<&str>>>| {
            let mut map = HeaderMap::new();
            for (name, parts) in ["accept-encoding", "accept-language"].iter().zip(spec) {
                if let Some(parts) = parts {
                    // Up to two lines per header.
                    let (a, b) = parts.split_at(parts.len() / 2);
                    map.append(*name, HeaderValue::from_str(&a.concat()).unwrap());
                    if !b.is_empty() {
                        map.append(*name, HeaderValue::from_str(&b.concat()).unwrap());
                    }
                }
            }
            map
        };
        let (first, second) = (build(&stored), build(&later));
        let key = v.capture(&first);
        prop_assert!(key.matches(&first));
        prop_assert_eq!(key.matches(&second), key == v.capture(&second));
    }

    #[test]
    fn http_date_parsing_never_panics(value in value()) {
        if let Some(t) = parse_http_date(&value) {
            prop_assert!(t >= UNIX_EPOCH);
        }
    }

    #[test]
    fn http_dates_round_trip(secs in 0u64..=253_402_300_799, nanos in 0u32..1_000_000_000) {
        let t = UNIX_EPOCH + Duration::new(secs, nanos);
        let value = http_date(t);
        prop_assert_eq!(parse_http_date(&value), Some(UNIX_EPOCH + Duration::from_secs(secs)));
    }

    #[test]
    fn http_date_never_panics(secs in any::<u64>(), before in any::<bool>()) {
        let d = Duration::from_secs(secs % (1 << 40));
        let t = if before { UNIX_EPOCH.checked_sub(d) } else { UNIX_EPOCH.checked_add(d) };
        if let Some(t) = t {
            prop_assert!(parse_http_date(&http_date(t)).is_some());
        }
    }

    #[test]
    fn age_values_are_delta_seconds(secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
        let value = age_header_value(Duration::new(secs, nanos));
        let n: u64 = value.to_str().unwrap().parse().unwrap();
        prop_assert_eq!(n, secs.min(DELTA_SECONDS_MAX));
    }

    #[test]
    fn classify_request_never_panics(
        method in method(),
        request in headers_among(REQUEST_NAMES),
        in_key in any::<bool>(),
        honour in any::<bool>(),
    ) {
        let keyed = if in_key { vec![Credential::Authorization, Credential::Cookie] } else { Vec::new() };
        let rules = Rules::default().credentials_in_key(keyed).honour_request_no_cache(honour);
        let decision = classify_request(&rules, &method, &request);
        if decision == RequestDecision::Collapse {
            prop_assert!(method == Method::GET || method == Method::HEAD);
            prop_assert!(!request.contains_key("range"));
            prop_assert!(!request.contains_key("if-match"));
            prop_assert!(in_key || !(request.contains_key("authorization") || request.contains_key("cookie")));
            prop_assert!(!CacheControl::from_headers_lenient(&request).no_store());
        }
    }

    #[test]
    fn storability_never_panics_and_is_bounded(
        method in method(),
        request in headers_among(REQUEST_NAMES),
        status in 100u16..1000,
        response in headers_among(RESPONSE_NAMES),
        now_secs in 0u64..4_000_000_000,
        max_ttl in 1u64..200_000,
        min_ttl in 0u64..100,
        store_set_cookie in any::<bool>(),
    ) {
        let rules = Rules::default()
            .max_ttl(Duration::from_secs(max_ttl))
            .min_ttl(Duration::from_secs(min_ttl))
            .store_set_cookie(store_set_cookie);
        let status = StatusCode::from_u16(status).unwrap();
        let now: SystemTime = UNIX_EPOCH + Duration::from_secs(now_secs);
        let got = storability(&rules, &method, &request, status, &response, now);
        if let Storability::Store(f) = got {
            let max = Duration::from_secs(max_ttl);
            prop_assert!(f.ttl > Duration::ZERO && f.ttl <= max);
            prop_assert!(f.stale_while_revalidate <= max && f.stale_if_error <= max);
            prop_assert!(f.initial_age <= MAX_DELTA);
            prop_assert!(method == Method::GET);
            prop_assert!(!status.is_server_error() && !status.is_informational());
            prop_assert!(status != StatusCode::PARTIAL_CONTENT && status != StatusCode::NOT_MODIFIED);
            let cc = CacheControl::from_headers(&response).unwrap();
            prop_assert!(!cc.no_store() && !cc.private() && !cc.no_cache());
            prop_assert!(!CacheControl::from_headers_lenient(&request).no_store());
            prop_assert!(store_set_cookie || !response.contains_key("set-cookie"));
            if request.contains_key("authorization") {
                prop_assert!(cc.public() || cc.s_maxage().is_some() || cc.must_revalidate());
            }
            if let Some(v) = &f.vary {
                prop_assert!(!v.is_empty() && v.names().len() <= MAX_VARY_NAMES);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn very_long_delta_seconds_saturate(digits in "[1-9][0-9]{0,20000}") {
        let value = HeaderValue::from_str(&format!("max-age={digits}, s-maxage=\"{digits}\"")).unwrap();
        let cc = CacheControl::from_headers(&map_of("cache-control", vec![value])).unwrap();
        let expected = digits
            .parse::<u64>()
            .map_or(DELTA_SECONDS_MAX, |n| n.min(DELTA_SECONDS_MAX));
        prop_assert_eq!(cc.max_age(), Some(Duration::from_secs(expected)));
        prop_assert_eq!(cc.s_maxage(), Some(Duration::from_secs(expected)));
    }

    #[test]
    fn very_long_lists_are_handled(count in 1_000usize..5_000, garbage in any::<bool>()) {
        let mut text = vec!["x-ext=\"a, b\""; count].join(", ");
        if garbage {
            text.push_str(", max-age=");
        } else {
            text.push_str(", max-age=5");
        }
        let map = map_of("cache-control", vec![HeaderValue::from_str(&text).unwrap()]);
        let strict = CacheControl::from_headers(&map);
        prop_assert_eq!(strict.is_err(), garbage);
        let lenient = CacheControl::from_headers_lenient(&map);
        prop_assert_eq!(lenient.max_age(), (!garbage).then(|| Duration::from_secs(5)));
    }
}
