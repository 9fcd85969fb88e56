//! What the Redis tier costs, in one run (`cargo bench -p shared-calls-redis`):
//!
//! - `l1_hit`: `Cache::get` of a fresh key (the layer's hit path) on a cache
//!   with memory alone and on one with the Redis tier: the tier must cost a
//!   hit nothing.
//! - `l2_hit`: a lookup answered by Redis (a 1 KiB value, on a cache whose
//!   memory has never seen the key) next to a raw `GET` of the same bytes
//!   through the same client (the redis crate's `ConnectionManager`).
//!   Target: at most 1.3x. The summary gives the ratios measured
//!   interleaved, with two more for scale: the tier's own `get`, and a
//!   memory-only cache miss whose load is that `get`.
//! - At the end, how long after the lock holder a waiting instance answers
//!   (the price of polling), and the backend calls of four instances
//!   hammering a key that expires every 100 ms for 2 s, with memory alone and
//!   with Redis.
//!
//! Needs `redis-server` on `PATH`; it starts its own.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use redis::aio::ConnectionManager;
use shared_calls_cache::l2::TextCodec as Utf8;
use shared_calls_cache::{Cache, Fetch};
use shared_calls_redis::RedisTier;
use shared_calls_redis::local::LocalRedis;

type Strings = Cache<String, String, String>;

const VALUE_BYTES: usize = 1024;

async fn with_redis(url: &str) -> Strings {
    let tier = RedisTier::builder(url)
        .timeout(Duration::from_millis(250))
        .build()
        .await
        .unwrap();
    Cache::builder()
        .ttl(Duration::from_secs(600))
        .second_tier(tier, Utf8)
        .build()
}

async fn fill(cache: &Strings, key: &str) {
    let value = "x".repeat(VALUE_BYTES);
    cache
        .get_or_load(
            &key.to_string(),
            move || async move { Ok(Fetch::value(value)) },
        )
        .await
        .unwrap();
}

fn l1_hit(c: &mut Criterion, redis: &LocalRedis) {
    let runtime = one_thread();
    let memory: Strings = Cache::builder().ttl(Duration::from_secs(600)).build();
    let tiered = runtime.block_on(with_redis(&redis.url()));
    runtime.block_on(fill(&memory, "hot"));
    runtime.block_on(fill(&tiered, "hot"));
    let key = "hot".to_string();
    let mut group = c.benchmark_group("l1_hit");
    group.bench_function("memory_alone", |b| {
        b.iter(|| black_box(memory.get(&key)).unwrap())
    });
    group.bench_function("with_redis_tier", |b| {
        b.iter(|| black_box(tiered.get(&key)).unwrap())
    });
    group.finish();
}

/// Keys filled in Redis for `l2_hit`: each sample looks them up in a cache
/// whose memory is new, so every lookup is answered by Redis.
const FILLED: usize = 4096;

fn l2_hit(c: &mut Criterion, redis: &LocalRedis) {
    let runtime = one_thread();
    let keys: Vec<String> = (0..FILLED).map(|n| format!("filled-{n}")).collect();
    let tier = runtime.block_on(async {
        let filler = with_redis(&redis.url()).await;
        for key in &keys {
            fill(&filler, key).await;
        }
        RedisTier::builder(redis.url())
            .timeout(Duration::from_millis(250))
            .build()
            .await
            .unwrap()
    });
    let entry = entry_name(redis);
    let client = redis::Client::open(redis.url()).unwrap();
    let raw = runtime.block_on(ConnectionManager::new(client)).unwrap();
    let mut group = c.benchmark_group("l2_hit");
    group.bench_function("raw_get", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                raw_gets(&raw, &entry, iters).await;
                started.elapsed()
            })
        })
    });
    group.bench_function("cache_lookup", |b| {
        b.iter_custom(|iters| {
            let new_cache = || -> Strings {
                Cache::builder()
                    .ttl(Duration::from_secs(600))
                    .second_tier(tier.clone(), Utf8)
                    .build()
            };
            runtime.block_on(async {
                let (mut cache, mut l2_hits) = (new_cache(), 0);
                let started = Instant::now();
                for n in 0..iters as usize {
                    // A new memory tier before a key comes round again, so
                    // that every lookup is answered by Redis.
                    if n > 0 && n % FILLED == 0 {
                        l2_hits += cache.stats().l2.hits;
                        cache = new_cache();
                    }
                    let never = || async { Err::<Fetch<String>, String>("a load".into()) };
                    let lookup = cache.get_or_load(&keys[n % FILLED], never).await.unwrap();
                    black_box(lookup);
                }
                let elapsed = started.elapsed();
                assert_eq!(l2_hits + cache.stats().l2.hits, iters);
                elapsed
            })
        })
    });
    group.bench_function("memory_miss", |b| {
        b.iter_custom(|iters| {
            let new_cache =
                || -> Strings { Cache::builder().ttl(Duration::from_secs(600)).build() };
            runtime.block_on(async {
                let mut cache = new_cache();
                let started = Instant::now();
                for n in 0..iters as usize {
                    // A new cache before a key comes round again: every
                    // lookup misses.
                    if n > 0 && n % FILLED == 0 {
                        cache = new_cache();
                    }
                    let value = "x".repeat(VALUE_BYTES);
                    let load = || async { Ok::<_, String>(Fetch::value(value)) };
                    black_box(cache.get_or_load(&keys[n % FILLED], load).await.unwrap());
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

/// Ratios to the raw `GET`, interleaved slice by slice (1,000 of each per
/// slice, 15 slices) so that the machine's drifting load touches all alike:
/// the tier's own `get`, a memory-only cache miss whose load is that same
/// `get` (the flight's cost around a load that waits for I/O), and the L2
/// hit. Medians.
fn l2_ratios_interleaved(redis: &LocalRedis) -> [f64; 3] {
    use shared_calls_cache::l2::SharedTier;
    let runtime = one_thread();
    let keys: Vec<String> = (0..1_000).map(|n| format!("filled-{n}")).collect();
    let entry = entry_name(redis);
    runtime.block_on(async {
        let tier = RedisTier::builder(redis.url())
            .timeout(Duration::from_millis(250))
            .build()
            .await
            .unwrap();
        let client = redis::Client::open(redis.url()).unwrap();
        let raw = ConnectionManager::new(client).await.unwrap();
        let mut ratios = [(); 3].map(|_| Vec::new());
        for _ in 0..15 {
            let started = Instant::now();
            raw_gets(&raw, &entry, keys.len() as u64).await;
            let raw_time = started.elapsed().as_secs_f64();
            let started = Instant::now();
            for key in &keys {
                black_box(tier.get(key.as_bytes()).await.unwrap());
            }
            ratios[0].push(started.elapsed().as_secs_f64() / raw_time);
            let memory: Strings = Cache::builder().build();
            let started = Instant::now();
            for key in &keys {
                let (tier, owned) = (tier.clone(), key.clone());
                let load = move || async move {
                    let bytes = tier.get(owned.as_bytes()).await.unwrap().unwrap();
                    Ok(Fetch::value(String::from_utf8_lossy(&bytes).into_owned()))
                };
                black_box(memory.get_or_load(key, load).await.unwrap());
            }
            ratios[1].push(started.elapsed().as_secs_f64() / raw_time);
            let cache: Strings = Cache::builder().second_tier(tier.clone(), Utf8).build();
            let started = Instant::now();
            for key in &keys {
                let never = || async { Err::<Fetch<String>, String>("a load".into()) };
                black_box(cache.get_or_load(key, never).await.unwrap());
            }
            ratios[2].push(started.elapsed().as_secs_f64() / raw_time);
            assert_eq!(cache.stats().l2.hits, keys.len() as u64);
        }
        ratios.map(|mut ratios| {
            ratios.sort_by(f64::total_cmp);
            ratios[ratios.len() / 2]
        })
    })
}

/// The Redis name of the entry of `filled-0`.
fn entry_name(redis: &LocalRedis) -> Vec<u8> {
    let reply = redis.command(&[b"KEYS", b"*:e:filled-0"]).unwrap();
    reply
        .split(|&b| b == b'\n')
        .nth(2)
        .map(|name| name.strip_suffix(b"\r").unwrap_or(name).to_vec())
        .expect("the entry's name")
}

/// `count` raw `GET`s of `entry`, each on a clone of the connection as the
/// tier does.
async fn raw_gets(raw: &ConnectionManager, entry: &[u8], count: u64) {
    for _ in 0..count {
        let mut raw = raw.clone();
        let bytes: Vec<u8> = redis::cmd("GET")
            .arg(entry)
            .query_async(&mut raw)
            .await
            .unwrap();
        black_box(bytes);
    }
}

/// Backend calls of four caches hammering one key that expires every
/// 100 ms for 2 s.
fn fleet_calls(redis: Option<&str>) -> usize {
    let runtime = two_workers();
    runtime.block_on(async {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut fleet = Vec::new();
        for _ in 0..4 {
            let builder = Cache::builder().ttl(Duration::from_millis(100)).jitter(0.0);
            let cache: Strings = match redis {
                Some(url) => {
                    let tier = RedisTier::builder(url)
                        .timeout(Duration::from_millis(250))
                        .prefix("fleet:")
                        .build()
                        .await
                        .unwrap();
                    builder.second_tier(tier, Utf8).build()
                }
                None => builder.build(),
            };
            fleet.push(cache);
        }
        let started = Instant::now();
        let mut tasks = Vec::new();
        for n in 0..16 {
            let (cache, calls) = (fleet[n % 4].clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                while started.elapsed() < Duration::from_secs(2) {
                    let calls = calls.clone();
                    cache
                        .get_or_load(&"hot".to_string(), move || async move {
                            calls.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            Ok(Fetch::value("v".to_string()))
                        })
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        calls.load(Ordering::Relaxed)
    })
}

/// How long after the lock holder's answer a waiting instance has its own:
/// the cost of polling (10 ms interval) over a notification. Mean and
/// maximum over 20 keys, the holder's load taking 50 ms.
fn wait_delay(url: &str) -> (Duration, Duration) {
    let runtime = two_workers();
    runtime.block_on(async {
        let (holder, waiter) = (with_redis(url).await, with_redis(url).await);
        let mut delays = Vec::new();
        for n in 0..20 {
            let key = format!("wait-{n}");
            let load = || async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(Fetch::value("v".to_string()))
            };
            let held = {
                let (holder, key) = (holder.clone(), key.clone());
                tokio::spawn(async move {
                    holder.get_or_load(&key, load).await.unwrap();
                    Instant::now()
                })
            };
            tokio::time::sleep(Duration::from_millis(5)).await;
            waiter.get_or_load(&key, load).await.unwrap();
            let answered = Instant::now();
            delays.push(answered.saturating_duration_since(held.await.unwrap()));
        }
        let mean = delays.iter().sum::<Duration>() / 20;
        (mean, delays.into_iter().max().unwrap())
    })
}

/// A runtime on this thread, for latencies.
fn one_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A runtime of two workers, for a fleet's concurrent instances.
fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    let Some(redis) = LocalRedis::start_or_skip("the redis benchmark") else {
        return;
    };
    let mut criterion = Criterion::default().configure_from_args();
    l1_hit(&mut criterion, &redis);
    l2_hit(&mut criterion, &redis);
    criterion.final_summary();
    let alone = fleet_calls(None);
    let tiered = fleet_calls(Some(&redis.url()));
    let [tier_get, memory_miss, l2_hit] = l2_ratios_interleaved(&redis);
    println!(
        "interleaved, to a raw GET of the same bytes: the tier's get {tier_get:.2}x, \
         a memory-only miss loading by that get {memory_miss:.2}x, an L2 hit {l2_hit:.2}x"
    );
    let (mean, max) = wait_delay(&redis.url());
    println!("a waiting instance answers {mean:?} after the lock holder (mean; max {max:?})");
    println!(
        "fleet of 4, key expiring every 100 ms for 2 s: {alone} backend calls with memory alone, \
         {tiered} with Redis"
    );
}
