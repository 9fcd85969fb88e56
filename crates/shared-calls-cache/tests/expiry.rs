//! Time: TTLs (default, per entry, clamped, jittered), negative caching,
//! stale-while-revalidate and stale-if-error. Every test runs on tokio's
//! paused clock, which the cache's freshness follows; expiry is observed by
//! advancing it and asking again.

mod support;

use std::task::Poll;
use std::time::Duration;

use shared_calls_cache::{Cache, Fetch, LoadError, Outcome};
use tokio::time::{Instant, advance};

use support::{Backend, Strings, assert_answer, poll_once, until, until_tasks_done, value};

/// Within the stale-while-revalidate window, every reader is answered with
/// the stale value on its first poll, while exactly one refresh runs (held
/// at a gate until the readers are done); its value is then a hit.
#[tokio::test(start_paused = true)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let cache: Strings = Cache::builder()
        .ttl(Duration::from_millis(100))
        .stale_while_revalidate(Duration::from_secs(1))
        .jitter(0.0)
        .build();
    let first = Backend::new();
    cache
        .get_or_load("k", first.ready(value("v1")))
        .await
        .unwrap();
    advance(Duration::from_millis(150)).await;
    let asked = Instant::now();

    let refresh = Backend::new();
    let mut stale_reads = 0;
    let mut read_stale = |cache: &Strings| {
        for _ in 0..50 {
            match poll_once(cache.get_or_load("k", refresh.gated(value("v2")))) {
                Poll::Ready(Ok(lookup)) => {
                    assert_answer(&lookup, "v1", Outcome::Stale);
                    stale_reads += 1;
                }
                other => panic!("a stale read must answer at once, got {other:?}"),
            }
        }
    };
    // 50 readers before the refresh task has even run, 50 while its load
    // is held at the gate.
    read_stale(&cache);
    refresh.until_started(1).await;
    read_stale(&cache);
    assert_eq!(stale_reads, 100);
    assert_eq!(refresh.loads(), 1, "one refresh for 100 stale readers");
    assert_eq!(
        asked.elapsed(),
        Duration::ZERO,
        "nobody waited for the refresh"
    );

    refresh.open();
    until_tasks_done().await;
    assert_eq!((first.loads(), refresh.loads()), (1, 1));
    let hit = cache
        .get_or_load("k", refresh.ready(value("v3")))
        .await
        .unwrap();
    assert_answer(&hit, "v2", Outcome::Hit);
    assert_eq!(refresh.loads(), 1);
    let stats = cache.stats();
    assert_eq!(
        (stats.stale, stats.refreshes, stats.misses, stats.hits),
        (100, 1, 1, 1)
    );
}

/// Past the stale-while-revalidate window, a read waits for a load again.
#[tokio::test(start_paused = true)]
async fn past_the_stale_window_a_read_loads() {
    let cache: Strings = Cache::builder()
        .ttl(Duration::from_millis(100))
        .stale_while_revalidate(Duration::from_millis(500))
        .jitter(0.0)
        .build();
    let backend = Backend::new();
    cache
        .get_or_load("k", backend.ready(value("v1")))
        .await
        .unwrap();
    advance(Duration::from_millis(600)).await;
    let lookup = cache
        .get_or_load("k", backend.ready(value("v2")))
        .await
        .unwrap();
    assert_answer(&lookup, "v2", Outcome::Miss);
    assert_eq!(cache.stats().refreshes, 0);
}

/// A load that fails inside the stale-if-error window answers the old value
/// (`StaleIfError`); past the window the error reaches the caller.
#[tokio::test(start_paused = true)]
async fn stale_if_error_answers_the_old_value_inside_its_window_only() {
    let cache: Strings = Cache::builder()
        .ttl(Duration::from_millis(100))
        .stale_if_error(Duration::from_secs(1))
        .jitter(0.0)
        .build();
    let backend = Backend::new();
    cache
        .get_or_load("k", backend.ready(value("v1")))
        .await
        .unwrap();

    advance(Duration::from_millis(200)).await;
    let failing = Backend::new();
    let rescued = cache
        .get_or_load("k", failing.ready(Err("backend down")))
        .await
        .unwrap();
    assert_answer(&rescued, "v1", Outcome::StaleIfError);
    assert!(!rescued.stored());
    assert!(cache.get("k").is_none(), "the old value is not fresh again");

    // fresh until 100 ms, rescues until 1.1 s: at 1.1 s the window is over.
    advance(Duration::from_millis(900)).await;
    let failed = cache
        .get_or_load("k", failing.ready(Err("backend down")))
        .await;
    assert_eq!(failed.unwrap_err(), LoadError::Load("backend down"));
    assert_eq!(failing.loads(), 2);
    let stats = cache.stats();
    assert_eq!((stats.stale_if_error, stats.load_failures), (1, 2));
}

/// A fetch's own stale-if-error window overrides the cache's.
#[tokio::test(start_paused = true)]
async fn a_fetch_sets_its_own_stale_if_error_window() {
    let cache: Strings = Cache::builder()
        .ttl(Duration::from_millis(100))
        .jitter(0.0)
        .build();
    let backend = Backend::new();
    let fetch = Fetch::value("v1".to_owned()).stale_if_error(Duration::from_secs(5));
    cache
        .get_or_load("k", backend.ready(Ok(fetch)))
        .await
        .unwrap();
    advance(Duration::from_secs(3)).await;
    let rescued = cache
        .get_or_load("k", backend.ready(Err("down")))
        .await
        .unwrap();
    assert_eq!(rescued.outcome(), Outcome::StaleIfError);
}

/// A negative value (an HTTP `404` page) is answered like a value and kept
/// for the negative TTL: 10 s by default, or the TTL when that is shorter.
#[tokio::test(start_paused = true)]
async fn negative_values_are_kept_for_the_negative_ttl_or_the_ttl_if_shorter() {
    for (ttl, negative_for) in [(60, 10), (3, 3)] {
        let cache: Strings = Cache::builder()
            .ttl(Duration::from_secs(ttl))
            .jitter(0.0)
            .build();
        let backend = Backend::new();
        let not_found = || backend.ready(Ok(Fetch::negative("no such user".to_owned())));
        let lookup = cache.get_or_load("k", not_found()).await.unwrap();
        assert_eq!(lookup.value(), "no such user");
        assert_eq!(lookup.fresh_for(), Duration::from_secs(negative_for));

        advance(Duration::from_secs(negative_for) - Duration::from_millis(1)).await;
        assert_eq!(
            cache.get_or_load("k", not_found()).await.unwrap().outcome(),
            Outcome::Hit
        );
        advance(Duration::from_millis(1)).await;
        assert_eq!(
            cache.get_or_load("k", not_found()).await.unwrap().outcome(),
            Outcome::Miss
        );
        assert_eq!(backend.loads(), 2);
    }
}

/// An absent result is remembered for the negative TTL: `NotFound` without
/// loading until it passes, then the key loads again.
#[tokio::test(start_paused = true)]
async fn absent_results_are_remembered_for_the_negative_ttl() {
    let cache: Strings = Cache::builder()
        .ttl(Duration::from_secs(60))
        .negative_ttl(Duration::from_secs(5))
        .jitter(0.0)
        .build();
    let backend = Backend::new();
    let absent = || backend.ready::<String, &'static str>(Ok(Fetch::absent()));

    assert_eq!(
        cache.get_or_load("k", absent()).await.unwrap_err(),
        LoadError::NotFound
    );
    assert_eq!(backend.loads(), 1);
    for _ in 0..10 {
        advance(Duration::from_millis(499)).await;
        assert_eq!(
            cache.get_or_load("k", absent()).await.unwrap_err(),
            LoadError::NotFound
        );
    }
    assert_eq!(
        backend.loads(),
        1,
        "not found served without loading for 4.99 s"
    );
    assert!(cache.get("k").is_none(), "`get` answers values only");

    advance(Duration::from_millis(10)).await; // 5 s after the load
    assert_eq!(
        cache.get_or_load("k", absent()).await.unwrap_err(),
        LoadError::NotFound
    );
    assert_eq!(backend.loads(), 2);
    let found = cache.get_or_load("k", backend.ready(value("v"))).await;
    assert_eq!(found.unwrap_err(), LoadError::NotFound, "still remembered");
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.hits), (2, 10 + 1));
}

/// Jitter spreads the expiries of keys loaded together uniformly within
/// ± the fraction: 200 keys, TTL 100 s, jitter 0.1 → every key expires
/// within [90 s, 110 s], and not all at once.
#[tokio::test(start_paused = true)]
async fn jitter_spreads_expiries_within_bounds() {
    const KEYS: usize = 200;
    let cache: Strings = Cache::builder()
        .ttl(Duration::from_secs(100))
        .jitter(0.1)
        .max_entries(1_000)
        .build();
    let backend = Backend::new();
    let start = Instant::now();
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        let lookup = cache
            .get_or_load(key, backend.ready(value(key)))
            .await
            .unwrap();
        let ttl = lookup.fresh_for();
        assert!(
            (Duration::from_secs(90)..=Duration::from_secs(110)).contains(&ttl),
            "{key} is fresh for {ttl:?}"
        );
    }

    advance(Duration::from_secs(90) - Duration::from_millis(1)).await;
    assert!(
        keys.iter().all(|key| cache.get(key).is_some()),
        "nothing expires before 90 s"
    );
    // Step by 100 ms and note when each key is first seen expired.
    let step = Duration::from_millis(100);
    let mut expired_at: Vec<Option<Duration>> = vec![None; KEYS];
    while start.elapsed() < Duration::from_secs(110) {
        advance(step).await;
        for (key, seen) in keys.iter().zip(&mut expired_at) {
            if seen.is_none() && cache.get(key).is_none() {
                *seen = Some(start.elapsed());
            }
        }
    }
    let expired_at: Vec<Duration> = expired_at
        .into_iter()
        .map(|at| at.expect("every key expired by 110 s"))
        .collect();
    let (min, max) = (
        expired_at.iter().min().unwrap(),
        expired_at.iter().max().unwrap(),
    );
    assert!(*min >= Duration::from_secs(90) && *max <= Duration::from_secs(110));
    let mut distinct = expired_at.clone();
    distinct.sort();
    distinct.dedup();
    // Uniform over 200 steps of 100 ms: about 126 distinct steps expected;
    // fewer than 50 has a vanishing probability.
    assert!(
        distinct.len() >= 50,
        "only {} distinct expiry steps",
        distinct.len()
    );
    assert!(*min < Duration::from_secs(95) && *max > Duration::from_secs(105));
    assert_eq!(backend.loads(), KEYS);
}

/// A fetch's own TTL replaces the default one.
#[tokio::test(start_paused = true)]
async fn a_fetch_sets_its_own_ttl() {
    let cache: Strings = Cache::builder()
        .ttl(Duration::from_secs(60))
        .jitter(0.0)
        .build();
    let backend = Backend::new();
    let short = Fetch::value("short".to_owned()).ttl(Duration::from_secs(5));
    let lookup = cache
        .get_or_load("short", backend.ready(Ok(short)))
        .await
        .unwrap();
    assert_eq!(lookup.fresh_for(), Duration::from_secs(5));
    cache
        .get_or_load("default", backend.ready(value("default")))
        .await
        .unwrap();

    advance(Duration::from_millis(4_999)).await;
    assert!(cache.get("short").is_some());
    advance(Duration::from_millis(1)).await;
    assert!(cache.get("short").is_none(), "expired at its own 5 s");
    let default = cache.get("default").unwrap();
    assert_eq!(default.fresh_for(), Duration::from_secs(55));
    assert_eq!(default.age(), Duration::from_secs(5));
    advance(Duration::from_secs(55)).await;
    assert!(
        cache.get("default").is_none(),
        "expired at the default 60 s"
    );
}

/// `ttl_bounds` clamps every TTL: per fetch, default and negative.
#[tokio::test(start_paused = true)]
async fn ttl_bounds_clamp_every_ttl() {
    let cache: Strings = Cache::builder()
        .ttl(Duration::from_secs(60))
        .negative_ttl(Duration::from_secs(1))
        .ttl_bounds(Duration::from_secs(2), Duration::from_secs(10))
        .jitter(0.0)
        .build();
    let backend = Backend::new();
    let too_short = Fetch::value("a".to_owned()).ttl(Duration::from_secs(1));
    let too_long = Fetch::value("b".to_owned()).ttl(Duration::from_secs(3_600));
    let fresh_for = |lookup: shared_calls_cache::Lookup<String>| lookup.fresh_for();
    assert_eq!(
        fresh_for(
            cache
                .get_or_load("a", backend.ready(Ok(too_short)))
                .await
                .unwrap()
        ),
        Duration::from_secs(2)
    );
    assert_eq!(
        fresh_for(
            cache
                .get_or_load("b", backend.ready(Ok(too_long)))
                .await
                .unwrap()
        ),
        Duration::from_secs(10)
    );
    assert_eq!(
        fresh_for(
            cache
                .get_or_load("c", backend.ready(value("c")))
                .await
                .unwrap()
        ),
        Duration::from_secs(10)
    );
    let absent = || backend.ready::<String, &'static str>(Ok(Fetch::absent()));
    cache.get_or_load("gone", absent()).await.unwrap_err();
    assert_eq!(backend.loads(), 4);

    advance(Duration::from_millis(1_999)).await;
    assert!(cache.get("a").is_some());
    cache.get_or_load("gone", absent()).await.unwrap_err();
    assert_eq!(backend.loads(), 4, "the 1 s negative TTL was raised to 2 s");
    advance(Duration::from_millis(1)).await;
    assert!(cache.get("a").is_none());
    cache.get_or_load("gone", absent()).await.unwrap_err();
    assert_eq!(backend.loads(), 5);

    advance(Duration::from_millis(7_999)).await;
    assert!(cache.get("b").is_some() && cache.get("c").is_some());
    advance(Duration::from_millis(1)).await;
    assert!(cache.get("b").is_none() && cache.get("c").is_none());
}

/// A refresh that fails leaves the stale value in place, and the next stale
/// reader may start another refresh.
#[tokio::test(start_paused = true)]
async fn a_failed_refresh_lets_the_next_stale_reader_retry() {
    let cache: Strings = Cache::builder()
        .ttl(Duration::from_millis(100))
        .stale_while_revalidate(Duration::from_secs(10))
        .jitter(0.0)
        .build();
    let backend = Backend::new();
    cache
        .get_or_load("k", backend.ready(value("v1")))
        .await
        .unwrap();
    advance(Duration::from_millis(150)).await;

    let failing = Backend::new();
    let stale = cache
        .get_or_load("k", failing.ready(Err("down")))
        .await
        .unwrap();
    assert_eq!(stale.outcome(), Outcome::Stale);
    until_tasks_done().await;
    assert_eq!(failing.loads(), 1);

    let healthy = Backend::new();
    let stale = cache
        .get_or_load("k", healthy.ready(value("v2")))
        .await
        .unwrap();
    assert_answer(&stale, "v1", Outcome::Stale);
    until_tasks_done().await;
    until(|| cache.get("k").is_some()).await;
    assert_eq!(cache.get("k").unwrap().value(), "v2");
    assert_eq!(cache.stats().refreshes, 2);
}
