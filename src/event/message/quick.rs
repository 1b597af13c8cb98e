//! The shortcuts of one plain text message, read in one pass without the model.
//!
//! Most `message.inbound` deliveries are one text message: one entry, one change, one message,
//! at most one sender profile. For those, [`read`] checks the whole payload as strictly as the
//! model's reader and keeps only what [`InboundEvent`](super::InboundEvent)'s shortcuts answer
//! (`text`, `from`, `wamid`, `kind`, `timestamp`, `sender_name`, `waba_id`, `phone_number_id`),
//! building nothing else: about half the work of the whole model.
//!
//! Anything else answers `None` and the shortcuts ask the model: another shape (several items,
//! another message type, a message with a `context` or `referral`, value-level `errors`), a
//! key given twice, an escaped key, a field of another JSON type than the plain one. So it
//! needs to agree with the model only on the plain shape, and the tests hold it to the model on
//! every fixture and thousands of mutations of them.

use std::borrow::Cow;

use time::OffsetDateTime;

use crate::event::de::timestamp_from_str;
use crate::json::scan;
use crate::text::{self, Str};

/// What the shortcuts answer for a plain text message (its `kind` is `text`).
#[derive(Debug, Default)]
pub(crate) struct Quick {
    pub(crate) waba_id: Option<Str>,
    pub(crate) phone_number_id: Option<Str>,
    pub(crate) from: Option<Str>,
    pub(crate) wamid: Option<Str>,
    pub(crate) timestamp: Option<OffsetDateTime>,
    pub(crate) text: Option<Str>,
    pub(crate) sender_name: Option<Str>,
}

/// The shortcuts' answers, when `payload` is one plain text message in either payload form.
pub(crate) fn read(payload: &str) -> Option<Quick> {
    let mut cursor = Cursor {
        text: payload,
        pos: 0,
    };
    let mut quick = Quick::default();
    let (mut full, mut top_seen, mut entries) = (false, 0u32, 0);
    let mut bare = Value::default();
    cursor.object(|cursor, key| match key {
        "object" => {
            full = true;
            once(&mut top_seen, 0)?;
            cursor.skip()
        }
        "entry" => {
            full = true;
            once(&mut top_seen, 1)?;
            entries = cursor.array(|cursor| entry(cursor, &mut quick))?;
            Some(())
        }
        // A key of a bare change value (the model tells the form by them too, and refuses
        // each given twice, as `InboundValue` refuses its own).
        _ => bare.member(cursor, key, &mut quick, true),
    })?;
    // Nothing but whitespace may follow.
    if cursor.peek().is_some() {
        return None;
    }
    let one = match (full, bare.seen) {
        (true, 0) => entries == 1,
        (false, _) => bare.messages == 1,
        (true, _) => false,
    };
    one.then_some(quick)
}

/// An `entry` item: its `id` and its one change.
fn entry(cursor: &mut Cursor<'_>, quick: &mut Quick) -> Option<()> {
    let (mut seen, mut changes) = (0u32, 0);
    cursor.object(|cursor, key| match key {
        "id" => {
            once(&mut seen, 0)?;
            quick.waba_id = Some(cursor.string()?);
            Some(())
        }
        "changes" => {
            once(&mut seen, 1)?;
            changes = cursor.array(|cursor| change(cursor, quick))?;
            Some(())
        }
        _ => cursor.skip(),
    })?;
    (changes == 1).then_some(())
}

/// A `changes` item: its `value`.
fn change(cursor: &mut Cursor<'_>, quick: &mut Quick) -> Option<()> {
    let mut seen = 0u32;
    let mut value = Value::default();
    cursor.object(|cursor, key| match key {
        "field" => {
            once(&mut seen, 0)?;
            cursor.skip()
        }
        "value" => {
            once(&mut seen, 1)?;
            cursor.object(|cursor, key| value.member(cursor, key, quick, false))
        }
        _ => cursor.skip(),
    })?;
    (value.messages == 1).then_some(())
}

/// The keys of a change value read so far, and its number of messages.
#[derive(Default)]
struct Value {
    seen: u32,
    messages: usize,
}

impl Value {
    /// One member of a change value (`top`: the payload itself, in the bare form).
    fn member(
        &mut self,
        cursor: &mut Cursor<'_>,
        key: &str,
        quick: &mut Quick,
        top: bool,
    ) -> Option<()> {
        match key {
            "messaging_product" => {
                once(&mut self.seen, 0)?;
                cursor.skip()
            }
            "metadata" => {
                once(&mut self.seen, 1)?;
                metadata(cursor, quick)
            }
            "contacts" => {
                once(&mut self.seen, 2)?;
                // The only contact is the sender, whichever number it has.
                let contacts = cursor.array(|cursor| contact(cursor, quick))?;
                (contacts <= 1).then_some(())
            }
            "messages" => {
                once(&mut self.seen, 3)?;
                self.messages = cursor.array(|cursor| message(cursor, quick))?;
                Some(())
            }
            "errors" => None,
            "statuses" if top => {
                once(&mut self.seen, 4)?;
                cursor.skip()
            }
            "calls" if top => {
                once(&mut self.seen, 5)?;
                cursor.skip()
            }
            _ => cursor.skip(),
        }
    }
}

fn metadata(cursor: &mut Cursor<'_>, quick: &mut Quick) -> Option<()> {
    let mut seen = 0u32;
    cursor.object(|cursor, key| match key {
        "display_phone_number" => {
            once(&mut seen, 0)?;
            cursor.skip()
        }
        "phone_number_id" => {
            once(&mut seen, 1)?;
            quick.phone_number_id = Some(cursor.string()?);
            Some(())
        }
        _ => cursor.skip(),
    })
}

fn contact(cursor: &mut Cursor<'_>, quick: &mut Quick) -> Option<()> {
    let mut seen = 0u32;
    cursor.object(|cursor, key| {
        let bit = match key {
            "wa_id" => 0,
            "user_id" => 1,
            "parent_user_id" => 2,
            "identity_key_hash" => 3,
            "profile" => {
                once(&mut seen, 4)?;
                return profile(cursor, quick);
            }
            _ => return cursor.skip(),
        };
        once(&mut seen, bit)?;
        cursor.skip()
    })
}

fn profile(cursor: &mut Cursor<'_>, quick: &mut Quick) -> Option<()> {
    let mut seen = 0u32;
    cursor.object(|cursor, key| match key {
        "name" => {
            once(&mut seen, 0)?;
            quick.sender_name = Some(cursor.string()?);
            Some(())
        }
        "username" => {
            once(&mut seen, 1)?;
            cursor.skip()
        }
        _ => cursor.skip(),
    })
}

/// A message: plain only when its `type` is `text` and it has its `text` object.
fn message(cursor: &mut Cursor<'_>, quick: &mut Quick) -> Option<()> {
    let (mut seen, mut is_text) = (0u32, false);
    cursor.object(|cursor, key| {
        match key {
            "from" => {
                once(&mut seen, 0)?;
                quick.from = Some(cursor.string()?);
            }
            "id" => {
                once(&mut seen, 1)?;
                quick.wamid = Some(cursor.string()?);
            }
            "timestamp" => {
                once(&mut seen, 2)?;
                quick.timestamp = timestamp_from_str(&cursor.string()?);
            }
            "type" => {
                once(&mut seen, 3)?;
                is_text = cursor.string()? == "text";
            }
            "text" => {
                once(&mut seen, 4)?;
                text(cursor, quick)?;
            }
            // Not a shortcut's, and any JSON type reads leniently.
            "from_user_id" => {
                once(&mut seen, 5)?;
                cursor.skip()?;
            }
            "from_parent_user_id" => {
                once(&mut seen, 6)?;
                cursor.skip()?;
            }
            "group_id" => {
                once(&mut seen, 7)?;
                cursor.skip()?;
            }
            // Known keys of other shapes: the model's.
            "context" | "referral" | "errors" | "image" | "video" | "audio" | "document"
            | "sticker" | "location" | "contacts" | "button" | "interactive" | "reaction"
            | "order" | "system" => return None,
            _ => cursor.skip()?,
        }
        Some(())
    })?;
    (is_text && seen & (1 << 4) != 0).then_some(())
}

fn text(cursor: &mut Cursor<'_>, quick: &mut Quick) -> Option<()> {
    let mut seen = 0u32;
    cursor.object(|cursor, key| match key {
        "body" => {
            once(&mut seen, 0)?;
            quick.text = Some(cursor.string()?);
            Some(())
        }
        _ => cursor.skip(),
    })
}

/// Marks key `bit` seen; `None` when it was (the model refuses a key given twice, or takes
/// the last: either way not plain).
fn once(seen: &mut u32, bit: u32) -> Option<()> {
    let mask = 1 << bit;
    if *seen & mask != 0 {
        return None;
    }
    *seen |= mask;
    Some(())
}

/// A position in the payload's text, read with the strict primitives of [`scan`].
struct Cursor<'a> {
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
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
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

    /// An array of objects, each read by `item`; answers how many there were.
    fn array(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<usize> {
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

    /// A string, shared with the payload when it has no escape.
    fn string(&mut self) -> Option<Str> {
        let start = scan::expect(self.bytes(), self.pos, b'"')?;
        let (value, end) = scan::decoded_string(self.text, start)?;
        self.pos = end;
        Some(match value {
            Cow::Borrowed(value) => text::shared(value),
            Cow::Owned(value) => Str::from(value),
        })
    }

    /// Any value, checked strictly.
    fn skip(&mut self) -> Option<()> {
        self.pos = scan::skip_value(self.bytes(), self.pos)?;
        Some(())
    }
}
