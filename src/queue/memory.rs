//! [`MemoryQueue`]: a bounded in-process queue with a pool of workers.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum_core::body::Body;
use axum_core::response::Response;
use http::{Request, StatusCode};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tower_service::Service;

use super::{
    missing_layer, run_attempt, text_response, Backoff, BoxError, Counter, Counters, Delivery,
    EnqueueFuture, QueueAttempt, QueueMetrics, DEFAULT_HANDLER_TIMEOUT, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_QUEUE_RETRY_AFTER,
};
use crate::claim::{ClaimHandle, OwnedClaim};
use crate::response::retry_after_secs;
use crate::verified::VerifiedEvent;

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
            capacity: MemoryQueue::DEFAULT_CAPACITY,
            workers: MemoryQueue::DEFAULT_WORKERS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            handler_timeout: DEFAULT_HANDLER_TIMEOUT,
            dead_letter_capacity: MemoryQueue::DEFAULT_DEAD_LETTER_CAPACITY,
            retry_after: DEFAULT_QUEUE_RETRY_AFTER,
        }
    }
}

impl MemoryQueueBuilder {
    /// How many accepted events may be unfinished at once — waiting, being handled or waiting
    /// out a retry (default [`MemoryQueue::DEFAULT_CAPACITY`]). One more is answered 503 with
    /// `Retry-After`, and its claim released, so Vobiz delivers it again later. At least 1.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        self
    }

    /// How many handler runs at once (default [`MemoryQueue::DEFAULT_WORKERS`]). At least 1.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
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

    /// How long one attempt may run before it is cancelled and counted failed (default 60 s).
    pub fn handler_timeout(mut self, timeout: Duration) -> Self {
        self.handler_timeout = timeout;
        self
    }

    /// How many dead letters are kept for [`MemoryQueue::dead_letters`] (default 1024). When
    /// full, the oldest is dropped with a `tracing::error!` naming its `event_id`.
    pub fn dead_letter_capacity(mut self, capacity: usize) -> Self {
        self.dead_letter_capacity = capacity;
        self
    }

    /// The `Retry-After` of the 503 sent when the queue is full or stopping (default 5 s).
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
        self.handler_timeout
            .saturating_mul(self.max_attempts)
            .saturating_add(self.backoff.total(self.max_attempts))
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
    /// The default [`capacity`](MemoryQueueBuilder::capacity): 1024 unfinished events.
    pub const DEFAULT_CAPACITY: usize = 1024;
    /// The default [`workers`](MemoryQueueBuilder::workers): 4.
    pub const DEFAULT_WORKERS: usize = 4;
    /// The default [`dead_letter_capacity`](MemoryQueueBuilder::dead_letter_capacity): 1024.
    pub const DEFAULT_DEAD_LETTER_CAPACITY: usize = 1024;

    /// A builder with the defaults.
    pub fn builder() -> MemoryQueueBuilder {
        MemoryQueueBuilder::default()
    }

    /// The service to mount behind the layer: it queues each verified delivery and answers 200.
    pub fn service(&self) -> MemoryEnqueue {
        MemoryEnqueue {
            shared: Arc::clone(&self.shared),
        }
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

/// The service [`MemoryQueue::service`] returns: queues each verified delivery.
///
/// | answer | when |
/// |---|---|
/// | 200 `queued` | queued; the claim now belongs to the queue |
/// | 503 + `Retry-After` | the queue is full or shutting down; the layer releases the claim |
/// | 500 | no [`VerifiedEvent`]: not mounted behind the layer |
#[derive(Clone)]
pub struct MemoryEnqueue {
    shared: Arc<Shared>,
}

impl fmt::Debug for MemoryEnqueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryEnqueue").finish_non_exhaustive()
    }
}

impl Service<Request<Body>> for MemoryEnqueue {
    type Response = Response;
    type Error = Infallible;
    type Future = EnqueueFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        EnqueueFuture::ready(self.enqueue(&request))
    }
}

impl MemoryEnqueue {
    fn enqueue(&self, request: &Request<Body>) -> Response {
        let shared = &self.shared;
        let Some(event) = request.extensions().get::<VerifiedEvent>().cloned() else {
            return missing_layer();
        };
        let retry_after = Some(retry_after_secs(shared.config.retry_after));
        if shared.closed.load(Ordering::SeqCst) {
            shared.counters.add(Counter::Rejected);
            tracing::debug!(
                event_id = event.event_id(),
                "queue shutting down: answered 503"
            );
            return text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue shutting down",
                retry_after,
            );
        }
        // Room first: refused, the claim stays with the layer, which releases it on the 503.
        let Ok(permit) = Arc::clone(&shared.permits).try_acquire_owned() else {
            shared.counters.add(Counter::Rejected);
            tracing::warn!(
                event_id = event.event_id(),
                capacity = shared.config.capacity,
                "queue full: answered 503, the sender retries later"
            );
            return text_response(StatusCode::SERVICE_UNAVAILABLE, "queue full", retry_after);
        };
        let claim = request
            .extensions()
            .get::<ClaimHandle>()
            .and_then(ClaimHandle::take);
        let job = Job {
            delivery: Delivery::from_request(event, request),
            claim,
            attempts: 0,
            _permit: permit,
        };
        let event_id = job.delivery.event.event_id().to_owned();
        shared.counters.add(Counter::Queued);
        if shared.sender.try_send(job).is_err() {
            // Cannot happen (a permit per job, as many permits as slots); if it did, the job
            // dropped here releases its claim and the 503 makes Vobiz retry.
            shared.counters.sub(Counter::Queued);
            shared.counters.add(Counter::Rejected);
            tracing::error!(%event_id, "queue channel refused a job: answered 503");
            return text_response(StatusCode::SERVICE_UNAVAILABLE, "queue full", retry_after);
        }
        shared.counters.add(Counter::Accepted);
        tracing::debug!(%event_id, "queued");
        text_response(StatusCode::OK, "queued", None)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Resolves once the shutdown deadline passed.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn worker<H>(shared: Arc<Shared>, handler: H, index: usize)
where
    H: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
{
    tracing::debug!(worker = index, "queue worker started");
    loop {
        let next = async { shared.receiver.lock().await.recv().await };
        let job = tokio::select! {
            biased;
            () = stopped(shared.stop.subscribe()) => break,
            job = next => job,
        };
        let Some(job) = job else { break };
        shared.counters.sub(Counter::Queued);
        process(&shared, handler.clone(), job).await;
    }
    tracing::debug!(worker = index, "queue worker stopped");
}

/// One attempt; then done, another attempt later, or a dead letter.
async fn process<H>(shared: &Arc<Shared>, handler: H, mut job: Job)
where
    H: Service<Request<Body>, Response = Response> + Clone + Send + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
{
    let config = &shared.config;
    job.attempts += 1;
    let attempt = QueueAttempt {
        number: job.attempts,
        max: config.max_attempts,
    };
    let request = job.delivery.request(attempt);
    shared.counters.add(Counter::InProgress);
    let outcome = tokio::select! {
        biased;
        () = stopped(shared.stop.subscribe()) => None,
        outcome = run_attempt(handler, request, config.handler_timeout) => Some(outcome),
    };
    shared.counters.sub(Counter::InProgress);
    let event_id = job.delivery.event.event_id().to_owned();
    match outcome {
        None => give_up(shared, job).await,
        Some(Ok(())) => {
            if let Some(claim) = job.claim.take() {
                let _ = claim.complete().await;
            }
            // Counted once settled, so a reader of the metrics sees the claim done.
            shared.counters.add(Counter::Succeeded);
            tracing::debug!(%event_id, attempt = job.attempts, "handled");
        }
        Some(Err(error)) if job.attempts < config.max_attempts => {
            let delay = config.backoff.delay(job.attempts);
            shared.counters.add(Counter::Retried);
            shared.counters.add(Counter::Queued);
            tracing::warn!(%event_id, attempt = job.attempts, %error, ?delay, "handler failed; retrying");
            let shared = Arc::clone(shared);
            tokio::spawn(async move {
                tokio::select! {
                    biased;
                    () = stopped(shared.stop.subscribe()) => {
                        shared.counters.sub(Counter::Queued);
                        give_up(&shared, job).await;
                    }
                    () = tokio::time::sleep(delay) => {
                        if let Err(error) = shared.sender.try_send(job) {
                            shared.counters.sub(Counter::Queued);
                            let job = match error {
                                mpsc::error::TrySendError::Full(job)
                                | mpsc::error::TrySendError::Closed(job) => job,
                            };
                            give_up(&shared, job).await;
                        }
                    }
                }
            });
        }
        Some(Err(error)) => dead_letter(shared, job, error).await,
    }
}

/// Every attempt failed: keep it with its error, log it, and complete the claim so a stray
/// redelivery does not run the failing handler again.
async fn dead_letter(shared: &Shared, mut job: Job, error: String) {
    if let Some(claim) = job.claim.take() {
        let _ = claim.complete().await;
    }
    let event_id = job.delivery.event.event_id();
    tracing::error!(
        event_id,
        event_type = job.delivery.event.event_type().as_str(),
        attempts = job.attempts,
        %error,
        "every attempt failed: event dead-lettered"
    );
    {
        let mut dead = lock(&shared.dead);
        if shared.config.dead_letter_capacity == 0 {
            tracing::error!(
                event_id,
                "dead-letter list has no room: event dropped after logging"
            );
        } else {
            while dead.len() >= shared.config.dead_letter_capacity {
                if let Some(old) = dead.pop_front() {
                    tracing::error!(
                        event_id = old.event.event_id(),
                        error = %old.error,
                        "dead-letter list full: the oldest dead letter dropped"
                    );
                }
            }
            dead.push_back(DeadLetter {
                event: job.delivery.event.clone(),
                attempts: job.attempts,
                error,
                at: SystemTime::now(),
            });
        }
    }
    shared.counters.add(Counter::DeadLettered);
}

/// The shutdown deadline passed with this event unfinished: release its claim and say so.
async fn give_up(shared: &Shared, mut job: Job) {
    let event_id = job.delivery.event.event_id().to_owned();
    shared.counters.add(Counter::Released);
    tracing::error!(
        %event_id,
        attempts = job.attempts,
        "shutdown deadline: event acknowledged but not handled; claim released"
    );
    if let Some(claim) = job.claim.take() {
        let _ = claim.release().await;
    }
    lock(&shared.released).push(event_id);
}
