//! [`RedisTierBuilder`]: where Redis is and how the tier behaves.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;

use crate::RedisTier;
use crate::connection::Connection;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) lock_ttl: Duration,
    pub(crate) poll: Duration,
    pub(crate) max_value_size: usize,
    pub(crate) breaker_threshold: u32,
    pub(crate) breaker_cool_down: Duration,
    pub(crate) generation_ttl: Duration,
    pub(crate) reconnect: Duration,
}

impl Settings {
    pub(crate) fn channel(&self) -> String {
        format!("{}invalidations", self.prefix)
    }
}

/// Builds a [`RedisTier`].
///
/// ```no_run
/// # mod shared_calls { pub use shared_calls_redis as redis; }
/// # async fn run() -> Result<(), shared_calls::redis::ConnectError> {
/// use shared_calls::redis::RedisTier;
/// use std::time::Duration;
///
/// let tier = RedisTier::builder("redis://127.0.0.1:6379")
///     .prefix("my-app:")
///     .timeout(Duration::from_millis(10))
///     .lock_ttl(Duration::from_secs(2))
///     .build()
///     .await?;
/// # let _ = tier; Ok(()) }
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct RedisTierBuilder {
    nodes: Vec<String>,
    cluster: bool,
    settings: Settings,
}

/// Why a [`RedisTier`] could not be built: a malformed URL, or a cluster
/// whose nodes could not be reached to learn its slots.
#[derive(Debug)]
pub struct ConnectError(redis::RedisError);

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot set up the redis tier: {}", self.0)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl From<redis::RedisError> for ConnectError {
    fn from(error: redis::RedisError) -> Self {
        Self(error)
    }
}

impl RedisTierBuilder {
    pub(crate) fn new(nodes: Vec<String>, cluster: bool) -> Self {
        Self {
            nodes,
            cluster,
            settings: Settings {
                prefix: "shared-calls:".into(),
                timeout: Duration::from_millis(5),
                lock_ttl: Duration::from_secs(5),
                poll: Duration::from_millis(10),
                max_value_size: 1024 * 1024,
                breaker_threshold: 5,
                breaker_cool_down: Duration::from_secs(1),
                generation_ttl: Duration::from_secs(60 * 60),
                reconnect: Duration::from_millis(500),
            },
        }
    }

    /// Prefix of every Redis key and of the invalidation channel
    /// (`shared-calls:` by default): one per cache sharing a Redis.
    ///
    /// # Panics
    ///
    /// If it contains `{` or `}`: the keys' hash tags must stay the tier's.
    #[must_use = "a setter returns the changed builder"]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        assert!(
            crate::keys::valid_prefix(&prefix),
            "prefix: {prefix:?} contains a brace"
        );
        self.settings.prefix = prefix;
        self
    }

    /// The longest any one Redis operation may take (5 ms by default): a
    /// slower one counts as a failure and the request goes on without Redis.
    #[must_use = "a setter returns the changed builder"]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.settings.timeout = timeout;
        self
    }

    /// How long a fill lock lasts if its holder never releases it (5 s by
    /// default): a holder that crashed delays the others this long at most.
    /// Instances wait for a holder at most this long, or the cache's lock
    /// timeout if shorter.
    #[must_use = "a setter returns the changed builder"]
    pub fn lock_ttl(mut self, ttl: Duration) -> Self {
        self.settings.lock_ttl = ttl;
        self
    }

    /// The longest pause between two looks at a held lock (10 ms by
    /// default); the first looks come sooner (1 ms, doubling).
    #[must_use = "a setter returns the changed builder"]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.settings.poll = interval.max(Duration::from_millis(1));
        self
    }

    /// Encoded entries larger than this are not written (1 MiB by default).
    #[must_use = "a setter returns the changed builder"]
    pub fn max_value_size(mut self, bytes: usize) -> Self {
        self.settings.max_value_size = bytes;
        self
    }

    /// The circuit opens after `failures` consecutive failed or timed-out
    /// operations, refuses every operation for `cool_down`, then lets one
    /// probe through (5 failures, 1 s by default).
    #[must_use = "a setter returns the changed builder"]
    pub fn breaker(mut self, failures: u32, cool_down: Duration) -> Self {
        self.settings.breaker_threshold = failures;
        self.settings.breaker_cool_down = cool_down;
        self
    }

    /// How long Redis remembers that a key was invalidated, so that a load
    /// begun before cannot store after (1 h by default): longer than any
    /// load takes.
    #[must_use = "a setter returns the changed builder"]
    pub fn generation_ttl(mut self, ttl: Duration) -> Self {
        self.settings.generation_ttl = ttl;
        self
    }

    /// Connects (lazily for a single server: Redis may come up later) and
    /// subscribes to the fleet's invalidations. Needs a tokio runtime.
    pub async fn build(self) -> Result<RedisTier, ConnectError> {
        let settings = self.settings;
        let clients = self
            .nodes
            .iter()
            .map(|node| redis::Client::open(node.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let connect_timeout = settings.reconnect.min(Duration::from_millis(250));
        let connection = if self.cluster {
            // Every operation has the tier's own timeout: no second timer.
            let client = ClusterClientBuilder::new(self.nodes.iter().map(String::as_str))
                .connection_timeout(connect_timeout)
                .build()?;
            Connection::Cluster(client.get_async_connection().await?)
        } else {
            let client = clients
                .first()
                .cloned()
                .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "no url")))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(None)
                .set_number_of_retries(2)
                .set_max_delay(settings.reconnect);
            Connection::Single(ConnectionManager::new_lazy_with_config(client, config)?)
        };
        Ok(RedisTier::from_parts(connection, settings, clients))
    }
}
