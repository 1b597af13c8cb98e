//! The handlers of (b) and (h), shared by their loopback servers (`src/bin/naive.rs`,
//! `src/bin/typed.rs`) and by the crate's `benches/handler_instructions.rs`, which counts their
//! instructions in process: one source, so both measure the same code.

#![allow(dead_code)] // each includer uses part of it

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use vobiz_webhooks::VobizEvent;

/// (b)'s state: the secret and the ids it has seen.
#[derive(Clone)]
pub struct Naive {
    pub secret: Arc<str>,
    pub seen: Arc<Mutex<HashSet<String>>>,
}

impl Naive {
    pub fn new(secret: &str) -> Self {
        Self {
            secret: secret.into(),
            seen: Arc::default(),
        }
    }
}

/// (b) The handler a Rust user writes today without the crate: `Bytes` extractor, HMAC keyed
/// per request, hex compare, `serde_json::Value`, a `Mutex<HashSet<String>>` of seen ids, then
/// the message text (or the status) read from the `Value`.
pub async fn naive(State(app): State<Naive>, headers: HeaderMap, body: Bytes) -> StatusCode {
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

/// (h)'s handler: takes the typed `VobizEvent` and reads what (b) reads from its `Value`.
pub async fn typed(event: VobizEvent) -> StatusCode {
    let read = match &event {
        VobizEvent::MessageInbound(message) => message.text().map(str::len),
        VobizEvent::MessageStatus(status) => status.status().map(|status| status.as_str().len()),
        _ => None,
    };
    std::hint::black_box(read);
    StatusCode::OK
}
