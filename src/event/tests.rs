//! The event model on hostile and mutated payloads.

use super::*;

#[test]
fn garbage_never_panics() {
    let types = [
        EventType::MessageInbound,
        EventType::MessageStatus,
        EventType::parse("call.connect"),
        EventType::parse("x"),
    ];
    let inputs: [&[u8]; 10] = [
        b"",
        b"null",
        b"\xff\xfe",
        b"[1,2]",
        b"\"str\"",
        b"{}",
        b"{\"entry\":\"x\"}",
        b"{\"entry\":[{\"changes\":[{\"value\":[]}]}]}",
        b"{\"messages\":{\"a\":1},\"statuses\":7,\"calls\":[null,1,\"x\"]}",
        b"{\"entry\":[{\"changes\":[{\"value\":{\"messages\":[{\"type\":5,\"text\":[]}]}}]}]}",
    ];
    for ty in &types {
        for input in inputs {
            let event = VobizEvent::from_payload(ty, input);
            assert_eq!(&event.event_type(), ty);
            let _ = serde_json::to_string(&event).expect("serializes");
        }
    }
}

thread_local! {
    /// Set: `read` asks serde_json alone, the reference the fast reader is held to.
    pub(super) static SERDE_JSON_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Every fixture's payload, as shipped and compacted.
fn payloads() -> Vec<(EventType, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut out = Vec::new();
    for kind in ["message.inbound", "message.status", "call"] {
        let mut files: Vec<_> = std::fs::read_dir(format!("{dir}/{kind}"))
            .expect("fixtures")
            .map(|entry| entry.expect("fixture").path())
            .collect();
        files.sort();
        for file in files {
            let body = std::fs::read(&file).expect("fixture");
            let parsed = crate::envelope::parse(&body).expect("a fixture is an envelope");
            let range = parsed.payload.expect("a fixture has a payload");
            let payload = std::str::from_utf8(&body[range]).expect("UTF-8").to_owned();
            let ty = parsed.envelope.event_type.clone();
            out.push((ty.clone(), crate::json::mutate::compact(&payload)));
            out.push((ty, payload));
        }
    }
    out
}

/// What an event reads as, in each of the two ways: its serialization and its `Debug`.
fn typed_both_ways(ty: &EventType, payload: &[u8]) -> (String, String) {
    let seen = |event: VobizEvent| {
        format!(
            "{}\n{event:?}",
            serde_json::to_string(&event).expect("serializes")
        )
    };
    let fast = seen(VobizEvent::from_payload(ty, payload));
    SERDE_JSON_ONLY.set(true);
    let reference = seen(VobizEvent::from_payload(ty, payload));
    SERDE_JSON_ONLY.set(false);
    (fast, reference)
}

#[test]
fn fixtures_type_the_same_with_the_fast_reader_as_with_serde_json() {
    let payloads = payloads();
    assert!(payloads.len() >= 60, "{} payloads", payloads.len());
    for (ty, payload) in &payloads {
        let (fast, reference) = typed_both_ways(ty, payload.as_bytes());
        assert_eq!(fast, reference, "{ty} {payload}");
        // And the fast reader did read it (a refusal would hide behind serde_json), as each
        // kind of value.
        fn read_fast<V: DeserializeOwned>(payload: &str) -> bool {
            crate::json::reader::from_str::<de::Lenient<WirePayload<V>>>(payload).is_ok()
                && crate::json::reader::from_str::<de::Lenient<V>>(payload).is_ok()
        }
        assert!(read_fast::<InboundValue>(payload), "{payload}");
        assert!(read_fast::<StatusValue>(payload), "{payload}");
        assert!(read_fast::<CallValue>(payload), "{payload}");
    }
}

#[test]
fn mutated_payloads_type_the_same_with_the_fast_reader_as_with_serde_json() {
    use crate::json::mutate::{mutate, Rng};
    let mut rng = Rng(0x5EED_0216);
    let types = [
        EventType::MessageInbound,
        EventType::MessageStatus,
        EventType::parse("call.connect"),
    ];
    let (mut typed, mut cases) = (0, 0);
    for (index, (_, payload)) in payloads().iter().enumerate() {
        for _ in 0..120 {
            let mut bytes = payload.clone().into_bytes();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut rng, &mut bytes);
            }
            // Each mutated payload typed as its own kind and as the next one.
            for ty in [&types[index % 3], &types[(index + 1) % 3]] {
                let (fast, reference) = typed_both_ways(ty, &bytes);
                assert_eq!(fast, reference, "{ty} {}", String::from_utf8_lossy(&bytes));
                typed += usize::from(!fast.contains("\"changes\":[]"));
                cases += 1;
            }
        }
    }
    assert!(
        typed > cases / 10 && typed < cases * 9 / 10,
        "{typed}/{cases}"
    );
}
