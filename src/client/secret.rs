//! Webhook secrets as the client handles them: never printed, strong when generated.

use std::fmt;

use super::error::{ClientError, ClientErrorKind};

/// How many random bytes [`WebhookSecret::generate`] draws (256 bits).
pub const GENERATED_SECRET_BYTES: usize = 32;

/// A webhook subscription secret: the HMAC key Vobiz signs deliveries with.
///
/// `Debug` prints a redaction; read the value with [`expose`](Self::expose) where it must go
/// (your secret store, the layer). It is never empty.
///
/// ```
/// use vobiz_webhooks::client::WebhookSecret;
/// use vobiz_webhooks::VobizWebhookLayer;
///
/// let secret = WebhookSecret::generate()?;
/// assert_eq!(secret.expose().len(), 64); // 32 random bytes, lowercase hex
/// assert_eq!(format!("{secret:?}"), "WebhookSecret(<redacted>)");
///
/// // The layer takes it as it is.
/// let layer = VobizWebhookLayer::new(&secret);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Wraps a secret you chose.
    ///
    /// # Errors
    ///
    /// [`ClientErrorKind::EmptySecret`] when `secret` is empty.
    ///
    /// ```
    /// use vobiz_webhooks::client::{ClientErrorKind, WebhookSecret};
    ///
    /// assert!(WebhookSecret::new("from-my-vault").is_ok());
    /// assert_eq!(WebhookSecret::new("").unwrap_err().kind(), ClientErrorKind::EmptySecret);
    /// ```
    pub fn new(secret: impl Into<String>) -> Result<Self, ClientError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(ClientError::new(ClientErrorKind::EmptySecret));
        }
        Ok(Self(secret))
    }

    /// A strong random secret: [`GENERATED_SECRET_BYTES`] bytes from the operating system's
    /// random number generator, as 64 lowercase hex digits.
    ///
    /// # Errors
    ///
    /// [`ClientErrorKind::Random`] when the operating system's generator fails.
    ///
    /// ```
    /// let secret = vobiz_webhooks::client::WebhookSecret::generate()?;
    /// assert!(secret.expose().bytes().all(|b| b.is_ascii_hexdigit()));
    /// # Ok::<(), vobiz_webhooks::client::ClientError>(())
    /// ```
    pub fn generate() -> Result<Self, ClientError> {
        let mut bytes = [0u8; GENERATED_SECRET_BYTES];
        crate::random::fill(&mut bytes)
            .map_err(|err| ClientError::new(ClientErrorKind::Random).with_source(err))?;
        Ok(Self(hex::encode(bytes)))
    }

    /// The secret itself, for your secret store or the layer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl AsRef<[u8]> for WebhookSecret {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl AsRef<str> for WebhookSecret {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_differ() {
        let a = WebhookSecret::generate().unwrap();
        let b = WebhookSecret::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 2 * GENERATED_SECRET_BYTES);
    }
}
