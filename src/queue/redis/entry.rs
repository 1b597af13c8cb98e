//! Stream entries read back: a queued delivery, a dead letter.

use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::Uri;
use redis::streams::StreamId;

use crate::dedup::{ClaimToken, EventKey};
use crate::queue::Delivery;
use crate::signature::decode_hex;
use crate::verified::VerifiedEvent;

/// How long an event stays done when its entry carries no claim TTL (one day).
pub(super) const UNCLAIMED_TTL: Duration = Duration::from_secs(86_400);

/// A stream entry, parsed.
pub(super) struct Entry {
    /// The partition whose stream it was read from: its record and dead letter are there.
    pub(super) partition: usize,
    pub(super) id: String,
    pub(super) event_id: String,
    pub(super) key: Option<EventKey>,
    pub(super) token: Option<ClaimToken>,
    pub(super) ttl: Duration,
    pub(super) delivery: Result<Delivery, String>,
    /// Deliveries before this one: the attempt count of an entry whose record is another
    /// entry's (the record counts started attempts otherwise).
    pub(super) earlier: u32,
}

impl Entry {
    pub(super) fn parse(partition: usize, entry: &StreamId, earlier: u32) -> Self {
        let event_id: String = entry.get("event_id").unwrap_or_default();
        let key = entry
            .get::<String>("key")
            .and_then(|hex| {
                let mut bytes = [0u8; 16];
                decode_hex(hex.as_bytes(), &mut bytes).map(|()| bytes)
            })
            .map(EventKey::from_bytes);
        let token = entry
            .get::<String>("token")
            .and_then(|hex| parse_token(&hex));
        let ttl = entry
            .get("ttl_ms")
            .map_or(UNCLAIMED_TTL, Duration::from_millis);
        let delivery = entry
            .get::<Vec<u8>>("body")
            .ok_or_else(|| "malformed queue entry: no body".to_owned())
            .and_then(|body| {
                VerifiedEvent::from_trusted_body(Bytes::from(body))
                    .map_err(|error| format!("malformed queue entry: {error}"))
            })
            .map(|event| Delivery {
                event,
                uri: entry
                    .get::<String>("uri")
                    .and_then(|uri| uri.parse::<Uri>().ok())
                    .unwrap_or_else(|| Uri::from_static("/")),
                content_type: entry
                    .get::<Vec<u8>>("content_type")
                    .filter(|value| !value.is_empty())
                    .and_then(|value| HeaderValue::from_bytes(&value).ok()),
            });
        Self {
            partition,
            id: entry.id.clone(),
            event_id,
            key,
            token,
            ttl,
            delivery,
            earlier,
        }
    }
}

/// A claim token as the stream and the records hold it (32 hex digits); `None` when empty.
pub(super) fn parse_token(hex: &str) -> Option<ClaimToken> {
    u128::from_str_radix(hex, 16)
        .ok()
        .filter(|_| !hex.is_empty())
        .map(ClaimToken::from_u128)
}

/// A dead letter read back from the dead-letter stream.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RedisDeadLetter {
    id: String,
    stream: String,
    event_id: String,
    error: String,
    attempts: u32,
    body: Bytes,
}

impl RedisDeadLetter {
    pub(super) fn from_entry(entry: &StreamId, stream: &str) -> Self {
        Self {
            id: entry.id.clone(),
            stream: stream.to_owned(),
            event_id: entry.get("event_id").unwrap_or_default(),
            error: entry.get("error").unwrap_or_default(),
            attempts: entry.get("attempts").unwrap_or_default(),
            body: entry
                .get::<Vec<u8>>("body")
                .map(Bytes::from)
                .unwrap_or_default(),
        }
    }

    /// The entry id in the dead-letter stream.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The dead-letter stream it is in (its partition's).
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The event's `event_id`.
    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// The last attempt's failure.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// How many attempts were made (a worker lost mid-handler counts as one).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The exact verified bytes, e.g. for [`VerifiedEvent::from_trusted_body`].
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}
