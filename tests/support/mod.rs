//! Helpers shared by the integration tests: servers and clients on loopback,
//! gates that hold handlers, and a layer that tells when a request is
//! waiting inside the shared-calls service.
//!
//! Every wait here is bounded: a test that goes wrong fails with a message
//! instead of hanging.

#![allow(dead_code)]

#[path = "../../crates/shared-calls-http/tests/support/got.rs"]
mod got;
pub(crate) mod hostile_origin;
pub(crate) mod soak;

pub(crate) use got::Got;

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use shared_calls::http_policy::HttpKey;
use shared_calls::{SharedCallsLayer, default_key};
use tokio::sync::watch;
use tower::{Layer, Service};

/// The longest any single step of a test may take.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// Runs `future`, failing the test if it takes longer than [`STEP`].
pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Waits (bounded) until `condition` holds.
pub(crate) async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    bounded(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// A gate handlers wait at until the test opens it; once open it stays open.
#[derive(Clone, Debug)]
pub(crate) struct Gate(Arc<watch::Sender<bool>>);

impl Gate {
    pub(crate) fn closed() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }

    pub(crate) fn open() -> Self {
        let gate = Self::closed();
        gate.release();
        gate
    }

    /// Waits until the gate is open (bounded).
    pub(crate) async fn wait(&self) {
        let mut open = self.0.subscribe();
        bounded("a handler waiting at its gate", open.wait_for(|open| *open))
            .await
            .expect("the gate's sender lives as long as the gate");
    }

    pub(crate) fn release(&self) {
        self.0.send_replace(true);
    }

    pub(crate) fn close(&self) {
        self.0.send_replace(false);
    }
}

/// A counter of handler calls.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// Counts one call and returns its number, from 1.
    pub(crate) fn hit(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A layer that counts the requests whose inner future has returned
/// `Pending` at least once. Put it just outside the shared-calls layer: a
/// request counted there has joined its key's flight (the flight is joined
/// on the first poll), or leads it and waits for the handler.
#[derive(Clone, Debug, Default)]
pub(crate) struct CountWaiting(pub Counter);

impl<S> Layer<S> for CountWaiting {
    type Service = CountWaitingService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountWaitingService {
            inner,
            waiting: self.0.clone(),
        }
    }
}

/// The service of [`CountWaiting`].
#[derive(Clone, Debug)]
pub(crate) struct CountWaitingService<S> {
    inner: S,
    waiting: Counter,
}

impl<S, R> Service<R> for CountWaitingService<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let mut future = Box::pin(self.inner.call(request));
        let waiting = self.waiting.clone();
        let mut counted = false;
        Box::pin(poll_fn(move |cx| {
            let poll = future.as_mut().poll(cx);
            if poll.is_pending() && !counted {
                counted = true;
                waiting.hit();
            }
            poll
        }))
    }
}

/// Serves an axum app on a fresh loopback port.
pub(crate) async fn serve_axum(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The key function of a layer a test names in a type.
pub(crate) type KeyFn = fn(&Request<axum::body::Body>) -> Option<HttpKey>;

/// A layer with [`default_key`], this TTL and no jitter, so that entries
/// expire exactly when the test says.
pub(crate) fn exact_ttl_layer(ttl: Duration) -> SharedCallsLayer<KeyFn> {
    SharedCallsLayer::new(default_key as KeyFn)
        .ttl(ttl)
        .jitter(0.0)
}

impl Got {
    /// The one `Cache-Status` line (fails if there are several or none).
    pub(crate) fn cache_status(&self) -> String {
        let lines: Vec<_> = self.headers.get_all("cache-status").iter().collect();
        assert_eq!(lines.len(), 1, "one Cache-Status line: {:?}", self.headers);
        lines[0].to_str().unwrap().to_owned()
    }

    /// `Cache-Status` with its `ttl` number replaced by `N`, and the number.
    pub(crate) fn cache_status_shape(&self) -> (String, Option<u64>) {
        shape(&self.cache_status())
    }
}

/// Replaces the number after `ttl=` by `N`, returning the number too.
pub(crate) fn shape(cache_status: &str) -> (String, Option<u64>) {
    let mut ttl = None;
    let parts: Vec<String> = cache_status
        .split("; ")
        .map(|part| match part.strip_prefix("ttl=") {
            Some(n) => {
                ttl = Some(n.parse().expect("ttl is a number"));
                "ttl=N".to_owned()
            }
            None => part.to_owned(),
        })
        .collect();
    (parts.join("; "), ttl)
}

/// Sends one request over a new HTTP/1.1 connection.
pub(crate) async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Got {
    bounded("an HTTP/1.1 request", async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        Got::read(sender.send_request(request).await.unwrap()).await
    })
    .await
}

/// A request to `path` with `Host: example.test` and the given headers.
pub(crate) fn request(
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(path);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        builder = builder.header("host", "example.test");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

pub(crate) fn fetch(addr: SocketAddr, path: &str) -> impl Future<Output = Got> + Send + 'static {
    send(addr, request(Method::GET, path, &[]))
}

/// A GET with these headers; the future borrows nothing.
pub(crate) fn fetch_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> impl Future<Output = Got> + Send + 'static {
    send(addr, request(Method::GET, path, headers))
}

/// Sends `n` identical GETs at once.
pub(crate) fn concurrent_gets(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    n: usize,
) -> Vec<tokio::task::JoinHandle<Got>> {
    (0..n)
        .map(|_| tokio::spawn(fetch_with(addr, path, headers)))
        .collect()
}

/// Waits (bounded) for spawned requests.
pub(crate) async fn join_all(tasks: Vec<tokio::task::JoinHandle<Got>>) -> Vec<Got> {
    bounded("concurrent requests", async {
        let mut answers = Vec::with_capacity(tasks.len());
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    })
    .await
}

/// A held burst: sends `n` identical GETs while the handler is held at
/// `gate`, waits until one more call reached the handler (`calls`) and all
/// `n` wait inside the layer (`waiting`, from [`CountWaiting`]), then opens
/// the gate and returns the answers.
pub(crate) async fn burst(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    n: usize,
    calls: &Counter,
    waiting: &Counter,
    gate: &Gate,
) -> Vec<Got> {
    let before = (calls.get(), waiting.get());
    let tasks = concurrent_gets(addr, path, headers, n);
    wait_until("the burst to wait for one handler call", || {
        calls.get() == before.0 + 1 && waiting.get() == before.1 + n
    })
    .await;
    gate.release();
    join_all(tasks).await
}

/// Asserts the answers of one collapsed burst: one leader whose answer was
/// stored, every other request collapsed onto it, all with `body`.
pub(crate) fn assert_one_stored_rest_collapsed(answers: &[Got], body: &str) {
    let mut leaders = 0;
    for got in answers {
        assert_eq!(got.status, StatusCode::OK, "{got:?}");
        assert_eq!(got.text(), body);
        let (shape, ttl) = got.cache_status_shape();
        let ttl = ttl.expect("a stored answer says its ttl");
        assert!((58..=60).contains(&ttl), "ttl {ttl}");
        match shape.as_str() {
            "shared-calls; fwd=miss; stored; ttl=N" => {
                leaders += 1;
                assert_eq!(
                    got.header("age"),
                    None,
                    "the leader's own answer has no Age"
                );
            }
            "shared-calls; fwd=miss; collapsed; stored; ttl=N" => {
                assert_eq!(got.header("age"), Some("0"), "{got:?}");
            }
            other => panic!("unexpected Cache-Status {other:?}"),
        }
    }
    assert_eq!(leaders, 1, "exactly one leader");
}

/// Asserts a fresh hit.
pub(crate) fn assert_hit(got: &Got, body: &str) {
    assert_eq!(got.status, StatusCode::OK, "{got:?}");
    assert_eq!(got.text(), body);
    let (shape, ttl) = got.cache_status_shape();
    assert_eq!(shape, "shared-calls; hit; ttl=N");
    assert!((50..=60).contains(&ttl.unwrap()));
    let age: u64 = got.header("age").expect("a hit has Age").parse().unwrap();
    assert!(age <= 10, "age {age}");
}
