//! `message.status`: the shortcuts of one plain status update (one without `errors`).

use time::OffsetDateTime;

use super::{fields, once, Cursor, Field, Origin, Plain};
use crate::event::de::timestamp_from_str;
use crate::event::StatusKind;
use crate::text::Str;

/// What [`StatusEvent`](crate::event::StatusEvent)'s shortcuts answer for one plain update.
#[derive(Debug, Default)]
pub(crate) struct Quick {
    pub(crate) origin: Origin,
    pub(crate) wamid: Option<Str>,
    pub(crate) status: Option<StatusKind>,
    pub(crate) timestamp: Option<OffsetDateTime>,
    pub(crate) recipient_id: Option<Str>,
    /// Its own keys of the value read so far, and its number of updates.
    seen: u32,
    statuses: usize,
}

impl Plain for Quick {
    fn member(&mut self, cursor: &mut Cursor<'_>, key: &str) -> Option<()> {
        match key {
            "statuses" => {
                once(&mut self.seen, 0)?;
                self.statuses = cursor.array(|cursor| update(cursor, self))?;
                Some(())
            }
            _ => cursor.skip(),
        }
    }

    fn is_one(&self) -> bool {
        self.statuses == 1
    }

    fn origin(&mut self) -> &mut Origin {
        &mut self.origin
    }
}

/// `statuses[].conversation`, checked as the model reads it.
const CONVERSATION: &[Field] = &[
    Field::Scalar("id"),
    Field::Scalar("expiration_timestamp"),
    Field::Object("origin", &[Field::Scalar("type")]),
];

/// `statuses[].pricing`, checked as the model reads it.
const PRICING: &[Field] = &[
    Field::Scalar("billable"),
    Field::Scalar("pricing_model"),
    Field::Scalar("type"),
    Field::Scalar("category"),
];

/// A status update: plain when it has no `errors`.
fn update(cursor: &mut Cursor<'_>, quick: &mut Quick) -> Option<()> {
    let mut seen = 0u32;
    cursor.object(|cursor, key| {
        let index = match key {
            "id" => {
                once(&mut seen, 0)?;
                quick.wamid = Some(cursor.string()?);
                return Some(());
            }
            "status" => {
                once(&mut seen, 1)?;
                quick.status = Some(StatusKind::parse(&cursor.string()?));
                return Some(());
            }
            "timestamp" => {
                once(&mut seen, 2)?;
                quick.timestamp = timestamp_from_str(&cursor.string()?);
                return Some(());
            }
            "recipient_id" => {
                once(&mut seen, 3)?;
                quick.recipient_id = Some(cursor.string()?);
                return Some(());
            }
            "conversation" => {
                once(&mut seen, 4)?;
                return fields(cursor, CONVERSATION);
            }
            "pricing" => {
                once(&mut seen, 5)?;
                return fields(cursor, PRICING);
            }
            "errors" => return None,
            // Not a shortcut's, and any JSON type reads leniently.
            "recipient_type" => 6,
            "recipient_participant_id" => 7,
            "recipient_identity_key_hash" => 8,
            "biz_opaque_callback_data" => 9,
            _ => return cursor.skip(),
        };
        once(&mut seen, index)?;
        cursor.lenient()
    })
}
