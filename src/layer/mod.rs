//! The tower layer that verifies, bounds and parses every delivery before the handler runs.
//!
//! Cut by role, as tower-http cuts its middleware: this file holds the defaults and the layer (its
//! configuration and builder); [`intake`] the settings and steps it shares with the Meta layer
//! (secrets, body bounds, the unverified-body budget); [`service`] the request's way through;
//! [`verify`] the checks that need no I/O; [`body`] the buffering; [`future`] the response
//! future. The claim's life (claim, lease, settle, release) is the `claim` module's.

pub(crate) mod body;
pub(crate) mod budget;
mod content;
mod future;
pub(crate) mod intake;
mod service;
mod verify;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum_core::response::Response;
use tower_layer::Layer;

use crate::claim::Dedup;
use crate::dedup::{DedupStore, MemoryStore};
use crate::observe::Metrics;
use crate::rejection::Rejection;
use crate::signature::{EmptySecret, Secret, Secrets, Verifier};

use self::budget::Budget;
pub use self::future::ResponseFuture;
use self::intake::Intake;
pub use self::service::VobizWebhook;
use self::verify::Freshness;

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

/// What the layer may buffer at once, across all requests, of bodies whose signature it has not
/// checked yet (default 64 MiB). See [`VobizWebhookLayer::body_budget`].
pub const DEFAULT_BODY_BUDGET: usize = 64 * 1024 * 1024;

/// The `Retry-After` of 409 and 503 answers (default 5 s).
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

type RejectionHandler = Arc<dyn Fn(&Rejection) -> Response + Send + Sync>;

/// A [`Layer`] that receives Vobiz webhooks: it verifies the signature, bounds and buffers the
/// body, parses the envelope and hands the inner service a [`VerifiedEvent`](crate::VerifiedEvent).
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
/// | 503 | the bodies not yet verified, across all requests, would pass the [`body_budget`](Self::body_budget) (`Retry-After`) |
/// | 400 | unreadable body, invalid UTF-8, malformed JSON, no `event_id`/`event_type`, `X-Webhook-Event` ≠ `event_type`, or a failed freshness check |
/// | 409 | the same `event_id` is being handled right now (`Retry-After`) |
/// | 503 | the dedup store failed or timed out, or the handler outlived its lease (`Retry-After`) |
///
/// Each answer carries the typed [`Rejection`] in its extensions; [`Rejection`] documents every
/// variant with its status.
///
/// # Configuration
///
/// Every setting has a default ([`DEFAULT_BODY_LIMIT`] and its siblings); change what you need:
///
/// ```
/// use std::time::Duration;
/// use axum::response::IntoResponse;
/// use vobiz_webhooks::{MemoryStore, VobizWebhookLayer};
///
/// let layer = VobizWebhookLayer::new("old-secret") // the secret of your subscription
///     .secret("new-secret")                        // rotation: both verify meanwhile
///     .body_limit(1024 * 1024)                     // default 4 MiB → 413 above it
///     .body_timeout(Duration::from_secs(30))       // body slower than this → 408
///     .freshness(Duration::from_secs(3600), Duration::from_secs(60)) // opt-in, off by default
///     .store(MemoryStore::with_capacity(100_000))  // default: MemoryStore, 1 M ids
///     .lease(Duration::from_secs(60))              // claim lifetime, > your slowest handler
///     .ttl(Duration::from_secs(24 * 3600))         // how long handled ids are remembered
///     .store_timeout(Duration::from_secs(2))       // store slower than this → 503
///     .retry_after(Duration::from_secs(5))         // Retry-After of 409 and 503
///     .on_rejection(|rejection| rejection.clone().into_response_default());
/// ```
///
/// # Secret rotation
///
/// Vobiz rotates a secret by creating a new subscription (new secret) and deleting the old one,
/// so for a while both sign deliveries. Deploy with both secrets ([`secret`](Self::secret), or
/// `VOBIZ_WEBHOOK_SECRET=old,new` for the example server), switch the subscription, then drop
/// the old secret; the subscription client automates the Vobiz side (`client::Rotation`). An
/// empty secret is refused at construction, and `Debug` never prints a secret.
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

#[derive(Clone)]
struct Config {
    /// Secrets and the bounds of receiving, as the Meta layer has them too.
    intake: Intake,
    freshness: Option<Freshness>,
    on_rejection: Option<RejectionHandler>,
    fail_open: bool,
    /// Also claim the content keys of the payload's items.
    dedup_on_content: bool,
    /// The metric handles (feature `metrics`), registered when the layer is built.
    metrics: Metrics,
}

impl VobizWebhookLayer<MemoryStore> {
    /// A layer that verifies deliveries signed with `secret` and deduplicates them in process
    /// ([`MemoryStore`] with its default capacity).
    ///
    /// # Panics
    ///
    /// When `secret` is empty. Use [`try_new`](Self::try_new) for a secret read at run time
    /// that may be missing.
    #[must_use]
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
    #[must_use]
    pub fn from_verifier(verifier: Verifier) -> Self {
        Self::from_secrets(Secrets::from_verifier(verifier))
    }

    /// A layer that verifies with the live set `secrets` and deduplicates in process: keep a
    /// clone of `secrets` to add, remove or replace secrets while the server runs (a rotation
    /// without a redeploy; see [`Secrets`]).
    #[must_use]
    pub fn from_secrets(secrets: Secrets) -> Self {
        Self {
            config: Arc::new(Config {
                intake: Intake::new(secrets),
                freshness: None,
                on_rejection: None,
                fail_open: false,
                dedup_on_content: false,
                metrics: Metrics::register(),
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
    /// with both secrets, then drop the old one once its subscription is deleted. The secret
    /// joins the layer's live set, shared with its clones (and with the [`Secrets`] handle it
    /// was built from, if any); to change secrets while serving, keep such a handle.
    ///
    /// # Panics
    ///
    /// When `secret` is empty; [`try_secret`](Self::try_secret) returns the error instead.
    #[must_use]
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
    pub fn try_secret(self, secret: impl AsRef<[u8]>) -> Result<Self, EmptySecret> {
        match self.config.intake.secrets.add(secret) {
            Ok(()) => Ok(self),
            Err(_) => Err(EmptySecret),
        }
    }

    /// The largest body accepted, in bytes (default [`DEFAULT_BODY_LIMIT`], 4 MiB).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config_mut().intake.body_limit = bytes;
        self
    }

    /// How long the body may take to arrive after the headers (default [`DEFAULT_BODY_TIMEOUT`],
    /// 30 s). A client that trickles its body is answered 408 ([`Rejection::BodyTimeout`]) and
    /// its buffer freed, instead of holding both for as long as it likes. A body that is
    /// complete when the layer first looks (a webhook's usually is) makes no timer.
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().intake.body_timeout = timeout;
        self
    }

    /// The most bytes the layer buffers at once, across all requests and every clone of this
    /// layer, for bodies whose signature it has not checked yet (default
    /// [`DEFAULT_BODY_BUDGET`], 64 MiB); `None` turns the bound off.
    ///
    /// The body limit bounds one request; this bounds them all, so that clients without the
    /// secret cannot make the server hold gigabytes by each sending all but the last byte of a
    /// large body. Each request reserves its declared `Content-Length` (the body limit when it
    /// declares none) before a byte is read, and gives it back once its signature is checked. A
    /// request that does not fit is refused at once with 503 + `Retry-After`
    /// ([`Rejection::BodyBudgetExhausted`]): Vobiz retries, so nothing is lost. Bodies over
    /// 64 KiB may hold at most 7/8 of the budget between them, so a flood of large uploads
    /// leaves room for webhook-sized deliveries (a few KiB), which keep being received. A body
    /// larger than the whole budget is received when nothing else is reserved. Each call gives
    /// the layer a budget of its own, shared by the clones made after it.
    #[must_use]
    pub fn body_budget(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.config_mut().intake.body_budget = bytes.into().map(Budget::new);
        self
    }

    /// Refuses deliveries whose `occurred_at` is older than `max_age` or more than
    /// `max_future_skew` ahead of this machine's clock, or missing. Off by default: Vobiz
    /// documents no replay window for this leg and retries may come late.
    #[must_use]
    pub fn freshness(mut self, max_age: Duration, max_future_skew: Duration) -> Self {
        self.config_mut().freshness = Some(Freshness {
            max_age,
            max_future_skew,
        });
        self
    }

    /// Deduplicates through `store` instead of the in-process default, e.g. a `RedisStore` shared
    /// by every replica of the app.
    #[must_use]
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
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config_mut().intake.claim.lease = lease;
        self
    }

    /// How long a handled `event_id` is remembered (default [`DEFAULT_TTL`], 24 h). A retry
    /// after the TTL runs the handler again.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config_mut().intake.claim.ttl = ttl;
        self
    }

    /// How long the store may take per operation (default [`DEFAULT_STORE_TIMEOUT`], 2 s)
    /// before the delivery is answered 503.
    #[must_use]
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().intake.claim.store_timeout = timeout;
        self
    }

    /// The `Retry-After` sent with 409 (in flight) and 503 (store unavailable) answers
    /// (default [`DEFAULT_RETRY_AFTER`], 5 s; rounded up to whole seconds).
    #[must_use]
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.config_mut().intake.retry_after = delay;
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
        let background = self.dedup.background().clone();
        async move { background.idle().await }
    }

    /// When the store fails or times out, run the handler anyway instead of answering 503.
    ///
    /// Off by default (fail closed): a handler that runs without a claim may run twice. Every
    /// delivery handled this way logs a warning.
    #[must_use]
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.config_mut().fail_open = fail_open;
        self
    }

    /// Also deduplicates on content: besides its `event_id`, a delivery claims the content key
    /// of each message, status and call in its payload (the wamid of a message,
    /// `<status id>:<status>` of a status, `<call id>:<event>` of a call: the keys of the Meta
    /// leg), so the same WhatsApp update delivered under two `event_id`s is handled once. Off by
    /// default.
    ///
    /// Turn it on when one update may reach you twice under different ids: Meta's own
    /// redelivery forwarded by Vobiz, both subscriptions of a secret rotation, or the Meta leg
    /// and the Vobiz leg sharing one store. A delivery whose every item was handled already is
    /// answered 200 (`X-Vobiz-Duplicate: completed`) without running the handler; one whose item
    /// is being handled right now, 409. The content claims are settled with the `event_id`'s
    /// (done on 2xx, released otherwise). Each key costs one more store round trip per
    /// delivery, and one more remembered key for the TTL.
    ///
    /// Items without an id of their own (account updates, template statuses) are deduplicated
    /// on `event_id` only. A payload that batches several items and repeats only some of them
    /// runs the handler (it gets the whole payload), so the repeated ones may be seen again.
    ///
    /// ```
    /// use vobiz_webhooks::VobizWebhookLayer;
    ///
    /// let layer = VobizWebhookLayer::new("your-shared-secret").dedup_on_content(true);
    /// ```
    #[must_use]
    pub fn dedup_on_content(mut self, on: bool) -> Self {
        self.config_mut().dedup_on_content = on;
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
    #[must_use]
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
            .field("secrets", &self.config.intake.secrets.len())
            .field("body_limit", &self.config.intake.body_limit)
            .field(
                "body_budget",
                &self
                    .config
                    .intake
                    .body_budget
                    .as_ref()
                    .map(Budget::capacity),
            )
            .field("freshness", &self.config.freshness)
            .field("custom_rejections", &self.config.on_rejection.is_some())
            .field("store", &std::any::type_name::<D>())
            .field("lease", &self.config.intake.claim.lease)
            .field("ttl", &self.config.intake.claim.ttl)
            .field("store_timeout", &self.config.intake.claim.store_timeout)
            .field("fail_open", &self.config.fail_open)
            .field("dedup_on_content", &self.config.dedup_on_content)
            .finish()
    }
}

impl<S, D> Layer<S> for VobizWebhookLayer<D> {
    type Service = VobizWebhook<S, D>;

    fn layer(&self, inner: S) -> Self::Service {
        VobizWebhook::from_parts(inner, Arc::clone(&self.config), self.dedup.clone())
    }
}
