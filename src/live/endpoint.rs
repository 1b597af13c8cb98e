//! The axum endpoints: WebSocket and Server-Sent Events, with the authorization hook, resume
//! and heartbeats.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use bytes::Bytes;
use http::request::Parts;
use http::StatusCode;

use super::access::{query_param, Authorize, RefuseAll};
use super::frame::RESYNC_JSON;
use super::hub::{LiveHub, Next, Subscription};
use crate::response::text_response;

/// The default heartbeat: an SSE comment or a WebSocket ping after this long (15 s).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// The header an `EventSource` sends when it reconnects: the last `id:` it received.
pub const LAST_EVENT_ID: http::HeaderName = http::HeaderName::from_static("last-event-id");

/// The live stream's axum endpoints: a WebSocket and a Server-Sent Events route, the same
/// frames on both, behind an [`Authorize`] hook.
///
/// Without [`authorize`](Self::authorize) every connection is refused with 401: nothing is
/// served until you decide who may see what.
///
/// ```
/// use axum::Router;
/// use vobiz_webhooks::live::{query_param, Access, LiveEndpoints, LiveHub};
///
/// let hub = LiveHub::new();
/// let live = LiveEndpoints::new(hub.clone()).authorize(|request: &http::request::Parts| {
///     // Browsers cannot set headers on WebSocket or EventSource: the token rides the query.
///     let token = query_param(request, "token")?;
///     (token == "let-me-in").then(|| Access::all().subscriber("inbox"))
/// });
/// let app: Router = Router::new()
///     .route("/live/ws", live.websocket())
///     .route("/live/events", live.sse());
/// ```
///
/// - **WebSocket** (`GET`, upgrade): one text message per frame; `?since=<id>` resumes.
///   A ping every heartbeat; a client that sends nothing (not even the pong browsers send by
///   themselves) for three heartbeats, or that does not take a message within the send timeout,
///   is disconnected. Messages from the client are ignored.
/// - **SSE** (`GET`): one event per frame with its `id:`; `Last-Event-ID` (sent by
///   `EventSource` when it reconnects) or `?since=<id>` resumes; a `: ping` comment every
///   heartbeat. `resync` is an event without an id.
pub struct LiveEndpoints<A = RefuseAll> {
    hub: LiveHub,
    auth: Arc<A>,
    heartbeat: Duration,
    send_timeout: Duration,
}

impl<A> Clone for LiveEndpoints<A> {
    fn clone(&self) -> Self {
        Self {
            hub: self.hub.clone(),
            auth: Arc::clone(&self.auth),
            heartbeat: self.heartbeat,
            send_timeout: self.send_timeout,
        }
    }
}

impl<A> fmt::Debug for LiveEndpoints<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveEndpoints")
            .field("hub", &self.hub)
            .field("heartbeat", &self.heartbeat)
            .field("send_timeout", &self.send_timeout)
            .finish_non_exhaustive()
    }
}

impl LiveEndpoints {
    /// Endpoints serving `hub`, refusing everyone until [`authorize`](Self::authorize).
    pub fn new(hub: LiveHub) -> Self {
        Self {
            hub,
            auth: Arc::new(RefuseAll),
            heartbeat: DEFAULT_HEARTBEAT,
            send_timeout: DEFAULT_HEARTBEAT * 2,
        }
    }
}

impl<A: Authorize> LiveEndpoints<A> {
    /// Decides who may connect and which frames each client sees (refused: 401).
    #[must_use]
    pub fn authorize<B: Authorize>(self, auth: B) -> LiveEndpoints<B> {
        LiveEndpoints {
            hub: self.hub,
            auth: Arc::new(auth),
            heartbeat: self.heartbeat,
            send_timeout: self.send_timeout,
        }
    }

    /// How often an idle connection gets an SSE comment or a WebSocket ping (default 15 s;
    /// at least 1 ms). Also sets the WebSocket send timeout to twice this.
    #[must_use]
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(1));
        self.send_timeout = self.heartbeat.saturating_mul(2);
        self
    }

    /// The WebSocket route (`GET`, upgrade), for any router state.
    pub fn websocket<S>(&self) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let endpoints = self.clone();
        get(move |request: Request| endpoints.clone().serve_websocket(request))
    }

    /// The Server-Sent Events route (`GET`), for any router state.
    pub fn sse<S>(&self) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let endpoints = self.clone();
        get(move |request: Request| endpoints.clone().serve_sse(request))
    }

    /// Authorizes `parts` and subscribes, resuming after `since`; `Err` is the 401.
    async fn subscribe(&self, parts: &Parts, since: Option<u64>) -> Result<Subscription, Response> {
        let Some(access) = self.auth.authorize(parts).await else {
            tracing::debug!("live stream: connection refused by the authorize hook");
            return Err(text_response(
                StatusCode::UNAUTHORIZED,
                "live stream: not authorized",
                None,
            ));
        };
        tracing::debug!(
            subscriber = access.subscriber_name(),
            ?since,
            "live client connected"
        );
        Ok(self.hub.subscribe(access, since))
    }

    async fn serve_websocket(self, request: Request) -> Response {
        let (mut parts, _body) = request.into_parts();
        // Authorize before looking at the upgrade: a refused client learns nothing more.
        let since = query_since(&parts);
        let subscription = match self.subscribe(&parts, since).await {
            Ok(subscription) => subscription,
            Err(refused) => return refused,
        };
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        // A client sends nothing but pongs and close frames: small buffers keep idle
        // connections cheap.
        upgrade
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_message_size(64 * 1024)
            .on_upgrade(move |socket| {
                run_websocket(socket, subscription, self.heartbeat, self.send_timeout)
            })
    }

    async fn serve_sse(self, request: Request) -> Response {
        let (parts, _body) = request.into_parts();
        let since = parts
            .headers
            .get(LAST_EVENT_ID)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse().ok())
            .or_else(|| query_since(&parts));
        let subscription = match self.subscribe(&parts, since).await {
            Ok(subscription) => subscription,
            Err(refused) => return refused,
        };
        let keep_alive = KeepAlive::new().interval(self.heartbeat).text("ping");
        let mut response = Sse::new(SseFrames { subscription })
            .keep_alive(keep_alive)
            .into_response();
        // Tell nginx-style proxies not to buffer the stream.
        response.headers_mut().insert(
            http::HeaderName::from_static("x-accel-buffering"),
            http::HeaderValue::from_static("no"),
        );
        response
    }
}

/// `?since=<id>`, when it is a number.
fn query_since(parts: &Parts) -> Option<u64> {
    query_param(parts, "since")?.trim().parse().ok()
}

/// Sends the subscription's frames, pings every heartbeat, and ends on close, error, silence
/// for three heartbeats, a send slower than `send_timeout`, or the subscription's end.
async fn run_websocket(
    mut socket: WebSocket,
    mut subscription: Subscription,
    heartbeat: Duration,
    send_timeout: Duration,
) {
    let start = tokio::time::Instant::now() + heartbeat;
    let mut ticks = tokio::time::interval_at(start, heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let message = tokio::select! {
            next = subscription.recv() => match next {
                Some(Next::Frame(frame)) => Message::text(frame.json()),
                Some(Next::Resync) => Message::text(RESYNC_JSON),
                None => break,
            },
            _ = ticks.tick() => {
                if last_heard.elapsed() > heartbeat.saturating_mul(3) {
                    tracing::debug!("live client silent for three heartbeats: disconnected");
                    break;
                }
                Message::Ping(Bytes::new())
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {
                    last_heard = tokio::time::Instant::now();
                    continue;
                }
            },
        };
        match tokio::time::timeout(send_timeout, socket.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!("live client did not take a message in time: disconnected");
                return;
            }
        }
    }
    let _ = tokio::time::timeout(send_timeout, socket.send(Message::Close(None))).await;
}

/// A subscription as an SSE event stream.
struct SseFrames {
    subscription: Subscription,
}

impl futures_core::Stream for SseFrames {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = std::task::ready!(self.subscription.poll_recv(cx));
        Poll::Ready(next.map(|next| {
            Ok(match next {
                Next::Frame(frame) => Event::default()
                    .id(frame.id().to_string())
                    .data(frame.json()),
                Next::Resync => Event::default().data(RESYNC_JSON),
            })
        }))
    }
}
