//! Unary gRPC calls (a `POST` whose message is buffered into the key) are
//! stored like a `GET` when the answer succeeded, and not when it failed.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use shared_calls::http_policy::{BufferRequestLayer, HttpKey, SharedBody, grpc_key};
use shared_calls::{Outcome, SharedCallsLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

type KeyFn = fn(&Request<SharedBody<Full<Bytes>>>) -> Option<HttpKey>;

fn grpc_request(message: &'static [u8]) -> Request<Full<Bytes>> {
    Request::post("http://prices.test/demo.Prices/Get")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(message)))
        .unwrap()
}

/// A server answering with a trailers-only response carrying `status`.
fn server(
    calls: Arc<AtomicUsize>,
    status: &'static str,
) -> impl Service<
    Request<SharedBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |_: Request<SharedBody<Full<Bytes>>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", status)
                    .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
                    .unwrap(),
            )
        }
    })
}

async fn outcomes(status: &'static str) -> (Vec<Outcome>, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = SharedCallsLayer::new(grpc_key as KeyFn).map_policy(|policy| policy.grpc(true));
    let service = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(1024))
        .layer(layer)
        .service(server(calls.clone(), status));
    let mut outcomes = Vec::new();
    for message in [&b"ACME"[..], b"ACME", b"GLOBEX"] {
        let response = service
            .clone()
            .oneshot(grpc_request(message))
            .await
            .unwrap();
        outcomes.push(*response.extensions().get::<Outcome>().unwrap());
        response.into_body().collect().await.unwrap();
    }
    (outcomes, calls.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_successful_unary_call_is_stored() {
    let (outcomes, calls) = outcomes("0").await;
    assert_eq!(outcomes, [Outcome::Miss, Outcome::Hit, Outcome::Miss]);
    assert_eq!(calls, 2);
}

#[tokio::test]
async fn a_failed_unary_call_is_not_stored() {
    let (outcomes, calls) = outcomes("14").await;
    assert_eq!(outcomes, [Outcome::Miss, Outcome::Miss, Outcome::Miss]);
    assert_eq!(calls, 3);
}
