//! A tonic client whose `Channel` carries the layer: identical concurrent
//! unary calls reach the server once, and the answer is kept for the TTL.
//!
//! ```sh
//! cargo run --example tonic_client
//! ```
//!
//! Everything runs in this process on loopback: a gRPC server with one
//! unary method (messages written with prost's derives, no `protoc`), and a
//! client stack of
//! `BufferRequestLayer` (buffers the request message so that it can be part
//! of the key) → `SharedCallsLayer::new(grpc_key)` with the policy's gRPC
//! mode → the `Channel`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use shared_calls::SharedCallsLayer;
use shared_calls::http_policy::{BufferRequestLayer, HttpKey, SharedBody, grpc_key};
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tower::ServiceBuilder;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// `demo.Prices/Get` request.
#[derive(Clone, PartialEq, prost::Message)]
struct PriceRequest {
    #[prost(string, tag = "1")]
    symbol: String,
}

/// `demo.Prices/Get` answer.
#[derive(Clone, PartialEq, prost::Message)]
struct PriceReply {
    #[prost(string, tag = "1")]
    symbol: String,
    #[prost(uint64, tag = "2")]
    cents: u64,
    /// Which server call computed this answer.
    #[prost(uint64, tag = "3")]
    computed_by_call: u64,
}

const GET_PATH: &str = "/demo.Prices/Get";

/// The server: what `tonic-build` would generate for a service with one
/// unary method, by hand.
#[derive(Clone, Debug, Default)]
struct PricesServer {
    calls: Arc<AtomicU64>,
}

impl NamedService for PricesServer {
    const NAME: &'static str = "demo.Prices";
}

impl tower::Service<http::Request<tonic::body::Body>> for PricesServer {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let calls = self.calls.clone();
        Box::pin(async move {
            if request.uri().path() != GET_PATH {
                return Ok(tonic::Status::unimplemented(request.uri().path()).into_http());
            }
            let get = tower::service_fn(move |request: tonic::Request<PriceRequest>| {
                let call = calls.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    // A slow lookup.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let symbol = request.into_inner().symbol;
                    let cents = symbol.bytes().map(u64::from).sum::<u64>() * 10;
                    Ok::<_, tonic::Status>(tonic::Response::new(PriceReply {
                        symbol,
                        cents,
                        computed_by_call: call,
                    }))
                }
            });
            let codec = tonic_prost::ProstCodec::<PriceReply, PriceRequest>::default();
            Ok(tonic::server::Grpc::new(codec).unary(get, request).await)
        })
    }
}

async fn start_server(server: PricesServer) -> Result<SocketAddr, Error> {
    let incoming = TcpIncoming::bind("127.0.0.1:0".parse()?)?;
    let addr = incoming.local_addr()?;
    tokio::spawn(
        Server::builder()
            .add_service(server)
            .serve_with_incoming(incoming),
    );
    Ok(addr)
}

/// The key function, as a nameable type.
type KeyFn = fn(&http::Request<SharedBody<tonic::body::Body>>) -> Option<HttpKey>;

/// The layer, kept to read its cache's statistics.
fn layer() -> SharedCallsLayer<KeyFn> {
    SharedCallsLayer::new(grpc_key as KeyFn)
        .map_policy(|policy| policy.grpc(true))
        .ttl(Duration::from_secs(10))
}

async fn get_price<S>(
    client: &mut tonic::client::Grpc<S>,
    symbol: &str,
) -> Result<(PriceReply, String), tonic::Status>
where
    S: tonic::client::GrpcService<tonic::body::Body>,
    S::Error: Into<Error>,
    S::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <S::ResponseBody as http_body::Body>::Error: Into<Error>,
{
    client
        .ready()
        .await
        .map_err(|error| tonic::Status::unavailable(error.into().to_string()))?;
    let codec = tonic_prost::ProstCodec::<PriceRequest, PriceReply>::default();
    let request = tonic::Request::new(PriceRequest {
        symbol: symbol.to_owned(),
    });
    let response = client
        .unary(
            request,
            http::uri::PathAndQuery::from_static(GET_PATH),
            codec,
        )
        .await?;
    let cache_status = response
        .metadata()
        .get("cache-status")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    Ok((response.into_inner(), cache_status))
}

/// The outcome a `Cache-Status` value tells.
fn outcome(cache_status: &str) -> &'static str {
    if cache_status.contains("; collapsed") {
        "collapsed"
    } else if cache_status.starts_with("shared-calls; hit") {
        "hit"
    } else if cache_status.contains("fwd=miss") {
        "miss"
    } else {
        "other"
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let server = PricesServer::default();
    let addr = start_server(server.clone()).await?;
    let channel: Channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;

    let layer = layer();
    let stack = ServiceBuilder::new()
        .layer(BufferRequestLayer::new(64 * 1024))
        .layer(layer.clone())
        // The layer hands the channel `SharedBody`; tonic wants its own body.
        .map_request(|request: http::Request<SharedBody<tonic::body::Body>>| {
            request.map(tonic::body::Body::new)
        })
        .service(channel);
    let client = tonic::client::Grpc::new(stack);

    // 100 identical calls at once, and 100 spread over two other symbols.
    let symbols = std::iter::repeat_n("ACME", 100)
        .chain(std::iter::repeat_n("INITECH", 50))
        .chain(std::iter::repeat_n("GLOBEX", 50));
    let calls: Vec<_> = symbols
        .map(|symbol| {
            let mut client = client.clone();
            tokio::spawn(async move { get_price(&mut client, symbol).await })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<&str, u64>::new();
    let mut client_calls = 0;
    for call in calls {
        let (reply, cache_status) = call.await??;
        assert!(reply.cents > 0 && reply.computed_by_call > 0);
        client_calls += 1;
        *statuses.entry(outcome(&cache_status)).or_default() += 1;
    }
    let server_calls = server.calls.load(Ordering::SeqCst);
    println!("first wave: {client_calls} client calls over 3 distinct requests");
    println!("  server calls: {server_calls}");
    println!("  answers by Cache-Status: {statuses:?}");
    println!(
        "  (one miss per distinct request; the calls that arrived meanwhile collapsed onto it)"
    );

    // Later calls are answered from the cache without reaching the server.
    let (reply, cache_status) = get_price(&mut client.clone(), "ACME").await?;
    println!(
        "a later ACME call: {} cents (computed by server call {}), Cache-Status: {cache_status}",
        reply.cents, reply.computed_by_call
    );
    let stats = layer.cache_handle().stats();
    println!(
        "client calls: {}, server calls: {}; cache stats: {} miss, {} collapsed, {} hit",
        client_calls + 1,
        server.calls.load(Ordering::SeqCst),
        stats.misses,
        stats.collapsed,
        stats.hits
    );
    if server.calls.load(Ordering::SeqCst) != 3 {
        return Err("expected one server call per distinct request".into());
    }
    Ok(())
}
