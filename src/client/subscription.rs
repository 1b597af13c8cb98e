//! What Vobiz answers about a subscription.

use std::fmt;

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;

/// A webhook subscription as Vobiz reports it. The secret is never part of it: Vobiz does not
/// return it. Fields Vobiz adds later are ignored.
///
/// ```
/// use vobiz_webhooks::client::{Subscription, SubscriptionStatus};
///
/// # fn check(subscription: Subscription) {
/// if subscription.status != SubscriptionStatus::Active {
///     eprintln!("{} ({}) is {}", subscription.id, subscription.url, subscription.status);
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Subscription {
    /// The subscription id (a UUID); pass it to
    /// [`SubscriptionClient::delete`](super::SubscriptionClient::delete).
    pub id: String,
    /// The endpoint Vobiz delivers to.
    pub url: String,
    /// Whether Vobiz delivers to it.
    pub status: SubscriptionStatus,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The `status` of a subscription. Values Vobiz adds later are kept in
/// [`Other`](Self::Other), never an error.
///
/// ```
/// use vobiz_webhooks::client::SubscriptionStatus;
///
/// assert_eq!(SubscriptionStatus::from("active"), SubscriptionStatus::Active);
/// assert_eq!(SubscriptionStatus::from("paused").as_str(), "paused");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubscriptionStatus {
    /// `active`: Vobiz delivers to it.
    Active,
    /// `inactive`: Vobiz does not deliver to it (the trigger is not documented).
    Inactive,
    /// Any other value, as Vobiz sent it.
    Other(String),
}

impl SubscriptionStatus {
    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Other(other) => other,
        }
    }
}

impl From<&str> for SubscriptionStatus {
    fn from(value: &str) -> Self {
        match value {
            "active" => Self::Active,
            "inactive" => Self::Inactive,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SubscriptionStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Ok(match value.as_str() {
            "active" => Self::Active,
            "inactive" => Self::Inactive,
            _ => Self::Other(value),
        })
    }
}

/// The body of `GET /webhooks`.
#[derive(Deserialize)]
pub(crate) struct SubscriptionList {
    pub(crate) items: Vec<Subscription>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_documented_example_and_ignores_unknown_fields() {
        let json = r#"{
          "id": "f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f",
          "url": "https://your-server.com/webhooks/whatsapp",
          "status": "active",
          "created_at": "2026-03-25T10:00:00Z",
          "updated_at": "2026-03-25T10:00:00Z",
          "events": ["message.inbound"]
        }"#;
        let subscription: Subscription = serde_json::from_str(json).unwrap();
        assert_eq!(subscription.status, SubscriptionStatus::Active);
        assert_eq!(subscription.created_at.year(), 2026);
    }

    #[test]
    fn unknown_status_is_kept() {
        let status: SubscriptionStatus = serde_json::from_str(r#""suspended""#).unwrap();
        assert_eq!(status, SubscriptionStatus::Other("suspended".into()));
    }
}
