//! End-to-end benchmark on loopback: an axum server with a handler that
//! waits 20 ms (or not at all) and returns 1 KiB, under a keep-alive HTTP/1
//! load of 64 concurrent clients (one hyper client connection each) for a
//! fixed time, in three variants: no layer, `axum-response-cache` 0.5
//! (`CacheLayer::with_lifespan`) and shared-calls with the same TTL; and
//! the same clients as 64 streams over 4 HTTP/2 cleartext (h2c)
//! connections.
//!
//! ```sh
//! cargo bench --bench e2e             # the whole run, about a minute
//! cargo bench --bench e2e -- --quick  # 1 s per run, to try it out
//! cargo bench --bench e2e -- --in-process  # only the hit path, without the network
//! cargo bench --bench e2e -- --miss-path   # the reverse proxy example against a bare forwarder, under wrk
//! cargo bench --bench e2e -- --miss-path --only 'all miss'  # its traffic whose name contains 'all miss'
//! cargo bench --bench e2e -- --only '(c)'  # the runs whose names contain '(c)'
//! ```
//!
//! Workloads:
//!
//! - (a) one hot key, TTL 100 ms, 5 s;
//! - (b) 90 % of requests on 8 hot keys, 10 % over 10,000 cold keys,
//!   TTL 1 s, 5 s;
//! - (c) as (b) with a handler that answers at once: the layer's own cost;
//! - (d) as (c) over h2c: 64 streams on 4 connections.
//!
//! The server and the load generator share the machine: they run in this
//! one process on two separate tokio runtimes of one thread each (the
//! server on a multi-thread runtime with one worker, as a server would be
//! deployed; the clients on a current-thread runtime), so that neither can
//! take the other's core. Every variant meets the same load generator.
//!
//! Backend calls are counted in the handler. The ideal is one call per key
//! per TTL window: time is cut into windows of one TTL from the start, and
//! the ideal is the number of distinct (window, key) pairs in the run's own
//! request log (for (a), the duration over the TTL). A TTL cache can stay
//! under it (an entry stored late in one window still answers in the
//! next), so the table also gives a tighter reference: the calls a perfect
//! collapsing TTL cache would make on the same log, each answer stored when
//! its call returns and fresh for one TTL.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use shared_calls::{SharedCallsLayer, default_key};

#[path = "e2e/in_process.rs"]
mod in_process;
#[path = "e2e/miss_path.rs"]
mod miss_path;

type Error = Box<dyn std::error::Error + Send + Sync>;

const CLIENTS: usize = 64;
/// The connections the clients share over HTTP/2.
const H2_CONNECTIONS: usize = 4;
const BODY_SIZE: usize = 1024;
const HOT_KEYS: u32 = 8;
const COLD_KEYS: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// Every request on one key.
    One,
    /// 90 % on `HOT_KEYS` keys, 10 % over `COLD_KEYS` keys, uniformly.
    HotCold,
}

/// How the clients reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// One keep-alive HTTP/1.1 connection per client.
    Http1,
    /// HTTP/2 with prior knowledge over cleartext: every client a stream
    /// on one of `H2_CONNECTIONS` connections.
    H2c,
}

#[derive(Debug, Clone, Copy)]
struct Workload {
    name: &'static str,
    protocol: Protocol,
    keys: Keys,
    ttl: Duration,
    delay: Duration,
    duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    NoLayer,
    AxumResponseCache,
    SharedCalls,
}

impl Variant {
    const ALL: [Variant; 3] = [
        Variant::NoLayer,
        Variant::AxumResponseCache,
        Variant::SharedCalls,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::NoLayer => "no layer",
            Variant::AxumResponseCache => "axum-response-cache 0.5",
            Variant::SharedCalls => "shared-calls",
        }
    }
}

/// What the handler shares.
#[derive(Debug, Clone)]
struct Backend {
    calls: Arc<AtomicU64>,
    delay: Duration,
    body: Bytes,
}

async fn handler(State(backend): State<Backend>, Path(_key): Path<String>) -> Bytes {
    backend.calls.fetch_add(1, Ordering::Relaxed);
    if !backend.delay.is_zero() {
        tokio::time::sleep(backend.delay).await;
    }
    backend.body.clone()
}

fn app(variant: Variant, workload: &Workload, backend: Backend) -> Router {
    let router = Router::new().route("/item/{key}", get(handler));
    let router = match variant {
        Variant::NoLayer => router,
        Variant::AxumResponseCache => {
            router.layer(axum_response_cache::CacheLayer::with_lifespan(workload.ttl))
        }
        Variant::SharedCalls => router.layer(
            SharedCallsLayer::new(default_key)
                .ttl(workload.ttl)
                // The same TTL as the peer's: no ±5 % spread.
                .jitter(0.0)
                // Room for the whole key space (the peer's cache is unbounded).
                .max_entries(100_000)
                // The in-process run stores bodies of up to 4 MiB.
                .map_policy(|policy| policy.max_body_size(in_process::LARGE_BODY)),
        ),
    };
    router.with_state(backend)
}

/// A small, fast generator for choosing keys (xorshift64*).
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A key index: `0..HOT_KEYS` hot, then `HOT_KEYS..HOT_KEYS + COLD_KEYS` cold.
    fn key(&mut self, keys: Keys) -> u32 {
        match keys {
            Keys::One => 0,
            Keys::HotCold => {
                let r = self.next();
                if r % 10 < 9 {
                    ((r >> 8) % u64::from(HOT_KEYS)) as u32
                } else {
                    HOT_KEYS + ((r >> 8) % u64::from(COLD_KEYS)) as u32
                }
            }
        }
    }
}

/// One client's log: per request, its start (µs since the run began), its
/// key and its latency (µs).
#[derive(Debug, Default)]
struct ClientLog {
    requests: Vec<(u32, u32, u32)>,
}

/// A client's way to the server.
enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

async fn tcp(addr: SocketAddr) -> Result<TokioIo<tokio::net::TcpStream>, Error> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(TokioIo::new(stream))
}

impl Sender {
    /// `CLIENTS` senders: a connection each over HTTP/1, streams on
    /// `H2_CONNECTIONS` connections over h2c.
    async fn connect_all(addr: SocketAddr, protocol: Protocol) -> Result<Vec<Self>, Error> {
        let mut senders = Vec::with_capacity(CLIENTS);
        match protocol {
            Protocol::Http1 => {
                for _ in 0..CLIENTS {
                    let (sender, connection) =
                        hyper::client::conn::http1::handshake(tcp(addr).await?).await?;
                    tokio::spawn(connection);
                    senders.push(Self::Http1(sender));
                }
            }
            Protocol::H2c => {
                let mut connections = Vec::with_capacity(H2_CONNECTIONS);
                for _ in 0..H2_CONNECTIONS {
                    let executor = hyper_util::rt::TokioExecutor::new();
                    let (sender, connection) =
                        hyper::client::conn::http2::handshake(executor, tcp(addr).await?).await?;
                    tokio::spawn(connection);
                    connections.push(sender);
                }
                for i in 0..CLIENTS {
                    senders.push(Self::Http2(connections[i % H2_CONNECTIONS].clone()));
                }
            }
        }
        Ok(senders)
    }

    async fn send(
        &mut self,
        request: http::Request<Empty<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, Error> {
        Ok(match self {
            Self::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Self::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
        })
    }
}

async fn client(
    mut sender: Sender,
    uris: Arc<Vec<http::Uri>>,
    keys: Keys,
    seed: u64,
    start: Instant,
    deadline: Instant,
) -> Result<ClientLog, Error> {
    let mut rng = Rng(seed | 1);
    let mut log = ClientLog::default();
    let host = http::HeaderValue::from_static("bench.test");
    let mut now = Instant::now();
    while now < deadline {
        let key = rng.key(keys);
        let mut request = http::Request::new(Empty::<Bytes>::new());
        *request.uri_mut() = uris[key as usize].clone();
        if let Sender::Http1(_) = sender {
            request
                .headers_mut()
                .insert(http::header::HOST, host.clone());
        }
        let sent = Instant::now();
        let response = sender.send(request).await?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()).into());
        }
        let body = response.into_body().collect().await?.to_bytes();
        if body.len() != BODY_SIZE {
            return Err(format!("body of {} bytes", body.len()).into());
        }
        now = Instant::now();
        let micros = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        log.requests.push((
            micros(sent.duration_since(start)),
            key,
            micros(now.duration_since(sent)),
        ));
    }
    Ok(log)
}

/// One variant under one workload.
#[derive(Debug)]
struct Measured {
    workload: &'static str,
    variant: Variant,
    requests: u64,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    backend_calls: u64,
    ideal: u64,
    /// The calls a perfect collapsing TTL cache would make on the same
    /// request log.
    perfect: u64,
    /// CPU time of the server's thread and of the clients' thread over the
    /// run, as a share of the run's wall time.
    busy: (Option<f64>, Option<f64>),
}

/// The backend calls of a perfect collapsing TTL cache on a request log:
/// a request for a key that is not fresh calls; the answer is stored when
/// the call returns (after the handler's delay) and stays fresh for the
/// TTL; requests meanwhile share the call. A tighter reference than the
/// windows, which count a key again in every window it is requested in.
fn perfect_cache_calls(mut sent: Vec<(u32, u32)>, workload: &Workload) -> u64 {
    sent.sort_unstable();
    let lifetime = (workload.delay + workload.ttl).as_micros() as u64;
    let mut fresh_until = std::collections::HashMap::<u32, u64>::new();
    let mut calls = 0;
    for (start, key) in sent {
        let until = fresh_until.entry(key).or_insert(0);
        if u64::from(start) >= *until {
            calls += 1;
            *until = u64::from(start) + lifetime;
        }
    }
    calls
}

fn percentile(sorted: &[u32], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Duration::from_micros(u64::from(sorted[rank.clamp(1, sorted.len()) - 1]))
}

/// Serves `app` over HTTP/2 with prior knowledge, as axum serves HTTP/1.
async fn serve_h2c(listener: tokio::net::TcpListener, app: Router) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let builder =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn measure(workload: &Workload, variant: Variant) -> Result<Measured, Error> {
    let calls = Arc::new(AtomicU64::new(0));
    let backend = Backend {
        calls: calls.clone(),
        delay: workload.delay,
        body: Bytes::from(vec![b'x'; BODY_SIZE]),
    };
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("e2e-server")
        .enable_all()
        .build()?;
    let listener = server.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let app = app(variant, workload, backend);
    match workload.protocol {
        Protocol::Http1 => drop(server.spawn(async move { axum::serve(listener, app).await })),
        Protocol::H2c => drop(server.spawn(serve_h2c(listener, app))),
    }

    let uris: Arc<Vec<http::Uri>> = Arc::new(
        (0..HOT_KEYS + COLD_KEYS)
            .map(|key| {
                let path = match key {
                    key if key < HOT_KEYS => format!("/item/hot-{key}"),
                    key => format!("/item/cold-{}", key - HOT_KEYS),
                };
                match workload.protocol {
                    Protocol::Http1 => path.parse(),
                    // An HTTP/2 request names its authority in the URI.
                    Protocol::H2c => format!("http://bench.test{path}").parse(),
                }
            })
            .collect::<Result<_, _>>()?,
    );
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (logs, elapsed, busy) = clients.block_on(async {
        let senders = Sender::connect_all(addr, workload.protocol).await?;
        let cpu_before = (threads_cpu("e2e-server"), own_cpu());
        let start = Instant::now();
        let deadline = start + workload.duration;
        let tasks: Vec<_> = (0u64..)
            .zip(senders)
            .map(|(i, sender)| {
                let seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i + 1);
                tokio::spawn(client(
                    sender,
                    uris.clone(),
                    workload.keys,
                    seed,
                    start,
                    deadline,
                ))
            })
            .collect();
        let mut logs = Vec::with_capacity(CLIENTS);
        for task in tasks {
            logs.push(task.await??);
        }
        let elapsed = start.elapsed();
        let cpu = |before: Option<Duration>, after: Option<Duration>| {
            Some(after?.saturating_sub(before?).as_secs_f64() / elapsed.as_secs_f64())
        };
        let busy = (
            cpu(cpu_before.0, threads_cpu("e2e-server")),
            cpu(cpu_before.1, own_cpu()),
        );
        Ok::<_, Error>((logs, elapsed, busy))
    })?;
    drop(clients);
    server.shutdown_timeout(Duration::from_secs(1));

    let ttl_micros = workload.ttl.as_micros() as u32;
    let mut latencies = Vec::new();
    let mut windows = HashSet::new();
    let mut sent = Vec::new();
    for log in &logs {
        for &(start, key, latency) in &log.requests {
            latencies.push(latency);
            windows.insert((start / ttl_micros, key));
            sent.push((start, key));
        }
    }
    latencies.sort_unstable();
    let perfect = perfect_cache_calls(sent, workload);
    let requests = latencies.len() as u64;
    Ok(Measured {
        workload: workload.name,
        variant,
        requests,
        per_second: requests as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        backend_calls: calls.load(Ordering::Relaxed),
        ideal: windows.len() as u64,
        perfect,
        busy,
    })
}

/// User and system CPU time of this process's threads named `name`
/// (Linux `/proc`, at 100 ticks a second); `None` elsewhere.
fn threads_cpu(name: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).ok()?;
        if comm.trim_end() == name {
            total += stat_cpu(&path.join("stat"))?;
        }
    }
    Some(total)
}

/// User and system CPU time of the calling thread.
fn own_cpu() -> Option<Duration> {
    stat_cpu(std::path::Path::new("/proc/thread-self/stat"))
}

fn stat_cpu(path: &std::path::Path) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The machine's load average, where the system tells it: the machine may
/// be shared.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|avg| avg.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn percent(share: Option<f64>) -> String {
    share.map_or_else(
        || "n/a".to_owned(),
        |share| format!("{:.0} %", share * 100.0),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() -> Result<(), Error> {
    let quick = std::env::args().any(|arg| arg == "--quick");
    // `--only TEXT`: the runs whose workload or variant name contains TEXT.
    let only = std::env::args().skip_while(|arg| arg != "--only").nth(1);
    if std::env::args().any(|arg| arg == "--in-process") {
        return in_process::print(quick, only.as_deref());
    }
    if std::env::args().any(|arg| arg == "--miss-path") {
        return miss_path::print(quick, only.as_deref());
    }
    let duration = if quick {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    let workloads = [
        Workload {
            name: "(a) 1 hot key, 20 ms handler, TTL 100 ms",
            protocol: Protocol::Http1,
            keys: Keys::One,
            ttl: Duration::from_millis(100),
            delay: Duration::from_millis(20),
            duration,
        },
        Workload {
            name: "(b) 8 hot + 10k cold keys, 20 ms handler, TTL 1 s",
            protocol: Protocol::Http1,
            keys: Keys::HotCold,
            ttl: Duration::from_secs(1),
            delay: Duration::from_millis(20),
            duration,
        },
        Workload {
            name: "(c) 8 hot + 10k cold keys, no-wait handler, TTL 1 s",
            protocol: Protocol::Http1,
            keys: Keys::HotCold,
            ttl: Duration::from_secs(1),
            delay: Duration::ZERO,
            duration,
        },
        Workload {
            name: "(d) as (c) over h2c, 64 streams on 4 connections",
            protocol: Protocol::H2c,
            keys: Keys::HotCold,
            ttl: Duration::from_secs(1),
            delay: Duration::ZERO,
            duration,
        },
    ];
    println!(
        "e2e: {CLIENTS} keep-alive clients (HTTP/1, or h2c streams on {H2_CONNECTIONS} connections), {BODY_SIZE}-byte answers, {} s per run, loopback; \
         server and clients on one thread each",
        duration.as_secs_f64()
    );
    println!("load average before: {}", load_average());
    let mut results = Vec::new();
    for workload in &workloads {
        for variant in Variant::ALL {
            let name = format!("{} {}", workload.name, variant.name());
            if only
                .as_ref()
                .is_some_and(|only| !name.contains(only.as_str()))
            {
                continue;
            }
            let measured = measure(workload, variant)?;
            eprintln!(
                "  {:<54} {:<24} {:>9.0} req/s  p50 {:>6} ms  p99 {:>6} ms  backend {:>7} (ideal {})",
                workload.name,
                variant.name(),
                measured.per_second,
                ms(measured.p50),
                ms(measured.p99),
                measured.backend_calls,
                measured.ideal
            );
            results.push(measured);
        }
    }

    println!("load average after: {}", load_average());
    println!();
    println!(
        "| workload | variant | requests | requests/s | p50 ms | p99 ms | backend calls | ideal (windows) | calls / ideal | perfect TTL cache | calls / perfect | server CPU | client CPU |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in &results {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.2}x | {} | {:.2}x | {} | {} |",
            m.workload,
            m.variant.name(),
            m.requests,
            m.per_second,
            ms(m.p50),
            ms(m.p99),
            m.backend_calls,
            m.ideal,
            m.backend_calls as f64 / m.ideal.max(1) as f64,
            m.perfect,
            m.backend_calls as f64 / m.perfect.max(1) as f64,
            percent(m.busy.0),
            percent(m.busy.1),
        );
    }

    if only.is_some() {
        return Ok(());
    }
    let find = |workload: &str, variant: Variant| {
        results
            .iter()
            .find(|m| m.workload.starts_with(workload) && m.variant == variant)
            .expect("every workload ran every variant")
    };
    let (a, b) = (
        find("(a)", Variant::SharedCalls),
        find("(b)", Variant::SharedCalls),
    );
    let c = find("(c)", Variant::SharedCalls);
    let (c_bare, c_peer) = (
        find("(c)", Variant::NoLayer),
        find("(c)", Variant::AxumResponseCache),
    );
    let check = |ok: bool| if ok { "met" } else { "missed" };
    let ratio = |m: &Measured| m.backend_calls as f64 / m.ideal.max(1) as f64;
    let to_perfect = |m: &Measured| m.backend_calls as f64 / m.perfect.max(1) as f64;
    println!();
    println!("| target (shared-calls) | measured | |");
    println!("|---|---:|---|");
    for (name, m) in [("(a)", a), ("(b)", b)] {
        println!(
            "| backend calls ≤ 1.05x ideal (windows) on {name} | {:.2}x | {} |",
            ratio(m),
            check(ratio(m) <= 1.05)
        );
        println!(
            "| backend calls ≤ 1.05x a perfect TTL cache on {name} | {:.2}x | {} |",
            to_perfect(m),
            check(to_perfect(m) <= 1.05)
        );
    }
    let vs_bare = c.per_second / c_bare.per_second;
    let vs_peer = c.per_second / c_peer.per_second;
    println!(
        "| throughput on (c) ≥ 0.95x no layer | {vs_bare:.2}x | {} |",
        check(vs_bare >= 0.95)
    );
    println!(
        "| throughput on (c) ≥ 1.2x axum-response-cache | {vs_peer:.2}x | {} |",
        check(vs_peer >= 1.2)
    );
    let (d, d_bare, d_peer) = (
        find("(d)", Variant::SharedCalls),
        find("(d)", Variant::NoLayer),
        find("(d)", Variant::AxumResponseCache),
    );
    let (vs_bare, vs_peer) = (
        d.per_second / d_bare.per_second,
        d.per_second / d_peer.per_second,
    );
    println!(
        "| throughput on (d), h2c, ≥ 0.95x no layer | {vs_bare:.2}x | {} |",
        check(vs_bare >= 0.95)
    );
    println!(
        "| throughput on (d), h2c, ≥ 1.2x axum-response-cache | {vs_peer:.2}x | {} |",
        check(vs_peer >= 1.2)
    );
    let limit = workloads[0].delay + Duration::from_millis(2);
    println!(
        "| p99 on (a) ≤ handler delay + 2 ms ({} ms) | {} ms | {} |",
        ms(limit),
        ms(a.p99),
        check(a.p99 <= limit)
    );

    in_process::print(quick, None)
}
