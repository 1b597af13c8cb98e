//! Queue mode: acknowledge a delivery as soon as it is queued, run the handlers in workers.
//!
//! Vobiz asks for a 200 within a few seconds and for heavy work to happen asynchronously. In
//! synchronous mode a slow handler makes the delivery time out; Vobiz retries and every retry
//! meets the claim still in flight (409). In queue mode the service behind
//! [`VobizWebhookLayer`](crate::VobizWebhookLayer) only *enqueues*: it takes the dedup claim over
//! (through the [`ClaimHandle`](crate::ClaimHandle) seam), queues the verified event with its
//! exact bytes and answers **200**. Workers rebuild the request (same body bytes, the
//! `X-Webhook-Event` and `Content-Type` headers, a [`VerifiedEvent`] and a [`QueueAttempt`] in
//! the extensions), so the very same handlers run unchanged: a [`VobizRouter`](crate::VobizRouter)
//! with its state bound, an axum handler with `handler.with_state(state)`, any tower service.
//!
//! ```
//! use std::time::Duration;
//! use axum::{handler::Handler, routing::post_service, Router};
//! use vobiz_webhooks::queue::{Backoff, MemoryQueue};
//! use vobiz_webhooks::{VobizEvent, VobizWebhookLayer};
//!
//! async fn on_event(event: VobizEvent) { /* slow work is fine here */ }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Any handler or tower service: an axum handler with its state, a `VobizRouter`, ...
//! let handlers = on_event.with_state(());
//! let queue = MemoryQueue::builder()
//!     .capacity(1024)
//!     .workers(4)
//!     .max_attempts(5)
//!     .backoff(Backoff::exponential(Duration::from_millis(200), Duration::from_secs(30)))
//!     .start(handlers);
//!
//! // The lease must cover the wait in the queue plus every attempt (see below).
//! let layer = VobizWebhookLayer::new("your-shared-secret")
//!     .lease(Duration::from_secs(15 * 60));
//! let app: Router = Router::new()
//!     .route("/webhooks/vobiz", post_service(queue.service()).layer(layer));
//! // … serve `app`; on shutdown:
//! let report = queue.shutdown(Duration::from_secs(10)).await;
//! assert!(report.released().is_empty());
//! # Ok(()) }
//! ```
//!
//! # Backends
//!
//! | backend | feature | survives a crash | shared by replicas |
//! |---|---|---|---|
//! | [`MemoryQueue`] | `queue` | **no**: what was acknowledged and not yet handled is lost | no |
//! | `RedisQueue` (Redis Streams) | `queue` + `redis` | yes: entries stay pending, another worker reclaims them | yes |
//!
//! With Redis, web and worker processes can be separate:
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use axum::{handler::Handler, routing::post_service, Router};
//! use vobiz_webhooks::queue::RedisQueue;
//! use vobiz_webhooks::{RedisStore, VobizEvent, VobizWebhookLayer};
//!
//! async fn on_event(event: VobizEvent) { /* slow work */ }
//!
//! let url = "redis://127.0.0.1:6379";
//! let store = RedisStore::new(url).await?.prefix("{vobiz}:dedup:");
//! let queue = RedisQueue::new(url).await?.prefix("{vobiz}:queue:").max_len(100_000);
//!
//! // The web process: verify, claim, queue, answer 200.
//! let layer = VobizWebhookLayer::new("your-shared-secret")
//!     .store(store.clone())
//!     .lease(Duration::from_secs(15 * 60));
//! let app: Router = Router::new()
//!     .route("/webhooks/vobiz", post_service(queue.service()).layer(layer));
//!
//! // A worker process: the same handlers, with retries.
//! let handlers = on_event.with_state(());
//! let workers = queue.workers(store).workers(4).max_attempts(5).start(handlers).await?;
//! # let _ = (app, workers);
//! # Ok(()) }
//! ```
//!
//! `examples/queue_redis.rs` is a complete program (`cargo run --features queue,redis --example
//! queue_redis -- --role both`, or one `--role server` and several `--role worker` processes).
//!
//! - **Backpressure.** The in-process queue is bounded (a permit per unfinished event, waiting,
//!   running or in backoff); when it is full or shutting down, or when Redis fails, the delivery
//!   gets 503 + `Retry-After` and its claim is released, so Vobiz's retry is accepted later.
//! - **Redis Streams.** `XADD` before the 200 (refused with 503 when the stream holds `max_len`
//!   unfinished entries: nothing unprocessed is ever trimmed), a consumer group shared by every
//!   replica, `XACK` + `XDEL` on success, heartbeats while a handler runs and `XAUTOCLAIM` of
//!   entries whose worker died. While Redis is down deliveries get 503; when it comes back empty
//!   (no persistence), workers create their group again and Vobiz's retries are handled once
//!   each. What an empty Redis forgets is the dedup record of events already done, so use
//!   persistence (AOF) where a redelivery after a restart must stay a duplicate.
//! - **Shutdown.** An in-process queue loses what it acknowledged but had not handled when the
//!   process crashes (after a 200 Vobiz does not retry). [`MemoryQueue::shutdown`] stops
//!   accepting, drains until its deadline, then releases what is left and returns and logs each
//!   `event_id` it gave up. Use the Redis backend when that matters.
//!
//! Throughput and acknowledgement latency against synchronous mode are measured in
//! `bench/README.md` ("Queue mode").
//!
//! # The claim's lifetime
//!
//! The layer claims the `event_id` with its [`lease`](crate::VobizWebhookLayer::lease) (60 s by
//! default) *before* the event is queued, and the claim is completed only when a handler
//! succeeded. While the claim is in flight, redeliveries are answered 409 and never queued twice.
//! If the lease ran out while the event still waited, a redelivery (Vobiz only retries when it
//! did not get the 200) would be queued a second time in the in-process queue, and the late
//! completion is refused and logged (the Redis queue adds no second entry while the first is
//! pending: that entry takes the redelivery's claim over). So in queue mode **set the layer's lease to cover the wait in the queue plus every
//! attempt**: [`MemoryQueueBuilder::handling_budget`] computes the attempts part (attempts ×
//! handler timeout + the backoffs); add your worst expected queue wait. The lease only delays a
//! redelivery after a crash, and after a 200 Vobiz does not redeliver anyway, so a long lease
//! costs nothing in the normal case. (The Redis workers additionally re-check the claim when
//! they pick an event up: a done id is acknowledged without running the handler, an expired
//! one is claimed again with a fresh lease, and one held by another run is left for later; and
//! they renew the claim while the handler runs.)
//!
//! # Failures, retries and dead letters
//!
//! A 2xx from the handler completes the claim. Anything else — another status, an error, a
//! panic, running past the handler timeout — is retried after an exponential [`Backoff`], up to
//! `max_attempts` attempts in all. Then the event is *dead-lettered*: kept with its last error
//! (readable and drainable from the queue handle, or a dead-letter stream in Redis) and logged
//! with `tracing::error!`, and its claim is **completed**. Vobiz already got its 200 and will not
//! retry; completing the claim makes a stray redelivery a duplicate instead of another trip
//! through the same failing handler. Replaying a dead letter is an operator's decision.
//!
//! # Metrics
//!
//! Every backend counts what happens in a [`QueueMetrics`] snapshot, and logs each step with
//! `tracing` (target `vobiz_webhooks::queue`).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_core::body::Body;
use axum_core::response::Response;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, StatusCode, Uri};
use http_body_util::BodyExt;
use tower_service::Service;

use crate::headers::X_WEBHOOK_EVENT;
use crate::verified::VerifiedEvent;

mod memory;
#[cfg(feature = "redis")]
mod redis;

pub use memory::{DeadLetter, MemoryEnqueue, MemoryQueue, MemoryQueueBuilder, ShutdownReport};
#[cfg(feature = "redis")]
pub use redis::{
    RedisDeadLetter, RedisEnqueue, RedisQueue, RedisWorkers, RedisWorkersBuilder, WorkerReport,
    DEFAULT_ENQUEUE_TIMEOUT, DEFAULT_GROUP, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_LEN, DEFAULT_PREFIX,
};

pub(crate) use crate::future::BoxError;
use crate::future::{AbortOnDrop, ReadyOrBoxed};
pub(crate) use crate::response::text_response;

/// The default number of attempts before an event is dead-lettered (5).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The default time one handler attempt may take before it counts as failed (60 s).
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(60);

/// The `Retry-After` of a 503 from a full or stopping queue (5 s).
pub const DEFAULT_QUEUE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The default number of concurrent handler runs in a process, for either backend (4).
pub const DEFAULT_WORKERS: usize = 4;

/// The default [`capacity`](MemoryQueueBuilder::capacity) of a [`MemoryQueue`]: 1024
/// unfinished events.
pub const DEFAULT_CAPACITY: usize = 1024;

/// The default [`dead_letter_capacity`](MemoryQueueBuilder::dead_letter_capacity) of a
/// [`MemoryQueue`]: 1024 dead letters kept.
pub const DEFAULT_DEAD_LETTER_CAPACITY: usize = 1024;

/// The longest an event can take from its first attempt to its dead letter: every attempt
/// running into the handler timeout, plus the backoffs between them.
pub(crate) fn handling_budget(
    max_attempts: u32,
    handler_timeout: Duration,
    backoff: &Backoff,
) -> Duration {
    handler_timeout
        .saturating_mul(max_attempts)
        .saturating_add(backoff.total(max_attempts))
}

/// How long to wait before attempt `n + 1` after attempt `n` failed: exponential, capped.
///
/// ```
/// use std::time::Duration;
/// use vobiz_webhooks::queue::Backoff;
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1));
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(2), Duration::from_millis(200));
/// assert_eq!(backoff.delay(3), Duration::from_millis(400));
/// assert_eq!(backoff.delay(10), Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// `initial` after the first failure, doubling after each further one, never above `max`.
    pub const fn exponential(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The same delay after every failure.
    pub const fn constant(delay: Duration) -> Self {
        Self {
            initial: delay,
            max: delay,
        }
    }

    /// The delay after failed attempt number `failed` (1-based).
    pub fn delay(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The sum of the delays between `attempts` attempts.
    pub fn total(&self, attempts: u32) -> Duration {
        (1..attempts).map(|failed| self.delay(failed)).sum()
    }
}

/// The default: 200 ms, doubling, at most 30 s.
impl Default for Backoff {
    fn default() -> Self {
        Self::exponential(Duration::from_millis(200), Duration::from_secs(30))
    }
}

/// Which attempt a worker is making; in the request extensions of every queued run.
///
/// ```
/// use vobiz_webhooks::queue::QueueAttempt;
/// use vobiz_webhooks::VerifiedEvent;
///
/// async fn handle(event: VerifiedEvent, request: axum::extract::Request) {
///     if let Some(attempt) = request.extensions().get::<QueueAttempt>() {
///         tracing::info!(id = event.event_id(), attempt = attempt.number(), "handling");
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueAttempt {
    number: u32,
    max: u32,
}

impl QueueAttempt {
    /// This attempt, counting from 1.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The attempts allowed before the event is dead-lettered.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Whether a failure now dead-letters the event.
    pub fn is_last(&self) -> bool {
        self.number >= self.max
    }
}

/// A snapshot of a queue's counters. Gauges (`queued`, `in_progress`) are current values; the
/// rest count since the queue started.
///
/// ```
/// use axum::handler::Handler;
/// use vobiz_webhooks::queue::MemoryQueue;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let queue = MemoryQueue::builder().start((|| async {}).with_state(()));
/// let metrics = queue.metrics();
/// assert_eq!(metrics.queued, 0);
/// assert_eq!(metrics.succeeded, 0);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueMetrics {
    /// Accepted and waiting: in the queue, or waiting out a retry backoff.
    pub queued: u64,
    /// Being handled right now.
    pub in_progress: u64,
    /// Deliveries accepted (answered 200 and queued).
    pub accepted: u64,
    /// Deliveries refused with 503 because the queue was full or stopping.
    pub rejected: u64,
    /// Events whose handler succeeded.
    pub succeeded: u64,
    /// Failed attempts that were scheduled again.
    pub retried: u64,
    /// Events that failed every attempt and were dead-lettered.
    pub dead_lettered: u64,
    /// Accepted events given up unhandled (shutdown deadline): their claims were released.
    pub released: u64,
    /// Queued events found already done when a worker picked them up (Redis backend).
    pub duplicates: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    queued: AtomicU64,
    in_progress: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    succeeded: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    released: AtomicU64,
    duplicates: AtomicU64,
}

/// Which counter moves.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Counter {
    Queued,
    InProgress,
    Accepted,
    Rejected,
    Succeeded,
    Retried,
    DeadLettered,
    Released,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Duplicates,
}

/// How a counter shows in the crate's metrics (`crate::observe`).
enum Metric {
    Event(&'static str),
    Depth(&'static str),
}

impl Counter {
    fn metric(self) -> Metric {
        match self {
            Self::Queued => Metric::Depth("queued"),
            Self::InProgress => Metric::Depth("in_progress"),
            Self::Accepted => Metric::Event("accepted"),
            Self::Rejected => Metric::Event("rejected"),
            Self::Succeeded => Metric::Event("succeeded"),
            Self::Retried => Metric::Event("retried"),
            Self::DeadLettered => Metric::Event("dead_lettered"),
            Self::Released => Metric::Event("released"),
            Self::Duplicates => Metric::Event("duplicate"),
        }
    }
}

impl Counters {
    fn counter(&self, counter: Counter) -> &AtomicU64 {
        match counter {
            Counter::Queued => &self.queued,
            Counter::InProgress => &self.in_progress,
            Counter::Accepted => &self.accepted,
            Counter::Rejected => &self.rejected,
            Counter::Succeeded => &self.succeeded,
            Counter::Retried => &self.retried,
            Counter::DeadLettered => &self.dead_lettered,
            Counter::Released => &self.released,
            Counter::Duplicates => &self.duplicates,
        }
    }

    pub(crate) fn add(&self, counter: Counter) {
        self.counter(counter).fetch_add(1, Ordering::Relaxed);
        match counter.metric() {
            Metric::Event(event) => crate::observe::queue_event(event),
            Metric::Depth(state) => crate::observe::queue_depth(state, 1.0),
        }
    }

    /// Gauges only; saturates at zero.
    pub(crate) fn sub(&self, counter: Counter) {
        if let Metric::Depth(state) = counter.metric() {
            crate::observe::queue_depth(state, -1.0);
        }
        let _ = self
            .counter(counter)
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
                Some(value.saturating_sub(1))
            });
    }

    pub(crate) fn snapshot(&self) -> QueueMetrics {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        QueueMetrics {
            queued: load(&self.queued),
            in_progress: load(&self.in_progress),
            accepted: load(&self.accepted),
            rejected: load(&self.rejected),
            succeeded: load(&self.succeeded),
            retried: load(&self.retried),
            dead_lettered: load(&self.dead_lettered),
            released: load(&self.released),
            duplicates: load(&self.duplicates),
        }
    }
}

/// What a worker needs to rebuild the request the handlers saw in synchronous mode.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    pub(crate) event: VerifiedEvent,
    pub(crate) uri: Uri,
    pub(crate) content_type: Option<HeaderValue>,
}

impl Delivery {
    pub(crate) fn from_request(event: VerifiedEvent, request: &Request<Body>) -> Self {
        Self {
            event,
            uri: request.uri().clone(),
            content_type: request.headers().get(CONTENT_TYPE).cloned(),
        }
    }

    /// A `POST` with the exact verified bytes, `X-Webhook-Event`, `Content-Type`, and the
    /// [`VerifiedEvent`] and [`QueueAttempt`] in the extensions.
    pub(crate) fn request(&self, attempt: QueueAttempt) -> Request<Body> {
        let mut request = Request::new(Body::from(self.event.body().clone()));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        let content_type = self
            .content_type
            .clone()
            .unwrap_or_else(|| HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_TYPE, content_type);
        if let Ok(value) = HeaderValue::from_str(self.event.event_type().as_str()) {
            headers.insert(X_WEBHOOK_EVENT, value);
        }
        request.extensions_mut().insert(self.event.clone());
        request.extensions_mut().insert(attempt);
        request
    }
}

/// The result of one handler attempt: `Err` carries the error kept with a dead letter.
pub(crate) type AttemptResult = Result<(), String>;

/// Runs one attempt in its own task, so a panic is an error and not a dead worker, bounded by
/// `timeout`: 2xx is success; another status (with the start of its body), an error, a panic
/// or the timeout is the failure's text.
pub(crate) async fn run_attempt<H>(
    mut handler: H,
    request: Request<Body>,
    timeout: Duration,
) -> AttemptResult
where
    H: Service<Request<Body>, Response = Response> + Send + 'static,
    H::Error: Into<BoxError>,
    H::Future: Send + 'static,
{
    let task = tokio::spawn(async move {
        std::future::poll_fn(|cx| handler.poll_ready(cx))
            .await
            .map_err(|error| format!("handler not ready: {}", error.into()))?;
        let response = handler
            .call(request)
            .await
            .map_err(|error| format!("handler error: {}", error.into()))?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(describe_failure(response).await)
    });
    // Aborted when the waiting side goes away (shutdown, timeout).
    let mut task = AbortOnDrop(task);
    match tokio::time::timeout(timeout, &mut task.0).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) if join.is_panic() => Err("handler panicked".to_owned()),
        Ok(Err(_)) => Err("handler task cancelled".to_owned()),
        Err(_) => Err(format!("handler timed out after {timeout:?}")),
    }
}

/// The most of a failure's body kept in its error text.
const ERROR_BODY_LIMIT: usize = 512;

async fn describe_failure(response: Response) -> String {
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let mut text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_LIMIT)]).into_owned();
    text.truncate(text.trim_end().len());
    if text.is_empty() {
        format!("handler answered {status}")
    } else {
        format!("handler answered {status}: {text}")
    }
}

/// The answer of an enqueue service mounted without the layer in front.
pub(crate) fn missing_layer() -> Response {
    tracing::error!("{}", crate::extract::MissingVobizLayer);
    text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "no verified Vobiz event on this request: mount the queue behind VobizWebhookLayer",
        None,
    )
}

/// The future of the enqueue services: already resolved or boxed.
pub struct EnqueueFuture {
    inner: ReadyOrBoxed<Response>,
}

impl EnqueueFuture {
    pub(crate) fn ready(response: Response) -> Self {
        Self {
            inner: ReadyOrBoxed::ready(response),
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn boxed(future: impl Future<Output = Response> + Send + 'static) -> Self {
        Self {
            inner: ReadyOrBoxed::boxed(future),
        }
    }
}

impl Future for EnqueueFuture {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx).map(Ok)
    }
}

impl fmt::Debug for EnqueueFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnqueueFuture").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let backoff = Backoff::exponential(Duration::from_millis(10), Duration::from_millis(50));
        let delays: Vec<_> = (1..=5).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 50, 50]);
        assert_eq!(backoff.total(4), Duration::from_millis(70));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_millis(50));
        let huge = Backoff::exponential(Duration::MAX, Duration::MAX);
        assert_eq!(huge.delay(40), Duration::MAX);
    }
}
