//! A typed async client for Vobiz's webhook subscription API (feature `client`).
//!
//! Register the endpoint your app serves at deploy time, list what is registered, delete what
//! is not wanted any more, and rotate a secret without missing a delivery.
//!
//! ```no_run
//! use vobiz_webhooks::client::{SubscriptionClient, WebhookSecret};
//!
//! # async fn run() -> Result<(), vobiz_webhooks::client::ClientError> {
//! let client = SubscriptionClient::new(
//!     std::env::var("VOBIZ_AUTH_ID").unwrap_or_default(),
//!     std::env::var("VOBIZ_AUTH_TOKEN").unwrap_or_default(),
//! )?;
//!
//! // A strong secret; keep it in your secret store and give it to `VobizWebhookLayer::new`.
//! let secret = WebhookSecret::generate()?;
//! let created = client.create("https://example.com/webhooks/vobiz", &secret).await?;
//! println!("registered {} ({})", created.id, created.status);
//!
//! for subscription in client.list().await? {
//!     println!("{} {} {}", subscription.id, subscription.url, subscription.status);
//! }
//! # Ok(()) }
//! ```
//!
//! The API, as Vobiz documents it:
//!
//! | call | request | success |
//! |---|---|---|
//! | [`create`](SubscriptionClient::create) | `POST {base}/webhooks` `{"url", "secret"}` | `201` + the subscription |
//! | [`list`](SubscriptionClient::list) | `GET {base}/webhooks` | `200` + `{"items": [...]}` |
//! | [`delete`](SubscriptionClient::delete) | `DELETE {base}/webhooks/{id}` | `204` |
//!
//! Every request carries `X-Auth-ID` + `X-Auth-Token` (or `Authorization: Bearer`), and the
//! client refuses a non-HTTPS webhook url and an empty secret before sending anything.
//!
//! - Credentials: `X-Auth-ID` + `X-Auth-Token` ([`SubscriptionClient::new`] or
//!   `builder().auth_id_token(..)`), or `builder().bearer_token(jwt)`. They never appear in
//!   `Debug`, `Display` or logs; neither do webhook secrets ([`WebhookSecret`] prints
//!   `<redacted>`).
//! - Builder: `.base_url(..)` (default `https://api.vobiz.ai/api/v1/messaging`; plain `http://`
//!   only on loopback, for tests), `.connect_timeout(..)` (default 5 s), `.timeout(..)` (default
//!   30 s).
//! - Refused before any request: a webhook `url` that is not `https://` (Vobiz only delivers to
//!   HTTPS) and an empty secret.
//! - Errors: one [`ClientError`] with `kind()` (`Auth` for 401/403, whose message names the
//!   credentials; `Api`, `Timeout`, `Connect`, `Transport`, `MalformedResponse`,
//!   `InvalidWebhookUrl`, `EmptySecret`, `Config`, `Random`, `RotationRefused`), `status()`,
//!   `body()` (Vobiz's error body, raw, at most 4 KiB) and `source()`; `is_retryable()` for
//!   timeouts, connection failures, 429 and 5xx.
//! - [`Subscription`] `{ id, url, status, created_at, updated_at }`; `status` is `Active`,
//!   `Inactive` or `Other(String)` for values Vobiz adds later; unknown fields are ignored.
//!
//! # Try it: register the example server
//!
//! Expose your webhook route over HTTPS (a tunnel gives you a public `https://` URL), then:
//!
//! ```sh
//! VOBIZ_AUTH_ID=MA_XXXXXXXX \
//! VOBIZ_AUTH_TOKEN=your-auth-token \
//! VOBIZ_PUBLIC_URL=https://your-tunnel.example/webhooks/vobiz \
//! cargo run --example register --features client
//! ```
//!
//! Optional: `VOBIZ_WEBHOOK_SECRET` (the secret to register; when absent the example generates one
//! and prints `VOBIZ_WEBHOOK_SECRET=...`: start your server with it), `VOBIZ_API_BASE` (another API
//! base URL, e.g. a proxy). The example lists the account's subscriptions first and does not
//! register a URL twice (that would double every delivery).
//!
//! # Rotating a secret
//!
//! Vobiz has no "change secret" call: a rotation is a new subscription for the same URL with a new
//! secret, then deleting the old one. While both exist Vobiz delivers each event twice, once per
//! secret, so the server must accept both meanwhile
//! ([`VobizWebhookLayer::secret`](crate::VobizWebhookLayer::secret)).
//!
//! With the layer built on a live [`Secrets`](crate::Secrets) handle, the whole rotation runs
//! in the serving process, without a redeploy:
//!
//! ```no_run
//! # async fn run(
//! #     client: vobiz_webhooks::client::SubscriptionClient,
//! #     old_secret: String,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use vobiz_webhooks::{Secrets, VobizWebhookLayer};
//!
//! let secrets = Secrets::new([&old_secret])?;
//! let layer = VobizWebhookLayer::from_secrets(secrets.clone()); // serve with this layer
//! # let _ = layer;
//!
//! // 1. Remembers the subscriptions already registered for the URL and creates a new one with a
//! //    freshly generated secret. Nothing is deleted.
//! let rotation = client.rotate_begin("https://your-app.example/webhooks/vobiz").await?;
//! // 2. Accept both secrets, at once (store the new one where your next start reads it too).
//! secrets.add(rotation.new_secret().expose())?;
//! // 3. Checks the new subscription is still registered and active, then deletes the old ones
//! //    (an old one already gone counts as deleted). If it fails, `abort` deletes the new one.
//! let new = rotation.finish(&client).await?;
//! // 4. Vobiz no longer signs with the old secret: stop accepting it.
//! secrets.remove(&old_secret)?;
//! println!("rotated to {}", new.id);
//! # Ok(()) }
//! ```
//!
//! Across processes (several replicas), do step 2 everywhere before step 3: with the example
//! server, write both secrets to its `VOBIZ_WEBHOOK_SECRET_FILE` and send it `SIGHUP`.
//!
//! [`Rotation`] is `#[must_use]` and `finish`/`abort` consume it; on failure they hand the
//! rotation back in the [`RotationError`] (`err.into_rotation().finish(&client)` retries; only the
//! old subscriptions not yet deleted remain in it). To never have a delivery refused, generate the
//! secret first ([`WebhookSecret::generate`]), deploy the server with both secrets, then call
//! [`SubscriptionClient::rotate_begin_with_secret`] and `finish` at once.
//!
//! Events may arrive twice during the overlap (one delivery per subscription). Whether both
//! deliveries share an `event_id` is not documented, so keep handlers idempotent on WhatsApp's own
//! ids (`wamid`, call ids) for that window.

mod builder;
mod error;
mod rotation;
mod secret;
mod subscription;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::StatusCode;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use builder::SubscriptionClientBuilder;
pub use error::{ClientError, ClientErrorKind};
pub use rotation::{Rotation, RotationError};
pub use secret::{WebhookSecret, GENERATED_SECRET_BYTES};
pub use subscription::{Subscription, SubscriptionStatus};

use subscription::SubscriptionList;

/// Vobiz's messaging API base URL, the default of [`SubscriptionClientBuilder::base_url`].
pub const DEFAULT_BASE_URL: &str = "https://api.vobiz.ai/api/v1/messaging";

/// Default time allowed to establish a connection: 5 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time allowed for a whole request, connection to last byte: 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The account's credential header `X-Auth-ID`.
pub const X_AUTH_ID: HeaderName = HeaderName::from_static("x-auth-id");

/// The account's credential header `X-Auth-Token`.
pub const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");

const USER_AGENT: &str = concat!("vobiz-webhooks/", env!("CARGO_PKG_VERSION"));

/// A client for Vobiz's webhook subscription API.
///
/// Cheap to clone (the connection pool is shared). `Debug` never shows the credentials.
///
/// ```no_run
/// use std::time::Duration;
/// use vobiz_webhooks::client::SubscriptionClient;
///
/// # fn build() -> Result<(), vobiz_webhooks::client::ClientError> {
/// let client = SubscriptionClient::builder()
///     .auth_id_token("MA_XXXXXXXX", "your-auth-token")
///     .timeout(Duration::from_secs(10))
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SubscriptionClient {
    http: reqwest::Client,
    /// `{base}/webhooks`
    webhooks: Url,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    Pair { id: HeaderValue, token: HeaderValue },
    Bearer(HeaderValue),
}

impl SubscriptionClient {
    /// A client for the default base URL, authenticated with the account's `X-Auth-ID` and
    /// `X-Auth-Token` (console.vobiz.ai → Settings → API), with the default timeouts.
    ///
    /// # Errors
    ///
    /// [`ClientErrorKind::Config`] when a credential is empty or cannot be sent as a header.
    ///
    /// ```no_run
    /// # fn build() -> Result<(), vobiz_webhooks::client::ClientError> {
    /// let client = vobiz_webhooks::client::SubscriptionClient::new("MA_XXXXXXXX", "token")?;
    /// # Ok(()) }
    /// ```
    pub fn new(
        auth_id: impl Into<String>,
        auth_token: impl Into<String>,
    ) -> Result<Self, ClientError> {
        Self::builder().auth_id_token(auth_id, auth_token).build()
    }

    /// A builder for the credentials, base URL and timeouts.
    ///
    /// ```
    /// let builder = vobiz_webhooks::client::SubscriptionClient::builder();
    /// ```
    #[must_use]
    pub fn builder() -> SubscriptionClientBuilder {
        SubscriptionClientBuilder::default()
    }

    /// Registers `url` to receive every event, signed with `secret`.
    ///
    /// `url` must be an absolute `https://` URL: Vobiz only delivers to HTTPS. Vobiz never
    /// returns the secret; keep it (it is what [`VobizWebhookLayer::new`] needs).
    ///
    /// [`VobizWebhookLayer::new`]: crate::VobizWebhookLayer::new
    ///
    /// # Errors
    ///
    /// [`ClientErrorKind::InvalidWebhookUrl`] or [`ClientErrorKind::EmptySecret`] before any
    /// request; then [`ClientErrorKind::Auth`], [`ClientErrorKind::Api`],
    /// [`ClientErrorKind::Timeout`], [`ClientErrorKind::Connect`],
    /// [`ClientErrorKind::Transport`] or [`ClientErrorKind::MalformedResponse`] (the
    /// subscription may exist then: check with [`list`](Self::list)).
    ///
    /// ```no_run
    /// # async fn run(client: vobiz_webhooks::client::SubscriptionClient) -> Result<(), vobiz_webhooks::client::ClientError> {
    /// let secret = std::env::var("VOBIZ_WEBHOOK_SECRET").unwrap_or_default();
    /// let subscription = client.create("https://example.com/webhooks/vobiz", &secret).await?;
    /// println!("subscription {}", subscription.id);
    /// # Ok(()) }
    /// ```
    pub async fn create(
        &self,
        url: &str,
        secret: impl AsRef<str>,
    ) -> Result<Subscription, ClientError> {
        let url = webhook_url(url)?;
        let secret = secret.as_ref();
        if secret.is_empty() {
            return Err(ClientError::new(ClientErrorKind::EmptySecret));
        }
        #[derive(Serialize)]
        struct Create<'a> {
            url: &'a str,
            secret: &'a str,
        }
        let body = Create {
            url: url.as_str(),
            secret,
        };
        let request = self
            .request(Method::POST, self.webhooks.clone())
            .json(&body);
        let (status, bytes) = self.send(request).await.map_err(|e| e.redact(secret))?;
        parse(status, &bytes).map_err(|e| e.redact(secret))
    }

    /// Every subscription of the account (no pagination is documented).
    ///
    /// # Errors
    ///
    /// [`ClientErrorKind::Auth`], [`ClientErrorKind::Api`], [`ClientErrorKind::Timeout`],
    /// [`ClientErrorKind::Connect`], [`ClientErrorKind::Transport`] or
    /// [`ClientErrorKind::MalformedResponse`].
    ///
    /// ```no_run
    /// # async fn run(client: vobiz_webhooks::client::SubscriptionClient) -> Result<(), vobiz_webhooks::client::ClientError> {
    /// for subscription in client.list().await? {
    ///     println!("{} {} {}", subscription.id, subscription.url, subscription.status);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list(&self) -> Result<Vec<Subscription>, ClientError> {
        let request = self.request(Method::GET, self.webhooks.clone());
        let (status, bytes) = self.send(request).await?;
        let list: SubscriptionList = parse(status, &bytes)?;
        Ok(list.items)
    }

    /// Deletes the subscription `id`; deliveries to its URL stop.
    ///
    /// # Errors
    ///
    /// [`ClientErrorKind::Auth`], [`ClientErrorKind::Api`] (e.g. `404` for an unknown id),
    /// [`ClientErrorKind::Timeout`], [`ClientErrorKind::Connect`] or
    /// [`ClientErrorKind::Transport`].
    ///
    /// ```no_run
    /// # async fn run(client: vobiz_webhooks::client::SubscriptionClient) -> Result<(), vobiz_webhooks::client::ClientError> {
    /// client.delete("f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, id: &str) -> Result<(), ClientError> {
        if id.is_empty() {
            return Err(ClientError::new(ClientErrorKind::Config)
                .with_context("the subscription id must not be empty"));
        }
        let mut url = self.webhooks.clone();
        url.path_segments_mut()
            .map_err(|()| {
                ClientError::new(ClientErrorKind::Config).with_context("the base URL has no path")
            })?
            .push(id);
        self.send(self.request(Method::DELETE, url)).await?;
        Ok(())
    }

    /// Starts a secret rotation for `url` with a freshly generated secret: remembers the
    /// subscriptions already registered for `url`, then creates a new one.
    ///
    /// Deploy [`Rotation::new_secret`] next to the old secret
    /// ([`VobizWebhookLayer::secret`](crate::VobizWebhookLayer::secret)), then call
    /// [`Rotation::finish`] to delete the old subscriptions. Until then Vobiz delivers every
    /// event to both subscriptions. See [`Rotation`] for the whole walkthrough.
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list) and [`create`](Self::create), plus [`ClientErrorKind::Random`].
    /// Nothing was created when the error comes from the list or the secret.
    ///
    /// ```no_run
    /// # async fn run(client: vobiz_webhooks::client::SubscriptionClient) -> Result<(), Box<dyn std::error::Error>> {
    /// let rotation = client.rotate_begin("https://example.com/webhooks/vobiz").await?;
    /// // store rotation.new_secret().expose() and deploy with both secrets, then:
    /// rotation.finish(&client).await?;
    /// # Ok(()) }
    /// ```
    pub async fn rotate_begin(&self, url: &str) -> Result<Rotation, ClientError> {
        let secret = WebhookSecret::generate()?;
        self.rotate_begin_with_secret(url, secret).await
    }

    /// [`rotate_begin`](Self::rotate_begin) with a secret you chose or deployed already.
    ///
    /// Deploying the new secret next to the old one *before* this call means no delivery to
    /// the new subscription is ever refused; then [`Rotation::finish`] can follow at once.
    ///
    /// # Errors
    ///
    /// As [`rotate_begin`](Self::rotate_begin).
    ///
    /// ```no_run
    /// use vobiz_webhooks::client::WebhookSecret;
    ///
    /// # async fn run(client: vobiz_webhooks::client::SubscriptionClient) -> Result<(), Box<dyn std::error::Error>> {
    /// let secret = WebhookSecret::new(std::env::var("VOBIZ_NEW_WEBHOOK_SECRET")?)?;
    /// // the server already accepts both the old and the new secret
    /// let rotation = client
    ///     .rotate_begin_with_secret("https://example.com/webhooks/vobiz", secret)
    ///     .await?;
    /// rotation.finish(&client).await?;
    /// # Ok(()) }
    /// ```
    pub async fn rotate_begin_with_secret(
        &self,
        url: &str,
        secret: WebhookSecret,
    ) -> Result<Rotation, ClientError> {
        let target = webhook_url(url)?;
        let old = self
            .list()
            .await?
            .into_iter()
            .filter(|subscription| same_url(&subscription.url, &target))
            .collect();
        let new = self.create(target.as_str(), &secret).await?;
        Ok(Rotation::new(new, secret, old))
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.auth {
            Auth::Pair { id, token } => request
                .header(X_AUTH_ID, id.clone())
                .header(X_AUTH_TOKEN, token.clone()),
            Auth::Bearer(token) => request.header(AUTHORIZATION, token.clone()),
        }
    }

    /// Sends `request`; a success status gives its body, any other an error with the body.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let request = request.build().map_err(ClientError::from_reqwest)?;
        let method = request.method().clone();
        let path = request.url().path().to_owned();
        let response = self.http.execute(request).await.map_err(|err| {
            tracing::debug!(%method, %path, error = %err, "vobiz subscription request failed");
            ClientError::from_reqwest(err)
        })?;
        let status = response.status();
        tracing::debug!(
            %method,
            %path,
            status = status.as_u16(),
            "vobiz subscription API answered"
        );
        let bytes = response.bytes().await.map_err(|err| {
            let mut error = ClientError::from_reqwest(err);
            if error.status().is_none() {
                error = error.with_status(status);
            }
            error
        })?;
        if status.is_success() {
            return Ok((status, bytes));
        }
        let kind = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ClientErrorKind::Auth,
            _ => ClientErrorKind::Api,
        };
        Err(ClientError::new(kind)
            .with_status(status)
            .with_body(String::from_utf8_lossy(&bytes).into_owned()))
    }
}

fn parse<T: DeserializeOwned>(status: StatusCode, bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ClientError::new(ClientErrorKind::MalformedResponse)
            .with_status(status)
            .with_body(String::from_utf8_lossy(bytes).into_owned())
            .with_source(err)
    })
}

/// Parses and checks a webhook url: absolute, `https`, with a host.
fn webhook_url(url: &str) -> Result<Url, ClientError> {
    let parsed = Url::parse(url.trim()).map_err(|err| {
        ClientError::new(ClientErrorKind::InvalidWebhookUrl)
            .with_context("not a valid absolute URL")
            .with_source(err)
    })?;
    if parsed.scheme() != "https" {
        return Err(ClientError::new(ClientErrorKind::InvalidWebhookUrl)
            .with_context("Vobiz only delivers to https:// endpoints"));
    }
    if parsed.host().is_none() {
        return Err(ClientError::new(ClientErrorKind::InvalidWebhookUrl).with_context("no host"));
    }
    Ok(parsed)
}

fn same_url(registered: &str, target: &Url) -> bool {
    match Url::parse(registered) {
        Ok(registered) => &registered == target,
        Err(_) => registered == target.as_str(),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some(host) if host.eq_ignore_ascii_case("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

impl fmt::Debug for SubscriptionClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionClient")
            .field("webhooks", &self.webhooks.as_str())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pair { .. } => "X-Auth-ID/X-Auth-Token(<redacted>)",
            Self::Bearer(_) => "Bearer(<redacted>)",
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_url_is_appended_to_base() {
        for base in [
            "https://api.vobiz.ai/api/v1/messaging",
            "https://api.vobiz.ai/api/v1/messaging/",
        ] {
            let client = SubscriptionClient::builder()
                .auth_id_token("id", "token")
                .base_url(base)
                .build()
                .unwrap();
            assert_eq!(
                client.webhooks.as_str(),
                "https://api.vobiz.ai/api/v1/messaging/webhooks"
            );
        }
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let build = |base: &str| {
            SubscriptionClient::builder()
                .auth_id_token("id", "token")
                .base_url(base)
                .build()
        };
        assert!(build("http://127.0.0.1:8080/api").is_ok());
        assert!(build("http://localhost:8080/api").is_ok());
        assert!(build("http://[::1]:8080/api").is_ok());
        let err = build("http://api.vobiz.ai/api/v1/messaging").unwrap_err();
        assert_eq!(err.kind(), ClientErrorKind::Config);
    }

    #[test]
    fn credentials_are_required_and_checked() {
        let err = SubscriptionClient::builder().build().unwrap_err();
        assert_eq!(err.kind(), ClientErrorKind::Config);
        let err = SubscriptionClient::new("id", "").unwrap_err();
        assert_eq!(err.kind(), ClientErrorKind::Config);
        let err = SubscriptionClient::new("id", "bad\ntoken").unwrap_err();
        assert!(!format!("{err:?}{err}").contains("bad"));
    }

    #[test]
    fn webhook_url_must_be_https() {
        assert!(webhook_url("https://example.com/hook").is_ok());
        for bad in [
            "http://example.com/hook",
            "example.com/hook",
            "ftp://x/y",
            "",
        ] {
            assert_eq!(
                webhook_url(bad).unwrap_err().kind(),
                ClientErrorKind::InvalidWebhookUrl,
                "{bad}"
            );
        }
    }
}
