//! Why the Meta layer or the handshake refused a request, and what they answer.

use std::fmt;
use std::sync::Arc;

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;

use crate::rejection::Rejection;
use crate::response::text_response;

/// A Meta POST the [`MetaWebhookLayer`](super::MetaWebhookLayer) refused as a whole, with its
/// fixed status and a short reason. The handlers ran for none of its items (or, for
/// [`Delivery`](Self::Delivery) answers about claims, for none that was not done already).
///
/// A clone travels in the response extensions, as [`Rejection`] does on the Vobiz leg.
///
/// ```
/// use vobiz_webhooks::meta::MetaRejection;
///
/// let response = MetaRejection::MissingSignature.into_response_default();
/// assert_eq!(response.status(), 401);
/// assert_eq!(MetaRejection::MissingSignature.reason(), "missing_signature");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum MetaRejection {
    /// No `X-Hub-Signature-256` header (401).
    MissingSignature,
    /// `X-Hub-Signature-256` is not `sha256=` and 64 hex digits, or appears twice (401).
    MalformedSignature,
    /// The app secret does not sign this body with this signature (401).
    SignatureMismatch,
    /// The signed body is not a JSON object (not UTF-8, not JSON, or another JSON value) (400).
    InvalidNotification(Arc<serde_json::Error>),
    /// A refusal the Vobiz leg shares: too large (413), too slow (408), unreadable (400), the
    /// unverified-body budget (503), an item in flight (409), the store down or a handler past
    /// its lease (503). See [`Rejection`].
    Delivery(Rejection),
}

impl MetaRejection {
    /// A short stable name of the cause, for logs and metric labels: `missing_signature`,
    /// `malformed_signature`, `signature_mismatch`, `bad_notification`, or the shared
    /// [`Rejection::reason`].
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::MalformedSignature => "malformed_signature",
            Self::SignatureMismatch => "signature_mismatch",
            Self::InvalidNotification(_) => "bad_notification",
            Self::Delivery(rejection) => rejection.reason(),
        }
    }

    /// The HTTP status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingSignature | Self::MalformedSignature | Self::SignatureMismatch => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidNotification(_) => StatusCode::BAD_REQUEST,
            Self::Delivery(rejection) => rejection.status(),
        }
    }

    /// The short text the default response carries. Never contains the secret or the body.
    pub fn body_text(&self) -> String {
        self.to_string()
    }

    /// Seconds a sender should wait before retrying, for rejections that are temporary (Meta
    /// retries on its own schedule whatever this says).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Delivery(rejection) => rejection.retry_after(),
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

impl From<Rejection> for MetaRejection {
    fn from(rejection: Rejection) -> Self {
        Self::Delivery(rejection)
    }
}

impl fmt::Display for MetaRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingSignature => f.write_str("missing X-Hub-Signature-256 header"),
            Self::MalformedSignature => {
                f.write_str("X-Hub-Signature-256 must be sha256= and 64 hex digits")
            }
            Self::SignatureMismatch => f.write_str("X-Hub-Signature-256 does not match the body"),
            Self::InvalidNotification(_) => f.write_str("body is not a JSON object"),
            Self::Delivery(rejection) => rejection.fmt(f),
        }
    }
}

impl std::error::Error for MetaRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidNotification(error) => Some(error.as_ref()),
            Self::Delivery(rejection) => Some(rejection),
            _ => None,
        }
    }
}

impl IntoResponse for MetaRejection {
    fn into_response(self) -> Response {
        self.into_response_default()
    }
}

/// A verification handshake [`MetaHandshake`](super::MetaHandshake) refused.
///
/// ```
/// use vobiz_webhooks::meta::HandshakeRejection;
///
/// assert_eq!(HandshakeRejection::WrongToken.status(), 403);
/// assert_eq!(HandshakeRejection::MissingChallenge.status(), 400);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeRejection {
    /// `hub.mode` is missing or not `subscribe` (403).
    WrongMode,
    /// `hub.verify_token` is missing or not the configured token (403).
    WrongToken,
    /// No `hub.challenge` to echo (400).
    MissingChallenge,
}

impl HandshakeRejection {
    /// A short stable name of the cause: `wrong_mode`, `wrong_token`, `missing_challenge`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::WrongMode => "wrong_mode",
            Self::WrongToken => "wrong_token",
            Self::MissingChallenge => "missing_challenge",
        }
    }

    /// The HTTP status this rejection answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::WrongMode | Self::WrongToken => StatusCode::FORBIDDEN,
            Self::MissingChallenge => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for HandshakeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WrongMode => "hub.mode must be subscribe",
            Self::WrongToken => "hub.verify_token does not match",
            Self::MissingChallenge => "hub.challenge is missing",
        })
    }
}

impl std::error::Error for HandshakeRejection {}

impl IntoResponse for HandshakeRejection {
    fn into_response(self) -> Response {
        let mut response = text_response(self.status(), self.to_string(), None);
        response.extensions_mut().insert(self);
        response
    }
}
