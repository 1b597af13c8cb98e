//! Items: every fixture, Meta's own samples, raw and escaped text, large batches, redeliveries,
//! failures, the router, the replay window.

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use vobiz_webhooks::meta::MetaWebhookLayer;
use vobiz_webhooks::testing::{Fixture, MetaPost};
use vobiz_webhooks::{InboundEvent, VerifiedEvent};

use super::{app, message, notification, send, status, status_update, Seen, SECRET};

/// The items a Vobiz fixture's payload holds, keyed as the Meta leg keys them.
fn expected_items(fixture: Fixture) -> Vec<(String, String)> {
    let envelope: Value = serde_json::from_str(fixture.body()).expect("fixture");
    let mut items = Vec::new();
    for entry in envelope["payload"]["entry"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for change in entry["changes"].as_array().into_iter().flatten() {
            let field = change["field"].as_str().unwrap_or("unknown");
            let value = &change["value"];
            let before = items.len();
            for message in value["messages"].as_array().into_iter().flatten() {
                let id = message["id"].as_str().expect("wamid");
                items.push((id.to_owned(), "message.inbound".to_owned()));
            }
            for status in value["statuses"].as_array().into_iter().flatten() {
                let key = format!(
                    "{}:{}",
                    status["id"].as_str().expect("id"),
                    status["status"].as_str().expect("status")
                );
                let of_call = field == "calls" || status["type"] == "call";
                let kind = if of_call {
                    "call.status_change"
                } else {
                    "message.status"
                };
                items.push((key, kind.to_owned()));
            }
            for call in value["calls"].as_array().into_iter().flatten() {
                let event = call["event"].as_str().expect("event");
                let key = format!("{}:{event}", call["id"].as_str().expect("id"));
                items.push((key, format!("call.{event}")));
            }
            if items.len() == before {
                items.push(("sha256:".to_owned(), format!("meta.{field}")));
            }
        }
    }
    items
}

#[tokio::test]
async fn every_fixture_sent_as_a_meta_post_reaches_the_handler_once_per_item() {
    for fixture in Fixture::ALL {
        let seen = Seen::default();
        let app = app(MetaWebhookLayer::new(SECRET), &seen);
        let post = MetaPost::fixture(*fixture);
        assert_eq!(status(&app, &post).await, StatusCode::OK, "{fixture}");
        let expected = expected_items(*fixture);
        let calls = seen.calls();
        assert_eq!(calls.len(), expected.len(), "{fixture}: {calls:?}");
        for ((key, kind), (want_key, want_kind)) in calls.iter().zip(&expected) {
            assert!(
                key.starts_with(want_key.as_str()),
                "{fixture}: {key} vs {want_key}"
            );
            assert_eq!(kind, want_kind, "{fixture}");
        }
        // Meta's retry of the same bytes runs nothing again.
        seen.clear();
        assert_eq!(status(&app, &post).await, StatusCode::OK, "{fixture}");
        assert!(seen.calls().is_empty(), "{fixture} ran twice");
    }
}

/// Meta's documented samples (WhatsApp Cloud API webhook reference), byte for byte.
const META_TEXT_SAMPLE: &str = r#"{"object": "whatsapp_business_account","entry": [{"id": "WHATSAPP_BUSINESS_ACCOUNT_ID","changes": [{"value": {"messaging_product": "whatsapp","metadata": {"display_phone_number": "PHONE_NUMBER","phone_number_id": "PHONE_NUMBER_ID"},"contacts": [{"profile": {"name": "NAME"},"wa_id": "PHONE_NUMBER"}],"messages": [{"from": "PHONE_NUMBER","id": "wamid.ID","timestamp": "1711360800","text": {"body": "MESSAGE_BODY"},"type": "text"}]},"field": "messages"}]}]}"#;
const META_STATUS_SAMPLE: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"WHATSAPP_BUSINESS_ACCOUNT_ID","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"PHONE_NUMBER","phone_number_id":"PHONE_NUMBER_ID"},"statuses":[{"id":"WHATSAPP_MESSAGE_ID","status":"sent","timestamp":"1711360900","recipient_id":"PHONE_NUMBER","conversation":{"id":"CONVERSATION_ID","expiration_timestamp":"1711447300","origin":{"type":"user_initiated"}},"pricing":{"billable":true,"pricing_model":"CBP","category":"user_initiated"}}]},"field":"messages"}]}]}"#;
const META_TEMPLATE_SAMPLE: &str = r#"{"entry":[{"id":"WHATSAPP_BUSINESS_ACCOUNT_ID","time":1674864290,"changes":[{"value":{"event":"APPROVED","message_template_id":12345678,"message_template_name":"my_message_template","message_template_language":"en-US","reason":"NONE"},"field":"message_template_status_update"}]}],"object":"whatsapp_business_account"}"#;

#[tokio::test]
async fn meta_s_documented_samples_are_typed_items() {
    let seen = Seen::default();
    let app = app(MetaWebhookLayer::new(SECRET), &seen);
    for sample in [META_TEXT_SAMPLE, META_STATUS_SAMPLE, META_TEMPLATE_SAMPLE] {
        assert_eq!(status(&app, &MetaPost::new(sample)).await, StatusCode::OK);
    }
    let calls = seen.calls();
    assert_eq!(calls[0], ("wamid.ID".into(), "message.inbound".into()));
    assert_eq!(
        calls[1],
        ("WHATSAPP_MESSAGE_ID:sent".into(), "message.status".into())
    );
    assert!(calls[2].0.starts_with("sha256:"), "{:?}", calls[2]);
    assert_eq!(calls[2].1, "meta.message_template_status_update");
    assert_eq!(calls.len(), 3);
}

#[tokio::test]
async fn items_read_as_vobiz_events_with_their_entry_metadata_and_sender() {
    let texts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = texts.clone();
    let handler = move |item: VerifiedEvent, message: InboundEvent| {
        let sink = sink.clone();
        async move {
            sink.lock().expect("lock").push((
                item.event_id().to_owned(),
                message.text().map(str::to_owned),
                message.sender_name().map(str::to_owned),
                message.waba_id().map(str::to_owned),
                message.phone_number_id().map(str::to_owned),
                item.occurred_at().map(|at| at.unix_timestamp()),
                message.messages().count(),
            ));
        }
    };
    let app = Router::new().route(
        "/webhooks/meta",
        post(handler).layer(MetaWebhookLayer::new(SECRET)),
    );
    let post = notification(&[message("wamid.A", "one"), message("wamid.B", "two")], &[]);
    assert_eq!(status(&app, &post).await, StatusCode::OK);
    let seen = texts.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2);
    let (key, text, name, waba, phone, at, count) = &seen[1];
    assert_eq!(key, "wamid.B");
    assert_eq!(text.as_deref(), Some("two"));
    assert_eq!(name.as_deref(), Some("Asha"));
    assert_eq!(waba.as_deref(), Some("102290129340398"));
    assert_eq!(phone.as_deref(), Some("106540352242922"));
    assert_eq!(*at, Some(1_711_360_800));
    assert_eq!(*count, 1, "one item per event");
}

/// A text message notification around `text` exactly as written (raw or escaped).
fn text_body(wamid: &str, text_json: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"W","changes":[{{"field":"messages","value":{{"messaging_product":"whatsapp","messages":[{{"from":"1","id":"{wamid}","timestamp":"1711360800","type":"text","text":{{"body":"{text_json}"}}}}]}}}}]}}]}}"#
    )
}

#[tokio::test]
async fn raw_utf8_and_escaped_bodies_verify_over_their_bytes() {
    let texts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = texts.clone();
    let handler = move |message: InboundEvent| {
        let sink = sink.clone();
        async move {
            sink.lock()
                .expect("lock")
                .push(message.text().map(str::to_owned));
        }
    };
    let app = Router::new().route(
        "/webhooks/meta",
        post(handler).layer(MetaWebhookLayer::new(SECRET)),
    );
    let expected = "Café ☕ 👍 a@b.c 100% </path> /x";
    let raw = text_body("wamid.raw", "Café ☕ 👍 a@b.c 100% </path> /x");
    let escaped = text_body(
        "wamid.esc",
        r"Caf\u00e9 \u2615 \ud83d\udc4d a\u0040b.c 100\u0025 \u003C\/path> \/x",
    );
    for body in [raw, escaped] {
        let post = MetaPost::new(body.clone());
        assert_eq!(status(&app, &post).await, StatusCode::OK, "{body}");
        // A re-serialisation of the same JSON does not verify: the bytes as received do.
        let reserialised: Value = serde_json::from_str(&body).expect("json");
        let tampered = MetaPost::new(serde_json::to_vec(&reserialised).expect("json"));
        let request = {
            let mut request = tampered.request(SECRET);
            let header = post.headers_for(SECRET)["x-hub-signature-256"].clone();
            request.headers_mut().insert("x-hub-signature-256", header);
            request
        };
        let response = tower::ServiceExt::oneshot(app.clone(), request)
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{body}");
    }
    let texts = texts.lock().expect("lock").clone();
    assert_eq!(
        texts,
        vec![Some(expected.to_owned()), Some(expected.to_owned())]
    );
}

#[tokio::test]
async fn a_batch_of_1000_items_runs_each_once() {
    let seen = Seen::default();
    let app = app(MetaWebhookLayer::new(SECRET), &seen);
    let messages: Vec<Value> = (0..1000)
        .map(|i| message(&format!("wamid.batch.{i}"), "hi"))
        .collect();
    let post = notification(&messages, &[]);
    let started = std::time::Instant::now();
    assert_eq!(status(&app, &post).await, StatusCode::OK);
    let elapsed = started.elapsed();
    let mut keys = seen.keys();
    assert_eq!(keys.len(), 1000);
    assert_eq!(keys[0], "wamid.batch.0", "in the notification's order");
    assert_eq!(keys[999], "wamid.batch.999");
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 1000, "each item once");
    seen.clear();
    assert_eq!(status(&app, &post).await, StatusCode::OK);
    assert!(seen.keys().is_empty(), "a retry runs none again");
    crate::support::figure("meta-1000", format!("1000 items in one POST: {elapsed:?}"));
}

#[tokio::test]
async fn a_redelivery_runs_only_the_new_items() {
    let seen = Seen::default();
    let app = app(MetaWebhookLayer::new(SECRET), &seen);
    let first = notification(&[message("wamid.1", "a"), message("wamid.2", "b")], &[]);
    assert_eq!(status(&app, &first).await, StatusCode::OK);
    seen.clear();
    let rebatched = notification(
        &[message("wamid.2", "b"), message("wamid.3", "c")],
        &[status_update("wamid.1", "read")],
    );
    assert_eq!(status(&app, &rebatched).await, StatusCode::OK);
    assert_eq!(seen.keys(), vec!["wamid.3", "wamid.1:read"]);
}

#[tokio::test]
async fn sent_delivered_delivered_read_of_one_message_runs_three() {
    let seen = Seen::default();
    let app = app(MetaWebhookLayer::new(SECRET), &seen);
    let statuses = ["sent", "delivered", "delivered", "read"].map(|s| status_update("wamid.S", s));
    assert_eq!(
        status(&app, &notification(&[], &statuses)).await,
        StatusCode::OK
    );
    assert_eq!(
        seen.calls(),
        ["sent", "delivered", "read"]
            .map(|s| (format!("wamid.S:{s}"), "message.status".to_owned()))
            .to_vec()
    );
}

#[tokio::test]
async fn a_failing_item_fails_the_post_and_only_it_runs_on_the_retry() {
    let seen = Seen::default();
    seen.fail
        .lock()
        .expect("lock")
        .insert("wamid.f2".to_owned());
    let app = app(MetaWebhookLayer::new(SECRET), &seen);
    let post = notification(
        &[
            message("wamid.f1", "a"),
            message("wamid.f2", "b"),
            message("wamid.f3", "c"),
        ],
        &[],
    );
    let response = send(&app, &post).await;
    assert_eq!(
        response.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "the handler's answer"
    );
    assert_eq!(
        seen.keys(),
        vec!["wamid.f1", "wamid.f2", "wamid.f3"],
        "the others still ran"
    );

    // Meta retries the same POST: only the failed item runs; still failing, still non-2xx.
    seen.clear();
    assert_eq!(status(&app, &post).await, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(seen.keys(), vec!["wamid.f2"]);

    seen.clear();
    seen.fail.lock().expect("lock").clear();
    assert_eq!(status(&app, &post).await, StatusCode::OK);
    assert_eq!(seen.keys(), vec!["wamid.f2"]);
}

#[cfg(feature = "router")]
#[tokio::test]
async fn items_reach_the_vobiz_router_s_handlers_by_kind() {
    use std::sync::{Arc, Mutex};
    use vobiz_webhooks::testing::TestEvent;
    use vobiz_webhooks::{CallEvent, StatusEvent, VobizEvent, VobizRouter};

    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (a, b, c, d) = (log.clone(), log.clone(), log.clone(), log.clone());
    let router = VobizRouter::new()
        .on_message(move |message: InboundEvent| async move {
            a.lock()
                .expect("lock")
                .push(format!("message {:?}", message.wamid()));
        })
        .on_status(move |status: StatusEvent| async move {
            b.lock().expect("lock").push(format!(
                "status {:?}",
                status.status().map(|s| s.as_str().to_owned())
            ));
        })
        .on_call(move |call: CallEvent| async move {
            c.lock()
                .expect("lock")
                .push(format!("call {}", call.event()));
        })
        .fallback(move |event: VobizEvent| async move {
            d.lock()
                .expect("lock")
                .push(format!("other {}", event.event_type()));
        });
    let app = Router::new().route(
        "/webhooks/meta",
        post(router).layer(MetaWebhookLayer::new(SECRET)),
    );
    let post = MetaPost::from_events([
        &TestEvent::inbound_text("hi"),
        &TestEvent::status("wamid.R", "delivered"),
        &TestEvent::fixture(Fixture::CallConnect),
    ]);
    assert_eq!(status(&app, &post).await, StatusCode::OK);
    assert_eq!(
        status(&app, &MetaPost::new(META_TEMPLATE_SAMPLE)).await,
        StatusCode::OK
    );
    let log = log.lock().expect("lock").clone();
    assert_eq!(log.len(), 4, "{log:?}");
    assert!(log[0].starts_with("message Some(\"wamid."), "{log:?}");
    assert_eq!(log[1], "status Some(\"delivered\")");
    assert_eq!(log[2], "call connect");
    assert_eq!(log[3], "other meta.message_template_status_update");
}

#[tokio::test]
async fn the_replay_window_skips_old_items_without_failing_the_post() {
    let seen = Seen::default();
    let layer = MetaWebhookLayer::new(SECRET)
        .replay_window(Duration::from_secs(3600), Duration::from_secs(60));
    let app = app(layer, &seen);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut fresh = message("wamid.now", "x");
    fresh["timestamp"] = Value::from(now.to_string());
    let mut ahead = message("wamid.ahead", "x");
    ahead["timestamp"] = Value::from((now + 600).to_string());
    let mut undated = message("wamid.undated", "x");
    undated.as_object_mut().expect("object").remove("timestamp");
    let old = message("wamid.old", "x"); // 2024
    let post = notification(&[old, fresh, ahead, undated], &[]);
    assert_eq!(status(&app, &post).await, StatusCode::OK);
    assert_eq!(seen.keys(), vec!["wamid.now", "wamid.undated"]);

    // Off by default: the same old item is handled.
    let seen = Seen::default();
    let app = super::app(MetaWebhookLayer::new(SECRET), &seen);
    let post = notification(&[message("wamid.old", "x")], &[]);
    assert_eq!(status(&app, &post).await, StatusCode::OK);
    assert_eq!(seen.keys(), vec!["wamid.old"]);
}

#[tokio::test]
async fn one_store_for_both_legs_handles_an_update_once_whichever_leg_brings_it() {
    use std::sync::Arc;
    use tower::ServiceExt;
    use vobiz_webhooks::testing::TestEvent;
    use vobiz_webhooks::{MemoryStore, VobizWebhookLayer};

    let store = Arc::new(MemoryStore::new());
    let seen = Seen::default();
    let meta = app(MetaWebhookLayer::new(SECRET).store(store.clone()), &seen);
    let recorder = seen.clone();
    let vobiz = Router::new().route(
        "/webhooks/vobiz",
        post(move |item: VerifiedEvent| {
            let recorder = recorder.clone();
            async move {
                recorder
                    .calls
                    .lock()
                    .expect("lock")
                    .push((item.event_id().to_owned(), "vobiz".to_owned()));
            }
        })
        .layer(
            VobizWebhookLayer::new("vobiz-secret")
                .store(store)
                .dedup_on_content(true),
        ),
    );
    let update = TestEvent::status("wamid.both", "read");
    assert_eq!(
        status(&meta, &MetaPost::from_events([&update])).await,
        StatusCode::OK
    );
    let response = vobiz
        .oneshot(update.request("vobiz-secret"))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-vobiz-duplicate"], "completed");
    assert_eq!(
        seen.keys(),
        vec!["wamid.both:read"],
        "handled once, by the Meta leg"
    );
}
