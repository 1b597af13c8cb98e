//! Helpers shared by the `reliability_*` suites (issue 7). Each suite uses a subset.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::Request;
use vobiz_webhooks::{sign, Claim, ClaimToken, DedupStore, EventKey, StoreError};

/// An env var read as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Whether the long-run knob is set (`VOBIZ_RELIABILITY_FULL=1`).
pub fn full_run() -> bool {
    std::env::var("VOBIZ_RELIABILITY_FULL").is_ok_and(|value| value == "1")
}

/// A key prefix no other test, run or engineer uses.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "vobiz-rel:{test}:{}:{nanos}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Where no Redis answers: a loud skip, or a failure under `CI=true`.
pub fn skip_or_fail(what: &str) {
    let message = format!(
        "SKIPPED {what}: no Redis at {} (set VOBIZ_TEST_REDIS_URL)",
        redis_url()
    );
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{message} — CI=true requires Redis");
    }
    eprintln!("\n!!!!!!!! {message} !!!!!!!!\n");
}

/// The shared test Redis (`VOBIZ_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`).
pub fn redis_url() -> String {
    std::env::var("VOBIZ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A body of the envelope shape.
pub fn envelope(id: &str, event_type: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"event_id":"{id}","event_type":"{event_type}","account_id":"MA_RELIABILITY","occurred_at":"2026-03-25T10:00:00Z","payload":{{}}}}"#
    ))
}

/// A delivery of `body` signed with `secret`.
pub fn signed(secret: &str, body: Bytes) -> Request<Body> {
    Request::post("/webhooks/vobiz")
        .header("content-type", "application/json")
        .header("x-webhook-signature", sign(secret, &body))
        .body(Body::from(body))
        .expect("request")
}

/// Counts every store call, so a test can assert "0 store writes".
#[derive(Clone, Debug, Default)]
pub struct CountingStore<D> {
    pub inner: D,
    pub counts: Arc<Counts>,
}

#[derive(Debug, Default)]
pub struct Counts {
    pub claims: AtomicUsize,
    pub fresh: AtomicUsize,
    pub completes: AtomicUsize,
    pub completed: AtomicUsize,
    pub releases: AtomicUsize,
}

impl Counts {
    /// Every call that may write (claim, complete, release).
    pub fn writes(&self) -> usize {
        self.claims.load(Ordering::SeqCst)
            + self.completes.load(Ordering::SeqCst)
            + self.releases.load(Ordering::SeqCst)
    }
}

impl<D> CountingStore<D> {
    pub fn new(inner: D) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }
}

impl<D: DedupStore> DedupStore for CountingStore<D> {
    fn claim(
        &self,
        key: &EventKey,
        lease: Duration,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        let counts = Arc::clone(&self.counts);
        counts.claims.fetch_add(1, Ordering::SeqCst);
        let call = self.inner.claim(key, lease);
        async move {
            let claim = call.await;
            if matches!(claim, Ok(Claim::Fresh(_))) {
                counts.fresh.fetch_add(1, Ordering::SeqCst);
            }
            claim
        }
    }

    fn complete(
        &self,
        key: &EventKey,
        token: &ClaimToken,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let counts = Arc::clone(&self.counts);
        counts.completes.fetch_add(1, Ordering::SeqCst);
        let call = self.inner.complete(key, token, ttl);
        async move {
            let done = call.await;
            if matches!(done, Ok(true)) {
                counts.completed.fetch_add(1, Ordering::SeqCst);
            }
            done
        }
    }

    fn release(
        &self,
        key: &EventKey,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.counts.releases.fetch_add(1, Ordering::SeqCst);
        self.inner.release(key, token)
    }
}

/// Resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("free port")
}

/// A private `redis-server` on a free loopback port, no persistence; killed on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one, or `None` when `/usr/bin/redis-server` is missing (loud skip / CI failure).
    pub fn start() -> Option<Self> {
        let mut server = Self {
            port: free_port(),
            child: None,
        };
        server.restart().then_some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// (Re)starts the server on its port, empty (no persistence). Waits until it answers.
    pub fn restart(&mut self) -> bool {
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
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = child else {
            return false;
        };
        let stdout = child.stdout.take();
        self.child = Some(child);
        // Wait for "Ready to accept connections".
        if let Some(stdout) = stdout {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut lines = BufReader::new(stdout).lines();
            while Instant::now() < deadline {
                match lines.next() {
                    Some(Ok(line)) if line.contains("Ready to accept") => break,
                    Some(Ok(_)) => continue,
                    _ => break,
                }
            }
            // Keep draining so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(self.addr()).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
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

/// Percentile (0..=100) of a list of durations.
pub fn percentile(samples: &mut [Duration], pct: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let rank = ((pct / 100.0) * (samples.len() - 1) as f64).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

/// Prints one figure line that RELIABILITY.md quotes (`cargo test -- --nocapture` shows it).
pub fn figure(case: &str, text: impl std::fmt::Display) {
    println!("FIGURE {case}: {text}");
}

/// What the [`Proxy`] does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward bytes as they come.
    Pass,
    /// Hold every chunk this many milliseconds before forwarding it.
    Delay(u64),
    /// Close every connection, and every new one at once.
    Cut,
    /// Accept and read, forward nothing (a silent peer).
    Blackhole,
}

/// A small TCP proxy on loopback in front of `upstream`, whose behaviour a test switches.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<std::sync::Mutex<ProxyMode>>,
    cut: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let mode = Arc::new(std::sync::Mutex::new(ProxyMode::Pass));
        let cut = Arc::new(tokio::sync::Notify::new());
        let (m, c) = (mode.clone(), cut.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mode = *m.lock().expect("mode");
                if mode == ProxyMode::Cut {
                    drop(client);
                    continue;
                }
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, m.clone(), c.clone()));
                tokio::spawn(pump(sr, cw, m.clone(), c.clone()));
            }
        });
        Proxy {
            addr,
            mode,
            cut,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    pub fn set(&self, mode: ProxyMode) {
        *self.mode.lock().expect("mode") = mode;
        if mode == ProxyMode::Cut {
            self.cut.notify_waiters();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut.notify_waiters();
        self.task.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mode: Arc<std::sync::Mutex<ProxyMode>>,
    cut: Arc<tokio::sync::Notify>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buf) => read,
            () = cut.notified() => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let current = *mode.lock().expect("mode");
        match current {
            ProxyMode::Pass => {}
            ProxyMode::Delay(ms) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    () = cut.notified() => return,
                }
            }
            ProxyMode::Cut => return,
            ProxyMode::Blackhole => continue,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
