//! (a) The floor of an axum server: a handler that takes the body as `Bytes` and answers 200.
//!
//! `BENCH_ADDR=127.0.0.1:39101 bare`

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;

async fn handle(_body: Bytes) -> StatusCode {
    StatusCode::OK
}

#[tokio::main]
async fn main() {
    let addr = std::env::var("BENCH_ADDR").unwrap_or_else(|_| "127.0.0.1:39101".to_owned());
    let app = Router::new().route("/webhooks/vobiz", post(handle));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
