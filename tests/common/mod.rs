//! Helpers shared by the integration tests.

#![allow(dead_code)] // Each test crate uses its own subset.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use vobiz_webhooks::EventKey;

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default()
}

/// A string no other test, test run or process has used: pid, wall-clock nanos, a counter.
pub fn unique_name() -> String {
    format!(
        "{}-{}-{}",
        std::process::id(),
        nanos(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A key no other test or run uses (a digest of [`unique_name`]).
pub fn fresh_key() -> EventKey {
    EventKey::from_event_id(&format!("test-event-{}", unique_name()))
}

/// A Redis key prefix of its own for one test, so tests can share one Redis.
pub fn unique_prefix() -> String {
    format!("vobiz-test:{}:", unique_name())
}

/// Whether this run is CI, where a missing service fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// Skips a test that needs `what` loudly, or fails it under `CI=true`.
pub fn skip_or_fail(what: &str, why: &dyn std::fmt::Display) {
    if in_ci() {
        panic!("{what} is required under CI=true: {why}");
    }
    // Straight to the stderr handle: libtest captures `eprintln!` of passing tests.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIPPED: {what} not available: {why}\n!!!!!!!! (set CI=true to make this a failure)\n"
    );
}

#[cfg(feature = "redis")]
pub mod redis {
    use std::time::Duration;

    use vobiz_webhooks::RedisStore;

    /// `VOBIZ_TEST_REDIS_URL`, or the Redis on 127.0.0.1:6379.
    pub fn url() -> String {
        std::env::var("VOBIZ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A store on the test Redis under a prefix of its own, or `None` (after a loud message)
    /// when no Redis answers; under `CI=true` that panics instead.
    pub async fn store() -> Option<RedisStore> {
        let url = url();
        match tokio::time::timeout(Duration::from_secs(5), RedisStore::new(&url)).await {
            Ok(Ok(store)) => Some(store.prefix(super::unique_prefix())),
            Ok(Err(error)) => {
                super::skip_or_fail(&format!("Redis at {url}"), &error);
                None
            }
            Err(elapsed) => {
                super::skip_or_fail(&format!("Redis at {url}"), &elapsed);
                None
            }
        }
    }
}

/// A `redis-server` of a test's own, on a free loopback port, for tests that stop Redis.
pub mod redis_server {
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

    /// A `redis-server` child, killed when dropped.
    pub struct Server(Child);

    impl Server {
        pub fn start(port: u16) -> Server {
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

        pub fn stop(mut self) {
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

    /// A `redis-server` of the test's own on a free loopback port, and its port; `None` (a loud
    /// skip, a failure under `CI=true`) when `redis-server` is not installed.
    pub fn private() -> Option<(Server, u16)> {
        if !std::path::Path::new(REDIS_SERVER).exists() {
            super::skip_or_fail(
                REDIS_SERVER,
                &"not installed (apt-get install redis-server)",
            );
            return None;
        }
        let port = free_port();
        Some((Server::start(port), port))
    }

    pub fn free_port() -> u16 {
        match TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()) {
            Ok(address) => address.port(),
            Err(error) => panic!("no free port: {error}"),
        }
    }
}
