//! Payload templates: the events [`TestEvent::inbound_text`], [`TestEvent::status`] and
//! [`TestEvent::call`] build, in Meta's full notification form, like Vobiz's examples.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::test_event::Payload;
use super::{new_event_id, TestEvent, DEFAULT_BUSINESS_NUMBER, DEFAULT_CUSTOMER};

const WABA_ID: &str = "102290129340398";
const PHONE_NUMBER_ID: &str = "106540352242922";
const SENDER_NAME: &str = "Asha";

/// Meta's full notification around one change `value` (the form of every Vobiz example).
fn notification(field: &str, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "changes": [{ "field": field, "value": value }],
        }],
    })
}

fn metadata() -> Value {
    json!({
        "display_phone_number": DEFAULT_BUSINESS_NUMBER,
        "phone_number_id": PHONE_NUMBER_ID,
    })
}

fn unix_now() -> String {
    OffsetDateTime::now_utc().unix_timestamp().to_string()
}

impl TestEvent {
    /// A `message.inbound` text message with `text` as its body, from [`DEFAULT_CUSTOMER`].
    ///
    /// ```
    /// use vobiz_webhooks::testing::TestEvent;
    /// use vobiz_webhooks::{VerifiedEvent, VobizEvent};
    ///
    /// let body = TestEvent::inbound_text("hi").from("15551234567").body_bytes();
    /// let event = VerifiedEvent::from_trusted_body(body)?;
    /// let VobizEvent::MessageInbound(msg) = event.event() else { panic!() };
    /// assert_eq!(msg.text(), Some("hi"));
    /// assert_eq!(msg.from(), Some("15551234567"));
    /// # Ok::<(), vobiz_webhooks::EnvelopeError>(())
    /// ```
    #[must_use]
    pub fn inbound_text(text: impl Into<String>) -> Self {
        let wamid = format!("wamid.TEST{}", new_event_id().replace('-', ""));
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{ "wa_id": DEFAULT_CUSTOMER, "profile": { "name": SENDER_NAME } }],
            "messages": [{
                "from": DEFAULT_CUSTOMER,
                "id": wamid,
                "timestamp": unix_now(),
                "type": "text",
                "text": { "body": text.into() },
            }],
        });
        Self::with_payload(
            "message.inbound",
            Payload::Value(notification("messages", value)),
        )
    }

    /// A `message.status` update: message `wamid` reached `status` (`sent`, `delivered`,
    /// `read`, `failed`, or any other name, which the crate keeps as an unknown status).
    ///
    /// A `failed` status carries one error (code 131049, as in Vobiz's example).
    ///
    /// ```
    /// use vobiz_webhooks::event::StatusKind;
    /// use vobiz_webhooks::testing::TestEvent;
    /// use vobiz_webhooks::{VerifiedEvent, VobizEvent};
    ///
    /// let body = TestEvent::status("wamid.X", "failed").body_bytes();
    /// let event = VerifiedEvent::from_trusted_body(body)?;
    /// let VobizEvent::MessageStatus(st) = event.event() else { panic!() };
    /// assert_eq!(st.wamid(), Some("wamid.X"));
    /// assert_eq!(st.status(), Some(&StatusKind::Failed));
    /// assert_eq!(st.error().map(|e| e.code), Some(Some(131049)));
    /// # Ok::<(), vobiz_webhooks::EnvelopeError>(())
    /// ```
    #[must_use]
    pub fn status(wamid: impl Into<String>, status: impl Into<String>) -> Self {
        let status = status.into();
        let mut update = json!({
            "id": wamid.into(),
            "status": status,
            "timestamp": unix_now(),
            "recipient_id": DEFAULT_CUSTOMER,
        });
        if status == "failed" {
            update["errors"] = json!([{
                "code": 131049,
                "title": "This message was not delivered to maintain healthy ecosystem engagement.",
                "message": "This message was not delivered to maintain healthy ecosystem engagement.",
                "error_data": {
                    "details": "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."
                },
                "href": "/documentation/business-messaging/whatsapp/support/error-codes",
            }]);
        }
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "statuses": [update],
        });
        Self::with_payload(
            "message.status",
            Payload::Value(notification("messages", value)),
        )
    }

    /// A `call.<event>` of a user-initiated call: `call("connect")` (ringing, with an SDP
    /// offer), `call("terminate")` (completed, 180 s), or any other event name. `"call.connect"`
    /// is accepted too.
    ///
    /// For the exact shapes Meta sends for other call events (e.g. `status_change` in its
    /// `statuses[]` form), use the call [`Fixture`](super::Fixture)s.
    ///
    /// ```
    /// use vobiz_webhooks::testing::TestEvent;
    /// use vobiz_webhooks::{VerifiedEvent, VobizEvent};
    ///
    /// let event = TestEvent::call("connect");
    /// assert_eq!(event.event_type(), "call.connect");
    /// let verified = VerifiedEvent::from_trusted_body(event.body_bytes())?;
    /// let VobizEvent::Call(call) = verified.event() else { panic!() };
    /// assert_eq!(call.event(), "connect");
    /// assert!(call.sdp().is_some());
    /// # Ok::<(), vobiz_webhooks::EnvelopeError>(())
    /// ```
    #[must_use]
    pub fn call(event: impl AsRef<str>) -> Self {
        let event = event.as_ref();
        let event = event.strip_prefix("call.").unwrap_or(event);
        let id = format!("wacid.TEST{}", new_event_id().replace('-', ""));
        let mut call = json!({
            "id": id,
            "from": DEFAULT_CUSTOMER,
            "to": DEFAULT_BUSINESS_NUMBER,
            "timestamp": unix_now(),
            "event": event,
            "direction": "USER_INITIATED",
        });
        match event {
            "connect" => {
                call["status"] = json!("ringing");
                call["session"] = json!({
                    "sdp_type": "offer",
                    "sdp": "v=0\r\no=- 7669997803033 2 IN IP4 127.0.0.1\r\ns=-\r\n",
                });
            }
            "terminate" => {
                let end = OffsetDateTime::now_utc().unix_timestamp();
                call["status"] = json!("COMPLETED");
                call["start_time"] = json!((end - 180).to_string());
                call["end_time"] = json!(end.to_string());
                call["duration"] = json!(180);
            }
            _ => {}
        }
        let value = json!({
            "messaging_product": "whatsapp",
            "metadata": metadata(),
            "contacts": [{ "wa_id": DEFAULT_CUSTOMER, "profile": { "name": SENDER_NAME } }],
            "calls": [call],
        });
        Self::with_payload(
            format!("call.{event}"),
            Payload::Value(notification("calls", value)),
        )
    }
}
