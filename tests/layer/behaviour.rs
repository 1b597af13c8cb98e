//! The layer's behaviour through its public API: one test per row of the status-code table.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use futures_util::stream;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use tower::{service_fn, ServiceExt};

use crate::support::{signed_event, TestEvent};
use vobiz_webhooks::{sign, EventType, Rejection, VerifiedEvent, VobizEvent, VobizWebhookLayer};

const SECRET: &str = "your-shared-secret";

fn envelope(event_type: &str, occurred_at: &str) -> String {
    format!(
        r#"{{"event_id":"f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f","event_type":"{event_type}","account_id":"MA_XXXXXXXX","occurred_at":"{occurred_at}","payload":{{"object":"whatsapp_business_account","entry":[]}}}}"#
    )
}

fn inbound() -> Bytes {
    Bytes::from(envelope("message.inbound", "2026-03-25T10:00:00Z"))
}

/// `body` signed with `signature` (none: no header), with `event` as `X-Webhook-Event`.
fn request(body: impl Into<Bytes>, signature: Option<&str>, event: Option<&str>) -> Request<Body> {
    let mut delivery = signed_event(body);
    delivery = match signature {
        Some(signature) => delivery.signature(HeaderValue::from_str(signature).expect("header")),
        None => delivery.without_signature(),
    };
    if let Some(event) = event {
        delivery = delivery.event_header(HeaderValue::from_str(event).expect("header"));
    }
    delivery.request(SECRET)
}

/// `body` signed with the secret, its `X-Webhook-Event` read from the body when it has one.
fn signed(body: impl Into<Bytes>) -> Request<Body> {
    let body = body.into();
    TestEvent::envelope_json(body.clone())
        .unwrap_or_else(|_| signed_event(body))
        .request(SECRET)
}

/// What the inner service saw.
#[derive(Clone, Default)]
struct Seen {
    calls: Arc<AtomicUsize>,
    body: Arc<Mutex<Option<Bytes>>>,
    event: Arc<Mutex<Option<VerifiedEvent>>>,
}

impl Seen {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Runs `req` through the layer around a recording pass-through service.
async fn run(layer: VobizWebhookLayer, req: Request<Body>) -> (Response<Body>, Seen) {
    let seen = Seen::default();
    let recorder = seen.clone();
    let inner = service_fn(move |req: Request<Body>| {
        let seen = recorder.clone();
        async move {
            seen.calls.fetch_add(1, Ordering::SeqCst);
            let event = req.extensions().get::<VerifiedEvent>().cloned();
            let body = req.into_body().collect().await.expect("body").to_bytes();
            *seen.body.lock().expect("lock") = Some(body);
            *seen.event.lock().expect("lock") = event;
            Ok::<_, Infallible>(Response::new(Body::from("handled")))
        }
    });
    let response = layer
        .layer_service(inner)
        .oneshot(req)
        .await
        .expect("infallible");
    (response, seen)
}

trait LayerExt {
    fn layer_service<S>(&self, inner: S) -> vobiz_webhooks::VobizWebhook<S>;
}

impl LayerExt for VobizWebhookLayer {
    fn layer_service<S>(&self, inner: S) -> vobiz_webhooks::VobizWebhook<S> {
        tower::Layer::layer(self, inner)
    }
}

fn layer() -> VobizWebhookLayer {
    VobizWebhookLayer::new(SECRET)
}

async fn text(response: Response<Body>) -> String {
    crate::support::body_text(response).await
}

async fn assert_rejected(
    response: Response<Body>,
    seen: &Seen,
    status: StatusCode,
    reason: &str,
) -> Rejection {
    assert_eq!(response.status(), status);
    assert_eq!(seen.calls(), 0, "the handler must not run");
    let rejection = response
        .extensions()
        .get::<Rejection>()
        .cloned()
        .expect("rejection in the response extensions");
    assert_eq!(rejection.status(), status);
    let body = text(response).await;
    assert!(body.contains(reason), "{body:?} should mention {reason:?}");
    rejection
}

/// A streamed body with no length that records whether anyone polled it.
fn watched_body(chunks: Vec<Bytes>) -> (Body, Arc<AtomicBool>) {
    let polled = Arc::new(AtomicBool::new(false));
    let flag = polled.clone();
    let stream = stream::iter(chunks).map(move |chunk| {
        flag.store(true, Ordering::SeqCst);
        Ok::<_, Infallible>(http_body::Frame::data(chunk))
    });
    (Body::new(StreamBody::new(stream)), polled)
}

use futures_util::StreamExt as _;

#[tokio::test]
async fn valid_delivery_reaches_the_handler_with_the_exact_bytes() {
    // Whitespace and key order that a re-serialisation would change.
    let body = Bytes::from_static(
        b"{ \"payload\" : {\"b\":1,\"a\":\"\\u00e4\\/\"},\r\n \"event_type\":\"message.inbound\", \"event_id\":\"F4C1A0D2-3B6E-4A9C-8E2F-0A1B2C3D4E5F\", \"occurred_at\":\"2026-03-25T10:00:00Z\", \"account_id\":\"MA_1\" }\n",
    );
    let (response, seen) = run(layer(), signed(body.clone())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "handled");
    assert_eq!(seen.calls(), 1);
    assert_eq!(seen.body.lock().expect("lock").as_ref(), Some(&body));
    let event = seen
        .event
        .lock()
        .expect("lock")
        .clone()
        .expect("verified event");
    assert_eq!(event.event_id(), "F4C1A0D2-3B6E-4A9C-8E2F-0A1B2C3D4E5F");
    assert_eq!(event.event_type(), &EventType::MessageInbound);
    assert_eq!(event.account_id(), Some("MA_1"));
    assert_eq!(
        event.occurred_at().map(|t| t.unix_timestamp()),
        Some(1_774_432_800)
    );
    assert_eq!(event.body(), &body);
    assert_eq!(event.payload_json(), br#"{"b":1,"a":"\u00e4\/"}"#);
}

#[tokio::test]
async fn missing_signature_is_401_before_the_body_is_read() {
    let (body, polled) = watched_body(vec![inbound()]);
    let req = Request::post("/").body(body).expect("request");
    let (response, seen) = run(layer(), req).await;
    assert_rejected(
        response,
        &seen,
        StatusCode::UNAUTHORIZED,
        "missing X-Webhook-Signature",
    )
    .await;
    assert!(!polled.load(Ordering::SeqCst), "body must not be read");
}

#[tokio::test]
async fn malformed_signatures_are_401_before_the_body_is_read() {
    let good = sign(SECRET, &inbound());
    let cases = [
        String::new(),
        format!("sha256={good}"),
        good[..32].to_owned(),
        good[..63].to_owned(),
        format!("{good}0"),
        "z".repeat(64),
        "a".repeat(1000),
    ];
    for signature in cases {
        let (body, polled) = watched_body(vec![inbound()]);
        let req = Request::post("/")
            .header("x-webhook-signature", &signature)
            .body(body)
            .expect("request");
        let (response, seen) = run(layer(), req).await;
        assert_rejected(response, &seen, StatusCode::UNAUTHORIZED, "64 hex digits").await;
        assert!(!polled.load(Ordering::SeqCst), "{signature:?}: body read");
    }
    // Non-ASCII bytes in the header value.
    let value = http::HeaderValue::from_bytes(&[0xc3; 64]).expect("opaque header value");
    let req = Request::post("/")
        .header("x-webhook-signature", value)
        .body(Body::from(inbound()))
        .expect("request");
    let (response, seen) = run(layer(), req).await;
    assert_rejected(response, &seen, StatusCode::UNAUTHORIZED, "64 hex digits").await;
}

#[tokio::test]
async fn two_signature_headers_are_401() {
    let body = inbound();
    let good = sign(SECRET, &body);
    let req = Request::post("/")
        .header("x-webhook-signature", &good)
        .header("x-webhook-signature", &good)
        .body(Body::from(body))
        .expect("request");
    let (response, seen) = run(layer(), req).await;
    assert_rejected(response, &seen, StatusCode::UNAUTHORIZED, "64 hex digits").await;
}

#[tokio::test]
async fn uppercase_hex_signature_is_accepted() {
    let body = inbound();
    let req = request(
        body.clone(),
        Some(&sign(SECRET, &body).to_uppercase()),
        None,
    );
    let (response, seen) = run(layer(), req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.calls(), 1);
}

#[tokio::test]
async fn signature_mismatch_is_401() {
    let body = inbound();
    for signature in [sign("another-secret", &body), sign(SECRET, b"other body")] {
        let (response, seen) = run(layer(), request(body.clone(), Some(&signature), None)).await;
        assert_rejected(response, &seen, StatusCode::UNAUTHORIZED, "does not match").await;
    }
    // One flipped byte of the body.
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    let (response, seen) = run(layer(), request(tampered, Some(&sign(SECRET, &body)), None)).await;
    assert_rejected(response, &seen, StatusCode::UNAUTHORIZED, "does not match").await;
}

#[tokio::test]
async fn both_secrets_of_a_rotation_are_accepted() {
    let rotating = layer().secret("the-new-secret");
    let body = inbound();
    for secret in [SECRET, "the-new-secret"] {
        // A distinct event per secret: the layer's store would answer a repeat as a duplicate.
        let body = Bytes::from(
            String::from_utf8_lossy(&body).replace("f4c1a0d2", &format!("{:08x}", secret.len())),
        );
        let req = request(body.clone(), Some(&sign(secret, &body)), None);
        let (response, seen) = run(rotating.clone(), req).await;
        assert_eq!(response.status(), StatusCode::OK, "{secret}");
        assert_eq!(seen.calls(), 1);
    }
    let req = request(body.clone(), Some(&sign("a-third-secret", &body)), None);
    let (response, seen) = run(rotating, req).await;
    assert_rejected(response, &seen, StatusCode::UNAUTHORIZED, "does not match").await;
}

#[tokio::test]
async fn empty_secrets_are_refused_at_construction() {
    assert!(VobizWebhookLayer::try_new("").is_err());
    assert!(layer().try_secret("").is_err());
}

#[test]
#[should_panic(expected = "VobizWebhookLayer::try_new")]
fn an_empty_secret_panics_in_new_naming_try_new() {
    let _ = VobizWebhookLayer::new("");
}

#[test]
#[should_panic(expected = "VobizWebhookLayer::try_secret")]
fn an_empty_rotation_secret_panics_naming_try_secret() {
    let _ = layer().secret("");
}

/// A valid envelope padded with trailing whitespace to exactly `len` bytes.
fn body_of_len(len: usize) -> Bytes {
    let mut body = inbound().to_vec();
    assert!(body.len() <= len);
    body.resize(len, b' ');
    Bytes::from(body)
}

#[tokio::test]
async fn body_exactly_at_the_limit_is_accepted() {
    let limit = 4096;
    let body = body_of_len(limit);
    let (response, seen) = run(layer().body_limit(limit), signed(body.clone())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.body.lock().expect("lock").as_ref(), Some(&body));

    // Streamed without a length, the same size is accepted too.
    let (stream, _) = watched_body(body.chunks(1000).map(Bytes::copy_from_slice).collect());
    let req = Request::post("/")
        .header("x-webhook-signature", sign(SECRET, &body))
        .body(stream)
        .expect("request");
    let (response, seen) = run(layer().body_limit(limit), req).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.calls(), 1);
}

#[tokio::test]
async fn declared_length_over_the_limit_is_413_before_the_body_is_read() {
    let limit = 4096;
    let body = body_of_len(limit + 1);
    let (stream, polled) = watched_body(vec![body.clone()]);
    let req = Request::post("/")
        .header("x-webhook-signature", sign(SECRET, &body))
        .header("content-length", body.len())
        .body(stream)
        .expect("request");
    let (response, seen) = run(layer().body_limit(limit), req).await;
    let rejection =
        assert_rejected(response, &seen, StatusCode::PAYLOAD_TOO_LARGE, "4096 bytes").await;
    assert!(matches!(
        rejection,
        Rejection::PayloadTooLarge { limit: 4096 }
    ));
    assert!(!polled.load(Ordering::SeqCst), "body must not be read");
}

#[tokio::test]
async fn chunked_body_crossing_the_limit_is_413() {
    let limit = 4096;
    let body = body_of_len(limit + 1);
    let (stream, _) = watched_body(body.chunks(1000).map(Bytes::copy_from_slice).collect());
    let req = Request::post("/")
        .header("x-webhook-signature", sign(SECRET, &body))
        .header("transfer-encoding", "chunked")
        .body(stream)
        .expect("request");
    let (response, seen) = run(layer().body_limit(limit), req).await;
    assert_rejected(
        response,
        &seen,
        StatusCode::PAYLOAD_TOO_LARGE,
        "larger than",
    )
    .await;
}

#[tokio::test]
async fn default_limit_is_4_mib() {
    assert_eq!(vobiz_webhooks::DEFAULT_BODY_LIMIT, 4 * 1024 * 1024);
    let body = body_of_len(4 * 1024 * 1024 + 1);
    let (response, seen) = run(layer(), signed(body)).await;
    assert_rejected(response, &seen, StatusCode::PAYLOAD_TOO_LARGE, "4194304").await;
}

/// A signed delivery whose body arrives as `chunks`, `gap` apart (the first one after `gap` too).
fn trickled(body: &Bytes, chunks: usize, gap: Duration) -> Request<Body> {
    let size = body.len().div_ceil(chunks);
    let parts: Vec<Bytes> = body.chunks(size).map(Bytes::copy_from_slice).collect();
    let stream = stream::iter(parts).then(move |chunk| async move {
        tokio::time::sleep(gap).await;
        Ok::<_, Infallible>(http_body::Frame::data(chunk))
    });
    Request::post("/")
        .header("x-webhook-signature", sign(SECRET, body))
        .header("x-webhook-event", "message.inbound")
        .body(Body::new(StreamBody::new(stream)))
        .expect("request")
}

#[tokio::test(start_paused = true)]
async fn body_trickled_past_the_body_timeout_is_408() {
    assert_eq!(
        vobiz_webhooks::DEFAULT_BODY_TIMEOUT,
        Duration::from_secs(30)
    );
    // Four pieces 10 s apart: the default 30 s runs out before the fourth.
    let started = tokio::time::Instant::now();
    let (response, seen) = run(layer(), trickled(&inbound(), 4, Duration::from_secs(10))).await;
    let rejection = assert_rejected(
        response,
        &seen,
        StatusCode::REQUEST_TIMEOUT,
        "did not arrive within 30000 ms",
    )
    .await;
    assert!(
        matches!(rejection, Rejection::BodyTimeout { timeout } if timeout == Duration::from_secs(30))
    );
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(30),
        "answered at the timeout"
    );

    let short = layer().body_timeout(Duration::from_millis(250));
    let (response, seen) = run(short, trickled(&inbound(), 3, Duration::from_millis(100))).await;
    assert_rejected(response, &seen, StatusCode::REQUEST_TIMEOUT, "250 ms").await;
}

#[tokio::test(start_paused = true)]
async fn body_arriving_in_pieces_within_the_timeout_is_handled() {
    let body = inbound();
    let (response, seen) = run(layer(), trickled(&body, 4, Duration::from_secs(7))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.calls(), 1);
    assert_eq!(seen.body.lock().expect("lock").as_ref(), Some(&body));
}

#[tokio::test]
async fn unreadable_body_is_400() {
    let failing = stream::iter(vec![
        Ok(http_body::Frame::data(Bytes::from_static(b"{\"event_id\""))),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]);
    let req = Request::post("/")
        .header("x-webhook-signature", sign(SECRET, b"x"))
        .body(Body::new(StreamBody::new(failing)))
        .expect("request");
    let (response, seen) = run(layer(), req).await;
    assert_rejected(response, &seen, StatusCode::BAD_REQUEST, "failed to read").await;
}

#[tokio::test]
async fn invalid_envelopes_are_400() {
    let cases: [(&[u8], &str); 7] = [
        (b"\xff\xfe{}", "UTF-8"),
        (
            b"{\"event_id\":\"e\",\"event_type\":\"x\",\"k\":\"\xc3\"}",
            "UTF-8",
        ),
        (b"not json", "not a valid envelope"),
        (b"", "not a valid envelope"),
        (b"[\"event_id\"]", "not a valid envelope"),
        (
            br#"{"event_type":"message.inbound","payload":{}}"#,
            "event_id",
        ),
        (br#"{"event_id":"e1","payload":{}}"#, "event_type"),
    ];
    for (body, reason) in cases {
        let req = request(Bytes::from_static(body), Some(&sign(SECRET, body)), None);
        let (response, seen) = run(layer(), req).await;
        assert_rejected(response, &seen, StatusCode::BAD_REQUEST, reason).await;
    }
}

#[tokio::test]
async fn event_header_must_agree_with_the_body() {
    let body = inbound();
    let signature = sign(SECRET, &body);
    let req = request(body.clone(), Some(&signature), Some("message.status"));
    let (response, seen) = run(layer(), req).await;
    assert_rejected(response, &seen, StatusCode::BAD_REQUEST, "message.status").await;

    // Absent: accepted.
    let (response, seen) = run(layer(), request(body.clone(), Some(&signature), None)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.calls(), 1);
}

#[tokio::test]
async fn freshness_is_off_by_default_and_checks_when_on() {
    let old = Bytes::from(envelope("message.inbound", "2001-01-01T00:00:00Z"));
    let (response, _) = run(layer(), signed(old.clone())).await;
    assert_eq!(response.status(), StatusCode::OK, "off by default");

    let strict = layer().freshness(Duration::from_secs(300), Duration::from_secs(60));
    let (response, seen) = run(strict.clone(), signed(old)).await;
    assert_rejected(response, &seen, StatusCode::BAD_REQUEST, "older").await;

    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    let future = Bytes::from(envelope(
        "message.inbound",
        &fmt(now + Duration::from_secs(3600)),
    ));
    let (response, seen) = run(strict.clone(), signed(future)).await;
    assert_rejected(response, &seen, StatusCode::BAD_REQUEST, "future").await;

    let missing =
        Bytes::from_static(br#"{"event_id":"e","event_type":"message.inbound","payload":{}}"#);
    let (response, seen) = run(strict.clone(), signed(missing)).await;
    assert_rejected(response, &seen, StatusCode::BAD_REQUEST, "occurred_at").await;

    let fresh = Bytes::from(envelope(
        "message.inbound",
        &fmt(now - Duration::from_secs(10)),
    ));
    let (response, seen) = run(strict, signed(fresh)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.calls(), 1);
}

#[tokio::test]
async fn rejection_responses_can_be_replaced() {
    use axum::response::IntoResponse;
    let custom = layer().on_rejection(|rejection| {
        (
            StatusCode::IM_A_TEAPOT,
            format!("custom: {}", rejection.status().as_u16()),
        )
            .into_response()
    });
    let (response, seen) = run(custom, request(inbound(), None, None)).await;
    assert_eq!(response.status(), StatusCode::IM_A_TEAPOT);
    assert!(matches!(
        response.extensions().get::<Rejection>(),
        Some(Rejection::MissingSignature)
    ));
    assert_eq!(seen.calls(), 0);
    assert_eq!(text(response).await, "custom: 401");
}

#[tokio::test]
async fn extractors_read_what_the_layer_verified() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(move |meta: VerifiedEvent, event: VobizEvent| async move {
            let kind = match event {
                VobizEvent::MessageInbound(_) => "inbound".to_owned(),
                VobizEvent::Unknown(unknown) => format!("unknown {}", unknown.event_type()),
                _ => "other".to_owned(),
            };
            record
                .lock()
                .expect("lock")
                .push((meta.event_id().to_owned(), kind));
            StatusCode::OK
        })
        .layer(layer()),
    );
    let unknown = Bytes::from(
        envelope("contact.updated", "2026-03-25T10:00:00Z").replace("f4c1a0d2", "00000000"),
    );
    for body in [inbound(), unknown] {
        let response = app.clone().oneshot(signed(body)).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = app
        .oneshot(request(inbound(), None, None))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let ids = ["f4c1a0d2", "00000000"].map(|head| format!("{head}-3b6e-4a9c-8e2f-0a1b2c3d4e5f"));
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![
            (ids[0].clone(), "inbound".to_owned()),
            (ids[1].clone(), "unknown contact.updated".to_owned())
        ]
    );
}

#[tokio::test]
async fn extractor_without_the_layer_is_500_naming_the_fix() {
    let app = Router::new().route("/webhooks/vobiz", post(|_event: VobizEvent| async {}));
    let response = app
        .clone()
        .oneshot(signed(inbound()))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(text(response).await.contains("VobizWebhookLayer::new"));

    let app = Router::new().route("/webhooks/vobiz", post(|_meta: VerifiedEvent| async {}));
    let response = app.oneshot(signed(inbound())).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn handler_responses_pass_through_unchanged() {
    let app = Router::new().route(
        "/webhooks/vobiz",
        post(|| async { (StatusCode::ACCEPTED, [("x-handled", "yes")], "queued") }).layer(layer()),
    );
    let response = app.oneshot(signed(inbound())).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["x-handled"], "yes");
    assert_eq!(text(response).await, "queued");
}
