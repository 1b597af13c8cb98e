//! The envelope and payload parsers over arbitrary bytes: `VerifiedEvent::from_trusted_body`
//! then `.event()`, and `VobizEvent::from_payload` under every kind of `EventType`. Never
//! panics; whatever parses re-reads consistently.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use vobiz_webhooks::{EventType, VerifiedEvent, VobizEvent};

fuzz_target!(|data: &[u8]| {
    if let Ok(verified) = VerifiedEvent::from_trusted_body(Bytes::copy_from_slice(data)) {
        assert_eq!(verified.body().as_ref(), data);
        let event = verified.event();
        assert_eq!(&event.event_type(), verified.event_type());
        let _ = event.raw_payload();
        let _ = verified.payload_json();
    }
    for event_type in [
        "message.inbound",
        "message.status",
        "call.connect",
        "call.status_change",
        "call.terminate",
        "call.",
        "call.something_new",
        "contact.updated",
        "",
    ] {
        let event_type = EventType::parse(event_type);
        let event = VobizEvent::from_payload(&event_type, data);
        assert_eq!(event.event_type(), event_type);
        let _ = event.raw_payload();
        if let Some(inbound) = event.as_inbound() {
            for message in inbound.messages() {
                let _ = format!("{message:?}");
            }
            let _ = (inbound.text(), inbound.from(), inbound.sender_name());
        }
        if let Some(status) = event.as_status() {
            for update in status.statuses() {
                let _ = format!("{update:?}");
            }
        }
        if let Some(call) = event.as_call() {
            for one in call.calls() {
                let _ = format!("{one:?}");
            }
        }
    }
});
