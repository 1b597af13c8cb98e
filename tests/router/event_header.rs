//! Routing integrity (RELIABILITY.md case 5). `X-Webhook-Event` is not signed: when it disagrees with
//! the signed body the delivery is refused 400 before any handler; unknown types reach the
//! `VobizRouter` fallback.

use std::sync::{Arc, Mutex};

use crate::support::{event, figure};
use axum::body::Body;
use axum::routing::post;
use axum::Router;
use http::{HeaderValue, Request, StatusCode};
use tower::ServiceExt;
use vobiz_webhooks::{VerifiedEvent, VobizRouter, VobizWebhookLayer};

const SECRET: &str = "routing-secret";

type Log = Arc<Mutex<Vec<String>>>;

fn app(log: &Log) -> Router {
    let entry = |who: &'static str, log: Log| {
        move |event: VerifiedEvent| {
            let log = log.clone();
            async move {
                log.lock()
                    .expect("lock")
                    .push(format!("{who} {}", event.event_type()));
            }
        }
    };
    let events = VobizRouter::new()
        .on_message(entry("message", log.clone()))
        .on_status(entry("status", log.clone()))
        .on("call.connect", entry("connect", log.clone()))
        .on_call(entry("call", log.clone()))
        .fallback(entry("fallback", log.clone()));
    Router::new().route(
        "/webhooks/vobiz",
        post(events).layer(VobizWebhookLayer::new(SECRET)),
    )
}

fn request(id: &str, body_type: &str, headers: &[&[u8]]) -> Request<Body> {
    let mut request = event(id, body_type).without_event_header().request(SECRET);
    for header in headers {
        request.headers_mut().append(
            "x-webhook-event",
            HeaderValue::from_bytes(header).expect("header"),
        );
    }
    request
}

#[tokio::test]
async fn routing_integrity() {
    let log = Log::default();
    let app = app(&log);
    let mismatches: Vec<(&str, Vec<&[u8]>)> = vec![
        ("message.inbound", vec![b"message.status"]),
        ("message.status", vec![b"message.inbound"]),
        ("call.connect", vec![b"call.terminate"]),
        ("call.terminate", vec![b"call.connect"]),
        ("message.inbound", vec![b"MESSAGE.INBOUND"]),
        ("message.inbound", vec![b"message.inbound "]),
        ("message.inbound", vec![b""]),
        (
            "message.inbound",
            vec![b"message.inbound", b"message.status"],
        ),
        (
            "message.inbound",
            vec![b"message.status", b"message.inbound"],
        ),
        ("contact.updated", vec![b"message.inbound"]),
        ("message.inbound", vec![b"contact.updated"]),
        ("message.inbound", vec![b"message.inbound\xc3\xa4"]),
    ];
    for (i, (body_type, headers)) in mismatches.iter().enumerate() {
        let response = app
            .clone()
            .oneshot(request(&format!("mismatch-{i}"), body_type, headers))
            .await
            .expect("infallible");
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{body_type} {headers:?}"
        );
    }
    assert!(
        log.lock().expect("lock").is_empty(),
        "a handler ran on a mismatch"
    );

    let routed: Vec<(&str, &str)> = vec![
        ("message.inbound", "message message.inbound"),
        ("message.status", "status message.status"),
        ("call.connect", "connect call.connect"),
        ("call.terminate", "call call.terminate"),
        ("call.some_future_event", "call call.some_future_event"),
        ("contact.updated", "fallback contact.updated"),
        ("message.delivered", "fallback message.delivered"),
        ("", "fallback "),
    ];
    for (i, (body_type, _)) in routed.iter().enumerate() {
        let with_header: &[&[u8]] = &[body_type.as_bytes()];
        let headers = if i % 2 == 0 { with_header } else { &[] };
        let response = app
            .clone()
            .oneshot(request(&format!("routed-{i}"), body_type, headers))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{body_type}");
    }
    let expected: Vec<String> = routed.iter().map(|(_, who)| (*who).to_owned()).collect();
    assert_eq!(*log.lock().expect("lock"), expected);
    figure(
        "05 routing",
        format!(
            "{} header/body disagreements → 400, 0 handler calls; {} agreeing or header-less deliveries routed right, {} unknown types to the fallback",
            mismatches.len(),
            routed.len(),
            3
        ),
    );
}
