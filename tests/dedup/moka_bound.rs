//! `MokaStore`'s bound: a full cache forgets old completed ids, never a live claim.

use std::time::Duration;

use axum::routing::post;
use axum::Router;
use http::{header::RETRY_AFTER, StatusCode};
use tower::ServiceExt;

use crate::support::fresh_key;
use vobiz_webhooks::{
    Claim, ClaimToken, DedupStore, EventKey, MokaStore, StoreErrorKind, VobizWebhookLayer,
};

const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(3600);

async fn fresh(store: &MokaStore, key: &EventKey, lease: Duration) -> ClaimToken {
    match store.claim(key, lease).await {
        Ok(Claim::Fresh(token)) => token,
        other => panic!("expected fresh, got {other:?}"),
    }
}

async fn claim(store: &MokaStore, key: &EventKey) -> Claim {
    match store.claim(key, LEASE).await {
        Ok(claim) => claim,
        Err(error) => panic!("claim failed: {error}"),
    }
}

#[tokio::test]
async fn a_live_claim_outlives_a_cache_overflowing_with_completed_ids() {
    let store = MokaStore::with_capacity(8);
    let live = fresh_key();
    let token = fresh(&store, &live, LEASE).await;
    // Far more completed ids than the cache holds: the LRU evicts, over and over.
    for _ in 0..1_000 {
        let key = fresh_key();
        let done = fresh(&store, &key, LEASE).await;
        assert!(matches!(store.complete(&key, &done, TTL).await, Ok(true)));
    }
    store.run_pending_tasks();
    assert!(store.len() <= 8 + 1, "bounded: {}", store.len());
    assert_eq!(claim(&store, &live).await, Claim::InFlight);
    // The owner still owns it and completes it.
    assert!(matches!(store.complete(&live, &token, TTL).await, Ok(true)));
    assert_eq!(claim(&store, &live).await, Claim::Done);
}

#[tokio::test]
async fn full_of_live_claims_it_refuses_until_one_settles_or_expires() {
    let store = MokaStore::with_capacity(4);
    let short = Duration::from_millis(200);
    let keys: Vec<EventKey> = (0..4).map(|_| fresh_key()).collect();
    let mut tokens = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        // The last one has a short lease.
        let lease = if index == 3 { short } else { LEASE };
        tokens.push(fresh(&store, key, lease).await);
    }
    let waiting = fresh_key();
    let refused = store.claim(&waiting, LEASE).await;
    assert_eq!(
        refused.err().map(|error| error.kind()),
        Some(StoreErrorKind::CapacityExhausted)
    );
    for key in &keys {
        assert_eq!(claim(&store, key).await, Claim::InFlight, "kept when full");
    }

    // A release makes room.
    assert!(matches!(
        store.release(&keys[0], &tokens[0]).await,
        Ok(true)
    ));
    fresh(&store, &waiting, LEASE).await;

    // Full again; a lease running out makes room too, and its token owns nothing any more.
    assert!(store.claim(&fresh_key(), LEASE).await.is_err());
    tokio::time::sleep(short + Duration::from_millis(50)).await;
    fresh(&store, &fresh_key(), LEASE).await;
    assert!(matches!(
        store.complete(&keys[3], &tokens[3], TTL).await,
        Ok(false)
    ));
}

#[tokio::test]
async fn the_layer_answers_503_when_the_store_is_full_of_live_claims() {
    const SECRET: &str = "moka-secret";
    let store = MokaStore::with_capacity(1);
    // Someone else's delivery holds the only slot.
    let held = fresh_key();
    let token = fresh(&store, &held, LEASE).await;
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(|| async { StatusCode::OK })
            .layer(VobizWebhookLayer::new(SECRET).store(store.clone())),
    );
    let id = "8f9d2a2e-3c1b-4c1e-9a57-1f0e2d3c4b5a";
    let response = app
        .clone()
        .oneshot(crate::support::delivery(SECRET, id))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(RETRY_AFTER));

    // Once the slot is free, the sender's retry is handled.
    assert!(matches!(store.release(&held, &token).await, Ok(true)));
    let retry = app
        .oneshot(crate::support::delivery(SECRET, id))
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::OK);
}
