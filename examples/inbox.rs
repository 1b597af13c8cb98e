//! A live inbox: the example server's webhook route plus the live stream and one page that
//! shows new messages, their status ticks and incoming calls as they arrive.
//!
//! ```sh
//! VOBIZ_WEBHOOK_SECRET=your-shared-secret VOBIZ_LIVE_TOKEN=let-me-in \
//!   cargo run --features live --example inbox
//! # open http://127.0.0.1:3000/?token=let-me-in, then send events:
//! cargo run --features cli --bin vobiz -- trigger message.inbound \
//!   --url http://127.0.0.1:3000/webhooks/vobiz --secret your-shared-secret
//! ```
//!
//! Environment:
//! - `VOBIZ_WEBHOOK_SECRET` (required): the subscription secret; several, separated by commas,
//!   during a rotation.
//! - `VOBIZ_ADDR` (default `127.0.0.1:3000`): the address to listen on.
//! - `VOBIZ_LIVE_TOKEN`: the token the page must carry (`/?token=…`) to see the stream; a
//!   wrong or missing one gets 401. When unset a random one is made and the page's URL is
//!   logged.
//! - `RUST_LOG` (default `info,vobiz_webhooks=warn`).
//!
//! Routes:
//! - `POST /webhooks/vobiz`: verified by the layer; one JSON line per handled event on stdout,
//!   and the event published to the live stream once the handler succeeded.
//! - `GET /health`: `200 ok`.
//! - `GET /`: the inbox page (`examples/inbox/index.html`, no build step). It connects to
//!   `/live/ws?token=…&since=…`, applies each frame, and reconnects with resume after a drop.
//! - `GET /live/ws`, `GET /live/events`: the stream as WebSocket and Server-Sent Events, for
//!   this page or any other client (`Authorization: Bearer <token>` works too).
//!
//! Serving: `axum::serve` (it handles the WebSocket upgrade); on Ctrl-C or SIGTERM the hub is
//! closed (every stream ends), requests in flight finish, and the process exits. A public
//! deployment also wants a header read timeout (a reverse proxy's, or hyper's as
//! `examples/server.rs` shows).

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use vobiz_webhooks::live::{query_param, Access, LiveEndpoints, LiveHub, LiveLayer};
use vobiz_webhooks::signature::Secrets;
use vobiz_webhooks::{VerifiedEvent, VobizEvent, VobizWebhookLayer};

#[path = "common/shutdown.rs"]
mod shutdown;

/// The inbox page, served as is.
const PAGE: &str = include_str!("inbox/index.html");

/// The line printed per event (as `examples/server.rs` prints it).
#[derive(Serialize)]
struct Line<'a> {
    account_id: Option<&'a str>,
    event_id: &'a str,
    event_type: &'a str,
    from: Option<&'a str>,
    text: Option<&'a str>,
    status: Option<&'a str>,
    call_id: Option<&'a str>,
}

async fn handle(meta: VerifiedEvent, event: VobizEvent) -> StatusCode {
    let mut line = Line {
        account_id: meta.account_id(),
        event_id: meta.event_id(),
        event_type: meta.event_type().as_str(),
        from: None,
        text: None,
        status: None,
        call_id: None,
    };
    match &event {
        VobizEvent::MessageInbound(msg) => {
            line.from = msg.from();
            line.text = msg.text();
        }
        VobizEvent::MessageStatus(st) => line.status = st.status().map(|status| status.as_str()),
        VobizEvent::Call(call) => {
            line.from = call.from();
            line.call_id = call.call_id();
        }
        _ => {}
    }
    let mut buf = Vec::with_capacity(256);
    if serde_json::to_writer(&mut buf, &line).is_err() || writeln!(buf).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(&buf)
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // Nobody reads stdout any more: fail, so nothing is published and Vobiz retries.
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

/// The app: the webhook route feeding `hub`, the stream behind `token`, the page.
fn app(secrets: Secrets, hub: &LiveHub, token: String) -> Router {
    let live = LiveEndpoints::new(hub.clone()).authorize(move |request: &http::request::Parts| {
        let bearer = request
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::to_owned);
        let offered = bearer.or_else(|| query_param(request, "token"))?;
        // A plain comparison is fine for a demo token; use a constant-time one for real secrets.
        (offered == token).then(|| Access::all().subscriber("inbox"))
    });
    Router::new()
        .route(
            "/webhooks/vobiz",
            post(handle.layer(LiveLayer::new(hub.clone())))
                .layer(VobizWebhookLayer::from_secrets(secrets)),
        )
        .route("/health", get(|| async { "ok" }))
        .route("/", get(|| async { Html(PAGE) }))
        .route("/live/ws", live.websocket())
        .route("/live/events", live.sse())
}

struct Config {
    secrets: Secrets,
    addr: SocketAddr,
    token: String,
    token_generated: bool,
}

fn config() -> Result<Config, String> {
    let secrets = std::env::var("VOBIZ_WEBHOOK_SECRET").map_err(|_| {
        "VOBIZ_WEBHOOK_SECRET is not set: export the subscription secret".to_owned()
    })?;
    let secrets = Secrets::new(secrets.split(',').map(str::trim))
        .map_err(|_| "VOBIZ_WEBHOOK_SECRET contains an empty secret".to_owned())?;
    let addr = std::env::var("VOBIZ_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let addr = addr
        .parse()
        .map_err(|err| format!("VOBIZ_ADDR `{addr}` is not an address: {err}"))?;
    let (token, token_generated) = match std::env::var("VOBIZ_LIVE_TOKEN") {
        Ok(token) if !token.is_empty() => (token, false),
        _ => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|err| format!("no random token: {err}"))?;
            (hex::encode(bytes), true)
        }
    };
    Ok(Config {
        secrets,
        addr,
        token,
        token_generated,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,vobiz_webhooks=warn".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {}: {err}", config.addr);
            return ExitCode::FAILURE;
        }
    };
    let hub = LiveHub::new();
    let addr = listener.local_addr().unwrap_or(config.addr);
    if config.token_generated {
        tracing::info!(
            "VOBIZ_LIVE_TOKEN not set; open http://{addr}/?token={}",
            config.token
        );
    } else {
        tracing::info!("open http://{addr}/?token=<VOBIZ_LIVE_TOKEN>");
    }
    tracing::info!(%addr, "listening on POST /webhooks/vobiz, GET /, GET /live/ws, GET /live/events");
    let app = app(config.secrets, &hub, config.token);
    serve(listener, app, hub).await;
    tracing::info!("shut down");
    ExitCode::SUCCESS
}

/// Serves until the shutdown signal; then closes the hub, so every stream ends and the
/// graceful shutdown does not wait for open SSE responses.
async fn serve(listener: tokio::net::TcpListener, app: Router, hub: LiveHub) {
    let shutdown = async move {
        shutdown::signal().await;
        hub.close();
    };
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(%err, "server failed");
    }
}
