//! The opt-in content dedup of the Vobiz leg
//! ([`dedup_on_content`](super::VobizWebhookLayer::dedup_on_content)): besides its `event_id`, a
//! delivery claims the content keys of the items in its payload, named as the Meta leg names
//! them (the wamid of a message, `<status id>:<status>` of a status, `<call id>:<event>` of a
//! call), so the same WhatsApp update delivered under two `event_id`s is handled once.

use tokio::time::Instant;

use crate::claim::{Claimed, Dedup, Lease, Terms};
use crate::content::{hash_key_prefix, split};
use crate::dedup::{DedupStore, EventKey, StoreError};

/// What claiming a delivery's content keys found.
pub(super) enum ContentClaim {
    /// Run the handler; settle these claims with the delivery's own (none when the payload has
    /// no message, status or call, or every key but those held here is done already).
    Run(Vec<Lease>),
    /// Every item was handled already, under another `event_id`.
    Done,
    /// An item is being handled by another delivery right now (the claims taken here are
    /// released as they drop).
    InFlight,
}

/// The content keys of a payload, in either form Vobiz sends (Meta's whole notification or a
/// bare change `value`); items without an id of their own (hash-keyed) are left out: their
/// bytes need not be what Meta sent.
pub(super) fn content_keys(payload: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(payload) else {
        return Vec::new();
    };
    let mut items = split(text).unwrap_or_default();
    if items.is_empty() && text.trim_start().starts_with('{') {
        // A bare change value: a notification of one change around it.
        let wrapped = format!(r#"{{"entry":[{{"changes":[{{"value":{text}}}]}}]}}"#);
        items = split(&wrapped).unwrap_or_default();
    }
    let mut keys: Vec<String> = items
        .into_iter()
        .map(|item| item.key)
        .filter(|key| !key.starts_with(hash_key_prefix()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// Claims every content key of `payload`, one after another.
pub(super) async fn claim_content<D: DedupStore>(
    dedup: &Dedup<D>,
    terms: Terms,
    payload: &[u8],
) -> Result<ContentClaim, StoreError> {
    let keys = content_keys(payload);
    if keys.is_empty() {
        return Ok(ContentClaim::Run(Vec::new()));
    }
    let mut leases = Vec::with_capacity(keys.len());
    let mut done = 0;
    for key in &keys {
        match dedup
            .clone()
            .claim(EventKey::from_event_id(key), terms, Instant::now())
            .await?
        {
            Claimed::Fresh(lease) => leases.push(lease),
            Claimed::Done => done += 1,
            Claimed::InFlight => return Ok(ContentClaim::InFlight),
        }
    }
    Ok(if done == keys.len() {
        ContentClaim::Done
    } else {
        ContentClaim::Run(leases)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_both_payload_forms_and_none_for_the_rest() {
        let full = br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"messages":[{"id":"wamid.1"}],"statuses":[{"id":"wamid.0","status":"read"}]}}]}]}"#;
        assert_eq!(content_keys(full), vec!["wamid.0:read", "wamid.1"]);
        let bare =
            br#"{"messaging_product":"whatsapp","calls":[{"id":"wacid.1","event":"connect"}]}"#;
        assert_eq!(content_keys(bare), vec!["wacid.1:connect"]);
        for nothing in [
            &b"{}"[..],
            b"null",
            b"[1]",
            b"\xff",
            br#"{"event":"APPROVED"}"#,
        ] {
            assert!(content_keys(nothing).is_empty());
        }
    }
}
