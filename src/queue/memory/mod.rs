//! [`MemoryQueue`]: a bounded in-process queue with a pool of workers.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use axum_core::body::Body;
use axum_core::response::Response;
use http::Request;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tower_service::Service;

use super::{
    handling_budget, Backoff, BoxError, Counter, Counters, Delivery, QueueMetrics,
    DEFAULT_CAPACITY, DEFAULT_DEAD_LETTER_CAPACITY, DEFAULT_HANDLER_TIMEOUT, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_QUEUE_RETRY_AFTER, DEFAULT_WORKERS,
};
use crate::claim::OwnedClaim;
use crate::verified::VerifiedEvent;

mod enqueue;
mod workers;

pub use enqueue::MemoryEnqueue;
use workers::{give_up, worker};

/// Configures and starts a [`MemoryQueue`]. From [`MemoryQueue::builder`].
#[derive(Clone, Debug)]
pub struct MemoryQueueBuilder {
    capacity: usize,
    workers: usize,
    max_attempts: u32,
    backoff: Backoff,
    handler_timeout: Duration,
    dead_letter_capacity: usize,
    retry_after: Duration,
}

impl Default for MemoryQueueBuilder {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            workers: DEFAULT_WORKERS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            dead_letter_capacity: DEFAULT_DEAD_LETTER_CAPACITY,
            retry_after: DEFAULT_QUEUE_RETRY_AFTER,
        }
    }
}

impl MemoryQueueBuilder {
    /// How many accepted events may be unfinished at once — waiting, being handled or waiting
    /// out a retry (default [`DEFAULT_CAPACITY`](super::DEFAULT_CAPACITY)). One more is
    /// answered 503 with `Retry-After`, and its claim released, so Vobiz delivers it again
    /// later. At least 1.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        self
    }

    /// How many handler runs at once (default [`DEFAULT_WORKERS`](super::DEFAULT_WORKERS)). At
    /// least 1.
    #[must_use]
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
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

    /// How long one attempt may run before it is cancelled and counted failed (default 60 s).
    #[must_use]
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// How many dead letters are kept for [`MemoryQueue::dead_letters`] (default 1024). When
    /// full, the oldest is dropped with a `tracing::error!` naming its `event_id`.
    #[must_use]
    pub fn dead_letter_capacity(mut self, capacity: usize) -> Self {
        self.dead_letter_capacity = capacity;
        self
    }

    /// The `Retry-After` of the 503 sent when the queue is full or stopping (default 5 s).
    #[must_use]
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = delay;
        self
    }

    /// The longest an event can take from its first attempt to its dead letter: every attempt
    /// running into the handler timeout, plus the backoffs between them.
    ///
    /// In queue mode the layer's [`lease`](crate::VobizWebhookLayer::lease) should be at least
    /// this plus the longest wait in the queue you expect.
    ///
    /// ```
    /// use std::time::Duration;
    /// use vobiz_webhooks::queue::{Backoff, MemoryQueue};
    ///
    /// let builder = MemoryQueue::builder()
    ///     .max_attempts(3)
    ///     .handler_timeout(Duration::from_secs(10))
    ///     .backoff(Backoff::constant(Duration::from_secs(1)));
    /// assert_eq!(builder.handling_budget(), Duration::from_secs(32));
    /// ```
    pub fn handling_budget(&self) -> Duration {
        handling_budget(self.max_attempts, self.handler_timeout, &self.backoff)
    }

    /// Starts the workers on the current Tokio runtime, each calling a clone of `handler`.
    ///
    /// `handler` is any tower service of `Request<Body>` answering a `Response`: a
    /// [`VobizRouter`](crate::VobizRouter) with its state bound, `handler.with_state(state)`
    /// for an axum handler, a `tower::service_fn`.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, like `tokio::spawn`.
    pub fn start<H>(self, handler: H) -> MemoryQueue
    where
        H: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
        H::Error: Into<BoxError>,
        H::Future: Send + 'static,
    {
        let (sender, receiver) = mpsc::channel(self.capacity);
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            permits: Arc::new(Semaphore::new(self.capacity)),
            config: self,
            counters: Counters::default(),
            sender,
            receiver: tokio::sync::Mutex::new(receiver),
            closed: AtomicBool::new(false),
            stop,
            dead: Mutex::new(VecDeque::new()),
            released: Mutex::new(Vec::new()),
        });
        let workers = (0..shared.config.workers)
            .map(|index| tokio::spawn(worker(Arc::clone(&shared), handler.clone(), index)))
            .collect();
        MemoryQueue {
            shared,
            workers: Mutex::new(workers),
        }
    }
}

/// A bounded in-process queue whose workers run the handlers, with retries and dead letters.
///
/// Mount [`service`](Self::service) behind [`VobizWebhookLayer`](crate::VobizWebhookLayer): a
/// delivery is answered 200 as soon as it is queued, 503 + `Retry-After` when the queue is full
/// (the claim is released, so Vobiz delivers it again). See the [module docs](super) for the
/// claim, retries and dead letters.
///
/// **What it cannot do**: survive the process. An event acknowledged with 200 and not yet
/// handled when the process crashes is lost (Vobiz does not retry after a 200); on a graceful
/// [`shutdown`](Self::shutdown) whatever is not done by the deadline is released and logged with
/// its id. Use the Redis Streams backend (`RedisQueue`, feature `redis`) when that matters.
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::post_service, Router};
/// use vobiz_webhooks::queue::MemoryQueue;
/// use vobiz_webhooks::{VobizEvent, VobizWebhookLayer};
///
/// async fn handle(event: VobizEvent) { /* ... */ }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::handler::Handler;
/// let queue = MemoryQueue::builder().workers(4).start(handle.with_state(()));
/// let layer = VobizWebhookLayer::new("secret").lease(Duration::from_secs(600));
/// let app: Router = Router::new()
///     .route("/webhooks/vobiz", post_service(queue.service()).layer(layer));
/// # let _ = app;
/// # queue.shutdown(Duration::from_secs(1)).await;
/// # Ok(()) }
/// ```
pub struct MemoryQueue {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    config: MemoryQueueBuilder,
    counters: Counters,
    /// One permit per accepted, unfinished event: the real bound (the channel never fills).
    permits: Arc<Semaphore>,
    sender: mpsc::Sender<Job>,
    receiver: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    /// Refusing new deliveries (shutting down).
    closed: AtomicBool,
    /// The shutdown deadline passed: give up what is unfinished.
    stop: watch::Sender<bool>,
    dead: Mutex<VecDeque<DeadLetter>>,
    released: Mutex<Vec<String>>,
}

/// One accepted event on its way through the queue.
struct Job {
    delivery: Delivery,
    claim: Option<OwnedClaim>,
    /// Attempts made so far.
    attempts: u32,
    _permit: OwnedSemaphorePermit,
}

impl MemoryQueue {
    /// A builder with the defaults.
    #[must_use]
    pub fn builder() -> MemoryQueueBuilder {
        MemoryQueueBuilder::default()
    }

    /// The counters now.
    pub fn metrics(&self) -> QueueMetrics {
        self.shared.counters.snapshot()
    }

    /// A copy of the dead letters kept, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.shared.dead).iter().cloned().collect()
    }

    /// Takes the dead letters kept, oldest first, leaving none.
    pub fn drain_dead_letters(&self) -> Vec<DeadLetter> {
        lock(&self.shared.dead).drain(..).collect()
    }

    /// Stops accepting (new deliveries get 503 + `Retry-After`), lets the workers finish what
    /// was accepted, and after `deadline` gives up the rest: cancels running attempts, releases
    /// every unfinished claim and logs each given-up `event_id` at `error`.
    ///
    /// Those events were acknowledged with 200, so Vobiz will not send them again: they are
    /// lost unless you replay them (their ids are in the report). Call it after the HTTP server
    /// stopped taking requests, with a deadline shorter than your orchestrator's kill timeout.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let shared = &self.shared;
        shared.closed.store(true, Ordering::SeqCst);
        let everything = u32::try_from(shared.config.capacity).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(deadline, shared.permits.acquire_many(everything))
            .await
            .is_ok_and(|permits| permits.is_ok());
        // Tell workers and sleeping retries to stop, then release what is left in the channel.
        shared.stop.send_replace(true);
        let workers = std::mem::take(&mut *lock(&self.workers));
        for worker in workers {
            let _ = worker.await;
        }
        let leftovers: Vec<Job> = {
            let mut receiver = shared.receiver.lock().await;
            std::iter::from_fn(|| receiver.try_recv().ok()).collect()
        };
        for job in leftovers {
            shared.counters.sub(Counter::Queued);
            give_up(shared, job).await;
        }
        // Retries waiting out their backoff saw the stop; wait for their releases to land.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            shared.permits.acquire_many(everything),
        )
        .await;
        let released = std::mem::take(&mut *lock(&shared.released));
        if released.is_empty() {
            tracing::info!("queue shut down: every accepted event was handled");
        } else {
            tracing::error!(
                released = released.len(),
                "queue shut down with events acknowledged but not handled; their claims were released"
            );
        }
        ShutdownReport {
            drained,
            released,
            metrics: shared.counters.snapshot(),
        }
    }
}

impl fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryQueue")
            .field("config", &self.shared.config)
            .field("metrics", &self.metrics())
            .finish()
    }
}

/// What [`MemoryQueue::shutdown`] did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ShutdownReport {
    drained: bool,
    released: Vec<String>,
    metrics: QueueMetrics,
}

impl ShutdownReport {
    /// Whether every accepted event finished (handled or dead-lettered) before the deadline.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// The `event_id`s given up at the deadline: acknowledged, not handled, claims released.
    pub fn released(&self) -> &[String] {
        &self.released
    }

    /// The counters after the shutdown.
    pub fn metrics(&self) -> QueueMetrics {
        self.metrics
    }
}

/// An event that failed every attempt, with its last error.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DeadLetter {
    event: VerifiedEvent,
    attempts: u32,
    error: String,
    at: SystemTime,
}

impl DeadLetter {
    /// The event, with its exact verified bytes (to replay it, inspect it, store it).
    pub fn event(&self) -> &VerifiedEvent {
        &self.event
    }

    /// How many attempts were made.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The last attempt's failure: the status and the start of the body, the error, a panic or
    /// a timeout.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// When it was dead-lettered.
    pub fn at(&self) -> SystemTime {
        self.at
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
