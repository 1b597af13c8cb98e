//! The example server: receives Vobiz webhooks on `POST /webhooks/vobiz` and prints one JSON line
//! per handled event on stdout (logs go to stderr).
//!
//! ```sh
//! VOBIZ_WEBHOOK_SECRET=your-shared-secret cargo run --release --example server
//! ```
//!
//! Environment:
//! - `VOBIZ_WEBHOOK_SECRET`: the subscription secret; several, separated by commas, during a
//!   rotation. Or:
//! - `VOBIZ_WEBHOOK_SECRET_FILE`: a file of secrets (separated by commas or newlines), read at
//!   start and again on `SIGHUP`, so secrets change without a restart; the log says how many are
//!   active (never a secret). An empty or unreadable file on reload keeps the last good set and
//!   logs an error. One of the two is required; the file wins when both are set.
//! - `VOBIZ_ADDR` (default `127.0.0.1:3000`): the address to listen on.
//! - `VOBIZ_REDIS_URL` (only with `--features redis`): deduplicate in this Redis, shared by every
//!   replica, instead of in process: one node, any one node of a Redis Cluster (recognised at
//!   connect), or several cluster nodes separated by commas; `VOBIZ_REDIS_PREFIX` sets its key
//!   prefix. (Queue mode, and `VOBIZ_REDIS_PARTITIONS`, are in the `queue_redis` example.)
//! - `VOBIZ_MAX_CONNECTIONS` (default 4096): the most connections served at once; further ones
//!   wait in the listen backlog until one closes.
//! - `VOBIZ_METRICS_ADDR` (only with `--features metrics`): serve Prometheus metrics at
//!   `GET /metrics` on this address, apart from the webhook listener (the names are listed in
//!   the crate's `metrics` feature docs).
//! - `VOBIZ_DEDUP_CONTENT=1`: also deduplicate `/webhooks/vobiz` deliveries on content (the
//!   wamid of a message, `<id>:<status>` of a status, `<id>:<event>` of a call), so one update
//!   under two `event_id`s prints once (`VobizWebhookLayer::dedup_on_content`).
//! - `META_APP_SECRET` (only with `--features meta`): also receive Meta's own WhatsApp
//!   webhooks on `POST /webhooks/meta`, verified with this app secret (several separated by
//!   commas), one line per item with `"source":"meta"` and the item's content key as
//!   `event_id`; and answer Meta's handshake on `GET /webhooks/meta` with `META_VERIFY_TOKEN`
//!   (without it every handshake gets 403). Without `META_APP_SECRET` the route is not served.
//!   Both legs deduplicate in the same store.
//! - `RUST_LOG` (default `info,vobiz_webhooks=warn`): log filter, e.g. `vobiz_webhooks=debug` to
//!   see every rejection, `vobiz_webhooks=info` for the crate's `vobiz.webhook` span per delivery
//!   (worth it with an exporter that shows spans; this plain log prints none, so by default no
//!   span is made).
//!
//! Routes: `POST /webhooks/vobiz` (verified by the layer), `GET /health` (`200 ok`, not
//! verified, for load balancers and probes) and, with `--features meta` and `META_APP_SECRET`,
//! `GET`/`POST /webhooks/meta`.
//!
//! Serving: hyper's HTTP/1 server (through hyper-util) with a header read timeout of
//! [`HEADER_READ_TIMEOUT`]; the layer bounds the rest (the body: 30 s, 408; the handler: its
//! 60 s lease), so clients that trickle bytes cannot hold connections and memory for ever. On
//! Ctrl-C or SIGTERM it stops accepting, lets requests in flight finish (for at most
//! [`SHUTDOWN_GRACE`]) and exits. Memory stays bounded however many clients misbehave: the
//! layer's budget for unverified bodies (64 MiB by default) bounds what they can make it buffer,
//! and `VOBIZ_MAX_CONNECTIONS` bounds the connections themselves.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use vobiz_webhooks::signature::Secrets;
use vobiz_webhooks::{DedupStore, VerifiedEvent, VobizEvent, VobizWebhookLayer};

#[path = "common/shutdown.rs"]
mod shutdown;

/// How long a client may take to send the request line and headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests in flight may take to finish after the shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The most connections served at once unless `VOBIZ_MAX_CONNECTIONS` says otherwise.
const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// The line printed per event, serialised straight from borrowed fields (no `serde_json::Value`).
#[derive(Serialize)]
struct Line<'a> {
    account_id: Option<&'a str>,
    detail: Detail<'a>,
    event_id: &'a str,
    event_type: &'a str,
    kind: &'static str,
    /// `"meta"` for items of Meta's own webhooks; absent for Vobiz deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'static str>,
}

/// The one detail a person wants to see first.
#[derive(Serialize)]
#[serde(untagged)]
enum Detail<'a> {
    Message {
        from: Option<&'a str>,
        text: Option<&'a str>,
        #[serde(rename = "type")]
        kind: Option<&'a str>,
    },
    Status {
        status: Option<&'a str>,
        wamid: Option<&'a str>,
    },
    Call {
        call_id: Option<&'a str>,
        event: &'a str,
    },
    Nothing {},
}

async fn handle(meta: VerifiedEvent, event: VobizEvent) -> StatusCode {
    print(&meta, &event, None)
}

/// One item of a Meta POST (feature `meta`): the same line, with `"source":"meta"`.
#[cfg(feature = "meta")]
async fn handle_meta(item: VerifiedEvent, event: VobizEvent) -> StatusCode {
    print(&item, &event, Some("meta"))
}

/// Prints the event's line on stdout; 500 when stdout is gone (so the sender retries).
fn print(meta: &VerifiedEvent, event: &VobizEvent, source: Option<&'static str>) -> StatusCode {
    let (kind, detail) = match event {
        VobizEvent::MessageInbound(msg) => (
            "message",
            Detail::Message {
                from: msg.from(),
                text: msg.text(),
                kind: msg.kind(),
            },
        ),
        VobizEvent::MessageStatus(st) => (
            "status",
            Detail::Status {
                status: st.status().map(|status| status.as_str()),
                wamid: st.wamid(),
            },
        ),
        VobizEvent::Call(call) => (
            "call",
            Detail::Call {
                call_id: call.call_id(),
                event: call.event(),
            },
        ),
        _ => ("unknown", Detail::Nothing {}),
    };
    let line = Line {
        account_id: meta.account_id(),
        detail,
        event_id: meta.event_id(),
        event_type: meta.event_type().as_str(),
        kind,
        source,
    };
    // One line per event, written and flushed at once so a reader sees it immediately.
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
        // Nobody reads stdout any more: fail so the claim is released and Vobiz retries.
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

struct Config {
    secrets: Secrets,
    secret_file: Option<std::path::PathBuf>,
    addr: SocketAddr,
    redis_url: Option<String>,
    max_connections: usize,
    dedup_content: bool,
    meta: Option<MetaConfig>,
}

/// Meta's leg: the app secrets and, when set, the handshake's verify token.
#[cfg_attr(not(feature = "meta"), allow(dead_code))]
struct MetaConfig {
    app_secrets: Secrets,
    verify_token: Option<String>,
}

/// Resolves once the store work the layer left running behind responses (a networked store's
/// acknowledgements) is done.
type Settled = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The routes, every layer deduplicating in `store`.
fn app<D: DedupStore>(
    layer: VobizWebhookLayer,
    store: D,
    meta: Option<MetaConfig>,
) -> (Router, Settled) {
    let store = Arc::new(store);
    let layer = layer.store(Arc::clone(&store));
    let vobiz_settled = layer.settled();
    let router = Router::new()
        .route("/webhooks/vobiz", post(handle).layer(layer))
        .route("/health", get(|| async { "ok" }));
    let (router, meta_settled) = meta_routes(router, store, meta);
    let settled = Box::pin(async move {
        vobiz_settled.await;
        meta_settled.await;
    });
    (router, settled)
}

/// `GET`/`POST /webhooks/meta` when Meta's leg is configured (feature `meta`).
#[cfg(feature = "meta")]
fn meta_routes<D: DedupStore>(
    router: Router,
    store: Arc<D>,
    meta: Option<MetaConfig>,
) -> (Router, Settled) {
    use vobiz_webhooks::meta::{MetaHandshake, MetaWebhookLayer};

    let Some(meta) = meta else {
        return (router, Box::pin(async {}));
    };
    let layer = MetaWebhookLayer::from_secrets(meta.app_secrets).store(store);
    let settled = Box::pin(layer.settled());
    let route = post(handle_meta).layer(layer);
    let route = match meta
        .verify_token
        .and_then(|token| MetaHandshake::try_new(token).ok())
    {
        Some(handshake) => route.get_service(handshake),
        None => route.get(|| async { (StatusCode::FORBIDDEN, "no META_VERIFY_TOKEN configured") }),
    };
    tracing::info!("also listening on GET/POST /webhooks/meta (Meta's own webhooks)");
    (router.route("/webhooks/meta", route), settled)
}

#[cfg(not(feature = "meta"))]
fn meta_routes<D: DedupStore>(
    router: Router,
    _store: Arc<D>,
    _meta: Option<MetaConfig>,
) -> (Router, Settled) {
    (router, Box::pin(async {}))
}

/// The router with the configured dedup store: Redis when asked for, in process otherwise.
async fn build_app(
    layer: VobizWebhookLayer,
    redis_url: Option<String>,
    meta: Option<MetaConfig>,
) -> Result<(Router, Settled), String> {
    let Some(url) = redis_url else {
        tracing::info!("deduplicating in process (MemoryStore)");
        return Ok(app(layer, vobiz_webhooks::MemoryStore::new(), meta));
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
        Ok(app(layer, store, meta))
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = (url, meta);
        Err(
            "VOBIZ_REDIS_URL is set but this build has no Redis support: \
             run with `--features redis`"
                .to_owned(),
        )
    }
}

fn config() -> Result<Config, String> {
    let secret_file = std::env::var_os("VOBIZ_WEBHOOK_SECRET_FILE")
        .filter(|path| !path.is_empty())
        .map(std::path::PathBuf::from);
    let secrets = match &secret_file {
        Some(path) => Secrets::new(read_secret_file(path)?)
            .map_err(|err| format!("VOBIZ_WEBHOOK_SECRET_FILE: {err}"))?,
        None => {
            let secrets = std::env::var("VOBIZ_WEBHOOK_SECRET").map_err(|_| {
                "neither VOBIZ_WEBHOOK_SECRET nor VOBIZ_WEBHOOK_SECRET_FILE is set: export the \
                 subscription secret (several separated by commas during a rotation)"
                    .to_owned()
            })?;
            Secrets::new(secrets.split(',').map(str::trim))
                .map_err(|_| "VOBIZ_WEBHOOK_SECRET contains an empty secret".to_owned())?
        }
    };
    let addr = std::env::var("VOBIZ_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let addr = addr
        .parse()
        .map_err(|err| format!("VOBIZ_ADDR `{addr}` is not an address: {err}"))?;
    let redis_url = std::env::var("VOBIZ_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let max_connections = match std::env::var("VOBIZ_MAX_CONNECTIONS") {
        Ok(text) => text
            .parse::<usize>()
            .ok()
            .filter(|&max| max > 0)
            .ok_or_else(|| format!("VOBIZ_MAX_CONNECTIONS `{text}` is not a positive number"))?,
        Err(_) => DEFAULT_MAX_CONNECTIONS,
    };
    let dedup_content = std::env::var("VOBIZ_DEDUP_CONTENT").is_ok_and(|value| value == "1");
    Ok(Config {
        secrets,
        secret_file,
        addr,
        redis_url,
        max_connections,
        dedup_content,
        meta: meta_config()?,
    })
}

/// `META_APP_SECRET` (and `META_VERIFY_TOKEN`), when set.
fn meta_config() -> Result<Option<MetaConfig>, String> {
    let Some(app_secrets) = std::env::var("META_APP_SECRET")
        .ok()
        .filter(|secret| !secret.is_empty())
    else {
        return Ok(None);
    };
    if cfg!(not(feature = "meta")) {
        tracing::warn!(
            "META_APP_SECRET is set but this build has no Meta leg: run with `--features meta`"
        );
        return Ok(None);
    }
    let app_secrets = Secrets::new(app_secrets.split(',').map(str::trim))
        .map_err(|_| "META_APP_SECRET contains an empty secret".to_owned())?;
    let verify_token = std::env::var("META_VERIFY_TOKEN")
        .ok()
        .filter(|token| !token.is_empty());
    if verify_token.is_none() {
        tracing::warn!("META_VERIFY_TOKEN is not set: every Meta handshake gets 403");
    }
    Ok(Some(MetaConfig {
        app_secrets,
        verify_token,
    }))
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

    if let Err(message) = serve_metrics() {
        eprintln!("error: {message}");
        return ExitCode::FAILURE;
    }
    tracing::info!(active = config.secrets.len(), "webhook secrets loaded");
    if let Some(path) = config.secret_file.clone() {
        tokio::spawn(reload_on_hangup(path, config.secrets.clone()));
    }
    let layer =
        VobizWebhookLayer::from_secrets(config.secrets).dedup_on_content(config.dedup_content);
    let (app, settled) = match build_app(layer, config.redis_url, config.meta).await {
        Ok(built) => built,
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
    serve(listener, app, config.max_connections).await;
    // The last completions a networked store acknowledges after the 200: let them land.
    if tokio::time::timeout(SHUTDOWN_GRACE, settled).await.is_err() {
        tracing::warn!("dedup store work still running after the grace period; exiting anyway");
    }
    tracing::info!("shut down");
    ExitCode::SUCCESS
}

/// Accepts connections until the shutdown signal, then waits for the open ones to finish.
async fn serve(listener: tokio::net::TcpListener, app: Router, max_connections: usize) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown::signal();
    tokio::pin!(shutdown);
    loop {
        // A free slot first: at the cap, further connections wait in the kernel's backlog.
        let slot = tokio::select! {
            slot = std::sync::Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_closed) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the grace period; exiting anyway");
    }
}

/// With `--features metrics` and `VOBIZ_METRICS_ADDR` set: a Prometheus exporter on that
/// address (`GET /metrics`), recording what the crate counts.
fn serve_metrics() -> Result<(), String> {
    let Some(addr) = std::env::var("VOBIZ_METRICS_ADDR")
        .ok()
        .filter(|addr| !addr.is_empty())
    else {
        return Ok(());
    };
    #[cfg(feature = "metrics")]
    {
        let addr: SocketAddr = addr
            .parse()
            .map_err(|err| format!("VOBIZ_METRICS_ADDR `{addr}` is not an address: {err}"))?;
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .map_err(|err| format!("cannot serve metrics on {addr}: {err}"))?;
        tracing::info!(%addr, "serving Prometheus metrics on GET /metrics");
        Ok(())
    }
    #[cfg(not(feature = "metrics"))]
    Err(format!(
        "VOBIZ_METRICS_ADDR is set ({addr}) but this build has no metrics: run with `--features metrics`"
    ))
}

/// The secrets of `path`: separated by commas or newlines, blank entries skipped; at least one.
fn read_secret_file(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        format!(
            "cannot read VOBIZ_WEBHOOK_SECRET_FILE {}: {err}",
            path.display()
        )
    })?;
    let secrets: Vec<String> = text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
        .map(str::to_owned)
        .collect();
    if secrets.is_empty() {
        return Err(format!(
            "VOBIZ_WEBHOOK_SECRET_FILE {} holds no secret",
            path.display()
        ));
    }
    Ok(secrets)
}

/// Re-reads the secrets file on every SIGHUP and swaps the new set in; a bad file keeps the
/// last good set. Deliveries in flight verify against one set or the other, never neither.
async fn reload_on_hangup(path: std::path::PathBuf, secrets: Secrets) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP: the secrets file is read only at start");
            return;
        };
        while hangups.recv().await.is_some() {
            match read_secret_file(&path) {
                Ok(fresh) => {
                    if let Err(err) = secrets.replace(&fresh) {
                        tracing::error!(%err, "secrets not reloaded; the last good set stays");
                    } else {
                        tracing::info!(active = secrets.len(), "webhook secrets reloaded");
                    }
                }
                Err(err) => tracing::error!(
                    %err,
                    active = secrets.len(),
                    "secrets not reloaded; the last good set stays"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, secrets);
}
