//! Helpers shared by the queue-mode tests (`tests/queue_*.rs`).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use bytes::Bytes;
use http::Request;
use vobiz_webhooks::sign;

pub const SECRET: &str = "queue-secret";

/// The exact bytes of a `message.inbound` delivery of `id`.
pub fn body(id: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"event_id":"{id}","event_type":"message.inbound","account_id":"acc-1","payload":{{}}}}"#
    ))
}

/// A signed delivery of `id`, as Vobiz sends it.
pub fn delivery(id: &str) -> Request<Body> {
    let body = body(id);
    Request::post("/webhooks/vobiz")
        .header("x-webhook-signature", sign(SECRET, &body))
        .header("x-webhook-event", "message.inbound")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request")
}

/// Polls `condition` every 5 ms until it holds or `within` passes.
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

/// The p-th percentile (0..=100) of `samples`, sorting them.
pub fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort_unstable();
    let index = (samples.len() * p).div_ceil(100).saturating_sub(1);
    samples.get(index).copied().unwrap_or_default()
}

/// The Redis of `VOBIZ_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), or `None` after a
/// loud message when none answers. Under `CI=true` a missing Redis fails the test instead.
#[cfg(feature = "redis")]
pub async fn redis_url() -> Option<String> {
    let url = std::env::var("VOBIZ_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let reachable = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .ok()
    };
    match tokio::time::timeout(Duration::from_secs(2), reachable).await {
        Ok(Some(_)) => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true and no Redis answers at {url} (VOBIZ_TEST_REDIS_URL)")
        }
        _ => {
            eprintln!(
                "\n!!!!!!!! SKIPPED: no Redis answers at {url}; set VOBIZ_TEST_REDIS_URL !!!!!!!!\n"
            );
            None
        }
    }
}

/// A key prefix no other test (or run) shares, with a hash tag so the queue's keys share a slot.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{{vobiz-test-queue-{test}-{}-{nanos}-{}}}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
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
