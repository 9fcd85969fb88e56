//! What the allocation tests send and answer: a request for `/item/{path}`
//! on one host, and an origin's typical answer, a few headers and 1 KiB.
//!
//! Included by path (`#[path = "support/allocations.rs"]`) rather than
//! through `support`: each allocation test is a binary of its own with a
//! counting allocator, and needs nothing else.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Empty, Full};
use shared_calls::http_policy::HttpKey;
use tower::{Service, ServiceExt};

/// The key function the tests' layers use.
pub(crate) type KeyFn = fn(&Request<Empty<Bytes>>) -> Option<HttpKey>;

/// A `GET` of `/item/{path}`.
pub(crate) fn request(path: impl std::fmt::Display) -> Request<Empty<Bytes>> {
    Request::get(format!("/item/{path}"))
        .header(http::header::HOST, "alloc.test")
        .body(Empty::new())
        .unwrap()
}

/// An answer as an origin sends it: a few headers and a 1 KiB body.
pub(crate) fn answer() -> Response<Full<Bytes>> {
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "public, max-age=600")
        .header(http::header::ETAG, "\"0123abcd\"")
        .body(Full::new(Bytes::from(vec![b'x'; 1024])))
        .unwrap()
}

/// `request` through `service`, once it is ready.
pub(crate) async fn send<S>(service: &mut S, request: Request<Empty<Bytes>>) -> S::Response
where
    S: Service<Request<Empty<Bytes>>, Error = Infallible>,
{
    service.ready().await.unwrap().call(request).await.unwrap()
}
