//! One flight: the state shared by the waiters of one key's call, and what
//! ends it.

use std::future::Future;
use std::pin::Pin;
use std::task::Waker;

use crate::FlightError;
use crate::group::Abandoned;
use crate::shard::Ticket;
use crate::sync::{Arc, Mutex, MutexGuard, Once, lock};

/// The work of a flight, boxed so that it can move from one waiter to another.
pub(crate) type Work<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What every waiter of a flight receives.
pub(crate) type Output<T> = Result<T, FlightError>;

/// The state a flight's followers share with whoever drives its work.
pub(crate) struct Flight<K, T> {
    pub(crate) ticket: Ticket<K, T>,
    /// The output, once the flight has completed: read without locking.
    pub(crate) output: Once<Output<T>>,
    state: Mutex<State<T>>,
}

pub(crate) struct State<T> {
    /// Waiters that are not polling the work.
    pub(crate) waiters: Waiters,
    /// Work whose poller went away, waiting for `heir` to pick it up.
    pub(crate) orphan: Option<Work<T>>,
    /// The waiter chosen to poll the orphaned work.
    pub(crate) heir: Option<usize>,
}

impl<K, T> Flight<K, T> {
    pub(crate) fn new(ticket: Ticket<K, T>) -> Self {
        Self {
            ticket,
            output: Once::new(),
            state: Mutex::new(State {
                waiters: Waiters::with_capacity(8),
                orphan: None,
                heir: None,
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    /// Registers a follower; the caller holds the shard lock, so the flight
    /// is still running. `None` when the key has too many waiters.
    pub(crate) fn join(&self) -> Option<usize> {
        let mut state = self.state();
        (state.waiters.len() < self.ticket.config().max_waiters).then(|| state.waiters.insert())
    }

    /// Publishes the output of the completed flight to its waiters. Returns
    /// the driver's own copy.
    fn publish(this: Arc<Self>, output: Output<T>) -> Output<T>
    where
        T: Clone,
    {
        // Nobody else holds the flight: nobody to share with.
        if Arc::strong_count(&this) == 1 {
            return output;
        }
        let mut state = this.state();
        if state.waiters.is_empty() {
            return output;
        }
        // Publish first: a panicking `T::clone` must hurt only its caller.
        this.output.set(output);
        let waiters = std::mem::take(&mut state.waiters);
        drop(state);
        waiters.wake_all();
        this.output.get().expect("set above")
    }

    /// Gives orphaned work to a waiter, if one is left; the caller holds the
    /// shard lock, so that no follower joins meanwhile. Returns the waker to
    /// call once the locks are released.
    fn offer(&self, work: Work<T>) -> Result<Option<Waker>, Work<T>> {
        let mut state = self.state();
        let Some((heir, waker)) = state.waiters.first() else {
            return Err(work);
        };
        state.orphan = Some(work);
        state.heir = Some(heir);
        Ok(waker)
    }

    /// A waiter that does not poll the work leaves before the flight
    /// completed. If it had been chosen to pick up orphaned work, the work
    /// passes on.
    pub(crate) fn leave(this: &Arc<Self>, slot: usize)
    where
        K: Send + Sync + 'static,
        T: Clone + Send + Sync + 'static,
    {
        let mut state = this.state();
        // Completed: the waiters were taken, slots and all.
        if this.output.is_set() {
            return;
        }
        state.waiters.remove(slot);
        if state.heir != Some(slot) {
            return;
        }
        state.heir = None;
        let orphan = state.orphan.take();
        drop(state);
        if let Some(work) = orphan {
            hand_off(&this.ticket, work, true);
        }
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
        Some(flight) => flight.offer(work),
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
    if may_detach && ticket.config().abandoned != Abandoned::Cancel {
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

/// The wakers of the waiters that do not poll the work, in a slab so that a
/// waiter keeps its slot from joining to leaving.
#[derive(Default)]
pub(crate) struct Waiters {
    slots: Vec<Option<Option<Waker>>>,
    free: Vec<usize>,
    len: usize,
}

impl Waiters {
    /// Room for this many waiters before the first reallocation: a flight
    /// is made for its first follower, and hot keys gather several.
    fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            ..Self::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn insert(&mut self) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(None);
                slot
            }
            None => {
                self.slots.push(Some(None));
                self.slots.len() - 1
            }
        }
    }

    pub(crate) fn remove(&mut self, slot: usize) {
        if self.slots[slot].take().is_some() {
            self.len -= 1;
            self.free.push(slot);
        }
    }

    /// Stores the waker to call when the flight completes or its work needs
    /// a new poller.
    pub(crate) fn register(&mut self, slot: usize, waker: &Waker) {
        if let Some(stored) = &mut self.slots[slot] {
            match stored {
                Some(old) if old.will_wake(waker) => {}
                _ => *stored = Some(waker.clone()),
            }
        }
    }

    /// The waiter to hand orphaned work to: preferably one that has been
    /// polled (it has a waker, so it can be told), else any.
    fn first(&self) -> Option<(usize, Option<Waker>)> {
        let mut unpolled = None;
        for (slot, waiter) in self.slots.iter().enumerate() {
            match waiter {
                Some(Some(waker)) => return Some((slot, Some(waker.clone()))),
                Some(None) if unpolled.is_none() => unpolled = Some((slot, None)),
                _ => {}
            }
        }
        unpolled
    }

    fn wake_all(self) {
        for waker in self.slots.into_iter().flatten().flatten() {
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
