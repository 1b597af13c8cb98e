//! Queue mode vs synchronous mode, side by side over loopback HTTP (client and server in one
//! process). Ignored by default:
//!
//! ```sh
//! cargo test --release --features queue,redis --test queue throughput -- --ignored --nocapture --test-threads=1
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{event, eventually, http_post};
use axum::handler::Handler;
use axum::routing::{post, post_service};
use axum::Router;
use futures_util::StreamExt;
use http::StatusCode;
use vobiz_webhooks::queue::MemoryQueue;
use vobiz_webhooks::{VerifiedEvent, VobizWebhookLayer};

const SECRET: &str = "queue-secret";

const EVENTS: usize = 20_000;
const CONCURRENCY: usize = 64;

/// Serves `app`, sends EVENTS signed deliveries with CONCURRENCY in flight; returns the time
/// until every delivery was answered 200.
async fn blast(app: Router, tag: &str) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/webhooks/vobiz",
        listener.local_addr().expect("addr")
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let started = Instant::now();
    let statuses: Vec<u16> = futures_util::stream::iter(0..EVENTS)
        .map(|n| {
            let client = client.clone();
            let url = url.clone();
            let delivery = event(&format!("{tag}-{n}"), "message.inbound");
            async move {
                http_post(&client, &url, SECRET, &delivery)
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
                    .unwrap_or(0)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let took = started.elapsed();
    server.abort();
    assert!(
        statuses.iter().all(|status| *status == 200),
        "all answered 200"
    );
    took
}

fn handler(
    handled: Arc<AtomicU64>,
    work: Duration,
) -> impl Fn(VerifiedEvent) -> std::pin::Pin<Box<dyn std::future::Future<Output = StatusCode> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    move |_event: VerifiedEvent| {
        let handled = Arc::clone(&handled);
        Box::pin(async move {
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
            handled.fetch_add(1, Ordering::Relaxed);
            StatusCode::OK
        })
    }
}

async fn compare(work: Duration) {
    let layer = || VobizWebhookLayer::new(SECRET);

    let handled = Arc::new(AtomicU64::new(0));
    let sync_app = Router::new().route(
        "/webhooks/vobiz",
        post(handler(Arc::clone(&handled), work)).layer(layer()),
    );
    let sync = blast(sync_app, "sync").await;

    let handled = Arc::new(AtomicU64::new(0));
    let queue = MemoryQueue::builder()
        .capacity(EVENTS)
        .workers(64)
        .start(handler(Arc::clone(&handled), work).with_state(()));
    let queue_app = Router::new().route(
        "/webhooks/vobiz",
        post_service(queue.service()).layer(layer().lease(Duration::from_secs(600))),
    );
    let started = Instant::now();
    let acked = blast(queue_app, "queue").await;
    assert!(
        eventually(Duration::from_secs(600), || handled.load(Ordering::Relaxed)
            == EVENTS as u64)
        .await
    );
    let drained = started.elapsed();
    queue.shutdown(Duration::from_secs(5)).await;

    let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    eprintln!(
        "handler work {work:?}, {EVENTS} deliveries, {CONCURRENCY} in flight:\n  \
         sync mode:        all answered (and handled) in {sync:.2?} = {:.0} deliveries/s\n  \
         queue (memory):   all answered in {acked:.2?} = {:.0}/s; all handled in {drained:.2?} = {:.0}/s",
        rate(sync),
        rate(acked),
        rate(drained),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn throughput_trivial_handler() {
    compare(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn throughput_handler_with_5ms_of_io() {
    compare(Duration::from_millis(5)).await;
}

/// The same comparison with everything in Redis: `RedisStore` dedup for both, `RedisQueue`
/// (`XADD` before the 200) and in-process `RedisWorkers` for the queue.
#[cfg(feature = "redis")]
async fn compare_redis(work: Duration) {
    use crate::support::redis::{available_url, delete_prefix};
    use crate::support::unique_prefix;
    use vobiz_webhooks::queue::RedisQueue;
    use vobiz_webhooks::RedisStore;

    let Some(url) = available_url().await else {
        return;
    };
    let prefix = unique_prefix("throughput");
    let store = RedisStore::new(&url)
        .await
        .expect("store")
        .prefix(format!("{prefix}dedup:"));
    let layer = || VobizWebhookLayer::new(SECRET).store(store.clone());

    let handled = Arc::new(AtomicU64::new(0));
    let sync_app = Router::new().route(
        "/webhooks/vobiz",
        post(handler(Arc::clone(&handled), work)).layer(layer()),
    );
    let sync = blast(sync_app, "redis-sync").await;

    let handled = Arc::new(AtomicU64::new(0));
    let queue = RedisQueue::new(&url)
        .await
        .expect("queue")
        .prefix(format!("{prefix}queue:"))
        .max_len(EVENTS as u64);
    let workers = queue
        .workers(store.clone())
        .workers(64)
        .start(handler(Arc::clone(&handled), work).with_state(()))
        .await
        .expect("workers");
    let queue_app = Router::new().route(
        "/webhooks/vobiz",
        post_service(queue.service()).layer(layer().lease(Duration::from_secs(600))),
    );
    let started = Instant::now();
    let acked = blast(queue_app, "redis-queue").await;
    assert!(
        eventually(Duration::from_secs(600), || handled.load(Ordering::Relaxed)
            == EVENTS as u64)
        .await
    );
    let drained = started.elapsed();
    workers.shutdown(Duration::from_secs(5)).await;
    delete_prefix(&url, &prefix).await;

    let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
    eprintln!(
        "handler work {work:?}, {EVENTS} deliveries, {CONCURRENCY} in flight, Redis on loopback:\n  \
         sync mode (RedisStore):  all answered (and handled) in {sync:.2?} = {:.0} deliveries/s\n  \
         queue (RedisQueue):      all answered in {acked:.2?} = {:.0}/s; all handled in {drained:.2?} = {:.0}/s",
        rate(sync),
        rate(acked),
        rate(drained),
    );
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn throughput_redis_trivial_handler() {
    compare_redis(Duration::ZERO).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement"]
async fn throughput_redis_handler_with_5ms_of_io() {
    compare_redis(Duration::from_millis(5)).await;
}
