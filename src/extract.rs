//! axum extractors for what [`VobizWebhookLayer`](crate::VobizWebhookLayer) verified.

use std::fmt;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::event::VobizEvent;
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
             `.layer(VobizWebhookLayer::new(secret)?)` to this route",
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
