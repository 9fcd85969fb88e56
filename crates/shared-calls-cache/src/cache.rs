//! The read-through cache.

use std::borrow::Borrow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use shared_calls_flight::{Call, FlightError, Group, Source};
use tokio::time::Instant;

use crate::builder::{CacheBuilder, Config};
use crate::fetch::{Content, Entry, Fetch, LONGEST_WINDOW, Phase};
use crate::generations::{Generation, Generations, Predicate, Sweeps};
use crate::l2::SecondTier;
use crate::stats::{Counters, Stats};
use crate::tier::{Capacity, KeyHasher, MemoryTier, Tier};
use crate::{Accepts, LoadError, Lookup, Outcome};

mod second_tier;
mod seen;

use seen::{Seen, Stores};

/// What a flight hands its waiters: the entry it loaded (or found), or why not.
type Flown<V, E> = Result<Loaded<V>, LoadError<E>>;

#[derive(Debug, Clone)]
struct Loaded<V> {
    entry: Entry<V>,
    /// The outcome for the caller whose work ran.
    outcome: Outcome,
    stored: bool,
    from_second_tier: bool,
}

/// A read-through cache: fresh hits answer from memory; misses load through
/// one flight per key, and only that flight's result is stored.
///
/// `K` is the key, `V` the value (cloned to each caller, so make it cheap to
/// clone: `Arc`, `Bytes`), `E` the loaders' error, shared with the waiters of
/// the failed load and never stored. Cloning a `Cache` is cheap; every clone
/// shares one store and one set of flights.
///
/// ```
/// # mod shared_calls { pub use shared_calls_cache as cache; }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use shared_calls::cache::{Cache, Fetch, Outcome};
///
/// let cache: Cache<u64, String, std::io::ErrorKind> = Cache::builder().build();
/// let query = |id: u64| async move { Ok(Fetch::value(format!("user {id}"))) };
///
/// let first = cache.get_or_load(&7, move || query(7)).await.unwrap();
/// assert_eq!((first.value().as_str(), first.outcome()), ("user 7", Outcome::Miss));
///
/// let again = cache.get_or_load(&7, move || query(7)).await.unwrap();
/// assert_eq!(again.outcome(), Outcome::Hit);
///
/// cache.invalidate(&7); // after a write to user 7
/// assert_eq!(cache.get_or_load(&7, move || query(7)).await.unwrap().outcome(), Outcome::Miss);
/// # }
/// ```
///
/// # Concurrent calls on the same key
///
/// Callers that miss the same key while its load runs wait for that load
/// ([`Outcome::Collapsed`]); the backend sees one load per key at a time. The
/// load looks in the store once more before it starts, so a load that begins
/// right after another one stored does not run again. Only the flight's own
/// load stores: a follower never writes its copy, and a caller that gave up
/// waiting after the [lock timeout](CacheBuilder::lock_timeout) loads alone and
/// stores nothing.
///
/// # Expiry
///
/// An expired entry inside its stale-while-revalidate window answers at once
/// ([`Outcome::Stale`]) and starts at most one background refresh (a tokio
/// task, through the key's flight). A failed load answers an expired entry
/// inside its stale-if-error window ([`Outcome::StaleIfError`]).
///
/// # Invalidation
///
/// [`invalidate`](Self::invalidate) removes the entry and forgets the key's
/// flight, so the next caller loads anew. A load that was in flight when the
/// key was invalidated never stores its result: it may have read the value
/// from before the write that caused the invalidation.
///
/// # Cancellation
///
/// Dropping a caller never cancels a load other callers wait for. When every
/// caller of a load has gone, the load finishes on a detached task and fills
/// the cache ([`finish_abandoned`](CacheBuilder::finish_abandoned)
/// turns that off), so a burst of disconnecting clients does not waste the
/// backend's work.
///
/// # Panics
///
/// A loader that panics gives every waiter [`LoadError::Panicked`]; nothing
/// is stored and the key loads anew on the next call.
///
/// # Errors that are not `Clone`
///
/// A failed load's error reaches every caller that waited for it, so `E`
/// is cloned once per waiter. A driver's error is rarely `Clone`: make the
/// cache's error an `Arc` of it, and every waiter shares the one error.
///
/// ```
/// # mod shared_calls { pub use shared_calls_cache as cache; }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use shared_calls::cache::{Cache, Fetch, LoadError};
/// use std::sync::Arc;
///
/// #[derive(Debug)] // not `Clone`, like most drivers' errors
/// struct DriverError(std::io::Error);
///
/// struct Users {
///     cache: Cache<u64, String, Arc<DriverError>>,
///     pool: Arc<str>, // a connection pool, cheap to clone
/// }
///
/// impl Users {
///     async fn name(&self, id: u64) -> Result<String, LoadError<Arc<DriverError>>> {
///         // The loader may outlive this call: it takes clones, not `&self`.
///         let pool = self.pool.clone();
///         let load = move || async move {
///             let row: Result<String, DriverError> =
///                 Err(DriverError(std::io::Error::other(format!("{pool}: down"))));
///             row.map(Fetch::value).map_err(Arc::new)
///         };
///         Ok(self.cache.get_or_load(&id, load).await?.into_value())
///     }
/// }
///
/// let users = Users { cache: Cache::builder().build(), pool: "db".into() };
/// match users.name(7).await {
///     Err(LoadError::Load(error)) => assert_eq!(error.0.to_string(), "db: down"),
///     other => panic!("{other:?}"),
/// }
/// # }
/// ```
///
/// # Why the loader is `'static`
///
/// A load belongs to no single caller: when the caller that started it is
/// cancelled (a client disconnects, a timeout fires), the load goes on for
/// the callers waiting for it, and by default to fill the cache when none
/// is left ([Cancellation](#cancellation)). So it cannot borrow from its
/// caller: move clones of what it needs (an `Arc`, a pool handle) into it.
pub struct Cache<K, V, E = Infallible> {
    inner: Arc<Inner<K, V, E>>,
}

struct Inner<K, V, E> {
    tier: MemoryTier<K, V>,
    flights: Group<K, Flown<V, E>>,
    generations: Generations,
    stores: Stores,
    sweeps: Sweeps<K>,
    hasher: KeyHasher,
    counters: Arc<Counters>,
    config: Config,
    second_tier: Option<SecondTier<K, V>>,
}

impl<K, V, E> Clone for Cache<K, V, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V, E> fmt::Debug for Cache<K, V, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl<K, V> Cache<K, V> {
    /// A builder with the [default settings](CacheBuilder#defaults): 256 MiB,
    /// 60 s TTL with 5 % jitter, no stale windows, a 5 s lock timeout.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::default()
    }
}

impl<K, V, E> Cache<K, V, E>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Clone + Send + Sync + 'static,
{
    pub(crate) fn from_parts(
        config: Config,
        capacity: Capacity<K, V>,
        second_tier: Option<SecondTier<K, V>>,
    ) -> Self {
        let counters = Arc::new(Counters::default());
        let mut flights = Group::builder()
            .finish_abandoned(config.finish_abandoned)
            .max_waiters(config.max_waiters);
        // The longest window means no timeout: no timer per waiter.
        if config.lock_timeout < LONGEST_WINDOW {
            flights = flights.wait_timeout(config.lock_timeout);
        }
        let cache = Self {
            inner: Arc::new(Inner {
                tier: MemoryTier::new(capacity, counters.clone()),
                flights: flights.build(),
                generations: Generations::new(),
                stores: Stores::new(),
                sweeps: Sweeps::new(),
                hasher: KeyHasher::default(),
                counters,
                config,
                second_tier,
            }),
        };
        cache.listen_to_the_fleet();
        cache
    }

    /// The value of `key`: from the store when fresh, otherwise from `load`,
    /// run at most once per key at a time however many callers miss together.
    ///
    /// `load` is called only on a miss, a pass, or to refresh a stale entry in
    /// the background.
    pub async fn get_or_load<Q, F, Fut>(&self, key: &Q, load: F) -> Result<Lookup<V>, LoadError<E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        self.get_or_load_with_outcome(key, move |_| load()).await.0
    }

    /// [`get_or_load`](Self::get_or_load), with the lookup's outcome beside
    /// its result: an error or "not found" tells how it was reached too
    /// ([`Outcome::Miss`] for the caller whose load failed,
    /// [`Outcome::Collapsed`] for its waiters, [`Outcome::Pass`],
    /// [`Outcome::LockTimeout`]). `load` is told the outcome its result will
    /// have for the caller whose load it is (`Miss`, `Pass` or
    /// `LockTimeout`), so that it can say so before it ends.
    pub async fn get_or_load_with_outcome<Q, F, Fut>(
        &self,
        key: &Q,
        load: F,
    ) -> (Result<Lookup<V>, LoadError<E>>, Outcome)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(Outcome) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        self.get_or_load_accepting(key, None, load).await
    }

    /// [`get_or_load_with_outcome`](Self::get_or_load_with_outcome) for a
    /// caller with its own idea of which stored values it takes: with
    /// `accepts`, a stored value it takes answers whatever its phase (a
    /// stale one as [`Outcome::Stale`], starting a background refresh), and
    /// one it does not take is loaded anew through the key's flight, which
    /// replaces it. The flight's last look in the store takes only a fresh
    /// value that `accepts` takes too.
    pub async fn get_or_load_accepting<Q, F, Fut>(
        &self,
        key: &Q,
        accepts: Option<Accepts<V>>,
        load: F,
    ) -> (Result<Lookup<V>, LoadError<E>>, Outcome)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(Outcome) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        self.lookup(key, accepts, false, move |outcome, _| load(outcome))
            .await
    }

    /// The store's answer for `key`, or `load`'s through the key's flight;
    /// a load that `revalidates` is handed the kept value it refreshes.
    async fn lookup<Q, F, Fut>(
        &self,
        key: &Q,
        accepts: Option<Accepts<V>>,
        revalidates: bool,
        load: F,
    ) -> (Result<Lookup<V>, LoadError<E>>, Outcome)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        let now = Instant::now();
        // A load that refreshes what is stored is handed what this read
        // found, unless the store changed since.
        let mut seen = revalidates.then(|| {
            let hash = self.inner.hasher.hash_one(key);
            Seen::stamp(hash, &self.inner.stores, &self.inner.generations)
        });
        let found = self.inner.tier.get(key);
        if let Some(seen) = &mut seen {
            seen.entry = found.clone();
        }
        let (result, outcome) = match found {
            Some(entry) => match (entry.phase(now), &entry.content, &accepts) {
                (Phase::Fresh, Content::HitForMiss, _) => {
                    self.pass(key.to_owned(), revalidates, load).await
                }
                (phase, Content::Value(value), Some(accepts)) => {
                    match accepts(value, &entry.timing(now)) {
                        true if phase == Phase::Fresh => {
                            (answer(entry, Outcome::Hit, false, now), Outcome::Hit)
                        }
                        true => {
                            self.refresh_in_background(key, seen, load);
                            (answer(entry, Outcome::Stale, false, now), Outcome::Stale)
                        }
                        false => {
                            let accepts = Some(accepts.clone());
                            self.load_in_flight(key, accepts, seen, load).await
                        }
                    }
                }
                (Phase::Fresh, _, _) => (answer(entry, Outcome::Hit, false, now), Outcome::Hit),
                (Phase::Stale, Content::Value(_), _) => {
                    self.refresh_in_background(key, seen, load);
                    (answer(entry, Outcome::Stale, false, now), Outcome::Stale)
                }
                _ => self.load_in_flight(key, accepts, seen, load).await,
            },
            None => self.load_in_flight(key, accepts, seen, load).await,
        };
        // Errors and "not found" count under the outcome of the lookup that
        // produced them, like values.
        self.inner.counters.record(outcome);
        tracing::debug!(outcome = outcome.as_str(), "shared-calls cache lookup");
        (result, outcome)
    }

    /// [`get_or_load_accepting`](Self::get_or_load_accepting), with
    /// `load` also handed the value it refreshes: the stored value of `key`
    /// when it has expired but is still kept (inside its stale windows, or
    /// the window of [`Fetch::keep_for_revalidation`]), `None` otherwise. A
    /// loader that can ask its source whether that value still holds (an
    /// HTTP conditional request) then reuses it instead of loading it whole.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use shared_calls_cache::{Cache, Fetch};
    /// use std::time::Duration;
    ///
    /// let cache: Cache<u64, u32> = Cache::builder().jitter(0.0).build();
    /// let keep = |v| {
    ///     let kept_after_expiry = Duration::from_secs(60);
    ///     Fetch::value(v).ttl(Duration::from_secs(1)).keep_for_revalidation(kept_after_expiry)
    /// };
    /// let (first, _) = cache.get_or_revalidate(&7, None, move |_, kept| async move {
    ///     assert_eq!(kept, None);
    ///     Ok(keep(1))
    /// }).await;
    /// assert_eq!(*first.unwrap().value(), 1);
    /// tokio::time::advance(Duration::from_secs(2)).await;
    /// let (found, _) = cache.get_or_revalidate(&7, None, move |_, kept| async move {
    ///     assert_eq!(kept, Some(1)); // the source says it still holds: keep it
    ///     Ok(keep(kept.unwrap()))
    /// }).await;
    /// assert_eq!(*found.unwrap().value(), 1);
    /// # }
    /// ```
    pub async fn get_or_revalidate<Q, F, Fut>(
        &self,
        key: &Q,
        accepts: Option<Accepts<V>>,
        load: F,
    ) -> (Result<Lookup<V>, LoadError<E>>, Outcome)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        self.lookup(key, accepts, true, load).await
    }

    /// The value of `key` if a fresh entry holds one; never loads. Counts as a
    /// hit when it answers, and as nothing otherwise.
    pub fn get<Q>(&self, key: &Q) -> Option<Lookup<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        let entry = self.inner.tier.get(key)?;
        if entry.phase(now) != Phase::Fresh {
            return None;
        }
        let lookup = answer::<V, E>(entry, Outcome::Hit, false, now).ok()?;
        self.inner.counters.record(Outcome::Hit);
        Some(lookup)
    }

    /// The value of `key` for a caller that takes only the values it
    /// `accepts`, never loading: `Ok` with a fresh value it accepts (counted
    /// as a hit); `Err(Some(..))` with a stored value it does not accept,
    /// fresh or expired ([`Outcome::Stale`] inside its stale-while-revalidate
    /// window, [`Outcome::StaleIfError`] inside its stale-if-error window),
    /// counted as nothing; `Err(None)` when the caller should load (nothing
    /// stored, or an expired value it accepts, which the load answers,
    /// refreshes or falls back on).
    pub fn get_accepted<Q>(
        &self,
        key: &Q,
        accepts: impl FnOnce(&Lookup<V>) -> bool,
    ) -> Result<Lookup<V>, Option<Lookup<V>>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        let entry = self.inner.tier.get(key).ok_or(None)?;
        let outcome = match entry.phase(now) {
            Phase::Fresh => Outcome::Hit,
            Phase::Stale => Outcome::Stale,
            Phase::StaleIfError => Outcome::StaleIfError,
            Phase::Expired => return Err(None),
        };
        let lookup = answer::<V, E>(entry, outcome, false, now).map_err(|_| None)?;
        match (accepts(&lookup), outcome) {
            (true, Outcome::Hit) => {
                self.inner.counters.record(Outcome::Hit);
                Ok(lookup)
            }
            (true, _) => Err(None),
            (false, _) => Err(Some(lookup)),
        }
    }

    /// Stores `fetch` for `key` as a load would (a `do_not_store` fetch marks
    /// the key hit-for-miss). Loads of the key in flight now will not
    /// overwrite it.
    pub fn insert(&self, key: K, fetch: Fetch<V>) {
        let hash = self.inner.hasher.hash_one(&key);
        self.inner.generations.bump(hash);
        self.inner.flights.forget(&key);
        let generation = self.inner.generations.snapshot(hash);
        drop(self.settle(key, hash, generation, Ok(fetch), true));
    }

    /// Removes the entry of `key` and forgets its flight: the next caller
    /// loads anew, and a load in flight now will not store its result.
    ///
    /// With a [second tier](crate::l2), the key is also removed there and
    /// every instance of the fleet drops it (in the background: the call
    /// does not wait for the tier).
    pub fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.invalidate_here(key);
        self.invalidate_in_fleet(key.to_owned());
    }

    /// [`invalidate`](Self::invalidate) on this instance only.
    fn invalidate_here<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.inner.generations.bump(self.inner.hasher.hash_one(key));
        self.inner.tier.invalidate(key);
        self.inner.flights.forget(key);
    }

    /// Removes every entry and forgets every flight; no load in flight now
    /// will store its result. Local to this instance: the second tier's
    /// entries stay.
    pub fn invalidate_all(&self) {
        self.inner.generations.bump_all();
        self.inner.tier.invalidate_all();
        self.inner.flights.forget_if(|_| true);
    }

    /// Removes every entry whose key matches `predicate` and forgets the
    /// matching flights; no load of a matching key in flight now will store
    /// its result (the loads of other keys will). Local to this instance:
    /// the second tier's entries stay.
    pub fn invalidate_if(&self, predicate: impl Fn(&K) -> bool + Send + Sync + 'static) {
        let predicate: Predicate<K> = Arc::new(predicate);
        self.inner
            .sweeps
            .begin(&self.inner.generations, predicate.clone());
        let matches = predicate.clone();
        self.inner
            .tier
            .invalidate_if(Box::new(move |key| matches(key)));
        self.inner.flights.forget_if(|key| predicate(key));
    }

    /// Counts a lookup that was counted as `counted` as `received` instead
    /// ([`Outcome::Bypass`]: as nothing), so that [`stats`](Self::stats)
    /// count what callers received. For a layer whose caller did not take
    /// what its lookup brought (an HTTP answer for another `Vary` variant)
    /// and was answered otherwise: by another lookup, counted by itself
    /// (`received` is `Bypass`), or by a call of its own (`Miss`).
    pub fn recount(&self, counted: Outcome, received: Outcome) {
        self.inner.counters.unrecord(counted);
        self.inner.counters.record(received);
    }

    /// A snapshot of the counters and sizes. Sizes are exact: the store
    /// evicts as it inserts.
    pub fn stats(&self) -> Stats {
        let (entries, weight) = self.inner.tier.size();
        let mut stats = self
            .inner
            .counters
            .snapshot(entries, weight, self.inner.flights.len());
        if let Some(second_tier) = &self.inner.second_tier {
            stats.l2 = second_tier.stats();
        }
        stats
    }

    /// How many keys have a load in flight.
    pub fn in_flight(&self) -> usize {
        self.inner.flights.len()
    }

    /// A miss: join or lead the key's flight. Also returns the lookup's
    /// outcome, which an error or "not found" does not carry.
    async fn load_in_flight<Q, F, Fut>(
        &self,
        key: &Q,
        accepts: Option<Accepts<V>>,
        seen: Option<Seen<V>>,
        load: F,
    ) -> (Result<Lookup<V>, LoadError<E>>, Outcome)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        let call = self.join_flight(key, accepts, seen, load);
        let (flown, source) = match call.await {
            Ok(flown) => flown,
            Err(error) => return (Err(flight_error(error)), Outcome::Miss),
        };
        let own = flown
            .as_ref()
            .map_or(Outcome::Miss, |loaded| loaded.outcome);
        let outcome = match (source, own) {
            (Source::TimedOut, Outcome::Miss) => Outcome::LockTimeout,
            (Source::Shared, Outcome::Miss) => Outcome::Collapsed,
            (_, outcome) => outcome,
        };
        let result = flown.and_then(|loaded| {
            let from_second_tier = loaded.from_second_tier;
            answer(loaded.entry, outcome, loaded.stored, Instant::now()).map(|mut lookup| {
                lookup.timing.from_second_tier = from_second_tier;
                lookup
            })
        });
        (result, outcome)
    }

    /// Leads or joins the key's flight, whose work loads with `load`.
    fn join_flight<Q, F, Fut>(
        &self,
        key: &Q,
        accepts: Option<Accepts<V>>,
        seen: Option<Seen<V>>,
        load: F,
    ) -> Call<K, Flown<V, E>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        let owned = key.to_owned();
        let cache = self.clone();
        self.inner.flights.call_with(key, move |source| {
            cache.flight_work(owned, accepts, seen, load, source)
        })
    }

    /// The work of a flight (`source` is `Fresh`), or of a caller that stopped
    /// waiting for one (`TimedOut`), which must not store. A fresh entry
    /// found at the last moment (that `accepts` takes) answers instead.
    /// `seen`, for a load that revalidates: what the caller's read found,
    /// which stands for this last look while nothing of the key's stripe
    /// changed since.
    async fn flight_work<F, Fut>(
        self,
        key: K,
        accepts: Option<Accepts<V>>,
        seen: Option<Seen<V>>,
        load: F,
        source: Source,
    ) -> Flown<V, E>
    where
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        let may_store = source == Source::Fresh;
        let revalidates = seen.is_some();
        let (hash, found) = match seen {
            Some(seen) if seen.holds(&self.inner.stores, &self.inner.generations) => {
                (seen.hash, seen.entry)
            }
            seen => {
                let hash = seen.map_or_else(|| self.inner.hasher.hash_one(&key), |s| s.hash);
                let looks = may_store || revalidates;
                (hash, looks.then(|| self.inner.tier.get(&key)).flatten())
            }
        };
        if may_store && let Some(entry) = &found {
            let now = Instant::now();
            let fresh = entry.phase(now) == Phase::Fresh;
            let accepted = match (&accepts, &entry.content) {
                (Some(accepts), Content::Value(value)) => accepts(value, &entry.timing(now)),
                (_, content) => !matches!(content, Content::HitForMiss),
            };
            if fresh && accepted {
                return Ok(Loaded {
                    entry: entry.clone(),
                    outcome: Outcome::Hit,
                    stored: false,
                    from_second_tier: false,
                });
            }
        }
        if may_store && let Some(second_tier) = self.inner.second_tier.clone() {
            return self
                .through_second_tier(second_tier, key, hash, revalidates, load)
                .await;
        }
        let generation = self.inner.generations.snapshot(hash);
        let outcome = match may_store {
            true => Outcome::Miss,
            false => Outcome::LockTimeout,
        };
        // What the load refreshes: what it replaces, not what was there
        // when the caller arrived.
        let kept = found.and_then(|entry| entry.kept_value(Instant::now()));
        let fetched = self
            .catch_panic(async move { load(outcome, kept).await })
            .await?;
        self.settle(key, hash, generation, fetched, may_store)
    }

    /// The value a load of `key` refreshes, read now if it `revalidates`.
    fn kept_for(&self, key: &K, revalidates: bool) -> Option<V> {
        if !revalidates {
            return None;
        }
        let entry = self.inner.tier.get(key)?;
        entry.kept_value(Instant::now())
    }

    /// A hit-for-miss key: load without a flight; store if the result now
    /// allows it.
    async fn pass<F, Fut>(
        &self,
        key: K,
        revalidates: bool,
        load: F,
    ) -> (Result<Lookup<V>, LoadError<E>>, Outcome)
    where
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        let hash = self.inner.hasher.hash_one(&key);
        let generation = self.inner.generations.snapshot(hash);
        let kept = self.kept_for(&key, revalidates);
        let loaded = self
            .catch_panic(async move { load(Outcome::Pass, kept).await })
            .await
            .and_then(|fetched| self.settle(key, hash, generation, fetched, true));
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(error) => return (Err(error), Outcome::Pass),
        };
        let outcome = if loaded.outcome == Outcome::Miss {
            Outcome::Pass
        } else {
            loaded.outcome
        };
        (
            answer(loaded.entry, outcome, loaded.stored, Instant::now()),
            outcome,
        )
    }

    /// Starts a refresh of a stale entry, unless a load of its key is in
    /// flight already (its result will replace the entry). Two stale readers
    /// racing here may both start one; the second joins the first's flight,
    /// or finds the refreshed entry when its flight looks in the store.
    fn refresh_in_background<Q, F, Fut>(&self, key: &Q, seen: Option<Seen<V>>, load: F)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: FnOnce(Outcome, Option<V>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Fetch<V>, E>> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.flights.contains(key) {
            return;
        }
        let counters = self.inner.counters.clone();
        let call = self.join_flight(key, None, seen, move |outcome, kept| {
            counters.refreshes.add();
            load(outcome, kept)
        });
        runtime.spawn(call);
    }

    /// Turns a load's result into what its waiters receive, storing it when
    /// allowed and no invalidation intervened.
    fn settle(
        &self,
        key: K,
        hash: u64,
        generation: Generation,
        fetched: Result<Fetch<V>, E>,
        may_store: bool,
    ) -> Flown<V, E> {
        let now = Instant::now();
        match fetched {
            Ok(mut fetch) => {
                let content = fetch.value.take().map_or(Content::Absent, Content::Value);
                let entry = Entry::new(&fetch, content, &self.inner.config, now);
                let stored = match (may_store, fetch.store) {
                    (false, _) => false,
                    (true, true) => self.store(key, hash, generation, &entry),
                    (true, false) => {
                        self.mark_hit_for_miss(key, hash, generation, now);
                        false
                    }
                };
                Ok(Loaded {
                    entry,
                    outcome: Outcome::Miss,
                    stored,
                    from_second_tier: false,
                })
            }
            Err(error) => {
                self.inner.counters.load_failures.add();
                match self.inner.tier.get(&key) {
                    Some(entry)
                        if matches!(entry.content, Content::Value(_))
                            && entry.may_answer_error(now) =>
                    {
                        Ok(Loaded {
                            entry,
                            outcome: Outcome::StaleIfError,
                            stored: false,
                            from_second_tier: false,
                        })
                    }
                    _ => Err(LoadError::Load(error)),
                }
            }
        }
    }

    /// Runs a load, turning its panic into [`LoadError::Panicked`] for every
    /// waiter (counted once, as a failed load).
    async fn catch_panic<T>(&self, load: impl Future<Output = T>) -> Result<T, LoadError<E>> {
        let mut load = std::pin::pin!(load);
        std::future::poll_fn(|cx| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load.as_mut().poll(cx)))
            {
                Ok(poll) => poll.map(Ok),
                Err(payload) => {
                    self.inner.counters.load_failures.add();
                    std::task::Poll::Ready(Err(flight_error(FlightError::from_panic(&*payload))))
                }
            }
        })
        .await
    }

    /// Stores `entry` unless `key` was invalidated since `generation`; an
    /// invalidation racing the insert undoes it. Returns whether it stays.
    fn store(&self, key: K, hash: u64, generation: Generation, entry: &Entry<V>) -> bool {
        let (generations, sweeps) = (&self.inner.generations, &self.inner.sweeps);
        let is_current = |key: &K| {
            generations.is_current(hash, generation)
                && !sweeps.matched_since(generations, generation, key)
        };
        if !is_current(&key) {
            return false;
        }
        self.inner.tier.insert(key.clone(), entry.clone());
        self.inner.stores.stored(hash);
        if is_current(&key) {
            return true;
        }
        self.inner.tier.remove_if_same(&key, entry);
        false
    }

    fn mark_hit_for_miss(&self, key: K, hash: u64, generation: Generation, now: Instant) {
        let ttl = self.inner.config.hit_for_miss;
        if !ttl.is_zero() {
            self.store(key, hash, generation, &Entry::hit_for_miss(ttl, now));
        }
    }
}

/// What a caller receives from an entry.
fn answer<V, E>(
    entry: Entry<V>,
    outcome: Outcome,
    stored: bool,
    now: Instant,
) -> Result<Lookup<V>, LoadError<E>> {
    let timing = entry.timing(now);
    match entry.content {
        Content::Value(value) => Ok(Lookup {
            value,
            outcome,
            stored,
            timing,
        }),
        Content::Absent | Content::HitForMiss => Err(LoadError::NotFound),
    }
}

fn flight_error<E>(error: FlightError) -> LoadError<E> {
    match error {
        FlightError::TooManyWaiters => LoadError::Overloaded,
        FlightError::Panicked { message } => LoadError::Panicked(message),
        other => LoadError::Panicked(other.to_string().into()),
    }
}
