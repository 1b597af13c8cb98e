//! One behaviour contract for every `DedupStore` backend: each case is written once, generic
//! over the store, and run against `MemoryStore`, `MokaStore` (feature `moka`) and `RedisStore`
//! (feature `redis`; skipped loudly without a Redis unless `CI=true`).

use std::time::Duration;

use crate::support::fresh_key;
use vobiz_webhooks::{Claim, ClaimToken, DedupStore, EventKey};

const LEASE: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(120);
/// Short enough for fast tests, long enough for a loaded 2-core machine to make the calls in it.
const SHORT: Duration = Duration::from_millis(250);
/// Past `SHORT` with room for a coarse clock.
const PAST_SHORT: Duration = Duration::from_millis(500);

async fn fresh(store: &impl DedupStore, key: &EventKey, lease: Duration) -> ClaimToken {
    match store.claim(key, lease).await {
        Ok(Claim::Fresh(token)) => token,
        other => panic!("expected a fresh claim of {key}, got {other:?}"),
    }
}

async fn claim(store: &impl DedupStore, key: &EventKey) -> Claim {
    match store.claim(key, LEASE).await {
        Ok(claim) => claim,
        Err(error) => panic!("claim of {key} failed: {error}"),
    }
}

async fn complete(
    store: &impl DedupStore,
    key: &EventKey,
    token: &ClaimToken,
    ttl: Duration,
) -> bool {
    match store.complete(key, token, ttl).await {
        Ok(done) => done,
        Err(error) => panic!("complete of {key} failed: {error}"),
    }
}

async fn release(store: &impl DedupStore, key: &EventKey, token: &ClaimToken) -> bool {
    match store.release(key, token).await {
        Ok(released) => released,
        Err(error) => panic!("release of {key} failed: {error}"),
    }
}

async fn renew(
    store: &impl DedupStore,
    key: &EventKey,
    token: &ClaimToken,
    lease: Duration,
) -> bool {
    match store.renew(key, token, lease).await {
        Ok(renewed) => renewed,
        Err(error) => panic!("renew of {key} failed: {error}"),
    }
}

/// The cases, each generic over the store.
mod cases {
    use super::*;

    /// renew keeps the owner's claim live past its first lease, and settling still works with
    /// the same token afterwards.
    pub async fn renew_extends_the_owner_s_lease(store: impl DedupStore) {
        let key = fresh_key();
        let token = fresh(&store, &key, SHORT).await;
        assert!(renew(&store, &key, &token, LEASE).await, "the owner renews");
        tokio::time::sleep(PAST_SHORT).await;
        assert_eq!(
            claim(&store, &key).await,
            Claim::InFlight,
            "still in flight past the first lease"
        );
        assert!(renew(&store, &key, &token, LEASE).await, "renewed again");
        assert!(
            complete(&store, &key, &token, TTL).await,
            "complete after renew"
        );
        assert_eq!(claim(&store, &key).await, Claim::Done);

        // A renewed claim is released by its token too.
        let key = fresh_key();
        let token = fresh(&store, &key, LEASE).await;
        assert!(renew(&store, &key, &token, LEASE).await);
        assert!(release(&store, &key, &token).await, "release after renew");
        fresh(&store, &key, LEASE).await;
    }

    /// renew answers false, and changes nothing, for any token that does not own a live claim:
    /// another owner's, a released one, a done one, an expired one, an unknown id.
    pub async fn renew_is_fenced(store: impl DedupStore) {
        // Someone else's claim.
        let key = fresh_key();
        let other = fresh(&store, &fresh_key(), LEASE).await;
        let owner = fresh(&store, &key, LEASE).await;
        assert!(!renew(&store, &key, &other, LEASE).await, "another token");
        assert!(complete(&store, &key, &owner, TTL).await, "owner intact");

        // Released.
        let key = fresh_key();
        let token = fresh(&store, &key, LEASE).await;
        assert!(release(&store, &key, &token).await);
        assert!(!renew(&store, &key, &token, LEASE).await, "after release");
        let second = fresh(&store, &key, LEASE).await;
        assert!(
            !renew(&store, &key, &token, LEASE).await,
            "after a new claim"
        );
        assert!(renew(&store, &key, &second, LEASE).await);

        // Done: never turned back into a claim.
        let key = fresh_key();
        let token = fresh(&store, &key, LEASE).await;
        assert!(complete(&store, &key, &token, TTL).await);
        assert!(!renew(&store, &key, &token, LEASE).await, "after complete");
        assert_eq!(claim(&store, &key).await, Claim::Done);

        // Expired, then claimed by another: the late token renews nothing.
        let key = fresh_key();
        let late = fresh(&store, &key, SHORT).await;
        tokio::time::sleep(PAST_SHORT).await;
        assert!(!renew(&store, &key, &late, LEASE).await, "after expiry");
        let owner = fresh(&store, &key, SHORT).await;
        assert!(!renew(&store, &key, &late, LEASE).await, "late token");
        tokio::time::sleep(PAST_SHORT).await;
        fresh(&store, &key, LEASE).await;
        let _ = owner;

        // Unknown id: nothing is created.
        let key = fresh_key();
        assert!(!renew(&store, &key, &other, LEASE).await, "unknown id");
        fresh(&store, &key, LEASE).await;
    }

    /// fresh → complete → every later claim is Done; a second complete is refused.
    pub async fn completed_ids_are_done(store: impl DedupStore) {
        let key = fresh_key();
        let token = fresh(&store, &key, LEASE).await;
        assert!(complete(&store, &key, &token, TTL).await);
        assert_eq!(claim(&store, &key).await, Claim::Done);
        assert_eq!(claim(&store, &key).await, Claim::Done);
        assert!(
            !complete(&store, &key, &token, TTL).await,
            "done is not in flight"
        );
        // Other ids are untouched.
        fresh(&store, &fresh_key(), LEASE).await;
    }

    /// A live claim answers InFlight to everyone else.
    pub async fn live_claims_are_in_flight(store: impl DedupStore) {
        let key = fresh_key();
        let _token = fresh(&store, &key, LEASE).await;
        assert_eq!(claim(&store, &key).await, Claim::InFlight);
        assert_eq!(claim(&store, &key).await, Claim::InFlight);
    }

    /// release → the next claim is Fresh with another token; the old token is dead.
    pub async fn released_ids_are_fresh_again(store: impl DedupStore) {
        let key = fresh_key();
        let first = fresh(&store, &key, LEASE).await;
        assert!(release(&store, &key, &first).await);
        let second = fresh(&store, &key, LEASE).await;
        assert_ne!(first, second, "tokens are unique per claim");
        assert!(!release(&store, &key, &first).await, "released twice");
        assert!(
            !complete(&store, &key, &first, TTL).await,
            "complete after release"
        );
        assert_eq!(
            claim(&store, &key).await,
            Claim::InFlight,
            "second claim intact"
        );
        assert!(complete(&store, &key, &second, TTL).await);
        assert_eq!(claim(&store, &key).await, Claim::Done);
    }

    /// Settling what was never claimed does nothing.
    pub async fn unknown_claims_settle_to_false(store: impl DedupStore) {
        let key = fresh_key();
        let other_key = fresh_key();
        let token = fresh(&store, &other_key, LEASE).await;
        assert!(!complete(&store, &key, &token, TTL).await);
        assert!(!release(&store, &key, &token).await);
        // Nothing was created by those calls.
        fresh(&store, &key, LEASE).await;
        assert_eq!(claim(&store, &other_key).await, Claim::InFlight);
    }

    /// An in-flight claim whose lease ended is fresh again (a crashed process does not block).
    pub async fn expired_leases_are_fresh_again(store: impl DedupStore) {
        let key = fresh_key();
        let _token = fresh(&store, &key, SHORT).await;
        assert_eq!(claim(&store, &key).await, Claim::InFlight);
        tokio::time::sleep(PAST_SHORT).await;
        fresh(&store, &key, LEASE).await;
    }

    /// A late finisher (lease expired, id claimed by another) can neither complete nor release
    /// the other's claim.
    pub async fn late_finishers_are_fenced_off(store: impl DedupStore) {
        let key = fresh_key();
        let late = fresh(&store, &key, SHORT).await;
        tokio::time::sleep(PAST_SHORT).await;
        let owner = fresh(&store, &key, LEASE).await;
        assert_ne!(late, owner);

        assert!(!complete(&store, &key, &late, TTL).await, "late complete");
        assert_eq!(
            claim(&store, &key).await,
            Claim::InFlight,
            "owner's claim intact"
        );
        assert!(!release(&store, &key, &late).await, "late release");
        assert_eq!(
            claim(&store, &key).await,
            Claim::InFlight,
            "owner's claim intact"
        );

        assert!(complete(&store, &key, &owner, TTL).await);
        assert_eq!(claim(&store, &key).await, Claim::Done);
        assert!(!release(&store, &key, &late).await);
        assert_eq!(claim(&store, &key).await, Claim::Done);
    }

    /// A lease that ran out with nobody reclaiming: the old token owns nothing any more.
    pub async fn expired_tokens_own_nothing(store: impl DedupStore) {
        let key = fresh_key();
        let token = fresh(&store, &key, SHORT).await;
        tokio::time::sleep(PAST_SHORT).await;
        assert!(!complete(&store, &key, &token, TTL).await);
        fresh(&store, &key, LEASE).await;

        let key = fresh_key();
        let token = fresh(&store, &key, SHORT).await;
        tokio::time::sleep(PAST_SHORT).await;
        assert!(!release(&store, &key, &token).await);
        fresh(&store, &key, LEASE).await;
    }

    /// Completed ids are remembered for the TTL, then forgotten.
    pub async fn done_entries_expire_after_the_ttl(store: impl DedupStore) {
        let key = fresh_key();
        let token = fresh(&store, &key, LEASE).await;
        assert!(complete(&store, &key, &token, SHORT).await);
        assert_eq!(claim(&store, &key).await, Claim::Done);
        tokio::time::sleep(PAST_SHORT).await;
        fresh(&store, &key, LEASE).await;
    }

    /// The TTL replaces the lease: a done entry outlives a short lease.
    pub async fn done_entries_outlive_the_lease(store: impl DedupStore) {
        let key = fresh_key();
        let token = fresh(&store, &key, SHORT).await;
        assert!(complete(&store, &key, &token, TTL).await);
        tokio::time::sleep(PAST_SHORT).await;
        assert_eq!(claim(&store, &key).await, Claim::Done);
    }

    /// release never deletes a done entry, not even with the token that completed it.
    pub async fn release_never_deletes_done(store: impl DedupStore) {
        let key = fresh_key();
        let token = fresh(&store, &key, LEASE).await;
        assert!(complete(&store, &key, &token, TTL).await);
        assert!(!release(&store, &key, &token).await);
        assert_eq!(claim(&store, &key).await, Claim::Done);
    }

    /// Every spelling of a UUID is one id.
    pub async fn uuid_spellings_are_one_id(store: impl DedupStore) {
        let id = uuid_like();
        let key = EventKey::from_event_id(&id);
        let token = fresh(&store, &key, LEASE).await;
        assert!(complete(&store, &key, &token, TTL).await);
        for spelling in [
            id.to_uppercase(),
            id.replace('-', ""),
            format!("{{{id}}}"),
            format!("urn:uuid:{id}"),
        ] {
            assert_eq!(
                claim(&store, &EventKey::from_event_id(&spelling)).await,
                Claim::Done,
                "{spelling}"
            );
        }
    }

    /// 256 simultaneous claims of one id: exactly one is Fresh. 200 rounds, new ids each.
    pub async fn one_fresh_among_concurrent_claims(store: impl DedupStore) {
        const TASKS: usize = 256;
        const ROUNDS: usize = 200;
        let store = std::sync::Arc::new(store);
        for round in 0..ROUNDS {
            let key = fresh_key();
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let store = std::sync::Arc::clone(&store);
                    let barrier = std::sync::Arc::clone(&barrier);
                    tokio::spawn(async move {
                        barrier.wait().await;
                        store.claim(&key, LEASE).await
                    })
                })
                .collect();
            let mut fresh = 0;
            let mut in_flight = 0;
            for task in tasks {
                match task.await {
                    Ok(Ok(Claim::Fresh(_))) => fresh += 1,
                    Ok(Ok(Claim::InFlight)) => in_flight += 1,
                    other => panic!("round {round}: unexpected {other:?}"),
                }
            }
            assert_eq!(fresh, 1, "round {round}: {fresh} fresh claims");
            assert_eq!(in_flight, TASKS - 1, "round {round}");
        }
    }

    fn uuid_like() -> String {
        let hex = fresh_key().to_string();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }
}

/// Calls `$callback!($head… every case,)`: the one list of the cases, for the per-case tests
/// and for [`every_case`].
macro_rules! with_every_case {
    ($callback:ident!($($head:tt)*)) => {
        $callback!($($head)*
            completed_ids_are_done,
            live_claims_are_in_flight,
            released_ids_are_fresh_again,
            unknown_claims_settle_to_false,
            expired_leases_are_fresh_again,
            late_finishers_are_fenced_off,
            expired_tokens_own_nothing,
            done_entries_expire_after_the_ttl,
            done_entries_outlive_the_lease,
            release_never_deletes_done,
            uuid_spellings_are_one_id,
            one_fresh_among_concurrent_claims,
            renew_extends_the_owner_s_lease,
            renew_is_fenced,
        );
    };
}

/// One `#[tokio::test]` per case for a backend; `$make` is an async expression giving
/// `Option<store>` (`None`: skipped, after saying so).
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            with_every_case!(conformance!(@cases $make;));
        }
    };
    (@cases $make:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(store) = $make.await {
                    cases::$case(store).await;
                }
            }
        )*
    };
}

#[cfg(feature = "redis")]
macro_rules! in_turn {
    ($store:ident; $($case:ident,)*) => {
        $(
            eprintln!("conformance case {}", stringify!($case));
            cases::$case($store.clone()).await;
        )*
    };
}

/// Every case in turn on clones of one store: for a backend too costly to start per case (a
/// local Redis Cluster). A failing case panics with its name printed just before.
#[cfg(feature = "redis")]
pub async fn every_case<S: DedupStore + Clone + 'static>(store: S) {
    with_every_case!(in_turn!(store;));
}

conformance!(memory, async { Some(vobiz_webhooks::MemoryStore::new()) });

conformance!(memory_shared_by_arc, async {
    Some(std::sync::Arc::new(
        vobiz_webhooks::MemoryStore::with_capacity(10_000),
    ))
});

#[cfg(feature = "moka")]
conformance!(moka, async { Some(vobiz_webhooks::MokaStore::new()) });

#[cfg(feature = "redis")]
conformance!(redis, crate::support::redis::store("conformance"));
