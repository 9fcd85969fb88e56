//! Revalidation through the layer (RFC 9111 §4.3, §4.2.4): kept answers
//! refreshed by conditional requests, `304`s freshening them, and the
//! directives that forbid serving them stale.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use support::{Got, Origin, Req, get, layer, request, respond, send};
use tower::Service;

const URI: &str = "http://a.test/doc";

/// Sends three requests together (polled concurrently in this task) and
/// returns their answers in order.
async fn send_three<S, B>(service: &S, request: impl Fn() -> Req) -> [Got; 3]
where
    S: Service<Req, Response = http::Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (a, b, c) = tokio::join!(
        send(service, request()),
        send(service, request()),
        send(service, request())
    );
    [a, b, c]
}

async fn advance(by: Duration) {
    tokio::time::advance(by).await;
}

/// An origin whose first answer is `hello` with `ETag: "v1"` and
/// `Cache-Control: first`, and whose later answers are `304`s with the same
/// tag and `Cache-Control: then`.
fn etag_origin(first: &'static str, then: &'static str) -> Origin {
    Origin::new(move |_, call| match call {
        1 => respond(
            StatusCode::OK,
            &[("etag", "\"v1\""), ("cache-control", first)],
            "hello",
        ),
        _ => respond(
            StatusCode::NOT_MODIFIED,
            &[("etag", "\"v1\""), ("cache-control", then)],
            "",
        ),
    })
}

#[tokio::test(start_paused = true)]
async fn a_stale_entry_with_an_etag_is_refreshed_by_one_conditional_request() {
    let origin = etag_origin("max-age=1", "max-age=60").delayed(Duration::from_millis(100));
    let service = origin.behind(&layer());

    let first = send(&service, get(URI, &[])).await;
    assert_eq!((first.status, first.text()), (StatusCode::OK, "hello"));
    advance(Duration::from_secs(2)).await;

    let answers = send_three(&service, || get(URI, &[])).await;

    assert_eq!(origin.calls(), 2);
    let refresh = origin.last();
    assert_eq!(refresh.header("if-none-match"), Some("\"v1\""));
    assert_eq!(refresh.header("if-modified-since"), None);
    for answer in &answers {
        assert_eq!((answer.status, answer.text()), (StatusCode::OK, "hello"));
        assert_eq!(answer.header("content-length"), Some("5"));
        assert_eq!(answer.header("cache-control"), Some("max-age=60"));
    }
    assert_eq!(
        answers[0].header("cache-status"),
        Some("shared-calls; fwd=stale; fwd-status=304; stored; ttl=60; detail=revalidated")
    );
    for follower in &answers[1..] {
        assert_eq!(
            follower.header("cache-status"),
            Some(
                "shared-calls; fwd=stale; fwd-status=304; collapsed; stored; ttl=60; detail=revalidated"
            )
        );
    }
    // Freshened for the `304`'s 60 s: a hit, and the body came once.
    let hit = send(&service, get(URI, &[])).await;
    assert_eq!(
        hit.header("cache-status"),
        Some("shared-calls; hit; ttl=60")
    );
    assert_eq!(origin.calls(), 2);
    assert_eq!(origin.body_bytes(), 5);
}

#[tokio::test(start_paused = true)]
async fn last_modified_alone_is_revalidated_with_if_modified_since_and_weak_etags_weakly() {
    const LAST_MODIFIED: &str = "Tue, 01 Dec 2026 10:00:00 GMT";
    let origin = Origin::new(|seen, call| {
        let validator = match seen.uri.path() {
            "/dated" => ("last-modified", LAST_MODIFIED),
            _ => ("etag", "W/\"v1\""),
        };
        let (status, body) = match call {
            1 | 2 => (StatusCode::OK, "body"),
            _ => (StatusCode::NOT_MODIFIED, ""),
        };
        respond(status, &[validator, ("cache-control", "max-age=1")], body)
    });
    let service = origin.behind(&layer());
    send(&service, get("http://a.test/dated", &[])).await;
    send(&service, get("http://a.test/weak", &[])).await;
    advance(Duration::from_secs(2)).await;

    let dated = send(&service, get("http://a.test/dated", &[])).await;
    let weak = send(&service, get("http://a.test/weak", &[])).await;

    let seen = origin.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[2].header("if-modified-since"), Some(LAST_MODIFIED));
    assert_eq!(seen[2].header("if-none-match"), None);
    assert_eq!(seen[3].header("if-none-match"), Some("W/\"v1\""));
    assert_eq!(seen[3].header("if-modified-since"), None);
    for answer in [dated, weak] {
        assert_eq!((answer.status, answer.text()), (StatusCode::OK, "body"));
        assert!(
            answer
                .header("cache-status")
                .unwrap()
                .contains("fwd-status=304")
        );
    }
    assert_eq!(origin.body_bytes(), 8);
}

#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_refreshes_in_the_background_with_a_conditional_request() {
    let origin = etag_origin("max-age=1, stale-while-revalidate=30", "max-age=60");
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    advance(Duration::from_secs(2)).await;

    let stale = send(&service, get(URI, &[])).await;
    assert_eq!(stale.text(), "hello");
    assert_eq!(
        stale.header("cache-status"),
        Some("shared-calls; hit; fwd=stale; detail=stale-while-revalidate")
    );
    // Let the background refresh run.
    support::bounded("the background refresh", async {
        while origin.calls() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }

    let hit = send(&service, get(URI, &[])).await;
    assert_eq!(origin.calls(), 2);
    assert_eq!(origin.last().header("if-none-match"), Some("\"v1\""));
    assert_eq!(
        hit.header("cache-status"),
        Some("shared-calls; hit; ttl=60")
    );
    assert_eq!(hit.text(), "hello");
    assert_eq!(origin.body_bytes(), 5);
}

#[tokio::test(start_paused = true)]
async fn the_refresh_asks_with_the_vary_values_the_entry_was_stored_for() {
    let origin = Origin::new(|seen, _| {
        let language = seen.header("accept-language").unwrap_or("none").to_owned();
        match seen.header("if-none-match") {
            Some(_) => respond(
                StatusCode::NOT_MODIFIED,
                &[("etag", "\"fr\""), ("cache-control", "max-age=60")],
                "",
            ),
            None => {
                let body: &'static str = Box::leak(language.clone().into_boxed_str());
                let etag: &'static str = Box::leak(format!("\"{language}\"").into_boxed_str());
                respond(
                    StatusCode::OK,
                    &[
                        ("etag", etag),
                        ("vary", "accept-language"),
                        ("cache-control", "max-age=1"),
                    ],
                    body,
                )
            }
        }
    });
    let service = origin.behind(&layer());
    let french = || get(URI, &[("accept-language", "fr")]);
    send(&service, french()).await;
    advance(Duration::from_secs(2)).await;

    let refreshed = send(&service, french()).await;
    assert_eq!(refreshed.text(), "fr");
    let refresh = origin.last();
    assert_eq!(refresh.header("if-none-match"), Some("\"fr\""));
    assert_eq!(refresh.header("accept-language"), Some("fr"));

    // Another variant's request is not asked about the French answer.
    advance(Duration::from_secs(61)).await;
    let german = send(&service, get(URI, &[("accept-language", "de")])).await;
    assert_eq!(german.text(), "de");
    let asked = origin.last();
    assert_eq!(asked.header("accept-language"), Some("de"));
    assert_eq!(asked.header("if-none-match"), None);
    assert_eq!(origin.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_304_freshens_the_stored_fields_but_those_of_the_body_and_keeps_the_body() {
    let origin = Origin::new(|_, call| match call {
        1 => respond(
            StatusCode::OK,
            &[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=1"),
                ("content-type", "text/plain"),
                ("x-version", "1"),
                ("x-kept", "yes"),
            ],
            "hello",
        ),
        _ => respond(
            StatusCode::NOT_MODIFIED,
            &[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=100"),
                ("x-version", "2"),
                ("content-encoding", "gzip"),
                ("content-length", "0"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
            ],
            "",
        ),
    });
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    advance(Duration::from_secs(2)).await;

    let freshened = send(&service, get(URI, &[])).await;
    advance(Duration::from_secs(50)).await;
    let hit = send(&service, get(URI, &[])).await;

    for answer in [&freshened, &hit] {
        assert_eq!((answer.status, answer.text()), (StatusCode::OK, "hello"));
        assert_eq!(answer.header("x-version"), Some("2"));
        assert_eq!(answer.header("x-kept"), Some("yes"));
        assert_eq!(answer.header("cache-control"), Some("max-age=100"));
        assert_eq!(answer.header("content-type"), Some("text/plain"));
        assert_eq!(answer.header("content-length"), Some("5"));
        assert_eq!(answer.header("etag"), Some("\"v1\""));
        for absent in ["content-encoding", "connection", "x-hop"] {
            assert_eq!(answer.header(absent), None, "{absent}");
        }
    }
    // Fresh for the merged `max-age=100`.
    assert_eq!(
        hit.header("cache-status"),
        Some("shared-calls; hit; ttl=50")
    );
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_304_naming_no_validator_confirms_the_answer_its_refresh_asked_about() {
    // As simple origins answer: `Last-Modified` on the `200`, nothing but
    // the status on the `304`.
    const MODIFIED: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    let origin = Origin::new(|seen, _| match seen.header("if-modified-since") {
        Some(MODIFIED) => respond(StatusCode::NOT_MODIFIED, &[], ""),
        _ => respond(
            StatusCode::OK,
            &[("last-modified", MODIFIED), ("cache-control", "max-age=1")],
            "body",
        ),
    });
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    advance(Duration::from_secs(2)).await;

    let refreshed = send(&service, get(URI, &[])).await;
    assert_eq!(
        (refreshed.status, refreshed.text()),
        (StatusCode::OK, "body")
    );
    assert!(
        refreshed
            .header("cache-status")
            .unwrap()
            .contains("detail=revalidated"),
        "{:?}",
        refreshed.headers
    );
    let hit = send(&service, get(URI, &[])).await;
    assert_eq!((hit.status, hit.text()), (StatusCode::OK, "body"));
    assert_eq!(origin.calls(), 2);
    assert_eq!(origin.last().header("if-modified-since"), Some(MODIFIED));
    assert_eq!(origin.body_bytes(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_304_that_identifies_no_stored_answer_is_not_applied_and_the_next_refresh_is_whole() {
    let origin = Origin::new(|_, call| match call {
        1 => respond(
            StatusCode::OK,
            &[("etag", "\"v1\""), ("cache-control", "max-age=1")],
            "old",
        ),
        2 => respond(
            StatusCode::NOT_MODIFIED,
            &[("etag", "\"other\""), ("cache-control", "max-age=60")],
            "",
        ),
        _ => respond(
            StatusCode::OK,
            &[("etag", "\"v2\""), ("cache-control", "max-age=60")],
            "new",
        ),
    });
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    advance(Duration::from_secs(2)).await;

    let refused = send(&service, get(URI, &[])).await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY);
    assert_ne!(refused.text(), "old");

    let whole = send(&service, get(URI, &[])).await;
    assert_eq!((whole.status, whole.text()), (StatusCode::OK, "new"));
    let seen = origin.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].header("if-none-match"), Some("\"v1\""));
    assert_eq!(seen[2].header("if-none-match"), None);
    let hit = send(&service, get(URI, &[])).await;
    assert_eq!((hit.text(), origin.calls()), ("new", 3));
}

#[tokio::test(start_paused = true)]
async fn a_full_200_to_a_conditional_refresh_replaces_the_entry() {
    let origin = Origin::new(|seen, call| {
        let etag = if call == 1 { "\"v1\"" } else { "\"v2\"" };
        let body = if call == 1 { "one" } else { "two" };
        match seen.header("if-none-match") == Some(etag) {
            true => respond(StatusCode::NOT_MODIFIED, &[("etag", etag)], ""),
            false => respond(
                StatusCode::OK,
                &[("etag", etag), ("cache-control", "max-age=1")],
                body,
            ),
        }
    });
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    advance(Duration::from_secs(2)).await;

    let replaced = send(&service, get(URI, &[])).await;
    assert_eq!((replaced.status, replaced.text()), (StatusCode::OK, "two"));
    assert_eq!(replaced.header("etag"), Some("\"v2\""));
    let status = replaced.header("cache-status").unwrap();
    assert!(status.starts_with("shared-calls; fwd=miss"), "{status}");
    let hit = send(&service, get(URI, &[])).await;
    assert_eq!((hit.text(), origin.calls()), ("two", 2));

    advance(Duration::from_secs(2)).await;
    send(&service, get(URI, &[])).await;
    assert_eq!(origin.last().header("if-none-match"), Some("\"v2\""));
    assert_eq!(origin.body_bytes(), 6);
}

#[tokio::test(start_paused = true)]
async fn must_revalidate_proxy_revalidate_and_s_maxage_are_never_served_stale() {
    for directives in [
        "max-age=1, must-revalidate",
        "max-age=1, proxy-revalidate",
        "s-maxage=1",
    ] {
        let origin = Origin::new(move |_, call| match call {
            1 => respond(
                StatusCode::OK,
                &[("etag", "\"v1\""), ("cache-control", directives)],
                "hello",
            ),
            _ => respond(StatusCode::SERVICE_UNAVAILABLE, &[], "down"),
        });
        // The layer's own stale windows do not apply to these answers.
        let layer = layer()
            .stale_while_revalidate(Duration::from_secs(60))
            .stale_if_error(Duration::from_secs(60));
        let service = origin.behind(&layer);
        send(&service, get(URI, &[])).await;
        advance(Duration::from_secs(2)).await;

        let failed = send(&service, get(URI, &[])).await;

        assert_eq!(origin.calls(), 2, "{directives}");
        assert_eq!(origin.last().header("if-none-match"), Some("\"v1\""));
        assert_eq!(
            failed.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{directives}"
        );
        assert_eq!(failed.text(), "down", "{directives}");
    }
}

#[tokio::test(start_paused = true)]
async fn no_cache_answers_are_stored_and_revalidated_on_every_use_collapsed() {
    let origin = Origin::new(|seen, call| match call {
        1 => respond(
            StatusCode::OK,
            &[("etag", "\"v1\""), ("cache-control", "no-cache")],
            "hello",
        ),
        _ => {
            assert_eq!(seen.header("if-none-match"), Some("\"v1\""));
            respond(StatusCode::NOT_MODIFIED, &[("etag", "\"v1\"")], "")
        }
    })
    .delayed(Duration::from_millis(100));
    let service = origin.behind(&layer());

    let first = send(&service, get(URI, &[])).await;
    // Stored, never fresh.
    assert_eq!(
        first.header("cache-status"),
        Some("shared-calls; fwd=miss; stored; ttl=0")
    );
    let answers = send_three(&service, || get(URI, &[])).await;
    assert_eq!(origin.calls(), 2);
    for answer in &answers {
        assert_eq!((answer.status, answer.text()), (StatusCode::OK, "hello"));
        assert!(
            answer
                .header("cache-status")
                .unwrap()
                .contains("fwd-status=304")
        );
    }
    // Every use asks again, even at once.
    let again = send(&service, get(URI, &[])).await;
    assert_eq!(again.text(), "hello");
    assert_eq!(origin.calls(), 3);
    assert_eq!(origin.last().header("if-none-match"), Some("\"v1\""));
    assert_eq!(origin.body_bytes(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_no_cache_answer_without_a_validator_is_still_not_shared() {
    let origin =
        Origin::new(|_, _| respond(StatusCode::OK, &[("cache-control", "no-cache")], "hello"));
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    send(&service, get(URI, &[])).await;
    assert_eq!(origin.calls(), 2);
    assert_eq!(origin.last().header("if-none-match"), None);
}

#[tokio::test(start_paused = true)]
async fn immutable_answers_are_not_revalidated_while_fresh() {
    let immutable = "max-age=100, immutable";
    let origin = etag_origin(immutable, immutable);
    let service = origin.behind(&layer());
    for _ in 0..10 {
        let answer = send(&service, get(URI, &[])).await;
        assert_eq!(answer.text(), "hello");
        advance(Duration::from_secs(9)).await;
    }
    assert_eq!(origin.calls(), 1);
    // Expired, it is revalidated like any other.
    advance(Duration::from_secs(20)).await;
    send(&service, get(URI, &[])).await;
    assert_eq!(origin.calls(), 2);
    assert_eq!(origin.last().header("if-none-match"), Some("\"v1\""));
}

#[tokio::test(start_paused = true)]
async fn revalidation_can_be_turned_off() {
    let origin = Origin::new(|_, _| {
        respond(
            StatusCode::OK,
            &[("etag", "\"v1\""), ("cache-control", "max-age=1")],
            "hello",
        )
    });
    let layer = layer().map_policy(|policy| policy.keep_for_revalidation(Duration::ZERO));
    let service = origin.behind(&layer);
    send(&service, get(URI, &[])).await;
    advance(Duration::from_secs(2)).await;
    send(&service, get(URI, &[])).await;
    assert_eq!(origin.calls(), 2);
    assert_eq!(origin.last().header("if-none-match"), None);
    assert_eq!(origin.body_bytes(), 10);
}

/// An origin whose `HEAD`s ignore conditions, as many do: call 1 is the
/// `GET`, later calls answer with `etag` and `x-version: 2`.
fn origin_of_heads(etag: &'static str) -> Origin {
    Origin::new(move |seen, call| match (call, &seen.method) {
        (1, _) => respond(
            StatusCode::OK,
            &[
                ("etag", "\"v1\""),
                ("cache-control", "max-age=1"),
                ("x-version", "1"),
            ],
            "hello",
        ),
        (_, &Method::HEAD) => respond(
            StatusCode::OK,
            &[
                ("etag", etag),
                ("cache-control", "max-age=60"),
                ("x-version", "2"),
            ],
            "",
        ),
        _ => respond(
            StatusCode::OK,
            &[
                ("etag", etag),
                ("cache-control", "max-age=60"),
                ("x-version", "2"),
            ],
            "fresh",
        ),
    })
}

#[tokio::test(start_paused = true)]
async fn a_head_answered_by_the_origin_updates_the_stored_get_when_the_validators_match() {
    let origin = origin_of_heads("\"v1\"");
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    advance(Duration::from_secs(2)).await;

    let head = send(&service, request(Method::HEAD, URI, &[])).await;

    let asked = origin.last();
    assert_eq!(asked.method, Method::HEAD);
    assert_eq!(asked.header("if-none-match"), Some("\"v1\""));
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("5"));
    assert_eq!(head.header("x-version"), Some("2"));
    // The stored `GET` took the `HEAD`'s fields and freshness, and kept
    // its body.
    let hit = send(&service, get(URI, &[])).await;
    assert_eq!(
        hit.header("cache-status"),
        Some("shared-calls; hit; ttl=60")
    );
    assert_eq!((hit.text(), hit.header("x-version")), ("hello", Some("2")));
    assert_eq!(origin.calls(), 2);
    assert_eq!(origin.body_bytes(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_head_whose_validators_differ_is_not_stored_and_the_next_get_fetches_anew() {
    let origin = origin_of_heads("\"v2\"");
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    advance(Duration::from_secs(2)).await;

    let head = send(&service, request(Method::HEAD, URI, &[])).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), Some("\"v2\""));

    let get_after = send(&service, get(URI, &[])).await;
    assert_eq!(get_after.text(), "fresh");
    let seen = origin.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].method, Method::GET);
    assert_eq!(seen[2].header("if-none-match"), None);
}

#[tokio::test(start_paused = true)]
async fn a_head_refreshing_a_kept_entry_with_a_304_is_answered_without_a_body() {
    let origin = etag_origin("max-age=1", "max-age=60");
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    advance(Duration::from_secs(2)).await;
    let head = send(&service, request(Method::HEAD, URI, &[])).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("5"));
    assert_eq!(origin.last().method, Method::HEAD);
    assert_eq!(origin.last().header("if-none-match"), Some("\"v1\""));
    let hit = send(&service, get(URI, &[])).await;
    assert_eq!((hit.text(), origin.calls()), ("hello", 2));
}

#[tokio::test(start_paused = true)]
async fn a_revalidation_that_fails_gives_its_waiters_a_504_never_the_stale_answer() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tower::{Layer, ServiceExt};

    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let origin = tower::service_fn(move |request: Req| {
        let call = counted.fetch_add(1, Ordering::SeqCst) + 1;
        let conditional = request.headers().get("if-none-match").cloned();
        async move {
            if call == 1 {
                let headers = [
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=1, must-revalidate"),
                ];
                return Ok(respond(StatusCode::OK, &headers, "hello"));
            }
            assert_eq!(conditional.unwrap(), "\"v1\"");
            tokio::time::sleep(Duration::from_millis(100)).await;
            Err::<http::Response<Full<Bytes>>, _>("origin unreachable")
        }
    });
    let layer = layer().stale_if_error(Duration::from_secs(60));
    let service = layer.layer(origin);
    let first = service.clone().oneshot(get(URI, &[])).await.unwrap();
    assert_eq!(
        first.into_body().collect().await.unwrap().to_bytes(),
        "hello"
    );
    advance(Duration::from_secs(2)).await;

    let (leader, follower) = tokio::join!(
        service.clone().oneshot(get(URI, &[])),
        service.clone().oneshot(get(URI, &[]))
    );

    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The request whose call failed gets its error as it is.
    assert_eq!(leader.unwrap_err(), "origin unreachable");
    let follower = follower.unwrap();
    assert_eq!(follower.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        follower.headers()["cache-status"],
        "shared-calls; fwd=miss; collapsed; detail=revalidation-failed"
    );
    let body = follower.into_body().collect().await.unwrap().to_bytes();
    assert_ne!(body, "hello");
}

#[tokio::test(start_paused = true)]
async fn an_answer_stale_on_arrival_with_an_etag_is_stored_and_revalidated_on_every_use() {
    let origin = etag_origin("max-age=0, must-revalidate", "max-age=0, must-revalidate");
    let layer = layer().map_policy(|policy| policy.x_cache_status(true));
    let service = origin.behind(&layer);

    let first = send(&service, get(URI, &[])).await;
    assert_eq!(
        first.header("cache-status"),
        Some("shared-calls; fwd=miss; stored; ttl=0")
    );
    for call in 2..=3 {
        let again = send(&service, get(URI, &[])).await;
        assert_eq!((again.status, again.text()), (StatusCode::OK, "hello"));
        assert_eq!(again.header("x-cache-status"), Some("REVALIDATED"));
        assert_eq!(origin.calls(), call);
        assert_eq!(origin.last().header("if-none-match"), Some("\"v1\""));
    }
    assert_eq!(origin.body_bytes(), 5);
}
