//! Clients and origins that hold a connection without finishing: each is
//! cut off after its timeout.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixtures::{Origin, Proxy, Reply, answer, bounded, exchange, get, read_response};

fn hello(_: &str) -> Reply {
    Reply::KeepAlive(answer("200 OK", &["cache-control: max-age=60"], "hello"))
}

/// Reads until the proxy closes `stream` (bounded); returns what it sent
/// meanwhile and how long that took.
async fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut received = Vec::new();
    let mut chunk = [0; 1024];
    bounded("the proxy to close the connection", async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(read) => received.extend_from_slice(&chunk[..read]),
            }
        }
    })
    .await;
    (received, start.elapsed())
}

/// Asserts that something took `timeout`: not less, and at most a few
/// seconds of a busy machine more.
fn assert_took(what: &str, elapsed: Duration, timeout: Duration) {
    assert!(
        elapsed >= timeout.saturating_sub(Duration::from_millis(100))
            && elapsed < timeout + Duration::from_secs(3),
        "{what} after {elapsed:?}, expected {timeout:?}"
    );
}

#[tokio::test]
async fn a_request_head_sent_one_byte_per_second_is_cut_off_after_the_header_timeout() {
    let origin = Origin::start(hello).await;
    let proxy = Proxy::start(origin.addr, &["--header-timeout-ms", "2000"]);
    let head = get("site.example", "/slow");
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let start = Instant::now();
    let mut sent = 0;
    let closed = async {
        let mut chunk = [0; 1024];
        let read = reader.read(&mut chunk).await;
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the proxy answered an unfinished head"
        );
    };
    let trickle = async {
        for byte in head.as_bytes() {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    bounded("the proxy to close a slow head", async {
        tokio::select! {
            () = closed => {}
            () = trickle => panic!("the whole head went through"),
        }
    })
    .await;
    assert_took("closed", start.elapsed(), Duration::from_secs(2));
    assert!(sent < head.len(), "{sent} of {} bytes sent", head.len());
    assert_eq!(origin.calls(), 0);
}

#[tokio::test]
async fn a_connection_that_sends_no_request_is_closed_after_the_header_timeout() {
    let origin = Origin::start(hello).await;
    let flags = ["--header-timeout-ms", "1000", "--idle-timeout-ms", "30000"];
    let proxy = Proxy::start(origin.addr, &flags);
    // Nothing at all, and the first half of the HTTP/2 preface (before
    // hyper knows which protocol it serves, so before its own timer).
    for prefix in ["", "PRI * HTTP/2.0\r\n"] {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        stream.write_all(prefix.as_bytes()).await.unwrap();
        let (received, elapsed) = until_closed(&mut stream).await;
        assert!(received.is_empty(), "{prefix:?}: {received:?}");
        assert_took("closed", elapsed, Duration::from_secs(1));
    }
    assert_eq!(origin.calls(), 0);
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let origin = Origin::start(hello).await;
    let flags = ["--idle-timeout-ms", "1000", "--header-timeout-ms", "30000"];
    let proxy = Proxy::start(origin.addr, &flags);
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let request = "GET /kept HTTP/1.1\r\nHost: site.example\r\n\r\n";
    for _ in 0..2 {
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = bounded("an answer", read_response(&mut stream)).await;
        assert_eq!((response.status, response.text()), (200, "hello"));
    }
    let (received, elapsed) = until_closed(&mut stream).await;
    assert!(received.is_empty(), "{received:?}");
    assert_took("closed", elapsed, Duration::from_secs(1));
    assert_eq!(origin.calls(), 1, "the second answer was a hit");
}

#[tokio::test]
async fn an_idle_h2c_connection_is_closed_after_the_idle_timeout() {
    let origin = Origin::start(hello).await;
    let proxy = Proxy::start(origin.addr, &["--idle-timeout-ms", "1000"]);
    let stream = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = Request::get("http://site.example/h2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = bounded("an h2c answer", sender.send_request(request))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);
    let start = Instant::now();
    bounded("the proxy to close an idle h2c connection", connection)
        .await
        .unwrap()
        .unwrap();
    assert_took("closed", start.elapsed(), Duration::from_secs(1));
}

fn silent(_: &str) -> Reply {
    Reply::ThenSilent(Vec::new())
}

#[tokio::test]
async fn a_silent_origin_gets_a_504_within_the_first_byte_timeout() {
    let origin = Origin::start(silent).await;
    let proxy = Proxy::start(origin.addr, &["--first-byte-timeout-ms", "1000"]);
    let start = Instant::now();
    let response = exchange(proxy.addr, &get("site.example", "/silent")).await;
    assert_eq!(
        (response.status, response.text()),
        (504, "Gateway Timeout\n")
    );
    assert_took("answered", start.elapsed(), Duration::from_secs(1));
    assert_eq!(origin.calls(), 1);
    // Not stored: the next request asks the origin again.
    let again = exchange(proxy.addr, &get("site.example", "/silent")).await;
    assert_eq!(again.status, 504);
    assert_eq!(origin.calls(), 2);
}

fn ten_of_a_hundred_bytes(_: &str) -> Reply {
    let mut bytes =
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 100\r\n\r\n".to_vec();
    bytes.extend_from_slice(b"0123456789");
    Reply::ThenSilent(bytes)
}

#[tokio::test]
async fn an_origin_silent_inside_a_body_is_cut_off_after_the_between_bytes_timeout() {
    let origin = Origin::start(ten_of_a_hundred_bytes).await;
    let proxy = Proxy::start(origin.addr, &["--between-bytes-timeout-ms", "1000"]);
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let request = get("site.example", "/stalls");
    stream.write_all(request.as_bytes()).await.unwrap();
    let (received, elapsed) = until_closed(&mut stream).await;
    // Never the whole answer: a 502, or the head and what came of the body
    // before the connection is cut (or nothing, when the cut comes before
    // the proxy's first write is flushed).
    let text = String::from_utf8_lossy(&received);
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body);
    let cut_off = text.starts_with("HTTP/1.1 200 ") && body.is_some_and(|body| body.len() < 100);
    assert!(
        text.is_empty() || cut_off || text.starts_with("HTTP/1.1 502 "),
        "{text:?}"
    );
    assert_took("cut off", elapsed, Duration::from_secs(1));
    // The truncated answer was not stored: the next request reaches the origin.
    let mut second = TcpStream::connect(proxy.addr).await.unwrap();
    second.write_all(request.as_bytes()).await.unwrap();
    origin.wait_for_calls(2).await;
}
