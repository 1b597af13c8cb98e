//! `message.inbound`: messages WhatsApp users send to the business (spec §3.1, §4).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::common::{ApiError, Contact, Metadata};
use super::de::{self as lenient, Lenient, Seq, Str, Time};
use super::{Change, ChangeValue, Changes, RawPayload};
use crate::envelope::JsonStr;

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
    pub(super) fn new(changes: Vec<Change<InboundValue>>, raw: RawPayload) -> Self {
        Self {
            changes: Changes::new(changes, raw),
        }
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
        self.sender()?.name()
    }

    /// The first message's sender number (`from`; absent when Meta withholds the number).
    pub fn from(&self) -> Option<&str> {
        self.message()?.from.as_deref()
    }

    /// The first message's id (`wamid.…`).
    pub fn wamid(&self) -> Option<&str> {
        self.message()?.id.as_deref()
    }

    /// The first message's type name, e.g. `"text"`.
    pub fn kind(&self) -> Option<&str> {
        Some(self.message()?.kind())
    }

    /// When the first message was sent (Meta's `timestamp`).
    pub fn timestamp(&self) -> Option<OffsetDateTime> {
        self.message()?.timestamp
    }

    /// The first message's text body, when it is a `text` message.
    pub fn text(&self) -> Option<&str> {
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
        self.changes.waba_id()
    }

    /// The first change's business phone number id.
    pub fn phone_number_id(&self) -> Option<&str> {
        self.changes.phone_number_id()
    }

    /// The payload exactly as received.
    pub fn raw_payload(&self) -> &RawValue {
        self.changes.raw()
    }
}

/// The change `value` of a `message.inbound` payload.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct InboundValue {
    /// Always `"whatsapp"`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub messaging_product: Option<String>,
    /// The business number the messages were sent to.
    #[serde(default, deserialize_with = "lenient::obj")]
    pub metadata: Option<Metadata>,
    /// The senders' profiles.
    #[serde(default, deserialize_with = "lenient::vec")]
    pub contacts: Vec<Contact>,
    /// The messages.
    #[serde(default, deserialize_with = "lenient::vec")]
    pub messages: Vec<Message>,
    /// Value-level errors.
    #[serde(default, deserialize_with = "lenient::vec")]
    pub errors: Vec<ApiError>,
}

/// One entry of `messages[]`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Message {
    /// Sender's number; Meta omits it when the number is unavailable.
    pub from: Option<String>,
    /// Sender's business-scoped user id.
    pub from_user_id: Option<String>,
    /// Sender's parent business-scoped user id.
    pub from_parent_user_id: Option<String>,
    /// The message id, `wamid.…` (deduplicate on it: Meta may redeliver).
    pub id: Option<String>,
    /// When the user sent it.
    pub timestamp: Option<OffsetDateTime>,
    /// The group, for group messages.
    pub group_id: Option<String>,
    /// What the message replies to or was forwarded from.
    pub context: Option<Context>,
    /// The Click-to-WhatsApp ad the user came from.
    pub referral: Option<Referral>,
    /// Errors, e.g. of an `unsupported` message.
    pub errors: Vec<ApiError>,
    /// The type-specific content.
    pub content: MessageContent,
}

impl Message {
    /// The type name, e.g. `"text"`, or the unknown type's name.
    pub fn kind(&self) -> &str {
        self.content.kind()
    }

    /// The text body of a `text` message.
    pub fn text(&self) -> Option<&str> {
        match &self.content {
            MessageContent::Text(text) => text.body.as_deref(),
            _ => None,
        }
    }

    /// The media of an image, video, audio, document or sticker message.
    pub fn media(&self) -> Option<&Media> {
        match &self.content {
            MessageContent::Image(m)
            | MessageContent::Video(m)
            | MessageContent::Audio(m)
            | MessageContent::Document(m)
            | MessageContent::Sticker(m) => Some(m),
            _ => None,
        }
    }

    /// The wamid this message replies to (`context.id`).
    pub fn reply_to(&self) -> Option<&str> {
        self.context.as_ref()?.id.as_deref()
    }
}

/// The type-specific part of a message, chosen by its `type`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessageContent {
    /// `text`.
    Text(Text),
    /// `image`.
    Image(Media),
    /// `video`.
    Video(Media),
    /// `audio` (see [`Media::voice`] for voice notes).
    Audio(Media),
    /// `document`.
    Document(Media),
    /// `sticker`.
    Sticker(Media),
    /// `location`.
    Location(Location),
    /// `contacts`: contact cards the user shared.
    Contacts(Vec<SharedContact>),
    /// `button`: a template's quick-reply button was tapped.
    Button(Button),
    /// `interactive`: a reply to an interactive message.
    Interactive(Interactive),
    /// `reaction`.
    Reaction(Reaction),
    /// `order`.
    Order(Order),
    /// `system`, e.g. the user changed number.
    System(System),
    /// `unsupported`: see [`Message::errors`].
    Unsupported,
    /// A type this crate does not know (or a known type without its object), kept raw.
    Other(OtherContent),
}

impl MessageContent {
    /// The wire type name.
    pub fn kind(&self) -> &str {
        match self {
            Self::Text(_) => "text",
            Self::Image(_) => "image",
            Self::Video(_) => "video",
            Self::Audio(_) => "audio",
            Self::Document(_) => "document",
            Self::Sticker(_) => "sticker",
            Self::Location(_) => "location",
            Self::Contacts(_) => "contacts",
            Self::Button(_) => "button",
            Self::Interactive(_) => "interactive",
            Self::Reaction(_) => "reaction",
            Self::Order(_) => "order",
            Self::System(_) => "system",
            Self::Unsupported => "unsupported",
            Self::Other(other) => &other.kind,
        }
    }
}

/// Content of a message type this crate does not know.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OtherContent {
    /// The message's `type`, e.g. `"edit"` (empty when absent).
    pub kind: String,
    /// The raw object under the key named by `type`, when present.
    pub raw: Option<Box<RawValue>>,
}

impl PartialEq for OtherContent {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.raw.as_ref().map(|r| r.get()) == other.raw.as_ref().map(|r| r.get())
    }
}

/// `text`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Text {
    /// The text.
    #[serde(default, deserialize_with = "lenient::string")]
    pub body: Option<String>,
}

/// `image`, `video`, `audio`, `document` or `sticker`: a media object.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Media {
    /// Meta media id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    /// MIME type, e.g. `image/jpeg` or `audio/ogg; codecs=opus`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub mime_type: Option<String>,
    /// Base64 SHA-256 of the file.
    #[serde(default, deserialize_with = "lenient::string")]
    pub sha256: Option<String>,
    /// Caption (image, video, document).
    #[serde(default, deserialize_with = "lenient::string")]
    pub caption: Option<String>,
    /// File name (document).
    #[serde(default, deserialize_with = "lenient::string")]
    pub filename: Option<String>,
    /// Direct download URL, when Meta provides one.
    #[serde(default, deserialize_with = "lenient::string")]
    pub url: Option<String>,
    /// `true` for a voice note (audio).
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub voice: Option<bool>,
    /// `true` for an animated sticker.
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub animated: Option<bool>,
}

impl Media {
    /// Whether this is a voice note.
    pub fn is_voice(&self) -> bool {
        self.voice == Some(true)
    }
}

/// `location`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Location {
    /// Latitude (a number, or a numeric string on the wire).
    #[serde(default, deserialize_with = "lenient::float")]
    pub latitude: Option<f64>,
    /// Longitude (a number, or a numeric string on the wire).
    #[serde(default, deserialize_with = "lenient::float")]
    pub longitude: Option<f64>,
    /// Place name.
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    /// Address.
    #[serde(default, deserialize_with = "lenient::string")]
    pub address: Option<String>,
    /// URL of the place.
    #[serde(default, deserialize_with = "lenient::string")]
    pub url: Option<String>,
}

/// A contact card shared in a `contacts` message.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct SharedContact {
    /// Name.
    #[serde(default, deserialize_with = "lenient::obj")]
    pub name: Option<ContactName>,
    /// Phone numbers.
    #[serde(default, deserialize_with = "lenient::vec")]
    pub phones: Vec<ContactPhone>,
    /// E-mail addresses.
    #[serde(default, deserialize_with = "lenient::vec")]
    pub emails: Vec<ContactEmail>,
    /// Postal addresses.
    #[serde(default, deserialize_with = "lenient::vec")]
    pub addresses: Vec<ContactAddress>,
    /// Organisation.
    #[serde(default, deserialize_with = "lenient::obj")]
    pub org: Option<ContactOrg>,
    /// Web sites.
    #[serde(default, deserialize_with = "lenient::vec")]
    pub urls: Vec<ContactUrl>,
    /// Birthday, `YYYY-MM-DD`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub birthday: Option<String>,
    /// The card as a vCard, when Meta includes it.
    #[serde(default, deserialize_with = "lenient::string")]
    pub vcard: Option<String>,
}

/// `contacts[].name` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactName {
    /// Full name as displayed.
    #[serde(default, deserialize_with = "lenient::string")]
    pub formatted_name: Option<String>,
    /// First name.
    #[serde(default, deserialize_with = "lenient::string")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, deserialize_with = "lenient::string")]
    pub last_name: Option<String>,
    /// Middle name.
    #[serde(default, deserialize_with = "lenient::string")]
    pub middle_name: Option<String>,
    /// Suffix.
    #[serde(default, deserialize_with = "lenient::string")]
    pub suffix: Option<String>,
    /// Prefix.
    #[serde(default, deserialize_with = "lenient::string")]
    pub prefix: Option<String>,
}

/// `contacts[].phones[]` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactPhone {
    /// The number as written.
    #[serde(default, deserialize_with = "lenient::string")]
    pub phone: Option<String>,
    /// WhatsApp id, when the number is on WhatsApp.
    #[serde(default, deserialize_with = "lenient::string")]
    pub wa_id: Option<String>,
    /// Label, e.g. `HOME`.
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<String>,
}

/// `contacts[].emails[]` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactEmail {
    /// The address.
    #[serde(default, deserialize_with = "lenient::string")]
    pub email: Option<String>,
    /// Label, e.g. `WORK`.
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<String>,
}

/// `contacts[].addresses[]` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactAddress {
    /// Street.
    #[serde(default, deserialize_with = "lenient::string")]
    pub street: Option<String>,
    /// City.
    #[serde(default, deserialize_with = "lenient::string")]
    pub city: Option<String>,
    /// State.
    #[serde(default, deserialize_with = "lenient::string")]
    pub state: Option<String>,
    /// Postal code.
    #[serde(default, deserialize_with = "lenient::string")]
    pub zip: Option<String>,
    /// Country name.
    #[serde(default, deserialize_with = "lenient::string")]
    pub country: Option<String>,
    /// ISO country code.
    #[serde(default, deserialize_with = "lenient::string")]
    pub country_code: Option<String>,
    /// Label, e.g. `HOME`.
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<String>,
}

/// `contacts[].org` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactOrg {
    /// Company.
    #[serde(default, deserialize_with = "lenient::string")]
    pub company: Option<String>,
    /// Department.
    #[serde(default, deserialize_with = "lenient::string")]
    pub department: Option<String>,
    /// Job title.
    #[serde(default, deserialize_with = "lenient::string")]
    pub title: Option<String>,
}

/// `contacts[].urls[]` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactUrl {
    /// The URL.
    #[serde(default, deserialize_with = "lenient::string")]
    pub url: Option<String>,
    /// Label, e.g. `WORK`.
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<String>,
}

/// `button`: the tapped quick-reply button of a template (see [`Message::context`] for the
/// template's wamid).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Button {
    /// The payload set on the button.
    #[serde(default, deserialize_with = "lenient::string")]
    pub payload: Option<String>,
    /// The button's label.
    #[serde(default, deserialize_with = "lenient::string")]
    pub text: Option<String>,
}

/// `interactive`: a reply to an interactive message, chosen by `interactive.type`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Interactive {
    /// `button_reply`: a reply button was tapped.
    ButtonReply(Reply),
    /// `list_reply`: a list row was chosen.
    ListReply(Reply),
    /// `nfm_reply`: a Flow or address message was completed.
    NfmReply(NfmReply),
    /// `call_permission_reply`: the user answered a call-permission request.
    CallPermissionReply(CallPermissionReply),
    /// A reply type this crate does not know, kept raw.
    Other(OtherContent),
}

impl Interactive {
    /// The wire `interactive.type`.
    pub fn kind(&self) -> &str {
        match self {
            Self::ButtonReply(_) => "button_reply",
            Self::ListReply(_) => "list_reply",
            Self::NfmReply(_) => "nfm_reply",
            Self::CallPermissionReply(_) => "call_permission_reply",
            Self::Other(other) => &other.kind,
        }
    }

    /// The chosen id of a button or list reply.
    pub fn reply_id(&self) -> Option<&str> {
        match self {
            Self::ButtonReply(reply) | Self::ListReply(reply) => reply.id.as_deref(),
            _ => None,
        }
    }
}

/// `button_reply` / `list_reply`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Reply {
    /// The id the business gave the button or row.
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    /// Its title.
    #[serde(default, deserialize_with = "lenient::string")]
    pub title: Option<String>,
    /// The row's description (list replies).
    #[serde(default, deserialize_with = "lenient::string")]
    pub description: Option<String>,
}

/// `nfm_reply`: a completed Flow or address message.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct NfmReply {
    /// `flow`, `address_message`, ….
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    /// Body text.
    #[serde(default, deserialize_with = "lenient::string")]
    pub body: Option<String>,
    /// The response, a JSON document encoded as a string.
    #[serde(default, deserialize_with = "lenient::string")]
    pub response_json: Option<String>,
}

impl NfmReply {
    /// Parses [`response_json`](Self::response_json) into your type.
    ///
    /// # Errors
    ///
    /// When it is absent (`Ok(None)` is not used: absent reads as JSON `null`) or does not
    /// match `T`.
    pub fn response<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.response_json.as_deref().unwrap_or("null"))
    }
}

/// `call_permission_reply`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct CallPermissionReply {
    /// `accept` or `reject`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub response: Option<String>,
    /// Whether the permission is permanent.
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub is_permanent: Option<bool>,
    /// When a temporary permission expires.
    #[serde(
        default,
        deserialize_with = "lenient::timestamp",
        serialize_with = "lenient::ser_timestamp"
    )]
    pub expiration_timestamp: Option<OffsetDateTime>,
    /// `user_action` or `automatic`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub response_source: Option<String>,
}

impl CallPermissionReply {
    /// Whether the user accepted (case-insensitive `accept`).
    pub fn accepted(&self) -> bool {
        self.response
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("accept"))
    }
}

/// `reaction`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Reaction {
    /// The wamid reacted to.
    #[serde(default, deserialize_with = "lenient::string")]
    pub message_id: Option<String>,
    /// The emoji; absent when the user removed the reaction.
    #[serde(default, deserialize_with = "lenient::string")]
    pub emoji: Option<String>,
}

impl Reaction {
    /// Whether this removes a reaction (no emoji).
    pub fn is_removal(&self) -> bool {
        self.emoji.as_deref().is_none_or(str::is_empty)
    }
}

/// `order`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Order {
    /// Catalog id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub catalog_id: Option<String>,
    /// Text sent with the order.
    #[serde(default, deserialize_with = "lenient::string")]
    pub text: Option<String>,
    /// Ordered products.
    #[serde(default, deserialize_with = "lenient::vec")]
    pub product_items: Vec<ProductItem>,
}

/// `order.product_items[]`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ProductItem {
    /// Product id in the catalog.
    #[serde(default, deserialize_with = "lenient::string")]
    pub product_retailer_id: Option<String>,
    /// Quantity.
    #[serde(default, deserialize_with = "lenient::float")]
    pub quantity: Option<f64>,
    /// Unit price.
    #[serde(default, deserialize_with = "lenient::float")]
    pub item_price: Option<f64>,
    /// ISO 4217 currency.
    #[serde(default, deserialize_with = "lenient::string")]
    pub currency: Option<String>,
}

/// `system`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct System {
    /// Human-readable description.
    #[serde(default, deserialize_with = "lenient::string")]
    pub body: Option<String>,
    /// The user's new WhatsApp id, for `user_changed_number`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub wa_id: Option<String>,
    /// The user's business-scoped id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub user_id: Option<String>,
    /// The user's parent business-scoped id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub parent_user_id: Option<String>,
    /// `user_changed_number`, ….
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<String>,
}

/// `messages[].context`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Context {
    /// Sender of the message replied to (the business number for replies to it).
    #[serde(default, deserialize_with = "lenient::string")]
    pub from: Option<String>,
    /// The wamid (or `wacid.…`) replied to.
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    /// Forwarded up to five times.
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub forwarded: Option<bool>,
    /// Forwarded more than five times.
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub frequently_forwarded: Option<bool>,
    /// The catalog product the user asked about.
    #[serde(default, deserialize_with = "lenient::obj")]
    pub referred_product: Option<ReferredProduct>,
}

/// `context.referred_product`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ReferredProduct {
    /// Catalog id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub catalog_id: Option<String>,
    /// Product id in the catalog.
    #[serde(default, deserialize_with = "lenient::string")]
    pub product_retailer_id: Option<String>,
}

/// `messages[].referral`: the Click-to-WhatsApp ad the user came from.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Referral {
    /// The ad's URL.
    #[serde(default, deserialize_with = "lenient::string")]
    pub source_url: Option<String>,
    /// The ad's id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub source_id: Option<String>,
    /// `ad`, ….
    #[serde(default, deserialize_with = "lenient::string")]
    pub source_type: Option<String>,
    /// Ad body.
    #[serde(default, deserialize_with = "lenient::string")]
    pub body: Option<String>,
    /// Ad headline.
    #[serde(default, deserialize_with = "lenient::string")]
    pub headline: Option<String>,
    /// `image` or `video`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub media_type: Option<String>,
    /// Image URL.
    #[serde(default, deserialize_with = "lenient::string")]
    pub image_url: Option<String>,
    /// Video URL.
    #[serde(default, deserialize_with = "lenient::string")]
    pub video_url: Option<String>,
    /// Thumbnail URL.
    #[serde(default, deserialize_with = "lenient::string")]
    pub thumbnail_url: Option<String>,
    /// Click id (absent for Status ad placements).
    #[serde(default, deserialize_with = "lenient::string")]
    pub ctwa_clid: Option<String>,
    /// The ad's welcome message.
    #[serde(default, deserialize_with = "lenient::obj")]
    pub welcome_message: Option<WelcomeMessage>,
}

/// `referral.welcome_message`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct WelcomeMessage {
    /// The text.
    #[serde(default, deserialize_with = "lenient::string")]
    pub text: Option<String>,
}

/// Takes the raw object stored under `kind` among the unknown keys.
fn take_raw(extra: Vec<(String, Box<RawValue>)>, kind: &str) -> Option<Box<RawValue>> {
    extra.into_iter().find(|(k, _)| k == kind).map(|(_, v)| v)
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a WhatsApp message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let (mut from, mut from_user_id, mut from_parent_user_id) = (None, None, None);
        let (mut id, mut timestamp, mut group_id, mut kind) = (None, None, None, None);
        let (mut context, mut referral, mut errors) = (None, None, Vec::new());
        let (mut text, mut image, mut video, mut audio) = (None, None, None, None);
        let (mut document, mut sticker, mut location, mut contacts) = (None, None, None, None);
        let (mut button, mut interactive, mut reaction) = (None, None, None);
        let (mut order, mut system) = (None, None);
        let mut extra: Vec<(String, Box<RawValue>)> = Vec::new();
        while let Some(JsonStr(key)) = map.next_key()? {
            match &*key {
                "from" => from = map.next_value::<Str>()?.0,
                "from_user_id" => from_user_id = map.next_value::<Str>()?.0,
                "from_parent_user_id" => from_parent_user_id = map.next_value::<Str>()?.0,
                "id" => id = map.next_value::<Str>()?.0,
                "timestamp" => timestamp = map.next_value::<Time>()?.0,
                "group_id" => group_id = map.next_value::<Str>()?.0,
                "type" => kind = map.next_value::<Str>()?.0,
                "context" => context = map.next_value::<Lenient<Context>>()?.0,
                "referral" => referral = map.next_value::<Lenient<Referral>>()?.0,
                "errors" => errors = map.next_value::<Seq<ApiError>>()?.0,
                "text" => text = map.next_value::<Lenient<Text>>()?.0,
                "image" => image = map.next_value::<Lenient<Media>>()?.0,
                "video" => video = map.next_value::<Lenient<Media>>()?.0,
                "audio" => audio = map.next_value::<Lenient<Media>>()?.0,
                "document" => document = map.next_value::<Lenient<Media>>()?.0,
                "sticker" => sticker = map.next_value::<Lenient<Media>>()?.0,
                "location" => location = map.next_value::<Lenient<Location>>()?.0,
                "contacts" => contacts = Some(map.next_value::<Seq<SharedContact>>()?.0),
                "button" => button = map.next_value::<Lenient<Button>>()?.0,
                "interactive" => interactive = map.next_value::<Lenient<Interactive>>()?.0,
                "reaction" => reaction = map.next_value::<Lenient<Reaction>>()?.0,
                "order" => order = map.next_value::<Lenient<Order>>()?.0,
                "system" => system = map.next_value::<Lenient<System>>()?.0,
                _ => extra.push((key.into_owned(), map.next_value()?)),
            }
        }
        let kind = kind.unwrap_or_default();
        let known = match kind.as_str() {
            "text" => text.map(MessageContent::Text),
            "image" => image.map(MessageContent::Image),
            "video" => video.map(MessageContent::Video),
            "audio" => audio.map(MessageContent::Audio),
            "document" => document.map(MessageContent::Document),
            "sticker" => sticker.map(MessageContent::Sticker),
            "location" => location.map(MessageContent::Location),
            "contacts" => contacts.map(MessageContent::Contacts),
            "button" => button.map(MessageContent::Button),
            "interactive" => interactive.map(MessageContent::Interactive),
            "reaction" => reaction.map(MessageContent::Reaction),
            "order" => order.map(MessageContent::Order),
            "system" => system.map(MessageContent::System),
            "unsupported" => Some(MessageContent::Unsupported),
            _ => None,
        };
        let content = match known {
            Some(content) => content,
            None => MessageContent::Other(OtherContent {
                raw: take_raw(extra, &kind),
                kind,
            }),
        };
        Ok(Message {
            from,
            from_user_id,
            from_parent_user_id,
            id,
            timestamp,
            group_id,
            context,
            referral,
            errors,
            content,
        })
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Ts(OffsetDateTime);
        impl Serialize for Ts {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.unix_timestamp())
            }
        }
        let mut map = s.serialize_map(None)?;
        let strings = [
            ("from", &self.from),
            ("from_user_id", &self.from_user_id),
            ("from_parent_user_id", &self.from_parent_user_id),
            ("id", &self.id),
            ("group_id", &self.group_id),
        ];
        for (key, value) in strings {
            if let Some(value) = value {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(t) = self.timestamp {
            map.serialize_entry("timestamp", &Ts(t))?;
        }
        if let Some(context) = &self.context {
            map.serialize_entry("context", context)?;
        }
        if let Some(referral) = &self.referral {
            map.serialize_entry("referral", referral)?;
        }
        if !self.errors.is_empty() {
            map.serialize_entry("errors", &self.errors)?;
        }
        let kind = self.kind();
        map.serialize_entry("type", kind)?;
        match &self.content {
            MessageContent::Text(v) => map.serialize_entry(kind, v)?,
            MessageContent::Image(v)
            | MessageContent::Video(v)
            | MessageContent::Audio(v)
            | MessageContent::Document(v)
            | MessageContent::Sticker(v) => map.serialize_entry(kind, v)?,
            MessageContent::Location(v) => map.serialize_entry(kind, v)?,
            MessageContent::Contacts(v) => map.serialize_entry(kind, v)?,
            MessageContent::Button(v) => map.serialize_entry(kind, v)?,
            MessageContent::Interactive(v) => map.serialize_entry(kind, v)?,
            MessageContent::Reaction(v) => map.serialize_entry(kind, v)?,
            MessageContent::Order(v) => map.serialize_entry(kind, v)?,
            MessageContent::System(v) => map.serialize_entry(kind, v)?,
            MessageContent::Unsupported => {}
            MessageContent::Other(other) => {
                if let Some(raw) = &other.raw {
                    map.serialize_entry(kind, raw)?;
                }
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Interactive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InteractiveVisitor;
        impl<'de> Visitor<'de> for InteractiveVisitor {
            type Value = Interactive;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an interactive reply object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Interactive, A::Error> {
                let (mut kind, mut button, mut list, mut nfm, mut call) =
                    (None, None, None, None, None);
                let mut extra: Vec<(String, Box<RawValue>)> = Vec::new();
                while let Some(JsonStr(key)) = map.next_key()? {
                    match &*key {
                        "type" => kind = map.next_value::<Str>()?.0,
                        "button_reply" => button = map.next_value::<Lenient<Reply>>()?.0,
                        "list_reply" => list = map.next_value::<Lenient<Reply>>()?.0,
                        "nfm_reply" => nfm = map.next_value::<Lenient<NfmReply>>()?.0,
                        "call_permission_reply" => {
                            call = map.next_value::<Lenient<CallPermissionReply>>()?.0;
                        }
                        _ => extra.push((key.into_owned(), map.next_value()?)),
                    }
                }
                let kind = kind.unwrap_or_default();
                let known = match kind.as_str() {
                    "button_reply" => button.map(Interactive::ButtonReply),
                    "list_reply" => list.map(Interactive::ListReply),
                    "nfm_reply" => nfm.map(Interactive::NfmReply),
                    "call_permission_reply" => call.map(Interactive::CallPermissionReply),
                    _ => None,
                };
                Ok(match known {
                    Some(known) => known,
                    None => Interactive::Other(OtherContent {
                        raw: take_raw(extra, &kind),
                        kind,
                    }),
                })
            }
        }
        d.deserialize_map(InteractiveVisitor)
    }
}

impl Serialize for Interactive {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        let kind = self.kind();
        map.serialize_entry("type", kind)?;
        match self {
            Self::ButtonReply(v) | Self::ListReply(v) => map.serialize_entry(kind, v)?,
            Self::NfmReply(v) => map.serialize_entry(kind, v)?,
            Self::CallPermissionReply(v) => map.serialize_entry(kind, v)?,
            Self::Other(other) => {
                if let Some(raw) = &other.raw {
                    map.serialize_entry(kind, raw)?;
                }
            }
        }
        map.end()
    }
}

impl Serialize for OtherContent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("type", &self.kind)?;
        map.serialize_entry("raw", &self.raw)?;
        map.end()
    }
}

impl ChangeValue for InboundValue {
    fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    fn errors(&self) -> &[ApiError] {
        &self.errors
    }
}
