//! The shortcuts of one plain item, read in one pass without the model.
//!
//! Most deliveries carry one item: one text message (`message.inbound`) or one status update
//! (`message.status`), in one entry and one change. For those, [`read`] checks the whole payload
//! as strictly as the model's reader and keeps only what the event's shortcuts answer
//! ([`InboundEvent::text`](super::InboundEvent::text), `from`, …;
//! [`StatusEvent::status`](super::StatusEvent::status), `wamid`, …), building nothing else:
//! about half the work of the whole model.
//!
//! Anything else answers `None` and the shortcuts ask the model: another shape (several items,
//! another message type, a message with a `context`, value-level or item `errors`), a key given
//! twice where the model refuses or overwrites it, an escaped key, a field of another JSON type
//! than the plain one. So the two need to agree only on the plain shape, and the tests hold them
//! to each other on every fixture and thousands of mutations of them.

pub(crate) mod inbound;
pub(crate) mod status;

use std::borrow::Cow;

use crate::json::scan;
use crate::text::{self, Str};

/// What the shortcuts of one value type read: the members of its change value that are its
/// own (the ones every value has are read by `value_member`), and whether the value held
/// exactly the one item they answer for.
pub(crate) trait Plain: Default {
    /// Reads one member of the change value (the cursor at its value).
    fn member(&mut self, cursor: &mut Cursor<'_>, key: &str) -> Option<()>;
    /// Whether the value had exactly one item, plain.
    fn is_one(&self) -> bool;
    /// Where the value came from.
    fn origin(&mut self) -> &mut Origin;
}

/// The shortcuts every event has: where its first change came from.
#[derive(Debug, Default)]
pub(crate) struct Origin {
    pub(crate) waba_id: Option<Str>,
    pub(crate) phone_number_id: Option<Str>,
}

/// The shortcuts' answers, when `payload` holds one plain item in either payload form.
pub(crate) fn read<P: Plain>(payload: &str) -> Option<P> {
    let mut cursor = Cursor {
        text: payload,
        pos: 0,
    };
    let mut plain = P::default();
    let (mut full, mut bare, mut top_seen, mut entries) = (false, false, 0u32, 0);
    let mut value_seen = 0u32;
    cursor.object(|cursor, key| {
        // The model tells the form by these keys and refuses each given twice.
        if let Some(index) = super::payload::TOP_KEYS.iter().position(|k| *k == key) {
            once(&mut top_seen, index)?;
        }
        match key {
            "object" => {
                full = true;
                cursor.skip()
            }
            "entry" => {
                full = true;
                entries = cursor.array(|cursor| entry(cursor, &mut plain))?;
                Some(())
            }
            "messaging_product" | "metadata" | "contacts" | "messages" | "statuses" | "calls"
            | "errors" => {
                bare = true;
                value_member(cursor, key, &mut plain, &mut value_seen)
            }
            _ => cursor.skip(),
        }
    })?;
    // Nothing but whitespace may follow.
    if cursor.peek().is_some() {
        return None;
    }
    let one = if full {
        !bare && entries == 1
    } else {
        plain.is_one()
    };
    one.then_some(plain)
}

/// An `entry` item: its `id` and its one change.
fn entry<P: Plain>(cursor: &mut Cursor<'_>, plain: &mut P) -> Option<()> {
    let (mut seen, mut changes) = (0u32, 0);
    cursor.object(|cursor, key| match key {
        "id" => {
            once(&mut seen, 0)?;
            plain.origin().waba_id = Some(cursor.string()?);
            Some(())
        }
        "changes" => {
            once(&mut seen, 1)?;
            changes = cursor.array(|cursor| change(cursor, plain))?;
            Some(())
        }
        _ => cursor.skip(),
    })?;
    (changes == 1).then_some(())
}

/// A `changes` item: its `value`, with one item.
fn change<P: Plain>(cursor: &mut Cursor<'_>, plain: &mut P) -> Option<()> {
    let (mut seen, mut value_seen) = (0u32, 0u32);
    cursor.object(|cursor, key| match key {
        "field" => {
            once(&mut seen, 0)?;
            cursor.lenient()
        }
        "value" => {
            once(&mut seen, 1)?;
            cursor.object(|cursor, key| value_member(cursor, key, plain, &mut value_seen))
        }
        _ => cursor.skip(),
    })?;
    plain.is_one().then_some(())
}

/// One member of a change value: the keys every value type has here (`seen` marks them), the
/// rest by the value type. Value-level `errors` are the model's.
fn value_member<P: Plain>(
    cursor: &mut Cursor<'_>,
    key: &str,
    plain: &mut P,
    seen: &mut u32,
) -> Option<()> {
    match key {
        "messaging_product" => {
            once(seen, 0)?;
            cursor.lenient()
        }
        "metadata" => {
            once(seen, 1)?;
            metadata(cursor, plain.origin())
        }
        "errors" => None,
        _ => plain.member(cursor, key),
    }
}

/// `value.metadata`: its `phone_number_id`.
fn metadata(cursor: &mut Cursor<'_>, origin: &mut Origin) -> Option<()> {
    let mut seen = 0u32;
    cursor.object(|cursor, key| match key {
        "display_phone_number" => {
            once(&mut seen, 0)?;
            cursor.lenient()
        }
        "phone_number_id" => {
            once(&mut seen, 1)?;
            origin.phone_number_id = Some(cursor.string()?);
            Some(())
        }
        _ => cursor.skip(),
    })
}

/// A field of an object the shortcuts do not read but the model does (a derived struct, which
/// refuses a key given twice): a scalar read leniently, or a nested object of such fields.
pub(super) enum Field {
    Scalar(&'static str),
    Object(&'static str, &'static [Field]),
}

impl Field {
    fn name(&self) -> &'static str {
        match self {
            Self::Scalar(name) | Self::Object(name, _) => name,
        }
    }
}

/// Checks an object the model reads as `fields`: `None` when one is given twice (anywhere
/// inside). A value that is not an object reads as absent in the model, as it does here.
pub(super) fn fields(cursor: &mut Cursor<'_>, fields_of: &'static [Field]) -> Option<()> {
    if cursor.peek()? != b'{' {
        return cursor.lenient();
    }
    let mut seen = 0u32;
    cursor.object(|cursor, key| {
        let Some(index) = fields_of.iter().position(|field| field.name() == key) else {
            return cursor.skip();
        };
        once(&mut seen, index)?;
        match &fields_of[index] {
            Field::Scalar(_) => cursor.lenient(),
            Field::Object(_, inner) => fields(cursor, inner),
        }
    })
}

/// Marks key `index` seen; `None` when it was (the model refuses a key given twice, or takes
/// the last: either way not plain).
pub(super) fn once(seen: &mut u32, index: usize) -> Option<()> {
    let mask = 1u32.checked_shl(u32::try_from(index).ok()?)?;
    if *seen & mask != 0 {
        return None;
    }
    *seen |= mask;
    Some(())
}

/// A position in the payload's text, read with the strict primitives of [`scan`].
pub(crate) struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.pos = scan::skip_whitespace(self.bytes(), self.pos);
        self.bytes().get(self.pos).copied()
    }

    /// An object, each member's value read by `member` (called with its key).
    pub(super) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.pos = scan::expect(self.bytes(), self.pos, b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            let start = scan::expect(self.bytes(), self.pos, b'"')?;
            let (end, escaped) = scan::skip_string(self.bytes(), start)?;
            if escaped {
                return None;
            }
            let key = self.text.get(start..end - 1)?;
            self.pos = scan::expect(self.bytes(), end, b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array, each item read by `item`; answers how many there were.
    pub(super) fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<usize> {
        self.pos = scan::expect(self.bytes(), self.pos, b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(0);
        }
        let mut items = 0;
        loop {
            item(self)?;
            items += 1;
            match self.peek()? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(items);
                }
                _ => return None,
            }
        }
    }

    /// A string (anything else is not plain), shared with the payload when it has no escape.
    pub(super) fn string(&mut self) -> Option<Str> {
        let start = scan::expect(self.bytes(), self.pos, b'"')?;
        let (value, end) = scan::decoded_string(self.text, start)?;
        self.pos = end;
        Some(match value {
            Cow::Borrowed(value) => text::shared(value),
            Cow::Owned(value) => Str::from(value),
        })
    }

    /// A value the model reads leniently as a scalar, which decodes it: a string's escapes are
    /// checked as serde_json decodes them (a lone surrogate is refused), and a number is not
    /// plain (serde_json refuses some a skip accepts, such as `1e400`). Other values are
    /// skipped, as the model skips them.
    pub(super) fn lenient(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => None,
            _ => self.skip(),
        }
    }

    /// Any value, checked strictly, as serde_json skips what is not read.
    pub(super) fn skip(&mut self) -> Option<()> {
        self.pos = scan::skip_value(self.bytes(), self.pos)?;
        Some(())
    }
}

#[cfg(test)]
mod tests;
