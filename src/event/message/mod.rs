//! `message.inbound`: messages WhatsApp users send to the business (spec §3.1, §4).

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::common::{ApiError, Contact, Metadata};
use super::{Change, ChangeValue, Changes};

mod content;
mod value;
mod wire;

pub use content::{
    Button, CallPermissionReply, ContactAddress, ContactEmail, ContactName, ContactOrg,
    ContactPhone, ContactUrl, Interactive, Location, Media, NfmReply, Order, ProductItem, Reaction,
    Reply, SharedContact, System, Text,
};
pub use value::{
    Context, InboundValue, Message, MessageContent, OtherContent, Referral, ReferredProduct,
    WelcomeMessage,
};

/// A `message.inbound` event: every message of every change, with the senders' profiles.
///
/// The shortcuts ([`text`](Self::text), [`from`](Self::from), [`wamid`](Self::wamid), …) read
/// the first message; [`messages`](Self::messages) yields all of them.
///
/// ```
/// use vobiz_webhooks::event::MessageContent;
/// use vobiz_webhooks::{EventType, VobizEvent};
///
/// // A bare change `value` works as well as Meta's full notification.
/// let payload = br#"{"contacts":[{"wa_id":"918888888888","profile":{"name":"Asha"}}],
///   "messages":[{"from":"918888888888","id":"wamid.2","timestamp":"1711360800","type":"image",
///     "image":{"id":"MEDIA_ID","mime_type":"image/jpeg","sha256":"abc=","caption":"my parcel"}}]}"#;
/// let VobizEvent::MessageInbound(msg) = VobizEvent::from_payload(&EventType::MessageInbound, payload)
/// else { unreachable!() };
///
/// assert_eq!(msg.media_id(), Some("MEDIA_ID"));
/// assert_eq!(msg.mime_type(), Some("image/jpeg"));
/// assert_eq!(msg.sender_name(), Some("Asha"));
/// for message in msg.messages() {
///     if let MessageContent::Image(image) = &message.content {
///         assert_eq!(image.caption.as_deref(), Some("my parcel"));
///     }
/// }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct InboundEvent {
    changes: Changes<InboundValue>,
}

impl Serialize for InboundEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("changes", self.changes.list())?;
        map.end()
    }
}

impl InboundEvent {
    pub(super) fn new(changes: Changes<InboundValue>) -> Self {
        Self { changes }
    }

    /// Whether the shortcuts answer without the model (tests hold the two to each other).
    #[cfg(test)]
    pub(crate) fn is_quick(&self) -> bool {
        self.changes.quick().is_some()
    }

    /// Every change of the payload, in order.
    pub fn changes(&self) -> &[Change<InboundValue>] {
        self.changes.list()
    }

    /// Every message of every change, in order.
    pub fn messages(&self) -> impl Iterator<Item = &Message> {
        self.changes
            .values()
            .flat_map(|value| value.messages.iter())
    }

    /// Every sender profile (`value.contacts[]`) of every change.
    pub fn contacts(&self) -> impl Iterator<Item = &Contact> {
        self.changes
            .values()
            .flat_map(|value| value.contacts.iter())
    }

    /// Value-level errors (`value.errors[]`) of every change.
    pub fn errors(&self) -> impl Iterator<Item = &ApiError> {
        self.changes.errors()
    }

    /// The first message.
    pub fn message(&self) -> Option<&Message> {
        self.messages().next()
    }

    /// The profile of `message`'s sender: the contact of the same change whose `wa_id`
    /// (or `user_id`) matches, else that change's only contact.
    ///
    /// `message` must come from this event (e.g. from [`messages`](Self::messages)); for any
    /// other message this is `None`.
    pub fn sender_of(&self, message: &Message) -> Option<&Contact> {
        let value = self
            .changes
            .values()
            .find(|value| value.messages.iter().any(|m| std::ptr::eq(m, message)))?;
        let contacts = &value.contacts;
        contacts
            .iter()
            .find(|c| {
                (c.wa_id.is_some() && c.wa_id == message.from)
                    || (c.user_id.is_some() && c.user_id == message.from_user_id)
            })
            .or_else(|| (contacts.len() == 1).then(|| contacts.first()).flatten())
    }

    /// The profile of the first message's sender (or the first contact when there is no
    /// message).
    pub fn sender(&self) -> Option<&Contact> {
        match self.message() {
            Some(message) => self.sender_of(message),
            None => self.contacts().next(),
        }
    }

    /// The first sender's WhatsApp profile name.
    pub fn sender_name(&self) -> Option<&str> {
        if let Some(quick) = self.changes.quick() {
            return quick.sender_name.as_deref();
        }
        self.sender()?.name()
    }

    /// The first message's sender number (`from`; absent when Meta withholds the number).
    pub fn from(&self) -> Option<&str> {
        if let Some(quick) = self.changes.quick() {
            return quick.from.as_deref();
        }
        self.message()?.from.as_deref()
    }

    /// The first message's id (`wamid.…`).
    pub fn wamid(&self) -> Option<&str> {
        if let Some(quick) = self.changes.quick() {
            return quick.wamid.as_deref();
        }
        self.message()?.id.as_deref()
    }

    /// The first message's type name, e.g. `"text"`.
    pub fn kind(&self) -> Option<&str> {
        if self.changes.quick().is_some() {
            return Some("text");
        }
        Some(self.message()?.kind())
    }

    /// When the first message was sent (Meta's `timestamp`).
    pub fn timestamp(&self) -> Option<OffsetDateTime> {
        if let Some(quick) = self.changes.quick() {
            return quick.timestamp;
        }
        self.message()?.timestamp
    }

    /// The first message's text body, when it is a `text` message.
    pub fn text(&self) -> Option<&str> {
        if let Some(quick) = self.changes.quick() {
            return quick.text.as_deref();
        }
        self.message()?.text()
    }

    /// The first message's media, when it is an image, video, audio, document or sticker.
    pub fn media(&self) -> Option<&Media> {
        self.message()?.media()
    }

    /// The first message's media id (download it with the Meta media API).
    pub fn media_id(&self) -> Option<&str> {
        self.media()?.id.as_deref()
    }

    /// The first message's media MIME type.
    pub fn mime_type(&self) -> Option<&str> {
        self.media()?.mime_type.as_deref()
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

impl ChangeValue for InboundValue {
    type Quick = crate::event::quick::inbound::Quick;

    fn read_quick(payload: &str) -> Option<Self::Quick> {
        crate::event::quick::read(payload)
    }

    fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    fn errors(&self) -> &[ApiError] {
        &self.errors
    }
}
