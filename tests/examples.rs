//! Runs the examples that exit by themselves, and checks what they print.
//! (The long-running servers, `axum_server`, `hyper_server` and
//! `reverse_proxy`, are built by every `cargo test` and `cargo clippy
//! --all-targets`.)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `cargo run --example NAME -- ARGS`, killed after `timeout`; its stdout.
fn run_example(name: &str, args: &[&str], timeout: Duration) -> String {
    let mut child = Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", name, "--"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo runs");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the example can be waited for") {
            break status;
        }
        if start.elapsed() > timeout {
            child.kill().ok();
            child.wait().ok();
            panic!("example {name} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().expect("the example's output");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        status.success(),
        "example {name} failed: {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

/// The timeout includes building the example if `cargo test` did not.
const TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn demo_shows_the_collapse() {
    let out = run_example("demo", &["--quick"], TIMEOUT);
    assert!(out.contains("backend calls per request"), "{out}");
    assert!(out.contains("responses and stats agree: yes"), "{out}");
    // With the layer, the backend saw one call at a time.
    let peak = out
        .lines()
        .find(|line| line.starts_with("backend peak concurrency"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(peak.trim_end().ends_with(" 1"), "{peak}");
}

#[test]
fn demo_shows_the_bytes_revalidation_saves() {
    let out = run_example("demo", &["--quick", "--revalidation"], TIMEOUT);
    let sent = |label: &str| {
        let line = out
            .lines()
            .find(|line| line.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("{out}"));
        let bytes = line
            .split("backend sent")
            .nth(1)
            .unwrap_or_else(|| panic!("{line}"));
        let digits: String = bytes
            .split_whitespace()
            .next()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        (
            digits.parse::<u64>().unwrap(),
            line.contains(" 0 not modified"),
        )
    };
    let (without, none_revalidated) = sent("without revalidation");
    let (with, _) = sent("with revalidation");
    assert!(none_revalidated, "{out}");
    // The document (64 KiB) crossed once with revalidation, once per
    // second without.
    assert_eq!(with, 64 * 1024, "{out}");
    assert!(without >= 2 * with, "{out}");
}

#[test]
fn tonic_client_collapses_identical_calls() {
    let out = run_example("tonic_client", &[], TIMEOUT);
    assert!(out.contains("server calls: 3"), "{out}");
    assert!(out.contains("Cache-Status: shared-calls; hit"), "{out}");
}

#[test]
fn tower_service_collapses_and_caches() {
    let out = run_example("tower_service", &[], TIMEOUT);
    assert!(
        out.contains("1000 concurrent calls over 10 users: 10 database queries"),
        "{out}"
    );
    assert!(out.contains("errors are not cached): true"), "{out}");
}

#[test]
fn standalone_cache_reads_its_writes() {
    let out = run_example("standalone_cache", &[], TIMEOUT);
    assert!(
        out.contains("100 concurrent reads of product 7: 1 query"),
        "{out}"
    );
    assert!(out.contains("2499 cents (miss)"), "{out}");
}
