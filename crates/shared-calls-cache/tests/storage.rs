//! What is stored and what is not: hit-for-miss, invalidation during a load
//! (the generation guarantee), explicit inserts, capacity bounds.

mod support;

use std::sync::Arc;
use std::time::Duration;

use shared_calls_cache::{Cache, Fetch, LoadError, Lookup, Outcome};
use tokio::sync::{Barrier, Semaphore};
use tokio::time::advance;

use support::{
    Backend, BoxedLoad, Strings, assert_answer, bounded, fill, signal_entered, until_entered,
    until_tasks_done, value,
};

type Answer = Result<Lookup<String>, LoadError<&'static str>>;

fn uncacheable(v: &str) -> Result<Fetch<String>, &'static str> {
    Ok(Fetch::value(v.to_owned()).do_not_store())
}

/// Spawns one caller per loader and waits until each has entered the cache
/// (joined a flight, or started its own load).
async fn spawn_callers(
    cache: &Strings,
    key: &str,
    loaders: Vec<Box<dyn FnOnce() -> BoxedLoad<String, &'static str> + Send>>,
) -> Vec<tokio::task::JoinHandle<Answer>> {
    let entered = Arc::new(Semaphore::new(0));
    let n = loaders.len();
    let callers = loaders
        .into_iter()
        .map(|load| {
            let (cache, key, entered) = (cache.clone(), key.to_owned(), entered.clone());
            tokio::spawn(
                async move { signal_entered(cache.get_or_load(&key, load), entered).await },
            )
        })
        .collect();
    until_entered(&entered, n).await;
    callers
}

async fn join_all(handles: Vec<tokio::task::JoinHandle<Answer>>) -> Vec<Lookup<String>> {
    let mut lookups = Vec::new();
    for handle in handles {
        lookups.push(bounded(handle).await.unwrap().unwrap());
    }
    lookups
}

fn count(lookups: &[Lookup<String>], outcome: Outcome) -> usize {
    lookups.iter().filter(|l| l.outcome() == outcome).count()
}

/// A loader that waits at `barrier` with the other loads: it returns only
/// if all of them run at the same time.
fn together(
    backend: &Arc<Backend>,
    barrier: &Arc<Barrier>,
    result: Result<Fetch<String>, &'static str>,
) -> Box<dyn FnOnce() -> BoxedLoad<String, &'static str> + Send> {
    let (barrier, inner) = (barrier.clone(), backend.ready(result));
    Box::new(move || {
        Box::pin(async move {
            bounded(barrier.wait()).await;
            inner().await
        })
    })
}

/// An uncacheable result still answers the flight's current followers (one
/// load); then the key is hit-for-miss: 10 concurrent callers load at the
/// same time (a barrier inside the loader proves it) as `Pass`, until the
/// hit-for-miss time passes and the key collapses again.
#[tokio::test(start_paused = true)]
async fn an_uncacheable_result_makes_the_key_hit_for_miss() {
    let cache: Strings = Cache::builder()
        .hit_for_miss(Duration::from_secs(30))
        .jitter(0.0)
        .build();
    let backend = Backend::new();

    // The leader's result cannot be stored; its 9 followers still get it.
    let loaders = (0..10)
        .map(|_| Box::new(backend.gated(uncacheable("private"))) as Box<dyn FnOnce() -> _ + Send>)
        .collect();
    let callers = spawn_callers(&cache, "k", loaders).await;
    backend.open();
    let first = join_all(callers).await;
    assert_eq!(backend.loads(), 1);
    assert!(first.iter().all(|l| l.value() == "private" && !l.stored()));
    assert_eq!(
        (
            count(&first, Outcome::Miss),
            count(&first, Outcome::Collapsed)
        ),
        (1, 9)
    );
    assert!(cache.get("k").is_none(), "nothing was stored");

    // Hit-for-miss: nobody queues. The barrier needs all 10 loads at once.
    let passing = Backend::new();
    let barrier = Arc::new(Barrier::new(10));
    let loaders = (0..10)
        .map(|_| together(&passing, &barrier, uncacheable("private")))
        .collect();
    let passes = join_all(spawn_callers(&cache, "k", loaders).await).await;
    assert_eq!(count(&passes, Outcome::Pass), 10);
    assert_eq!(passing.loads(), 10);
    assert_eq!(cache.stats().passes, 10);

    // Each uncacheable pass renews the mark; 30 s after the last one, the
    // key collapses again, and a storable result is stored.
    advance(Duration::from_secs(30)).await;
    let after = Backend::new();
    let loaders = (0..5)
        .map(|_| Box::new(after.gated(value("public"))) as Box<dyn FnOnce() -> _ + Send>)
        .collect();
    let callers = spawn_callers(&cache, "k", loaders).await;
    after.open();
    let collapsed = join_all(callers).await;
    assert_eq!(after.loads(), 1);
    assert_eq!(
        (
            count(&collapsed, Outcome::Miss),
            count(&collapsed, Outcome::Collapsed)
        ),
        (1, 4)
    );
    assert_eq!(cache.get("k").unwrap().value(), "public");
}

/// During hit-for-miss, a pass whose result can be stored ends it: it is
/// stored, and the next call is a hit.
#[tokio::test(start_paused = true)]
async fn a_storable_result_ends_hit_for_miss() {
    let cache: Strings = Cache::builder()
        .hit_for_miss(Duration::from_secs(30))
        .jitter(0.0)
        .build();
    let backend = Backend::new();
    cache
        .get_or_load("k", backend.ready(uncacheable("private")))
        .await
        .unwrap();
    advance(Duration::from_secs(1)).await;

    let pass = cache
        .get_or_load("k", backend.ready(uncacheable("private")))
        .await
        .unwrap();
    assert_eq!((pass.outcome(), pass.stored()), (Outcome::Pass, false));
    let pass = cache
        .get_or_load("k", backend.ready(value("public")))
        .await
        .unwrap();
    assert_eq!((pass.outcome(), pass.stored()), (Outcome::Pass, true));
    let hit = cache
        .get_or_load("k", backend.ready(value("unused")))
        .await
        .unwrap();
    assert_answer(&hit, "public", Outcome::Hit);
    assert_eq!(backend.loads(), 3);
}

/// With `hit_for_miss(ZERO)`, an uncacheable result leaves no mark: the next
/// callers collapse as usual.
#[tokio::test(start_paused = true)]
async fn hit_for_miss_can_be_turned_off() {
    let cache: Strings = Cache::builder().hit_for_miss(Duration::ZERO).build();
    let backend = Backend::new();
    cache
        .get_or_load("k", backend.ready(uncacheable("private")))
        .await
        .unwrap();
    let loaders = (0..3)
        .map(|_| Box::new(backend.gated(uncacheable("private"))) as Box<dyn FnOnce() -> _ + Send>)
        .collect();
    let callers = spawn_callers(&cache, "k", loaders).await;
    backend.open();
    let lookups = join_all(callers).await;
    assert_eq!(
        (
            count(&lookups, Outcome::Miss),
            count(&lookups, Outcome::Collapsed)
        ),
        (1, 2)
    );
    assert_eq!(backend.loads(), 2);
}

/// A hit-for-miss pass whose loader panics answers `Panicked` like any other
/// load, and the key stays usable.
#[tokio::test(start_paused = true)]
async fn a_panicking_pass_is_an_error_not_a_panic() {
    let cache: Strings = Cache::builder()
        .hit_for_miss(Duration::from_secs(30))
        .build();
    let backend = Backend::new();
    cache
        .get_or_load("k", backend.ready(uncacheable("private")))
        .await
        .unwrap();

    let caller = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_load("k", || async { panic!("the backend exploded") })
                .await
        })
    };
    let answer = bounded(caller)
        .await
        .expect("the caller itself must not panic");
    assert_eq!(
        answer.unwrap_err(),
        LoadError::Panicked("the backend exploded".into())
    );
    let stats = cache.stats();
    assert_eq!((stats.load_failures, stats.passes, stats.misses), (1, 1, 1));
    let pass = cache
        .get_or_load("k", backend.ready(value("public")))
        .await
        .unwrap();
    assert_eq!(pass.outcome(), Outcome::Pass);
}

/// How a test invalidates the key `user:1`.
#[derive(Debug, Clone, Copy)]
enum Invalidation {
    One,
    All,
    If,
}

impl Invalidation {
    fn apply(self, cache: &Strings) {
        match self {
            Invalidation::One => cache.invalidate("user:1"),
            Invalidation::All => cache.invalidate_all(),
            Invalidation::If => cache.invalidate_if(|key: &String| key.starts_with("user:")),
        }
    }
}

/// A load in flight when its key is invalidated does not store its result,
/// and a caller that comes after the invalidation starts a new load instead
/// of joining the old one; the new load's value is what stays.
async fn invalidation_during_a_load(how: Invalidation) {
    let cache: Strings = Cache::builder().build();
    let old = Backend::new();
    let loaders = vec![Box::new(old.gated(value("old"))) as Box<dyn FnOnce() -> _ + Send>];
    let stale_load = spawn_callers(&cache, "user:1", loaders).await;
    how.apply(&cache);

    let new = Backend::new();
    let after = bounded(cache.get_or_load("user:1", new.ready(value("new"))))
        .await
        .unwrap();
    assert_eq!(
        (after.value().as_str(), after.outcome()),
        ("new", Outcome::Miss),
        "{how:?}"
    );
    assert!(after.stored());
    assert_eq!(
        new.loads(),
        1,
        "{how:?}: the new caller did not join the old load"
    );

    old.open();
    let stale = join_all(stale_load).await.pop().unwrap();
    assert_answer(&stale, "old", Outcome::Miss);
    assert!(
        !stale.stored(),
        "{how:?}: the invalidated load stored its result"
    );
    assert_eq!(cache.get("user:1").unwrap().value(), "new", "{how:?}");
    assert_eq!(cache.in_flight(), 0);
}

/// Without a newer load, the invalidated load leaves the key empty: the
/// next get is a miss and loads again.
async fn invalidation_leaves_the_key_empty(how: Invalidation) {
    let cache: Strings = Cache::builder().build();
    let old = Backend::new();
    let loaders = vec![Box::new(old.gated(value("old"))) as Box<dyn FnOnce() -> _ + Send>];
    let stale_load = spawn_callers(&cache, "user:1", loaders).await;
    how.apply(&cache);
    old.open();
    let stale = join_all(stale_load).await.pop().unwrap();
    assert!(!stale.stored(), "{how:?}");
    assert!(cache.get("user:1").is_none(), "{how:?}: nothing was stored");

    let next = Backend::new();
    let lookup = cache
        .get_or_load("user:1", next.ready(value("reloaded")))
        .await
        .unwrap();
    assert_eq!(
        (lookup.outcome(), next.loads()),
        (Outcome::Miss, 1),
        "{how:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn invalidate_during_a_load_discards_its_result() {
    invalidation_during_a_load(Invalidation::One).await;
    invalidation_leaves_the_key_empty(Invalidation::One).await;
}

#[tokio::test(start_paused = true)]
async fn invalidate_all_during_a_load_discards_its_result() {
    invalidation_during_a_load(Invalidation::All).await;
    invalidation_leaves_the_key_empty(Invalidation::All).await;
}

#[tokio::test(start_paused = true)]
async fn invalidate_if_during_a_load_discards_its_result() {
    invalidation_during_a_load(Invalidation::If).await;
    invalidation_leaves_the_key_empty(Invalidation::If).await;
}

/// `invalidate_if` removes the matching entries only.
#[tokio::test(start_paused = true)]
async fn invalidate_if_removes_matching_entries_only() {
    let cache: Strings = Cache::builder().build();
    let backend = Backend::new();
    for key in ["user:1", "user:2", "post:1"] {
        cache
            .get_or_load(key, backend.ready(value(key)))
            .await
            .unwrap();
    }
    cache.invalidate_if(|key: &String| key.starts_with("user:"));
    assert!(cache.get("user:1").is_none() && cache.get("user:2").is_none());
    assert_eq!(cache.get("post:1").unwrap().value(), "post:1");
}

/// A load of a key that `invalidate_if` does not match stores its result
/// even if it was in flight during the sweep; the matching one does not.
#[tokio::test(start_paused = true)]
async fn invalidate_if_stops_only_matching_loads_in_flight() {
    let cache: Strings = Cache::builder().build();
    let (user, post) = (Backend::new(), Backend::new());
    let user_load =
        spawn_callers(&cache, "user:1", vec![Box::new(user.gated(value("user")))]).await;
    let post_load =
        spawn_callers(&cache, "post:1", vec![Box::new(post.gated(value("post")))]).await;
    cache.invalidate_if(|key: &String| key.starts_with("user:"));
    user.open();
    post.open();
    let user_answer = join_all(user_load).await.pop().unwrap();
    let post_answer = join_all(post_load).await.pop().unwrap();
    assert!(!user_answer.stored(), "the matching load stored its result");
    assert!(post_answer.stored(), "the other key's load did not store");
    assert!(cache.get("user:1").is_none());
    assert_eq!(cache.get("post:1").unwrap().value(), "post");
}

/// `insert` stores like a load would, and a load in flight then does not
/// overwrite it.
#[tokio::test(start_paused = true)]
async fn insert_wins_over_a_load_in_flight() {
    let cache: Strings = Cache::builder().build();
    let backend = Backend::new();
    let loaders = vec![Box::new(backend.gated(value("loaded"))) as Box<dyn FnOnce() -> _ + Send>];
    let load = spawn_callers(&cache, "k", loaders).await;
    cache.insert("k".to_owned(), Fetch::value("inserted".to_owned()));
    assert_eq!(cache.get("k").unwrap().value(), "inserted");
    backend.open();
    assert!(!join_all(load).await.pop().unwrap().stored());
    assert_eq!(cache.get("k").unwrap().value(), "inserted");

    cache.insert("gone".to_owned(), Fetch::absent());
    let absent = cache
        .get_or_load("gone", backend.ready(value("unused")))
        .await;
    assert_eq!(absent.unwrap_err(), LoadError::NotFound);
    assert_eq!(backend.loads(), 1);
}

/// A byte weigher bounds the total weight: loading ten times the capacity
/// leaves at most the capacity, and the evictions are counted.
#[tokio::test]
async fn the_weight_bound_holds_under_ten_times_the_capacity() {
    const MAX_BYTES: u64 = 10_000;
    let cache: Cache<u64, Vec<u8>, &'static str> = Cache::builder()
        .max_weight(MAX_BYTES, |_, value: &Vec<u8>| value.len() as u32)
        .build();
    let loads = 1_000u64; // 100 bytes each: 100,000 bytes, ten times the bound
    for key in 0..loads {
        let lookup = cache
            .get_or_load(&key, move || async { Ok(Fetch::value(vec![7u8; 100])) })
            .await
            .unwrap();
        assert_eq!(lookup.value().len(), 100);
    }
    let stats = cache.stats();
    assert!(
        stats.weight <= MAX_BYTES,
        "weight {} over {MAX_BYTES}",
        stats.weight
    );
    assert!(stats.entries <= MAX_BYTES / 100);
    assert_eq!(
        stats.evictions,
        loads - stats.entries,
        "every entry not kept was evicted"
    );
    assert_eq!(stats.misses, loads);
}

/// The entry bound holds likewise.
#[tokio::test]
async fn the_entry_bound_holds_under_ten_times_the_capacity() {
    let cache: Cache<u64, u64, &'static str> = Cache::builder().max_entries(100).build();
    fill(&cache, 0..1_000).await;
    let stats = cache.stats();
    assert!(stats.entries <= 100, "{} entries", stats.entries);
    assert_eq!(stats.weight, stats.entries, "unweighted: one per entry");
    assert_eq!(stats.evictions, 1_000 - stats.entries);
    until_tasks_done().await;
}
