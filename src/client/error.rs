//! The one error type of the subscription client.

use std::error::Error as StdError;
use std::fmt;

use http::StatusCode;

use crate::future::BoxError;

/// The longest error body kept, in bytes; the rest is cut (at a character boundary).
pub(crate) const MAX_ERROR_BODY: usize = 4 * 1024;

/// What went wrong, without the details (those are on [`ClientError`]).
///
/// ```
/// use vobiz_webhooks::client::{ClientErrorKind, SubscriptionClient};
///
/// # async fn run(client: SubscriptionClient) {
/// match client.list().await {
///     Ok(subscriptions) => println!("{} subscriptions", subscriptions.len()),
///     Err(err) if err.kind() == ClientErrorKind::Auth => eprintln!("check VOBIZ_AUTH_ID/TOKEN: {err}"),
///     Err(err) if err.is_retryable() => eprintln!("try again later: {err}"),
///     Err(err) => eprintln!("{err}"),
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientErrorKind {
    /// The client could not be built: no credentials, credentials that cannot be sent as a
    /// header, a base URL that is not HTTPS (plain HTTP is allowed on loopback only), or the
    /// HTTP stack failed to start. No request was made.
    Config,
    /// The webhook `url` is not an absolute `https://` URL: Vobiz only delivers to HTTPS.
    /// No request was made.
    InvalidWebhookUrl,
    /// The webhook secret is empty: every signature would be forgeable. No request was made.
    EmptySecret,
    /// The operating system's random number generator failed while generating a secret.
    Random,
    /// Vobiz refused the credentials: `401` (missing or wrong `X-Auth-ID`/`X-Auth-Token` or
    /// bearer token) or `403` (valid credentials without the permission).
    Auth,
    /// Vobiz answered with another non-success status; see [`ClientError::status`] and
    /// [`ClientError::body`].
    Api,
    /// No complete answer within the configured connect or request timeout.
    Timeout,
    /// The connection could not be established (refused, DNS failure, TLS handshake).
    Connect,
    /// The request failed in transit for another reason (connection reset, broken body).
    Transport,
    /// Vobiz answered with a success status but a body that is not the documented JSON.
    /// For `create`, the subscription may exist anyway: check with `list`.
    MalformedResponse,
    /// A rotation cannot finish: the new subscription is no longer registered or is
    /// `inactive`, so the old ones were kept.
    RotationRefused,
}

/// An error of the [subscription client](crate::client).
///
/// It carries the [`kind`](Self::kind), the HTTP status and Vobiz's error body when there was
/// an answer, and the underlying error as its [`source`](StdError::source). Its `Display` and
/// `Debug` never contain the credentials or a webhook secret.
///
/// ```
/// use vobiz_webhooks::client::{ClientErrorKind, SubscriptionClient};
///
/// # async fn run(client: SubscriptionClient) {
/// if let Err(err) = client.delete("f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f").await {
///     if err.kind() == ClientErrorKind::Api && err.status().map(|s| s.as_u16()) == Some(404) {
///         // already gone
///     } else {
///         eprintln!("{err} (status {:?}, body {:?})", err.status(), err.body());
///     }
/// }
/// # }
/// ```
pub struct ClientError {
    kind: ClientErrorKind,
    status: Option<StatusCode>,
    body: Option<String>,
    context: Option<&'static str>,
    source: Option<BoxError>,
}

impl ClientError {
    pub(crate) fn new(kind: ClientErrorKind) -> Self {
        Self {
            kind,
            status: None,
            body: None,
            context: None,
            source: None,
        }
    }

    pub(crate) fn with_context(mut self, context: &'static str) -> Self {
        self.context = Some(context);
        self
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_body(mut self, body: String) -> Self {
        self.body = (!body.is_empty()).then(|| truncate(body, MAX_ERROR_BODY));
        self
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Classifies a transport error of the HTTP stack.
    pub(crate) fn from_reqwest(err: reqwest::Error) -> Self {
        let kind = if err.is_timeout() {
            ClientErrorKind::Timeout
        } else if err.is_connect() {
            ClientErrorKind::Connect
        } else {
            ClientErrorKind::Transport
        };
        let status = err.status();
        let mut error = Self::new(kind).with_source(err);
        error.status = status;
        error
    }

    /// What went wrong.
    pub fn kind(&self) -> ClientErrorKind {
        self.kind
    }

    /// The HTTP status Vobiz answered with, when it answered.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// Vobiz's response body for an error status or a malformed answer (at most 4 KiB, as
    /// text), when there was a non-empty one. Its shape is not documented, so it is kept raw.
    pub fn body(&self) -> Option<&str> {
        self.body.as_deref()
    }

    /// Whether trying the same call again later may succeed: timeouts, connection and
    /// transport failures, `429` and `5xx` answers.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ClientErrorKind::Timeout | ClientErrorKind::Connect | ClientErrorKind::Transport => {
                true
            }
            ClientErrorKind::Api => self.status.is_some_and(|status| {
                status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
            }),
            _ => false,
        }
    }

    /// Replaces every occurrence of `secret` in the kept body (Vobiz might echo a request).
    pub(crate) fn redact(mut self, secret: &str) -> Self {
        if let Some(body) = self.body.as_mut() {
            if !secret.is_empty() && body.contains(secret) {
                *body = body.replace(secret, "<redacted>");
            }
        }
        self
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ClientErrorKind::Config => f.write_str("invalid subscription client configuration")?,
            ClientErrorKind::InvalidWebhookUrl => {
                f.write_str("the webhook url must be an absolute https:// URL")?
            }
            ClientErrorKind::EmptySecret => f.write_str("webhook secret must not be empty")?,
            ClientErrorKind::Random => f.write_str("the OS random number generator failed")?,
            ClientErrorKind::Auth => {
                if self.status == Some(StatusCode::FORBIDDEN) {
                    f.write_str(
                        "Vobiz answered 403 Forbidden: the credentials are valid but lack the \
                         permission to manage webhook subscriptions",
                    )?
                } else {
                    f.write_str(
                        "Vobiz answered 401 Unauthorized: check the credentials \
                         (X-Auth-ID and X-Auth-Token, or the bearer token)",
                    )?
                }
            }
            ClientErrorKind::Api => match self.status {
                Some(status) => write!(f, "Vobiz answered {status}")?,
                None => f.write_str("Vobiz answered with an error")?,
            },
            ClientErrorKind::Timeout => f.write_str("request to Vobiz timed out")?,
            ClientErrorKind::Connect => f.write_str("could not connect to Vobiz")?,
            ClientErrorKind::Transport => f.write_str("request to Vobiz failed in transit")?,
            ClientErrorKind::MalformedResponse => {
                f.write_str("Vobiz answered with a body that is not the documented JSON")?
            }
            ClientErrorKind::RotationRefused => f.write_str("secret rotation refused")?,
        }
        if let Some(context) = self.context {
            write!(f, ": {context}")?;
        }
        if matches!(self.kind, ClientErrorKind::Api | ClientErrorKind::Auth) {
            if let Some(body) = &self.body {
                write!(f, ": {}", excerpt(body))?;
            }
        }
        Ok(())
    }
}

/// The first line of a body, at most 200 bytes, for `Display`.
fn excerpt(body: &str) -> &str {
    let line = body.lines().next().unwrap_or_default().trim();
    let mut end = line.len().min(200);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

impl fmt::Debug for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientError")
            .field("kind", &self.kind)
            .field("status", &self.status)
            .field("body", &self.body)
            .field("context", &self.context)
            .field("source", &self.source)
            .finish()
    }
}

impl StdError for ClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn truncates_at_char_boundary() {
        let text = "é".repeat(10);
        assert_eq!(truncate(text, 5), "éé");
    }

    #[test]
    fn auth_display_names_credentials() {
        let err = ClientError::new(ClientErrorKind::Auth).with_status(StatusCode::UNAUTHORIZED);
        assert!(err.to_string().contains("credentials"));
        let err = ClientError::new(ClientErrorKind::Auth).with_status(StatusCode::FORBIDDEN);
        assert!(err.to_string().contains("credentials"));
        assert!(err.to_string().contains("403"));
    }

    #[test]
    fn redacts_echoed_secret() {
        let err = ClientError::new(ClientErrorKind::Api)
            .with_body(r#"{"secret":"s3cr3t"}"#.to_owned())
            .redact("s3cr3t");
        assert_eq!(err.body(), Some(r#"{"secret":"<redacted>"}"#));
    }
}
