//! Header names that stored answers share, each known by a small number.
//!
//! Every stored answer names its header lines, and most answers of an
//! origin use the same few names. A `HeaderName` takes 32 bytes in every
//! line, and a name of the origin's own (`x-request-id`) is moreover a copy
//! of its own in every answer hyper parses, shared through a second
//! allocation once a hit clones it. Here each name is kept once, under a
//! number that a line holds in 2 bytes; a hit reads it back without a lock
//! and clones it without touching a reference count.
//!
//! At most [`MAX_NAMES`] names of at most [`MAX_NAME_LEN`] bytes are
//! numbered in a process; an origin's own names are kept for its lifetime
//! (at most 64 KiB). An answer with any other name keeps its names itself.

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};

use http::HeaderName;

/// How many names are numbered, at most.
const MAX_NAMES: usize = 1024;
/// The longest name that is numbered.
const MAX_NAME_LEN: usize = 64;

/// The names by number: written once each, read without a lock.
static NAMES: [OnceLock<HeaderName>; MAX_NAMES] = [const { OnceLock::new() }; MAX_NAMES];

/// The numbers by name, for the answers being stored.
fn numbers() -> &'static RwLock<HashMap<HeaderName, u16>> {
    static NUMBERS: OnceLock<RwLock<HashMap<HeaderName, u16>>> = OnceLock::new();
    NUMBERS.get_or_init(Default::default)
}

/// The number of `name`, numbering it if there is room.
pub(crate) fn number(name: &HeaderName) -> Option<u16> {
    if name.as_str().len() > MAX_NAME_LEN {
        return None;
    }
    {
        let numbers = numbers().read().unwrap_or_else(PoisonError::into_inner);
        if let Some(&number) = numbers.get(name) {
            return Some(number);
        }
        // Full: stores need not queue for the write lock to learn it.
        if numbers.len() >= MAX_NAMES {
            return None;
        }
    }
    let mut numbers = numbers().write().unwrap_or_else(PoisonError::into_inner);
    if let Some(&number) = numbers.get(name) {
        return Some(number);
    }
    let next = numbers.len();
    if next >= MAX_NAMES {
        return None;
    }
    let number = u16::try_from(next).ok()?;
    NAMES[next].set(static_copy(name)).ok()?;
    numbers.insert(name.clone(), number);
    Some(number)
}

/// The name numbered `number`.
pub(crate) fn name(number: u16) -> Option<&'static HeaderName> {
    NAMES.get(usize::from(number))?.get()
}

/// `name` over a string that lives as long as the process: http's own
/// names are static already; any other is copied once, so that its clones
/// share no reference count.
fn static_copy(name: &HeaderName) -> HeaderName {
    let parsed = HeaderName::from_bytes(name.as_str().as_bytes());
    let is_standard = parsed.is_ok_and(|parsed| parsed.as_str().as_ptr() == name.as_str().as_ptr());
    if is_standard {
        return name.clone();
    }
    let text: &'static str = Box::leak(name.as_str().into());
    // A name's text is a valid, lower-case name.
    HeaderName::from_static(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_its_number_and_reads_back() {
        let custom = HeaderName::from_bytes(b"x-numbered-name-test").unwrap();
        let number = number(&custom).unwrap();
        let again = HeaderName::from_bytes(b"x-numbered-name-test").unwrap();
        assert_eq!(super::number(&again), Some(number));
        assert_eq!(name(number), Some(&custom));
        let standard = super::number(&http::header::ETAG).unwrap();
        assert_eq!(name(standard), Some(&http::header::ETAG));
    }

    #[test]
    fn a_long_name_is_not_numbered() {
        let long = HeaderName::from_bytes(&[b'x'; MAX_NAME_LEN + 1]).unwrap();
        assert_eq!(number(&long), None);
    }
}
