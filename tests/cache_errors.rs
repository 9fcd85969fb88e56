//! The cache alone with a driver error that is not `Clone`: shared through
//! an `Arc`, one failed load reaches every caller that waited for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shared_calls::cache::{Cache, Fetch, LoadError};

/// Not `Clone`, as most drivers' errors.
#[derive(Debug)]
struct DriverError(std::io::Error);

#[tokio::test(start_paused = true)]
async fn a_non_clone_error_is_shared_by_every_waiter_of_the_failed_load() {
    let cache: Cache<u64, String, Arc<DriverError>> = Cache::builder().build();
    let loads = Arc::new(AtomicUsize::new(0));

    let callers: Vec<_> = (0..3)
        .map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            tokio::spawn(async move {
                let load = move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    // The paused clock advances only once every caller waits.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let row: Result<String, DriverError> =
                        Err(DriverError(std::io::Error::other("connection reset")));
                    row.map(Fetch::value).map_err(Arc::new)
                };
                cache.get_or_load(&7, load).await
            })
        })
        .collect();

    let mut errors = Vec::new();
    for caller in callers {
        match caller.await.unwrap() {
            Err(LoadError::Load(error)) => errors.push(error),
            other => panic!("expected the driver's error, got {other:?}"),
        }
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "one load for three callers"
    );
    assert_eq!(errors[0].0.to_string(), "connection reset");
    assert!(
        errors.iter().all(|error| Arc::ptr_eq(error, &errors[0])),
        "one error, shared"
    );
    let stats = cache.stats();
    assert_eq!(
        (stats.misses, stats.collapsed, stats.load_failures),
        (1, 2, 1)
    );
}
