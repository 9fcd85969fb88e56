//! [`RedisTier`]: the second tier on Redis or Valkey, single server or
//! cluster.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::RedisResult;
use shared_calls_cache::l2::{
    FillTicket, InvalidationListener, SharedTier, TierError, TierFuture, TierHealth,
};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::breaker::{Breaker, Permit};
use crate::builder::Settings;
use crate::connection::Connection;
use crate::keys::Keys;
use crate::listener::Listeners;
use crate::scripts;

/// The second tier of a fleet's caches on Redis (or Valkey): entries, fill
/// locks and invalidations shared by every instance.
///
/// Hand it to a cache with
/// [`CacheBuilder::second_tier`](shared_calls_cache::CacheBuilder::second_tier),
/// or to a layer with `SharedCallsLayer::second_tier`. Cloning is cheap: the
/// clones share connections, counters and the breaker.
///
/// # Fail-open
///
/// Every operation is bounded by [the timeout](crate::RedisTierBuilder::timeout)
/// (5 ms by default) and fails rather than waits; after
/// [some consecutive failures](crate::RedisTierBuilder::breaker) the circuit
/// opens and operations are refused at once, until one probe after the
/// cool-down succeeds. The cache then serves from memory with local flights
/// only. Connections come back by themselves when Redis does.
#[derive(Clone)]
pub struct RedisTier {
    inner: Arc<Inner>,
}

struct Inner {
    connection: Connection,
    settings: Settings,
    breaker: Breaker,
    counters: Counters,
    listeners: Arc<Listeners>,
    subscription: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.subscription.abort();
    }
}

#[derive(Default)]
struct Counters {
    errors: AtomicU64,
    timeouts: AtomicU64,
    rejected: AtomicU64,
    oversized: AtomicU64,
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTier")
            .field("prefix", &self.inner.settings.prefix)
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// A builder for the server at `url` (`redis://127.0.0.1:6379`, say).
    pub fn builder(url: impl Into<String>) -> crate::RedisTierBuilder {
        crate::RedisTierBuilder::new(vec![url.into()], false)
    }

    /// A builder for the cluster that these nodes belong to.
    pub fn cluster_builder<I, S>(nodes: I) -> crate::RedisTierBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        crate::RedisTierBuilder::new(nodes.into_iter().map(Into::into).collect(), true)
    }

    pub(crate) fn from_parts(
        connection: Connection,
        settings: Settings,
        subscribers: Vec<redis::Client>,
    ) -> Self {
        let listeners = Arc::new(Listeners::default());
        let subscription = tokio::spawn(crate::listener::subscribe(
            subscribers,
            settings.channel(),
            listeners.clone(),
            settings.reconnect,
        ))
        .abort_handle();
        Self {
            inner: Arc::new(Inner {
                connection,
                breaker: Breaker::new(settings.breaker_threshold, settings.breaker_cool_down),
                settings,
                counters: Counters::default(),
                listeners,
                subscription,
            }),
        }
    }

    /// Runs one Redis operation under the breaker and the timeout.
    async fn run<T>(
        &self,
        operation: &'static str,
        request: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, TierError> {
        let inner = &self.inner;
        let Some(permit) = inner.breaker.permit() else {
            inner.counters.rejected.fetch_add(1, Ordering::Relaxed);
            crate::metrics::rejected();
            return Err(TierError::Unavailable);
        };
        let span = tracing::debug_span!("shared_calls_redis", operation);
        let result = tokio::time::timeout(inner.settings.timeout, request)
            .instrument(span)
            .await;
        let error = match result {
            Ok(Ok(value)) => {
                self.settle(permit, true);
                return Ok(value);
            }
            Ok(Err(error)) => {
                tracing::debug!(operation, %error, "shared-calls redis operation failed");
                inner.counters.errors.fetch_add(1, Ordering::Relaxed);
                crate::metrics::error(operation);
                TierError::Failed
            }
            Err(_) => {
                tracing::debug!(operation, "shared-calls redis operation timed out");
                inner.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                crate::metrics::timeout(operation);
                TierError::TimedOut
            }
        };
        self.settle(permit, false);
        Err(error)
    }

    fn settle(&self, permit: Permit, succeeded: bool) {
        let breaker = &self.inner.breaker;
        let was_open = breaker.is_open();
        if succeeded {
            breaker.succeeded(permit);
        } else {
            breaker.failed(permit);
        }
        if was_open != breaker.is_open() {
            tracing::info!(open = !was_open, "shared-calls redis circuit breaker");
            crate::metrics::breaker(!was_open);
        }
    }

    fn keys<'a>(&self, key: &'a [u8]) -> Keys<'a> {
        Keys::new(&self.inner.settings.prefix, key)
    }

    fn connection(&self) -> Connection {
        self.inner.connection.clone()
    }

    /// Polls the entry and the lock until one of them says the wait is over.
    async fn wait_for_fill(
        &self,
        key: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Option<Vec<u8>>, TierError> {
        let settings = &self.inner.settings;
        let bound = timeout.map_or(settings.lock_ttl, |timeout| timeout.min(settings.lock_ttl));
        let deadline = Instant::now() + bound;
        let keys = self.keys(key);
        let mut interval = settings.poll.min(Duration::from_millis(1));
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(interval.min(deadline - now)).await;
            interval = (interval * 2).min(settings.poll);
            let mut connection = self.connection();
            let (entry, locked): (Option<Vec<u8>>, bool) = self
                .run(
                    "wait",
                    scripts::PEEK
                        .key(keys.entry())
                        .key(keys.lock())
                        .invoke_async(&mut connection),
                )
                .await?;
            if entry.is_some() || !locked {
                return Ok(entry);
            }
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl SharedTier for RedisTier {
    fn get<'a>(&'a self, key: &'a [u8]) -> TierFuture<'a, Result<Option<Vec<u8>>, TierError>> {
        Box::pin(async move {
            let keys = self.keys(key);
            let mut connection = self.connection();
            self.run(
                "get",
                redis::cmd("GET")
                    .arg(keys.entry())
                    .query_async(&mut connection),
            )
            .await
        })
    }

    fn lock<'a>(
        &'a self,
        key: &'a [u8],
    ) -> TierFuture<'a, Result<(FillTicket, Option<Vec<u8>>), TierError>> {
        Box::pin(async move {
            let keys = self.keys(key);
            let token: u128 = rand::random();
            let mut connection = self.connection();
            let (taken, generation, entry): (i64, String, Option<Vec<u8>>) = self
                .run(
                    "lock",
                    scripts::LOCK
                        .key(keys.lock())
                        .key(keys.generation())
                        .key(keys.entry())
                        .arg(format!("{token:032x}"))
                        .arg(millis(self.inner.settings.lock_ttl))
                        .invoke_async(&mut connection),
                )
                .await?;
            let generation = generation.parse().unwrap_or(u64::MAX);
            let ticket = match taken {
                1 => FillTicket::held(token, generation),
                _ => FillTicket::busy(generation),
            };
            Ok((ticket, entry))
        })
    }

    fn wait<'a>(
        &'a self,
        key: &'a [u8],
        timeout: Option<Duration>,
    ) -> TierFuture<'a, Result<Option<Vec<u8>>, TierError>> {
        Box::pin(self.wait_for_fill(key, timeout))
    }

    fn fill<'a>(
        &'a self,
        key: &'a [u8],
        value: Option<(Vec<u8>, Duration)>,
        ticket: FillTicket,
    ) -> TierFuture<'a, Result<bool, TierError>> {
        Box::pin(async move {
            let max = self.inner.settings.max_value_size;
            let value = value.filter(|(bytes, _)| {
                let fits = bytes.len() <= max;
                if !fits {
                    self.inner
                        .counters
                        .oversized
                        .fetch_add(1, Ordering::Relaxed);
                }
                fits
            });
            if value.is_none() && !ticket.is_held() {
                return Ok(false);
            }
            let (bytes, keep) = value.unwrap_or_default();
            let token = ticket
                .token()
                .map(|token| format!("{token:032x}"))
                .unwrap_or_default();
            let keys = self.keys(key);
            let mut connection = self.connection();
            let stored: i64 = self
                .run(
                    "fill",
                    scripts::FILL
                        .key(keys.entry())
                        .key(keys.lock())
                        .key(keys.generation())
                        .arg(bytes)
                        .arg(millis(keep))
                        .arg(token)
                        .arg(ticket.generation().to_string())
                        .invoke_async(&mut connection),
                )
                .await?;
            Ok(stored == 1)
        })
    }

    fn invalidate<'a>(&'a self, key: &'a [u8]) -> TierFuture<'a, Result<(), TierError>> {
        Box::pin(async move {
            let keys = self.keys(key);
            let mut connection = self.connection();
            let _: i64 = self
                .run(
                    "invalidate",
                    scripts::INVALIDATE
                        .key(keys.entry())
                        .key(keys.generation())
                        .arg(millis(self.inner.settings.generation_ttl))
                        .invoke_async(&mut connection),
                )
                .await?;
            let _: i64 = self
                .run(
                    "publish",
                    redis::cmd("PUBLISH")
                        .arg(self.inner.settings.channel())
                        .arg(key)
                        .query_async(&mut connection),
                )
                .await?;
            Ok(())
        })
    }

    fn listen(&self, listener: InvalidationListener) {
        self.inner.listeners.add(listener);
    }

    fn health(&self) -> TierHealth {
        let counters = &self.inner.counters;
        let mut health = TierHealth::default();
        health.errors = counters.errors.load(Ordering::Relaxed);
        health.timeouts = counters.timeouts.load(Ordering::Relaxed);
        health.rejected = counters.rejected.load(Ordering::Relaxed);
        health.oversized = counters.oversized.load(Ordering::Relaxed);
        health.breaker_trips = self.inner.breaker.trips.load(Ordering::Relaxed);
        health.breaker_open = self.inner.breaker.is_open();
        health
    }
}
