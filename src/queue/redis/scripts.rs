//! The Lua scripts the queue runs: each one step that must be atomic on the stream.
//!
//! Besides the stream, each queued event has a *record*, `<prefix>entry:<32 hex key>`, a hash
//! `{id, token, attempts}` in the stream's hash slot: the entry that carries the event, the
//! claim token that entry's runs settle with, and how many handler attempts were started. It is
//! made with the entry, deleted when the entry is acknowledged or dead-lettered, and expires
//! after the claim's TTL in case an entry goes some other way.

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

/// A call of `script` on `keys`, which are the keys of one partition (see `keys.rs`, whose
/// tests check that they share a hash slot on a cluster).
pub(super) fn call<'a>(script: &'a Script, keys: &[&str]) -> ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(*key);
    }
    invocation
}

/// `XADD` once per event: while the event's recorded entry is still in the stream, no second
/// entry is added; the record takes the new claim token over (the claim now belongs to that
/// entry) and the answer is `{id, 0}`. Otherwise `XADD` only while `XLEN` is under the bound (a
/// full stream refuses, it never trims unprocessed entries), record the entry, answer
/// `{id, 1}`. `KEYS[1]` stream, `KEYS[2]` record; `ARGV[1]` max length; `ARGV[2]` claim token
/// (empty: none); `ARGV[3]` record expiry in ms; `ARGV[4..]` field/value pairs.
pub(super) static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local queued = redis.call('HGET', KEYS[2], 'id')
if queued and #redis.call('XRANGE', KEYS[1], queued, queued) > 0 then
  if ARGV[2] ~= '' then redis.call('HSET', KEYS[2], 'token', ARGV[2]) end
  return {queued, 0}
end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'id', id, 'token', ARGV[2], 'attempts', 0)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {id, 1}",
    )
});

/// Done with an entry: acknowledge and delete it, so `XLEN` counts only unfinished entries, and
/// its record. `KEYS[1]` stream, `KEYS[2]` record; `ARGV[1]` group; `ARGV[2]` entry id.
pub(super) static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if redis.call('HGET', KEYS[2], 'id') == ARGV[2] then redis.call('DEL', KEYS[2]) end
return redis.call('XDEL', KEYS[1], ARGV[2])",
    )
});

/// Move an entry to the dead-letter stream, then acknowledge and delete it and its record,
/// atomically. `KEYS[1]` stream, `KEYS[2]` dead-letter stream, `KEYS[3]` record; `ARGV[1]` group;
/// `ARGV[2]` entry id; ARGV[3..] pairs.
pub(super) static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
if redis.call('HGET', KEYS[3], 'id') == ARGV[2] then redis.call('DEL', KEYS[3]) end
return id",
    )
});

/// Heartbeat: reset the idle time of an entry we still own, so `XAUTOCLAIM` leaves it alone.
/// Answers nil when the entry is not ours any more, else the record's claim token (empty when
/// the record is not this entry's). `KEYS[1]` stream, `KEYS[2]` record; `ARGV[1]` group; `ARGV[2]`
/// consumer; `ARGV[3]` entry id.
pub(super) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not (pending[1] and pending[1][2] == ARGV[2]) then return false end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
if redis.call('HGET', KEYS[2], 'id') == ARGV[3] then
  return redis.call('HGET', KEYS[2], 'token') or ''
end
return ''",
    )
});

/// Pick an entry up: touch it as [`TOUCH`] does (nil when it is not ours), make its record when
/// it has none (an entry queued without one), and answer `{1, token, attempts started, last
/// failure}`, or `{0, '', 0, ''}` when the record belongs to another entry of the same event.
/// `KEYS[1]` stream, `KEYS[2]` record; `ARGV[1]` group; `ARGV[2]` consumer; `ARGV[3]` entry id;
/// `ARGV[4]` the entry's own claim token; `ARGV[5]` record expiry in ms.
pub(super) static PICKUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not (pending[1] and pending[1][2] == ARGV[2]) then return false end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
local id = redis.call('HGET', KEYS[2], 'id')
if not id then
  redis.call('HSET', KEYS[2], 'id', ARGV[3], 'token', ARGV[4], 'attempts', 0)
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  id = ARGV[3]
end
if id ~= ARGV[3] then return {0, '', 0, ''} end
local record = redis.call('HMGET', KEYS[2], 'token', 'attempts', 'error')
return {1, record[1] or '', tonumber(record[2] or '0'), record[3] or ''}",
    )
});

/// A handler attempt starts: count it in the record (and keep the record as long as the claim's
/// TTL from now). Answers the attempts started, this one included, or -1 when the record is not
/// this entry's. `KEYS[1]` record; `ARGV[1]` entry id; `ARGV[2]` record expiry in ms.
pub(super) static ATTEMPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)",
    )
});

/// A worker claimed the event anew: its token is now the entry's. `KEYS[1]` record; `ARGV[1]`
/// entry id; `ARGV[2]` token.
pub(super) static SET_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'token', ARGV[2])
return 1",
    )
});

/// The record's claim token, if the record is this entry's (else empty). `KEYS[1]` record;
/// `ARGV[1]` entry id.
pub(super) static RECORD_TOKEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return '' end
return redis.call('HGET', KEYS[1], 'token') or ''",
    )
});

/// An attempt failed: keep its error in the record, for the dead letter of a later worker that
/// gives up. `KEYS[1]` record; `ARGV[1]` entry id; `ARGV[2]` error.
pub(super) static NOTE_FAILURE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'error', ARGV[2])
return 1",
    )
});
