//! One flight: the state shared by the waiters of one key's call, and what
//! ends it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::task::Waker;

use crate::FlightError;
use crate::shard::Ticket;
use crate::sync::{Arc, AtomicUsize, Mutex, MutexGuard, Once, lock};

/// The work of a flight, boxed so that it can move from one waiter to another.
pub(crate) type Work<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What every waiter of a flight receives.
pub(crate) type Output<T> = Result<T, FlightError>;

/// The state a flight's followers share with whoever drives its work.
///
/// In this order, so that the follower count tends to share a cache line
/// with the reference count (a joining follower bumps both), and the output
/// with the lock (a polled follower reads one, then takes the other).
#[repr(C)]
pub(crate) struct Flight<K, T> {
    /// Followers that joined and have neither left nor taken over the work.
    /// Joining counts here without taking the state's lock. No ordering is
    /// needed beyond the locks': joining (under the shard's lock) is kept
    /// apart from `offer` by the shard's lock and from `publish` by the
    /// entry's removal under it; leaving and taking over change the count
    /// under the state's lock, where `offer` and `publish` read it.
    followers: AtomicUsize,
    /// The output, once the flight has completed: read without locking.
    pub(crate) output: Once<Output<T>>,
    state: Mutex<State<K, T>>,
}

struct State<K, T> {
    /// The wakers of the followers that have been polled.
    waiters: Waiters,
    /// Work whose poller went away, for the first follower polled to pick
    /// up, with the ticket that completes the flight.
    orphan: Option<(Work<T>, Ticket<K, T>)>,
    /// The follower woken to pick up `orphan`, if any was polled before.
    heir: Option<usize>,
}

/// What a polled follower does next.
pub(crate) enum Next<K, T> {
    /// The flight completed: its output is published.
    Done,
    /// It picks up the flight's orphaned work.
    Inherit(Work<T>, Ticket<K, T>),
    /// It goes on waiting.
    Wait,
}

/// What a follower left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(crate) enum Left {
    /// A flight that had completed: its output is there to take.
    Completed,
    /// A flight still running (or handed on).
    Running,
}

impl<K, T> Flight<K, T> {
    pub(crate) fn new() -> Self {
        Self {
            output: Once::new(),
            followers: AtomicUsize::new(0),
            state: Mutex::new(State {
                // A hot key gathers many followers, and growing the list
                // would happen under the flight's lock. 512 bytes, only for
                // flights that have followers.
                waiters: Waiters::with_capacity(32),
                orphan: None,
                heir: None,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<K, T>> {
        lock(&self.state)
    }

    fn followers(&self) -> usize {
        self.followers.load(Relaxed)
    }

    /// Counts a new follower; the caller holds the shard's lock, so the
    /// flight is still running and nobody else joins meanwhile. False when
    /// the key already has `max_waiters` followers.
    pub(crate) fn join(&self, max_waiters: usize) -> bool {
        // Unbounded, the default, reads nothing before the add, which would
        // fetch the cache line twice.
        let room = max_waiters == usize::MAX || self.followers() < max_waiters;
        if room {
            self.followers.fetch_add(1, Relaxed);
        }
        room
    }

    /// A follower is polled. `slot` is its place among the waiters, taken at
    /// its first poll. Decided under the flight's lock, acted upon after it.
    // Only the check is inlined: a woken follower finds the output and needs
    // nothing more.
    #[inline]
    pub(crate) fn poll_follower(&self, slot: &mut Option<usize>, waker: &Waker) -> Next<K, T> {
        if self.output.is_set() {
            return Next::Done;
        }
        self.poll_follower_locked(slot, waker)
    }

    /// The rest of [`poll_follower`](Self::poll_follower), under the lock.
    #[inline(never)]
    fn poll_follower_locked(&self, slot: &mut Option<usize>, waker: &Waker) -> Next<K, T> {
        let mut state = self.state();
        // Checked again under the lock, which `publish` holds while it sets
        // the output and collects the wakers.
        if self.output.is_set() {
            return Next::Done;
        }
        if let Some((work, ticket)) = state.orphan.take() {
            // Orphaned work goes to the first follower polled: the heir,
            // which was woken for it, or any other polled first.
            state.heir = None;
            if let Some(slot) = slot.take() {
                state.waiters.remove(slot);
            }
            self.followers.fetch_sub(1, Relaxed);
            return Next::Inherit(work, ticket);
        }
        match *slot {
            Some(slot) => state.waiters.register(slot, waker),
            None => *slot = Some(state.waiters.insert(waker)),
        }
        Next::Wait
    }

    /// Publishes the output of the completed flight to its followers.
    /// Returns the driver's own copy.
    fn publish(this: Arc<Self>, output: Output<T>) -> Output<T>
    where
        T: Clone,
    {
        // Nobody else holds the flight: nobody to share with.
        if Arc::strong_count(&this) == 1 {
            return output;
        }
        let mut state = this.state();
        if this.followers() == 0 {
            return output;
        }
        // Publish first: a panicking `T::clone` must hurt only its caller.
        this.output.set(output);
        let waiters = std::mem::take(&mut state.waiters);
        drop(state);
        waiters.wake_all();
        this.output.get().expect("set above")
    }

    /// Parks orphaned work for a follower, if one is left; the caller holds
    /// the shard's lock, so that no follower joins meanwhile. Returns the
    /// waker of the heir to call once the locks are released.
    fn offer(&self, work: Work<T>, ticket: &Ticket<K, T>) -> Result<Option<Waker>, Work<T>> {
        let mut state = self.state();
        if self.followers() == 0 {
            return Err(work);
        }
        // A follower already polled is woken for it; else the first to be
        // polled picks it up.
        let heir = state.waiters.first();
        state.orphan = Some((work, ticket.clone()));
        state.heir = heir.as_ref().map(|(slot, _)| *slot);
        Ok(heir.map(|(_, waker)| waker))
    }

    /// A follower leaves before the flight completed. If orphaned work was
    /// parked for it, or it was the last follower left to pick it up, the
    /// work passes on.
    pub(crate) fn leave(this: &Arc<Self>, slot: Option<usize>) -> Left
    where
        K: Send + Sync + 'static,
        T: Clone + Send + Sync + 'static,
    {
        let mut state = this.state();
        // Completed: the waiters were taken, slots and all.
        if this.output.is_set() {
            return Left::Completed;
        }
        let left = this.followers.fetch_sub(1, Relaxed) - 1;
        if let Some(slot) = slot {
            state.waiters.remove(slot);
        }
        let was_heir = slot.is_some() && state.heir == slot;
        if !(was_heir || left == 0) {
            return Left::Running;
        }
        state.heir = None;
        let orphan = state.orphan.take();
        drop(state);
        if let Some((work, ticket)) = orphan {
            hand_off(&ticket, work, true);
        }
        Left::Running
    }
}

/// The work of the flight behind `ticket` ended with `output`: the key is
/// forgotten and the output shared with the flight's waiters. Returns the
/// driver's own copy.
pub(crate) fn complete<K, T: Clone>(ticket: &Ticket<K, T>, output: Output<T>) -> Output<T> {
    let entry = ticket.shard.lock().remove(ticket);
    // Dropped unlocked: the key's destructor is user code.
    match entry.and_then(|entry| entry.flight) {
        Some(flight) => Flight::publish(flight, output),
        None => output,
    }
}

/// The poller of the work of the flight behind `ticket` went away before the
/// work ended: the work goes to a waiter, or, when none is left, the flight
/// is abandoned.
///
/// `may_detach` is false for a detached task itself, which must not respawn
/// itself when its runtime drops it.
pub(crate) fn hand_off<K, T>(ticket: &Ticket<K, T>, work: Work<T>, may_detach: bool)
where
    K: Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
{
    // Lock order: shard, then flight.
    let mut table = ticket.shard.lock();
    let offered = match table.get(ticket).and_then(|entry| entry.flight.as_deref()) {
        Some(flight) => flight.offer(work, ticket),
        None => Err(work),
    };
    let work = match offered {
        Ok(heir) => {
            drop(table);
            if let Some(waker) = heir {
                waker.wake();
            }
            return;
        }
        Err(work) => work,
    };
    if may_detach && ticket.config().finish_abandoned {
        drop(table);
        if let Err(work) = crate::detached::spawn(ticket.clone(), work) {
            hand_off(ticket, work, false);
        }
        return;
    }
    let removed = table.remove(ticket);
    drop(table);
    // The work and the key may run user code when dropped: unlocked.
    drop(removed);
    drop(work);
}

/// The wakers of the followers that have been polled, in a slab so that a
/// follower keeps its slot until it leaves.
#[derive(Default)]
struct Waiters {
    slots: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Waiters {
    /// Room for this many waiters before the first reallocation.
    fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            ..Self::default()
        }
    }

    // One caller, on every follower's first poll.
    #[inline]
    fn insert(&mut self, waker: &Waker) -> usize {
        let waker = Some(waker.clone());
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = waker;
                slot
            }
            None => {
                self.slots.push(waker);
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, slot: usize) {
        if self.slots[slot].take().is_some() {
            self.free.push(slot);
        }
    }

    /// Stores the waker to call when the flight completes or its work needs
    /// a new poller.
    fn register(&mut self, slot: usize, waker: &Waker) {
        if let Some(stored) = &mut self.slots[slot]
            && !stored.will_wake(waker)
        {
            *stored = waker.clone();
        }
    }

    /// A waiter to hand orphaned work to, with its waker.
    fn first(&self) -> Option<(usize, Waker)> {
        let mut slots = self.slots.iter().enumerate();
        slots.find_map(|(slot, waker)| Some((slot, waker.clone()?)))
    }

    fn wake_all(self) {
        for waker in self.slots.into_iter().flatten() {
            waker.wake();
        }
    }
}

/// Polls the work, catching a panic so that it can be reported to every
/// waiter instead of unwinding through one of them.
pub(crate) fn poll_work<T>(
    work: &mut Work<T>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Result<T, Box<dyn std::any::Any + Send>>> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work.as_mut().poll(cx))) {
        Ok(poll) => poll.map(Ok),
        Err(payload) => std::task::Poll::Ready(Err(payload)),
    }
}
