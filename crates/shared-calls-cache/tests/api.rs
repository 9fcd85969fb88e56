//! Compile-time guarantees of the public types.

use std::future::Future;

use shared_calls_cache::{Cache, CacheBuilder, Fetch, LoadError, Lookup, Outcome, Stats};

const fn assert_send_sync<T: Send + Sync>() {}

// Checked when the test crate compiles: no test needs to run.
const _: () = {
    assert_send_sync::<Cache<String, Vec<u8>, std::io::ErrorKind>>();
    assert_send_sync::<Cache<String, Vec<u8>>>();
    assert_send_sync::<CacheBuilder<String, Vec<u8>>>();
    assert_send_sync::<Lookup<Vec<u8>>>();
    assert_send_sync::<LoadError<std::io::ErrorKind>>();
    assert_send_sync::<Stats>();
    assert_send_sync::<Fetch<Vec<u8>>>();
    assert_send_sync::<Outcome>();
};

fn assert_send<T: Send>(_: &T) {}

/// A lookup can be awaited inside `tokio::spawn`: its future is `Send`.
#[test]
fn get_or_load_is_a_send_future() {
    let cache: Cache<String, Vec<u8>, std::io::ErrorKind> = Cache::builder().build();
    let lookup = cache.get_or_load("k", || async { Ok(Fetch::value(vec![1])) });
    assert_send(&lookup);
    fn is_future<F: Future>(_: &F) {}
    is_future(&lookup);
}

/// Every clone of a cache shares one store.
#[tokio::test]
async fn clones_share_one_store() {
    let cache: Cache<String, u64> = Cache::builder().build();
    let clone = cache.clone();
    clone.insert("k".to_owned(), Fetch::value(7));
    assert_eq!(cache.get("k").map(Lookup::into_value), Some(7));
    assert_eq!(cache.stats().hits, 1);
    assert!(format!("{cache:?}").starts_with("Cache"));
}
