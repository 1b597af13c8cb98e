//! The service: a Meta POST's way through, check the header → buffer → verify → split → per
//! item: claim → call → settle → answer for the whole POST.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::body::Body;
use axum_core::response::Response;
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Request, StatusCode};
use time::OffsetDateTime;
use tower_service::Service;

use super::rejection::MetaRejection;
use super::verify::{check_headers, verify};
use super::{Config, ReplayWindow};
use crate::claim::{within_lease, Claimed, Dedup, LeaseExpired};
use crate::content::{json_string, Item};
use crate::dedup::{DedupStore, EventKey, MemoryStore};
use crate::future::{BoxError, ReadyOrBoxed};
use crate::layer::budget::Reservation;
use crate::observe::{self, ItemOutcome};
use crate::rejection::Rejection;
use crate::response::{retry_after_secs, text_response};
use crate::signature::TAG_LEN;
use crate::verified::VerifiedEvent;

/// The service [`MetaWebhookLayer`](super::MetaWebhookLayer) wraps around a handler.
pub struct MetaWebhook<S, D = MemoryStore> {
    inner: S,
    config: Arc<Config>,
    dedup: Dedup<D>,
}

impl<S, D> MetaWebhook<S, D> {
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

    /// The inner service, without this one.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, D> Clone for MetaWebhook<S, D> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            dedup: self.dedup.clone(),
        }
    }
}

impl<S: fmt::Debug, D> fmt::Debug for MetaWebhook<S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaWebhook")
            .field("inner", &self.inner)
            .field("secrets", &self.config.intake.secrets.len())
            .finish()
    }
}

/// The future [`MetaWebhook`] returns.
pub struct MetaResponseFuture<E> {
    inner: ReadyOrBoxed<Result<Response, E>>,
}

impl<E> Future for MetaResponseFuture<E> {
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

impl<E> fmt::Debug for MetaResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaResponseFuture").finish_non_exhaustive()
    }
}

impl<S, D, ReqBody, ResBody> Service<Request<ReqBody>> for MetaWebhook<S, D>
where
    D: DedupStore,
    S: Service<Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = MetaResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let config = Arc::clone(&self.config);
        let refuse = |rejection: MetaRejection| MetaResponseFuture {
            inner: ReadyOrBoxed::ready(Ok(reject(&config, rejection))),
        };
        // Refused from the headers alone, before a byte of the body is read.
        let checked = match check_headers(request.headers(), config.intake.body_limit) {
            Ok(checked) => checked,
            Err(rejection) => return refuse(rejection),
        };
        let reservation = match config.intake.reserve(request.body(), checked.declared) {
            Ok(reservation) => reservation,
            Err(rejection) => return refuse(rejection.into()),
        };
        // Each item calls a clone readied for it; the one readied for this call is not needed.
        let inner = self.inner.clone();
        let dedup = self.dedup.clone();
        MetaResponseFuture {
            inner: ReadyOrBoxed::boxed(handle(
                inner,
                config,
                dedup,
                request,
                checked.tag,
                reservation,
            )),
        }
    }
}

/// How the items of one POST went, for its answer.
struct Tally<E> {
    /// The first item whose inner service failed: its response or error.
    failed: Option<Result<Response, E>>,
    /// A refusal that is nobody's fault: store down, lease outlived.
    unavailable: Option<Rejection>,
    /// An item is being handled by another POST.
    in_flight: bool,
}

/// Buffer, verify, split, then each item in turn.
async fn handle<S, D, ReqBody, ResBody>(
    inner: S,
    config: Arc<Config>,
    dedup: Dedup<D>,
    request: Request<ReqBody>,
    tag: [u8; TAG_LEN],
    reservation: Option<Reservation>,
) -> Result<Response, S::Error>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>> + Clone,
    D: DedupStore,
    ReqBody: http_body::Body,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let (parts, body) = request.into_parts();
    let body = match config.intake.read(body).await {
        Ok(body) => body,
        Err(rejection) => return Ok(reject(&config, rejection.into())),
    };
    let items = verify(&config.intake.secrets.load(), &tag, &body);
    // Checked, verified or not: the body no longer counts against the budget.
    drop(reservation);
    let items = match items {
        Ok(items) => items,
        Err(rejection) => return Ok(reject(&config, rejection)),
    };
    drop(body);
    tracing::debug!(items = items.len(), "meta notification verified");

    let now = config.replay.map(|_| OffsetDateTime::now_utc());
    let mut tally = Tally {
        failed: None,
        unavailable: None,
        in_flight: false,
    };
    for item in items {
        if let (Some(window), Some(now)) = (config.replay, now) {
            if !within(window, &item, now) {
                tracing::info!(
                    event_id = item.key,
                    event_type = item.event_type.as_str(),
                    timestamp = item.timestamp,
                    "meta item outside the replay window: skipped"
                );
                config.metrics.item(ItemOutcome::Skipped);
                continue;
            }
        }
        run_item(inner.clone(), &config, &dedup, &parts, item, &mut tally).await;
    }

    match tally {
        Tally {
            failed: Some(failed),
            ..
        } => {
            config.metrics.post("failed", None);
            failed
        }
        Tally {
            unavailable: Some(rejection),
            ..
        } => Ok(reject(&config, rejection.into())),
        Tally {
            in_flight: true, ..
        } => {
            let retry_after = retry_after_secs(config.intake.retry_after);
            Ok(reject(&config, Rejection::InFlight { retry_after }.into()))
        }
        _ => {
            config.metrics.post("handled", None);
            Ok(text_response(StatusCode::OK, Bytes::new(), None))
        }
    }
}

/// Whether an item's timestamp is within the replay window; items without one are.
fn within(window: ReplayWindow, item: &Item, now: OffsetDateTime) -> bool {
    let Some(at) = item
        .timestamp
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
    else {
        return true;
    };
    let age = now - at;
    age <= window.max_age && -age <= window.max_skew
}

/// Claims one item, runs the inner service for it when the claim is fresh, settles the claim.
async fn run_item<S, D, ResBody>(
    mut service: S,
    config: &Config,
    dedup: &Dedup<D>,
    parts: &http::request::Parts,
    item: Item,
    tally: &mut Tally<S::Error>,
) where
    S: Service<Request<Body>, Response = http::Response<ResBody>> + Clone,
    D: DedupStore,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let key = EventKey::from_event_id(&item.key);
    let now = tokio::time::Instant::now();
    let claimed = dedup.clone().claim(key, config.intake.claim, now).await;
    config.metrics.store_time(observe::Started::at(now));
    let lease = match claimed {
        Ok(Claimed::Fresh(lease)) => lease,
        Ok(Claimed::Done) => {
            tracing::debug!(event_id = item.key, "meta item already handled");
            config.metrics.item(ItemOutcome::Duplicate);
            return;
        }
        Ok(Claimed::InFlight) => {
            tracing::debug!(event_id = item.key, "meta item in flight elsewhere");
            config.metrics.item(ItemOutcome::InFlight);
            tally.in_flight = true;
            return;
        }
        Err(error) => {
            tracing::warn!(event_id = item.key, %error, "dedup store failed for a meta item");
            config.metrics.item(ItemOutcome::Unavailable);
            tally
                .unavailable
                .get_or_insert(Rejection::StoreUnavailable {
                    error: Arc::new(error),
                    retry_after: retry_after_secs(config.intake.retry_after),
                });
            return;
        }
    };

    let verified = verified(&item);
    let request = item_request(parts, verified, &lease);
    if let Err(error) = std::future::poll_fn(|cx| service.poll_ready(cx)).await {
        config.metrics.item(ItemOutcome::Failed);
        tally.failed.get_or_insert(Err(error));
        return;
    }
    let started = observe::Started::now();
    let call = std::pin::pin!(service.call(request));
    let outcome = within_lease(Some(&lease), call).await;
    config.metrics.handler_time(started);
    match outcome {
        Ok(Ok(response)) => {
            let success = response.status().is_success();
            lease.settle(success).await;
            if success {
                config.metrics.item(ItemOutcome::Handled);
            } else {
                tracing::debug!(
                    event_id = item.key,
                    status = response.status().as_u16(),
                    "meta item's handler failed"
                );
                config.metrics.item(ItemOutcome::Failed);
                tally.failed.get_or_insert(Ok(response.map(Body::new)));
            }
        }
        Ok(Err(error)) => {
            // The claim, dropped unsettled, releases itself.
            drop(lease);
            config.metrics.item(ItemOutcome::Failed);
            tally.failed.get_or_insert(Err(error));
        }
        Err(LeaseExpired) => {
            lease.expire();
            config.metrics.item(ItemOutcome::Unavailable);
            tally.unavailable.get_or_insert(Rejection::LeaseExpired {
                lease: config.intake.claim.lease,
                retry_after: retry_after_secs(config.intake.retry_after),
            });
        }
    }
}

/// The verified record of one item: a Vobiz-shaped envelope around its one-item notification.
fn verified(item: &Item) -> VerifiedEvent {
    let occurred_at = item
        .timestamp
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok());
    let occurred_text = occurred_at
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map(|at| format!(r#","occurred_at":"{at}""#))
        .unwrap_or_default();
    // The record is built from its parts: the body is written around the payload, whose place
    // in it is known, so nothing is parsed a second time.
    let mut body = format!(
        r#"{{"event_id":{},"event_type":{}{occurred_text},"payload":"#,
        json_string(&item.key),
        json_string(item.event_type.as_str()),
    );
    let start = body.len();
    body.push_str(&item.payload);
    let payload = start..body.len();
    body.push('}');
    let envelope = crate::Envelope {
        event_id: crate::event::Str::from(item.key.as_str()),
        event_type: item.event_type.clone(),
        account_id: None,
        occurred_at,
    };
    VerifiedEvent::new(envelope, body.into(), Some(payload))
}

/// The request an item's handler gets: the POST's method, URI, headers and extensions, the
/// item's record and claim, and the record's body.
fn item_request(
    parts: &http::request::Parts,
    verified: VerifiedEvent,
    lease: &crate::claim::Lease,
) -> Request<Body> {
    let body = verified.body().clone();
    let mut request = Request::new(Body::from(body.clone()));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    *request.extensions_mut() = parts.extensions.clone();
    request.extensions_mut().insert(verified);
    request.extensions_mut().insert(lease.handle().clone());
    request
}

fn reject(config: &Config, rejection: MetaRejection) -> Response {
    let outcome = match rejection {
        MetaRejection::Delivery(
            Rejection::InFlight { .. }
            | Rejection::StoreUnavailable { .. }
            | Rejection::LeaseExpired { .. }
            | Rejection::BodyBudgetExhausted { .. },
        ) => "unavailable",
        _ => "rejected",
    };
    config.metrics.post(outcome, Some(rejection.reason()));
    tracing::debug!(
        status = rejection.status().as_u16(),
        reason = %rejection,
        "meta webhook rejected"
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
    fn an_item_s_record_is_what_parsing_its_body_would_give() {
        let item = Item {
            key: "wamid.\"quoted\"".to_owned(),
            event_type: crate::EventType::MessageInbound,
            timestamp: Some(1_711_360_800),
            payload: r#"{"entry":[{"id":"W","changes":[{"value":{"messages":[{"id":"x"}]}}]}]}"#
                .to_owned(),
        };
        let built = verified(&item);
        let parsed = VerifiedEvent::from_trusted_body(built.body().clone()).expect("an envelope");
        assert_eq!(built.envelope(), parsed.envelope());
        assert_eq!(built.payload_json(), parsed.payload_json());
        assert_eq!(built.payload_json(), item.payload.as_bytes());
        assert_eq!(built.event_id(), "wamid.\"quoted\"");

        let undated = Item {
            timestamp: None,
            ..item
        };
        let built = verified(&undated);
        let parsed = VerifiedEvent::from_trusted_body(built.body().clone()).expect("an envelope");
        assert_eq!(built.envelope(), parsed.envelope());
    }
}
