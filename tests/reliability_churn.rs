//! A million distinct keys churned through a read-through cache of 1,000
//! entries: the cache stays at its capacity, and the process's memory with
//! it. Alone in its test binary, so that the process's peak memory is this
//! test's.
//!
//! The long run, ten million keys:
//!
//! ```text
//! cargo test --release --test reliability_churn -- --ignored --nocapture
//! ```

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use shared_calls::cache::{Cache, Fetch};

const CAPACITY: u64 = 1000;
/// The size of each value: unbounded, a million keys would hold a GiB.
const VALUE: usize = 1024;
/// What the process may use on top of `CAPACITY × VALUE`: the test harness,
/// the runtime, the store's per-entry bookkeeping and the allocator's slack.
const MARGIN: u64 = 64 * 1024 * 1024;

/// Churns `keys` distinct keys through the cache by `get_or_load`, each a
/// miss that loads and stores, and checks that the cache stays at capacity.
fn churn(keys: u64) {
    let cache: Cache<u64, Bytes> = Cache::builder()
        .max_entries(CAPACITY)
        .ttl(Duration::from_secs(3600))
        .build();
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut most = 0;
    runtime.block_on(async {
        for key in 0..keys {
            let lookup = cache
                .get_or_load(&key, move || async move {
                    Ok(Fetch::value(Bytes::from(vec![key as u8; VALUE])))
                })
                .await
                .unwrap();
            assert_eq!(lookup.value().len(), VALUE);
            if key % 100_000 == 0 {
                most = most.max(cache.stats().entries);
            }
        }
    });
    let stats = cache.stats();
    let peak = support::soak::memory().map(|(peak, _)| peak);
    let bound = CAPACITY * VALUE as u64 + MARGIN;
    println!(
        "churn: {keys} distinct keys through {CAPACITY} entries of {VALUE} B \
         in {:.1} s: {} entries after, at most {most} at checkpoints, {} evictions; \
         process peak memory {} (bound {:.1} MiB)",
        started.elapsed().as_secs_f64(),
        stats.entries,
        stats.evictions,
        peak.map_or("unknown".to_owned(), |peak| format!(
            "{:.1} MiB",
            peak as f64 / (1024.0 * 1024.0)
        )),
        bound as f64 / (1024.0 * 1024.0),
    );
    assert!(stats.entries <= CAPACITY, "{stats:?}");
    assert!(most <= CAPACITY, "{most} entries at a checkpoint");
    assert_eq!(stats.misses, keys);
    assert_eq!(stats.evictions + stats.entries, keys, "{stats:?}");
    assert_eq!(cache.in_flight(), 0);
    if let Some(peak) = peak {
        assert!(peak <= bound, "peak memory {peak} B over {bound} B");
    }
}

#[test]
fn a_million_distinct_keys_stay_within_capacity() {
    churn(1_000_000);
}

#[test]
#[ignore = "the long run: ten million keys; run with --release -- --ignored"]
fn ten_million_distinct_keys_stay_within_capacity() {
    churn(10_000_000);
}
