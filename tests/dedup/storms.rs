//! RELIABILITY.md cases 7–10: duplicate storms, retries with failing handlers, panics and leases on a
//! real server, and the in-process store at capacity.
//!
//! Knobs: `VOBIZ_STORM_ITERATIONS` (default 20; the long run 1000), `VOBIZ_RETRY_EVENTS`
//! (default 10 000).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{envelope, event, figure, http_post, signed, CountingStore};
use axum::routing::post;
use axum::Router;
use futures_util::stream::{self, StreamExt};
use http::StatusCode;
use tokio::sync::Barrier;
use tower::ServiceExt;
use vobiz_webhooks::{DedupStore, MemoryStore, VerifiedEvent, VobizWebhookLayer};

const SECRET: &str = "dedup-reliability";

fn storm_app<D: DedupStore>(store: D, calls: Arc<AtomicUsize>) -> Router {
    Router::new().route(
        "/webhooks/vobiz",
        post(move || {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                StatusCode::OK
            }
        })
        .layer(VobizWebhookLayer::new(SECRET).store(store)),
    )
}

/// 256 concurrent deliveries of one id, released together by a barrier, `iterations` times.
async fn storm<D: DedupStore>(backend: &str, store: D) {
    const DUPLICATES: usize = 256;
    let iterations = crate::support::env_usize("VOBIZ_STORM_ITERATIONS", 20);
    let calls = Arc::new(AtomicUsize::new(0));
    let app = storm_app(store, calls.clone());
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let started = Instant::now();
    let run = std::process::id();
    for iteration in 0..iterations {
        let barrier = Arc::new(Barrier::new(DUPLICATES));
        let body = envelope(
            &format!("storm-{backend}-{run}-{iteration}"),
            "message.inbound",
        );
        let tasks: Vec<_> = (0..DUPLICATES)
            .map(|_| {
                let (app, barrier, body) = (app.clone(), barrier.clone(), body.clone());
                tokio::spawn(async move {
                    let request = signed(SECRET, body);
                    barrier.wait().await;
                    app.oneshot(request).await.expect("infallible").status()
                })
            })
            .collect();
        for task in tasks {
            *statuses
                .entry(task.await.expect("task").as_u16())
                .or_default() += 1;
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            iteration + 1,
            "iteration {iteration}"
        );
    }
    let unexpected: usize = statuses
        .iter()
        .filter(|(status, _)| !matches!(status, 200 | 409))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(unexpected, 0, "{statuses:?}");
    figure(
        &format!("07 storm {backend}"),
        format!(
            "{iterations} iterations × {DUPLICATES} concurrent duplicates: handler calls {} (expected {iterations}); answers {statuses:?}; {:.1} s",
            calls.load(Ordering::SeqCst),
            started.elapsed().as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_storm_memory() {
    storm("memory", MemoryStore::new()).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_storm_redis() {
    let Some(store) = crate::support::redis::store("duplicate-storm").await else {
        return;
    };
    storm("redis", store).await;
}

/// What the handler of case 8 recorded.
#[derive(Default)]
struct Ledger {
    /// Runs per id (any outcome).
    runs: HashMap<String, usize>,
    /// Successful runs per id.
    successes: HashMap<String, usize>,
}

/// 10 000 distinct events; 30 % fail their first attempt; the sender retries until a 200 and
/// re-sends 10 % of acknowledged events (a lost acknowledgement).
async fn retry_until_done<D: DedupStore>(backend: &str, store: D) {
    let events = crate::support::env_usize("VOBIZ_RETRY_EVENTS", 10_000);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let recorder = ledger.clone();
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(move |event: VerifiedEvent| {
            let ledger = recorder.clone();
            async move {
                let id = event.event_id().to_owned();
                let n: usize = id
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let mut ledger = ledger.lock().expect("lock");
                let run = {
                    let runs = ledger.runs.entry(id.clone()).or_default();
                    *runs += 1;
                    *runs
                };
                // 30 % of events fail their first attempt.
                if run == 1 && n % 10 < 3 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                *ledger.successes.entry(id).or_default() += 1;
                StatusCode::OK
            }
        })
        .layer(
            VobizWebhookLayer::new(SECRET)
                .store(store)
                .retry_after(Duration::from_millis(1)),
        ),
    );
    let run = std::process::id();
    let acked_without_success = Arc::new(AtomicUsize::new(0));
    let attempts = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    stream::iter(0..events)
        .for_each_concurrent(64, |n| {
            let (app, ledger) = (app.clone(), ledger.clone());
            let (acked_without_success, attempts) =
                (acked_without_success.clone(), attempts.clone());
            async move {
                let id = format!("retry-{backend}-{run}-{n}");
                let body = envelope(&id, "message.inbound");
                let mut acks = 0;
                // Lost acknowledgement: 10 % of events are sent again after their 200.
                let wanted_acks = if n % 10 == 9 { 2 } else { 1 };
                while acks < wanted_acks {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    let status = app
                        .clone()
                        .oneshot(signed(SECRET, body.clone()))
                        .await
                        .expect("infallible")
                        .status();
                    if status == StatusCode::OK {
                        acks += 1;
                        if !ledger.lock().expect("lock").successes.contains_key(&id) {
                            acked_without_success.fetch_add(1, Ordering::SeqCst);
                        }
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
            }
        })
        .await;
    let ledger = ledger.lock().expect("lock");
    let processed = ledger.successes.len();
    let doubled = ledger.successes.values().filter(|n| **n > 1).count();
    let failed_first = ledger.runs.values().filter(|n| **n > 1).count();
    assert_eq!(processed, events);
    assert_eq!(doubled, 0);
    assert_eq!(acked_without_success.load(Ordering::SeqCst), 0);
    figure(
        &format!("08 retries {backend}"),
        format!(
            "{events} events, {} deliveries, {failed_first} failed first attempts: {processed} processed, {doubled} twice, {} answered 200 without a successful run; {:.1} s",
            attempts.load(Ordering::Relaxed),
            acked_without_success.load(Ordering::SeqCst),
            started.elapsed().as_secs_f64()
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_done_memory() {
    retry_until_done("memory", MemoryStore::new()).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_done_redis() {
    let Some(store) = crate::support::redis::store("retries-until-done").await else {
        return;
    };
    retry_until_done("redis", store).await;
}

/// Case 10: a full in-process store never runs a handler twice for an id redelivered within
/// its retention window, and never forgets a live claim.
#[tokio::test]
async fn memory_store_at_capacity() {
    const CAPACITY: usize = 8192;
    let store = MemoryStore::with_capacity(CAPACITY);
    let calls = Arc::new(AtomicUsize::new(0));
    let app = storm_app(store.clone(), calls.clone());
    let send = |id: String| {
        let app = app.clone();
        async move {
            app.oneshot(signed(SECRET, envelope(&id, "message.inbound")))
                .await
                .expect("infallible")
                .status()
        }
    };
    // Warm: fill the store with completed ids.
    for n in 0..CAPACITY {
        assert_eq!(send(format!("warm-{n}")).await, StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), CAPACITY);
    // New ids, three times the capacity; each redelivered at once, and again a quarter of the
    // capacity later (inside the retention window a full store still holds).
    let fresh = 3 * CAPACITY;
    let window = CAPACITY / 4;
    let mut redeliveries = 0;
    for n in 0..fresh {
        assert_eq!(send(format!("new-{n}")).await, StatusCode::OK);
        assert_eq!(send(format!("new-{n}")).await, StatusCode::OK);
        redeliveries += 1;
        if n >= window {
            assert_eq!(send(format!("new-{}", n - window)).await, StatusCode::OK);
            redeliveries += 1;
        }
    }
    let duplicate_calls = calls.load(Ordering::SeqCst) - CAPACITY - fresh;
    assert_eq!(duplicate_calls, 0);
    assert!(store.len() <= CAPACITY);

    // Full of live claims: a new id is refused (503), not admitted by forgetting a claim.
    let claims = MemoryStore::with_capacity(64);
    let counting = CountingStore::new(claims.clone());
    for n in 0..64 {
        let key = vobiz_webhooks::EventKey::from_event_id(&format!("held-{n}"));
        assert!(matches!(
            claims.claim(&key, Duration::from_secs(60)).await,
            Ok(vobiz_webhooks::Claim::Fresh(_))
        ));
    }
    let held_calls = Arc::new(AtomicUsize::new(0));
    let held = storm_app(counting, held_calls.clone());
    let status = |id: &str| {
        held.clone()
            .oneshot(signed(SECRET, envelope(id, "message.inbound")))
    };
    let refused = status("one-more").await.expect("infallible").status();
    let still_held = status("held-7").await.expect("infallible").status();
    assert_eq!(refused, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(still_held, StatusCode::CONFLICT);
    assert_eq!(held_calls.load(Ordering::SeqCst), 0);
    figure(
        "10 capacity",
        format!(
            "capacity {CAPACITY}: {CAPACITY} warm + {fresh} new ids, {redeliveries} redeliveries within a {window}-id window: 0 duplicate handler calls, len {} ≤ capacity; full of live claims: new id {refused}, held id {still_held}, 0 handler calls",
            store.len()
        ),
    );
}

/// Tracks concurrent runs per id: an overlap is a second run starting while one is running.
#[derive(Default)]
struct Overlaps {
    active: Mutex<HashMap<String, usize>>,
    overlaps: AtomicUsize,
}

struct Running {
    id: String,
    overlaps: Arc<Overlaps>,
}

impl Overlaps {
    fn enter(self: &Arc<Self>, id: &str) -> Running {
        let mut active = self.active.lock().expect("lock");
        let count = active.entry(id.to_owned()).or_default();
        *count += 1;
        if *count > 1 {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        Running {
            id: id.to_owned(),
            overlaps: self.clone(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut active) = self.overlaps.active.lock() {
            if let Some(count) = active.get_mut(&self.id) {
                *count -= 1;
            }
        }
    }
}

/// Case 9: a handler that panics, and one that outlives its lease, on a real loopback server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_and_leases_on_a_real_server() {
    const LEASE: Duration = Duration::from_millis(300);
    let overlaps = Arc::new(Overlaps::default());
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let done: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (o, r, d) = (overlaps.clone(), runs.clone(), done.clone());
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(move |event: VerifiedEvent| {
            let (overlaps, runs, done) = (o.clone(), r.clone(), d.clone());
            async move {
                let id = event.event_id().to_owned();
                let _running = overlaps.enter(&id);
                let run = {
                    let mut runs = runs.lock().expect("lock");
                    let run = runs.entry(id.clone()).or_default();
                    *run += 1;
                    *run
                };
                if run == 1 && id.starts_with("panic") {
                    panic!("handler panics on its first run (expected by the test)");
                }
                if run == 1 && id.starts_with("slow") {
                    // Long past its lease: were it not cancelled, it would overlap every
                    // redelivery between 2 and 5 leases.
                    tokio::time::sleep(LEASE * 5).await;
                }
                *done.lock().expect("lock").entry(id).or_default() += 1;
                StatusCode::OK
            }
        })
        .layer(
            VobizWebhookLayer::new(SECRET)
                .lease(LEASE)
                .retry_after(Duration::from_millis(1)),
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}/webhooks/vobiz");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let ids: Vec<String> = (0..10)
        .map(|n| format!("panic-{n}"))
        .chain((0..10).map(|n| format!("slow-{n}")))
        .chain((0..10).map(|n| format!("plain-{n}")))
        .collect();
    let transport_errors = Arc::new(AtomicUsize::new(0));
    stream::iter(ids.clone())
        .for_each_concurrent(30, |id| {
            let (client, url, errors) = (client.clone(), url.clone(), transport_errors.clone());
            async move {
                let delivery = event(&id, "message.inbound");
                // A slow id is also delivered again, concurrently, once its lease has run out
                // while the first run still runs (a second replica, or a sender that retried).
                let concurrent = id.starts_with("slow").then(|| {
                    let (client, url, delivery) = (client.clone(), url.clone(), delivery.clone());
                    tokio::spawn(async move {
                        // A whole lease after the expiry: the layer's cancellation and the
                        // store's expiry race by timer jitter, which a loaded 2-core machine
                        // stretches; the property is no overlap once the lease is over.
                        tokio::time::sleep(LEASE * 2).await;
                        let sent = http_post(&client, &url, SECRET, &delivery).send().await;
                        sent.map(|response| response.status()).ok()
                    })
                });
                loop {
                    let sent = http_post(&client, &url, SECRET, &delivery).send().await;
                    match sent {
                        Ok(response) if response.status() == StatusCode::OK => break,
                        Ok(_) => {}
                        Err(_) => {
                            errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                if let Some(concurrent) = concurrent {
                    let _ = concurrent.await;
                }
            }
        })
        .await;
    // Let a slow first run finish, then check nobody ran twice to success.
    tokio::time::sleep(LEASE * 6).await;
    let done = done.lock().expect("lock").clone();
    let twice: Vec<_> = done.iter().filter(|(_, n)| **n > 1).collect();
    if !twice.is_empty() {
        eprintln!("runs {:?} done {:?}", runs.lock().expect("lock"), done);
    }
    let overlapping = overlaps.overlaps.load(Ordering::SeqCst);
    // The server still serves.
    let after = http_post(
        &reqwest::Client::new(),
        &url,
        SECRET,
        &event("after-the-panics", "message.inbound"),
    )
    .send()
    .await
    .expect("server still up")
    .status();
    server.abort();
    figure(
        "09 panics/leases",
        format!(
            "10 panicking + 10 lease-outliving + 10 plain ids: {} completed, ids completed twice {}, overlapping executions {overlapping}, transport errors seen by the sender {}, server afterwards {after}",
            done.len(),
            twice.len(),
            transport_errors.load(Ordering::SeqCst)
        ),
    );
    assert_eq!(after, StatusCode::OK);
    assert_eq!(done.len(), ids.len());
    assert!(twice.is_empty(), "{twice:?}");
    assert_eq!(overlapping, 0, "a retry ran while the first run still ran");
}
