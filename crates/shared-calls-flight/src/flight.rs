//! One flight: the state shared by the waiters of one key's call.

use std::future::Future;
use std::pin::Pin;
use std::task::Waker;

use crate::FlightError;
use crate::group::{Abandoned, Config, Inner};
use crate::sync::{Arc, Mutex, MutexGuard, lock};

/// The work of a flight, boxed so that it can move from one waiter to another.
pub(crate) type Work<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What every waiter of a flight receives.
pub(crate) type Output<T> = Result<T, FlightError>;

pub(crate) struct Flight<K, T> {
    pub(crate) key: K,
    pub(crate) hash: u64,
    group: Arc<Inner<K, T>>,
    state: Mutex<State<T>>,
}

pub(crate) struct State<T> {
    /// The output, once the flight has completed.
    pub(crate) done: Option<Arc<Output<T>>>,
    /// Waiters that are not polling the work.
    pub(crate) waiters: Waiters,
    /// Work whose poller went away, waiting for `heir` to pick it up.
    pub(crate) orphan: Option<Work<T>>,
    /// The waiter chosen to poll the orphaned work.
    pub(crate) heir: Option<usize>,
}

impl<K, T> Flight<K, T> {
    pub(crate) fn new(key: K, hash: u64, group: Arc<Inner<K, T>>) -> Self {
        Self {
            key,
            hash,
            group,
            state: Mutex::new(State {
                done: None,
                waiters: Waiters::default(),
                orphan: None,
                heir: None,
            }),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.group.config
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    /// Registers a follower; the caller holds this flight's shard lock, so
    /// the flight is still running. `None` when the key has too many waiters.
    pub(crate) fn join(&self, config: &Config) -> Option<usize> {
        let mut state = self.state();
        (state.waiters.len() < config.max_waiters).then(|| state.waiters.insert())
    }

    /// Publishes the output of a completed flight to its waiters and forgets
    /// the key. Returns the poller's own copy.
    pub(crate) fn complete(this: &Arc<Self>, output: Output<T>) -> Output<T>
    where
        T: Clone,
    {
        let removed = {
            let mut map = lock(this.group.shard(this.hash));
            Inner::remove_if_current(&mut map, this)
        };
        drop(removed);
        // Nobody else holds the flight: nobody to share with.
        if Arc::strong_count(this) == 1 {
            return output;
        }
        let mut state = this.state();
        if state.waiters.is_empty() {
            return output;
        }
        // Publish first: a panicking `T::clone` must hurt only its caller.
        let shared = Arc::new(output);
        state.done = Some(shared.clone());
        let waiters = std::mem::take(&mut state.waiters);
        drop(state);
        waiters.wake_all();
        (*shared).clone()
    }

    /// The poller of `work` went away before it completed: hand the work to
    /// a waiter, or, when none is left, abandon the flight.
    ///
    /// `may_detach` is false for a detached task itself, which must not
    /// respawn itself when its runtime drops it.
    pub(crate) fn hand_off(this: &Arc<Self>, work: Work<T>, may_detach: bool)
    where
        K: Send + Sync + 'static,
        T: Clone + Send + Sync + 'static,
    {
        // Lock order: shard, then flight. Holding the shard keeps followers
        // from joining while we decide that nobody is left.
        let mut map = lock(this.group.shard(this.hash));
        let mut state = this.state();
        if let Some((heir, waker)) = state.waiters.first() {
            state.orphan = Some(work);
            state.heir = Some(heir);
            drop(state);
            drop(map);
            if let Some(waker) = waker {
                waker.wake();
            }
            return;
        }
        if may_detach && this.config().abandoned != Abandoned::Cancel {
            drop(state);
            drop(map);
            if let Err(work) = crate::detached::spawn(this.clone(), work) {
                Self::hand_off(this, work, false);
            }
            return;
        }
        let removed = Inner::remove_if_current(&mut map, this);
        drop(state);
        drop(map);
        // The work and the flight may run user code when dropped: unlocked.
        drop(removed);
        drop(work);
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
        if state.done.is_some() {
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
            Self::hand_off(this, work, true);
        }
    }
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
