//! The soak, short: five seconds of keep-alive load with injected faults
//! against an axum server behind the layer (`support::soak`). The long run
//! is `cargo run --release --example soak -- --seconds 60`.

mod support;

use std::time::Duration;

use support::soak;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_seconds_of_faults_give_no_wrong_answer_no_hang_and_no_leak() {
    let report = soak::run(soak::SoakConfig {
        duration: Duration::from_secs(5),
        clients: 32,
        keys: 1000,
    })
    .await;
    println!("{report}");
    let problems = report.problems();
    assert!(problems.is_empty(), "{problems:#?}\n{report}");
}
