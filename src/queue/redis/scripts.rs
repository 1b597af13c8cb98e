//! The Lua scripts the queue runs: each one step that must be atomic on the stream.

use std::sync::LazyLock;

use redis::Script;

/// `XADD` only while `XLEN` is under the bound: a full stream refuses, it never trims
/// unprocessed entries. KEYS[1] stream; ARGV[1] max length; ARGV[2..] field/value pairs.
pub(super) static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))",
    )
});

/// Done with an entry: acknowledge and delete it, so `XLEN` counts only unfinished entries.
/// KEYS[1] stream; ARGV[1] group; ARGV[2] entry id.
pub(super) static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])",
    )
});

/// Move an entry to the dead-letter stream, then acknowledge and delete it, atomically.
/// KEYS[1] stream, KEYS[2] dead-letter stream; ARGV[1] group; ARGV[2] entry id; ARGV[3..] pairs.
pub(super) static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return id",
    )
});

/// Heartbeat: reset the idle time of an entry we still own, so `XAUTOCLAIM` leaves it alone.
/// KEYS[1] stream; ARGV[1] group; ARGV[2] consumer; ARGV[3] entry id.
pub(super) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if pending[1] and pending[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  return 1
end
return 0",
    )
});
