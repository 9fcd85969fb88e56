//! Abandoned flights finished on a detached tokio task.

use crate::flight::Work;
use crate::shard::Ticket;

/// Spawns a task that drives `work` to completion for the flight behind
/// `ticket`, or gives the work back when there is no tokio runtime to spawn on.
#[cfg(all(feature = "tokio", not(shared_calls_loom)))]
pub(crate) fn spawn<K, T>(ticket: Ticket<K, T>, work: Work<T>) -> Result<(), Work<T>>
where
    K: Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(Detached {
                ticket,
                work: Some(work),
            });
            Ok(())
        }
        Err(_) => Err(work),
    }
}

#[cfg(any(not(feature = "tokio"), shared_calls_loom))]
pub(crate) fn spawn<K, T>(_: Ticket<K, T>, work: Work<T>) -> Result<(), Work<T>> {
    Err(work)
}

/// Polls abandoned work to its end and publishes the output to whoever
/// joined meanwhile.
#[cfg(all(feature = "tokio", not(shared_calls_loom)))]
struct Detached<K, T>
where
    K: Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    ticket: Ticket<K, T>,
    work: Option<Work<T>>,
}

#[cfg(all(feature = "tokio", not(shared_calls_loom)))]
impl<K, T> std::future::Future for Detached<K, T>
where
    K: Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let Some(work) = self.work.as_mut() else {
            return std::task::Poll::Ready(());
        };
        let output = std::task::ready!(crate::flight::poll_work(work, cx));
        self.work = None;
        let output = output.map_err(|payload| crate::FlightError::from_panic(&*payload));
        drop(crate::flight::complete(&self.ticket, output));
        std::task::Poll::Ready(())
    }
}

#[cfg(all(feature = "tokio", not(shared_calls_loom)))]
impl<K, T> Drop for Detached<K, T>
where
    K: Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    fn drop(&mut self) {
        // The runtime is shutting down: hand the work to a waiter, if any.
        if let Some(work) = self.work.take() {
            crate::flight::hand_off(&self.ticket, work, false);
        }
    }
}
