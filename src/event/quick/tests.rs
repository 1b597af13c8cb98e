//! The shortcuts read without the model, held to the model's answers.

use crate::envelope::EventType;
use crate::event::tests::payloads;
use crate::event::{Contact, Message, VobizEvent};
use crate::json::mutate::{mutate, Rng};

/// `payload` edited once or twice: a random edit, a scalar value replaced, or one of `members`
/// inserted at the start of a random object.
fn mutated(rng: &mut Rng, payload: &str, members: &[&str]) -> Vec<u8> {
    let mut bytes = payload.as_bytes().to_vec();
    for _ in 0..1 + rng.below(2) {
        match rng.below(3) {
            0 => mutate(rng, &mut bytes),
            1 => replace_a_scalar(rng, &mut bytes),
            _ => {
                let opens: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] == b'{').collect();
                if let Some(&at) = opens.get(rng.below(opens.len())) {
                    let member = members[rng.below(members.len())].as_bytes();
                    bytes.splice(at + 1..at + 1, member.iter().copied());
                }
            }
        }
    }
    bytes
}

/// Replaces a random scalar value of `bytes` (one after a `:`) with one that readers treat
/// differently: a lone surrogate, a number out of `f64`'s range, other JSON types.
fn replace_a_scalar(rng: &mut Rng, bytes: &mut Vec<u8>) {
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
            check(&mutated(&mut rng, payload, MEMBERS));
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
            check(&mutated(&mut rng, payload, MEMBERS));
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
