//! The web side: queue each verified delivery, then answer 200 (503 when full or stopping).

use std::convert::Infallible;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::body::Body;
use axum_core::response::Response;
use http::{Request, StatusCode};
use tower_service::Service;

use super::{Job, MemoryQueue, Shared};
use crate::claim::ClaimHandle;
use crate::queue::{missing_layer, text_response, Counter, Delivery, EnqueueFuture};
use crate::response::retry_after_secs;
use crate::verified::VerifiedEvent;

impl MemoryQueue {
    /// The service to mount behind the layer: it queues each verified delivery and answers 200.
    pub fn service(&self) -> MemoryEnqueue {
        MemoryEnqueue {
            shared: Arc::clone(&self.shared),
        }
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
