//! `examples/reverse_proxy`, run as users run it, in front of a hyper origin
//! that sends an `ETag` and a one-second `max-age`: once an answer is stale,
//! the proxy asks the origin `If-None-Match`, and the origin's `304` keeps
//! it serving without the body crossing the wire again.

#[path = "reverse_proxy_hostile/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fixtures::{Proxy, Raw, exchange};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: usize = 16 * 1024;
const ETAG: &str = "\"v1\"";

/// What the origin received and sent.
#[derive(Debug, Default)]
struct Log {
    /// The `If-None-Match` of every request (`None` when it had none).
    conditions: Vec<Option<String>>,
    body_bytes: usize,
}

/// A hyper origin: one 16 KiB document, fresh for a second, with an
/// `ETag`; a request that names that tag gets a `304`.
async fn origin() -> (SocketAddr, Arc<Mutex<Log>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Log::default()));
    let logged = log.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = logged.clone();
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let condition = request
                    .headers()
                    .get(http::header::IF_NONE_MATCH)
                    .map(|value| value.to_str().unwrap().to_owned());
                let mut log = log.lock().unwrap();
                let not_modified = condition.as_deref() == Some(ETAG);
                log.conditions.push(condition);
                let (status, body) = match not_modified {
                    true => (StatusCode::NOT_MODIFIED, Bytes::new()),
                    false => (StatusCode::OK, Bytes::from(vec![b'x'; BODY])),
                };
                log.body_bytes += body.len();
                let response = Response::builder()
                    .status(status)
                    .header(http::header::ETAG, ETAG)
                    .header(http::header::CACHE_CONTROL, "max-age=1")
                    .body(Full::new(body))
                    .unwrap();
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    (addr, log)
}

async fn get(proxy: SocketAddr) -> Raw {
    exchange(proxy, "GET /doc HTTP/1.1\r\nHost: origin.test\r\n\r\n").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_answer_refreshed_by_a_304_costs_no_body_and_keeps_serving() {
    let (origin, log) = origin().await;
    let proxy = Proxy::start(origin, &[]);

    let first = get(proxy.addr).await;
    assert_eq!((first.status, first.body.len()), (200, BODY));
    let hit = get(proxy.addr).await;
    assert!(hit.header("cache-status").unwrap().contains("; hit"));

    for round in 1..=2 {
        // Stale once its second has passed.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let refreshed = get(proxy.addr).await;
        assert_eq!(refreshed.status, 200, "{}", refreshed.head);
        assert_eq!(refreshed.body, vec![b'x'; BODY]);
        assert_eq!(refreshed.header("etag"), Some(ETAG));
        let status = refreshed.header("cache-status").unwrap();
        assert!(status.contains("fwd=stale; fwd-status=304"), "{status}");
        // Freshened: served from the cache again.
        let hit = get(proxy.addr).await;
        assert!(hit.header("cache-status").unwrap().contains("; hit"));
        assert_eq!(hit.body.len(), BODY);

        let log = log.lock().unwrap();
        assert_eq!(log.conditions.len(), 1 + round, "{:?}", log.conditions);
        assert_eq!(log.conditions[round].as_deref(), Some(ETAG));
        // The body crossed from the origin once, whatever the refreshes.
        assert_eq!(log.body_bytes, BODY);
    }
    assert_eq!(log.lock().unwrap().conditions[0], None);
}
