//! The record of a verified delivery that the layer hands to the inner service.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use bytestring::ByteString;
use time::OffsetDateTime;

use crate::envelope::{Envelope, EventType};
use crate::event::VobizEvent;

/// A delivery whose signature verified and whose envelope parsed.
///
/// [`VobizWebhookLayer`](crate::VobizWebhookLayer) inserts one into the request extensions
/// before it calls the inner service; handlers take it as an extractor or read it from
/// `request.extensions()`. Cloning is cheap (one reference count).
///
/// The typed payload is parsed on the first call to [`event`](Self::event) and cached, so a
/// handler that needs only the envelope never pays for it.
#[derive(Clone)]
pub struct VerifiedEvent {
    inner: Arc<Inner>,
}

struct Inner {
    envelope: Envelope,
    /// The body, checked UTF-8 when the envelope was read.
    body: ByteString,
    payload: Option<Range<usize>>,
    typed: OnceLock<VobizEvent>,
}

impl VerifiedEvent {
    pub(crate) fn new(envelope: Envelope, body: ByteString, payload: Option<Range<usize>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                envelope,
                body,
                payload,
                typed: OnceLock::new(),
            }),
        }
    }

    /// Parses and verifies nothing: builds the record a verified delivery of `body` would get.
    ///
    /// For tests and tools that drive handlers without the layer. The signature is not checked.
    ///
    /// # Errors
    ///
    /// The envelope errors of [`Envelope::from_slice`].
    pub fn from_trusted_body(body: Bytes) -> Result<Self, crate::EnvelopeError> {
        let (parsed, text) = crate::envelope::parse_shared(&body)?;
        Ok(Self::new(parsed.envelope, text, parsed.payload))
    }

    /// The envelope fields.
    pub fn envelope(&self) -> &Envelope {
        &self.inner.envelope
    }

    /// `event_id`, the deduplication key.
    pub fn event_id(&self) -> &str {
        &self.inner.envelope.event_id
    }

    /// `event_type`.
    pub fn event_type(&self) -> &EventType {
        &self.inner.envelope.event_type
    }

    /// `account_id`, when present.
    pub fn account_id(&self) -> Option<&str> {
        self.inner.envelope.account_id.as_deref()
    }

    /// `occurred_at`, when present and RFC 3339.
    pub fn occurred_at(&self) -> Option<OffsetDateTime> {
        self.inner.envelope.occurred_at
    }

    /// The exact bytes that were signed and verified.
    pub fn body(&self) -> &Bytes {
        self.inner.body.as_bytes()
    }

    /// The raw JSON of `payload` (`null` when the body had none).
    pub fn payload_json(&self) -> &[u8] {
        match &self.inner.payload {
            Some(range) => self.body().get(range.clone()).unwrap_or(b"null"),
            None => b"null",
        }
    }

    /// The payload's text, shared with the body (no copy).
    fn payload_text(&self) -> ByteString {
        let body = &self.inner.body;
        match self
            .inner
            .payload
            .as_ref()
            .and_then(|range| body.get(range.clone()))
        {
            Some(payload) => body.slice_ref(payload),
            None => ByteString::from_static("null"),
        }
    }

    /// The typed event, parsed from the payload on first use and cached.
    ///
    /// Never fails: a payload of an undocumented shape is kept raw inside the event.
    pub fn event(&self) -> &VobizEvent {
        self.inner
            .typed
            .get_or_init(|| VobizEvent::from_shared_payload(self.event_type(), self.payload_text()))
    }
}

impl fmt::Debug for VerifiedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body is customer data: leave it out of logs.
        f.debug_struct("VerifiedEvent")
            .field("event_id", &self.event_id())
            .field("event_type", &self.event_type().as_str())
            .field("account_id", &self.account_id())
            .field("occurred_at", &self.occurred_at())
            .field("body_len", &self.inner.body.len())
            .finish()
    }
}
