//! Lenient field deserializers: every one accepts any JSON value and never fails.
//!
//! A value of the wrong JSON type becomes `None` (or an empty `Vec`) instead of an error, so a
//! surprising field never costs the rest of the event. Each value is read once, straight from
//! the input: no `serde_json::Value`, no buffering.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Serializer;
use time::OffsetDateTime;

use crate::text::{self, Str};

/// Skips the rest of a sequence.
fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Skips the rest of a map.
fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// Implements the visitor methods that map every scalar JSON type (and `null`) to the
/// value's default: `None`, an empty list, zero.
macro_rules! default_for_the_rest {
    () => {
        $crate::event::de::default_for_the_rest!(
            visit_bool(bool),
            visit_i64(i64),
            visit_u64(u64),
            visit_f64(f64),
            visit_str(&str)
        );
    };
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method<E: serde::de::Error>(self, _: $ty) -> Result<Self::Value, E> {
            Ok(Default::default())
        })*
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    };
}
pub(super) use default_for_the_rest;

/// `T` when the value is a JSON object, `None` for anything else.
pub(crate) struct Lenient<T>(pub(crate) Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IfObject(std::convert::identity, PhantomData))
            .map(Lenient)
    }
}

/// The lenient rule for an object value, in one place: an object is read as `T` and handed
/// to the function (whose answer is `Some`); anything else is skipped and reads as `None`.
struct IfObject<T, F>(F, PhantomData<T>);

impl<'de, T: Deserialize<'de>, R, F: FnOnce(T) -> R> de::DeserializeSeed<'de> for IfObject<T, F> {
    type Value = Option<R>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<R>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Deserialize<'de>, R, F: FnOnce(T) -> R> Visitor<'de> for IfObject<T, F> {
    type Value = Option<R>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<R>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(|value| Some((self.0)(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<R>, A::Error> {
        drain_seq(seq).map(|()| None)
    }

    default_for_the_rest!();
}

/// A nested object: `None` unless the value is an object.
pub(crate) fn obj<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Lenient::<T>::deserialize(d).map(|lenient| lenient.0)
}

/// An array of objects: items that are not objects are skipped; a non-array is empty.
pub(crate) fn vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    struct VecVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for VecVisitor<T> {
        type Value = Option<Vec<T>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
            // Each object item is pushed where it is read (not returned through `Lenient`,
            // `Option` and `Result`: a `Message` is 512 bytes to move).
            while seq
                .next_element_seed(IfObject(|item| out.push(item), PhantomData))?
                .is_some()
            {}
            Ok(Some(out))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map).map(|()| None)
        }
        default_for_the_rest!();
    }
    d.deserialize_any(VecVisitor(PhantomData))
        .map(Option::unwrap_or_default)
}

/// A scalar read from any JSON type, via a conversion for each.
struct Scalar<F>(F);

/// How a scalar field converts each JSON type.
trait Convert: Sized {
    type Out;
    fn string(&self, v: &str) -> Option<Self::Out>;
    fn int(&self, v: i128) -> Option<Self::Out>;
    fn float(&self, v: f64) -> Option<Self::Out>;
    fn boolean(&self, v: bool) -> Option<Self::Out>;
    fn owned(&self, v: String) -> Option<Self::Out> {
        self.string(&v)
    }
    /// A string borrowed from the input being typed.
    fn borrowed(&self, v: &str) -> Option<Self::Out> {
        self.string(v)
    }
}

impl<'de, F: Convert> Visitor<'de> for Scalar<F> {
    type Value = Option<F::Out>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(self.0.borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.string(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(self.0.owned(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(self.0.int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.0.int(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(self.0.float(v))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(self.0.boolean(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain_seq(seq).map(|()| None)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        drain_map(map).map(|()| None)
    }
}

struct ToStr;
impl Convert for ToStr {
    type Out = Str;
    fn string(&self, v: &str) -> Option<Str> {
        Some(Str::from(v))
    }
    fn owned(&self, v: String) -> Option<Str> {
        Some(Str::from(v))
    }
    fn borrowed(&self, v: &str) -> Option<Str> {
        Some(text::shared(v))
    }
    fn int(&self, v: i128) -> Option<Str> {
        Some(Str::from(v.to_string()))
    }
    fn float(&self, v: f64) -> Option<Str> {
        Some(Str::from(v.to_string()))
    }
    fn boolean(&self, _: bool) -> Option<Str> {
        None
    }
}

struct ToBool;
impl Convert for ToBool {
    type Out = bool;
    fn string(&self, v: &str) -> Option<bool> {
        v.trim().parse().ok()
    }
    fn int(&self, _: i128) -> Option<bool> {
        None
    }
    fn float(&self, _: f64) -> Option<bool> {
        None
    }
    fn boolean(&self, v: bool) -> Option<bool> {
        Some(v)
    }
}

struct ToF64;
impl Convert for ToF64 {
    type Out = f64;
    fn string(&self, v: &str) -> Option<f64> {
        v.trim().parse::<f64>().ok().filter(|v| v.is_finite())
    }
    #[allow(clippy::cast_precision_loss)]
    fn int(&self, v: i128) -> Option<f64> {
        Some(v as f64)
    }
    fn float(&self, v: f64) -> Option<f64> {
        Some(v)
    }
    fn boolean(&self, _: bool) -> Option<f64> {
        None
    }
}

struct ToI64;
impl Convert for ToI64 {
    type Out = i64;
    fn string(&self, v: &str) -> Option<i64> {
        let v = v.trim();
        v.parse::<i64>()
            .ok()
            .or_else(|| v.parse::<f64>().ok().and_then(|f| self.float(f)))
    }
    fn int(&self, v: i128) -> Option<i64> {
        i64::try_from(v).ok()
    }
    #[allow(clippy::cast_possible_truncation)]
    fn float(&self, v: f64) -> Option<i64> {
        // Only integral values within range; `as` saturates, so check the round trip.
        (v.fract() == 0.0 && v.abs() < 9.0e15).then_some(v as i64)
    }
    fn boolean(&self, _: bool) -> Option<i64> {
        None
    }
}

struct ToTime;
impl Convert for ToTime {
    type Out = OffsetDateTime;
    fn string(&self, v: &str) -> Option<OffsetDateTime> {
        ToI64.string(v).and_then(|s| self.int(s.into()))
    }
    fn int(&self, v: i128) -> Option<OffsetDateTime> {
        i64::try_from(v)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    }
    fn float(&self, v: f64) -> Option<OffsetDateTime> {
        ToI64.float(v.trunc()).and_then(|s| self.int(s.into()))
    }
    fn boolean(&self, _: bool) -> Option<OffsetDateTime> {
        None
    }
}

/// A string; numbers are kept in their decimal form, other types are `None`.
pub(crate) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Str>, D::Error> {
    d.deserialize_any(Scalar(ToStr))
}

/// A boolean, or the string `"true"`/`"false"`.
pub(crate) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_any(Scalar(ToBool))
}

/// A finite number, or a numeric string.
pub(crate) fn float<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(Scalar(ToF64))
}

/// An integer (or integral float), or an integer string.
pub(crate) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    d.deserialize_any(Scalar(ToI64))
}

/// Unix seconds, as Meta sends them (a string) or as a number; garbage is `None`.
pub(crate) fn timestamp<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<OffsetDateTime>, D::Error> {
    d.deserialize_any(Scalar(ToTime))
}

/// Unix seconds given as a string, read as [`timestamp`] reads them.
pub(crate) fn timestamp_from_str(v: &str) -> Option<OffsetDateTime> {
    ToTime.string(v)
}

/// Serializes a time the way Meta does: a string of Unix seconds.
#[allow(clippy::ref_option)] // serde's `serialize_with` passes `&Option<T>`
pub(crate) fn ser_timestamp<S: Serializer>(
    value: &Option<OffsetDateTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(t) => s.collect_str(&t.unix_timestamp()),
        None => s.serialize_none(),
    }
}

/// A lenient string, for hand-written visitors (`map.next_value::<Str>()`).
pub(crate) struct LenientStr(pub(crate) Option<Str>);

impl<'de> Deserialize<'de> for LenientStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        string(d).map(LenientStr)
    }
}

/// A lenient Unix-seconds time, for hand-written visitors.
pub(crate) struct Time(pub(crate) Option<OffsetDateTime>);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        timestamp(d).map(Time)
    }
}

/// A lenient array of objects, for hand-written visitors.
pub(crate) struct Seq<T>(pub(crate) Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Seq<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        vec(d).map(Seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Probe {
        #[serde(default, deserialize_with = "string")]
        s: Option<Str>,
        #[serde(default, deserialize_with = "float")]
        f: Option<f64>,
        #[serde(default, deserialize_with = "int")]
        i: Option<i64>,
        #[serde(default, deserialize_with = "timestamp")]
        t: Option<OffsetDateTime>,
        #[serde(default, deserialize_with = "boolean")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "vec")]
        v: Vec<Probe>,
        #[serde(default, deserialize_with = "obj")]
        o: Option<Box<Probe>>,
    }

    fn probe(json: &str) -> Probe {
        serde_json::from_str(json).expect("lenient fields never fail")
    }

    #[test]
    fn wrong_types_become_none() {
        for garbage in [
            "null",
            "true",
            "1.5",
            "-3",
            "\"x\"",
            "[1,{\"a\":[]}]",
            "{\"k\":{}}",
        ] {
            let json = format!(
                r#"{{"s":{garbage},"f":{garbage},"i":{garbage},"t":{garbage},"b":{garbage},"v":{garbage},"o":{garbage}}}"#
            );
            let _ = probe(&json);
        }
        let p = probe(
            r#"{"s":12,"f":"1.25","i":"7","t":"1711360800","b":"true","v":[1,{"s":"x"}],"o":{"i":3.0}}"#,
        );
        assert_eq!(p.s.as_deref(), Some("12"));
        assert_eq!(p.f, Some(1.25));
        assert_eq!(p.i, Some(7));
        assert_eq!(p.t.map(OffsetDateTime::unix_timestamp), Some(1_711_360_800));
        assert_eq!(p.b, Some(true));
        assert_eq!(p.v.len(), 1);
        assert_eq!(p.o.and_then(|o| o.i), Some(3));
        let p = probe(r#"{"t":"soon","f":"NaN","i":1.5}"#);
        assert!(p.t.is_none() && p.f.is_none() && p.i.is_none());
    }
}
