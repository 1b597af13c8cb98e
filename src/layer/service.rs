//! The service: a delivery's way through, check headers → buffer → verify → claim → call →
//! settle.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::body::Body;
use axum_core::response::Response;
use bytes::Bytes;
use http::Request;
use time::OffsetDateTime;
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use super::budget::Reservation;
use super::content::{claim_content, ContentClaim};
use super::future::ResponseFuture;
use super::verify::{check_headers, verify};
use super::{Config, VobizWebhookLayer};
use crate::claim::{within_lease, Claimed, Dedup, LeaseExpired};
use crate::dedup::{DedupStore, EventKey, MemoryStore};
use crate::future::BoxError;
use crate::headers::X_VOBIZ_DUPLICATE;
use crate::observe::{self, Outcome};
use crate::rejection::Rejection;
use crate::response::{retry_after_secs, text_response};
use crate::signature::{EmptySecret, TAG_LEN};
use crate::verified::VerifiedEvent;

/// The service [`VobizWebhookLayer`] wraps around a handler. See the layer for what it does.
pub struct VobizWebhook<S, D = MemoryStore> {
    inner: S,
    config: Arc<Config>,
    dedup: Dedup<D>,
}

impl<S> VobizWebhook<S, MemoryStore> {
    /// Wraps `inner` in a service that verifies deliveries signed with `secret` and deduplicates
    /// them in process: `VobizWebhookLayer::new(secret).layer(inner)`. Configure the layer
    /// instead for anything else.
    ///
    /// # Panics
    ///
    /// When `secret` is empty. Use [`VobizWebhookLayer::try_new`] for a secret read at run time
    /// that may be missing.
    #[must_use]
    #[track_caller]
    pub fn new(inner: S, secret: impl AsRef<[u8]>) -> Self {
        match VobizWebhookLayer::try_new(secret) {
            Ok(layer) => layer.layer(inner),
            Err(EmptySecret) => panic!(
                "VobizWebhook::new: the webhook secret is empty; \
                 use VobizWebhookLayer::try_new to handle that as an error"
            ),
        }
    }
}

// Not generic over the inner service, so `VobizWebhook::layer(secret)` needs no turbofish.
impl VobizWebhook<()> {
    /// The layer that wraps services in `VobizWebhook`: [`VobizWebhookLayer::new`].
    ///
    /// # Panics
    ///
    /// When `secret` is empty. Use [`VobizWebhookLayer::try_new`] for a secret read at run time
    /// that may be missing.
    #[must_use]
    #[track_caller]
    pub fn layer(secret: impl AsRef<[u8]>) -> VobizWebhookLayer {
        VobizWebhookLayer::new(secret)
    }
}

impl<S, D> VobizWebhook<S, D> {
    pub(super) fn from_parts(inner: S, config: Arc<Config>, dedup: Dedup<D>) -> Self {
        Self {
            inner,
            config,
            dedup,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, without this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, D> Clone for VobizWebhook<S, D> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            dedup: self.dedup.clone(),
        }
    }
}

impl<S: fmt::Debug, D> fmt::Debug for VobizWebhook<S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VobizWebhook")
            .field("inner", &self.inner)
            .field("secrets", &self.config.intake.secrets.len())
            .finish()
    }
}

impl<S, D, ReqBody, ResBody> Service<Request<ReqBody>> for VobizWebhook<S, D>
where
    D: DedupStore,
    S: Service<Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; the one we polled is. Keep the ready one for this call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        // One span per delivery; the refusals below are recorded in it.
        let span = observe::delivery_span();
        let started = (!span.is_disabled()).then(std::time::Instant::now);
        let refuse = |rejection| {
            let _entered = span.enter();
            let response = reject(&config, rejection);
            finish(&span, started, &response);
            ResponseFuture::ready(response)
        };

        // Step 1: refuse cheaply, before a byte of the body is read.
        let checked = match check_headers(request.headers(), config.intake.body_limit) {
            Ok(checked) => checked,
            Err(rejection) => return refuse(rejection),
        };
        let reservation = match config.intake.reserve(request.body(), checked.declared) {
            Ok(reservation) => reservation,
            Err(rejection) => return refuse(rejection),
        };
        let dedup = self.dedup.clone();
        let handling = handle(inner, config, dedup, request, checked.tag, reservation);
        if span.is_disabled() {
            // No subscriber wants the span: no wrapper to poll through on every wake-up.
            return ResponseFuture::new(handling);
        }
        ResponseFuture::new(async move {
            let result = handling.instrument(span.clone()).await;
            if let Ok(response) = &result {
                finish(&span, started, response);
            }
            result
        })
    }
}

/// Records the answer and, when the span is enabled, the time taken on the delivery's span.
fn finish(span: &tracing::Span, started: Option<std::time::Instant>, response: &Response) {
    if let Some(started) = started {
        span.record("status", response.status().as_u16());
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        span.record("latency_us", micros);
    }
}

/// Steps 2–8, once the headers passed.
async fn handle<S, D, ReqBody, ResBody>(
    mut inner: S,
    config: Arc<Config>,
    dedup: Dedup<D>,
    request: Request<ReqBody>,
    tag: [u8; TAG_LEN],
    reservation: Option<Reservation>,
) -> Result<Response, S::Error>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>>,
    D: DedupStore,
    ReqBody: http_body::Body,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    // Step 2: buffer within the limit.
    let body = match config.intake.read(body).await {
        Ok(body) => body,
        Err(rejection) => return Ok(reject(&config, rejection)),
    };
    // Steps 3–5: verify, read the envelope, check freshness.
    let verified = verify(
        &config.intake.secrets.load(),
        config.freshness,
        &parts.headers,
        &tag,
        body,
        OffsetDateTime::now_utc,
    );
    // Checked, verified or not: the body no longer counts against the budget.
    drop(reservation);
    let verified = match verified {
        Ok(verified) => {
            let span = tracing::Span::current();
            span.record("event_id", verified.event_id());
            span.record("event_type", verified.event_type().as_str());
            verified
        }
        Err(rejection) => return Ok(reject(&config, rejection)),
    };

    // Step 6: claim the event id.
    let key = EventKey::from_event_id(verified.event_id());
    // Kept for the content keys only when they are wanted: no reference counting otherwise.
    let content_dedup = config.dedup_on_content.then(|| dedup.clone());
    let now = tokio::time::Instant::now();
    let claimed = dedup.claim(key, config.intake.claim, now).await;
    let claimed_at = config.metrics.store_time(observe::Started::at(now));
    let lease = match claimed {
        Ok(Claimed::Fresh(lease)) => Some(lease),
        Ok(Claimed::Done) => return Ok(duplicate(&config, &verified)),
        Ok(Claimed::InFlight) => {
            let retry_after = retry_after_secs(config.intake.retry_after);
            return Ok(reject(&config, Rejection::InFlight { retry_after }));
        }
        Err(error) if config.fail_open => {
            tracing::warn!(
                event_id = verified.event_id(),
                %error,
                "dedup store failed; running the handler without a claim (fail-open)"
            );
            None
        }
        Err(error) => {
            let retry_after = retry_after_secs(config.intake.retry_after);
            let rejection = Rejection::StoreUnavailable {
                error: Arc::new(error),
                retry_after,
            };
            return Ok(reject(&config, rejection));
        }
    };

    // Step 6b (opt-in): the payload's content keys, so one update under two ids runs once.
    let mut content = Vec::new();
    if let (Some(dedup), Some(_)) = (&content_dedup, &lease) {
        match claim_content(dedup, config.intake.claim, verified.payload_json()).await {
            Ok(ContentClaim::Run(leases)) => content = leases,
            Ok(ContentClaim::Done) => {
                // Done under another id: this id is done too.
                if let Some(lease) = lease {
                    lease.settle(true).await;
                }
                return Ok(duplicate(&config, &verified));
            }
            // The claims dropped here (this id's and any content key's) release themselves.
            Ok(ContentClaim::InFlight) => {
                let retry_after = retry_after_secs(config.intake.retry_after);
                return Ok(reject(&config, Rejection::InFlight { retry_after }));
            }
            Err(error) if config.fail_open => {
                tracing::warn!(
                    event_id = verified.event_id(),
                    %error,
                    "dedup store failed on content keys; running the handler (fail-open)"
                );
            }
            Err(error) => {
                let retry_after = retry_after_secs(config.intake.retry_after);
                let rejection = Rejection::StoreUnavailable {
                    error: Arc::new(error),
                    retry_after,
                };
                return Ok(reject(&config, rejection));
            }
        }
    }

    // Step 7: the same bytes as the body, the verified record (and the claim) in the extensions.
    let body = Body::from(verified.body().clone());
    parts.extensions.insert(verified);
    if let Some(lease) = &lease {
        parts.extensions.insert(lease.handle().clone());
    }
    // An error returns here: the claim, dropped unsettled, releases itself (as on a panic or
    // when the response future is dropped).
    // The handler's time starts where the claim's ended, unless content keys were claimed since.
    let started = if content_dedup.is_none() {
        claimed_at
    } else {
        observe::Started::now()
    };
    let call = std::pin::pin!(inner.call(Request::from_parts(parts, body)));
    // A handler must not outlive its claim: past the lease it is cancelled.
    let response = match within_lease(lease.as_ref(), call).await {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => {
            config.metrics.handler_time(started);
            observe::delivery(&config.metrics, Outcome::Failed);
            return Err(error);
        }
        Err(LeaseExpired) => {
            config.metrics.handler_time(started);
            if let Some(lease) = lease {
                lease.expire();
            }
            let rejection = Rejection::LeaseExpired {
                lease: config.intake.claim.lease,
                retry_after: retry_after_secs(config.intake.retry_after),
            };
            return Ok(reject(&config, rejection));
        }
    };

    config.metrics.handler_time(started);
    let success = response.status().is_success();
    observe::delivery(
        &config.metrics,
        if success {
            Outcome::Handled
        } else {
            Outcome::Failed
        },
    );

    // Step 8: settle the claim, unless the inner service took it over: done on 2xx, released
    // otherwise so the retry runs the handler.
    if let Some(lease) = lease {
        lease.settle(success).await;
    }
    for lease in content {
        lease.settle(success).await;
    }
    Ok(response.map(Body::new))
}

/// A completed id delivered again: acknowledged so the sender stops, handler not called.
fn duplicate(config: &Config, event: &VerifiedEvent) -> Response {
    observe::delivery(&config.metrics, Outcome::Duplicate);
    tracing::debug!(
        event_id = event.event_id(),
        "duplicate delivery acknowledged"
    );
    let mut response = text_response(
        http::StatusCode::OK,
        "duplicate: event already processed",
        None,
    );
    response.headers_mut().insert(
        X_VOBIZ_DUPLICATE,
        http::HeaderValue::from_static("completed"),
    );
    response
}

fn reject(config: &Config, rejection: Rejection) -> Response {
    observe::delivery(
        &config.metrics,
        match &rejection {
            Rejection::InFlight { .. } => Outcome::InFlight,
            Rejection::StoreUnavailable { .. }
            | Rejection::LeaseExpired { .. }
            | Rejection::BodyBudgetExhausted { .. } => Outcome::Unavailable(rejection.reason()),
            _ => Outcome::Rejected(rejection.reason()),
        },
    );
    tracing::debug!(
        status = rejection.status().as_u16(),
        reason = %rejection,
        "vobiz webhook rejected"
    );
    match &config.on_rejection {
        Some(handler) => {
            let mut response = handler(&rejection);
            response.extensions_mut().insert(rejection);
            response
        }
        None => rejection.into_response_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_wraps_and_hands_back_its_inner_service() {
        let mut service = VobizWebhook::new(7_u8, "secret");
        assert_eq!(*service.get_ref(), 7);
        *service.get_mut() = 8;
        assert_eq!(service.into_inner(), 8);
        assert_eq!(VobizWebhook::layer("secret").layer(9_u8).into_inner(), 9);
    }

    #[test]
    #[should_panic(expected = "VobizWebhookLayer::try_new")]
    fn an_empty_secret_panics_in_new_naming_try_new() {
        let _ = VobizWebhook::new((), "");
    }
}
