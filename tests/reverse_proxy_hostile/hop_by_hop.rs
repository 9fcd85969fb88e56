//! Connection-specific headers stay on their hop, and a body under framing
//! the proxy cannot relay is never passed off as a plain one.

use crate::fixtures::{Origin, Proxy, Reply, answer, exchange, get, header};

fn with_connection_headers(_: &str) -> Reply {
    Reply::KeepAlive(answer(
        "200 OK",
        &[
            "cache-control: max-age=60",
            "connection: x-internal, keep-alive",
            "x-internal: origin-secret",
            "keep-alive: timeout=5",
            "x-public: yes",
        ],
        "hello",
    ))
}

#[tokio::test]
async fn headers_named_in_connection_are_not_forwarded_to_the_origin() {
    let origin = Origin::start(with_connection_headers).await;
    let proxy = Proxy::start(origin.addr, &[]);
    let request = "GET /page HTTP/1.1\r\nHost: site.example\r\n\
        Connection: close, x-client-secret\r\nX-Client-Secret: token\r\n\
        Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\
        Upgrade: websocket\r\nX-Kept: yes\r\n\r\n";
    let response = exchange(proxy.addr, request).await;
    assert_eq!(response.status, 200);
    let heads = origin.heads();
    assert_eq!(heads.len(), 1);
    let head = &heads[0];
    for name in [
        "x-client-secret",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
    ] {
        assert_eq!(
            header(head, name),
            None,
            "{name} reached the origin:\n{head}"
        );
    }
    assert_eq!(header(head, "x-kept"), Some("yes"), "{head}");
}

#[tokio::test]
async fn headers_named_in_connection_are_not_part_of_the_key() {
    let origin = Origin::start(with_connection_headers).await;
    let proxy = Proxy::start(origin.addr, &["--ttl-ms", "60000"]);
    // `X-Forwarded-Host` is keyed, but marked for this hop only it is
    // neither keyed nor forwarded: this is the ordinary request's entry.
    let marked = "GET /page HTTP/1.1\r\nHost: site.example\r\n\
        Connection: close, x-forwarded-host\r\nX-Forwarded-Host: attacker.example\r\n\r\n";
    let response = exchange(proxy.addr, marked).await;
    assert_eq!(response.status, 200);
    assert_eq!(header(&origin.heads()[0], "x-forwarded-host"), None);
    let ordinary = exchange(proxy.addr, &get("site.example", "/page")).await;
    assert_eq!((ordinary.status, ordinary.text()), (200, "hello"));
    assert_eq!(origin.calls(), 1, "answered from the same entry");
}

#[tokio::test]
async fn headers_named_in_connection_are_neither_returned_nor_stored() {
    let origin = Origin::start(with_connection_headers).await;
    let proxy = Proxy::start(origin.addr, &["--ttl-ms", "60000"]);
    let request = "GET /page HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n";
    // From the origin, then from the stored copy.
    for _ in 0..2 {
        let response = exchange(proxy.addr, request).await;
        assert_eq!((response.status, response.text()), (200, "hello"));
        assert_eq!(origin.calls(), 1);
        assert_eq!(response.header("x-internal"), None, "{}", response.head);
        assert_eq!(response.header("keep-alive"), None, "{}", response.head);
        assert_eq!(response.header("x-public"), Some("yes"));
    }
}

fn gzip_coded(_: &str) -> Reply {
    // A close-delimited body still carrying its transfer coding.
    Reply::Close(
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ntransfer-encoding: gzip\r\n\r\n\x1f\x8b\x08\x00coded"
            .to_vec(),
    )
}

fn chunked_with_length(_: &str) -> Reply {
    Reply::KeepAlive(
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            .to_vec(),
    )
}

/// Two requests for an answer the proxy will not relay: each gets the
/// proxy's own 502, none of the origin's bytes, and reaches the origin
/// (nothing was stored).
async fn assert_502_and_not_stored(reply: fn(&str) -> Reply) {
    let origin = Origin::start(reply).await;
    let proxy = Proxy::start(origin.addr, &["--ttl-ms", "60000"]);
    for calls in 1..=2 {
        let response = exchange(proxy.addr, &get("site.example", "/framed")).await;
        assert_eq!(response.status, 502, "{response:?}");
        assert_eq!(response.text(), "Bad Gateway\n");
        assert_eq!(response.header("transfer-encoding"), None);
        assert_eq!(origin.calls(), calls, "nothing was stored");
    }
}

#[tokio::test]
async fn a_gzip_transfer_coded_answer_becomes_a_502_and_is_not_stored() {
    assert_502_and_not_stored(gzip_coded).await;
}

#[tokio::test]
async fn an_answer_with_both_transfer_encoding_and_content_length_becomes_a_502() {
    assert_502_and_not_stored(chunked_with_length).await;
}

fn http_1_0_origin(_: &str) -> Reply {
    Reply::Close(
        b"HTTP/1.0 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 5\r\n\r\nhello".to_vec(),
    )
}

#[tokio::test]
async fn the_proxy_answers_in_its_own_http_version_not_the_origins() {
    let origin = Origin::start(http_1_0_origin).await;
    let proxy = Proxy::start(origin.addr, &["--ttl-ms", "60000"]);
    // From the origin, then from the stored copy.
    for _ in 0..2 {
        let response = exchange(proxy.addr, &get("site.example", "/page")).await;
        assert_eq!((response.status, response.text()), (200, "hello"));
        assert!(
            response.head.starts_with("HTTP/1.1 200"),
            "{}",
            response.head
        );
    }
    assert_eq!(origin.calls(), 1);
}
