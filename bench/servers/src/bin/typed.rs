//! (h) The server of (g), with a handler that takes the typed `VobizEvent` and reads what the
//! naive handler (b) reads from its `serde_json::Value`: the message text, or the status. So
//! (h)/(b) compares a typed handler with the naive one, like for like.
//!
//! `VOBIZ_WEBHOOK_SECRET=... BENCH_ADDR=127.0.0.1:39108 typed`

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use vobiz_webhooks::{VobizEvent, VobizWebhookLayer};

async fn handle(event: VobizEvent) -> StatusCode {
    let read = match &event {
        VobizEvent::MessageInbound(message) => message.text().map(str::len),
        VobizEvent::MessageStatus(status) => status.status().map(|status| status.as_str().len()),
        _ => None,
    };
    std::hint::black_box(read);
    StatusCode::OK
}

#[tokio::main]
async fn main() {
    let secret = std::env::var("VOBIZ_WEBHOOK_SECRET").expect("VOBIZ_WEBHOOK_SECRET");
    let addr = std::env::var("BENCH_ADDR").unwrap_or_else(|_| "127.0.0.1:39108".to_owned());
    let layer = VobizWebhookLayer::new(secret);
    let app = Router::new().route("/webhooks/vobiz", post(handle).layer(layer));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
