//! The two payload forms Vobiz documents (spec §2.1) read into one list of [`Change`]s.
//!
//! Meta's full notification (`{"object":…,"entry":[{"id":…,"changes":[{"field":…,"value":…}]}]}`)
//! is read in one pass straight into the list: each change is pushed as it is read and gets
//! its entry's `id` when the entry ends (the `id` may follow `changes`), with no list per entry
//! or per `changes` array in between. A bare change `value` is read as one change.
//!
//! The visitors keep what serde's derived `Deserialize` of the plain wire structs did, which
//! the tests compare against: a key given twice in the payload, an entry or a change is an
//! error (the payload then types to no changes), `null` is an absent key, items that are not
//! objects are skipped, and any other JSON type where an array or object belongs reads as
//! empty.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};
use serde::Deserialize;

use super::de::{self as lenient, Lenient, LenientStr};
use super::{Change, ChangeList};
use crate::envelope::JsonStr;

/// Normalises either payload form into its changes. Never fails: anything undocumented
/// yields no changes (the caller keeps the raw payload).
pub(super) fn changes<V: DeserializeOwned>(payload: &str) -> ChangeList<V> {
    // The changes of the full form are read straight into the list that is returned, rather
    // than moved out of the reader's result through `Option`s and `Result`s.
    let mut list = ChangeList::default();
    match read_form(payload, &mut list) {
        Some(form) if form.is_full => list,
        Some(form) if form.is_bare_value => match read::<V>(payload) {
            Some(value) => ChangeList::One([Change {
                waba_id: None,
                field: None,
                value,
            }]),
            None => ChangeList::default(),
        },
        _ => ChangeList::default(),
    }
}

/// The payload's form (`None` unless it is an object), its full form's changes pushed to
/// `list`: by the crate's fast reader, or by serde_json where the reader refuses (the answer is
/// serde_json's either way, see [`crate::json::reader`]). `list` is empty unless the answer is
/// the full form.
fn read_form<V: DeserializeOwned>(payload: &str, list: &mut ChangeList<V>) -> Option<Form> {
    #[cfg(test)]
    if super::tests::SERDE_JSON_ONLY.get() {
        return read_form_with_serde_json(payload, list);
    }
    match crate::json::reader::from_str_seed(payload, Payload(&mut *list)) {
        Ok(form) => form,
        Err(_) => {
            *list = ChangeList::default();
            read_form_with_serde_json(payload, list)
        }
    }
}

/// [`read_form`] by serde_json alone: the reference the fast reader is held to.
#[cold]
fn read_form_with_serde_json<V: DeserializeOwned>(
    payload: &str,
    list: &mut ChangeList<V>,
) -> Option<Form> {
    let mut deserializer = serde_json::Deserializer::from_str(payload);
    let form = Payload(&mut *list)
        .deserialize(&mut deserializer)
        .and_then(|form| deserializer.end().map(|()| form));
    form.unwrap_or_else(|_| {
        *list = ChangeList::default();
        None
    })
}

/// `T` read leniently (`None` unless `payload` is an object) by the crate's fast reader, or by
/// serde_json where the reader refuses: the answer is serde_json's either way (see
/// [`crate::json::reader`]).
fn read<T: DeserializeOwned>(payload: &str) -> Option<T> {
    #[cfg(test)]
    if super::tests::SERDE_JSON_ONLY.get() {
        return read_with_serde_json(payload)?.0;
    }
    crate::json::reader::from_str::<Lenient<T>>(payload)
        .ok()
        .or_else(|| read_with_serde_json(payload))?
        .0
}

/// [`read`] by serde_json alone: the reference the fast reader is held to.
#[cold]
fn read_with_serde_json<T: DeserializeOwned>(payload: &str) -> Option<Lenient<T>> {
    serde_json::from_str(payload).ok()
}

/// Which form a payload is.
pub(super) struct Form {
    /// `object` (not `null`) or at least one `entry` object: Meta's full notification.
    is_full: bool,
    /// A key of a change `value`: the bare form.
    is_bare_value: bool,
}

/// The top-level keys both forms are told apart by, in the order of `seen`'s bits.
pub(super) const TOP_KEYS: [&str; 9] = [
    "object",
    "entry",
    "messaging_product",
    "metadata",
    "contacts",
    "messages",
    "statuses",
    "calls",
    "errors",
];

/// The payload's top level, read leniently (`None` unless it is an object): its form, and the
/// full form's changes pushed to the list.
pub(super) struct Payload<'a, V>(pub(super) &'a mut ChangeList<V>);

impl<'de, V: Deserialize<'de>> DeserializeSeed<'de> for Payload<'_, V> {
    type Value = Option<Form>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Form>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, V: Deserialize<'de>> Visitor<'de> for Payload<'_, V> {
    type Value = Option<Form>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a WhatsApp webhook payload")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut form = Form {
            is_full: false,
            is_bare_value: false,
        };
        let mut seen = 0u16;
        while let Some(JsonStr(key)) = map.next_key()? {
            let Some(index) = TOP_KEYS.iter().position(|known| *known == key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            once(&mut seen, index, TOP_KEYS[index])?;
            if index == 1 {
                let entries = map.next_value_seed(Entries(&mut *self.0))?;
                form.is_full |= entries > 0;
            } else if map.next_value::<Option<IgnoredAny>>()?.is_some() {
                if index == 0 {
                    form.is_full = true;
                } else {
                    form.is_bare_value = true;
                }
            }
        }
        Ok(Some(form))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    lenient::default_for_the_rest!();
}

/// Marks key `index` seen; a second one is an error, as in serde's derived structs.
fn once<E: de::Error>(seen: &mut u16, index: usize, name: &'static str) -> Result<(), E> {
    let bit = 1u16 << index;
    if *seen & bit != 0 {
        return Err(E::duplicate_field(name));
    }
    *seen |= bit;
    Ok(())
}

/// The `entry` array: each object's changes pushed to the list; answers how many items were
/// objects.
struct Entries<'a, V>(&'a mut ChangeList<V>);

impl<'de, V: Deserialize<'de>> DeserializeSeed<'de> for Entries<'_, V> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(ArrayOfObjects(self.0, PhantomData::<Entry<V>>))
    }
}

/// An entry object: its `changes`, then its `id` given to each of them.
struct Entry<V>(PhantomData<V>);

/// A `changes` item object: pushed when it has an object `value`.
struct ChangeItem<V>(PhantomData<V>);

/// How to read one object item of an array into the list.
trait Item<'de, V> {
    fn visit<A: MapAccess<'de>>(list: &mut ChangeList<V>, map: A) -> Result<(), A::Error>;
}

impl<'de, V: Deserialize<'de>> Item<'de, V> for Entry<V> {
    fn visit<A: MapAccess<'de>>(list: &mut ChangeList<V>, mut map: A) -> Result<(), A::Error> {
        let first = list.as_slice().len();
        let (mut id, mut seen) = (None, 0u16);
        while let Some(JsonStr(key)) = map.next_key()? {
            match &*key {
                "id" => {
                    once(&mut seen, 0, "id")?;
                    id = map.next_value::<LenientStr>()?.0;
                }
                "changes" => {
                    once(&mut seen, 1, "changes")?;
                    map.next_value_seed(Changes(&mut *list))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(id) = id {
            for change in list.as_mut_slice().get_mut(first..).unwrap_or_default() {
                change.waba_id = Some(id.clone());
            }
        }
        Ok(())
    }
}

impl<'de, V: Deserialize<'de>> Item<'de, V> for ChangeItem<V> {
    fn visit<A: MapAccess<'de>>(list: &mut ChangeList<V>, mut map: A) -> Result<(), A::Error> {
        let (mut field, mut value, mut seen) = (None, None, 0u16);
        while let Some(JsonStr(key)) = map.next_key()? {
            match &*key {
                "field" => {
                    once(&mut seen, 0, "field")?;
                    field = map.next_value::<LenientStr>()?.0;
                }
                "value" => {
                    once(&mut seen, 1, "value")?;
                    value = map.next_value::<Lenient<V>>()?.0;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(value) = value {
            list.push(Change {
                waba_id: None,
                field,
                value,
            });
        }
        Ok(())
    }
}

/// An entry's `changes` array.
struct Changes<'a, V>(&'a mut ChangeList<V>);

impl<'de, V: Deserialize<'de>> DeserializeSeed<'de> for Changes<'_, V> {
    type Value = usize;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_any(ArrayOfObjects(self.0, PhantomData::<ChangeItem<V>>))
    }
}

/// An array whose object items are read by `I` (others skipped); anything but an array reads
/// as empty, as `de::vec` reads it. Answers how many items were objects.
struct ArrayOfObjects<'a, V, I>(&'a mut ChangeList<V>, PhantomData<I>);

impl<'de, V, I: Item<'de, V>> Visitor<'de> for ArrayOfObjects<'_, V, I> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let (list, mut objects) = (self.0, 0);
        while let Some(was_object) =
            seq.next_element_seed(ObjectItem::<V, I>(&mut *list, PhantomData))?
        {
            objects += usize::from(was_object);
        }
        Ok(objects)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(0)
    }

    lenient::default_for_the_rest!();
}

/// One array item: read by `I` when it is an object, else skipped; answers whether it was.
struct ObjectItem<'a, V, I>(&'a mut ChangeList<V>, PhantomData<I>);

impl<'de, V, I: Item<'de, V>> DeserializeSeed<'de> for ObjectItem<'_, V, I> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, V, I: Item<'de, V>> Visitor<'de> for ObjectItem<'_, V, I> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        I::visit(self.0, map).map(|()| true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }

    lenient::default_for_the_rest!();
}
