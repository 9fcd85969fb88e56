//! The request side of RFC 9111 through the layer: clients' own conditional
//! requests (§4.3.2), `only-if-cached` (§5.2.1.7), the request freshness
//! directives (§5.2.1.1–3) and invalidation of an unsafe request's
//! `Location` / `Content-Location` (§4.4).

mod support;

use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use shared_calls_http::{KeyBuilder, SharedCallsLayer};
use support::{Got, Origin, Seen, get, layer, request, respond, send};
use tower::Layer;

const ETAG: &str = "\"v1\"";
const DATE: &str = "Sun, 06 Dec 2026 01:00:00 GMT";
const EXPIRES: &str = "Sun, 06 Dec 2026 01:01:00 GMT";
const LAST_MODIFIED: &str = "Sat, 05 Dec 2026 12:00:00 GMT";

/// An origin answering `200` with an `ETag`, a minute of freshness and the
/// other fields a `304` carries (and some it does not).
fn tagged_origin() -> Origin {
    Origin::new(|_, _| {
        respond(
            StatusCode::OK,
            &[
                ("cache-control", "max-age=60"),
                ("etag", ETAG),
                ("date", DATE),
                ("expires", EXPIRES),
                ("last-modified", LAST_MODIFIED),
                ("vary", "accept-encoding"),
                ("content-location", "/doc.en"),
                ("content-type", "text/plain"),
                ("x-origin", "kept in the 200 only"),
            ],
            "the document",
        )
    })
}

/// The sorted names of a map's fields.
fn names(headers: &HeaderMap) -> Vec<&str> {
    let mut names: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
    names.sort_unstable();
    names
}

/// The fields the origin received on a shared call: the client's
/// conditions never among them.
fn assert_unconditional(seen: &Seen) {
    assert_eq!(seen.method, Method::GET);
    for field in ["if-none-match", "if-modified-since"] {
        assert_eq!(seen.header(field), None, "{field} reached the origin");
    }
}

/// Asserts a `304` made by the cache for the tagged origin's answer.
fn assert_not_modified(got: &Got) {
    assert_eq!(got.status, StatusCode::NOT_MODIFIED);
    assert!(got.body.is_empty());
    assert_eq!(
        names(&got.headers),
        [
            "age",
            "cache-control",
            "cache-status",
            "content-location",
            "date",
            "etag",
            "expires",
            "vary"
        ]
    );
    assert_eq!(got.header("etag"), Some(ETAG));
    assert_eq!(got.header("cache-control"), Some("max-age=60"));
    assert_eq!(got.header("date"), Some(DATE));
    assert_eq!(got.header("expires"), Some(EXPIRES));
    assert_eq!(got.header("vary"), Some("accept-encoding"));
    assert_eq!(got.header("content-location"), Some("/doc.en"));
}

/// Asserts the full stored answer of the tagged origin.
fn assert_full(got: &Got) {
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.text(), "the document");
    assert_eq!(got.header("x-origin"), Some("kept in the 200 only"));
    assert_eq!(got.header("content-length"), Some("12"));
}

const URI: &str = "http://a.test/doc";

#[tokio::test(start_paused = true)]
async fn a_matching_if_none_match_gets_a_304_from_the_stored_answer() {
    let origin = tagged_origin();
    let service = origin.behind(&layer());
    assert_full(&send(&service, get(URI, &[])).await);
    tokio::time::advance(Duration::from_secs(5)).await;

    let got = send(&service, get(URI, &[("if-none-match", ETAG)])).await;

    assert_not_modified(&got);
    assert_eq!(got.header("age"), Some("5"));
    assert!(
        got.header("cache-status")
            .unwrap()
            .starts_with("shared-calls; hit; ttl=5")
    );
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn if_none_match_compares_weakly_and_a_star_matches_any_stored_answer() {
    let origin = tagged_origin();
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;

    for matching in ["W/\"v1\"", "\"v0\", W/\"v1\"", "*", "\"v0\",\"v1\""] {
        let got = send(&service, get(URI, &[("if-none-match", matching)])).await;
        assert_eq!(got.status, StatusCode::NOT_MODIFIED, "{matching}");
        assert!(got.body.is_empty());
    }
    for other in ["\"v2\"", "W/\"v2\"", "v1", "\"v1", ""] {
        let got = send(&service, get(URI, &[("if-none-match", other)])).await;
        assert_full(&got);
    }
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn if_none_match_takes_precedence_over_if_modified_since() {
    let origin = tagged_origin();
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    let later = "Sun, 06 Dec 2026 02:00:00 GMT";
    let earlier = "Sat, 05 Dec 2026 00:00:00 GMT";

    // The date alone says "not modified"; the tag does not match.
    let other_tag = [("if-none-match", "\"v2\""), ("if-modified-since", later)];
    assert_full(&send(&service, get(URI, &other_tag)).await);
    // The date alone says "modified"; the tag matches.
    let same_tag = [("if-none-match", ETAG), ("if-modified-since", earlier)];
    assert_not_modified(&send(&service, get(URI, &same_tag)).await);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn if_modified_since_compares_with_last_modified_and_ignores_invalid_dates() {
    let origin = Origin::new(|_, _| {
        respond(
            StatusCode::OK,
            &[
                ("cache-control", "max-age=60"),
                ("date", DATE),
                ("last-modified", LAST_MODIFIED),
                ("content-type", "text/plain"),
            ],
            "untagged",
        )
    });
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;

    let same = send(&service, get(URI, &[("if-modified-since", LAST_MODIFIED)])).await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    assert!(same.body.is_empty());
    // Without an `ETag`, `Last-Modified` is what the client updates with.
    assert_eq!(
        names(&same.headers),
        [
            "age",
            "cache-control",
            "cache-status",
            "date",
            "last-modified"
        ]
    );
    assert_eq!(same.header("last-modified"), Some(LAST_MODIFIED));

    let later = "Sat, 05 Dec 2026 12:00:01 GMT";
    let got = send(&service, get(URI, &[("if-modified-since", later)])).await;
    assert_eq!(got.status, StatusCode::NOT_MODIFIED);

    let earlier = "Sat, 05 Dec 2026 11:59:59 GMT";
    for modified in [earlier, "yesterday", ""] {
        let got = send(&service, get(URI, &[("if-modified-since", modified)])).await;
        assert_eq!(
            (got.status, got.text()),
            (StatusCode::OK, "untagged"),
            "{modified:?}"
        );
    }
    let two_dates = [
        ("if-modified-since", LAST_MODIFIED),
        ("if-modified-since", LAST_MODIFIED),
    ];
    let got = send(&service, get(URI, &two_dates)).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_conditional_miss_reaches_the_origin_without_its_condition_and_stores_the_full_answer() {
    let origin = tagged_origin();
    let service = origin.behind(&layer());
    let conditional = [
        ("if-none-match", ETAG),
        ("if-modified-since", LAST_MODIFIED),
        ("accept-encoding", "gzip"),
    ];

    let got = send(&service, get(URI, &conditional)).await;

    assert_eq!(got.status, StatusCode::NOT_MODIFIED);
    assert!(got.body.is_empty());
    assert_eq!(got.header("etag"), Some(ETAG));
    assert!(
        got.header("cache-status")
            .unwrap()
            .starts_with("shared-calls; fwd=miss")
    );
    assert_eq!(origin.calls(), 1);
    let seen = origin.last();
    assert_unconditional(&seen);
    assert_eq!(names(&seen.headers), ["accept-encoding"]);
    // The full answer was stored for everyone.
    let plain = send(&service, get(URI, &[("accept-encoding", "gzip")])).await;
    assert_full(&plain);
    assert!(
        plain
            .header("cache-status")
            .unwrap()
            .starts_with("shared-calls; hit;")
    );
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn collapsed_clients_each_get_the_answer_to_their_own_condition() {
    let origin = tagged_origin().delayed(Duration::from_secs(1));
    let service = origin.behind(&layer());

    let (matching, plain, stale_tag, dated) = tokio::join!(
        send(&service, get(URI, &[("if-none-match", ETAG)])),
        send(&service, get(URI, &[])),
        send(&service, get(URI, &[("if-none-match", "\"v0\"")])),
        send(&service, get(URI, &[("if-modified-since", LAST_MODIFIED)])),
    );

    assert_eq!(origin.calls(), 1);
    assert_unconditional(&origin.last());
    assert!(origin.last().headers.is_empty());
    // The leader's client, answered from the head, and a follower.
    assert_eq!(matching.status, StatusCode::NOT_MODIFIED);
    assert!(
        matching
            .header("cache-status")
            .unwrap()
            .starts_with("shared-calls; fwd=miss")
    );
    assert_full(&plain);
    assert_full(&stale_tag);
    assert_not_modified(&dated);
    assert!(
        dated
            .header("cache-status")
            .unwrap()
            .contains("fwd=miss; collapsed; stored")
    );
}

#[tokio::test(start_paused = true)]
async fn a_plain_leader_shares_its_full_answer_with_a_conditional_follower() {
    let origin = tagged_origin().delayed(Duration::from_secs(1));
    let service = origin.behind(&layer());

    let (plain, matching) = tokio::join!(
        send(&service, get(URI, &[])),
        send(&service, get(URI, &[("if-none-match", ETAG)])),
    );

    assert_eq!(origin.calls(), 1);
    assert_full(&plain);
    assert_not_modified(&matching);
    let outcome = |got: &Got| got.header("cache-status").unwrap().to_owned();
    assert!(!outcome(&plain).contains("collapsed"));
    assert!(outcome(&matching).contains("collapsed"));
}

#[tokio::test(start_paused = true)]
async fn a_conditional_head_gets_a_304_and_a_plain_head_the_stored_length() {
    let origin = tagged_origin();
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;

    let head = |headers| request(Method::HEAD, URI, headers);
    assert_not_modified(&send(&service, head(&[("if-none-match", ETAG)])).await);
    let plain = send(&service, head(&[])).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.body.is_empty());
    assert_eq!(plain.header("content-length"), Some("12"));
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn only_a_successful_answer_is_turned_into_a_304() {
    let origin = Origin::new(|_, _| {
        respond(
            StatusCode::NOT_FOUND,
            &[("cache-control", "max-age=60"), ("etag", ETAG)],
            "gone",
        )
    });
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;

    let got = send(&service, get(URI, &[("if-none-match", "*")])).await;

    assert_eq!((got.status, got.text()), (StatusCode::NOT_FOUND, "gone"));
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn preconditions_meant_for_the_origin_still_bypass_with_their_headers() {
    let origin = tagged_origin();
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;

    for (field, value) in [
        ("if-match", ETAG),
        ("if-unmodified-since", LAST_MODIFIED),
        ("if-range", ETAG),
        ("range", "bytes=0-3"),
    ] {
        let got = send(&service, get(URI, &[(field, value)])).await;
        assert_eq!(got.status, StatusCode::OK);
        assert!(got.header("cache-status").unwrap().contains("fwd=bypass"));
        assert_eq!(origin.last().header(field), Some(value));
    }
    assert_eq!(origin.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn only_if_cached_gets_the_fresh_stored_answer_or_a_504_and_never_calls() {
    let origin = tagged_origin();
    let service = origin.behind(&layer());
    let only = [("cache-control", "only-if-cached")];

    let nothing = send(&service, get(URI, &only)).await;
    assert_eq!(nothing.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        nothing.header("cache-status"),
        Some("shared-calls; detail=only-if-cached")
    );
    assert_eq!(origin.calls(), 0);

    send(&service, get(URI, &[])).await;
    let stored = send(&service, get(URI, &only)).await;
    assert_full(&stored);
    assert!(
        stored
            .header("cache-status")
            .unwrap()
            .starts_with("shared-calls; hit;")
    );
    let conditional = [("cache-control", "only-if-cached"), ("if-none-match", ETAG)];
    assert_not_modified(&send(&service, get(URI, &conditional)).await);
    assert_eq!(origin.calls(), 1);

    // Stale, it is not served, and no refresh starts.
    tokio::time::advance(Duration::from_secs(61)).await;
    let stale = send(&service, get(URI, &only)).await;
    assert_eq!(stale.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn only_if_cached_never_calls_for_a_request_that_would_bypass() {
    let origin = tagged_origin();
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;

    let cases = [
        request(
            Method::GET,
            URI,
            &[("cache-control", "only-if-cached"), ("cookie", "a=b")],
        ),
        request(Method::POST, URI, &[("cache-control", "only-if-cached")]),
        request(
            Method::GET,
            URI,
            &[("cache-control", "only-if-cached, no-store")],
        ),
    ];
    for case in cases {
        let got = send(&service, case).await;
        assert_eq!(got.status, StatusCode::GATEWAY_TIMEOUT);
    }
    // The POST invalidated nothing: it never happened.
    assert_eq!(send(&service, get(URI, &[])).await.status, StatusCode::OK);
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn only_if_cached_does_not_wait_for_a_call_in_flight() {
    let origin = tagged_origin().delayed(Duration::from_secs(1));
    let service = origin.behind(&layer());

    let (leader, only) = tokio::join!(
        send(&service, get(URI, &[])),
        send(&service, get(URI, &[("cache-control", "only-if-cached")])),
    );

    assert_full(&leader);
    assert_eq!(only.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(origin.calls(), 1);
}

/// An origin that stores every `GET` for a minute (its body says which call
/// made it) and answers any other method with `status` and `headers`.
fn writable_origin(status: StatusCode, headers: &'static [(&'static str, &'static str)]) -> Origin {
    Origin::new(move |seen, number| {
        if seen.method != Method::GET {
            return respond(status, headers, "");
        }
        let body: &'static str = Box::leak(format!("call {number}").into_boxed_str());
        respond(StatusCode::OK, &[("cache-control", "max-age=60")], body)
    })
}

/// The numbers of the origin calls that made each answer, one `GET` each.
async fn calls_behind<S, B>(service: &S, uris: &[&str]) -> Vec<String>
where
    S: tower::Service<support::Req, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let mut bodies = Vec::new();
    for uri in uris {
        bodies.push(send(service, get(uri, &[])).await.text().to_owned());
    }
    bodies
}

#[tokio::test(start_paused = true)]
async fn a_successful_post_invalidates_its_same_origin_location_and_content_location() {
    let origin = writable_origin(
        StatusCode::CREATED,
        &[
            ("location", "/items/42"),
            ("content-location", "items/summary"),
        ],
    );
    let service = origin.behind(&layer());
    let uris = [
        "http://a.test/items",
        "http://a.test/items/42",
        "http://a.test/items/summary",
        "http://a.test/items/43",
    ];
    assert_eq!(
        calls_behind(&service, &uris).await,
        ["call 1", "call 2", "call 3", "call 4"]
    );

    let created = send(&service, request(Method::POST, "http://a.test/items", &[])).await;

    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(origin.calls(), 5);
    // The request's own target and both named targets load anew; the
    // others are still stored.
    assert_eq!(
        calls_behind(&service, &uris).await,
        ["call 6", "call 7", "call 8", "call 4"]
    );
    assert_eq!(origin.calls(), 8);
}

#[tokio::test(start_paused = true)]
async fn an_absolute_location_of_the_same_origin_is_invalidated_and_another_origins_never() {
    let origin = writable_origin(
        StatusCode::SEE_OTHER,
        &[
            ("location", "http://A.TEST:80/mine?page=1"),
            ("content-location", "http://b.test/theirs"),
            ("content-location", "https://a.test/secure"),
        ],
    );
    let service = origin.behind(&layer());
    let uris = [
        "http://a.test/mine?page=1",
        "http://b.test/theirs",
        "https://a.test/secure",
        "http://a.test:8080/mine?page=1",
    ];
    assert_eq!(
        calls_behind(&service, &uris).await,
        ["call 1", "call 2", "call 3", "call 4"]
    );

    let moved = send(&service, request(Method::POST, "http://a.test/form", &[])).await;

    assert_eq!(moved.status, StatusCode::SEE_OTHER);
    assert_eq!(
        calls_behind(&service, &uris).await,
        ["call 6", "call 2", "call 3", "call 4"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_unsafe_request_invalidates_no_target() {
    let origin = writable_origin(
        StatusCode::INTERNAL_SERVER_ERROR,
        &[("location", "/items/42")],
    );
    let service = origin.behind(&layer());
    let uris = ["http://a.test/items", "http://a.test/items/42"];
    calls_behind(&service, &uris).await;

    let failed = send(&service, request(Method::POST, "http://a.test/items", &[])).await;

    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(calls_behind(&service, &uris).await, ["call 1", "call 2"]);
    assert_eq!(origin.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_target_is_keyed_with_the_request_headers_the_key_includes() {
    let origin = writable_origin(StatusCode::NO_CONTENT, &[("location", "/profile")]);
    let key = KeyBuilder::new().header("x-tenant");
    let layer = SharedCallsLayer::new(move |request: &support::Req| key.key(request)).jitter(0.0);
    let service = layer.layer(origin.service());
    let profile = |tenant| get("http://a.test/profile", &[("x-tenant", tenant)]);
    assert_eq!(send(&service, profile("red")).await.text(), "call 1");
    assert_eq!(send(&service, profile("blue")).await.text(), "call 2");

    let update = request(
        Method::PUT,
        "http://a.test/settings",
        &[("x-tenant", "red")],
    );
    assert_eq!(send(&service, update).await.status, StatusCode::NO_CONTENT);

    assert_eq!(send(&service, profile("red")).await.text(), "call 4");
    assert_eq!(send(&service, profile("blue")).await.text(), "call 2");
}

/// The layer of [`layer`] with the clients' `max-age`, `min-fresh` and
/// `max-stale` honoured.
fn honouring_layer() -> SharedCallsLayer<support::KeyFn> {
    layer().map_policy(|policy| policy.map_rules(|rules| rules.honour_request_freshness(true)))
}

/// An origin whose answers are fresh for `cache_control` and say which call
/// made them.
fn counting_origin(cache_control: &'static str) -> Origin {
    Origin::new(move |_, number| {
        let body: &'static str = Box::leak(format!("call {number}").into_boxed_str());
        respond(StatusCode::OK, &[("cache-control", cache_control)], body)
    })
}

const AGE_LIMITS: [&str; 4] = ["max-age=10", "min-fresh=50", "max-age=0", "max-stale"];

#[tokio::test(start_paused = true)]
async fn request_freshness_directives_are_ignored_by_default() {
    let origin = counting_origin("max-age=60");
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    tokio::time::advance(Duration::from_secs(30)).await;

    for directive in AGE_LIMITS {
        let got = send(&service, get(URI, &[("cache-control", directive)])).await;
        assert_eq!(got.text(), "call 1", "{directive}");
        assert_eq!(got.header("age"), Some("30"));
    }
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_answer_older_than_the_request_max_age_is_refreshed_once_for_the_collapsed_requests() {
    let origin = counting_origin("max-age=60").delayed(Duration::from_secs(1));
    let service = origin.behind(&honouring_layer());
    send(&service, get(URI, &[])).await;
    tokio::time::advance(Duration::from_secs(30)).await;

    let young = [("cache-control", "max-age=10")];
    let (first, second, plain) = tokio::join!(
        send(&service, get(URI, &young)),
        send(&service, get(URI, &young)),
        send(&service, get(URI, &[])),
    );

    assert_eq!(origin.calls(), 2);
    assert_eq!(origin.last().header("cache-control"), Some("max-age=10"));
    assert_eq!((first.text(), second.text()), ("call 2", "call 2"));
    assert!(second.header("cache-status").unwrap().contains("collapsed"));
    // A request without limits took the stored answer at once.
    assert_eq!((plain.text(), plain.header("age")), ("call 1", Some("30")));
    // The refreshed answer replaced the stored one, for everyone.
    let again = send(&service, get(URI, &[])).await;
    assert_eq!((again.text(), again.header("age")), ("call 2", Some("0")));
    let roomy = send(&service, get(URI, &[("cache-control", "max-age=40")])).await;
    assert_eq!(roomy.text(), "call 2");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_answer_fresh_for_less_than_min_fresh_is_refreshed() {
    let origin = counting_origin("max-age=60");
    let service = origin.behind(&honouring_layer());
    send(&service, get(URI, &[])).await;
    tokio::time::advance(Duration::from_secs(55)).await;

    let fresh_enough = [("cache-control", "min-fresh=10")];
    assert_eq!(
        send(&service, get(URI, &fresh_enough)).await.text(),
        "call 2"
    );
    assert_eq!(
        send(&service, get(URI, &fresh_enough)).await.text(),
        "call 2"
    );
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn max_stale_serves_a_stale_stored_answer_within_its_bound() {
    // `stale-if-error` keeps the answer stored past its freshness.
    let origin = counting_origin("max-age=10, stale-if-error=600");
    let service = origin.behind(&honouring_layer());
    send(&service, get(URI, &[])).await;
    tokio::time::advance(Duration::from_secs(20)).await;

    // Stale by 10 s: more than 5 s is refused, and the request refreshes.
    let strict = send(&service, get(URI, &[("cache-control", "max-stale=5")])).await;
    assert_eq!(strict.text(), "call 2");
    assert_eq!(origin.calls(), 2);

    tokio::time::advance(Duration::from_secs(20)).await;
    let stale = send(&service, get(URI, &[("cache-control", "max-stale=30")])).await;
    assert_eq!((stale.text(), stale.header("age")), ("call 2", Some("20")));
    assert!(stale.header("cache-status").unwrap().contains("fwd=stale"));
    // Served stale, the entry is refreshed in the background, once.
    support::bounded("the background refresh", async {
        while origin.calls() < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let refreshed = send(&service, get(URI, &[])).await;
    assert_eq!(
        (refreshed.text(), refreshed.header("age")),
        ("call 3", Some("0"))
    );
    assert_eq!(origin.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn without_max_stale_a_stale_stored_answer_is_not_served() {
    let origin = counting_origin("max-age=10, stale-if-error=600");
    let service = origin.behind(&honouring_layer());
    send(&service, get(URI, &[])).await;
    tokio::time::advance(Duration::from_secs(20)).await;

    let got = send(&service, get(URI, &[("cache-control", "max-age=3600")])).await;

    assert_eq!(got.text(), "call 2");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn only_if_cached_with_limits_takes_only_an_answer_within_them() {
    let origin = counting_origin("max-age=60");
    let service = origin.behind(&honouring_layer());
    send(&service, get(URI, &[])).await;
    tokio::time::advance(Duration::from_secs(30)).await;

    let too_old = [("cache-control", "only-if-cached, max-age=10")];
    assert_eq!(
        send(&service, get(URI, &too_old)).await.status,
        StatusCode::GATEWAY_TIMEOUT
    );
    let young_enough = [("cache-control", "only-if-cached, max-age=40")];
    assert_eq!(
        send(&service, get(URI, &young_enough)).await.text(),
        "call 1"
    );
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_condition_is_evaluated_against_the_variant_that_serves_the_request() {
    let origin = Origin::new(|seen, _| {
        let (tag, body) = match seen.header("accept-language") {
            Some("fr") => ("\"fr-1\"", "bonjour"),
            _ => ("\"en-1\"", "hello"),
        };
        let headers = [
            ("cache-control", "max-age=60"),
            ("vary", "accept-language"),
            ("etag", tag),
        ];
        respond(StatusCode::OK, &headers, body)
    });
    let service = origin.behind(&layer());
    let english = |tag| get(URI, &[("accept-language", "en"), ("if-none-match", tag)]);
    let french = |tag| get(URI, &[("accept-language", "fr"), ("if-none-match", tag)]);
    assert_eq!(send(&service, english("\"none\"")).await.text(), "hello");
    assert_eq!(send(&service, french("\"none\"")).await.text(), "bonjour");

    assert_eq!(
        send(&service, english("\"en-1\"")).await.status,
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(send(&service, french("\"en-1\"")).await.text(), "bonjour");
    assert_eq!(
        send(&service, french("\"fr-1\"")).await.status,
        StatusCode::NOT_MODIFIED
    );
    assert_eq!(origin.calls(), 2);
    assert!(
        origin
            .seen()
            .iter()
            .all(|seen| seen.header("if-none-match").is_none())
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_for_its_own_client_only_reaches_a_conditional_client_as_the_origin_sent_it() {
    let origin = Origin::new(|_, _| {
        respond(
            StatusCode::OK,
            &[("cache-control", "private"), ("etag", ETAG)],
            "mine",
        )
    });
    let service = origin.behind(&layer());

    let got = send(&service, get(URI, &[("if-none-match", ETAG)])).await;

    // The condition did not reach the origin, which answered in full; the
    // answer is not the cache's to rewrite.
    assert_eq!((got.status, got.text()), (StatusCode::OK, "mine"));
    assert_unconditional(&origin.last());
    assert_eq!(origin.calls(), 1);
}
