//! Bounded waits, and a way to know that callers have joined a flight without
//! sleeping. Shared by the cache's and the layer's test support (the layer's
//! includes this file by its path).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// The longest any test waits for anything (virtual time in paused tests).
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// Awaits `future`, failing the test instead of hanging.
pub(crate) async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("a wait that should end did not")
}

/// Runs `future`, adding a permit to `entered` right after its first poll.
///
/// A call of the cache or the layer has joined (or led) its key's flight once
/// it has been polled once, so a test that acquires N permits knows that N
/// callers are in the flight, on any runtime, without sleeping.
pub(crate) async fn signal_entered<F: Future>(future: F, entered: Arc<Semaphore>) -> F::Output {
    let mut future = pin!(future);
    let mut first = true;
    std::future::poll_fn(|cx| {
        let poll = future.as_mut().poll(cx);
        if std::mem::take(&mut first) {
            entered.add_permits(1);
        }
        poll
    })
    .await
}

/// Waits until `n` callers have signalled through [`signal_entered`].
pub(crate) async fn until_entered(entered: &Semaphore, n: usize) {
    bounded(entered.acquire_many(u32::try_from(n).unwrap()))
        .await
        .unwrap()
        .forget();
}
