//! (b) The handler a Rust user writes today without the crate: `Bytes` extractor, HMAC keyed
//! per request, hex compare, `serde_json::Value`, a `Mutex<HashSet<String>>` of seen ids, then
//! the message text (or the status) read from the `Value` (`src/handlers.rs`).
//!
//! `VOBIZ_WEBHOOK_SECRET=... BENCH_ADDR=127.0.0.1:39102 naive`

use axum::routing::post;
use axum::Router;

#[path = "../handlers.rs"]
mod handlers;

#[tokio::main]
async fn main() {
    let secret = std::env::var("VOBIZ_WEBHOOK_SECRET").expect("VOBIZ_WEBHOOK_SECRET");
    let addr = std::env::var("BENCH_ADDR").unwrap_or_else(|_| "127.0.0.1:39102".to_owned());
    let app = Router::new()
        .route("/webhooks/vobiz", post(handlers::naive))
        .with_state(handlers::Naive::new(&secret));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
