//! What is shared and what is stored: bypass, one inner call for concurrent
//! identical requests, errors shared with the current waiters only, expiry,
//! and one cache for every service of a layer, its clones, and the layers
//! handed the same cache. Counts are exact; every wait is bounded.

mod support;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use shared_calls_tower::{Cache, CachingLayer, SharedError, Stats};
use support::{
    Backend, KeyFn, Policy, Step, answer, bounded, even_key, join_all, layer, own_key,
    spawn_callers,
};
use tower::{Layer, ServiceExt};

/// A request whose key function says `None` goes to the inner service every
/// time; nothing is shared or stored, and the cache counts nothing.
#[tokio::test(start_paused = true)]
async fn requests_without_a_key_bypass_every_time() {
    let layer = CachingLayer::<_, Policy>::new(even_key as KeyFn);
    let backend = Backend::open_now();
    let service = layer.layer(backend.clone());
    for _ in 0..5 {
        assert_eq!(bounded(service.clone().oneshot(1)).await.unwrap(), "v1");
    }
    assert_eq!(backend.calls(), 5);
    let cache = layer.cache_handle();
    assert_eq!(
        cache.stats(),
        Stats::default(),
        "a bypass counts and stores nothing"
    );

    // Concurrent bypassed requests each make their own call.
    backend.close();
    let callers = spawn_callers(&service, 3, 4).await;
    assert_eq!(backend.calls(), 9, "four concurrent calls, not one");
    backend.open();
    for result in join_all(callers).await {
        assert_eq!(result.unwrap(), "v3");
    }
    assert_eq!(cache.stats(), Stats::default());

    // Keyed requests on the same layer are shared and stored as usual.
    assert_eq!(bounded(service.clone().oneshot(2)).await.unwrap(), "v2");
    assert_eq!(bounded(service.clone().oneshot(2)).await.unwrap(), "v2");
    assert_eq!(backend.calls(), 10);
}

/// 50 concurrent identical requests, every one in the flight before the
/// backend answers, on two worker threads: one inner call, 50 equal
/// answers, one miss and 49 collapsed; the next request is a hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_identical_requests_make_one_inner_call() {
    let layer = layer();
    let backend = Backend::gated();
    let service = layer.layer(backend.clone());

    let callers = spawn_callers(&service, 7, 50).await;
    assert_eq!(backend.calls(), 1);
    backend.open();
    let answers = join_all(callers).await;
    assert!(
        answers
            .iter()
            .all(|answer| answer.as_ref().unwrap() == "v7")
    );
    assert_eq!(backend.calls(), 1);
    assert_eq!(backend.requests(), [7]);

    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.collapsed, stats.hits), (1, 49, 0));
    assert_eq!(bounded(service.oneshot(7)).await.unwrap(), "v7");
    assert_eq!(backend.calls(), 1);
    assert_eq!(layer.cache_handle().stats().hits, 1);
}

/// Ten keys, five concurrent requests each: one inner call per key, each
/// request answered for its own key.
#[tokio::test(start_paused = true)]
async fn distinct_keys_make_distinct_calls() {
    let layer = layer();
    let backend = Backend::gated();
    let service = layer.layer(backend.clone());

    let mut callers = Vec::new();
    for key in 0..10 {
        callers.push((key, spawn_callers(&service, key, 5).await));
    }
    assert_eq!(backend.calls(), 10);
    backend.open();
    for (key, handles) in callers {
        for result in join_all(handles).await {
            assert_eq!(result.unwrap(), answer(key));
        }
    }
    let mut requests = backend.requests();
    requests.sort_unstable();
    assert_eq!(requests, (0..10).collect::<Vec<_>>());
    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.collapsed), (10, 40));
}

/// A failed call is shared with the requests waiting for it, as the same
/// `Arc`'d error, and is not stored: the next request calls again.
#[tokio::test(start_paused = true)]
async fn errors_reach_the_current_waiters_and_are_not_stored() {
    let layer = layer();
    let backend = Backend::gated();
    backend.script([Step::Fail("backend down")]);
    let service = layer.layer(backend.clone());

    let callers = spawn_callers(&service, 7, 20).await;
    backend.open();
    let errors: Vec<Arc<io::Error>> = join_all(callers)
        .await
        .into_iter()
        .map(|result| match result {
            Err(SharedError::Inner(error)) => error,
            other => panic!("expected the shared inner error, got {other:?}"),
        })
        .collect();
    assert_eq!(errors[0].to_string(), "backend down");
    assert!(errors.iter().all(|error| Arc::ptr_eq(error, &errors[0])));
    assert_eq!(backend.calls(), 1);

    let stats = layer.cache_handle().stats();
    assert_eq!(
        (stats.misses, stats.collapsed, stats.load_failures),
        (1, 19, 1)
    );
    // Not stored: the next request calls again, and its answer is stored.
    assert_eq!(bounded(service.clone().oneshot(7)).await.unwrap(), "v7");
    assert_eq!(bounded(service.oneshot(7)).await.unwrap(), "v7");
    assert_eq!(backend.calls(), 2);
    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.hits), (2, 1));
}

/// A stored answer is a hit until its TTL ends (no jitter), then the next
/// request calls the inner service again.
#[tokio::test(start_paused = true)]
async fn a_hit_after_the_ttl_calls_again() {
    let layer = layer().ttl(Duration::from_secs(10)).jitter(0.0);
    let backend = Backend::open_now();
    let service = layer.layer(backend.clone());

    assert_eq!(bounded(service.clone().oneshot(7)).await.unwrap(), "v7");
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert_eq!(bounded(service.clone().oneshot(7)).await.unwrap(), "v7");
    assert_eq!(backend.calls(), 1, "still fresh 1 ms before the TTL ends");

    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(bounded(service.clone().oneshot(7)).await.unwrap(), "v7");
    assert_eq!(backend.calls(), 2, "expired at the TTL");
    assert_eq!(bounded(service.oneshot(7)).await.unwrap(), "v7");
    assert_eq!(backend.calls(), 2, "the new answer is stored");
    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.hits), (2, 2));
}

/// Two services made from one layer and from a clone of it, over different
/// inner services, collapse onto one call and share its stored answer.
#[tokio::test(start_paused = true)]
async fn services_of_a_layer_and_its_clones_share_flights_and_hits() {
    let layer = layer();
    let (first, second) = (Backend::gated(), Backend::gated());
    let one = layer.layer(first.clone());
    let two = layer.clone().layer(second.clone());

    let mut callers = spawn_callers(&one, 7, 3).await;
    callers.extend(spawn_callers(&two, 7, 3).await);
    first.open();
    second.open();
    for result in join_all(callers).await {
        assert_eq!(result.unwrap(), "v7");
    }
    assert_eq!(
        (first.calls(), second.calls()),
        (1, 0),
        "the first to call led"
    );

    // A hit through either service, and through a third made later from
    // another clone, whose own backend only sees its own miss.
    let third = Backend::open_now();
    let three = layer.clone().layer(third.clone());
    for service in [one, two.clone(), three.clone()] {
        assert_eq!(bounded(service.oneshot(7)).await.unwrap(), "v7");
    }
    assert_eq!(bounded(three.oneshot(8)).await.unwrap(), "v8");
    assert_eq!((first.calls(), second.calls(), third.calls()), (1, 0, 1));
    assert_eq!(third.requests(), [8]);

    let stats = layer.cache_handle().stats();
    assert_eq!((stats.misses, stats.collapsed, stats.hits), (2, 5, 3));
    // Every clone's handle is the same cache.
    assert_eq!(two.cache().stats(), stats);
}

/// A cache handed to two layers with `.cache(handle)` is shared by both;
/// invalidating through the handle makes the next request call again.
#[tokio::test(start_paused = true)]
async fn a_handed_in_cache_is_shared_and_invalidation_forces_a_call() {
    let cache: Cache<u32, String, Arc<io::Error>> =
        Cache::builder().ttl(Duration::from_secs(60)).build();
    let users = CachingLayer::<_, Policy>::new(own_key as KeyFn).cache(cache.clone());
    let admin = CachingLayer::<_, Policy>::new(|request: &u32| Some(*request)).cache(cache.clone());
    let (backend, other) = (Backend::open_now(), Backend::open_now());
    let users = users.layer(backend.clone());
    let admin = admin.layer(other.clone());

    assert_eq!(bounded(users.clone().oneshot(7)).await.unwrap(), "v7");
    assert_eq!(bounded(admin.clone().oneshot(7)).await.unwrap(), "v7");
    assert_eq!(
        (backend.calls(), other.calls()),
        (1, 0),
        "a hit from the other layer"
    );
    assert_eq!(cache.get(&7).unwrap().value(), "v7");

    // After a write, the application invalidates the key.
    cache.invalidate(&7);
    assert_eq!(bounded(admin.clone().oneshot(7)).await.unwrap(), "v7");
    assert_eq!((backend.calls(), other.calls()), (1, 1));
    assert_eq!(bounded(users.oneshot(7)).await.unwrap(), "v7");
    assert_eq!((backend.calls(), other.calls()), (1, 1), "stored again");

    let stats = cache.stats();
    // Two hits through the layers and one through `cache.get` above.
    assert_eq!((stats.misses, stats.hits), (2, 3));
}

/// The stats of the layer's cache handle count exactly what happened: a
/// leader and its followers, hits, and misses of other keys.
#[tokio::test(start_paused = true)]
async fn stats_from_the_cache_handle_match() {
    let layer = layer();
    let backend = Backend::gated();
    let service = layer.layer(backend.clone());
    assert_eq!(layer.cache_handle().stats(), Stats::default());

    let callers = spawn_callers(&service, 1, 5).await;
    assert_eq!(layer.cache_handle().stats().in_flight, 1);
    backend.open();
    join_all(callers).await;
    for _ in 0..3 {
        bounded(service.clone().oneshot(1)).await.unwrap();
    }
    bounded(service.clone().oneshot(2)).await.unwrap();
    bounded(service.clone().oneshot(2)).await.unwrap();

    let cache = layer.cache_handle();
    let stats = cache.stats();
    assert_eq!(
        (
            stats.hits,
            stats.misses,
            stats.collapsed,
            stats.entries,
            stats.in_flight
        ),
        (4, 2, 4, 2, 0)
    );
    assert_eq!(backend.calls(), 2);
}
