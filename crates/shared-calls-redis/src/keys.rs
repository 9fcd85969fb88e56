//! Redis key names: a prefix, a hash tag, a role and the cache's key.
//!
//! `<prefix>{<tag>}:<role>:<key>` where the tag is a hash of the key: an
//! entry, its fill lock and its invalidation generation share the tag, so
//! they live in one cluster slot and one script may touch all three.

/// The Redis keys of one cache key, named when asked for.
#[derive(Debug)]
pub(crate) struct Keys<'a> {
    tag: String,
    key: &'a [u8],
}

impl<'a> Keys<'a> {
    pub(crate) fn new(prefix: &str, key: &'a [u8]) -> Self {
        Self {
            tag: format!("{prefix}{{{:016x}}}:", fnv1a(key)),
            key,
        }
    }

    fn name(&self, role: &str) -> Vec<u8> {
        let mut name = Vec::with_capacity(self.tag.len() + role.len() + self.key.len());
        name.extend_from_slice(self.tag.as_bytes());
        name.extend_from_slice(role.as_bytes());
        name.extend_from_slice(self.key);
        name
    }

    pub(crate) fn entry(&self) -> Vec<u8> {
        self.name("e:")
    }

    pub(crate) fn lock(&self) -> Vec<u8> {
        self.name("l:")
    }

    pub(crate) fn generation(&self) -> Vec<u8> {
        self.name("g:")
    }
}

/// Whether `prefix` keeps the hash tag ours: no braces in it.
pub(crate) fn valid_prefix(prefix: &str) -> bool {
    !prefix.contains(['{', '}'])
}

/// FNV-1a, 64 bits: stable across processes and versions, which the tag
/// must be (every instance must name a key alike).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &[u8]) -> &[u8] {
        let open = name.iter().position(|&b| b == b'{').unwrap();
        let close = open + name[open..].iter().position(|&b| b == b'}').unwrap();
        &name[open + 1..close]
    }

    #[test]
    fn an_entry_its_lock_and_its_generation_share_one_hash_tag() {
        let keys = Keys::new("app:", b"https://a/{weird}key");
        assert_eq!(tag(&keys.entry()), tag(&keys.lock()));
        assert_eq!(tag(&keys.entry()), tag(&keys.generation()));
        assert!(keys.entry().starts_with(b"app:{"));
        assert!(keys.entry().ends_with(b":e:https://a/{weird}key"));
    }

    #[test]
    fn different_keys_have_different_names() {
        assert_ne!(Keys::new("p:", b"a").entry(), Keys::new("p:", b"b").entry());
    }

    #[test]
    fn a_prefix_with_braces_is_refused() {
        assert!(valid_prefix("shared-calls:"));
        assert!(!valid_prefix("a{b}:"));
    }
}
