//! Parts every payload shares: the business number's metadata, WhatsApp users' profiles and
//! Meta's error objects.

use crate::event::Str;
use serde::{Deserialize, Serialize};

use super::de;

/// `value.metadata`: the business phone number the event concerns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// The business number as displayed, digits only, e.g. `919876543210`.
    #[serde(default, deserialize_with = "de::string")]
    pub display_phone_number: Option<Str>,
    /// Meta's id of the business phone number (route multi-number accounts with it).
    #[serde(default, deserialize_with = "de::string")]
    pub phone_number_id: Option<Str>,
}

/// An entry of `value.contacts[]`: the WhatsApp user who wrote or is called.
///
/// Not to be confused with [`SharedContact`](super::message::SharedContact), the contact
/// cards a user sends in a `contacts` message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Contact {
    /// The user's WhatsApp id (phone number); Meta omits it when the number is unavailable.
    #[serde(default, deserialize_with = "de::string")]
    pub wa_id: Option<Str>,
    /// Business-scoped user id (BSUID).
    #[serde(default, deserialize_with = "de::string")]
    pub user_id: Option<Str>,
    /// Parent business-scoped user id, when parent BSUIDs are enabled.
    #[serde(default, deserialize_with = "de::string")]
    pub parent_user_id: Option<Str>,
    /// Identity key hash, only when the identity-change check is enabled.
    #[serde(default, deserialize_with = "de::string")]
    pub identity_key_hash: Option<Str>,
    /// The user's profile.
    #[serde(default, deserialize_with = "de::obj")]
    pub profile: Option<Profile>,
}

impl Contact {
    /// The profile name, when present.
    pub fn name(&self) -> Option<&str> {
        self.profile.as_ref()?.name.as_deref()
    }
}

/// `contacts[].profile`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Profile {
    /// The user's WhatsApp profile name.
    #[serde(default, deserialize_with = "de::string")]
    pub name: Option<Str>,
    /// The user's WhatsApp username, if they adopted one.
    #[serde(default, deserialize_with = "de::string")]
    pub username: Option<Str>,
}

/// A Meta error object, as in `statuses[].errors[]`, `messages[].errors[]` (unsupported
/// messages) and value-level `errors[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ApiError {
    /// Meta's error code, e.g. `131049`.
    #[serde(default, deserialize_with = "de::int")]
    pub code: Option<i64>,
    /// Short title.
    #[serde(default, deserialize_with = "de::string")]
    pub title: Option<Str>,
    /// Message (usually the same text as the title).
    #[serde(default, deserialize_with = "de::string")]
    pub message: Option<Str>,
    /// Further data.
    #[serde(default, deserialize_with = "de::obj")]
    pub error_data: Option<ErrorData>,
    /// Link to Meta's error-code documentation.
    #[serde(default, deserialize_with = "de::string")]
    pub href: Option<Str>,
}

impl ApiError {
    /// `error_data.details`, the most specific explanation.
    pub fn details(&self) -> Option<&str> {
        self.error_data.as_ref()?.details.as_deref()
    }
}

/// `errors[].error_data`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ErrorData {
    /// Details of the error.
    #[serde(default, deserialize_with = "de::string")]
    pub details: Option<Str>,
}
