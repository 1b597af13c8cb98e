//! The example server: receives Vobiz webhooks on `POST /webhooks/vobiz` and prints one JSON line
//! per handled event on stdout (logs go to stderr).
//!
//! ```sh
//! VOBIZ_WEBHOOK_SECRET=your-shared-secret cargo run --release --example server
//! ```
//!
//! Environment:
//! - `VOBIZ_WEBHOOK_SECRET` (required): the subscription secret; several, separated by commas,
//!   during a rotation.
//! - `VOBIZ_ADDR` (default `127.0.0.1:3000`): the address to listen on.
//! - `VOBIZ_REDIS_URL` (only with `--features redis`): deduplicate in this Redis, shared by every
//!   replica, instead of in process; `VOBIZ_REDIS_PREFIX` sets its key prefix.
//! - `RUST_LOG` (default `info`): log filter, e.g. `vobiz_webhooks=debug` to see every rejection.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::Serialize;
use vobiz_webhooks::signature::Verifier;
use vobiz_webhooks::{DedupStore, VerifiedEvent, VobizEvent, VobizWebhookLayer};

/// The line printed per event (fields in alphabetical order, as `serde_json::json!` prints them).
#[derive(Serialize)]
struct Line<'a> {
    account_id: Option<&'a str>,
    event_id: &'a str,
    event_type: &'a str,
    kind: &'static str,
}

async fn handle(meta: VerifiedEvent, event: VobizEvent) -> StatusCode {
    let kind = match &event {
        VobizEvent::MessageInbound(_) => "message",
        VobizEvent::MessageStatus(_) => "status",
        VobizEvent::Call(_) => "call",
        _ => "unknown",
    };
    let line = Line {
        account_id: meta.account_id(),
        event_id: meta.event_id(),
        event_type: meta.event_type().as_str(),
        kind,
    };
    // One line per event, written and flushed at once so a reader sees it immediately.
    let mut buf = Vec::with_capacity(160);
    let mut stdout = std::io::stdout().lock();
    if serde_json::to_writer(&mut buf, &line).is_err()
        || writeln!(buf).is_err()
        || stdout
            .write_all(&buf)
            .and_then(|()| stdout.flush())
            .is_err()
    {
        // Nobody reads stdout any more: fail so the claim is released and Vobiz retries.
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

struct Config {
    verifier: Verifier,
    addr: SocketAddr,
    redis_url: Option<String>,
}

fn app<D: DedupStore>(layer: VobizWebhookLayer<D>) -> Router {
    Router::new().route("/webhooks/vobiz", post(handle).layer(layer))
}

/// The router with the configured dedup store: Redis when asked for, in process otherwise.
async fn build_app(layer: VobizWebhookLayer, redis_url: Option<String>) -> Result<Router, String> {
    let Some(url) = redis_url else {
        tracing::info!("deduplicating in process (MemoryStore)");
        return Ok(app(layer));
    };
    #[cfg(feature = "redis")]
    {
        let mut store = vobiz_webhooks::RedisStore::new(&url)
            .await
            .map_err(|err| format!("cannot connect to VOBIZ_REDIS_URL: {err}"))?;
        if let Ok(prefix) = std::env::var("VOBIZ_REDIS_PREFIX") {
            store = store.prefix(prefix);
        }
        tracing::info!(?store, "deduplicating in Redis");
        Ok(app(layer.store(store)))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = url;
        Err(
            "VOBIZ_REDIS_URL is set but this build has no Redis support: \
             run with `--features redis`"
                .to_owned(),
        )
    }
}

fn config() -> Result<Config, String> {
    let secrets = std::env::var("VOBIZ_WEBHOOK_SECRET")
        .map_err(|_| "VOBIZ_WEBHOOK_SECRET is not set: export the subscription secret (several separated by commas during a rotation)".to_owned())?;
    let verifier = Verifier::new(secrets.split(',').map(str::trim))
        .map_err(|_| "VOBIZ_WEBHOOK_SECRET contains an empty secret".to_owned())?;
    let addr = std::env::var("VOBIZ_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let addr = addr
        .parse()
        .map_err(|err| format!("VOBIZ_ADDR `{addr}` is not an address: {err}"))?;
    let redis_url = std::env::var("VOBIZ_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty());
    Ok(Config {
        verifier,
        addr,
        redis_url,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
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

    let layer = VobizWebhookLayer::from_verifier(config.verifier);
    let app = match build_app(layer, config.redis_url).await {
        Ok(app) => app,
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
    tracing::info!(addr = %config.addr, "listening on POST /webhooks/vobiz");
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        eprintln!("error: server failed: {err}");
        return ExitCode::FAILURE;
    }
    tracing::info!("shut down");
    ExitCode::SUCCESS
}

/// Resolves on Ctrl-C or SIGTERM; requests in flight then finish before the server exits.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received, finishing requests in flight");
}
