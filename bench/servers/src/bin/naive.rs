//! (b) The handler a Rust user writes today without the crate: `Bytes` extractor, HMAC keyed
//! per request, hex compare, `serde_json::Value`, a `Mutex<HashSet<String>>` of seen ids, then
//! the message text (or the status) read from the `Value`.
//!
//! `VOBIZ_WEBHOOK_SECRET=... BENCH_ADDR=127.0.0.1:39102 naive`

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

#[derive(Clone)]
struct App {
    secret: Arc<str>,
    seen: Arc<Mutex<HashSet<String>>>,
}

async fn handle(State(app): State<App>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(signature) = headers
        .get("x-webhook-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return StatusCode::UNAUTHORIZED;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(app.secret.as_bytes()).expect("any key length");
    mac.update(&body);
    let expected = hex::encode(mac.finalize().into_bytes());
    if expected != signature {
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(event_id) = event["event_id"].as_str() else {
        return StatusCode::BAD_REQUEST;
    };
    if !app.seen.lock().expect("lock").insert(event_id.to_owned()) {
        return StatusCode::OK; // a retry: already handled
    }
    // Handle it: read the message text or the status (what the typed server (h) reads).
    let value = &event["payload"]["entry"][0]["changes"][0]["value"];
    let read = match event["event_type"].as_str() {
        Some("message.inbound") => value["messages"][0]["text"]["body"].as_str().map(str::len),
        Some("message.status") => value["statuses"][0]["status"].as_str().map(str::len),
        _ => None,
    };
    std::hint::black_box(read);
    StatusCode::OK
}

#[tokio::main]
async fn main() {
    let secret = std::env::var("VOBIZ_WEBHOOK_SECRET").expect("VOBIZ_WEBHOOK_SECRET");
    let addr = std::env::var("BENCH_ADDR").unwrap_or_else(|_| "127.0.0.1:39102".to_owned());
    let app = Router::new()
        .route("/webhooks/vobiz", post(handle))
        .with_state(App {
            secret: secret.into(),
            seen: Arc::default(),
        });
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
