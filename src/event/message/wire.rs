//! The wire form of messages: the visitors that read a message and an interactive reply by
//! their `type` (unknown types kept raw), and the serializers that write them back.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::content::{
    Button, CallPermissionReply, Interactive, Location, Media, NfmReply, Order, Reaction, Reply,
    SharedContact, System, Text,
};
use super::value::{Context, Message, MessageContent, OtherContent, Referral};
use crate::envelope::JsonStr;
use crate::event::common::ApiError;
use crate::event::de::{Lenient, LenientStr, Seq, Time};

/// Takes the raw object stored under `kind` among the unknown keys.
fn take_raw(extra: Vec<(String, Box<RawValue>)>, kind: &str) -> Option<Box<RawValue>> {
    extra.into_iter().find(|(k, _)| k == kind).map(|(_, v)| v)
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a WhatsApp message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let (mut from, mut from_user_id, mut from_parent_user_id) = (None, None, None);
        let (mut id, mut timestamp, mut group_id, mut kind) = (None, None, None, None);
        let (mut context, mut referral, mut errors) = (None, None, Vec::new());
        let (mut text, mut image, mut video, mut audio) = (None, None, None, None);
        let (mut document, mut sticker, mut location, mut contacts) = (None, None, None, None);
        let (mut button, mut interactive, mut reaction) = (None, None, None);
        let (mut order, mut system) = (None, None);
        let mut extra: Vec<(String, Box<RawValue>)> = Vec::new();
        while let Some(JsonStr(key)) = map.next_key()? {
            match &*key {
                "from" => from = map.next_value::<LenientStr>()?.0,
                "from_user_id" => from_user_id = map.next_value::<LenientStr>()?.0,
                "from_parent_user_id" => from_parent_user_id = map.next_value::<LenientStr>()?.0,
                "id" => id = map.next_value::<LenientStr>()?.0,
                "timestamp" => timestamp = map.next_value::<Time>()?.0,
                "group_id" => group_id = map.next_value::<LenientStr>()?.0,
                "type" => kind = map.next_value::<LenientStr>()?.0,
                "context" => context = map.next_value::<Lenient<Context>>()?.0.map(Box::new),
                "referral" => referral = map.next_value::<Lenient<Referral>>()?.0.map(Box::new),
                "errors" => errors = map.next_value::<Seq<ApiError>>()?.0,
                "text" => text = map.next_value::<Lenient<Text>>()?.0,
                "image" => image = map.next_value::<Lenient<Media>>()?.0,
                "video" => video = map.next_value::<Lenient<Media>>()?.0,
                "audio" => audio = map.next_value::<Lenient<Media>>()?.0,
                "document" => document = map.next_value::<Lenient<Media>>()?.0,
                "sticker" => sticker = map.next_value::<Lenient<Media>>()?.0,
                "location" => location = map.next_value::<Lenient<Location>>()?.0,
                "contacts" => contacts = Some(map.next_value::<Seq<SharedContact>>()?.0),
                "button" => button = map.next_value::<Lenient<Button>>()?.0,
                "interactive" => interactive = map.next_value::<Lenient<Interactive>>()?.0,
                "reaction" => reaction = map.next_value::<Lenient<Reaction>>()?.0,
                "order" => order = map.next_value::<Lenient<Order>>()?.0,
                "system" => system = map.next_value::<Lenient<System>>()?.0,
                _ => extra.push((key.into_owned(), map.next_value()?)),
            }
        }
        let kind = kind.unwrap_or_default();
        let known = match kind.as_str() {
            "text" => text.map(MessageContent::Text),
            "image" => image.map(MessageContent::Image),
            "video" => video.map(MessageContent::Video),
            "audio" => audio.map(MessageContent::Audio),
            "document" => document.map(MessageContent::Document),
            "sticker" => sticker.map(MessageContent::Sticker),
            "location" => location.map(MessageContent::Location),
            "contacts" => contacts.map(MessageContent::Contacts),
            "button" => button.map(MessageContent::Button),
            "interactive" => interactive.map(MessageContent::Interactive),
            "reaction" => reaction.map(MessageContent::Reaction),
            "order" => order.map(MessageContent::Order),
            "system" => system.map(MessageContent::System),
            "unsupported" => Some(MessageContent::Unsupported),
            _ => None,
        };
        let content = match known {
            Some(content) => content,
            None => MessageContent::Other(OtherContent {
                raw: take_raw(extra, &kind),
                kind,
            }),
        };
        Ok(Message {
            from,
            from_user_id,
            from_parent_user_id,
            id,
            timestamp,
            group_id,
            context,
            referral,
            errors,
            content,
        })
    }
}

impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Ts(OffsetDateTime);
        impl Serialize for Ts {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.unix_timestamp())
            }
        }
        let mut map = s.serialize_map(None)?;
        let strings = [
            ("from", &self.from),
            ("from_user_id", &self.from_user_id),
            ("from_parent_user_id", &self.from_parent_user_id),
            ("id", &self.id),
            ("group_id", &self.group_id),
        ];
        for (key, value) in strings {
            if let Some(value) = value {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(t) = self.timestamp {
            map.serialize_entry("timestamp", &Ts(t))?;
        }
        if let Some(context) = &self.context {
            map.serialize_entry("context", context)?;
        }
        if let Some(referral) = &self.referral {
            map.serialize_entry("referral", referral)?;
        }
        if !self.errors.is_empty() {
            map.serialize_entry("errors", &self.errors)?;
        }
        let kind = self.kind();
        map.serialize_entry("type", kind)?;
        match &self.content {
            MessageContent::Text(v) => map.serialize_entry(kind, v)?,
            MessageContent::Image(v)
            | MessageContent::Video(v)
            | MessageContent::Audio(v)
            | MessageContent::Document(v)
            | MessageContent::Sticker(v) => map.serialize_entry(kind, v)?,
            MessageContent::Location(v) => map.serialize_entry(kind, v)?,
            MessageContent::Contacts(v) => map.serialize_entry(kind, v)?,
            MessageContent::Button(v) => map.serialize_entry(kind, v)?,
            MessageContent::Interactive(v) => map.serialize_entry(kind, v)?,
            MessageContent::Reaction(v) => map.serialize_entry(kind, v)?,
            MessageContent::Order(v) => map.serialize_entry(kind, v)?,
            MessageContent::System(v) => map.serialize_entry(kind, v)?,
            MessageContent::Unsupported => {}
            MessageContent::Other(other) => {
                if let Some(raw) = &other.raw {
                    map.serialize_entry(kind, raw)?;
                }
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Interactive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct InteractiveVisitor;
        impl<'de> Visitor<'de> for InteractiveVisitor {
            type Value = Interactive;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an interactive reply object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Interactive, A::Error> {
                let (mut kind, mut button, mut list, mut nfm, mut call) =
                    (None, None, None, None, None);
                let mut extra: Vec<(String, Box<RawValue>)> = Vec::new();
                while let Some(JsonStr(key)) = map.next_key()? {
                    match &*key {
                        "type" => kind = map.next_value::<LenientStr>()?.0,
                        "button_reply" => button = map.next_value::<Lenient<Reply>>()?.0,
                        "list_reply" => list = map.next_value::<Lenient<Reply>>()?.0,
                        "nfm_reply" => nfm = map.next_value::<Lenient<NfmReply>>()?.0,
                        "call_permission_reply" => {
                            call = map.next_value::<Lenient<CallPermissionReply>>()?.0;
                        }
                        _ => extra.push((key.into_owned(), map.next_value()?)),
                    }
                }
                let kind = kind.unwrap_or_default();
                let known = match kind.as_str() {
                    "button_reply" => button.map(Interactive::ButtonReply),
                    "list_reply" => list.map(Interactive::ListReply),
                    "nfm_reply" => nfm.map(Interactive::NfmReply),
                    "call_permission_reply" => call.map(Interactive::CallPermissionReply),
                    _ => None,
                };
                Ok(match known {
                    Some(known) => known,
                    None => Interactive::Other(OtherContent {
                        raw: take_raw(extra, &kind),
                        kind,
                    }),
                })
            }
        }
        d.deserialize_map(InteractiveVisitor)
    }
}

impl Serialize for Interactive {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        let kind = self.kind();
        map.serialize_entry("type", kind)?;
        match self {
            Self::ButtonReply(v) | Self::ListReply(v) => map.serialize_entry(kind, v)?,
            Self::NfmReply(v) => map.serialize_entry(kind, v)?,
            Self::CallPermissionReply(v) => map.serialize_entry(kind, v)?,
            Self::Other(other) => {
                if let Some(raw) = &other.raw {
                    map.serialize_entry(kind, raw)?;
                }
            }
        }
        map.end()
    }
}

impl Serialize for OtherContent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("type", &self.kind)?;
        map.serialize_entry("raw", &self.raw)?;
        map.end()
    }
}
