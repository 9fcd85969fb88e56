//! Soak: an axum server behind `SharedCallsLayer` on loopback, under
//! keep-alive load from many hyper clients, with faults injected everywhere
//! (the engine and what it checks: `tests/support/soak.rs`).
//!
//! ```text
//! cargo run --release --example soak -- --seconds 60
//! ```
//!
//! Options: `--seconds N` (default 60), `--clients N` (default 128), `--keys N`
//! (default 1000). The process exits with status 1 if a check fails.

#[path = "../tests/support/soak.rs"]
mod soak;

use std::time::Duration;

use soak::{SoakConfig, run};

fn parse_args() -> Result<SoakConfig, String> {
    let mut config = SoakConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let number = |value: &str| {
            value
                .parse::<u64>()
                .map_err(|e| format!("{arg} {value}: {e}"))
        };
        match arg.as_str() {
            "--seconds" => config.duration = Duration::from_secs(number(&value)?),
            "--clients" => config.clients = number(&value)? as usize,
            "--keys" => config.keys = number(&value)?.clamp(1, u64::from(u32::MAX)) as u32,
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(config)
}

fn main() {
    let config = match parse_args() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("soak: {error}\nusage: soak [--seconds N] [--clients N] [--keys N]");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let report = runtime.block_on(run(config));
    print!("{report}");
    let problems = report.problems();
    if problems.is_empty() {
        println!("result:          ok");
    } else {
        for problem in &problems {
            println!("FAILED: {problem}");
        }
        std::process::exit(1);
    }
}
