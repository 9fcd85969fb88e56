//! The soak engine: an axum server behind `SharedCallsLayer` on loopback,
//! under keep-alive load from many hyper clients, with faults injected
//! everywhere. `tests/reliability_soak.rs` runs it for a few seconds;
//! `cargo run --release --example soak -- --seconds 60` for as long as asked.
//!
//! The handler, on each backend call, waits 0–50 ms (2 % of calls:
//! 250–400 ms, beyond the lock timeout) and then answers
//! normally, fails with a 503, panics, streams a body that errors midway, or
//! streams a body over the layer's size limit. Clients pick keys with a
//! skew (half the requests go to the first eighth of the keys), and some drop
//! their request and connection after a short random delay. An application
//! task invalidates random keys through the cache handle all the while.
//!
//! A quarter of the keys answer with `Vary: Accept-Language`, and clients
//! pick one of three languages; 3 % of requests go to an event stream
//! (`text/event-stream`) of their key instead, which must reach its own
//! client only, whole. Another 3 % send a `Host` that names no single
//! authority (with `/`, `?`, `@` or a space in it, or two `Host` lines):
//! they must bypass the cache, each answered by its own call.
//!
//! Every body the handler produces is `key=<k>;` (or `key=<k>/<lang>;` for a
//! key that varies) repeated, so each answer is checked exactly: it is correct for its request's key (the whole body, over
//! the limit or not, names that key and only that key), or an explicit
//! failure (a 5xx with `Cache-Status`, a body error, a closed connection).
//! Anything else is a wrong answer; no answer within [`HANG_LIMIT`] is a
//! hang. At the end, after the load stops and a short settle: no flight left
//! in the layer, no backend call still running, the cache within its
//! capacity, and the process's peak memory (`VmHWM`) within the bound stated
//! up front: `max_entries × max_body_size + MEMORY_MARGIN`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Router, response::Response};
use bytes::Bytes;
use futures::StreamExt;
use http::header::{ACCEPT_LANGUAGE, HOST, VARY};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use shared_calls::http_policy::HttpKey;
use shared_calls::{HttpCache, SharedCallsLayer, default_key};

/// The largest body the layer buffers (and so stores or shares).
pub(crate) const MAX_BODY_SIZE: usize = 16 * 1024;
/// The layer's cache capacity, in entries.
pub(crate) const MAX_ENTRIES: u64 = 256;
/// Memory allowed on top of `MAX_ENTRIES × MAX_BODY_SIZE`: the runtime, the
/// server's and the clients' connections and buffers, bodies in flight, the
/// allocator's slack, and the test harness when run as a test.
pub(crate) const MEMORY_MARGIN: u64 = 64 * 1024 * 1024;
/// A client call not answered within this long is a hang.
pub(crate) const HANG_LIMIT: Duration = Duration::from_secs(10);
/// How long a follower waits for another request's backend call.
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_millis(200);
/// Followers allowed to wait on one key; more get a 503 at once.
pub(crate) const MAX_WAITERS: usize = 8;

const HOST_NAME: &str = "soak.test";
/// Events in each event stream.
const EVENTS: usize = 3;
const INJECTED_PANIC: &str = "soak: injected panic";

/// `Host` lines that name no single authority: a request sending them must
/// bypass the cache, so that it can neither poison another path's entry nor
/// be answered from one.
const HOSTILE_HOSTS: [&[&str]; 6] = [
    &["soak.test/k/0"],
    &["soak.test?k=0"],
    &["soak.test#k"],
    &["user@soak.test"],
    &["soak .test"],
    &[HOST_NAME, "other.test"],
];

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct SoakConfig {
    /// How long the load runs.
    pub(crate) duration: Duration,
    /// Concurrent clients, each with its own keep-alive connection.
    pub(crate) clients: usize,
    /// Distinct keys (paths `/k/0` … `/k/{keys - 1}`).
    pub(crate) keys: u32,
}

impl Default for SoakConfig {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(60),
            clients: 128,
            keys: 1000,
        }
    }
}

/// A small, fast, seedable generator (SplitMix64): the faults need variety,
/// not cryptographic quality, and the workspace needs no `rand` for it.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A key in `0..keys`, skewed towards small numbers: half the draws fall
    /// in the first eighth.
    pub(crate) fn skewed(&mut self, keys: u32) -> u32 {
        ((f64::from(keys) * self.unit().powi(3)) as u32).min(keys - 1)
    }
}

/// What the handler did, by kind.
#[derive(Debug, Default)]
struct Backend {
    seed: AtomicU64,
    calls: AtomicU64,
    running: AtomicU64,
    slow: AtomicU64,
    ok: AtomicU64,
    server_error: AtomicU64,
    panic: AtomicU64,
    body_error: AtomicU64,
    over_limit: AtomicU64,
}

/// Decrements the running gauge when a handler ends, however it ends.
struct Running<'a>(&'a AtomicU64);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The languages clients accept; a quarter of the keys vary on them.
const LANGUAGES: [&str; 3] = ["en", "fr", "de"];

/// Whether the answers of `key` carry `Vary: Accept-Language`.
fn varies(key: u32) -> bool {
    key % 4 == 1
}

/// The token a body of `key` repeats: `key=<k>;`, or `key=<k>/<lang>;` for a
/// key that varies, so that a variant served to another language shows.
fn token(key: u32, lang: &str) -> String {
    match varies(key) {
        true => format!("key={key}/{lang};"),
        false => format!("key={key};"),
    }
}

/// The token repeated to at least `len` bytes, in whole tokens.
fn body_of(key: u32, lang: &str, len: usize) -> Bytes {
    let token = token(key, lang);
    Bytes::from(token.repeat(len.div_ceil(token.len()).max(1)))
}

async fn handler(
    State(backend): State<Arc<Backend>>,
    Path(key): Path<u32>,
    headers: HeaderMap,
) -> Response {
    let lang = headers
        .get(ACCEPT_LANGUAGE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("en")
        .to_owned();
    let mut response = answer(&backend, key, &lang).await;
    if varies(key) {
        response
            .headers_mut()
            .insert(VARY, HeaderValue::from_static("accept-language"));
    }
    response
}

/// The events of `key`'s stream.
fn events_of(key: u32) -> String {
    format!("data: key={key};\n\n").repeat(EVENTS)
}

/// An event stream of `key`: a few events a millisecond apart, then its end.
async fn events(State(backend): State<Arc<Backend>>, Path(key): Path<u32>) -> Response {
    backend.calls.fetch_add(1, Ordering::Relaxed);
    let event = Bytes::from(format!("data: key={key};\n\n"));
    let stream =
        futures::stream::iter((0..EVENTS).map(move |_| event.clone())).then(|event| async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, std::io::Error>(event)
        });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// The backend's answer for `key` in `lang`, with injected faults.
async fn answer(backend: &Backend, key: u32, lang: &str) -> Response {
    backend.calls.fetch_add(1, Ordering::Relaxed);
    backend.running.fetch_add(1, Ordering::Relaxed);
    let _running = Running(&backend.running);
    let mut rng = Rng::new(backend.seed.fetch_add(1, Ordering::Relaxed) ^ (u64::from(key) << 32));
    // 2 % of calls are slow, beyond the lock timeout.
    let wait = if rng.below(100) < 2 {
        backend.slow.fetch_add(1, Ordering::Relaxed);
        250 + rng.below(151)
    } else {
        rng.below(51)
    };
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let roll = rng.below(100);
    if roll < 75 {
        backend.ok.fetch_add(1, Ordering::Relaxed);
        let len = 64 + rng.below(12 * 1024) as usize;
        return Response::new(Body::from(body_of(key, lang, len)));
    }
    if roll < 83 {
        backend.server_error.fetch_add(1, Ordering::Relaxed);
        let mut response = Response::new(Body::from(body_of(key, lang, 64)));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return response;
    }
    if roll < 87 {
        backend.panic.fetch_add(1, Ordering::Relaxed);
        panic!("{INJECTED_PANIC}");
    }
    // Streamed bodies, in chunks of whole tokens.
    let chunk = body_of(key, lang, 2048);
    let chunk = chunk.slice(..chunk.len() - chunk.len() % token(key, lang).len());
    let (chunks, fail) = if roll < 92 {
        backend.body_error.fetch_add(1, Ordering::Relaxed);
        // Fails before or after crossing the size limit.
        (1 + rng.below(12), true)
    } else {
        backend.over_limit.fetch_add(1, Ordering::Relaxed);
        let total = 20 * 1024 + rng.below(44 * 1024) as usize;
        (total.div_ceil(chunk.len()) as u64, false)
    };
    let mut frames: Vec<Result<Bytes, std::io::Error>> =
        (0..chunks).map(|_| Ok(chunk.clone())).collect();
    if fail {
        frames.push(Err(std::io::Error::other("soak: injected body error")));
    }
    // A millisecond between chunks: a stream, not one ready burst.
    let stream = futures::stream::iter(frames).then(|frame| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        frame
    });
    Response::new(Body::from_stream(stream))
}

/// The app: one route behind the layer, as a user would write it.
fn app(backend: Arc<Backend>) -> (Router, HttpCache) {
    let layer = SharedCallsLayer::new(default_key)
        .map_policy(|policy| policy.max_body_size(MAX_BODY_SIZE))
        .max_entries(MAX_ENTRIES)
        .ttl(Duration::from_secs(1))
        .stale_while_revalidate(Duration::from_secs(1))
        .stale_if_error(Duration::from_secs(5))
        .hit_for_miss(Duration::from_millis(500))
        .lock_timeout(LOCK_TIMEOUT)
        .max_waiters(MAX_WAITERS);
    let cache = layer.cache_handle();
    let router = Router::new()
        .route("/k/{key}", get(handler))
        .route("/events/{key}", get(events))
        .with_state(backend)
        .layer(layer);
    (router, cache)
}

/// The cache key of `/k/<key>` as the layer derives it.
fn key_of(key: u32) -> HttpKey {
    let request = Request::get(format!("/k/{key}"))
        .header(HOST, HOST_NAME)
        .body(())
        .expect("a valid request");
    default_key(&request).expect("default_key always keys")
}

/// What clients saw, by kind.
#[derive(Debug, Default)]
struct Tally {
    requests: AtomicU64,
    ok: AtomicU64,
    ok_over_limit: AtomicU64,
    hit: AtomicU64,
    miss: AtomicU64,
    collapsed: AtomicU64,
    stale: AtomicU64,
    stale_if_error: AtomicU64,
    pass: AtomicU64,
    lock_timeout: AtomicU64,
    backend_5xx: AtomicU64,
    panicked_500: AtomicU64,
    overloaded_503: AtomicU64,
    upstream_502: AtomicU64,
    other_failure: AtomicU64,
    body_error: AtomicU64,
    connection_error: AtomicU64,
    disconnects: AtomicU64,
    hangs: AtomicU64,
    wrong: AtomicU64,
    invalidations: AtomicU64,
    hostile_bypassed: AtomicU64,
    first_wrong: std::sync::Mutex<Vec<String>>,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What one answer was.
enum Verdict {
    /// The right body for the key, with the layer's `Cache-Status`.
    Correct { cache_status: String, len: usize },
    /// An explicit failure, of some kind.
    Failure(fn(&Tally) -> &AtomicU64),
    /// Another key's body, a truncated body that looks whole, a failure that
    /// does not say so: never acceptable.
    Wrong(String),
}

/// Whether `body` is `key=<key>;` repeated, and nothing else.
fn names_only(body: &[u8], key: u32, lang: &str) -> bool {
    let token = token(key, lang);
    !body.is_empty()
        && body.len().is_multiple_of(token.len())
        && body
            .chunks(token.len())
            .all(|chunk| chunk == token.as_bytes())
}

fn cache_status_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("cache-status")?;
    value.to_str().ok().map(str::to_owned)
}

fn judge(
    key: u32,
    lang: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: Result<Bytes, String>,
) -> Verdict {
    let Some(cache_status) = cache_status_of(headers) else {
        return Verdict::Wrong(format!("{status} without Cache-Status for key {key}"));
    };
    let body = match body {
        Ok(body) => body,
        // A body that failed midway: the client knows it is incomplete.
        Err(_) => return Verdict::Failure(|t| &t.body_error),
    };
    let keyed = body.starts_with(b"key=");
    if keyed && !names_only(&body, key, lang) {
        let start = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        return Verdict::Wrong(format!(
            "{status} for key {key}: body of {} bytes starting {start:?} ({cache_status})",
            body.len()
        ));
    }
    match status {
        StatusCode::OK if keyed => Verdict::Correct {
            cache_status,
            len: body.len(),
        },
        StatusCode::SERVICE_UNAVAILABLE if keyed => Verdict::Failure(|t| &t.backend_5xx),
        _ if !status.is_server_error() => {
            Verdict::Wrong(format!("{status} for key {key} ({cache_status})"))
        }
        // Made by the layer itself: it must say why.
        StatusCode::INTERNAL_SERVER_ERROR if cache_status.contains("detail=panicked") => {
            Verdict::Failure(|t| &t.panicked_500)
        }
        StatusCode::SERVICE_UNAVAILABLE if cache_status.contains("detail=overloaded") => {
            Verdict::Failure(|t| &t.overloaded_503)
        }
        StatusCode::BAD_GATEWAY if cache_status.contains("detail=upstream-error") => {
            Verdict::Failure(|t| &t.upstream_502)
        }
        _ if cache_status.contains("detail=") => Verdict::Failure(|t| &t.other_failure),
        _ => Verdict::Wrong(format!(
            "{status} for key {key} that does not say why ({cache_status})"
        )),
    }
}

/// An event stream reaches its own client only, whole: its own call, never
/// a stored or shared answer.
fn judge_events(
    key: u32,
    status: StatusCode,
    headers: &HeaderMap,
    body: Result<Bytes, String>,
) -> Verdict {
    let cache_status = cache_status_of(headers).unwrap_or_default();
    let own = !cache_status.contains("; hit") && !cache_status.contains("collapsed");
    match body {
        Ok(body) if status == StatusCode::OK && own && body == events_of(key).as_bytes() => {
            Verdict::Correct {
                cache_status,
                len: body.len(),
            }
        }
        Err(_) => Verdict::Failure(|t| &t.body_error),
        Ok(body) => Verdict::Wrong(format!(
            "events of key {key}: {status}, {} bytes ({cache_status})",
            body.len()
        )),
    }
}

/// A request with a hostile `Host` answered correctly must have bypassed
/// the cache: its own call, nothing shared or stored.
fn judge_hostile(hosts: &[&str], verdict: Verdict, tally: &Tally) -> Verdict {
    match verdict {
        Verdict::Correct { cache_status, .. } if !cache_status.contains("fwd=bypass") => {
            Verdict::Wrong(format!("Host {hosts:?} did not bypass ({cache_status})"))
        }
        Verdict::Correct { .. } => {
            add(&tally.hostile_bypassed);
            verdict
        }
        other => other,
    }
}

impl Tally {
    fn record(&self, key: u32, verdict: Verdict) {
        match verdict {
            Verdict::Correct { cache_status, len } => {
                add(&self.ok);
                if len > MAX_BODY_SIZE {
                    add(&self.ok_over_limit);
                }
                add(outcome_counter(self, &cache_status));
            }
            Verdict::Failure(counter) => add(counter(self)),
            Verdict::Wrong(reason) => {
                add(&self.wrong);
                let mut first = self.first_wrong.lock().unwrap_or_else(|e| e.into_inner());
                if first.len() < 10 {
                    first.push(format!("key {key}: {reason}"));
                }
            }
        }
    }
}

/// The outcome a `Cache-Status` reports (RFC 9211 as the HTTP policy writes it).
fn outcome_counter<'a>(tally: &'a Tally, cache_status: &str) -> &'a AtomicU64 {
    if cache_status.contains("detail=stale-while-revalidate") {
        &tally.stale
    } else if cache_status.contains("detail=stale-if-error") {
        &tally.stale_if_error
    } else if cache_status.contains("; hit") {
        &tally.hit
    } else if cache_status.contains("collapsed") {
        &tally.collapsed
    } else if cache_status.contains("detail=hit-for-miss") {
        &tally.pass
    } else if cache_status.contains("detail=lock-timeout") {
        &tally.lock_timeout
    } else {
        &tally.miss
    }
}

/// One keep-alive connection of a client.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> Option<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let _ = stream.set_nodelay(true);
        let io = hyper_util::rt::TokioIo::new(stream);
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await.ok()?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Some(Self { sender, task })
    }

    /// One request and its whole body. `Err` if no response arrived.
    async fn exchange(
        &mut self,
        path: &str,
        lang: &str,
        hosts: &[&str],
    ) -> Result<(StatusCode, HeaderMap, Result<Bytes, String>), String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let mut request = Request::get(path);
        for host in hosts {
            request = request.header(HOST, *host);
        }
        let request = request
            .header(ACCEPT_LANGUAGE, lang)
            .body(Empty::new())
            .expect("a valid request");
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .map_err(|e| e.to_string());
        Ok((parts.status, parts.headers, body))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Closes the socket: the server sees the client go away.
        self.task.abort();
    }
}

async fn client(id: u64, addr: SocketAddr, keys: u32, deadline: Instant, tally: Arc<Tally>) {
    let mut rng = Rng::new(id.wrapping_mul(0xA076_1D64_78BD_642F));
    let mut connection = None;
    while Instant::now() < deadline {
        let mut open = match connection.take() {
            Some(open) => open,
            None => match Connection::open(addr).await {
                Some(open) => open,
                None => {
                    add(&tally.connection_error);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let key = rng.skewed(keys);
        let lang = LANGUAGES[rng.below(LANGUAGES.len() as u64) as usize];
        let events = rng.below(100) < 3;
        let path = match events {
            true => format!("/events/{key}"),
            false => format!("/k/{key}"),
        };
        let hosts = match !events && rng.below(100) < 3 {
            true => HOSTILE_HOSTS[rng.below(HOSTILE_HOSTS.len() as u64) as usize],
            false => &[HOST_NAME],
        };
        add(&tally.requests);
        // 3 % of requests: the client goes away after 0–30 ms.
        let give_up = (rng.below(100) < 3).then(|| Duration::from_millis(rng.below(31)));
        let limit = give_up.unwrap_or(HANG_LIMIT);
        let result = tokio::time::timeout(limit, open.exchange(&path, lang, hosts)).await;
        match result {
            Err(_) if give_up.is_some() => {
                add(&tally.disconnects);
                drop(open);
            }
            Err(_) => {
                add(&tally.hangs);
                tally.record(
                    key,
                    Verdict::Wrong(format!("no answer within {HANG_LIMIT:?}")),
                );
                // Counted as a hang, not as a wrong answer too.
                tally.wrong.fetch_sub(1, Ordering::Relaxed);
                drop(open);
            }
            Ok(Err(_)) => {
                add(&tally.connection_error);
                drop(open);
            }
            Ok(Ok((status, headers, body))) => {
                let reusable = body.is_ok();
                let verdict = match events {
                    true => judge_events(key, status, &headers, body),
                    false => judge(key, lang, status, &headers, body),
                };
                let verdict = match hosts == [HOST_NAME] {
                    true => verdict,
                    false => judge_hostile(hosts, verdict, &tally),
                };
                tally.record(key, verdict);
                if reusable {
                    connection = Some(open);
                }
            }
        }
    }
}

/// The application invalidating keys (as after writes) during the load.
async fn invalidator(cache: HttpCache, keys: u32, deadline: Instant, tally: Arc<Tally>) {
    let mut rng = Rng::new(0xC0FF_EE00);
    let mut round = 0u64;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
        round += 1;
        if round.is_multiple_of(2000) {
            cache.invalidate_all();
        } else {
            cache.invalidate(&key_of(rng.skewed(keys)));
        }
        add(&tally.invalidations);
    }
}

/// Peak (`VmHWM`) and current (`VmRSS`) resident memory of this process, in
/// bytes (Linux).
pub(crate) fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Panics other than the injected ones, anywhere in the process (a panic
/// in the layer would otherwise only show as a closed connection).
static UNEXPECTED_PANICS: AtomicU64 = AtomicU64::new(0);

/// Suppresses the report of the injected panics (they are expected, and
/// counted by the backend); other panics are reported as usual, and counted.
fn quiet_injected_panics() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied());
            if message != Some(INJECTED_PANIC) {
                UNEXPECTED_PANICS.fetch_add(1, Ordering::Relaxed);
                default(info);
            }
        }));
    });
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) duration: Duration,
    pub(crate) clients: usize,
    pub(crate) keys: u32,
    pub(crate) requests: u64,
    pub(crate) ok: u64,
    pub(crate) ok_over_limit: u64,
    pub(crate) outcomes: [(&'static str, u64); 7],
    pub(crate) failures: [(&'static str, u64); 7],
    pub(crate) disconnects: u64,
    pub(crate) hangs: u64,
    pub(crate) wrong: u64,
    pub(crate) first_wrong: Vec<String>,
    pub(crate) invalidations: u64,
    /// Requests with a hostile `Host`, answered by their own call.
    pub(crate) hostile_bypassed: u64,
    pub(crate) backend_calls: u64,
    pub(crate) faults: [(&'static str, u64); 6],
    pub(crate) backend_running: u64,
    /// Calls dropped before they answered (counted in no fault kind).
    pub(crate) backend_cancelled: u64,
    pub(crate) unexpected_panics: u64,
    pub(crate) layer: shared_calls::cache::Stats,
    pub(crate) in_flight: usize,
    pub(crate) peak_memory: Option<u64>,
    pub(crate) memory_bound: u64,
}

impl Report {
    /// What went wrong, if anything: each a sentence.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.wrong > 0 {
            problems.push(format!(
                "{} wrong answers: {:?}",
                self.wrong, self.first_wrong
            ));
        }
        if self.hangs > 0 {
            problems.push(format!("{} hangs", self.hangs));
        }
        if self.in_flight > 0 {
            problems.push(format!("{} flights left in the layer", self.in_flight));
        }
        if self.backend_running > 0 {
            problems.push(format!(
                "{} backend calls still running",
                self.backend_running
            ));
        }
        if self.unexpected_panics > 0 {
            problems.push(format!(
                "{} panics other than the injected ones",
                self.unexpected_panics
            ));
        }
        if self.layer.entries > MAX_ENTRIES {
            problems.push(format!(
                "{} entries stored, over the capacity of {MAX_ENTRIES}",
                self.layer.entries
            ));
        }
        match self.peak_memory {
            Some(peak) if peak > self.memory_bound => problems.push(format!(
                "peak memory {} MiB over the bound of {} MiB",
                peak >> 20,
                self.memory_bound >> 20
            )),
            _ => {}
        }
        // The run must have exercised what it claims to.
        let exercised = [
            ("hits", self.layer.hits),
            ("collapsed", self.layer.collapsed),
            ("over-limit answers", self.ok_over_limit),
            ("disconnects", self.disconnects),
            ("invalidations", self.invalidations),
            ("hostile-Host bypasses", self.hostile_bypassed),
        ];
        for (name, count) in exercised.iter().chain(self.faults.iter()) {
            if *count == 0 {
                problems.push(format!("no {name} during the run"));
            }
        }
        problems
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.duration.as_secs_f64();
        writeln!(
            f,
            "soak: {:.1} s, {} clients, {} keys (skewed), max_entries {MAX_ENTRIES}, \
             max_body_size {MAX_BODY_SIZE} B, lock_timeout {LOCK_TIMEOUT:?}, max_waiters {MAX_WAITERS}",
            secs, self.clients, self.keys
        )?;
        writeln!(
            f,
            "requests:        {} ({:.0}/s)",
            self.requests,
            self.requests as f64 / secs
        )?;
        writeln!(
            f,
            "correct answers: {} ({} streamed over the size limit)",
            self.ok, self.ok_over_limit
        )?;
        let list = |items: &[(&str, u64)]| {
            items
                .iter()
                .map(|(name, count)| format!("{name} {count}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "  by outcome:    {}", list(&self.outcomes))?;
        writeln!(f, "failures:        {}", list(&self.failures))?;
        writeln!(f, "disconnects:     {}", self.disconnects)?;
        writeln!(f, "invalidations:   {}", self.invalidations)?;
        writeln!(f, "hostile Host:    {} bypassed", self.hostile_bypassed)?;
        writeln!(
            f,
            "backend calls:   {} ({:.1} % of requests)",
            self.backend_calls,
            100.0 * self.backend_calls as f64 / self.requests.max(1) as f64
        )?;
        writeln!(f, "faults injected: {}", list(&self.faults))?;
        writeln!(
            f,
            "  cancelled:     {} calls dropped during their wait (their only client went away)",
            self.backend_cancelled
        )?;
        let s = &self.layer;
        writeln!(
            f,
            "layer stats:     hits {}, misses {}, collapsed {}, stale {}, stale-if-error {}, \
             passes {}, lock timeouts {}, refreshes {}, load failures {}, evictions {}, entries {}",
            s.hits,
            s.misses,
            s.collapsed,
            s.stale,
            s.stale_if_error,
            s.passes,
            s.lock_timeouts,
            s.refreshes,
            s.load_failures,
            s.evictions,
            s.entries
        )?;
        writeln!(f, "wrong answers:   {}", self.wrong)?;
        writeln!(f, "hangs:           {}", self.hangs)?;
        writeln!(f, "leaked flights:  {}", self.in_flight)?;
        writeln!(f, "backend running: {}", self.backend_running)?;
        writeln!(f, "other panics:    {}", self.unexpected_panics)?;
        match self.peak_memory {
            Some(peak) => writeln!(
                f,
                "peak memory:     {:.1} MiB (VmHWM), bound {} MiB = {MAX_ENTRIES} × {} KiB + {} MiB",
                peak as f64 / (1024.0 * 1024.0),
                self.memory_bound >> 20,
                MAX_BODY_SIZE >> 10,
                MEMORY_MARGIN >> 20
            ),
            None => writeln!(f, "peak memory:     unknown (no /proc/self/status)"),
        }
    }
}

/// Runs the soak on the current tokio runtime (a multi-threaded one).
pub(crate) async fn run(config: SoakConfig) -> Report {
    quiet_injected_panics();
    let backend = Arc::new(Backend::default());
    let (app, cache) = app(backend.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("a local address");
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // The application's keys are the layer's keys: store one, find it.
    let mut warm = Connection::open(addr).await.expect("connect");
    for _ in 0..100 {
        if cache.get(&key_of(0)).is_some() {
            break;
        }
        let _ = warm.exchange("/k/0", LANGUAGES[0], &[HOST_NAME]).await;
    }
    assert!(
        cache.get(&key_of(0)).is_some(),
        "the soak's keys are not the layer's"
    );
    drop(warm);
    cache.invalidate_all();

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + config.duration;
    let mut tasks = Vec::new();
    for id in 0..config.clients {
        tasks.push(tokio::spawn(client(
            id as u64,
            addr,
            config.keys,
            deadline,
            tally.clone(),
        )));
    }
    tasks.push(tokio::spawn(invalidator(
        cache.clone(),
        config.keys,
        deadline,
        tally.clone(),
    )));
    for task in tasks {
        task.await.expect("a client task panicked");
    }
    let duration = started.elapsed();

    // Settle: abandoned calls finish on their own tasks.
    let settle = Instant::now();
    while (cache.in_flight() > 0 || backend.running.load(Ordering::Relaxed) > 0)
        && settle.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_flight = cache.in_flight();
    let layer = cache.stats();
    server.abort();

    let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let t = &*tally;
    let b = &*backend;
    Report {
        duration,
        clients: config.clients,
        keys: config.keys,
        requests: get(&t.requests),
        ok: get(&t.ok),
        ok_over_limit: get(&t.ok_over_limit),
        outcomes: [
            ("hit", get(&t.hit)),
            ("miss", get(&t.miss)),
            ("collapsed", get(&t.collapsed)),
            ("stale", get(&t.stale)),
            ("stale-if-error", get(&t.stale_if_error)),
            ("hit-for-miss", get(&t.pass)),
            ("lock-timeout", get(&t.lock_timeout)),
        ],
        failures: [
            ("backend 503 shared", get(&t.backend_5xx)),
            ("500 panicked", get(&t.panicked_500)),
            ("503 overloaded", get(&t.overloaded_503)),
            ("502 upstream-error", get(&t.upstream_502)),
            ("other 5xx with detail", get(&t.other_failure)),
            ("body errors", get(&t.body_error)),
            ("connection errors", get(&t.connection_error)),
        ],
        disconnects: get(&t.disconnects),
        hangs: get(&t.hangs),
        wrong: get(&t.wrong),
        first_wrong: t
            .first_wrong
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        invalidations: get(&t.invalidations),
        hostile_bypassed: get(&t.hostile_bypassed),
        backend_calls: get(&b.calls),
        faults: [
            ("ok", get(&b.ok)),
            ("slow 250-400 ms (also counted by result)", get(&b.slow)),
            ("503", get(&b.server_error)),
            ("panic", get(&b.panic)),
            ("body error midway", get(&b.body_error)),
            ("over the size limit", get(&b.over_limit)),
        ],
        backend_running: get(&b.running),
        backend_cancelled: get(&b.calls).saturating_sub(
            get(&b.ok)
                + get(&b.server_error)
                + get(&b.panic)
                + get(&b.body_error)
                + get(&b.over_limit),
        ),
        unexpected_panics: UNEXPECTED_PANICS.load(Ordering::Relaxed),
        layer,
        in_flight,
        peak_memory: memory().map(|(peak, _)| peak),
        memory_bound: MAX_ENTRIES * MAX_BODY_SIZE as u64 + MEMORY_MARGIN,
    }
}
