//! Concurrent callers of one key: collapsing, hot keys at expiry, errors and
//! panics shared with the waiters of their flight, lock timeouts, abandoned
//! loads and the re-check inside a flight. Every wait is bounded; counts are
//! exact.

mod support;

use std::sync::Arc;
use std::time::Duration;

use shared_calls_cache::{Cache, Fetch, LoadError, Lookup, Outcome};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use support::{
    Backend, Strings, assert_answer, bounded, poll_once, signal_entered, until, until_entered,
    until_tasks_done,
};

fn outcomes<V>(results: &[Result<Lookup<V>, LoadError<&'static str>>], outcome: Outcome) -> usize {
    results
        .iter()
        .filter(|result| {
            result
                .as_ref()
                .is_ok_and(|lookup| lookup.outcome() == outcome)
        })
        .count()
}

/// Spawns `n` callers of `key` whose loaders come from `loader`, and waits
/// until every one of them has joined the key's flight.
async fn spawn_callers<L, F>(
    cache: &Strings,
    key: &str,
    n: usize,
    mut loader: L,
) -> Vec<tokio::task::JoinHandle<Result<Lookup<String>, LoadError<&'static str>>>>
where
    L: FnMut() -> F,
    F: FnOnce() -> support::BoxedLoad<String, &'static str> + Send + 'static,
{
    let entered = Arc::new(Semaphore::new(0));
    let callers = (0..n)
        .map(|_| {
            let (cache, key, load) = (cache.clone(), key.to_owned(), loader());
            let entered = entered.clone();
            tokio::spawn(
                async move { signal_entered(cache.get_or_load(&key, load), entered).await },
            )
        })
        .collect();
    until_entered(&entered, n).await;
    callers
}

async fn join_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(bounded(handle).await.expect("a caller panicked"));
    }
    outputs
}

/// 1,000 callers miss one key at once, on two worker threads: one load, one
/// `Miss`, 999 `Collapsed`, and the stats say the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_misses_load_once() {
    const CALLERS: usize = 1_000;
    let cache: Strings = Cache::builder().build();
    let backend = Backend::new();

    // The load is held at the gate until all 1,000 callers are in its flight.
    let callers = spawn_callers(&cache, "k", CALLERS, || {
        backend.gated(Ok(Fetch::value("v".to_owned())))
    })
    .await;
    assert_eq!(backend.loads(), 1, "one load started for 1,000 callers");
    assert_eq!(cache.in_flight(), 1);
    backend.open();
    let results = join_all(callers).await;

    assert_eq!(backend.loads(), 1);
    assert!(results.iter().all(|r| r.as_ref().unwrap().value() == "v"));
    assert_eq!(outcomes(&results, Outcome::Miss), 1);
    assert_eq!(outcomes(&results, Outcome::Collapsed), CALLERS - 1);
    // Followers stored nothing themselves; their lookups report that the
    // load which answered them (the leader's) stored the value.
    assert!(results.iter().all(|r| r.as_ref().unwrap().stored()));

    let stats = cache.stats();
    assert_eq!((stats.misses, stats.collapsed, stats.hits), (1, 999, 0));
    assert_eq!((stats.load_failures, stats.lock_timeouts), (0, 0));
    assert_eq!(stats.in_flight, 0);
    assert_eq!(cache.in_flight(), 0);
    assert_eq!(cache.get("k").unwrap().outcome(), Outcome::Hit);
}

/// A hot key under constant load for 10 s of paused time, TTL 1 s, 100 ms
/// loads, 50 callers each asking every 10 ms: each expiry causes exactly one
/// load, and no load starts while the entry is fresh.
///
/// The entry is fresh for 1 s from the end of its load, so loads start every
/// 1.1 s: at 0, 1.1, ..., 9.9 s, ten in the run. The count may differ by one
/// at the end of the run (±1): a load due right at the boundary starts or
/// not depending on whether a caller's tick falls before the end check. The
/// spacing assertion has no tolerance below the period.
#[tokio::test(start_paused = true)]
async fn a_hot_key_at_expiry_loads_once_per_expiry() {
    const CALLERS: usize = 50;
    const TTL: Duration = Duration::from_secs(1);
    const LOAD: Duration = Duration::from_millis(100);
    const TICK: Duration = Duration::from_millis(10);
    const RUN: Duration = Duration::from_secs(10);
    let cache: Strings = Cache::builder().ttl(TTL).jitter(0.0).build();
    let backend = Backend::new();
    let start = Instant::now();
    let end = start + RUN;

    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (cache, backend) = (cache.clone(), backend.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while Instant::now() < end {
                    let load = backend.slow(LOAD, Ok(Fetch::value("hot".to_owned())));
                    let lookup = cache.get_or_load("hot", load).await.unwrap();
                    seen.push(lookup.outcome());
                    tokio::time::sleep(TICK).await;
                }
                seen
            })
        })
        .collect();
    // The callers run for RUN of virtual time: bound the wait beyond it.
    let mut seen = Vec::new();
    for caller in callers {
        let outcomes = tokio::time::timeout(RUN + support::LIMIT, caller).await;
        seen.extend(outcomes.expect("the run did not end").unwrap());
    }

    let period = TTL + LOAD;
    let expected = RUN.as_millis().div_ceil(period.as_millis()) as usize;
    let loads = backend.loads();
    assert!(
        (expected - 1..=expected + 1).contains(&loads),
        "{loads} loads for {expected} expiries"
    );
    assert_eq!(
        backend.max_running(),
        1,
        "never two loads of the key at once"
    );
    let starts = backend.starts();
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= period,
            "a load started {gap:?} after the previous one: before expiry"
        );
        assert!(gap <= period + TICK, "a reload came late: {gap:?}");
    }
    let count = |outcome| seen.iter().filter(|&&o| o == outcome).count();
    assert_eq!(count(Outcome::Miss), loads);
    assert!(count(Outcome::Collapsed) >= (CALLERS - 1) * (loads - 1));
    assert_eq!(
        count(Outcome::Miss) + count(Outcome::Collapsed) + count(Outcome::Hit),
        seen.len()
    );
    let stats = cache.stats();
    assert_eq!(stats.misses as usize, loads);
    assert_eq!(stats.hits as usize, count(Outcome::Hit));
    assert_eq!(stats.collapsed as usize, count(Outcome::Collapsed));
}

/// A failed load is shared with the callers waiting for it, never stored:
/// the next caller loads again.
#[tokio::test(start_paused = true)]
async fn errors_are_shared_with_current_waiters_only() {
    let cache: Strings = Cache::builder().build();
    let failing = Backend::new();
    let callers = spawn_callers(&cache, "k", 5, || failing.gated(Err("backend down"))).await;
    failing.open();
    let results = join_all(callers).await;

    assert_eq!(failing.loads(), 1);
    for result in &results {
        assert_eq!(
            result.as_ref().unwrap_err(),
            &LoadError::Load("backend down")
        );
    }
    let stats = cache.stats();
    assert_eq!(stats.load_failures, 1, "one failed load, five waiters");
    assert_eq!((stats.misses, stats.collapsed), (1, 4));
    assert_eq!((stats.entries, stats.in_flight), (0, 0));
    assert!(cache.get("k").is_none(), "the error was not stored");

    let healthy = Backend::new();
    let next = cache
        .get_or_load("k", healthy.ready(Ok(Fetch::value("v".to_owned()))))
        .await
        .unwrap();
    assert_answer(&next, "v", Outcome::Miss);
    assert_eq!((failing.loads(), healthy.loads()), (1, 1));
}

/// A loader that panics fails every waiter of its flight with
/// `LoadError::Panicked`, counts once, and leaves the key usable.
#[tokio::test(start_paused = true)]
async fn a_panicking_loader_fails_every_waiter_once() {
    let cache: Strings = Cache::builder().build();
    let backend = Backend::new();
    let callers = spawn_callers(&cache, "k", 5, || {
        let gated = backend.gated::<String, &'static str>(Ok(Fetch::value(String::new())));
        move || -> support::BoxedLoad<String, &'static str> {
            Box::pin(async move {
                drop(gated().await);
                panic!("the backend exploded");
            })
        }
    })
    .await;
    backend.open();
    let results = join_all(callers).await;

    assert_eq!(backend.loads(), 1);
    for result in &results {
        match result {
            Err(LoadError::Panicked(message)) => assert_eq!(&**message, "the backend exploded"),
            other => panic!("expected a panic error, got {other:?}"),
        }
    }
    let stats = cache.stats();
    assert_eq!(stats.load_failures, 1);
    assert_eq!((stats.misses, stats.collapsed), (1, 4));
    assert_eq!(stats.in_flight, 0);

    let again = cache
        .get_or_load("k", backend.ready(Ok(Fetch::value("v".to_owned()))))
        .await
        .unwrap();
    assert_answer(&again, "v", Outcome::Miss);
    assert_eq!(cache.get("k").unwrap().value(), "v");
}

/// A follower that waits longer than the lock timeout loads by itself
/// (`LockTimeout`) and does not store; the leader's result is stored.
#[tokio::test(start_paused = true)]
async fn a_follower_past_the_lock_timeout_loads_alone_and_stores_nothing() {
    const LOCK: Duration = Duration::from_millis(50);
    let cache: Strings = Cache::builder().lock_timeout(LOCK).jitter(0.0).build();
    let leader_backend = Backend::new();
    let leader = spawn_callers(&cache, "k", 1, || {
        leader_backend.gated(Ok(Fetch::value("leader".to_owned())))
    })
    .await;

    let follower_backend = Backend::new();
    let asked = Instant::now();
    let follower = bounded(cache.get_or_load(
        "k",
        follower_backend.ready(Ok(Fetch::value("follower".to_owned()))),
    ))
    .await
    .unwrap();
    assert!(
        asked.elapsed() >= LOCK,
        "the follower waited for the lock timeout"
    );
    assert_eq!(follower.value(), "follower");
    assert_eq!(follower.outcome(), Outcome::LockTimeout);
    assert!(!follower.stored());
    assert_eq!((leader_backend.loads(), follower_backend.loads()), (1, 1));
    assert!(
        cache.get("k").is_none(),
        "the follower's result was not stored"
    );
    assert_eq!(cache.stats().lock_timeouts, 1);

    leader_backend.open();
    let leader = join_all(leader).await.pop().unwrap().unwrap();
    assert_answer(&leader, "leader", Outcome::Miss);
    assert!(leader.stored());
    assert_eq!(cache.get("k").unwrap().value(), "leader");
}

/// When every caller of a load has gone, the load still completes and
/// stores (the default); a caller that arrives meanwhile joins it.
#[tokio::test(start_paused = true)]
async fn an_abandoned_load_finishes_and_stores_by_default() {
    let cache: Strings = Cache::builder().build();
    let backend = Backend::new();
    let mut leader = spawn_callers(&cache, "k", 1, || {
        backend.gated(Ok(Fetch::value("v".to_owned())))
    })
    .await;
    let leader = leader.pop().unwrap();
    leader.abort();
    assert!(bounded(leader).await.unwrap_err().is_cancelled());
    assert_eq!(backend.cancelled(), 0, "the load survives its last caller");
    assert_eq!(cache.in_flight(), 1);

    let latecomer = spawn_callers(&cache, "k", 1, || {
        backend.ready(Ok(Fetch::value("late".to_owned())))
    })
    .await;
    backend.open();
    let latecomer = join_all(latecomer).await.pop().unwrap().unwrap();
    assert_answer(&latecomer, "v", Outcome::Collapsed);
    until_tasks_done().await;

    assert_eq!(
        (backend.loads(), backend.completed(), backend.cancelled()),
        (1, 1, 0)
    );
    assert_eq!(cache.in_flight(), 0);
    let hit = cache
        .get("k")
        .expect("the abandoned load stored its result");
    assert_answer(&hit, "v", Outcome::Hit);
}

/// With `finish_abandoned(false)`, the load is cancelled when its last
/// caller goes, stores nothing, and the next caller loads anew.
#[tokio::test(start_paused = true)]
async fn an_abandoned_load_is_cancelled_when_configured() {
    let cache: Strings = Cache::builder().finish_abandoned(false).build();
    let backend = Backend::new();
    let leader = spawn_callers(&cache, "k", 1, || {
        backend.gated(Ok(Fetch::value("v".to_owned())))
    })
    .await
    .pop()
    .unwrap();
    leader.abort();
    assert!(bounded(leader).await.unwrap_err().is_cancelled());

    assert_eq!(
        (backend.loads(), backend.completed(), backend.cancelled()),
        (1, 0, 1)
    );
    assert_eq!(cache.in_flight(), 0);
    backend.open();
    until_tasks_done().await;
    assert!(
        cache.get("k").is_none(),
        "the cancelled load stored nothing"
    );

    let next = cache
        .get_or_load("k", backend.ready(Ok(Fetch::value("v2".to_owned()))))
        .await
        .unwrap();
    assert_answer(&next, "v2", Outcome::Miss);
    assert_eq!(backend.loads(), 2);
}

/// The flight looks in the store before it loads: a load that starts right
/// after another one stored does not run.
///
/// Built deterministically on the current-thread runtime: a stale read
/// registers a background refresh (its flight exists, its work has not run
/// yet); `invalidate` forgets that flight, and a new caller loads and stores
/// a fresh value. When the refresh's work then starts, it finds the fresh
/// entry and returns without calling its loader.
#[tokio::test(start_paused = true)]
async fn a_load_that_starts_after_another_stored_does_not_run() {
    let cache: Strings = Cache::builder()
        .ttl(Duration::from_millis(100))
        .stale_while_revalidate(Duration::from_secs(10))
        .jitter(0.0)
        .build();
    let first = Backend::new();
    cache
        .get_or_load("k", first.ready(Ok(Fetch::value("v1".to_owned()))))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_millis(150)).await;

    let refresh = Backend::new();
    let stale =
        poll_once(cache.get_or_load("k", refresh.ready(Ok(Fetch::value("refresh".to_owned())))));
    let std::task::Poll::Ready(Ok(stale)) = stale else {
        panic!("a stale read answers at once");
    };
    assert_answer(&stale, "v1", Outcome::Stale);
    assert_eq!(
        cache.in_flight(),
        1,
        "the refresh's flight is registered, not yet run"
    );

    cache.invalidate("k");
    let second = Backend::new();
    let fresh = cache
        .get_or_load("k", second.ready(Ok(Fetch::value("v2".to_owned()))))
        .await
        .unwrap();
    assert_eq!((fresh.outcome(), fresh.stored()), (Outcome::Miss, true));

    until_tasks_done().await;
    assert_eq!(
        refresh.loads(),
        0,
        "the refresh found the fresh entry and did not load"
    );
    assert_eq!((first.loads(), second.loads()), (1, 1));
    let hit = cache.get("k").unwrap();
    assert_answer(&hit, "v2", Outcome::Hit);
}

/// More callers than `max_waiters` are refused at once instead of queueing.
#[tokio::test(start_paused = true)]
async fn callers_beyond_max_waiters_are_refused() {
    let cache: Strings = Cache::builder().max_waiters(2).build();
    let backend = Backend::new();
    let callers = spawn_callers(&cache, "k", 3, || {
        backend.gated(Ok(Fetch::value("v".to_owned())))
    })
    .await;
    // The leader drives the load; two followers wait; a third is refused.
    let extra = cache.get_or_load("k", backend.ready(Ok(Fetch::value("extra".to_owned()))));
    match poll_once(extra) {
        std::task::Poll::Ready(Err(LoadError::Overloaded)) => {}
        other => panic!("expected an immediate refusal, got {other:?}"),
    }
    backend.open();
    let results = join_all(callers).await;
    assert_eq!(backend.loads(), 1);
    assert_eq!(
        outcomes(&results, Outcome::Miss) + outcomes(&results, Outcome::Collapsed),
        3
    );
}

/// Loads of different keys do not wait for each other.
#[tokio::test(start_paused = true)]
async fn different_keys_load_independently() {
    let cache: Strings = Cache::builder().build();
    let held = Backend::new();
    let blocked = spawn_callers(&cache, "slow", 1, || {
        held.gated(Ok(Fetch::value("slow".to_owned())))
    })
    .await;
    for key in ["a", "b", "c"] {
        let other = Backend::new();
        let lookup = bounded(cache.get_or_load(key, other.ready(Ok(Fetch::value(key.to_owned())))))
            .await
            .unwrap();
        assert_eq!(lookup.outcome(), Outcome::Miss);
        assert_eq!(other.loads(), 1);
    }
    assert_eq!(held.completed(), 0, "the slow load is still held");
    held.open();
    join_all(blocked).await;
    until(|| cache.in_flight() == 0).await;
}
