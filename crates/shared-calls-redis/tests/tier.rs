//! The second tier's read path, fill lock, encoding and invalidation, over
//! a real redis-server.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shared_calls_cache::{Fetch, LoadError, Outcome};
use shared_calls_redis::local::LocalRedis;
use support::*;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn an_l2_hit_fills_l1_with_the_remaining_lifetime() {
    let Some(redis) = LocalRedis::start_or_skip("an_l2_hit_fills_l1_with_the_remaining_lifetime")
    else {
        return;
    };
    let a = instance(&redis.url(), |c| c.ttl(Duration::from_secs(10))).await;
    let b = instance(&redis.url(), |c| c.ttl(Duration::from_secs(10))).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let first = a
        .get_or_load(&"k".to_string(), counted(&calls, "v", Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(first.outcome(), Outcome::Miss);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let from_b = b
        .get_or_load(&"k".to_string(), counted(&calls, "other", Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        (from_b.value().as_str(), from_b.outcome()),
        ("v", Outcome::Hit)
    );
    assert!(from_b.from_second_tier());
    assert!(
        from_b.age() >= Duration::from_millis(290),
        "{:?}",
        from_b.age()
    );
    let left = from_b.fresh_for();
    assert!(
        left <= Duration::from_millis(9_710) && left >= Duration::from_millis(8_000),
        "{left:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Now in B's memory: answered without Redis.
    let before = b.stats().l2;
    let again = b
        .get_or_load(&"k".to_string(), counted(&calls, "other", Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(again.outcome(), Outcome::Hit);
    assert!(!again.from_second_tier());
    assert_eq!(b.stats().l2, before, "an L1 hit sends nothing to Redis");
    assert_eq!((before.hits, before.misses), (1, 0));
}

#[tokio::test]
async fn concurrent_misses_on_four_instances_make_one_load() {
    let Some(redis) =
        LocalRedis::start_or_skip("concurrent_misses_on_four_instances_make_one_load")
    else {
        return;
    };
    let mut fleet = Vec::new();
    for _ in 0..4 {
        fleet.push(instance(&redis.url(), |c| c).await);
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for n in 0..200 {
        let cache = fleet[n % 4].clone();
        let load = counted(&calls, "v", Duration::from_millis(100));
        tasks.push(tokio::spawn(async move {
            cache.get_or_load(&"cold".to_string(), load).await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().value(), "v");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let waits: u64 = fleet.iter().map(|cache| cache.stats().l2.lock_waits).sum();
    let taken: u64 = fleet.iter().map(|cache| cache.stats().l2.locks_taken).sum();
    assert_eq!(taken, 1);
    assert!(waits <= 3, "the others waited, or found the entry: {waits}");
}

#[tokio::test]
async fn a_corrupt_value_is_a_miss_and_is_replaced() {
    let Some(redis) = LocalRedis::start_or_skip("a_corrupt_value_is_a_miss_and_is_replaced") else {
        return;
    };
    let a = instance(&redis.url(), |c| c).await;
    let calls = Arc::new(AtomicUsize::new(0));
    a.get_or_load(&"k".to_string(), counted(&calls, "v", Duration::ZERO))
        .await
        .unwrap();
    let entry = keys_ending(&redis, ":e:k")
        .pop()
        .expect("the entry is in redis");
    for garbage in [&b"not an entry"[..], b"", b"SCL2\x01\x00truncated"] {
        redis.command(&[b"SET", &entry, garbage]).unwrap();
        let b = instance(&redis.url(), |c| c).await;
        let lookup = b
            .get_or_load(&"k".to_string(), counted(&calls, "v", Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(
            (lookup.value().as_str(), lookup.outcome()),
            ("v", Outcome::Miss)
        );
        assert_eq!(b.stats().l2.corrupt, 1);
    }
    // The last load wrote a good entry again.
    let c = instance(&redis.url(), |c| c).await;
    let lookup = c
        .get_or_load(&"k".to_string(), counted(&calls, "x", Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        (lookup.value().as_str(), lookup.outcome()),
        ("v", Outcome::Hit)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn values_over_the_size_limit_stay_in_memory() {
    let Some(redis) = LocalRedis::start_or_skip("values_over_the_size_limit_stay_in_memory") else {
        return;
    };
    let small = tier(&redis.url(), |t| t.max_value_size(100)).await;
    let a: Strings = shared_calls_cache::Cache::builder()
        .second_tier(small.clone(), Utf8)
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    let big = "x".repeat(200);
    a.get_or_load(&"big".to_string(), counted(&calls, &big, Duration::ZERO))
        .await
        .unwrap();
    a.get_or_load(&"small".to_string(), counted(&calls, "v", Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(a.stats().l2.tier.oversized, 1);
    assert!(keys_ending(&redis, ":e:big").is_empty());
    assert_eq!(keys_ending(&redis, ":e:small").len(), 1);
    assert!(
        keys_ending(&redis, ":l:big").is_empty(),
        "the lock was released"
    );
}

#[tokio::test]
async fn not_found_and_hit_for_miss_travel_through_l2() {
    let Some(redis) = LocalRedis::start_or_skip("not_found_and_hit_for_miss_travel_through_l2")
    else {
        return;
    };
    let a = instance(&redis.url(), |c| c).await;
    let b = instance(&redis.url(), |c| c).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let absent = {
        let calls = calls.clone();
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(Fetch::absent())
        }
    };
    assert_eq!(
        a.get_or_load(&"gone".to_string(), absent.clone())
            .await
            .unwrap_err(),
        LoadError::NotFound
    );
    assert_eq!(
        b.get_or_load(&"gone".to_string(), absent)
            .await
            .unwrap_err(),
        LoadError::NotFound
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "B took A's not-found from Redis"
    );

    let volatile = |calls: &Arc<AtomicUsize>| {
        let calls = calls.clone();
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, String>(Fetch::value("now".to_string()).do_not_store())
        }
    };
    let first = a
        .get_or_load(&"volatile".to_string(), volatile(&calls))
        .await
        .unwrap();
    assert_eq!(first.outcome(), Outcome::Miss);
    let second = b
        .get_or_load(&"volatile".to_string(), volatile(&calls))
        .await
        .unwrap();
    assert_eq!(
        second.outcome(),
        Outcome::Pass,
        "B knows the key is hit-for-miss"
    );
    assert_eq!(b.stats().l2.lock_waits, 0, "and takes no lock for it");
}

#[tokio::test]
async fn an_invalidation_reaches_every_instance() {
    let Some(redis) = LocalRedis::start_or_skip("an_invalidation_reaches_every_instance") else {
        return;
    };
    let a = instance(&redis.url(), |c| c).await;
    let b = instance(&redis.url(), |c| c).await;
    subscribed(&redis, 2).await;
    let calls = Arc::new(AtomicUsize::new(0));
    a.get_or_load(&"k".to_string(), counted(&calls, "old", Duration::ZERO))
        .await
        .unwrap();
    b.get_or_load(&"k".to_string(), counted(&calls, "old", Duration::ZERO))
        .await
        .unwrap();
    assert!(b.get(&"k".to_string()).is_some());

    a.invalidate(&"k".to_string());
    assert!(
        eventually(SECOND, || b.get(&"k".to_string()).is_none()).await,
        "B dropped it"
    );
    assert!(keys_ending(&redis, ":e:k").is_empty(), "and Redis too");
    let fresh = b
        .get_or_load(&"k".to_string(), counted(&calls, "new", Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        (fresh.value().as_str(), fresh.outcome()),
        ("new", Outcome::Miss)
    );
}

#[tokio::test]
async fn a_load_older_than_an_invalidation_stores_nowhere() {
    let Some(redis) = LocalRedis::start_or_skip("a_load_older_than_an_invalidation_stores_nowhere")
    else {
        return;
    };
    let a = instance(&redis.url(), |c| c).await;
    let b = instance(&redis.url(), |c| c).await;
    subscribed(&redis, 2).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let slow = {
        let a = a.clone();
        let load = counted(&calls, "read before the write", Duration::from_millis(300));
        tokio::spawn(async move { a.get_or_load(&"k".to_string(), load).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    b.invalidate(&"k".to_string()); // after a write, on another instance
    assert!(!slow.await.unwrap().unwrap().stored());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        keys_ending(&redis, ":e:k").is_empty(),
        "the old load wrote nothing to Redis"
    );
    let c = instance(&redis.url(), |c| c).await;
    let lookup = c
        .get_or_load(&"k".to_string(), counted(&calls, "new", Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(lookup.value(), "new");
}

#[tokio::test]
async fn a_crashed_lock_holder_delays_the_others_by_its_lock_ttl_at_most() {
    let Some(redis) = LocalRedis::start_or_skip(
        "a_crashed_lock_holder_delays_the_others_by_its_lock_ttl_at_most",
    ) else {
        return;
    };
    let crashed = tier(&redis.url(), |t| t.lock_ttl(Duration::from_millis(400))).await;
    let a: Strings = shared_calls_cache::Cache::builder()
        .second_tier(crashed, Utf8)
        .build();
    let calls = Arc::new(AtomicUsize::new(0));
    // A takes the lock and its process dies mid-call: the lock stays.
    let holder = {
        let load = counted(&calls, "never", Duration::from_secs(60));
        tokio::spawn(async move { a.get_or_load(&"k".to_string(), load).await })
    };
    assert!(eventually(SECOND, || !keys_ending(&redis, ":l:k").is_empty()).await);
    holder.abort();

    let b = tier(&redis.url(), |t| t.lock_ttl(Duration::from_millis(400))).await;
    let b: Strings = shared_calls_cache::Cache::builder()
        .second_tier(b, Utf8)
        .build();
    let started = Instant::now();
    let lookup = b
        .get_or_load(&"k".to_string(), counted(&calls, "v", Duration::ZERO))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(
        (lookup.value().as_str(), lookup.outcome()),
        ("v", Outcome::Miss)
    );
    assert!(waited < Duration::from_millis(1_000), "{waited:?}");
    assert_eq!(b.stats().l2.lock_waits, 1);
}

#[tokio::test]
async fn a_stale_entry_is_refreshed_once_for_the_whole_fleet() {
    let Some(redis) =
        LocalRedis::start_or_skip("a_stale_entry_is_refreshed_once_for_the_whole_fleet")
    else {
        return;
    };
    let windows = |c: shared_calls_cache::CacheBuilder<String, String>| {
        c.ttl(Duration::from_millis(200))
            .stale_while_revalidate(Duration::from_secs(10))
    };
    let a = instance(&redis.url(), windows).await;
    let calls = Arc::new(AtomicUsize::new(0));
    a.get_or_load(&"k".to_string(), counted(&calls, "v1", Duration::ZERO))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(instance(&redis.url(), windows).await);
    }
    for cache in &fleet {
        let lookup = cache
            .get_or_load(
                &"k".to_string(),
                counted(&calls, "v2", Duration::from_millis(300)),
            )
            .await
            .unwrap();
        assert_eq!(
            (lookup.value().as_str(), lookup.outcome()),
            ("v1", Outcome::Stale)
        );
    }
    assert!(eventually(SECOND, || calls.load(Ordering::SeqCst) == 2).await);
    tokio::time::sleep(Duration::from_millis(400)).await; // the refresh loads and fills
    let d = instance(&redis.url(), windows).await;
    let lookup = d
        .get_or_load(&"k".to_string(), counted(&calls, "v3", Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(
        (lookup.value().as_str(), lookup.outcome()),
        ("v2", Outcome::Hit)
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one refresh for three stale instances"
    );
}
