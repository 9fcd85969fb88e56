//! `examples/reverse_proxy`, run as users run it, holding 10,000 distinct
//! 1 KiB answers (3,000 in an unoptimised build) from a hyper origin: what its resident memory comes to.
//!
//! hyper reads an origin's head and a small body into one 8 KiB buffer; a
//! proxy whose entries kept slices of those buffers would hold 8 KiB per
//! 1 KiB answer.
//!
//! `cargo test --release --test reverse_proxy_memory -- --nocapture` prints
//! the figures of an optimised build.

#[path = "reverse_proxy_hostile/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;

use std::net::SocketAddr;

use fixtures::{Proxy, bounded, cacheable_origin, read_response};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Fewer in an unoptimised build, where each request takes longer.
const ENTRIES: u32 = if cfg!(debug_assertions) {
    3_000
} else {
    10_000
};
const BODY: usize = 1024;
/// What each stored answer may add to the resident memory: its heap (about
/// 1.6 KB with this origin's four headers, see `tests/entry_memory.rs`),
/// what the allocator spends around it, and the fixed costs of the run
/// shared out, over fewer entries in an unoptimised build. An entry that
/// kept hyper's read buffer would add more than 8 KB.
const MAX_RSS_PER_ENTRY: u64 = if cfg!(debug_assertions) { 2_900 } else { 2_100 };
/// The goal for an optimised build: the proxy holding its 10,000 answers in
/// less resident memory than this. Printed, not asserted.
const GOAL_RSS: u64 = 25_000_000;

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}

/// Asks for every answer once on one keep-alive connection, and returns
/// how many of them came from the cache.
async fn ask_for_every_answer(proxy: SocketAddr) -> u32 {
    let mut stream = TcpStream::connect(proxy).await.unwrap();
    let mut hits = 0;
    for n in 0..ENTRIES {
        let path = format!("/item/{n}");
        let request = format!("GET {path} HTTP/1.1\r\nHost: memory.test\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let response = bounded(&path, read_response(&mut stream)).await;
        assert_eq!(response.status, 200, "{}", response.head);
        assert_eq!(response.body.len(), BODY);
        assert!(response.body.starts_with(path.as_bytes()));
        hits += u32::from(
            response
                .header("cache-status")
                .is_some_and(|status| status.contains("; hit")),
        );
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_holds_ten_thousand_1_kib_answers_in_little_more_than_their_size() {
    let origin = cacheable_origin(BODY).await;
    let proxy = Proxy::start(origin, &[]);
    let pid = proxy.pid();
    let started = rss(pid);

    assert_eq!(ask_for_every_answer(proxy.addr).await, 0);
    let stored = rss(pid);
    // Every answer was stored: asked again, each is a hit.
    assert_eq!(ask_for_every_answer(proxy.addr).await, ENTRIES);
    let hit = rss(pid);
    let per_entry = |rss: u64| rss.saturating_sub(started) / u64::from(ENTRIES);
    let mb = |rss: u64| rss as f64 / 1e6;
    println!(
        "reverse_proxy holding {ENTRIES} answers of {BODY} B: RSS {:.1} MB at start, \
         {:.1} MB once stored ({} B per entry), {:.1} MB once each was hit ({} B per entry)",
        mb(started),
        mb(stored),
        per_entry(stored),
        mb(hit),
        per_entry(hit),
    );
    if !cfg!(debug_assertions) {
        println!(
            "  goal: under {:.1} MB ({})",
            mb(GOAL_RSS),
            if hit < GOAL_RSS { "met" } else { "not met" }
        );
    }
    assert!(
        per_entry(hit) <= MAX_RSS_PER_ENTRY,
        "each stored answer adds {} B of resident memory",
        per_entry(hit)
    );
}
