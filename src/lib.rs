//! Receive Vobiz's WhatsApp webhooks in any axum or tower service: verified, bounded,
//! deduplicated, typed.
//!
//! ```
//! use axum::{routing::post, Router};
//! use vobiz_webhooks::{VerifiedEvent, VobizEvent, VobizWebhookLayer};
//!
//! async fn handle(meta: VerifiedEvent, event: VobizEvent) {
//!     println!("{} {}", meta.event_id(), meta.event_type());
//!     match event {
//!         VobizEvent::MessageInbound(_message) => { /* a customer wrote */ }
//!         VobizEvent::MessageStatus(_status) => { /* sent, delivered, read, failed */ }
//!         VobizEvent::Call(_call) => { /* call.connect, call.terminate, ... */ }
//!         _ => { /* types Vobiz adds later arrive too, never rejected */ }
//!     }
//! }
//!
//! let app: Router = Router::new().route(
//!     "/webhooks/vobiz",
//!     // Only this route: the layer refuses every request Vobiz did not sign.
//!     post(handle).layer(VobizWebhookLayer::new("your-shared-secret")),
//! );
//! ```
//!
//! The layer refuses what does not verify (401), what is too large (413) or too slow to arrive
//! (408) and what is not a Vobiz envelope (400) before your handler runs; it answers a delivery
//! it already handled with 200 without running the handler again, one being handled with 409,
//! and fails closed (503) when its dedup store is down. See [`VobizWebhookLayer`] for its
//! configuration and [`Rejection`] for every answer.
//!
//! Apply it to the webhook route (`route(..).layer(..)`, or `Router::route_layer`), not to the
//! whole app: it verifies every request that passes through it. Handlers are ordinary axum
//! handlers (`State`, `Extension`, headers as you like); without the layer the [`VobizEvent`] and
//! [`VerifiedEvent`] extractors answer 500 with a message naming the fix.
//!
//! # Where to go next
//!
//! - [`VobizRouter`] (feature `router`): one ordinary axum handler per event type, taking
//!   [`InboundEvent`], [`StatusEvent`] or [`CallEvent`] directly;
//! - [`event`]: the typed payloads and every accessor;
//! - [`dedup`]: the stores behind "never twice" ([`MemoryStore`] by default), sizing, Redis;
//! - `queue` (feature `queue`): answer at once and run handlers in workers, with retries and
//!   dead letters;
//! - `testing` (feature `testing`): signed deliveries for your own handlers' tests;
//! - `live` (feature `live`): a WebSocket and SSE stream of handled events for a live inbox
//!   page;
//! - `client` (feature `client`): register your endpoint with Vobiz and rotate its secret;
//! - `meta` (feature `meta`): receive WhatsApp Cloud API webhooks straight from Meta (the
//!   handshake, `X-Hub-Signature-256`, one event per item exactly once) into the same handlers;
//! - [`signature`]: verify or [`sign`] bodies yourself.
//!
//! # Features
//!
//! | feature | default | adds |
//! |---|:---:|---|
//! | *(core)* | ✓ | the layer, signatures, the envelope, typed events, extractors, [`MemoryStore`] |
//! | `router` | ✓ | [`VobizRouter`] (pulls in `axum`) |
//! | `queue` | | `queue::MemoryQueue`; with `redis` also `queue::RedisQueue` (Redis Streams) |
//! | `redis` | | `RedisStore`: dedup shared by every replica (Redis ≥ 7) |
//! | `moka` | | `MokaStore`, a moka LRU dedup store |
//! | `testing` | | `testing::TestEvent` and `testing::Fixture`: signed deliveries for your own tests |
//! | `client` | | `client::SubscriptionClient` for Vobiz's subscription API |
//! | `meta` | | `meta::MetaWebhookLayer`, `meta::MetaHandshake`: Meta's own webhooks, one event per item |
//! | `cli` | | the `vobiz` binary: trigger sample events (also as Meta's POSTs), sign, verify, `meta-handshake` (implies `testing` and `meta`) |
//! | `metrics` | | counters and histograms through the `metrics` facade (see below) |
//! | `live` | | `live::LiveHub`: handled events over WebSocket and SSE for inbox UIs (pulls in `axum` with `ws`) |
//!
//! # Observing it
//!
//! Every delivery is one `tracing` span, `vobiz.webhook` (level `INFO`), with the fields
//! `event_id`, `event_type`, `outcome`, `reason` (of a refusal), `status` and `latency_us`, so a
//! `tracing-subscriber` or OpenTelemetry setup sees each delivery as one unit. Refusals are also
//! logged at `debug` with their reason. No span or log ever holds a secret or a body byte.
//!
//! With the `metrics` feature the crate records through the [`metrics`](https://docs.rs/metrics)
//! facade and the application picks the exporter (e.g. `metrics-exporter-prometheus`; the
//! example server serves `GET /metrics` when built with `--features metrics` and run with
//! `VOBIZ_METRICS_ADDR`). Without the feature nothing is recorded and nothing is compiled in.
//! The layer registers its metrics when it is built: install the recorder first.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `vobiz_webhook_deliveries_total` | counter | `outcome`: `handled`, `duplicate`, `in_flight`, `rejected`, `failed`, `unavailable`; `reason` with `rejected` and `unavailable` | every delivery the layer answered |
//! | `vobiz_webhook_handler_seconds` | histogram | | how long the inner service (your handler) took |
//! | `vobiz_webhook_store_seconds` | histogram | | how long the dedup store took to claim |
//! | `vobiz_webhook_queue_events_total` | counter | `event`: `accepted`, `rejected`, `succeeded`, `retried`, `dead_lettered`, `released`, `duplicate` | what queue mode did |
//! | `vobiz_webhook_queue_depth` | gauge | `state`: `queued`, `in_progress` | events waiting and being handled, in this process |
//! | `vobiz_webhook_meta_items_total` | counter | `outcome`: `handled`, `duplicate`, `in_flight`, `failed`, `unavailable`, `skipped` (replay window) | every item of a Meta POST (feature `meta`) |
//! | `vobiz_webhook_meta_posts_total` | counter | `outcome`: `handled`, `failed`, `rejected`, `unavailable`; `reason` with the last two | every Meta POST the layer answered (feature `meta`) |
//!
//! `reason` is [`Rejection::reason`]: `missing_signature`, `malformed_signature`,
//! `signature_mismatch`, `too_large`, `body_timeout`, `body_read_failed`, `bad_envelope`,
//! `event_mismatch`, `stale` (rejected); `store_unavailable`, `lease_expired`, `body_budget`
//! (unavailable). `failed` is a handler that answered other than 2xx or failed. The Meta leg's
//! items also record the handler and store histograms; its POSTs' reasons are
//! `meta::MetaRejection::reason`.
//!
//! # Serving it: timeouts for slow or hostile clients
//!
//! The layer bounds what it reads ([`body_limit`](VobizWebhookLayer::body_limit), 4 MiB), how
//! long the body may take once the headers are in ([`body_timeout`](VobizWebhookLayer::body_timeout),
//! 30 s: 408), how long the store may take ([`store_timeout`](VobizWebhookLayer::store_timeout),
//! 2 s: 503) and how long a handler may run (its [`lease`](VobizWebhookLayer::lease), 60 s: 503
//! and the handler cancelled). A refused or cancelled delivery releases its claim, so Vobiz's
//! retry runs the handler. The timers cost nothing when they are not needed: a body complete when
//! the layer first looks, a store that answers at once and a handler that returns at once make
//! none.
//!
//! What the layer cannot bound is how slowly a client sends the request line and headers: that
//! is the HTTP server's job. A public endpoint should serve with a **header read timeout**
//! (hyper's `http1::Builder::header_read_timeout`) and **graceful shutdown** (stop accepting,
//! let requests in flight finish, then await [`VobizWebhookLayer::settled`] so completions a
//! networked store acknowledges after the 200 are recorded before the process ends).
//! `examples/server.rs` does both:
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{routing::post, Router};
//! use hyper_util::rt::{TokioIo, TokioTimer};
//! use hyper_util::server::graceful::GracefulShutdown;
//! use hyper_util::service::TowerToHyperService;
//! use vobiz_webhooks::{VobizEvent, VobizWebhookLayer};
//!
//! # async fn handle(_: VobizEvent) {}
//! # async fn run(listener: tokio::net::TcpListener) {
//! let layer = VobizWebhookLayer::new("your-shared-secret");
//! let settled = layer.settled(); // resolves once the store work behind responses is done
//! let app = Router::new().route("/webhooks/vobiz", post(handle).layer(layer));
//!
//! let mut http = hyper::server::conn::http1::Builder::new();
//! http.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
//! let graceful = GracefulShutdown::new();
//! let mut shutdown = std::pin::pin!(tokio::signal::ctrl_c());
//! loop {
//!     let stream = tokio::select! {
//!         Ok((stream, _)) = listener.accept() => stream,
//!         _ = &mut shutdown => break,
//!     };
//!     let service = TowerToHyperService::new(app.clone());
//!     let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
//!     tokio::spawn(async move { let _ = conn.await; });
//! }
//! let _ = tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await;
//! let _ = tokio::time::timeout(Duration::from_secs(30), settled).await;
//! # }
//! ```
//!
//! Other routes of the same app still want a whole-request timeout of their own
//! (`tower_http::timeout::TimeoutLayer`). `axum::serve` is fine behind a reverse proxy that
//! already enforces a header timeout (nginx, Envoy, a cloud load balancer).

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod claim;
#[cfg(feature = "client")]
pub mod client;
mod content;
pub mod dedup;
pub mod envelope;
pub mod event;
pub mod extract;
mod future;
pub mod headers;
mod json;
mod layer;
#[cfg(feature = "live")]
pub mod live;
#[cfg(feature = "meta")]
pub mod meta;
mod observe;
#[cfg(feature = "queue")]
pub mod queue;
mod random;
mod rejection;
mod response;
#[cfg(feature = "router")]
mod router;
pub mod signature;
#[cfg(feature = "testing")]
pub mod testing;
mod text;
mod verified;

// The README's Rust code is compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub use claim::{ClaimHandle, OwnedClaim};
#[cfg(feature = "moka")]
pub use dedup::MokaStore;
pub use dedup::{Claim, ClaimToken, DedupStore, EventKey, MemoryStore, StoreError, StoreErrorKind};
#[cfg(feature = "redis")]
pub use dedup::{RedisConfig, RedisStore, RedisTopology};
pub use envelope::{CallEventName, Envelope, EnvelopeError, EventType};
pub use event::{CallEvent, InboundEvent, StatusEvent, VobizEvent};
pub use extract::{EventKindRejection, MissingVobizLayer};
pub use layer::{
    ResponseFuture, VobizWebhook, VobizWebhookLayer, DEFAULT_BODY_BUDGET, DEFAULT_BODY_LIMIT,
    DEFAULT_BODY_TIMEOUT, DEFAULT_LEASE, DEFAULT_RETRY_AFTER, DEFAULT_STORE_TIMEOUT, DEFAULT_TTL,
};
pub use rejection::Rejection;
#[cfg(feature = "router")]
pub use router::{RouterFuture, VobizRouter};
pub use signature::{sign, Secrets};
pub use verified::VerifiedEvent;
