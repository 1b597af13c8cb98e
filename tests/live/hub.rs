//! The hub alone: what is streamed as what, ids, replay, resync, bounds, filters.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use vobiz_webhooks::live::{Access, LiveHub, Next, StreamEvent, Subscription};
use vobiz_webhooks::testing::{Fixture, TestEvent};
use vobiz_webhooks::VerifiedEvent;

/// The verified record of `event` (as the layer would hand it to the handler).
pub fn verified(event: &TestEvent) -> VerifiedEvent {
    VerifiedEvent::from_trusted_body(event.body_bytes()).expect("a valid envelope")
}

fn fixture(fixture: Fixture) -> VerifiedEvent {
    verified(&TestEvent::fixture(fixture))
}

fn frame_json(next: Option<Next>) -> Value {
    match next {
        Some(Next::Frame(frame)) => serde_json::from_str(frame.json()).expect("frame JSON"),
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn drain(subscription: &mut Subscription) -> Vec<Next> {
    std::iter::from_fn(|| subscription.try_recv()).collect()
}

fn ids(nexts: &[Next]) -> Vec<Option<u64>> {
    nexts
        .iter()
        .map(|next| match next {
            Next::Frame(frame) => Some(frame.id()),
            _ => None,
        })
        .collect()
}

#[test]
fn every_fixture_maps_to_its_stream_event() {
    let hub = LiveHub::builder().first_id(1).build();
    let mut client = hub.subscribe(Access::all(), None);
    for (n, fixture) in Fixture::ALL.iter().enumerate() {
        let expected = match fixture.event_type() {
            "message.inbound" => "message.created",
            "message.status" => "message.updated",
            "call.connect" => "call.incoming",
            other if other.starts_with("call.") => "call.status",
            other => panic!("a fixture of an unexpected type {other}"),
        };
        let id = hub.publish(&verified(&TestEvent::fixture(*fixture)));
        assert_eq!(id, Some(n as u64 + 1), "{}", fixture.name());
        let json = frame_json(client.try_recv());
        assert_eq!(json["type"], expected, "{}", fixture.name());
        assert_eq!(json["id"], n as u64 + 1);
    }
    // Types that are not streamed publish nothing and take no id.
    for other in ["template.status", "message.echo", "contact.updated"] {
        let event = verified(&TestEvent::raw(other, serde_json::json!({})));
        assert_eq!(hub.publish(&event), None, "{other}");
    }
    assert!(client.try_recv().is_none());
    assert_eq!(hub.next_id(), Fixture::ALL.len() as u64 + 1);
    assert_eq!(
        StreamEvent::of(&vobiz_webhooks::EventType::parse("call.connect")),
        Some(StreamEvent::CallIncoming)
    );
}

#[test]
fn frames_carry_the_envelope_and_a_compact_summary() {
    let hub = LiveHub::builder().first_id(7).build();
    let mut client = hub.subscribe(Access::all(), None);

    let text = TestEvent::fixture(Fixture::InboundText).event_id("evt_text");
    hub.publish(&verified(&text));
    let json = frame_json(client.try_recv());
    assert_eq!(json["id"], 7);
    assert_eq!(json["type"], "message.created");
    assert_eq!(json["event_id"], "evt_text");
    assert_eq!(json["account_id"], "MA_XXXXXXXX");
    assert!(json["occurred_at"]
        .as_str()
        .is_some_and(|at| at.ends_with('Z')));
    let data = &json["data"];
    assert_eq!(data["from"], "918888888888");
    assert_eq!(data["name"], "Asha");
    assert_eq!(data["kind"], "text");
    assert_eq!(data["text"], "Hi, is my order shipped?");
    assert_eq!(data["wamid"], "wamid.HBgMOTE4ODg4ODg4ODg4FQIAEhggTEXT");
    assert_eq!(data["phone_number_id"], "106540352242922");

    hub.publish(&fixture(Fixture::InboundImage));
    let data = frame_json(client.try_recv())["data"].clone();
    assert_eq!(data["kind"], "image");
    assert!(data["media_id"].is_string() && data["mime_type"].is_string());
    assert!(
        data.get("text").is_none(),
        "no text key on an image: {data}"
    );

    hub.publish(&fixture(Fixture::StatusRead));
    let json = frame_json(client.try_recv());
    assert_eq!(json["type"], "message.updated");
    assert_eq!(json["data"]["status"], "read");
    assert_eq!(
        json["data"]["wamid"],
        "wamid.HBgMOTE4ODg4ODg4ODg4FQIAERgSQUJDREVG"
    );
    assert_eq!(json["data"]["recipient_id"], "918888888888");

    hub.publish(&fixture(Fixture::StatusFailed));
    let data = frame_json(client.try_recv())["data"].clone();
    assert_eq!(data["status"], "failed");
    assert!(data["error_code"].is_i64(), "{data}");

    hub.publish(&fixture(Fixture::CallConnect));
    let json = frame_json(client.try_recv());
    assert_eq!(json["type"], "call.incoming");
    assert!(json["data"]["call_id"].is_string());
    assert_eq!(json["data"]["event"], "connect");

    hub.publish(&fixture(Fixture::CallTerminate));
    let json = frame_json(client.try_recv());
    assert_eq!(json["type"], "call.status");
    assert_eq!(json["data"]["event"], "terminate");

    // No account and no time: null, not missing.
    let bare = TestEvent::raw("message.inbound", serde_json::json!({}))
        .account_id(None)
        .occurred_at(None);
    hub.publish(&verified(&bare));
    let json = frame_json(client.try_recv());
    assert!(
        json["account_id"].is_null() && json["occurred_at"].is_null(),
        "{json}"
    );
    assert_eq!(json["data"], serde_json::json!({}));
}

#[test]
fn an_odd_payload_still_makes_valid_json() {
    let hub = LiveHub::builder().first_id(1).build();
    let mut client = hub.subscribe(Access::all(), None);
    for payload in [r#"null"#, r#"[1,2]"#, r#""x""#, r#"{"messages":"nope"}"#] {
        for kind in [
            "message.inbound",
            "message.status",
            "call.connect",
            "call.x",
        ] {
            let event = TestEvent::payload_json(kind, payload).expect("JSON");
            hub.publish(&verified(&event));
            let json = frame_json(client.try_recv());
            assert!(json["data"].is_object(), "{kind} {payload}: {json}");
        }
    }
    let body = Bytes::from_static(br#"{"event_id":"e\"1","event_type":"message.inbound"}"#);
    hub.publish(&VerifiedEvent::from_trusted_body(body).expect("envelope"));
    assert_eq!(frame_json(client.try_recv())["event_id"], "e\"1");
}

#[test]
fn ids_increase_by_one_in_publish_order_for_every_client() {
    let hub = LiveHub::builder().first_id(100).build();
    let mut a = hub.subscribe(Access::all(), None);
    let mut b = hub.subscribe(Access::all(), None);
    for _ in 0..50 {
        hub.publish(&fixture(Fixture::InboundText));
    }
    let expected: Vec<_> = (100..150).map(Some).collect();
    assert_eq!(ids(&drain(&mut a)), expected);
    assert_eq!(ids(&drain(&mut b)), expected);
}

#[test]
fn a_new_client_gets_only_new_frames_and_since_0_gets_the_buffer() {
    let hub = LiveHub::builder().first_id(1).build();
    hub.publish(&fixture(Fixture::InboundText));
    hub.publish(&fixture(Fixture::StatusRead));
    let mut fresh = hub.subscribe(Access::all(), None);
    assert!(fresh.try_recv().is_none());
    let mut everything = hub.subscribe(Access::all(), Some(0));
    assert_eq!(ids(&drain(&mut everything)), [Some(1), Some(2)]);
}

#[test]
fn resume_replays_what_was_missed_then_live_without_gap_or_duplicate() {
    let hub = LiveHub::builder().first_id(1).build();
    for _ in 0..5 {
        hub.publish(&fixture(Fixture::InboundText));
    }
    let mut resumed = hub.subscribe(Access::all(), Some(3));
    hub.publish(&fixture(Fixture::InboundText));
    assert_eq!(ids(&drain(&mut resumed)), [Some(4), Some(5), Some(6)]);
    // Up to date: nothing replayed, no resync.
    let mut current = hub.subscribe(Access::all(), Some(6));
    assert!(current.try_recv().is_none());
}

#[test]
fn resume_past_the_buffer_or_from_another_process_gets_resync_then_live() {
    let hub = LiveHub::builder().first_id(1).replay_capacity(3).build();
    for _ in 0..10 {
        hub.publish(&fixture(Fixture::InboundText));
    }
    // 7, 8, 9, 10 are buffered: after 6 nothing is missing; after 5, frame 6 is gone.
    let mut fine = hub.subscribe(Access::all(), Some(7));
    assert_eq!(ids(&drain(&mut fine)), [Some(8), Some(9), Some(10)]);
    let mut gap = hub.subscribe(Access::all(), Some(5));
    let mut ahead = hub.subscribe(Access::all(), Some(1_000));
    hub.publish(&fixture(Fixture::InboundText));
    for client in [&mut gap, &mut ahead] {
        let got = drain(client);
        assert!(matches!(got.first(), Some(Next::Resync)), "{got:?}");
        assert_eq!(ids(&got[1..]), [Some(11)], "live after the resync");
    }
}

#[tokio::test(start_paused = true)]
async fn frames_leave_the_replay_buffer_after_its_age() {
    let hub = LiveHub::builder()
        .first_id(1)
        .replay_age(Duration::from_secs(60))
        .build();
    hub.publish(&fixture(Fixture::InboundText));
    tokio::time::advance(Duration::from_secs(45)).await;
    hub.publish(&fixture(Fixture::InboundText));
    tokio::time::advance(Duration::from_secs(30)).await;
    // Frame 1 is 75 s old (gone), frame 2 45 s (kept).
    let mut after_1 = hub.subscribe(Access::all(), Some(1));
    assert_eq!(ids(&drain(&mut after_1)), [Some(2)]);
    let mut after_0 = hub.subscribe(Access::all(), Some(0));
    assert_eq!(ids(&drain(&mut after_0)), [Some(2)]);
    tokio::time::advance(Duration::from_secs(31)).await;
    let mut resumes_late = hub.subscribe(Access::all(), Some(1));
    assert!(matches!(resumes_late.try_recv(), Some(Next::Resync)));
}

#[tokio::test]
async fn a_full_client_queue_gets_resync_and_is_dropped_others_are_not() {
    let hub = LiveHub::builder().first_id(1).client_queue(4).build();
    let mut slow = hub.subscribe(Access::all(), None);
    let mut fast = hub.subscribe(Access::all(), None);
    let mut fast_got = Vec::new();
    for _ in 0..10 {
        hub.publish(&fixture(Fixture::InboundText));
        fast_got.extend(drain(&mut fast));
    }
    assert_eq!(fast_got.len(), 10);
    assert!(
        matches!(slow.recv().await, Some(Next::Resync)),
        "resync first"
    );
    assert_eq!(hub.subscribers(), 1, "the slow client left the hub");
    let end = tokio::time::timeout(Duration::from_secs(5), slow.recv()).await;
    assert!(matches!(end, Ok(None)), "then the end: {end:?}");
}

#[test]
fn access_filters_what_each_client_sees() {
    let hub = LiveHub::builder().first_id(1).build();
    let mut acc_1 = hub.subscribe(Access::accounts(["acc_1"]), None);
    let mut number = hub.subscribe(
        Access::filter(|frame| frame.phone_number_id() == Some("106540352242922")),
        None,
    );
    let one = TestEvent::fixture(Fixture::InboundText).account_id(Some("acc_1".into()));
    let two =
        TestEvent::raw("message.inbound", serde_json::json!({})).account_id(Some("acc_2".into()));
    hub.publish(&verified(&one));
    hub.publish(&verified(&two));
    assert_eq!(ids(&drain(&mut acc_1)), [Some(1)]);
    assert_eq!(ids(&drain(&mut number)), [Some(1)]);
    // Replay is filtered the same way.
    let mut acc_2 = hub.subscribe(Access::accounts(["acc_2"]), Some(0));
    assert_eq!(ids(&drain(&mut acc_2)), [Some(2)]);
}

#[tokio::test]
async fn close_ends_every_subscription_and_dropping_one_unsubscribes() {
    let hub = LiveHub::builder().first_id(1).build();
    let dropped = hub.subscribe(Access::all(), None);
    let mut open = hub.subscribe(Access::all(), None);
    assert_eq!(hub.subscribers(), 2);
    drop(dropped);
    assert_eq!(hub.subscribers(), 1);
    hub.close();
    assert!(open.recv().await.is_none());
    assert_eq!(hub.publish(&fixture(Fixture::InboundText)), None);
    let mut late = hub.subscribe(Access::all(), None);
    assert!(late.recv().await.is_none());
}
