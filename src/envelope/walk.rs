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
mod tests;
