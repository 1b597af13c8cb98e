//! [`MemoryStore`]: the compact in-process store.
//!
//! One role: the packed entry word, the shards and the key hashing exist only to serve this
//! store's claim, complete, release and renew. Its unit tests are in `tests.rs` beside it.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{millis_ceil, Claim, ClaimToken, DedupStore, EventKey, StoreError, StoreErrorKind};

/// One in-process memory of handled ids, shared by its clones, bounded, never forgetting a live
/// claim.
///
/// It holds at most [`capacity`](MemoryStore::capacity) ids (default
/// [`DEFAULT_CAPACITY`](super::DEFAULT_CAPACITY), one million). When it is full and a new id
/// arrives it first drops expired entries, then the completed entries closest to expiry (with
/// one TTL for all, the oldest completed). It never drops an in-flight claim whose lease is still
/// running: when the room it needs is held only by live claims, [`claim`](DedupStore::claim)
/// fails with [`StoreErrorKind::CapacityExhausted`] (the layer answers 503, the sender retries)
/// instead of forgetting one and running a handler twice.
///
/// Each remembered id costs about 53 bytes at one million ids (resident memory, measured by the
/// crate's `tests/dedup/footprint.rs`), and a claim plus its completion a few hundred
/// nanoseconds (`benches/dedup.rs`). Expired entries are dropped lazily, when touched or when
/// room is needed: no background thread.
///
/// ```
/// use std::time::Duration;
/// use vobiz_webhooks::{Claim, DedupStore, EventKey, MemoryStore};
///
/// # async fn run() -> Result<(), vobiz_webhooks::StoreError> {
/// let store = MemoryStore::with_capacity(100_000);
/// let shared = store.clone(); // the same memory
///
/// let key = EventKey::from_event_id("f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f");
/// let claim = store.claim(&key, Duration::from_secs(60)).await?;
/// assert!(matches!(claim, Claim::Fresh(_)));
/// assert_eq!(shared.claim(&key, Duration::from_secs(60)).await?, Claim::InFlight);
/// if let Claim::Fresh(token) = claim {
///     // The handler failed: forget the claim so the retry runs it again.
///     assert!(store.release(&key, &token).await?);
/// }
/// assert_eq!(shared.len(), 0);
/// assert_eq!(shared.capacity(), 100_000);
/// # Ok(()) }
/// # futures_util::FutureExt::now_or_never(run()).unwrap().unwrap();
/// ```
///
/// How it is built: the key's 16 bytes pick one of up to 64 shards, each a `Mutex` over a
/// `HashMap<[u8; 16], u64>`; the `u64` packs the state (in flight or done), the deadline in
/// milliseconds since the store was made (40 bits) and a per-shard claim counter (22 bits). The
/// packed word as the claim was made is its token, so fencing is a few bit comparisons (the
/// counter, and a deadline a renewal may only move later). One atomic count bounds the
/// whole store. When it is full, a shard makes room in one pass: it drops every expired entry
/// and, when that is not enough, the completed entries with the earliest deadlines, 1/16 of its
/// share at a time so the cost spreads over many claims. The new id's shard does so when it holds
/// at least its share; otherwise (or when it holds only live claims) the fullest other shards
/// do, one lock at a time. That keeps shards near their share, so "oldest first" holds across
/// the store, within about one batch per shard.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    epoch: Instant,
    seed: u64,
    capacity: usize,
    /// Entries held by all shards together; the capacity bounds this, not each shard.
    len: AtomicUsize,
    /// How many entries a shard frees when it makes room.
    batch: usize,
    /// A shard's fair share of the capacity.
    share: usize,
    shard_mask: usize,
    shards: Box<[PaddedShard]>,
}

/// A shard on its own cache line, so two cores locking neighbours do not fight over one.
#[repr(align(64))]
struct PaddedShard(Mutex<Shard>);

struct Shard {
    map: HashMap<Key, u64, KeyHashing>,
    next_token: u64,
}

// The packed entry: [state: 2][deadline ms since epoch: 40][token: 22].
const STATE_SHIFT: u32 = 62;
const IN_FLIGHT: u64 = 1 << STATE_SHIFT;
const DONE: u64 = 2 << STATE_SHIFT;
const STATE_MASK: u64 = 3 << STATE_SHIFT;
const DEADLINE_SHIFT: u32 = 22;
const DEADLINE_MAX: u64 = (1 << 40) - 1;
const TOKEN_MASK: u64 = (1 << DEADLINE_SHIFT) - 1;

const fn deadline(word: u64) -> u64 {
    (word >> DEADLINE_SHIFT) & DEADLINE_MAX
}

const fn is_expired(word: u64, now: u64) -> bool {
    deadline(word) <= now
}

const fn is_done(word: u64) -> bool {
    word & STATE_MASK == DONE
}

/// Shards are worth their cost from this many ids per shard on.
const IDS_PER_SHARD: usize = 4096;
const MAX_SHARDS: usize = 64;
/// A full store frees this fraction of a shard's share at once (at least one entry).
const EVICTION_DIVISOR: usize = 16;

impl MemoryStore {
    /// A store of [`DEFAULT_CAPACITY`](super::DEFAULT_CAPACITY) ids.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(super::DEFAULT_CAPACITY)
    }

    /// A store that remembers at most `capacity` ids (at least one).
    ///
    /// Size it as (deliveries per second) × (TTL in seconds) plus headroom; at about 53 bytes an
    /// id, a million ids is about 53 MB. Memory grows with use, not up front.
    ///
    /// The capacity bounds the whole store, not each of its shards (up to 64, one per 4096
    /// ids): a store of capacity `n` remembers every one of `n` ids however they spread.
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let shards = (capacity / IDS_PER_SHARD).clamp(1, MAX_SHARDS);
        let shards = if shards.is_power_of_two() {
            shards
        } else {
            shards.next_power_of_two() / 2
        };
        // Keys the shard maps' hash. Only signed event ids reach them, so a failing generator
        // (seed 0) costs no safety.
        let seed = crate::random::u64().unwrap_or_default();
        let shard_list = (0..shards)
            .map(|_| {
                PaddedShard(Mutex::new(Shard {
                    map: HashMap::with_hasher(KeyHashing { seed }),
                    next_token: 0,
                }))
            })
            .collect();
        Self {
            inner: Arc::new(Inner {
                epoch: Instant::now(),
                seed,
                capacity,
                len: AtomicUsize::new(0),
                batch: (capacity / shards / EVICTION_DIVISOR).max(1),
                share: capacity.div_ceil(shards),
                shard_mask: shards - 1,
                shards: shard_list,
            }),
        }
    }

    /// The most ids this store remembers.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// How many ids it holds now, in flight or done, including expired entries not yet dropped.
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Relaxed)
    }

    /// Whether it holds no id at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn now(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn shard_index(&self, key: &Key) -> usize {
        let hash = key_hash(self.inner.seed, &key.0);
        // hashbrown uses the low bits for the bucket and the top 7 for the tag: shard by the
        // middle ones.
        (hash >> 32) as usize & self.inner.shard_mask
    }

    fn shard(&self, key: &EventKey) -> (MutexGuard<'_, Shard>, Key) {
        let key = Key(*key.as_bytes());
        (lock(&self.inner.shards[self.shard_index(&key)]), key)
    }

    /// Counts one more entry, if the store has room for it.
    fn reserve(&self) -> bool {
        self.inner
            .len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                (len < self.inner.capacity).then_some(len + 1)
            })
            .is_ok()
    }

    fn forget(&self, entries: usize) {
        self.inner.len.fetch_sub(entries, Ordering::Relaxed);
    }

    /// The high half of the tokens of `key`'s claims: a keyed digest of the key, never zero, so
    /// a token of another key or another store owns nothing here.
    fn key_check(&self, key: &Key) -> u64 {
        key_hash(self.inner.seed ^ TOKEN_DOMAIN, &key.0) | 1
    }

    pub(crate) fn claim_now(&self, key: &EventKey, lease: Duration) -> Result<Claim, StoreError> {
        let now = self.now();
        let (mut shard, key) = self.shard(key);
        let check = self.key_check(&key);
        let word = shard.new_claim(now, lease);
        match shard.map.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut occupied) => {
                return Ok(settle_existing(occupied.get_mut(), word, now, check));
            }
            std::collections::hash_map::Entry::Vacant(vacant) => {
                if self.reserve() {
                    vacant.insert(word);
                    return Ok(Claim::Fresh(token(check, word)));
                }
            }
        }
        // Full. A shard holding at least its share makes room in itself. A smaller one takes
        // the room from the fullest other shards instead: without that pull towards the share,
        // shard sizes would drift apart and small shards would drop ids younger than the ones
        // big shards keep.
        let own = self.shard_index(&key);
        let mut freed = 0;
        if shard.map.len() >= self.inner.share {
            freed = shard.make_room(now, self.inner.batch);
            self.forget(freed);
        }
        if freed == 0 {
            drop(shard);
            freed = self.make_room_elsewhere(own, now);
            if freed == 0 {
                freed = lock(&self.inner.shards[own]).make_room(now, self.inner.batch);
                self.forget(freed);
            }
            shard = lock(&self.inner.shards[own]);
            // Unlocked meanwhile: someone may have claimed the id.
            if let Some(existing) = shard.map.get_mut(&key) {
                return Ok(settle_existing(existing, word, now, check));
            }
        }
        if !self.reserve() {
            return Err(StoreError::from_kind(StoreErrorKind::CapacityExhausted));
        }
        shard.map.insert(key, word);
        Ok(Claim::Fresh(token(check, word)))
    }

    /// Makes room in the other shards, fullest first, one lock at a time; answers how many
    /// entries went. Runs once per eviction batch, not per claim.
    fn make_room_elsewhere(&self, own: usize, now: u64) -> usize {
        let mut by_size: Vec<(usize, usize)> = self
            .inner
            .shards
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != own)
            .map(|(index, shard)| (lock(shard).map.len(), index))
            .collect();
        by_size.sort_unstable_by(|a, b| b.cmp(a));
        for (_, index) in by_size {
            let freed = lock(&self.inner.shards[index]).make_room(now, self.inner.batch);
            self.forget(freed);
            if freed > 0 {
                return freed;
            }
        }
        0
    }

    pub(crate) fn complete_now(&self, key: &EventKey, token: &ClaimToken, ttl: Duration) -> bool {
        let now = self.now();
        let (mut shard, key) = self.shard(key);
        match shard.map.get_mut(&key) {
            Some(word) if owns(*word, token, self.key_check(&key)) && !is_expired(*word, now) => {
                *word = DONE | deadline_millis(now, ttl) << DEADLINE_SHIFT | (*word & TOKEN_MASK);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn release_now(&self, key: &EventKey, token: &ClaimToken) -> bool {
        let now = self.now();
        let (mut shard, key) = self.shard(key);
        match shard.map.get(&key) {
            Some(word) if owns(*word, token, self.key_check(&key)) => {
                // An expired claim of ours is as good as absent: drop it, but it was not ours
                // to release any more.
                let live = !is_expired(*word, now);
                shard.map.remove(&key);
                drop(shard);
                self.forget(1);
                live
            }
            _ => false,
        }
    }

    fn renew_now(&self, key: &EventKey, token: &ClaimToken, lease: Duration) -> bool {
        let now = self.now();
        let (mut shard, key) = self.shard(key);
        match shard.map.get_mut(&key) {
            Some(word) if owns(*word, token, self.key_check(&key)) && !is_expired(*word, now) => {
                // Never earlier than the deadline the token was issued with: `owns` relies on it.
                let until = deadline_millis(now, lease).max(deadline(*word));
                *word = IN_FLIGHT | until << DEADLINE_SHIFT | (*word & TOKEN_MASK);
                true
            }
            _ => false,
        }
    }
}

/// Mixed into the seed for [`MemoryStore::key_check`], apart from the shard hash.
const TOKEN_DOMAIN: u64 = 0x746f_6b65_6e5f_7631;

/// A claim's token: the key check above the word the claim was stored as.
fn token(check: u64, word: u64) -> ClaimToken {
    ClaimToken::from_u128(u128::from(check) << 64 | u128::from(word))
}

/// Whether `token` is the claim held in `word` of the key whose check is `check`: the key's
/// check, an in-flight word with the token's claim counter, whose deadline is not before the one
/// the token was issued with (a renewal only moves it later). Before any renewal this is plain
/// equality with the word; a claim of the id made after this one expired carries another
/// counter.
fn owns(word: u64, token: &ClaimToken, check: u64) -> bool {
    let token = token.as_u128();
    if token >> 64 != u128::from(check) {
        return false;
    }
    // The low half: the word as it was stored.
    let token = token as u64;
    word & STATE_MASK == IN_FLIGHT
        && token & STATE_MASK == IN_FLIGHT
        && word & TOKEN_MASK == token & TOKEN_MASK
        && deadline(token) <= deadline(word)
}

/// A claim found an entry for its key: live entries answer, expired ones are claimed anew.
fn settle_existing(existing: &mut u64, fresh: u64, now: u64, check: u64) -> Claim {
    if !is_expired(*existing, now) {
        if is_done(*existing) {
            Claim::Done
        } else {
            Claim::InFlight
        }
    } else {
        *existing = fresh;
        Claim::Fresh(token(check, fresh))
    }
}

/// The packed deadline, in the store's milliseconds, `duration` after `now`.
fn deadline_millis(now: u64, duration: Duration) -> u64 {
    // +1: `now` is floored, so the millisecond under way must not count towards the duration.
    now.saturating_add(millis_ceil(duration))
        .saturating_add(1)
        .min(DEADLINE_MAX)
}

impl Shard {
    fn new_claim(&mut self, now: u64, lease: Duration) -> u64 {
        self.next_token = (self.next_token + 1) & TOKEN_MASK;
        IN_FLIGHT | deadline_millis(now, lease) << DEADLINE_SHIFT | self.next_token
    }

    /// Frees room: every expired entry goes, then, up to `batch` entries in all, the completed
    /// entries with the earliest deadlines. Live claims never go. Answers how many went.
    fn make_room(&mut self, now: u64, batch: usize) -> usize {
        let before = self.map.len();
        let mut expired = 0usize;
        let mut done_deadlines = Vec::new();
        for &word in self.map.values() {
            if is_expired(word, now) {
                expired += 1;
            } else if is_done(word) {
                done_deadlines.push(deadline(word));
            }
        }
        let evict = batch.saturating_sub(expired).min(done_deadlines.len());
        if expired == 0 && evict == 0 {
            return 0;
        }
        // Done entries with a deadline below `threshold` go, and `ties` of those equal to it.
        let (threshold, mut ties) = if evict == 0 {
            (0, 0)
        } else {
            let (_, threshold, _) = done_deadlines.select_nth_unstable(evict - 1);
            let threshold = *threshold;
            let below = done_deadlines.iter().filter(|d| **d < threshold).count();
            (threshold, evict - below)
        };
        self.map.retain(|_, word| {
            let word = *word;
            if is_expired(word, now) {
                return false;
            }
            if !is_done(word) {
                return true;
            }
            let deadline = deadline(word);
            if deadline < threshold {
                false
            } else if deadline == threshold && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
        before - self.map.len()
    }
}

fn lock(shard: &PaddedShard) -> MutexGuard<'_, Shard> {
    // A panic cannot leave a shard half-written (every update is one map operation), so a
    // poisoned lock is still a consistent shard.
    shard.0.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("capacity", &self.inner.capacity)
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

impl DedupStore for MemoryStore {
    // `async fn`: nothing is claimed unless the future is polled.
    async fn claim(&self, key: &EventKey, lease: Duration) -> Result<Claim, StoreError> {
        self.claim_now(key, lease)
    }

    async fn complete(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.complete_now(key, token, ttl))
    }

    async fn release(&self, key: &EventKey, token: &ClaimToken) -> Result<bool, StoreError> {
        Ok(self.release_now(key, token))
    }

    async fn renew(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.renew_now(key, token, lease))
    }
}

/// The map key: the 16 bytes, hashed by [`key_hash`] rather than SipHash.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key([u8; 16]);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_le_bytes(self.0));
    }
}

/// Keys are UUIDs or SHA-256 digests, and only signed deliveries reach the store, so one
/// seeded 64×64→128-bit multiply (wyhash's "mum") mixes them well enough, at a fraction of
/// SipHash's cost. The seed is random per store, which keeps bucket positions unpredictable.
fn key_hash(seed: u64, bytes: &[u8; 16]) -> u64 {
    let value = u128::from_le_bytes(*bytes);
    mum(
        (value as u64) ^ seed,
        ((value >> 64) as u64) ^ 0xe703_7ed1_a0b4_28db,
    )
}

const fn mum(a: u64, b: u64) -> u64 {
    let product = (a as u128) * (b as u128);
    (product as u64) ^ ((product >> 64) as u64)
}

#[derive(Clone)]
struct KeyHashing {
    seed: u64,
}

impl BuildHasher for KeyHashing {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            seed: self.seed,
            hash: 0,
        }
    }
}

struct KeyHasher {
    seed: u64,
    hash: u64,
}

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.hash
    }

    fn write_u128(&mut self, value: u128) {
        self.hash = key_hash(self.seed, &value.to_le_bytes());
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `Key` is hashed here, through `write_u128`; this is a correct fallback.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.hash = mum(self.hash ^ u64::from_le_bytes(word), self.seed | 1);
        }
    }
}

#[cfg(test)]
mod tests;
