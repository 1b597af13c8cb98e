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

/// The index of the first byte at or after `pos` that is not JSON whitespace (or the length).
#[inline]
fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
    const SPACES: u64 = u64::from_le_bytes([b' '; 8]);
    loop {
        match bytes.get(pos) {
            Some(b' ' | b'\n' | b'\t' | b'\r') => pos += 1,
            _ => return pos,
        }
        // Pretty-printed JSON indents with runs of spaces: measure them eight bytes at a time.
        while let Some(eight) = bytes.get(pos..).and_then(<[u8]>::first_chunk::<8>) {
            let not_spaces = u64::from_le_bytes(*eight) ^ SPACES;
            if not_spaces != 0 {
                pos += (not_spaces.trailing_zeros() / 8) as usize;
                break;
            }
            pos += 8;
        }
    }
}

/// The position after `byte`, which must come next after optional whitespace.
#[inline]
fn expect(bytes: &[u8], pos: usize, byte: u8) -> Option<usize> {
    // Compact JSON has no whitespace here: one comparison.
    if bytes.get(pos) == Some(&byte) {
        return Some(pos + 1);
    }
    let pos = skip_whitespace(bytes, pos);
    (*bytes.get(pos)? == byte).then_some(pos + 1)
}

/// The position after `word` (a literal such as `null`), which must be at `pos`.
#[inline]
fn literal(bytes: &[u8], pos: usize, word: &[u8]) -> Option<usize> {
    bytes
        .get(pos..)?
        .starts_with(word)
        .then_some(pos + word.len())
}

/// A string starting after its opening quote at `pos`, decoded as serde_json decodes a `&str`:
/// borrowed when it has no escape, else decoded (and checked) by serde_json itself. Returns it
/// and the position after its closing quote.
#[inline(always)]
fn decoded_string(text: &str, pos: usize) -> Option<(Cow<'_, str>, usize)> {
    let (end, escaped) = skip_string(text.as_bytes(), pos)?;
    // `pos - 1` and `end - 1` are the quotes: ASCII, so these are char boundaries.
    let value = if escaped {
        Cow::Owned(unescape(text.get(pos.checked_sub(1)?..end)?)?)
    } else {
        Cow::Borrowed(text.get(pos..end.checked_sub(1)?)?)
    };
    Some((value, end))
}

/// A quoted JSON string with escapes, decoded by serde_json (which also rejects a `\u` escape
/// that is not a valid code point, as it does for the envelope's strings). Rare: kept out of
/// the walk's way.
#[cold]
#[inline(never)]
fn unescape(quoted: &str) -> Option<String> {
    serde_json::from_str(quoted).ok()
}

/// Skips a string starting after its opening quote at `pos`, through its closing quote;
/// checks the form of its escapes and that it has no control character. Returns the position
/// after it and whether it had an escape.
///
/// Inlined where it is called: a call's register saves cost as much as a short key's scan.
#[inline(always)]
fn skip_string(bytes: &[u8], mut pos: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        // To the next `"`, `\` or control character: eight bytes at a time while there are
        // eight (string contents are most of a delivery's bytes), then one at a time.
        while let Some(eight) = bytes.get(pos..).and_then(<[u8]>::first_chunk::<8>) {
            let hits = special_bytes(u64::from_le_bytes(*eight));
            if hits != 0 {
                pos += (hits.trailing_zeros() / 8) as usize;
                break;
            }
            pos += 8;
        }
        let byte = *bytes.get(pos)?;
        match byte {
            b'"' => return Some((pos + 1, escaped)),
            b'\\' => {
                escaped = true;
                match bytes.get(pos + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => pos += 2,
                    b'u' => {
                        let digits = bytes.get(pos + 2..pos + 6)?;
                        if !digits.iter().all(u8::is_ascii_hexdigit) {
                            return None;
                        }
                        pos += 6;
                    }
                    _ => return None,
                }
            }
            // A control character (U+0000 to U+001F) must be escaped.
            0..=0x1f => return None,
            _ => pos += 1,
        }
    }
}

/// The high bit of each byte of `word` (little-endian) that is `"`, `\` or below 0x20 is set
/// in the result, at least of the lowest such byte: the "has a zero byte" trick, as in
/// serde_json's own string scan. Below the lowest hit no subtraction borrows, so the lowest
/// flagged byte is always a real hit (bits above it may not be).
#[inline]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = u64::MAX / 255;
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & (ONES << 7)
}

/// Skips a number at `pos` (RFC 8259's grammar; its value is not computed).
fn skip_number(bytes: &[u8], mut pos: usize) -> Option<usize> {
    if bytes.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match bytes.get(pos)? {
        // One leading zero only.
        b'0' => pos += 1,
        b'1'..=b'9' => pos = skip_digits(bytes, pos + 1),
        _ => return None,
    }
    if bytes.get(pos) == Some(&b'.') {
        let end = skip_digits(bytes, pos + 1);
        if end == pos + 1 {
            return None;
        }
        pos = end;
    }
    if let Some(b'e' | b'E') = bytes.get(pos) {
        pos += 1;
        if let Some(b'+' | b'-') = bytes.get(pos) {
            pos += 1;
        }
        let end = skip_digits(bytes, pos);
        if end == pos {
            return None;
        }
        pos = end;
    }
    // A digit here would be a second leading zero (`01`).
    (!matches!(bytes.get(pos), Some(b'0'..=b'9'))).then_some(pos)
}

fn skip_digits(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b'0'..=b'9') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// Skips one value of any kind at `pos` (after whitespace), checking it strictly, and returns
/// the position after it. Without recursion: depth costs a bit a level (serde_json's
/// `ignore_value` has no depth limit either).
fn skip_value(bytes: &[u8], mut pos: usize) -> Option<usize> {
    let mut open = Nesting::default();
    loop {
        // A value starts here (whitespace is matched last, as compact JSON has none).
        match bytes.get(pos)? {
            b'"' => pos = skip_string(bytes, pos + 1)?.0,
            b'-' | b'0'..=b'9' => pos = skip_number(bytes, pos)?,
            b'n' => pos = literal(bytes, pos, b"null")?,
            b't' => pos = literal(bytes, pos, b"true")?,
            b'f' => pos = literal(bytes, pos, b"false")?,
            b'[' => {
                pos = skip_whitespace(bytes, pos + 1);
                if bytes.get(pos) != Some(&b']') {
                    open.push(false);
                    continue;
                }
                pos += 1;
            }
            b'{' => {
                pos = skip_whitespace(bytes, pos + 1);
                if bytes.get(pos) != Some(&b'}') {
                    open.push(true);
                    pos = skip_key(bytes, pos)?;
                    continue;
                }
                pos += 1;
            }
            b' ' | b'\n' | b'\t' | b'\r' => {
                pos = skip_whitespace(bytes, pos);
                continue;
            }
            _ => return None,
        }
        // A value ended: close what it ends, or go on after a comma.
        loop {
            let Some(in_object) = open.innermost() else {
                return Some(pos);
            };
            match bytes.get(pos)? {
                b',' => {
                    pos += 1;
                    if in_object {
                        pos = skip_key(bytes, pos)?;
                    }
                    break;
                }
                b'}' if in_object => {
                    pos += 1;
                    open.pop();
                }
                b']' if !in_object => {
                    pos += 1;
                    open.pop();
                }
                b' ' | b'\n' | b'\t' | b'\r' => pos = skip_whitespace(bytes, pos),
                _ => return None,
            }
        }
    }
}

/// Skips an object's key (checked for form only, as serde_json's `ignore_value` does) and its
/// colon; returns the position after the colon.
#[inline(always)]
fn skip_key(bytes: &[u8], pos: usize) -> Option<usize> {
    let (pos, _) = skip_string(bytes, expect(bytes, pos, b'"')?)?;
    expect(bytes, pos, b':')
}

/// The kinds of the containers open around the cursor (object or array), innermost last.
#[derive(Default)]
struct Nesting {
    depth: usize,
    /// Bit `i`: level `i` (for the first 64) is an object.
    shallow: u64,
    /// Levels from 64 on: rare, and unbounded like serde_json's.
    deep: Vec<bool>,
}

impl Nesting {
    fn push(&mut self, object: bool) {
        if self.depth < 64 {
            let bit = 1u64 << self.depth;
            self.shallow = if object {
                self.shallow | bit
            } else {
                self.shallow & !bit
            };
        } else {
            self.deep.push(object);
        }
        self.depth += 1;
    }

    fn pop(&mut self) {
        if self.depth > 64 {
            self.deep.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }

    /// Whether the innermost open container is an object; `None` when none is open.
    fn innermost(&self) -> Option<bool> {
        match self.depth {
            0 => None,
            depth @ 1..=64 => Some(self.shallow >> (depth - 1) & 1 == 1),
            _ => self.deep.last().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::de::IgnoredAny;

    use super::super::{finish, parse, parse_with_serde_json, ParsedEnvelope};
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

    /// splitmix64: a fixed seed, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    /// Bytes and snippets that make JSON interesting to break.
    const BYTES: &[u8] =
        b"{}[]:,\"\\ \n\t\r0123456789-+.eEnultrfasbu/\x00\x01\x1f\x7f\xc3\xa9\xe2\x82\xff\x80";
    const SNIPPETS: &[&str] = &[
        r"\u00e9",
        r"\ud83d\ude00",
        r"\ud800",
        r"\udc00",
        r"\ud800\u0041",
        r"\x",
        r"\u12",
        r#""event_id":"d","#,
        r#""event_type":null,"#,
        r#""payload":null,"#,
        r#""payload":[1,2],"#,
        r#""\u0065vent_id":"e","#,
        r#""extra":{"a":[true,false,null,-0.5e+3]},"#,
        "null",
        "-",
        "01",
        "1.",
        "1e",
        ".5",
        "[[",
        "]]",
        "{\"k\":",
        ",,",
        "\u{2028}",
        "\u{a0}",
    ];

    fn mutate(rng: &mut Rng, body: &mut Vec<u8>) {
        let at = rng.below(body.len() + 1);
        match rng.below(8) {
            0 if at < body.len() => body[at] = BYTES[rng.below(BYTES.len())],
            1 => body.insert(at, BYTES[rng.below(BYTES.len())]),
            2 if at < body.len() => {
                body.remove(at);
            }
            3 => {
                let end = (at + 1 + rng.below(8)).min(body.len());
                body.drain(at..end);
            }
            4 => {
                let from = rng.below(body.len());
                let end = (from + 1 + rng.below(16)).min(body.len());
                let span = body[from..end].to_vec();
                body.splice(at..at, span);
            }
            5 => body.truncate(at),
            6 if at < body.len() => body[at] = rng.next() as u8,
            _ => {
                let snippet = SNIPPETS[rng.below(SNIPPETS.len())].as_bytes();
                body.splice(at..at, snippet.iter().copied());
            }
        }
    }

    /// `json` without whitespace between its tokens.
    fn compact(json: &str) -> String {
        let mut out = String::new();
        let (mut in_string, mut escaped) = (false, false);
        for c in json.chars() {
            if in_string {
                in_string = escaped || c != '"';
                escaped = !escaped && c == '\\';
            } else if c.is_ascii_whitespace() {
                continue;
            } else {
                in_string = c == '"';
            }
            out.push(c);
        }
        out
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
