//! [`RedisQueue`]: queue mode on Redis Streams, shared by every replica, surviving crashes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::RedisError;

use super::{Counters, QueueMetrics, DEFAULT_QUEUE_RETRY_AFTER};
use crate::dedup::redis::{require_redis_7, store_error};
use crate::dedup::{DedupStore, EventKey, StoreError};

mod consumer;
mod enqueue;
mod entry;
mod heartbeat;
mod scripts;
mod workers;

pub use enqueue::RedisEnqueue;
pub use entry::RedisDeadLetter;
pub use workers::{RedisWorkers, RedisWorkersBuilder, WorkerReport};

/// The key prefix of a [`RedisQueue`] unless [`prefix`](RedisQueue::prefix) sets another.
pub const DEFAULT_PREFIX: &str = "{vobiz:queue}:";

/// The consumer group of a [`RedisQueue`] unless [`group`](RedisQueue::group) sets another.
pub const DEFAULT_GROUP: &str = "vobiz-workers";

/// The default [`max_len`](RedisQueue::max_len): 100 000 unfinished entries.
pub const DEFAULT_MAX_LEN: u64 = 100_000;

/// How long an `XADD` may take before the delivery is answered 503, unless
/// [`timeout`](RedisQueue::timeout) sets another (2 s).
pub const DEFAULT_ENQUEUE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a Redis queue entry may go without a heartbeat before another worker reclaims it,
/// unless [`idle_timeout`](RedisWorkersBuilder::idle_timeout) sets another (60 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Queue mode on Redis Streams (feature `redis`): the web replicas `XADD` each verified delivery
/// before answering 200; workers in any process share the stream through a consumer group.
///
/// | step | Redis |
/// |---|---|
/// | enqueue | a script: the event's entry still pending → no second entry, the record takes the delivery's claim over; else `XLEN` < max → `XADD` and the record (else 503 + `Retry-After`, claim released) |
/// | consume | `XREADGROUP GROUP g consumer COUNT 1 BLOCK … STREAMS s >` |
/// | pick up | touch the entry, read its record; run only while the record's claim token is ours ([`renew`](crate::DedupStore::renew)) or the claim is fresh again |
/// | heartbeat | while handling, `XCLAIM … JUSTID` (only if still ours) resets the idle time, and the claim's lease is renewed; losing either stops the handler |
/// | reclaim | `XAUTOCLAIM s g consumer idle_timeout 0-0`: a crashed worker's entries |
/// | success | complete the dedup claim, then `XACK` + `XDEL` |
/// | give up | after `max_attempts`: `XADD` to the dead-letter stream with the last error, `XACK` + `XDEL`, complete the claim |
///
/// Keys: `<prefix>stream`, `<prefix>dead` and one record per queued event,
/// `<prefix>entry:<32 hex digits>` (a hash: its entry id, claim token and started attempts;
/// deleted with the entry, expiring after the claim's TTL otherwise). Default prefix
/// `{vobiz:queue}:`; keep a `{hash tag}` in it on Redis Cluster so every key shares a slot.
/// Acknowledged entries are deleted, so `XLEN` is the number of unfinished entries and the bound
/// ([`max_len`](Self::max_len)) never drops one silently: a full stream refuses new deliveries.
///
/// An entry holds the exact body bytes, the `event_id`, its [`EventKey`](crate::EventKey), the claim token and
/// TTL, the request URI and content type: a worker in another process rebuilds the request and
/// settles the claim through its own store ([`RedisStore`](crate::RedisStore) on the same
/// Redis). See [`RedisWorkersBuilder`] for the claim's lifetime and the attempt count.
///
/// ```no_run
/// use std::time::Duration;
/// use axum::{handler::Handler, routing::post_service, Router};
/// use vobiz_webhooks::queue::RedisQueue;
/// use vobiz_webhooks::{RedisStore, VobizWebhookLayer, VerifiedEvent};
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
/// let handlers = on_message.with_state(()); // or a `VobizRouter` with its state
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
    /// `<prefix>entry:`, followed by an event's 32 hex digits: its record.
    record: String,
    group: String,
}

impl Keys {
    fn new(prefix: &str, group: &str) -> Self {
        Self {
            stream: format!("{prefix}stream"),
            dead: format!("{prefix}dead"),
            record: format!("{prefix}entry:"),
            group: group.to_owned(),
        }
    }

    /// The record of the event `key`: which entry carries it, its claim token, its attempts.
    fn record(&self, key: Option<&EventKey>) -> String {
        match key {
            Some(key) => format!("{}{key}", self.record),
            // An entry without a key (not written by this crate): a record no entry has.
            None => format!("{}-", self.record),
        }
    }
}

impl RedisQueue {
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
    /// A [`StoreError`] when the first connection fails, or when the server is older than
    /// Redis 7.0 (the error names its version).
    pub async fn from_client(client: redis::Client) -> Result<RedisQueue, StoreError> {
        let mut connection = ConnectionManager::new(client.clone())
            .await
            .map_err(store_error)?;
        require_redis_7(&mut connection).await?;
        Ok(RedisQueue {
            client,
            connection,
            keys: Arc::new(Keys::new(DEFAULT_PREFIX, DEFAULT_GROUP)),
            max_len: DEFAULT_MAX_LEN,
            retry_after: DEFAULT_QUEUE_RETRY_AFTER,
            timeout: DEFAULT_ENQUEUE_TIMEOUT,
            counters: Arc::new(Counters::default()),
        })
    }

    /// Puts the streams under `prefix` (`<prefix>stream`, `<prefix>dead`).
    #[must_use]
    pub fn prefix(mut self, prefix: impl AsRef<str>) -> RedisQueue {
        self.keys = Arc::new(Keys::new(prefix.as_ref(), &self.keys.group));
        self
    }

    /// The consumer group the workers share (default [`DEFAULT_GROUP`]).
    #[must_use]
    pub fn group(mut self, group: impl AsRef<str>) -> RedisQueue {
        let prefix = self.keys.stream.trim_end_matches("stream").to_owned();
        self.keys = Arc::new(Keys::new(&prefix, group.as_ref()));
        self
    }

    /// The most unfinished entries the stream holds (default [`DEFAULT_MAX_LEN`], 100 000). At
    /// the bound a delivery is answered 503 + `Retry-After` and its claim released; nothing is
    /// trimmed.
    #[must_use]
    pub fn max_len(mut self, max_len: u64) -> RedisQueue {
        self.max_len = max_len;
        self
    }

    /// The `Retry-After` of the 503 when the stream is full or Redis fails (default
    /// [`DEFAULT_QUEUE_RETRY_AFTER`](super::DEFAULT_QUEUE_RETRY_AFTER), 5 s).
    #[must_use]
    pub fn retry_after(mut self, delay: Duration) -> RedisQueue {
        self.retry_after = delay;
        self
    }

    /// How long an `XADD` may take before the delivery is answered 503 (default
    /// [`DEFAULT_ENQUEUE_TIMEOUT`], 2 s).
    #[must_use]
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
    #[must_use]
    pub fn workers<D: DedupStore>(&self, store: D) -> RedisWorkersBuilder<D> {
        RedisWorkersBuilder::new(self.clone(), store)
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
