//! A caching reverse proxy in front of any HTTP origin: the shortest way to
//! protect a hot backend endpoint without touching its code.
//!
//! ```sh
//! cargo run --release --example reverse_proxy -- --listen 127.0.0.1:8080 --upstream http://127.0.0.1:3000
//! cargo run --release --example reverse_proxy -- --listen 127.0.0.1:8080 --upstream http://127.0.0.1:3000 --ttl-ms 1000
//! ```
//!
//! Identical `GET`s arriving together reach the origin once; answers are
//! kept as the origin's `Cache-Control` says (or for `--ttl-ms` when it says
//! nothing); `private`, `no-store`, `Set-Cookie` answers and requests with
//! credentials pass through. It runs until interrupted.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use shared_calls::http::SharedBody;
use shared_calls::{SharedCallsLayer, default_key};
use tower::{ServiceBuilder, ServiceExt};

type Error = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: reverse_proxy --listen ADDR --upstream http://HOST:PORT [--ttl-ms N]";

/// Headers of one connection only (RFC 9110 §7.6.1), not forwarded.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

#[derive(Debug)]
struct Args {
    listen: SocketAddr,
    scheme: Scheme,
    authority: Authority,
    ttl: Duration,
}

fn parse_args() -> Result<Args, Error> {
    let mut listen = None;
    let mut upstream = None;
    let mut ttl = Duration::from_secs(1);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--listen" => listen = Some(value()?.parse::<SocketAddr>()?),
            "--upstream" => upstream = Some(value()?.parse::<Uri>()?),
            "--ttl-ms" => ttl = Duration::from_millis(value()?.parse()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    let upstream = upstream.ok_or(USAGE)?;
    let (Some(scheme), Some(authority)) = (upstream.scheme(), upstream.authority()) else {
        return Err(format!(
            "--upstream must be an absolute URI like http://127.0.0.1:3000\n{USAGE}"
        )
        .into());
    };
    if scheme != &Scheme::HTTP {
        return Err("this example speaks plain http to the upstream".into());
    }
    Ok(Args {
        listen: listen.ok_or(USAGE)?,
        scheme: scheme.clone(),
        authority: authority.clone(),
        ttl,
    })
}

/// Points a request at the upstream and drops hop-by-hop headers.
fn to_upstream(
    mut request: Request<Incoming>,
    scheme: &Scheme,
    authority: &Authority,
) -> Request<Incoming> {
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(scheme.clone());
    parts.authority = Some(authority.clone());
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    *request.version_mut() = http::Version::HTTP_11;
    for name in &HOP_BY_HOP {
        request.headers_mut().remove(name);
    }
    request
}

/// What the client gets when the upstream cannot be reached.
fn bad_gateway(error: &dyn std::fmt::Display) -> Response<SharedBody<Incoming>> {
    let mut response = Response::new(SharedBody::full(
        Bytes::from(format!("bad gateway: {error}\n")),
        None,
    ));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// The proxy's answer: the upstream's, or a 502 when it cannot be reached.
///
/// (The error type is there only because readiness errors convert into it;
/// the legacy client is always ready.)
fn or_bad_gateway(
    result: Result<Response<SharedBody<Incoming>>, hyper_util::client::legacy::Error>,
) -> Result<Response<SharedBody<Incoming>>, Error> {
    Ok(result.unwrap_or_else(|error| bad_gateway(&error)))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build_http();
    let layer = SharedCallsLayer::new(default_key).ttl(args.ttl);
    let cache = layer.cache_handle();
    let (scheme, authority) = (args.scheme.clone(), args.authority.clone());
    let proxy = ServiceBuilder::new()
        // The cache's own errors are responses; the client's become 502s.
        .map_result(or_bad_gateway)
        // Keyed on what the client asked for (its Host, path and query).
        .layer(layer)
        .map_request(move |request| to_upstream(request, &scheme, &authority))
        .map_response(|mut response: Response<Incoming>| {
            for name in &HOP_BY_HOP {
                response.headers_mut().remove(name);
            }
            response
        })
        .service(client);

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!(
        "proxying http://{} -> {}://{} (answers without Cache-Control kept {} ms; Ctrl-C to stop)",
        listener.local_addr()?,
        args.scheme,
        args.authority,
        args.ttl.as_millis()
    );
    let mut stats_tick = tokio::time::interval(Duration::from_secs(10));
    stats_tick.tick().await;
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = stats_tick.tick() => {
                let stats = cache.stats();
                println!(
                    "hits {}, misses {}, collapsed {}, stale {}, passes {}, entries {}",
                    stats.hits, stats.misses, stats.collapsed, stats.stale, stats.passes, stats.entries
                );
                continue;
            }
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                proxy.clone().oneshot(request)
            });
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {error}");
            }
        });
    }
}
