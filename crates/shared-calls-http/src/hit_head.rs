//! The head of a hit: a stored answer's header lines with the `Age`,
//! `Cache-Status` and `X-Cache-Status` of a hit, rendered once a second per
//! entry on each thread and cloned for every other hit of that second.
//!
//! A clone copies the map's tables as they are, where building the map from
//! the stored lines hashes and places every line anew. The rendered heads
//! live in a small table per thread, not in the entries, so that a stored
//! entry carries nothing for them; a head is remembered at its second hit
//! of a second on a thread, so that rarely hit entries do not pay for a
//! copy that no other hit would use.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use crate::shared::StoredResponse;

/// The per-thread table: sets chosen by the entry, of a few heads each, so
/// that a handful of hot entries rarely push each other out.
const SETS: usize = 16;
const WAYS: usize = 4;

/// The most header bytes a remembered head holds: a larger one is rendered
/// for every hit, so that the table stays small.
const MAX_REMEMBERED_BYTES: usize = 4 * 1024;

/// What a hit's head depends on besides the entry: the policy's headers,
/// and the age and freshness left in whole seconds.
#[derive(Clone, Copy)]
pub(crate) struct HitHead<'a> {
    pub(crate) cache_status: Option<&'a str>,
    pub(crate) x_cache_status: bool,
    pub(crate) age_secs: u64,
    pub(crate) ttl_secs: u64,
}

/// A rendered head, with its own copy of the header values: it keeps
/// neither the entry's body nor its values alive once the entry is gone.
struct Head {
    /// Its entry, held weakly: while the table holds it, no other entry
    /// can take the same address.
    entry: Weak<StoredResponse>,
    cache_status: Option<Box<str>>,
    x_cache_status: bool,
    age_secs: u64,
    ttl_secs: u64,
    headers: HeaderMap,
}

impl Head {
    fn is_of(&self, entry: &Arc<StoredResponse>) -> bool {
        std::ptr::eq(self.entry.as_ptr(), Arc::as_ptr(entry))
    }

    fn is_for(&self, hit: &HitHead<'_>) -> bool {
        self.age_secs == hit.age_secs
            && self.ttl_secs == hit.ttl_secs
            && self.x_cache_status == hit.x_cache_status
            && self.cache_status.as_deref() == hit.cache_status
    }
}

struct Set {
    ways: [Option<Head>; WAYS],
    /// The way a new entry takes when every way is in use.
    next: usize,
    /// The address of the entry last hit here without a head, and the age
    /// of that hit in whole seconds.
    seen: (usize, u64),
}

const EMPTY_SET: Set = Set {
    ways: [const { None }; WAYS],
    next: 0,
    seen: (0, 0),
};

thread_local! {
    static HEADS: RefCell<[Set; SETS]> = const { RefCell::new([EMPTY_SET; SETS]) };
}

/// What this thread's table holds for a hit.
enum Found {
    Head(HeaderMap),
    /// No head, but the entry was hit here already in the same second.
    Seen,
    Nothing,
}

/// The head of a hit of `entry`, as `render` makes it, unless this thread
/// rendered it for the same second already.
pub(crate) fn head(
    entry: &Arc<StoredResponse>,
    hit: &HitHead<'_>,
    render: impl FnOnce() -> HeaderMap,
) -> HeaderMap {
    match find(entry, hit) {
        Found::Head(headers) => headers,
        Found::Seen => {
            let headers = render();
            remember(entry, hit, &headers);
            headers
        }
        Found::Nothing => render(),
    }
}

fn set_of(entry: &Arc<StoredResponse>) -> usize {
    let address = Arc::as_ptr(entry) as usize as u64;
    ((address >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SETS
}

/// The head of `entry` for `hit`, or whether it was hit here in the same
/// second (noted for the next hit, if not).
fn find(entry: &Arc<StoredResponse>, hit: &HitHead<'_>) -> Found {
    let set = set_of(entry);
    let found = HEADS.try_with(|heads| {
        let mut heads = heads.borrow_mut();
        let set = &mut heads[set];
        let head = set.ways.iter().flatten().find(|head| head.is_of(entry));
        if let Some(head) = head.filter(|head| head.is_for(hit)) {
            return Found::Head(head.headers.clone());
        }
        let seen = (Arc::as_ptr(entry) as usize, hit.age_secs);
        if set.seen == seen {
            return Found::Seen;
        }
        set.seen = seen;
        Found::Nothing
    });
    found.unwrap_or(Found::Nothing)
}

fn remember(entry: &Arc<StoredResponse>, hit: &HitHead<'_>, headers: &HeaderMap) {
    let Some(headers) = own_copy(headers) else {
        return;
    };
    let head = Head {
        entry: Arc::downgrade(entry),
        cache_status: hit.cache_status.map(Box::from),
        x_cache_status: hit.x_cache_status,
        age_secs: hit.age_secs,
        ttl_secs: hit.ttl_secs,
        headers,
    };
    let set = set_of(entry);
    // A thread being torn down remembers nothing.
    let _ = HEADS.try_with(|heads| {
        let mut heads = heads.borrow_mut();
        let set = &mut heads[set];
        // The entry's own way (a head of an earlier second), a free one, or
        // the next in turn.
        let way = set
            .ways
            .iter()
            .position(|way| way.as_ref().is_some_and(|head| head.is_of(entry)))
            .or_else(|| set.ways.iter().position(Option::is_none))
            .unwrap_or_else(|| {
                let way = set.next;
                set.next = (way + 1) % WAYS;
                way
            });
        set.ways[way] = Some(head);
    });
}

/// `headers` with every value copied into one allocation of their own, or
/// `None` when they are too large to remember.
fn own_copy(headers: &HeaderMap) -> Option<HeaderMap> {
    let len = headers.values().map(HeaderValue::len).sum::<usize>();
    if len > MAX_REMEMBERED_BYTES {
        return None;
    }
    let mut buffer = Vec::with_capacity(len);
    for value in headers.values() {
        buffer.extend_from_slice(value.as_bytes());
    }
    let buffer = Bytes::from(buffer);
    // The same tables, each value replaced by its copy.
    let mut copy = headers.clone();
    let mut at = 0;
    for value in copy.values_mut() {
        let mut owned = HeaderValue::from_maybe_shared(buffer.slice(at..at + value.len())).ok()?;
        owned.set_sensitive(value.is_sensitive());
        at += value.len();
        *value = owned;
    }
    Some(copy)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Duration;

    use bytes::Bytes;
    use http::header::{AGE, CONTENT_TYPE};
    use http::{HeaderMap, HeaderValue, Response};

    use super::{HitHead, head};
    use crate::body::Collected;
    use crate::shared::StoredResponse;

    fn entry(content_type: &'static str) -> std::sync::Arc<StoredResponse> {
        let (mut parts, ()) = Response::new(()).into_parts();
        let value = HeaderValue::from_static(content_type);
        parts.headers.insert(CONTENT_TYPE, value);
        let body = Collected::new(Bytes::from_static(b"body"), None);
        std::sync::Arc::new(StoredResponse::new(parts, body, None, Duration::ZERO))
    }

    fn hit(age_secs: u64) -> HitHead<'static> {
        HitHead {
            cache_status: Some("shared-calls"),
            x_cache_status: false,
            age_secs,
            ttl_secs: 60,
        }
    }

    /// The head of `entry` as `head` gives it, and whether it was rendered.
    fn served(entry: &std::sync::Arc<StoredResponse>, hit: &HitHead<'_>) -> (HeaderMap, bool) {
        let rendered = Cell::new(false);
        let headers = head(entry, hit, || {
            rendered.set(true);
            let mut headers = entry.served_headers();
            headers.insert(AGE, HeaderValue::from(hit.age_secs));
            headers
        });
        (headers, rendered.get())
    }

    #[test]
    fn a_head_is_remembered_from_the_second_hit_of_a_second() {
        let entry = entry("text/plain");
        // Remembered at its second hit of a second.
        assert!(served(&entry, &hit(3)).1);
        assert!(served(&entry, &hit(3)).1);
        let (again, rendered) = served(&entry, &hit(3));
        assert!(!rendered);
        assert_eq!(again[AGE], "3");
        assert_eq!(again[CONTENT_TYPE], "text/plain");
        let (next_second, rendered) = served(&entry, &hit(4));
        assert!(rendered);
        assert_eq!(next_second[AGE], "4");
        assert!(served(&entry, &hit(4)).1);
        assert!(!served(&entry, &hit(4)).1);
        let other_name = HitHead {
            cache_status: Some("edge"),
            ..hit(4)
        };
        assert!(served(&entry, &other_name).1);
    }

    #[test]
    fn an_entry_in_the_place_of_a_dropped_one_gets_its_own_head() {
        for _ in 0..100 {
            let old = entry("text/old");
            served(&old, &hit(1));
            assert_eq!(served(&old, &hit(1)).0[CONTENT_TYPE], "text/old");
            drop(old);
            // Often at the same address as the one dropped.
            let new = entry("text/new");
            assert_eq!(served(&new, &hit(1)).0[CONTENT_TYPE], "text/new");
        }
    }

    #[test]
    fn a_remembered_head_holds_copies_of_the_entry_values() {
        let entry = entry("text/plain");
        served(&entry, &hit(9));
        served(&entry, &hit(9));
        let (remembered, rendered) = served(&entry, &hit(9));
        assert!(!rendered);
        let stored = entry.served_headers();
        let (ours, theirs) = (&remembered[CONTENT_TYPE], &stored[CONTENT_TYPE]);
        assert_eq!(ours, theirs);
        // Not a slice of the entry's buffer, which holds its body too.
        assert_ne!(ours.as_bytes().as_ptr(), theirs.as_bytes().as_ptr());
    }
}
