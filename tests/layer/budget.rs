//! The budget for bodies not yet verified: shared by every request and clone, reserved before a
//! body is read, given back once the signature is checked or the request is gone.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::{envelope, signed};
use axum::body::Body;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::{Request, Response, StatusCode};
use tower::{service_fn, Layer, ServiceExt};
use vobiz_webhooks::{Rejection, VobizWebhookLayer};

const SECRET: &str = "budget-secret";
const BIG: usize = 40 * 1024;

/// A request declaring `len` bytes that sends the first `sent` of them and then stalls for
/// ever, as a flood's client does; `polled` turns true once the layer reads it.
fn stalled(len: usize, sent: usize, polled: Arc<AtomicBool>) -> Request<Body> {
    let first = stream::once(async move {
        polled.store(true, Ordering::SeqCst);
        Ok::<_, Infallible>(Bytes::from(vec![b' '; sent]))
    });
    let body = Body::from_stream(first.chain(stream::pending()));
    Request::post("/webhooks/vobiz")
        .header("x-webhook-signature", "ab".repeat(32))
        .header("content-length", len)
        .body(body)
        .expect("request")
}

/// A signed delivery padded (with whitespace JSON allows) to exactly `len` bytes.
fn signed_of_len(id: &str, len: usize) -> Request<Body> {
    let mut body = envelope(id, "message.inbound").to_vec();
    assert!(
        body.len() <= len,
        "the envelope alone is {} bytes",
        body.len()
    );
    body.resize(len, b' ');
    signed(SECRET, body)
}

fn ok_service(
    calls: Arc<AtomicUsize>,
) -> impl tower::Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Send + 'static,
> + Clone
       + Send
       + 'static {
    service_fn(move |_request: Request<Body>| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }
    })
}

/// Starts `request` through `service` in a task and waits until its body was first read.
async fn hold<S>(
    service: S,
    request: Request<Body>,
    polled: &AtomicBool,
) -> tokio::task::JoinHandle<()>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send,
{
    let task = tokio::spawn(async move {
        let _ = service.oneshot(request).await;
    });
    while !polled.load(Ordering::SeqCst) {
        tokio::task::yield_now().await;
    }
    task
}

#[tokio::test]
async fn a_body_that_does_not_fit_is_refused_503_before_it_is_read_and_small_ones_still_fit() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = VobizWebhookLayer::new(SECRET)
        .body_budget(2 * BIG + BIG / 2)
        .layer(ok_service(calls.clone()));

    // Two stalled uploads hold 2 × BIG of the 2.5 × BIG budget.
    let (a, b) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let first = hold(service.clone(), stalled(BIG, 100, a.clone()), &a).await;
    let second = hold(service.clone(), stalled(BIG, 100, b.clone()), &b).await;

    // A third large body does not fit: refused at once, its body never polled.
    let polled = Arc::new(AtomicBool::new(false));
    let response = service
        .clone()
        .oneshot(stalled(BIG, 100, polled.clone()))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "5");
    assert!(matches!(
        response.extensions().get::<Rejection>(),
        Some(Rejection::BodyBudgetExhausted { retry_after: 5 })
    ));
    assert!(!polled.load(Ordering::SeqCst), "the refused body was read");

    // A delivery of a webhook's size fits in what is left, and is handled.
    let small = service
        .clone()
        .oneshot(signed_of_len("small-fits", 2_000))
        .await
        .expect("infallible");
    assert_eq!(small.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A stalled client that goes away gives its room back: the large body fits again.
    first.abort();
    let _ = first.await;
    let large = service
        .clone()
        .oneshot(signed_of_len("large-fits-again", BIG))
        .await
        .expect("infallible");
    assert_eq!(large.status(), StatusCode::OK);
    second.abort();
}

#[tokio::test]
async fn every_clone_of_the_layer_shares_one_budget() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = VobizWebhookLayer::new(SECRET).body_budget(BIG);
    let one = layer.clone().layer(ok_service(calls.clone()));
    let other = layer.layer(ok_service(calls.clone()));

    let polled = Arc::new(AtomicBool::new(false));
    let held = hold(one, stalled(BIG, 10, polled.clone()), &polled).await;
    let response = other
        .oneshot(signed_of_len("other-clone", 1_000))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    held.abort();
}

#[tokio::test]
async fn a_verified_body_no_longer_counts_while_its_handler_runs() {
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let slow = {
        let (entered, release) = (entered.clone(), release.clone());
        service_fn(move |_request: Request<Body>| {
            let (entered, release) = (entered.clone(), release.clone());
            async move {
                entered.notify_one();
                release.acquire().await.expect("open").forget();
                Ok::<_, Infallible>(Response::new(Body::empty()))
            }
        })
    };
    let service = VobizWebhookLayer::new(SECRET).body_budget(BIG).layer(slow);

    // The first delivery is verified and its handler waits: its body is signed, so it no
    // longer holds the budget, and a second one of the same size is received meanwhile.
    let first = tokio::spawn(
        service
            .clone()
            .oneshot(signed_of_len("slow-handler-1", BIG)),
    );
    entered.notified().await;
    let second = tokio::spawn(
        service
            .clone()
            .oneshot(signed_of_len("slow-handler-2", BIG)),
    );
    entered.notified().await;
    release.add_permits(2);
    for task in [first, second] {
        let response = task.await.expect("joined").expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_refused_signature_gives_the_room_back() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = VobizWebhookLayer::new(SECRET)
        .body_budget(BIG)
        .layer(ok_service(calls.clone()));
    for i in 0..20 {
        let forged = signed(
            "not-the-secret",
            envelope(&format!("forged-{i}"), "message.inbound"),
        );
        let response = service.clone().oneshot(forged).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = service
        .oneshot(signed_of_len("after-forgeries", BIG))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_larger_than_the_whole_budget_is_received_when_nothing_else_is() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = VobizWebhookLayer::new(SECRET)
        .body_budget(1_000)
        .layer(ok_service(calls.clone()));
    let response = service
        .oneshot(signed_of_len("larger-than-the-budget", 5_000))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_a_budget_only_the_body_limit_bounds_a_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let service = VobizWebhookLayer::new(SECRET)
        .body_budget(None)
        .layer(ok_service(calls.clone()));
    let mut held = Vec::new();
    for _ in 0..4 {
        let polled = Arc::new(AtomicBool::new(false));
        held.push(hold(service.clone(), stalled(BIG, 10, polled.clone()), &polled).await);
    }
    let response = service
        .oneshot(signed_of_len("no-budget", BIG))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    for task in held {
        task.abort();
    }
}
