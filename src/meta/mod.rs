//! Meta's leg: receive WhatsApp Cloud API webhooks straight from Meta (cargo feature `meta`).
//!
//! Every WhatsApp Cloud API app that talks to Meta directly receives the payload Vobiz forwards,
//! so this module hands it to the same handlers: the same [`VobizEvent`](crate::VobizEvent) and
//! extractors, the same [`VobizRouter`](crate::VobizRouter), the same dedup stores.
//!
//! ```
//! use axum::{routing::post, Router};
//! use vobiz_webhooks::meta::{MetaHandshake, MetaWebhookLayer};
//! use vobiz_webhooks::{VerifiedEvent, VobizEvent};
//!
//! // One call per item: per message, per status, per call.
//! async fn handle(item: VerifiedEvent, event: VobizEvent) {
//!     println!("{} {}", item.event_id(), item.event_type()); // e.g. "wamid.HBg…" "message.inbound"
//!     match event {
//!         VobizEvent::MessageInbound(message) => { let _ = message.text(); }
//!         VobizEvent::MessageStatus(status) => { let _ = status.status(); }
//!         VobizEvent::Call(call) => { let _ = call.event(); }
//!         _ => { /* meta.<field>: account updates, template statuses, … */ }
//!     }
//! }
//!
//! let app: Router = Router::new().route(
//!     "/webhooks/meta",
//!     post(handle)
//!         .layer(MetaWebhookLayer::new("your-meta-app-secret"))
//!         // Added after `layer`, so not behind it: the handshake is not signed.
//!         .get_service(MetaHandshake::new("the-verify-token-you-typed-into-meta")),
//! );
//! ```
//!
//! # What Meta sends, and what the layer does with it
//!
//! - **The handshake** ([`MetaHandshake`]): `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`,
//!   answered 200 `text/plain` with the challenge, 403 for a wrong mode or token, 400 without
//!   a challenge.
//! - **Notifications** ([`MetaWebhookLayer`]): a POST signed with `X-Hub-Signature-256:
//!   sha256=<hex HMAC-SHA256 of the raw body, keyed by the app secret>`. The layer checks the
//!   header before reading the body (401 when missing, without `sha256=`, not 64 hex digits of
//!   either case, or twice), buffers the body within the same limit, timeout and
//!   unverified-body budget as the Vobiz layer, and verifies the HMAC over the exact bytes in
//!   constant time (401): Meta may escape text (`\u00e9`, `\/`) or send it raw, and either way
//!   only the bytes as received verify.
//! - **Items**: one POST batches up to 1,000 updates with no event id, in no promised order,
//!   and Meta retries anything but 200 for up to 7 days. So the layer splits the notification
//!   into items, each message, status and call of every change of every entry, and runs the
//!   inner service once per item, exactly once per content key:
//!
//! | item | `event_type` (as Vobiz names it) | content key = `event_id` |
//! |---|---|---|
//! | a message | `message.inbound` | its `id` (the wamid) |
//! | a status | `message.status` (`call.status_change` under `calls` or `type: call`) | `<status id>:<status>` |
//! | a call | `call.<event>` | `<call id>:<event>` |
//! | any other change | `meta.<field>` | `sha256:<hex SHA-256 of the change's bytes>` |
//!
//! (A message, status or call missing the fields of its key is keyed by the hash of its bytes.)
//! Each item is claimed in the layer's [`DedupStore`] under its content key, and only a fresh
//! claim calls the inner service, with a request whose extensions hold a
//! [`VerifiedEvent`](crate::VerifiedEvent) for that item: `event_id` the content key,
//! `event_type` as above, `occurred_at` the item's `timestamp`, and as payload Meta's
//! notification holding this one item (its entry id, field, `metadata`, `errors` and the
//! contacts it concerns), so `waba_id()`, `phone_number_id()`, `sender_name()` read as usual.
//! The request's body is that record's body (a Vobiz-shaped envelope the layer built from the
//! verified POST); its method, URI, headers and extensions are the POST's.
//!
//! # The answer
//!
//! 200 (empty body) when every item was handled (the inner service answered 2xx), was done
//! already, or was skipped by the replay window. Otherwise the POST fails, so Meta retries it,
//! and the retry runs only the items not done yet:
//!
//! - the first failing item's own response (any non-2xx the handler answered), or its error;
//! - else 503 + `Retry-After` when the store failed or a handler outlived its lease;
//! - else 409 + `Retry-After` when an item is being handled by another POST right now.
//!
//! A failing item does not stop the others: they run and, done, are not run again.
//!
//! **Items run one after another**, in the order of the notification, within the one POST:
//! an update and its successor (`sent` then `delivered`) batched together reach the handler in
//! Meta's order, a POST costs one handler at a time however large the batch, and each item's
//! lease starts when its claim is taken, not when the POST arrived. Claims of an in-process
//! store cost nanoseconds; with a networked store a 1,000-item POST makes 2,000 round trips,
//! so answer fast and move slow work to a queue.
//!
//! # Replay window (opt-in)
//!
//! [`replay_window`](MetaWebhookLayer::replay_window) skips items whose `timestamp` is older than
//! `max_age` or further ahead than `max_skew`: logged, counted, and not a failure of the POST (a
//! refusal would make Meta retry it for 7 days). Off by default, because Meta's own retries
//! reach 7 days back: the dedup store, not the clock, is what stops replays; a window is a policy
//! on top. Items without a readable `timestamp` are handled.
//!
//! # The same store as the Vobiz leg
//!
//! Content keys share the store's key space with Vobiz `event_id`s (UUIDs, which never look like
//! a wamid). Give both layers one store (e.g. an `Arc<MemoryStore>` or a `RedisStore`) and turn
//! on [`dedup_on_content`](crate::VobizWebhookLayer::dedup_on_content) on the Vobiz layer: a
//! message received through both legs is then handled once.

mod handshake;
mod rejection;
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
use crate::layer::budget::Budget;
use crate::layer::intake::Intake;
use crate::observe::MetaMetrics;
use crate::signature::{EmptySecret, Secret, Secrets, Verifier};

pub use self::handshake::{EmptyVerifyToken, MetaHandshake};
pub use self::rejection::{HandshakeRejection, MetaRejection};
pub use self::service::{MetaResponseFuture, MetaWebhook};
pub use self::verify::{sign, X_HUB_SIGNATURE_256};

type RejectionHandler = Arc<dyn Fn(&MetaRejection) -> Response + Send + Sync>;

/// A [`Layer`] that receives Meta's WhatsApp webhooks: it verifies `X-Hub-Signature-256`, bounds
/// and buffers the body, splits the notification into items and runs the inner service once per
/// item that is not done yet. See the [module docs](self) for the whole contract.
///
/// | status | when |
/// |---|---|
/// | 200 | every item handled, done already, or skipped by the replay window |
/// | 401 | `X-Hub-Signature-256` missing, malformed (not `sha256=` + 64 hex digits) or not matching |
/// | 413 / 408 | the body is over the limit / did not arrive within the body timeout |
/// | 400 | the body could not be read, or is not a JSON object |
/// | 503 | the unverified-body budget is full; the store failed; a handler outlived its lease |
/// | 409 | an item is being handled by another POST right now |
/// | the handler's | an item's handler answered non-2xx |
///
/// ```
/// use std::time::Duration;
/// use vobiz_webhooks::meta::MetaWebhookLayer;
/// use vobiz_webhooks::MemoryStore;
///
/// let layer = MetaWebhookLayer::new("app-secret")   // your Meta app's secret
///     .secret("next-app-secret")                     // a rotation: both verify meanwhile
///     .replay_window(Duration::from_secs(24 * 3600), Duration::from_secs(300)) // opt-in
///     .store(MemoryStore::with_capacity(100_000))   // share it with the Vobiz layer if you like
///     .lease(Duration::from_secs(60))               // per item
///     .ttl(Duration::from_secs(8 * 24 * 3600));     // longer than Meta's 7 days of retries
/// ```
pub struct MetaWebhookLayer<D = MemoryStore> {
    config: Arc<Config>,
    dedup: Dedup<D>,
}

impl<D> Clone for MetaWebhookLayer<D> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            dedup: self.dedup.clone(),
        }
    }
}

/// Bounds on items' `timestamp`s for the opt-in replay window.
#[derive(Clone, Copy, Debug)]
struct ReplayWindow {
    max_age: Duration,
    max_skew: Duration,
}

#[derive(Clone)]
struct Config {
    /// Secrets and the bounds of receiving, as the Vobiz layer has them.
    intake: Intake,
    replay: Option<ReplayWindow>,
    on_rejection: Option<RejectionHandler>,
    metrics: MetaMetrics,
}

impl MetaWebhookLayer<MemoryStore> {
    /// A layer that verifies POSTs signed with the app secret `app_secret` and deduplicates items
    /// in process ([`MemoryStore`]).
    ///
    /// # Panics
    ///
    /// When `app_secret` is empty. Use [`try_new`](Self::try_new) for a secret read at run time.
    #[must_use]
    #[track_caller]
    pub fn new(app_secret: impl AsRef<[u8]>) -> Self {
        match Self::try_new(app_secret) {
            Ok(layer) => layer,
            Err(EmptySecret) => panic!(
                "MetaWebhookLayer::new: the app secret is empty; \
                 use MetaWebhookLayer::try_new to handle that as an error"
            ),
        }
    }

    /// Like [`new`](Self::new), but returns an error instead of panicking.
    ///
    /// # Errors
    ///
    /// [`EmptySecret`] when `app_secret` is empty.
    pub fn try_new(app_secret: impl AsRef<[u8]>) -> Result<Self, EmptySecret> {
        Ok(Self::from_verifier(Verifier::from_secret(Secret::new(
            app_secret,
        )?)))
    }

    /// A layer that verifies with every secret of `verifier`.
    #[must_use]
    pub fn from_verifier(verifier: Verifier) -> Self {
        Self::from_secrets(Secrets::from_verifier(verifier))
    }

    /// A layer that verifies with the live set `secrets` (keep a clone to rotate while serving).
    #[must_use]
    pub fn from_secrets(secrets: Secrets) -> Self {
        Self {
            config: Arc::new(Config {
                intake: Intake::new(secrets),
                replay: None,
                on_rejection: None,
                metrics: MetaMetrics::register(),
            }),
            dedup: Dedup::new(MemoryStore::new()),
        }
    }
}

impl<D> MetaWebhookLayer<D> {
    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Also accepts POSTs signed with `app_secret` (Meta lets you reset an app secret).
    ///
    /// # Panics
    ///
    /// When `app_secret` is empty; [`try_secret`](Self::try_secret) returns the error instead.
    #[must_use]
    #[track_caller]
    pub fn secret(self, app_secret: impl AsRef<[u8]>) -> Self {
        match self.try_secret(app_secret) {
            Ok(layer) => layer,
            Err(EmptySecret) => panic!(
                "MetaWebhookLayer::secret: the app secret is empty; \
                 use MetaWebhookLayer::try_secret to handle that as an error"
            ),
        }
    }

    /// Like [`secret`](Self::secret), but returns an error instead of panicking.
    ///
    /// # Errors
    ///
    /// [`EmptySecret`] when `app_secret` is empty.
    pub fn try_secret(self, app_secret: impl AsRef<[u8]>) -> Result<Self, EmptySecret> {
        match self.config.intake.secrets.add(app_secret) {
            Ok(()) => Ok(self),
            Err(_) => Err(EmptySecret),
        }
    }

    /// The largest body accepted (default [`DEFAULT_BODY_LIMIT`](crate::DEFAULT_BODY_LIMIT),
    /// 4 MiB; Meta's payloads reach 3 MB).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.config_mut().intake.body_limit = bytes;
        self
    }

    /// How long the body may take to arrive after the headers (default 30 s), else 408.
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().intake.body_timeout = timeout;
        self
    }

    /// The bytes buffered at once, across all requests, for bodies not yet verified (default
    /// 64 MiB; `None` turns the bound off). As
    /// [`VobizWebhookLayer::body_budget`](crate::VobizWebhookLayer::body_budget).
    #[must_use]
    pub fn body_budget(mut self, bytes: impl Into<Option<usize>>) -> Self {
        self.config_mut().intake.body_budget = bytes.into().map(Budget::new);
        self
    }

    /// Skips items whose `timestamp` is older than `max_age` or more than `max_skew` ahead of
    /// this machine's clock. Off by default: Meta retries for 7 days, and the dedup store
    /// already stops replays (see the [module docs](self#replay-window-opt-in)). A skipped item
    /// is logged and counted, and does not fail the POST.
    #[must_use]
    pub fn replay_window(mut self, max_age: Duration, max_skew: Duration) -> Self {
        self.config_mut().replay = Some(ReplayWindow { max_age, max_skew });
        self
    }

    /// Deduplicates items through `store` instead of the in-process default.
    #[must_use]
    pub fn store<D2: DedupStore>(self, store: D2) -> MetaWebhookLayer<D2> {
        MetaWebhookLayer {
            config: self.config,
            dedup: Dedup::new(store),
        }
    }

    /// How long an item's claim holds (default 60 s); a handler still running at its end is
    /// cancelled and the POST answered 503.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config_mut().intake.claim.lease = lease;
        self
    }

    /// How long a handled item's key is remembered (default 24 h). Meta retries a failed POST
    /// for up to 7 days: a retry after the TTL runs its items again, so raise it if your
    /// endpoint may be down for longer than a day.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config_mut().intake.claim.ttl = ttl;
        self
    }

    /// How long the store may take per operation (default 2 s) before the POST is answered 503.
    #[must_use]
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().intake.claim.store_timeout = timeout;
        self
    }

    /// The `Retry-After` of 409 and 503 answers (default 5 s).
    #[must_use]
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.config_mut().intake.retry_after = delay;
        self
    }

    /// Replaces the default rejection responses; the [`MetaRejection`] stays in the extensions.
    #[must_use]
    pub fn on_rejection<F>(mut self, handler: F) -> Self
    where
        F: Fn(&MetaRejection) -> Response + Send + Sync + 'static,
    {
        self.config_mut().on_rejection = Some(Arc::new(handler));
        self
    }

    /// Resolves once the store work left running behind responses has finished; await it after
    /// a graceful shutdown, as [`VobizWebhookLayer::settled`](crate::VobizWebhookLayer::settled).
    pub fn settled(&self) -> impl Future<Output = ()> + Send + 'static {
        let background = self.dedup.background().clone();
        async move { background.idle().await }
    }
}

impl<D> fmt::Debug for MetaWebhookLayer<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetaWebhookLayer")
            .field("secrets", &self.config.intake.secrets.len())
            .field("body_limit", &self.config.intake.body_limit)
            .field("replay_window", &self.config.replay)
            .field("store", &std::any::type_name::<D>())
            .field("lease", &self.config.intake.claim.lease)
            .field("ttl", &self.config.intake.claim.ttl)
            .finish_non_exhaustive()
    }
}

impl<S, D> Layer<S> for MetaWebhookLayer<D> {
    type Service = MetaWebhook<S, D>;

    fn layer(&self, inner: S) -> Self::Service {
        MetaWebhook::from_parts(inner, Arc::clone(&self.config), self.dedup.clone())
    }
}
