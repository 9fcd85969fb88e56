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

const STRIPES: usize = 1024;

/// The generation a load started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation {
    stripe: u64,
    all: u64,
}

#[derive(Debug)]
pub(crate) struct Generations {
    stripes: Box<[AtomicU64]>,
    all: AtomicU64,
}

impl Generations {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            all: AtomicU64::new(0),
        }
    }

    fn stripe(&self, hash: u64) -> &AtomicU64 {
        &self.stripes[(hash as usize) % STRIPES]
    }

    pub(crate) fn snapshot(&self, hash: u64) -> Generation {
        Generation {
            stripe: self.stripe(hash).load(Ordering::SeqCst),
            all: self.all.load(Ordering::SeqCst),
        }
    }

    pub(crate) fn is_current(&self, hash: u64, generation: Generation) -> bool {
        self.snapshot(hash) == generation
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
