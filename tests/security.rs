//! A shared cache in front of multi-user traffic: one user's answer never
//! reaches another, `Set-Cookie` is never replayed, `Vary` is honoured,
//! requests for different resources never share, server errors and private
//! answers are never stored. Real axum server on loopback.

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use http::header::{ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, SET_COOKIE, VARY};
use http::{HeaderMap, Request, StatusCode, Uri};
use shared_calls::http_policy::freshness::Credential;
use shared_calls::{SharedCallsLayer, default_key};

use support::{
    CountWaiting, Counter, Gate, assert_hit, bounded, burst, fetch, fetch_with, serve_axum,
    wait_until,
};

/// A GET handler that counts its calls, waits at `gate`, and answers with
/// `respond(request headers, URI, call number)`.
fn handler<R>(calls: &Counter, gate: &Gate, respond: R) -> MethodRouter
where
    R: Fn(&HeaderMap, &Uri, usize) -> Response + Clone + Send + Sync + 'static,
{
    let (calls, gate) = (calls.clone(), gate.clone());
    get(move |headers: HeaderMap, uri: Uri| {
        let (calls, gate, respond) = (calls.clone(), gate.clone(), respond.clone());
        async move {
            let n = calls.hit();
            gate.wait().await;
            respond(&headers, &uri, n)
        }
    })
}

/// `route` behind the default layer, with the waiting counter outside it.
async fn serve(route: MethodRouter, waiting: &Counter) -> SocketAddr {
    let app = Router::new()
        .route("/{*path}", route)
        .layer(SharedCallsLayer::new(default_key).jitter(0.0))
        .layer(CountWaiting(waiting.clone()));
    serve_axum(app).await
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map_or("", |value| value.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_answers_never_reach_another_user() {
    for credential in [AUTHORIZATION.as_str(), "cookie"] {
        let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
        let route = handler(&calls, &gate, move |headers, _, _| {
            format!("for {}", header(headers, credential)).into_response()
        });
        let addr = serve(route, &waiting).await;

        let alice = tokio::spawn(fetch_with(addr, "/me", &[(credential, "alice")]));
        let bob = tokio::spawn(fetch_with(addr, "/me", &[(credential, "bob")]));
        let anonymous = tokio::spawn(fetch(addr, "/me"));
        // All three are in the handler at once: nobody waits for anybody.
        wait_until("three handler calls", || calls.get() == 3).await;
        gate.release();
        let alice = bounded("alice", alice).await.unwrap();
        let bob = bounded("bob", bob).await.unwrap();
        let anonymous = bounded("anonymous", anonymous).await.unwrap();
        assert_eq!(alice.text(), "for alice");
        assert_eq!(bob.text(), "for bob");
        assert_eq!(anonymous.text(), "for ");
        for got in [&alice, &bob] {
            assert_eq!(
                got.cache_status(),
                "shared-calls; fwd=bypass; detail=credentials"
            );
        }

        // Later: the anonymous answer is stored and served to anonymous
        // requests only; each user's request reaches the handler.
        assert_hit(&fetch(addr, "/me").await, "for ");
        assert_eq!(
            fetch_with(addr, "/me", &[(credential, "bob")]).await.text(),
            "for bob"
        );
        assert_eq!(
            fetch_with(addr, "/me", &[(credential, "alice")])
                .await
                .text(),
            "for alice"
        );
        assert_eq!(calls.get(), 5, "{credential}");
    }
}

type KeyFn = fn(&Request<Body>) -> Option<Vec<u8>>;

/// The layer of an application whose key includes `Authorization`, and
/// which says so.
fn keyed_by_authorization() -> SharedCallsLayer<KeyFn> {
    let key: KeyFn = |request| {
        let mut key = default_key(request)?.as_bytes().to_vec();
        key.extend_from_slice(b"\nauthorization:");
        if let Some(value) = request.headers().get(AUTHORIZATION) {
            key.extend_from_slice(value.as_bytes());
        }
        Some(key)
    };
    SharedCallsLayer::new(key).jitter(0.0).map_policy(|policy| {
        policy.map_rules(|rules| rules.credentials_in_key([Credential::Authorization]))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_the_key_keep_users_apart() {
    let calls = Counter::default();
    let gate = Gate::open();
    // Public answers, per user: the key includes the Authorization header.
    let public = handler(&calls, &gate, |headers, _, n| {
        let body = format!("{} {n}", header(headers, "authorization"));
        ([(CACHE_CONTROL, "public, max-age=60")], body).into_response()
    });
    // Answers that don't say they may be shared: never stored.
    let private = handler(&calls, &gate, |headers, _, n| {
        format!("{} {n}", header(headers, "authorization")).into_response()
    });
    let app = Router::new()
        .route("/public", public)
        .route("/private", private)
        .layer(keyed_by_authorization());
    let addr = serve_axum(app).await;
    let alice = [("authorization", "alice")];
    let bob = [("authorization", "bob")];

    assert_eq!(fetch_with(addr, "/public", &alice).await.text(), "alice 1");
    assert_hit(&fetch_with(addr, "/public", &alice).await, "alice 1");
    assert_eq!(fetch_with(addr, "/public", &bob).await.text(), "bob 2");
    assert_hit(&fetch_with(addr, "/public", &bob).await, "bob 2");
    assert_hit(&fetch_with(addr, "/public", &alice).await, "alice 1");
    assert_eq!(fetch(addr, "/public").await.text(), " 3");

    assert_eq!(fetch_with(addr, "/private", &alice).await.text(), "alice 4");
    assert_eq!(fetch_with(addr, "/private", &alice).await.text(), "alice 5");
    assert_eq!(calls.get(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_authorization_never_opens_the_cache_to_cookies() {
    let calls = Counter::default();
    let gate = Gate::open();
    let route = handler(&calls, &gate, |headers, _, n| {
        let body = format!(
            "{} {} {n}",
            header(headers, "authorization"),
            header(headers, "cookie")
        );
        ([(CACHE_CONTROL, "public, max-age=60")], body).into_response()
    });
    let app = Router::new().route("/r", route);
    let addr = serve_axum(app.layer(keyed_by_authorization())).await;
    let alice = [("authorization", "alice")];
    let alice_cookie = [("authorization", "alice"), ("cookie", "user=bob")];
    let cookie = [("cookie", "user=bob")];

    assert_eq!(fetch_with(addr, "/r", &alice).await.text(), "alice  1");
    assert_hit(&fetch_with(addr, "/r", &alice).await, "alice  1");
    for (n, headers) in [
        (2, &alice_cookie[..]),
        (3, &alice_cookie),
        (4, &cookie),
        (5, &cookie),
    ] {
        let got = fetch_with(addr, "/r", headers).await;
        let expected = format!(
            "{} {} {n}",
            header_of(headers, "authorization"),
            header_of(headers, "cookie")
        );
        assert_eq!(got.text(), expected);
        assert!(
            got.cache_status().contains("fwd=bypass"),
            "{headers:?}: {}",
            got.cache_status()
        );
    }
    assert_eq!(calls.get(), 5);
}

fn header_of<'a>(headers: &[(&str, &'a str)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, value)| value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_is_never_replayed() {
    const N: usize = 5;
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let route = handler(&calls, &gate, |_, _, n| {
        ([(SET_COOKIE, format!("session={n}"))], n.to_string()).into_response()
    });
    let addr = serve(route, &waiting).await;

    let answers = burst(addr, "/login", &[], N, &calls, &waiting, &gate).await;
    assert_eq!(calls.get(), N, "every waiting request called on its own");
    let mut cookies: Vec<_> = answers
        .iter()
        .map(|got| {
            let cookie = got.header("set-cookie").unwrap();
            assert_eq!(cookie, format!("session={}", got.text()), "its own cookie");
            cookie.to_owned()
        })
        .collect();
    cookies.sort();
    cookies.dedup();
    assert_eq!(cookies.len(), N, "no cookie reached two clients");

    let later = fetch(addr, "/login").await;
    assert_eq!(later.header("set-cookie"), Some("session=6"));
    assert_eq!(
        later.cache_status(),
        "shared-calls; fwd=miss; detail=hit-for-miss"
    );
    assert_eq!(calls.get(), N + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_accept_encoding_is_never_crossed() {
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let route = handler(&calls, &gate, |headers, _, _| {
        let body = format!("encoded for {:?}", header(headers, "accept-encoding"));
        (
            [(VARY, "Accept-Encoding"), (CACHE_CONTROL, "max-age=60")],
            body,
        )
            .into_response()
    });
    let addr = serve(route, &waiting).await;
    let gzip = [(ACCEPT_ENCODING.as_str(), "gzip")];
    let br = [(ACCEPT_ENCODING.as_str(), "br")];

    // A gzip request leads; a gzip and a br request wait for it.
    let leader = tokio::spawn(fetch_with(addr, "/v", &gzip));
    wait_until("the leader in the handler", || {
        calls.get() == 1 && waiting.get() == 1
    })
    .await;
    let same = tokio::spawn(fetch_with(addr, "/v", &gzip));
    let other = tokio::spawn(fetch_with(addr, "/v", &br));
    wait_until("both waiting", || waiting.get() == 3).await;
    gate.release();
    let leader = bounded("leader", leader).await.unwrap();
    let same = bounded("same", same).await.unwrap();
    let other = bounded("other", other).await.unwrap();
    assert_eq!(leader.text(), r#"encoded for "gzip""#);
    assert_eq!(same.text(), r#"encoded for "gzip""#);
    assert_eq!(
        same.cache_status_shape().0,
        "shared-calls; fwd=miss; collapsed; stored; ttl=N"
    );
    assert_eq!(
        other.text(),
        r#"encoded for "br""#,
        "the br request called for its own variant"
    );
    assert_eq!(
        other.cache_status_shape().0,
        "shared-calls; fwd=miss; stored; ttl=N"
    );
    assert_eq!(calls.get(), 2);

    // Each stored variant serves its own requests only.
    assert_hit(
        &fetch_with(addr, "/v", &gzip).await,
        r#"encoded for "gzip""#,
    );
    assert_hit(&fetch_with(addr, "/v", &br).await, r#"encoded for "br""#);
    let none = fetch(addr, "/v").await;
    assert_eq!(none.text(), r#"encoded for """#);
    assert_eq!(
        none.cache_status_shape().0,
        "shared-calls; fwd=miss; stored; ttl=N"
    );
    assert_eq!(calls.get(), 3);
    assert_hit(
        &fetch_with(addr, "/v", &gzip).await,
        r#"encoded for "gzip""#,
    );
}

/// A path, the request's headers, and the answer it must get.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_hosts_query_orders_and_forwarded_hosts_never_share() {
    let (calls, waiting) = (Counter::default(), Counter::default());
    let route = handler(&calls, &Gate::open(), |headers, uri, _| {
        let host = header(headers, "host");
        let forwarded = header(headers, "x-forwarded-host");
        format!("{host} {uri} {forwarded}").into_response()
    });
    let addr = serve(route, &waiting).await;
    let cases: [Case; 5] = [
        ("/q?a=1&b=2", &[("host", "a.test")], "a.test /q?a=1&b=2 "),
        ("/q?a=1&b=2", &[("host", "b.test")], "b.test /q?a=1&b=2 "),
        ("/q?b=2&a=1", &[("host", "a.test")], "a.test /q?b=2&a=1 "),
        (
            "/q?a=1&b=2",
            &[("host", "a.test"), ("x-forwarded-host", "evil.test")],
            "a.test /q?a=1&b=2 evil.test",
        ),
        (
            "/q?a=1&b=2",
            &[("host", "a.test"), ("x-forwarded-host", "other.test")],
            "a.test /q?a=1&b=2 other.test",
        ),
    ];
    for (path, headers, body) in cases {
        let got = fetch_with(addr, path, headers).await;
        assert_eq!(got.text(), body);
        assert_eq!(
            got.cache_status_shape().0,
            "shared-calls; fwd=miss; stored; ttl=N"
        );
    }
    assert_eq!(calls.get(), cases.len());
    for (path, headers, body) in cases {
        assert_hit(&fetch_with(addr, path, headers).await, body);
    }
    assert_eq!(calls.get(), cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_shared_with_waiters_but_never_stored() {
    const N: usize = 10;
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let route = handler(&calls, &gate, |_, _, n| {
        (StatusCode::SERVICE_UNAVAILABLE, format!("down {n}")).into_response()
    });
    let addr = serve(route, &waiting).await;

    let answers = burst(addr, "/down", &[], N, &calls, &waiting, &gate).await;
    assert_eq!(calls.get(), 1);
    let mut leaders = 0;
    for got in &answers {
        assert_eq!(
            (got.status, got.text()),
            (StatusCode::SERVICE_UNAVAILABLE, "down 1")
        );
        match got.cache_status().as_str() {
            "shared-calls; fwd=miss" => leaders += 1,
            "shared-calls; fwd=miss; collapsed" => {}
            other => panic!("unexpected Cache-Status {other:?}"),
        }
    }
    assert_eq!(leaders, 1);

    let later = fetch(addr, "/down").await;
    assert_eq!(later.text(), "down 2", "not stored");
    assert_eq!(later.cache_status(), "shared-calls; fwd=miss");
    assert_eq!(calls.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_no_store_answers_are_never_stored() {
    const N: usize = 4;
    let directives = [
        "private",
        "no-store",
        "private, max-age=60",
        "no-store, max-age=60",
        "public, max-age=60, no-store",
        "PRIVATE",
    ];
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let route = handler(&calls, &gate, |headers, _, n| {
        let directive = header(headers, "x-directive").to_owned();
        ([(CACHE_CONTROL, directive)], format!("call {n}")).into_response()
    });
    let addr = serve(route, &waiting).await;

    for (case, directive) in directives.iter().enumerate() {
        let path = format!("/cc/{case}");
        let headers = [("x-directive", *directive)];
        let before = calls.get();
        let answers = burst(addr, &path, &headers, N, &calls, &waiting, &gate).await;
        assert_eq!(
            calls.get(),
            before + N,
            "{directive}: each called on its own"
        );
        let mut bodies: Vec<_> = answers.iter().map(|got| got.text().to_owned()).collect();
        bodies.sort();
        bodies.dedup();
        assert_eq!(
            bodies.len(),
            N,
            "{directive}: nobody received another's answer"
        );

        let later = fetch_with(addr, &path, &headers).await;
        assert_eq!(
            later.text(),
            format!("call {}", before + N + 1),
            "{directive}"
        );
        // Close the gate again for the next case.
        gate.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_on_a_server_error_is_never_replayed() {
    const N: usize = 5;
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let route = handler(&calls, &gate, |_, _, n| {
        let cookie = [(SET_COOKIE, format!("session={n}"))];
        (StatusCode::SERVICE_UNAVAILABLE, cookie, n.to_string()).into_response()
    });
    let addr = serve(route, &waiting).await;

    let answers = burst(addr, "/error", &[], N, &calls, &waiting, &gate).await;
    let mut own = 0;
    for got in &answers {
        match got.status {
            // The leader's own answer, with its own cookie.
            StatusCode::SERVICE_UNAVAILABLE => {
                let cookie = got.header("set-cookie").unwrap();
                assert_eq!(cookie, format!("session={}", got.text()), "its own cookie");
                own += 1;
            }
            // The requests that waited for a failure meant for its own client:
            // the cache's 502, no cookie.
            status => {
                assert_eq!(status, StatusCode::BAD_GATEWAY);
                assert_eq!(got.header("set-cookie"), None, "another's cookie");
            }
        }
    }
    assert_eq!(own, 1);
    assert_eq!(calls.get(), 1, "a failure makes no herd of calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_cache_control_never_hides_private_or_no_store() {
    const N: usize = 4;
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let route = handler(&calls, &gate, |headers, _, n| {
        let directive = header(headers, "x-directive").to_owned();
        ([(CACHE_CONTROL, directive)], format!("call {n}")).into_response()
    });
    let addr = serve(route, &waiting).await;

    for (case, directive) in ["private, max-age=soon", "no-store, max-age=\"x"]
        .iter()
        .enumerate()
    {
        let path = format!("/malformed/{case}");
        let before = calls.get();
        let headers = [("x-directive", *directive)];
        let answers = burst(addr, &path, &headers, N, &calls, &waiting, &gate).await;
        let mut bodies: Vec<_> = answers.iter().map(|got| got.text().to_owned()).collect();
        bodies.sort();
        bodies.dedup();
        assert_eq!(
            bodies.len(),
            N,
            "{directive}: nobody received another's answer"
        );
        assert_eq!(calls.get(), before + N, "{directive}");
        gate.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_that_varies_is_never_crossed() {
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let route = handler(&calls, &gate, |headers, _, _| {
        let body = format!("error for {:?}", header(headers, "accept-encoding"));
        let vary = [(VARY, "Accept-Encoding")];
        (StatusCode::SERVICE_UNAVAILABLE, vary, body).into_response()
    });
    let addr = serve(route, &waiting).await;

    let leader = tokio::spawn(fetch_with(addr, "/v", &[("accept-encoding", "gzip")]));
    wait_until("the leader in the handler", || {
        calls.get() == 1 && waiting.get() == 1
    })
    .await;
    let other = tokio::spawn(fetch_with(addr, "/v", &[("accept-encoding", "br")]));
    wait_until("the other waiting", || waiting.get() == 2).await;
    gate.release();
    let leader = bounded("leader", leader).await.unwrap();
    let other = bounded("other", other).await.unwrap();
    assert_eq!(leader.text(), r#"error for "gzip""#);
    // Never the other variant's error: the cache's own 502, and no herd.
    assert_eq!(other.status, StatusCode::BAD_GATEWAY);
    assert_eq!(other.text(), "Bad Gateway");
    assert_eq!(calls.get(), 1);
}
