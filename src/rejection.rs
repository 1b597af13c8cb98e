//! Why the layer refused a delivery, and the response it answers with.

use std::fmt;
use std::sync::Arc;

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;

use crate::response::text_response;

/// A delivery the layer refused, with its fixed status and a short reason.
///
/// The layer answers a rejection itself and never calls the inner service. A clone of the
/// rejection travels in the response extensions, so an outer layer (metrics, logging) can
/// inspect it:
///
/// ```
/// # use vobiz_webhooks::Rejection;
/// # let response = Rejection::MissingSignature.into_response_default();
/// if let Some(rejection) = response.extensions().get::<Rejection>() {
///     assert_eq!(rejection.status(), 401);
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Rejection {
    /// No `X-Webhook-Signature` header (401).
    MissingSignature,
    /// `X-Webhook-Signature` is not exactly 64 hex digits, or appears twice (401).
    MalformedSignature,
    /// No configured secret signs this body with this signature (401).
    SignatureMismatch,
    /// The body is larger than the configured limit (413).
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The body did not arrive within the configured body timeout (408).
    BodyTimeout {
        /// The configured body timeout.
        timeout: std::time::Duration,
    },
    /// The body could not be read (the client went away or sent a broken stream) (400).
    BodyReadFailed(Arc<dyn std::error::Error + Send + Sync>),
    /// The body is not a valid Vobiz envelope (400).
    InvalidEnvelope(Arc<crate::EnvelopeError>),
    /// `X-Webhook-Event` names another type than the signed body's `event_type` (400).
    EventTypeMismatch {
        /// The header's value (lossily decoded).
        header: String,
        /// The body's `event_type`.
        body: String,
    },
    /// The freshness check is on and `occurred_at` is missing or unparseable (400).
    MissingTimestamp,
    /// The freshness check is on and `occurred_at` is older than the allowed age (400).
    Stale,
    /// The freshness check is on and `occurred_at` is further ahead than the allowed skew (400).
    FromTheFuture,
    /// Another delivery of this `event_id` is being handled right now (409 + `Retry-After`).
    ///
    /// Not 200: the first run may still fail, and then this retry must not have been swallowed.
    InFlight {
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
    /// The handler ran longer than the claim's lease and was cancelled, so that a retry that
    /// claims the expired id never runs alongside it (503 + `Retry-After`).
    LeaseExpired {
        /// The lease the handler outlived.
        lease: std::time::Duration,
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
    /// Too many bodies whose signature is not yet checked are being received at once: this one
    /// does not fit in the layer's budget for them (503 + `Retry-After`, body never read).
    ///
    /// See [`VobizWebhookLayer::body_budget`](crate::VobizWebhookLayer::body_budget).
    BodyBudgetExhausted {
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
    /// The dedup store failed or timed out; failing closed (503 + `Retry-After`).
    StoreUnavailable {
        /// What the store said.
        error: Arc<crate::dedup::StoreError>,
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
}

impl Rejection {
    /// A short stable name of the cause, in `snake_case`, for logs and metric labels:
    /// `missing_signature`, `malformed_signature`, `signature_mismatch`, `too_large`,
    /// `body_timeout`, `body_read_failed`, `bad_envelope`, `event_mismatch`, `stale` (the three
    /// freshness refusals), `in_flight`, `store_unavailable`, `lease_expired`, `body_budget`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::MalformedSignature => "malformed_signature",
            Self::SignatureMismatch => "signature_mismatch",
            Self::PayloadTooLarge { .. } => "too_large",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::BodyReadFailed(_) => "body_read_failed",
            Self::InvalidEnvelope(_) => "bad_envelope",
            Self::EventTypeMismatch { .. } => "event_mismatch",
            Self::MissingTimestamp | Self::Stale | Self::FromTheFuture => "stale",
            Self::InFlight { .. } => "in_flight",
            Self::StoreUnavailable { .. } => "store_unavailable",
            Self::LeaseExpired { .. } => "lease_expired",
            Self::BodyBudgetExhausted { .. } => "body_budget",
        }
    }

    /// The HTTP status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingSignature | Self::MalformedSignature | Self::SignatureMismatch => {
                StatusCode::UNAUTHORIZED
            }
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::BodyReadFailed(_)
            | Self::InvalidEnvelope(_)
            | Self::EventTypeMismatch { .. }
            | Self::MissingTimestamp
            | Self::Stale
            | Self::FromTheFuture => StatusCode::BAD_REQUEST,
            Self::InFlight { .. } => StatusCode::CONFLICT,
            Self::StoreUnavailable { .. }
            | Self::LeaseExpired { .. }
            | Self::BodyBudgetExhausted { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The short text the default response carries. Never contains the secret or the body.
    pub fn body_text(&self) -> String {
        self.to_string()
    }

    /// Seconds a sender should wait before retrying, for rejections that are temporary.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::InFlight { retry_after }
            | Self::StoreUnavailable { retry_after, .. }
            | Self::LeaseExpired { retry_after, .. }
            | Self::BodyBudgetExhausted { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// The response the layer sends unless a custom rejection handler is configured: the status,
    /// `text/plain` body, `Retry-After` where it applies, and `self` in the extensions.
    pub fn into_response_default(self) -> Response {
        let mut response = text_response(self.status(), self.body_text(), self.retry_after());
        response.extensions_mut().insert(self);
        response
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingSignature => f.write_str("missing X-Webhook-Signature header"),
            Self::MalformedSignature => {
                f.write_str("X-Webhook-Signature must be exactly 64 hex digits")
            }
            Self::SignatureMismatch => f.write_str("X-Webhook-Signature does not match the body"),
            Self::PayloadTooLarge { limit } => {
                write!(f, "body is larger than the limit of {limit} bytes")
            }
            Self::BodyTimeout { timeout } => write!(
                f,
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
            Self::BodyReadFailed(_) => f.write_str("failed to read the request body"),
            Self::InvalidEnvelope(err) => write!(f, "{err}"),
            Self::EventTypeMismatch { header, body } => write!(
                f,
                "X-Webhook-Event `{header}` does not match the body's event_type `{body}`"
            ),
            Self::MissingTimestamp => {
                f.write_str("occurred_at is missing or not RFC 3339 (freshness check is on)")
            }
            Self::Stale => f.write_str("occurred_at is older than the allowed age"),
            Self::FromTheFuture => f.write_str("occurred_at is too far in the future"),
            Self::InFlight { .. } => {
                f.write_str("this event is being handled by another delivery; retry later")
            }
            Self::StoreUnavailable { .. } => {
                f.write_str("deduplication store unavailable; retry later")
            }
            Self::BodyBudgetExhausted { .. } => {
                f.write_str("too many unverified request bodies at once; retry later")
            }
            Self::LeaseExpired { lease, .. } => write!(
                f,
                "the handler did not finish within its lease of {} ms; retry later",
                lease.as_millis()
            ),
        }
    }
}

impl std::error::Error for Rejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BodyReadFailed(err) => Some(err.as_ref()),
            Self::InvalidEnvelope(err) => Some(err.as_ref()),
            Self::StoreUnavailable { error, .. } => Some(error.as_ref()),
            _ => None,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.into_response_default()
    }
}
