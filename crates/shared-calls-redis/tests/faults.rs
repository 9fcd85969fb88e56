//! Fail-open: Redis killed, paused, restarted or absent never fails a
//! request, never answers wrong, and costs each request at most about the
//! operation timeout; the tier comes back by itself.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shared_calls_cache::{Cache, Fetch};
use shared_calls_redis::RedisTier;
use shared_calls_redis::local::LocalRedis;
use support::*;

const TIMEOUT: Duration = Duration::from_millis(20);
const COOL_DOWN: Duration = Duration::from_millis(200);
const LOAD: Duration = Duration::from_millis(5);

async fn fail_fast_instance(url: &str) -> Strings {
    let tier = RedisTier::builder(url)
        .timeout(TIMEOUT)
        .breaker(3, COOL_DOWN)
        .build()
        .await
        .unwrap();
    Cache::builder()
        .ttl(Duration::from_millis(30))
        .jitter(0.0)
        .second_tier(tier, Utf8)
        .build()
}

/// Requests over 40 keys from every instance until `until`; returns the
/// slowest request. Panics on a failed request or a wrong answer.
async fn traffic(fleet: &[Strings], until: Instant, calls: &Arc<AtomicUsize>) -> Duration {
    let mut tasks = Vec::new();
    for (n, cache) in fleet.iter().enumerate() {
        for worker in 0..4 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                let mut i = n * 4 + worker;
                while Instant::now() < until {
                    let key = format!("k{}", i % 40);
                    let expected = format!("value of {key}");
                    let started = Instant::now();
                    let load = {
                        let (calls, value) = (calls.clone(), expected.clone());
                        move || async move {
                            calls.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(LOAD).await;
                            Ok::<_, String>(Fetch::value(value))
                        }
                    };
                    let lookup = cache
                        .get_or_load(&key, load)
                        .await
                        .expect("no request fails");
                    assert_eq!(lookup.value(), &expected, "no wrong answer");
                    slowest = slowest.max(started.elapsed());
                    i += 7;
                }
                slowest
            }));
        }
    }
    let mut slowest = Duration::ZERO;
    for task in tasks {
        slowest = slowest.max(task.await.unwrap());
    }
    slowest
}

fn writes(fleet: &[Strings]) -> u64 {
    fleet.iter().map(|cache| cache.stats().l2.writes).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_then_restarted_mid_load_fails_no_request_and_recovers() {
    let Some(mut redis) = LocalRedis::start_or_skip(
        "redis_killed_then_restarted_mid_load_fails_no_request_and_recovers",
    ) else {
        return;
    };
    let mut fleet = Vec::new();
    for _ in 0..4 {
        fleet.push(fail_fast_instance(&redis.url()).await);
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let load = tokio::spawn({
        let (fleet, calls) = (fleet.clone(), calls.clone());
        async move { traffic(&fleet, start + Duration::from_millis(2_500), &calls).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before_kill = writes(&fleet);
    assert!(before_kill > 0, "the fleet used Redis before");
    redis.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tripped: u64 = fleet
        .iter()
        .map(|cache| cache.stats().l2.tier.breaker_trips)
        .sum();
    assert!(tripped >= 1, "the breaker opened while Redis was down");
    let redis = tokio::task::spawn_blocking(move || {
        redis.restart().unwrap();
        redis
    })
    .await
    .unwrap();
    let restarted = Instant::now();
    let during = writes(&fleet);
    let mut recovered = None;
    while restarted.elapsed() < Duration::from_secs(3) {
        if writes(&fleet) > during + 10 {
            recovered = Some(restarted.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let slowest = load.await.unwrap();
    let recovered = recovered.expect("the fleet writes to Redis again");
    drop(redis);
    eprintln!(
        "killed mid-load: slowest request {slowest:?}, back on Redis {recovered:?} after restart, {} loads",
        calls.load(Ordering::Relaxed)
    );
    // A flight makes at most a few Redis operations, each bounded by the
    // timeout, before it loads alone; 4 x 20 ms plus the load, with room
    // for a busy machine.
    assert!(slowest < Duration::from_millis(400), "{slowest:?}");
    assert!(recovered < Duration::from_secs(2), "{recovered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_costs_a_request_the_timeout_not_the_pause() {
    let Some(redis) =
        LocalRedis::start_or_skip("a_paused_redis_costs_a_request_the_timeout_not_the_pause")
    else {
        return;
    };
    let fleet = vec![
        fail_fast_instance(&redis.url()).await,
        fail_fast_instance(&redis.url()).await,
    ];
    let calls = Arc::new(AtomicUsize::new(0));
    traffic(&fleet, Instant::now() + Duration::from_millis(200), &calls).await;
    redis
        .command(&[b"CLIENT", b"PAUSE", b"1500", b"ALL"])
        .unwrap();
    let paused = Instant::now();
    let slowest = traffic(&fleet, paused + Duration::from_millis(1_000), &calls).await;
    eprintln!("paused: slowest request {slowest:?} during a 1.5 s pause");
    assert!(slowest < Duration::from_millis(400), "{slowest:?}");
    let timeouts: u64 = fleet
        .iter()
        .map(|cache| cache.stats().l2.tier.timeouts)
        .sum();
    assert!(timeouts >= 1);
    // After the pause, back on Redis.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = writes(&fleet);
    traffic(&fleet, Instant::now() + Duration::from_millis(500), &calls).await;
    assert!(writes(&fleet) > before, "the fleet writes to Redis again");
}

#[tokio::test]
async fn without_redis_from_the_start_requests_are_served_from_memory() {
    let Some(redis) =
        LocalRedis::start_or_skip("without_redis_from_the_start_requests_are_served_from_memory")
    else {
        return;
    };
    let url = redis.url();
    drop(redis); // nothing listens there now
    let cache = fail_fast_instance(&url).await;
    let calls = Arc::new(AtomicUsize::new(0));
    for _ in 0..20 {
        let lookup = cache
            .get_or_load(&"k".to_string(), counted(&calls, "v", Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(lookup.value(), "v");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = cache.stats().l2;
    assert!(stats.tier.breaker_trips >= 1, "{stats:?}");
    assert!(
        stats.tier.rejected >= 1,
        "an open breaker refuses at once: {stats:?}"
    );
    assert!(stats.fallbacks >= 1);
}
