//! How a user of the crate tests their own app with the test kit (feature `testing`).
//!
//! Everything below is what you would write in your own `tests/webhooks.rs`: an app with a
//! `VobizRouter` and shared `State`, driven with signed requests from
//! `vobiz_webhooks::testing::TestEvent`, no Vobiz account, no network.
//!
//! ```toml
//! [dev-dependencies]
//! vobiz-webhooks = { version = "0.1", features = ["testing"] }
//! tokio = { version = "1", features = ["macros", "rt"] }
//! tower = { version = "0.5", features = ["util"] }
//! http-body-util = "0.1"
//! ```

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;
use vobiz_webhooks::event::{InboundEvent, StatusKind};
use vobiz_webhooks::testing::{Fixture, TestEvent};
use vobiz_webhooks::{VobizEvent, VobizRouter, VobizWebhookLayer};

// ---- the app under test (in your crate, this lives in src/) ----

/// What the handlers saw, shared through axum `State`.
#[derive(Clone, Default)]
struct AppState {
    seen: Arc<Mutex<Vec<String>>>,
}

impl AppState {
    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn on_message(State(app): State<AppState>, event: VobizEvent) {
    let VobizEvent::MessageInbound(msg) = event else {
        return;
    };
    app.seen.lock().expect("lock").push(describe(&msg));
}

fn describe(msg: &InboundEvent) -> String {
    let from = msg.from().unwrap_or("?");
    match msg.text() {
        Some(text) => format!("text from {from}: {text}"),
        None => format!("{} from {from}", msg.kind().unwrap_or("?")),
    }
}

async fn on_status(State(app): State<AppState>, event: VobizEvent) {
    if let VobizEvent::MessageStatus(status) = event {
        let line = format!(
            "status {} {}",
            status.wamid().unwrap_or("?"),
            status.status().map_or("?", StatusKind::as_str)
        );
        app.seen.lock().expect("lock").push(line);
    }
}

async fn on_call(State(app): State<AppState>, event: VobizEvent) {
    if let VobizEvent::Call(call) = event {
        app.seen
            .lock()
            .expect("lock")
            .push(format!("call {}", call.event()));
    }
}

fn app(secret: &str, state: AppState) -> Router {
    let events = VobizRouter::new()
        .on_message(on_message)
        .on_status(on_status)
        .on_call(on_call);
    Router::new()
        .route(
            "/webhooks/vobiz",
            post(events).layer(VobizWebhookLayer::new(secret)),
        )
        .with_state(state)
}

// ---- the tests ----

const SECRET: &str = "test-secret";

/// Sends one request through the app; returns status, duplicate marker and body.
async fn send(app: &Router, request: axum::http::Request<axum::body::Body>) -> Reply {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let duplicate = response.headers().contains_key("x-vobiz-duplicate");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Reply {
        status,
        duplicate,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    duplicate: bool,
    body: String,
}

#[tokio::test]
async fn the_handler_sees_the_text() {
    let state = AppState::default();
    let app = app(SECRET, state.clone());

    let event = TestEvent::inbound_text("Hi, is my order shipped?").from("918888888888");
    let reply = send(&app, event.request(SECRET)).await;

    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert!(!reply.duplicate);
    assert_eq!(
        state.seen(),
        ["text from 918888888888: Hi, is my order shipped?"]
    );
}

#[tokio::test]
async fn a_resent_event_id_is_a_duplicate_and_not_handled_again() {
    let state = AppState::default();
    let app = app(SECRET, state.clone());
    let event = TestEvent::status("wamid.ABC", "delivered");

    let first = send(&app, event.request(SECRET)).await;
    // `request` can be called again: the same body with the same event_id, as a Vobiz retry.
    let second = send(&app, event.request(SECRET)).await;
    // A new event that reuses the id on purpose is a duplicate too.
    let third = send(
        &app,
        TestEvent::status("wamid.ABC", "read")
            .event_id(event.id())
            .request(SECRET),
    )
    .await;

    assert_eq!(first.status, StatusCode::OK);
    assert!(!first.duplicate);
    for reply in [second, third] {
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.duplicate, "{reply:?}");
    }
    assert_eq!(state.seen(), ["status wamid.ABC delivered"]);
}

#[tokio::test]
async fn a_broken_signature_is_401_and_never_reaches_the_handler() {
    let state = AppState::default();
    let app = app(SECRET, state.clone());
    let event = TestEvent::inbound_text("forged");

    for request in [
        event.clone().bad_signature().request(SECRET),
        event.clone().without_signature().request(SECRET),
        event.request("some-other-secret"),
    ] {
        let reply = send(&app, request).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    }
    assert!(state.seen().is_empty());
}

#[tokio::test]
async fn a_mismatched_event_header_is_400() {
    let state = AppState::default();
    let app = app(SECRET, state.clone());

    let event =
        TestEvent::inbound_text("hi").event_header(HeaderValue::from_static("call.connect"));
    let reply = send(&app, event.request(SECRET)).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
    assert!(reply.body.contains("X-Webhook-Event"), "{}", reply.body);
    assert!(state.seen().is_empty());
}

#[tokio::test]
async fn every_bundled_fixture_reaches_its_handler() {
    let state = AppState::default();
    let app = app(SECRET, state.clone());

    for fixture in Fixture::ALL {
        let reply = send(&app, TestEvent::fixture(*fixture).request(SECRET)).await;
        assert_eq!(reply.status, StatusCode::OK, "{fixture}: {reply:?}");
    }

    let seen = state.seen();
    assert_eq!(seen.len(), Fixture::ALL.len());
    assert!(
        seen.contains(&"image from 918888888888".to_owned()),
        "{seen:?}"
    );
    assert!(seen.contains(&"call connect".to_owned()), "{seen:?}");
    assert!(
        seen.iter().any(|line| line.ends_with(" failed")),
        "{seen:?}"
    );
}
