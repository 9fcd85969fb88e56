//! The command line: `--help` lists every bound with its default, unknown
//! flags are refused, and `--lock-timeout-ms` reaches the cache.

use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::fixtures::{Origin, Proxy, Reply, get, proxy_executable};

#[test]
fn help_lists_every_flag_with_its_default() {
    let output = Command::new(proxy_executable())
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for (flag, default) in [
        ("--ttl-ms", "[1000]"),
        ("--header-timeout-ms", "[10000]"),
        ("--idle-timeout-ms", "[30000]"),
        ("--connect-timeout-ms", "[5000]"),
        ("--first-byte-timeout-ms", "[30000]"),
        ("--between-bytes-timeout-ms", "[30000]"),
        ("--lock-timeout-ms", "[5000]"),
        ("--cache-bytes", "[268435456]"),
    ] {
        let at = help
            .find(flag)
            .unwrap_or_else(|| panic!("{flag} missing:\n{help}"));
        let described = &help[at..];
        let next_flag = described[2..]
            .find("\n  -")
            .map_or(described.len(), |end| end + 2);
        assert!(
            described[..next_flag].contains(default),
            "{flag} does not say {default}:\n{help}"
        );
    }
}

#[test]
fn an_unknown_flag_exits_with_usage() {
    let output = Command::new(proxy_executable())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:9",
        ])
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown argument \"--no-such-flag\""),
        "{stderr}"
    );
}

fn silent(_: &str) -> Reply {
    Reply::ThenSilent(Vec::new())
}

#[tokio::test]
async fn a_request_waits_for_an_identical_one_only_as_long_as_the_lock_timeout() {
    let origin = Origin::start(silent).await;
    let flags = [
        "--lock-timeout-ms",
        "300",
        "--first-byte-timeout-ms",
        "20000",
    ];
    let proxy = Proxy::start(origin.addr, &flags);
    let request = get("site.example", "/slow");
    let mut leader = TcpStream::connect(proxy.addr).await.unwrap();
    leader.write_all(request.as_bytes()).await.unwrap();
    origin.wait_for_calls(1).await;
    let start = Instant::now();
    let mut follower = TcpStream::connect(proxy.addr).await.unwrap();
    follower.write_all(request.as_bytes()).await.unwrap();
    origin.wait_for_calls(2).await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "the follower called after {waited:?}"
    );
}
