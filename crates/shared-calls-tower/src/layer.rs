//! [`CachingLayer`]: the layer, its cache settings and its shared cache.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use shared_calls_cache::l2::{Codec, SharedTier};
use shared_calls_cache::{Cache, CacheBuilder};
use tower_layer::Layer;

use crate::Caching;
use crate::policy::Policy;

/// The cache a layer's services share.
pub type PolicyCache<P> = Cache<<P as Policy>::Key, <P as Policy>::Shared, <P as Policy>::Failure>;

/// Collapses concurrent requests with equal keys onto one inner call and
/// caches fresh answers, as decided by the policy `P`.
///
/// `key_fn` derives a key from each request, or `None` to bypass: the
/// request goes to the inner service untouched and nothing is shared or
/// stored. A key function may return any type that converts into the
/// policy's key.
///
/// Every service made by this layer, and by its clones, shares one cache and
/// one set of flights (axum layers each route separately). The cache is
/// built with this layer's settings when the first service is made, unless
/// one was handed in with [`cache`](Self::cache).
///
/// ```
/// # mod shared_calls { pub use shared_calls_tower as layer; }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use shared_calls::layer::{CloneResponses, CachingLayer};
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// type Users = CloneResponses<u64, String, std::io::Error>;
///
/// let layer = CachingLayer::<_, Users>::new(|id: &u64| Some(*id)).ttl(Duration::from_secs(5));
/// let users = ServiceBuilder::new()
///     .layer(layer.clone())
///     .service(service_fn(|id: u64| async move { Ok::<_, std::io::Error>(format!("user {id}")) }));
///
/// assert_eq!(users.clone().oneshot(7).await.unwrap(), "user 7");
/// assert_eq!(users.oneshot(7).await.unwrap(), "user 7"); // from the cache
/// assert_eq!(layer.cache_handle().stats().hits, 1);
/// # }
/// ```
pub struct CachingLayer<F, P: Policy> {
    key_fn: Arc<F>,
    policy: P,
    settings: CacheBuilder<P::Key, P::Shared>,
    cache: Arc<OnceLock<PolicyCache<P>>>,
}

impl<F, P: Policy> Clone for CachingLayer<F, P> {
    fn clone(&self) -> Self {
        Self {
            key_fn: self.key_fn.clone(),
            policy: self.policy.clone(),
            settings: self.settings.clone(),
            cache: self.cache.clone(),
        }
    }
}

impl<F, P: Policy + fmt::Debug> fmt::Debug for CachingLayer<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingLayer")
            .field("policy", &self.policy)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<F, P: Policy + Default> CachingLayer<F, P> {
    /// A layer with the policy's default settings and `key_fn`.
    pub fn new(key_fn: F) -> Self {
        Self::with_policy(key_fn, P::default())
    }
}

impl<F, P: Policy> CachingLayer<F, P> {
    /// A layer with the given policy.
    pub fn with_policy(key_fn: F, policy: P) -> Self {
        Self {
            key_fn: Arc::new(key_fn),
            settings: weighed_by(&policy, Cache::builder()),
            policy,
            cache: Arc::new(OnceLock::new()),
        }
    }

    /// Uses `cache` instead of building one: several layers, or a layer and
    /// the code that invalidates after writes, share it. The cache settings
    /// of this layer then no longer apply.
    #[must_use]
    pub fn cache(mut self, cache: PolicyCache<P>) -> Self {
        self.cache = Arc::new(OnceLock::from(cache));
        self
    }

    /// The cache this layer's services share (built now if it was not yet):
    /// for statistics and invalidation.
    pub fn cache_handle(&self) -> PolicyCache<P> {
        self.cache
            .get_or_init(|| self.settings.clone().build())
            .clone()
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Changes the policy's settings: `.map_policy(|http| http.max_body_size(1 << 20))`.
    #[must_use]
    pub fn map_policy(mut self, change: impl FnOnce(P) -> P) -> Self {
        self.policy = change(self.policy);
        self
    }

    fn configure(
        mut self,
        configure: impl FnOnce(CacheBuilder<P::Key, P::Shared>) -> CacheBuilder<P::Key, P::Shared>,
    ) -> Self {
        self.settings = configure(self.settings);
        self
    }

    /// How long a stored answer stays fresh when the policy does not say
    /// ([`CacheBuilder::ttl`]): the one default TTL, 60 s unless set. The
    /// HTTP policy uses it for answers that set no freshness of their own.
    #[must_use]
    pub fn ttl(self, ttl: Duration) -> Self {
        self.configure(|settings| settings.ttl(ttl))
    }

    /// How long a negative answer (an HTTP `404` or `410` that sets no
    /// freshness) stays fresh: 10 s, or the [`ttl`](Self::ttl) if shorter,
    /// unless set ([`CacheBuilder::negative_ttl`]).
    #[must_use]
    pub fn negative_ttl(self, ttl: Duration) -> Self {
        self.configure(|settings| settings.negative_ttl(ttl))
    }

    /// TTL spread ([`CacheBuilder::jitter`]).
    #[must_use]
    pub fn jitter(self, fraction: f64) -> Self {
        self.configure(|settings| settings.jitter(fraction))
    }

    /// At most this many stored answers ([`CacheBuilder::max_entries`]).
    #[must_use]
    pub fn max_entries(self, max: u64) -> Self {
        self.configure(|settings| settings.max_entries(max))
    }

    /// At most this many bytes of stored answers and their keys, as the
    /// policy weighs them ([`Policy::weigh`], [`Policy::weigh_key`]);
    /// [`DEFAULT_MAX_BYTES`](shared_calls_cache::DEFAULT_MAX_BYTES) by default
    /// ([`CacheBuilder::max_bytes`]). An answer heavier than a sixteenth of
    /// the bound is passed on but not kept ([the cache's memory
    /// bound](CacheBuilder#memory)).
    #[must_use]
    pub fn max_bytes(self, max: u64) -> Self {
        let policy = self.policy.clone();
        self.configure(|settings| weighed_by(&policy, settings.max_bytes(max)))
    }

    /// Stale-while-revalidate window ([`CacheBuilder::stale_while_revalidate`]).
    #[must_use]
    pub fn stale_while_revalidate(self, window: Duration) -> Self {
        self.configure(|settings| settings.stale_while_revalidate(window))
    }

    /// Stale-if-error window ([`CacheBuilder::stale_if_error`]).
    #[must_use]
    pub fn stale_if_error(self, window: Duration) -> Self {
        self.configure(|settings| settings.stale_if_error(window))
    }

    /// How long an unstorable key is passed without queueing
    /// ([`CacheBuilder::hit_for_miss`]).
    #[must_use]
    pub fn hit_for_miss(self, duration: Duration) -> Self {
        self.configure(|settings| settings.hit_for_miss(duration))
    }

    /// Bounded waiting for another caller's call ([`CacheBuilder::lock_timeout`]).
    #[must_use]
    pub fn lock_timeout(self, timeout: Duration) -> Self {
        self.configure(|settings| settings.lock_timeout(timeout))
    }

    /// Cap on callers waiting for one key ([`CacheBuilder::max_waiters`]).
    #[must_use]
    pub fn max_waiters(self, max: usize) -> Self {
        self.configure(|settings| settings.max_waiters(max))
    }

    /// Shares answers, fill locks and invalidations with a fleet through a
    /// second tier ([`CacheBuilder::second_tier`]).
    #[must_use]
    pub fn second_tier(self, tier: impl SharedTier, codec: impl Codec<P::Key, P::Shared>) -> Self {
        self.configure(|settings| settings.second_tier(tier, codec))
    }

    /// Whether a call whose every caller has gone still finishes and stores
    /// its answer ([`CacheBuilder::finish_abandoned`]; on by default).
    #[must_use]
    pub fn finish_abandoned(self, finish: bool) -> Self {
        self.configure(|settings| settings.finish_abandoned(finish))
    }
}

impl<S, F, P: Policy> Layer<S> for CachingLayer<F, P> {
    type Service = Caching<S, F, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Caching::new(
            inner,
            self.key_fn.clone(),
            self.policy.clone(),
            self.cache_handle(),
        )
    }
}

/// `settings` with the policy's weighers for the byte bound.
fn weighed_by<P: Policy>(
    policy: &P,
    settings: CacheBuilder<P::Key, P::Shared>,
) -> CacheBuilder<P::Key, P::Shared> {
    let (keys, values) = (policy.clone(), policy.clone());
    settings
        .weigh_keys(move |key| keys.weigh_key(key) as usize)
        .weigh_values(move |shared| values.weigh(shared) as usize)
}
