//! A live set of secrets: shared by the layer and whoever rotates them, swapped while serving.

use std::fmt;
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::{EmptySecret, Secret, SignatureError, Verifier};

/// The layer's secrets as a shared handle: clone it into the layer
/// ([`VobizWebhookLayer::from_secrets`](crate::VobizWebhookLayer::from_secrets)) and keep a
/// clone to [`add`](Self::add), [`remove`](Self::remove) or [`replace`](Self::replace) secrets
/// while the server runs.
///
/// Each change swaps in a whole new set atomically, so a request verifies against one
/// consistent set, before or after a change, never half of one. A change that would leave no
/// secret, or that holds an empty one, is refused and the current set stays.
///
/// ```
/// use vobiz_webhooks::signature::Secrets;
/// use vobiz_webhooks::{sign, VobizWebhookLayer};
///
/// let secrets = Secrets::new(["old-secret"])?;
/// let layer = VobizWebhookLayer::from_secrets(secrets.clone());
/// # let _ = layer;
///
/// // A rotation, while serving: accept both, switch Vobiz over, then drop the old one.
/// secrets.add("new-secret")?;
/// let body = br#"{"event_id":"e1","event_type":"message.inbound","payload":{}}"#;
/// assert!(secrets.verifier().verify(sign("new-secret", body).as_bytes(), body).is_ok());
/// secrets.remove("old-secret")?;
/// assert_eq!(secrets.len(), 1);
/// assert!(secrets.remove("new-secret").is_err(), "the last secret stays");
/// # Ok::<(), vobiz_webhooks::signature::SecretsError>(())
/// ```
#[derive(Clone)]
pub struct Secrets {
    current: Arc<ArcSwap<Verifier>>,
}

/// Why a change to [`Secrets`] was refused; the current set stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretsError {
    /// A secret was empty: it would make every signature forgeable.
    EmptySecret,
    /// The change would leave no secret, and then no delivery could verify.
    NoSecretLeft,
}

impl fmt::Display for SecretsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptySecret => "webhook secret must not be empty; the current secrets stay",
            Self::NoSecretLeft => {
                "the change would leave no webhook secret; the current secrets stay"
            }
        })
    }
}

impl std::error::Error for SecretsError {}

impl From<EmptySecret> for SecretsError {
    fn from(EmptySecret: EmptySecret) -> Self {
        Self::EmptySecret
    }
}

impl Secrets {
    /// A live set of every secret in `secrets`.
    ///
    /// # Errors
    ///
    /// [`SecretsError::EmptySecret`] when one is empty, [`SecretsError::NoSecretLeft`] when
    /// there is none.
    pub fn new<I>(secrets: I) -> Result<Self, SecretsError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        Ok(Self::from_verifier(verifier_of(secrets)?))
    }

    /// A live set starting with the secrets of `verifier`.
    #[must_use]
    pub fn from_verifier(verifier: Verifier) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(verifier)),
        }
    }

    /// Replaces every secret at once (e.g. after re-reading a secrets file).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new); the current secrets then stay.
    pub fn replace<I>(&self, secrets: I) -> Result<(), SecretsError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        self.current.store(Arc::new(verifier_of(secrets)?));
        Ok(())
    }

    /// Also accepts deliveries signed with `secret` (a no-op when it is already live).
    ///
    /// # Errors
    ///
    /// [`SecretsError::EmptySecret`] when `secret` is empty.
    pub fn add(&self, secret: impl AsRef<[u8]>) -> Result<(), SecretsError> {
        let secret = Secret::new(secret)?;
        self.current.rcu(|current| {
            let mut next = Verifier::clone(current);
            if !next.contains(&secret) {
                next.push(secret.clone());
            }
            next
        });
        Ok(())
    }

    /// Stops accepting deliveries signed with `secret`; `Ok(false)` when it was not live.
    ///
    /// # Errors
    ///
    /// [`SecretsError::NoSecretLeft`] when it is the last secret, [`SecretsError::EmptySecret`]
    /// when `secret` is empty.
    pub fn remove(&self, secret: impl AsRef<[u8]>) -> Result<bool, SecretsError> {
        let secret = Secret::new(secret)?;
        let mut outcome = Ok(false);
        self.current.rcu(|current| {
            let mut next = Verifier::clone(current);
            outcome = match next.remove(&secret) {
                false => Ok(false),
                true if next.is_empty() => Err(SecretsError::NoSecretLeft),
                true => Ok(true),
            };
            match outcome {
                Ok(true) => Arc::new(next),
                _ => Arc::clone(current),
            }
        });
        outcome
    }

    /// How many secrets are live.
    pub fn len(&self) -> usize {
        self.current.load().len()
    }

    /// Always `false`: a live set keeps at least one secret.
    pub fn is_empty(&self) -> bool {
        self.current.load().is_empty()
    }

    /// The secrets live right now, as a verifier that no later change affects.
    pub fn verifier(&self) -> Arc<Verifier> {
        self.current.load_full()
    }

    /// Verifies the raw `X-Webhook-Signature` value against the exact `body` with the secrets
    /// live right now, as [`Verifier::verify`] does.
    ///
    /// # Errors
    ///
    /// As [`Verifier::verify`].
    pub fn verify(&self, header: &[u8], body: &[u8]) -> Result<(), SignatureError> {
        self.current.load().verify(header, body)
    }

    /// The current set, for one verification (cheaper than [`verifier`](Self::verifier)).
    pub(crate) fn load(&self) -> Guard<Arc<Verifier>> {
        self.current.load()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("live", &self.len())
            .finish_non_exhaustive()
    }
}

fn verifier_of<I>(secrets: I) -> Result<Verifier, SecretsError>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let secrets = secrets
        .into_iter()
        .map(Secret::new)
        .collect::<Result<Vec<_>, _>>()?;
    Verifier::from_secrets(secrets).ok_or(SecretsError::NoSecretLeft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::sign;

    const BODY: &[u8] = b"{}";

    fn verifies(secrets: &Secrets, secret: &str) -> bool {
        secrets
            .verifier()
            .verify(sign(secret, BODY).as_bytes(), BODY)
            .is_ok()
    }

    #[test]
    fn add_remove_and_replace_change_what_verifies() {
        let secrets = Secrets::new(["a"]).expect("secrets");
        secrets.add("b").expect("add");
        secrets.add("b").expect("again: a no-op");
        assert_eq!(secrets.len(), 2);
        assert!(verifies(&secrets, "a") && verifies(&secrets, "b"));
        assert_eq!(secrets.remove("a"), Ok(true));
        assert_eq!(secrets.remove("a"), Ok(false), "already gone");
        assert!(!verifies(&secrets, "a") && verifies(&secrets, "b"));
        secrets.replace(["c", "d"]).expect("replace");
        assert!(!verifies(&secrets, "b") && verifies(&secrets, "c") && verifies(&secrets, "d"));
    }

    #[test]
    fn changes_that_would_leave_nothing_or_an_empty_secret_are_refused() {
        let secrets = Secrets::new(["only"]).expect("secrets");
        assert_eq!(secrets.remove("only"), Err(SecretsError::NoSecretLeft));
        assert_eq!(
            secrets.replace(Vec::<&str>::new()),
            Err(SecretsError::NoSecretLeft)
        );
        assert_eq!(secrets.replace(["ok", ""]), Err(SecretsError::EmptySecret));
        assert_eq!(secrets.add(""), Err(SecretsError::EmptySecret));
        assert!(verifies(&secrets, "only"), "the last good set stays");
        assert_eq!(secrets.len(), 1);
        assert!(Secrets::new(Vec::<&str>::new()).is_err());
    }

    #[test]
    fn clones_share_one_set_and_a_snapshot_does_not_move() {
        let secrets = Secrets::new(["a"]).expect("secrets");
        let clone = secrets.clone();
        let before = secrets.verifier();
        clone.add("b").expect("add");
        assert_eq!(secrets.len(), 2);
        assert_eq!(before.len(), 1, "a snapshot is one consistent set");
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let secrets = Secrets::new(["hunter2-secret"]).expect("secrets");
        assert!(!format!("{secrets:?}").contains("hunter2"));
    }
}
