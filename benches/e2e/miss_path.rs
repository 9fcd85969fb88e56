//! The miss path against a bare forwarder: `examples/reverse_proxy` (release
//! build, a child process) under `wrk`, every request a new key, against the
//! same proxy with `--no-cache` on the same origin; and with every request a
//! hit, for context.
//!
//! Each run starts a fresh proxy, warms it (and its connections to the
//! origin) for a second with traffic of the run's kind on keys of its own,
//! then measures. The variants take turns, each going first in every other
//! round; the figures are medians over the rounds. The origin is a hyper
//! server on one thread of this process: a 1 KiB answer, fresh for ten
//! minutes, for any path.

use std::net::SocketAddr;
use std::process::Command;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

#[path = "../../tests/reverse_proxy_hostile/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

use fixtures::Proxy;

use crate::{BODY_SIZE, CLIENTS, Error, load_average};

/// Gives every request a path of its own (`miss`), or cycles over
/// `HIT_KEYS` paths (`hit`); the first argument makes the paths of one run
/// its own.
const SCRIPT: &str = r#"
local prefix, mode, n = "run", "miss", 0
function init(args)
  prefix, mode = args[1], args[2]
end
function request()
  n = n + 1
  if mode == "hit" then
    return wrk.format("GET", "/" .. prefix .. "/" .. (n % 1000))
  end
  return wrk.format("GET", "/" .. prefix .. "/" .. n)
end
"#;

/// The keys of the all-hit traffic (the script's `n % 1000`).
const HIT_KEYS: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Traffic {
    AllMiss,
    AllHit,
}

impl Traffic {
    fn name(self) -> &'static str {
        match self {
            Traffic::AllMiss => "miss",
            Traffic::AllHit => "hit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proxying {
    Bare,
    Cached,
}

impl Proxying {
    fn flags(self) -> &'static [&'static str] {
        match self {
            Proxying::Bare => &["--no-cache"],
            // Room for every answer of a run (about 3 KB each), so that
            // none is evicted before it is checked.
            Proxying::Cached => &["--cache-bytes", "2147483648"],
        }
    }
}

/// A hyper origin on a runtime of one thread.
fn origin() -> Result<(tokio::runtime::Runtime, SocketAddr), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("miss-path-origin")
        .enable_all()
        .build()?;
    let addr = runtime.block_on(fixtures::cacheable_origin(BODY_SIZE));
    Ok((runtime, addr))
}

/// One `wrk` run: its requests per second.
fn wrk(
    script: &std::path::Path,
    proxy: SocketAddr,
    seconds: u64,
    prefix: &str,
    traffic: Traffic,
) -> Result<f64, Error> {
    let output = Command::new("wrk")
        .args(["-t1", &format!("-c{CLIENTS}"), &format!("-d{seconds}s")])
        .arg("-s")
        .arg(script)
        .arg(format!("http://{proxy}/"))
        .args(["--", prefix, traffic.name()])
        .output()
        .map_err(|error| format!("running wrk (is it installed?): {error}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!(
            "wrk: {}\n{text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    text.lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|rate| rate.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output:\n{text}").into())
}

/// The `Cache-Status` of `path` asked again: every answer of an all-miss
/// run must have been stored.
fn cache_status(
    runtime: &tokio::runtime::Runtime,
    proxy: SocketAddr,
    path: &str,
) -> Result<String, Error> {
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(proxy).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header(http::header::HOST, proxy.to_string())
            .body(http_body_util::Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response
            .headers()
            .get("cache-status")
            .and_then(|status| status.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        response.into_body().collect().await?;
        Ok(status)
    })
}

/// One fresh proxy, warmed, then measured for `seconds`.
fn run(
    origin: &tokio::runtime::Runtime,
    origin_addr: SocketAddr,
    script: &std::path::Path,
    (proxying, traffic): (Proxying, Traffic),
    seconds: u64,
    round: usize,
) -> Result<Measured, Error> {
    let proxy = Proxy::start(origin_addr, proxying.flags());
    let measured = format!("r{round}");
    // All-miss traffic warms up on keys of its own; all-hit traffic stores
    // the keys it is then measured on.
    let warm = match traffic {
        Traffic::AllMiss => format!("warm{round}"),
        Traffic::AllHit => measured.clone(),
    };
    wrk(script, proxy.addr, 1, &warm, traffic)?;
    let cpu_before = cpu_time(proxy.pid())?;
    let per_second = wrk(script, proxy.addr, seconds, &measured, traffic)?;
    let cpu = cpu_time(proxy.pid())? - cpu_before;
    if proxying == Proxying::Cached {
        // The first and a late answer of the measured run, asked again (wrk
        // makes a request with `n` = 1 when it starts, and never sends it).
        let late = match traffic {
            Traffic::AllMiss => (per_second * seconds as f64 * 0.9) as u64,
            Traffic::AllHit => u64::from(HIT_KEYS) - 1,
        };
        for n in [2, late] {
            let path = format!("/{measured}/{n}");
            let status = cache_status(origin, proxy.addr, &path)?;
            if !status.contains("; hit") {
                return Err(format!("{path} was not stored: {status:?}").into());
            }
        }
    }
    // wrk ends its run by closing connections with requests in flight:
    // connection errors are expected.
    let errors: Vec<String> = proxy
        .stderr()
        .lines()
        .filter(|line| !line.starts_with("connection error:"))
        .map(str::to_owned)
        .collect();
    if !errors.is_empty() {
        let errors = errors.join("\n");
        return Err(format!("the proxy logged errors:\n{errors}").into());
    }
    let requests = per_second * seconds as f64;
    Ok(Measured {
        per_second,
        cpu_per_request: cpu / requests * 1e6,
    })
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
struct Measured {
    per_second: f64,
    /// The proxy's CPU time (user and system, all threads) per request, µs.
    cpu_per_request: f64,
}

/// The CPU time a process has had so far (user and system, all its
/// threads), in seconds, from `/proc/PID/stat`. Independent of what else
/// the machine runs, unlike requests per second.
fn cpu_time(pid: u32) -> Result<f64, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command's name in parentheses: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |field: usize| -> Result<f64, Error> {
        Ok(fields
            .get(field - 3)
            .ok_or("a short /proc/PID/stat")?
            .parse::<f64>()?)
    };
    // The kernel counts in USER_HZ, 100 on Linux's supported platforms.
    Ok((ticks(14)? + ticks(15)?) / 100.0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() % 2 {
        0 => (values[middle - 1] + values[middle]) / 2.0,
        _ => values[middle],
    }
}

/// The traffic measured, by the name its table row has.
const TRAFFIC: [(&str, usize, usize); 2] = [
    ("every request a new key (all miss)", 0, 1),
    ("1,000 keys, all hits", 2, 3),
];

/// Runs the comparison and prints its table; `only`: the traffic whose
/// name contains this text.
pub(crate) fn print(quick: bool, only: Option<&str>) -> Result<(), Error> {
    let (rounds, seconds) = if quick { (3, 2) } else { (7, 5) };
    let (origin, origin_addr) = origin()?;
    // The Lua script, beside the bench's executable.
    let script = std::env::current_exe()?.with_file_name("miss_path.lua");
    std::fs::write(&script, SCRIPT)?;
    println!(
        "miss path: reverse_proxy (release) under wrk -t1 -c{CLIENTS}, {BODY_SIZE}-byte answers, \
         {rounds} rounds of {seconds} s per case, loopback"
    );
    println!("load average before: {}", load_average());
    let cases = [
        (Proxying::Bare, Traffic::AllMiss),
        (Proxying::Cached, Traffic::AllMiss),
        (Proxying::Bare, Traffic::AllHit),
        (Proxying::Cached, Traffic::AllHit),
    ];
    let mut rates = vec![Vec::new(); cases.len()];
    let mut cpu = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for (_, pair, _) in TRAFFIC.iter().filter(|(name, ..)| is_chosen(name, only)) {
            let pair = *pair;
            // Bare first in even rounds, cached first in odd ones.
            let order = match round % 2 {
                0 => [pair, pair + 1],
                _ => [pair + 1, pair],
            };
            for case in order {
                let measured = run(&origin, origin_addr, &script, cases[case], seconds, round)?;
                eprintln!(
                    "  round {round} {:?} {:>9.0} req/s, proxy CPU {:.1} µs per request",
                    cases[case], measured.per_second, measured.cpu_per_request
                );
                rates[case].push(measured.per_second);
                cpu[case].push(measured.cpu_per_request);
            }
        }
    }
    println!("load average after: {}", load_average());
    let ratios = |bare: usize, cached: usize| {
        let per_round: Vec<f64> = rates[cached]
            .iter()
            .zip(&rates[bare])
            .map(|(cached, bare)| cached / bare)
            .collect();
        let (low, high) = per_round
            .iter()
            .fold((f64::MAX, f64::MIN), |(low, high), &r| {
                (low.min(r), high.max(r))
            });
        (median(per_round), low, high)
    };
    println!();
    println!(
        "| traffic | bare forwarder req/s | reverse proxy req/s | ratio (median of rounds) | range |"
    );
    println!("|---|---:|---:|---:|---|");
    for &(traffic, bare, cached) in TRAFFIC.iter().filter(|(name, ..)| is_chosen(name, only)) {
        let (ratio, low, high) = ratios(bare, cached);
        println!(
            "| {traffic} | {:.0} | {:.0} | {ratio:.2}x | {low:.2}x–{high:.2}x |",
            median(rates[bare].clone()),
            median(rates[cached].clone()),
        );
    }
    // What a request costs the proxy in CPU time, whatever else ran: the
    // bare forwarder's cost over the proxy's is the throughput ratio a
    // proxy with a core of its own would reach.
    println!();
    println!(
        "| traffic | bare forwarder CPU µs per request | reverse proxy CPU µs per request | bare / proxy |"
    );
    println!("|---|---:|---:|---:|");
    for &(traffic, bare, cached) in TRAFFIC.iter().filter(|(name, ..)| is_chosen(name, only)) {
        let (bare, cached) = (median(cpu[bare].clone()), median(cpu[cached].clone()));
        println!(
            "| {traffic} | {bare:.1} | {cached:.1} | {:.2}x |",
            bare / cached
        );
    }
    Ok(())
}

fn is_chosen(name: &str, only: Option<&str>) -> bool {
    only.is_none_or(|only| name.contains(only))
}
