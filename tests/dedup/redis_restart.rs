//! `RedisStore` against a Redis that dies and comes back: errors, not hangs, then recovery.
//!
//! Starts its own `redis-server` on a free loopback port (never touches the shared one).

use std::time::{Duration, Instant};

use crate::support::{fresh_key, RedisServer};
use vobiz_webhooks::{Claim, DedupStore, RedisStore, StoreError};

const LEASE: Duration = Duration::from_secs(60);
/// Any one store call must settle within this; a hang fails the test.
const CALL_LIMIT: Duration = Duration::from_secs(5);

async fn bounded<T>(call: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(CALL_LIMIT, call).await {
        Ok(value) => value,
        Err(_) => panic!("a store call hung for more than {CALL_LIMIT:?}"),
    }
}

async fn claim(store: &RedisStore) -> Result<Claim, StoreError> {
    bounded(store.claim(&fresh_key(), LEASE)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_while_redis_is_down_then_recovers() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    let store = match bounded(RedisStore::new(&url)).await {
        Ok(store) => store.prefix(crate::support::unique_prefix("redis-restart")),
        Err(error) => panic!("cannot connect to our redis-server: {error}"),
    };

    let key = fresh_key();
    let token = match bounded(store.claim(&key, LEASE)).await {
        Ok(Claim::Fresh(token)) => token,
        other => panic!("{other:?}"),
    };

    server.stop();
    // Every call now fails with a StoreError, promptly.
    for attempt in 0..3 {
        match claim(&store).await {
            Err(error) => eprintln!("down, attempt {attempt}: {error} ({:?})", error.kind()),
            Ok(claim) => panic!("a dead Redis answered {claim:?}"),
        }
    }
    assert!(bounded(store.complete(&key, &token, LEASE)).await.is_err());
    assert!(bounded(store.release(&key, &token)).await.is_err());

    assert!(server.restart(), "redis-server did not come back");
    // The connection manager reconnects by itself; give it a few seconds.
    let started = Instant::now();
    loop {
        match claim(&store).await {
            Ok(Claim::Fresh(_)) => break,
            Ok(other) => panic!("a new id answered {other:?}"),
            Err(error) => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "no recovery after Redis came back: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // A whole claim → complete → done cycle works again (scripts are reloaded: the new server
    // has an empty script cache).
    let key = fresh_key();
    let token = match bounded(store.claim(&key, LEASE)).await {
        Ok(Claim::Fresh(token)) => token,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        bounded(store.complete(&key, &token, LEASE)).await,
        Ok(true)
    ));
    assert!(matches!(
        bounded(store.claim(&key, LEASE)).await,
        Ok(Claim::Done)
    ));
}
