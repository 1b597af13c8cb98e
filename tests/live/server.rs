//! A webhook route with the live stream, served on loopback, and WebSocket / SSE clients.

use std::net::SocketAddr;
use std::time::Duration;

use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use vobiz_webhooks::live::{query_param, Access, LiveEndpoints, LiveHub, LiveLayer};
use vobiz_webhooks::testing::TestEvent;
use vobiz_webhooks::{VerifiedEvent, VobizWebhookLayer};

pub const SECRET: &str = "live-test-secret";
pub const TOKEN: &str = "let-me-in";
/// A delivery with this header makes the handler answer 500.
pub const FAIL: &str = "x-test-fail";

/// How long a test waits for something that should arrive.
pub const WAIT: Duration = Duration::from_secs(5);

async fn handle(_event: VerifiedEvent, headers: HeaderMap) -> StatusCode {
    if headers.contains_key(FAIL) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub hub: LiveHub,
    client: reqwest::Client,
}

impl Server {
    /// Serves `hub` with the default heartbeat.
    pub async fn start(hub: LiveHub) -> Self {
        Self::with_heartbeat(hub, vobiz_webhooks::live::DEFAULT_HEARTBEAT).await
    }

    pub async fn with_heartbeat(hub: LiveHub, heartbeat: Duration) -> Self {
        let live = LiveEndpoints::new(hub.clone())
            .heartbeat(heartbeat)
            .authorize(|request: &http::request::Parts| {
                let bearer = request
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .map(str::to_owned);
                let token = bearer.or_else(|| query_param(request, "token"))?;
                (token == TOKEN).then(|| Access::all().subscriber("test"))
            });
        let unconfigured = LiveEndpoints::new(hub.clone());
        let app = Router::new()
            .route(
                "/webhooks/vobiz",
                post(handle.layer(LiveLayer::new(hub.clone())))
                    .layer(VobizWebhookLayer::new(SECRET)),
            )
            .route("/live/ws", live.websocket())
            .route("/live/events", live.sse())
            .route("/open/ws", unconfigured.websocket())
            .route("/open/events", unconfigured.sse());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            hub,
            client: reqwest::Client::new(),
        }
    }

    /// Delivers `event`, signed; returns the status.
    pub async fn deliver(&self, event: &TestEvent) -> u16 {
        let url = format!("http://{}/webhooks/vobiz", self.addr);
        let response = crate::support::http_post(&self.client, &url, SECRET, event)
            .send()
            .await
            .expect("delivery");
        response.status().as_u16()
    }

    pub fn ws_url(&self, path_and_query: &str) -> String {
        format!("ws://{}{path_and_query}", self.addr)
    }

    /// A GET of the SSE endpoint at `path_and_query` with `headers`.
    pub async fn sse(&self, path_and_query: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .client
            .get(format!("http://{}{path_and_query}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("SSE request")
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects a WebSocket client; `Err(status)` when the handshake was refused.
pub async fn ws_connect(url: &str) -> Result<Ws, u16> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _response)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("WebSocket connect failed: {error}"),
    }
}

/// What a WebSocket client reads next, pings and pongs included.
#[derive(Debug)]
pub enum WsRead {
    Json(serde_json::Value),
    Ping,
    Closed,
}

pub async fn ws_read_any(socket: &mut Ws) -> WsRead {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a WebSocket message in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                return WsRead::Json(serde_json::from_str(&text).expect("frame JSON"))
            }
            Some(Ok(Message::Ping(_))) => return WsRead::Ping,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return WsRead::Closed,
            Some(Ok(_)) => {}
        }
    }
}

/// The next JSON frame (pings skipped).
pub async fn ws_frame(socket: &mut Ws) -> serde_json::Value {
    loop {
        match ws_read_any(socket).await {
            WsRead::Json(json) => return json,
            WsRead::Ping => {}
            WsRead::Closed => panic!("the WebSocket closed while a frame was expected"),
        }
    }
}

/// One Server-Sent Event, or a comment line.
#[derive(Debug, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: Option<String>,
    pub comment: Option<String>,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.data.as_deref().expect("a data line")).expect("frame JSON")
    }
}

/// Reads an SSE response block by block.
pub struct SseClient {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseClient {
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().ok(),
            Some("text/event-stream")
        );
        Self {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next block (event or comment); `None` when the stream ended.
    pub async fn next_block(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                for line in block.lines() {
                    if let Some(comment) = line.strip_prefix(':') {
                        event.comment = Some(comment.trim().to_owned());
                    } else if let Some(id) = line.strip_prefix("id:") {
                        event.id = Some(id.trim().to_owned());
                    } else if let Some(data) = line.strip_prefix("data:") {
                        event.data = Some(data.trim().to_owned());
                    }
                }
                return Some(event);
            }
            let chunk = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("SSE bytes in time");
            match chunk {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The next event with data (comments skipped).
    pub async fn next_event(&mut self) -> SseEvent {
        loop {
            let block = self.next_block().await.expect("an SSE event");
            if block.data.is_some() {
                return block;
            }
        }
    }
}
