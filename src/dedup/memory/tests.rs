//! Unit tests of `MemoryStore`: the packed word, eviction, fencing, renewal.
use super::*;

fn key(n: u32) -> EventKey {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    EventKey::from_bytes(bytes)
}

fn claim(store: &MemoryStore, n: u32, lease: Duration) -> Result<Claim, StoreError> {
    store.claim_now(&key(n), lease)
}

#[test]
fn the_word_packs_state_deadline_and_token() {
    let mut shard = Shard {
        map: HashMap::with_hasher(KeyHashing { seed: 1 }),
        next_token: TOKEN_MASK,
    };
    let word = shard.new_claim(1_000, Duration::from_millis(50));
    assert!(!is_done(word));
    assert_eq!(word & STATE_MASK, IN_FLIGHT);
    assert_eq!(deadline(word), 1_051);
    assert_eq!(word & TOKEN_MASK, 0, "the counter wraps within its bits");
    assert!(!is_expired(word, 1_050));
    assert!(is_expired(word, 1_051));
    assert_eq!(deadline_millis(0, Duration::MAX), DEADLINE_MAX);
}

#[test]
fn shards_scale_with_capacity() {
    assert_eq!(MemoryStore::with_capacity(0).inner.shards.len(), 1);
    assert_eq!(MemoryStore::with_capacity(0).capacity(), 1);
    assert_eq!(MemoryStore::with_capacity(10_000).inner.shards.len(), 2);
    assert_eq!(MemoryStore::with_capacity(20_000).inner.shards.len(), 4);
    let store = MemoryStore::new();
    assert_eq!(store.inner.shards.len(), 64);
    assert_eq!(store.inner.batch, 1_000_000 / 64 / 16);
}

#[test]
fn a_full_store_drops_expired_entries_first() -> Result<(), StoreError> {
    let store = MemoryStore::with_capacity(4);
    let short = Duration::from_millis(20);
    let long = Duration::from_secs(60);
    for n in 0..4 {
        assert!(matches!(claim(&store, n, short)?, Claim::Fresh(_)));
    }
    std::thread::sleep(Duration::from_millis(40));
    // Every claim expired: room is made without touching anything live.
    assert!(matches!(claim(&store, 10, long)?, Claim::Fresh(_)));
    assert_eq!(store.len(), 1);
    Ok(())
}

#[test]
fn eviction_takes_the_earliest_deadlines_and_at_most_a_batch() -> Result<(), StoreError> {
    let store = MemoryStore::with_capacity(1600); // one shard, batch of 100
    let lease = Duration::from_secs(60);
    for n in 0..1600u32 {
        let Claim::Fresh(token) = claim(&store, n, lease)? else {
            panic!("fresh");
        };
        // Later ids are remembered longer.
        let ttl = Duration::from_secs(1_000 + u64::from(n));
        assert!(store.complete_now(&key(n), &token, ttl));
    }
    assert!(matches!(claim(&store, 99_999, lease)?, Claim::Fresh(_)));
    assert_eq!(store.len(), 1600 - 100 + 1);
    for n in 100..1600 {
        assert_eq!(claim(&store, n, lease)?, Claim::Done, "{n}");
    }
    for n in 0..99 {
        // Forgotten; there is room for these 99 without another eviction.
        assert!(matches!(claim(&store, n, lease)?, Claim::Fresh(_)), "{n}");
    }
    assert_eq!(store.len(), 1600);
    Ok(())
}

#[test]
fn a_shard_of_live_claims_takes_room_from_another() -> Result<(), StoreError> {
    let store = MemoryStore::with_capacity(8192);
    assert_eq!(store.inner.shards.len(), 2);
    let in_shard = |shard: usize| -> Vec<u32> {
        (0u32..)
            .filter(|n| store.shard_index(&Key(*key(*n).as_bytes())) == shard)
            .take(8192)
            .collect()
    };
    let lease = Duration::from_secs(60);
    let done: Vec<u32> = in_shard(1).into_iter().take(100).collect();
    for &n in &done {
        let Claim::Fresh(token) = claim(&store, n, lease)? else {
            panic!("fresh");
        };
        assert!(store.complete_now(&key(n), &token, Duration::from_secs(600)));
    }
    let mut live: Vec<u32> = in_shard(0).into_iter().take(8192 - 100 + 1).collect();
    let newcomer = live.pop().unwrap_or_default();
    for &n in &live {
        assert!(matches!(claim(&store, n, lease)?, Claim::Fresh(_)));
    }
    assert_eq!(store.len(), 8192);
    assert!(matches!(claim(&store, newcomer, lease)?, Claim::Fresh(_)));
    for &n in &live {
        assert_eq!(claim(&store, n, lease)?, Claim::InFlight);
    }
    // Shard 1 gave its done ids (up to a batch of 256: all 100).
    assert_eq!(store.len(), 8192 - 100 + 1);
    let held: usize = store.inner.shards.iter().map(|s| lock(s).map.len()).sum();
    assert_eq!(held, store.len());
    Ok(())
}

#[test]
fn a_full_store_forgets_about_the_oldest_across_shards() -> Result<(), StoreError> {
    let capacity = 100_000;
    let store = MemoryStore::with_capacity(capacity);
    assert_eq!(store.inner.shards.len(), 16);
    let lease = Duration::from_secs(60);
    let ttl = Duration::from_secs(86_400);
    // Three times the capacity: every id after the first 100 000 makes room.
    for n in 0..3 * capacity as u32 {
        let Claim::Fresh(token) = claim(&store, n, lease)? else {
            panic!("{n} not fresh");
        };
        assert!(store.complete_now(&key(n), &token, ttl));
    }
    assert!(store.len() <= capacity);
    assert!(store.len() >= capacity - 16 * store.inner.batch);
    // Shards stay near their share instead of drifting apart.
    for shard in store.inner.shards.iter() {
        let len = lock(shard).map.len();
        let share = store.inner.share;
        assert!(
            len.abs_diff(share) <= 2 * store.inner.batch,
            "{len} vs {share}"
        );
    }
    // The newest 90 % are all remembered (the oldest went first).
    for n in (3 * capacity - capacity * 9 / 10) as u32..3 * capacity as u32 {
        let key = Key(*key(n).as_bytes());
        let shard = lock(&store.inner.shards[store.shard_index(&key)]);
        assert!(shard.map.contains_key(&key), "{n} forgotten");
    }
    Ok(())
}

#[test]
fn hashing_spreads_sequential_keys_over_shards() {
    let store = MemoryStore::new();
    let mut counts = [0usize; 64];
    for n in 0..64_000u32 {
        let hash = key_hash(store.inner.seed, key(n).as_bytes());
        counts[(hash >> 32) as usize & 63] += 1;
    }
    assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
}
