//! `accept` failing does not end the proxy.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::fixtures::{Origin, Proxy, Reply, answer, bounded, exchange, get};

fn hello(_: &str) -> Reply {
    Reply::KeepAlive(answer("200 OK", &["cache-control: max-age=60"], "hello"))
}

#[tokio::test]
async fn running_out_of_file_descriptors_pauses_accepting_and_serving_resumes() {
    let origin = Origin::start(hello).await;
    // Long client timeouts: the idle connections stay until the test drops them.
    let timeouts = ["--header-timeout-ms", "60000", "--idle-timeout-ms", "60000"];
    let mut proxy = Proxy::start_with_file_limit(64, origin.addr, &timeouts);

    // More idle connections than the proxy has descriptors for; the kernel
    // completes the handshakes of those it cannot accept yet.
    let mut idle = Vec::new();
    for _ in 0..150 {
        idle.push(
            bounded("a connection", TcpStream::connect(proxy.addr))
                .await
                .unwrap(),
        );
    }
    bounded("the proxy to log a failed accept", async {
        while !proxy
            .stderr()
            .contains("accept failed: Too many open files")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(proxy.is_running(), "the proxy exited:\n{}", proxy.stderr());
    // Still out of descriptors a while later: it keeps retrying, and lives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(proxy.is_running(), "the proxy exited:\n{}", proxy.stderr());

    drop(idle);
    let response = exchange(proxy.addr, &get("site.example", "/after")).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text(), "hello");
    assert_eq!(origin.calls(), 1);
    assert!(proxy.is_running());
}
