//! The walker against serde_json's envelope pass, on mutated fixtures and hand-picked bodies.

use serde::de::IgnoredAny;

use super::super::{finish, parse, parse_with_serde_json, ParsedEnvelope};
use crate::json::mutate::{compact, mutate, Rng};
use crate::EnvelopeError;

const FIXTURES: [&str; 4] = [
    include_str!("../../../tests/fixtures/message.inbound/text.json"),
    include_str!("../../../tests/fixtures/message.inbound/interactive_nfm_reply.json"),
    include_str!("../../../tests/fixtures/message.status/failed.json"),
    include_str!("../../../tests/fixtures/call/connect.json"),
];

/// What a body reads as, comparable across the two passes.
fn outcome(result: Result<ParsedEnvelope, EnvelopeError>) -> Result<String, String> {
    result
        .map(|parsed| format!("{:?} {:?}", parsed.envelope, parsed.payload))
        .map_err(|err| err.to_string())
}

/// Checks the contract on one body: the envelope pass accepts only JSON, and the walker,
/// when it answers, answers exactly what serde_json's pass does; it leaves to serde only
/// what serde rejects (or the array form). Returns whether the body was accepted.
fn check(body: &[u8]) -> bool {
    let is_json =
        std::str::from_utf8(body).is_ok() && serde_json::from_slice::<IgnoredAny>(body).is_ok();
    let accepted = parse(body).is_ok();
    assert!(
        is_json || !accepted,
        "accepted a body that is not JSON: {:?}",
        String::from_utf8_lossy(body)
    );
    if let Ok(text) = std::str::from_utf8(body) {
        let reference = outcome(parse_with_serde_json(text, None));
        match super::fields(text) {
            Some(fields) => assert_eq!(
                outcome(finish(fields, None)),
                reference,
                "the walker reads {text:?} differently"
            ),
            None => assert!(
                reference.is_err() || text.trim_start().starts_with('['),
                "the walker refused an envelope serde_json accepts: {text:?}"
            ),
        }
    }
    accepted
}

#[test]
fn mutated_fixtures_get_serde_json_verdicts() {
    let mut rng = Rng(0x5EED_0016);
    let (mut accepted, mut cases) = (0, 0);
    for fixture in FIXTURES {
        for base in [fixture.to_owned(), compact(fixture)] {
            assert!(check(base.as_bytes()), "the fixture itself parses");
            for _ in 0..2_500 {
                let mut body = base.clone().into_bytes();
                for _ in 0..1 + rng.below(3) {
                    mutate(&mut rng, &mut body);
                }
                accepted += usize::from(check(&body));
                cases += 1;
            }
        }
    }
    // Both verdicts are well exercised.
    assert!(
        accepted > cases / 10 && accepted < cases * 9 / 10,
        "{accepted}/{cases}"
    );
}

#[test]
fn hand_picked_bodies_get_serde_json_verdicts() {
    let deep = format!(
        r#"{{"event_id":"e","event_type":"x","payload":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let unbalanced = format!(
        r#"{{"event_id":"e","event_type":"x","payload":{}1{}}}"#,
        "[{\"a\":".repeat(70),
        "}]".repeat(69)
    );
    let bodies: &[&[u8]] = &[
        br#"{"event_id":"e","event_type":"x"}"#,
        br#" {"event_id":"e","event_type":"x"} "#,
        br#"{"event_id":"e","event_type":"x"} x"#,
        br#"{"event_id":"e","event_type":"x",}"#,
        br#"{"event_id":"e","event_type":"x","event_id":"f"}"#,
        br#"{"event_id":null,"event_type":"x","event_id":"f"}"#,
        br#"{"event_id":"e","event_type":"x","payload":null,"payload":1}"#,
        br#"{"event_id":"e","event_type":"x","payload":null}"#,
        br#"{"event_id":"e","event_type":"x","payload": 12.5e-3 }"#,
        br#"{"event_id":"e","event_type":"x","payload":{"a":"\ud800"}}"#,
        br#"{"event_id":"\ud800","event_type":"x"}"#,
        br#"{"event_id":"\ud83d\ude00","event_type":"x"}"#,
        br#"{"event_id":"e","event_type":"x","\udc00":1}"#,
        br#"{"event_id":"e","event_type":"x","payload":{"\udc00":1}}"#,
        br#"{"event_id":"e","event_type":"x","payload":{"a":"\q"}}"#,
        br#"{"event_id":"e","event_type":"x","payload":[01]}"#,
        br#"{"event_id":"e","event_type":"x","payload":[-]}"#,
        br#"{"event_id":"e","event_type":"x","payload":[1.]}"#,
        br#"{"event_id":"e","event_type":"x","payload":[nul]}"#,
        br#"{"event_id":"e","event_type":"x","payload":[1,]}"#,
        br#"{"event_id":"e","event_type":"x","payload":{"a" 1}}"#,
        br#"{"event_id":"e","event_type":"x","payload":{"a":1}}}"#,
        br#"{"event_id":1,"event_type":"x"}"#,
        br#"{"event_id":"e","event_type":"x","account_id":true}"#,
        br#"["e","x",null,null,{}]"#,
        br#"["e","x",null,null,{},1]"#,
        b"{\"event_id\":\"e\",\"event_type\":\"x\",\"payload\":\"a\tb\"}",
        b"{\"event_id\":\"e\",\"event_type\":\"x\",\"payload\":\"\xc3\xa9\"}",
        b"{\"event_id\":\"e\",\"event_type\":\"x\",\"payload\":\"\xc3\"}",
        b"{\"event_id\":\"e\",\"event_type\":\"x\"}\x0c",
        b"",
        b"{",
        b"\"",
        deep.as_bytes(),
        unbalanced.as_bytes(),
    ];
    for body in bodies {
        check(body);
    }
}
