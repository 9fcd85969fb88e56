//! The Lua scripts that make the fill lock and invalidation atomic. Each
//! touches only the keys of one cache key, which share a cluster slot.

use std::sync::LazyLock;

use redis::Script;

/// `KEYS`: lock, generation, entry. `ARGV`: token, expiry in ms.
/// Returns `{1 if taken, generation, entry or false}`.
pub(crate) static LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local taken = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
        local generation = redis.call('GET', KEYS[2]) or '0'
        local entry = redis.call('GET', KEYS[3])
        if taken then return {1, generation, entry} end
        return {0, generation, entry}
        ",
    )
});

/// `KEYS`: entry, lock, generation. `ARGV`: value ('' for none), keep in
/// ms, token ('' for none), generation seen at lock time.
/// Stores unless an invalidation came since; releases the lock if the
/// token still holds it (compare-and-delete). Returns 1 if stored.
pub(crate) static FILL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local stored = 0
        if ARGV[1] ~= '' and (redis.call('GET', KEYS[3]) or '0') == ARGV[4] then
            redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
            stored = 1
        end
        if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then
            redis.call('DEL', KEYS[2])
        end
        return stored
        ",
    )
});

/// `KEYS`: entry, lock. Returns `{entry or false, 1 if the lock is held}`.
pub(crate) static PEEK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        return {redis.call('GET', KEYS[1]), redis.call('EXISTS', KEYS[2])}
        ",
    )
});

/// `KEYS`: entry, generation. `ARGV`: how long to remember the generation,
/// in ms. Bumps the generation (a fill that saw an older one stores
/// nothing) and deletes the entry.
pub(crate) static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        redis.call('INCR', KEYS[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[1])
        redis.call('DEL', KEYS[1])
        return 1
        ",
    )
});
