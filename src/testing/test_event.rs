//! [`TestEvent`]: a delivery under construction, its edits, and the signed request it becomes.

use std::fmt;

use axum_core::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{new_event_id, Fixture, DEFAULT_ACCOUNT_ID, DEFAULT_URI};
use crate::headers::{X_WEBHOOK_EVENT, X_WEBHOOK_SIGNATURE};
use crate::signature::sign;

/// A Vobiz delivery under construction: envelope, payload, and how to sign and label it.
///
/// Every constructor gives the event a fresh random `event_id` (see [`new_event_id`]), so
/// events never collide in the layer's deduplication; [`event_id`](Self::event_id) sets one.
/// The builder is a value: [`request`](Self::request) can be called again and gives the same
/// body with the same `event_id`, which is how a test re-sends a delivery.
///
/// `occurred_at` is the time of construction (so an app with the layer's freshness check
/// accepts it); [`occurred_at`](Self::occurred_at) sets another.
///
/// ```
/// use vobiz_webhooks::signature::Verifier;
/// use vobiz_webhooks::testing::TestEvent;
///
/// let event = TestEvent::status("wamid.X", "delivered").event_id("evt-1");
/// let request = event.request("secret");
///
/// assert_eq!(request.method(), "POST");
/// assert_eq!(request.uri(), "/webhooks/vobiz");
/// assert_eq!(request.headers()["content-type"], "application/json");
/// assert_eq!(request.headers()["x-webhook-event"], "message.status");
///
/// let body = event.body_bytes();
/// assert_eq!(request.headers()["content-length"], body.len().to_string().as_str());
/// let signature = request.headers()["x-webhook-signature"].as_bytes();
/// assert!(Verifier::new(["secret"])?.verify(signature, &body).is_ok());
/// # Ok::<(), vobiz_webhooks::signature::EmptySecret>(())
/// ```
#[derive(Clone, Debug)]
pub struct TestEvent {
    event_type: String,
    event_id: String,
    account_id: Option<String>,
    occurred_at: Option<OffsetDateTime>,
    payload: Payload,
    custom_body: Option<Bytes>,
    signature: SignatureHeader,
    event_header: EventHeader,
    uri: String,
    extra_headers: HeaderMap,
}

#[derive(Clone, Debug)]
pub(super) enum Payload {
    Value(Value),
    /// Kept byte for byte (fixtures and user JSON).
    Raw(Box<RawValue>),
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Value(value) => value.serialize(serializer),
            Self::Raw(raw) => raw.serialize(serializer),
        }
    }
}

#[derive(Clone, Debug)]
pub(super) enum SignatureHeader {
    Valid,
    Broken,
    Missing,
    Custom(HeaderValue),
}

impl SignatureHeader {
    /// The header's value for a body whose right signature `sign` makes; `None`: no header.
    pub(super) fn value(&self, sign: impl FnOnce() -> String) -> Option<HeaderValue> {
        let text = match self {
            Self::Valid => sign(),
            Self::Broken => broken(sign()),
            Self::Missing => return None,
            Self::Custom(value) => return Some(value.clone()),
        };
        Some(HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("")))
    }
}

#[derive(Clone, Debug)]
enum EventHeader {
    Matching,
    Missing,
    Custom(HeaderValue),
}

/// The envelope as serialized: fields in the documented order.
#[derive(Serialize)]
struct WireOut<'a> {
    event_id: &'a str,
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    occurred_at: Option<String>,
    payload: &'a Payload,
}

/// The parts of a fixture envelope that are kept.
#[derive(Deserialize)]
struct WireIn {
    event_type: String,
    account_id: Option<String>,
    payload: Box<RawValue>,
}

/// The JSON given to [`TestEvent::envelope_json`] or [`TestEvent::payload_json`] cannot be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum InvalidJson {
    /// Not JSON at all.
    Malformed(serde_json::Error),
    /// JSON, but the envelope lacks `event_id` or `event_type`.
    Envelope(crate::EnvelopeError),
}

impl fmt::Display for InvalidJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(err) => write!(f, "not valid JSON: {err}"),
            Self::Envelope(err) => write!(f, "not a Vobiz envelope: {err}"),
        }
    }
}

impl std::error::Error for InvalidJson {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed(err) => Some(err),
            Self::Envelope(err) => Some(err),
        }
    }
}

impl TestEvent {
    pub(super) fn with_payload(event_type: impl Into<String>, payload: Payload) -> Self {
        Self {
            event_type: event_type.into(),
            event_id: new_event_id(),
            account_id: Some(DEFAULT_ACCOUNT_ID.to_owned()),
            occurred_at: Some(OffsetDateTime::now_utc()),
            payload,
            custom_body: None,
            signature: SignatureHeader::Valid,
            event_header: EventHeader::Matching,
            uri: DEFAULT_URI.to_owned(),
            extra_headers: HeaderMap::new(),
        }
    }
    /// A bundled fixture's event type, account and payload (kept byte for byte), with a fresh
    /// `event_id` and `occurred_at`.
    ///
    /// ```
    /// use vobiz_webhooks::testing::{Fixture, TestEvent};
    ///
    /// for fixture in Fixture::ALL {
    ///     let event = TestEvent::fixture(*fixture);
    ///     assert_eq!(event.event_type(), fixture.event_type());
    /// }
    /// ```
    #[must_use]
    pub fn fixture(fixture: Fixture) -> Self {
        match serde_json::from_str::<WireIn>(fixture.body()) {
            Ok(wire) => {
                let mut event = Self::with_payload(wire.event_type, Payload::Raw(wire.payload));
                event.account_id = wire.account_id;
                event
            }
            // The fixtures are tested to parse; this arm keeps the kit panic-free regardless.
            Err(_) => Self::with_payload(fixture.event_type(), Payload::Value(Value::Null))
                .body(fixture.body()),
        }
    }

    /// Any event type with `payload` as the envelope's `payload`.
    ///
    /// ```
    /// use serde_json::json;
    /// use vobiz_webhooks::testing::TestEvent;
    ///
    /// let event = TestEvent::raw("contact.updated", json!({ "anything": true }));
    /// let body = String::from_utf8(event.body_bytes().to_vec()).unwrap();
    /// assert!(body.contains(r#""event_type":"contact.updated""#));
    /// assert!(body.contains(r#""payload":{"anything":true}"#));
    /// ```
    #[must_use]
    pub fn raw(event_type: impl Into<String>, payload: Value) -> Self {
        Self::with_payload(event_type, Payload::Value(payload))
    }

    /// Any event type with `payload` (JSON text) as the envelope's `payload`, kept byte for
    /// byte: Meta's full notification or a bare change `value`.
    ///
    /// # Errors
    ///
    /// [`InvalidJson::Malformed`] when `payload` is not JSON.
    ///
    /// ```
    /// use vobiz_webhooks::testing::TestEvent;
    ///
    /// let event = TestEvent::payload_json("message.status", r#"{ "statuses": [] }"#)?;
    /// assert!(event.body_bytes().ends_with(br#""payload":{ "statuses": [] }}"#));
    /// assert!(TestEvent::payload_json("message.status", "{").is_err());
    /// # Ok::<(), vobiz_webhooks::testing::InvalidJson>(())
    /// ```
    pub fn payload_json(
        event_type: impl Into<String>,
        payload: impl Into<String>,
    ) -> Result<Self, InvalidJson> {
        let raw = RawValue::from_string(payload.into()).map_err(InvalidJson::Malformed)?;
        Ok(Self::with_payload(event_type, Payload::Raw(raw)))
    }

    /// A complete delivery body, sent byte for byte (only signed): its `event_id` and
    /// `event_type` are read for [`id`](Self::id) and the `X-Webhook-Event` header.
    ///
    /// # Errors
    ///
    /// [`InvalidJson::Envelope`] when `body` is not JSON or lacks `event_id`/`event_type`
    /// (to send such a body on purpose, use [`body`](Self::body)).
    ///
    /// ```
    /// use vobiz_webhooks::testing::{Fixture, TestEvent};
    ///
    /// let event = TestEvent::envelope_json(Fixture::CallTerminate.body())?;
    /// assert_eq!(event.id(), "f4c1a0d2-3b6e-4a9c-8e2f-000000000021");
    /// assert_eq!(event.event_type(), "call.terminate");
    /// assert_eq!(event.body_bytes(), Fixture::CallTerminate.body().as_bytes());
    /// # Ok::<(), vobiz_webhooks::testing::InvalidJson>(())
    /// ```
    pub fn envelope_json(body: impl Into<Bytes>) -> Result<Self, InvalidJson> {
        let body = body.into();
        let envelope = crate::Envelope::from_slice(&body).map_err(InvalidJson::Envelope)?;
        let mut event =
            Self::with_payload(envelope.event_type.as_str(), Payload::Value(Value::Null))
                .body(body);
        event.event_id = envelope.event_id.into();
        event.account_id = envelope.account_id.map(String::from);
        event.occurred_at = envelope.occurred_at;
        Ok(event)
    }

    /// Sets the `event_id` (by default a fresh random UUID): give two events the same id to
    /// test deduplication.
    #[must_use]
    pub fn event_id(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = event_id.into();
        self
    }

    /// Sets the `account_id` (default [`DEFAULT_ACCOUNT_ID`]); `None` leaves it out.
    #[must_use]
    pub fn account_id(mut self, account_id: Option<String>) -> Self {
        self.account_id = account_id;
        self
    }

    /// Sets `occurred_at` (default: when the event was built); `None` leaves it out.
    ///
    /// ```
    /// use time::OffsetDateTime;
    /// use vobiz_webhooks::testing::TestEvent;
    ///
    /// let at = OffsetDateTime::from_unix_timestamp(1_774_432_800)?; // 2026-03-25T10:00:00Z
    /// let body = TestEvent::call("terminate").occurred_at(Some(at)).body_bytes();
    /// assert!(std::str::from_utf8(&body)?.contains(r#""occurred_at":"2026-03-25T10:00:00Z""#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn occurred_at(mut self, occurred_at: Option<OffsetDateTime>) -> Self {
        self.occurred_at = occurred_at;
        self
    }

    /// Sets the customer's WhatsApp number wherever the payload has it: an inbound message's
    /// `from` and contact `wa_id`, a status's `recipient_id`, a call's `from` (user-initiated)
    /// or `to` (business-initiated). Does nothing to a payload without these fields or to a
    /// [`body`](Self::body).
    #[must_use]
    pub fn from(mut self, wa_id: impl Into<String>) -> Self {
        let wa_id = Value::String(wa_id.into());
        self.for_each_value(|value| {
            let set = |items: Option<&mut Value>, key: &str, wa_id: &Value| {
                for item in items.and_then(Value::as_array_mut).into_iter().flatten() {
                    if let Some(field) = item.get_mut(key) {
                        *field = wa_id.clone();
                    }
                }
            };
            set(value.get_mut("messages"), "from", &wa_id);
            set(value.get_mut("contacts"), "wa_id", &wa_id);
            set(value.get_mut("statuses"), "recipient_id", &wa_id);
            for call in value
                .get_mut("calls")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let business =
                    call.get("direction").and_then(Value::as_str) == Some("BUSINESS_INITIATED");
                let key = if business { "to" } else { "from" };
                if let Some(field) = call.get_mut(key) {
                    *field = wa_id.clone();
                }
            }
        });
        self
    }

    /// Sets the sender's profile name (contacts' `profile.name`) where the payload has one.
    #[must_use]
    pub fn sender_name(mut self, name: impl Into<String>) -> Self {
        let name = Value::String(name.into());
        self.for_each_value(|value| {
            for contact in value
                .get_mut("contacts")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(field) = contact.pointer_mut("/profile/name") {
                    *field = name.clone();
                }
            }
        });
        self
    }

    /// Applies `edit` to every change `value` of the payload (both payload forms).
    fn for_each_value(&mut self, mut edit: impl FnMut(&mut Value)) {
        if let Payload::Raw(raw) = &self.payload {
            match serde_json::from_str(raw.get()) {
                Ok(value) => self.payload = Payload::Value(value),
                Err(_) => return,
            }
        }
        let Payload::Value(payload) = &mut self.payload else {
            return;
        };
        if let Some(entries) = payload.get_mut("entry").and_then(Value::as_array_mut) {
            for entry in entries {
                for change in entry
                    .get_mut("changes")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(value) = change.get_mut("value") {
                        edit(value);
                    }
                }
            }
        } else if payload.is_object() {
            edit(payload);
        }
    }

    /// Replaces the whole body with `body`, sent as given (and signed, unless the signature is
    /// broken or dropped): malformed JSON, a missing `event_id`, anything. The
    /// `X-Webhook-Event` header keeps the builder's event type.
    ///
    /// ```
    /// use vobiz_webhooks::testing::TestEvent;
    ///
    /// let event = TestEvent::inbound_text("hi").body("not json");
    /// assert_eq!(event.body_bytes(), "not json");
    /// ```
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.custom_body = Some(body.into());
        self
    }

    /// Sends a well-formed signature that does not match the body (the layer answers 401).
    #[must_use]
    pub fn bad_signature(mut self) -> Self {
        self.signature = SignatureHeader::Broken;
        self
    }

    /// Sends no `X-Webhook-Signature` header (the layer answers 401).
    #[must_use]
    pub fn without_signature(mut self) -> Self {
        self.signature = SignatureHeader::Missing;
        self
    }

    /// Sends `value` as `X-Webhook-Signature` instead of the signature, e.g. Meta's
    /// `sha256=…` form, which Vobiz never sends (the layer answers 401).
    #[must_use]
    pub fn signature(mut self, value: HeaderValue) -> Self {
        self.signature = SignatureHeader::Custom(value);
        self
    }

    /// Sends no `X-Webhook-Event` header (the layer accepts that: the body is authoritative).
    #[must_use]
    pub fn without_event_header(mut self) -> Self {
        self.event_header = EventHeader::Missing;
        self
    }

    /// Sends `value` as `X-Webhook-Event` instead of the event type (a value that differs from
    /// the body's `event_type` is answered 400).
    ///
    /// ```
    /// use axum::http::HeaderValue;
    /// use vobiz_webhooks::testing::TestEvent;
    ///
    /// let request = TestEvent::inbound_text("hi")
    ///     .event_header(HeaderValue::from_static("message.status"))
    ///     .request("secret");
    /// assert_eq!(request.headers()["x-webhook-event"], "message.status");
    /// ```
    #[must_use]
    pub fn event_header(mut self, value: HeaderValue) -> Self {
        self.event_header = EventHeader::Custom(value);
        self
    }

    /// Sets the request's path (default [`DEFAULT_URI`], `/webhooks/vobiz`); a value that is
    /// not a valid URI falls back to the default.
    #[must_use]
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = uri.into();
        self
    }

    /// Adds a header to the request (after the protocol headers, so it can replace them).
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.extra_headers.append(name, value);
        self
    }

    /// The `event_id` this event carries.
    pub fn id(&self) -> &str {
        &self.event_id
    }

    /// The event type (the body's `event_type`, and `X-Webhook-Event` unless changed).
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The exact body bytes: the envelope as compact JSON, or the [`body`](Self::body) set.
    pub fn body_bytes(&self) -> Bytes {
        if let Some(body) = &self.custom_body {
            return body.clone();
        }
        let wire = WireOut {
            event_id: &self.event_id,
            event_type: &self.event_type,
            account_id: self.account_id.as_deref(),
            occurred_at: self.occurred_at.and_then(|time| time.format(&Rfc3339).ok()),
            payload: &self.payload,
        };
        // Strings, a JSON value and raw JSON always serialize.
        serde_json::to_vec(&wire)
            .map(Bytes::from)
            .unwrap_or_default()
    }

    /// The headers of the delivery of `body` signed with `secret`: `Content-Type`,
    /// `Content-Length`, `X-Webhook-Event`, `X-Webhook-Signature` (as configured), then any
    /// [`header`](Self::header) added.
    pub fn headers_for(&self, secret: impl AsRef<[u8]>, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        match &self.event_header {
            EventHeader::Matching => {
                if let Ok(value) = HeaderValue::from_str(&self.event_type) {
                    headers.insert(X_WEBHOOK_EVENT, value);
                }
            }
            EventHeader::Missing => {}
            EventHeader::Custom(value) => {
                headers.insert(X_WEBHOOK_EVENT, value.clone());
            }
        }
        let signature = self.signature.value(|| sign(secret, body));
        if let Some(signature) = signature {
            headers.insert(X_WEBHOOK_SIGNATURE, signature);
        }
        for (name, value) in &self.extra_headers {
            headers.insert(name, value.clone());
        }
        headers
    }

    /// The `POST` request Vobiz would send, signed with `secret`. Call it again to re-send the
    /// same delivery (same body, same `event_id`).
    pub fn request(&self, secret: impl AsRef<[u8]>) -> Request<Body> {
        let body = self.body_bytes();
        let headers = self.headers_for(secret, &body);
        let mut request = Request::new(Body::from(body));
        *request.method_mut() = http::Method::POST;
        // An invalid path set with `uri` falls back to the default one.
        *request.uri_mut() = self
            .uri
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static(DEFAULT_URI));
        *request.headers_mut() = headers;
        request
    }

    /// [`request`](Self::request), consuming the builder.
    pub fn into_request(self, secret: impl AsRef<[u8]>) -> Request<Body> {
        self.request(secret)
    }
}

/// A lowercase hex signature is always a valid header value.
/// The signature with its last hex digit changed: still 64 hex digits, no longer matching.
pub(super) fn broken(mut signature: String) -> String {
    let last = match signature.pop() {
        Some('0') => '1',
        Some(_) => '0',
        None => '0',
    };
    signature.push(last);
    signature
}
