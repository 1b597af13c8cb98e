//! Typed events, through the public API only: every fixture, in both payload forms.

use bytes::Bytes;
use serde_json::Value;
use vobiz_webhooks::event::{CallDirection, CallState, Interactive, MessageContent, StatusKind};
use vobiz_webhooks::{Envelope, EventType, VerifiedEvent, VobizEvent};

macro_rules! fixture {
    ($path:literal) => {
        include_str!(concat!("../fixtures/", $path))
    };
}

/// The event of a full delivery body, parsed as the layer would hand it over.
fn full(body: &'static str) -> VobizEvent {
    VerifiedEvent::from_trusted_body(Bytes::from_static(body.as_bytes()))
        .expect("fixture envelope parses")
        .event()
        .clone()
}

/// The same event, with `payload` replaced by the bare change `value` (spec §2.1).
fn bare(body: &str) -> VobizEvent {
    let envelope = Envelope::from_slice(body.as_bytes()).expect("fixture envelope parses");
    let json: Value = serde_json::from_str(body).expect("fixture is JSON");
    let value = &json["payload"]["entry"][0]["changes"][0]["value"];
    assert!(value.is_object(), "fixture has a change value");
    let bytes = serde_json::to_vec(value).expect("serializes");
    VobizEvent::from_payload(&envelope.event_type, &bytes)
}

/// Both payload forms of a fixture; asserts where the WABA id and field came from.
fn both(body: &'static str) -> [VobizEvent; 2] {
    let (full, bare) = (full(body), bare(body));
    assert_eq!(full.event_type(), bare.event_type());
    // Serialization never fails, whatever the event.
    serde_json::to_string(&full).expect("serializes");
    serde_json::to_string(&bare).expect("serializes");
    [full, bare]
}

fn inbound(body: &'static str) -> Vec<vobiz_webhooks::event::InboundEvent> {
    both(body)
        .into_iter()
        .enumerate()
        .map(|(i, event)| match event {
            VobizEvent::MessageInbound(msg) => {
                assert_eq!(msg.messages().count(), 1);
                assert_eq!(msg.from(), Some("918888888888"));
                assert_eq!(msg.sender_name(), Some("Asha"));
                assert_eq!(
                    msg.sender().and_then(|c| c.user_id.as_deref()),
                    Some("IN.1234567890123456")
                );
                assert_eq!(
                    msg.timestamp().map(|t| t.unix_timestamp()),
                    Some(1_711_360_800)
                );
                assert_eq!(msg.phone_number_id(), Some("106540352242922"));
                let change = &msg.changes()[0];
                if i == 0 {
                    assert_eq!(msg.waba_id(), Some("102290129340398"));
                    assert_eq!(change.field.as_deref(), Some("messages"));
                } else {
                    assert_eq!(msg.waba_id(), None);
                    assert_eq!(change.field, None);
                }
                assert!(msg.wamid().is_some_and(|id| id.starts_with("wamid.")));
                msg
            }
            other => panic!("expected message.inbound, got {other:?}"),
        })
        .collect()
}

fn content(msg: &vobiz_webhooks::event::InboundEvent) -> &MessageContent {
    &msg.message().expect("one message").content
}

#[test]
fn text() {
    for msg in inbound(fixture!("message.inbound/text.json")) {
        assert_eq!(msg.text(), Some("Hi, is my order shipped?"));
        assert_eq!(msg.kind(), Some("text"));
        assert_eq!(msg.media_id(), None);
        assert_eq!(msg.message().and_then(|m| m.context.as_ref()), None);
    }
}

#[test]
fn text_with_context_and_referral() {
    for msg in inbound(fixture!("message.inbound/text_reply.json")) {
        let message = msg.message().expect("message");
        assert_eq!(
            message.reply_to(),
            Some("wamid.HBgMOTE4ODg4ODg4ODg4FQIAERgSQUJDREVG")
        );
        let context = message.context.as_ref().expect("context");
        assert_eq!(context.forwarded, Some(true));
        assert_eq!(context.from.as_deref(), Some("919876543210"));
        let product = context.referred_product.as_ref().expect("product");
        assert_eq!(product.product_retailer_id.as_deref(), Some("SKU-42"));
    }
    for msg in inbound(fixture!("message.inbound/text_referral.json")) {
        let referral = msg
            .message()
            .and_then(|m| m.referral.as_ref())
            .expect("referral");
        assert_eq!(referral.source_type.as_deref(), Some("ad"));
        assert_eq!(referral.ctwa_clid.as_deref(), Some("ARAkLkA8rmlFeiCktEJQ"));
        assert_eq!(
            referral
                .welcome_message
                .as_ref()
                .and_then(|w| w.text.as_deref()),
            Some("Hi! How can we help?")
        );
        assert_eq!(msg.text(), Some("I saw your ad"));
    }
}

#[test]
fn media() {
    let cases = [
        (
            fixture!("message.inbound/image.json"),
            "image",
            "1003383421387256",
            "image/jpeg",
        ),
        (
            fixture!("message.inbound/video.json"),
            "video",
            "1003383421387257",
            "video/mp4",
        ),
        (
            fixture!("message.inbound/audio.json"),
            "audio",
            "1003383421387258",
            "audio/ogg; codecs=opus",
        ),
        (
            fixture!("message.inbound/document.json"),
            "document",
            "1003383421387259",
            "application/pdf",
        ),
        (
            fixture!("message.inbound/sticker.json"),
            "sticker",
            "1003383421387260",
            "image/webp",
        ),
    ];
    for (body, kind, id, mime) in cases {
        for msg in inbound(body) {
            assert_eq!(msg.kind(), Some(kind));
            assert_eq!(msg.media_id(), Some(id));
            assert_eq!(msg.mime_type(), Some(mime));
            assert!(msg.media().is_some_and(|m| m.sha256.is_some()));
            let media = msg.media().expect("media");
            match content(&msg) {
                MessageContent::Image(m) => {
                    assert_eq!(m.caption.as_deref(), Some("my parcel"));
                    assert!(m.url.as_deref().is_some_and(|u| u.starts_with("https://")));
                }
                MessageContent::Video(m) => assert_eq!(m.caption.as_deref(), Some("unboxing")),
                MessageContent::Audio(m) => assert!(m.is_voice()),
                MessageContent::Document(m) => {
                    assert_eq!(m.filename.as_deref(), Some("invoice-42.pdf"));
                    assert_eq!(m.caption.as_deref(), Some("invoice"));
                }
                MessageContent::Sticker(m) => assert_eq!(m.animated, Some(false)),
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(media.is_voice(), kind == "audio");
        }
    }
}

#[test]
fn location_as_numbers_and_as_strings() {
    for msg in inbound(fixture!("message.inbound/location.json")) {
        let MessageContent::Location(loc) = content(&msg) else {
            panic!("location")
        };
        assert_eq!(
            (loc.latitude, loc.longitude),
            (Some(12.9716), Some(77.5946))
        );
        assert_eq!(loc.name.as_deref(), Some("Cubbon Park"));
        assert_eq!(loc.address.as_deref(), Some("Kasturba Road, Bengaluru"));
    }
    for msg in inbound(fixture!("message.inbound/location_string_coordinates.json")) {
        let MessageContent::Location(loc) = content(&msg) else {
            panic!("location")
        };
        assert_eq!(
            (loc.latitude, loc.longitude),
            (Some(12.9716), Some(77.5946))
        );
        assert_eq!(loc.name, None);
    }
}

#[test]
fn shared_contacts() {
    for msg in inbound(fixture!("message.inbound/contacts.json")) {
        let MessageContent::Contacts(cards) = content(&msg) else {
            panic!("contacts")
        };
        assert_eq!(cards.len(), 1);
        let card = &cards[0];
        assert_eq!(
            card.name.as_ref().and_then(|n| n.formatted_name.as_deref()),
            Some("Ravi Kumar")
        );
        assert_eq!(card.phones[0].wa_id.as_deref(), Some("919777777777"));
        assert_eq!(card.phones[0].kind.as_deref(), Some("CELL"));
        assert_eq!(card.emails[0].email.as_deref(), Some("ravi@example.com"));
        assert_eq!(card.addresses[0].city.as_deref(), Some("Bengaluru"));
        assert_eq!(
            card.org.as_ref().and_then(|o| o.company.as_deref()),
            Some("Acme")
        );
        assert_eq!(
            card.urls[0].url.as_deref(),
            Some("https://acme.example.com")
        );
        assert_eq!(card.birthday.as_deref(), Some("1990-01-31"));
        // The sender profile is value-level `contacts[]`, not the shared card.
        assert_eq!(msg.sender_name(), Some("Asha"));
    }
}

#[test]
fn button() {
    for msg in inbound(fixture!("message.inbound/button.json")) {
        let MessageContent::Button(button) = content(&msg) else {
            panic!("button")
        };
        assert_eq!(button.payload.as_deref(), Some("TRACK_ORDER"));
        assert_eq!(button.text.as_deref(), Some("Track my order"));
        assert_eq!(
            msg.message().and_then(|m| m.reply_to()),
            Some("wamid.HBgMOTE4ODg4ODg4ODg4FQIAERgSQUJDREVG")
        );
    }
}

fn interactive(msg: &vobiz_webhooks::event::InboundEvent) -> &Interactive {
    match content(msg) {
        MessageContent::Interactive(i) => i,
        other => panic!("expected interactive, got {other:?}"),
    }
}

#[test]
fn interactive_replies() {
    for msg in inbound(fixture!("message.inbound/interactive_button_reply.json")) {
        let reply = interactive(&msg);
        assert_eq!(reply.kind(), "button_reply");
        assert_eq!(reply.reply_id(), Some("yes-confirm"));
        let Interactive::ButtonReply(b) = reply else {
            panic!("button_reply")
        };
        assert_eq!(b.title.as_deref(), Some("Yes"));
    }
    for msg in inbound(fixture!("message.inbound/interactive_list_reply.json")) {
        let Interactive::ListReply(row) = interactive(&msg) else {
            panic!("list_reply")
        };
        assert_eq!(row.id.as_deref(), Some("slot-10am"));
        assert_eq!(row.description.as_deref(), Some("Tomorrow morning"));
    }
    for msg in inbound(fixture!("message.inbound/interactive_nfm_reply.json")) {
        let Interactive::NfmReply(nfm) = interactive(&msg) else {
            panic!("nfm_reply")
        };
        assert_eq!(nfm.name.as_deref(), Some("flow"));
        let response: Value = nfm.response().expect("response_json is JSON");
        assert_eq!(response["flow_token"], "FT_1");
    }
    for msg in inbound(fixture!(
        "message.inbound/interactive_call_permission_reply.json"
    )) {
        let Interactive::CallPermissionReply(reply) = interactive(&msg) else {
            panic!("call_permission_reply")
        };
        assert!(reply.accepted());
        assert_eq!(reply.is_permanent, Some(false));
        assert_eq!(
            reply.expiration_timestamp.map(|t| t.unix_timestamp()),
            Some(1_711_965_600)
        );
        assert_eq!(reply.response_source.as_deref(), Some("user_action"));
    }
}

#[test]
fn reactions() {
    for msg in inbound(fixture!("message.inbound/reaction.json")) {
        let MessageContent::Reaction(r) = content(&msg) else {
            panic!("reaction")
        };
        assert_eq!(r.emoji.as_deref(), Some("👍"));
        assert!(!r.is_removal());
        assert_eq!(
            r.message_id.as_deref(),
            Some("wamid.HBgMOTE4ODg4ODg4ODg4FQIAERgSQUJDREVG")
        );
    }
    for msg in inbound(fixture!("message.inbound/reaction_removed.json")) {
        let MessageContent::Reaction(r) = content(&msg) else {
            panic!("reaction")
        };
        assert_eq!(r.emoji, None);
        assert!(r.is_removal());
    }
}

#[test]
fn order_system_unsupported() {
    for msg in inbound(fixture!("message.inbound/order.json")) {
        let MessageContent::Order(order) = content(&msg) else {
            panic!("order")
        };
        assert_eq!(order.catalog_id.as_deref(), Some("CAT123"));
        assert_eq!(order.product_items.len(), 2);
        assert_eq!(order.product_items[0].quantity, Some(2.0));
        assert_eq!(order.product_items[0].item_price, Some(499.5));
        assert_eq!(order.product_items[1].currency.as_deref(), Some("INR"));
    }
    for msg in inbound(fixture!("message.inbound/system.json")) {
        let MessageContent::System(system) = content(&msg) else {
            panic!("system")
        };
        assert_eq!(system.kind.as_deref(), Some("user_changed_number"));
        assert_eq!(system.wa_id.as_deref(), Some("917777777777"));
    }
    for msg in inbound(fixture!("message.inbound/unsupported.json")) {
        assert_eq!(content(&msg), &MessageContent::Unsupported);
        let message = msg.message().expect("message");
        assert_eq!(message.errors[0].code, Some(130_501));
        assert_eq!(
            message.errors[0].details(),
            Some("Message type is not currently supported")
        );
    }
}

#[test]
fn unknown_message_type_keeps_name_and_raw() {
    for msg in inbound(fixture!("message.inbound/unknown_type.json")) {
        assert_eq!(msg.kind(), Some("edit"));
        let MessageContent::Other(other) = content(&msg) else {
            panic!("other")
        };
        assert_eq!(other.kind, "edit");
        let raw: Value =
            serde_json::from_str(other.raw.as_ref().expect("raw").get()).expect("JSON");
        assert_eq!(raw["text"]["body"], "fixed typo");
        assert_eq!(msg.text(), None);
    }
}

fn statuses(body: &'static str) -> Vec<vobiz_webhooks::event::StatusEvent> {
    both(body)
        .into_iter()
        .enumerate()
        .map(|(i, event)| match event {
            VobizEvent::MessageStatus(st) => {
                assert_eq!(st.statuses().count(), 1);
                assert_eq!(st.waba_id().is_some(), i == 0);
                assert_eq!(st.phone_number_id(), Some("106540352242922"));
                st
            }
            other => panic!("expected message.status, got {other:?}"),
        })
        .collect()
}

#[test]
fn status_sent_delivered_read() {
    for st in statuses(fixture!("message.status/sent.json")) {
        assert_eq!(st.status(), Some(&StatusKind::Sent));
        let update = st.first().expect("status");
        assert_eq!(update.biz_opaque_callback_data.as_deref(), Some("order-42"));
        let conversation = update.conversation.as_ref().expect("conversation");
        assert_eq!(
            conversation
                .expiration_timestamp
                .map(|t| t.unix_timestamp()),
            Some(1_711_447_200)
        );
        assert_eq!(
            conversation.origin.as_ref().and_then(|o| o.kind.as_deref()),
            Some("service")
        );
        let pricing = update.pricing.as_ref().expect("pricing");
        assert_eq!(pricing.billable, Some(false));
        assert_eq!(pricing.pricing_model.as_deref(), Some("PMP"));
        assert_eq!(pricing.kind.as_deref(), Some("free_customer_service"));
        assert_eq!(pricing.category.as_deref(), Some("service"));
        assert_eq!(st.error(), None);
    }
    for st in statuses(fixture!("message.status/delivered.json")) {
        assert_eq!(st.status(), Some(&StatusKind::Delivered));
        assert_eq!(
            st.wamid(),
            Some("wamid.HBgMOTE4ODg4ODg4ODg4FQIAERgSQUJDREVG")
        );
        assert_eq!(st.recipient_id(), Some("918888888888"));
        assert_eq!(
            st.timestamp().map(|t| t.unix_timestamp()),
            Some(1_711_360_805)
        );
    }
    for st in statuses(fixture!("message.status/read.json")) {
        assert_eq!(st.status(), Some(&StatusKind::Read));
    }
}

#[test]
fn status_failed_with_errors() {
    for st in statuses(fixture!("message.status/failed.json")) {
        assert_eq!(st.status(), Some(&StatusKind::Failed));
        assert!(st.status().is_some_and(StatusKind::is_terminal));
        let error = st.error().expect("error");
        assert_eq!(error.code, Some(131_049));
        assert!(error
            .title
            .as_deref()
            .is_some_and(|t| t.contains("not delivered")));
        assert!(error
            .details()
            .is_some_and(|d| d.contains("healthy ecosystem")));
        assert!(error.href.is_some());
    }
}

#[test]
fn status_unknown_and_group() {
    for st in statuses(fixture!("message.status/played.json")) {
        assert_eq!(st.status(), Some(&StatusKind::Other("played".into())));
        assert!(st.raw_payload().get().contains("\"played\""));
    }
    for st in statuses(fixture!("message.status/group.json")) {
        let update = st.first().expect("status");
        assert!(update.is_group());
        assert_eq!(
            update.recipient_participant_id.as_deref(),
            Some("918888888888")
        );
    }
}

#[test]
fn status_precedence_drops_stale_updates() {
    use StatusKind::{Delivered, Failed, Read, Sent};
    assert!(Delivered.supersedes(&Sent) && Read.supersedes(&Delivered) && Read.supersedes(&Sent));
    assert!(!Sent.supersedes(&Delivered) && !Delivered.supersedes(&Read));
    assert!(!Read.supersedes(&Read));
    assert!(Failed.supersedes(&Read) && !Read.supersedes(&Failed) && !Failed.supersedes(&Failed));
    assert!(StatusKind::Other("played".into()).supersedes(&Read));
    assert!(!Read.supersedes(&Failed));
    assert_eq!(StatusKind::parse("Delivered"), Delivered);
    assert_eq!(Sent.cmp_progress(&Read), Some(std::cmp::Ordering::Less));
}

fn calls(body: &'static str) -> Vec<vobiz_webhooks::event::CallEvent> {
    both(body)
        .into_iter()
        .enumerate()
        .map(|(i, event)| match event {
            VobizEvent::Call(call) => {
                assert_eq!(call.waba_id().is_some(), i == 0);
                if i == 0 {
                    assert_eq!(call.changes()[0].field.as_deref(), Some("calls"));
                }
                call
            }
            other => panic!("expected call, got {other:?}"),
        })
        .collect()
}

#[test]
fn call_connect() {
    for call in calls(fixture!("call/connect.json")) {
        assert_eq!(call.event(), "connect");
        assert_eq!(call.name().as_str(), "call.connect");
        assert_eq!(
            call.call_id(),
            Some("wacid.HBgMOTE4ODg4ODg4ODg4FQIAEhgUM0EwRkY")
        );
        assert_eq!(call.sdp_type(), Some("offer"));
        assert!(call.sdp().is_some_and(|s| s.starts_with("v=0\r\n")));
        assert_eq!(call.state(), Some(&CallState::Ringing));
        assert_eq!(call.direction(), Some(&CallDirection::UserInitiated));
        assert_eq!(call.from(), Some("918888888888"));
        assert_eq!(call.to(), Some("919876543210"));
        assert_eq!(
            call.timestamp().map(|t| t.unix_timestamp()),
            Some(1_711_360_860)
        );
        assert_eq!(
            call.call().and_then(|c| c.event.as_deref()),
            Some("connect")
        );
    }
    for call in calls(fixture!("call/connect_business_initiated.json")) {
        assert_eq!(call.direction(), Some(&CallDirection::BusinessInitiated));
        assert_eq!(call.sdp_type(), Some("answer"));
        assert_eq!(call.state(), None);
        assert_eq!(call.contacts().next().and_then(|c| c.name()), Some("Asha"));
    }
}

#[test]
fn call_status_change_in_either_array() {
    for call in calls(fixture!("call/status_change.json")) {
        assert_eq!(call.event(), "status_change");
        assert_eq!(call.calls().count(), 0);
        let status = call.statuses().next().expect("status");
        assert_eq!(status.kind.as_deref(), Some("call"));
        assert_eq!(status.recipient_id.as_deref(), Some("918888888888"));
        assert_eq!(
            status.biz_opaque_callback_data.as_deref(),
            Some("campaign-7")
        );
        assert_eq!(call.call_id(), Some("wacid.ABGGFjFVU2AfAgo6V"));
        assert_eq!(call.state(), Some(&CallState::Accepted));
        assert_eq!(
            call.timestamp().map(|t| t.unix_timestamp()),
            Some(1_711_360_920)
        );
    }
    for call in calls(fixture!("call/status_change_calls.json")) {
        assert_eq!(call.statuses().count(), 0);
        // Lowercase (Vobiz) and uppercase (Meta) states parse alike.
        assert_eq!(call.state(), Some(&CallState::Accepted));
    }
}

#[test]
fn call_terminate() {
    for call in calls(fixture!("call/terminate.json")) {
        assert_eq!(call.event(), "terminate");
        assert_eq!(call.state(), Some(&CallState::Completed));
        assert_eq!(call.duration(), Some(180));
        let c = call.call().expect("call");
        assert_eq!(
            c.start_time.map(|t| t.unix_timestamp()),
            Some(1_711_360_865)
        );
        assert_eq!(c.end_time.map(|t| t.unix_timestamp()), Some(1_711_361_045));
        assert_eq!(call.sdp(), None);
    }
    for call in calls(fixture!("call/terminate_failed.json")) {
        assert_eq!(call.state(), Some(&CallState::Failed));
        assert_eq!(call.duration(), None);
        let error = call.errors().next().expect("value-level error");
        assert_eq!(error.code, Some(138_006));
        assert_eq!(
            error.details(),
            Some("The business did not accept the call in time")
        );
    }
}

#[test]
fn unknown_call_event_keeps_raw_payload() {
    for call in calls(fixture!("call/call_recording_available.json")) {
        assert_eq!(call.event(), "call_recording_available");
        assert_eq!(
            call.call_id(),
            Some("wacid.HBgMOTE4ODg4ODg4ODg4FQIAEhgUM0EwRkY")
        );
        let raw: Value = serde_json::from_str(call.raw_payload().get()).expect("JSON");
        let recording = if raw.get("entry").is_some() {
            &raw["entry"][0]["changes"][0]["value"]["calls"][0]["call_recording"]
        } else {
            &raw["calls"][0]["call_recording"]
        };
        assert_eq!(recording["audio"]["id"], "REC_MEDIA_1");
    }
}

#[test]
fn unknown_fields_at_every_level_are_ignored() {
    let payload = br#"{"object":"whatsapp_business_account","new_top":{"a":[1,2]},
      "entry":[{"id":"W","new_entry":true,"changes":[{"field":"messages","new_change":null,
        "value":{"messaging_product":"whatsapp","new_value":[{"x":1}],
          "metadata":{"phone_number_id":"P","new_meta":1},
          "contacts":[{"wa_id":"1","profile":{"name":"N","new_profile":"?"},"new_contact":[]}],
          "messages":[{"from":"1","id":"wamid.X","timestamp":"1711360800","type":"text",
            "new_message":{"deep":{"deeper":[1]}},"text":{"body":"hi","new_text":3}}]}}]}]}"#;
    let VobizEvent::MessageInbound(msg) =
        VobizEvent::from_payload(&EventType::MessageInbound, payload)
    else {
        panic!("inbound")
    };
    assert_eq!(msg.text(), Some("hi"));
    assert_eq!(msg.sender_name(), Some("N"));
    assert_eq!(msg.phone_number_id(), Some("P"));
    assert_eq!(msg.waba_id(), Some("W"));
    assert!(msg.raw_payload().get().contains("new_top"));
}

#[test]
fn wrong_json_types_never_fail_the_event() {
    let payload = br#"{"statuses":[
        {"id":1234,"status":"READ","timestamp":1711360810,"errors":"none","pricing":[]},
        "not an object",
        {"id":"wamid.2","status":["sent"],"timestamp":"garbage","conversation":"x"}]}"#;
    let VobizEvent::MessageStatus(st) =
        VobizEvent::from_payload(&EventType::MessageStatus, payload)
    else {
        panic!("status")
    };
    let all: Vec<_> = st.statuses().collect();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id.as_deref(), Some("1234"));
    assert_eq!(all[0].status, Some(StatusKind::Read));
    assert_eq!(
        all[0].timestamp.map(|t| t.unix_timestamp()),
        Some(1_711_360_810)
    );
    assert!(all[0].errors.is_empty() && all[0].pricing.is_none());
    assert_eq!(all[1].status, None);
    assert_eq!(all[1].timestamp, None);
}

#[test]
fn undocumented_payload_shapes_keep_the_raw_json() {
    let types = [
        EventType::MessageInbound,
        EventType::MessageStatus,
        EventType::parse("call.connect"),
        EventType::parse("contact.updated"),
    ];
    for ty in &types {
        for payload in ["[1,2]", "\"str\"", "{}", "null", "42", "{\"entry\":7}"] {
            let event = VobizEvent::from_payload(ty, payload.as_bytes());
            assert_eq!(&event.event_type(), ty);
            assert_eq!(event.raw_payload().get(), payload);
            match &event {
                VobizEvent::MessageInbound(e) => assert_eq!(e.messages().count(), 0),
                VobizEvent::MessageStatus(e) => assert_eq!(e.statuses().count(), 0),
                VobizEvent::Call(e) => assert_eq!(e.calls().count(), 0),
                VobizEvent::Unknown(e) => assert_eq!(e.event_type(), "contact.updated"),
                _ => unreachable!(),
            }
        }
        // Not JSON at all: still an event, with `null` as its raw payload.
        let event = VobizEvent::from_payload(ty, b"\xff not json");
        assert_eq!(event.raw_payload().get(), "null");
    }
}

#[test]
fn unknown_event_type_through_the_envelope() {
    let body = r#"{"event_id":"e1","event_type":"contact.updated","payload":{"a":[1,{"b":2}]}}"#;
    let verified =
        VerifiedEvent::from_trusted_body(Bytes::from_static(body.as_bytes())).expect("envelope");
    let VobizEvent::Unknown(unknown) = verified.event() else {
        panic!("unknown")
    };
    assert_eq!(unknown.event_type(), "contact.updated");
    assert_eq!(unknown.payload().get(), r#"{"a":[1,{"b":2}]}"#);
}

#[test]
fn every_entry_change_message_and_status_is_kept() {
    let payload = br#"{"object":"whatsapp_business_account","entry":[
      {"id":"W1","changes":[
        {"field":"messages","value":{"contacts":[{"wa_id":"1","profile":{"name":"One"}},
                                                  {"wa_id":"2","profile":{"name":"Two"}}],
          "messages":[{"from":"1","id":"m1","type":"text","text":{"body":"a"}},
                      {"from":"2","id":"m2","type":"text","text":{"body":"b"}}]}},
        {"field":"messages","value":{"messages":[{"from":"3","id":"m3","type":"text","text":{"body":"c"}}]}}]},
      {"id":"W2","changes":[
        {"field":"messages","value":{"messages":[{"from":"4","id":"m4","type":"reaction",
          "reaction":{"message_id":"m1","emoji":"x"}}],
          "statuses":[{"id":"s1","status":"sent"},{"id":"s2","status":"read"}]}}]}]}"#;
    let VobizEvent::MessageInbound(msg) =
        VobizEvent::from_payload(&EventType::MessageInbound, payload)
    else {
        panic!("inbound")
    };
    let ids: Vec<_> = msg.messages().filter_map(|m| m.id.as_deref()).collect();
    assert_eq!(ids, ["m1", "m2", "m3", "m4"]);
    let wabas: Vec<_> = msg.changes().iter().map(|c| c.waba_id.as_deref()).collect();
    assert_eq!(wabas, [Some("W1"), Some("W1"), Some("W2")]);
    let names: Vec<_> = msg
        .messages()
        .map(|m| msg.sender_of(m).and_then(|c| c.name()))
        .collect();
    assert_eq!(names, [Some("One"), Some("Two"), None, None]);

    let VobizEvent::MessageStatus(st) =
        VobizEvent::from_payload(&EventType::MessageStatus, payload)
    else {
        panic!("status")
    };
    let ids: Vec<_> = st.statuses().filter_map(|s| s.id.as_deref()).collect();
    assert_eq!(ids, ["s1", "s2"]);
}

#[test]
fn serialized_messages_read_back() {
    for body in [
        fixture!("message.inbound/interactive_nfm_reply.json"),
        fixture!("message.inbound/unknown_type.json"),
        fixture!("message.inbound/contacts.json"),
    ] {
        let VobizEvent::MessageInbound(msg) = full(body) else {
            panic!("inbound")
        };
        let value = &msg.changes()[0].value;
        let json = serde_json::to_string(value).expect("serializes");
        let back: vobiz_webhooks::event::InboundValue =
            serde_json::from_str(&json).expect("reads back");
        assert_eq!(&back, value);
    }
}
