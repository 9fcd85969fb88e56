//! The container of a shard's entries, which holds a few at a time as a rule.

use hashbrown::HashTable;

/// Up to this many entries are kept in a vector and scanned: for so few, a
/// scan costs less than hashing into a table, and it inlines.
const FEW: usize = 8;

/// A list of values that know their hash, found by hash and a predicate. A
/// vector while it holds at most [`FEW`] values; a hash table from the moment
/// it holds more until it is empty again, so that a shard with thousands of
/// keys in flight still finds each at once.
pub(crate) enum Entries<E> {
    Few(Vec<E>),
    Many(HashTable<E>),
}

/// A value that knows its own hash.
pub(crate) trait Hashed {
    fn hash(&self) -> u64;
}

impl<E: Hashed> Entries<E> {
    pub(crate) fn new() -> Self {
        Self::Few(Vec::new())
    }

    /// A value with this hash that satisfies `is_it`. The hash narrows the
    /// search only in a table: `is_it` must tell apart values of other hashes
    /// too (comparing the hash first, when that is cheaper than the rest).
    pub(crate) fn find_mut(
        &mut self,
        hash: u64,
        mut is_it: impl FnMut(&E) -> bool,
    ) -> Option<&mut E> {
        match self {
            Self::Few(few) => few.iter_mut().find(|e| is_it(e)),
            Self::Many(many) => many.find_mut(hash, is_it),
        }
    }

    /// Adds a value, whether or not an equal one is there.
    #[inline]
    pub(crate) fn insert(&mut self, hash: u64, value: E) {
        match self {
            Self::Few(few) if few.len() < FEW => few.push(value),
            _ => self.insert_into_table(hash, value),
        }
    }

    /// Kept out of line, so that the common case stays small enough to
    /// inline.
    #[inline(never)]
    fn insert_into_table(&mut self, hash: u64, value: E) {
        if let Self::Few(few) = self {
            let mut many = HashTable::with_capacity(2 * FEW);
            for e in few.drain(..) {
                many.insert_unique(e.hash(), e, E::hash);
            }
            *self = Self::Many(many);
        }
        if let Self::Many(many) = self {
            many.insert_unique(hash, value, E::hash);
        }
    }

    /// Takes out a value with this hash that satisfies `is_it` (which, as
    /// for [`find_mut`](Self::find_mut), must tell values apart by itself).
    #[inline]
    pub(crate) fn remove(&mut self, hash: u64, is_it: impl FnMut(&E) -> bool) -> Option<E> {
        let Self::Few(few) = self else {
            return self.remove_from_table(hash, is_it);
        };
        let at = few.iter().position(is_it)?;
        Some(few.swap_remove(at))
    }

    #[inline(never)]
    fn remove_from_table(&mut self, hash: u64, is_it: impl FnMut(&E) -> bool) -> Option<E> {
        let Self::Many(many) = self else {
            return None;
        };
        let removed = many.find_entry(hash, is_it).ok()?.remove().0;
        if many.is_empty() {
            *self = Self::new();
        }
        Some(removed)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &E> {
        let (few, many) = match self {
            Self::Few(few) => (Some(few.iter()), None),
            Self::Many(many) => (None, Some(many.iter())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut E> {
        let (few, many) = match self {
            Self::Few(few) => (Some(few.iter_mut()), None),
            Self::Many(many) => (None, Some(many.iter_mut())),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::{Entries, FEW, Hashed};

    /// Every other value shares a hash, so lookups rely on the predicate.
    #[derive(Debug, PartialEq)]
    struct Value(usize);

    impl Hashed for Value {
        fn hash(&self) -> u64 {
            (self.0 / 2) as u64
        }
    }

    #[test]
    fn finds_and_removes_values_across_the_switch_to_a_table_and_back() {
        let mut entries = Entries::new();
        let n = 3 * FEW;
        for i in 0..n {
            entries.insert(Value(i).hash(), Value(i));
            assert_eq!(matches!(entries, Entries::Many(_)), i >= FEW);
        }
        for i in 0..n {
            let found = entries.find_mut(Value(i).hash(), |v| v.0 == i);
            assert_eq!(found, Some(&mut Value(i)));
        }
        assert_eq!(entries.find_mut(Value(n).hash(), |v| v.0 == n), None);
        for i in (0..n).rev() {
            assert_eq!(
                entries.remove(Value(i).hash(), |v| v.0 == i),
                Some(Value(i))
            );
            assert_eq!(entries.remove(Value(i).hash(), |v| v.0 == i), None);
            assert_eq!(entries.iter().count(), i);
        }
        assert!(matches!(entries, Entries::Few(_)));
    }
}
