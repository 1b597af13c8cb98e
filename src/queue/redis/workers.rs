//! The worker side: configure, start and stop the consumers of a [`RedisQueue`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum_core::body::Body;
use axum_core::response::Response;
use http::Request;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_service::Service;

use super::consumer::Consumer;
use super::{create_groups, Keys, RedisQueue, DEFAULT_IDLE_TIMEOUT};
use crate::dedup::redis::store_error;
use crate::dedup::{DedupStore, StoreError};
use crate::queue::{
    handling_budget, Backoff, BoxError, Counters, QueueMetrics, DEFAULT_HANDLER_TIMEOUT,
    DEFAULT_MAX_ATTEMPTS, DEFAULT_WORKERS,
};

/// Configures the workers of a [`RedisQueue`]; from [`RedisQueue::workers`].
///
/// **The attempt count** spans processes: the entry's record counts every handler attempt
/// *started* (before the handler runs, so a worker that crashed or stalled mid-handler counts
/// as a failed attempt). An entry whose record shows `max_attempts` started attempts is
/// dead-lettered without running the handler again ("gave up after N started attempts"), so a
/// poison event that kills its worker cannot loop forever. A delivery that never started the
/// handler (the dedup store or Redis could not answer, the claim was held elsewhere) is not an
/// attempt: the entry stays pending and is picked up again after the idle timeout.
///
/// **The claim** travels with the entry, in its record. When a worker picks an entry up it
/// runs it only while it owns the claim: the recorded token is [renewed](DedupStore::renew)
/// with [`lease`](Self::lease) → ours; otherwise the id is claimed again: `Done` → acknowledged
/// without running (a duplicate); fresh → the claim ran out or was released while the entry
/// waited, and this worker now holds a new one (recorded for the entry); in flight → someone
/// else holds it, so the entry is left pending, never run beside it. While the handler runs the
/// heartbeat keeps the entry and renews the claim; when either is lost (another worker
/// reclaimed the entry, or no heartbeat got through for three quarters of the idle timeout,
/// or the claim is no longer the entry's) the handler is cancelled and the entry left to its
/// new owner. Success completes the claim (then `XACK`); a dead letter completes it too (see
/// the [module docs](crate::queue)). The store must implement [`DedupStore::renew`] (every
/// store of the crate does).
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

impl<D> RedisWorkersBuilder<D> {
    pub(super) fn new(queue: RedisQueue, store: D) -> Self {
        Self {
            queue,
            store: Arc::new(store),
            workers: DEFAULT_WORKERS,
            consumer: default_consumer(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            block: Duration::from_secs(1),
            lease: None,
        }
    }
}

impl<D: DedupStore> RedisWorkersBuilder<D> {
    /// Concurrent handler runs in this process (default
    /// [`DEFAULT_WORKERS`](crate::queue::DEFAULT_WORKERS), 4), each its own consumer and
    /// connection. At least 1.
    #[must_use]
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The consumer name prefix, unique per process (default `$HOSTNAME-pid`); worker `i` is
    /// `<name>-<i>`.
    #[must_use]
    pub fn consumer_name(mut self, name: impl Into<String>) -> Self {
        self.consumer = name.into();
        self
    }

    /// Attempts per event before it is dead-lettered (default 5). At least 1.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The delay between attempts (default 200 ms doubling up to 30 s).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long one attempt may run (default 60 s).
    #[must_use]
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// How long an entry may go without a heartbeat before another worker reclaims it with
    /// `XAUTOCLAIM` (default [`DEFAULT_IDLE_TIMEOUT`](crate::queue::DEFAULT_IDLE_TIMEOUT), 60
    /// s). Workers heartbeat every quarter of it while handling, so this is the time to notice a
    /// crashed worker, not a limit on the handler. A worker whose heartbeats do not get through
    /// for three quarters of it cancels its handler, before another worker may reclaim the entry.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout.max(Duration::from_millis(30));
        self
    }

    /// The lease of the claim a worker takes when the layer's ran out while the entry waited
    /// (default: every attempt's timeout plus the backoffs, plus a minute).
    #[must_use]
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
        create_groups(&mut connection, &self.queue.keys)
            .await
            .map_err(store_error)?;
        let lease = self.lease.unwrap_or_else(|| {
            handling_budget(self.max_attempts, self.handler_timeout, &self.backoff)
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
        let partitions = shared.keys.partitions.len();
        for index in 0..self.workers {
            let connection = self
                .queue
                .connector
                .open(Some(self.block + Duration::from_secs(5)))
                .await?;
            let worker = Consumer {
                shared: Arc::clone(&shared),
                store: Arc::clone(&self.store),
                connection,
                consumer: format!("{}-{index}", self.consumer),
                home: index % partitions,
                next: index % partitions,
            };
            tasks.push(tokio::spawn(worker.run(handler.clone())));
        }
        tracing::info!(
            stream = %shared.keys.partition(0).stream,
            partitions,
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
            .field("stream", &self.shared.keys.partition(0).stream)
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

/// What the consumers of one [`RedisWorkers`] share.
pub(super) struct WorkerShared {
    pub(super) keys: Arc<Keys>,
    pub(super) counters: Counters,
    pub(super) stop: watch::Sender<bool>,
    pub(super) max_attempts: u32,
    pub(super) backoff: Backoff,
    pub(super) handler_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) block: Duration,
    pub(super) lease: Duration,
    pub(super) left_pending: AtomicU64,
}

fn default_consumer() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}
