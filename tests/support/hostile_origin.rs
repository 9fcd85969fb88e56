//! A hostile origin on loopback, written with raw sockets so that it can say
//! what no well-behaved server says (contradictory framing, a body that stops
//! midway, hop-by-hop headers), and a caching proxy in front of it: a hyper
//! server whose service is the shared-calls layer over a hyper-util client.
//! Raw clients read what the proxy writes, byte for byte.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use shared_calls::{HttpCache, SharedCallsLayer, default_key};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, service_fn};

use super::{CountWaiting, Counter, Gate, bounded};

/// What the origin does on one connection, in order; it closes the
/// connection after the last step.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Writes these bytes.
    Write(Vec<u8>),
    /// Waits for the gate.
    Wait(Gate),
}

/// What the origin does for a request's path.
pub(crate) type Script = Arc<dyn Fn(&str) -> Vec<Step> + Send + Sync>;

/// The origin: answers each request with the steps its path maps to, and
/// counts the requests it received.
#[derive(Clone, Debug)]
pub(crate) struct HostileOrigin {
    pub(crate) addr: SocketAddr,
    calls: Arc<AtomicUsize>,
}

impl HostileOrigin {
    /// Starts an origin whose answers are `script(path)`.
    pub(crate) async fn start(script: fn(&str) -> Vec<Step>) -> Self {
        Self::start_with(Arc::new(script)).await
    }

    /// [`start`](Self::start) with a script that captures its own state.
    pub(crate) async fn start_with(script: Script) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (script, calls) = (script.clone(), counted.clone());
                tokio::spawn(async move { answer(stream, &script, &calls).await });
            }
        });
        Self { addr, calls }
    }

    /// Requests received so far.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn answer(mut stream: TcpStream, script: &Script, calls: &AtomicUsize) {
    let Some(head) = read_head(&mut stream).await else {
        return;
    };
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    calls.fetch_add(1, Ordering::SeqCst);
    for step in script(&path) {
        match step {
            Step::Write(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Step::Wait(gate) => gate.wait().await,
        }
    }
    let _ = stream.shutdown().await;
}

/// Reads a request head; its first line, or `None` if the peer left.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    text.lines().next().map(str::to_owned)
}

/// The caching proxy in front of an origin: its address, its cache, and a
/// counter of the requests waiting inside the layer.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    pub(crate) cache: HttpCache,
    pub(crate) waiting: Counter,
}

impl Proxy {
    /// Serves HTTP/1 on a fresh loopback port, forwarding every request's
    /// path to `origin` through the layer.
    pub(crate) async fn start(origin: SocketAddr) -> Self {
        let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        let forward = service_fn(move |request: Request<Incoming>| {
            let uri = format!("http://{origin}{}", request.uri().path());
            let client = client.clone();
            async move {
                let upstream = Request::get(uri).body(Empty::new()).unwrap();
                client.request(upstream).await
            }
        });
        let layer = SharedCallsLayer::new(default_key);
        let cache = layer.cache_handle();
        let waiting = Counter::default();
        let service = CountWaiting(waiting.clone()).layer(layer.layer(forward));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let service = TowerToHyperService::new(service.clone());
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            cache,
            waiting,
        }
    }

    /// How many answers the cache holds now.
    pub(crate) fn stored(&self) -> u64 {
        self.cache.stats().entries
    }
}

/// What a raw client read from the proxy: the head as sent, and every byte
/// after it until the proxy closed the connection.
#[derive(Debug)]
pub(crate) struct Raw {
    pub(crate) head: String,
    pub(crate) rest: Vec<u8>,
}

impl Raw {
    /// The status line.
    pub(crate) fn status_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    /// The value of a header (first line of that name), lower-cased name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as its framing delimits it, and whatever bytes followed
    /// that body on the connection (bytes a client would read as the next
    /// response). `None` for the body if its framing does not hold (a
    /// truncated body).
    pub(crate) fn framed_body(&self) -> (Option<Vec<u8>>, Vec<u8>) {
        if let Some(length) = self.header("content-length") {
            let length: usize = length.parse().unwrap();
            if self.rest.len() < length {
                return (None, Vec::new());
            }
            let (body, after) = self.rest.split_at(length);
            return (Some(body.to_vec()), after.to_vec());
        }
        if self.header("transfer-encoding") == Some("chunked") {
            return dechunk(&self.rest);
        }
        (Some(self.rest.clone()), Vec::new())
    }
}

/// Decodes a chunked body: the data, and what follows its last chunk.
fn dechunk(mut bytes: &[u8]) -> (Option<Vec<u8>>, Vec<u8>) {
    let mut body = Vec::new();
    loop {
        let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") else {
            return (None, Vec::new());
        };
        let size = std::str::from_utf8(&bytes[..end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        bytes = &bytes[end + 2..];
        if size == 0 {
            // No trailers here: the final CRLF ends the message.
            let after = bytes.strip_prefix(b"\r\n").unwrap_or(bytes);
            return (Some(body), after.to_vec());
        }
        if bytes.len() < size + 2 {
            return (None, Vec::new());
        }
        body.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}

/// Sends `GET path` with `Connection: close` and reads everything the proxy
/// writes until it closes the connection.
pub(crate) async fn get(proxy: SocketAddr, path: &str) -> Raw {
    bounded("a raw GET through the proxy", async {
        let mut stream = TcpStream::connect(proxy).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: origin.test\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut bytes = Vec::new();
        // A connection the proxy aborts ends the read too.
        let _ = stream.read_to_end(&mut bytes).await;
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        Raw {
            head: String::from_utf8_lossy(&bytes[..split]).into_owned(),
            rest: bytes[split + 4..].to_vec(),
        }
    })
    .await
}
