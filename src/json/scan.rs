//! Strict scanning of JSON text: the primitives both fast passes are made of (the envelope
//! walker and the typed events' reader).
//!
//! Each is a free function over `(bytes, pos)` that returns the position after what it read, so
//! `pos` stays in a register; every index is checked (`get`), so no input can panic. What they
//! accept is exactly RFC 8259 as serde_json reads it:
//! - whitespace is space, tab, CR, LF; no trailing commas; numbers without leading zeros; only
//!   the escapes `\" \\ \/ \b \f \n \r \t \uXXXX`; no control characters in strings;
//! - a string with an escape is decoded by serde_json itself (which also rejects a `\u` escape
//!   that is not a valid code point); inside skipped values an escape is only checked for its
//!   form, as serde_json's `ignore_value` does.
//!
//! UTF-8 is the caller's: they scan a `&str`'s bytes.

use std::borrow::Cow;
/// The index of the first byte at or after `pos` that is not JSON whitespace (or the length).
#[inline]
pub(crate) fn skip_whitespace(bytes: &[u8], mut pos: usize) -> usize {
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
pub(crate) fn expect(bytes: &[u8], pos: usize, byte: u8) -> Option<usize> {
    // Compact JSON has no whitespace here: one comparison.
    if bytes.get(pos) == Some(&byte) {
        return Some(pos + 1);
    }
    let pos = skip_whitespace(bytes, pos);
    (*bytes.get(pos)? == byte).then_some(pos + 1)
}

/// The position after `word` (a literal such as `null`), which must be at `pos`.
#[inline]
pub(crate) fn literal(bytes: &[u8], pos: usize, word: &[u8]) -> Option<usize> {
    bytes
        .get(pos..)?
        .starts_with(word)
        .then_some(pos + word.len())
}

/// A string starting after its opening quote at `pos`, decoded as serde_json decodes a `&str`:
/// borrowed when it has no escape, else decoded (and checked) by serde_json itself. Returns it
/// and the position after its closing quote.
#[inline(always)]
pub(crate) fn decoded_string(text: &str, pos: usize) -> Option<(Cow<'_, str>, usize)> {
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
pub(crate) fn unescape(quoted: &str) -> Option<String> {
    serde_json::from_str(quoted).ok()
}

/// Skips a string starting after its opening quote at `pos`, through its closing quote;
/// checks the form of its escapes and that it has no control character. Returns the position
/// after it and whether it had an escape.
///
/// Inlined where it is called: a call's register saves cost as much as a short key's scan.
#[inline(always)]
pub(crate) fn skip_string(bytes: &[u8], mut pos: usize) -> Option<(usize, bool)> {
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
pub(crate) fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = u64::MAX / 255;
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & (ONES << 7)
}

/// Skips a number at `pos` (RFC 8259's grammar; its value is not computed).
pub(crate) fn skip_number(bytes: &[u8], mut pos: usize) -> Option<usize> {
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

pub(crate) fn skip_digits(bytes: &[u8], mut pos: usize) -> usize {
    while let Some(b'0'..=b'9') = bytes.get(pos) {
        pos += 1;
    }
    pos
}

/// Skips one value of any kind at `pos` (after whitespace), checking it strictly, and returns
/// the position after it. Without recursion: depth costs a bit a level (serde_json's
/// `ignore_value` has no depth limit either).
pub(crate) fn skip_value(bytes: &[u8], mut pos: usize) -> Option<usize> {
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
pub(crate) fn skip_key(bytes: &[u8], pos: usize) -> Option<usize> {
    let (pos, _) = skip_string(bytes, expect(bytes, pos, b'"')?)?;
    expect(bytes, pos, b':')
}

/// The kinds of the containers open around the cursor (object or array), innermost last.
#[derive(Default)]
pub(crate) struct Nesting {
    depth: usize,
    /// Bit `i`: level `i` (for the first 64) is an object.
    shallow: u64,
    /// Levels from 64 on: rare, and unbounded like serde_json's.
    deep: Vec<bool>,
}

impl Nesting {
    pub(crate) fn push(&mut self, object: bool) {
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

    pub(crate) fn pop(&mut self) {
        if self.depth > 64 {
            self.deep.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }

    /// Whether the innermost open container is an object; `None` when none is open.
    pub(crate) fn innermost(&self) -> Option<bool> {
        match self.depth {
            0 => None,
            depth @ 1..=64 => Some(self.shallow >> (depth - 1) & 1 == 1),
            _ => self.deep.last().copied(),
        }
    }
}
