//! `message.inbound`: the shortcuts of one plain text message, at most one sender profile.

use time::OffsetDateTime;

use super::{once, Cursor, Origin, Plain};
use crate::event::de::timestamp_from_str;
use crate::text::Str;

/// What [`InboundEvent`](crate::event::InboundEvent)'s shortcuts answer for one plain text
/// message (its `kind` is `text`).
#[derive(Debug, Default)]
pub(crate) struct Quick {
    pub(crate) origin: Origin,
    pub(crate) from: Option<Str>,
    pub(crate) wamid: Option<Str>,
    pub(crate) timestamp: Option<OffsetDateTime>,
    pub(crate) text: Option<Str>,
    pub(crate) sender_name: Option<Str>,
    /// Its own keys of the value read so far, and its number of messages.
    seen: u32,
    messages: usize,
}

impl Plain for Quick {
    fn member(&mut self, cursor: &mut Cursor<'_>, key: &str) -> Option<()> {
        match key {
            "contacts" => {
                once(&mut self.seen, 0)?;
                // The only contact is the sender, whichever number it has.
                let contacts = cursor.array(|cursor| contact(cursor, self))?;
                (contacts <= 1).then_some(())
            }
            "messages" => {
                once(&mut self.seen, 1)?;
                self.messages = cursor.array(|cursor| message(cursor, self))?;
                Some(())
            }
            _ => cursor.skip(),
        }
    }

    fn is_one(&self) -> bool {
        self.messages == 1
    }

    fn origin(&mut self) -> &mut Origin {
        &mut self.origin
    }
}

/// A sender profile: its name (the other fields only checked, as the model reads them).
fn contact(cursor: &mut Cursor<'_>, quick: &mut Quick) -> Option<()> {
    let mut seen = 0u32;
    cursor.object(|cursor, key| {
        let index = match key {
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
        once(&mut seen, index)?;
        cursor.lenient()
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
            cursor.lenient()
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
                cursor.lenient()?;
            }
            "from_parent_user_id" => {
                once(&mut seen, 6)?;
                cursor.lenient()?;
            }
            "group_id" => {
                once(&mut seen, 7)?;
                cursor.lenient()?;
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
