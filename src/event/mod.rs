//! Typed events: what a delivery's payload means.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::envelope::{CallEventName, EventType};

/// A verified Vobiz event, typed by its `event_type`.
///
/// Take it as an axum extractor in a handler behind [`VobizWebhookLayer`](crate::VobizWebhookLayer).
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub enum VobizEvent {
    /// `message.inbound`.
    MessageInbound(InboundEvent),
    /// `message.status`.
    MessageStatus(StatusEvent),
    /// `call.<event>`.
    Call(CallEvent),
    /// An event type this crate does not know yet, kept raw.
    Unknown(UnknownEvent),
}

impl VobizEvent {
    /// Types `payload` (raw JSON) according to `event_type`. Never fails.
    pub fn from_payload(event_type: &EventType, payload: &[u8]) -> Self {
        let raw = raw_json(payload);
        match event_type {
            EventType::MessageInbound => Self::MessageInbound(InboundEvent { payload: raw }),
            EventType::MessageStatus => Self::MessageStatus(StatusEvent { payload: raw }),
            EventType::Call(name) => Self::Call(CallEvent {
                name: name.clone(),
                payload: raw,
            }),
            EventType::Unknown(name) => Self::Unknown(UnknownEvent {
                event_type: name.clone(),
                payload: raw,
            }),
        }
    }
}

fn raw_json(payload: &[u8]) -> Box<RawValue> {
    serde_json::from_slice::<Box<RawValue>>(payload)
        .or_else(|_| RawValue::from_string("null".to_owned()))
        .unwrap_or_else(|_| unreachable!("`null` is valid JSON"))
}

/// A `message.inbound` event.
#[derive(Clone, Debug, Serialize)]
pub struct InboundEvent {
    payload: Box<RawValue>,
}

/// A `message.status` event.
#[derive(Clone, Debug, Serialize)]
pub struct StatusEvent {
    payload: Box<RawValue>,
}

/// A `call.<event>` event.
#[derive(Clone, Debug, Serialize)]
pub struct CallEvent {
    #[serde(skip)]
    name: CallEventName,
    payload: Box<RawValue>,
}

impl CallEvent {
    /// The call event's name, e.g. `call.connect`.
    pub fn name(&self) -> &CallEventName {
        &self.name
    }
}

/// An event of a type this crate does not know; its payload is kept raw.
#[derive(Clone, Debug, Serialize)]
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
