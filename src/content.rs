//! Content keys: a Meta notification split into items, every message, status and call of every
//! change of every entry, each with its content key, the event type Vobiz would name it by, its
//! timestamp and a one-item notification as its payload. Pure: text in, items out; never fails
//! on a JSON object, whatever its shape.
//!
//! The Meta leg (`meta`) runs one event per item; the Vobiz layer's opt-in content dedup claims
//! the keys of a delivery's payload. Both name an item the same way, so one store can stop the
//! same WhatsApp message arriving through both legs.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::envelope::EventType;

/// One item of a notification: one event for the handlers.
#[derive(Debug)]
// The Vobiz leg's content dedup reads only the key.
#[cfg_attr(not(feature = "meta"), allow(dead_code))]
pub(crate) struct Item {
    /// The content key: the wamid of a message, `<status id>:<status>` of a status,
    /// `<call id>:<event>` of a call, `sha256:<hex>` of anything else.
    pub(crate) key: String,
    /// `message.inbound`, `message.status`, `call.<event>` or `meta.<field>`.
    pub(crate) event_type: EventType,
    /// The item's own `timestamp` (Unix seconds), when it has a readable one.
    pub(crate) timestamp: Option<i64>,
    /// Meta's notification holding this item alone (with its entry id, field, and the change's
    /// `messaging_product`, `metadata`, `errors` and the contacts it concerns).
    pub(crate) payload: String,
}

/// The body is not a JSON object: not a notification at all.
#[derive(Debug)]
#[cfg_attr(not(feature = "meta"), allow(dead_code))]
pub(crate) struct NotANotification(pub(crate) serde_json::Error);

#[derive(Deserialize)]
struct WireTop<'a> {
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    entry: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireEntry<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    changes: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireChange<'a> {
    #[serde(borrow, default)]
    field: Option<&'a RawValue>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireValue<'a> {
    #[serde(borrow, default)]
    messaging_product: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    contacts: Option<&'a RawValue>,
    #[serde(borrow, default)]
    errors: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
    #[serde(borrow, default)]
    statuses: Option<&'a RawValue>,
    #[serde(borrow, default)]
    calls: Option<&'a RawValue>,
}

/// The fields of a message, status or call that name it; everything else stays raw.
#[derive(Deserialize, Default)]
struct WireItem<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    status: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    from: Option<&'a RawValue>,
    #[serde(borrow, default)]
    to: Option<&'a RawValue>,
    #[serde(borrow, default)]
    recipient_id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct WireContact<'a> {
    #[serde(borrow, default)]
    wa_id: Option<&'a RawValue>,
}

/// The three arrays of a change value that hold items.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Message,
    Status,
    Call,
}

impl Kind {
    fn array(self) -> &'static str {
        match self {
            Self::Message => "messages",
            Self::Status => "statuses",
            Self::Call => "calls",
        }
    }
}

const DEFAULT_OBJECT: &str = r#""whatsapp_business_account""#;

/// Splits a notification into its items, in the order they appear.
///
/// A body that is a JSON object never fails: an `entry`, entry or change of an unexpected shape
/// becomes one `meta.unknown` (or `meta.<field>`) item keyed by the hash of its bytes, so nothing
/// signed is silently dropped. A change with no message, status or call (an account update, a
/// template status, an error-only change) is one `meta.<field>` item.
pub(crate) fn split(body: &str) -> Result<Vec<Item>, NotANotification> {
    // A struct also reads from a JSON array; only an object is a notification.
    let raw: &RawValue = serde_json::from_str(body).map_err(NotANotification)?;
    if !raw.get().starts_with('{') {
        let unexpected = serde::de::Unexpected::Other("a JSON value other than an object");
        let error = serde::de::Error::invalid_type(unexpected, &"a JSON object");
        return Err(NotANotification(error));
    }
    let top: WireTop<'_> = serde_json::from_str(raw.get()).map_err(NotANotification)?;
    let object = top.object.map_or(DEFAULT_OBJECT, RawValue::get);
    let mut items = Vec::new();
    let Some(entries) = top.entry else {
        return Ok(items);
    };
    let Some(entries) = array(entries) else {
        items.push(other("unknown", body, body.to_owned()));
        return Ok(items);
    };
    for entry in entries {
        split_entry(object, entry, &mut items);
    }
    Ok(items)
}

fn split_entry(object: &str, raw: &RawValue, items: &mut Vec<Item>) {
    let whole = || format!(r#"{{"object":{object},"entry":[{}]}}"#, raw.get());
    let Ok(entry) = serde_json::from_str::<WireEntry<'_>>(raw.get()) else {
        items.push(other("unknown", raw.get(), whole()));
        return;
    };
    let Some(changes) = entry.changes.and_then(array) else {
        items.push(other("unknown", raw.get(), whole()));
        return;
    };
    let id = entry.id.map(RawValue::get);
    for change in changes {
        split_change(object, id, change, items);
    }
}

fn split_change(object: &str, entry_id: Option<&str>, raw: &RawValue, items: &mut Vec<Item>) {
    let wrap = |change: &str| {
        let id = entry_id
            .map(|id| format!(r#""id":{id},"#))
            .unwrap_or_default();
        format!(r#"{{"object":{object},"entry":[{{{id}"changes":[{change}]}}]}}"#)
    };
    let parsed = serde_json::from_str::<WireChange<'_>>(raw.get()).ok();
    let field = parsed
        .as_ref()
        .and_then(|change| change.field)
        .and_then(string)
        .unwrap_or(Cow::Borrowed("unknown"));
    let value = parsed
        .as_ref()
        .and_then(|change| change.value)
        .and_then(|value| serde_json::from_str::<WireValue<'_>>(value.get()).ok());
    let Some(value) = value else {
        items.push(other(&field, raw.get(), wrap(raw.get())));
        return;
    };
    let contacts: Vec<(Option<Cow<'_, str>>, &RawValue)> = value
        .contacts
        .and_then(array)
        .unwrap_or_default()
        .into_iter()
        .map(|contact| {
            let wa_id = serde_json::from_str::<WireContact<'_>>(contact.get())
                .ok()
                .and_then(|contact| contact.wa_id)
                .and_then(string);
            (wa_id, contact)
        })
        .collect();
    let before = items.len();
    let field_json = json_string(&field);
    for (kind, list) in [
        (Kind::Message, value.messages),
        (Kind::Status, value.statuses),
        (Kind::Call, value.calls),
    ] {
        for element in list.and_then(array).unwrap_or_default() {
            let wire = serde_json::from_str::<WireItem<'_>>(element.get()).unwrap_or_default();
            let (key, event_type) = name(kind, &field, &wire, element);
            let mut parts = Vec::with_capacity(5);
            if let Some(product) = value.messaging_product {
                parts.push(format!(r#""messaging_product":{}"#, product.get()));
            }
            if let Some(metadata) = value.metadata {
                parts.push(format!(r#""metadata":{}"#, metadata.get()));
            }
            let concerned = concerned_contacts(&contacts, &wire);
            if !concerned.is_empty() {
                parts.push(format!(r#""contacts":[{}]"#, concerned.join(",")));
            }
            if let Some(errors) = value.errors {
                parts.push(format!(r#""errors":{}"#, errors.get()));
            }
            parts.push(format!(r#""{}":[{}]"#, kind.array(), element.get()));
            let change = format!(
                r#"{{"field":{field_json},"value":{{{}}}}}"#,
                parts.join(",")
            );
            items.push(Item {
                key,
                event_type,
                timestamp: wire.timestamp.and_then(seconds),
                payload: wrap(&change),
            });
        }
    }
    if items.len() == before {
        // No message, status or call: the change itself is the item.
        items.push(other(&field, raw.get(), wrap(raw.get())));
    }
}

/// The content key and the event type of one message, status or call.
fn name(kind: Kind, field: &str, wire: &WireItem<'_>, raw: &RawValue) -> (String, EventType) {
    let id = wire.id.and_then(string);
    match kind {
        Kind::Message => (
            id.map_or_else(|| hash_key(raw.get()), Cow::into_owned),
            EventType::MessageInbound,
        ),
        Kind::Status => {
            let status = wire.status.and_then(string);
            let key = match (id, status) {
                (Some(id), Some(status)) => format!("{id}:{status}"),
                _ => hash_key(raw.get()),
            };
            // A call's status (ringing, accepted, rejected) comes as a status under `calls`.
            let of_call = field == "calls" || wire.kind.and_then(string).as_deref() == Some("call");
            let event_type = if of_call {
                EventType::parse("call.status_change")
            } else {
                EventType::MessageStatus
            };
            (key, event_type)
        }
        Kind::Call => match (id, wire.event.and_then(string)) {
            (Some(id), Some(event)) => (
                format!("{id}:{event}"),
                EventType::parse(&format!("call.{event}")),
            ),
            (_, Some(event)) => (
                hash_key(raw.get()),
                EventType::parse(&format!("call.{event}")),
            ),
            (_, None) => (hash_key(raw.get()), meta_type(field)),
        },
    }
}

/// The contacts an item concerns (its sender, recipient or callee); all of them when none
/// matches, so a contact is never lost.
fn concerned_contacts<'a>(
    contacts: &[(Option<Cow<'_, str>>, &'a RawValue)],
    wire: &WireItem<'_>,
) -> Vec<&'a str> {
    let people: Vec<Cow<'_, str>> = [wire.from, wire.to, wire.recipient_id]
        .into_iter()
        .flatten()
        .filter_map(string)
        .collect();
    let matching: Vec<&str> = contacts
        .iter()
        .filter(|(wa_id, _)| wa_id.as_ref().is_some_and(|id| people.contains(id)))
        .map(|(_, raw)| raw.get())
        .collect();
    if matching.is_empty() {
        contacts.iter().map(|(_, raw)| raw.get()).collect()
    } else {
        matching
    }
}

/// An item that is no message, status or call: `meta.<field>`, keyed by the hash of its bytes.
fn other(field: &str, raw: &str, payload: String) -> Item {
    Item {
        key: hash_key(raw),
        event_type: meta_type(field),
        timestamp: None,
        payload,
    }
}

fn meta_type(field: &str) -> EventType {
    EventType::parse(&format!("meta.{field}"))
}

/// `sha256:` and the hex SHA-256 of `bytes`: the content key of an item that has no id.
pub(crate) fn hash_key(bytes: &str) -> String {
    format!(
        "{}{}",
        hash_key_prefix(),
        hex::encode(Sha256::digest(bytes.as_bytes()))
    )
}

/// The prefix of hash keys.
pub(crate) const fn hash_key_prefix() -> &'static str {
    "sha256:"
}

/// The elements of a JSON array; `None` for anything else.
fn array(raw: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_str(raw.get()).ok()
}

/// A JSON string's text; `None` for anything else.
fn string(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Cow<'_, str>>(raw.get())
        .ok()
        .or_else(|| {
            serde_json::from_str::<String>(raw.get())
                .ok()
                .map(Cow::Owned)
        })
}

/// Unix seconds from a string or a number.
fn seconds(raw: &RawValue) -> Option<i64> {
    if let Ok(number) = serde_json::from_str::<i64>(raw.get()) {
        return Some(number);
    }
    string(raw)?.trim().parse().ok()
}

/// `text` as a JSON string.
#[cfg_attr(not(feature = "meta"), allow(dead_code))]
pub(crate) fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(body: &str) -> Vec<(String, String)> {
        split(body)
            .expect("a notification")
            .into_iter()
            .map(|item| (item.key, item.event_type.as_str().to_owned()))
            .collect()
    }

    #[test]
    fn every_message_status_and_call_of_every_change_is_an_item() {
        let body = r#"{"object":"whatsapp_business_account","entry":[
          {"id":"W1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
            "contacts":[{"wa_id":"91a","profile":{"name":"A"}},{"wa_id":"91b"}],
            "messages":[{"id":"wamid.1","from":"91a","timestamp":"10","type":"text","text":{"body":"x"}},
                        {"id":"wamid.2","from":"91b","timestamp":"11","type":"text"}],
            "statuses":[{"id":"wamid.0","status":"read","timestamp":"12"}]}}]},
          {"id":"W2","changes":[{"field":"calls","value":{
            "calls":[{"id":"wacid.1","event":"connect","timestamp":13}],
            "statuses":[{"id":"wacid.1","type":"call","status":"ACCEPTED"}]}},
            {"field":"account_update","value":{"event":"VERIFIED"}}]}]}"#;
        let items = keys(body);
        assert_eq!(&items[0], &("wamid.1".into(), "message.inbound".into()));
        assert_eq!(&items[1], &("wamid.2".into(), "message.inbound".into()));
        assert_eq!(&items[2], &("wamid.0:read".into(), "message.status".into()));
        // Within a change: messages, then statuses, then calls.
        assert_eq!(
            &items[3],
            &("wacid.1:ACCEPTED".into(), "call.status_change".into())
        );
        assert_eq!(
            &items[4],
            &("wacid.1:connect".into(), "call.connect".into())
        );
        assert!(items[5].0.starts_with("sha256:"));
        assert_eq!(items[5].1, "meta.account_update");
        assert_eq!(items.len(), 6);
    }

    #[test]
    fn an_item_s_payload_holds_it_alone_with_its_sender() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"W1","changes":[
          {"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"P"},
           "contacts":[{"wa_id":"91a"},{"wa_id":"91b"}],
           "messages":[{"id":"wamid.1","from":"91a","timestamp":"10"},{"id":"wamid.2","from":"91b"}]}}]}]}"#;
        let items = split(body).expect("items");
        let second: serde_json::Value = serde_json::from_str(&items[1].payload).expect("json");
        let value = &second["entry"][0]["changes"][0]["value"];
        assert_eq!(second["entry"][0]["id"], "W1");
        assert_eq!(second["entry"][0]["changes"][0]["field"], "messages");
        assert_eq!(value["metadata"]["phone_number_id"], "P");
        assert_eq!(value["messages"].as_array().map(Vec::len), Some(1));
        assert_eq!(value["messages"][0]["id"], "wamid.2");
        assert_eq!(value["contacts"], serde_json::json!([{"wa_id":"91b"}]));
        assert_eq!(items[0].timestamp, Some(10));
        assert_eq!(items[1].timestamp, None);
    }

    #[test]
    fn odd_shapes_become_hash_keyed_items_and_never_fail() {
        for body in [
            r#"{"entry":7}"#,
            r#"{"entry":[1,{"changes":"x"},{"changes":[2,{"field":"messages","value":[]},{"field":"messages","value":{"messages":[]}}]}]}"#,
            r#"{"entry":[{"changes":[{"value":{"messages":[3,{"type":"text"}],"statuses":[{"id":"s"}],"calls":[{"id":"c"}]}}]}]}"#,
        ] {
            let items = split(body).expect(body);
            assert!(!items.is_empty(), "{body}");
            for item in &items {
                assert!(!item.key.is_empty());
                serde_json::from_str::<serde_json::Value>(&item.payload).expect("payload is JSON");
            }
        }
        assert!(split("[]").is_err());
        assert!(split("not json").is_err());
        assert!(keys(r#"{"object":"page"}"#).is_empty());
    }

    #[test]
    fn escaped_and_raw_text_keep_their_keys() {
        let escaped = r#"{"entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":"wamid.\u0041\/1"}]}}]}]}"#;
        assert_eq!(keys(escaped)[0].0, "wamid.A/1");
    }
}
