//! The in-flight map: independently locked shards, each a table with one
//! entry per flight, from the start of its work until the work ends.

use std::borrow::Borrow;

use crate::entries::{Entries, Hashed};
use crate::flight::Flight;
use crate::group::Config;
use crate::sync::{Arc, Mutex, MutexGuard, lock};

/// On cache lines of its own, so that cores working on different shards do
/// not contend for one.
#[repr(align(128))]
pub(crate) struct Shard<K, T> {
    table: Mutex<Table<K, T>>,
    /// The group's settings, copied into every shard so that a call reaches
    /// them through the shard it holds anyway.
    pub(crate) config: Config,
}

impl<K, T> Shard<K, T> {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            table: Mutex::new(Table {
                entries: Entries::new(),
                next_id: 0,
            }),
            config,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Table<K, T>> {
        lock(&self.table)
    }
}

pub(crate) struct Table<K, T> {
    entries: Entries<Entry<K, T>>,
    /// Tells apart the flights of one shard, including successive flights of
    /// one key across [`Group::forget`](crate::Group::forget).
    next_id: u64,
}

/// One flight's place in the map.
pub(crate) struct Entry<K, T> {
    key: Key<K>,
    hash: u64,
    pub(crate) id: u64,
    /// Forgotten flights stay until their work ends, but new callers of the
    /// key no longer join them.
    forgotten: bool,
    /// The state shared with followers, made when the first one joins: a
    /// call that nobody joins allocates none.
    pub(crate) flight: Option<Arc<Flight<K, T>>>,
}

impl<K, T> Entry<K, T> {
    pub(crate) fn forget(&mut self) {
        self.forgotten = true;
    }
}

impl<K, T> Hashed for Entry<K, T> {
    fn hash(&self) -> u64 {
        self.hash
    }
}

impl<K, T> Table<K, T> {
    /// The flight that new callers of `key` join, if any.
    pub(crate) fn current<Q>(&mut self, hash: u64, key: &Q) -> Option<&mut Entry<K, T>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.entries.find_mut(hash, |entry| {
            entry.hash == hash && !entry.forgotten && entry.key.get().borrow() == key
        })
    }

    /// Starts a flight for `key`, which has none; returns its id.
    pub(crate) fn insert(&mut self, hash: u64, key: K) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let entry = Entry {
            key: Key::Inline(key),
            hash,
            id,
            forgotten: false,
            flight: None,
        };
        self.entries.insert(hash, entry);
        id
    }

    pub(crate) fn get(&mut self, ticket: &Ticket<K, T>) -> Option<&mut Entry<K, T>> {
        self.entries
            .find_mut(ticket.hash, |entry| entry.id == ticket.id)
    }

    /// Removes the entry of a flight whose work ended. The caller drops it
    /// after releasing the lock: dropping the key runs user code.
    #[must_use]
    pub(crate) fn remove(&mut self, ticket: &Ticket<K, T>) -> Option<Entry<K, T>> {
        self.entries
            .remove(ticket.hash, |entry| entry.id == ticket.id)
    }

    /// Every flight that new callers join, to be tested outside the lock:
    /// a predicate is user code.
    pub(crate) fn flights(&mut self) -> Vec<Listed<K>> {
        let current = self.entries.iter_mut().filter(|entry| !entry.forgotten);
        let listed = current.map(|entry| Listed {
            key: entry.key.share(),
            hash: entry.hash,
            id: entry.id,
        });
        listed.collect()
    }

    /// Forgets a listed flight, if it has not ended meanwhile.
    pub(crate) fn forget_listed(&mut self, listed: &Listed<K>) {
        let found = self
            .entries
            .find_mut(listed.hash, |entry| entry.id == listed.id);
        if let Some(entry) = found {
            entry.forget();
        }
    }

    /// How many keys have a flight that new callers join.
    pub(crate) fn len(&self) -> usize {
        self.entries.iter().filter(|entry| !entry.forgotten).count()
    }

    /// Every entry, forgotten ones included.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> usize {
        self.entries.iter().count()
    }
}

/// A flight's key: held inline, until [`Table::flights`] shares it so that
/// a predicate can test it with the lock released (moving it into an `Arc`
/// runs no user code). A call that leads a flight allocates nothing more.
enum Key<K> {
    Inline(K),
    Shared(Arc<K>),
    /// Only while the key moves from one to the other.
    Moving,
}

impl<K> Key<K> {
    fn get(&self) -> &K {
        match self {
            Key::Inline(key) => key,
            Key::Shared(key) => key,
            Key::Moving => unreachable!("a key is never left moving"),
        }
    }

    fn share(&mut self) -> Arc<K> {
        if let Key::Inline(_) = self
            && let Key::Inline(key) = std::mem::replace(self, Key::Moving)
        {
            *self = Key::Shared(Arc::new(key));
        }
        match self {
            Key::Shared(key) => key.clone(),
            _ => unreachable!("shared above"),
        }
    }
}

/// A flight as [`Table::flights`] lists it.
pub(crate) struct Listed<K> {
    pub(crate) key: Arc<K>,
    hash: u64,
    id: u64,
}

/// What drives a flight's work to its end holds: where the flight's entry is.
pub(crate) struct Ticket<K, T> {
    pub(crate) shard: Arc<Shard<K, T>>,
    pub(crate) hash: u64,
    pub(crate) id: u64,
}

impl<K, T> Clone for Ticket<K, T> {
    fn clone(&self) -> Self {
        Self {
            shard: self.shard.clone(),
            hash: self.hash,
            id: self.id,
        }
    }
}

impl<K, T> Ticket<K, T> {
    pub(crate) fn config(&self) -> &Config {
        &self.shard.config
    }
}
