//! [`MetaPost`]: a Meta webhook POST, signed with `X-Hub-Signature-256`, for testing handlers
//! behind [`MetaWebhookLayer`](crate::meta::MetaWebhookLayer) (features `testing` and `meta`).

use axum_core::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use serde_json::{json, Value};

use super::test_event::SignatureHeader;
use super::{Fixture, TestEvent};
use crate::meta::{sign, X_HUB_SIGNATURE_256};

/// The path [`MetaPost::request`] posts to unless [`MetaPost::uri`] says otherwise.
pub const DEFAULT_META_URI: &str = "/webhooks/meta";

/// A notification as Meta POSTs it: the body, signed with your app secret.
///
/// Build it from the kit's Vobiz events (their payloads' entries batched into one notification:
/// [`from_events`](Self::from_events), [`fixture`](Self::fixture)) or from your own bytes
/// ([`new`](Self::new), sent byte for byte); break it on purpose with
/// [`bad_signature`](Self::bad_signature) and its siblings. [`request`](Self::request) can be
/// called again: that is Meta's retry, the same bytes.
///
/// ```
/// use axum::{http::StatusCode, routing::post, Router};
/// use tower::ServiceExt; // oneshot
/// use vobiz_webhooks::meta::MetaWebhookLayer;
/// use vobiz_webhooks::testing::{MetaPost, TestEvent};
/// use vobiz_webhooks::VobizEvent;
///
/// async fn handle(event: VobizEvent) -> StatusCode {
///     match event {
///         VobizEvent::MessageInbound(msg) if msg.text() == Some("hi") => StatusCode::OK,
///         VobizEvent::MessageStatus(_) => StatusCode::OK,
///         _ => StatusCode::UNPROCESSABLE_ENTITY,
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let app = Router::new().route(
///     "/webhooks/meta",
///     post(handle).layer(MetaWebhookLayer::new("app-secret")),
/// );
/// // Two items in one POST: a message and a status.
/// let post = MetaPost::from_events([
///     &TestEvent::inbound_text("hi"),
///     &TestEvent::status("wamid.X", "read"),
/// ]);
/// let response = app.clone().oneshot(post.request("app-secret")).await?;
/// assert_eq!(response.status(), StatusCode::OK);
///
/// let forged = app.oneshot(post.request("not-the-secret")).await?;
/// assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MetaPost {
    body: Bytes,
    signature: SignatureHeader,
    uri: String,
    extra_headers: HeaderMap,
}

impl MetaPost {
    /// A POST of exactly `body` (your own notification, raw UTF-8 or `\u`-escaped as you wrote it).
    #[must_use]
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            signature: SignatureHeader::Valid,
            uri: DEFAULT_META_URI.to_owned(),
            extra_headers: HeaderMap::new(),
        }
    }

    /// One notification holding the entries of every event's payload, in order (a bare change
    /// `value` becomes an entry of its own): Meta's batching of the same updates.
    #[must_use]
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a TestEvent>) -> Self {
        let mut entries = Vec::new();
        for event in events {
            let envelope: Value = serde_json::from_slice(&event.body_bytes()).unwrap_or_default();
            let payload = envelope.get("payload").cloned().unwrap_or_default();
            match payload.get("entry").and_then(Value::as_array) {
                Some(list) => entries.extend(list.iter().cloned()),
                None => {
                    let field = if event.event_type().starts_with("call.") {
                        "calls"
                    } else {
                        "messages"
                    };
                    entries.push(json!({
                        "id": "0",
                        "changes": [{ "field": field, "value": payload }],
                    }));
                }
            }
        }
        let body = json!({ "object": "whatsapp_business_account", "entry": entries });
        Self::new(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The bundled fixture's payload as Meta would POST it.
    #[must_use]
    pub fn fixture(fixture: Fixture) -> Self {
        Self::from_events([&TestEvent::fixture(fixture)])
    }

    /// Signs with the last hex digit changed: well formed, not matching (401).
    #[must_use]
    pub fn bad_signature(mut self) -> Self {
        self.signature = SignatureHeader::Broken;
        self
    }

    /// Sends no `X-Hub-Signature-256` (401).
    #[must_use]
    pub fn without_signature(mut self) -> Self {
        self.signature = SignatureHeader::Missing;
        self
    }

    /// Sends `value` as `X-Hub-Signature-256`, e.g. one without `sha256=` (401).
    #[must_use]
    pub fn signature(mut self, value: HeaderValue) -> Self {
        self.signature = SignatureHeader::Custom(value);
        self
    }

    /// Posts to `uri` instead of [`DEFAULT_META_URI`].
    #[must_use]
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = uri.into();
        self
    }

    /// Adds (or replaces) a header.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.extra_headers.insert(name, value);
        self
    }

    /// The exact body bytes.
    pub fn body_bytes(&self) -> Bytes {
        self.body.clone()
    }

    /// The headers Meta would send with the body signed with `app_secret`: `Content-Type`,
    /// `Content-Length`, `X-Hub-Signature-256` (as configured), then any added.
    pub fn headers_for(&self, app_secret: impl AsRef<[u8]>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        if let Some(value) = self.signature.value(|| sign(app_secret, &self.body)) {
            headers.insert(X_HUB_SIGNATURE_256, value);
        }
        for (name, value) in &self.extra_headers {
            headers.insert(name, value.clone());
        }
        headers
    }

    /// The `POST` Meta would send, signed with `app_secret`.
    pub fn request(&self, app_secret: impl AsRef<[u8]>) -> Request<Body> {
        let mut request = Request::new(Body::from(self.body.clone()));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self
            .uri
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static(DEFAULT_META_URI));
        *request.headers_mut() = self.headers_for(app_secret);
        request
    }
}
