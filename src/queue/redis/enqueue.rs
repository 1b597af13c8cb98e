//! The web side: `XADD` each verified delivery, then answer 200.

use std::convert::Infallible;
use std::fmt;
use std::task::{Context, Poll};

use axum_core::body::Body;
use axum_core::response::Response;
use http::{Request, StatusCode};
use tower_service::Service;

use super::entry::UNCLAIMED_TTL;
use super::scripts::{call, ENQUEUE};
use super::RedisQueue;
use crate::claim::ClaimHandle;
use crate::dedup::redis::token_text;
use crate::dedup::{millis_ceil, EventKey};
use crate::queue::{missing_layer, text_response, Counter, EnqueueFuture};
use crate::response::retry_after_secs;
use crate::verified::VerifiedEvent;

impl RedisQueue {
    /// The service to mount behind the layer: `XADD`s each verified delivery, then answers 200.
    pub fn service(&self) -> RedisEnqueue {
        RedisEnqueue {
            queue: self.clone(),
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
            None => (String::new(), millis_ceil(UNCLAIMED_TTL)),
        };
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|value| value.as_bytes().to_vec())
            .unwrap_or_default();
        let mut connection = self.connection.clone();
        let part = self.keys.partition_of(&key);
        let record = part.record(Some(&key));
        let count = self.keys.partitions.len() as u64;
        let added = tokio::time::timeout(
            self.timeout,
            call(&ENQUEUE, &[&part.stream, &record])
                .arg(self.max_len.div_ceil(count))
                .arg(&token)
                .arg(ttl.max(1))
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
                .invoke_async::<Option<(String, i64)>>(&mut connection),
        )
        .await;
        let refusal = match added {
            Ok(Ok(Some((id, created)))) => {
                // The entry's record carries key and token now: the claim is the workers' to
                // settle. When the event was queued already (an earlier XADD that timed out but
                // landed, or a claim that ran out while its entry waited), that pending entry
                // takes this claim over and no second entry is made.
                if let Some(claim) = claim {
                    let _ = claim.into_parts();
                }
                self.counters.add(Counter::Accepted);
                if created == 1 {
                    tracing::debug!(event_id = event.event_id(), entry = %id, partition = part.index, "queued in Redis");
                } else {
                    tracing::debug!(
                        event_id = event.event_id(),
                        entry = %id,
                        "already queued in Redis: the pending entry took this delivery's claim over"
                    );
                }
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

/// The service [`RedisQueue::service`] returns: `XADD`s each verified delivery.
///
/// | answer | when |
/// |---|---|
/// | 200 `queued` | in the stream (or already there, still pending: no second entry); the claim now belongs to the workers |
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
