//! The synchronisation primitives, swapped for loom's under `--cfg shared_calls_loom`.

#[cfg(shared_calls_loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard, atomic::AtomicUsize};
#[cfg(not(shared_calls_loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard, atomic::AtomicUsize};

/// A value written once and then read without locking: `std`'s `OnceLock`,
/// or under loom a mutex, so that loom explores the reads and the write.
pub(crate) struct Once<T>(
    #[cfg(not(shared_calls_loom))] std::sync::OnceLock<T>,
    #[cfg(shared_calls_loom)] Mutex<Option<T>>,
);

impl<T> Once<T> {
    pub(crate) fn new() -> Self {
        #[cfg(not(shared_calls_loom))]
        return Self(std::sync::OnceLock::new());
        #[cfg(shared_calls_loom)]
        return Self(Mutex::new(None));
    }

    /// A clone of the value, if it has been set.
    pub(crate) fn get(&self) -> Option<T>
    where
        T: Clone,
    {
        #[cfg(not(shared_calls_loom))]
        return self.0.get().cloned();
        #[cfg(shared_calls_loom)]
        return lock(&self.0).clone();
    }

    pub(crate) fn is_set(&self) -> bool {
        #[cfg(not(shared_calls_loom))]
        return self.0.get().is_some();
        #[cfg(shared_calls_loom)]
        return lock(&self.0).is_some();
    }

    /// Sets the value; the caller is the only one that ever does.
    pub(crate) fn set(&self, value: T) {
        #[cfg(not(shared_calls_loom))]
        let _ = self.0.set(value);
        #[cfg(shared_calls_loom)]
        {
            *lock(&self.0) = Some(value);
        }
    }
}

/// Locks `mutex`, ignoring poisoning: every critical section in this crate
/// leaves its data consistent even if a user's `Hash`/`Eq` panics inside it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A value reached only through `&mut` or by value, hence `Sync` whenever it
/// is `Send` (what the unstable `std::sync::Exclusive` does). A std mutex that
/// is never locked gives that without unsafe code and without locking.
pub(crate) struct Exclusive<T>(std::sync::Mutex<T>);

impl<T> Exclusive<T> {
    pub(crate) fn new(value: T) -> Self {
        Self(std::sync::Mutex::new(value))
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        // Never locked, so never poisoned.
        self.0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn into_inner(self) -> T {
        self.0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
