//! The tower layer that verifies, bounds and parses every delivery before the handler runs.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_core::body::Body;
use axum_core::response::Response;
use bytes::{Buf, Bytes};
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use time::OffsetDateTime;
use tower_layer::Layer;
use tower_service::Service;

use crate::envelope::{self, Envelope};
use crate::headers::{X_WEBHOOK_EVENT, X_WEBHOOK_SIGNATURE};
use crate::rejection::Rejection;
use crate::signature::{parse_signature, EmptySecret, Secret, SignatureError, Verifier, TAG_LEN};
use crate::verified::VerifiedEvent;

/// The default body limit: 4 MiB (Meta allows 3 MB payloads, plus the envelope).
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type RejectionHandler = Arc<dyn Fn(&Rejection) -> Response + Send + Sync>;

/// A [`Layer`] that receives Vobiz webhooks: it verifies the signature, bounds and buffers the
/// body, parses the envelope and hands the inner service a [`VerifiedEvent`].
///
/// Apply it to the webhook route only (`route(..).layer(..)` or `route_layer`): it refuses every
/// request that Vobiz did not sign.
///
/// ```
/// use axum::{routing::post, Router};
/// use vobiz_webhooks::{VobizEvent, VobizWebhookLayer};
///
/// async fn handle(event: VobizEvent) {
///     // verified, typed
/// }
///
/// # fn main() -> Result<(), vobiz_webhooks::signature::EmptySecret> {
/// let app: Router = Router::new().route(
///     "/webhooks/vobiz",
///     post(handle).layer(VobizWebhookLayer::new("your-shared-secret")?),
/// );
/// # Ok(()) }
/// ```
///
/// What it answers on its own, without calling the inner service:
///
/// | status | when |
/// |---|---|
/// | 401 | `X-Webhook-Signature` missing, not 64 hex digits, or not matching any secret |
/// | 413 | the body (declared or streamed) is over the limit |
/// | 400 | unreadable body, invalid UTF-8, malformed JSON, no `event_id`/`event_type`, `X-Webhook-Event` ≠ `event_type`, or a failed freshness check |
#[derive(Clone)]
pub struct VobizWebhookLayer {
    config: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    verifier: Verifier,
    body_limit: usize,
    freshness: Option<Freshness>,
    on_rejection: Option<RejectionHandler>,
}

/// Bounds on `occurred_at` for the opt-in freshness check.
#[derive(Clone, Copy, Debug)]
struct Freshness {
    max_age: Duration,
    max_future_skew: Duration,
}

impl VobizWebhookLayer {
    /// A layer that verifies deliveries signed with `secret`.
    ///
    /// # Errors
    ///
    /// [`EmptySecret`] when `secret` is empty.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, EmptySecret> {
        Ok(Self::from_verifier(Verifier::from_secret(Secret::new(
            secret,
        )?)))
    }

    /// A layer that verifies with every secret of `verifier`.
    pub fn from_verifier(verifier: Verifier) -> Self {
        Self {
            config: Arc::new(Config {
                verifier,
                body_limit: DEFAULT_BODY_LIMIT,
                freshness: None,
                on_rejection: None,
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Also accepts deliveries signed with `secret`: the other side of a rotation.
    ///
    /// Vobiz rotates a secret by creating a new subscription and deleting the old one; deploy
    /// with both secrets, then drop the old one once its subscription is deleted.
    ///
    /// # Errors
    ///
    /// [`EmptySecret`] when `secret` is empty.
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Result<Self, EmptySecret> {
        let secret = Secret::new(secret)?;
        self.config_mut().verifier.push(secret);
        Ok(self)
    }

    /// The largest body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`], 4 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config_mut().body_limit = bytes;
        self
    }

    /// Refuses deliveries whose `occurred_at` is older than `max_age` or more than
    /// `max_future_skew` ahead of this machine's clock, or missing. Off by default: Vobiz
    /// documents no replay window for this leg and retries may come late.
    pub fn freshness(mut self, max_age: Duration, max_future_skew: Duration) -> Self {
        self.config_mut().freshness = Some(Freshness {
            max_age,
            max_future_skew,
        });
        self
    }

    /// Replaces the default rejection responses (status + short `text/plain` reason).
    ///
    /// The layer still inserts the [`Rejection`] into the response's extensions.
    ///
    /// ```
    /// use axum::response::IntoResponse;
    /// use vobiz_webhooks::VobizWebhookLayer;
    ///
    /// let layer = VobizWebhookLayer::new("secret")?.on_rejection(|rejection| {
    ///     (rejection.status(), axum::Json(serde_json::json!({ "error": rejection.body_text() })))
    ///         .into_response()
    /// });
    /// # Ok::<(), vobiz_webhooks::signature::EmptySecret>(())
    /// ```
    pub fn on_rejection<F>(mut self, handler: F) -> Self
    where
        F: Fn(&Rejection) -> Response + Send + Sync + 'static,
    {
        self.config_mut().on_rejection = Some(Arc::new(handler));
        self
    }
}

impl fmt::Debug for VobizWebhookLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VobizWebhookLayer")
            .field("secrets", &self.config.verifier.len())
            .field("body_limit", &self.config.body_limit)
            .field("freshness", &self.config.freshness)
            .field("custom_rejections", &self.config.on_rejection.is_some())
            .finish()
    }
}

impl<S> Layer<S> for VobizWebhookLayer {
    type Service = VobizWebhook<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VobizWebhook {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`VobizWebhookLayer`] wraps around a handler. See the layer for what it does.
#[derive(Clone)]
pub struct VobizWebhook<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for VobizWebhook<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VobizWebhook")
            .field("inner", &self.inner)
            .field("secrets", &self.config.verifier.len())
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for VobizWebhook<S>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; the one we polled is. Keep the ready one for this call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);

        // Step 1: refuse cheaply, before a byte of the body is read.
        let tag = match check_headers(request.headers(), config.body_limit) {
            Ok(tag) => tag,
            Err(rejection) => {
                let response = reject(&config, rejection);
                return ResponseFuture::ready(response);
            }
        };
        ResponseFuture::new(handle(inner, config, request, tag))
    }
}

/// Steps 1: signature header present and well formed; declared length within the limit.
fn check_headers(headers: &HeaderMap, limit: usize) -> Result<[u8; TAG_LEN], Rejection> {
    let mut values = headers.get_all(X_WEBHOOK_SIGNATURE).iter();
    let value = values.next().ok_or(Rejection::MissingSignature)?;
    if values.next().is_some() {
        return Err(Rejection::MalformedSignature);
    }
    let tag = parse_signature(value.as_bytes()).map_err(|_| Rejection::MalformedSignature)?;
    if let Some(length) = headers.get(CONTENT_LENGTH) {
        let declared = length
            .to_str()
            .ok()
            .and_then(|text| text.parse::<u64>().ok());
        // An unparsable Content-Length is hyper's to refuse; here only the limit matters.
        if declared.is_some_and(|declared| declared > limit as u64) {
            return Err(Rejection::PayloadTooLarge { limit });
        }
    }
    Ok(tag)
}

async fn handle<S, ReqBody, ResBody>(
    mut inner: S,
    config: Arc<Config>,
    request: Request<ReqBody>,
    tag: [u8; TAG_LEN],
) -> Result<Response, S::Error>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>>,
    ReqBody: http_body::Body,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    let verified = match verify(&config, &parts.headers, body, &tag).await {
        Ok(verified) => verified,
        Err(rejection) => return Ok(reject(&config, rejection)),
    };
    // Step 7: the same bytes as the body, the verified record in the extensions.
    let body = Body::from(verified.body().clone());
    parts.extensions.insert(verified);
    let response = inner.call(Request::from_parts(parts, body)).await?;
    Ok(response.map(Body::new))
}

/// Steps 2–5: buffer within the limit, verify, read the envelope, check freshness.
async fn verify<B>(
    config: &Config,
    headers: &HeaderMap,
    body: B,
    tag: &[u8; TAG_LEN],
) -> Result<VerifiedEvent, Rejection>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let body = read_body(body, config.body_limit).await?;
    config
        .verifier
        .verify_tag(tag, &body)
        .map_err(|err| match err {
            SignatureError::Malformed => Rejection::MalformedSignature,
            _ => Rejection::SignatureMismatch,
        })?;
    let parsed = envelope::parse(&body).map_err(|err| Rejection::InvalidEnvelope(Arc::new(err)))?;
    check_event_header(headers, &parsed.envelope)?;
    if let Some(freshness) = config.freshness {
        check_freshness(freshness, &parsed.envelope, OffsetDateTime::now_utc())?;
    }
    Ok(VerifiedEvent::new(parsed.envelope, body, parsed.payload))
}

async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, Rejection>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    match Limited::new(body, limit).collect().await {
        Ok(collected) => {
            let mut buf = collected.aggregate();
            Ok(buf.copy_to_bytes(buf.remaining()))
        }
        Err(err) if err.is::<LengthLimitError>() => Err(Rejection::PayloadTooLarge { limit }),
        Err(err) => Err(Rejection::BodyReadFailed(Arc::from(err))),
    }
}

/// The header is not signed, so it only has to agree with the body; its absence is fine.
fn check_event_header(headers: &HeaderMap, envelope: &Envelope) -> Result<(), Rejection> {
    for value in headers.get_all(X_WEBHOOK_EVENT) {
        if value.as_bytes() != envelope.event_type.as_str().as_bytes() {
            return Err(Rejection::EventTypeMismatch {
                header: String::from_utf8_lossy(value.as_bytes()).into_owned(),
                body: envelope.event_type.as_str().to_owned(),
            });
        }
    }
    Ok(())
}

fn check_freshness(
    freshness: Freshness,
    envelope: &Envelope,
    now: OffsetDateTime,
) -> Result<(), Rejection> {
    let occurred_at = envelope.occurred_at.ok_or(Rejection::MissingTimestamp)?;
    let age = now - occurred_at;
    if age > freshness.max_age {
        return Err(Rejection::Stale);
    }
    if -age > freshness.max_future_skew {
        return Err(Rejection::FromTheFuture);
    }
    Ok(())
}

fn reject(config: &Config, rejection: Rejection) -> Response {
    tracing::debug!(
        status = rejection.status().as_u16(),
        reason = %rejection,
        "vobiz webhook rejected"
    );
    match &config.on_rejection {
        Some(handler) => {
            let mut response = handler(&rejection);
            response.extensions_mut().insert(rejection);
            response
        }
        None => rejection.into_response_default(),
    }
}

/// The future [`VobizWebhook`] returns.
pub struct ResponseFuture<E> {
    state: FutureState<E>,
}

enum FutureState<E> {
    /// Refused from the headers alone: nothing to wait for, nothing boxed.
    Ready(Option<Response>),
    Running(Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>),
}

impl<E> ResponseFuture<E> {
    fn new(future: impl Future<Output = Result<Response, E>> + Send + 'static) -> Self {
        Self {
            state: FutureState::Running(Box::pin(future)),
        }
    }

    fn ready(response: Response) -> Self {
        Self {
            state: FutureState::Ready(Some(response)),
        }
    }
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            FutureState::Ready(response) => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("ResponseFuture polled after completion"),
            },
            FutureState::Running(future) => future.as_mut().poll(cx),
        }
    }
}

impl<E> fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
