//! Per-event registration: dispatch, precedence, fallback, state, errors.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use http::{Request, StatusCode};
use tower::ServiceExt;
use vobiz_webhooks::testing::Fixture;
use vobiz_webhooks::{VerifiedEvent, VobizRouter, VobizWebhookLayer};

use crate::support::{body_text, event, TestEvent};

const SECRET: &str = "router-secret";

/// A signed delivery with a fresh event id (the layer deduplicates repeated ids).
fn delivery(id: &str, event_type: &str) -> Request<Body> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = format!(
        "{id}-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    event(&id, event_type).request(SECRET)
}

type Log = Arc<Mutex<Vec<String>>>;

#[derive(Clone)]
struct AppState {
    log: Log,
}

fn record(log: &Log, who: &str, event: &VerifiedEvent) {
    log.lock()
        .expect("lock")
        .push(format!("{who} {}", event.event_type()));
}

async fn on_message(State(app): State<AppState>, event: VerifiedEvent) {
    record(&app.log, "message", &event);
}
async fn on_status(State(app): State<AppState>, event: VerifiedEvent) {
    record(&app.log, "status", &event);
}
async fn on_connect(State(app): State<AppState>, event: VerifiedEvent) {
    record(&app.log, "connect", &event);
}
async fn on_any_call(State(app): State<AppState>, event: VerifiedEvent) {
    record(&app.log, "any_call", &event);
}

fn events() -> VobizRouter<AppState> {
    VobizRouter::new()
        .on_message(on_message)
        .on_status(on_status)
        .on("call.connect", on_connect)
        .on_call(on_any_call)
}

fn app(router: VobizRouter<AppState>, log: &Log) -> Router {
    Router::new()
        .route(
            "/webhooks/vobiz",
            post(router).layer(VobizWebhookLayer::new(SECRET)),
        )
        .with_state(AppState { log: log.clone() })
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    (response.status(), body_text(response).await)
}

#[tokio::test]
async fn dispatches_each_type_to_its_handler_with_state() {
    let log = Log::default();
    let app = app(events(), &log);
    for event_type in [
        "message.inbound",
        "message.status",
        "call.connect",
        "call.terminate",
        "call.call_recording_available",
    ] {
        let (status, _) = send(&app, delivery("e", event_type)).await;
        assert_eq!(status, StatusCode::OK, "{event_type}");
    }
    assert_eq!(
        *log.lock().expect("lock"),
        [
            "message message.inbound",
            "status message.status",
            "connect call.connect",
            "any_call call.terminate",
            "any_call call.call_recording_available",
        ]
    );
}

#[tokio::test]
async fn specific_call_handler_beats_any_call_whatever_the_order() {
    let log = Log::default();
    let router = VobizRouter::new()
        .on_call(on_any_call)
        .on("call.connect", on_connect);
    let app = app(router, &log);
    send(&app, delivery("e", "call.connect")).await;
    send(&app, delivery("e", "call.terminate")).await;
    assert_eq!(
        *log.lock().expect("lock"),
        ["connect call.connect", "any_call call.terminate"]
    );
}

#[tokio::test]
async fn unmatched_events_go_to_the_fallback() {
    let log = Log::default();
    // Default fallback: 200, handler-less.
    let app_default = app(VobizRouter::new().on_message(on_message), &log);
    let (status, _) = send(&app_default, delivery("e", "contact.updated")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&app_default, delivery("e", "call.connect")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(log.lock().expect("lock").is_empty());

    let fallback = |State(app): State<AppState>, event: VerifiedEvent| async move {
        record(&app.log, "fallback", &event);
        StatusCode::ACCEPTED
    };
    let app_custom = app(
        VobizRouter::new().on_message(on_message).fallback(fallback),
        &log,
    );
    let (status, _) = send(&app_custom, delivery("e", "contact.updated")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = send(&app_custom, delivery("e", "call.terminate")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        *log.lock().expect("lock"),
        ["fallback contact.updated", "fallback call.terminate"]
    );
}

#[tokio::test]
async fn unknown_types_can_have_their_own_handler() {
    let log = Log::default();
    let app = app(VobizRouter::new().on("contact.updated", on_status), &log);
    send(&app, delivery("e", "contact.updated")).await;
    assert_eq!(*log.lock().expect("lock"), ["status contact.updated"]);
}

#[tokio::test]
async fn handler_errors_propagate_as_responses() {
    let failing = || async { (StatusCode::SERVICE_UNAVAILABLE, "database down") };
    let log = Log::default();
    let app = app(VobizRouter::new().on_message(failing), &log);
    let (status, body) = send(&app, delivery("e", "message.inbound")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "database down");
}

#[tokio::test]
async fn stateless_router_is_a_tower_service() {
    let log = Log::default();
    let service = tower::Layer::layer(
        &VobizWebhookLayer::new(SECRET),
        events().with_state::<()>(AppState { log: log.clone() }),
    );
    let response = service
        .oneshot(delivery("e", "call.connect"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(*log.lock().expect("lock"), ["connect call.connect"]);
}

#[tokio::test]
async fn router_without_the_layer_is_500_naming_the_fix() {
    let log = Log::default();
    let app = Router::new()
        .route("/webhooks/vobiz", post(events()))
        .with_state(AppState { log: log.clone() });
    let (status, body) = send(&app, delivery("e", "message.inbound")).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("VobizWebhookLayer"), "{body}");
    assert!(log.lock().expect("lock").is_empty());
}

/// A bundled fixture under a fresh event id, signed, with its `X-Webhook-Event`.
fn fixture(fixture: Fixture) -> Request<Body> {
    TestEvent::fixture(fixture).request(SECRET)
}

const INBOUND_TEXT: Fixture = Fixture::InboundText;
const STATUS_DELIVERED: Fixture = Fixture::StatusDelivered;
const CALL_CONNECT: Fixture = Fixture::CallConnect;

#[tokio::test]
async fn handlers_take_the_narrow_typed_event_of_their_kind() {
    use vobiz_webhooks::{CallEvent, InboundEvent, StatusEvent};
    let log = Log::default();
    let router = VobizRouter::new()
        .on_message(
            |State(app): State<AppState>, msg: InboundEvent| async move {
                let line = format!("text {:?} from {:?}", msg.text(), msg.from());
                app.log.lock().expect("lock").push(line);
            },
        )
        .on_status(|State(app): State<AppState>, st: StatusEvent| async move {
            let line = format!("status {:?} of {:?}", st.status(), st.wamid());
            app.log.lock().expect("lock").push(line);
        })
        .on_call(|State(app): State<AppState>, call: CallEvent| async move {
            let line = format!("call {} {:?}", call.event(), call.sdp().is_some());
            app.log.lock().expect("lock").push(line);
        });
    let app = app(router, &log);
    for body in [INBOUND_TEXT, STATUS_DELIVERED, CALL_CONNECT] {
        let (status, body) = send(&app, fixture(body)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let log = log.lock().expect("lock");
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log[0].starts_with("text Some(") && log[0].contains("from Some("),
        "{}",
        log[0]
    );
    assert!(log[1].starts_with("status Some(Delivered)"), "{}", log[1]);
    assert_eq!(log[2], "call connect true");
}

#[tokio::test]
async fn a_narrow_extractor_for_the_wrong_kind_is_500_with_a_clear_message() {
    use vobiz_webhooks::InboundEvent;
    let log = Log::default();
    // Wrongly registered: an inbound-message handler for every call event.
    let router = VobizRouter::new().on_call(|_msg: InboundEvent| async {});
    let app = app(router, &log);
    let (status, body) = send(&app, fixture(CALL_CONNECT)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body.contains("`InboundEvent`") && body.contains("call.connect"),
        "{body}"
    );
}

#[tokio::test]
async fn a_failed_handler_releases_the_claim_so_the_retry_runs() {
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = runs.clone();
    let router = VobizRouter::new().on_message(move || {
        let counter = counter.clone();
        async move {
            match counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::OK,
            }
        }
    });
    let log = Log::default();
    let app = app(router, &log);
    let retried = event("retry-me", "message.inbound");
    let request = || retried.request(SECRET);
    assert_eq!(
        send(&app, request()).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(send(&app, request()).await.0, StatusCode::OK);
    let response = app.clone().oneshot(request()).await.expect("infallible");
    assert_eq!(response.headers()["x-vobiz-duplicate"], "completed");
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
}
