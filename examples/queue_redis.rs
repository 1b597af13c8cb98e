//! The example server in queue mode on Redis Streams: web processes verify, claim, `XADD` and
//! answer 200 at once; worker processes run the handler and print one JSON line per handled
//! event on stdout (logs go to stderr).
//!
//! ```sh
//! export VOBIZ_WEBHOOK_SECRET=your-shared-secret VOBIZ_REDIS_URL=redis://127.0.0.1:6379
//! cargo run --release --features queue,redis --example queue_redis -- --role server &
//! cargo run --release --features queue,redis --example queue_redis -- --role worker &   # worker 1
//! cargo run --release --features queue,redis --example queue_redis -- --role worker &   # worker 2
//! ```
//!
//! Kill a worker with `kill -9` while it handles an event: after `VOBIZ_IDLE_TIMEOUT_MS` the
//! other worker reclaims the event and prints its line.
//!
//! Environment:
//! - `VOBIZ_WEBHOOK_SECRET` (server role): the subscription secret(s), comma separated.
//! - `VOBIZ_ADDR` (default `127.0.0.1:3000`): where the server listens.
//! - `VOBIZ_REDIS_URL` (default `redis://127.0.0.1:6379`): one Redis, any one node of a Redis
//!   Cluster (recognised at connect), or several cluster nodes separated by commas;
//!   `VOBIZ_REDIS_PREFIX` (default `{vobiz}:`): dedup keys under `<prefix>dedup:`, streams
//!   under `<prefix>queue:`.
//! - `VOBIZ_REDIS_PARTITIONS` (default 1): streams the queue is spread over (on a cluster, one
//!   per master is a good start); every server and worker process must use the same number.
//! - `VOBIZ_WORKERS` (default 4): handler runs at once per worker process.
//! - `VOBIZ_HANDLER_SLEEP_MS` (default 0): make the handler slow, to watch the queue work.
//! - `VOBIZ_IDLE_TIMEOUT_MS` (default 10000): when a silent worker's event is reclaimed.
//! - `RUST_LOG` (default `info`).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use axum::extract::Request;
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::routing::post_service;
use axum::Router;
use serde_json::json;
use vobiz_webhooks::queue::{QueueAttempt, RedisQueue};
use vobiz_webhooks::signature::Verifier;
use vobiz_webhooks::{RedisStore, VerifiedEvent, VobizEvent, VobizWebhookLayer};

#[path = "common/shutdown.rs"]
mod shutdown;

#[derive(Clone, Copy)]
struct Slow(Duration);

async fn handle(
    axum::extract::State(Slow(sleep)): axum::extract::State<Slow>,
    meta: VerifiedEvent,
    request: Request,
) -> StatusCode {
    tokio::time::sleep(sleep).await;
    let kind = match meta.event() {
        VobizEvent::MessageInbound(_) => "message",
        VobizEvent::MessageStatus(_) => "status",
        VobizEvent::Call(_) => "call",
        _ => "unknown",
    };
    let attempt = request
        .extensions()
        .get::<QueueAttempt>()
        .map(QueueAttempt::number);
    let line = json!({
        "event_id": meta.event_id(),
        "event_type": meta.event_type().as_str(),
        "kind": kind,
        "account_id": meta.account_id(),
        "attempt": attempt,
        "pid": std::process::id(),
    });
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn env_number(name: &str, default: u64) -> Result<u64, String> {
    env_or(name, &default.to_string())
        .parse()
        .map_err(|err| format!("{name} is not a number: {err}"))
}

async fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let role = match args.iter().position(|arg| arg == "--role") {
        Some(index) => args.get(index + 1).cloned().unwrap_or_default(),
        None => "both".to_owned(),
    };
    let url = env_or("VOBIZ_REDIS_URL", "redis://127.0.0.1:6379");
    let prefix = env_or("VOBIZ_REDIS_PREFIX", "{vobiz}:");
    let store = RedisStore::new(&url)
        .await
        .map_err(|err| format!("cannot connect to {url}: {err}"))?
        .prefix(format!("{prefix}dedup:"));
    let queue = RedisQueue::new(&url)
        .await
        .map_err(|err| format!("cannot connect to {url}: {err}"))?
        .prefix(format!("{prefix}queue:"))
        .partitions(usize::try_from(env_number("VOBIZ_REDIS_PARTITIONS", 1)?).unwrap_or(1));
    tracing::info!(?queue, "Redis queue");

    let workers = if role == "worker" || role == "both" {
        let sleep = Duration::from_millis(env_number("VOBIZ_HANDLER_SLEEP_MS", 0)?);
        let workers = queue
            .workers(store.clone())
            .workers(usize::try_from(env_number("VOBIZ_WORKERS", 4)?).unwrap_or(4))
            .idle_timeout(Duration::from_millis(env_number(
                "VOBIZ_IDLE_TIMEOUT_MS",
                10_000,
            )?))
            .start(handle.with_state(Slow(sleep)))
            .await
            .map_err(|err| format!("cannot start workers: {err}"))?;
        Some(workers)
    } else {
        None
    };

    match role.as_str() {
        "server" | "both" => {
            let secrets = std::env::var("VOBIZ_WEBHOOK_SECRET")
                .map_err(|_| "VOBIZ_WEBHOOK_SECRET is not set".to_owned())?;
            let verifier = Verifier::new(secrets.split(',').map(str::trim))
                .map_err(|_| "VOBIZ_WEBHOOK_SECRET contains an empty secret".to_owned())?;
            // The claim must outlive the wait in the stream plus every attempt.
            let layer = VobizWebhookLayer::from_verifier(verifier)
                .store(store)
                .lease(Duration::from_secs(3600));
            let app = Router::new().route(
                "/webhooks/vobiz",
                post_service(queue.service()).layer(layer),
            );
            let addr = env_or("VOBIZ_ADDR", "127.0.0.1:3000");
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
            tracing::info!(%addr, stream = queue.stream_key(), "queue mode: listening on POST /webhooks/vobiz");
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown::signal())
                .await
                .map_err(|err| format!("server failed: {err}"))?;
        }
        "worker" => {
            tracing::info!(stream = queue.stream_key(), "queue worker running");
            shutdown::signal().await;
        }
        other => {
            return Err(format!(
                "--role must be server, worker or both, not `{other}`"
            ))
        }
    }
    if let Some(workers) = workers {
        let report = workers.shutdown(Duration::from_secs(10)).await;
        tracing::info!(
            ?report,
            "workers stopped; unfinished entries stay pending for others"
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
