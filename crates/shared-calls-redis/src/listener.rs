//! The fleet's invalidations: one pub/sub subscription per tier, delivered
//! to every cache built over it, re-established after any loss.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use shared_calls_cache::l2::{Invalidation, InvalidationListener};

/// The caches that listen to one tier.
#[derive(Default)]
pub(crate) struct Listeners(Mutex<Vec<InvalidationListener>>);

impl Listeners {
    pub(crate) fn add(&self, listener: InvalidationListener) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    fn deliver(&self, invalidation: Invalidation<'_>) {
        let listeners = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for listener in listeners {
            listener(invalidation);
        }
    }
}

/// Subscribes to `channel` on one of `clients` (any node of a cluster:
/// publications reach them all), and delivers what arrives. After a lost
/// subscription every listener drops everything: invalidations may have
/// been missed meanwhile.
pub(crate) async fn subscribe(
    clients: Vec<redis::Client>,
    channel: String,
    listeners: Arc<Listeners>,
    retry: Duration,
) {
    let mut lost = false;
    for client in clients.iter().cycle() {
        let connected = tokio::time::timeout(retry, async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await;
        let Ok(Ok(pubsub)) = connected else {
            tokio::time::sleep(retry).await;
            continue;
        };
        if lost {
            tracing::debug!("shared-calls redis: subscription back, dropping the first tier");
            listeners.deliver(Invalidation::All);
        }
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            listeners.deliver(Invalidation::Key(message.get_payload_bytes()));
        }
        lost = true;
        tracing::debug!("shared-calls redis: subscription lost");
    }
}
