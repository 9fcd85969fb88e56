//! `SharedCallsLayer` around a plain hyper 1 service served by hyper-util
//! (HTTP/1.1 and HTTP/2 on one port), on loopback.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use shared_calls::{SharedCallsLayer, default_key};
use tower::{Layer, ServiceBuilder, service_fn};

use support::{
    CountWaiting, Counter, Gate, Got, assert_hit, assert_one_stored_rest_collapsed, bounded, burst,
    concurrent_gets, fetch, fetch_with, join_all, wait_until,
};

const BURST: usize = 50;

/// Serves `handler` behind the layer, with hyper-util's auto (HTTP/1.1 and
/// HTTP/2) connection builder.
async fn serve(calls: &Counter, waiting: &Counter, gate: &Gate) -> SocketAddr {
    let (calls, gate) = (calls.clone(), gate.clone());
    let handler = service_fn(move |request: Request<Incoming>| {
        let (calls, gate) = (calls.clone(), gate.clone());
        async move {
            let n = calls.hit();
            gate.wait().await;
            let body = format!("{} answer {n}", request.uri().path());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body))))
        }
    });
    let service = ServiceBuilder::new()
        .layer(CountWaiting(waiting.clone()))
        .layer(SharedCallsLayer::new(default_key).jitter(0.0))
        .service(handler);
    serve_with_hyper(service).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_burst_reaches_the_handler_once() {
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let addr = serve(&calls, &waiting, &gate).await;

    let answers = burst(addr, "/hot", &[], BURST, &calls, &waiting, &gate).await;
    assert_eq!(calls.get(), 1);
    assert_one_stored_rest_collapsed(&answers, "/hot answer 1");

    assert_hit(&fetch(addr, "/hot").await, "/hot answer 1");
    assert_eq!(calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_burst_on_one_connection_reaches_the_handler_once() {
    let (calls, waiting, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let addr = serve(&calls, &waiting, &gate).await;

    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let send = |sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>| async move {
        let mut sender = sender;
        let request = Request::get("http://example.test/h2")
            .body(Empty::<Bytes>::new())
            .unwrap();
        Got::read(sender.send_request(request).await.unwrap()).await
    };

    let tasks: Vec<_> = (0..BURST)
        .map(|_| tokio::spawn(send(sender.clone())))
        .collect();
    wait_until("the HTTP/2 burst to wait for one call", || {
        calls.get() == 1 && waiting.get() == BURST
    })
    .await;
    gate.release();
    let answers = join_all(tasks).await;
    assert_eq!(calls.get(), 1);
    assert_one_stored_rest_collapsed(&answers, "/h2 answer 1");

    let hit = bounded("an HTTP/2 hit", send(sender.clone())).await;
    assert_eq!(hit.status, StatusCode::OK);
    assert_hit(&hit, "/h2 answer 1");
    assert_eq!(calls.get(), 1);
}

/// Serves a handler that tags its answer, counts its calls and remembers
/// whether any request reached it with a client's condition.
async fn serve_tagged(calls: &Counter, conditional: &Counter, gate: &Gate) -> SocketAddr {
    let (calls, conditional, gate) = (calls.clone(), conditional.clone(), gate.clone());
    let handler = service_fn(move |request: Request<Incoming>| {
        let (calls, conditional, gate) = (calls.clone(), conditional.clone(), gate.clone());
        async move {
            calls.hit();
            if request.headers().contains_key("if-none-match") {
                conditional.hit();
            }
            gate.wait().await;
            let response = Response::builder()
                .header("etag", "\"v1\"")
                .header("cache-control", "max-age=60")
                .body(Full::new(Bytes::from_static(b"tagged")))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    let service = SharedCallsLayer::new(default_key)
        .jitter(0.0)
        .layer(handler);
    serve_with_hyper(service).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_conditional_and_plain_requests_gets_304s_and_200s_from_one_handler_call() {
    let (calls, conditional, gate) = (Counter::default(), Counter::default(), Gate::closed());
    let addr = serve_tagged(&calls, &conditional, &gate).await;

    let mut tasks = concurrent_gets(addr, "/doc", &[("if-none-match", "\"v1\"")], 10);
    tasks.extend(concurrent_gets(addr, "/doc", &[], 10));
    wait_until("the burst to reach the handler once", || calls.get() == 1).await;
    gate.release();
    let answers = join_all(tasks).await;

    assert_eq!((calls.get(), conditional.get()), (1, 0));
    for (i, got) in answers.iter().enumerate() {
        match i < 10 {
            true => {
                assert_eq!(got.status, StatusCode::NOT_MODIFIED);
                assert!(got.body.is_empty());
                assert_eq!(got.headers["etag"], "\"v1\"");
            }
            false => assert_eq!(
                (got.status, &got.body[..]),
                (StatusCode::OK, &b"tagged"[..])
            ),
        }
    }
    let again = fetch_with(addr, "/doc", &[("if-none-match", "W/\"v1\"")]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(calls.get(), 1);
}

/// Serves `service` with hyper (HTTP/1.1 and h2c) on a fresh loopback port.
async fn serve_with_hyper<S, B>(service: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}
