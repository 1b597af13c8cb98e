//! A live stream for inbox UIs (feature `live`): the events your handlers accepted, as
//! `message.created`, `message.updated`, `call.incoming` and `call.status` frames over
//! WebSocket and Server-Sent Events.
//!
//! Vobiz's own real-time stream serves its inbox; its frames, authentication and resume rules
//! are not public. This is the same kind of stream from *your* server, fed by the webhooks it
//! already verifies and behind *your* authentication, so a browser never holds Vobiz
//! credentials.
//!
//! ```
//! use axum::{handler::Handler, routing::post, Router};
//! use vobiz_webhooks::live::{query_param, Access, LiveEndpoints, LiveHub, LiveLayer};
//! use vobiz_webhooks::{VobizEvent, VobizWebhookLayer};
//!
//! async fn handle(event: VobizEvent) { /* store it; a non-2xx publishes nothing */ }
//!
//! let hub = LiveHub::new();
//! let live = LiveEndpoints::new(hub.clone()).authorize(|request: &http::request::Parts| {
//!     let token = query_param(request, "token")?;
//!     (token == "let-me-in").then(Access::all)
//! });
//! let app: Router = Router::new()
//!     .route(
//!         "/webhooks/vobiz",
//!         // The one line: publish what the handler accepted.
//!         post(handle.layer(LiveLayer::new(hub.clone())))
//!             .layer(VobizWebhookLayer::new("your-shared-secret")),
//!     )
//!     .route("/live/ws", live.websocket())
//!     .route("/live/events", live.sse());
//! ```
//!
//! `examples/inbox.rs` serves a complete inbox page on top of this
//! (`cargo run --features live --example inbox`); `tests/browser/inbox.sh` checks that page in
//! headless Chromium (in `.ci/run`; last result: 8/8 checks, about 4 s, screenshot kept in
//! `target/browser/inbox.png`).
//!
//! # What is published, and when
//!
//! [`LiveLayer`] wraps the handler *inside* the webhook layer and publishes an event when the
//! handler answered 2xx: the UI never shows what the backend refused, and since the webhook
//! layer deduplicates first, a redelivered `event_id` publishes nothing. It is a tower layer
//! around any service, so the same line works with a [`VobizRouter`](crate::VobizRouter)
//! (`post(router.layer(LiveLayer::new(hub))).layer(webhooks)`) and in queue mode, around the
//! handlers the workers run (`MemoryQueue::builder().start(LiveLayer::new(hub).layer(handlers))`,
//! likewise `RedisWorkersBuilder::start`): each event is published when an attempt succeeds.
//! The core knows nothing of this module.
//!
//! "Once" is as strong as the dedup store's: a handler that succeeded but whose completion the
//! store then lost runs again on Vobiz's retry, and publishes again with a new frame id (same
//! `event_id`, which a client can use to drop the repeat).
//!
//! | webhook `event_type` | frame `type` | `data` (fields absent when the payload lacks them) |
//! |---|---|---|
//! | `message.inbound` | `message.created` | `from`, `name`, `kind`, `text`, `caption`, `media_id`, `mime_type`, `wamid`, `phone_number_id` |
//! | `message.status` | `message.updated` | `wamid`, `status`, `recipient_id`, `error_code`, `error_title`, `phone_number_id` |
//! | `call.connect` | `call.incoming` | `call_id`, `event`, `state`, `direction`, `from`, `to`, `duration`, `phone_number_id` |
//! | any other `call.*` | `call.status` | as `call.incoming` |
//! | anything else | not streamed | |
//!
//! # Frames
//!
//! One JSON object per WebSocket text message or SSE event:
//!
//! ```text
//! {"id":1711360800000001,"type":"message.created","event_id":"evt_1",
//!  "occurred_at":"2024-03-25T10:00:00Z","account_id":"acc_1",
//!  "data":{"from":"918888888888","name":"Asha","kind":"text","text":"hi","wamid":"wamid.1"}}
//! ```
//!
//! `id` increases by one per frame the hub publishes (ids of frames a client may not see are
//! skipped for it). It starts at the hub's start time in microseconds, so ids keep increasing
//! across restarts and stay exact in JavaScript. `occurred_at` and `account_id` are `null`
//! when the delivery had none. `{"type":"resync"}` (no id) tells the client it missed frames
//! and must reload its state from your API.
//!
//! # Authentication
//!
//! [`LiveEndpoints`] serves nobody until an [`Authorize`] hook is set: a closure
//! `Fn(&Parts) -> Option<Access>` or a type with an async check. `None` answers **401**; an
//! [`Access`] says which frames the client sees (all, some `account_id`s, or any filter such
//! as a `phone_number_id`). Browsers cannot set headers on a WebSocket or an `EventSource`, so
//! a token usually travels in the query ([`query_param`]) or a cookie.
//!
//! # Resume
//!
//! The hub keeps the last frames in a replay buffer bounded by count and age
//! ([`LiveHubBuilder::replay_capacity`], 1024; [`LiveHubBuilder::replay_age`], 5 min). A
//! client resumes after the last id it saw: SSE with `Last-Event-ID` (what `EventSource`
//! sends on its own) or `?since=`, WebSocket with `?since=`. It gets the frames it missed,
//! then live ones, with no gap and no duplicate; when what it missed is no longer buffered it
//! gets `resync` first. `?since=0` asks for whatever the buffer holds. Without `since`, only
//! new frames.
//!
//! # Bounds
//!
//! Publishing takes one short lock and appends the frame to one ring, whatever the number of
//! clients: it never waits, and it wakes one task, which wakes the parked clients. The ring is
//! the replay buffer and every client's bounded queue at once: each client reads it through
//! its own cursor and [`Access`], and a client more than [`LiveHubBuilder::client_queue`]
//! frames behind (256) is sent `resync` and disconnected when it next reads; it reconnects to
//! reload its
//! state. Frames are rendered to JSON once, off the webhook path, when the first client needs
//! them. Heartbeats every 15 s ([`LiveEndpoints::heartbeat`]): an SSE comment, a WebSocket
//! ping; a WebSocket client silent for three heartbeats, or not taking a message for two, is
//! dropped. [`LiveHub::close`] ends every stream (call it on shutdown). Measured costs are in
//! `bench/README.md` ("Live stream").

mod access;
mod endpoint;
mod frame;
mod hub;
mod layer;

pub use access::{query_param, Access, Authorize, RefuseAll};
pub use endpoint::{LiveEndpoints, DEFAULT_HEARTBEAT, LAST_EVENT_ID};
pub use frame::{Frame, StreamEvent};
pub use hub::{
    LiveHub, LiveHubBuilder, Next, Subscription, DEFAULT_CLIENT_QUEUE, DEFAULT_REPLAY_AGE,
    DEFAULT_REPLAY_CAPACITY,
};
pub use layer::{Live, LiveFuture, LiveLayer};
