//! `MemoryStore`'s bound: what it forgets when full, and what it never forgets.

use std::time::Duration;

use crate::support::fresh_key;
use vobiz_webhooks::{Claim, ClaimToken, DedupStore, EventKey, MemoryStore, StoreErrorKind};

const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(3600);

async fn fresh(store: &MemoryStore, key: &EventKey) -> ClaimToken {
    match store.claim(key, LEASE).await {
        Ok(Claim::Fresh(token)) => token,
        other => panic!("expected fresh, got {other:?}"),
    }
}

async fn claim(store: &MemoryStore, key: &EventKey) -> Claim {
    match store.claim(key, LEASE).await {
        Ok(claim) => claim,
        Err(error) => panic!("claim failed: {error}"),
    }
}

/// Claims and completes `n` new ids, a few milliseconds apart so their order is clear.
async fn done_ids(store: &MemoryStore, n: usize) -> Vec<EventKey> {
    let mut keys = Vec::new();
    for _ in 0..n {
        let key = fresh_key();
        let token = fresh(store, &key).await;
        assert!(matches!(store.complete(&key, &token, TTL).await, Ok(true)));
        keys.push(key);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    keys
}

#[tokio::test]
async fn full_of_done_ids_it_forgets_the_oldest() {
    let store = MemoryStore::with_capacity(8);
    assert_eq!(store.capacity(), 8);
    let keys = done_ids(&store, 8).await;
    assert_eq!(store.len(), 8);

    let newcomer = fresh_key();
    fresh(&store, &newcomer).await;
    assert_eq!(store.len(), 8, "bounded");
    for key in &keys[1..] {
        assert_eq!(claim(&store, key).await, Claim::Done);
    }
    assert_eq!(claim(&store, &newcomer).await, Claim::InFlight);
    // The oldest was forgotten: its retry would run again (claiming it evicts the next oldest).
    fresh(&store, &keys[0]).await;
    assert_eq!(store.len(), 8);
    assert_eq!(claim(&store, &keys[2]).await, Claim::Done);
}

#[tokio::test]
async fn live_claims_are_never_evicted() {
    let store = MemoryStore::with_capacity(8);
    let live: Vec<EventKey> = (0..4).map(|_| fresh_key()).collect();
    for key in &live {
        fresh(&store, key).await;
    }
    let done = done_ids(&store, 4).await;

    // Four newcomers push out the four done ids, oldest first, and nothing else.
    for (index, _) in done.iter().enumerate() {
        fresh(&store, &fresh_key()).await;
        assert_eq!(store.len(), 8);
        for key in &live {
            assert_eq!(claim(&store, key).await, Claim::InFlight);
        }
        for key in &done[index + 1..] {
            assert_eq!(claim(&store, key).await, Claim::Done);
        }
    }
    // Now only live claims are left: the store refuses rather than forget one.
    let refused = store.claim(&fresh_key(), LEASE).await;
    match refused {
        Err(error) => assert_eq!(error.kind(), StoreErrorKind::CapacityExhausted),
        Ok(claim) => panic!("a full store of live claims answered {claim:?}"),
    }
    for key in &live {
        assert_eq!(claim(&store, key).await, Claim::InFlight);
    }
}

#[tokio::test]
async fn full_of_live_claims_it_refuses_until_one_settles_or_expires() {
    let store = MemoryStore::with_capacity(4);
    let short = Duration::from_millis(300);
    let mut tokens = Vec::new();
    let keys: Vec<EventKey> = (0..4).map(|_| fresh_key()).collect();
    for key in &keys {
        match store.claim(key, short).await {
            Ok(Claim::Fresh(token)) => tokens.push(token),
            other => panic!("{other:?}"),
        }
    }
    let waiting = fresh_key();
    let error = store.claim(&waiting, LEASE).await.err();
    assert_eq!(
        error.map(|error| error.kind()),
        Some(StoreErrorKind::CapacityExhausted)
    );
    // A claim already held is still answered when full.
    assert_eq!(claim(&store, &keys[0]).await, Claim::InFlight);

    // A release makes room.
    assert!(matches!(
        store.release(&keys[0], &tokens[0]).await,
        Ok(true)
    ));
    fresh(&store, &waiting).await;
    assert!(store.claim(&fresh_key(), LEASE).await.is_err());

    // So does a lease running out.
    tokio::time::sleep(Duration::from_millis(600)).await;
    fresh(&store, &fresh_key()).await;
    assert_eq!(claim(&store, &waiting).await, Claim::InFlight);
}

#[tokio::test]
async fn clones_share_one_memory() {
    let store = MemoryStore::with_capacity(100);
    let clone = store.clone();
    let key = fresh_key();
    let token = fresh(&store, &key).await;
    assert_eq!(claim(&clone, &key).await, Claim::InFlight);
    assert!(matches!(clone.complete(&key, &token, TTL).await, Ok(true)));
    assert_eq!(claim(&store, &key).await, Claim::Done);
    assert_eq!(store.len(), 1);
    assert!(!clone.is_empty());
}
