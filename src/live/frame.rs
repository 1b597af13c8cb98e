//! Frames: which events are streamed, as what, and their JSON.

use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::envelope::EventType;
use crate::event::{CallEvent, InboundEvent, StatusEvent, VobizEvent};
use crate::verified::VerifiedEvent;

/// The four stream events, named as Vobiz's own real-time stream names them.
///
/// ```
/// use vobiz_webhooks::live::StreamEvent;
/// use vobiz_webhooks::EventType;
///
/// assert_eq!(StreamEvent::of(&EventType::parse("message.inbound")), Some(StreamEvent::MessageCreated));
/// assert_eq!(StreamEvent::of(&EventType::parse("call.connect")), Some(StreamEvent::CallIncoming));
/// assert_eq!(StreamEvent::of(&EventType::parse("call.terminate")), Some(StreamEvent::CallStatus));
/// assert_eq!(StreamEvent::of(&EventType::parse("template.status")), None);
/// assert_eq!(StreamEvent::MessageUpdated.as_str(), "message.updated");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamEvent {
    /// `message.created`, from `message.inbound`: a customer wrote.
    MessageCreated,
    /// `message.updated`, from `message.status`: sent, delivered, read, failed.
    MessageUpdated,
    /// `call.incoming`, from `call.connect`.
    CallIncoming,
    /// `call.status`, from every other `call.*` event.
    CallStatus,
}

impl StreamEvent {
    /// The stream event a webhook event type becomes, or `None` for a type that is not streamed.
    pub fn of(event_type: &EventType) -> Option<Self> {
        match event_type {
            EventType::MessageInbound => Some(Self::MessageCreated),
            EventType::MessageStatus => Some(Self::MessageUpdated),
            EventType::Call(name) if name.suffix() == "connect" => Some(Self::CallIncoming),
            EventType::Call(_) => Some(Self::CallStatus),
            EventType::Unknown(_) => None,
        }
    }

    /// The frame's `type`: `"message.created"`, `"message.updated"`, `"call.incoming"` or
    /// `"call.status"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageCreated => "message.created",
            Self::MessageUpdated => "message.updated",
            Self::CallIncoming => "call.incoming",
            Self::CallStatus => "call.status",
        }
    }
}

impl fmt::Display for StreamEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published event: its sequence number, its stream event and the verified delivery.
///
/// Access filters ([`Access::filter`](super::Access::filter)) see frames; the JSON sent to
/// clients is rendered from the delivery once, the first time a client needs it (never on the
/// webhook path), and shared by every client.
///
/// ```text
/// {"id":1711360800000001,"type":"message.created","event_id":"evt_1",
///  "occurred_at":"2024-03-25T10:00:00Z","account_id":"acc_1",
///  "data":{"from":"918888888888","name":"Asha","kind":"text","text":"hi","wamid":"wamid.1"}}
/// ```
pub struct Frame {
    id: u64,
    kind: StreamEvent,
    event: VerifiedEvent,
    json: OnceLock<String>,
}

impl Frame {
    pub(crate) fn new(id: u64, kind: StreamEvent, event: VerifiedEvent) -> Self {
        Self {
            id,
            kind,
            event,
            json: OnceLock::new(),
        }
    }

    /// The sequence number: increasing by one per published frame of the hub.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The stream event.
    pub fn kind(&self) -> StreamEvent {
        self.kind
    }

    /// The delivery's `event_id`.
    pub fn event_id(&self) -> &str {
        self.event.event_id()
    }

    /// The delivery's `account_id`, when present.
    pub fn account_id(&self) -> Option<&str> {
        self.event.account_id()
    }

    /// The business phone number id of the event's first change, when the payload carries it
    /// (parses the payload on first use; the handler usually did already).
    pub fn phone_number_id(&self) -> Option<&str> {
        match self.event.event() {
            VobizEvent::MessageInbound(message) => message.phone_number_id(),
            VobizEvent::MessageStatus(status) => status.phone_number_id(),
            VobizEvent::Call(call) => call.phone_number_id(),
            _ => None,
        }
    }

    /// The verified delivery the frame was made from.
    pub fn event(&self) -> &VerifiedEvent {
        &self.event
    }

    /// The frame's JSON, as clients receive it (rendered on first use, then shared).
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| render(self))
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("event_id", &self.event_id())
            .finish_non_exhaustive()
    }
}

/// The JSON of the `resync` frame: the client missed frames and must reload its state.
pub(crate) const RESYNC_JSON: &str = r#"{"type":"resync"}"#;

#[derive(Serialize)]
struct Wire<'a> {
    id: u64,
    #[serde(rename = "type")]
    kind: &'static str,
    event_id: &'a str,
    occurred_at: Option<String>,
    account_id: Option<&'a str>,
    data: Data<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Data<'a> {
    Message(MessageData<'a>),
    Status(StatusData<'a>),
    Call(CallData<'a>),
    Empty {},
}

#[derive(Serialize)]
struct MessageData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caption: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    media_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mime_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wamid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number_id: Option<&'a str>,
}

#[derive(Serialize)]
struct StatusData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    wamid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number_id: Option<&'a str>,
}

#[derive(Serialize)]
struct CallData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    call_id: Option<&'a str>,
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phone_number_id: Option<&'a str>,
}

fn message(msg: &InboundEvent) -> MessageData<'_> {
    let media = msg.media();
    MessageData {
        from: msg.from(),
        name: msg.sender_name(),
        kind: msg.kind(),
        text: msg.text(),
        caption: media.and_then(|media| media.caption.as_deref()),
        media_id: media.and_then(|media| media.id.as_deref()),
        mime_type: media.and_then(|media| media.mime_type.as_deref()),
        wamid: msg.wamid(),
        phone_number_id: msg.phone_number_id(),
    }
}

fn status(st: &StatusEvent) -> StatusData<'_> {
    let error = st.error();
    StatusData {
        wamid: st.wamid(),
        status: st.status().map(|status| status.as_str()),
        recipient_id: st.recipient_id(),
        error_code: error.and_then(|error| error.code),
        error_title: error.and_then(|error| error.title.as_deref()),
        phone_number_id: st.phone_number_id(),
    }
}

fn call(call: &CallEvent) -> CallData<'_> {
    CallData {
        call_id: call.call_id(),
        event: call.event(),
        state: call.state().map(|state| state.as_str()),
        direction: call.direction().map(|direction| direction.as_str()),
        from: call.from(),
        to: call.to(),
        duration: call.duration(),
        phone_number_id: call.phone_number_id(),
    }
}

fn render(frame: &Frame) -> String {
    let event = &frame.event;
    let data = match event.event() {
        VobizEvent::MessageInbound(msg) => Data::Message(message(msg)),
        VobizEvent::MessageStatus(st) => Data::Status(status(st)),
        VobizEvent::Call(c) => Data::Call(call(c)),
        _ => Data::Empty {},
    };
    let wire = Wire {
        id: frame.id,
        kind: frame.kind.as_str(),
        event_id: event.event_id(),
        occurred_at: event.occurred_at().and_then(|at| at.format(&Rfc3339).ok()),
        account_id: event.account_id(),
        data,
    };
    // Serialising borrowed strings and numbers cannot fail; an empty object keeps the promise
    // of valid JSON if it ever did.
    serde_json::to_string(&wire).unwrap_or_else(|_| String::from("{}"))
}
