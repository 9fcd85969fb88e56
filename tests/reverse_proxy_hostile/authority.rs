//! One client cannot make the proxy store an answer under the key another
//! client's ordinary request uses: the authority is checked, decided once,
//! and exactly it reaches the origin.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::fixtures::{Origin, Proxy, Reply, answer, bounded, exchange, get, header};

/// Answers with the `Host` it received, cacheable for a minute.
fn echo_host(head: &str) -> Reply {
    let host = header(head, "host").unwrap_or("(none)");
    Reply::KeepAlive(answer(
        "200 OK",
        &["cache-control: max-age=60"],
        &format!("host={host}"),
    ))
}

const LONG_TTL: [&str; 2] = ["--ttl-ms", "60000"];

#[tokio::test]
async fn invalid_host_values_are_refused_with_400() {
    let origin = Origin::start(echo_host).await;
    let proxy = Proxy::start(origin.addr, &LONG_TTL);
    let invalid = [
        "victim.example/evil",
        "victim.example?x=1",
        "victim.example#x",
        "user@victim.example",
        "victim .example",
        "victim.example:99999",
        "victim.example:",
        "victim.example:80:80",
        "[::1",
        "",
    ];
    for host in invalid {
        let response = exchange(proxy.addr, &get(host, "/page")).await;
        assert_eq!(response.status, 400, "Host {host:?}: {response:?}");
        assert_eq!(response.header("connection"), Some("close"));
    }
    assert_eq!(origin.calls(), 0);
}

#[tokio::test]
async fn two_host_lines_are_refused_with_400() {
    let origin = Origin::start(echo_host).await;
    let proxy = Proxy::start(origin.addr, &LONG_TTL);
    for second in ["attacker.example", "victim.example"] {
        let request = format!(
            "GET /page HTTP/1.1\r\nHost: victim.example\r\nHost: {second}\r\nConnection: close\r\n\r\n"
        );
        let response = exchange(proxy.addr, &request).await;
        assert_eq!(response.status, 400, "{response:?}");
    }
    assert_eq!(origin.calls(), 0);
}

#[tokio::test]
async fn an_http11_request_without_host_is_refused_with_400() {
    let origin = Origin::start(echo_host).await;
    let proxy = Proxy::start(origin.addr, &LONG_TTL);
    let response = exchange(
        proxy.addr,
        "GET /page HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 400, "{response:?}");
    assert_eq!(origin.calls(), 0);
}

#[tokio::test]
async fn an_http10_request_without_host_is_for_the_origins_own_authority() {
    let origin = Origin::start(echo_host).await;
    let proxy = Proxy::start(origin.addr, &LONG_TTL);
    let response = exchange(proxy.addr, "GET /page HTTP/1.0\r\n\r\n").await;
    assert_eq!(response.text(), format!("host={}", origin.addr));
    // The same entry as a client naming the origin itself.
    let named = exchange(proxy.addr, &get(&origin.addr.to_string(), "/page")).await;
    assert_eq!(named.text(), response.text());
    assert_eq!(origin.calls(), 1);
}

#[tokio::test]
async fn an_absolute_form_target_is_keyed_and_forwarded_with_its_own_authority() {
    let origin = Origin::start(echo_host).await;
    let proxy = Proxy::start(origin.addr, &LONG_TTL);

    // Naming the victim in the target, the attacker in `Host`: the origin
    // is asked for the victim's page, so what is stored is the victim's.
    let request = "GET http://victim.example/page HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n";
    let response = exchange(proxy.addr, request).await;
    assert_eq!(response.text(), "host=victim.example");
    // The other way round: stored under the attacker's key only.
    let request = "GET http://attacker.example/other HTTP/1.1\r\nHost: victim.example\r\nConnection: close\r\n\r\n";
    let response = exchange(proxy.addr, request).await;
    assert_eq!(response.text(), "host=attacker.example");
    assert_eq!(origin.calls(), 2);

    let victim = exchange(proxy.addr, &get("victim.example", "/page")).await;
    assert_eq!(victim.text(), "host=victim.example");
    assert_eq!(origin.calls(), 2, "answered from the stored entry");
    let victim = exchange(proxy.addr, &get("victim.example", "/other")).await;
    assert_eq!(victim.text(), "host=victim.example");
    assert_eq!(origin.calls(), 3);
    // The origin received one `Host` each time, the one the key was made from.
    let hosts: Vec<_> = origin
        .heads()
        .iter()
        .map(|head| head.matches("\r\nhost:").count())
        .collect();
    assert_eq!(hosts, [1, 1, 1]);
}

#[tokio::test]
async fn host_case_is_folded_so_the_origin_sees_the_keyed_authority() {
    let origin = Origin::start(echo_host).await;
    let proxy = Proxy::start(origin.addr, &LONG_TTL);
    let first = exchange(proxy.addr, &get("Victim.Example:8080", "/page")).await;
    assert_eq!(first.text(), "host=victim.example:8080");
    let second = exchange(proxy.addr, &get("victim.example:8080", "/page")).await;
    assert_eq!(second.text(), "host=victim.example:8080");
    assert_eq!(origin.calls(), 1);
}

/// Sends one h2c (prior knowledge) `GET` with the given `:authority` (from
/// `uri`) and extra `Host` line; returns the status and body.
async fn h2c_get(
    proxy: std::net::SocketAddr,
    uri: &str,
    host: Option<&str>,
) -> (StatusCode, String) {
    bounded("an h2c exchange", async {
        let stream = TcpStream::connect(proxy).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let mut request = Request::get(uri);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        let response = sender
            .send_request(request.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
    .await
}

#[tokio::test]
async fn h2c_authority_is_keyed_and_forwarded_like_an_http1_host() {
    let origin = Origin::start(echo_host).await;
    let proxy = Proxy::start(origin.addr, &LONG_TTL);

    let (status, body) = h2c_get(proxy.addr, "http://victim.example/h2", None).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "host=victim.example")
    );
    // The HTTP/1 client of the same site shares the entry the h2c one filled.
    let victim = exchange(proxy.addr, &get("victim.example", "/h2")).await;
    assert_eq!(victim.text(), "host=victim.example");
    assert_eq!(origin.calls(), 1, "answered from the stored entry");
    // Another `:authority` is another site, fetched for that site.
    let (_, body) = h2c_get(proxy.addr, "http://attacker.example/h2", None).await;
    assert_eq!(body, "host=attacker.example");
    assert_eq!(origin.calls(), 2);
}

#[tokio::test]
async fn h2c_authority_contradicted_by_host_is_refused_with_400() {
    let origin = Origin::start(echo_host).await;
    let proxy = Proxy::start(origin.addr, &LONG_TTL);
    let (status, _) = h2c_get(
        proxy.addr,
        "http://attacker.example/h2",
        Some("victim.example"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h2c_get(proxy.addr, "http://victim.example/h2", Some("vic/tim")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(origin.calls(), 0);
}
