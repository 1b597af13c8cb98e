//! One handler per event type with `VobizRouter`: the README's example as a program CI builds.
//!
//! ```sh
//! VOBIZ_WEBHOOK_SECRET=your-shared-secret cargo run --example router
//! ```
//!
//! Listens on `VOBIZ_ADDR` (default `127.0.0.1:3000`), `POST /webhooks/vobiz`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use vobiz_webhooks::{
    CallEvent, InboundEvent, StatusEvent, VerifiedEvent, VobizRouter, VobizWebhookLayer,
};

/// The app's own state: handlers reach it through `State`.
#[derive(Clone, Default)]
struct App {
    handled: Arc<AtomicU64>,
}

async fn on_message(State(app): State<App>, msg: InboundEvent) {
    app.handled.fetch_add(1, Ordering::Relaxed);
    println!("message from {:?}: {:?}", msg.from(), msg.text());
}

async fn on_status(st: StatusEvent) {
    println!(
        "status {:?} of {:?} (error {:?})",
        st.status(),
        st.wamid(),
        st.error()
    );
}

async fn on_connect(call: CallEvent) {
    println!(
        "call {:?} offers SDP: {}",
        call.call_id(),
        call.sdp().is_some()
    );
}

async fn on_any_call(call: CallEvent) {
    println!("call.{} for {:?}", call.event(), call.call_id());
}

async fn on_other(meta: VerifiedEvent) {
    println!(
        "{} {} (no handler of its own)",
        meta.event_type(),
        meta.event_id()
    );
}

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(secret) = std::env::var("VOBIZ_WEBHOOK_SECRET") else {
        eprintln!("error: VOBIZ_WEBHOOK_SECRET is not set");
        return ExitCode::FAILURE;
    };
    let layer = match VobizWebhookLayer::try_new(secret) {
        Ok(layer) => layer,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };

    let events = VobizRouter::new()
        .on_message(on_message) // message.inbound
        .on_status(on_status) // message.status
        .on("call.connect", on_connect) // one call event: beats on_call
        .on_call(on_any_call) // every other call.*
        .fallback(on_other); // anything else (default: 200, logged)

    let app = Router::new()
        .route("/webhooks/vobiz", post(events).layer(layer))
        .with_state(App::default());

    let addr = std::env::var("VOBIZ_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("listening on http://{addr}/webhooks/vobiz");
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
