//! The main job, on loopback: a slow handler on one hot key, hit by a burst
//! of concurrent keep-alive clients, first without and then with
//! `SharedCallsLayer`. Every figure printed is measured in this run.
//!
//! ```sh
//! cargo run --release --example demo                           # 200 clients, 3 s per run
//! cargo run --release --example demo -- --quick                # 50 clients, 0.5 s per run
//! cargo run --release --example demo -- --chart docs/demo.svg  # and plot both runs
//! cargo run --release --example demo -- --revalidation          # and the bytes a 304 saves
//! ```
//!
//! The server and the clients run on two separate tokio runtimes of one
//! thread each, so that the load generator cannot starve the server.
//! `--chart PATH` writes an SVG chart of requests/s and backend calls/s over
//! time, per 100 ms, for both runs on the same axes. `--revalidation` then
//! also runs a few clients against a document with an `ETag` and a
//! one-second `max-age`, with and without revalidation, and prints the body
//! bytes the backend sent in each run.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{Router, routing::get};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use shared_calls::{SharedCallsLayer, default_key};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The load and the layer's settings.
#[derive(Debug, Clone, Copy)]
struct Settings {
    clients: usize,
    duration: Duration,
    handler_delay: Duration,
    ttl: Duration,
    stale_while_revalidate: Duration,
}

/// What the backend (the handler) saw.
#[derive(Debug, Default)]
struct Backend {
    calls: AtomicU64,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
}

/// What the clients saw.
#[derive(Debug, Default)]
struct Progress {
    requests: AtomicU64,
}

/// How a response says it was answered (its `Cache-Status`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Outcomes {
    hit: u64,
    collapsed: u64,
    miss: u64,
    stale: u64,
    other: u64,
}

impl Outcomes {
    fn count(&mut self, cache_status: Option<&[u8]>) {
        let Some(value) = cache_status.and_then(|v| std::str::from_utf8(v).ok()) else {
            self.other += 1;
            return;
        };
        if value.contains("fwd=stale; detail=stale-while-revalidate") {
            self.stale += 1;
        } else if value.contains("; collapsed") {
            self.collapsed += 1;
        } else if value.starts_with("shared-calls; hit") {
            self.hit += 1;
        } else if value.contains("fwd=miss") && !value.contains("detail=") {
            self.miss += 1;
        } else {
            self.other += 1;
        }
    }

    fn add(&mut self, other: &Outcomes) {
        self.hit += other.hit;
        self.collapsed += other.collapsed;
        self.miss += other.miss;
        self.stale += other.stale;
        self.other += other.other;
    }
}

/// The layer's counters, read from its cache handle after a run.
#[derive(Debug, Clone, Copy)]
struct Counts {
    hits: u64,
    collapsed: u64,
    misses: u64,
    stale: u64,
    /// Stale-if-error, hit-for-miss and lock-timeout answers.
    others: u64,
    refreshes: u64,
}

/// Reads the layer's counters.
type ReadCounts = Box<dyn Fn() -> Counts + Send>;

/// Requests answered and backend calls made by a point in a run, counted
/// from its start.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    requests: u64,
    backend_calls: u64,
}

/// One client's log.
#[derive(Debug, Default)]
struct ClientLog {
    latencies_us: Vec<u32>,
    outcomes: Outcomes,
}

/// The result of one run.
#[derive(Debug)]
struct Run {
    requests: u64,
    elapsed: Duration,
    backend_calls: u64,
    peak_in_flight: u64,
    latencies_us: Vec<u32>,
    outcomes: Outcomes,
    counts: Option<Counts>,
    /// One sample every 100 ms or so.
    timeline: Vec<Sample>,
}

/// The hot endpoint, and with `layer` the layer in front of it and a way to
/// read its counters.
fn app(backend: Arc<Backend>, settings: Settings, layer: bool) -> (Router, Option<ReadCounts>) {
    let delay = settings.handler_delay;
    let handler = move || {
        let backend = backend.clone();
        async move {
            backend.calls.fetch_add(1, Ordering::Relaxed);
            let now = backend.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            backend.peak_in_flight.fetch_max(now, Ordering::Relaxed);
            // A slow query behind a hot endpoint.
            tokio::time::sleep(delay).await;
            backend.in_flight.fetch_sub(1, Ordering::Relaxed);
            "the hot answer\n"
        }
    };
    let router = Router::new().route("/hot", get(handler));
    if !layer {
        return (router, None);
    }
    let layer = SharedCallsLayer::new(default_key)
        .ttl(settings.ttl)
        .stale_while_revalidate(settings.stale_while_revalidate);
    let cache = layer.cache_handle();
    let read_counts = move || {
        let stats = cache.stats();
        Counts {
            hits: stats.hits,
            collapsed: stats.collapsed,
            misses: stats.misses,
            stale: stats.stale,
            others: stats.stale_if_error + stats.passes + stats.lock_timeouts,
            refreshes: stats.refreshes,
        }
    };
    (router.layer(layer), Some(Box::new(read_counts)))
}

/// Starts `app` on its own single-threaded runtime, on a thread of its own.
fn serve(app: Router) -> Result<(SocketAddr, tokio::runtime::Runtime), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("server")
        .enable_all()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    runtime.spawn(async move { axum::serve(listener, app).await });
    Ok((addr, runtime))
}

/// One keep-alive client: requests one after the other until `deadline`.
async fn client(
    addr: SocketAddr,
    deadline: Instant,
    progress: Arc<Progress>,
) -> Result<ClientLog, Error> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut log = ClientLog::default();
    while Instant::now() < deadline {
        sender.ready().await?;
        let request = http::Request::get("/hot")
            .header(http::header::HOST, "demo.test")
            .body(Empty::<Bytes>::new())?;
        let start = Instant::now();
        let response = sender.send_request(request).await?;
        let cache_status = response.headers().get("cache-status").cloned();
        let body = response.into_body().collect().await?.to_bytes();
        let latency = start.elapsed();
        if &body[..] != b"the hot answer\n" {
            return Err(format!("unexpected body {body:?}").into());
        }
        log.latencies_us
            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
        log.outcomes
            .count(cache_status.as_ref().map(http::HeaderValue::as_bytes));
        progress.requests.fetch_add(1, Ordering::Relaxed);
    }
    Ok(log)
}

/// Runs the load against a fresh server, with or without the layer.
fn run(settings: Settings, label: &str, layer: bool) -> Result<Run, Error> {
    let backend = Arc::new(Backend::default());
    let (app, read_counts) = app(backend.clone(), settings, layer);
    let (addr, server) = serve(app)?;
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let progress = Arc::new(Progress::default());
    let timeline = Arc::new(Mutex::new(Vec::new()));
    let (logs, elapsed) = clients.block_on(async {
        let start = Instant::now();
        let deadline = start + settings.duration;
        let ticker = {
            let (progress, backend, label) = (progress.clone(), backend.clone(), label.to_owned());
            let timeline = timeline.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                // A late tick is not made up by a burst of short intervals.
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let sample = Sample {
                        at: start.elapsed(),
                        requests: progress.requests.load(Ordering::Relaxed),
                        backend_calls: backend.calls.load(Ordering::Relaxed),
                    };
                    timeline.lock().expect("no sampler panics").push(sample);
                    print!(
                        "\r  {label:<24} {:>4.1} s   requests {:>10}   backend calls {:>8}",
                        start.elapsed().as_secs_f64(),
                        thousands(progress.requests.load(Ordering::Relaxed)),
                        thousands(backend.calls.load(Ordering::Relaxed)),
                    );
                    let _ = std::io::stdout().flush();
                }
            })
        };
        let tasks: Vec<_> = (0..settings.clients)
            .map(|_| tokio::spawn(client(addr, deadline, progress.clone())))
            .collect();
        let mut logs = Vec::with_capacity(tasks.len());
        for task in tasks {
            logs.push(task.await?);
        }
        let elapsed = start.elapsed();
        ticker.abort();
        Ok::<_, Error>((logs, elapsed))
    })?;
    println!(
        "\r  {label:<24} {:>4.1} s   requests {:>10}   backend calls {:>8}",
        elapsed.as_secs_f64(),
        thousands(progress.requests.load(Ordering::Relaxed)),
        thousands(backend.calls.load(Ordering::Relaxed)),
    );
    drop(clients);
    server.shutdown_timeout(Duration::from_secs(1));

    let mut latencies_us = Vec::new();
    let mut outcomes = Outcomes::default();
    for log in logs {
        let log = log?;
        latencies_us.extend(log.latencies_us);
        outcomes.add(&log.outcomes);
    }
    latencies_us.sort_unstable();
    Ok(Run {
        requests: latencies_us.len() as u64,
        elapsed,
        backend_calls: backend.calls.load(Ordering::Relaxed),
        peak_in_flight: backend.peak_in_flight.load(Ordering::Relaxed),
        latencies_us,
        outcomes,
        counts: read_counts.map(|read| read()),
        timeline: std::mem::take(&mut *timeline.lock().expect("no sampler panics")),
    })
}

/// A line of the table: its name and how to print a run's cell.
type Row = (&'static str, fn(&Run) -> String);

fn percentile(sorted: &[u32], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Duration::from_micros(u64::from(sorted[rank.clamp(1, sorted.len()) - 1]))
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// The command line: `[--quick] [--chart PATH]`.
#[derive(Debug, Default)]
struct Args {
    quick: bool,
    chart: Option<PathBuf>,
    revalidation: bool,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args::default();
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        match word.as_str() {
            "--quick" => args.quick = true,
            "--revalidation" => args.revalidation = true,
            "--chart" => {
                let path = words.next().ok_or("--chart needs a file path")?;
                args.chart = Some(PathBuf::from(path));
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: demo [--quick] [--chart PATH] [--revalidation]"
                )
                .into());
            }
        }
    }
    Ok(args)
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let quick = args.quick;
    let settings = Settings {
        clients: if quick { 50 } else { 200 },
        duration: if quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(3)
        },
        handler_delay: Duration::from_millis(50),
        ttl: Duration::from_millis(200),
        stale_while_revalidate: Duration::from_secs(1),
    };
    println!(
        "GET /hot: a handler that takes {} ms; {} keep-alive clients, {} s per run, loopback",
        settings.handler_delay.as_millis(),
        settings.clients,
        settings.duration.as_secs_f64(),
    );
    println!(
        "layer: SharedCallsLayer::new(default_key).ttl({} ms).stale_while_revalidate({} s)\n",
        settings.ttl.as_millis(),
        settings.stale_while_revalidate.as_secs_f64(),
    );

    let without = run(settings, "without the layer", false)?;
    let with = run(settings, "with SharedCallsLayer", true)?;

    let rows: [Row; 9] = [
        ("requests served", |r| thousands(r.requests)),
        ("requests/s", |r| {
            thousands((r.requests as f64 / r.elapsed.as_secs_f64()) as u64)
        }),
        ("backend calls", |r| thousands(r.backend_calls)),
        ("backend calls per request", |r| {
            let percent = 100.0 * r.backend_calls as f64 / r.requests.max(1) as f64;
            match percent >= 1.0 {
                true => format!("{percent:.1} %"),
                false => format!("{percent:.4} %"),
            }
        }),
        ("backend peak concurrency", |r| thousands(r.peak_in_flight)),
        ("latency p50", |r| ms(percentile(&r.latencies_us, 50.0))),
        ("latency p90", |r| ms(percentile(&r.latencies_us, 90.0))),
        ("latency p99", |r| ms(percentile(&r.latencies_us, 99.0))),
        ("latency max", |r| ms(percentile(&r.latencies_us, 100.0))),
    ];
    println!();
    println!(
        "{:<28}{:>18}{:>24}",
        "", "without the layer", "with SharedCallsLayer"
    );
    for (name, cell) in rows {
        println!("{name:<28}{:>18}{:>24}", cell(&without), cell(&with));
    }

    let o = with.outcomes;
    println!();
    println!("with the layer, how each request was answered:");
    println!(
        "{:<28}{:>12}{:>12}{:>12}{:>12}{:>12}",
        "", "hit", "collapsed", "miss", "stale", "other"
    );
    println!(
        "{:<28}{:>12}{:>12}{:>12}{:>12}{:>12}",
        "Cache-Status of responses",
        thousands(o.hit),
        thousands(o.collapsed),
        thousands(o.miss),
        thousands(o.stale),
        thousands(o.other)
    );
    if let Some(counts) = with.counts {
        println!(
            "{:<28}{:>12}{:>12}{:>12}{:>12}{:>12}",
            "cache_handle().stats()",
            thousands(counts.hits),
            thousands(counts.collapsed),
            thousands(counts.misses),
            thousands(counts.stale),
            thousands(counts.others)
        );
        let agree = (
            counts.hits,
            counts.collapsed,
            counts.misses,
            counts.stale,
            counts.others,
        ) == (o.hit, o.collapsed, o.miss, o.stale, o.other);
        println!(
            "responses and stats agree: {}; background refreshes: {}",
            if agree { "yes" } else { "NO" },
            counts.refreshes
        );
        if !agree {
            return Err("the responses' Cache-Status and the cache's stats disagree".into());
        }
    }
    println!();
    println!(
        "backend calls: {} without the layer, {} with it ({:.1}x fewer), for {:.1}x the requests",
        thousands(without.backend_calls),
        thousands(with.backend_calls),
        without.backend_calls as f64 / with.backend_calls.max(1) as f64,
        with.requests as f64 / without.requests.max(1) as f64,
    );
    if let Some(path) = args.chart {
        chart::write(&path, settings, &without, &with)?;
        println!("chart: {}", path.display());
    }
    if args.revalidation {
        revalidation::compare(quick)?;
    }
    Ok(())
}

/// The `--chart` picture: both runs' requests/s and backend calls/s over
/// time, on the same axes.
mod chart {
    use std::path::Path;

    use plotters::prelude::*;

    use super::{Error, Run, Sample, Settings, thousands};

    /// Each run's colours: a light one for requests (a wide line) and a dark
    /// one for backend calls (dashed, so that it shows where both coincide).
    const WITHOUT: (RGBColor, RGBColor) = (RGBColor(244, 165, 130), RGBColor(178, 24, 43));
    const WITH: (RGBColor, RGBColor) = (RGBColor(146, 197, 222), RGBColor(33, 102, 172));

    const FONT: &str = "sans-serif";

    /// The bottom of the log-scale axis, where intervals without a single
    /// request or call are drawn.
    const FLOOR: f64 = 1.0;

    /// Per-second rates between consecutive samples, at the end of each
    /// interval: (seconds into the run, requests/s, backend calls/s).
    fn rates(timeline: &[Sample]) -> Vec<(f64, f64, f64)> {
        timeline
            .windows(2)
            .filter_map(|pair| {
                let seconds = (pair[1].at - pair[0].at).as_secs_f64();
                (seconds > 0.0).then(|| {
                    let per_second =
                        |later: u64, earlier: u64| ((later - earlier) as f64 / seconds).max(FLOOR);
                    (
                        pair[1].at.as_secs_f64(),
                        per_second(pair[1].requests, pair[0].requests),
                        per_second(pair[1].backend_calls, pair[0].backend_calls),
                    )
                })
            })
            .collect()
    }

    /// Draws the chart into an SVG file at `path`.
    pub(super) fn write(
        path: &Path,
        settings: Settings,
        without: &Run,
        with: &Run,
    ) -> Result<(), Error> {
        let mut svg = String::new();
        draw(&mut svg, settings, without, with)?;
        std::fs::write(path, whole_pixel_font_sizes(&svg))?;
        Ok(())
    }

    /// plotters writes each font size as its size in points over 1.24, with
    /// every decimal (`font-size="11.290322580645162"`): whole pixels read
    /// as well and keep the file plain.
    fn whole_pixel_font_sizes(svg: &str) -> String {
        const ATTRIBUTE: &str = "font-size=\"";
        let mut out = String::with_capacity(svg.len());
        let mut rest = svg;
        while let Some(start) = rest.find(ATTRIBUTE) {
            let (before, value) = rest.split_at(start + ATTRIBUTE.len());
            let end = value.find('"').unwrap_or(value.len());
            out.push_str(before);
            match value[..end].parse::<f64>() {
                Ok(size) => out.push_str(&size.round().to_string()),
                Err(_) => out.push_str(&value[..end]),
            }
            rest = &value[end..];
        }
        out.push_str(rest);
        out
    }

    /// Draws both runs, each as a requests/s line and a backend calls/s line.
    fn draw(svg: &mut String, settings: Settings, without: &Run, with: &Run) -> Result<(), Error> {
        let runs = [
            (
                "without the layer",
                WITHOUT,
                rates(&without.timeline),
                without,
            ),
            ("with the layer", WITH, rates(&with.timeline), with),
        ];
        let x_max = runs
            .iter()
            .flat_map(|(_, _, rates, _)| rates.iter().map(|r| r.0))
            .fold(settings.duration.as_secs_f64(), f64::max);
        let y_max = runs
            .iter()
            .flat_map(|(_, _, rates, _)| rates.iter().map(|r| r.1.max(r.2)))
            .fold(1.0, f64::max)
            * 20.0; // room for the legend above the lines

        let root = SVGBackend::with_string(svg, (900, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let caption = format!(
            "GET /hot: a {} ms handler, {} keep-alive clients, loopback",
            settings.handler_delay.as_millis(),
            settings.clients
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, (FONT, 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(0.0..x_max, (FLOOR..y_max).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("seconds into the run")
            .y_desc("per second (log scale; zero on the axis)")
            .y_label_formatter(&|v| thousands(v.round() as u64))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;

        for &(label, (light, dark), ref rates, run) in &runs {
            let requests = rates.iter().map(|&(t, requests, _)| (t, requests));
            let style = light.stroke_width(5);
            chart
                .draw_series(LineSeries::new(requests, style))?
                .label(format!(
                    "requests/s {label} ({} requests)",
                    thousands(run.requests)
                ))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], style));
            let calls = rates.iter().map(|&(t, _, calls)| (t, calls));
            let style = dark.stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(calls, 6, 4, style))?
                .label(format!(
                    "backend calls/s {label} ({} calls)",
                    thousands(run.backend_calls)
                ))
                .legend(move |(x, y)| {
                    plotters::element::DashedPathElement::new([(x, y), (x + 24, y)], 6, 4, style)
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// `--revalidation`: what a `304` saves the backend.
mod revalidation {
    use super::*;

    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;

    const DOCUMENT: usize = 64 * 1024;
    const ETAG: &str = "\"v1\"";
    const CLIENTS: usize = 8;

    /// What the backend sent.
    #[derive(Debug, Default)]
    struct Sent {
        full: AtomicU64,
        not_modified: AtomicU64,
        body_bytes: AtomicU64,
    }

    /// A document with an `ETag`, fresh for a second: a request naming the
    /// tag gets a `304`.
    fn app(sent: Arc<Sent>, revalidate: bool) -> Router {
        let handler = move |headers: HeaderMap| {
            let sent = sent.clone();
            async move {
                let caching = [(header::ETAG, ETAG), (header::CACHE_CONTROL, "max-age=1")];
                if headers
                    .get(header::IF_NONE_MATCH)
                    .is_some_and(|tag| tag == ETAG)
                {
                    sent.not_modified.fetch_add(1, Ordering::Relaxed);
                    return (StatusCode::NOT_MODIFIED, caching).into_response();
                }
                sent.full.fetch_add(1, Ordering::Relaxed);
                sent.body_bytes
                    .fetch_add(DOCUMENT as u64, Ordering::Relaxed);
                (caching, vec![b'x'; DOCUMENT]).into_response()
            }
        };
        let keep = match revalidate {
            true => shared_calls::http_policy::DEFAULT_KEEP_FOR_REVALIDATION,
            false => Duration::ZERO,
        };
        let layer = SharedCallsLayer::new(default_key)
            .map_policy(|policy| policy.keep_for_revalidation(keep));
        Router::new().route("/doc", get(handler)).layer(layer)
    }

    /// Keep-alive clients asking for the document until `deadline`; how
    /// many answers they received.
    async fn ask(addr: SocketAddr, deadline: Instant) -> Result<u64, Error> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut answers = 0;
        while Instant::now() < deadline {
            sender.ready().await?;
            let request = http::Request::get("/doc")
                .header(http::header::HOST, "demo.test")
                .body(Empty::<Bytes>::new())?;
            let body = sender.send_request(request).await?.into_body();
            if body.collect().await?.to_bytes().len() != DOCUMENT {
                return Err("a short document".into());
            }
            answers += 1;
            // A client every few milliseconds, not a flood: the point here
            // is bytes, not requests per second.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(answers)
    }

    fn run(revalidate: bool, duration: Duration) -> Result<(u64, Arc<Sent>), Error> {
        let sent = Arc::new(Sent::default());
        let (addr, server) = serve(app(sent.clone(), revalidate))?;
        let clients = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let answers = clients.block_on(async {
            let deadline = Instant::now() + duration;
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|_| tokio::spawn(ask(addr, deadline)))
                .collect();
            let mut answers = 0;
            for task in tasks {
                answers += task.await??;
            }
            Ok::<_, Error>(answers)
        })?;
        drop(clients);
        server.shutdown_timeout(Duration::from_secs(1));
        Ok((answers, sent))
    }

    pub(super) fn compare(quick: bool) -> Result<(), Error> {
        let duration = Duration::from_millis(if quick { 2_500 } else { 5_500 });
        println!();
        println!(
            "revalidation: GET /doc, {} KiB with an ETag and max-age=1; {CLIENTS} clients, {} s per run",
            DOCUMENT / 1024,
            duration.as_secs_f64()
        );
        for (label, revalidate) in [("without revalidation", false), ("with revalidation", true)] {
            let (answers, sent) = run(revalidate, duration)?;
            println!(
                "  {label:<22} {:>6} answers; backend sent {:>9} body bytes ({} full, {} not modified)",
                thousands(answers),
                thousands(sent.body_bytes.load(Ordering::Relaxed)),
                sent.full.load(Ordering::Relaxed),
                sent.not_modified.load(Ordering::Relaxed),
            );
        }
        Ok(())
    }
}
