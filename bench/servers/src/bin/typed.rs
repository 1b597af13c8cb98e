//! (h) The server of (g), with a handler that takes the typed `VobizEvent` and reads what the
//! naive handler (b) reads from its `serde_json::Value`: the message text, or the status. So
//! (h)/(b) compares a typed handler with the naive one, like for like (`src/handlers.rs`).
//!
//! `VOBIZ_WEBHOOK_SECRET=... BENCH_ADDR=127.0.0.1:39108 typed`

use axum::routing::post;
use axum::Router;
use vobiz_webhooks::VobizWebhookLayer;

#[path = "../handlers.rs"]
mod handlers;

#[tokio::main]
async fn main() {
    let secret = std::env::var("VOBIZ_WEBHOOK_SECRET").expect("VOBIZ_WEBHOOK_SECRET");
    let addr = std::env::var("BENCH_ADDR").unwrap_or_else(|_| "127.0.0.1:39108".to_owned());
    let layer = VobizWebhookLayer::new(secret);
    let app = Router::new().route("/webhooks/vobiz", post(handlers::typed).layer(layer));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
