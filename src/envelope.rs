//! The JSON envelope every Vobiz delivery shares, and the event type it names.
//!
//! ```json
//! {"event_id":"f4c1…","event_type":"message.inbound","account_id":"MA_…",
//!  "occurred_at":"2026-03-25T10:00:00Z","payload":{…}}
//! ```
//!
//! The layer reads only these header fields; `payload` stays raw JSON until a handler asks for
//! the typed event.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use bytestring::ByteString;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::text::{self, Str};

mod walk;

/// The kind of event a delivery carries, parsed from `event_type` (and `X-Webhook-Event`).
///
/// Parsing never fails: `call.*` values Vobiz adds later are [`EventType::Call`], anything else
/// unknown is [`EventType::Unknown`], so a new event type never breaks a delivery.
///
/// ```
/// use vobiz_webhooks::EventType;
///
/// let ty: EventType = "call.connect".parse().unwrap();
/// assert!(matches!(&ty, EventType::Call(name) if name.suffix() == "connect"));
/// assert_eq!(ty.as_str(), "call.connect");
/// assert_eq!("message.inbound".parse::<EventType>().unwrap(), EventType::MessageInbound);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `message.inbound`: a customer's message to the business.
    MessageInbound,
    /// `message.status`: a delivery status of a message the business sent.
    MessageStatus,
    /// `call.<event>`: a WhatsApp Business Calling event such as `call.connect`.
    Call(CallEventName),
    /// Any other value, kept verbatim.
    Unknown(String),
}

impl EventType {
    /// The wire form, e.g. `"message.inbound"` or `"call.connect"`.
    pub fn as_str(&self) -> &str {
        match self {
            Self::MessageInbound => "message.inbound",
            Self::MessageStatus => "message.status",
            Self::Call(name) => name.as_str(),
            Self::Unknown(other) => other,
        }
    }

    /// Parses a wire value; never fails (see the type's docs).
    pub fn parse(value: &str) -> Self {
        match value {
            "message.inbound" => Self::MessageInbound,
            "message.status" => Self::MessageStatus,
            other if other.starts_with(CallEventName::PREFIX) => {
                Self::Call(CallEventName(other.into()))
            }
            other => Self::Unknown(other.to_owned()),
        }
    }
}

impl FromStr for EventType {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::parse(&value))
    }
}

/// The name of a call event, `call.<suffix>`; [`suffix`](Self::suffix) is Meta's call `event`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallEventName(Box<str>);

impl CallEventName {
    const PREFIX: &'static str = "call.";

    /// The full wire form, e.g. `"call.connect"`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after `call.`, e.g. `"connect"`.
    pub fn suffix(&self) -> &str {
        self.0.get(Self::PREFIX.len()..).unwrap_or_default()
    }
}

impl fmt::Display for CallEventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The envelope of a delivery, without its payload.
///
/// `account_id` and `occurred_at` are parsed when present and never required; an `occurred_at`
/// that is not RFC 3339 is kept as `None` rather than failing the delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Envelope {
    /// Unique id of the delivery; retries repeat it, so it is the deduplication key.
    pub event_id: Str,
    /// What the payload carries.
    pub event_type: EventType,
    /// The Vobiz account (`MA_…`), when present.
    pub account_id: Option<Str>,
    /// When Vobiz processed the event (not when the WhatsApp user acted).
    #[serde(with = "time::serde::rfc3339::option")]
    pub occurred_at: Option<OffsetDateTime>,
}

/// Why a body is not a Vobiz envelope.
#[derive(Debug)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The body is not valid UTF-8.
    InvalidUtf8(std::str::Utf8Error),
    /// The body is not a JSON object of the envelope's shape.
    MalformedJson(serde_json::Error),
    /// A required field (`event_id` or `event_type`) is missing.
    MissingField(&'static str),
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUtf8(_) => f.write_str("body is not valid UTF-8"),
            Self::MalformedJson(err) => write!(f, "body is not a valid envelope: {err}"),
            Self::MissingField(field) => write!(f, "envelope has no `{field}`"),
        }
    }
}

impl std::error::Error for EnvelopeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidUtf8(err) => Some(err),
            Self::MalformedJson(err) => Some(err),
            Self::MissingField(_) => None,
        }
    }
}

/// The envelope as it sits in the body: strings borrowed where JSON has no escapes, `payload`
/// left unparsed.
#[derive(Deserialize)]
struct WireEnvelope<'a> {
    #[serde(borrow)]
    event_id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    event_type: Option<JsonStr<'a>>,
    #[serde(borrow)]
    account_id: Option<JsonStr<'a>>,
    #[serde(borrow)]
    occurred_at: Option<JsonStr<'a>>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
}

/// A JSON string (an object key, or a field) borrowed from the input unless it has escapes.
/// (`Option<Cow<str>>` would always copy: serde borrows a `Cow` only when it is the field's
/// whole type.)
pub(crate) struct JsonStr<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonStrVisitor;
        impl<'de> serde::de::Visitor<'de> for JsonStrVisitor {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<JsonStr<'de>, E> {
                Ok(JsonStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(JsonStrVisitor)
    }
}

pub(crate) struct ParsedEnvelope {
    pub(crate) envelope: Envelope,
    /// Byte range of `payload` within the body; `None` when the body has no `payload`.
    pub(crate) payload: Option<std::ops::Range<usize>>,
}

impl Envelope {
    /// Parses the envelope of a raw delivery body, leaving the payload unparsed.
    ///
    /// # Errors
    ///
    /// [`EnvelopeError`] for invalid UTF-8, malformed JSON or a missing `event_id`/`event_type`.
    ///
    /// ```
    /// use vobiz_webhooks::{Envelope, EventType};
    ///
    /// let env = Envelope::from_slice(br#"{"event_id":"e1","event_type":"message.status","payload":{}}"#)?;
    /// assert_eq!(env.event_type, EventType::MessageStatus);
    /// assert_eq!(env.account_id, None);
    /// # Ok::<(), vobiz_webhooks::EnvelopeError>(())
    /// ```
    pub fn from_slice(body: &[u8]) -> Result<Self, EnvelopeError> {
        parse(body).map(|parsed| parsed.envelope)
    }
}

/// The envelope of `body`, its strings copied out of it.
pub(crate) fn parse(body: &[u8]) -> Result<ParsedEnvelope, EnvelopeError> {
    // Validate the whole body: the JSON checks below do not decode the strings they skip.
    let text = std::str::from_utf8(body).map_err(EnvelopeError::InvalidUtf8)?;
    parse_text(text, None)
}

/// The envelope of a delivery's `body`, its strings views of it, and the body as text (checked
/// UTF-8 once, for the typed payload too).
pub(crate) fn parse_shared(body: &Bytes) -> Result<(ParsedEnvelope, ByteString), EnvelopeError> {
    let text = ByteString::try_from(body.clone()).map_err(EnvelopeError::InvalidUtf8)?;
    let parsed = parse_text(&text, Some(&text))?;
    Ok((parsed, text))
}

/// The envelope of `text`; its strings are views of `source` when given (the same text).
fn parse_text(text: &str, source: Option<&ByteString>) -> Result<ParsedEnvelope, EnvelopeError> {
    match walk::fields(text) {
        Some(fields) => finish(fields, source),
        // Not JSON, not an envelope, or a shape the walker leaves to serde: serde_json decides,
        // and its error is the one reported.
        None => parse_with_serde_json(text, source),
    }
}

/// The envelope pass as serde_json alone does it: the walker's fallback and its reference.
fn parse_with_serde_json(
    text: &str,
    source: Option<&ByteString>,
) -> Result<ParsedEnvelope, EnvelopeError> {
    let wire: WireEnvelope<'_> =
        serde_json::from_str(text).map_err(EnvelopeError::MalformedJson)?;
    let payload = wire.payload.map(|raw| {
        // `raw` borrows from `text`, so its offset is a plain address difference.
        let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        start..start + raw.get().len()
    });
    finish(
        walk::Fields {
            event_id: wire.event_id.map(|JsonStr(value)| value),
            event_type: wire.event_type.map(|JsonStr(value)| value),
            account_id: wire.account_id.map(|JsonStr(value)| value),
            occurred_at: wire.occurred_at.map(|JsonStr(value)| value),
            payload,
        },
        source,
    )
}

/// The envelope from its fields as read from the body (by either pass); strings borrowed from
/// the body become views of `source` when given, else copies.
fn finish(
    fields: walk::Fields<'_>,
    source: Option<&ByteString>,
) -> Result<ParsedEnvelope, EnvelopeError> {
    let own = |value: Cow<'_, str>| match (value, source) {
        (Cow::Borrowed(part), Some(source)) => text::view(source, part),
        (Cow::Borrowed(part), None) => Str::from(part),
        (Cow::Owned(decoded), _) => Str::from(decoded),
    };
    let event_id = fields
        .event_id
        .ok_or(EnvelopeError::MissingField("event_id"))?;
    let event_type = fields
        .event_type
        .ok_or(EnvelopeError::MissingField("event_type"))?;
    let occurred_at = fields
        .occurred_at
        .and_then(|value| OffsetDateTime::parse(&value, &Rfc3339).ok());
    Ok(ParsedEnvelope {
        envelope: Envelope {
            event_id: own(event_id),
            event_type: EventType::parse(&event_type),
            account_id: fields.account_id.map(own),
            occurred_at,
        },
        payload: fields.payload,
    })
}

/// For the benchmarks only (not public API): the envelope pass by serde_json alone, as it was
/// before the walker, to compare the two in one run.
#[doc(hidden)]
pub fn __from_slice_with_serde_json(body: &[u8]) -> Result<Envelope, EnvelopeError> {
    let text = std::str::from_utf8(body).map_err(EnvelopeError::InvalidUtf8)?;
    parse_with_serde_json(text, None).map(|parsed| parsed.envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip() {
        for wire in [
            "message.inbound",
            "message.status",
            "call.connect",
            "call.call_recording_available",
            "contact.updated",
            "",
        ] {
            let ty = EventType::parse(wire);
            assert_eq!(ty.as_str(), wire);
            assert_eq!(ty.to_string(), wire);
        }
        assert!(matches!(EventType::parse("call."), EventType::Call(n) if n.suffix().is_empty()));
        assert!(matches!(
            EventType::parse("Message.Inbound"),
            EventType::Unknown(_)
        ));
    }

    #[test]
    fn payload_range_points_into_the_body() {
        let body = br#"{"payload": {"a": [1, 2]} , "event_id":"e\u0031","event_type":"x"}"#;
        let parsed = parse(body).expect("valid");
        assert_eq!(parsed.envelope.event_id, "e1");
        let range = parsed.payload.expect("payload");
        assert_eq!(&body[range], br#"{"a": [1, 2]}"#);
    }

    #[test]
    fn a_delivery_envelope_views_the_body_and_decodes_escapes() {
        let inside =
            |text: &ByteString, part: &str| text.as_bytes().as_ptr_range().contains(&part.as_ptr());
        // The walker's pass, then the serde_json pass (the array form is left to it).
        // An id longer than what `Str` keeps inline (32 bytes), so it can be a view.
        const ID: &str = "f4c1a0d2-3b6e-4a9c-8e2f-000000000001";
        for body in [
            &br#"{"event_id":"f4c1a0d2-3b6e-4a9c-8e2f-000000000001","event_type":"x","account_id":"M\u0041_1"}"#[..],
            &br#"["f4c1a0d2-3b6e-4a9c-8e2f-000000000001","x","M\u0041_1",null,null]"#[..],
        ] {
            let (parsed, text) = parse_shared(&Bytes::from_static(body)).expect("valid");
            let envelope = parsed.envelope;
            assert_eq!(envelope.event_id, ID);
            assert!(inside(&text, &envelope.event_id), "a view, not a copy");
            let account = envelope.account_id.expect("account");
            assert_eq!(account, "MA_1");
            assert!(!inside(&text, &account), "decoded into its own buffer");
        }
        assert!(matches!(
            parse_shared(&Bytes::from_static(b"\xff{}")),
            Err(EnvelopeError::InvalidUtf8(_))
        ));
    }

    #[test]
    fn invalid_input_is_an_error() {
        assert!(matches!(
            parse(b"\xff{}"),
            Err(EnvelopeError::InvalidUtf8(_))
        ));
        assert!(matches!(
            parse(b"{\"event_type\":\"x\",\"payload\":{},\"k\":\"\xc3\"}"),
            Err(EnvelopeError::InvalidUtf8(_))
        ));
        assert!(matches!(parse(b"[]"), Err(EnvelopeError::MalformedJson(_))));
        assert!(matches!(parse(b""), Err(EnvelopeError::MalformedJson(_))));
        assert!(matches!(
            parse(br#"{"event_id":1,"event_type":"x"}"#),
            Err(EnvelopeError::MalformedJson(_))
        ));
        assert!(matches!(
            parse(br#"{"event_type":"x"}"#),
            Err(EnvelopeError::MissingField("event_id"))
        ));
        assert!(matches!(
            parse(br#"{"event_id":"x"}"#),
            Err(EnvelopeError::MissingField("event_type"))
        ));
    }

    #[test]
    fn optional_fields_never_fail() {
        let parsed = parse(br#"{"event_id":"e","event_type":"x","occurred_at":"yesterday"}"#)
            .expect("valid");
        assert_eq!(parsed.envelope.occurred_at, None);
        assert_eq!(parsed.payload, None);
        let parsed = parse(
            br#"{"event_id":"e","event_type":"x","account_id":"MA_1","occurred_at":"2026-03-25T10:00:00Z"}"#,
        )
        .expect("valid");
        assert_eq!(parsed.envelope.account_id.as_deref(), Some("MA_1"));
        assert_eq!(
            parsed
                .envelope
                .occurred_at
                .map(OffsetDateTime::unix_timestamp),
            Some(1_774_432_800)
        );
    }
}
