//! What each message type carries: text, media, location, shared contacts, buttons,
//! interactive replies, reactions, orders, system notices.

use crate::event::Str;
use time::OffsetDateTime;

use super::value::OtherContent;
use crate::event::de as lenient;

/// `text`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Text {
    /// The text.
    #[serde(default, deserialize_with = "lenient::string")]
    pub body: Option<Str>,
}

/// `image`, `video`, `audio`, `document` or `sticker`: a media object.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Media {
    /// Meta media id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<Str>,
    /// MIME type, e.g. `image/jpeg` or `audio/ogg; codecs=opus`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub mime_type: Option<Str>,
    /// Base64 SHA-256 of the file.
    #[serde(default, deserialize_with = "lenient::string")]
    pub sha256: Option<Str>,
    /// Caption (image, video, document).
    #[serde(default, deserialize_with = "lenient::string")]
    pub caption: Option<Str>,
    /// File name (document).
    #[serde(default, deserialize_with = "lenient::string")]
    pub filename: Option<Str>,
    /// Direct download URL, when Meta provides one.
    #[serde(default, deserialize_with = "lenient::string")]
    pub url: Option<Str>,
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
    pub name: Option<Str>,
    /// Address.
    #[serde(default, deserialize_with = "lenient::string")]
    pub address: Option<Str>,
    /// URL of the place.
    #[serde(default, deserialize_with = "lenient::string")]
    pub url: Option<Str>,
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
    pub birthday: Option<Str>,
    /// The card as a vCard, when Meta includes it.
    #[serde(default, deserialize_with = "lenient::string")]
    pub vcard: Option<Str>,
}

/// `contacts[].name` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactName {
    /// Full name as displayed.
    #[serde(default, deserialize_with = "lenient::string")]
    pub formatted_name: Option<Str>,
    /// First name.
    #[serde(default, deserialize_with = "lenient::string")]
    pub first_name: Option<Str>,
    /// Last name.
    #[serde(default, deserialize_with = "lenient::string")]
    pub last_name: Option<Str>,
    /// Middle name.
    #[serde(default, deserialize_with = "lenient::string")]
    pub middle_name: Option<Str>,
    /// Suffix.
    #[serde(default, deserialize_with = "lenient::string")]
    pub suffix: Option<Str>,
    /// Prefix.
    #[serde(default, deserialize_with = "lenient::string")]
    pub prefix: Option<Str>,
}

/// `contacts[].phones[]` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactPhone {
    /// The number as written.
    #[serde(default, deserialize_with = "lenient::string")]
    pub phone: Option<Str>,
    /// WhatsApp id, when the number is on WhatsApp.
    #[serde(default, deserialize_with = "lenient::string")]
    pub wa_id: Option<Str>,
    /// Label, e.g. `HOME`.
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<Str>,
}

/// `contacts[].emails[]` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactEmail {
    /// The address.
    #[serde(default, deserialize_with = "lenient::string")]
    pub email: Option<Str>,
    /// Label, e.g. `WORK`.
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<Str>,
}

/// `contacts[].addresses[]` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactAddress {
    /// Street.
    #[serde(default, deserialize_with = "lenient::string")]
    pub street: Option<Str>,
    /// City.
    #[serde(default, deserialize_with = "lenient::string")]
    pub city: Option<Str>,
    /// State.
    #[serde(default, deserialize_with = "lenient::string")]
    pub state: Option<Str>,
    /// Postal code.
    #[serde(default, deserialize_with = "lenient::string")]
    pub zip: Option<Str>,
    /// Country name.
    #[serde(default, deserialize_with = "lenient::string")]
    pub country: Option<Str>,
    /// ISO country code.
    #[serde(default, deserialize_with = "lenient::string")]
    pub country_code: Option<Str>,
    /// Label, e.g. `HOME`.
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<Str>,
}

/// `contacts[].org` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactOrg {
    /// Company.
    #[serde(default, deserialize_with = "lenient::string")]
    pub company: Option<Str>,
    /// Department.
    #[serde(default, deserialize_with = "lenient::string")]
    pub department: Option<Str>,
    /// Job title.
    #[serde(default, deserialize_with = "lenient::string")]
    pub title: Option<Str>,
}

/// `contacts[].urls[]` of a shared card.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct ContactUrl {
    /// The URL.
    #[serde(default, deserialize_with = "lenient::string")]
    pub url: Option<Str>,
    /// Label, e.g. `WORK`.
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<Str>,
}

/// `button`: the tapped quick-reply button of a template (see
/// [`Message::context`](super::Message::context) for the template's wamid).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Button {
    /// The payload set on the button.
    #[serde(default, deserialize_with = "lenient::string")]
    pub payload: Option<Str>,
    /// The button's label.
    #[serde(default, deserialize_with = "lenient::string")]
    pub text: Option<Str>,
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
    pub id: Option<Str>,
    /// Its title.
    #[serde(default, deserialize_with = "lenient::string")]
    pub title: Option<Str>,
    /// The row's description (list replies).
    #[serde(default, deserialize_with = "lenient::string")]
    pub description: Option<Str>,
}

/// `nfm_reply`: a completed Flow or address message.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct NfmReply {
    /// `flow`, `address_message`, ….
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<Str>,
    /// Body text.
    #[serde(default, deserialize_with = "lenient::string")]
    pub body: Option<Str>,
    /// The response, a JSON document encoded as a string.
    #[serde(default, deserialize_with = "lenient::string")]
    pub response_json: Option<Str>,
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
    pub response: Option<Str>,
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
    pub response_source: Option<Str>,
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
    pub message_id: Option<Str>,
    /// The emoji; absent when the user removed the reaction.
    #[serde(default, deserialize_with = "lenient::string")]
    pub emoji: Option<Str>,
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
    pub catalog_id: Option<Str>,
    /// Text sent with the order.
    #[serde(default, deserialize_with = "lenient::string")]
    pub text: Option<Str>,
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
    pub product_retailer_id: Option<Str>,
    /// Quantity.
    #[serde(default, deserialize_with = "lenient::float")]
    pub quantity: Option<f64>,
    /// Unit price.
    #[serde(default, deserialize_with = "lenient::float")]
    pub item_price: Option<f64>,
    /// ISO 4217 currency.
    #[serde(default, deserialize_with = "lenient::string")]
    pub currency: Option<Str>,
}

/// `system`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct System {
    /// Human-readable description.
    #[serde(default, deserialize_with = "lenient::string")]
    pub body: Option<Str>,
    /// The user's new WhatsApp id, for `user_changed_number`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub wa_id: Option<Str>,
    /// The user's business-scoped id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub user_id: Option<Str>,
    /// The user's parent business-scoped id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub parent_user_id: Option<Str>,
    /// `user_changed_number`, ….
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<Str>,
}
