//! [`MokaStore`]: an in-process store over a [moka](https://docs.rs/moka) cache.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use moka::Expiry;

use super::{Claim, ClaimToken, DedupStore, EventKey, StoreError, StoreErrorKind};

/// An in-process store over a `moka::sync::Cache` with LRU eviction and per-entry expiry (the
/// TTL) for completed ids. Feature `moka`.
///
/// [`MemoryStore`](super::MemoryStore) is the compact default: it uses about an eighth of the
/// memory per id (53 B against 370 B) and is about ten times faster. Pick `MokaStore` when moka
/// is already in your tree and the ids are few.
///
/// # Capacity
///
/// A store of capacity `n` remembers up to `n` completed ids in the cache and holds up to `n`
/// live claims beside it. The two are kept apart because a cache evicts: with the claims inside
/// it, a full cache could drop a live claim and let a second delivery of the same id run its
/// handler while the first still runs. So
///
/// * completed ids go to the cache, built with `EvictionPolicy::lru()` (never moka's default
///   TinyLFU, whose admission refuses new keys when full, so a just-completed id would be
///   forgotten at once). When it is full the least recently touched completed id is dropped,
///   and a later redelivery of that id would run again: size it for deliveries per second ×
///   TTL;
/// * live claims are never evicted. When `n` of them are live, a new claim fails with
///   [`StoreErrorKind::CapacityExhausted`] (the layer answers 503 with `Retry-After`, the sender
///   retries) until one settles or its lease runs out.
///
/// ```
/// use std::time::Duration;
/// use vobiz_webhooks::{Claim, DedupStore, EventKey, MokaStore};
///
/// # async fn run() -> Result<(), vobiz_webhooks::StoreError> {
/// let store = MokaStore::with_capacity(100_000);
/// let key = EventKey::from_event_id("f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f");
/// let Claim::Fresh(token) = store.claim(&key, Duration::from_secs(60)).await? else {
///     unreachable!("a new id is fresh");
/// };
/// assert!(store.complete(&key, &token, Duration::from_secs(86_400)).await?);
/// assert_eq!(store.claim(&key, Duration::from_secs(60)).await?, Claim::Done);
/// # Ok(()) }
/// # futures_util::FutureExt::now_or_never(run()).unwrap().unwrap();
/// ```
#[derive(Clone)]
pub struct MokaStore {
    /// Completed ids, each for its TTL.
    done: Cache<[u8; 16], Duration>,
    /// Live claims: the owning token and when its lease runs out. Never evicted.
    live: Arc<Mutex<HashMap<[u8; 16], Live>>>,
    tokens: Arc<Tokens>,
    capacity: u64,
}

/// Tokens: a random per-store high half, a counter low half.
struct Tokens {
    prefix: u64,
    counter: AtomicU64,
}

impl Tokens {
    fn next(&self) -> u128 {
        let low = self.counter.fetch_add(1, Ordering::Relaxed);
        (u128::from(self.prefix) << 64) | u128::from(low)
    }
}

/// A live claim.
#[derive(Clone, Copy, Debug)]
struct Live {
    token: u128,
    until: Instant,
}

/// A completed id lives for the TTL it was completed with.
struct TtlOfEach;

impl Expiry<[u8; 16], Duration> for TtlOfEach {
    fn expire_after_create(
        &self,
        _key: &[u8; 16],
        ttl: &Duration,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(*ttl)
    }

    fn expire_after_update(
        &self,
        _key: &[u8; 16],
        ttl: &Duration,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(*ttl)
    }
}

impl MokaStore {
    /// A store of [`DEFAULT_CAPACITY`](super::DEFAULT_CAPACITY) ids.
    #[must_use]
    pub fn new() -> Self {
        Self::with_capacity(super::DEFAULT_CAPACITY as u64)
    }

    /// A store that remembers at most about `capacity` completed ids (moka evicts in the
    /// background, so it may briefly hold a few more) and holds at most `capacity` live claims.
    #[must_use]
    pub fn with_capacity(capacity: u64) -> Self {
        let done = Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(EvictionPolicy::lru())
            .expire_after(TtlOfEach)
            .build();
        Self {
            done,
            live: Arc::default(),
            tokens: Arc::new(Tokens {
                // The counter alone keeps this store's tokens unique, so a failing generator
                // costs nothing.
                prefix: crate::random::u64().unwrap_or_default(),
                counter: AtomicU64::new(1),
            }),
            capacity,
        }
    }

    /// The most completed ids this store remembers, and the most live claims it holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// About how many ids it holds: live claims plus completed ids by moka's count (updated
    /// by its housekeeping).
    pub fn len(&self) -> u64 {
        self.done.entry_count() + self.lock_live().len() as u64
    }

    /// Whether it holds no id, by moka's count.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs moka's pending housekeeping now (eviction, expiry, counts).
    pub fn run_pending_tasks(&self) {
        self.done.run_pending_tasks();
    }

    /// The live claims. Nothing panics while holding the lock, so a poisoned lock still holds a
    /// consistent map.
    fn lock_live(&self) -> MutexGuard<'_, HashMap<[u8; 16], Live>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn claim_now(&self, key: &EventKey, lease: Duration) -> Result<Claim, StoreError> {
        let now = Instant::now();
        // One lock orders every claim against every settlement: `settle` moves an id into the
        // cache before it leaves the live map, both under this lock, so no claim sees neither.
        let mut live = self.lock_live();
        if live
            .get(key.as_bytes())
            .is_some_and(|held| held.until > now)
        {
            return Ok(Claim::InFlight);
        }
        if self.done.contains_key(key.as_bytes()) {
            return Ok(Claim::Done);
        }
        if live.len() as u64 >= self.capacity && !live.contains_key(key.as_bytes()) {
            // Full: drop the claims whose lease ran out (only now, so the sweep is paid once
            // per fill, not per claim), and refuse if every one is still live.
            live.retain(|_, held| held.until > now);
            if live.len() as u64 >= self.capacity {
                return Err(StoreError::from_kind(StoreErrorKind::CapacityExhausted));
            }
        }
        let token = self.tokens.next();
        live.insert(
            *key.as_bytes(),
            Live {
                token,
                until: now
                    .checked_add(lease)
                    .unwrap_or(now + Duration::from_secs(86_400 * 365)),
            },
        );
        Ok(Claim::Fresh(ClaimToken::from_u128(token)))
    }

    /// If `token` owns the live claim of `key`: applies `settlement` and answers `true`.
    fn settle(&self, key: &EventKey, token: &ClaimToken, settlement: Settlement) -> bool {
        let now = Instant::now();
        let mut live = self.lock_live();
        let owned = live
            .get(key.as_bytes())
            .is_some_and(|held| held.token == token.as_u128() && held.until > now);
        if !owned {
            return false;
        }
        match settlement {
            Settlement::Complete(ttl) => {
                self.done.insert(*key.as_bytes(), ttl);
                live.remove(key.as_bytes());
            }
            Settlement::Release => {
                live.remove(key.as_bytes());
            }
            Settlement::Renew(lease) => {
                if let Some(held) = live.get_mut(key.as_bytes()) {
                    held.until = now.checked_add(lease).unwrap_or(held.until);
                }
            }
        }
        true
    }
}

/// What a claim's owner does with it.
#[derive(Clone, Copy)]
enum Settlement {
    Complete(Duration),
    Release,
    Renew(Duration),
}

impl Default for MokaStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MokaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl DedupStore for MokaStore {
    async fn claim(&self, key: &EventKey, lease: Duration) -> Result<Claim, StoreError> {
        self.claim_now(key, lease)
    }

    async fn complete(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.settle(key, token, Settlement::Complete(ttl)))
    }

    async fn release(&self, key: &EventKey, token: &ClaimToken) -> Result<bool, StoreError> {
        Ok(self.settle(key, token, Settlement::Release))
    }

    async fn renew(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        Ok(self.settle(key, token, Settlement::Renew(lease)))
    }
}
