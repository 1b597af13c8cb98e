//! A test kit: signed Vobiz deliveries for testing your own handlers without a Vobiz account
//! (cargo feature `testing`, off by default).
//!
//! [`TestEvent`] builds the exact request Vobiz would send: a JSON envelope with a fresh
//! `event_id`, the headers `Content-Type`, `Content-Length`, `X-Webhook-Event` and
//! `X-Webhook-Signature` (HMAC-SHA256 of the body under your secret). Build one from typed
//! values ([`inbound_text`](TestEvent::inbound_text), [`status`](TestEvent::status),
//! [`call`](TestEvent::call)), from a bundled [`Fixture`] (every message, status and call type),
//! or from your own JSON ([`raw`](TestEvent::raw), [`payload_json`](TestEvent::payload_json),
//! [`envelope_json`](TestEvent::envelope_json)); then break it on purpose to test the
//! refusals ([`bad_signature`](TestEvent::bad_signature),
//! [`without_signature`](TestEvent::without_signature),
//! [`event_header`](TestEvent::event_header), [`body`](TestEvent::body)).
//!
//! Enable it for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! vobiz-webhooks = { version = "0.1", features = ["testing"] }
//! ```
//!
//! Then drive your own app with it:
//!
//! ```
//! use axum::{http::StatusCode, routing::post, Router};
//! use tower::ServiceExt; // oneshot
//! use vobiz_webhooks::testing::TestEvent;
//! use vobiz_webhooks::{VobizEvent, VobizWebhookLayer};
//!
//! async fn handle(event: VobizEvent) -> StatusCode {
//!     match event {
//!         VobizEvent::MessageInbound(msg) if msg.text() == Some("hi") => StatusCode::OK,
//!         _ => StatusCode::UNPROCESSABLE_ENTITY,
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new().route(
//!     "/webhooks/vobiz",
//!     post(handle).layer(VobizWebhookLayer::new("test-secret")),
//! );
//!
//! let event = TestEvent::inbound_text("hi").from("918888888888");
//! let response = app.clone().oneshot(event.request("test-secret")).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // The same event_id again: acknowledged as a duplicate, the handler does not run.
//! let again = app.clone().oneshot(event.request("test-secret")).await?;
//! assert_eq!(again.headers()["x-vobiz-duplicate"], "completed");
//!
//! // Signed with another secret: refused before the handler.
//! let forged = app.oneshot(event.request("not-the-secret")).await?;
//! assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! What the kit offers:
//!
//! | | |
//! |---|---|
//! | `TestEvent::inbound_text(text)`, `::status(wamid, "delivered")`, `::call("connect")` | typed events, in Meta's full-notification form |
//! | `TestEvent::fixture(Fixture::InboundImage)`, [`Fixture::ALL`] | the bundled sample of every message type (text, reply, referral, image, video, audio, document, sticker, location, contacts, button, interactive, reaction, order, system, unsupported, unknown), every status and every call event |
//! | `TestEvent::raw(event_type, json!(..))`, `::payload_json(event_type, text)`, `::envelope_json(body)` | your own payload or complete body (kept byte for byte) |
//! | `.event_id(id)`, `.from(wa_id)`, `.sender_name(name)`, `.account_id(..)`, `.occurred_at(..)` | a fresh random UUID `event_id` by default; set one to test deduplication |
//! | `.bad_signature()`, `.without_signature()`, `.signature(value)`, `.event_header(value)`, `.without_event_header()`, `.body(bytes)` | break the delivery on purpose (401, 400) |
//! | `.request(secret)` / `.into_request(secret)`, `.body_bytes()`, `.headers_for(secret, body)`, `.uri(path)`, `.header(name, value)` | the request (`POST /webhooks/vobiz`), or its parts for another HTTP client |
//!
//! `request` can be called again and gives the same body and `event_id`: that is a Vobiz retry.

mod fixtures;

use std::fmt;

use axum_core::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::headers::{X_WEBHOOK_EVENT, X_WEBHOOK_SIGNATURE};
use crate::signature::sign;

pub use fixtures::{Fixture, UnknownFixture};

/// The path [`TestEvent::request`] posts to unless [`TestEvent::uri`] says otherwise.
pub const DEFAULT_URI: &str = "/webhooks/vobiz";

/// The customer's WhatsApp number in built events unless [`TestEvent::from`] says otherwise
/// (the number of the Vobiz samples).
pub const DEFAULT_CUSTOMER: &str = "918888888888";

/// The business display number in built events.
pub const DEFAULT_BUSINESS_NUMBER: &str = "919876543210";

/// The `account_id` of built events unless [`TestEvent::account_id`] says otherwise.
pub const DEFAULT_ACCOUNT_ID: &str = "MA_XXXXXXXX";

const WABA_ID: &str = "102290129340398";
const PHONE_NUMBER_ID: &str = "106540352242922";
const SENDER_NAME: &str = "Asha";

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
#[must_use = "a TestEvent does nothing until it is turned into a request"]
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
enum Payload {
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
enum SignatureHeader {
    Valid,
    Broken,
    Missing,
    Custom(HeaderValue),
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

/// Meta's full notification around one change `value` (the form of every Vobiz example).
fn notification(field: &str, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "changes": [{ "field": field, "value": value }],
        }],
    })
}

fn metadata() -> Value {
    json!({
        "display_phone_number": DEFAULT_BUSINESS_NUMBER,
        "phone_number_id": PHONE_NUMBER_ID,
    })
}

fn unix_now() -> String {
    OffsetDateTime::now_utc().unix_timestamp().to_string()
}

impl TestEvent {
    fn with_payload(event_type: impl Into<String>, payload: Payload) -> Self {
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

    /// A `message.inbound` text message with `text` as its body, from [`DEFAULT_CUSTOMER`].
    ///
    /// ```
    /// use vobiz_webhooks::testing::TestEvent;
    /// use vobiz_webhooks::{VerifiedEvent, VobizEvent};
    ///
    /// let body = TestEvent::inbound_text("hi").from("15551234567").body_bytes();
    /// let event = VerifiedEvent::from_trusted_body(body)?;
    /// let VobizEvent::MessageInbound(msg) = event.event() else { panic!() };
    /// assert_eq!(msg.text(), Some("hi"));
    /// assert_eq!(msg.from(), Some("15551234567"));
    /// # Ok::<(), vobiz_webhooks::EnvelopeError>(())
    /// ```
    pub fn inbound_text(text: impl Into<String>) -> Self {
        let wamid = format!("wamid.TEST{}", new_event_id().replace('-', ""));
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{ "wa_id": DEFAULT_CUSTOMER, "profile": { "name": SENDER_NAME } }],
            "messages": [{
                "from": DEFAULT_CUSTOMER,
                "id": wamid,
                "timestamp": unix_now(),
                "type": "text",
                "text": { "body": text.into() },
            }],
        });
        Self::with_payload(
            "message.inbound",
            Payload::Value(notification("messages", value)),
        )
    }

    /// A `message.status` update: message `wamid` reached `status` (`sent`, `delivered`,
    /// `read`, `failed`, or any other name, which the crate keeps as an unknown status).
    ///
    /// A `failed` status carries one error (code 131049, as in Vobiz's example).
    ///
    /// ```
    /// use vobiz_webhooks::event::StatusKind;
    /// use vobiz_webhooks::testing::TestEvent;
    /// use vobiz_webhooks::{VerifiedEvent, VobizEvent};
    ///
    /// let body = TestEvent::status("wamid.X", "failed").body_bytes();
    /// let event = VerifiedEvent::from_trusted_body(body)?;
    /// let VobizEvent::MessageStatus(st) = event.event() else { panic!() };
    /// assert_eq!(st.wamid(), Some("wamid.X"));
    /// assert_eq!(st.status(), Some(&StatusKind::Failed));
    /// assert_eq!(st.error().map(|e| e.code), Some(Some(131049)));
    /// # Ok::<(), vobiz_webhooks::EnvelopeError>(())
    /// ```
    pub fn status(wamid: impl Into<String>, status: impl Into<String>) -> Self {
        let status = status.into();
        let mut update = json!({
            "id": wamid.into(),
            "status": status,
            "timestamp": unix_now(),
            "recipient_id": DEFAULT_CUSTOMER,
        });
        if status == "failed" {
            update["errors"] = json!([{
                "code": 131049,
                "title": "This message was not delivered to maintain healthy ecosystem engagement.",
                "message": "This message was not delivered to maintain healthy ecosystem engagement.",
                "error_data": {
                    "details": "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
                },
                "href": "/documentation/business-messaging/whatsapp/support/error-codes",
            }]);
        }
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "statuses": [update],
        });
        Self::with_payload(
            "message.status",
            Payload::Value(notification("messages", value)),
        )
    }

    /// A `call.<event>` of a user-initiated call: `call("connect")` (ringing, with an SDP
    /// offer), `call("terminate")` (completed, 180 s), or any other event name. `"call.connect"`
    /// is accepted too.
    ///
    /// For the exact shapes Meta sends for other call events (e.g. `status_change` in its
    /// `statuses[]` form), use the call [`Fixture`]s.
    ///
    /// ```
    /// use vobiz_webhooks::testing::TestEvent;
    /// use vobiz_webhooks::{VerifiedEvent, VobizEvent};
    ///
    /// let event = TestEvent::call("connect");
    /// assert_eq!(event.event_type(), "call.connect");
    /// let verified = VerifiedEvent::from_trusted_body(event.body_bytes())?;
    /// let VobizEvent::Call(call) = verified.event() else { panic!() };
    /// assert_eq!(call.event(), "connect");
    /// assert!(call.sdp().is_some());
    /// # Ok::<(), vobiz_webhooks::EnvelopeError>(())
    /// ```
    pub fn call(event: impl AsRef<str>) -> Self {
        let event = event.as_ref();
        let event = event.strip_prefix("call.").unwrap_or(event);
        let id = format!("wacid.TEST{}", new_event_id().replace('-', ""));
        let mut call = json!({
            "id": id,
            "from": DEFAULT_CUSTOMER,
            "to": DEFAULT_BUSINESS_NUMBER,
            "timestamp": unix_now(),
            "event": event,
            "direction": "USER_INITIATED",
        });
        match event {
            "connect" => {
                call["status"] = json!("ringing");
                call["session"] = json!({
                    "sdp_type": "offer",
                    "sdp": "v=0\r\no=- 7669997803033 2 IN IP4 127.0.0.1\r\ns=-\r\n",
                });
            }
            "terminate" => {
                let end = OffsetDateTime::now_utc().unix_timestamp();
                call["status"] = json!("COMPLETED");
                call["start_time"] = json!((end - 180).to_string());
                call["end_time"] = json!(end.to_string());
                call["duration"] = json!(180);
            }
            _ => {}
        }
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{ "wa_id": DEFAULT_CUSTOMER, "profile": { "name": SENDER_NAME } }],
            "calls": [call],
        });
        Self::with_payload(
            format!("call.{event}"),
            Payload::Value(notification("calls", value)),
        )
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
        event.event_id = envelope.event_id;
        event.account_id = envelope.account_id;
        event.occurred_at = envelope.occurred_at;
        Ok(event)
    }

    /// Sets the `event_id` (by default a fresh random UUID): give two events the same id to
    /// test deduplication.
    pub fn event_id(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = event_id.into();
        self
    }

    /// Sets the `account_id` (default [`DEFAULT_ACCOUNT_ID`]); `None` leaves it out.
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
    pub fn occurred_at(mut self, occurred_at: Option<OffsetDateTime>) -> Self {
        self.occurred_at = occurred_at;
        self
    }

    /// Sets the customer's WhatsApp number wherever the payload has it: an inbound message's
    /// `from` and contact `wa_id`, a status's `recipient_id`, a call's `from` (user-initiated)
    /// or `to` (business-initiated). Does nothing to a payload without these fields or to a
    /// [`body`](Self::body).
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
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.custom_body = Some(body.into());
        self
    }

    /// Sends a well-formed signature that does not match the body (the layer answers 401).
    pub fn bad_signature(mut self) -> Self {
        self.signature = SignatureHeader::Broken;
        self
    }

    /// Sends no `X-Webhook-Signature` header (the layer answers 401).
    pub fn without_signature(mut self) -> Self {
        self.signature = SignatureHeader::Missing;
        self
    }

    /// Sends `value` as `X-Webhook-Signature` instead of the signature, e.g. Meta's
    /// `sha256=…` form, which Vobiz never sends (the layer answers 401).
    pub fn signature(mut self, value: HeaderValue) -> Self {
        self.signature = SignatureHeader::Custom(value);
        self
    }

    /// Sends no `X-Webhook-Event` header (the layer accepts that: the body is authoritative).
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
    pub fn event_header(mut self, value: HeaderValue) -> Self {
        self.event_header = EventHeader::Custom(value);
        self
    }

    /// Sets the request's path (default [`DEFAULT_URI`], `/webhooks/vobiz`); a value that is
    /// not a valid URI falls back to the default.
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uri = uri.into();
        self
    }

    /// Adds a header to the request (after the protocol headers, so it can replace them).
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
        let signature = match &self.signature {
            SignatureHeader::Valid => Some(HeaderValue::from(SignatureValue(sign(secret, body)))),
            SignatureHeader::Broken => Some(HeaderValue::from(SignatureValue(broken(sign(
                secret, body,
            ))))),
            SignatureHeader::Missing => None,
            SignatureHeader::Custom(value) => Some(value.clone()),
        };
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
struct SignatureValue(String);

impl From<SignatureValue> for HeaderValue {
    fn from(value: SignatureValue) -> Self {
        HeaderValue::from_str(&value.0).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The signature with its last hex digit changed: still 64 hex digits, no longer matching.
fn broken(mut signature: String) -> String {
    let last = match signature.pop() {
        Some('0') => '1',
        Some(_) => '0',
        None => '0',
    };
    signature.push(last);
    signature
}

/// A fresh random `event_id` in the UUID v4 form Vobiz uses, e.g.
/// `f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f`.
///
/// # Panics
///
/// When the operating system's random generator fails (it does not once the system is booted).
///
/// ```
/// let id = vobiz_webhooks::testing::new_event_id();
/// assert_eq!(id.len(), 36);
/// assert_eq!(&id[14..15], "4");
/// assert_ne!(id, vobiz_webhooks::testing::new_event_id());
/// ```
pub fn new_event_id() -> String {
    let mut bytes = [0u8; 16];
    if let Err(error) = crate::random::fill(&mut bytes) {
        panic!("the operating system's random generator failed: {error}");
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::{SignatureError, Verifier};
    use crate::{VerifiedEvent, VobizEvent, VobizWebhookLayer};
    use axum::routing::post;
    use axum::Router;
    use http::StatusCode;
    use tower::ServiceExt;

    const SECRET: &str = "kit-secret";

    fn app() -> Router {
        async fn handle(event: VobizEvent) -> String {
            event.event_type().as_str().to_owned()
        }
        Router::new().route(
            DEFAULT_URI,
            post(handle).layer(VobizWebhookLayer::new(SECRET)),
        )
    }

    async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
        use http_body_util::BodyExt;
        let response = app.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    fn samples() -> Vec<TestEvent> {
        let mut events = vec![
            TestEvent::inbound_text("hi"),
            TestEvent::status("wamid.X", "sent"),
            TestEvent::status("wamid.X", "failed"),
            TestEvent::call("connect"),
            TestEvent::call("call.terminate"),
            TestEvent::call("status_change"),
            TestEvent::raw("contact.updated", json!({})),
        ];
        events.extend(Fixture::ALL.iter().map(|f| TestEvent::fixture(*f)));
        events
    }

    #[test]
    fn headers_and_signature_are_right() {
        for event in samples() {
            let request = event.request(SECRET);
            let body = event.body_bytes();
            let headers = request.headers();
            assert_eq!(request.method(), http::Method::POST);
            assert_eq!(request.uri(), DEFAULT_URI);
            assert_eq!(headers[CONTENT_TYPE], "application/json");
            assert_eq!(headers[CONTENT_LENGTH], body.len().to_string().as_str());
            assert_eq!(headers[X_WEBHOOK_EVENT], event.event_type());
            let signature = headers[X_WEBHOOK_SIGNATURE].as_bytes();
            assert_eq!(signature.len(), 64);
            let verifier = Verifier::new([SECRET]).expect("secret");
            assert_eq!(verifier.verify(signature, &body), Ok(()));
            // The body is a parseable envelope carrying the event's id and type.
            let verified = VerifiedEvent::from_trusted_body(body).expect("envelope");
            assert_eq!(verified.event_id(), event.id());
            assert_eq!(verified.event_type().as_str(), event.event_type());
        }
    }

    #[test]
    fn broken_signatures_are_well_formed_but_wrong() {
        let event = TestEvent::inbound_text("hi").bad_signature();
        let request = event.request(SECRET);
        let signature = request.headers()[X_WEBHOOK_SIGNATURE].as_bytes();
        let verifier = Verifier::new([SECRET]).expect("secret");
        assert_eq!(
            verifier.verify(signature, &event.body_bytes()),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(broken("ab0".into()), "ab1");
        assert_eq!(broken("ab1".into()), "ab0");
        let request = event.clone().without_signature().request(SECRET);
        assert!(!request.headers().contains_key(X_WEBHOOK_SIGNATURE));
        let request = event.without_event_header().request(SECRET);
        assert!(!request.headers().contains_key(X_WEBHOOK_EVENT));
    }

    #[test]
    fn ids_are_fresh_uuids_unless_set() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_event_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(parts[2].starts_with('4'));
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        }
        assert_ne!(TestEvent::call("x").id(), TestEvent::call("x").id());
        let event = TestEvent::fixture(Fixture::InboundText).event_id("mine");
        assert_eq!(event.id(), "mine");
        // Same builder, same bytes: a re-send.
        assert_eq!(event.body_bytes(), event.body_bytes());
    }

    #[test]
    fn edits_reach_every_form() {
        let body = TestEvent::fixture(Fixture::InboundImage)
            .from("15550001111")
            .sender_name("Ravi")
            .body_bytes();
        let verified = VerifiedEvent::from_trusted_body(body).expect("envelope");
        let VobizEvent::MessageInbound(msg) = verified.event() else {
            panic!("inbound expected");
        };
        assert_eq!(msg.from(), Some("15550001111"));
        assert_eq!(msg.sender_name(), Some("Ravi"));

        let body = TestEvent::status("wamid.Y", "read")
            .from("15550002222")
            .body_bytes();
        let verified = VerifiedEvent::from_trusted_body(body).expect("envelope");
        let VobizEvent::MessageStatus(status) = verified.event() else {
            panic!("status expected");
        };
        assert_eq!(status.recipient_id(), Some("15550002222"));

        for (fixture, expected_from, expected_to) in [
            (
                Fixture::CallConnect,
                Some("15550003333"),
                Some("919876543210"),
            ),
            (
                Fixture::CallConnectBusinessInitiated,
                None,
                Some("15550003333"),
            ),
        ] {
            let body = TestEvent::fixture(fixture).from("15550003333").body_bytes();
            let verified = VerifiedEvent::from_trusted_body(body).expect("envelope");
            let VobizEvent::Call(call) = verified.event() else {
                panic!("call expected");
            };
            if let Some(from) = expected_from {
                assert_eq!(call.from(), Some(from));
            }
            assert_eq!(call.to(), expected_to);
        }

        // A bare change value is edited too.
        let bare = TestEvent::raw(
            "message.inbound",
            json!({"messages":[{"from":"1","id":"w","type":"text","text":{"body":"x"}}]}),
        )
        .from("2");
        assert!(String::from_utf8_lossy(&bare.body_bytes()).contains(r#""from":"2""#));
    }

    #[test]
    fn fixture_payloads_are_kept_byte_for_byte() {
        for fixture in Fixture::ALL {
            let body = TestEvent::fixture(*fixture).body_bytes();
            let body = std::str::from_utf8(&body).expect("utf-8");
            let start = fixture.body().find(r#""payload": "#).expect("payload") + 11;
            let payload = fixture.body()[start..].trim_end();
            let payload = payload[..payload.len() - 1].trim_end(); // the envelope's closing brace
            assert!(
                body.ends_with(&format!("\"payload\":{payload}}}")),
                "{fixture}"
            );
        }
    }

    #[tokio::test]
    async fn the_layer_accepts_every_built_event() {
        let app = app();
        for event in samples() {
            let (status, headers, body) = send(&app, event.request(SECRET)).await;
            assert_eq!(status, StatusCode::OK, "{}: {body}", event.event_type());
            assert!(!headers.contains_key(crate::headers::X_VOBIZ_DUPLICATE));
            assert_eq!(body, event.event_type());
            // The same delivery again is a duplicate.
            let (status, headers, _) = send(&app, event.request(SECRET)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers[crate::headers::X_VOBIZ_DUPLICATE], "completed");
        }
        // Every fixture as shipped, id included.
        for fixture in Fixture::ALL {
            let event = TestEvent::envelope_json(fixture.body()).expect("envelope");
            let (status, _, body) = send(&app, event.request(SECRET)).await;
            assert_eq!(status, StatusCode::OK, "{fixture}: {body}");
        }
    }

    #[tokio::test]
    async fn the_layer_refuses_what_is_broken() {
        let app = app();
        let event = TestEvent::inbound_text("hi");
        let cases = [
            (event.clone().bad_signature(), StatusCode::UNAUTHORIZED),
            (event.clone().without_signature(), StatusCode::UNAUTHORIZED),
            (
                event
                    .clone()
                    .signature(HeaderValue::from_static("sha256=00")),
                StatusCode::UNAUTHORIZED,
            ),
            (
                event
                    .clone()
                    .event_header(HeaderValue::from_static("message.status")),
                StatusCode::BAD_REQUEST,
            ),
            (event.clone().body("not json"), StatusCode::BAD_REQUEST),
            (
                event.clone().body(r#"{"event_type":"message.inbound"}"#),
                StatusCode::BAD_REQUEST,
            ),
            (event.clone().without_event_header(), StatusCode::OK),
        ];
        for (event, expected) in cases {
            let (status, _, body) = send(&app, event.request(SECRET)).await;
            assert_eq!(status, expected, "{body}");
        }
        let (status, _, _) = send(&app, event.uri("/elsewhere").request(SECRET)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn json_inputs_are_checked() {
        assert!(matches!(
            TestEvent::payload_json("message.inbound", "nope"),
            Err(InvalidJson::Malformed(_))
        ));
        assert!(matches!(
            TestEvent::envelope_json(r#"{"payload":{}}"#),
            Err(InvalidJson::Envelope(_))
        ));
        let error = TestEvent::envelope_json("{").expect_err("not JSON");
        assert!(error.to_string().starts_with("not a Vobiz envelope"));
    }
}
