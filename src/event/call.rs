//! `call.<event>`: WhatsApp Business Calling events (spec §3.3, §6).
//!
//! A call event's payload carries `calls[]` entries (user-initiated calls, `connect`,
//! `terminate`, …) and/or `statuses[]` entries with `type: "call"` (the state of a
//! business-initiated call; `call.status_change` may carry either). Both are typed.

use crate::event::Str;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::common::{ApiError, Contact, Metadata};
use super::de;
use super::{Change, ChangeValue, Changes};
use crate::envelope::CallEventName;

/// A `call.<event>` event.
///
/// The shortcuts ([`call_id`](Self::call_id), [`sdp`](Self::sdp), [`state`](Self::state), …)
/// read the first call (or first call status); [`calls`](Self::calls) and
/// [`statuses`](Self::statuses) yield all of them. Unknown call events (e.g.
/// `call.call_recording_available`) arrive here too, with their raw payload.
///
/// ```
/// use vobiz_webhooks::event::{CallDirection, CallState};
/// use vobiz_webhooks::{EventType, VobizEvent};
///
/// let payload = br#"{"calls":[{"id":"wacid.1","from":"918888888888","to":"919876543210",
///   "timestamp":"1711360860","event":"connect","status":"ringing","direction":"USER_INITIATED",
///   "session":{"sdp_type":"offer","sdp":"v=0\r\n"}}]}"#;
/// let VobizEvent::Call(call) = VobizEvent::from_payload(&EventType::parse("call.connect"), payload)
/// else { unreachable!() };
///
/// assert_eq!(call.event(), "connect");
/// assert_eq!(call.call_id(), Some("wacid.1"));
/// assert_eq!(call.sdp(), Some("v=0\r\n"));
/// assert_eq!(call.state(), Some(&CallState::Ringing));
/// assert_eq!(call.direction(), Some(&CallDirection::UserInitiated));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CallEvent {
    name: CallEventName,
    changes: Changes<CallValue>,
}

impl Serialize for CallEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("event_type", self.name.as_str())?;
        map.serialize_entry("changes", self.changes.list())?;
        map.end()
    }
}

impl CallEvent {
    pub(super) fn new(name: CallEventName, changes: Changes<CallValue>) -> Self {
        Self { name, changes }
    }

    /// The event type, e.g. `call.connect`.
    pub fn name(&self) -> &CallEventName {
        &self.name
    }

    /// The call event, e.g. `"connect"`: the suffix of the event type (or, when the type has
    /// none, the first call's `event`).
    pub fn event(&self) -> &str {
        match self.name.suffix() {
            "" => self
                .call()
                .and_then(|c| c.event.as_deref())
                .unwrap_or_default(),
            suffix => suffix,
        }
    }

    /// Every change of the payload, in order.
    pub fn changes(&self) -> &[Change<CallValue>] {
        self.changes.list()
    }

    /// Every `calls[]` entry of every change.
    pub fn calls(&self) -> impl Iterator<Item = &WaCall> {
        self.changes.values().flat_map(|value| value.calls.iter())
    }

    /// Every `statuses[]` entry (business-initiated call states) of every change.
    pub fn statuses(&self) -> impl Iterator<Item = &CallStatus> {
        self.changes
            .values()
            .flat_map(|value| value.statuses.iter())
    }

    /// Every `contacts[]` entry (the caller or callee) of every change.
    pub fn contacts(&self) -> impl Iterator<Item = &Contact> {
        self.changes
            .values()
            .flat_map(|value| value.contacts.iter())
    }

    /// Value-level errors (`value.errors[]`) of every change.
    pub fn errors(&self) -> impl Iterator<Item = &ApiError> {
        self.changes.errors()
    }

    /// The first `calls[]` entry.
    pub fn call(&self) -> Option<&WaCall> {
        self.calls().next()
    }

    /// The call id (`wacid.…`) of the first call, else of the first call status.
    pub fn call_id(&self) -> Option<&str> {
        match self.call() {
            Some(call) => call.id.as_deref(),
            None => self.statuses().next()?.id.as_deref(),
        }
    }

    /// The state of the first call, else of the first call status.
    pub fn state(&self) -> Option<&CallState> {
        match self.call().and_then(|c| c.status.as_ref()) {
            Some(state) => Some(state),
            None => self.statuses().next()?.status.as_ref(),
        }
    }

    /// The first call's SDP (offer for user-initiated calls, answer for business-initiated).
    pub fn sdp(&self) -> Option<&str> {
        self.call()?.session.as_ref()?.sdp.as_deref()
    }

    /// The first call's SDP type, `offer` or `answer`.
    pub fn sdp_type(&self) -> Option<&str> {
        self.call()?.session.as_ref()?.sdp_type.as_deref()
    }

    /// The first call's direction.
    pub fn direction(&self) -> Option<&CallDirection> {
        self.call()?.direction.as_ref()
    }

    /// The first call's caller.
    pub fn from(&self) -> Option<&str> {
        self.call()?.from.as_deref()
    }

    /// The first call's callee.
    pub fn to(&self) -> Option<&str> {
        self.call()?.to.as_deref()
    }

    /// The first call's duration in seconds (`terminate` of an answered call).
    pub fn duration(&self) -> Option<i64> {
        self.call()?.duration
    }

    /// When the first call (or call status) happened.
    pub fn timestamp(&self) -> Option<OffsetDateTime> {
        match self.call() {
            Some(call) => call.timestamp,
            None => self.statuses().next()?.timestamp,
        }
    }

    /// The first change's WABA id (`entry[].id`), when the payload carried it.
    pub fn waba_id(&self) -> Option<&str> {
        self.changes.waba_id()
    }

    /// The first change's business phone number id.
    pub fn phone_number_id(&self) -> Option<&str> {
        self.changes.phone_number_id()
    }

    /// The payload exactly as received (the only way to read events this crate does not
    /// type, such as a recording's details).
    pub fn raw_payload(&self) -> &RawValue {
        self.changes.raw()
    }
}

/// The change `value` of a call payload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallValue {
    /// Always `"whatsapp"`.
    #[serde(default, deserialize_with = "de::string")]
    pub messaging_product: Option<Str>,
    /// The business number.
    #[serde(default, deserialize_with = "de::obj")]
    pub metadata: Option<Metadata>,
    /// The caller or callee profile, when Meta includes it.
    #[serde(default, deserialize_with = "de::vec")]
    pub contacts: Vec<Contact>,
    /// Call events.
    #[serde(default, deserialize_with = "de::vec")]
    pub calls: Vec<WaCall>,
    /// Call states of business-initiated calls (`type: "call"`).
    #[serde(default, deserialize_with = "de::vec")]
    pub statuses: Vec<CallStatus>,
    /// Value-level errors (e.g. why a call failed).
    #[serde(default, deserialize_with = "de::vec")]
    pub errors: Vec<ApiError>,
}

/// One entry of `calls[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WaCall {
    /// The call id, `wacid.…`.
    #[serde(default, deserialize_with = "de::string")]
    pub id: Option<Str>,
    /// Caller number.
    #[serde(default, deserialize_with = "de::string")]
    pub from: Option<Str>,
    /// Caller business-scoped user id.
    #[serde(default, deserialize_with = "de::string")]
    pub from_user_id: Option<Str>,
    /// Callee number.
    #[serde(default, deserialize_with = "de::string")]
    pub to: Option<Str>,
    /// Meta's call event: `connect`, `terminate`, ….
    #[serde(default, deserialize_with = "de::string")]
    pub event: Option<Str>,
    /// Call state (`ringing` on Vobiz's connect, `COMPLETED`/`FAILED` on terminate).
    #[serde(default, deserialize_with = "CallState::lenient")]
    pub status: Option<CallState>,
    /// Who started the call.
    #[serde(default, deserialize_with = "CallDirection::lenient")]
    pub direction: Option<CallDirection>,
    /// When the event happened.
    #[serde(
        default,
        deserialize_with = "de::timestamp",
        serialize_with = "de::ser_timestamp"
    )]
    pub timestamp: Option<OffsetDateTime>,
    /// When the call was answered (terminate of an answered call).
    #[serde(
        default,
        deserialize_with = "de::timestamp",
        serialize_with = "de::ser_timestamp"
    )]
    pub start_time: Option<OffsetDateTime>,
    /// When the call ended (terminate of an answered call).
    #[serde(
        default,
        deserialize_with = "de::timestamp",
        serialize_with = "de::ser_timestamp"
    )]
    pub end_time: Option<OffsetDateTime>,
    /// Duration in seconds (terminate of an answered call).
    #[serde(default, deserialize_with = "de::int")]
    pub duration: Option<i64>,
    /// The WebRTC session (`connect`).
    #[serde(default, deserialize_with = "de::obj")]
    pub session: Option<Session>,
    /// Echo of the data set when starting the call.
    #[serde(default, deserialize_with = "de::string")]
    pub biz_opaque_callback_data: Option<Str>,
}

/// `calls[].session`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// `offer` (user-initiated) or `answer` (business-initiated).
    #[serde(default, deserialize_with = "de::string")]
    pub sdp_type: Option<Str>,
    /// The SDP.
    #[serde(default, deserialize_with = "de::string")]
    pub sdp: Option<Str>,
}

/// One `statuses[]` entry of a call payload: the state of a business-initiated call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallStatus {
    /// The call id, `wacid.…`.
    #[serde(default, deserialize_with = "de::string")]
    pub id: Option<Str>,
    /// `call`.
    #[serde(rename = "type", default, deserialize_with = "de::string")]
    pub kind: Option<Str>,
    /// The state, e.g. `RINGING`, `ACCEPTED`, `REJECTED`.
    #[serde(default, deserialize_with = "CallState::lenient")]
    pub status: Option<CallState>,
    /// When it happened.
    #[serde(
        default,
        deserialize_with = "de::timestamp",
        serialize_with = "de::ser_timestamp"
    )]
    pub timestamp: Option<OffsetDateTime>,
    /// The callee.
    #[serde(default, deserialize_with = "de::string")]
    pub recipient_id: Option<Str>,
    /// Echo of the data set when starting the call.
    #[serde(default, deserialize_with = "de::string")]
    pub biz_opaque_callback_data: Option<Str>,
}

/// Generates a case-insensitive string enum with an `Other(String)` fall-back.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)* }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// Any other value, verbatim.
            Other(String),
        }

        impl $name {
            /// Parses a wire value, case-insensitively; never fails.
            pub fn parse(value: &str) -> Self {
                $(if value.eq_ignore_ascii_case($wire) { return Self::$variant; })*
                Self::Other(value.to_owned())
            }

            /// The canonical wire value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)*
                    Self::Other(other) => other,
                }
            }

            fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
                de::string(d).map(|s| s.map(|s| Self::parse(&s)))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::lenient(d)?.unwrap_or_else(|| Self::Other(String::new())))
            }
        }
    };
}

wire_enum! {
    /// A call's state, from Meta webhooks (`RINGING`, `COMPLETED`, …) or Vobiz (`ringing`, …);
    /// parsed case-insensitively.
    ///
    /// ```
    /// use vobiz_webhooks::event::CallState;
    /// assert_eq!(CallState::parse("Completed"), CallState::Completed);
    /// assert_eq!(CallState::parse("on_hold"), CallState::Other("on_hold".into()));
    /// ```
    CallState {
        /// Ringing.
        Ringing = "RINGING",
        /// Pre-accepted by the business (media may flow).
        PreAccepted = "PRE_ACCEPTED",
        /// Accepted.
        Accepted = "ACCEPTED",
        /// Rejected by the callee.
        Rejected = "REJECTED",
        /// Ended normally.
        Completed = "COMPLETED",
        /// Failed.
        Failed = "FAILED",
        /// Not answered.
        Missed = "MISSED",
        /// Terminated.
        Terminated = "TERMINATED",
    }
}

wire_enum! {
    /// Who started a call; parsed case-insensitively.
    CallDirection {
        /// The WhatsApp user called the business.
        UserInitiated = "USER_INITIATED",
        /// The business called the user.
        BusinessInitiated = "BUSINESS_INITIATED",
    }
}

impl ChangeValue for CallValue {
    // Its shortcuts read the model.
    type Quick = std::convert::Infallible;

    fn read_quick(_: &str) -> Option<Self::Quick> {
        None
    }

    fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    fn errors(&self) -> &[ApiError] {
        &self.errors
    }
}
