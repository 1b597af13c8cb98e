//! A serde `Deserializer` over JSON text that makes exactly the visits `serde_json::from_str`
//! makes, at a fraction of the cost, or refuses.
//!
//! Why: typing a payload with serde_json costs about 24 instructions a byte of the
//! `message.inbound` fixture, though every value it visits is either wanted or skipped: most of
//! it goes to serde_json's general machinery (whitespace one byte at a time, each string's
//! scratch handling, `ignore_value`). The event model's visitors (`event::de`, the message
//! and call visitors) stay as they are; only the source of their visits changes (bench/README,
//! "A cheaper typed payload").
//!
//! Contract: [`from_str`] either returns what `serde_json::from_str` would return for the same
//! text, or [`Refused`] — and the caller then runs serde_json. So it may refuse anything, but it
//! must never accept what serde_json rejects, nor visit differently. It reads the grammar with
//! [`scan`](super::scan)'s strict primitives and hands to serde_json itself everything whose
//! reading is subtle:
//! - a string with an escape (serde_json decodes it and checks its code points);
//! - every number but a non-negative integer of at most 19 digits (serde_json picks `u64`,
//!   `i64` or `f64` and rounds);
//! - `enum`, bytes, `f32`, 128-bit integers and non-string reads of map keys (refused: the
//!   event model asks for none of them).
//!
//! A `Box<RawValue>` (how the model keeps unknown fields of a message) is answered through
//! serde_json's protocol for it: the value's text, skipped strictly, handed over as the one
//! entry of a map keyed by serde_json's token. Nesting deeper than [`MAX_DEPTH`] (serde_json's
//! limit is 128) is refused.

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, Deserialize, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::scan;

/// The name under which serde_json's `RawValue` asks a deserializer for a value's raw text.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// Containers deeper than this are refused (serde_json refuses beyond 128).
const MAX_DEPTH: u32 = 100;

/// The reader did not read the text; serde_json will (and will explain, if it must).
#[derive(Debug)]
pub(crate) struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to serde_json")
    }
}

impl std::error::Error for Refused {}

impl de::Error for Refused {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Refused
    }
}

/// `T` read from `text` as `serde_json::from_str` reads it, or [`Refused`].
pub(crate) fn from_str<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, Refused> {
    from_str_seed(text, std::marker::PhantomData::<T>)
}

/// What `seed` reads from `text`, as serde_json reads it with the same seed, or [`Refused`].
pub(crate) fn from_str_seed<'de, S: DeserializeSeed<'de>>(
    text: &'de str,
    seed: S,
) -> Result<S::Value, Refused> {
    let mut reader = Reader {
        text,
        pos: 0,
        depth: 0,
    };
    let value = seed.deserialize(&mut reader)?;
    // Nothing but whitespace may follow.
    if scan::skip_whitespace(text.as_bytes(), reader.pos) == text.len() {
        Ok(value)
    } else {
        Err(Refused)
    }
}

/// The cursor over the text.
struct Reader<'de> {
    text: &'de str,
    pos: usize,
    depth: u32,
}

impl<'de> Reader<'de> {
    /// The next byte after whitespace; the cursor moves onto it.
    #[inline]
    fn peek(&mut self) -> Result<u8, Refused> {
        let bytes = self.text.as_bytes();
        self.pos = scan::skip_whitespace(bytes, self.pos);
        bytes.get(self.pos).copied().ok_or(Refused)
    }

    /// Moves past `word` (`null`, `true`, `false`), which must be at the cursor.
    fn literal(&mut self, word: &[u8]) -> Result<(), Refused> {
        self.pos = scan::literal(self.text.as_bytes(), self.pos, word).ok_or(Refused)?;
        Ok(())
    }

    /// The string at the cursor (on its opening quote): borrowed from the text when it has no
    /// escape, as serde_json's `visit_borrowed_str`; else decoded by serde_json.
    #[inline]
    fn string<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Refused> {
        let start = self.pos;
        let (end, escaped) = scan::skip_string(self.text.as_bytes(), start + 1).ok_or(Refused)?;
        self.pos = end;
        if escaped {
            return by_serde_json(self.text.get(start..end).ok_or(Refused)?, visitor);
        }
        // `start` and `end - 1` are the quotes: ASCII, so these are char boundaries.
        let inner = self.text.get(start + 1..end - 1).ok_or(Refused)?;
        visitor.visit_borrowed_str(inner)
    }

    /// The number at the cursor.
    fn number<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Refused> {
        let start = self.pos;
        let end = scan::skip_number(self.text.as_bytes(), start).ok_or(Refused)?;
        self.pos = end;
        let token = self.text.get(start..end).ok_or(Refused)?;
        // At most 19 digits always fit a `u64`, and serde_json reads such a token as one.
        if token.len() <= 19 && token.bytes().all(|digit| digit.is_ascii_digit()) {
            let value = token
                .bytes()
                .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0'));
            return visitor.visit_u64(value);
        }
        by_serde_json(token, visitor)
    }

    /// The array at the cursor (on `[`), its items visited one by one.
    fn seq<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Refused> {
        self.enter()?;
        let value = visitor.visit_seq(Items {
            reader: self,
            first: true,
        })?;
        self.leave(b']')?;
        Ok(value)
    }

    /// The object at the cursor (on `{`), its entries visited one by one.
    fn map<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Refused> {
        self.enter()?;
        let value = visitor.visit_map(Entries {
            reader: self,
            first: true,
        })?;
        self.leave(b'}')?;
        Ok(value)
    }

    /// The first byte of a container's next item (the cursor moves onto it), after the comma
    /// that must separate it from the one before; `None` at `close`, the container's end.
    #[inline]
    fn next_in(&mut self, close: u8, first: &mut bool) -> Result<Option<u8>, Refused> {
        let byte = self.peek()?;
        if byte == close {
            return Ok(None);
        }
        if std::mem::take(first) {
            return Ok(Some(byte));
        }
        if byte != b',' {
            return Err(Refused);
        }
        self.pos += 1;
        self.peek().map(Some)
    }

    /// Steps into a container (the cursor is on its opening bracket).
    fn enter(&mut self) -> Result<(), Refused> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Refused);
        }
        self.pos += 1;
        Ok(())
    }

    /// Steps out of a container: the visitor must have read all of it, so `close` comes next.
    fn leave(&mut self, close: u8) -> Result<(), Refused> {
        self.depth -= 1;
        if self.peek()? != close {
            return Err(Refused);
        }
        self.pos += 1;
        Ok(())
    }

    /// The raw text of the value at the cursor, in serde_json's `RawValue` protocol.
    fn raw_value<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value, Refused> {
        self.peek()?;
        let start = self.pos;
        self.pos = scan::skip_value(self.text.as_bytes(), start).ok_or(Refused)?;
        let raw = self.text.get(start..self.pos).ok_or(Refused)?;
        visitor.visit_map(RawEntry(Some(raw)))
    }
}

/// `token` (one whole JSON value of the text) read by serde_json: its visits exactly.
#[cold]
fn by_serde_json<'de, V: Visitor<'de>>(token: &'de str, visitor: V) -> Result<V::Value, Refused> {
    let mut deserializer = serde_json::Deserializer::from_str(token);
    de::Deserializer::deserialize_any(&mut deserializer, visitor).map_err(|_| Refused)
}

/// Implements `Deserializer` methods that refuse: the model never asks for them.
macro_rules! refuse {
    ($($method:ident $(($($arg:ident: $ty:ty),*))?),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, $($($arg: $ty,)*)? _: V) -> Result<V::Value, Refused> {
            $($(let _ = $arg;)*)?
            Err(Refused)
        })*
    };
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.peek()? {
            b'"' => self.string(visitor),
            b'{' => self.map(visitor),
            b'[' => self.seq(visitor),
            b'-' | b'0'..=b'9' => self.number(visitor),
            b'n' => {
                self.literal(b"null")?;
                visitor.visit_unit()
            }
            b't' => {
                self.literal(b"true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.literal(b"false")?;
                visitor.visit_bool(false)
            }
            _ => Err(Refused),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.peek()? {
            b't' | b'f' => self.deserialize_any(visitor),
            _ => Err(Refused),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_u64(visitor)
    }

    /// serde_json reads every integer and `f64` request as "a number" and visits what the
    /// token is; so does this.
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(visitor),
            _ => Err(Refused),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.peek()? {
            b'"' => self.string(visitor),
            _ => Err(Refused),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        if self.peek().ok() == Some(b'n') {
            self.literal(b"null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.peek()? {
            b'n' => self.deserialize_any(visitor),
            _ => Err(Refused),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        if name == RAW_VALUE_TOKEN {
            self.raw_value(visitor)
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.peek()? {
            b'[' => self.seq(visitor),
            _ => Err(Refused),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.peek()? {
            b'{' => self.map(visitor),
            _ => Err(Refused),
        }
    }

    /// A struct reads from an object, or (as serde_json allows) from an array.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        match self.peek()? {
            b'{' => self.map(visitor),
            b'[' => self.seq(visitor),
            _ => Err(Refused),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_str(visitor)
    }

    /// Skips the value strictly, as serde_json's `ignore_value`.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.peek()?;
        self.pos = scan::skip_value(self.text.as_bytes(), self.pos).ok_or(Refused)?;
        visitor.visit_unit()
    }

    refuse!(
        deserialize_i128,
        deserialize_u128,
        deserialize_f32,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    );
}

/// An array's items, as serde_json's `SeqAccess` reads them.
struct Items<'a, 'de> {
    reader: &'a mut Reader<'de>,
    first: bool,
}

impl<'de> SeqAccess<'de> for Items<'_, 'de> {
    type Error = Refused;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Refused> {
        match self.reader.next_in(b']', &mut self.first)? {
            None => Ok(None),
            Some(b']') => Err(Refused), // a trailing comma
            Some(_) => seed.deserialize(&mut *self.reader).map(Some),
        }
    }
}

/// An object's entries, as serde_json's `MapAccess` reads them.
struct Entries<'a, 'de> {
    reader: &'a mut Reader<'de>,
    first: bool,
}

impl<'de> MapAccess<'de> for Entries<'_, 'de> {
    type Error = Refused;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Refused> {
        match self.reader.next_in(b'}', &mut self.first)? {
            None => return Ok(None),
            Some(b'"') => {}
            Some(_) => return Err(Refused), // not a key, or a trailing comma
        }
        seed.deserialize(Key(&mut *self.reader)).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Refused> {
        if self.reader.peek()? != b':' {
            return Err(Refused);
        }
        self.reader.pos += 1;
        seed.deserialize(&mut *self.reader)
    }
}

/// An object's key (the cursor is on its opening quote): read as a string, as serde_json's
/// `MapKey` does for every request but numbers, booleans and the like, which are refused.
struct Key<'a, 'de>(&'a mut Reader<'de>);

impl<'de> de::Deserializer<'de> for Key<'_, 'de> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.0.string(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.0.string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.0.string(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.0.string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.0.string(visitor)
    }

    refuse!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    );
}

/// The one entry serde_json's `RawValue` reads: its token, then the raw text as a string.
struct RawEntry<'de>(Option<&'de str>);

impl<'de> MapAccess<'de> for RawEntry<'de> {
    type Error = Refused;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Refused> {
        if self.0.is_none() {
            return Ok(None);
        }
        seed.deserialize(BorrowedStrDeserializer::new(RAW_VALUE_TOKEN))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Refused> {
        let raw = self.0.take().ok_or(Refused)?;
        seed.deserialize(BorrowedStrDeserializer::new(raw))
    }
}

#[cfg(test)]
mod tests;
