//! One `vobiz.webhook` span per delivery, with how it ended, and never a secret or a body byte
//! in what the crate logs.

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};

use crate::support::TestEvent;
use axum::body::Body;
use http::{Request, Response};
use tower::{service_fn, Layer, ServiceExt};
use tracing_subscriber::fmt::format::FmtSpan;
use vobiz_webhooks::VobizWebhookLayer;

const SECRET: &str = "tracing-secret-must-never-be-logged";
const BODY_MARKER: &str = "body-text-must-never-be-logged";

/// Everything the subscriber writes, for the test to read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_delivery_is_one_span_and_nothing_secret_is_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let service =
                VobizWebhookLayer::new(SECRET).layer(service_fn(|_request: Request<Body>| async {
                    Ok::<_, Infallible>(Response::new(Body::empty()))
                }));
            let delivered =
                TestEvent::inbound_text(BODY_MARKER).event_id("tracing-delivered-event");
            for _ in 0..2 {
                let _ = service.clone().oneshot(delivered.request(SECRET)).await;
            }
            let forged = TestEvent::inbound_text(BODY_MARKER)
                .event_id("tracing-forged-event")
                .bad_signature();
            let _ = service.clone().oneshot(forged.request(SECRET)).await;
            let unsigned = TestEvent::inbound_text(BODY_MARKER).without_signature();
            let _ = service.oneshot(unsigned.request(SECRET)).await;
        });
    });
    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    let spans: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("vobiz.webhook") && line.contains("close"))
        .collect();
    assert_eq!(spans.len(), 4, "one span per delivery:\n{text}");
    let handled = spans
        .iter()
        .find(|line| line.contains("outcome=\"handled\"") || line.contains("outcome=handled"))
        .unwrap_or_else(|| panic!("no handled span:\n{text}"));
    assert!(handled.contains("tracing-delivered-event"), "{handled}");
    assert!(handled.contains("message.inbound"), "{handled}");
    assert!(handled.contains("status=200"), "{handled}");
    assert!(handled.contains("latency_us="), "{handled}");
    assert!(
        spans.iter().any(|line| line.contains("duplicate")),
        "{text}"
    );
    assert!(
        spans.iter().any(|line| line.contains("signature_mismatch")),
        "{text}"
    );
    assert!(
        spans.iter().any(|line| line.contains("missing_signature")),
        "{text}"
    );
    assert!(!text.contains(SECRET), "the secret was logged:\n{text}");
    assert!(!text.contains(BODY_MARKER), "the body was logged:\n{text}");
}
