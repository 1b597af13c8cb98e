//! The test Redis: the shared one (`VOBIZ_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`;
//! every test under its own key prefix, never flushed) and private `redis-server`s for tests
//! that stop Redis.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared test Redis: `VOBIZ_TEST_REDIS_URL`, or the Redis on 127.0.0.1:6379.
pub fn url() -> String {
    std::env::var("VOBIZ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A store on the shared Redis under a prefix of `test`'s own, or `None` (after a loud
/// message) when no Redis answers; under `CI=true` that panics instead.
#[cfg(feature = "redis")]
pub async fn store(test: &str) -> Option<vobiz_webhooks::RedisStore> {
    let url = url();
    let store = answering(&url, vobiz_webhooks::RedisStore::new(&url)).await?;
    Some(store.prefix(super::unique_prefix(test)))
}

/// The shared Redis' URL when it answers `PING`, or `None` (after a loud message); under
/// `CI=true` that panics instead.
#[cfg(feature = "redis")]
pub async fn available_url() -> Option<String> {
    let url = url();
    let ping = async {
        let client = redis::Client::open(url.as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
    };
    answering(&url, ping).await?;
    Some(url)
}

/// What `connect` gives within 5 s, or `None` after a loud skip (a panic under `CI=true`).
#[cfg(feature = "redis")]
async fn answering<T, E: std::fmt::Display>(
    url: &str,
    connect: impl std::future::Future<Output = Result<T, E>>,
) -> Option<T> {
    let what = format!("Redis at {url} (VOBIZ_TEST_REDIS_URL)");
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(error)) => {
            super::skip_or_fail(&what, &error);
            None
        }
        Err(elapsed) => {
            super::skip_or_fail(&what, &elapsed);
            None
        }
    }
}

/// Deletes every key under `prefix` (SCAN + DEL: never FLUSH on a shared Redis).
#[cfg(feature = "redis")]
pub async fn delete_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let pattern = format!("{}*", escape_glob(prefix));
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await
        else {
            return;
        };
        if !keys.is_empty() {
            let _: Result<u64, _> = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut connection)
                .await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

#[cfg(feature = "redis")]
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// A private `redis-server` of one test's own on a free loopback port, no persistence; killed
/// on drop. For the tests that stop Redis: the shared one is never touched.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one and waits until it answers;`None` (a loud skip, a failure under `CI=true`)
    /// when `redis-server` is not installed or does not start (on any of a few ports).
    pub fn start() -> Option<Self> {
        for _ in 0..5 {
            let mut server = Self {
                port: super::free_port(),
                child: None,
            };
            if server.restart() {
                return Some(server);
            }
        }
        super::skip_or_fail(
            "a private redis-server",
            &"not installed or not starting (apt-get install redis-server)",
        );
        None
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// (Re)starts the server on its port, empty (no persistence). True once *our* server
    /// answers: it said "Ready to accept connections", is still running, and answers `PING`
    /// on the port (not some other process that took the port meanwhile). A restart retries
    /// for a few seconds while the port is still held.
    pub fn restart(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.start_once() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn start_once(&mut self) -> bool {
        self.stop();
        let binary = ["/usr/bin/redis-server", "redis-server"]
            .into_iter()
            .find(|path| Command::new(path).arg("--version").output().is_ok());
        let Some(binary) = binary else {
            return false;
        };
        let child = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            return false;
        };
        let stdout = child.stdout.take();
        self.child = Some(child);
        let Some(stdout) = stdout else {
            return false;
        };
        // "Ready to accept connections", or the end of its output (it could not bind: exited).
        let mut ready = false;
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if line.contains("Ready to accept") {
                ready = true;
                break;
            }
        }
        // Keep draining so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let running = self
            .child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)));
        if ready && running && self.answers_ping() {
            true
        } else {
            self.stop();
            false
        }
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) =
            std::net::TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && &answer == b"+PONG\r\n"
    }

    /// Kills the server (SIGKILL: no goodbye, no persistence) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A test's own connection for what its handlers record (counters, sets): to one node, or to
/// a cluster (recognised as the crate does: several URLs, or `cluster_enabled:1`).
#[cfg(feature = "redis")]
#[derive(Clone)]
pub enum Records {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

#[cfg(feature = "redis")]
impl Records {
    pub async fn connect(url: &str) -> Records {
        let urls: Vec<&str> = url.split(',').collect();
        let client = redis::Client::open(urls[0]).expect("client");
        let mut probe = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let info: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut probe)
            .await
            .expect("info");
        if urls.len() > 1 || info.contains("cluster_enabled:1") {
            let cluster = redis::cluster::ClusterClient::new(urls).expect("cluster client");
            Records::Cluster(cluster.get_async_connection().await.expect("cluster"))
        } else {
            Records::Single(
                redis::aio::ConnectionManager::new(client)
                    .await
                    .expect("redis"),
            )
        }
    }
}

#[cfg(feature = "redis")]
impl redis::aio::ConnectionLike for Records {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Records::Single(connection) => connection.req_packed_command(cmd),
            Records::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Records::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Records::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Records::Single(connection) => connection.get_db(),
            Records::Cluster(connection) => connection.get_db(),
        }
    }
}
