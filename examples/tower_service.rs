//! Any `tower::Service` whose responses can be cloned: here a `service_fn`
//! stands in for a database client. Concurrent calls for the same row reach
//! the database once; later calls are answered from the cache; errors are
//! shared with the calls waiting for them and never cached.
//!
//! ```sh
//! cargo run --example tower_service
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use shared_calls::layer::{CachingLayer, CloneResponses, SharedError};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// A row of the `users` table.
#[derive(Debug)]
struct User {
    id: u64,
    name: String,
}

/// What the database client can fail with.
#[derive(Debug)]
enum DbError {
    ConnectionReset,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::ConnectionReset => f.write_str("connection reset by the database"),
        }
    }
}

impl std::error::Error for DbError {}

/// Key `u64`, response `Arc<User>` (cheap to clone), error `DbError`.
type Users = CloneResponses<u64, Arc<User>, DbError>;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let queries = Arc::new(AtomicU64::new(0));
    // The "database client": `SELECT * FROM users WHERE id = $1`, 20 ms a
    // query; user 0 always fails.
    let database = {
        let queries = queries.clone();
        service_fn(move |id: u64| {
            queries.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                match id {
                    0 => Err(DbError::ConnectionReset),
                    id => Ok(Arc::new(User {
                        id,
                        name: format!("user-{id}"),
                    })),
                }
            }
        })
    };
    let layer = CachingLayer::<_, Users>::new(|id: &u64| Some(*id)).ttl(Duration::from_secs(30));
    let users = ServiceBuilder::new().layer(layer.clone()).service(database);

    // 1,000 concurrent lookups over 10 users.
    let calls: Vec<_> = (0..1_000u64)
        .map(|i| tokio::spawn(users.clone().oneshot(1 + i % 10)))
        .collect();
    for (i, call) in (0u64..).zip(calls) {
        let user = call.await??;
        assert_eq!(
            (user.id, user.name.as_str()),
            (1 + i % 10, &*format!("user-{}", 1 + i % 10))
        );
    }
    println!(
        "1000 concurrent calls over 10 users: {} database queries",
        queries.load(Ordering::SeqCst)
    );

    // The same lookups again: answered from the cache.
    let before = queries.load(Ordering::SeqCst);
    for id in 1..=10 {
        users.clone().oneshot(id).await?;
    }
    println!(
        "10 more calls for the same users: {} database queries",
        queries.load(Ordering::SeqCst) - before
    );

    // A failing query: shared with the 50 calls waiting for it, not cached.
    let before = queries.load(Ordering::SeqCst);
    let calls: Vec<_> = (0..50)
        .map(|_| tokio::spawn(users.clone().oneshot(0)))
        .collect();
    let mut failed = 0;
    for call in calls {
        match call.await? {
            Err(SharedError::Inner(error)) => {
                assert!(matches!(*error, DbError::ConnectionReset));
                failed += 1;
            }
            other => return Err(format!("expected the database error, got {other:?}").into()),
        }
    }
    let after_burst = queries.load(Ordering::SeqCst) - before;
    let retry = users.clone().oneshot(0).await;
    println!(
        "50 concurrent calls for a failing row: {failed} errors from {after_burst} database query; \
         a retry queries again (errors are not cached): {}",
        retry.is_err() && queries.load(Ordering::SeqCst) - before == after_burst + 1
    );

    let stats = layer.cache_handle().stats();
    let total_calls = 1_000 + 10 + 50 + 1;
    println!(
        "calls: {total_calls}; database queries: {}; cache: {} miss, {} collapsed, {} hit",
        queries.load(Ordering::SeqCst),
        stats.misses,
        stats.collapsed,
        stats.hits
    );
    if queries.load(Ordering::SeqCst) != 12 {
        return Err("expected 10 queries for the users and 2 for the failing row".into());
    }
    Ok(())
}
