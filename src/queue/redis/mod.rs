//! [`RedisQueue`]: queue mode on Redis Streams, shared by every replica, surviving crashes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::RedisError;

use super::{Counters, QueueMetrics, DEFAULT_QUEUE_RETRY_AFTER};
use crate::dedup::redis::{require_redis_7, store_error, Connection, Connector};
use crate::dedup::{DedupStore, StoreError};
use crate::{RedisConfig, RedisTopology};

mod consumer;
mod enqueue;
mod entry;
mod heartbeat;
mod keys;
mod scripts;
mod workers;

use keys::Keys;

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
/// before answering 200; workers in any process share the stream through a consumer group. On
/// one Redis or a Redis Cluster (recognised at connect: see [`RedisConfig`]), optionally
/// spread over several streams ([`partitions`](Self::partitions)).
///
/// | step | Redis |
/// |---|---|
/// | enqueue | a script: the event's entry still pending → no second entry, the record takes the delivery's claim over; else `XLEN` < max → `XADD` and the record (else 503 + `Retry-After`, claim released) |
/// | consume | `XREADGROUP GROUP g consumer COUNT 1 BLOCK … STREAMS s >`; with partitions, a pass without `BLOCK` over every partition's stream, then one blocking read on the worker's home partition (worker index mod n) |
/// | pick up | touch the entry, read its record; run only while the record's claim token is ours ([`renew`](crate::DedupStore::renew)) or the claim is fresh again |
/// | heartbeat | while handling, `XCLAIM … JUSTID` (only if still ours) resets the idle time, and the claim's lease is renewed; losing either stops the handler |
/// | reclaim | `XAUTOCLAIM s g consumer idle_timeout 0-0` on each partition's stream: a crashed worker's entries |
/// | success | complete the dedup claim, then `XACK` + `XDEL` |
/// | give up | after `max_attempts`: `XADD` to the dead-letter stream with the last error, `XACK` + `XDEL`, complete the claim |
///
/// Keys: `<prefix>stream`, `<prefix>dead` and one record per queued event,
/// `<prefix>entry:<32 hex digits>` (a hash: its entry id, claim token and started attempts;
/// deleted with the entry, expiring after the claim's TTL otherwise). Default prefix
/// `{vobiz:queue}:`; its `{hash tag}` keeps every key of the queue in one slot, so each script
/// runs on one cluster node (a prefix without a tag gets one on a cluster).
///
/// **Partitions.** With [`partitions(n)`](Self::partitions) each partition `i` has its own
/// stream, dead-letter stream and records under its own hash tag (partition 0 keeps the
/// unpartitioned keys above; partition `i > 0` puts `:i` and, if needed, a short suffix inside
/// the tag, chosen so that on a cluster whose masters own equal slot ranges the partitions land
/// on different masters). An event goes to the partition of its [`EventKey`](crate::EventKey),
/// so its second delivery finds its first entry. Every web and worker process must use the
/// same `n`. Raising `n` from 1 is safe (partition 0 is the old stream, still read); changing
/// `n` otherwise moves events to other partitions and names new streams for `i > 0`, so drain
/// the queue first (stop the web side, let the workers empty it). A worker reads every
/// partition; for the lowest latency when idle give each process at least `n` workers (an
/// entry in a partition no worker blocks on waits at most the block time, 1 s).
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
    connector: Connector,
    connection: Connection,
    keys: Arc<Keys>,
    max_len: u64,
    retry_after: Duration,
    timeout: Duration,
    counters: Arc<Counters>,
}

impl RedisQueue {
    /// Connects to the Redis at `url`: one node, any node of a Redis Cluster (recognised), or
    /// several comma-separated seed URLs of a cluster; the same as [`connect`](Self::connect)
    /// with [`RedisConfig::new`]`(url)`.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the URL is invalid or the first connection fails, or when the
    /// server is older than Redis 7.0 or a Sentinel (the error says which).
    pub async fn new(url: &str) -> Result<RedisQueue, StoreError> {
        Self::connect(&RedisConfig::new(url)).await
    }

    /// Connects as `config` says (URLs, topology, timeouts). Workers open connections of their
    /// own the same way, with a response timeout longer than their blocking reads.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and an error naming the node when the topology found is not the
    /// one asked for.
    pub async fn connect(config: &RedisConfig) -> Result<RedisQueue, StoreError> {
        let connector = Connector::connect(config).await?;
        let connection = connector.open(None).await?;
        Ok(Self::with(connector, connection))
    }

    /// A queue over `client`, one Redis node (TLS, auth and database as the client says).
    /// Workers open a connection of their own each (their reads block).
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
        Ok(Self::with(
            Connector::single(client),
            Connection::Single(connection),
        ))
    }

    fn with(connector: Connector, connection: Connection) -> RedisQueue {
        let cluster = connection.topology() == RedisTopology::Cluster;
        RedisQueue {
            connector,
            connection,
            keys: Arc::new(Keys::new(DEFAULT_PREFIX, DEFAULT_GROUP, 1, cluster)),
            max_len: DEFAULT_MAX_LEN,
            retry_after: DEFAULT_QUEUE_RETRY_AFTER,
            timeout: DEFAULT_ENQUEUE_TIMEOUT,
            counters: Arc::new(Counters::default()),
        }
    }

    /// Puts the keys under `prefix` (`<prefix>stream`, `<prefix>dead`, `<prefix>entry:…`).
    /// Keep a `{hash tag}` in it (the default has one): on a Redis Cluster a prefix without
    /// one gets one, made of the prefix.
    #[must_use]
    pub fn prefix(mut self, prefix: impl AsRef<str>) -> RedisQueue {
        self.keys = Arc::new(self.keys.with(Some(prefix.as_ref()), None, None));
        self
    }

    /// The consumer group the workers share (default [`DEFAULT_GROUP`]).
    #[must_use]
    pub fn group(mut self, group: impl AsRef<str>) -> RedisQueue {
        self.keys = Arc::new(self.keys.with(None, Some(group.as_ref()), None));
        self
    }

    /// Spreads the queue over `n` streams (default 1, at most 1024), each with its own hash
    /// tag, so a Redis Cluster places them on different masters. An event goes to the
    /// partition of its [`EventKey`](crate::EventKey); workers read every partition, reclaim
    /// and dead-letter per partition. Partition 0 is the unpartitioned layout, so a queue
    /// raised from 1 to `n` partitions still reads the entries it had. Every process (web and
    /// workers) must use the same `n`: see the [queue docs](crate::queue) for changing it.
    #[must_use]
    pub fn partitions(mut self, n: usize) -> RedisQueue {
        self.keys = Arc::new(self.keys.with(None, None, Some(n)));
        self
    }

    /// The number of partitions (streams).
    pub fn partition_count(&self) -> usize {
        self.keys.partitions.len()
    }

    /// The topology the queue talks to: [`RedisTopology::Standalone`] or
    /// [`RedisTopology::Cluster`].
    pub fn topology(&self) -> RedisTopology {
        self.connection.topology()
    }

    /// The most unfinished entries the queue holds (default [`DEFAULT_MAX_LEN`], 100 000),
    /// shared evenly by the partitions (each holds at most `max_len / n`, rounded up). At the
    /// bound a delivery is answered 503 + `Retry-After` and its claim released; nothing is
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

    /// The Redis key of the stream (of partition 0 when there are several).
    pub fn stream_key(&self) -> &str {
        &self.keys.partition(0).stream
    }

    /// The Redis key of the dead-letter stream (of partition 0 when there are several).
    pub fn dead_letter_key(&self) -> &str {
        &self.keys.partition(0).dead
    }

    /// The Redis keys of every partition's stream, partition 0 first.
    pub fn stream_keys(&self) -> impl Iterator<Item = &str> {
        self.keys.partitions.iter().map(|part| part.stream.as_str())
    }

    /// The enqueue side's counters (accepted, rejected) in this process.
    pub fn metrics(&self) -> QueueMetrics {
        self.counters.snapshot()
    }

    /// Unfinished entries (`XLEN` of every partition's stream): waiting or being handled.
    ///
    /// # Errors
    ///
    /// Redis' error.
    pub async fn len(&self) -> Result<u64, StoreError> {
        let mut connection = self.connection.clone();
        let mut total = 0u64;
        for part in &self.keys.partitions {
            let len: u64 = redis::cmd("XLEN")
                .arg(&part.stream)
                .query_async(&mut connection)
                .await
                .map_err(store_error)?;
            total += len;
        }
        Ok(total)
    }

    /// Whether no entry is unfinished.
    ///
    /// # Errors
    ///
    /// Redis' error.
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len().await? == 0)
    }

    /// Up to `count` dead letters, oldest first (by entry id, across partitions). They stay in
    /// their partition's dead-letter stream until you delete them
    /// ([`delete_dead_letter`](Self::delete_dead_letter), or
    /// `XDEL <`[`stream`](RedisDeadLetter::stream)`> <`[`id`](RedisDeadLetter::id)`>`).
    ///
    /// # Errors
    ///
    /// Redis' error.
    pub async fn dead_letters(&self, count: usize) -> Result<Vec<RedisDeadLetter>, StoreError> {
        let mut connection = self.connection.clone();
        let mut letters = Vec::new();
        for part in &self.keys.partitions {
            let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
                .arg(&part.dead)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(count)
                .query_async(&mut connection)
                .await
                .map_err(store_error)?;
            letters.extend(
                reply
                    .ids
                    .iter()
                    .map(|entry| RedisDeadLetter::from_entry(entry, &part.dead)),
            );
        }
        letters.sort_by_key(|letter| entry_order(letter.id()));
        letters.truncate(count);
        Ok(letters)
    }

    /// Deletes one dead letter (after replaying or inspecting it). `Ok(false)` when it was gone.
    ///
    /// # Errors
    ///
    /// Redis' error.
    pub async fn delete_dead_letter(&self, letter: &RedisDeadLetter) -> Result<bool, StoreError> {
        let mut connection = self.connection.clone();
        let deleted: u64 = redis::cmd("XDEL")
            .arg(letter.stream())
            .arg(letter.id())
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
            .field("topology", &self.topology())
            .field("stream", &self.stream_key())
            .field("partitions", &self.partition_count())
            .field("group", &self.keys.group)
            .field("max_len", &self.max_len)
            .finish_non_exhaustive()
    }
}

/// A stream entry id (`<ms>-<seq>`) as a sortable pair; anything else sorts last.
fn entry_order(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (
        ms.parse().unwrap_or(u64::MAX),
        seq.parse().unwrap_or(u64::MAX),
    )
}

/// Creates the consumer group of every partition, and its stream if missing, reading from its
/// first entry; a group that exists already is fine.
async fn create_groups(connection: &mut Connection, keys: &Keys) -> Result<(), RedisError> {
    for part in &keys.partitions {
        let created: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&part.stream)
            .arg(&keys.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(connection)
            .await;
        match created {
            Err(error) if error.code() != Some("BUSYGROUP") => return Err(error),
            _ => {}
        }
    }
    Ok(())
}
