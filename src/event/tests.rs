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

/// Replaces a random scalar value of `bytes` (one after a `:`) with one that readers treat
/// differently: a lone surrogate, a number out of `f64`'s range, other JSON types.
fn replace_a_scalar(rng: &mut crate::json::mutate::Rng, bytes: &mut Vec<u8>) {
    const VALUES: &[&str] = &[
        r#""\ud800""#,
        r#""\u00e9""#,
        "1e400",
        "7",
        "-0.5",
        "null",
        "true",
        "{}",
        "[]",
        r#"{"a":1,"a":2}"#,
    ];
    let colons: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == b':').collect();
    let Some(&colon) = colons.get(rng.below(colons.len())) else {
        return;
    };
    let mut start = colon + 1;
    while bytes.get(start).is_some_and(u8::is_ascii_whitespace) {
        start += 1;
    }
    let end = match bytes.get(start) {
        Some(b'"') => {
            match (start + 1..bytes.len()).find(|&i| bytes[i] == b'"' && bytes[i - 1] != b'\\') {
                Some(quote) => quote + 1,
                None => return,
            }
        }
        Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => (start..bytes.len())
            .find(|&i| matches!(bytes[i], b',' | b'}' | b']' | b' ' | b'\n'))
            .unwrap_or(bytes.len()),
        _ => return,
    };
    let value = VALUES[rng.below(VALUES.len())].as_bytes();
    bytes.splice(start..end, value.iter().copied());
}

/// What an inbound event's shortcuts answer (without the model when the payload is plain),
/// and what the model answers for each.
fn shortcuts_both_ways(payload: &[u8]) -> (String, String, bool) {
    let event = VobizEvent::from_payload(&EventType::MessageInbound, payload);
    let event = event.as_inbound().expect("inbound");
    let quick = event.is_quick();
    let shortcuts = format!(
        "{:?}",
        (
            event.text(),
            event.from(),
            event.wamid(),
            event.kind(),
            event.timestamp(),
            event.sender_name(),
            event.waba_id(),
            event.phone_number_id(),
        )
    );
    let message = event.message();
    let first = event.changes().first();
    let model = format!(
        "{:?}",
        (
            message.and_then(Message::text),
            message.and_then(|m| m.from.as_deref()),
            message.and_then(|m| m.id.as_deref()),
            message.map(Message::kind),
            message.and_then(|m| m.timestamp),
            event.sender().and_then(Contact::name),
            first.and_then(|c| c.waba_id.as_deref()),
            first
                .and_then(|c| c.value.metadata.as_ref())
                .and_then(|m| m.phone_number_id.as_deref()),
        )
    );
    (shortcuts, model, quick)
}

#[test]
fn shortcuts_read_without_the_model_answer_as_the_model() {
    use crate::json::mutate::{mutate, Rng};
    // Members that make a plain payload not plain (or plain in another way) wherever they are
    // inserted: keys given twice, other types, other shapes.
    const MEMBERS: &[&str] = &[
        r#""from":"111","#,
        r#""from":7,"#,
        r#""id":"x","#,
        r#""id":null,"#,
        r#""type":"image","#,
        r#""type":"text","#,
        r#""text":{"body":"again"},"#,
        r#""text":"flat","#,
        r#""body":"b2","#,
        r#""timestamp":"soon","#,
        r#""timestamp":1711360800,"#,
        r#""context":{"id":"wamid.0"},"#,
        r#""errors":[],"#,
        r#""contacts":[],"#,
        r#""contacts":[{"wa_id":"1"},{"wa_id":"2","profile":{"name":"B"}}],"#,
        r#""messages":[],"#,
        r#""statuses":[],"#,
        r#""calls":null,"#,
        r#""metadata":{"phone_number_id":"P2"},"#,
        r#""phone_number_id":"P3","#,
        r#""profile":{"name":"C"},"#,
        r#""name":"D","#,
        r#""entry":[],"#,
        r#""object":null,"#,
        r#""changes":[],"#,
        r#""value":{},"#,
        r#""field":"messages","#,
        r#""wa_id":"9","#,
        r#""from_user_id":"US.1","#,
        r#""group_id":{},"#,
        r#""unknown":[[{"a":"\u00e9"}]],"#,
        r#""t\u0065xt":{"body":"escaped key"},"#,
    ];
    let base: Vec<String> = payloads()
        .into_iter()
        .filter(|(_, text)| text.contains(r#""body": "Hi"#) || text.contains(r#""body":"Hi"#))
        .map(|(_, text)| text)
        .collect();
    assert!(base.len() >= 2, "the text fixture, pretty and compact");
    let mut rng = Rng(0x5EED_0416);
    let (mut quick, mut cases) = (0, 0);
    let mut check = |bytes: &[u8]| {
        let (shortcuts, model, was_quick) = shortcuts_both_ways(bytes);
        assert_eq!(shortcuts, model, "{}", String::from_utf8_lossy(bytes));
        quick += usize::from(was_quick);
        cases += 1;
    };
    for (_, payload) in payloads() {
        check(payload.as_bytes());
    }
    for payload in &base {
        for _ in 0..2_000 {
            let mut bytes = payload.clone().into_bytes();
            for _ in 0..1 + rng.below(2) {
                let kind = rng.below(3);
                if kind == 0 {
                    mutate(&mut rng, &mut bytes);
                } else if kind == 1 {
                    replace_a_scalar(&mut rng, &mut bytes);
                } else {
                    // A member inserted at the start of a random object.
                    let opens: Vec<usize> =
                        (0..bytes.len()).filter(|&i| bytes[i] == b'{').collect();
                    if let Some(&at) = opens.get(rng.below(opens.len())) {
                        let member = MEMBERS[rng.below(MEMBERS.len())].as_bytes();
                        bytes.splice(at + 1..at + 1, member.iter().copied());
                    }
                }
            }
            check(&bytes);
        }
    }
    for payload in [
        // The bare form, and Meta's full one with what the plain shape allows.
        r#"{"messaging_product":"whatsapp","contacts":[{"profile":{"name":"A"},"wa_id":"1"}],"messages":[{"from":"1","id":"w","timestamp":"1711360800","type":"text","text":{"body":"hi"}}]}"#,
        r#"{"messages":[{"type":"text","text":{}}],"statuses":[],"calls":7}"#,
        r#"{"messages":[{"type":"text","text":{}}],"statuses":[],"statuses":[]}"#,
        r#"{"messages":[{"type":"text","text":{}}],"calls":1,"calls":2}"#,
        r#"{"messages":[{"type":"text","text":{}}],"object":"x"}"#,
        r#"{"object":"x","entry":[{"id":"W","changes":[{"value":{"messages":[{"type":"text","text":{"body":"\u00e9\n"},"from":"\u0031"}]}}]}]}"#,
        r#"{"object":"x","entry":[{"changes":[{"value":{"messages":[{"type":"t\u0065xt","text":{"body":"x"}}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"x"},"extra":[1,{"b":[]}]}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"x"}}],"contacts":[{"wa_id":"2","profile":{"name":"N"}}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"x"}}]}}]}]} x"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"x"}}]}}]}]}  "#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"\ud800"}}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"x"}}],"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"from":"1","type":"text","text":{"body":"x"}}],"contacts":[{"wa_id":"1","profile":{"name":"A"}},{"wa_id":"2","profile":{"name":"B"}}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"x"}}],"errors":[{"code":1,"code":2}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"x","body":"y"}}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"x"},"context":{"id":"a","id":"b"}}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"x"},"referral":{"body":"a","body":"b"}}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"x"}}]}},{"value":{"messages":[{"type":"text","text":{"body":"y"}}]}}]}]}"#,
        r#"{"entry":[{"id":"1","changes":[{"value":{"messages":[{"type":"text","text":{"body":"x"}}]}}]},{"id":"2","changes":[{"value":{"messages":[{"type":"text","text":{"body":"y"}}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messages":[{"type":"text","text":{"body":"x"}},{"type":"text","text":{"body":"y"}}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"messaging_product":{"a":1,"a":2},"messages":[{"type":"text","text":{"body":"x"}}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"metadata":{"display_phone_number":1,"phone_number_id":"P"},"messages":[{"type":"text","text":{"body":"x"}}]}}]}]}"#,
    ] {
        check(payload.as_bytes());
    }
    // Both roads were taken, often.
    assert!(
        quick > cases / 5 && quick < cases * 4 / 5,
        "{quick}/{cases}"
    );
}

/// What a status event's shortcuts answer (without the model when the payload is plain), and
/// what the model answers for each.
fn status_shortcuts_both_ways(payload: &[u8]) -> (String, String, bool) {
    let event = VobizEvent::from_payload(&EventType::MessageStatus, payload);
    let event = event.as_status().expect("status");
    let quick = event.is_quick();
    let shortcuts = format!(
        "{:?}",
        (
            event.status(),
            event.wamid(),
            event.recipient_id(),
            event.timestamp(),
            event.waba_id(),
            event.phone_number_id(),
        )
    );
    let update = event.first();
    let first = event.changes().first();
    let model = format!(
        "{:?}",
        (
            update.and_then(|u| u.status.as_ref()),
            update.and_then(|u| u.id.as_deref()),
            update.and_then(|u| u.recipient_id.as_deref()),
            update.and_then(|u| u.timestamp),
            first.and_then(|c| c.waba_id.as_deref()),
            first
                .and_then(|c| c.value.metadata.as_ref())
                .and_then(|m| m.phone_number_id.as_deref()),
        )
    );
    (shortcuts, model, quick)
}

#[test]
fn status_shortcuts_read_without_the_model_answer_as_the_model() {
    use crate::json::mutate::{mutate, Rng};
    const MEMBERS: &[&str] = &[
        r#""id":"wamid.2","#,
        r#""id":5,"#,
        r#""status":"READ","#,
        r#""status":"played","#,
        r#""status":null,"#,
        r#""timestamp":"x","#,
        r#""recipient_id":"2","#,
        r#""recipient_type":"group","#,
        r#""biz_opaque_callback_data":{},"#,
        r#""conversation":{"id":"c"},"#,
        r#""conversation":7,"#,
        r#""origin":{"type":"x"},"#,
        r#""type":"y","#,
        r#""pricing":{"billable":true},"#,
        r#""billable":"no","#,
        r#""category":"c","#,
        r#""expiration_timestamp":"1","#,
        r#""errors":[{"code":1}],"#,
        r#""statuses":[],"#,
        r#""messages":[],"#,
        r#""metadata":{},"#,
        r#""phone_number_id":"P","#,
        r#""entry":[],"#,
        r#""changes":[],"#,
        r#""value":{},"#,
        r#""unknown":{"a":[1,2,{"b":null}]},"#,
    ];
    let base: Vec<String> = payloads()
        .into_iter()
        .filter(|(ty, _)| *ty == EventType::MessageStatus)
        .map(|(_, text)| text)
        .collect();
    assert!(base.len() >= 8, "the status fixtures, pretty and compact");
    let mut rng = Rng(0x5EED_0516);
    let (mut quick, mut cases) = (0, 0);
    let mut check = |bytes: &[u8]| {
        let (shortcuts, model, was_quick) = status_shortcuts_both_ways(bytes);
        assert_eq!(shortcuts, model, "{}", String::from_utf8_lossy(bytes));
        quick += usize::from(was_quick);
        cases += 1;
    };
    for (_, payload) in payloads() {
        check(payload.as_bytes());
    }
    for payload in &base {
        for _ in 0..500 {
            let mut bytes = payload.clone().into_bytes();
            for _ in 0..1 + rng.below(2) {
                let kind = rng.below(3);
                if kind == 0 {
                    mutate(&mut rng, &mut bytes);
                } else if kind == 1 {
                    replace_a_scalar(&mut rng, &mut bytes);
                } else {
                    let opens: Vec<usize> =
                        (0..bytes.len()).filter(|&i| bytes[i] == b'{').collect();
                    if let Some(&at) = opens.get(rng.below(opens.len())) {
                        let member = MEMBERS[rng.below(MEMBERS.len())].as_bytes();
                        bytes.splice(at + 1..at + 1, member.iter().copied());
                    }
                }
            }
            check(&bytes);
        }
    }
    for payload in [
        r#"{"statuses":[{"id":"w","status":"delivered","timestamp":"1711360800","recipient_id":"1"}]}"#,
        r#"{"statuses":[{"id":"w"}],"messages":[],"messages":[]}"#,
        r#"{"statuses":[{"id":"w","conversation":{"origin":{"type":"a","type":"b"}}}]}"#,
        r#"{"statuses":[{"id":"w","conversation":{"origin":[{"type":"a","type":"b"}]}}]}"#,
        r#"{"statuses":[{"id":"w","pricing":{"category":"a","category":"b"}}]}"#,
        r#"{"statuses":[{"id":"w","errors":[{"code":1,"code":2}]}]}"#,
        r#"{"statuses":[{"id":"w","status":"sent"},{"id":"v","status":"read"}]}"#,
        r#"{"entry":[{"changes":[{"value":{"statuses":[{"id":"w"}],"errors":[{"title":"a","title":"b"}]}}]}]}"#,
        r#"{"entry":[{"changes":[{"value":{"statuses":[{"id":"w","status":"Sent"}]}}]}]}"#,
        r#"{"statuses":[{"id":"w","conversation":"\ud800"}]}"#,
        r#"{"statuses":[{"id":"w","conversation":"\u00e9","pricing":[1e400]}]}"#,
        r#"{"statuses":[{"id":"w","pricing":1e400}]}"#,
        r#"{"statuses":[{"id":"w","conversation":{"origin":"\ud800"}}]}"#,
    ] {
        check(payload.as_bytes());
    }
    assert!(
        quick > cases / 5 && quick < cases * 4 / 5,
        "{quick}/{cases}"
    );
}
