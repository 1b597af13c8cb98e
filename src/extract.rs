//! axum extractors for what [`VobizWebhookLayer`](crate::VobizWebhookLayer) verified.

use std::fmt;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::event::{CallEvent, InboundEvent, StatusEvent, VobizEvent};
use crate::verified::VerifiedEvent;

/// The extractor ran on a route without [`VobizWebhookLayer`](crate::VobizWebhookLayer).
///
/// Answers 500: it is a wiring mistake in the app, not a fault of the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MissingVobizLayer;

impl fmt::Display for MissingVobizLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "no verified Vobiz event on this request: apply \
             `.layer(VobizWebhookLayer::new(secret))` to this route",
        )
    }
}

impl std::error::Error for MissingVobizLayer {}

impl IntoResponse for MissingVobizLayer {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

fn verified(parts: &Parts) -> Result<&VerifiedEvent, MissingVobizLayer> {
    parts
        .extensions
        .get::<VerifiedEvent>()
        .ok_or(MissingVobizLayer)
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedEvent {
    type Rejection = MissingVobizLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        verified(parts).cloned()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VobizEvent {
    type Rejection = MissingVobizLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Parsed once per request, however many extractors ask.
        verified(parts).map(|event| event.event().clone())
    }
}

/// A narrow extractor ([`InboundEvent`], [`StatusEvent`], [`CallEvent`]) ran for an event of
/// another kind.
///
/// Answers 500: the handler is registered for the wrong event type, a wiring mistake in the app.
/// Take [`VobizEvent`] instead to accept every kind.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKindRejection {
    /// No verified event on the request: the layer is missing.
    MissingLayer(MissingVobizLayer),
    /// The verified event is of another kind than the extractor asked for.
    WrongKind {
        /// The extractor, e.g. `InboundEvent`.
        expected: &'static str,
        /// The delivery's `event_type`.
        actual: String,
    },
}

impl fmt::Display for EventKindRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingLayer(missing) => missing.fmt(f),
            Self::WrongKind { expected, actual } => write!(
                f,
                "the `{expected}` extractor cannot take a `{actual}` event: register this \
                 handler for that event type only, or take `VobizEvent`"
            ),
        }
    }
}

impl std::error::Error for EventKindRejection {}

impl IntoResponse for EventKindRejection {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// Extracts one kind of event, cloned from the cached parse.
fn narrow<T: Clone>(
    parts: &Parts,
    expected: &'static str,
    pick: impl FnOnce(&VobizEvent) -> Option<&T>,
) -> Result<T, EventKindRejection> {
    let verified = verified(parts).map_err(EventKindRejection::MissingLayer)?;
    pick(verified.event())
        .cloned()
        .ok_or_else(|| EventKindRejection::WrongKind {
            expected,
            actual: verified.event_type().as_str().to_owned(),
        })
}

/// A `message.inbound` handler can take the inbound event directly.
impl<S: Send + Sync> FromRequestParts<S> for InboundEvent {
    type Rejection = EventKindRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        narrow(parts, "InboundEvent", VobizEvent::as_inbound)
    }
}

/// A `message.status` handler can take the status event directly.
impl<S: Send + Sync> FromRequestParts<S> for StatusEvent {
    type Rejection = EventKindRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        narrow(parts, "StatusEvent", VobizEvent::as_status)
    }
}

/// A `call.*` handler can take the call event directly.
impl<S: Send + Sync> FromRequestParts<S> for CallEvent {
    type Rejection = EventKindRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        narrow(parts, "CallEvent", VobizEvent::as_call)
    }
}
