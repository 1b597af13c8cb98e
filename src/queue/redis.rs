//! [`RedisQueue`]: queue mode on Redis Streams, shared by every replica, surviving crashes.

use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_core::body::Body;
use axum_core::response::Response;
use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, StatusCode, Uri};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use redis::{RedisError, Script};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_service::Service;

use super::{
    missing_layer, run_attempt, text_response, Backoff, BoxError, Counter, Counters, Delivery,
    EnqueueFuture, QueueAttempt, QueueMetrics, DEFAULT_HANDLER_TIMEOUT, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_QUEUE_RETRY_AFTER,
};
use crate::claim::ClaimHandle;
use crate::dedup::redis::{store_error, token_text};
use crate::dedup::{millis_ceil, Claim, ClaimToken, DedupStore, EventKey, StoreError};
use crate::future::AbortOnDrop;
use crate::response::retry_after_secs;
use crate::signature::decode_hex;
use crate::verified::VerifiedEvent;

/// `XADD` only while `XLEN` is under the bound: a full stream refuses, it never trims
/// unprocessed entries. KEYS[1] stream; ARGV[1] max length; ARGV[2..] field/value pairs.
static ENQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))",
    )
});

/// Done with an entry: acknowledge and delete it, so `XLEN` counts only unfinished entries.
/// KEYS[1] stream; ARGV[1] group; ARGV[2] entry id.
static ACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])",
    )
});

/// Move an entry to the dead-letter stream, then acknowledge and delete it, atomically.
/// KEYS[1] stream, KEYS[2] dead-letter stream; ARGV[1] group; ARGV[2] entry id; ARGV[3..] pairs.
static DEAD_LETTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return id",
    )
});

/// Heartbeat: reset the idle time of an entry we still own, so `XAUTOCLAIM` leaves it alone.
/// KEYS[1] stream; ARGV[1] group; ARGV[2] consumer; ARGV[3] entry id.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if pending[1] and pending[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  return 1
end
return 0",
    )
});

/// Queue mode on Redis Streams (feature `redis`): the web replicas `XADD` each verified delivery
/// before answering 200; workers in any process share the stream through a consumer group.
///
/// | step | Redis |
/// |---|---|
/// | enqueue | a one-key script: `XLEN` < max → `XADD` (else 503 + `Retry-After`, claim released) |
/// | consume | `XREADGROUP GROUP g consumer COUNT 1 BLOCK … STREAMS s >` |
/// | heartbeat | while handling, `XCLAIM … JUSTID` (only if still ours) resets the idle time |
/// | reclaim | `XAUTOCLAIM s g consumer idle_timeout 0-0`: a crashed worker's entries |
/// | success | complete the dedup claim, then `XACK` + `XDEL` |
/// | give up | after `max_attempts`: `XADD` to the dead-letter stream with the last error, `XACK` + `XDEL`, complete the claim |
///
/// Keys: `<prefix>stream` and `<prefix>dead` (default prefix `{vobiz:queue}:`; keep a
/// `{hash tag}` in it on Redis Cluster so both keys share a slot). Acknowledged entries are
/// deleted, so `XLEN` is the number of unfinished entries and the bound
/// ([`max_len`](Self::max_len)) never drops one silently: a full stream refuses new deliveries.
///
/// An entry holds the exact body bytes, the `event_id`, its [`EventKey`], the claim token and
/// TTL, the request URI and content type: a worker in another process rebuilds the request and
/// settles the claim through its own store ([`RedisStore`](crate::RedisStore) on the same
/// Redis). See [`RedisWorkersBuilder`] for the claim's lifetime and the attempt count.
///
/// ```no_run
/// use std::time::Duration;
/// use axum::{routing::post_service, Router};
/// use vobiz_webhooks::queue::RedisQueue;
/// use vobiz_webhooks::{RedisStore, VobizRouter, VobizWebhookLayer, VerifiedEvent};
///
/// async fn on_message(event: VerifiedEvent) { /* ... */ }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let url = "redis://127.0.0.1:6379";
/// let store = RedisStore::new(url).await?;
/// let queue = RedisQueue::new(url).await?.max_len(100_000);
///
/// // Web replicas: verify, claim, XADD, answer 200.
/// let layer = VobizWebhookLayer::new("secret").store(store.clone()).lease(Duration::from_secs(3600));
/// let app: Router = Router::new()
///     .route("/webhooks/vobiz", post_service(queue.service()).layer(layer));
///
/// // Worker processes (or the same one): run the handlers.
/// let handlers = VobizRouter::new().on_message(on_message).with_state(());
/// let workers = queue.workers(store).workers(4).max_attempts(5).start(handlers).await?;
/// // … on shutdown: what is not finished stays pending for another worker.
/// workers.shutdown(Duration::from_secs(10)).await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisQueue {
    client: redis::Client,
    connection: ConnectionManager,
    keys: Arc<Keys>,
    max_len: u64,
    retry_after: Duration,
    timeout: Duration,
    counters: Arc<Counters>,
}

#[derive(Debug)]
struct Keys {
    stream: String,
    dead: String,
    group: String,
}

impl Keys {
    fn new(prefix: &str, group: &str) -> Self {
        Self {
            stream: format!("{prefix}stream"),
            dead: format!("{prefix}dead"),
            group: group.to_owned(),
        }
    }
}

impl RedisQueue {
    /// The key prefix unless [`prefix`](Self::prefix) sets another.
    pub const DEFAULT_PREFIX: &'static str = "{vobiz:queue}:";
    /// The consumer group unless [`group`](Self::group) sets another.
    pub const DEFAULT_GROUP: &'static str = "vobiz-workers";
    /// The default [`max_len`](Self::max_len): 100 000 unfinished entries.
    pub const DEFAULT_MAX_LEN: u64 = 100_000;

    /// Connects to the Redis at `url`.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the URL is invalid or the first connection fails.
    pub async fn new(url: &str) -> Result<RedisQueue, StoreError> {
        let client = redis::Client::open(url).map_err(store_error)?;
        Self::from_client(client).await
    }

    /// A queue over `client` (TLS, auth and database as the client says). Workers open a
    /// connection of their own each (their reads block).
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the first connection fails.
    pub async fn from_client(client: redis::Client) -> Result<RedisQueue, StoreError> {
        let connection = ConnectionManager::new(client.clone())
            .await
            .map_err(store_error)?;
        Ok(RedisQueue {
            client,
            connection,
            keys: Arc::new(Keys::new(Self::DEFAULT_PREFIX, Self::DEFAULT_GROUP)),
            max_len: Self::DEFAULT_MAX_LEN,
            retry_after: DEFAULT_QUEUE_RETRY_AFTER,
            timeout: Duration::from_secs(2),
            counters: Arc::new(Counters::default()),
        })
    }

    /// Puts the streams under `prefix` (`<prefix>stream`, `<prefix>dead`).
    pub fn prefix(mut self, prefix: impl AsRef<str>) -> RedisQueue {
        self.keys = Arc::new(Keys::new(prefix.as_ref(), &self.keys.group));
        self
    }

    /// The consumer group the workers share (default [`DEFAULT_GROUP`](Self::DEFAULT_GROUP)).
    pub fn group(mut self, group: impl AsRef<str>) -> RedisQueue {
        let prefix = self.keys.stream.trim_end_matches("stream").to_owned();
        self.keys = Arc::new(Keys::new(&prefix, group.as_ref()));
        self
    }

    /// The most unfinished entries the stream holds (default 100 000). At the bound a delivery
    /// is answered 503 + `Retry-After` and its claim released; nothing is trimmed.
    pub fn max_len(mut self, max_len: u64) -> RedisQueue {
        self.max_len = max_len;
        self
    }

    /// The `Retry-After` of the 503 when the stream is full or Redis fails (default 5 s).
    pub fn retry_after(mut self, delay: Duration) -> RedisQueue {
        self.retry_after = delay;
        self
    }

    /// How long an `XADD` may take before the delivery is answered 503 (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> RedisQueue {
        self.timeout = timeout;
        self
    }

    /// The Redis key of the stream.
    pub fn stream_key(&self) -> &str {
        &self.keys.stream
    }

    /// The Redis key of the dead-letter stream.
    pub fn dead_letter_key(&self) -> &str {
        &self.keys.dead
    }

    /// The enqueue side's counters (accepted, rejected) in this process.
    pub fn metrics(&self) -> QueueMetrics {
        self.counters.snapshot()
    }

    /// The service to mount behind the layer: `XADD`s each verified delivery, then answers 200.
    pub fn service(&self) -> RedisEnqueue {
        RedisEnqueue {
            queue: self.clone(),
        }
    }

    /// Unfinished entries (`XLEN` of the stream): waiting or being handled.
    ///
    /// # Errors
    ///
    /// Redis' error.
    pub async fn len(&self) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("XLEN")
            .arg(&self.keys.stream)
            .query_async(&mut connection)
            .await
            .map_err(store_error)
    }

    /// Whether no entry is unfinished.
    ///
    /// # Errors
    ///
    /// Redis' error.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len().await? == 0)
    }

    /// Up to `count` dead letters, oldest first. They stay in the stream until you delete them
    /// (`XDEL <prefix>dead <id>`, or [`delete_dead_letter`](Self::delete_dead_letter)).
    ///
    /// # Errors
    ///
    /// Redis' error.
    pub async fn dead_letters(&self, count: usize) -> Result<Vec<RedisDeadLetter>, StoreError> {
        let mut connection = self.connection.clone();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&self.keys.dead)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut connection)
            .await
            .map_err(store_error)?;
        Ok(reply.ids.iter().map(RedisDeadLetter::from_entry).collect())
    }

    /// Deletes one dead letter (after replaying or inspecting it). `Ok(false)` when it was gone.
    ///
    /// # Errors
    ///
    /// Redis' error.
    pub async fn delete_dead_letter(&self, id: &str) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let deleted: u64 = redis::cmd("XDEL")
            .arg(&self.keys.dead)
            .arg(id)
            .query_async(&mut connection)
            .await
            .map_err(store_error)?;
        Ok(deleted == 1)
    }

    /// Configures workers that settle claims through `store` (the layer's store, or one on the
    /// same Redis with the same prefix).
    pub fn workers<D: DedupStore>(&self, store: D) -> RedisWorkersBuilder<D> {
        RedisWorkersBuilder {
            queue: self.clone(),
            store: Arc::new(store),
            workers: 4,
            consumer: default_consumer(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            idle_timeout: Duration::from_secs(60),
            block: Duration::from_secs(1),
            lease: None,
        }
    }

    async fn enqueue(&self, request: Request<Body>) -> Response {
        let Some(event) = request.extensions().get::<VerifiedEvent>().cloned() else {
            return missing_layer();
        };
        let retry_after = Some(retry_after_secs(self.retry_after));
        let claim = request
            .extensions()
            .get::<ClaimHandle>()
            .and_then(ClaimHandle::take);
        let key = EventKey::from_event_id(event.event_id());
        let (token, ttl) = match &claim {
            Some(claim) => (token_text(claim.token()), millis_ceil(claim.ttl())),
            None => (String::new(), millis_ceil(Duration::from_secs(86_400))),
        };
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|value| value.as_bytes().to_vec())
            .unwrap_or_default();
        let mut connection = self.connection.clone();
        let added = tokio::time::timeout(
            self.timeout,
            ENQUEUE
                .key(&self.keys.stream)
                .arg(self.max_len)
                .arg("event_id")
                .arg(event.event_id())
                .arg("key")
                .arg(key.to_string())
                .arg("token")
                .arg(token)
                .arg("ttl_ms")
                .arg(ttl)
                .arg("uri")
                .arg(request.uri().to_string())
                .arg("content_type")
                .arg(content_type)
                .arg("body")
                .arg(event.body().as_ref())
                .invoke_async::<Option<String>>(&mut connection),
        )
        .await;
        let refusal = match added {
            Ok(Ok(Some(id))) => {
                // The entry carries key and token now: the claim is the workers' to settle.
                if let Some(claim) = claim {
                    let _ = claim.into_parts();
                }
                self.counters.add(Counter::Accepted);
                tracing::debug!(event_id = event.event_id(), entry = %id, "queued in Redis");
                return text_response(StatusCode::OK, "queued", None);
            }
            Ok(Ok(None)) => {
                tracing::warn!(
                    event_id = event.event_id(),
                    max_len = self.max_len,
                    "Redis queue full: answered 503, the sender retries later"
                );
                "queue full"
            }
            Ok(Err(error)) => {
                tracing::warn!(event_id = event.event_id(), %error, "XADD failed: answered 503");
                "queue unavailable"
            }
            Err(_) => {
                tracing::warn!(event_id = event.event_id(), "XADD timed out: answered 503");
                "queue unavailable"
            }
        };
        self.counters.add(Counter::Rejected);
        if let Some(claim) = claim {
            // Released before answering, so the sender's retry is not met with a 409.
            let _ = claim.release().await;
        }
        text_response(StatusCode::SERVICE_UNAVAILABLE, refusal, retry_after)
    }
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue")
            .field("stream", &self.keys.stream)
            .field("dead", &self.keys.dead)
            .field("group", &self.keys.group)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

fn default_consumer() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The service [`RedisQueue::service`] returns: `XADD`s each verified delivery.
///
/// | answer | when |
/// |---|---|
/// | 200 `queued` | in the stream; the claim now belongs to the workers |
/// | 503 + `Retry-After` | the stream is at its bound, or Redis failed or timed out; claim released |
/// | 500 | no [`VerifiedEvent`]: not mounted behind the layer |
#[derive(Clone)]
pub struct RedisEnqueue {
    queue: RedisQueue,
}

impl fmt::Debug for RedisEnqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisEnqueue")
            .field("queue", &self.queue)
            .finish()
    }
}

impl Service<Request<Body>> for RedisEnqueue {
    type Response = Response;
    type Error = Infallible;
    type Future = EnqueueFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let queue = self.queue.clone();
        EnqueueFuture::boxed(async move { queue.enqueue(request).await })
    }
}

/// A dead letter read back from the dead-letter stream.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisDeadLetter {
    id: String,
    event_id: String,
    error: String,
    attempts: u32,
    body: Bytes,
}

impl RedisDeadLetter {
    fn from_entry(entry: &StreamId) -> Self {
        Self {
            id: entry.id.clone(),
            event_id: entry.get("event_id").unwrap_or_default(),
            error: entry.get("error").unwrap_or_default(),
            attempts: entry.get("attempts").unwrap_or_default(),
            body: entry
                .get::<Vec<u8>>("body")
                .map(Bytes::from)
                .unwrap_or_default(),
        }
    }

    /// The entry id in the dead-letter stream.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The event's `event_id`.
    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// The last attempt's failure.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// How many attempts were made (a worker lost mid-handler counts as one).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The exact verified bytes, e.g. for [`VerifiedEvent::from_trusted_body`].
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}

/// Configures the workers of a [`RedisQueue`]; from [`RedisQueue::workers`].
///
/// **The attempt count** spans processes: attempts made here, plus one for each earlier
/// delivery of the entry (a worker that crashed or stalled past the idle timeout counts as a
/// failed attempt). An entry delivered more than `max_attempts` times is dead-lettered without
/// running the handler again, so a poison event that kills its worker cannot loop forever.
///
/// **The claim** travels in the entry. When a worker picks an entry up it claims the id again
/// with [`lease`](Self::lease): `Done` → acknowledged without running (a duplicate); in flight →
/// the entry's own claim, kept; fresh → the layer's lease ran out while the entry waited, and
/// this worker now holds a new claim. Success completes the claim (then `XACK`); a dead letter
/// completes it too (see the [module docs](super)).
pub struct RedisWorkersBuilder<D> {
    queue: RedisQueue,
    store: Arc<D>,
    workers: usize,
    consumer: String,
    max_attempts: u32,
    backoff: Backoff,
    handler_timeout: Duration,
    idle_timeout: Duration,
    block: Duration,
    lease: Option<Duration>,
}

impl<D> fmt::Debug for RedisWorkersBuilder<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisWorkersBuilder")
            .field("queue", &self.queue)
            .field("workers", &self.workers)
            .field("consumer", &self.consumer)
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("handler_timeout", &self.handler_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl<D: DedupStore> RedisWorkersBuilder<D> {
    /// Concurrent handler runs in this process (default 4), each its own consumer and
    /// connection. At least 1.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The consumer name prefix, unique per process (default `$HOSTNAME-pid`); worker `i` is
    /// `<name>-<i>`.
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        self.consumer = name.into();
        self
    }

    /// Attempts per event before it is dead-lettered (default 5). At least 1.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The delay between attempts (default 200 ms doubling up to 30 s).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long one attempt may run (default 60 s).
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// How long an entry may go without a heartbeat before another worker reclaims it with
    /// `XAUTOCLAIM` (default 60 s). Workers heartbeat every third of it while handling, so this
    /// is the time to notice a crashed worker, not a limit on the handler.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.max(Duration::from_millis(30));
        self
    }

    /// The lease of the claim a worker takes when the layer's ran out while the entry waited
    /// (default: every attempt's timeout plus the backoffs, plus a minute).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Creates the consumer group when missing and starts the workers on the current runtime.
    ///
    /// # Errors
    ///
    /// Redis' error when the group cannot be created or a worker cannot connect.
    pub async fn start<H>(self, handler: H) -> Result<RedisWorkers, StoreError>
    where
        H: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
        H::Error: Into<BoxError>,
        H::Future: Send + 'static,
    {
        let mut connection = self.queue.connection.clone();
        create_group(&mut connection, &self.queue.keys)
            .await
            .map_err(store_error)?;
        let lease = self.lease.unwrap_or_else(|| {
            self.handler_timeout
                .saturating_mul(self.max_attempts)
                .saturating_add(self.backoff.total(self.max_attempts))
                .saturating_add(Duration::from_secs(60))
        });
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(WorkerShared {
            keys: Arc::clone(&self.queue.keys),
            counters: Counters::default(),
            stop,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            handler_timeout: self.handler_timeout,
            idle_timeout: self.idle_timeout,
            block: self.block,
            lease,
            left_pending: AtomicU64::new(0),
        });
        let mut tasks = Vec::with_capacity(self.workers);
        for index in 0..self.workers {
            let config = ConnectionManagerConfig::new()
                .set_response_timeout(Some(self.block + Duration::from_secs(5)));
            let connection = ConnectionManager::new_with_config(self.queue.client.clone(), config)
                .await
                .map_err(store_error)?;
            let worker = Worker {
                shared: Arc::clone(&shared),
                store: Arc::clone(&self.store),
                connection,
                consumer: format!("{}-{index}", self.consumer),
            };
            tasks.push(tokio::spawn(worker.run(handler.clone())));
        }
        tracing::info!(
            stream = %shared.keys.stream,
            group = %shared.keys.group,
            consumer = %self.consumer,
            workers = self.workers,
            "Redis queue workers started"
        );
        Ok(RedisWorkers {
            shared,
            tasks: Mutex::new(tasks),
        })
    }
}

/// Running Redis queue workers: [`metrics`](Self::metrics), [`shutdown`](Self::shutdown).
pub struct RedisWorkers {
    shared: Arc<WorkerShared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for RedisWorkers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisWorkers")
            .field("stream", &self.shared.keys.stream)
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

impl RedisWorkers {
    /// This process' worker counters.
    pub fn metrics(&self) -> QueueMetrics {
        self.shared.counters.snapshot()
    }

    /// Stops taking entries, lets running handlers finish until `deadline`, then cancels them.
    /// A cancelled entry is not lost: it stays pending in Redis and another worker (or this
    /// one, restarted) reclaims it after the idle timeout; its claim stays with it.
    pub async fn shutdown(&self, deadline: Duration) -> WorkerReport {
        self.shared.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        let mut finished = true;
        let deadline = tokio::time::Instant::now() + deadline;
        for mut task in tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                finished = false;
                task.abort();
                let _ = task.await;
                self.shared.left_pending.fetch_add(1, Ordering::Relaxed);
            }
        }
        WorkerReport {
            finished,
            left_pending: self.shared.left_pending.load(Ordering::Relaxed),
            metrics: self.metrics(),
        }
    }
}

/// What [`RedisWorkers::shutdown`] did.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct WorkerReport {
    finished: bool,
    left_pending: u64,
    metrics: QueueMetrics,
}

impl WorkerReport {
    /// Whether every running handler finished before the deadline.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Entries cancelled mid-handling, left pending for another worker to reclaim.
    pub fn left_pending(&self) -> u64 {
        self.left_pending
    }

    /// The counters after the shutdown.
    pub fn metrics(&self) -> QueueMetrics {
        self.metrics
    }
}

struct WorkerShared {
    keys: Arc<Keys>,
    counters: Counters,
    stop: watch::Sender<bool>,
    max_attempts: u32,
    backoff: Backoff,
    handler_timeout: Duration,
    idle_timeout: Duration,
    block: Duration,
    lease: Duration,
    left_pending: AtomicU64,
}

struct Worker<D> {
    shared: Arc<WorkerShared>,
    store: Arc<D>,
    connection: ConnectionManager,
    consumer: String,
}

/// A stream entry, parsed.
struct Entry {
    id: String,
    event_id: String,
    key: Option<EventKey>,
    token: Option<ClaimToken>,
    ttl: Duration,
    delivery: Result<Delivery, String>,
    /// Deliveries before this one (each counted as a failed attempt).
    earlier: u32,
}

impl Entry {
    fn parse(entry: &StreamId, earlier: u32) -> Self {
        let event_id: String = entry.get("event_id").unwrap_or_default();
        let key = entry
            .get::<String>("key")
            .and_then(|hex| {
                let mut bytes = [0u8; 16];
                decode_hex(hex.as_bytes(), &mut bytes).map(|()| bytes)
            })
            .map(EventKey::from_bytes);
        let token = entry
            .get::<String>("token")
            .and_then(|hex| u128::from_str_radix(&hex, 16).ok())
            .map(ClaimToken::from_u128);
        let ttl = Duration::from_millis(entry.get("ttl_ms").unwrap_or(86_400_000));
        let delivery = entry
            .get::<Vec<u8>>("body")
            .ok_or_else(|| "malformed queue entry: no body".to_owned())
            .and_then(|body| {
                VerifiedEvent::from_trusted_body(Bytes::from(body))
                    .map_err(|error| format!("malformed queue entry: {error}"))
            })
            .map(|event| Delivery {
                event,
                uri: entry
                    .get::<String>("uri")
                    .and_then(|uri| uri.parse::<Uri>().ok())
                    .unwrap_or_else(|| Uri::from_static("/")),
                content_type: entry
                    .get::<Vec<u8>>("content_type")
                    .filter(|value| !value.is_empty())
                    .and_then(|value| HeaderValue::from_bytes(&value).ok()),
            });
        Self {
            id: entry.id.clone(),
            event_id,
            key,
            token,
            ttl,
            delivery,
            earlier,
        }
    }
}

/// Creates the consumer group, and the stream if missing, reading from its first entry; a group
/// that exists already is fine.
async fn create_group(connection: &mut ConnectionManager, keys: &Keys) -> Result<(), RedisError> {
    let created: Result<(), RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.stream)
        .arg(&keys.group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async(connection)
        .await;
    match created {
        Err(error) if error.code() != Some("BUSYGROUP") => Err(error),
        _ => Ok(()),
    }
}

impl<D: DedupStore> Worker<D> {
    async fn run<H>(mut self, handler: H)
    where
        H: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
        H::Error: Into<BoxError>,
        H::Future: Send + 'static,
    {
        let mut stop = self.shared.stop.subscribe();
        let sweep_every = self.shared.idle_timeout / 2;
        let mut next_sweep = tokio::time::Instant::now();
        while !*stop.borrow_and_update() {
            let now = tokio::time::Instant::now();
            let next = if now >= next_sweep {
                match self.reclaim().await {
                    Ok(Some(entry)) => Ok(Some(entry)),
                    Ok(None) => {
                        next_sweep = now + sweep_every;
                        self.read().await
                    }
                    Err(error) => Err(error),
                }
            } else {
                self.read().await
            };
            match next {
                Ok(Some(entry)) => self.process(handler.clone(), entry).await,
                Ok(None) => {}
                Err(error) if error.code() == Some("NOGROUP") => {
                    // Redis lost the group (restarted without persistence, or the keys were
                    // deleted): entries queued since would wait for ever. Make it again, from
                    // the start of the stream, and read on.
                    tracing::warn!(consumer = %self.consumer, "Redis queue consumer group missing; creating it again");
                    if let Err(error) = create_group(&mut self.connection, &self.shared.keys).await
                    {
                        tracing::warn!(consumer = %self.consumer, %error, "cannot create the consumer group; retrying");
                        tokio::select! {
                            _ = stop.changed() => {}
                            () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(consumer = %self.consumer, %error, "Redis queue read failed; retrying");
                    tokio::select! {
                        _ = stop.changed() => {}
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
        tracing::debug!(consumer = %self.consumer, "Redis queue worker stopped");
    }

    /// A crashed or stalled consumer's entry, idle past the timeout, with its delivery count.
    async fn reclaim(&mut self) -> Result<Option<Entry>, RedisError> {
        let keys = &self.shared.keys;
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&keys.stream)
            .arg(&keys.group)
            .arg(&self.consumer)
            .arg(millis_ceil(self.shared.idle_timeout))
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.connection)
            .await?;
        let Some(entry) = reply.claimed.first() else {
            return Ok(None);
        };
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&keys.stream)
            .arg(&keys.group)
            .arg(&entry.id)
            .arg(&entry.id)
            .arg(1)
            .query_async(&mut self.connection)
            .await?;
        let delivered = pending
            .ids
            .first()
            .map_or(1, |pending| pending.times_delivered);
        let earlier = u32::try_from(delivered.saturating_sub(1)).unwrap_or(u32::MAX);
        tracing::warn!(
            consumer = %self.consumer,
            entry = %entry.id,
            earlier_deliveries = earlier,
            "reclaimed an entry from a lost worker"
        );
        Ok(Some(Entry::parse(entry, earlier)))
    }

    async fn read(&mut self) -> Result<Option<Entry>, RedisError> {
        let keys = &self.shared.keys;
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&keys.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(millis_ceil(self.shared.block))
            .arg("STREAMS")
            .arg(&keys.stream)
            .arg(">")
            .query_async(&mut self.connection)
            .await?;
        Ok(reply
            .and_then(|reply| reply.keys.into_iter().next())
            .and_then(|key| key.ids.into_iter().next())
            .map(|entry| Entry::parse(&entry, 0)))
    }

    async fn process<H>(&mut self, handler: H, entry: Entry)
    where
        H: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
        H::Error: Into<BoxError>,
        H::Future: Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let delivery = match &entry.delivery {
            Ok(delivery) => delivery.clone(),
            Err(error) => {
                let error = error.clone();
                return self.dead_letter(&entry, None, entry.earlier, error).await;
            }
        };
        if entry.earlier >= shared.max_attempts {
            let error = format!(
                "worker lost {} times while handling it (crash or stall)",
                entry.earlier
            );
            return self
                .dead_letter(&entry, entry.token.clone(), entry.earlier, error)
                .await;
        }
        // Re-check the claim: done → a duplicate; expired → ours anew.
        let mut token = entry.token.clone();
        if let Some(key) = entry.key {
            match self.store.claim(&key, shared.lease).await {
                Ok(Claim::Done) => {
                    tracing::debug!(event_id = %entry.event_id, "queued event already done: acknowledged");
                    shared.counters.add(Counter::Duplicates);
                    let _ = self.ack(&entry.id).await;
                    return;
                }
                Ok(Claim::Fresh(fresh)) => token = Some(fresh),
                Ok(Claim::InFlight) => {}
                Err(error) => {
                    // Left pending: reclaimed after the idle timeout, when the store is back.
                    tracing::warn!(event_id = %entry.event_id, %error, "dedup store failed; entry left pending");
                    return;
                }
            }
        }

        let heartbeat = tokio::spawn(heartbeat(
            self.connection.clone(),
            Arc::clone(&shared),
            self.consumer.clone(),
            entry.id.clone(),
        ));
        let heartbeat = AbortOnDrop(heartbeat);
        let mut attempts = entry.earlier;
        let error = loop {
            attempts += 1;
            let request = delivery.request(QueueAttempt {
                number: attempts,
                max: shared.max_attempts,
            });
            shared.counters.add(Counter::InProgress);
            let outcome = run_attempt(handler.clone(), request, shared.handler_timeout).await;
            shared.counters.sub(Counter::InProgress);
            match outcome {
                Ok(()) => break None,
                Err(error) if attempts < shared.max_attempts => {
                    let delay = shared.backoff.delay(attempts);
                    shared.counters.add(Counter::Retried);
                    tracing::warn!(event_id = %entry.event_id, attempt = attempts, %error, ?delay, "handler failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => break Some(error),
            }
        };
        drop(heartbeat);
        match error {
            None => {
                if let (Some(key), Some(token)) = (entry.key, &token) {
                    settle(&*self.store, &key, token, entry.ttl, &entry.event_id).await;
                }
                match self.ack(&entry.id).await {
                    Ok(()) => shared.counters.add(Counter::Succeeded),
                    Err(error) => {
                        // Handled and done in the store: a reclaim finds it done.
                        tracing::warn!(event_id = %entry.event_id, %error, "XACK failed");
                        shared.counters.add(Counter::Succeeded);
                    }
                }
            }
            Some(error) => self.dead_letter(&entry, token, attempts, error).await,
        }
    }

    async fn ack(&mut self, id: &str) -> Result<(), RedisError> {
        let keys = &self.shared.keys;
        ACK.key(&keys.stream)
            .arg(&keys.group)
            .arg(id)
            .invoke_async::<i64>(&mut self.connection)
            .await
            .map(|_| ())
    }

    async fn dead_letter(
        &mut self,
        entry: &Entry,
        token: Option<ClaimToken>,
        attempts: u32,
        error: String,
    ) {
        let keys = Arc::clone(&self.shared.keys);
        let (event_type, body) = match &entry.delivery {
            Ok(delivery) => (
                delivery.event.event_type().as_str().to_owned(),
                delivery.event.body().clone(),
            ),
            Err(_) => (String::new(), Bytes::new()),
        };
        let moved: Result<String, RedisError> = DEAD_LETTER
            .key(&keys.stream)
            .key(&keys.dead)
            .arg(&keys.group)
            .arg(&entry.id)
            .arg("event_id")
            .arg(&entry.event_id)
            .arg("event_type")
            .arg(event_type)
            .arg("error")
            .arg(&error)
            .arg("attempts")
            .arg(attempts)
            .arg("source_entry")
            .arg(&entry.id)
            .arg("body")
            .arg(body.as_ref())
            .invoke_async(&mut self.connection)
            .await;
        match moved {
            Ok(dead_id) => {
                tracing::error!(
                    event_id = %entry.event_id,
                    attempts,
                    %error,
                    dead_letter = %dead_id,
                    "every attempt failed: event moved to the dead-letter stream"
                );
                if let (Some(key), Some(token)) = (entry.key, &token) {
                    settle(&*self.store, &key, token, entry.ttl, &entry.event_id).await;
                }
                self.shared.counters.add(Counter::DeadLettered);
            }
            Err(redis_error) => tracing::error!(
                event_id = %entry.event_id,
                %error,
                %redis_error,
                "could not dead-letter the event; it stays pending and is retried on reclaim"
            ),
        }
    }
}

async fn settle<D: DedupStore>(
    store: &D,
    key: &EventKey,
    token: &ClaimToken,
    ttl: Duration,
    event_id: &str,
) {
    match store.complete(key, token, ttl).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            event_id,
            "claim no longer ours when completing (lease ran out): a redelivery may run again"
        ),
        Err(error) => tracing::error!(event_id, %error, "could not mark the event done"),
    }
}

/// Resets the entry's idle time every third of the idle timeout while it is being handled.
async fn heartbeat(
    mut connection: ConnectionManager,
    shared: Arc<WorkerShared>,
    consumer: String,
    id: String,
) {
    let every = shared.idle_timeout / 3;
    loop {
        tokio::time::sleep(every).await;
        let touched: Result<i64, RedisError> = TOUCH
            .key(&shared.keys.stream)
            .arg(&shared.keys.group)
            .arg(&consumer)
            .arg(&id)
            .invoke_async(&mut connection)
            .await;
        match touched {
            Ok(1) => {}
            Ok(_) => {
                tracing::warn!(entry = %id, %consumer, "entry reclaimed by another worker while handling: it may run twice");
                return;
            }
            Err(error) => tracing::warn!(entry = %id, %error, "heartbeat failed"),
        }
    }
}
