//! The bytes of an entry in the second tier: a versioned, checksummed
//! envelope around the codec's value, with the entry's lifetimes as absolute
//! wall-clock times so that every instance of a fleet agrees on freshness.
//!
//! ```text
//! magic "SCL2" | version u8 | kind u8 | loaded_at, fresh_until, stale_until,
//! error_until: u64 ms since the Unix epoch | key: u32 length + bytes |
//! value: u32 length + bytes | CRC-32 (IEEE) of everything before
//! ```
//!
//! All integers are big-endian. The key is kept so that a value stored under
//! another key (or by another program) is never taken for this one. Anything
//! that does not check out, whole, is `None`: a miss.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::Codec;
use crate::fetch::{Content, Entry};

const MAGIC: &[u8; 4] = b"SCL2";
const VERSION: u8 = 1;
const HEADER: usize = MAGIC.len() + 2 + 4 * 8;
const CHECKSUM: usize = 4;

const VALUE: u8 = 0;
const ABSENT: u8 = 1;
const HIT_FOR_MISS: u8 = 2;

/// The bytes of `entry` under `key`, and how long the tier should keep them
/// (until its last window ends); `None` when the codec keeps the value in
/// process or the entry has no time left.
pub(crate) fn encode<K: 'static, V: 'static>(
    codec: &dyn Codec<K, V>,
    key: &[u8],
    entry: &Entry<V>,
) -> Option<(Vec<u8>, Duration)> {
    let (now, wall_now) = (Instant::now(), SystemTime::now());
    let ends = entry
        .fresh_until()
        .max(entry.stale_until())
        .max(entry.error_until());
    let keep = ends
        .checked_duration_since(now)
        .filter(|keep| !keep.is_zero())?;
    let mut out = Vec::with_capacity(HEADER + key.len() + 64);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    let value = match &entry.content {
        Content::Value(value) => {
            out.push(VALUE);
            Some(value)
        }
        Content::Absent => {
            out.push(ABSENT);
            None
        }
        Content::HitForMiss => {
            out.push(HIT_FOR_MISS);
            None
        }
    };
    for instant in [
        entry.loaded_at(),
        entry.fresh_until(),
        entry.stale_until(),
        entry.error_until(),
    ] {
        out.extend_from_slice(&wall_millis(instant, now, wall_now).to_be_bytes());
    }
    put_field(&mut out, key)?;
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if let Some(value) = value
        && !codec.encode_value(value, &mut out)
    {
        return None;
    }
    let length = u32::try_from(out.len() - start - 4).ok()?;
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
    let checksum = crc32fast::hash(&out);
    out.extend_from_slice(&checksum.to_be_bytes());
    Some((out, keep))
}

/// The entry these bytes hold for `key`, with its lifetimes on this
/// instance's clock; `None` for anything corrupt, truncated or foreign.
pub(crate) fn decode<K: 'static, V: 'static>(
    codec: &dyn Codec<K, V>,
    key: &[u8],
    bytes: &[u8],
) -> Option<Entry<V>> {
    let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(CHECKSUM)?)?;
    if crc32fast::hash(body).to_be_bytes() != checksum {
        return None;
    }
    let (header, rest) = body.split_at_checked(HEADER)?;
    if &header[..4] != MAGIC || header[4] != VERSION {
        return None;
    }
    let kind = header[5];
    let (now, wall_now) = (Instant::now(), SystemTime::now());
    let mut times = header[6..]
        .chunks_exact(8)
        .map(|millis| local_instant(u64::from_be_bytes(millis.try_into().ok()?), now, wall_now));
    let [loaded_at, fresh_until, stale_until, error_until] = [
        times.next()??,
        times.next()??,
        times.next()??,
        times.next()??,
    ];
    if stale_until < fresh_until || error_until < fresh_until {
        return None;
    }
    let (stored_key, rest) = take_field(rest)?;
    let (value, rest) = take_field(rest)?;
    if stored_key != key || !rest.is_empty() {
        return None;
    }
    let content = match (kind, value.is_empty()) {
        (VALUE, _) => Content::Value(codec.decode_value(value)?),
        (ABSENT, true) => Content::Absent,
        (HIT_FOR_MISS, true) => Content::HitForMiss,
        _ => return None,
    };
    // The revalidation window stays with the instance that loaded.
    Some(Entry::with_ends(
        content,
        loaded_at,
        fresh_until,
        [stale_until, error_until, stale_until.max(error_until)],
    ))
}

fn put_field(out: &mut Vec<u8>, field: &[u8]) -> Option<()> {
    out.extend_from_slice(&u32::try_from(field.len()).ok()?.to_be_bytes());
    out.extend_from_slice(field);
    Some(())
}

fn take_field(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (length, rest) = bytes.split_at_checked(4)?;
    let length = u32::from_be_bytes(length.try_into().ok()?) as usize;
    rest.split_at_checked(length)
}

/// `instant` on the wall clock, in milliseconds since the Unix epoch.
fn wall_millis(instant: Instant, now: Instant, wall_now: SystemTime) -> u64 {
    let wall = match instant.checked_duration_since(now) {
        Some(ahead) => wall_now.checked_add(ahead),
        None => wall_now.checked_sub(now.duration_since(instant)),
    };
    wall.and_then(|wall| wall.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// A wall-clock time on this instance's monotonic clock; `None` when it is
/// beyond what the clock can hold. Times before this process's clock can
/// reach become its earliest instant, which is just as past.
fn local_instant(millis: u64, now: Instant, wall_now: SystemTime) -> Option<Instant> {
    let wall = UNIX_EPOCH.checked_add(Duration::from_millis(millis))?;
    Some(match wall.duration_since(wall_now) {
        Ok(ahead) => now.checked_add(ahead)?,
        Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::l2::TextCodec;

    const STRINGS: &dyn Codec<String, String> = &TextCodec;

    fn entry(content: Content<String>) -> Entry<String> {
        let now = Instant::now();
        let secs = Duration::from_secs;
        Entry::with_ends(
            content,
            now,
            now + secs(10),
            [now + secs(20), now + secs(30), now + secs(30)],
        )
    }

    #[test]
    fn an_entry_round_trips_with_its_lifetimes_to_the_millisecond() {
        let original = entry(Content::Value("v".into()));
        let (bytes, keep) = encode(STRINGS, b"k", &original).unwrap();
        assert!(keep > Duration::from_secs(29) && keep <= Duration::from_secs(30));
        let decoded = decode(STRINGS, b"k", &bytes).unwrap();
        assert!(matches!(&decoded.content, Content::Value(v) if v == "v"));
        for (a, b) in [
            (original.fresh_until(), decoded.fresh_until()),
            (original.stale_until(), decoded.stale_until()),
            (original.error_until(), decoded.error_until()),
        ] {
            let gap = a.max(b) - a.min(b);
            assert!(gap <= Duration::from_millis(2), "{gap:?}");
        }
    }

    #[test]
    fn absent_and_hit_for_miss_entries_round_trip() {
        for content in [Content::Absent, Content::HitForMiss] {
            let (bytes, _) = encode(STRINGS, b"k", &entry(content.clone())).unwrap();
            let decoded = decode(STRINGS, b"k", &bytes).unwrap();
            assert_eq!(
                std::mem::discriminant(&decoded.content),
                std::mem::discriminant(&content)
            );
        }
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_a_miss() {
        let (bytes, _) = encode(STRINGS, b"k", &entry(Content::Value("value".into()))).unwrap();
        for length in 0..bytes.len() {
            assert!(
                decode(STRINGS, b"k", &bytes[..length]).is_none(),
                "{length}"
            );
        }
        for at in 0..bytes.len() {
            let mut corrupt = bytes.clone();
            corrupt[at] ^= 0x40;
            assert!(decode(STRINGS, b"k", &corrupt).is_none(), "byte {at}");
        }
    }

    #[test]
    fn a_value_stored_under_another_key_or_foreign_bytes_is_a_miss() {
        let (bytes, _) = encode(STRINGS, b"k", &entry(Content::Value("v".into()))).unwrap();
        assert!(decode(STRINGS, b"other", &bytes).is_none());
        assert!(decode(STRINGS, b"k", b"plain text someone else wrote").is_none());
        assert!(decode(STRINGS, b"k", &[]).is_none());
    }

    #[test]
    fn an_expired_entry_is_not_written() {
        let now = Instant::now();
        let old = Entry::with_ends(Content::Value("v".into()), now, now, [now; 3]);
        assert!(encode(STRINGS, b"k", &old).is_none());
    }
}
