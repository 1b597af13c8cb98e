//! Secret rotation: new subscription first, old ones deleted only once the caller says so.

use std::error::Error as StdError;
use std::fmt;

use http::StatusCode;

use super::{ClientError, ClientErrorKind, Subscription, SubscriptionClient};
use super::{SubscriptionStatus, WebhookSecret};

/// A secret rotation in progress: the new subscription exists, the old ones still do.
///
/// Vobiz has no "rotate secret" call; a rotation is a new subscription for the same URL with
/// a new secret, then deleting the old subscription. While both exist, Vobiz delivers every
/// event twice, once signed with each secret, so the server must accept both:
///
/// 1. [`SubscriptionClient::rotate_begin`] lists the subscriptions already registered for the
///    URL (the old ones), then creates the new one with a freshly generated secret.
/// 2. Accept both secrets: with the layer built on a live [`Secrets`](crate::Secrets) handle,
///    `secrets.add(rotation.new_secret().expose())` while serving (no redeploy); otherwise
///    deploy with both (`VobizWebhookLayer::new(old).secret(new)`). Until the new secret is
///    live, deliveries of the new subscription are refused (401); Vobiz may retry them (its
///    retry policy is not documented), so keep this window short. Store the new secret where
///    your next start reads it too.
/// 3. [`finish`](Self::finish): checks the new subscription is still registered and not
///    inactive, then deletes the old ones. Nothing is deleted before this call.
/// 4. Stop accepting the old secret: `secrets.remove(old)` (or deploy with the new one only).
///
/// To never refuse a delivery, add a secret you generated with [`WebhookSecret::generate`]
/// next to the old one first, then use [`SubscriptionClient::rotate_begin_with_secret`] and
/// finish at once.
///
/// Events may arrive twice during the overlap; the layer's deduplication and your handlers'
/// idempotency on WhatsApp ids (`wamid`) cover that.
///
/// ```no_run
/// use vobiz_webhooks::client::SubscriptionClient;
/// use vobiz_webhooks::Secrets;
///
/// # async fn run(client: SubscriptionClient, secrets: Secrets, old: &str) -> Result<(), Box<dyn std::error::Error>> {
/// // `secrets` is the live handle the serving layer was built with (`from_secrets`).
/// let rotation = client.rotate_begin("https://example.com/webhooks/vobiz").await?;
/// println!("new subscription {}", rotation.new_subscription().id);
///
/// if let Err(err) = secrets.add(rotation.new_secret().expose()) {
///     // Roll back: delete the new subscription, keep the old ones.
///     rotation.abort(&client).await?;
///     return Err(err.into());
/// }
/// // Only now are the old subscriptions deleted; then the old secret goes.
/// let new = rotation.finish(&client).await?;
/// secrets.remove(old)?;
/// # let _ = new;
/// # Ok(()) }
/// ```
#[must_use = "the old subscriptions stay until you call .finish(&client) (or .abort(&client))"]
pub struct Rotation {
    new: Subscription,
    new_secret: WebhookSecret,
    old: Vec<Subscription>,
}

impl Rotation {
    pub(crate) fn new(
        new: Subscription,
        new_secret: WebhookSecret,
        old: Vec<Subscription>,
    ) -> Self {
        Self {
            new,
            new_secret,
            old,
        }
    }

    /// The subscription created for the new secret.
    pub fn new_subscription(&self) -> &Subscription {
        &self.new
    }

    /// The new secret: deploy it next to the old one before calling [`finish`](Self::finish).
    pub fn new_secret(&self) -> &WebhookSecret {
        &self.new_secret
    }

    /// The subscriptions for the same URL that existed before, which
    /// [`finish`](Self::finish) deletes (those not yet deleted, after a failed `finish`).
    pub fn old_subscriptions(&self) -> &[Subscription] {
        &self.old
    }

    /// Ends the rotation once the new secret is deployed: deletes every old subscription and
    /// returns the new one.
    ///
    /// It first lists the subscriptions and refuses (deleting nothing) when the new one is no
    /// longer registered or is `inactive`, so the URL is never left without a subscription.
    /// An old subscription already gone (`404`) counts as deleted.
    ///
    /// # Errors
    ///
    /// A [`RotationError`] holding the rotation with the old subscriptions not yet deleted, so
    /// `finish` can be retried; [`ClientErrorKind::RotationRefused`] when the new subscription
    /// is missing or inactive.
    pub async fn finish(
        mut self,
        client: &SubscriptionClient,
    ) -> Result<Subscription, RotationError> {
        let current = match client.list().await {
            Ok(current) => current,
            Err(error) => return Err(RotationError::new(self, error)),
        };
        match current
            .iter()
            .find(|subscription| subscription.id == self.new.id)
        {
            None => {
                let error = ClientError::new(ClientErrorKind::RotationRefused).with_context(
                    "the new subscription is no longer registered; the old ones are kept",
                );
                return Err(RotationError::new(self, error));
            }
            Some(new) if new.status == SubscriptionStatus::Inactive => {
                let error = ClientError::new(ClientErrorKind::RotationRefused)
                    .with_context("the new subscription is inactive; the old ones are kept");
                return Err(RotationError::new(self, error));
            }
            Some(new) => self.new = new.clone(),
        }
        while let Some(old) = self.old.last() {
            match client.delete(&old.id).await {
                Ok(()) => {}
                Err(error)
                    if error.kind() == ClientErrorKind::Api
                        && error.status() == Some(StatusCode::NOT_FOUND) => {}
                Err(error) => return Err(RotationError::new(self, error)),
            }
            self.old.pop();
        }
        Ok(self.new)
    }

    /// Abandons the rotation: deletes the new subscription and keeps the old ones (for when
    /// the new secret could not be deployed). A new subscription already gone counts as
    /// deleted.
    ///
    /// # Errors
    ///
    /// A [`RotationError`] holding the rotation when the delete failed, so `abort` can be
    /// retried.
    pub async fn abort(self, client: &SubscriptionClient) -> Result<(), RotationError> {
        match client.delete(&self.new.id).await {
            Ok(()) => Ok(()),
            Err(error)
                if error.kind() == ClientErrorKind::Api
                    && error.status() == Some(StatusCode::NOT_FOUND) =>
            {
                Ok(())
            }
            Err(error) => Err(RotationError::new(self, error)),
        }
    }
}

impl fmt::Debug for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotation")
            .field("new", &self.new)
            .field("new_secret", &self.new_secret)
            .field("old", &self.old)
            .finish()
    }
}

/// [`Rotation::finish`] or [`Rotation::abort`] failed; the rotation is handed back so the
/// step can be retried.
///
/// ```no_run
/// # async fn run(client: vobiz_webhooks::client::SubscriptionClient, rotation: vobiz_webhooks::client::Rotation) -> Result<(), Box<dyn std::error::Error>> {
/// let new = match rotation.finish(&client).await {
///     Ok(new) => new,
///     Err(err) if err.error().is_retryable() => err.into_rotation().finish(&client).await?,
///     Err(err) => return Err(err.into()),
/// };
/// # Ok(()) }
/// ```
pub struct RotationError {
    rotation: Box<Rotation>,
    error: ClientError,
}

impl RotationError {
    fn new(rotation: Rotation, error: ClientError) -> Self {
        Self {
            rotation: Box::new(rotation),
            error,
        }
    }

    /// What failed.
    pub fn error(&self) -> &ClientError {
        &self.error
    }

    /// The rotation, with only the old subscriptions not yet deleted.
    pub fn into_rotation(self) -> Rotation {
        *self.rotation
    }

    /// The rotation, for a look without taking it.
    pub fn rotation(&self) -> &Rotation {
        &self.rotation
    }
}

impl fmt::Display for RotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "secret rotation step failed ({} old subscription(s) not deleted): {}",
            self.rotation.old.len(),
            self.error
        )
    }
}

impl fmt::Debug for RotationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotationError")
            .field("error", &self.error)
            .field("rotation", &self.rotation)
            .finish()
    }
}

impl StdError for RotationError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.error)
    }
}

impl From<RotationError> for ClientError {
    fn from(error: RotationError) -> Self {
        error.error
    }
}
