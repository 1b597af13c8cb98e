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

use crate::dedup::{
    Claim, ClaimToken, DedupStore, EventKey, MemoryStore, StoreError, StoreErrorKind,
};
use crate::envelope::{self, Envelope};
use crate::headers::{X_VOBIZ_DUPLICATE, X_WEBHOOK_EVENT, X_WEBHOOK_SIGNATURE};
use crate::rejection::Rejection;
use crate::signature::{parse_signature, EmptySecret, Secret, SignatureError, Verifier, TAG_LEN};
use crate::verified::VerifiedEvent;

/// The default body limit: 4 MiB (Meta allows 3 MB payloads, plus the envelope).
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// How long a claim lives before another delivery may take it over (default 60 s).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// How long a handled `event_id` is remembered (default 24 h).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a dedup store may take to answer before the delivery gets a 503 (default 2 s).
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The `Retry-After` of 409 and 503 answers (default 5 s).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

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
pub struct VobizWebhookLayer<D = MemoryStore> {
    config: Arc<Config>,
    store: Arc<D>,
}

impl<D> Clone for VobizWebhookLayer<D> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            store: Arc::clone(&self.store),
        }
    }
}

#[derive(Clone)]
struct Config {
    verifier: Verifier,
    body_limit: usize,
    freshness: Option<Freshness>,
    on_rejection: Option<RejectionHandler>,
    lease: Duration,
    ttl: Duration,
    store_timeout: Duration,
    retry_after: Duration,
    fail_open: bool,
}

/// Bounds on `occurred_at` for the opt-in freshness check.
#[derive(Clone, Copy, Debug)]
struct Freshness {
    max_age: Duration,
    max_future_skew: Duration,
}

impl VobizWebhookLayer<MemoryStore> {
    /// A layer that verifies deliveries signed with `secret` and deduplicates them in process
    /// ([`MemoryStore`] with its default capacity).
    ///
    /// # Errors
    ///
    /// [`EmptySecret`] when `secret` is empty.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, EmptySecret> {
        Ok(Self::from_verifier(Verifier::from_secret(Secret::new(
            secret,
        )?)))
    }

    /// A layer that verifies with every secret of `verifier` and deduplicates in process.
    pub fn from_verifier(verifier: Verifier) -> Self {
        Self {
            config: Arc::new(Config {
                verifier,
                body_limit: DEFAULT_BODY_LIMIT,
                freshness: None,
                on_rejection: None,
                lease: DEFAULT_LEASE,
                ttl: DEFAULT_TTL,
                store_timeout: DEFAULT_STORE_TIMEOUT,
                retry_after: DEFAULT_RETRY_AFTER,
                fail_open: false,
            }),
            store: Arc::new(MemoryStore::new()),
        }
    }
}

impl<D> VobizWebhookLayer<D> {
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

    /// Deduplicates through `store` instead of the in-process default, e.g. a `RedisStore` shared
    /// by every replica of the app.
    pub fn store<D2: DedupStore>(self, store: D2) -> VobizWebhookLayer<D2> {
        VobizWebhookLayer {
            config: self.config,
            store: Arc::new(store),
        }
    }

    /// How long a claim holds before another delivery of the same id may run the handler
    /// (default [`DEFAULT_LEASE`], 60 s). Make it longer than your slowest handler: a handler
    /// that outlives its lease can run concurrently with a retry.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config_mut().lease = lease;
        self
    }

    /// How long a handled `event_id` is remembered (default [`DEFAULT_TTL`], 24 h). A retry
    /// after the TTL runs the handler again.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config_mut().ttl = ttl;
        self
    }

    /// How long the store may take per operation (default [`DEFAULT_STORE_TIMEOUT`], 2 s)
    /// before the delivery is answered 503.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().store_timeout = timeout;
        self
    }

    /// The `Retry-After` sent with 409 (in flight) and 503 (store unavailable) answers
    /// (default [`DEFAULT_RETRY_AFTER`], 5 s; rounded up to whole seconds).
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.config_mut().retry_after = delay;
        self
    }

    /// When the store fails or times out, run the handler anyway instead of answering 503.
    ///
    /// Off by default (fail closed): a handler that runs without a claim may run twice. Every
    /// delivery handled this way logs a warning.
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.config_mut().fail_open = fail_open;
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

impl<D> fmt::Debug for VobizWebhookLayer<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VobizWebhookLayer")
            .field("secrets", &self.config.verifier.len())
            .field("body_limit", &self.config.body_limit)
            .field("freshness", &self.config.freshness)
            .field("custom_rejections", &self.config.on_rejection.is_some())
            .field("store", &std::any::type_name::<D>())
            .field("lease", &self.config.lease)
            .field("ttl", &self.config.ttl)
            .field("store_timeout", &self.config.store_timeout)
            .field("fail_open", &self.config.fail_open)
            .finish()
    }
}

impl<S, D> Layer<S> for VobizWebhookLayer<D> {
    type Service = VobizWebhook<S, D>;

    fn layer(&self, inner: S) -> Self::Service {
        VobizWebhook {
            inner,
            config: Arc::clone(&self.config),
            store: Arc::clone(&self.store),
        }
    }
}

/// The service [`VobizWebhookLayer`] wraps around a handler. See the layer for what it does.
pub struct VobizWebhook<S, D = MemoryStore> {
    inner: S,
    config: Arc<Config>,
    store: Arc<D>,
}

impl<S: Clone, D> Clone for VobizWebhook<S, D> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            store: Arc::clone(&self.store),
        }
    }
}

impl<S: fmt::Debug, D> fmt::Debug for VobizWebhook<S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VobizWebhook")
            .field("inner", &self.inner)
            .field("secrets", &self.config.verifier.len())
            .finish()
    }
}

impl<S, D, ReqBody, ResBody> Service<Request<ReqBody>> for VobizWebhook<S, D>
where
    D: DedupStore,
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
        let store = Arc::clone(&self.store);
        ResponseFuture::new(handle(inner, config, store, request, tag))
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

async fn handle<S, D, ReqBody, ResBody>(
    mut inner: S,
    config: Arc<Config>,
    store: Arc<D>,
    request: Request<ReqBody>,
    tag: [u8; TAG_LEN],
) -> Result<Response, S::Error>
where
    S: Service<Request<Body>, Response = http::Response<ResBody>>,
    D: DedupStore,
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

    // Step 6: claim the event id.
    let key = EventKey::from_event_id(verified.event_id());
    let claim = with_timeout(config.store_timeout, store.claim(&key, config.lease)).await;
    let guard = match claim {
        Ok(Claim::Fresh(token)) => Some(ClaimGuard::new(store, key, token, config.store_timeout)),
        Ok(Claim::Done) => return Ok(duplicate(&verified)),
        Ok(Claim::InFlight) => {
            let retry_after = retry_after_secs(config.retry_after);
            return Ok(reject(&config, Rejection::InFlight { retry_after }));
        }
        Err(error) if config.fail_open => {
            tracing::warn!(
                event_id = verified.event_id(),
                %error,
                "dedup store failed; running the handler without a claim (fail-open)"
            );
            None
        }
        Err(error) => {
            let retry_after = retry_after_secs(config.retry_after);
            let rejection = Rejection::StoreUnavailable {
                error: Arc::new(error),
                retry_after,
            };
            return Ok(reject(&config, rejection));
        }
    };

    // Step 7: the same bytes as the body, the verified record in the extensions.
    let body = Body::from(verified.body().clone());
    parts.extensions.insert(verified);
    // An error returns here: the guard's drop releases the claim (as on a panic or when the
    // response future is dropped).
    let response = inner.call(Request::from_parts(parts, body)).await?;

    // Step 8: settle the claim: done on 2xx, released otherwise so the retry runs the handler.
    if let Some(guard) = guard {
        guard.settle(response.status().is_success(), &config).await;
    }
    Ok(response.map(Body::new))
}

/// A store call bounded by the configured timeout; running out is a store error.
///
/// The operation is polled once before the timer is armed: an in-process store answers on that
/// first poll, and then no clock is read and no timer is made (two per delivery otherwise).
async fn with_timeout<T>(
    timeout: Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let mut operation = std::pin::pin!(operation);
    let first = std::future::poll_fn(|cx| Poll::Ready(operation.as_mut().poll(cx))).await;
    if let Poll::Ready(result) = first {
        return result;
    }
    match tokio::time::timeout(timeout, operation).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::from_kind(StoreErrorKind::Timeout)),
    }
}

fn retry_after_secs(delay: Duration) -> u64 {
    delay.as_secs() + u64::from(delay.subsec_nanos() > 0)
}

/// A completed id delivered again: acknowledged so the sender stops, handler not called.
fn duplicate(event: &VerifiedEvent) -> Response {
    tracing::debug!(
        event_id = event.event_id(),
        "duplicate delivery acknowledged"
    );
    let mut response = Response::new(Body::from("duplicate: event already processed"));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        X_VOBIZ_DUPLICATE,
        http::HeaderValue::from_static("completed"),
    );
    response
}

/// Owns a fresh claim until it is settled; dropped unsettled (handler panicked, or the response
/// future was dropped because the client went away), it settles in a spawned task.
struct ClaimGuard<D: DedupStore> {
    store: Arc<D>,
    key: EventKey,
    /// `None` once settled.
    token: Option<ClaimToken>,
    /// What a drop does: release by default; complete once the handler has succeeded.
    complete_on_drop: Option<Duration>,
    timeout: Duration,
}

impl<D: DedupStore> ClaimGuard<D> {
    fn new(store: Arc<D>, key: EventKey, token: ClaimToken, timeout: Duration) -> Self {
        Self {
            store,
            key,
            token: Some(token),
            complete_on_drop: None,
            timeout,
        }
    }

    async fn settle(mut self, succeeded: bool, config: &Config) {
        if succeeded {
            // Dropped from here on, the claim must still be completed, not released.
            self.complete_on_drop = Some(config.ttl);
        }
        let Some(token) = self.token.as_ref() else {
            return;
        };
        let outcome = settle(
            &*self.store,
            &self.key,
            token,
            self.complete_on_drop,
            self.timeout,
        )
        .await;
        self.token = None;
        log_settlement(&self.key, self.complete_on_drop.is_some(), outcome);
    }
}

async fn settle<D: DedupStore>(
    store: &D,
    key: &EventKey,
    token: &ClaimToken,
    complete: Option<Duration>,
    timeout: Duration,
) -> Result<bool, StoreError> {
    match complete {
        Some(ttl) => with_timeout(timeout, store.complete(key, token, ttl)).await,
        None => with_timeout(timeout, store.release(key, token)).await,
    }
}

fn log_settlement(key: &EventKey, completed: bool, outcome: Result<bool, StoreError>) {
    match (completed, outcome) {
        (_, Ok(true)) => {}
        (true, Ok(false)) => tracing::warn!(
            %key,
            "handler outlived its lease: another delivery may have run it too; not marked done"
        ),
        (false, Ok(false)) => tracing::debug!(%key, "claim already expired before release"),
        (true, Err(error)) => tracing::error!(
            %key,
            %error,
            "could not mark the event done; a retry after the lease runs the handler again"
        ),
        (false, Err(error)) => tracing::warn!(
            %key,
            %error,
            "could not release the claim; a retry waits for the lease to expire"
        ),
    }
}

impl<D: DedupStore> Drop for ClaimGuard<D> {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let store = Arc::clone(&self.store);
        let key = self.key;
        let complete = self.complete_on_drop;
        let timeout = self.timeout;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let outcome = settle(&*store, &key, &token, complete, timeout).await;
                    log_settlement(&key, complete.is_some(), outcome);
                });
            }
            Err(_) => tracing::warn!(
                %key,
                "no Tokio runtime to release the claim; it expires with its lease"
            ),
        }
    }
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
