//! `RedisStore` against a Redis that dies and comes back: errors, not hangs, then recovery.
//!
//! Starts its own `redis-server` on a free loopback port (never touches the shared one).
#![cfg(feature = "redis")]

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fresh_key;
use vobiz_webhooks::{Claim, DedupStore, RedisStore, StoreError};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const LEASE: Duration = Duration::from_secs(60);
/// Any one store call must settle within this; a hang fails the test.
const CALL_LIMIT: Duration = Duration::from_secs(5);

/// A `redis-server` child, killed when dropped.
struct Server(Child);

impl Server {
    fn start(port: u16) -> Server {
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let server = match child {
            Ok(child) => Server(child),
            Err(error) => panic!("cannot start {REDIS_SERVER}: {error}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn stop(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()) {
        Ok(address) => address.port(),
        Err(error) => panic!("no free port: {error}"),
    }
}

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
    if !Path::new(REDIS_SERVER).exists() {
        common::skip_or_fail(
            REDIS_SERVER,
            &"not installed (apt-get install redis-server)",
        );
        return;
    }
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let server = Server::start(port);
    let store = match bounded(RedisStore::new(&url)).await {
        Ok(store) => store.prefix(common::unique_prefix()),
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

    let _server = Server::start(port);
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
