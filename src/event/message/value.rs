//! The change `value` of an inbound message and each message in it: who sent it, when, in
//! reply to what, from which ad; its typed content is in `content`.

use crate::event::Str;
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::content::{
    Button, Interactive, Location, Media, Order, Reaction, SharedContact, System, Text,
};
use crate::event::common::{ApiError, Contact, Metadata};
use crate::event::de as lenient;

/// The change `value` of a `message.inbound` payload.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct InboundValue {
    /// Always `"whatsapp"`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub messaging_product: Option<Str>,
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
    pub from: Option<Str>,
    /// Sender's business-scoped user id.
    pub from_user_id: Option<Str>,
    /// Sender's parent business-scoped user id.
    pub from_parent_user_id: Option<Str>,
    /// The message id, `wamid.…` (deduplicate on it: Meta may redeliver).
    pub id: Option<Str>,
    /// When the user sent it.
    pub timestamp: Option<OffsetDateTime>,
    /// The group, for group messages.
    pub group_id: Option<Str>,
    /// What the message replies to or was forwarded from (boxed: most messages have none, and
    /// a message is moved while it is read).
    pub context: Option<Box<Context>>,
    /// The Click-to-WhatsApp ad the user came from (boxed, as `context`).
    pub referral: Option<Box<Referral>>,
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
    pub kind: Str,
    /// The raw object under the key named by `type`, when present.
    pub raw: Option<Box<RawValue>>,
}

impl PartialEq for OtherContent {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.raw.as_ref().map(|r| r.get()) == other.raw.as_ref().map(|r| r.get())
    }
}

/// `messages[].context`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Context {
    /// Sender of the message replied to (the business number for replies to it).
    #[serde(default, deserialize_with = "lenient::string")]
    pub from: Option<Str>,
    /// The wamid (or `wacid.…`) replied to.
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<Str>,
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
    pub catalog_id: Option<Str>,
    /// Product id in the catalog.
    #[serde(default, deserialize_with = "lenient::string")]
    pub product_retailer_id: Option<Str>,
}

/// `messages[].referral`: the Click-to-WhatsApp ad the user came from.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Referral {
    /// The ad's URL.
    #[serde(default, deserialize_with = "lenient::string")]
    pub source_url: Option<Str>,
    /// The ad's id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub source_id: Option<Str>,
    /// `ad`, ….
    #[serde(default, deserialize_with = "lenient::string")]
    pub source_type: Option<Str>,
    /// Ad body.
    #[serde(default, deserialize_with = "lenient::string")]
    pub body: Option<Str>,
    /// Ad headline.
    #[serde(default, deserialize_with = "lenient::string")]
    pub headline: Option<Str>,
    /// `image` or `video`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub media_type: Option<Str>,
    /// Image URL.
    #[serde(default, deserialize_with = "lenient::string")]
    pub image_url: Option<Str>,
    /// Video URL.
    #[serde(default, deserialize_with = "lenient::string")]
    pub video_url: Option<Str>,
    /// Thumbnail URL.
    #[serde(default, deserialize_with = "lenient::string")]
    pub thumbnail_url: Option<Str>,
    /// Click id (absent for Status ad placements).
    #[serde(default, deserialize_with = "lenient::string")]
    pub ctwa_clid: Option<Str>,
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
    pub text: Option<Str>,
}
