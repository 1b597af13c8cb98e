//! Typed events: what a delivery's payload means.
//!
//! [`VobizEvent::from_payload`] turns a delivery's raw `payload` into one of four variants. It
//! never fails: Vobiz forwards Meta's webhook data, Meta keeps adding fields, message types,
//! statuses and call events, and none of them may break a delivery. So
//!
//! * unknown fields are ignored, and a field of a surprising JSON type reads as `None`;
//! * unknown message types, interactive replies, statuses, call states and call events are
//!   kept by name (and raw JSON where there is a body to keep);
//! * the raw payload stays available on every variant ([`VobizEvent::raw_payload`]).
//!
//! Both payload forms Vobiz documents are accepted (spec §2.1): Meta's complete notification
//! (`{"object":…,"entry":[{"id":…,"changes":[{"field":…,"value":{…}}]}]}`) and a bare change
//! `value`. Both normalise to a list of [`Change`]s; every entry, change, message and status is
//! kept, not only the first. Accessors such as [`InboundEvent::text`] read the first item, the
//! iterators ([`InboundEvent::messages`], [`StatusEvent::statuses`], [`CallEvent::calls`])
//! yield all of them.
//!
//! ```
//! use vobiz_webhooks::{EventType, VobizEvent};
//!
//! let payload = br#"{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[
//!   {"field":"messages","value":{"messaging_product":"whatsapp",
//!    "contacts":[{"wa_id":"918888888888","profile":{"name":"Asha"}}],
//!    "messages":[{"from":"918888888888","id":"wamid.1","timestamp":"1711360800",
//!                 "type":"text","text":{"body":"Hi, is my order shipped?"}}]}}]}]}"#;
//!
//! match VobizEvent::from_payload(&EventType::MessageInbound, payload) {
//!     VobizEvent::MessageInbound(msg) => {
//!         assert_eq!(msg.text(), Some("Hi, is my order shipped?"));
//!         assert_eq!(msg.from(), Some("918888888888"));
//!         assert_eq!(msg.sender_name(), Some("Asha"));
//!         assert_eq!(msg.waba_id(), Some("WABA"));
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```
//!
//! # In a handler
//!
//! Behind [`VobizWebhookLayer`](crate::VobizWebhookLayer) a handler takes a [`VobizEvent`] (or,
//! through [`VobizRouter`](crate::VobizRouter), the narrow [`InboundEvent`], [`StatusEvent`] or
//! [`CallEvent`]). The payload is read only when a handler asks for something, and each
//! thing once. The shortcuts of a payload with one entry, one change and one plain item are
//! read in one pass that builds nothing else: `text()`, `from()`, `wamid()`, `kind()`,
//! `timestamp()`, `sender_name()` of one text message; `status()`, `wamid()`,
//! `recipient_id()`, `timestamp()` of one status update without errors; `waba_id()` and
//! `phone_number_id()` of both. Anything else (`messages()`, `statuses()`, `changes()`,
//! serializing, any other payload) reads the whole model; the answers are the same either way.
//!
//! ```
//! use axum::http::StatusCode;
//! use vobiz_webhooks::event::{CallState, MessageContent, StatusKind};
//! use vobiz_webhooks::VobizEvent;
//!
//! async fn handle(event: VobizEvent) -> StatusCode {
//!     match event {
//!         VobizEvent::MessageInbound(msg) => {
//!             // Shortcuts read the first message…
//!             if let Some(text) = msg.text() {
//!                 println!("{} ({:?}) wrote: {text}", msg.from().unwrap_or("?"), msg.sender_name());
//!             }
//!             // …and `messages()` yields every one (Meta may batch).
//!             for message in msg.messages() {
//!                 match &message.content {
//!                     MessageContent::Image(image) => println!("image {:?}", image.id),
//!                     MessageContent::Audio(audio) if audio.is_voice() => println!("voice note"),
//!                     MessageContent::Interactive(reply) => println!("chose {:?}", reply.reply_id()),
//!                     MessageContent::Reaction(r) if r.is_removal() => println!("reaction removed"),
//!                     MessageContent::Other(other) => println!("new type {}: {:?}", other.kind, other.raw),
//!                     _ => {}
//!                 }
//!             }
//!         }
//!         VobizEvent::MessageStatus(st) => {
//!             for update in st.statuses() {
//!                 // Updates can arrive out of order: keep the last one you stored, and replace
//!                 // it only when `update.supersedes(&stored)` (sent < delivered < read; failed
//!                 // is final).
//!                 if update.status == Some(StatusKind::Failed) {
//!                     println!("{:?} failed: {:?}", update.id, update.errors.first().map(|e| e.code));
//!                 }
//!             }
//!         }
//!         VobizEvent::Call(call) => match call.event() {
//!             "connect" => println!("call {:?} offers SDP {:?}", call.call_id(), call.sdp()),
//!             "terminate" => println!("call ended after {:?} s", call.duration()),
//!             _ if call.state() == Some(&CallState::Accepted) => println!("accepted"),
//!             other => println!("call.{other}: {}", call.raw_payload()),
//!         },
//!         other => println!("not typed yet: {}", other.raw_payload()),
//!     }
//!     StatusCode::OK
//! }
//! ```
//!
//! | event | accessors |
//! |---|---|
//! | `message.inbound` ([`InboundEvent`]) | `messages()`, `message()`, `text()`, `from()`, `sender()`, `sender_name()`, `sender_of(&msg)`, `wamid()`, `kind()`, `timestamp()`, `media()`, `media_id()`, `mime_type()`, `contacts()`, `errors()` |
//! | `message.status` ([`StatusEvent`]) | `statuses()`, `first()`, `status()`, `wamid()`, `recipient_id()`, `timestamp()`, `error()`, `errors()`; [`StatusKind::supersedes`] / `precedence` to drop stale updates |
//! | `call.<event>` ([`CallEvent`]) | `event()`, `name()`, `calls()`, `statuses()`, `call()`, `call_id()`, `state()`, `sdp()`, `sdp_type()`, `direction()`, `from()`, `to()`, `duration()`, `timestamp()`, `contacts()`, `errors()` |
//! | every event | `raw_payload()`, `waba_id()`, `phone_number_id()`, `changes()` (each with `waba_id`, `field`, `value`) |
//!
//! Strings are [`Str`]s, which dereference to `str`: short ones kept inline, longer ones views
//! of the delivery's body (a reference count, no copy). Meta's timestamps (strings of Unix
//! seconds) are `time::OffsetDateTime`; a timestamp that cannot be read is `None`. Every event
//! serializes with serde, so it can be forwarded to a queue.

pub mod call;
pub mod common;
mod de;
pub mod message;
mod payload;
mod quick;
pub mod status;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::envelope::EventType;

pub use crate::text::Str;
pub use call::{CallDirection, CallEvent, CallState, CallStatus, CallValue, Session, WaCall};
pub use common::{ApiError, Contact, ErrorData, Metadata, Profile};
pub use message::{
    Button, CallPermissionReply, Context, InboundEvent, InboundValue, Interactive, Location, Media,
    Message, MessageContent, NfmReply, OtherContent, Reaction, Referral, Reply, SharedContact,
};
pub use status::{StatusEvent, StatusKind, StatusUpdate, StatusValue};

/// A verified Vobiz event, typed by its `event_type`.
///
/// Take it as an axum extractor in a handler behind
/// [`VobizWebhookLayer`](crate::VobizWebhookLayer), or build it with
/// [`from_payload`](Self::from_payload).
///
/// It serializes (to forward it to a queue) as the typed model, e.g.
/// `{"MessageInbound":{"changes":[{"waba_id":…,"field":…,"value":{…}}]}}`, whose `value`s
/// keep Meta's field names and read back into [`InboundValue`], [`StatusValue`] or
/// [`CallValue`]; [`Unknown`](Self::Unknown) serializes its raw payload. Keep
/// [`raw_payload`](Self::raw_payload) (or the delivery body) if you need the exact bytes.
///
/// ```
/// use vobiz_webhooks::{EventType, VobizEvent};
///
/// fn handle(event: &VobizEvent) {
///     match event {
///         VobizEvent::MessageInbound(msg) => println!("{:?} wrote {:?}", msg.from(), msg.text()),
///         VobizEvent::MessageStatus(st) => println!("{:?} is {:?}", st.wamid(), st.status()),
///         VobizEvent::Call(call) => println!("call {:?}: {}", call.call_id(), call.event()),
///         other => println!("not typed yet: {}", other.raw_payload()),
///     }
/// }
///
/// // Never fails, whatever the payload.
/// let event = VobizEvent::from_payload(&EventType::parse("contact.updated"), b"[1,2]");
/// assert_eq!(event.raw_payload().get(), "[1,2]");
/// handle(&event);
/// ```
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub enum VobizEvent {
    /// `message.inbound`: messages a WhatsApp user sent to the business.
    MessageInbound(InboundEvent),
    /// `message.status`: status updates of messages the business sent.
    MessageStatus(StatusEvent),
    /// `call.<event>`: a WhatsApp Business Calling event.
    Call(CallEvent),
    /// An event type this crate does not know yet, kept raw.
    Unknown(UnknownEvent),
}

impl VobizEvent {
    /// Types `payload` (the raw JSON of the envelope's `payload`) according to `event_type`.
    ///
    /// Never fails and never panics. Payloads that are not JSON keep `null` as their raw
    /// payload; payloads of an undocumented shape yield the variant of `event_type` with no
    /// items and the raw JSON.
    pub fn from_payload(event_type: &EventType, payload: &[u8]) -> Self {
        // Bytes that are not UTF-8 are not JSON: they type to no changes and a `null` raw.
        let text = bytestring::ByteString::try_from(bytes::Bytes::copy_from_slice(payload))
            .unwrap_or_else(|_| bytestring::ByteString::from_static("null"));
        Self::from_shared_payload(event_type, text)
    }

    /// [`from_payload`](Self::from_payload) of a slice of the delivery body's text, kept without
    /// a copy (and not checked for UTF-8 again).
    pub(crate) fn from_shared_payload(
        event_type: &EventType,
        source: bytestring::ByteString,
    ) -> Self {
        // Nothing is read yet: the event keeps the text and reads it when first asked (see
        // `Changes`). Its strings will be slices of the payload's own bytes, not copies.
        match event_type {
            EventType::MessageInbound => {
                Self::MessageInbound(InboundEvent::new(Changes::new(source)))
            }
            EventType::MessageStatus => Self::MessageStatus(StatusEvent::new(Changes::new(source))),
            EventType::Call(name) => Self::Call(CallEvent::new(name.clone(), Changes::new(source))),
            EventType::Unknown(name) => Self::Unknown(UnknownEvent {
                event_type: name.clone(),
                payload: raw_json(source.as_bytes()),
            }),
        }
    }

    /// The event type this event was typed as.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::MessageInbound(_) => EventType::MessageInbound,
            Self::MessageStatus(_) => EventType::MessageStatus,
            Self::Call(call) => EventType::Call(call.name().clone()),
            Self::Unknown(unknown) => EventType::Unknown(unknown.event_type.clone()),
        }
    }

    /// The `message.inbound` event, if this is one.
    pub fn as_inbound(&self) -> Option<&InboundEvent> {
        match self {
            Self::MessageInbound(event) => Some(event),
            _ => None,
        }
    }

    /// The `message.status` event, if this is one.
    pub fn as_status(&self) -> Option<&StatusEvent> {
        match self {
            Self::MessageStatus(event) => Some(event),
            _ => None,
        }
    }

    /// The `call.<event>` event, if this is one.
    pub fn as_call(&self) -> Option<&CallEvent> {
        match self {
            Self::Call(event) => Some(event),
            _ => None,
        }
    }

    /// The payload exactly as received (`null` when it was absent or not JSON).
    pub fn raw_payload(&self) -> &RawValue {
        match self {
            Self::MessageInbound(event) => event.raw_payload(),
            Self::MessageStatus(event) => event.raw_payload(),
            Self::Call(event) => event.raw_payload(),
            Self::Unknown(event) => event.payload(),
        }
    }
}

/// An event of a type this crate does not know; its payload is kept raw.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct UnknownEvent {
    event_type: String,
    payload: Box<RawValue>,
}

impl UnknownEvent {
    /// The `event_type` as received.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The raw `payload` JSON.
    pub fn payload(&self) -> &RawValue {
        &self.payload
    }
}

/// One change `value` of a payload, with where it came from.
///
/// A full Meta notification yields one `Change` per `entry[].changes[]` item; a bare `value`
/// payload yields a single `Change` with no `waba_id` and no `field`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Change<V> {
    /// `entry[].id`: the WhatsApp Business Account id, when the payload carried it.
    pub waba_id: Option<Str>,
    /// `entry[].changes[].field`: `messages` or `calls`, when the payload carried it.
    pub field: Option<Str>,
    /// The change `value`.
    pub value: V,
}

/// The changes of a typed event and its raw payload, shared by the event's clones (the
/// extractors hand out clones of the event a request typed once).
///
/// Nothing is read until it is asked for, and each thing once: [`Changes::list`] reads the
/// whole model, [`Changes::quick`] only what the value type's shortcuts need (when the payload
/// is of the plain shape they are read for; see [`ChangeValue::read_quick`]). A handler that
/// asks only for shortcuts never pays for the model; one that asks for both pays for both.
#[derive(Clone)]
pub(crate) struct Changes<V: ChangeValue>(std::sync::Arc<Shared<V>>);

struct Shared<V: ChangeValue> {
    /// The payload's text (`null` when it was not UTF-8), whose strings the events share.
    source: bytestring::ByteString,
    list: std::sync::OnceLock<ChangeList<V>>,
    quick: std::sync::OnceLock<Option<V::Quick>>,
    /// The payload as a [`RawValue`], made on first use: typing does not need it, so the pass
    /// that validates it (and the copy) is paid only by callers of `raw_payload()`.
    raw: std::sync::OnceLock<Box<RawValue>>,
}

/// A payload's changes in the order read. Nearly every payload has exactly one (Meta batches
/// rarely), kept inline: a buffer of its own would be an allocation on every typed delivery.
pub(crate) enum ChangeList<V> {
    One([Change<V>; 1]),
    /// None, or more than one.
    Many(Vec<Change<V>>),
}

impl<V> Default for ChangeList<V> {
    fn default() -> Self {
        Self::Many(Vec::new())
    }
}

impl<V> ChangeList<V> {
    pub(crate) fn push(&mut self, change: Change<V>) {
        *self = match std::mem::take(self) {
            Self::Many(list) if list.is_empty() => Self::One([change]),
            Self::Many(mut list) => {
                list.push(change);
                Self::Many(list)
            }
            Self::One([first]) => Self::Many(vec![first, change]),
        };
    }

    pub(crate) fn as_slice(&self) -> &[Change<V>] {
        match self {
            Self::One(one) => one,
            Self::Many(list) => list,
        }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [Change<V>] {
        match self {
            Self::One(one) => one,
            Self::Many(list) => list,
        }
    }
}

impl<V: ChangeValue + std::fmt::Debug> std::fmt::Debug for Changes<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("list", &self.list())
            .field("raw", &self.raw())
            .finish()
    }
}

/// What every change `value` has: the business number it concerns and value-level errors;
/// and what its event's shortcuts can be read from without the model.
pub(crate) trait ChangeValue: DeserializeOwned + Sized {
    /// The shortcuts' answers, read without the model.
    type Quick: Send + Sync;

    /// The shortcuts' answers read straight from `payload`, when it is of the plain shape they
    /// are read for; `None` sends the shortcuts to the model. Must agree with the model
    /// wherever it answers (the tests hold it to that).
    fn read_quick(payload: &str) -> Option<Self::Quick>;

    fn metadata(&self) -> Option<&Metadata>;
    fn errors(&self) -> &[ApiError];
}

impl<V: ChangeValue> Changes<V> {
    pub(crate) fn new(source: bytestring::ByteString) -> Self {
        Self(std::sync::Arc::new(Shared {
            source,
            list: std::sync::OnceLock::new(),
            quick: std::sync::OnceLock::new(),
            raw: std::sync::OnceLock::new(),
        }))
    }

    /// The whole model, read on first use.
    pub(crate) fn list(&self) -> &[Change<V>] {
        let shared = &*self.0;
        shared
            .list
            .get_or_init(|| crate::text::sharing(&shared.source, payload::changes))
            .as_slice()
    }

    /// The shortcuts' answers, read on first use without the model; `None` when the payload
    /// is not of their plain shape (ask the model then).
    pub(crate) fn quick(&self) -> Option<&V::Quick> {
        let shared = &*self.0;
        shared
            .quick
            .get_or_init(|| crate::text::sharing(&shared.source, V::read_quick))
            .as_ref()
    }

    /// Every value of every change, in order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.list().iter().map(|change| &change.value)
    }

    pub(crate) fn errors(&self) -> impl Iterator<Item = &ApiError> {
        self.values().flat_map(|value| value.errors().iter())
    }

    pub(crate) fn waba_id(&self) -> Option<&str> {
        self.list().first()?.waba_id.as_deref()
    }

    pub(crate) fn phone_number_id(&self) -> Option<&str> {
        self.list()
            .first()?
            .value
            .metadata()?
            .phone_number_id
            .as_deref()
    }

    /// The payload as JSON; `null` when it is not JSON.
    pub(crate) fn raw(&self) -> &RawValue {
        let shared = &*self.0;
        shared
            .raw
            .get_or_init(|| raw_json(shared.source.as_bytes()))
    }
}

/// The raw payload as owned JSON; `null` when it is not JSON.
fn raw_json(payload: &[u8]) -> Box<RawValue> {
    serde_json::from_slice::<Box<RawValue>>(payload).unwrap_or_else(|_| null())
}

fn null() -> Box<RawValue> {
    // `RawValue` has no infallible constructor; `null` always parses.
    serde_json::from_str("null").unwrap_or_else(|_| unreachable!("`null` is valid JSON"))
}

#[cfg(test)]
mod tests;
