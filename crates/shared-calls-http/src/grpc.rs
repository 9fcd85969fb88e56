//! Unary gRPC calls: buffering the request message so that it can be part
//! of the key, and telling a successful answer from a failed one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Request};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{Buffered, SharedBody, buffer};
use crate::key::HttpKey;

/// The buffered body of a request, in its extensions: set by
/// [`BufferRequest`] for requests it buffered whole.
#[derive(Clone, Debug)]
pub struct BufferedRequest(pub Bytes);

/// Buffers the bodies of gRPC requests (up to a limit) before they reach the
/// inner service, so that a key can include the request message: put it
/// outside a [`SharedCallsLayer`](crate::SharedCallsLayer) whose
/// key function is [`grpc_key`] and whose policy has
/// [`grpc(true)`](crate::HttpPolicy::grpc).
///
/// The inner service then receives `Request<SharedBody<B>>`: the same bytes,
/// replayed. A body over the limit is replayed and continued as it streams,
/// and the request is not marked, so it bypasses the cache.
#[derive(Clone, Debug)]
pub struct BufferRequestLayer {
    limit: usize,
}

impl BufferRequestLayer {
    /// Buffers request bodies of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for BufferRequestLayer {
    type Service = BufferRequest<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BufferRequest {
            inner,
            limit: self.limit,
        }
    }
}

/// The service of [`BufferRequestLayer`].
#[derive(Clone, Debug)]
pub struct BufferRequest<S> {
    inner: S,
    limit: usize,
}

impl<S, B> Service<Request<B>> for BufferRequest<S>
where
    S: Service<Request<SharedBody<B>>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !is_grpc(request.headers()) {
            return Box::pin(inner.call(request.map(SharedBody::streamed)));
        }
        let limit = self.limit;
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let body = match buffer(body, limit).await {
                Buffered::Complete(collected) => {
                    parts
                        .extensions
                        .insert(BufferedRequest(collected.data().clone()));
                    collected.into_body()
                }
                Buffered::TooLarge(body) | Buffered::Failed(body) => body,
            };
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}

impl fmt::Display for BufferedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} buffered bytes", self.0.len())
    }
}

/// The key of a unary gRPC call: its path (service and method) and its
/// request message, as buffered by [`BufferRequestLayer`]; `None` (bypass)
/// for any other request.
pub fn grpc_key<B>(request: &Request<B>) -> Option<HttpKey> {
    let BufferedRequest(message) = request.extensions().get()?;
    if !is_grpc(request.headers()) {
        return None;
    }
    let path = request.uri().path().as_bytes();
    let mut key = BytesMut::with_capacity(path.len() + 1 + message.len());
    key.put_slice(path);
    key.put_u8(b'\n');
    key.put_slice(message);
    Some(HttpKey::from(key.freeze()))
}

/// A gRPC message, by its `content-type` (requests and responses alike).
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// A gRPC request whose message was buffered whole.
pub(crate) fn is_buffered_unary<B>(request: &Request<B>) -> bool {
    request.method() == Method::POST
        && is_grpc(request.headers())
        && request.extensions().get::<BufferedRequest>().is_some()
}

/// `grpc-status: 0` in the trailers, or in the headers of a trailers-only
/// answer.
pub(crate) fn succeeded(headers: &HeaderMap, trailers: Option<&HeaderMap>) -> bool {
    let status = trailers
        .and_then(|trailers| trailers.get("grpc-status"))
        .or_else(|| headers.get("grpc-status"));
    status.is_some_and(|status| status.as_bytes() == b"0")
}
