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

use crate::claim::{Background, ClaimHandle, OwnedClaim, SettleStore, Settler};
use crate::dedup::{Claim, DedupStore, EventKey, MemoryStore, StoreError, StoreErrorKind};
use crate::envelope::{self, Envelope};
use crate::future::{deadline_after, timeout_unless_ready, BoxError, ReadyOrBoxed};
use crate::headers::{X_VOBIZ_DUPLICATE, X_WEBHOOK_EVENT, X_WEBHOOK_SIGNATURE};
use crate::rejection::Rejection;
use crate::response::{retry_after_secs, text_response};
use crate::signature::{parse_signature, EmptySecret, Secret, SignatureError, Verifier, TAG_LEN};
use crate::verified::VerifiedEvent;

/// The default body limit: 4 MiB (Meta allows 3 MB payloads, plus the envelope).
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024 * 1024;

/// How long the body may take to arrive once the headers are in (default 30 s).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a claim lives before another delivery may take it over (default 60 s).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// How long a handled `event_id` is remembered (default 24 h).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a dedup store may take to answer before the delivery gets a 503 (default 2 s).
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The `Retry-After` of 409 and 503 answers (default 5 s).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

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
/// let app: Router = Router::new().route(
///     "/webhooks/vobiz",
///     post(handle).layer(VobizWebhookLayer::new("your-shared-secret")),
/// );
/// ```
///
/// What it answers on its own, without calling the inner service:
///
/// | status | when |
/// |---|---|
/// | 401 | `X-Webhook-Signature` missing, not 64 hex digits, or not matching any secret |
/// | 413 | the body (declared or streamed) is over the limit |
/// | 408 | the body did not arrive within the body timeout |
/// | 400 | unreadable body, invalid UTF-8, malformed JSON, no `event_id`/`event_type`, `X-Webhook-Event` ≠ `event_type`, or a failed freshness check |
/// | 409 | the same `event_id` is being handled right now (`Retry-After`) |
/// | 503 | the dedup store failed or timed out, or the handler outlived its lease (`Retry-After`) |
pub struct VobizWebhookLayer<D = MemoryStore> {
    config: Arc<Config>,
    dedup: Dedup<D>,
}

impl<D> Clone for VobizWebhookLayer<D> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            dedup: self.dedup.clone(),
        }
    }
}

/// The store, shared by every clone: typed for the claim on the hot path, erased for the
/// [`OwnedClaim`] that settles it.
struct Dedup<D> {
    store: Arc<D>,
    settler: Arc<dyn SettleStore>,
}

impl<D: DedupStore> Dedup<D> {
    fn new(store: D) -> Self {
        let store = Arc::new(store);
        Self {
            settler: Arc::new(Settler {
                store: Arc::clone(&store),
                background: Background::default(),
            }),
            store,
        }
    }
}

impl<D> Clone for Dedup<D> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            settler: Arc::clone(&self.settler),
        }
    }
}

#[derive(Clone)]
struct Config {
    verifier: Verifier,
    body_limit: usize,
    body_timeout: Duration,
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
    /// # Panics
    ///
    /// When `secret` is empty. Use [`try_new`](Self::try_new) for a secret read at run time
    /// that may be missing.
    #[track_caller]
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        match Self::try_new(secret) {
            Ok(layer) => layer,
            Err(EmptySecret) => panic!(
                "VobizWebhookLayer::new: the webhook secret is empty; \
                 use VobizWebhookLayer::try_new to handle that as an error"
            ),
        }
    }

    /// Like [`new`](Self::new), but returns an error instead of panicking.
    ///
    /// # Errors
    ///
    /// [`EmptySecret`] when `secret` is empty.
    pub fn try_new(secret: impl AsRef<[u8]>) -> Result<Self, EmptySecret> {
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
                body_timeout: DEFAULT_BODY_TIMEOUT,
                freshness: None,
                on_rejection: None,
                lease: DEFAULT_LEASE,
                ttl: DEFAULT_TTL,
                store_timeout: DEFAULT_STORE_TIMEOUT,
                retry_after: DEFAULT_RETRY_AFTER,
                fail_open: false,
            }),
            dedup: Dedup::new(MemoryStore::new()),
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
    /// # Panics
    ///
    /// When `secret` is empty; [`try_secret`](Self::try_secret) returns the error instead.
    #[track_caller]
    pub fn secret(self, secret: impl AsRef<[u8]>) -> Self {
        match self.try_secret(secret) {
            Ok(layer) => layer,
            Err(EmptySecret) => panic!(
                "VobizWebhookLayer::secret: the webhook secret is empty; \
                 use VobizWebhookLayer::try_secret to handle that as an error"
            ),
        }
    }

    /// Like [`secret`](Self::secret), but returns an error instead of panicking.
    ///
    /// # Errors
    ///
    /// [`EmptySecret`] when `secret` is empty.
    pub fn try_secret(mut self, secret: impl AsRef<[u8]>) -> Result<Self, EmptySecret> {
        let secret = Secret::new(secret)?;
        self.config_mut().verifier.push(secret);
        Ok(self)
    }

    /// The largest body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`], 4 MiB).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config_mut().body_limit = bytes;
        self
    }

    /// How long the body may take to arrive after the headers (default [`DEFAULT_BODY_TIMEOUT`],
    /// 30 s). A client that trickles its body is answered 408 ([`Rejection::BodyTimeout`]) and
    /// its buffer freed, instead of holding both for as long as it likes. A body that is
    /// complete when the layer first looks (a webhook's usually is) makes no timer.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().body_timeout = timeout;
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
            dedup: Dedup::new(store),
        }
    }

    /// How long a claim holds before another delivery of the same id may run the handler
    /// (default [`DEFAULT_LEASE`], 60 s). Make it longer than your slowest handler: a handler
    /// still running when its lease ends is cancelled (its future is dropped) and the delivery
    /// answered 503 + `Retry-After` ([`Rejection::LeaseExpired`]), so it never runs alongside a
    /// retry that claims the expired id. Work the handler spawned itself is not cancelled.
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

    /// Resolves once the store work this layer (and its clones) left running behind responses
    /// has finished: completions a networked store acknowledges after the 200, releases of claims
    /// whose request was dropped, claims that landed after their timeout.
    ///
    /// Await it after the server has shut down gracefully and before the runtime ends, so that
    /// the last deliveries are recorded as done in the store (for how long: your shutdown
    /// grace; each piece of work is bounded by the store timeout). With an in-process store
    /// there is nothing to wait for.
    ///
    /// ```no_run
    /// # async fn run(listener: tokio::net::TcpListener) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use axum::{routing::post, Router};
    /// use vobiz_webhooks::{VobizEvent, VobizWebhookLayer};
    ///
    /// let layer = VobizWebhookLayer::new("your-shared-secret");
    /// let app = Router::new().route("/webhooks/vobiz", post(|_: VobizEvent| async {}).layer(layer.clone()));
    /// axum::serve(listener, app).with_graceful_shutdown(async { /* Ctrl-C */ }).await?;
    /// let _ = tokio::time::timeout(Duration::from_secs(5), layer.settled()).await;
    /// # Ok(()) }
    /// ```
    pub fn settled(&self) -> impl Future<Output = ()> + Send + 'static {
        let background = self.dedup.settler.background().clone();
        async move { background.idle().await }
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
    /// let layer = VobizWebhookLayer::new("secret").on_rejection(|rejection| {
    ///     (rejection.status(), axum::Json(serde_json::json!({ "error": rejection.body_text() })))
    ///         .into_response()
    /// });
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
            dedup: self.dedup.clone(),
        }
    }
}

/// The service [`VobizWebhookLayer`] wraps around a handler. See the layer for what it does.
pub struct VobizWebhook<S, D = MemoryStore> {
    inner: S,
    config: Arc<Config>,
    dedup: Dedup<D>,
}

impl<S: Clone, D> Clone for VobizWebhook<S, D> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            dedup: self.dedup.clone(),
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
        let dedup = self.dedup.clone();
        ResponseFuture::new(handle(inner, config, dedup, request, tag))
    }
}

/// Step 1: signature header present and well formed; declared length within the limit.
fn check_headers(headers: &HeaderMap, limit: usize) -> Result<[u8; TAG_LEN], Rejection> {
    // One pass over the few headers of a delivery: cheaper than hashing each custom name.
    let mut signature = None;
    let mut content_length = None;
    for (name, value) in headers {
        if *name == X_WEBHOOK_SIGNATURE {
            if signature.replace(value).is_some() {
                return Err(Rejection::MalformedSignature);
            }
        } else if *name == CONTENT_LENGTH && content_length.is_none() {
            content_length = Some(value);
        }
    }
    let value = signature.ok_or(Rejection::MissingSignature)?;
    let tag = parse_signature(value.as_bytes()).map_err(|_| Rejection::MalformedSignature)?;
    if let Some(length) = content_length {
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
    dedup: Dedup<D>,
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

    // Step 6: claim the event id. The lease runs from before the claim is sent, so the handler's
    // deadline below falls before the store lets anyone else claim the id.
    let lease_deadline = tokio::time::Instant::now().checked_add(config.lease);
    let key = EventKey::from_event_id(verified.event_id());
    let claim = claim_within(&dedup, key, &config).await;
    let handle = match claim {
        Ok(Claim::Fresh(token)) => Some(ClaimHandle::new(OwnedClaim::new(
            dedup.settler,
            key,
            token,
            config.ttl,
            config.store_timeout,
        ))),
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

    // Step 7: the same bytes as the body, the verified record (and the claim) in the extensions.
    let body = Body::from(verified.body().clone());
    parts.extensions.insert(verified);
    if let Some(handle) = &handle {
        parts.extensions.insert(handle.clone());
    }
    // An error returns here: the claim, dropped unsettled, releases itself (as on a panic or
    // when the response future is dropped).
    let call = std::pin::pin!(inner.call(Request::from_parts(parts, body)));
    // A handler must not outlive its claim: once the lease is over a retry may claim the id,
    // and two runs of one event would overlap. Cancel it instead; the claim is released and
    // the sender retries. A handler that answers on its first poll gets no timer.
    let response = match (&handle, lease_deadline) {
        (Some(_), Some(deadline)) => {
            match timeout_unless_ready(call, || deadline).await {
                Ok(response) => response?,
                Err(_elapsed) => {
                    // The lease is over, so the release is fenced and nearly always a no-op;
                    // the unsettled claim's drop sends it off the response path. (A claim the
                    // inner service took over was dropped with its future, or is its own.)
                    drop(handle.and_then(|handle| handle.take()));
                    let rejection = Rejection::LeaseExpired {
                        lease: config.lease,
                        retry_after: retry_after_secs(config.retry_after),
                    };
                    return Ok(reject(&config, rejection));
                }
            }
        }
        _ => call.await?,
    };

    // Step 8: settle the claim, unless the inner service took it over: done on 2xx, released
    // otherwise so the retry runs the handler. Failures are logged where they happen.
    if let Some(claim) = handle.and_then(|handle| handle.take()) {
        // Inline when the store answers at once (an in-process store, so a retry that follows
        // the response always finds the event done); a networked store's acknowledgement is
        // awaited behind the response, and a retry on the same connection is queued after it.
        claim
            .settle_behind_response(response.status().is_success())
            .await;
    }
    Ok(response.map(Body::new))
}

/// Claims `key` within the store timeout. A claim that times out may still land later (a Redis
/// command queued while the connection reconnects runs once it is back): its future is kept
/// alive in a background task, for at most one lease, and a late `Fresh` claim is released at
/// once, so the sender's retry is not answered 409 until the orphaned lease expires.
async fn claim_within<D: DedupStore>(
    dedup: &Dedup<D>,
    key: EventKey,
    config: &Config,
) -> Result<Claim, StoreError> {
    let lease = config.lease;
    let claiming = {
        let store = Arc::clone(&dedup.store);
        async move { store.claim(&key, lease).await }
    };
    let mut claiming = Box::pin(claiming);
    // An in-process store answers on the first poll: then no clock is read, no timer made.
    let timeout = config.store_timeout;
    match timeout_unless_ready(claiming.as_mut(), || deadline_after(timeout)).await {
        Ok(claim) => claim,
        Err(_) => {
            let store = Arc::clone(&dedup.store);
            // Without a runtime there is no timer either, so this point is never reached then.
            let _ = dedup.settler.background().spawn(async move {
                if let Ok(Ok(Claim::Fresh(token))) = tokio::time::timeout(lease, claiming).await {
                    tracing::debug!(%key, "releasing a claim that landed after its timeout");
                    let _ = DedupStore::release(&*store, &key, &token).await;
                }
            });
            Err(StoreError::from_kind(StoreErrorKind::Timeout))
        }
    }
}

/// A completed id delivered again: acknowledged so the sender stops, handler not called.
fn duplicate(event: &VerifiedEvent) -> Response {
    tracing::debug!(
        event_id = event.event_id(),
        "duplicate delivery acknowledged"
    );
    let mut response = text_response(
        http::StatusCode::OK,
        "duplicate: event already processed",
        None,
    );
    response.headers_mut().insert(
        X_VOBIZ_DUPLICATE,
        http::HeaderValue::from_static("completed"),
    );
    response
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
    let body = read_body(body, config.body_limit, config.body_timeout).await?;
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

/// Buffers the body within `limit`, and within `timeout` unless it is complete at the first look.
async fn read_body<B>(body: B, limit: usize, timeout: Duration) -> Result<Bytes, Rejection>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let collecting = std::pin::pin!(Limited::new(body, limit).collect());
    // Only a body still on its way pays for a timer.
    let Ok(collected) = timeout_unless_ready(collecting, || deadline_after(timeout)).await else {
        return Err(Rejection::BodyTimeout { timeout });
    };
    match collected {
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
    let values = headers.iter().filter(|(name, _)| **name == X_WEBHOOK_EVENT);
    for (_, value) in values {
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
    // Refused from the headers alone: resolved, nothing boxed.
    inner: ReadyOrBoxed<Result<Response, E>>,
}

impl<E> ResponseFuture<E> {
    fn new(future: impl Future<Output = Result<Response, E>> + Send + 'static) -> Self {
        Self {
            inner: ReadyOrBoxed::boxed(future),
        }
    }

    fn ready(response: Response) -> Self {
        Self {
            inner: ReadyOrBoxed::ready(Ok(response)),
        }
    }
}

impl<E> Future for ResponseFuture<E> {
    type Output = Result<Response, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

impl<E> fmt::Debug for ResponseFuture<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
