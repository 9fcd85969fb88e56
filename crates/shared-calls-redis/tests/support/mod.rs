//! What the Redis tests share: a codec of strings, caches over a tier, and
//! raw looks into Redis.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shared_calls_cache::{Cache, CacheBuilder, Fetch};
use shared_calls_redis::local::LocalRedis;
use shared_calls_redis::{RedisTier, RedisTierBuilder};

/// Keys and values as UTF-8.
pub use shared_calls_cache::l2::TextCodec as Utf8;

pub type Strings = Cache<String, String, String>;

/// Generous for a shared, busy test machine: the fault tests set their own.
pub const TIMEOUT: Duration = Duration::from_millis(500);

/// A tier on `url` with the test timeout, changed by `tier`.
pub async fn tier(url: &str, tier: impl FnOnce(RedisTierBuilder) -> RedisTierBuilder) -> RedisTier {
    tier(RedisTier::builder(url).timeout(TIMEOUT))
        .build()
        .await
        .expect("the tier builds")
}

/// One instance of a fleet: its own cache over its own tier handle.
pub async fn instance(
    url: &str,
    configure: impl FnOnce(CacheBuilder<String, String>) -> CacheBuilder<String, String>,
) -> Strings {
    let tier = tier(url, |tier| tier).await;
    configure(Cache::builder().jitter(0.0))
        .second_tier(tier, Utf8)
        .build()
}

/// What a test loader returns.
pub type Loading = std::pin::Pin<Box<dyn Future<Output = Result<Fetch<String>, String>> + Send>>;

/// A loader that counts its calls and answers `value` after `delay`.
pub fn counted(
    calls: &Arc<AtomicUsize>,
    value: &str,
    delay: Duration,
) -> impl FnOnce() -> Loading + Send + 'static {
    let (calls, value) = (calls.clone(), value.to_string());
    move || {
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Ok(Fetch::value(value))
        })
    }
}

/// The Redis key names that end with `suffix`.
pub fn keys_ending(redis: &LocalRedis, suffix: &str) -> Vec<Vec<u8>> {
    let pattern = format!("*{suffix}");
    let reply = redis.command(&[b"KEYS", pattern.as_bytes()]).unwrap();
    parse_array(&reply)
}

/// The bulk strings of a RESP array reply.
fn parse_array(reply: &[u8]) -> Vec<Vec<u8>> {
    let mut names = Vec::new();
    let mut rest = reply;
    while let Some(start) = rest.iter().position(|&b| b == b'$') {
        let line_end = start + rest[start..].windows(2).position(|w| w == b"\r\n").unwrap();
        let length: usize = std::str::from_utf8(&rest[start + 1..line_end])
            .unwrap()
            .parse()
            .unwrap();
        let body = line_end + 2;
        names.push(rest[body..body + length].to_vec());
        rest = &rest[body + length + 2..];
    }
    names
}

/// Polls `condition` every 10 ms for at most `within`.
pub async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

/// Waits until `count` tiers listen to the fleet's invalidations.
pub async fn subscribed(redis: &LocalRedis, count: usize) {
    let ready = eventually(Duration::from_secs(5), || {
        let reply = redis
            .command(&[b"PUBSUB", b"NUMSUB", b"shared-calls:invalidations"])
            .unwrap();
        reply.ends_with(format!(":{count}\r\n").as_bytes())
    })
    .await;
    assert!(ready, "{count} subscribers");
}
