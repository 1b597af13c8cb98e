//! RELIABILITY.md cases 11 and 15: floods of bad signatures, a store fed three times its capacity,
//! and the body limit under concurrent oversize uploads. Memory figures are this process's RSS
//! (`/proc/self/statm`, peak via `VmHWM` after resetting it), so the tests of this file run one
//! at a time.
//!
//! Knobs: `VOBIZ_FLOOD_REQUESTS` (default 20 000; the long run 1 000 000),
//! `VOBIZ_FLOOD_CAPACITY` (default 20 000; the long run 1 000 000).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::support::{envelope, figure, rss_bytes, signed, CountingStore};
use axum::body::Body;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::{Request, Response, StatusCode};
use tower::{service_fn, Layer, Service, ServiceExt};
use vobiz_webhooks::{sign, MemoryStore, VobizWebhookLayer};

const SECRET: &str = "resources-secret";
const MIB: f64 = 1024.0 * 1024.0;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn counting_service(
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send>
       + Clone
       + Send
       + 'static {
    service_fn(move |_req: Request<Body>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }
    })
}

/// A cheap xorshift, so the flood needs no `rand`.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Peak RSS since the last reset, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Case 11: a flood of deliveries with random ids and bad signatures, then three times the
/// store's capacity in signed unique ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_flood_and_store_capacity() {
    let _one = ONE_AT_A_TIME.lock().await;
    let requests = crate::support::env_usize("VOBIZ_FLOOD_REQUESTS", 20_000);
    let capacity = crate::support::env_usize("VOBIZ_FLOOD_CAPACITY", 20_000);
    let store = CountingStore::new(MemoryStore::with_capacity(capacity));
    let calls = Arc::new(AtomicUsize::new(0));
    let service = VobizWebhookLayer::new(SECRET)
        .store(store.clone())
        .layer(counting_service(calls.clone()));

    // Warm up the allocator and runtime before the baseline.
    for n in 0..1000u64 {
        let body = envelope(&format!("warm-{n}"), "message.inbound");
        let request = Request::post("/")
            .header("x-webhook-signature", "00".repeat(32))
            .body(Body::from(body))
            .expect("request");
        service.clone().oneshot(request).await.expect("infallible");
    }
    let baseline = rss_bytes();
    let started = Instant::now();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut statuses = std::collections::HashMap::<u16, usize>::new();
    for n in 0..requests {
        let id = format!("{:016x}{:016x}", next(&mut state), next(&mut state));
        let body = envelope(&id, "message.inbound");
        let signature = match n % 4 {
            // Well formed, wrong: the body is read and the HMAC computed.
            0 | 1 => format!(
                "{:016x}{:016x}{:016x}{:016x}",
                next(&mut state),
                next(&mut state),
                next(&mut state),
                next(&mut state)
            ),
            // Right tag under another secret.
            2 => sign("not-the-secret", &body),
            // Malformed.
            _ => format!("sha256={}", sign(SECRET, &body)),
        };
        let request = Request::post("/")
            .header("x-webhook-signature", signature)
            .body(Body::from(body))
            .expect("request");
        let status = service
            .clone()
            .oneshot(request)
            .await
            .expect("infallible")
            .status();
        *statuses.entry(status.as_u16()).or_default() += 1;
    }
    let flood_secs = started.elapsed().as_secs_f64();
    let growth = rss_bytes().saturating_sub(baseline);
    assert_eq!(statuses.get(&401), Some(&requests), "{statuses:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(store.counts.writes(), 0);
    assert_eq!(store.inner.len(), 0);
    assert!(growth < 50 * 1024 * 1024, "RSS grew {growth} bytes");

    // Three times the capacity in signed unique ids.
    let before = rss_bytes();
    let unique = 3 * capacity;
    for n in 0..unique {
        let body = envelope(&format!("{:032x}", n as u128 + 1), "message.inbound");
        let status = service
            .clone()
            .oneshot(signed(SECRET, body))
            .await
            .expect("infallible")
            .status();
        assert_eq!(status, StatusCode::OK);
    }
    let entries = store.inner.len();
    let grown = rss_bytes().saturating_sub(before);
    assert!(entries <= capacity, "{entries} > {capacity}");
    figure(
        "11 flood",
        format!(
            "{requests} bad-signature requests ({:.0}/s, {} build): {statuses:?}, 0 handler calls, 0 store writes, 0 entries, RSS growth {:.1} MiB (< 50)",
            requests as f64 / flood_secs,
            if cfg!(debug_assertions) { "debug" } else { "release" },
            growth as f64 / MIB
        ),
    );
    figure(
        "11 capacity",
        format!(
            "capacity {capacity}, {unique} signed unique ids: {entries} entries (≤ capacity), RSS growth {:.1} MiB ≈ {:.0} B per entry held",
            grown as f64 / MIB,
            grown as f64 / entries.max(1) as f64
        ),
    );
}

/// A body streamed in fresh chunks (fresh memory, as a socket would deliver), recording reads.
fn streamed(total: usize, chunk: usize, polled: Arc<AtomicBool>) -> Body {
    let chunks = total.div_ceil(chunk);
    Body::from_stream(stream::iter(0..chunks).then(move |i| {
        let polled = polled.clone();
        async move {
            polled.store(true, Ordering::SeqCst);
            tokio::task::yield_now().await;
            let len = chunk.min(total - i * chunk);
            Ok::<_, Infallible>(Bytes::from(vec![b' '; len]))
        }
    }))
}

/// Case 15: the body limit: declared over, streamed across, exactly at; and memory under 200
/// concurrent oversize uploads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_under_concurrent_oversize_uploads() {
    let _one = ONE_AT_A_TIME.lock().await;
    const LIMIT: usize = 256 * 1024;
    let calls = Arc::new(AtomicUsize::new(0));
    let service = VobizWebhookLayer::new(SECRET)
        .body_limit(LIMIT)
        .layer(counting_service(calls.clone()));

    // Declared over the limit: 413 before a byte is read.
    let polled = Arc::new(AtomicBool::new(false));
    let body = streamed(LIMIT + 1, 64 * 1024, polled.clone());
    let request = Request::post("/")
        .header("x-webhook-signature", "00".repeat(32))
        .header("content-length", LIMIT + 1)
        .body(body)
        .expect("request");
    let declared = service
        .clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status();
    assert_eq!(declared, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!polled.load(Ordering::SeqCst), "the body was read");

    // Chunked, no length, crossing the limit: 413.
    let polled = Arc::new(AtomicBool::new(false));
    let request = Request::post("/")
        .header("x-webhook-signature", "00".repeat(32))
        .body(streamed(LIMIT + 1, 7 * 1024, polled))
        .expect("request");
    let crossing = service
        .clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status();
    assert_eq!(crossing, StatusCode::PAYLOAD_TOO_LARGE);

    // A signed envelope of exactly the limit (padded with whitespace JSON allows): 200; one
    // byte more: 413. Both streamed in chunks.
    let exact = |len: usize| {
        let head = envelope("exactly-at-the-limit", "message.inbound");
        let mut bytes = head.to_vec();
        bytes.resize(len, b' ');
        Bytes::from(bytes)
    };
    let at = exact(LIMIT);
    let chunks: Vec<Result<Bytes, Infallible>> = at
        .chunks(10_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let request = Request::post("/")
        .header("x-webhook-signature", sign(SECRET, &at))
        .body(Body::from_stream(stream::iter(chunks)))
        .expect("request");
    let at_limit = service
        .clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status();
    assert_eq!(at_limit, StatusCode::OK);
    let over = exact(LIMIT + 1);
    let request = signed(SECRET, over);
    let over_limit = service
        .clone()
        .oneshot(request)
        .await
        .expect("infallible")
        .status();
    assert_eq!(over_limit, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // 200 concurrent chunked uploads of 4 × the limit each.
    const UPLOADS: usize = 200;
    let baseline = rss_bytes();
    reset_peak_rss();
    let peak_before = peak_rss();
    let tasks: Vec<_> = (0..UPLOADS)
        .map(|_| {
            let service = service.clone();
            tokio::spawn(async move {
                let request = Request::post("/")
                    .header("x-webhook-signature", "00".repeat(32))
                    .body(streamed(4 * LIMIT, 16 * 1024, Arc::default()))
                    .expect("request");
                service.oneshot(request).await.expect("infallible").status()
            })
        })
        .collect();
    let mut refused = 0;
    for task in tasks {
        if task.await.expect("task") == StatusCode::PAYLOAD_TOO_LARGE {
            refused += 1;
        }
    }
    let peak_growth = peak_rss().saturating_sub(peak_before.max(baseline));
    assert_eq!(refused, UPLOADS);
    assert!(
        (peak_growth as usize) < LIMIT * UPLOADS,
        "peak RSS grew {peak_growth} ≥ {}",
        LIMIT * UPLOADS
    );
    figure(
        "15 body limit",
        format!(
            "limit {} KiB: declared over → {declared} (body never read); chunked crossing → {crossing}; exactly at → {at_limit}; one over → {over_limit}; {UPLOADS} concurrent 4×-limit chunked uploads: {refused} refused 413, peak RSS growth {:.1} MiB (bound limit × {UPLOADS} = {:.1} MiB)",
            LIMIT / 1024,
            peak_growth as f64 / MIB,
            (LIMIT * UPLOADS) as f64 / MIB
        ),
    );
}
