//! Every refusal of a Meta POST, with its status, and the handler never running for it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use http::Request;
use http_body_util::StreamBody;
use vobiz_webhooks::meta::{sign, MetaRejection, MetaWebhookLayer};
use vobiz_webhooks::testing::MetaPost;
use vobiz_webhooks::{Claim, ClaimToken, DedupStore, EventKey, StoreError, StoreErrorKind};

use super::{app, message, notification, send, Seen, SECRET};

fn post() -> MetaPost {
    notification(&[message("wamid.rej", "x")], &[])
}

/// Asserts `response` is the refusal `reason` with `status`, and that no handler ran.
async fn assert_refused(
    response: http::Response<Body>,
    seen: &Seen,
    status: StatusCode,
    reason: &str,
) {
    assert_eq!(response.status(), status, "{reason}");
    let rejection = response
        .extensions()
        .get::<MetaRejection>()
        .cloned()
        .expect("the rejection in the extensions");
    assert_eq!(rejection.reason(), reason);
    assert_eq!(rejection.status(), status);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    let text = crate::support::body_text(response).await;
    assert_eq!(text, rejection.to_string());
    assert!(!text.contains(SECRET));
    assert!(seen.calls().is_empty(), "{reason}: the handler ran");
}

#[tokio::test]
async fn signature_refusals_are_401() {
    let seen = Seen::default();
    let app = app(MetaWebhookLayer::new(SECRET), &seen);
    let good = sign(SECRET, &post().body_bytes());
    let hex = &good["sha256=".len()..];
    let cases: Vec<(MetaPost, &str)> = vec![
        (post().without_signature(), "missing_signature"),
        (
            post().signature(HeaderValue::from_str(hex).expect("hv")),
            "malformed_signature",
        ),
        (
            post().signature(HeaderValue::from_static("sha256=")),
            "malformed_signature",
        ),
        (
            post().signature(HeaderValue::from_str(&good[..good.len() - 1]).expect("hv")),
            "malformed_signature",
        ),
        (
            post().signature(HeaderValue::from_str(&format!("{good}0")).expect("hv")),
            "malformed_signature",
        ),
        (
            post().signature(
                HeaderValue::from_str(&format!("sha256={}", "g".repeat(64))).expect("hv"),
            ),
            "malformed_signature",
        ),
        (
            post().signature(HeaderValue::from_str(&format!("sha1={hex}")).expect("hv")),
            "malformed_signature",
        ),
        (post().bad_signature(), "signature_mismatch"),
    ];
    for (post, reason) in cases {
        let response = send(&app, &post).await;
        assert_refused(response, &seen, StatusCode::UNAUTHORIZED, reason).await;
    }
    // Signed with another app's secret.
    let response = tower::ServiceExt::oneshot(app.clone(), post().request("another-app"))
        .await
        .expect("infallible");
    assert_refused(
        response,
        &seen,
        StatusCode::UNAUTHORIZED,
        "signature_mismatch",
    )
    .await;
    // Twice.
    let mut request = post().request(SECRET);
    let value = request.headers()["x-hub-signature-256"].clone();
    request.headers_mut().append("x-hub-signature-256", value);
    let response = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .expect("infallible");
    assert_refused(
        response,
        &seen,
        StatusCode::UNAUTHORIZED,
        "malformed_signature",
    )
    .await;
    // Upper-case hex is accepted.
    let upper = format!("sha256={}", hex.to_uppercase());
    let response = send(
        &app,
        &post().signature(HeaderValue::from_str(&upper).expect("hv")),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_json_object_is_400() {
    let seen = Seen::default();
    let app = app(MetaWebhookLayer::new(SECRET), &seen);
    for body in [
        &b"[]"[..],
        b"not json",
        b"\"text\"",
        b"{\"entry\":",
        b"\xff\xfe",
    ] {
        let response = send(&app, &MetaPost::new(Bytes::from_static(body))).await;
        assert_refused(response, &seen, StatusCode::BAD_REQUEST, "bad_notification").await;
    }
    // An object of another shape is a notification with nothing to handle, or an unknown item.
    let response = send(&app, &MetaPost::new(r#"{"object":"page"}"#)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(seen.calls().is_empty());
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_declared_or_streamed() {
    let seen = Seen::default();
    let app = app(MetaWebhookLayer::new(SECRET).body_limit(64), &seen);
    let response = send(&app, &post()).await;
    assert_refused(response, &seen, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;

    let body = post().body_bytes();
    let chunks: Vec<Result<http_body::Frame<Bytes>, Infallible>> = body
        .chunks(16)
        .map(|chunk| Ok(http_body::Frame::data(Bytes::copy_from_slice(chunk))))
        .collect();
    let request = Request::post("/webhooks/meta")
        .header("x-hub-signature-256", sign(SECRET, &body))
        .body(Body::new(StreamBody::new(stream::iter(chunks))))
        .expect("request");
    let response = tower::ServiceExt::oneshot(app, request)
        .await
        .expect("infallible");
    assert_refused(response, &seen, StatusCode::PAYLOAD_TOO_LARGE, "too_large").await;
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_ends_is_408_and_a_broken_one_400() {
    let seen = Seen::default();
    let app = app(
        MetaWebhookLayer::new(SECRET).body_timeout(Duration::from_secs(1)),
        &seen,
    );
    let body = post().body_bytes();
    let first = Bytes::copy_from_slice(&body[..10]);
    let stalled = stream::once(async move { Ok::<_, Infallible>(http_body::Frame::data(first)) })
        .chain(stream::pending());
    let request = Request::post("/webhooks/meta")
        .header("x-hub-signature-256", sign(SECRET, &body))
        .body(Body::new(StreamBody::new(stalled)))
        .expect("request");
    let response = tower::ServiceExt::oneshot(app.clone(), request)
        .await
        .expect("infallible");
    assert_refused(response, &seen, StatusCode::REQUEST_TIMEOUT, "body_timeout").await;

    let broken = stream::iter([Err::<http_body::Frame<Bytes>, _>(std::io::Error::other(
        "reset",
    ))]);
    let request = Request::post("/webhooks/meta")
        .header("x-hub-signature-256", sign(SECRET, &body))
        .body(Body::new(StreamBody::new(broken)))
        .expect("request");
    let response = tower::ServiceExt::oneshot(app, request)
        .await
        .expect("infallible");
    assert_refused(response, &seen, StatusCode::BAD_REQUEST, "body_read_failed").await;
}

#[tokio::test]
async fn a_full_body_budget_is_503_before_the_body_is_read() {
    let seen = Seen::default();
    let app = app(MetaWebhookLayer::new(SECRET).body_budget(0), &seen);
    let response = send(&app, &post()).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_refused(
        response,
        &seen,
        StatusCode::SERVICE_UNAVAILABLE,
        "body_budget",
    )
    .await;
}

/// A store that is down.
#[derive(Clone, Copy, Debug)]
struct DownStore;

impl DedupStore for DownStore {
    async fn claim(&self, _key: &EventKey, _lease: Duration) -> Result<Claim, StoreError> {
        Err(StoreError::from_kind(StoreErrorKind::Unavailable))
    }

    async fn complete(
        &self,
        _key: &EventKey,
        _token: &ClaimToken,
        _ttl: Duration,
    ) -> Result<bool, StoreError> {
        Err(StoreError::from_kind(StoreErrorKind::Unavailable))
    }

    async fn release(&self, _key: &EventKey, _token: &ClaimToken) -> Result<bool, StoreError> {
        Err(StoreError::from_kind(StoreErrorKind::Unavailable))
    }

    async fn renew(
        &self,
        _key: &EventKey,
        _token: &ClaimToken,
        _lease: Duration,
    ) -> Result<bool, StoreError> {
        Err(StoreError::from_kind(StoreErrorKind::Unavailable))
    }
}

#[tokio::test]
async fn a_store_that_is_down_is_503_and_no_handler_runs() {
    let seen = Seen::default();
    let app = app(MetaWebhookLayer::new(SECRET).store(DownStore), &seen);
    let response = send(&app, &post()).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_refused(
        response,
        &seen,
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
    )
    .await;
}

#[tokio::test]
async fn an_item_in_flight_elsewhere_is_409_and_runs_once() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (wait, count) = (gate.clone(), runs.clone());
    let handler = move || {
        let (wait, count) = (wait.clone(), count.clone());
        async move {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _permit = wait.acquire().await.expect("open");
            StatusCode::OK
        }
    };
    let app = axum::Router::new().route(
        "/webhooks/meta",
        axum::routing::post(handler).layer(MetaWebhookLayer::new(SECRET)),
    );
    let first = tokio::spawn(tower::ServiceExt::oneshot(
        app.clone(),
        post().request(SECRET),
    ));
    assert!(
        crate::support::eventually(Duration::from_secs(5), || {
            runs.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await
    );
    let response = send(&app, &post()).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_refused(
        response,
        &Seen::default(),
        StatusCode::CONFLICT,
        "in_flight",
    )
    .await;
    gate.add_permits(1);
    let first = first.await.expect("task").expect("infallible");
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(send(&app, &post()).await.status(), StatusCode::OK, "done");
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_handler_past_its_lease_is_cancelled_503_and_rerun_on_the_retry() {
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = runs.clone();
    let handler = move || {
        let count = count.clone();
        async move {
            if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_secs(120)).await;
            }
            StatusCode::OK
        }
    };
    let app = axum::Router::new().route(
        "/webhooks/meta",
        axum::routing::post(handler)
            .layer(MetaWebhookLayer::new(SECRET).lease(Duration::from_secs(10))),
    );
    let response = send(&app, &post()).await;
    assert_refused(
        response,
        &Seen::default(),
        StatusCode::SERVICE_UNAVAILABLE,
        "lease_expired",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(send(&app, &post()).await.status(), StatusCode::OK);
    assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn rejection_responses_can_be_replaced() {
    let seen = Seen::default();
    let layer = MetaWebhookLayer::new(SECRET).on_rejection(|rejection| {
        axum::response::IntoResponse::into_response((StatusCode::IM_A_TEAPOT, rejection.reason()))
    });
    let app = app(layer, &seen);
    let response = send(&app, &post().without_signature()).await;
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert!(response.extensions().get::<MetaRejection>().is_some());
    assert_eq!(
        crate::support::body_text(response).await,
        "missing_signature"
    );
}

#[test]
fn empty_secrets_are_refused() {
    assert!(MetaWebhookLayer::try_new("").is_err());
    assert!(MetaWebhookLayer::new("x").try_secret("").is_err());
    let panicked = std::panic::catch_unwind(|| MetaWebhookLayer::new(""));
    assert!(panicked.is_err());
}
