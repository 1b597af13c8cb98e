//! The envelope pass without serde: one strict walk over the body that reads the envelope's
//! four string fields, finds `payload`'s byte range, and checks every other byte is JSON.
//!
//! Why: `serde_json::from_str` into a struct with a `&RawValue` payload costs about 13
//! instructions a byte of the fixture, most of it serde's generic machinery (whitespace,
//! key dispatch, `ignore_value`) around bytes the envelope only skips. A walker that knows the
//! envelope's shape executes 37–38 % fewer instructions for the whole pass, pretty-printed or
//! compact (bench/README, "A cheaper envelope").
//!
//! It answers `None` for every body it does not accept, and the caller then runs serde_json on
//! the same body: errors stay serde_json's, and the rare shapes left to serde (an envelope
//! written as a JSON array, which serde accepts for a struct) keep their behaviour. So the one
//! thing that must never happen is the walker accepting a body serde_json rejects, or reading
//! it differently; the tests below check that on thousands of mutated fixtures.
//!
//! What serde_json checks, and so this walker:
//! - the grammar of RFC 8259 (whitespace is space, tab, CR, LF; no trailing commas; numbers
//!   without leading zeros; only the escapes `\" \\ \/ \b \f \n \r \t \uXXXX`; no control
//!   characters in strings; nothing but whitespace after the value);
//! - the envelope's own keys and its four string fields are decoded strings: a `\u` escape
//!   there must be a valid UTF-16 code point (paired surrogates), and such strings are decoded
//!   by serde_json itself; inside skipped values (the payload, unknown fields) an escape is
//!   only checked for its form, as serde_json's `ignore_value` does;
//! - a field given twice is an error (serde's derived `Deserialize`), even when `null`;
//! - `null` for an optional field is the same as the field's absence.
//!
//! UTF-8 is checked by the caller for the whole body before the walk.

use std::borrow::Cow;
use std::ops::Range;

use crate::json::scan::{decoded_string, expect, literal, skip_value, skip_whitespace};

/// The envelope's fields as they sit in the body.
#[derive(Default)]
pub(super) struct Fields<'a> {
    pub(super) event_id: Option<Cow<'a, str>>,
    pub(super) event_type: Option<Cow<'a, str>>,
    pub(super) account_id: Option<Cow<'a, str>>,
    pub(super) occurred_at: Option<Cow<'a, str>>,
    /// Byte range of `payload`'s value, without surrounding whitespace; `None` when absent or
    /// `null` (as `Option<&RawValue>` reads it).
    pub(super) payload: Option<Range<usize>>,
}

/// Reads the envelope of `text`, or `None` when `text` is not an envelope object this walker
/// accepts (then serde_json decides, and explains).
///
/// The walk is a chain of free functions over `(bytes, pos)` that return the next position, so
/// `pos` stays in a register; every index is checked (`get`), so no input can panic.
pub(super) fn fields(text: &str) -> Option<Fields<'_>> {
    let bytes = text.as_bytes();
    let mut fields = Fields::default();
    // Bit i set: field i (numbered below) was seen, so a second one is an error.
    let mut seen = 0u8;
    let mut pos = skip_whitespace(bytes, expect(bytes, 0, b'{')?);
    if bytes.get(pos) == Some(&b'}') {
        pos += 1;
    } else {
        loop {
            let (key, after_key) = decoded_string(text, expect(bytes, pos, b'"')?)?;
            pos = skip_whitespace(bytes, expect(bytes, after_key, b':')?);
            let field = match &*key {
                "event_id" => Some(0),
                "event_type" => Some(1),
                "account_id" => Some(2),
                "occurred_at" => Some(3),
                "payload" => Some(4),
                _ => None,
            };
            match field {
                None => pos = skip_value(bytes, pos)?,
                Some(index) => {
                    let bit = 1u8 << index;
                    if seen & bit != 0 {
                        return None;
                    }
                    seen |= bit;
                    if bytes.get(pos) == Some(&b'n') {
                        // `null` reads as an absent field (serde_json's `Option`).
                        pos = literal(bytes, pos, b"null")?;
                    } else if index == 4 {
                        let end = skip_value(bytes, pos)?;
                        fields.payload = Some(pos..end);
                        pos = end;
                    } else {
                        let (value, after) = decoded_string(text, expect(bytes, pos, b'"')?)?;
                        pos = after;
                        let slot = match index {
                            0 => &mut fields.event_id,
                            1 => &mut fields.event_type,
                            2 => &mut fields.account_id,
                            _ => &mut fields.occurred_at,
                        };
                        *slot = Some(value);
                    }
                }
            }
            pos = skip_whitespace(bytes, pos);
            match bytes.get(pos)? {
                b',' => pos += 1,
                b'}' => {
                    pos += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    // Nothing but whitespace may follow.
    (skip_whitespace(bytes, pos) == bytes.len()).then_some(fields)
}

#[cfg(test)]
mod tests {
    use serde::de::IgnoredAny;

    use super::super::{finish, parse, parse_with_serde_json, ParsedEnvelope};
    use crate::json::mutate::{compact, mutate, Rng};
    use crate::EnvelopeError;

    const FIXTURES: [&str; 4] = [
        include_str!("../../tests/fixtures/message.inbound/text.json"),
        include_str!("../../tests/fixtures/message.inbound/interactive_nfm_reply.json"),
        include_str!("../../tests/fixtures/message.status/failed.json"),
        include_str!("../../tests/fixtures/call/connect.json"),
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
            let reference = outcome(parse_with_serde_json(text));
            match super::fields(text) {
                Some(fields) => assert_eq!(
                    outcome(finish(fields)),
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
}
