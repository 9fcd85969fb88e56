//! A caching reverse proxy in front of any HTTP origin: the shortest way to
//! protect a hot backend endpoint without touching its code.
//!
//! ```sh
//! cargo run --release --example reverse_proxy -- --listen 127.0.0.1:8080 --upstream http://127.0.0.1:3000
//! cargo run --release --example reverse_proxy -- --listen 127.0.0.1:8080 --upstream http://127.0.0.1:3000 --ttl-ms 1000
//! cargo run --release --example reverse_proxy -- --help   # every bound and its default
//! cargo run --release --example reverse_proxy -- --listen 127.0.0.1:8080 --upstream http://127.0.0.1:3000 --no-cache  # a bare forwarder
//! ```
//!
//! Identical `GET`s arriving together reach the origin once; answers are
//! kept as the origin's `Cache-Control` says (or for `--ttl-ms` when it says
//! nothing); `private`, `no-store`, `Set-Cookie` answers and requests with
//! credentials pass through. An expired answer with an `ETag` or
//! `Last-Modified` is refreshed with a conditional request, and the origin's
//! `304` keeps it serving without its body crossing again. It runs until
//! interrupted.
//!
//! What it does not let clients or the origin do:
//!
//! - hold connections: request heads, idle connections, connecting to the
//!   origin, its first byte and its silences inside a body are all bounded
//!   in time (`--help` lists the flags); running out of file descriptors
//!   pauses accepting instead of ending the process;
//! - name another site than the one keyed: an invalid `Host`, two `Host`
//!   lines or an HTTP/1.1 request without one get `400`, and the origin
//!   receives exactly the authority the cache key was made from, whether
//!   the client sent it as `Host`, an absolute-form target or h2c
//!   `:authority` ([`authority`]);
//! - pass connection-specific headers through, in either direction, or into
//!   the cache ([`hop_by_hop`]);
//! - relay a body under framing it no longer has: an answer with a
//!   `Transfer-Encoding` other than `chunked`, or with both
//!   `Transfer-Encoding` and `Content-Length`, becomes a `502` (as with
//!   nginx) and is never stored ([`upstream`]).

mod authority;
mod hop_by_hop;
mod listener;
mod settings;
mod upstream;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HeaderValue};
use http::uri::Authority;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use shared_calls::http_policy::SharedBody;
use shared_calls::{SharedCallsLayer, default_key};
use tower::{Service, ServiceBuilder, ServiceExt};

use settings::{Parsed, Settings};
use upstream::{BetweenBytes, Upstream, UpstreamError};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What every client receives.
type ProxyResponse = Response<SharedBody<BetweenBytes<Incoming>>>;

/// An answer the proxy writes itself (never stored).
fn answer(status: StatusCode, text: &str) -> ProxyResponse {
    let mut response = Response::new(SharedBody::full(Bytes::from(format!("{text}\n")), None));
    *response.status_mut() = status;
    response
}

/// One request: put in canonical form, then answered from the cache or the
/// origin.
async fn handle<S>(
    cached: S,
    upstream: Authority,
    mut request: Request<Incoming>,
) -> Result<ProxyResponse, Infallible>
where
    S: Service<Request<Incoming>, Response = ProxyResponse, Error = UpstreamError>,
{
    let authority = match authority::of(&request, &upstream) {
        Ok(authority) => authority,
        Err(refusal) => {
            let mut response = answer(refusal.status(), refusal.reason());
            // Nothing more is read from a client that got its target wrong.
            let close = HeaderValue::from_static("close");
            response.headers_mut().insert(CONNECTION, close);
            return Ok(response);
        }
    };
    // Before the key is made: a header the client marked as for this hop
    // only must not reach the key, `Vary` or the origin.
    hop_by_hop::strip(request.headers_mut());
    authority::apply(&mut request, &authority);
    Ok(match cached.oneshot(request).await {
        Ok(response) => response,
        Err(error) => {
            // The details are the operator's, not the client's.
            eprintln!("{error}");
            let status = error.status();
            answer(status, status.canonical_reason().unwrap_or_default())
        }
    })
}

/// Prints the cache's counters every ten seconds.
async fn report_stats(cache: shared_calls::HttpCache) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tick.tick().await;
        let stats = cache.stats();
        println!(
            "hits {}, misses {}, collapsed {}, stale {}, passes {}, entries {}",
            stats.hits, stats.misses, stats.collapsed, stats.stale, stats.passes, stats.entries
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let settings: Settings = match settings::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(settings)) => settings,
        Ok(Parsed::Help(help)) => {
            println!("{help}");
            return Ok(());
        }
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    println!(
        "proxying http://{} -> http://{} ({}; Ctrl-C to stop)",
        listener.local_addr()?,
        settings.upstream,
        match settings.cache {
            true => format!(
                "answers without Cache-Control kept {} ms",
                settings.ttl.as_millis()
            ),
            false => "no cache".to_owned(),
        }
    );
    let upstream = settings.upstream.clone();
    if !settings.cache {
        let forward = ServiceBuilder::new()
            .map_response(|response: Response<_>| response.map(SharedBody::streamed))
            .service(Upstream::new(&settings));
        listener::serve(listener, &settings, move |request| {
            handle(forward.clone(), upstream.clone(), request)
        })
        .await;
        return Ok(());
    }
    // Keyed on what the client asked for, in the canonical form `handle`
    // gives it: one `Host`, path and query.
    let layer = SharedCallsLayer::new(default_key)
        .ttl(settings.ttl)
        .lock_timeout(settings.lock_timeout)
        .max_bytes(settings.cache_bytes);
    tokio::spawn(report_stats(layer.cache_handle()));
    let cached = ServiceBuilder::new()
        .layer(layer)
        .service(Upstream::new(&settings));
    listener::serve(listener, &settings, move |request| {
        handle(cached.clone(), upstream.clone(), request)
    })
    .await;
    Ok(())
}
