//! (g) The bare server of (a) with `VobizWebhookLayer` (in-process `MemoryStore`) in front of a
//! handler that takes the verified record and answers 200: what the layer alone costs under
//! load, with nothing of the example server's own work (typed payload, stdout line, timeouts).
//!
//! `VOBIZ_WEBHOOK_SECRET=... BENCH_ADDR=127.0.0.1:39107 layer`

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use vobiz_webhooks::{VerifiedEvent, VobizWebhookLayer};

async fn handle(event: VerifiedEvent) -> StatusCode {
    std::hint::black_box(event.event_id());
    StatusCode::OK
}

#[tokio::main]
async fn main() {
    let secret = std::env::var("VOBIZ_WEBHOOK_SECRET").expect("VOBIZ_WEBHOOK_SECRET");
    let addr = std::env::var("BENCH_ADDR").unwrap_or_else(|_| "127.0.0.1:39107".to_owned());
    let layer = VobizWebhookLayer::new(secret);
    let app = Router::new().route("/webhooks/vobiz", post(handle).layer(layer));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
