use std::borrow::Borrow;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
#[cfg(feature = "tokio")]
use std::time::Duration;

use crate::call::Call;
use crate::flight::Flight;
use crate::shard::{Entry, Shard, Ticket};
use crate::sync::Arc;

#[derive(Debug, Clone)]
pub(crate) struct Config {
    #[cfg(feature = "tokio")]
    pub(crate) wait_timeout: Option<Duration>,
    /// Whether an abandoned flight is driven to completion on a detached
    /// task instead of being dropped.
    pub(crate) finish_abandoned: bool,
    pub(crate) resume_panics: bool,
    pub(crate) max_waiters: usize,
}

pub(crate) struct Inner<K, T> {
    shards: Box<[Arc<Shard<K, T>>]>,
    hasher: foldhash::fast::RandomState,
}

impl<K, T> Inner<K, T> {
    fn shard(&self, hash: u64) -> &Arc<Shard<K, T>> {
        // The table indexes with the low bits and tags with the top seven:
        // choose the shard from the bits in between.
        &self.shards[(hash >> 32) as usize & (self.shards.len() - 1)]
    }
}

/// A group of shared calls: at most one call per key is in flight, and every
/// concurrent caller with an equal key receives a clone of its output.
///
/// Cloning a `Group` is cheap and every clone shares the same flights.
///
/// ```
/// # mod shared_calls { pub use shared_calls_flight as flight; }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use shared_calls::flight::{Group, Source};
///
/// let group: Group<String, u64> = Group::new();
/// let (value, source) = group.call_ex("answer", async { 42 }).await.unwrap();
/// assert_eq!((value, source), (42, Source::Fresh));
/// assert!(group.is_empty(), "a finished flight is forgotten at once");
/// # }
/// ```
///
/// # Concurrent calls on the same key
///
/// The first caller of a key (the *leader*) starts a flight with its work;
/// callers that arrive while it runs (*followers*) drop their own work and
/// wait for the flight's output, which each receives as a clone
/// ([`Source::Shared`](crate::Source::Shared)), while the leader receives the
/// original ([`Source::Fresh`](crate::Source::Fresh)). Nothing is cached:
/// the key is forgotten the moment its flight completes, so the next caller
/// starts a new flight. Waiting is event-driven (no polling loop), no lock is
/// held across an `.await`, and keys live in independently locked shards, so
/// distinct keys never wait for each other.
///
/// # Cancellation
///
/// A flight belongs to no single caller. The work is polled by one waiter at
/// a time, the leader at first; when that waiter is dropped (a client
/// disconnects, a timeout fires, a `select!` picks another branch), the work
/// is handed, as it is, to another waiter (one that is being polled, when
/// there is one), which carries on polling it. It is never restarted and
/// never fails for that reason: the backend sees one call.
/// When the last waiter is dropped, the flight is abandoned: by default the
/// work is dropped and the key forgotten; with
/// [`GroupBuilder::finish_abandoned`] (feature `tokio`) it is driven to
/// completion on a detached task.
///
/// # Panics
///
/// A panic inside the work is caught: every waiter, leader included,
/// receives [`FlightError::Panicked`](crate::FlightError) with the panic's
/// message, and the key is free for a new flight at once. Nothing is poisoned.
/// With [`GroupBuilder::resume_panics`] the leader's panic is resumed in the
/// leader instead, while its followers still receive the error.
pub struct Group<K, T> {
    inner: Arc<Inner<K, T>>,
}

impl<K, T> Clone for Group<K, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, T> fmt::Debug for Group<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("in_flight", &self.len())
            .field("config", &self.inner.shards[0].config)
            .finish()
    }
}

impl<K, T> Default for Group<K, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, T> Group<K, T> {
    /// A group with the default settings: no wait timeout, abandoned flights
    /// cancelled, panics turned into [`FlightError::Panicked`](crate::FlightError).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for a group with other settings.
    pub fn builder() -> GroupBuilder<K, T> {
        GroupBuilder::default()
    }

    /// How many keys have a flight in progress that new callers join
    /// (forgotten flights are not counted).
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.lock().len())
            .sum()
    }

    /// Whether no key has a flight in progress that new callers join.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq, T> Group<K, T> {
    /// Whether a call for `key` is in flight now.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hasher.hash_one(key);
        self.inner.shard(hash).lock().current(hash, key).is_some()
    }
}

impl<K, T> Group<K, T>
where
    K: Hash + Eq + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    /// Runs `work` unless a call for an equal key is in flight, in which case
    /// it waits for that call and returns a clone of its output.
    ///
    /// The key is borrowed: a follower never allocates an owned key. The
    /// returned future is `'static` and joins the flight when it is created,
    /// not when it is first polled.
    // Inlined, like `call_with`: the call is built where the caller keeps it.
    #[inline]
    pub fn call<Q, F>(
        &self,
        key: &Q,
        work: F,
    ) -> impl Future<Output = Result<T, crate::FlightError>> + Send + 'static + use<K, T, Q, F>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = T> + Send + 'static,
    {
        crate::call::ValueOnly(self.call_ex(key, work))
    }

    /// Like [`call`](Self::call), and also tells where the value came from:
    /// this caller's own work ([`Source::Fresh`](crate::Source::Fresh)), another
    /// caller's flight ([`Source::Shared`](crate::Source::Shared)), or its own
    /// work after waiting too long ([`Source::TimedOut`](crate::Source::TimedOut)).
    /// This is go-zero's `DoEx`: the caller that got a fresh value is the one
    /// that may, for instance, write it to a cache.
    // Inlined, like `call_with`.
    #[inline]
    pub fn call_ex<Q, F>(&self, key: &Q, work: F) -> Call<K, T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        F: Future<Output = T> + Send + 'static,
    {
        self.call_with(key, move |_| work)
    }

    /// Like [`call_ex`](Self::call_ex), with the work made only when it is
    /// needed, by `make_work`, which learns why: [`Source::Fresh`](crate::Source::Fresh)
    /// when this caller leads a flight, [`Source::TimedOut`](crate::Source::TimedOut)
    /// when it stopped waiting and runs alone. A read-through cache uses this
    /// to store only what a flight loaded, never what a timed-out follower did.
    /// A follower that receives a shared value never calls `make_work`.
    ///
    /// If `make_work` panics, the panic unwinds in this caller, the followers
    /// that joined meanwhile receive [`FlightError::Panicked`](crate::FlightError),
    /// and the key is free at once. The group runs no user code (`make_work`,
    /// the key's `to_owned` or destructor) while it holds a lock.
    // Inlined, the call is built where the caller keeps it, not copied there.
    #[inline]
    pub fn call_with<Q, W, F>(&self, key: &Q, make_work: W) -> Call<K, T>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        W: FnOnce(crate::Source) -> F + Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let hash = self.inner.hasher.hash_one(key);
        let shard = self.inner.shard(hash);
        let mut table = shard.lock();
        // A follower finds its flight under one lock and allocates nothing.
        let (joined, spare_key) = match table.current(hash, key) {
            Some(entry) => (join(entry, &shard.config), None),
            None => {
                // `to_owned` is user code, which may call into this group:
                // the key is made unlocked, and the key looked up again.
                drop(table);
                let owned = key.to_owned();
                table = shard.lock();
                match table.current(hash, key) {
                    Some(entry) => (join(entry, &shard.config), Some(owned)),
                    None => (Joined::Lead(table.insert(hash, owned)), None),
                }
            }
        };
        drop(table);
        // Calling, boxing or dropping `make_work` (or a key made for nothing)
        // runs user code: never under the shard lock.
        drop(spare_key);
        match joined {
            Joined::Lead(id) => {
                let ticket = Ticket {
                    shard: shard.clone(),
                    hash,
                    id,
                };
                Call::lead_with(ticket, make_work)
            }
            Joined::Follow(flight) => Call::follow(flight, make_work, &shard.config),
            Joined::Refused => {
                drop(make_work);
                Call::refused()
            }
        }
    }

    /// Forgets the flight in progress for `key`, if any: callers that arrive
    /// from now on start a new flight, while the current waiters still receive
    /// the old one's output. The old flight, when it completes, leaves the new
    /// one in place. Returns whether a flight was forgotten.
    pub fn forget<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.inner.hasher.hash_one(key);
        let mut table = self.inner.shard(hash).lock();
        let Some(entry) = table.current(hash, key) else {
            return false;
        };
        entry.forget();
        true
    }
}

impl<K, T> Group<K, T> {
    /// Forgets every flight whose key matches `predicate`, as
    /// [`forget`](Self::forget) does for one key.
    ///
    /// `predicate` runs with no lock held: it may call into this group.
    pub fn forget_if(&self, predicate: impl Fn(&K) -> bool) {
        for shard in self.inner.shards.iter() {
            let flights = shard.lock().flights();
            let matching: Vec<_> = flights.iter().filter(|f| predicate(&f.key)).collect();
            if !matching.is_empty() {
                let mut table = shard.lock();
                for listed in matching {
                    table.forget_listed(listed);
                }
            }
            // Dropped unlocked: a key may be the last copy, and its
            // destructor is user code.
            drop(flights);
        }
    }
}

/// Joins the flight of `entry`, under the shard's lock: counted and cloned
/// before the flight can complete, since completion counts followers and
/// handles.
fn join<K, T>(entry: &mut Entry<K, T>, config: &Config) -> Joined<K, T> {
    let flight = entry.flight.get_or_insert_with(|| Arc::new(Flight::new()));
    if flight.join(config.max_waiters) {
        Joined::Follow(flight.clone())
    } else {
        Joined::Refused
    }
}

/// How a new call relates to the flight of its key.
enum Joined<K, T> {
    /// The id of the new entry: the ticket, which counts a reference to the
    /// shard, is made once the lock is released.
    Lead(u64),
    Follow(Arc<Flight<K, T>>),
    Refused,
}

/// Settings of a [`Group`].
#[must_use]
pub struct GroupBuilder<K, T> {
    config: Config,
    shards: usize,
    _types: PhantomData<fn() -> (K, T)>,
}

impl<K, T> fmt::Debug for GroupBuilder<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupBuilder")
            .field("config", &self.config)
            .field("shards", &self.shards)
            .finish()
    }
}

impl<K, T> Default for GroupBuilder<K, T> {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self {
            config: Config {
                #[cfg(feature = "tokio")]
                wait_timeout: None,
                finish_abandoned: false,
                resume_panics: false,
                max_waiters: usize::MAX,
            },
            shards: (cores * 8).next_power_of_two(),
            _types: PhantomData,
        }
    }
}

impl<K, T> GroupBuilder<K, T> {
    /// A follower that has waited this long for a flight stops waiting and
    /// runs its own work instead, outside the flight; its result says
    /// [`Source::TimedOut`](crate::Source::TimedOut) (nginx's
    /// `proxy_cache_lock_timeout`). A flight that completes at the instant
    /// the wait ends (or before its follower got to leave) still answers
    /// it. A follower that has taken over polling the flight's work is no
    /// longer waiting and does not time out.
    ///
    /// The timer starts when the follower joins, on the tokio runtime it
    /// joins from, whose time driver must be enabled (creating the follower
    /// panics otherwise). Outside any tokio runtime, followers wait without a
    /// timeout.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    #[must_use = "a setter returns the changed builder"]
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.config.wait_timeout = Some(timeout);
        self
    }

    /// Whether a flight whose every waiter has gone away is driven to
    /// completion on a detached tokio task, so that side effects inside it
    /// (such as filling a cache) still happen, or dropped with its key
    /// forgotten (the default: nobody is left to receive its output).
    /// Callers that arrive meanwhile join the same flight. Outside a tokio
    /// runtime an abandoned flight is dropped.
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    #[must_use = "a setter returns the changed builder"]
    pub fn finish_abandoned(mut self, finish: bool) -> Self {
        self.config.finish_abandoned = finish;
        self
    }

    /// Resume a panic of the work in the leader that started it (its
    /// followers still receive [`FlightError::Panicked`](crate::FlightError)).
    /// Off by default.
    #[must_use = "a setter returns the changed builder"]
    pub fn resume_panics(mut self, resume: bool) -> Self {
        self.config.resume_panics = resume;
        self
    }

    /// At most this many followers may wait on one key; more are refused at
    /// once with [`FlightError::TooManyWaiters`](crate::FlightError). Unbounded
    /// by default.
    #[must_use = "a setter returns the changed builder"]
    pub fn max_waiters(mut self, max: usize) -> Self {
        self.config.max_waiters = max;
        self
    }

    /// The number of independently locked shards of the in-flight map,
    /// rounded up to a power of two. Defaults to eight per core.
    #[must_use = "a setter returns the changed builder"]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.max(1).next_power_of_two();
        self
    }

    /// Builds the group.
    pub fn build(self) -> Group<K, T> {
        let shards = (0..self.shards)
            .map(|_| Arc::new(Shard::new(self.config.clone())))
            .collect();
        Group {
            inner: Arc::new(Inner {
                shards,
                hasher: foldhash::fast::RandomState::default(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::Group;

    /// Entries in the table, forgotten ones included.
    fn entries<K, T>(group: &Group<K, T>) -> usize {
        let shards = group.inner.shards.iter();
        shards.map(|shard| shard.lock().entries()).sum()
    }

    #[test]
    fn a_forgotten_flight_leaves_the_table_when_its_work_ends() {
        let mut cx = Context::from_waker(Waker::noop());
        let group: Group<u8, u8> = Group::new();
        let mut old = pin!(group.call(&1, async {
            futures::pending!();
            1
        }));
        assert!(old.as_mut().poll(&mut cx).is_pending());
        assert!(group.forget(&1));
        let mut new = pin!(group.call(&1, async { 2 }));
        assert_eq!((group.len(), entries(&group)), (1, 2));

        assert_eq!(old.as_mut().poll(&mut cx), Poll::Ready(Ok(1)));
        assert_eq!((group.len(), entries(&group)), (1, 1));
        assert_eq!(new.as_mut().poll(&mut cx), Poll::Ready(Ok(2)));
        assert_eq!(entries(&group), 0);
    }
}
