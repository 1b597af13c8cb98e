//! Never twice, never lost: two-phase deduplication of deliveries by `event_id`.
//!
//! Vobiz retries a delivery until it gets a 2xx, so the same `event_id` can arrive twice, even
//! twice at once. A [`DedupStore`] remembers ids in two phases:
//!
//! 1. [`claim`](DedupStore::claim) before the handler runs. The first caller gets
//!    [`Claim::Fresh`] with a [`ClaimToken`]; everyone else gets [`Claim::InFlight`] while the
//!    claim is live (for the *lease*), or [`Claim::Done`] once it is completed.
//! 2. After the handler: [`complete`](DedupStore::complete) on success, which remembers the id
//!    as done for the *TTL*; [`release`](DedupStore::release) on failure, which forgets the claim
//!    so the sender's retry runs the handler again.
//!
//! Both settle calls are *fenced* by the token: a late finisher whose lease expired and whose id
//! was claimed again by someone else can neither complete nor release the other's claim.
//! [`renew`](DedupStore::renew) is fenced the same way: it extends a claim's lease only for
//! the token that owns it, and tells a long run (a queue worker) whether it still does.
//!
//! ```
//! use std::time::Duration;
//! use vobiz_webhooks::{Claim, DedupStore, EventKey, MemoryStore};
//!
//! # async fn run() -> Result<(), vobiz_webhooks::StoreError> {
//! let store = MemoryStore::new();
//! let key = EventKey::from_event_id("f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f");
//!
//! let Claim::Fresh(token) = store.claim(&key, Duration::from_secs(60)).await? else {
//!     unreachable!("a new id is fresh");
//! };
//! // A retry while the handler runs: in flight, not run again.
//! assert_eq!(store.claim(&key, Duration::from_secs(60)).await?, Claim::InFlight);
//! // The handler succeeded: remember the id for a day.
//! assert!(store.complete(&key, &token, Duration::from_secs(86_400)).await?);
//! assert_eq!(store.claim(&key, Duration::from_secs(60)).await?, Claim::Done);
//! # Ok(()) }
//! # futures_util::FutureExt::now_or_never(run()).unwrap().unwrap();
//! ```
//!
//! # Backends
//!
//! | store | feature | shared by | bytes per remembered id (1 M ids) | claim + complete | never forgets a live claim |
//! |---|---|---|---|---|---|
//! | [`MemoryStore`] (default) | — | one process | **53 B** resident | ~0.35 µs | yes: refuses with `CapacityExhausted` instead |
//! | `MokaStore` | `moka` | one process | ~370 B resident | ~2 µs | yes: live claims sit outside the LRU; refuses with `CapacityExhausted` when full of them |
//! | `RedisStore` | `redis` | every replica | ~160 B of Redis `used_memory` | one loopback round trip in the response, the completion behind it | yes, if Redis does not evict keys |
//!
//! - **[`MemoryStore`]** is the default: up to 64 shards, each a mutex over a hash map of 16-byte
//!   keys to one packed `u64` (state, deadline in ms, token). One atomic count bounds the whole
//!   store, so a store of capacity *n* remembers all of *n* ids. When full, a new id first drops
//!   expired entries, then the completed entries closest to expiry, 1/32 of a shard at a time. It
//!   never drops an in-flight claim whose lease runs: if only live claims are left, `claim` fails
//!   with [`StoreErrorKind::CapacityExhausted`] (503, the sender retries) rather than forget one
//!   and run a handler twice. Expiry is lazy; no background thread. Clones share the memory;
//!   `len()` and `capacity()` report it.
//! - **`MokaStore`** (`moka` feature) keeps completed ids in a `moka::sync::Cache` with
//!   `EvictionPolicy::lru()` and per-entry expiry (the TTL), and live claims beside it in a map
//!   the cache cannot evict from (bounded by the same capacity; full → `CapacityExhausted`).
//!   Never use moka's default TinyLFU for dedup: its admission refuses new keys when full, and
//!   the refused id is then reported fresh twice.
//! - **`RedisStore`** (`redis` feature, Redis ≥ 7 or Valkey), for several replicas. Claim is one
//!   round trip, `SET key token NX PX lease GET` (nil → fresh, `done` → done, a token → in
//!   flight); complete and release are one-key compare-and-set scripts sent with `EVAL`. One key
//!   per id (`prefix` + 32 hex digits; default prefix `vobiz:dedup:`). `RedisStore::new(url)`
//!   connects with fail-fast settings (1 s connect, 1 s response) and reconnects by itself when
//!   Redis is back; `RedisStore::from_manager(..)` takes a `ConnectionManager` you configured
//!   (TLS, auth, timeouts). `new` asks the server its version and refuses one older than 7.0
//!   by name, instead of failing every claim later.
//!
//! What Redis must promise for "never twice" to hold:
//!
//! - **`maxmemory-policy noeviction`.** Every eviction policy (`volatile-ttl` first of all:
//!   live claims have the shortest TTLs) can drop a live claim or a done mark, and then a retry
//!   runs the handler beside or after the first run. With `noeviction` a full Redis refuses
//!   writes instead: claims fail, the layer answers 503 and Vobiz retries later.
//! - **Persistence, if "done" must survive a restart:** `appendonly yes` with
//!   `appendfsync everysec` loses at most about a second of claims and done marks on a crash;
//!   without persistence a restarted Redis forgets every done mark, and a redelivery of an event
//!   handled before the restart runs the handler again.
//! - **Replication is asynchronous.** On a failover the new primary may lack the last claims
//!   and done marks the old one acknowledged, so a redelivery arriving then may run again. That
//!   is a limit of Redis replication, not something a client can close: keep handlers
//!   idempotent on WhatsApp's own ids (`wamid`, call ids) where a second run would hurt.
//!
//! `Arc<S>` is a `DedupStore` when `S` is, so one store can serve several layers. Every backend
//! passes the same conformance suite (`tests/` in the repository).
//!
//! # Keys
//!
//! [`EventKey::from_event_id`] turns an id into 16 bytes. Every usual spelling of one UUID
//! (hyphenated, 32 hex digits, `{braced}`, `urn:uuid:…`, upper or lower case) is the same key.
//! Anything that is not a UUID is still accepted and keyed by a domain-separated SHA-256 digest
//! (its first 16 bytes).
//!
//! # Sizing the TTL, the capacity and the lease
//!
//! - **TTL** (the layer's [`ttl`](crate::VobizWebhookLayer::ttl), default 24 h) must outlast
//!   Vobiz's retry window: an id forgotten before Vobiz stops retrying runs the handler again.
//!   Vobiz does not publish the window; 24 h is generous.
//! - **Capacity** ≥ deliveries per second × TTL in seconds, plus headroom. With `MemoryStore` at
//!   ~53 bytes an id: 1/s for 24 h is 86,400 ids (~4.6 MB); 10/s, 864,000 ids (~46 MB); 50/s,
//!   4.3 M ids (~230 MB). When the store is full the oldest completed ids go first, so an
//!   undersized store shortens the effective TTL rather than failing; it only refuses (503) when
//!   it is full of *live* claims.
//! - **Lease** (the layer's [`lease`](crate::VobizWebhookLayer::lease), default 60 s) must
//!   outlast your slowest handler: a handler still running when its lease ends is cancelled and
//!   the delivery answered 503 + `Retry-After`, so it never runs beside a retry that claims the
//!   expired id. For slow work use queue mode.
//!
//! The figures above and the commands that reproduce them (a footprint test reading resident
//! memory around one million ids, criterion benches per backend) are in `bench/README.md`.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::signature::decode_hex;

/// The capacity of [`MemoryStore::new`] (and `MokaStore::new`): one million ids, about 53 MB
/// when a `MemoryStore` is full.
pub const DEFAULT_CAPACITY: usize = 1_000_000;

/// `RedisStore`'s key prefix unless its `prefix` sets another.
#[cfg(feature = "redis")]
pub const DEFAULT_PREFIX: &str = "vobiz:dedup:";

mod memory;
#[cfg(feature = "moka")]
mod moka;
#[cfg(feature = "redis")]
pub(crate) mod redis;

#[cfg(feature = "moka")]
pub use self::moka::MokaStore;
#[cfg(feature = "redis")]
pub use self::redis::{RedisConfig, RedisStore, RedisTopology};
pub use memory::MemoryStore;

/// Remembers which `event_id`s were handled, in two phases: claim, then complete or release.
///
/// Every method is atomic per key. See the [module docs](self) for the protocol.
///
/// Implement it for your own backend and run it through the same conformance cases the crate's
/// backends pass (`tests/dedup/conformance.rs` in the repository).
pub trait DedupStore: Send + Sync + 'static {
    /// Claims `key` for one handler run.
    ///
    /// Atomically: when the key is absent or its entry expired, stores an in-flight claim with a
    /// new token, live for `lease`, and answers [`Claim::Fresh`]; when an in-flight claim is live,
    /// answers [`Claim::InFlight`]; when a completed entry is live, answers [`Claim::Done`].
    fn claim(
        &self,
        key: &EventKey,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks the claim done, remembered for `ttl`, if `token` still owns a live in-flight claim.
    ///
    /// Answers `Ok(true)` when it did, `Ok(false)` when the token no longer owns the claim (the
    /// lease expired, the claim was released, or someone else claimed the id since).
    fn complete(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets the claim, if `token` still owns a live in-flight claim, so the next delivery of
    /// the id is [`Claim::Fresh`].
    ///
    /// Answers `Ok(true)` when it did, `Ok(false)` otherwise. Never deletes a done entry or
    /// another owner's claim.
    fn release(
        &self,
        key: &EventKey,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Checks that `token` still owns a live in-flight claim of `key` and, if it does, keeps the
    /// claim live for at least `lease` from now.
    ///
    /// Answers `Ok(true)` when the claim is ours and its lease was extended, `Ok(false)` when the
    /// token no longer owns it (the lease expired, the claim was released or completed, or
    /// someone else claimed the id since); then nothing changes. The queue's workers call it
    /// before running a queued event and while its handler runs, so a run never continues
    /// beside the claim's new owner.
    fn renew(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        lease: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// One store shared by several layers or services.
impl<T: DedupStore> DedupStore for Arc<T> {
    fn claim(
        &self,
        key: &EventKey,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        (**self).claim(key, lease)
    }

    fn complete(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).complete(key, token, ttl)
    }

    fn release(
        &self,
        key: &EventKey,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).release(key, token)
    }

    fn renew(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        lease: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).renew(key, token, lease)
    }
}

/// What [`DedupStore::claim`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The id is new (or its entry expired): this caller owns it until the lease ends, and settles
    /// it with the token.
    Fresh(ClaimToken),
    /// Another run holds a live claim on the id: its outcome is not known yet.
    InFlight,
    /// The id was handled successfully and is remembered.
    Done,
}

/// Proof of ownership of one claim, handed out by [`Claim::Fresh`]. Unique per claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimToken(u128);

impl ClaimToken {
    /// The token of that value: for code that carries a claim to another process (the Redis
    /// queue stores it in the stream entry) and settles it there with its own store.
    ///
    /// ```
    /// use vobiz_webhooks::ClaimToken;
    ///
    /// let token = ClaimToken::from_u128(0x2a);
    /// assert_eq!(ClaimToken::from_u128(token.as_u128()), token);
    /// ```
    pub const fn from_u128(value: u128) -> Self {
        Self(value)
    }

    /// The token's value, to carry it to another process; see [`from_u128`](Self::from_u128).
    pub const fn as_u128(&self) -> u128 {
        self.0
    }
}

/// A 128-bit store key derived from an `event_id`.
///
/// A UUID, in any of its usual spellings (hyphenated, 32 hex digits, braced, `urn:uuid:`, either
/// case), becomes its 16 bytes, so every spelling of one UUID is one key. Anything else is still
/// accepted and becomes the first 16 bytes of a domain-separated SHA-256 digest.
///
/// ```
/// use vobiz_webhooks::EventKey;
///
/// let a = EventKey::from_event_id("f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f");
/// let b = EventKey::from_event_id("{F4C1A0D2-3B6E-4A9C-8E2F-0A1B2C3D4E5F}");
/// assert_eq!(a, b);
/// assert_eq!(a.to_string(), "f4c1a0d23b6e4a9c8e2f0a1b2c3d4e5f");
///
/// // Not a UUID: still a key, never an error.
/// let c = EventKey::from_event_id("evt_42");
/// assert_ne!(a, c);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventKey([u8; 16]);

/// Prefix hashed before a non-UUID id, so digests live in their own domain.
const DIGEST_DOMAIN: &[u8] = b"vobiz-webhooks/event-id/v1\0";

impl EventKey {
    /// The key of `id`: its UUID bytes, or a digest when `id` is not a UUID.
    pub fn from_event_id(id: &str) -> EventKey {
        match parse_uuid(id) {
            Some(bytes) => EventKey(bytes),
            None => {
                let digest = Sha256::new()
                    .chain_update(DIGEST_DOMAIN)
                    .chain_update(id.as_bytes())
                    .finalize();
                let mut bytes = [0; 16];
                bytes.copy_from_slice(&digest[..16]);
                EventKey(bytes)
            }
        }
    }

    /// A key from 16 raw bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> EventKey {
        EventKey(bytes)
    }

    /// The 16 bytes of the key.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// 32 lowercase hex digits.
impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; 32];
        // Cannot fail: the buffer is exactly twice the input.
        if hex::encode_to_slice(self.0, &mut text).is_err() {
            return Err(fmt::Error);
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl From<&str> for EventKey {
    fn from(id: &str) -> Self {
        EventKey::from_event_id(id)
    }
}

/// Parses the usual spellings of a UUID (RFC 9562): `8-4-4-4-12` hyphenated, 32 hex digits,
/// either wrapped in braces or after a case-insensitive `urn:uuid:`; hex digits in either case.
///
/// Hand-written rather than the `uuid` crate: the whole job is 30 lines, allocation free, and
/// keeps the dependency tree as it is.
fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let mut s = text.as_bytes();
    if s.len() >= 9 && s[..9].eq_ignore_ascii_case(b"urn:uuid:") {
        s = &s[9..];
    } else if let [b'{', inner @ .., b'}'] = s {
        s = inner;
    }
    let mut out = [0u8; 16];
    match s.len() {
        32 => {
            decode_hex(s, &mut out)?;
        }
        36 => {
            if s[8] != b'-' || s[13] != b'-' || s[18] != b'-' || s[23] != b'-' {
                return None;
            }
            // 8-4-4-4-12 digits: 4, 2, 2, 2 and 6 bytes.
            decode_hex(&s[0..8], &mut out[0..4])?;
            decode_hex(&s[9..13], &mut out[4..6])?;
            decode_hex(&s[14..18], &mut out[6..8])?;
            decode_hex(&s[19..23], &mut out[8..10])?;
            decode_hex(&s[24..36], &mut out[10..16])?;
        }
        _ => return None,
    }
    Some(out)
}

/// What kind of failure a [`StoreError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store cannot be reached (connection refused, dropped, not yet reconnected).
    Unavailable,
    /// The store did not answer in time.
    Timeout,
    /// The store answered something this crate does not understand (wrong type, old server).
    Protocol,
    /// An in-process store is full of live in-flight claims: it refuses to forget one.
    CapacityExhausted,
    /// Any other failure; see the source.
    Other,
}

impl StoreErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::Unavailable => "dedup store unavailable",
            Self::Timeout => "dedup store timed out",
            Self::Protocol => "dedup store answered unexpectedly",
            Self::CapacityExhausted => "dedup store full of in-flight claims",
            Self::Other => "dedup store failed",
        }
    }
}

/// A [`DedupStore`] could not answer. The layer fails closed on it (503 + `Retry-After`).
///
/// ```
/// use std::error::Error;
/// use vobiz_webhooks::{StoreError, StoreErrorKind};
///
/// let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let error = StoreError::new(StoreErrorKind::Unavailable, io);
/// assert_eq!(error.kind(), StoreErrorKind::Unavailable);
/// assert!(error.source().is_some());
/// assert!(error.to_string().starts_with("dedup store unavailable"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct StoreError {
    kind: StoreErrorKind,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl StoreError {
    /// An error of `kind` caused by `source`.
    pub fn new(kind: StoreErrorKind, source: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self {
            kind,
            source: Some(source.into()),
        }
    }

    /// An error of `kind` with no underlying cause.
    pub fn from_kind(kind: StoreErrorKind) -> Self {
        Self { kind, source: None }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.describe())?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn Error + 'static))
    }
}

/// `duration` in whole milliseconds, rounded up so a deadline is never early.
pub(crate) fn millis_ceil(duration: Duration) -> u64 {
    let millis = duration.as_millis();
    let rounded = if duration.subsec_nanos() % 1_000_000 == 0 {
        millis
    } else {
        millis + 1
    };
    u64::try_from(rounded).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BYTES: [u8; 16] = [
        0xf4, 0xc1, 0xa0, 0xd2, 0x3b, 0x6e, 0x4a, 0x9c, 0x8e, 0x2f, 0x0a, 0x1b, 0x2c, 0x3d, 0x4e,
        0x5f,
    ];

    #[test]
    fn every_spelling_of_a_uuid_is_its_bytes() {
        for spelling in [
            "f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f",
            "F4C1A0D2-3B6E-4A9C-8E2F-0A1B2C3D4E5F",
            "f4c1a0d2-3B6E-4a9c-8E2F-0a1b2c3d4e5f",
            "f4c1a0d23b6e4a9c8e2f0a1b2c3d4e5f",
            "F4C1A0D23B6E4A9C8E2F0A1B2C3D4E5F",
            "{f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f}",
            "{F4C1A0D23B6E4A9C8E2F0A1B2C3D4E5F}",
            "urn:uuid:f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f",
            "URN:UUID:F4C1A0D2-3B6E-4A9C-8E2F-0A1B2C3D4E5F",
            "urn:uuid:f4c1a0d23b6e4a9c8e2f0a1b2c3d4e5f",
        ] {
            let key = EventKey::from_event_id(spelling);
            assert_eq!(key.as_bytes(), &BYTES, "{spelling}");
            assert_eq!(key.to_string(), "f4c1a0d23b6e4a9c8e2f0a1b2c3d4e5f");
        }
    }

    #[test]
    fn anything_else_is_a_domain_separated_digest() {
        let near_misses = [
            "",
            "evt_42",
            "f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5", // one digit short
            "f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5fa", // one digit long
            "f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5g", // not hex
            "f4c1a0d23-b6e-4a9c-8e2f-0a1b2c3d4e5f", // hyphen misplaced
            "{f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f", // unclosed brace
            " f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f", // whitespace is part of the id
            "urn:uuid:{f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f}",
            "f4c1a0d2+3b6e+4a9c+8e2f+0a1b2c3d4e5f",
            "f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4é5",
        ];
        let mut seen = std::collections::HashSet::new();
        for id in near_misses {
            assert_eq!(parse_uuid(id), None, "{id:?}");
            let key = EventKey::from_event_id(id);
            assert_ne!(key.as_bytes(), &BYTES, "{id:?}");
            let expected = Sha256::new()
                .chain_update(DIGEST_DOMAIN)
                .chain_update(id.as_bytes())
                .finalize();
            assert_eq!(key.as_bytes()[..], expected[..16], "{id:?}");
            assert!(seen.insert(key), "{id:?} collides");
        }
        // Deterministic: the same id is the same key in every process.
        assert_eq!(
            EventKey::from_event_id("evt_42"),
            EventKey::from_event_id("evt_42")
        );
    }

    #[test]
    fn display_is_32_lowercase_hex() {
        let key = EventKey::from_event_id("evt_42");
        let text = key.to_string();
        assert_eq!(text.len(), 32);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(text, hex::encode(key.as_bytes()));
    }

    #[test]
    fn store_error_keeps_kind_and_source() {
        let error = StoreError::from_kind(StoreErrorKind::CapacityExhausted);
        assert!(error.source().is_none());
        assert_eq!(error.to_string(), "dedup store full of in-flight claims");
        fn assert_bounds<T: Error + Send + Sync + 'static>() {}
        assert_bounds::<StoreError>();
    }

    #[test]
    fn millis_round_up() {
        assert_eq!(millis_ceil(Duration::from_millis(50)), 50);
        assert_eq!(millis_ceil(Duration::from_micros(50_001)), 51);
        assert_eq!(millis_ceil(Duration::MAX), u64::MAX);
    }
}
