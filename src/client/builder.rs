//! [`SubscriptionClientBuilder`]: credentials, base URL and timeouts, checked once in `build`.

use std::fmt;
use std::time::Duration;

use http::header::HeaderValue;
use reqwest::Url;

use super::{
    is_loopback, Auth, ClientError, ClientErrorKind, SubscriptionClient, DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, USER_AGENT,
};

/// Builds a [`SubscriptionClient`]: credentials (required), base URL and timeouts.
///
/// ```no_run
/// use std::time::Duration;
/// use vobiz_webhooks::client::SubscriptionClient;
///
/// # fn build() -> Result<(), vobiz_webhooks::client::ClientError> {
/// let client = SubscriptionClient::builder()
///     .bearer_token("eyJhbGciOi...")
///     .base_url("https://vobiz-proxy.internal.example/api/v1/messaging")
///     .connect_timeout(Duration::from_secs(2))
///     .timeout(Duration::from_secs(10))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SubscriptionClientBuilder {
    base_url: String,
    credentials: Option<Credentials>,
    connect_timeout: Duration,
    timeout: Duration,
}

#[derive(Clone)]
enum Credentials {
    Pair { id: String, token: String },
    Bearer(String),
}

impl Default for SubscriptionClientBuilder {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            credentials: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl SubscriptionClientBuilder {
    /// Authenticates with the account's `X-Auth-ID` and `X-Auth-Token` (recommended for
    /// server-to-server calls). Replaces a bearer token set before.
    #[must_use]
    pub fn auth_id_token(mut self, auth_id: impl Into<String>, token: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::Pair {
            id: auth_id.into(),
            token: token.into(),
        });
        self
    }

    /// Authenticates with `Authorization: Bearer <token>` (a JWT from Vobiz's login).
    /// Replaces an id/token pair set before.
    #[must_use]
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::Bearer(token.into()));
        self
    }

    /// The API base URL, default [`DEFAULT_BASE_URL`]; `/webhooks` is appended to it.
    ///
    /// Must be `https://`, except on a loopback host (`localhost`, `127.0.0.0/8`, `[::1]`)
    /// where plain `http://` is allowed for tests: the credentials travel with every request.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Time allowed to establish a connection, default [`DEFAULT_CONNECT_TIMEOUT`] (5 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for a whole request, default [`DEFAULT_TIMEOUT`] (30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The client.
    ///
    /// # Errors
    ///
    /// [`ClientErrorKind::Config`] when no credentials were given, a credential is empty or
    /// not a valid header value, the base URL is invalid or plain HTTP on a non-loopback host,
    /// or the HTTP stack cannot start.
    pub fn build(self) -> Result<SubscriptionClient, ClientError> {
        let auth = match self.credentials {
            None => {
                return Err(ClientError::new(ClientErrorKind::Config).with_context(
                    "no credentials: call auth_id_token(id, token) or bearer_token(token)",
                ))
            }
            Some(Credentials::Pair { id, token }) => Auth::Pair {
                id: credential(&id, "the auth id is empty or not a valid header value")?,
                token: credential(
                    &token,
                    "the auth token is empty or not a valid header value",
                )?,
            },
            Some(Credentials::Bearer(token)) => {
                const INVALID: &str = "the bearer token is empty or not a valid header value";
                if token.is_empty() {
                    return Err(ClientError::new(ClientErrorKind::Config).with_context(INVALID));
                }
                Auth::Bearer(credential(&format!("Bearer {token}"), INVALID)?)
            }
        };
        let mut webhooks = Url::parse(self.base_url.trim()).map_err(|err| {
            ClientError::new(ClientErrorKind::Config)
                .with_context("the base URL is not a valid absolute URL")
                .with_source(err)
        })?;
        match webhooks.scheme() {
            "https" => {}
            "http" if is_loopback(&webhooks) => {}
            _ => {
                return Err(ClientError::new(ClientErrorKind::Config).with_context(
                    "the base URL must be https:// (plain http:// only on a loopback host)",
                ))
            }
        }
        webhooks.set_query(None);
        webhooks.set_fragment(None);
        webhooks
            .path_segments_mut()
            .map_err(|()| {
                ClientError::new(ClientErrorKind::Config).with_context("the base URL has no path")
            })?
            .pop_if_empty()
            .push("webhooks");
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|err| {
                ClientError::new(ClientErrorKind::Config)
                    .with_context("the HTTP client could not start")
                    .with_source(err)
            })?;
        Ok(SubscriptionClient {
            http,
            webhooks,
            auth,
        })
    }
}

fn credential(value: &str, invalid: &'static str) -> Result<HeaderValue, ClientError> {
    let error = || ClientError::new(ClientErrorKind::Config).with_context(invalid);
    if value.is_empty() {
        return Err(error());
    }
    // The source error would say nothing more; leave it out so nothing can carry the value.
    let mut header = HeaderValue::from_str(value).map_err(|_| error())?;
    header.set_sensitive(true);
    Ok(header)
}

impl fmt::Debug for SubscriptionClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionClientBuilder")
            .field("base_url", &self.base_url)
            .field(
                "credentials",
                &match self.credentials {
                    None => "none",
                    Some(Credentials::Pair { .. }) => "X-Auth-ID/X-Auth-Token(<redacted>)",
                    Some(Credentials::Bearer(_)) => "Bearer(<redacted>)",
                },
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish()
    }
}
