//! A scripted origin behind the HTTP layer, for tests of RFC 9111 behaviour
//! through the public API: it records every request it receives (method,
//! URI, headers) and the body bytes it sends, and answers with a handler the
//! test gives.
//!
//! Every wait is bounded: a test that goes wrong fails instead of hanging.

#![allow(dead_code)]

mod got;

pub(crate) use got::Got;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use shared_calls_http::{HttpKey, SharedCalls, SharedCallsLayer, default_key};
use tower::{Layer, Service, ServiceExt};

/// The longest any single step of a test may take.
pub(crate) const STEP: Duration = Duration::from_secs(10);

/// The request type the origin takes.
pub(crate) type Req = Request<Full<Bytes>>;

/// The key function of [`layer`].
pub(crate) type KeyFn = fn(&Req) -> Option<HttpKey>;

/// Runs `future`, failing the test if it takes longer than [`STEP`].
pub(crate) async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// A request the origin received.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// Its method.
    pub(crate) method: Method,
    /// Its URI.
    pub(crate) uri: Uri,
    /// Its headers.
    pub(crate) headers: HeaderMap,
}

impl Seen {
    /// The value of header `name`, if there is one.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

type Handler = dyn Fn(&Seen, usize) -> Response<Full<Bytes>> + Send + Sync;

/// An origin answering with a handler given the request and its call number
/// (from 1), counting calls and body bytes sent.
#[derive(Clone)]
pub(crate) struct Origin {
    handler: Arc<Handler>,
    seen: Arc<Mutex<Vec<Seen>>>,
    body_bytes: Arc<AtomicUsize>,
    delay: Duration,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("calls", &self.calls())
            .finish()
    }
}

impl Origin {
    pub(crate) fn new(
        handler: impl Fn(&Seen, usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            handler: Arc::new(handler),
            seen: Arc::default(),
            body_bytes: Arc::default(),
            delay: Duration::ZERO,
        }
    }

    /// The same origin, answering `delay` after it receives a request (on
    /// tokio's clock: with paused time, requests sent together all reach
    /// the layer before the first answer comes back).
    pub(crate) fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// How many requests reached the origin.
    pub(crate) fn calls(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Every request the origin received, in order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The last request the origin received.
    pub(crate) fn last(&self) -> Seen {
        self.seen().pop().expect("the origin was called")
    }

    /// The body bytes the origin sent in all its answers.
    pub(crate) fn body_bytes(&self) -> usize {
        self.body_bytes.load(Ordering::SeqCst)
    }

    fn answer(&self, request: &Req) -> Response<Full<Bytes>> {
        let seen = Seen {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        };
        let number = {
            let mut all = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            all.push(seen.clone());
            all.len()
        };
        let response = (self.handler)(&seen, number);
        let sent = http_body::Body::size_hint(response.body()).exact();
        let sent = sent.expect("a full body has an exact size");
        self.body_bytes.fetch_add(sent as usize, Ordering::SeqCst);
        response
    }

    /// The origin as a tower service.
    pub(crate) fn service(
        &self,
    ) -> impl Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static {
        let origin = self.clone();
        tower::service_fn(move |request: Req| {
            let response = origin.answer(&request);
            let delay = origin.delay;
            async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok::<_, Infallible>(response)
            }
        })
    }

    /// The origin behind `layer`.
    pub(crate) fn behind(
        &self,
        layer: &SharedCallsLayer<KeyFn>,
    ) -> SharedCalls<
        impl Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static,
        KeyFn,
    > {
        layer.layer(self.service())
    }
}

/// The layer with the default key and no jitter.
pub(crate) fn layer() -> SharedCallsLayer<KeyFn> {
    SharedCallsLayer::new(default_key as KeyFn).jitter(0.0)
}

/// A response with `status`, `headers` and `body`.
pub(crate) fn respond(
    status: StatusCode,
    headers: &[(&str, &str)],
    body: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    for (name, value) in headers {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

/// A request to `uri` with `method` and `headers`.
pub(crate) fn request(method: Method, uri: &str, headers: &[(&str, &str)]) -> Req {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Full::default()).unwrap()
}

/// A `GET` of `uri` with `headers`.
pub(crate) fn get(uri: &str, headers: &[(&str, &str)]) -> Req {
    request(Method::GET, uri, headers)
}

/// Sends `request` through `service` and reads the whole answer (bounded).
pub(crate) async fn send<S, B>(service: &S, request: Req) -> Got
where
    S: Service<Req, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    bounded("a request through the layer", async {
        Got::read(service.clone().oneshot(request).await.unwrap()).await
    })
    .await
}
