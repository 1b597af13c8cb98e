//! Receive Vobiz's WhatsApp webhooks in any axum or tower service: verified, bounded, typed.
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
//! (408) and what is not a Vobiz envelope (400) before your handler runs; it answers a delivery it already handled with
//! 200 without running the handler again, one being handled with 409, and fails closed (503)
//! when its dedup store is down. See [`VobizWebhookLayer`] and [`Rejection`].
//!
//! Where to go next:
//! - [`VobizRouter`]: one ordinary axum handler per event type, taking [`InboundEvent`],
//!   [`StatusEvent`] or [`CallEvent`] directly;
//! - [`event`]: the typed payloads and their accessors;
//! - [`dedup`]: the stores behind "never twice" ([`MemoryStore`] by default);
//! - [`queue`]: answer at once and run handlers in workers, with retries and dead letters;
//! - [`signature`]: verify or [`sign`] bodies yourself.
//!
//! | feature | default | adds |
//! |---|---|---|
//! | *(none)* | ✓ | the layer, signatures, typed events, extractors, [`VobizRouter`], [`MemoryStore`], `queue::MemoryQueue` |
//! | `redis` | | `RedisStore` (dedup shared by replicas) and `queue::RedisQueue` (Redis Streams) |
//! | `moka` | | `MokaStore`, a moka LRU dedup store |
//! | `testing` | | `testing::TestEvent` and `testing::Fixture`: signed deliveries for your own tests |
//! | `cli` | | the `vobiz` binary: trigger sample events, sign, verify |
//! | `client` | | `client::SubscriptionClient` for Vobiz's subscription API |

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod claim;
#[cfg(feature = "client")]
pub mod client;
pub mod dedup;
pub mod envelope;
pub mod event;
pub mod extract;
mod future;
pub mod headers;
mod layer;
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
mod verified;

pub use claim::{ClaimHandle, OwnedClaim};
#[cfg(feature = "moka")]
pub use dedup::MokaStore;
#[cfg(feature = "redis")]
pub use dedup::RedisStore;
pub use dedup::{Claim, ClaimToken, DedupStore, EventKey, MemoryStore, StoreError, StoreErrorKind};
pub use envelope::{CallEventName, Envelope, EnvelopeError, EventType};
pub use event::{CallEvent, InboundEvent, StatusEvent, VobizEvent};
pub use extract::{EventKindRejection, MissingVobizLayer};
pub use layer::{
    ResponseFuture, VobizWebhook, VobizWebhookLayer, DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT,
    DEFAULT_LEASE, DEFAULT_RETRY_AFTER, DEFAULT_STORE_TIMEOUT, DEFAULT_TTL,
};
pub use rejection::Rejection;
#[cfg(feature = "router")]
pub use router::{RouterFuture, VobizRouter};
pub use signature::sign;
pub use verified::VerifiedEvent;
