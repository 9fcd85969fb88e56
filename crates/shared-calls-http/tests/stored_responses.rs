//! What the layer concludes from a response, through the public API over a
//! scripted origin: `Age` (RFC 9111 §4.2.3, §5.1), heuristic freshness from
//! `Last-Modified` (§4.2.2), qualified `no-cache` / `private` (§5.2.2.4,
//! §5.2.2.7) and partial content (§3.3).

mod support;

use std::time::{Duration, SystemTime};

use http::StatusCode;
use shared_calls_http::freshness::http_date;
use support::{Got, Origin, bounded, get, layer, respond, send};
use tokio::time::advance;

const URI: &str = "http://origin.test/page";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// An origin answering `200 "body"` with `headers` on every call.
fn origin(headers: &'static [(&'static str, &'static str)]) -> Origin {
    Origin::new(move |_, _| respond(StatusCode::OK, headers, "body"))
}

fn cache_status(got: &Got) -> &str {
    got.header("cache-status")
        .expect("every answer says what the cache did")
}

/// Two requests one second apart: the second is another backend call when
/// the first answer was not kept as fresh.
async fn twice(origin: &Origin) -> (Got, Got) {
    let service = origin.behind(&layer());
    let first = send(&service, get(URI, &[])).await;
    advance(secs(1)).await;
    let second = send(&service, get(URI, &[])).await;
    (first, second)
}

/// Asserts the answer went to its own client and was not stored: the next
/// request is a backend call of its own.
fn assert_not_stored(origin: &Origin, first: &Got, second: &Got) {
    assert_eq!(origin.calls(), 2);
    assert_eq!(
        (first.status, second.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert_eq!((first.text(), second.text()), ("body", "body"));
    assert!(
        !cache_status(first).contains("stored"),
        "{}",
        cache_status(first)
    );
    assert_eq!(
        cache_status(second),
        "shared-calls; fwd=miss; detail=hit-for-miss"
    );
}

// ---------------------------------------------------------------------------
// Age (§4.2.3, §5.1)
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn several_age_lines_make_the_answer_stale_on_arrival() {
    let origin = origin(&[("cache-control", "max-age=60"), ("age", "5"), ("age", "5")]);
    let (first, second) = twice(&origin).await;
    assert_not_stored(&origin, &first, &second);
}

#[tokio::test(start_paused = true)]
async fn an_age_list_makes_the_answer_stale_on_arrival() {
    let origin = origin(&[("cache-control", "max-age=60"), ("age", "0, old")]);
    let (first, second) = twice(&origin).await;
    assert_not_stored(&origin, &first, &second);
}

#[tokio::test(start_paused = true)]
async fn a_non_numeric_age_makes_the_answer_stale_on_arrival() {
    let origin = origin(&[("cache-control", "max-age=60"), ("age", "old")]);
    let (first, second) = twice(&origin).await;
    assert_not_stored(&origin, &first, &second);
}

#[tokio::test(start_paused = true)]
async fn an_age_reaching_max_age_is_never_served_as_fresh() {
    let origin = origin(&[("cache-control", "max-age=60"), ("age", "60")]);
    let (first, second) = twice(&origin).await;
    assert_not_stored(&origin, &first, &second);
    // The origin's Age reaches the client that asked.
    assert_eq!(first.header("age"), Some("60"));
}

#[tokio::test(start_paused = true)]
async fn a_large_age_shortens_the_time_an_answer_is_served_fresh() {
    let origin = origin(&[("cache-control", "max-age=100"), ("age", "90")]);
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    advance(secs(8)).await;
    let hit = send(&service, get(URI, &[])).await;
    assert_eq!(origin.calls(), 1);
    assert_eq!(cache_status(&hit), "shared-calls; hit; ttl=1");
    assert_eq!(hit.header("age"), Some("98"));
    advance(secs(3)).await;
    let expired = send(&service, get(URI, &[])).await;
    assert_eq!(origin.calls(), 2);
    assert!(cache_status(&expired).starts_with("shared-calls; fwd=miss"));
}

#[tokio::test(start_paused = true)]
async fn an_answer_stale_on_arrival_is_kept_for_its_stale_while_revalidate_window() {
    let origin = Origin::new(|_, call| {
        let body = if call == 1 { "old" } else { "new" };
        respond(
            StatusCode::OK,
            &[
                ("cache-control", "max-age=60, stale-while-revalidate=30"),
                ("age", "100"),
            ],
            body,
        )
    });
    let service = origin.behind(&layer());
    let first = send(&service, get(URI, &[])).await;
    assert_eq!(first.text(), "old");
    advance(secs(1)).await;
    let stale = send(&service, get(URI, &[])).await;
    assert_eq!(stale.text(), "old");
    assert_eq!(
        cache_status(&stale),
        "shared-calls; hit; fwd=stale; detail=stale-while-revalidate"
    );
    assert_eq!(stale.header("age"), Some("101"));
    // One background refresh, and nothing more.
    bounded("the background refresh", async {
        while origin.calls() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_answer_stale_on_arrival_with_must_revalidate_is_not_served_stale() {
    let origin = origin(&[
        (
            "cache-control",
            "max-age=60, must-revalidate, stale-while-revalidate=30",
        ),
        ("age", "100"),
    ]);
    let (first, second) = twice(&origin).await;
    assert_not_stored(&origin, &first, &second);
}

// ---------------------------------------------------------------------------
// Heuristic freshness (§4.2.2)
// ---------------------------------------------------------------------------

/// An origin whose answers were last modified `modified_ago` before their
/// `Date`, with `status` and no explicit freshness.
fn last_modified(status: StatusCode, modified_ago: Duration) -> Origin {
    Origin::new(move |_, _| {
        let now = SystemTime::now();
        let date = http_date(now);
        let modified = http_date(now - modified_ago);
        let headers = [
            ("date", date.to_str().unwrap()),
            ("last-modified", modified.to_str().unwrap()),
        ];
        let mut response = respond(status, &[], "body");
        for (name, value) in headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        response
    })
}

#[tokio::test(start_paused = true)]
async fn last_modified_gives_a_tenth_of_the_time_since_as_freshness() {
    let origin = last_modified(StatusCode::OK, secs(1000));
    let service = origin.behind(&layer().ttl(secs(5)));
    send(&service, get(URI, &[])).await;
    // 100 s, not the layer's 5 s.
    advance(secs(98)).await;
    let hit = send(&service, get(URI, &[])).await;
    assert_eq!(origin.calls(), 1);
    assert_eq!(cache_status(&hit), "shared-calls; hit; ttl=1");
    advance(secs(3)).await;
    send(&service, get(URI, &[])).await;
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_last_modified_heuristic_is_capped_by_max_ttl() {
    let origin = last_modified(StatusCode::OK, secs(10 * 365 * 24 * 3600));
    let layer = layer().map_policy(|p| p.map_rules(|r| r.max_ttl(secs(50))));
    let service = origin.behind(&layer);
    send(&service, get(URI, &[])).await;
    advance(secs(48)).await;
    let hit = send(&service, get(URI, &[])).await;
    assert_eq!(cache_status(&hit), "shared-calls; hit; ttl=1");
    advance(secs(3)).await;
    send(&service, get(URI, &[])).await;
    assert_eq!(origin.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_last_modified_heuristic_is_raised_to_min_ttl() {
    let origin = last_modified(StatusCode::OK, secs(100));
    let layer = layer().map_policy(|p| p.map_rules(|r| r.min_ttl(secs(30))));
    let service = origin.behind(&layer);
    send(&service, get(URI, &[])).await;
    advance(secs(28)).await;
    let hit = send(&service, get(URI, &[])).await;
    assert_eq!(cache_status(&hit), "shared-calls; hit; ttl=1");
    assert_eq!(origin.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_status_that_is_not_heuristically_cacheable_ignores_last_modified() {
    let origin = last_modified(StatusCode::FOUND, secs(1000));
    let (first, second) = twice(&origin).await;
    assert_eq!(origin.calls(), 2);
    assert_eq!(
        (first.status, second.status),
        (StatusCode::FOUND, StatusCode::FOUND)
    );
    assert_eq!(
        cache_status(&second),
        "shared-calls; fwd=miss; detail=hit-for-miss"
    );
}

#[tokio::test(start_paused = true)]
async fn explicit_freshness_wins_over_last_modified() {
    let origin = Origin::new(|_, _| {
        let modified = http_date(SystemTime::now() - secs(100_000));
        let mut response = respond(StatusCode::OK, &[("cache-control", "max-age=3")], "body");
        response.headers_mut().insert("last-modified", modified);
        response
    });
    let service = origin.behind(&layer());
    send(&service, get(URI, &[])).await;
    advance(secs(4)).await;
    send(&service, get(URI, &[])).await;
    assert_eq!(origin.calls(), 2);
}

// ---------------------------------------------------------------------------
// Qualified no-cache and private (§5.2.2.4, §5.2.2.7)
// ---------------------------------------------------------------------------

/// The leader's client, a request that waited for the same call, and a hit
/// later on.
async fn leader_follower_hit(origin: &Origin) -> (Got, Got, Got) {
    let service = origin.behind(&layer());
    let (leader, follower) =
        tokio::join!(send(&service, get(URI, &[])), send(&service, get(URI, &[])));
    advance(secs(1)).await;
    let hit = send(&service, get(URI, &[])).await;
    (leader, follower, hit)
}

#[tokio::test(start_paused = true)]
async fn no_cache_naming_a_field_stores_the_answer_without_it() {
    let origin = Origin::new(|_, _| {
        respond(
            StatusCode::OK,
            &[
                ("cache-control", r#"max-age=60, no-cache="x-secret""#),
                ("x-secret", "for the first client"),
                ("x-kept", "for everyone"),
            ],
            "body",
        )
    })
    .delayed(secs(1));
    let (leader, follower, hit) = leader_follower_hit(&origin).await;
    assert_eq!(origin.calls(), 1);
    assert_eq!(leader.header("x-secret"), Some("for the first client"));
    assert_eq!(
        (follower.header("x-secret"), hit.header("x-secret")),
        (None, None)
    );
    for got in [&leader, &follower, &hit] {
        assert_eq!((got.status, got.text()), (StatusCode::OK, "body"));
        assert_eq!(got.header("x-kept"), Some("for everyone"));
    }
    assert_eq!(
        cache_status(&follower),
        "shared-calls; fwd=miss; collapsed; stored; ttl=59"
    );
    assert_eq!(cache_status(&hit), "shared-calls; hit; ttl=58");
}

#[tokio::test(start_paused = true)]
async fn private_naming_set_cookie_stores_the_answer_without_the_cookie() {
    let origin = Origin::new(|_, _| {
        respond(
            StatusCode::OK,
            &[
                (
                    "cache-control",
                    r#"max-age=60, private="Set-Cookie, x-user""#,
                ),
                ("set-cookie", "session=first-client"),
                ("x-user", "first"),
            ],
            "body",
        )
    })
    .delayed(secs(1));
    let (leader, follower, hit) = leader_follower_hit(&origin).await;
    assert_eq!(origin.calls(), 1);
    assert_eq!(leader.header("set-cookie"), Some("session=first-client"));
    assert_eq!(leader.header("x-user"), Some("first"));
    for got in [&follower, &hit] {
        assert_eq!((got.status, got.text()), (StatusCode::OK, "body"));
        assert_eq!(
            (got.header("set-cookie"), got.header("x-user")),
            (None, None)
        );
    }
    assert!(cache_status(&follower).contains("collapsed; stored"));
    assert!(cache_status(&hit).contains("; hit;"));
}

#[tokio::test(start_paused = true)]
async fn the_fetching_client_gets_the_named_fields_when_the_body_came_at_once() {
    let origin = origin(&[
        ("cache-control", r#"max-age=60, private="x-user""#),
        ("x-user", "first"),
    ]);
    let (first, second) = twice(&origin).await;
    assert_eq!(origin.calls(), 1);
    assert_eq!(first.header("x-user"), Some("first"));
    assert_eq!(second.header("x-user"), None);
    assert_eq!(cache_status(&first), "shared-calls; fwd=miss");
    assert_eq!(cache_status(&second), "shared-calls; hit; ttl=58");
}

#[tokio::test(start_paused = true)]
async fn unqualified_private_is_still_not_stored() {
    let origin = origin(&[("cache-control", "max-age=60, private")]);
    let (first, second) = twice(&origin).await;
    assert_not_stored(&origin, &first, &second);
}

#[tokio::test(start_paused = true)]
async fn a_qualifier_that_names_no_field_counts_as_unqualified() {
    let origin = origin(&[("cache-control", r#"max-age=60, private="""#)]);
    let (first, second) = twice(&origin).await;
    assert_not_stored(&origin, &first, &second);
}

// ---------------------------------------------------------------------------
// Partial content (§3.3)
// ---------------------------------------------------------------------------

fn partial() -> Origin {
    Origin::new(|_, _| {
        respond(
            StatusCode::PARTIAL_CONTENT,
            &[
                ("cache-control", "max-age=60"),
                ("content-range", "bytes 0-3/10"),
            ],
            "body",
        )
    })
    .delayed(secs(1))
}

#[tokio::test(start_paused = true)]
async fn a_206_is_passed_through_and_never_stored() {
    let origin = partial();
    let (first, second) = twice(&origin).await;
    assert_eq!(origin.calls(), 2);
    for got in [&first, &second] {
        assert_eq!(
            (got.status, got.text()),
            (StatusCode::PARTIAL_CONTENT, "body")
        );
        assert_eq!(got.header("content-range"), Some("bytes 0-3/10"));
    }
    assert_eq!(cache_status(&first), "shared-calls; fwd=miss");
    assert_eq!(
        cache_status(&second),
        "shared-calls; fwd=miss; detail=hit-for-miss"
    );
}

#[tokio::test(start_paused = true)]
async fn a_206_is_never_handed_to_a_waiting_request_as_its_answer() {
    let origin = partial();
    let service = origin.behind(&layer());
    let (leader, follower) =
        tokio::join!(send(&service, get(URI, &[])), send(&service, get(URI, &[])));
    // The waiting request made its own call.
    assert_eq!(origin.calls(), 2);
    for got in [&leader, &follower] {
        assert_eq!(
            (got.status, got.text()),
            (StatusCode::PARTIAL_CONTENT, "body")
        );
        assert!(
            !cache_status(got).contains("collapsed"),
            "{}",
            cache_status(got)
        );
    }
}
