//! The cache's limits and defaults: windows of any length, jitter that never
//! stretches a stated lifetime, the default lock timeout, the byte bound.

mod support;

use std::sync::Arc;
use std::time::Duration;

use shared_calls_cache::{
    Cache, DEFAULT_LOCK_TIMEOUT, DEFAULT_MAX_BYTES, Fetch, LoadError, Lookup, Outcome,
};
use support::{
    Backend, BoxedLoad, Strings, assert_answer, bounded, fill, signal_entered, until_entered, value,
};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio::time::{Instant, advance};

/// Every window at `Duration::MAX`, and jitter at its widest: loads, hits,
/// absent results, hit-for-miss markers and waiting followers neither panic
/// nor expire a month later.
#[tokio::test(start_paused = true)]
async fn windows_of_duration_max_are_clamped_and_never_overflow() {
    let cache: Strings = Cache::builder()
        .ttl(Duration::MAX)
        .negative_ttl(Duration::MAX)
        .ttl_bounds(Duration::MAX, Duration::MAX)
        .jitter(0.99)
        .stale_while_revalidate(Duration::MAX)
        .stale_if_error(Duration::MAX)
        .hit_for_miss(Duration::MAX)
        .lock_timeout(Duration::MAX)
        .build();
    let backend = Backend::new();
    let forever = Fetch::value("stated".to_owned())
        .ttl(Duration::MAX)
        .stale_while_revalidate(Duration::MAX)
        .stale_if_error(Duration::MAX);
    let load = cache.get_or_load("stated", backend.ready(Ok(forever)));
    assert_eq!(load.await.unwrap().outcome(), Outcome::Miss);
    let load = cache.get_or_load("default", backend.ready(value("default")));
    assert_eq!(load.await.unwrap().outcome(), Outcome::Miss);
    let absent = cache.get_or_load("absent", backend.ready(Ok(Fetch::absent())));
    assert_eq!(absent.await.unwrap_err(), LoadError::NotFound);
    let unstored = Fetch::value("unstored".to_owned()).do_not_store();
    let load = cache.get_or_load("pass", backend.ready(Ok(unstored)));
    assert!(!load.await.unwrap().stored());

    // A follower waits for a gated leader under the longest lock timeout.
    let gated = backend.gated(value("gated"));
    let leader = spawn_get(&cache, "gated", gated);
    backend.until_started(5).await;
    let follower = spawn_get(&cache, "gated", backend.ready(value("unused")));
    advance(Duration::from_secs(3_600)).await;
    backend.open();
    assert_eq!(
        bounded(leader).await.unwrap().unwrap().outcome(),
        Outcome::Miss
    );
    let follower = bounded(follower).await.unwrap().unwrap();
    assert_eq!(follower.outcome(), Outcome::Collapsed);

    // At least 1 % of 2^31 s (about 8 months) is left after the jitter.
    advance(Duration::from_secs(30 * 24 * 3_600)).await;
    for key in ["stated", "default", "gated"] {
        let lookup = cache.get(key).expect("still fresh a month on");
        assert!(lookup.fresh_for() <= Duration::from_secs(2 << 31), "{key}");
    }
    let absent = cache.get_or_load("absent", backend.ready(value("found")));
    assert_eq!(absent.await.unwrap_err(), LoadError::NotFound);
    let pass = cache.get_or_load("pass", backend.ready(value("passed")));
    assert_eq!(pass.await.unwrap().outcome(), Outcome::Pass);
    assert_eq!(backend.loads(), 6);
}

/// The fresh lifetimes of 200 keys named after `kind`, loaded now with `fetch`.
async fn lifetimes(
    cache: &Strings,
    kind: &str,
    fetch: impl Fn() -> Fetch<String>,
) -> Vec<Duration> {
    let backend = Backend::new();
    let mut lifetimes = Vec::new();
    for key in 0..200 {
        let key = format!("{kind}-{key}");
        let lookup: Lookup<String> = cache
            .get_or_load(&key, backend.ready(Ok(fetch())))
            .await
            .unwrap();
        lifetimes.push(lookup.fresh_for());
    }
    lifetimes
}

/// Jitter shortens a TTL the source stated by up to its fraction and never
/// stretches it; it spreads default and heuristic TTLs both ways.
#[tokio::test(start_paused = true)]
async fn jitter_only_shortens_a_stated_ttl_and_spreads_default_ones_both_ways() {
    const TTL: Duration = Duration::from_secs(100);
    let cache: Strings = Cache::builder().ttl(TTL).jitter(0.5).build();

    let stated = lifetimes(&cache, "stated", || Fetch::value("v".into()).ttl(TTL)).await;
    assert!(
        stated.iter().all(|ttl| *ttl <= TTL && *ttl > TTL / 2),
        "{stated:?}"
    );
    assert!(stated.iter().any(|ttl| *ttl < TTL * 9 / 10), "shortened");

    let guessed = lifetimes(&cache, "guessed", || {
        Fetch::value("v".into()).heuristic_ttl(TTL)
    })
    .await;
    let default = lifetimes(&cache, "default", || Fetch::value("v".into())).await;
    for spread in [guessed, default] {
        assert!(
            spread
                .iter()
                .all(|ttl| *ttl >= TTL / 2 && *ttl <= TTL * 3 / 2)
        );
        assert!(spread.iter().any(|ttl| *ttl > TTL * 11 / 10), "stretched");
        assert!(spread.iter().any(|ttl| *ttl < TTL * 9 / 10), "shortened");
    }
}

/// The lock timeout and the leader's load end in one tick of the clock, the
/// follower's timer being the older one: the follower shares the load
/// rather than starting its own.
#[tokio::test(start_paused = true)]
async fn a_follower_whose_lock_timeout_fires_as_the_load_ends_shares_it() {
    const LOCK: Duration = Duration::from_millis(100);
    let cache: Strings = Cache::builder().lock_timeout(LOCK).build();
    let backend = Backend::new();
    // The leader's load waits at the gate, then takes `LOCK`.
    let leader = spawn_get(&cache, "k", backend.gated_slow(LOCK, value("v")));
    backend.until_started(1).await;
    let entered = Arc::new(Semaphore::new(0));
    let follower = {
        let (cache, load) = (cache.clone(), backend.ready(value("own")));
        tokio::spawn(signal_entered(
            async move { cache.get_or_load("k", load).await },
            entered.clone(),
        ))
    };
    until_entered(&entered, 1).await;
    backend.open();
    let leader = bounded(leader).await.unwrap().unwrap();
    let follower = bounded(follower).await.unwrap().unwrap();
    assert_eq!(leader.outcome(), Outcome::Miss);
    assert_answer(&follower, "v", Outcome::Collapsed);
    assert_eq!(backend.loads(), 1);
}

/// With no lock timeout set, a load that never ends holds its waiters for
/// the default 5 s only; each then loads alone and stores nothing.
#[tokio::test(start_paused = true)]
async fn the_default_lock_timeout_releases_the_waiters_of_a_silent_backend() {
    const WAITERS: usize = 10;
    let cache: Strings = Cache::builder().build();
    let silent = Backend::new(); // its gate never opens
    let leader = spawn_get(&cache, "k", silent.gated(value("never")));
    silent.until_started(1).await;
    let started = Instant::now();
    let answering = Backend::new();
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| spawn_get(&cache, "k", answering.ready(value("own"))))
        .collect();
    for waiter in waiters {
        let lookup = bounded(waiter).await.unwrap().unwrap();
        assert_eq!(lookup.outcome(), Outcome::LockTimeout);
        assert!(!lookup.stored());
    }
    assert_eq!(started.elapsed(), DEFAULT_LOCK_TIMEOUT);
    assert_eq!((silent.loads(), answering.loads()), (1, WAITERS));
    assert!(cache.get("k").is_none(), "nothing stored");
    assert!(
        !leader.is_finished(),
        "the silent load still holds its caller"
    );
    leader.abort();
}

/// A value that says how much heap it holds, without holding it.
#[derive(Clone)]
struct Claims(usize);

/// The default bound is 256 MiB of keys and values as the weighers count
/// them: a thousand entries of 1 MiB leave at most 256 MiB.
#[tokio::test]
async fn the_default_bound_is_in_bytes_and_counts_keys_and_values() {
    let cache: Cache<String, Claims> = Cache::builder()
        .weigh_keys(String::capacity)
        .weigh_values(|value: &Claims| value.0)
        .build();
    const MIB: usize = 1 << 20;
    for i in 0..1_000 {
        let key = format!("{i:0>4096}"); // 4 KiB keys
        let load = move || async { Ok(Fetch::value(Claims(MIB - 4096))) };
        cache.get_or_load(&key, load).await.unwrap();
    }
    let stats = cache.stats();
    assert!(stats.weight <= DEFAULT_MAX_BYTES, "{} bytes", stats.weight);
    assert!(
        stats.entries <= 256 && stats.entries >= 200,
        "{} entries",
        stats.entries
    );
    assert_eq!(stats.evictions, 1_000 - stats.entries);
    let per_entry = stats.weight / stats.entries;
    assert!(
        per_entry >= MIB as u64,
        "keys, values and bookkeeping: {per_entry}"
    );
}

/// Without weighers, the byte bound counts what entries hold inline and
/// their bookkeeping: a long key's heap counts only once it is weighed.
#[tokio::test]
async fn entries_weigh_their_inline_size_without_weighers() {
    let cache: Cache<u64, u64> = Cache::builder().max_bytes(1 << 20).build();
    fill(&cache, 0..100_000).await;
    let stats = cache.stats();
    assert!(stats.weight <= 1 << 20);
    let per_entry = stats.weight / stats.entries;
    assert!(
        (80..400).contains(&per_entry),
        "{per_entry} bytes per entry"
    );
}

/// A caller of `key` on a task of its own.
fn spawn_get(
    cache: &Strings,
    key: &'static str,
    load: impl FnOnce() -> BoxedLoad<String, &'static str> + Send + 'static,
) -> JoinHandle<Result<Lookup<String>, LoadError<&'static str>>> {
    let cache = cache.clone();
    tokio::spawn(async move { cache.get_or_load(key, load).await })
}

/// A follower that stopped waiting and whose own load failed is answered by
/// a stale entry within its stale-if-error window: the answer says
/// stale-if-error (which a layer checks against the request, as it would any
/// stored answer), not lock-timeout (which reads as the caller's own result).
#[tokio::test(start_paused = true)]
async fn a_timed_out_follower_whose_load_fails_is_answered_stale_if_error() {
    const LOCK: Duration = Duration::from_millis(100);
    let cache: Strings = Cache::builder()
        .ttl(Duration::from_secs(1))
        .jitter(0.0)
        .stale_if_error(Duration::from_secs(60))
        .lock_timeout(LOCK)
        .build();
    let backend = Backend::new();
    let stored = cache.get_or_load("k", backend.ready(value("old")));
    assert_eq!(bounded(stored).await.unwrap().outcome(), Outcome::Miss);
    advance(Duration::from_secs(2)).await;
    let leader = spawn_get(&cache, "k", backend.gated(value("never")));
    backend.until_started(2).await;
    let failing = backend.ready(Err("the backend failed"));
    let follower = bounded(cache.get_or_load("k", failing)).await.unwrap();
    assert_answer(&follower, "old", Outcome::StaleIfError);
    backend.open();
    bounded(leader).await.unwrap().unwrap();
}
