//! Entries kept past their freshness for the load that refreshes them
//! ([`Fetch::keep_for_revalidation`], [`Fetch::always_revalidate`]), on
//! tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use shared_calls_cache::{Cache, Fetch, Outcome};
use tokio::time::advance;

type Kept = Arc<std::sync::Mutex<Vec<Option<u32>>>>;

/// Loads `value` for `key`, recording what the load was handed.
async fn load(
    cache: &Cache<u32, u32>,
    kept: &Kept,
    fetch: fn(u32) -> Fetch<u32>,
    value: u32,
) -> Outcome {
    let kept = kept.clone();
    let (found, outcome) = cache
        .get_or_revalidate(&1, None, move |_, previous| async move {
            kept.lock().unwrap().push(previous);
            Ok(fetch(value))
        })
        .await;
    assert!(found.is_ok());
    outcome
}

#[tokio::test(start_paused = true)]
async fn an_expired_entry_is_handed_to_its_refresh_only_inside_its_keep_window() {
    let cache: Cache<u32, u32> = Cache::builder().jitter(0.0).build();
    let kept = Kept::default();
    let fetch = |value| {
        Fetch::value(value)
            .ttl(Duration::from_secs(1))
            .keep_for_revalidation(Duration::from_secs(10))
    };
    assert_eq!(load(&cache, &kept, fetch, 1).await, Outcome::Miss);
    // Fresh: a hit, no load, and never a stale answer once expired.
    assert_eq!(load(&cache, &kept, fetch, 9).await, Outcome::Hit);
    advance(Duration::from_secs(5)).await;
    assert!(cache.get(&1).is_none());
    assert_eq!(load(&cache, &kept, fetch, 2).await, Outcome::Miss);
    // Past its keep window, the next load is handed nothing.
    advance(Duration::from_secs(12)).await;
    assert_eq!(load(&cache, &kept, fetch, 3).await, Outcome::Miss);
    assert_eq!(*kept.lock().unwrap(), [None, Some(1), None]);
}

#[tokio::test(start_paused = true)]
async fn an_entry_that_always_revalidates_is_never_a_hit_whatever_the_bounds() {
    let cache: Cache<u32, u32> = Cache::builder()
        .jitter(0.0)
        .ttl_bounds(Duration::from_secs(30), Duration::from_secs(60))
        .stale_while_revalidate(Duration::from_secs(60))
        .stale_if_error(Duration::from_secs(60))
        .build();
    let kept = Kept::default();
    let fetch = |value| {
        Fetch::value(value)
            .always_revalidate()
            .keep_for_revalidation(Duration::from_secs(60))
    };
    // Every use loads, handed the value before it.
    for value in 1..=3 {
        assert_eq!(load(&cache, &kept, fetch, value).await, Outcome::Miss);
        assert!(cache.get(&1).is_none());
    }
    assert_eq!(*kept.lock().unwrap(), [None, Some(1), Some(2)]);
}
