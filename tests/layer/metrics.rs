//! The layer's metrics (feature `metrics`): one count per delivery by outcome and reason, the
//! handler's and the store's time.

use std::convert::Infallible;

use crate::support::{event, TestEvent};
use axum::body::Body;
use http::{Request, Response, StatusCode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use tower::{service_fn, Layer, ServiceExt};
use vobiz_webhooks::VobizWebhookLayer;

const SECRET: &str = "metrics-secret";

#[test]
fn every_delivery_is_counted_by_outcome_and_reason() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A recorder of this thread only, so other tests running meanwhile do not count here; the
    // current-thread runtime keeps every delivery on this thread.
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let service = VobizWebhookLayer::new(SECRET).layer(service_fn(
                |request: Request<Body>| async move {
                    let fail = request.uri().path() == "/fail";
                    let status = if fail { 500 } else { 200 };
                    let mut response = Response::new(Body::empty());
                    *response.status_mut() = StatusCode::from_u16(status).expect("status");
                    Ok::<_, Infallible>(response)
                },
            ));
            let send = |request| {
                let service = service.clone();
                async move { service.oneshot(request).await.expect("infallible").status() }
            };
            let delivered = event("metrics-handled", "message.inbound");
            assert_eq!(send(delivered.request(SECRET)).await, 200);
            assert_eq!(send(delivered.request(SECRET)).await, 200, "the duplicate");
            let forged = event("metrics-forged", "message.inbound").bad_signature();
            assert_eq!(send(forged.request(SECRET)).await, 401);
            let unsigned = event("metrics-unsigned", "message.inbound").without_signature();
            assert_eq!(send(unsigned.request(SECRET)).await, 401);
            let failing: TestEvent = event("metrics-failing", "message.inbound").uri("/fail");
            assert_eq!(send(failing.request(SECRET)).await, 500);
        });
    });

    let snapshot = snapshotter.snapshot().into_vec();
    let count = |outcome: &str, reason: Option<&str>| -> u64 {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| {
                key.kind() == MetricKind::Counter
                    && key.key().name() == "vobiz_webhook_deliveries_total"
                    && key
                        .key()
                        .labels()
                        .any(|label| label.key() == "outcome" && label.value() == outcome)
                    && reason.is_none_or(|reason| {
                        key.key()
                            .labels()
                            .any(|label| label.key() == "reason" && label.value() == reason)
                    })
            })
            .map(|(_, _, _, value)| match value {
                DebugValue::Counter(count) => *count,
                _ => 0,
            })
            .sum()
    };
    assert_eq!(count("handled", None), 1);
    assert_eq!(count("duplicate", None), 1);
    assert_eq!(count("rejected", Some("signature_mismatch")), 1);
    assert_eq!(count("rejected", Some("missing_signature")), 1);
    assert_eq!(count("failed", None), 1);
    assert_eq!(count("rejected", None), 2);

    let samples = |name: &str| -> usize {
        snapshot
            .iter()
            .filter(|(key, _, _, _)| key.key().name() == name)
            .map(|(_, _, _, value)| match value {
                DebugValue::Histogram(samples) => samples.len(),
                _ => 0,
            })
            .sum()
    };
    // Two handler runs; three claims (handled, duplicate, failed).
    assert_eq!(samples("vobiz_webhook_handler_seconds"), 2);
    assert_eq!(samples("vobiz_webhook_store_seconds"), 3);
}
