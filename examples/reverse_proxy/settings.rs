//! The command line: where to listen, where the origin is, and every bound
//! the proxy keeps (each with a default that is safe in front of real
//! traffic).

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;
use http::uri::{Authority, Scheme};

use crate::Error;

/// What the proxy was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    /// The origin, spoken to in plain HTTP/1.1.
    pub(crate) upstream: Authority,
    /// How long an answer without `Cache-Control` stays fresh.
    pub(crate) ttl: Duration,
    /// Client side: a new connection's first request, and each HTTP/1
    /// request head, must arrive within this.
    pub(crate) header_timeout: Duration,
    /// Client side: a connection with no request in flight after answering
    /// one is closed after this.
    pub(crate) idle_timeout: Duration,
    /// Origin side: opening a connection.
    pub(crate) connect_timeout: Duration,
    /// Origin side: from sending the request (its body included) to the
    /// answer's head.
    pub(crate) first_byte_timeout: Duration,
    /// Origin side: the longest silence inside an answer's body.
    pub(crate) between_bytes_timeout: Duration,
    /// How long a request waits for another request's call to the origin
    /// before making its own.
    pub(crate) lock_timeout: Duration,
    /// The cache's bound: bytes of keys, headers and bodies held.
    pub(crate) cache_bytes: u64,
    /// Whether answers go through the cache at all: without it the proxy is
    /// a bare forwarder, the reference its miss path is measured against.
    pub(crate) cache: bool,
}

const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// The defaults, named once for the code and for `--help`.
const DEFAULT_TTL: Duration = millis(1_000);
const DEFAULT_HEADER_TIMEOUT: Duration = millis(10_000);
const DEFAULT_IDLE_TIMEOUT: Duration = millis(30_000);
const DEFAULT_CONNECT_TIMEOUT: Duration = millis(5_000);
const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = millis(30_000);
const DEFAULT_BETWEEN_BYTES_TIMEOUT: Duration = millis(30_000);
const DEFAULT_LOCK_TIMEOUT: Duration = millis(5_000);
const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

const USAGE: &str =
    "usage: reverse_proxy --listen ADDR --upstream http://HOST:PORT [OPTIONS]  (--help lists them)";

fn help() -> String {
    let ms = |duration: Duration| duration.as_millis();
    format!(
        "A caching reverse proxy in front of one HTTP origin.

{USAGE}

  --listen ADDR                  address to accept clients on, e.g. 127.0.0.1:8080
  --upstream http://HOST:PORT    the origin (plain HTTP/1.1)
  --ttl-ms N                     freshness of answers without Cache-Control [{ttl}]
  --header-timeout-ms N          a new connection's first request, and every HTTP/1
                                 request head, must arrive within this; on HTTP/1 it
                                 also bounds the wait for the next request [{header}]
  --idle-timeout-ms N            close a connection with no request in flight for this
                                 long after answering one (HTTP/1 and h2c) [{idle}]
  --connect-timeout-ms N         opening a connection to the origin [{connect}]
  --first-byte-timeout-ms N      from sending a request (its body included) to the
                                 origin's answer head; past it the client gets 504 [{first_byte}]
  --between-bytes-timeout-ms N   longest silence inside the origin's answer body;
                                 past it the answer is cut off, not stored [{between}]
  --lock-timeout-ms N            how long a request waits for an identical request's
                                 origin call before making its own [{lock}]
  --cache-bytes N                bound of the cache: keys, headers and bodies [{bytes}]
  --no-cache                     forward every request without the cache (a bare
                                 forwarder with the same bounds, to measure against)
  -h, --help                     this text",
        ttl = ms(DEFAULT_TTL),
        header = ms(DEFAULT_HEADER_TIMEOUT),
        idle = ms(DEFAULT_IDLE_TIMEOUT),
        connect = ms(DEFAULT_CONNECT_TIMEOUT),
        first_byte = ms(DEFAULT_FIRST_BYTE_TIMEOUT),
        between = ms(DEFAULT_BETWEEN_BYTES_TIMEOUT),
        lock = ms(DEFAULT_LOCK_TIMEOUT),
        bytes = DEFAULT_CACHE_BYTES,
    )
}

/// What parsing the command line asks for.
#[derive(Debug)]
pub(crate) enum Parsed {
    Run(Settings),
    Help(String),
}

/// Parses the arguments after the program name.
pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, Error> {
    let mut listen = None;
    let mut upstream = None;
    let mut settings = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstream: Authority::from_static("localhost"),
        ttl: DEFAULT_TTL,
        header_timeout: DEFAULT_HEADER_TIMEOUT,
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
        between_bytes_timeout: DEFAULT_BETWEEN_BYTES_TIMEOUT,
        lock_timeout: DEFAULT_LOCK_TIMEOUT,
        cache_bytes: DEFAULT_CACHE_BYTES,
        cache: true,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        let mut duration = || -> Result<Duration, Error> {
            let ms: u64 = value()?.parse()?;
            Ok(Duration::from_millis(ms))
        };
        match arg.as_str() {
            "--listen" => listen = Some(value()?.parse::<SocketAddr>()?),
            "--upstream" => upstream = Some(value()?.parse::<Uri>()?),
            "--ttl-ms" => settings.ttl = duration()?,
            "--header-timeout-ms" => settings.header_timeout = duration()?,
            "--idle-timeout-ms" => settings.idle_timeout = duration()?,
            "--connect-timeout-ms" => settings.connect_timeout = duration()?,
            "--first-byte-timeout-ms" => settings.first_byte_timeout = duration()?,
            "--between-bytes-timeout-ms" => settings.between_bytes_timeout = duration()?,
            "--lock-timeout-ms" => settings.lock_timeout = duration()?,
            "--cache-bytes" => settings.cache_bytes = value()?.parse()?,
            "--no-cache" => settings.cache = false,
            "-h" | "--help" => return Ok(Parsed::Help(help())),
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
    if [
        settings.header_timeout,
        settings.idle_timeout,
        settings.connect_timeout,
        settings.first_byte_timeout,
        settings.between_bytes_timeout,
    ]
    .contains(&Duration::ZERO)
    {
        return Err("timeouts must be at least 1 ms".into());
    }
    settings.listen = listen.ok_or(USAGE)?;
    settings.upstream = authority.clone();
    Ok(Parsed::Run(settings))
}
