//! A test kit: signed Vobiz deliveries for testing your own handlers without a Vobiz account
//! (cargo feature `testing`, off by default).
//!
//! [`TestEvent`] builds the exact request Vobiz would send: a JSON envelope with a fresh
//! `event_id`, the headers `Content-Type`, `Content-Length`, `X-Webhook-Event` and
//! `X-Webhook-Signature` (HMAC-SHA256 of the body under your secret). Build one from typed
//! values ([`inbound_text`](TestEvent::inbound_text), [`status`](TestEvent::status),
//! [`call`](TestEvent::call)), from a bundled [`Fixture`] (every message, status and call type),
//! or from your own JSON ([`raw`](TestEvent::raw), [`payload_json`](TestEvent::payload_json),
//! [`envelope_json`](TestEvent::envelope_json)); then break it on purpose to test the
//! refusals ([`bad_signature`](TestEvent::bad_signature),
//! [`without_signature`](TestEvent::without_signature),
//! [`event_header`](TestEvent::event_header), [`body`](TestEvent::body)).
//!
//! Enable it for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! vobiz-webhooks = { version = "0.1", features = ["testing"] }
//! ```
//!
//! Then drive your own app with it:
//!
//! ```
//! use axum::{http::StatusCode, routing::post, Router};
//! use tower::ServiceExt; // oneshot
//! use vobiz_webhooks::testing::TestEvent;
//! use vobiz_webhooks::{VobizEvent, VobizWebhookLayer};
//!
//! async fn handle(event: VobizEvent) -> StatusCode {
//!     match event {
//!         VobizEvent::MessageInbound(msg) if msg.text() == Some("hi") => StatusCode::OK,
//!         _ => StatusCode::UNPROCESSABLE_ENTITY,
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new().route(
//!     "/webhooks/vobiz",
//!     post(handle).layer(VobizWebhookLayer::new("test-secret")),
//! );
//!
//! let event = TestEvent::inbound_text("hi").from("918888888888");
//! let response = app.clone().oneshot(event.request("test-secret")).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // The same event_id again: acknowledged as a duplicate, the handler does not run.
//! let again = app.clone().oneshot(event.request("test-secret")).await?;
//! assert_eq!(again.headers()["x-vobiz-duplicate"], "completed");
//!
//! // Signed with another secret: refused before the handler.
//! let forged = app.oneshot(event.request("not-the-secret")).await?;
//! assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
//! # Ok(()) }
//! ```
//!
//! What the kit offers:
//!
//! | | |
//! |---|---|
//! | `TestEvent::inbound_text(text)`, `::status(wamid, "delivered")`, `::call("connect")` | typed events, in Meta's full-notification form |
//! | `TestEvent::fixture(Fixture::InboundImage)`, [`Fixture::ALL`] | the bundled sample of every message type (text, reply, referral, image, video, audio, document, sticker, location, contacts, button, interactive, reaction, order, system, unsupported, unknown), every status and every call event |
//! | `TestEvent::raw(event_type, json!(..))`, `::payload_json(event_type, text)`, `::envelope_json(body)` | your own payload or complete body (kept byte for byte) |
//! | `.event_id(id)`, `.from(wa_id)`, `.sender_name(name)`, `.account_id(..)`, `.occurred_at(..)` | a fresh random UUID `event_id` by default; set one to test deduplication |
//! | `.bad_signature()`, `.without_signature()`, `.signature(value)`, `.event_header(value)`, `.without_event_header()`, `.body(bytes)` | break the delivery on purpose (401, 400) |
//! | `.request(secret)` / `.into_request(secret)`, `.body_bytes()`, `.headers_for(secret, body)`, `.uri(path)`, `.header(name, value)` | the request (`POST /webhooks/vobiz`), or its parts for another HTTP client |
//!
//! `request` can be called again and gives the same body and `event_id`: that is a Vobiz retry.
//!
//! With the `meta` feature too, `MetaPost` builds Meta's own POSTs (`X-Hub-Signature-256`,
//! several items batched in one notification) for handlers behind `meta::MetaWebhookLayer`.

mod fixtures;
#[cfg(feature = "meta")]
mod meta;
mod templates;
mod test_event;

pub use fixtures::{Fixture, UnknownFixture};
#[cfg(feature = "meta")]
pub use meta::{MetaPost, DEFAULT_META_URI};
pub use test_event::{InvalidJson, TestEvent};

/// The path [`TestEvent::request`] posts to unless [`TestEvent::uri`] says otherwise.
pub const DEFAULT_URI: &str = "/webhooks/vobiz";

/// The customer's WhatsApp number in built events unless [`TestEvent::from`] says otherwise
/// (the number of the Vobiz samples).
pub const DEFAULT_CUSTOMER: &str = "918888888888";

/// The business display number in built events.
pub const DEFAULT_BUSINESS_NUMBER: &str = "919876543210";

/// The `account_id` of built events unless [`TestEvent::account_id`] says otherwise.
pub const DEFAULT_ACCOUNT_ID: &str = "MA_XXXXXXXX";

/// A fresh random `event_id` in the UUID v4 form Vobiz uses, e.g.
/// `f4c1a0d2-3b6e-4a9c-8e2f-0a1b2c3d4e5f`.
///
/// # Panics
///
/// When the operating system's random generator fails (it does not once the system is booted).
///
/// ```
/// let id = vobiz_webhooks::testing::new_event_id();
/// assert_eq!(id.len(), 36);
/// assert_eq!(&id[14..15], "4");
/// assert_ne!(id, vobiz_webhooks::testing::new_event_id());
/// ```
pub fn new_event_id() -> String {
    let mut bytes = [0u8; 16];
    if let Err(error) = crate::random::fill(&mut bytes) {
        panic!("the operating system's random generator failed: {error}");
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::test_event::broken;
    use super::*;
    use crate::headers::{X_WEBHOOK_EVENT, X_WEBHOOK_SIGNATURE};
    use crate::signature::{SignatureError, Verifier};
    use crate::{VerifiedEvent, VobizEvent, VobizWebhookLayer};
    use axum::routing::post;
    use axum::Router;
    use axum_core::body::Body;
    use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    use http::StatusCode;
    use http::{HeaderMap, HeaderValue, Request};
    use serde_json::json;
    use tower::ServiceExt;

    const SECRET: &str = "kit-secret";

    fn app() -> Router {
        async fn handle(event: VobizEvent) -> String {
            event.event_type().as_str().to_owned()
        }
        Router::new().route(
            DEFAULT_URI,
            post(handle).layer(VobizWebhookLayer::new(SECRET)),
        )
    }

    async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
        use http_body_util::BodyExt;
        let response = app.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    fn samples() -> Vec<TestEvent> {
        let mut events = vec![
            TestEvent::inbound_text("hi"),
            TestEvent::status("wamid.X", "sent"),
            TestEvent::status("wamid.X", "failed"),
            TestEvent::call("connect"),
            TestEvent::call("call.terminate"),
            TestEvent::call("status_change"),
            TestEvent::raw("contact.updated", json!({})),
        ];
        events.extend(Fixture::ALL.iter().map(|f| TestEvent::fixture(*f)));
        events
    }

    #[test]
    fn headers_and_signature_are_right() {
        for event in samples() {
            let request = event.request(SECRET);
            let body = event.body_bytes();
            let headers = request.headers();
            assert_eq!(request.method(), http::Method::POST);
            assert_eq!(request.uri(), DEFAULT_URI);
            assert_eq!(headers[CONTENT_TYPE], "application/json");
            assert_eq!(headers[CONTENT_LENGTH], body.len().to_string().as_str());
            assert_eq!(headers[X_WEBHOOK_EVENT], event.event_type());
            let signature = headers[X_WEBHOOK_SIGNATURE].as_bytes();
            assert_eq!(signature.len(), 64);
            let verifier = Verifier::new([SECRET]).expect("secret");
            assert_eq!(verifier.verify(signature, &body), Ok(()));
            // The body is a parseable envelope carrying the event's id and type.
            let verified = VerifiedEvent::from_trusted_body(body).expect("envelope");
            assert_eq!(verified.event_id(), event.id());
            assert_eq!(verified.event_type().as_str(), event.event_type());
        }
    }

    #[test]
    fn broken_signatures_are_well_formed_but_wrong() {
        let event = TestEvent::inbound_text("hi").bad_signature();
        let request = event.request(SECRET);
        let signature = request.headers()[X_WEBHOOK_SIGNATURE].as_bytes();
        let verifier = Verifier::new([SECRET]).expect("secret");
        assert_eq!(
            verifier.verify(signature, &event.body_bytes()),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(broken("ab0".into()), "ab1");
        assert_eq!(broken("ab1".into()), "ab0");
        let request = event.clone().without_signature().request(SECRET);
        assert!(!request.headers().contains_key(X_WEBHOOK_SIGNATURE));
        let request = event.without_event_header().request(SECRET);
        assert!(!request.headers().contains_key(X_WEBHOOK_EVENT));
    }

    #[test]
    fn ids_are_fresh_uuids_unless_set() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_event_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(
                parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12]
            );
            assert!(parts[2].starts_with('4'));
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
        }
        assert_ne!(TestEvent::call("x").id(), TestEvent::call("x").id());
        let event = TestEvent::fixture(Fixture::InboundText).event_id("mine");
        assert_eq!(event.id(), "mine");
        // Same builder, same bytes: a re-send.
        assert_eq!(event.body_bytes(), event.body_bytes());
    }

    #[test]
    fn edits_reach_every_form() {
        let body = TestEvent::fixture(Fixture::InboundImage)
            .from("15550001111")
            .sender_name("Ravi")
            .body_bytes();
        let verified = VerifiedEvent::from_trusted_body(body).expect("envelope");
        let VobizEvent::MessageInbound(msg) = verified.event() else {
            panic!("inbound expected");
        };
        assert_eq!(msg.from(), Some("15550001111"));
        assert_eq!(msg.sender_name(), Some("Ravi"));

        let body = TestEvent::status("wamid.Y", "read")
            .from("15550002222")
            .body_bytes();
        let verified = VerifiedEvent::from_trusted_body(body).expect("envelope");
        let VobizEvent::MessageStatus(status) = verified.event() else {
            panic!("status expected");
        };
        assert_eq!(status.recipient_id(), Some("15550002222"));

        for (fixture, expected_from, expected_to) in [
            (
                Fixture::CallConnect,
                Some("15550003333"),
                Some("919876543210"),
            ),
            (
                Fixture::CallConnectBusinessInitiated,
                None,
                Some("15550003333"),
            ),
        ] {
            let body = TestEvent::fixture(fixture).from("15550003333").body_bytes();
            let verified = VerifiedEvent::from_trusted_body(body).expect("envelope");
            let VobizEvent::Call(call) = verified.event() else {
                panic!("call expected");
            };
            if let Some(from) = expected_from {
                assert_eq!(call.from(), Some(from));
            }
            assert_eq!(call.to(), expected_to);
        }

        // A bare change value is edited too.
        let bare = TestEvent::raw(
            "message.inbound",
            json!({"messages":[{"from":"1","id":"w","type":"text","text":{"body":"x"}}]}),
        )
        .from("2");
        assert!(String::from_utf8_lossy(&bare.body_bytes()).contains(r#""from":"2""#));
    }

    #[test]
    fn fixture_payloads_are_kept_byte_for_byte() {
        for fixture in Fixture::ALL {
            let body = TestEvent::fixture(*fixture).body_bytes();
            let body = std::str::from_utf8(&body).expect("utf-8");
            let start = fixture.body().find(r#""payload": "#).expect("payload") + 11;
            let payload = fixture.body()[start..].trim_end();
            let payload = payload[..payload.len() - 1].trim_end(); // the envelope's closing brace
            assert!(
                body.ends_with(&format!("\"payload\":{payload}}}")),
                "{fixture}"
            );
        }
    }

    #[tokio::test]
    async fn the_layer_accepts_every_built_event() {
        let app = app();
        for event in samples() {
            let (status, headers, body) = send(&app, event.request(SECRET)).await;
            assert_eq!(status, StatusCode::OK, "{}: {body}", event.event_type());
            assert!(!headers.contains_key(crate::headers::X_VOBIZ_DUPLICATE));
            assert_eq!(body, event.event_type());
            // The same delivery again is a duplicate.
            let (status, headers, _) = send(&app, event.request(SECRET)).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(headers[crate::headers::X_VOBIZ_DUPLICATE], "completed");
        }
        // Every fixture as shipped, id included.
        for fixture in Fixture::ALL {
            let event = TestEvent::envelope_json(fixture.body()).expect("envelope");
            let (status, _, body) = send(&app, event.request(SECRET)).await;
            assert_eq!(status, StatusCode::OK, "{fixture}: {body}");
        }
    }

    #[tokio::test]
    async fn the_layer_refuses_what_is_broken() {
        let app = app();
        let event = TestEvent::inbound_text("hi");
        let cases = [
            (event.clone().bad_signature(), StatusCode::UNAUTHORIZED),
            (event.clone().without_signature(), StatusCode::UNAUTHORIZED),
            (
                event
                    .clone()
                    .signature(HeaderValue::from_static("sha256=00")),
                StatusCode::UNAUTHORIZED,
            ),
            (
                event
                    .clone()
                    .event_header(HeaderValue::from_static("message.status")),
                StatusCode::BAD_REQUEST,
            ),
            (event.clone().body("not json"), StatusCode::BAD_REQUEST),
            (
                event.clone().body(r#"{"event_type":"message.inbound"}"#),
                StatusCode::BAD_REQUEST,
            ),
            (event.clone().without_event_header(), StatusCode::OK),
        ];
        for (event, expected) in cases {
            let (status, _, body) = send(&app, event.request(SECRET)).await;
            assert_eq!(status, expected, "{body}");
        }
        let (status, _, _) = send(&app, event.uri("/elsewhere").request(SECRET)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn json_inputs_are_checked() {
        assert!(matches!(
            TestEvent::payload_json("message.inbound", "nope"),
            Err(InvalidJson::Malformed(_))
        ));
        assert!(matches!(
            TestEvent::envelope_json(r#"{"payload":{}}"#),
            Err(InvalidJson::Envelope(_))
        ));
        let error = TestEvent::envelope_json("{").expect_err("not JSON");
        assert!(error.to_string().starts_with("not a Vobiz envelope"));
    }
}
