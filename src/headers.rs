//! Header names of the Vobiz webhook protocol.

use http::HeaderName;

/// `X-Webhook-Signature`: lowercase hex HMAC-SHA256 of the raw body, keyed by the secret.
pub const X_WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("x-webhook-signature");

/// `X-Webhook-Event`: the event type, a copy of the body's `event_type`. Not signed.
pub const X_WEBHOOK_EVENT: HeaderName = HeaderName::from_static("x-webhook-event");

/// `X-Vobiz-Duplicate: completed` marks the 200 the layer answers for an `event_id` it already
/// handled (the handler did not run again).
pub const X_VOBIZ_DUPLICATE: HeaderName = HeaderName::from_static("x-vobiz-duplicate");
