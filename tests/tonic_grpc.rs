//! `SharedCallsLayer` around a tonic 0.14 `Channel`, talking to a tonic
//! server on loopback. Messages are prost structs defined here; the client
//! and server plumbing is written by hand (no protoc, no build script).
//!
//! The service has two unary methods:
//! - `SayHello`, served by `tonic::server::Grpc::unary`: `name: "missing"`
//!   fails with `NOT_FOUND` in a trailers-only answer;
//! - `Raw`, answered by hand with a message frame and then real trailers:
//!   `grpc-status: 0` plus an `x-call` trailer, or for `name: "gone"` a
//!   message followed by `grpc-status: 5` in the trailers.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use prost::Message;
use shared_calls::SharedCallsLayer;
use shared_calls::http_policy::{BufferRequestLayer, SharedBody, grpc_key};
use tonic::body::Body;
use tonic::transport::{Channel, Server};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder};

use support::{CountWaiting, Counter, Gate, bounded, shape, wait_until};

#[derive(Clone, PartialEq, Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
    /// Which server call produced it.
    #[prost(uint64, tag = "2")]
    call: u64,
}

const SAY_HELLO: &str = "/test.Greeter/SayHello";
const RAW: &str = "/test.Greeter/Raw";

/// The server: counts calls, holds them at a gate.
#[derive(Clone, Debug)]
struct Greeter {
    calls: Counter,
    gate: Gate,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// `SayHello` as a tonic unary service.
struct SayHello(Greeter);

impl tonic::server::UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = BoxFuture<Result<tonic::Response<HelloReply>, Status>>;

    fn call(&mut self, request: tonic::Request<HelloRequest>) -> Self::Future {
        let greeter = self.0.clone();
        Box::pin(async move {
            let call = greeter.calls.hit() as u64;
            greeter.gate.wait().await;
            let user = request
                .metadata()
                .get("authorization")
                .map(|value| format!(" as {}", value.to_str().unwrap()));
            let name = request.into_inner().name;
            if name == "missing" {
                return Err(Status::not_found(format!("no greeting for {name}")));
            }
            Ok(tonic::Response::new(HelloReply {
                message: format!("hello {name}{}", user.unwrap_or_default()),
                call,
            }))
        })
    }
}

/// A gRPC length-prefixed message frame.
fn frame(message: &impl Message) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_u8(0);
    buf.put_u32(u32::try_from(message.encoded_len()).unwrap());
    message.encode(&mut buf).unwrap();
    buf.freeze()
}

/// `Raw`: a message, then trailers, written by hand.
async fn raw(greeter: Greeter, request: http::Request<Body>) -> http::Response<Body> {
    let call = greeter.calls.hit() as u64;
    greeter.gate.wait().await;
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let name = HelloRequest::decode(&body[5..]).unwrap().name;
    let reply = HelloReply {
        message: format!("raw {name}"),
        call,
    };
    let mut trailers = HeaderMap::new();
    if name == "gone" {
        trailers.insert("grpc-status", HeaderValue::from_static("5"));
        trailers.insert("grpc-message", HeaderValue::from_static("gone"));
    } else {
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        trailers.insert("x-call", HeaderValue::from(call));
    }
    let frames = futures::stream::iter([
        Ok::<_, Infallible>(Frame::data(frame(&reply))),
        Ok(Frame::trailers(trailers)),
    ]);
    http::Response::builder()
        .header("content-type", "application/grpc")
        .body(Body::new(StreamBody::new(frames)))
        .unwrap()
}

impl Service<http::Request<Body>> for Greeter {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let greeter = self.clone();
        Box::pin(async move {
            Ok(match request.uri().path() {
                SAY_HELLO => {
                    let codec = ProstCodec::<HelloReply, HelloRequest>::default();
                    tonic::server::Grpc::new(codec)
                        .unary(SayHello(greeter), request)
                        .await
                }
                RAW => raw(greeter, request).await,
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

async fn serve(greeter: Greeter) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        Server::builder()
            .serve_with_incoming(greeter, incoming)
            .await
            .unwrap()
    });
    addr
}

/// The client's service: the layers around a `Channel`.
type Layered =
    BoxCloneService<http::Request<Body>, http::Response<SharedBody<Body>>, tonic::transport::Error>;

async fn client(addr: SocketAddr, waiting: &Counter) -> tonic::client::Grpc<Layered> {
    client_with_limit(addr, waiting, None).await
}

/// [`client`] over a channel that sends at most `limit` calls at once.
async fn client_with_limit(
    addr: SocketAddr,
    waiting: &Counter,
    limit: Option<usize>,
) -> tonic::client::Grpc<Layered> {
    let mut endpoint = Channel::from_shared(format!("http://{addr}")).unwrap();
    if let Some(limit) = limit {
        endpoint = endpoint.concurrency_limit(limit);
    }
    let channel = bounded("connecting the channel", endpoint.connect())
        .await
        .unwrap();
    let layered = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(64 * 1024))
        .layer(CountWaiting(waiting.clone()))
        .layer(
            SharedCallsLayer::new(grpc_key)
                .jitter(0.0)
                .map_policy(|policy| policy.grpc(true)),
        )
        .map_request(|request: http::Request<SharedBody<Body>>| request.map(Body::new))
        .service(channel);
    tonic::client::Grpc::new(BoxCloneService::new(layered))
}

/// What a call returned, and the `Cache-Status` it carried.
type Called = (Result<HelloReply, Status>, Option<String>, Option<String>);

async fn call(
    client: tonic::client::Grpc<Layered>,
    path: &'static str,
    name: impl Into<String>,
) -> Called {
    call_as(client, path, name, None).await
}

/// A call with `authorization` metadata when `user` is given.
async fn call_as(
    mut client: tonic::client::Grpc<Layered>,
    path: &'static str,
    name: impl Into<String>,
    user: Option<&'static str>,
) -> Called {
    let mut request = tonic::Request::new(HelloRequest { name: name.into() });
    if let Some(user) = user {
        request
            .metadata_mut()
            .insert("authorization", user.parse().unwrap());
    }
    bounded("a unary call", async move {
        client.ready().await.unwrap();
        let result = client
            .unary(
                request,
                PathAndQuery::from_static(path),
                ProstCodec::<HelloRequest, HelloReply>::default(),
            )
            .await;
        let metadata = match &result {
            Ok(response) => response.metadata().clone(),
            Err(status) => status.metadata().clone(),
        };
        let get = |name: &str| {
            metadata
                .get(name)
                .map(|value| value.to_str().unwrap().to_owned())
        };
        (
            result.map(tonic::Response::into_inner),
            get("cache-status"),
            get("x-call"),
        )
    })
    .await
}

/// `n` identical calls at once, released once all of them wait.
async fn burst(
    client: &tonic::client::Grpc<Layered>,
    greeter: &Greeter,
    waiting: &Counter,
    path: &'static str,
    name: &str,
    n: usize,
) -> Vec<Called> {
    let before = (greeter.calls.get(), waiting.get());
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(call(client.clone(), path, name.to_owned())))
        .collect();
    wait_until("the calls to wait for one server call", || {
        greeter.calls.get() == before.0 + 1 && waiting.get() == before.1 + n
    })
    .await;
    greeter.gate.release();
    let mut results = Vec::new();
    for task in tasks {
        results.push(bounded("a call", task).await.unwrap());
    }
    results
}

fn shapes(results: &[Called]) -> Vec<String> {
    let mut shapes: Vec<_> = results
        .iter()
        .map(|(_, status, _)| shape(status.as_deref().expect("Cache-Status")).0)
        .collect();
    shapes.sort();
    shapes.dedup();
    shapes
}

const BURST: usize = 20;

async fn setup(gate: Gate) -> (Greeter, Counter, tonic::client::Grpc<Layered>) {
    let greeter = Greeter {
        calls: Counter::default(),
        gate,
    };
    let addr = serve(greeter.clone()).await;
    let waiting = Counter::default();
    let client = client(addr, &waiting).await;
    (greeter, waiting, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_unary_calls_reach_the_server_once_and_are_stored() {
    let (greeter, waiting, client) = setup(Gate::closed()).await;

    let results = burst(&client, &greeter, &waiting, SAY_HELLO, "ada", BURST).await;
    assert_eq!(greeter.calls.get(), 1);
    for (result, _, _) in &results {
        let reply = result.as_ref().expect("every caller gets the answer");
        assert_eq!(
            *reply,
            HelloReply {
                message: "hello ada".into(),
                call: 1
            }
        );
    }
    assert_eq!(
        shapes(&results),
        [
            "shared-calls; fwd=miss; collapsed; stored; ttl=N",
            "shared-calls; fwd=miss; stored; ttl=N",
        ]
    );

    // Stored: a later identical call is a hit.
    let (reply, status, _) = call(client.clone(), SAY_HELLO, "ada").await;
    assert_eq!(reply.unwrap().call, 1);
    assert_eq!(shape(&status.unwrap()).0, "shared-calls; hit; ttl=N");
    assert_eq!(greeter.calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_messages_reach_the_server_separately() {
    let (greeter, _, client) = setup(Gate::closed()).await;

    let ada = tokio::spawn(call(client.clone(), SAY_HELLO, "ada"));
    let bob = tokio::spawn(call(client.clone(), SAY_HELLO, "bob"));
    // Both are in the server at once: neither waits for the other.
    wait_until("two server calls", || greeter.calls.get() == 2).await;
    greeter.gate.release();
    let (ada, _, _) = bounded("ada", ada).await.unwrap();
    let (bob, _, _) = bounded("bob", bob).await.unwrap();
    assert_eq!(ada.unwrap().message, "hello ada");
    assert_eq!(bob.unwrap().message, "hello bob");

    // Each is stored under its own message.
    assert_eq!(
        call(client.clone(), SAY_HELLO, "ada")
            .await
            .0
            .unwrap()
            .message,
        "hello ada"
    );
    assert_eq!(
        call(client.clone(), SAY_HELLO, "bob")
            .await
            .0
            .unwrap()
            .message,
        "hello bob"
    );
    assert_eq!(greeter.calls.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_only_error_reaches_every_caller_and_is_not_stored() {
    let (greeter, waiting, client) = setup(Gate::closed()).await;

    let results = burst(&client, &greeter, &waiting, SAY_HELLO, "missing", BURST).await;
    assert_eq!(greeter.calls.get(), 1);
    for (result, _, _) in &results {
        let status = result.as_ref().expect_err("every caller gets the status");
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "no greeting for missing");
    }
    assert_eq!(
        shapes(&results),
        [
            "shared-calls; fwd=miss",
            "shared-calls; fwd=miss; collapsed"
        ]
    );

    // Not stored: the next call reaches the server.
    let (again, _, _) = call(client.clone(), SAY_HELLO, "missing").await;
    assert_eq!(again.unwrap_err().code(), Code::NotFound);
    assert_eq!(greeter.calls.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_in_trailers_survives_sharing() {
    let (greeter, waiting, client) = setup(Gate::closed()).await;

    let results = burst(&client, &greeter, &waiting, RAW, "gone", BURST).await;
    assert_eq!(greeter.calls.get(), 1);
    for (result, _, _) in &results {
        let status = result
            .as_ref()
            .expect_err("the trailers' status, not the message");
        assert_eq!((status.code(), status.message()), (Code::NotFound, "gone"));
    }
    let (again, _, _) = call(client.clone(), RAW, "gone").await;
    assert_eq!(again.unwrap_err().code(), Code::NotFound);
    assert_eq!(greeter.calls.get(), 2, "a failed status is not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_are_replayed_to_followers_and_on_hits() {
    let (greeter, waiting, client) = setup(Gate::closed()).await;

    let results = burst(&client, &greeter, &waiting, RAW, "eve", BURST).await;
    assert_eq!(greeter.calls.get(), 1);
    for (result, _, x_call) in &results {
        assert_eq!(result.as_ref().unwrap().message, "raw eve");
        assert_eq!(
            x_call.as_deref(),
            Some("1"),
            "the trailer reached every caller"
        );
    }
    let (hit, status, x_call) = call(client.clone(), RAW, "eve").await;
    assert_eq!(hit.unwrap().call, 1);
    assert_eq!(x_call.as_deref(), Some("1"));
    assert_eq!(shape(&status.unwrap()).0, "shared-calls; hit; ttl=N");
    assert_eq!(greeter.calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_with_credentials_bypass_like_http_requests() {
    let (greeter, _, client) = setup(Gate::closed()).await;

    // Alice and Bob send the same message: each reaches the server, neither
    // waits for the other.
    let alice = tokio::spawn(call_as(client.clone(), SAY_HELLO, "ada", Some("alice")));
    let bob = tokio::spawn(call_as(client.clone(), SAY_HELLO, "ada", Some("bob")));
    wait_until("alice and bob in the server", || greeter.calls.get() == 2).await;
    greeter.gate.release();
    let (alice, alice_status, _) = bounded("alice", alice).await.unwrap();
    let (bob, _, _) = bounded("bob", bob).await.unwrap();
    assert_eq!(alice.unwrap().message, "hello ada as alice");
    assert_eq!(bob.unwrap().message, "hello ada as bob");
    assert_eq!(
        alice_status.as_deref(),
        Some("shared-calls; fwd=bypass; detail=credentials")
    );

    // An anonymous answer is stored, and still never served to Bob.
    let (anonymous, _, _) = call(client.clone(), SAY_HELLO, "ada").await;
    assert_eq!(anonymous.unwrap().message, "hello ada");
    let (hit, status, _) = call(client.clone(), SAY_HELLO, "ada").await;
    assert_eq!(hit.unwrap().call, 3);
    assert_eq!(shape(&status.unwrap()).0, "shared-calls; hit; ttl=N");
    let (bob, _, _) = call_as(client.clone(), SAY_HELLO, "ada", Some("bob")).await;
    assert_eq!(bob.unwrap().message, "hello ada as bob");
    assert_eq!(greeter.calls.get(), 4);
}

/// A `Channel` whose concurrency limit two slow calls hold still gets a
/// stored call answered at once: the layer reserves none of the channel's
/// capacity for a request that turns out to be a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_call_is_answered_while_slow_calls_hold_the_channel_limit() {
    let greeter = Greeter {
        calls: Counter::default(),
        gate: Gate::open(),
    };
    let addr = serve(greeter.clone()).await;
    let client = client_with_limit(addr, &Counter::default(), Some(2)).await;
    let (stored, _, _) = call(client.clone(), SAY_HELLO, "ada").await;
    assert_eq!(stored.unwrap().message, "hello ada");

    greeter.gate.close();
    let slow: Vec<_> = ["bob", "cy"]
        .map(|name| tokio::spawn(call(client.clone(), SAY_HELLO, name)))
        .into_iter()
        .collect();
    wait_until("two slow calls to hold the limit", || {
        greeter.calls.get() == 3
    })
    .await;
    let (hit, status, _) = call(client.clone(), SAY_HELLO, "ada").await;
    assert_eq!(hit.unwrap().message, "hello ada");
    assert_eq!(shape(&status.unwrap()).0, "shared-calls; hit; ttl=N");
    assert_eq!(greeter.calls.get(), 3, "the hit made no call");

    greeter.gate.release();
    for task in slow {
        let (reply, _, _) = bounded("a slow call", task).await.unwrap();
        assert!(reply.unwrap().message.starts_with("hello "));
    }
}
