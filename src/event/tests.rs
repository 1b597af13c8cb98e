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
pub(super) fn payloads() -> Vec<(EventType, String)> {
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
        fn read_fast<V: serde::de::DeserializeOwned>(payload: &str) -> bool {
            let mut list = super::ChangeList::<V>::default();
            crate::json::reader::from_str_seed(payload, payload::Payload(&mut list)).is_ok()
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

#[test]
fn payload_shapes_read_in_one_pass_type_as_the_derived_structs_did() {
    let payloads = [
        r#"{"object":"x","object":"y","entry":[]}"#,
        r#"{"entry":[],"entry":[]}"#,
        r#"{"entry":[{"id":"1","id":"2","changes":[{"value":{}}]}]}"#,
        r#"{"entry":[{"changes":[],"changes":[]}]}"#,
        r#"{"entry":[{"changes":[{"field":"a","field":"b","value":{}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{},"value":{}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[]}}],"id":"late"},{"id":7,"changes":[{"value":{}}]}]}"#,
        r#"{"entry":[1,{"id":"x"}]}"#,
        r#"{"entry":{"a":1}}"#,
        r#"{"entry":null,"object":null}"#,
        r#"{"object":null,"messages":[]}"#,
        r#"{"entry":[{"changes":{"x":1}}]}"#,
        r#"{"entry":[{"changes":[{"value":[1]},{"value":{}},2]}]}"#,
        r#"{"messages":null}"#,
        r#"{"messages":null,"messages":[]}"#,
        r#"{"\u006fbject":"x","entry":[{"\u0069d":"1","changes":[{"v\u0061lue":{}}]}]}"#,
        r#"[{"entry":[]}]"#,
    ];
    for payload in payloads {
        for ty in [
            EventType::MessageInbound,
            EventType::MessageStatus,
            EventType::parse("call.connect"),
        ] {
            let (fast, reference) = typed_both_ways(&ty, payload.as_bytes());
            assert_eq!(fast, reference, "{ty} {payload}");
        }
    }
    let event = VobizEvent::from_payload(&EventType::MessageInbound, payloads[6].as_bytes());
    let ids: Vec<_> = event
        .as_inbound()
        .expect("inbound")
        .changes()
        .iter()
        .map(|change| change.waba_id.as_deref())
        .collect();
    assert_eq!(ids, [Some("late"), Some("7")]);
    let twice = VobizEvent::from_payload(&EventType::MessageInbound, payloads[2].as_bytes());
    assert!(twice.as_inbound().expect("inbound").changes().is_empty());
}

/// The plain derived wire structs the one-pass visitors of `payload` replaced: the reference
/// for their behaviour (duplicates, `null`, non-objects, key order).
mod derived {
    use serde::de::{DeserializeOwned, IgnoredAny};
    use serde::Deserialize;

    use crate::event::de;
    use crate::event::{Change, Str};

    #[derive(Deserialize)]
    #[serde(bound(deserialize = "V: Deserialize<'de>"))]
    struct WirePayload<V> {
        #[serde(default)]
        object: Option<IgnoredAny>,
        #[serde(default, deserialize_with = "de::vec")]
        entry: Vec<WireEntry<V>>,
        #[serde(default)]
        messaging_product: Option<IgnoredAny>,
        #[serde(default)]
        metadata: Option<IgnoredAny>,
        #[serde(default)]
        contacts: Option<IgnoredAny>,
        #[serde(default)]
        messages: Option<IgnoredAny>,
        #[serde(default)]
        statuses: Option<IgnoredAny>,
        #[serde(default)]
        calls: Option<IgnoredAny>,
        #[serde(default)]
        errors: Option<IgnoredAny>,
    }

    #[derive(Deserialize)]
    #[serde(bound(deserialize = "V: Deserialize<'de>"))]
    struct WireEntry<V> {
        #[serde(default, deserialize_with = "de::string")]
        id: Option<Str>,
        #[serde(default, deserialize_with = "de::vec")]
        changes: Vec<WireChange<V>>,
    }

    #[derive(Deserialize)]
    #[serde(bound(deserialize = "V: Deserialize<'de>"))]
    struct WireChange<V> {
        #[serde(default, deserialize_with = "de::string")]
        field: Option<Str>,
        #[serde(default, deserialize_with = "de::obj")]
        value: Option<V>,
    }

    pub(super) fn changes<V: DeserializeOwned>(payload: &str) -> Vec<Change<V>> {
        let Ok(de::Lenient(Some(wire))) =
            serde_json::from_str::<de::Lenient<WirePayload<V>>>(payload)
        else {
            return Vec::new();
        };
        let bare = wire.messaging_product.is_some()
            || wire.metadata.is_some()
            || wire.contacts.is_some()
            || wire.messages.is_some()
            || wire.statuses.is_some()
            || wire.calls.is_some()
            || wire.errors.is_some();
        if wire.object.is_some() || !wire.entry.is_empty() {
            let mut out = Vec::new();
            for entry in wire.entry {
                for change in entry.changes {
                    let Some(value) = change.value else { continue };
                    out.push(Change {
                        waba_id: entry.id.clone(),
                        field: change.field,
                        value,
                    });
                }
            }
            out
        } else if bare {
            match serde_json::from_str::<de::Lenient<V>>(payload) {
                Ok(de::Lenient(Some(value))) => vec![Change {
                    waba_id: None,
                    field: None,
                    value,
                }],
                _ => Vec::new(),
            }
        } else {
            Vec::new()
        }
    }
}

/// The changes of `payload` as the one-pass visitors read them and as the derived structs
/// did, serialized.
fn changes_both_ways(payload: &str) -> [(String, String); 3] {
    fn both<V: serde::de::DeserializeOwned + Serialize>(payload: &str) -> (String, String) {
        let json = |list: &[Change<V>]| serde_json::to_string(list).expect("serializes");
        (
            json(payload::changes::<V>(payload).as_slice()),
            json(&derived::changes::<V>(payload)),
        )
    }
    [
        both::<InboundValue>(payload),
        both::<StatusValue>(payload),
        both::<CallValue>(payload),
    ]
}

#[test]
fn one_pass_payload_visitors_read_what_the_derived_structs_read() {
    use crate::json::mutate::{mutate, Rng};
    let mut rng = Rng(0x5EED_0316);
    let mut texts: Vec<String> = payloads().into_iter().map(|(_, text)| text).collect();
    for (_, base) in payloads() {
        for _ in 0..60 {
            let mut bytes = base.clone().into_bytes();
            for _ in 0..1 + rng.below(3) {
                mutate(&mut rng, &mut bytes);
            }
            texts.extend(String::from_utf8(bytes).ok());
        }
    }
    texts.extend(
        [
            r#"{"object":"x","object":"y","entry":[]}"#,
            r#"{"entry":[{"id":"1","id":"2","changes":[{"value":{}}]}]}"#,
            r#"{"entry":[{"changes":[],"changes":[]}]}"#,
            r#"{"entry":[{"changes":[{"field":"a","field":"b","value":{}}]}]}"#,
            r#"{"entry":[{"changes":[{"value":{"messages":[]}}],"id":"late"},{"id":7,"changes":[{"value":{}}]}]}"#,
            r#"{"entry":[1,{"id":"x"}]}"#,
            r#"{"entry":null,"object":null}"#,
            r#"{"object":null,"messages":[]}"#,
            r#"{"entry":[{"changes":[{"value":[1]},{"value":{}},2]}]}"#,
            r#"{"messages":null,"messages":[]}"#,
            r#"{"\u006fbject":"x","entry":[{"\u0069d":"1","changes":[{"v\u0061lue":{}}]}]}"#,
        ]
        .map(str::to_owned),
    );
    for text in &texts {
        for (ours, derived) in changes_both_ways(text) {
            assert_eq!(ours, derived, "{text}");
        }
    }
}

#[test]
fn a_change_list_keeps_every_change_in_order_one_inline() {
    let change = |n: u8| Change {
        waba_id: Some(Str::from(n.to_string())),
        field: None,
        value: n,
    };
    let mut list = ChangeList::default();
    assert!(list.as_slice().is_empty());
    for n in 0..4 {
        list.push(change(n));
        let values: Vec<u8> = list.as_slice().iter().map(|change| change.value).collect();
        assert_eq!(values, (0..=n).collect::<Vec<_>>());
        assert_eq!(matches!(list, ChangeList::One(_)), n == 0, "after {n}");
    }
    list.as_mut_slice()[3].value = 9;
    assert_eq!(list.as_slice()[3].value, 9);
    assert_eq!(list.as_slice()[3].waba_id.as_deref(), Some("3"));
}
