//! An origin that lies about its framing, stops midway, or names hop-by-hop
//! headers, behind the caching proxy of `support::hostile_origin`: what the
//! client receives byte for byte, what is stored, and how often the origin
//! is called.

mod support;

use support::hostile_origin::{HostileOrigin, Proxy, Step, get};
use support::{Gate, wait_until};

/// A second, complete response hidden in a body: a client that trusted the
/// `Content-Length` of a stored answer would read it as the next response on
/// its keep-alive connection.
const INJECTED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Injected: yes\r\n\r\ninjected";

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{:x}\r\n", body.len()).into_bytes();
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(b"\r\n0\r\n\r\n");
    bytes
}

fn response(head: &str, body: &[u8]) -> Vec<Step> {
    let mut bytes = format!("HTTP/1.1 200 OK\r\n{head}\r\n").into_bytes();
    bytes.extend_from_slice(body);
    vec![Step::Write(bytes)]
}

fn smuggled_body() -> Vec<u8> {
    [b"hello".as_slice(), INJECTED].concat()
}

/// Both `Content-Length: 5` and `Transfer-Encoding: chunked`, with a 60-ish
/// byte chunked body that hides a second response after `hello`.
fn splitting_origin(path: &str) -> Vec<Step> {
    match path {
        "/split" => response(
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n",
            &chunked(&smuggled_body()),
        ),
        // A length longer than the (chunked) body that came.
        "/short" => response(
            "Content-Length: 50\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n",
            &chunked(b"0123456789"),
        ),
        _ => response("Content-Length: 2\r\n", b"ok"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contradictory_framing_is_never_stored_and_never_splits_a_response() {
    let origin = HostileOrigin::start(splitting_origin).await;
    let proxy = Proxy::start(origin.addr).await;

    for round in 1..=2 {
        let got = get(proxy.addr, "/split").await;
        assert_eq!(got.status_line(), "HTTP/1.1 200 OK");
        let (body, after) = got.framed_body();
        assert_eq!(body.as_deref(), Some(smuggled_body().as_slice()), "{got:?}");
        assert!(
            after.is_empty(),
            "no second response after the body: {got:?}"
        );
        assert_ne!(got.header("content-length"), Some("5"));
        assert_eq!(proxy.stored(), 0, "round {round}: nothing stored");
        assert_eq!(origin.calls(), round, "each request reaches the origin");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_length_the_body_did_not_have_is_never_stored_and_never_hangs_a_client() {
    let origin = HostileOrigin::start(splitting_origin).await;
    let proxy = Proxy::start(origin.addr).await;

    for round in 1..=2 {
        let got = get(proxy.addr, "/short").await;
        assert_eq!(got.status_line(), "HTTP/1.1 200 OK");
        let (body, after) = got.framed_body();
        assert_eq!(body.as_deref(), Some(b"0123456789".as_slice()), "{got:?}");
        assert!(after.is_empty());
        assert_eq!(proxy.stored(), 0);
        assert_eq!(origin.calls(), round);
    }
}

/// A stored answer carries framing computed from what is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_answer_is_framed_by_its_stored_body() {
    fn origin(_: &str) -> Vec<Step> {
        response(
            "Transfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n",
            &chunked(b"hello, world"),
        )
    }
    let origin = HostileOrigin::start(origin).await;
    let proxy = Proxy::start(origin.addr).await;

    // The miss streams to its client as it comes, framed as the server sees fit.
    let miss = get(proxy.addr, "/chunked").await;
    let (body, after) = miss.framed_body();
    assert_eq!(
        body.as_deref(),
        Some(b"hello, world".as_slice()),
        "{miss:?}"
    );
    assert!(after.is_empty());
    // The hit is framed by the stored body alone.
    let hit = get(proxy.addr, "/chunked").await;
    assert_eq!(hit.header("content-length"), Some("12"), "{hit:?}");
    assert_eq!(hit.header("transfer-encoding"), None);
    assert_eq!(hit.rest, b"hello, world");
    assert!(hit.header("cache-status").unwrap().contains("hit"));
    assert_eq!((proxy.stored(), origin.calls()), (1, 1));
}

/// Headers named by `Connection`, and the hop-by-hop ones, are never stored
/// nor replayed; a `Transfer-Encoding` this cache does not decode (`gzip`)
/// is never stored as if it were the plain body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_and_unknown_transfer_codings_are_never_stored() {
    fn origin(path: &str) -> Vec<Step> {
        match path {
            "/hop" => response(
                "Connection: x-secret, keep-alive\r\nX-Secret: per-connection\r\n\
                 Keep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n\
                 Cache-Control: max-age=60\r\nContent-Length: 5\r\n",
                b"hello",
            ),
            _ => response(
                "Transfer-Encoding: gzip\r\nCache-Control: max-age=60\r\n",
                b"\x1f\x8b not really gzip",
            ),
        }
    }
    let origin = HostileOrigin::start(origin).await;
    let proxy = Proxy::start(origin.addr).await;

    let miss = get(proxy.addr, "/hop").await;
    let hit = get(proxy.addr, "/hop").await;
    for got in [&miss, &hit] {
        for name in ["x-secret", "keep-alive", "proxy-authenticate"] {
            assert_eq!(got.header(name), None, "{name}: {got:?}");
        }
        assert_eq!(got.header("content-length"), Some("5"));
        assert_eq!(got.rest, b"hello");
    }
    assert!(hit.header("cache-status").unwrap().contains("hit"));
    assert_eq!((proxy.stored(), origin.calls()), (1, 1));

    for round in 1..=2 {
        let got = get(proxy.addr, "/gzip").await;
        assert_eq!(got.status_line(), "HTTP/1.1 200 OK");
        assert!(!got.header("cache-status").unwrap().contains("hit"));
        assert_eq!(origin.calls(), 1 + round, "never answered from the cache");
    }
    assert_eq!(proxy.stored(), 1, "only /hop is stored");
}

/// The origin sends its head and 10 of 100 body bytes, then stalls while
/// requests wait, then closes. The leader's client gets the 10 bytes and a
/// closed connection; the waiters get the cache's 502; the origin sees one
/// call, and one more for the next request, never one per waiter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_fails_hands_its_waiters_the_failure_not_a_herd() {
    const WAITERS: usize = 9;
    let stall = Gate::closed();
    let script_gate = stall.clone();
    let origin = HostileOrigin::start_with(std::sync::Arc::new(move |_: &str| {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nCache-Control: max-age=60\r\n\r\n";
        vec![
            Step::Write([head.as_bytes(), &[b'x'; 10]].concat()),
            Step::Wait(script_gate.clone()),
        ]
    }))
    .await;
    let proxy = Proxy::start(origin.addr).await;

    let leader = tokio::spawn(get(proxy.addr, "/stalls"));
    wait_until("the leader's call", || origin.calls() == 1).await;
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| tokio::spawn(get(proxy.addr, "/stalls")))
        .collect();
    wait_until("the waiters to wait", || proxy.waiting.get() == 1 + WAITERS).await;
    stall.release();

    let leader = leader.await.unwrap();
    assert_eq!(leader.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(leader.header("content-length"), Some("100"));
    assert_eq!(
        leader.rest, [b'x'; 10],
        "what came, then the connection ends"
    );
    for waiter in waiters {
        let got = waiter.await.unwrap();
        assert_eq!(got.status_line(), "HTTP/1.1 502 Bad Gateway", "{got:?}");
        assert!(
            got.header("cache-status")
                .unwrap()
                .ends_with("detail=upstream-error")
        );
        assert_eq!(got.rest, b"Bad Gateway");
    }
    assert_eq!(origin.calls(), 1, "no herd after the failure");
    assert_eq!(proxy.stored(), 0);

    let next = tokio::spawn(get(proxy.addr, "/stalls"));
    wait_until("the next request's call", || origin.calls() == 2).await;
    drop(next);
}

/// An origin that accepts a request and never answers. With no setting of
/// their own, the requests waiting for its one call stop waiting after the
/// default lock timeout (5 s, as nginx's cache lock) and make their own
/// calls; bounding those is the backend timeout the docs ask users to add.
/// When the origin finally answers, each request gets its own answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_origin_holds_no_waiter_past_the_default_lock_timeout() {
    const WAITERS: usize = 4;
    let silence = Gate::closed();
    let script_gate = silence.clone();
    let origin = HostileOrigin::start_with(std::sync::Arc::new(move |_: &str| {
        let unavailable = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        vec![
            Step::Wait(script_gate.clone()),
            Step::Write(unavailable.to_vec()),
        ]
    }))
    .await;
    let proxy = Proxy::start(origin.addr).await;

    let leader = tokio::spawn(get(proxy.addr, "/silent"));
    wait_until("the leader's call", || origin.calls() == 1).await;
    let waiting_since = std::time::Instant::now();
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| tokio::spawn(get(proxy.addr, "/silent")))
        .collect();
    wait_until("the waiters to wait", || proxy.waiting.get() == 1 + WAITERS).await;
    assert_eq!(origin.calls(), 1, "one call while they wait");
    wait_until("the waiters to stop waiting", || {
        origin.calls() == 1 + WAITERS
    })
    .await;
    let waited = waiting_since.elapsed();
    assert!(
        waited >= shared_calls::cache::DEFAULT_LOCK_TIMEOUT - std::time::Duration::from_millis(100),
        "released after {waited:?}, before the lock timeout"
    );
    silence.release();
    for request in waiters.into_iter().chain([leader]) {
        let got = request.await.unwrap();
        assert_eq!(got.status_line(), "HTTP/1.1 503 Service Unavailable");
    }
    assert_eq!(proxy.stored(), 0);
}
