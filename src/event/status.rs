//! `message.status`: status updates of messages the business sent (spec §3.2, §5).

use crate::event::Str;
use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::common::{ApiError, Metadata};
use super::de;
use super::{Change, ChangeValue, Changes};

/// A `message.status` event: every status update of every change.
///
/// The shortcuts ([`status`](Self::status), [`wamid`](Self::wamid), [`error`](Self::error), …)
/// read the first update; [`statuses`](Self::statuses) yields all of them.
///
/// ```
/// use vobiz_webhooks::event::StatusKind;
/// use vobiz_webhooks::{EventType, VobizEvent};
///
/// let payload = br#"{"statuses":[{"id":"wamid.1","status":"failed","timestamp":"1751142888",
///   "recipient_id":"918888888888","errors":[{"code":131049,"title":"Not delivered"}]}]}"#;
/// let VobizEvent::MessageStatus(st) = VobizEvent::from_payload(&EventType::MessageStatus, payload)
/// else { unreachable!() };
///
/// assert_eq!(st.status(), Some(&StatusKind::Failed));
/// assert_eq!(st.wamid(), Some("wamid.1"));
/// assert_eq!(st.error().and_then(|e| e.code), Some(131049));
/// // Out-of-order updates: a late `delivered` must not undo `read`.
/// assert!(!StatusKind::Delivered.supersedes(&StatusKind::Read));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StatusEvent {
    changes: Changes<StatusValue>,
}

impl Serialize for StatusEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("changes", self.changes.list())?;
        map.end()
    }
}

impl StatusEvent {
    pub(super) fn new(changes: Changes<StatusValue>) -> Self {
        Self { changes }
    }

    /// Whether the shortcuts answer without the model (tests hold the two to each other).
    #[cfg(test)]
    pub(crate) fn is_quick(&self) -> bool {
        self.changes.quick().is_some()
    }

    /// Every change of the payload, in order.
    pub fn changes(&self) -> &[Change<StatusValue>] {
        self.changes.list()
    }

    /// Every status update of every change, in order.
    pub fn statuses(&self) -> impl Iterator<Item = &StatusUpdate> {
        self.changes
            .values()
            .flat_map(|value| value.statuses.iter())
    }

    /// Value-level errors (`value.errors[]`) of every change.
    pub fn errors(&self) -> impl Iterator<Item = &ApiError> {
        self.changes.errors()
    }

    /// The first status update.
    pub fn first(&self) -> Option<&StatusUpdate> {
        self.statuses().next()
    }

    /// The first update's status.
    pub fn status(&self) -> Option<&StatusKind> {
        if let Some(quick) = self.changes.quick() {
            return quick.status.as_ref();
        }
        self.first()?.status.as_ref()
    }

    /// The wamid the first update is about.
    pub fn wamid(&self) -> Option<&str> {
        if let Some(quick) = self.changes.quick() {
            return quick.wamid.as_deref();
        }
        self.first()?.id.as_deref()
    }

    /// The first update's recipient (a phone number, or a group id).
    pub fn recipient_id(&self) -> Option<&str> {
        if let Some(quick) = self.changes.quick() {
            return quick.recipient_id.as_deref();
        }
        self.first()?.recipient_id.as_deref()
    }

    /// When the first update happened.
    pub fn timestamp(&self) -> Option<OffsetDateTime> {
        if let Some(quick) = self.changes.quick() {
            return quick.timestamp;
        }
        self.first()?.timestamp
    }

    /// The first error of the first update (set for `failed`).
    pub fn error(&self) -> Option<&ApiError> {
        self.first()?.errors.first()
    }

    /// The first change's WABA id (`entry[].id`), when the payload carried it.
    pub fn waba_id(&self) -> Option<&str> {
        if let Some(quick) = self.changes.quick() {
            return quick.origin.waba_id.as_deref();
        }
        self.changes.waba_id()
    }

    /// The first change's business phone number id.
    pub fn phone_number_id(&self) -> Option<&str> {
        if let Some(quick) = self.changes.quick() {
            return quick.origin.phone_number_id.as_deref();
        }
        self.changes.phone_number_id()
    }

    /// The payload exactly as received.
    pub fn raw_payload(&self) -> &RawValue {
        self.changes.raw()
    }
}

/// The change `value` of a `message.status` payload.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StatusValue {
    /// Always `"whatsapp"`.
    #[serde(default, deserialize_with = "de::string")]
    pub messaging_product: Option<Str>,
    /// The business number that sent the messages.
    #[serde(default, deserialize_with = "de::obj")]
    pub metadata: Option<Metadata>,
    /// The status updates.
    #[serde(default, deserialize_with = "de::vec")]
    pub statuses: Vec<StatusUpdate>,
    /// Value-level errors.
    #[serde(default, deserialize_with = "de::vec")]
    pub errors: Vec<ApiError>,
}

/// One entry of `statuses[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StatusUpdate {
    /// The wamid of the message (Vobiz's `meta_message_id`).
    #[serde(default, deserialize_with = "de::string")]
    pub id: Option<Str>,
    /// The status.
    #[serde(default, deserialize_with = "StatusKind::lenient")]
    pub status: Option<StatusKind>,
    /// When it happened.
    #[serde(
        default,
        deserialize_with = "de::timestamp",
        serialize_with = "de::ser_timestamp"
    )]
    pub timestamp: Option<OffsetDateTime>,
    /// The user's number, or a group id for group sends.
    #[serde(default, deserialize_with = "de::string")]
    pub recipient_id: Option<Str>,
    /// `group` for group sends.
    #[serde(default, deserialize_with = "de::string")]
    pub recipient_type: Option<Str>,
    /// The user inside a group.
    #[serde(default, deserialize_with = "de::string")]
    pub recipient_participant_id: Option<Str>,
    /// The recipient's identity key hash (identity-change check).
    #[serde(default, deserialize_with = "de::string")]
    pub recipient_identity_key_hash: Option<Str>,
    /// Echo of the data set when sending.
    #[serde(default, deserialize_with = "de::string")]
    pub biz_opaque_callback_data: Option<Str>,
    /// Conversation the message belongs to (older Graph versions / entry-point windows).
    #[serde(default, deserialize_with = "de::obj")]
    pub conversation: Option<Conversation>,
    /// Pricing of the message.
    #[serde(default, deserialize_with = "de::obj")]
    pub pricing: Option<Pricing>,
    /// Why it failed.
    #[serde(default, deserialize_with = "de::vec")]
    pub errors: Vec<ApiError>,
}

impl StatusUpdate {
    /// Whether the recipient is a group.
    pub fn is_group(&self) -> bool {
        self.recipient_type.as_deref() == Some("group")
    }

    /// Whether this update should replace `previous` for the same wamid (see
    /// [`StatusKind::supersedes`]); updates without a status never do.
    pub fn supersedes(&self, previous: &StatusUpdate) -> bool {
        match (&self.status, &previous.status) {
            (Some(new), Some(old)) => new.supersedes(old),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// `statuses[].conversation`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Conversation {
    /// Conversation id.
    #[serde(default, deserialize_with = "de::string")]
    pub id: Option<Str>,
    /// When the conversation window closes (on `sent` only).
    #[serde(
        default,
        deserialize_with = "de::timestamp",
        serialize_with = "de::ser_timestamp"
    )]
    pub expiration_timestamp: Option<OffsetDateTime>,
    /// What opened it.
    #[serde(default, deserialize_with = "de::obj")]
    pub origin: Option<ConversationOrigin>,
}

/// `conversation.origin`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConversationOrigin {
    /// `service`, `marketing`, `utility`, `authentication`, ….
    #[serde(rename = "type", default, deserialize_with = "de::string")]
    pub kind: Option<Str>,
}

/// `statuses[].pricing`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Pricing {
    /// Whether the message is billable (being deprecated by Meta).
    #[serde(default, deserialize_with = "de::boolean")]
    pub billable: Option<bool>,
    /// `PMP` (or `CBP` before July 2025).
    #[serde(default, deserialize_with = "de::string")]
    pub pricing_model: Option<Str>,
    /// `regular`, `free_customer_service`, `free_entry_point`.
    #[serde(rename = "type", default, deserialize_with = "de::string")]
    pub kind: Option<Str>,
    /// `marketing`, `utility`, `service`, `authentication`, ….
    #[serde(default, deserialize_with = "de::string")]
    pub category: Option<Str>,
}

/// A message status. Parsing is case-insensitive; unknown values (e.g. Meta's `played`) are
/// kept as [`Other`](Self::Other).
///
/// ```
/// use vobiz_webhooks::event::StatusKind;
///
/// assert_eq!(StatusKind::parse("READ"), StatusKind::Read);
/// assert_eq!(StatusKind::parse("played"), StatusKind::Other("played".into()));
/// assert!(StatusKind::Read.supersedes(&StatusKind::Sent));
/// assert!(StatusKind::Failed.supersedes(&StatusKind::Read));
/// assert!(!StatusKind::Read.supersedes(&StatusKind::Failed)); // failed is terminal
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusKind {
    /// Accepted by WhatsApp (one tick).
    Sent,
    /// Reached the device (two ticks).
    Delivered,
    /// Opened by the user (blue ticks).
    Read,
    /// Could not be delivered; see the update's `errors`. Terminal.
    Failed,
    /// Any other value, verbatim.
    Other(String),
}

impl StatusKind {
    /// Parses a wire value, case-insensitively; never fails.
    pub fn parse(value: &str) -> Self {
        const KNOWN: [(&str, StatusKind); 4] = [
            ("sent", StatusKind::Sent),
            ("delivered", StatusKind::Delivered),
            ("read", StatusKind::Read),
            ("failed", StatusKind::Failed),
        ];
        KNOWN
            .into_iter()
            .find(|(name, _)| value.eq_ignore_ascii_case(name))
            .map_or_else(|| Self::Other(value.to_owned()), |(_, kind)| kind)
    }

    /// The wire value (lowercase for the known ones).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Other(other) => other,
        }
    }

    /// Rank of the delivery progress: `sent` 1 < `delivered` 2 < `read` 3; `failed` 4
    /// (terminal); unknown statuses have no rank.
    pub fn precedence(&self) -> Option<u8> {
        match self {
            Self::Sent => Some(1),
            Self::Delivered => Some(2),
            Self::Read => Some(3),
            Self::Failed => Some(4),
            Self::Other(_) => None,
        }
    }

    /// Whether `self`, arriving after `previous`, is news rather than a stale out-of-order
    /// update: nothing supersedes `failed`; `failed` supersedes everything else; known
    /// statuses supersede lower ranks only; an unknown status is always news, and is
    /// superseded by any known one.
    pub fn supersedes(&self, previous: &StatusKind) -> bool {
        match (self.precedence(), previous.precedence()) {
            (_, Some(4)) => false,
            (Some(new), Some(old)) => new > old,
            _ => true,
        }
    }

    /// Whether no later status can follow (`failed`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Failed)
    }

    /// Compares the delivery progress of two statuses; `None` when either is unknown.
    pub fn cmp_progress(&self, other: &StatusKind) -> Option<Ordering> {
        Some(self.precedence()?.cmp(&other.precedence()?))
    }

    fn lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Self>, D::Error> {
        de::string(d).map(|s| s.map(|s| Self::parse(&s)))
    }
}

impl fmt::Display for StatusKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for StatusKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for StatusKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::lenient(d)?.unwrap_or_else(|| Self::Other(String::new())))
    }
}

impl ChangeValue for StatusValue {
    type Quick = super::quick::status::Quick;

    fn read_quick(payload: &str) -> Option<Self::Quick> {
        super::quick::read(payload)
    }

    fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    fn errors(&self) -> &[ApiError] {
        &self.errors
    }
}
