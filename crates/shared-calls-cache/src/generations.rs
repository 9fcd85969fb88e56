//! Invalidation generations: a load may store its result only if no
//! invalidation of its key happened since the load started.
//!
//! Counters are striped by key hash, so memory stays fixed whatever the key
//! churn; two keys sharing a stripe only cost each other a skipped store. The
//! protocol (bump before removing; store, then check again and undo) closes
//! the race where an invalidation lands between a load's check and its store:
//!
//! - invalidate: `bump(key)`, then remove the stored entry;
//! - load: `snapshot(key)` before loading; after loading, if still current,
//!   insert, then if no longer current, remove what it inserted.

#[cfg(shared_calls_loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(shared_calls_loom))]
use std::sync::atomic::{AtomicU64, Ordering};

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

const STRIPES: usize = 1024;

/// The generation a load started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation {
    stripe: u64,
    all: u64,
    /// How many `invalidate_if` sweeps had begun ([`Sweeps`]).
    pub(crate) sweep: u64,
}

#[derive(Debug)]
pub(crate) struct Generations {
    stripes: Box<[AtomicU64]>,
    all: AtomicU64,
    sweep: AtomicU64,
}

impl Generations {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            all: AtomicU64::new(0),
            sweep: AtomicU64::new(0),
        }
    }

    fn stripe(&self, hash: u64) -> &AtomicU64 {
        &self.stripes[(hash as usize) % STRIPES]
    }

    pub(crate) fn snapshot(&self, hash: u64) -> Generation {
        Generation {
            stripe: self.stripe(hash).load(Ordering::SeqCst),
            all: self.all.load(Ordering::SeqCst),
            sweep: self.sweep.load(Ordering::SeqCst),
        }
    }

    /// Whether no invalidation of this key's stripe, and no `invalidate_all`,
    /// happened since `generation`; sweeps are for [`Sweeps`] to judge.
    pub(crate) fn is_current(&self, hash: u64, generation: Generation) -> bool {
        let now = self.snapshot(hash);
        (now.stripe, now.all) == (generation.stripe, generation.all)
    }

    /// Whether a sweep began since `generation`.
    pub(crate) fn swept_since(&self, generation: Generation) -> bool {
        self.sweep.load(Ordering::SeqCst) != generation.sweep
    }

    /// Invalidates loads of the key with this hash that are in progress.
    pub(crate) fn bump(&self, hash: u64) {
        self.stripe(hash).fetch_add(1, Ordering::SeqCst);
    }

    /// Invalidates every load in progress.
    pub(crate) fn bump_all(&self) {
        self.all.fetch_add(1, Ordering::SeqCst);
    }
}

/// An `invalidate_if` predicate.
pub(crate) type Predicate<K> = Arc<dyn Fn(&K) -> bool + Send + Sync>;

/// How many of the latest sweeps are kept: a load older than all of them is
/// stopped from storing whatever its key.
const KEPT_SWEEPS: usize = 64;

/// The predicates of the latest `invalidate_if` sweeps, so that a sweep stops
/// only the loads of the keys it matches from storing.
pub(crate) struct Sweeps<K> {
    recent: Mutex<VecDeque<(u64, Predicate<K>)>>,
}

impl<K> Sweeps<K> {
    pub(crate) fn new() -> Self {
        Self {
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// Begins a sweep: loads of keys that `predicate` matches, started
    /// before now, will not store.
    pub(crate) fn begin(&self, generations: &Generations, predicate: Predicate<K>) {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        // Counted under the lock: whoever sees the new count finds its
        // predicate.
        let sweep = generations.sweep.fetch_add(1, Ordering::SeqCst) + 1;
        recent.push_back((sweep, predicate));
        if recent.len() > KEPT_SWEEPS {
            recent.pop_front();
        }
    }

    /// Whether a sweep begun since `generation` matches `key`, or may have
    /// (it is no longer kept).
    pub(crate) fn matched_since(
        &self,
        generations: &Generations,
        generation: Generation,
        key: &K,
    ) -> bool {
        if !generations.swept_since(generation) {
            return false;
        }
        let since: Vec<Predicate<K>> = {
            let recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            match recent.front() {
                Some((oldest, _)) if *oldest <= generation.sweep + 1 => {}
                _ => return true,
            }
            recent
                .iter()
                .filter(|(sweep, _)| *sweep > generation.sweep)
                .map(|(_, predicate)| predicate.clone())
                .collect()
        };
        // The user's predicates run outside the lock.
        since.iter().any(|predicate| predicate(key))
    }
}

impl<K> fmt::Debug for Sweeps<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sweeps").finish_non_exhaustive()
    }
}

#[cfg(all(test, shared_calls_loom))]
mod loom_model {
    use super::Generations;
    use loom::sync::{Arc, Mutex};

    /// A writer changes the backend's value, then invalidates the key,
    /// while a load reads the backend and stores what it read. However they
    /// interleave, the store never ends up holding the value from before the
    /// write.
    #[test]
    fn invalidation_racing_a_store_never_leaves_the_stale_value() {
        loom::model(|| {
            let generations = Arc::new(Generations::new());
            let backend = Arc::new(Mutex::new("old"));
            let store: Arc<Mutex<Option<&'static str>>> = Arc::new(Mutex::new(None));

            let load = {
                let (generations, backend, store) =
                    (generations.clone(), backend.clone(), store.clone());
                loom::thread::spawn(move || {
                    let started = generations.snapshot(7);
                    let value = *backend.lock().unwrap();
                    if generations.is_current(7, started) {
                        *store.lock().unwrap() = Some(value);
                        if !generations.is_current(7, started) {
                            let mut stored = store.lock().unwrap();
                            if *stored == Some(value) {
                                *stored = None;
                            }
                        }
                    }
                })
            };
            // The write, then its invalidation: bump, then remove.
            *backend.lock().unwrap() = "new";
            generations.bump(7);
            *store.lock().unwrap() = None;
            load.join().unwrap();

            assert_ne!(
                *store.lock().unwrap(),
                Some("old"),
                "a stale load's value survived the invalidation"
            );
        });
    }
}
