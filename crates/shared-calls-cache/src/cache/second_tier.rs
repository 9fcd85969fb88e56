//! A flight's path through the second tier, and the fleet's invalidations
//! (see [`crate::l2`]). Every tier error leads back to the single-instance
//! path: load, store in the first tier.

use std::sync::Arc;

use crate::l2::{FillTicket, Invalidation, SecondTier, SharedTier, add, decode, encode};

use super::*;

impl<K, V, E> Cache<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    /// The work of a flight's leader whose first tier has nothing fresh.
    pub(super) async fn through_second_tier<F, Fut>(
        self,
        second: SecondTier<K, V>,
        key: K,
        hash: u64,
        revalidates: bool,
        load: F,
    ) -> Flown<V, E>
    where
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        let fill = Fill {
            key_bytes: second.key_bytes(&key),
            hash,
            generation: self.inner.generations.snapshot(hash),
            key,
            revalidates,
            second,
        };
        let seen = match fill.second.tier.get(&fill.key_bytes).await {
            Ok(seen) => seen,
            Err(_) => return self.without_second_tier(fill, load).await,
        };
        if let Some(entry) = seen.as_deref().and_then(|bytes| fill.decode(bytes)) {
            let now = Instant::now();
            match (entry.phase(now), &entry.content) {
                (Phase::Fresh, Content::HitForMiss) => {
                    return self.pass_marked(fill, entry, load).await;
                }
                (Phase::Fresh, _) => return Ok(self.hit_from_second_tier(&fill, entry)),
                (Phase::Stale, Content::Value(_)) => {
                    return Ok(self.stale_from_second_tier(fill, entry, load).await);
                }
                // Kept for a load that fails: stale-if-error answers from the first tier.
                (_, Content::Value(_)) if entry.may_answer_error(now) => {
                    self.store(fill.key.clone(), fill.hash, fill.generation, &entry);
                }
                _ => {}
            }
        }
        add(&fill.second.counters.misses);
        self.fill_or_wait(fill, seen, load).await
    }

    /// A miss in both tiers: take the fleet's lock and load, or wait for the
    /// instance that holds it. `seen` is what the read found (nothing usable).
    async fn fill_or_wait<F, Fut>(
        &self,
        fill: Fill<K, V>,
        seen: Option<Vec<u8>>,
        load: F,
    ) -> Flown<V, E>
    where
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        let counters = fill.second.counters.clone();
        let (ticket, now_stored) = match fill.second.tier.lock(&fill.key_bytes).await {
            Ok(locked) => locked,
            Err(_) => return self.without_second_tier(fill, load).await,
        };
        // Another instance filled the key between the read and the lock.
        let filled = now_stored.filter(|bytes| Some(bytes) != seen.as_ref());
        if let Some(entry) = filled.and_then(|bytes| fresh_value(fill.decode(&bytes)?)) {
            if ticket.is_held() {
                let _released = fill.second.tier.fill(&fill.key_bytes, None, ticket).await;
            }
            return Ok(self.hit_from_second_tier(&fill, entry));
        }
        if ticket.is_held() {
            add(&counters.locks_taken);
            return self.load_and_fill(fill, ticket, load).await;
        }
        add(&counters.lock_waits);
        let waited = fill
            .second
            .tier
            .wait(&fill.key_bytes, Some(self.inner.config.lock_timeout))
            .await;
        if let Ok(Some(bytes)) = waited
            && let Some(entry) = fill.decode(&bytes).and_then(fresh_value)
        {
            return Ok(self.hit_from_second_tier(&fill, entry));
        }
        // Nothing came: behave as a single instance, and let the fleet have
        // the result unless an invalidation came since the lock was tried.
        add(&counters.lock_wait_misses);
        self.load_and_fill(fill, ticket, load).await
    }

    fn hit_from_second_tier(&self, fill: &Fill<K, V>, entry: Entry<V>) -> Loaded<V> {
        add(&fill.second.counters.hits);
        self.store(fill.key.clone(), fill.hash, fill.generation, &entry);
        Loaded {
            entry,
            outcome: Outcome::Hit,
            stored: false,
            from_second_tier: true,
        }
    }

    /// A stale entry inside its stale-while-revalidate window answers at
    /// once; the instance that takes the lock refreshes it for the fleet.
    async fn stale_from_second_tier<F, Fut>(
        &self,
        fill: Fill<K, V>,
        entry: Entry<V>,
        load: F,
    ) -> Loaded<V>
    where
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        add(&fill.second.counters.stale);
        if let Ok((ticket, _)) = fill.second.tier.lock(&fill.key_bytes).await
            && ticket.is_held()
        {
            add(&fill.second.counters.locks_taken);
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    self.inner.counters.refreshes.add();
                    let cache = self.clone();
                    runtime.spawn(async move { cache.load_and_fill(fill, ticket, load).await });
                }
                Err(_) => {
                    let _released = fill.second.tier.fill(&fill.key_bytes, None, ticket).await;
                }
            }
        }
        Loaded {
            entry,
            outcome: Outcome::Stale,
            stored: false,
            from_second_tier: true,
        }
    }

    /// The key is hit-for-miss across the fleet: remember it here and load
    /// without the fleet's lock.
    async fn pass_marked<F, Fut>(&self, fill: Fill<K, V>, marker: Entry<V>, load: F) -> Flown<V, E>
    where
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        self.store(fill.key.clone(), fill.hash, fill.generation, &marker);
        let kept = self.kept_for(&fill.key, fill.revalidates);
        let fetched = self
            .catch_panic(async move { load(Outcome::Pass, kept).await })
            .await?;
        let loaded = self.settle(fill.key, fill.hash, fill.generation, fetched, true)?;
        let outcome = match loaded.outcome {
            Outcome::Miss => Outcome::Pass,
            outcome => outcome,
        };
        Ok(Loaded { outcome, ..loaded })
    }

    /// The tier failed: the single-instance path.
    async fn without_second_tier<F, Fut>(&self, fill: Fill<K, V>, load: F) -> Flown<V, E>
    where
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        add(&fill.second.counters.fallbacks);
        let kept = self.kept_for(&fill.key, fill.revalidates);
        let fetched = self
            .catch_panic(async move { load(Outcome::Miss, kept).await })
            .await?;
        self.settle(fill.key, fill.hash, fill.generation, fetched, true)
    }

    /// Loads, writes the second tier (releasing the lock if `ticket` holds
    /// it), then the first. A load that fails, panics or is dropped releases
    /// the lock too.
    async fn load_and_fill<F, Fut>(
        &self,
        fill: Fill<K, V>,
        ticket: FillTicket,
        load: F,
    ) -> Flown<V, E>
    where
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        let mut release = Release::new(&fill, ticket);
        let kept = self.kept_for(&fill.key, fill.revalidates);
        let fetched = self
            .catch_panic(async move { load(Outcome::Miss, kept).await })
            .await?;
        let store = matches!(&fetched, Ok(fetch) if fetch.is_stored());
        let mark = matches!(&fetched, Ok(fetch) if !fetch.is_stored())
            && !self.inner.config.hit_for_miss.is_zero();
        let loaded = self.settle(fill.key.clone(), fill.hash, fill.generation, fetched, false)?;
        if loaded.outcome != Outcome::Miss {
            return Ok(loaded);
        }
        let marker =
            mark.then(|| Entry::hit_for_miss(self.inner.config.hit_for_miss, Instant::now()));
        let shared = if store {
            Some(&loaded.entry)
        } else {
            marker.as_ref()
        };
        let current = self
            .inner
            .generations
            .is_current(fill.hash, fill.generation);
        let value = shared
            .filter(|_| current)
            .and_then(|entry| encode(&*fill.second.codec, &fill.key_bytes, entry));
        if (value.is_some() || ticket.is_held())
            && let Ok(true) = fill.second.tier.fill(&fill.key_bytes, value, ticket).await
        {
            add(&fill.second.counters.writes);
        }
        release.disarm();
        let stored = match marker {
            _ if store => self.store(fill.key, fill.hash, fill.generation, &loaded.entry),
            Some(marker) => {
                self.store(fill.key, fill.hash, fill.generation, &marker);
                false
            }
            None => false,
        };
        Ok(Loaded { stored, ..loaded })
    }

    /// Has the second tier, if any, deliver the fleet's invalidations here.
    pub(super) fn listen_to_the_fleet(&self) {
        let Some(second) = &self.inner.second_tier else {
            return;
        };
        let (cache, codec) = (Arc::downgrade(&self.inner), second.codec.clone());
        second.tier.listen(Arc::new(move |invalidation| {
            let Some(inner) = cache.upgrade() else {
                return;
            };
            let cache = Cache { inner };
            match invalidation {
                Invalidation::Key(bytes) => {
                    if let Some(key) = codec.decode_key(bytes) {
                        cache.invalidate_here(&key);
                    }
                }
                _ => {
                    cache.inner.generations.bump_all();
                    cache.inner.tier.invalidate_all();
                    cache.inner.flights.forget_if(|_| true);
                }
            }
        }));
    }

    /// Removes `key` from the second tier and has the fleet drop it, in the
    /// background; then drops it here once more, in case a flight read the
    /// tier's old entry in between.
    pub(super) fn invalidate_in_fleet(&self, key: K) {
        let Some(second) = &self.inner.second_tier else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (cache, tier, key_bytes) = (self.clone(), second.tier.clone(), second.key_bytes(&key));
        runtime.spawn(async move {
            if tier.invalidate(&key_bytes).await.is_ok() {
                cache.invalidate_here(&key);
            }
        });
    }
}

/// The entry if it answers now: fresh, and not a hit-for-miss marker.
fn fresh_value<V>(entry: Entry<V>) -> Option<Entry<V>> {
    let fresh = entry.phase(Instant::now()) == Phase::Fresh;
    (fresh && !matches!(entry.content, Content::HitForMiss)).then_some(entry)
}

/// What a flight through the second tier carries along.
struct Fill<K, V> {
    key: K,
    /// Whether the load is handed the kept value it refreshes.
    revalidates: bool,
    key_bytes: Vec<u8>,
    hash: u64,
    generation: Generation,
    second: SecondTier<K, V>,
}

impl<K: 'static, V: 'static> Fill<K, V> {
    /// The entry in `bytes`, or `None` (counted) when they do not decode.
    fn decode(&self, bytes: &[u8]) -> Option<Entry<V>> {
        let entry = decode(&*self.second.codec, &self.key_bytes, bytes);
        if entry.is_none() {
            add(&self.second.counters.corrupt);
        }
        entry
    }
}

/// Releases a held fill lock when dropped armed: the load failed, panicked,
/// or its flight was cancelled.
struct Release {
    armed: Option<(Arc<dyn SharedTier>, Vec<u8>, FillTicket)>,
}

impl Release {
    fn new<K, V>(fill: &Fill<K, V>, ticket: FillTicket) -> Self {
        let armed = ticket
            .is_held()
            .then(|| (fill.second.tier.clone(), fill.key_bytes.clone(), ticket));
        Self { armed }
    }

    fn disarm(&mut self) {
        self.armed = None;
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some((tier, key, ticket)) = self.armed.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { tier.fill(&key, None, ticket).await });
        }
    }
}
