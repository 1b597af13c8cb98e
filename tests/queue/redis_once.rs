//! Queue mode on Redis runs each handler once: an `XADD` that lands after its timeout and the
//! sender's retry, a second enqueue of a pending key, a worker whose entry is reclaimed, a
//! dedup-store outage longer than `max_attempts` idle timeouts. Needs Redis (as `redis.rs`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use http::{Request, StatusCode};
use tower::{service_fn, Layer, ServiceExt};
use vobiz_webhooks::queue::{Backoff, RedisQueue};
use vobiz_webhooks::{Claim, DedupStore, EventKey, RedisStore, VobizWebhookLayer};

use super::redis::{recording_handler, setup, wait_for, Setup, SECRET};
use crate::support::redis::available_url;
use crate::support::{delivery, figure, Proxy, ProxyMode};

/// The shared Redis' address, for a proxy in front of it; `None` when its URL is not a plain
/// `redis://host:port`.
async fn redis_addr() -> Option<SocketAddr> {
    let url = available_url().await?;
    let addr = url.strip_prefix("redis://")?.trim_end_matches('/').parse();
    if addr.is_err() {
        crate::support::skip_or_fail("a plain redis://host:port URL", &url);
    }
    addr.ok()
}

/// A test's own setup (prefix, layer, queue) and a proxy in front of the shared Redis whose
/// connection the test can delay or cut; `None` after a loud skip when no Redis answers.
async fn setup_behind_proxy(test: &str) -> Option<(Setup, Proxy)> {
    let addr = redis_addr().await?;
    let setup = setup(test).await?;
    Some((setup, Proxy::start(addr).await))
}

async fn xlen(setup: &Setup) -> u64 {
    setup.queue.len().await.expect("xlen")
}

async fn send_with(queue: &RedisQueue, layer: VobizWebhookLayer<RedisStore>, id: &str) -> Response {
    layer
        .layer(queue.service())
        .oneshot(delivery(SECRET, id))
        .await
        .expect("infallible")
}

/// Problem 1: the `XADD` is held by the network past the enqueue timeout (503, claim released)
/// and lands later; Vobiz's retry gets a fresh claim and is enqueued again. Before the fix the
/// retry added a second entry and both entries ran the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xadd_landing_after_its_timeout_and_the_retry_run_the_handler_once() {
    let Some((setup, proxy)) = setup_behind_proxy("late-xadd").await else {
        return;
    };
    let slow_queue = RedisQueue::new(&proxy.url())
        .await
        .expect("queue through the proxy")
        .prefix(&setup.prefix)
        .timeout(Duration::from_secs(1));
    // Loads the scripts through the proxy, so the late call is one command.
    let warm = send_with(&slow_queue, setup.layer(), "evt-warm").await;
    assert_eq!(warm.status(), StatusCode::OK);

    proxy.set(ProxyMode::Delay(3_000));
    let started = Instant::now();
    let late = send_with(&slow_queue, setup.layer(), "evt-late").await;
    assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered on the timeout"
    );
    proxy.set(ProxyMode::Pass);
    // The held XADD lands.
    assert!(
        wait_for(Duration::from_secs(15), async || xlen(&setup).await == 2).await,
        "the late XADD never landed"
    );

    // Vobiz retries: its claim is fresh (the 503 released the first).
    let retry = send_with(&slow_queue, setup.layer(), "evt-late").await;
    assert_eq!(retry.status(), StatusCode::OK);
    let entries = xlen(&setup).await;

    let workers = setup.workers("late-xadd", Duration::ZERO, 2).await;
    assert!(
        wait_for(Duration::from_secs(20), async || setup
            .handled()
            .await
            .len()
            == 2
            && setup.queue.is_empty().await.unwrap_or(false))
        .await,
        "not drained: {:?}",
        workers.metrics()
    );
    // Any second entry would have been picked up by now; give a straggler time to run.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = setup.counter("runs").await;
    figure(
        "queue-late-xadd",
        format!(
            "entries after the retry {entries} (1 warm-up + 1), handler runs {runs} (expected 2)"
        ),
    );
    assert_eq!(entries, 2, "the retry added a second entry");
    assert_eq!(runs, 2, "evt-late ran twice");
    let key = EventKey::from_event_id("evt-late");
    assert_eq!(
        setup
            .store
            .claim(&key, Duration::from_secs(1))
            .await
            .expect("claim"),
        Claim::Done
    );
    workers.shutdown(Duration::from_secs(3)).await;
    setup.cleanup().await;
}

/// Problem 1 (a): a delivery whose claim ran out while its entry waited is enqueued again; the
/// pending entry takes the new claim over and no second entry is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_enqueue_of_a_pending_key_creates_no_second_entry() {
    let Some(setup) = setup("twice").await else {
        return;
    };
    let short = || {
        VobizWebhookLayer::new(SECRET)
            .store(setup.store.clone())
            .lease(Duration::from_secs(1))
    };
    let first = send_with(&setup.queue, short(), "evt-twice").await;
    assert_eq!(first.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let second = send_with(&setup.queue, short(), "evt-twice").await;
    assert_eq!(
        second.status(),
        StatusCode::OK,
        "queued (the pending entry)"
    );
    let entries = xlen(&setup).await;
    figure(
        "queue-second-enqueue",
        format!("entries {entries} (expected 1)"),
    );
    assert_eq!(entries, 1, "a second entry for a pending key");
    // The claim now belongs to the entry: a third delivery is in flight, not queued.
    let third = send_with(&setup.queue, short(), "evt-twice").await;
    assert_eq!(third.status(), StatusCode::CONFLICT);

    let workers = setup.workers("twice", Duration::ZERO, 2).await;
    assert!(
        wait_for(Duration::from_secs(20), async || setup
            .queue
            .is_empty()
            .await
            .unwrap_or(false)
            && setup.counter("runs").await >= 1)
        .await
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(setup.counter("runs").await, 1);
    let key = EventKey::from_event_id("evt-twice");
    assert_eq!(
        setup
            .store
            .claim(&key, Duration::from_secs(1))
            .await
            .expect("claim"),
        Claim::Done
    );
    workers.shutdown(Duration::from_secs(3)).await;
    setup.cleanup().await;
}

/// In-process run counters: how many runs started, finished, and the most at once.
#[derive(Default)]
struct Runs {
    running: AtomicUsize,
    most: AtomicUsize,
    started: AtomicUsize,
    finished: AtomicUsize,
}

/// A handler that runs `sleep` and counts overlapping runs.
fn overlap_handler(
    runs: Arc<Runs>,
    sleep: Duration,
) -> impl tower::Service<
    Request<Body>,
    Response = Response,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    service_fn(move |_request: Request<Body>| {
        let runs = Arc::clone(&runs);
        async move {
            struct Running(Arc<Runs>);
            impl Drop for Running {
                fn drop(&mut self) {
                    self.0.running.fetch_sub(1, Ordering::SeqCst);
                }
            }
            runs.started.fetch_add(1, Ordering::SeqCst);
            let now = runs.running.fetch_add(1, Ordering::SeqCst) + 1;
            runs.most.fetch_max(now, Ordering::SeqCst);
            let _running = Running(Arc::clone(&runs));
            tokio::time::sleep(sleep).await;
            runs.finished.fetch_add(1, Ordering::SeqCst);
            Ok(Response::new(Body::from("ok")))
        }
    })
}

/// Problem 2: worker A's connection goes silent mid-handler, so its heartbeats stop and worker
/// B reclaims the entry. A must have stopped its handler by then: never two runs at once, one
/// finished run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_entry_is_reclaimed_stops_its_handler() {
    let Some((setup, proxy)) = setup_behind_proxy("reclaimed").await else {
        return;
    };
    let stalled_queue = RedisQueue::new(&proxy.url())
        .await
        .expect("queue through the proxy")
        .prefix(&setup.prefix);
    assert_eq!(setup.send("evt-slow").await.status(), StatusCode::OK);

    let runs = Arc::new(Runs::default());
    let idle = Duration::from_secs(2);
    let handler = overlap_handler(Arc::clone(&runs), Duration::from_secs(5));
    let a = stalled_queue
        .workers(setup.store.clone())
        .consumer_name("a")
        .workers(1)
        .idle_timeout(idle)
        .start(handler.clone())
        .await
        .expect("worker a");
    assert!(
        wait_for(Duration::from_secs(10), async || runs
            .started
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    // A's Redis goes silent: no heartbeat gets through.
    proxy.set(ProxyMode::Blackhole);
    let b = setup
        .queue
        .workers(setup.store.clone())
        .consumer_name("b")
        .workers(1)
        .idle_timeout(idle)
        .start(handler)
        .await
        .expect("worker b");
    assert!(
        wait_for(Duration::from_secs(30), async || runs
            .finished
            .load(Ordering::SeqCst)
            >= 1
            && setup.queue.is_empty().await.unwrap_or(false))
        .await,
        "never finished: {:?} / {:?}",
        a.metrics(),
        b.metrics()
    );
    // Room for A's run to finish too, had it not been stopped.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (started, finished, most) = (
        runs.started.load(Ordering::SeqCst),
        runs.finished.load(Ordering::SeqCst),
        runs.most.load(Ordering::SeqCst),
    );
    figure(
        "queue-reclaimed",
        format!("runs started {started}, finished {finished}, most at once {most}"),
    );
    assert_eq!(most, 1, "two runs at once");
    assert_eq!(finished, 1, "finished twice");
    assert_eq!(b.metrics().succeeded, 1);
    b.shutdown(Duration::from_secs(3)).await;
    a.shutdown(Duration::from_secs(1)).await;
    setup.cleanup().await;
}

/// Problem 3: the workers' dedup store is unreachable for longer than `max_attempts` idle
/// timeouts. Nothing ran, so nothing is dead-lettered; once the store is back the event runs
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_not_an_attempt() {
    let Some((setup, proxy)) = setup_behind_proxy("store-outage").await else {
        return;
    };
    let cut_store = RedisStore::new(&proxy.url())
        .await
        .expect("store through the proxy")
        .prefix(format!("{}dedup:", setup.prefix));
    assert_eq!(setup.send("evt-outage").await.status(), StatusCode::OK);

    proxy.set(ProxyMode::Cut);
    let idle = Duration::from_millis(600);
    let max_attempts = 2;
    let workers = setup
        .queue
        .workers(cut_store)
        .consumer_name("outage")
        .workers(2)
        .max_attempts(max_attempts)
        .backoff(Backoff::constant(Duration::from_millis(5)))
        .idle_timeout(idle)
        .start(recording_handler(
            setup.redis.clone(),
            &setup.prefix,
            Duration::ZERO,
        ))
        .await
        .expect("workers");
    // Ten times max_attempts × idle_timeout.
    tokio::time::sleep(idle * max_attempts * 5).await;
    let dead_during = setup.queue.dead_letters(10).await.expect("dead letters");
    let started_during = setup.counter("started").await;
    proxy.set(ProxyMode::Pass);
    assert!(
        wait_for(Duration::from_secs(20), async || setup
            .queue
            .is_empty()
            .await
            .unwrap_or(false))
        .await,
        "not drained: {:?}",
        workers.metrics()
    );
    let dead = setup.queue.dead_letters(10).await.expect("dead letters");
    let runs = setup.counter("runs").await;
    figure(
        "queue-store-outage",
        format!(
            "outage {:?}: dead letters {} (errors {:?}), handler starts {started_during}; after: runs {runs}",
            idle * max_attempts * 5,
            dead.len(),
            dead.iter().map(|letter| letter.error().to_owned()).collect::<Vec<_>>()
        ),
    );
    assert!(
        dead_during.is_empty(),
        "dead-lettered during the outage: {:?}",
        dead_during[0].error()
    );
    assert_eq!(started_during, 0);
    assert!(dead.is_empty());
    assert_eq!(runs, 1);
    assert!(setup.handled().await.contains("evt-outage"));
    workers.shutdown(Duration::from_secs(3)).await;
    setup.cleanup().await;
}
