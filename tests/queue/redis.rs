//! Queue mode on Redis Streams: enqueue before 200, workers in other processes, reclaim after a
//! SIGKILL, dead letters, a bounded stream. Needs Redis (`VOBIZ_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`); skipped loudly without one, failed under `CI=true`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::redis::{available_url, delete_prefix, Records};
use crate::support::{delivery, unique_prefix, RedisServer};
use axum::body::Body;
use axum::response::Response;
use http::{Request, StatusCode};
use tower::{service_fn, Layer, ServiceExt};
use vobiz_webhooks::queue::{Backoff, RedisQueue, RedisWorkers};
use vobiz_webhooks::{Claim, DedupStore, EventKey, RedisStore, VerifiedEvent, VobizWebhookLayer};

pub(super) const SECRET: &str = "queue-secret";

const CHILD_ENV: &str = "VOBIZ_QUEUE_TEST_CHILD";

pub(super) struct Setup {
    pub(super) url: String,
    pub(super) prefix: String,
    pub(super) store: RedisStore,
    pub(super) queue: RedisQueue,
    pub(super) redis: Records,
}

pub(super) async fn setup(test: &str) -> Option<Setup> {
    let url = available_url().await?;
    let prefix = unique_prefix(test);
    Some(connect(url, prefix, 1).await)
}

/// A store and a queue of `partitions` on `url` (one node, or a cluster: recognised), and a
/// connection for the handler's records: on a cluster, the records share the prefix's slot.
pub(super) async fn connect(url: String, prefix: String, partitions: usize) -> Setup {
    let store = RedisStore::new(&url)
        .await
        .expect("store")
        .prefix(format!("{prefix}dedup:"));
    let queue = RedisQueue::new(&url)
        .await
        .expect("queue")
        .prefix(&prefix)
        .partitions(partitions);
    let redis = Records::connect(&url).await;
    Setup {
        url,
        prefix,
        store,
        queue,
        redis,
    }
}

impl Setup {
    pub(super) fn layer(&self) -> VobizWebhookLayer<RedisStore> {
        VobizWebhookLayer::new(SECRET)
            .store(self.store.clone())
            .lease(Duration::from_secs(3600))
    }

    pub(super) async fn send(&self, id: &str) -> Response {
        let service = self.layer().layer(self.queue.service());
        service
            .oneshot(delivery(SECRET, id))
            .await
            .expect("infallible")
    }

    /// Workers whose handler records each run in Redis (`<prefix>handled` set, `<prefix>runs`
    /// counter), sleeps `sleep`, and fails ids starting with `poison`.
    pub(super) async fn workers(
        &self,
        consumer: &str,
        sleep: Duration,
        workers: usize,
    ) -> RedisWorkers {
        self.queue
            .workers(self.store.clone())
            .consumer_name(consumer)
            .workers(workers)
            .max_attempts(3)
            .backoff(Backoff::constant(Duration::from_millis(5)))
            .idle_timeout(Duration::from_millis(600))
            .start(recording_handler(self.redis.clone(), &self.prefix, sleep))
            .await
            .expect("workers")
    }

    pub(super) async fn handled(&self) -> HashSet<String> {
        self.try_handled().await.expect("smembers")
    }

    /// `handled`, or Redis' error (while it restarts).
    async fn try_handled(&self) -> Result<HashSet<String>, redis::RedisError> {
        let mut redis = self.redis.clone();
        redis::cmd("SMEMBERS")
            .arg(format!("{}handled", self.prefix))
            .query_async(&mut redis)
            .await
    }

    pub(super) async fn counter(&self, name: &str) -> u64 {
        let mut redis = self.redis.clone();
        let value: Option<u64> = redis::cmd("GET")
            .arg(format!("{}{name}", self.prefix))
            .query_async(&mut redis)
            .await
            .expect("get");
        value.unwrap_or(0)
    }

    pub(super) async fn cleanup(self) {
        delete_prefix(&self.url, &self.prefix).await;
    }
}

pub(super) fn recording_handler(
    redis: Records,
    prefix: &str,
    sleep: Duration,
) -> impl tower::Service<
    Request<Body>,
    Response = Response,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    let prefix = prefix.to_owned();
    service_fn(move |request: Request<Body>| {
        let mut redis = redis.clone();
        let prefix = prefix.clone();
        async move {
            let event = request
                .extensions()
                .get::<VerifiedEvent>()
                .expect("verified")
                .clone();
            let _: u64 = redis::cmd("INCR")
                .arg(format!("{prefix}started"))
                .query_async(&mut redis)
                .await
                .expect("incr");
            tokio::time::sleep(sleep).await;
            if event.event_id().starts_with("poison") {
                let mut response = Response::new(Body::from("poisoned payload"));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return Ok(response);
            }
            let _: u64 = redis::cmd("SADD")
                .arg(format!("{prefix}handled"))
                .arg(event.event_id())
                .query_async(&mut redis)
                .await
                .expect("sadd");
            let _: u64 = redis::cmd("INCR")
                .arg(format!("{prefix}runs"))
                .query_async(&mut redis)
                .await
                .expect("incr");
            let line =
                serde_json::json!({ "event_id": event.event_id(), "pid": std::process::id() });
            println!("{line}");
            Ok(Response::new(Body::from("ok")))
        }
    })
}

/// Not a test of its own: the worker process the kill tests start (and SIGKILL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of the kill tests"]
async fn child_worker() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(4, '|');
    let (url, prefix, sleep_ms, partitions) = (
        parts.next().expect("url").to_owned(),
        parts.next().expect("prefix").to_owned(),
        parts
            .next()
            .expect("sleep")
            .parse::<u64>()
            .expect("sleep ms"),
        parts
            .next()
            .and_then(|partitions| partitions.parse().ok())
            .unwrap_or(1),
    );
    let setup = connect(url, prefix, partitions).await;
    let _workers = setup
        .workers(
            &format!("child-{}", std::process::id()),
            Duration::from_millis(sleep_ms),
            2,
        )
        .await;
    std::future::pending::<()>().await;
}

fn spawn_child(setup: &Setup, sleep: Duration) -> Child {
    let partitions = setup.queue.partition_count();
    Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "redis::child_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            format!(
                "{}|{}|{}|{partitions}",
                setup.url,
                setup.prefix,
                sleep.as_millis()
            ),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child worker")
}

pub(super) async fn wait_for(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn a_queued_event_is_handled_by_a_worker_and_completed() {
    let Some(setup) = setup("basic").await else {
        return;
    };
    let started = Instant::now();
    let response = setup.send("evt-redis-1").await;
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        took < Duration::from_millis(100),
        "XADD and answer took {took:?}"
    );
    assert_eq!(setup.queue.len().await.expect("xlen"), 1);
    // In flight while queued: a redelivery is 409, not a second entry.
    assert_eq!(
        setup.send("evt-redis-1").await.status(),
        StatusCode::CONFLICT
    );

    let workers = setup.workers("basic", Duration::ZERO, 1).await;
    assert!(
        wait_for(Duration::from_secs(5), async || workers.metrics().succeeded
            == 1)
        .await
    );
    assert_eq!(
        setup.handled().await,
        HashSet::from(["evt-redis-1".to_owned()])
    );
    assert!(
        setup.queue.is_empty().await.expect("xlen"),
        "acked and deleted"
    );
    let key = EventKey::from_event_id("evt-redis-1");
    assert_eq!(
        setup
            .store
            .claim(&key, Duration::from_secs(1))
            .await
            .expect("claim"),
        Claim::Done
    );
    let again = setup.send("evt-redis-1").await;
    assert_eq!(again.headers()["x-vobiz-duplicate"], "completed");
    let report = workers.shutdown(Duration::from_secs(3)).await;
    assert!(report.finished());
    setup.cleanup().await;
}

#[tokio::test]
async fn a_full_stream_answers_503_and_releases_the_claim() {
    let Some(mut setup) = setup("full").await else {
        return;
    };
    setup.queue = setup.queue.clone().max_len(3);
    let mut statuses = Vec::new();
    for n in 0..5 {
        let response = setup.send(&format!("evt-full-{n}")).await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(response.headers()["retry-after"], "5");
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 503, 503]);
    assert_eq!(setup.queue.len().await.expect("xlen"), 3, "nothing trimmed");
    // Released: Vobiz's retry is fresh, not 409.
    let key = EventKey::from_event_id("evt-full-4");
    assert!(matches!(
        setup
            .store
            .claim(&key, Duration::from_millis(1))
            .await
            .expect("claim"),
        Claim::Fresh(_)
    ));
    assert_eq!(setup.queue.metrics().rejected, 2);
    setup.cleanup().await;
}

/// SIGKILL a worker process mid-handler; another worker reclaims its entry; poisoned events end
/// in the dead-letter stream with their error; nothing is lost.
pub(super) async fn kill_scenario(
    setup: Setup,
    test: &str,
    events: usize,
    poison_every: usize,
    sleep: Duration,
    kill_after: u64,
) {
    let ids: Vec<String> = (0..events)
        .map(|n| {
            if n % poison_every == poison_every - 1 {
                format!("poison-{n}")
            } else {
                format!("evt-{n}")
            }
        })
        .collect();
    let started = Instant::now();
    for chunk in ids.chunks(64) {
        let sends = chunk.iter().map(|id| setup.send(id));
        for response in futures_util::future::join_all(sends).await {
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
    let enqueue_time = started.elapsed();

    let mut child = spawn_child(&setup, sleep);
    assert!(
        wait_for(Duration::from_secs(120), async || setup
            .counter("started")
            .await
            >= kill_after)
        .await,
        "the child worker never started handling"
    );
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let killed_at = setup.counter("started").await;

    let workers = setup.workers("survivor", Duration::ZERO, 4).await;
    let poisoned = ids.iter().filter(|id| id.starts_with("poison")).count();
    let good: HashSet<String> = ids
        .iter()
        .filter(|id| !id.starts_with("poison"))
        .cloned()
        .collect();
    let finished = wait_for(Duration::from_secs(120), async || {
        setup.queue.is_empty().await.unwrap_or(false)
    })
    .await;
    assert!(finished, "stream not drained: {:?}", workers.metrics());
    let handled = setup.handled().await;
    let missing: Vec<_> = good.difference(&handled).take(5).collect();
    assert!(missing.is_empty(), "lost events, e.g. {missing:?}");
    let dead = setup
        .queue
        .dead_letters(events)
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), poisoned);
    for letter in &dead {
        assert!(letter.event_id().starts_with("poison"));
        assert!(letter.error().contains("500") && letter.error().contains("poisoned payload"));
        assert_eq!(letter.attempts(), 3);
    }
    let metrics = workers.metrics();
    let runs = setup.counter("runs").await;
    eprintln!(
        "{test}: {events} events ({poisoned} poisoned) enqueued in {enqueue_time:?}; child SIGKILLed \
         after {killed_at} handler starts; survivor reclaimed and finished in {:?}; \
         handled {} unique ({runs} successful runs), dead-lettered {}, lost 0; survivor metrics {metrics:?}",
        started.elapsed(),
        handled.len(),
        dead.len(),
    );
    workers.shutdown(Duration::from_secs(3)).await;
    setup.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_worker_s_event_is_reclaimed_and_nothing_is_lost() {
    let Some(setup) = setup("kill-short").await else {
        return;
    };
    kill_scenario(setup, "kill-short", 40, 10, Duration::from_millis(200), 3).await;
}

/// `cargo test --features queue,redis --release --test queue redis::ten_thousand -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 10,000 events"]
async fn ten_thousand_events_one_percent_poisoned_a_worker_sigkilled() {
    let Some(setup) = setup("kill-long").await else {
        return;
    };
    kill_scenario(
        setup,
        "kill-long",
        10_000,
        100,
        Duration::from_millis(2),
        3_000,
    )
    .await;
}

/// Redis restarts empty (no persistence) under running workers: deliveries meanwhile are refused
/// (503, so Vobiz retries), and once Redis is back the retries are queued, consumed and handled
/// once each, although the stream and its consumer group went with the old Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_the_queue_loses_nothing() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let setup = connect(redis.url(), unique_prefix("restart"), 1).await;
    let workers = setup.workers("restart", Duration::ZERO, 2).await;

    for n in 0..10 {
        let response = setup.send(&format!("evt-before-{n}")).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(
        wait_for(Duration::from_secs(10), async || setup
            .handled()
            .await
            .len()
            == 10)
        .await
    );

    redis.stop();
    let during: Vec<String> = (0..10).map(|n| format!("evt-during-{n}")).collect();
    for id in &during {
        let response = setup.send(id).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{id}");
    }

    assert!(redis.restart(), "redis-server did not come back");
    for id in &during {
        let mut status = setup.send(id).await.status();
        for _ in 0..100 {
            if status != StatusCode::SERVICE_UNAVAILABLE {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            status = setup.send(id).await.status();
        }
        assert_eq!(status, StatusCode::OK, "{id}: queued once Redis is back");
    }
    let expected: HashSet<String> = during.iter().cloned().collect();
    let handled_all = async || {
        let handled = setup.try_handled().await;
        handled.is_ok_and(|handled| handled == expected)
    };
    assert!(
        wait_for(Duration::from_secs(15), handled_all).await,
        "every retried event handled: {:?}",
        setup.try_handled().await
    );
    assert_eq!(setup.counter("runs").await, 10, "each once");
    // A handler records its event before its worker acknowledges the entry: wait for that.
    let drained = async || setup.queue.is_empty().await.is_ok_and(|empty| empty);
    assert!(
        wait_for(Duration::from_secs(5), drained).await,
        "every entry acknowledged"
    );
    let report = workers.shutdown(Duration::from_secs(3)).await;
    assert!(report.finished());
}
