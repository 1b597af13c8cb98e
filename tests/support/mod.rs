//! The one support module of every test binary (`tests/<area>/main.rs` includes it with
//! `#[path = "../support/mod.rs"] mod support;`). Each area uses a subset.
//!
//! Signed requests come from the crate's own test kit, [`TestEvent`] (feature `testing`, which
//! the crate's dev-dependency on itself turns on for every test build).

#![allow(dead_code, unused_imports)]

pub mod cluster;
pub mod counting_store;
pub mod proxy;
pub mod redis;

use std::hash::BuildHasher;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use bytes::Bytes;
use http::Request;
use serde_json::json;
use vobiz_webhooks::EventKey;

pub use cluster::RedisCluster;
pub use counting_store::{CountingStore, Counts};
pub use proxy::{Proxy, ProxyMode};
pub use redis::RedisServer;
pub use vobiz_webhooks::testing::TestEvent;

// ---- names no other test, run or process uses ----

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A string no other test, test run or process has used: pid, wall-clock nanos, a counter.
pub fn unique_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or_default();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A key no other test or run uses (a digest of [`unique_name`]).
pub fn fresh_key() -> EventKey {
    EventKey::from_event_id(&format!("test-event-{}", unique_name()))
}

/// A Redis key prefix of `test`'s own, so tests can share one Redis (and never flush it). The
/// hash tag keeps every key of one prefix (a queue's stream, group and claims) in one slot.
pub fn unique_prefix(test: &str) -> String {
    format!("{{vobiz-test:{test}:{}}}:", unique_name())
}

// ---- CI, skips and knobs ----

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

/// An env var read as a number, or `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Prints one figure line that RELIABILITY.md quotes (`cargo test -- --nocapture` shows it).
pub fn figure(case: &str, text: impl std::fmt::Display) {
    println!("FIGURE {case}: {text}");
}

// ---- signed deliveries (the crate's test kit) ----

/// The smallest valid delivery: `event_type` with id `id` and an empty payload.
pub fn event(id: &str, event_type: &str) -> TestEvent {
    TestEvent::raw(event_type, json!({})).event_id(id)
}

/// A `message.inbound` delivery of `id`, signed with `secret`, as Vobiz sends it.
pub fn delivery(secret: &str, id: &str) -> Request<Body> {
    event(id, "message.inbound").request(secret)
}

/// The body of [`event`]`(id, event_type)`.
pub fn envelope(id: &str, event_type: &str) -> Bytes {
    event(id, event_type).body_bytes()
}

/// Exactly `body`, signed with `secret`, with no `X-Webhook-Event` header.
pub fn signed(secret: &str, body: impl Into<Bytes>) -> Request<Body> {
    signed_event(body).request(secret)
}

/// A kit event sending exactly `body` with no `X-Webhook-Event` header (set the signature,
/// headers or path on it as a test needs).
pub fn signed_event(body: impl Into<Bytes>) -> TestEvent {
    TestEvent::raw("message.inbound", json!({}))
        .body(body)
        .without_event_header()
}

// ---- measuring ----

/// A free loopback port for a server a test starts itself (`redis-server`, the example server).
///
/// Chosen at random *below* the kernel's ephemeral range and checked by binding: a port the
/// kernel hands out (to another test's `bind(0)` or to an outgoing connection) can never be
/// the one we picked between our check and the server's own bind, which is how a test once
/// reached another test's HTTP server instead of its `redis-server`.
pub fn free_port() -> u16 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let low = ephemeral_low().min(32_768);
    let base = 10_000u16;
    let span = u64::from(low.saturating_sub(base).max(1));
    for attempt in 0..1_000u64 {
        let draw = std::collections::hash_map::RandomState::new().hash_one((
            std::process::id(),
            CALLS.fetch_add(1, Ordering::Relaxed),
            attempt,
        ));
        let port = base + (draw % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below the ephemeral range")
}

/// The first port of the kernel's ephemeral range (Linux), 32768 when unknown.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The p-th percentile (0..=100, nearest rank) of `samples`, sorting them; zero when empty.
pub fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort_unstable();
    let index = (samples.len() * p).div_ceil(100).saturating_sub(1);
    samples.get(index).copied().unwrap_or_default()
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

/// Polls `condition` every 5 ms until it holds or `within` passes (Tokio's clock, so it works
/// under a paused clock too).
pub async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A `POST` of `event` signed with `secret` to `url` over real HTTP: the kit's body and headers.
pub fn http_post(
    client: &reqwest::Client,
    url: &str,
    secret: &str,
    event: &TestEvent,
) -> reqwest::RequestBuilder {
    let body = event.body_bytes();
    client
        .post(url)
        .headers(event.headers_for(secret, &body))
        .body(body)
}

/// The whole body of `response`, as text (lossy UTF-8).
pub async fn body_text(response: http::Response<Body>) -> String {
    use http_body_util::BodyExt;
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}
