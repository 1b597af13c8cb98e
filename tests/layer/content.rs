//! Content dedup on the Vobiz leg (`dedup_on_content`): one WhatsApp update under two
//! `event_id`s runs the handler once; off by default.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::json;
use tower::ServiceExt;
use vobiz_webhooks::testing::TestEvent;
use vobiz_webhooks::{VerifiedEvent, VobizWebhookLayer};

const SECRET: &str = "content-secret";

/// A route whose handler counts its runs and fails while `failing` is set.
fn app(layer: VobizWebhookLayer) -> (Router, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicUsize::new(0));
    let (count, fail) = (runs.clone(), failing.clone());
    let handler = move |_: VerifiedEvent| {
        let (count, fail) = (count.clone(), fail.clone());
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            if fail.load(Ordering::SeqCst) > 0 {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }
    };
    let app = Router::new().route("/webhooks/vobiz", post(handler).layer(layer));
    (app, runs, failing)
}

async fn send(app: &Router, event: &TestEvent) -> http::Response<axum::body::Body> {
    app.clone()
        .oneshot(event.request(SECRET))
        .await
        .expect("infallible")
}

#[tokio::test]
async fn off_by_default_two_ids_of_one_update_run_twice() {
    let (app, runs, _) = app(VobizWebhookLayer::new(SECRET));
    for _ in 0..2 {
        let event = TestEvent::status("wamid.C1", "delivered");
        assert_eq!(send(&app, &event).await.status(), StatusCode::OK);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn on_one_update_under_two_ids_runs_once() {
    let (app, runs, _) = app(VobizWebhookLayer::new(SECRET).dedup_on_content(true));
    let first = TestEvent::inbound_text("hi");
    assert_eq!(send(&app, &first).await.status(), StatusCode::OK);
    // The same bytes of payload under a new event_id (e.g. the other subscription of a rotation).
    let again = first
        .clone()
        .event_id(vobiz_webhooks::testing::new_event_id());
    let response = send(&app, &again).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-vobiz-duplicate"], "completed");
    // And that id is now done itself.
    assert_eq!(send(&app, &again).await.status(), StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Another status of the same message is another update.
    let status = TestEvent::status("wamid.C2", "sent");
    let later = TestEvent::status("wamid.C2", "read");
    assert_eq!(send(&app, &status).await.status(), StatusCode::OK);
    assert_eq!(send(&app, &later).await.status(), StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_failed_run_releases_the_content_so_another_id_runs_it() {
    let (app, runs, failing) = app(VobizWebhookLayer::new(SECRET).dedup_on_content(true));
    failing.store(1, Ordering::SeqCst);
    let event = TestEvent::status("wamid.C3", "delivered");
    assert_eq!(
        send(&app, &event).await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    failing.store(0, Ordering::SeqCst);
    let other = TestEvent::status("wamid.C3", "delivered");
    assert_eq!(send(&app, &other).await.status(), StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_update_in_flight_under_another_id_is_409() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let (wait, count) = (gate.clone(), runs.clone());
    let handler = move || {
        let (wait, count) = (wait.clone(), count.clone());
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            let _permit = wait.acquire().await.expect("open");
        }
    };
    let layer = VobizWebhookLayer::new(SECRET).dedup_on_content(true);
    let app = Router::new().route("/webhooks/vobiz", post(handler).layer(layer));
    let first = TestEvent::status("wamid.C4", "read");
    let running = tokio::spawn(app.clone().oneshot(first.request(SECRET)));
    assert!(
        crate::support::eventually(Duration::from_secs(5), || runs.load(Ordering::SeqCst) == 1)
            .await
    );
    let second = TestEvent::status("wamid.C4", "read");
    let response = send(&app, &second).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    gate.add_permits(1);
    assert_eq!(
        running.await.expect("task").expect("infallible").status(),
        StatusCode::OK
    );
    // Released by the 409, so its retry is a duplicate of the finished one.
    let retry = send(&app, &second).await;
    assert_eq!(retry.headers()["x-vobiz-duplicate"], "completed");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn payloads_without_an_item_id_dedup_on_event_id_only() {
    let (app, runs, _) = app(VobizWebhookLayer::new(SECRET).dedup_on_content(true));
    for _ in 0..2 {
        let event = TestEvent::raw("account.updated", json!({"event": "VERIFIED"}));
        assert_eq!(send(&app, &event).await.status(), StatusCode::OK);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}
