//! [`Str`]: the strings of an envelope and of a typed event, shared with the delivery's body
//! instead of copied. Public as `vobiz_webhooks::event::Str`.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::fmt;
use std::ops::Deref;

use bytestring::ByteString;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// A string of a typed event or of an [`Envelope`](crate::Envelope): it dereferences to `str`
/// and compares with `str` and `String`.
///
/// When an event is typed from a delivery (and when the layer reads a delivery's envelope),
/// each string that needs no unescaping is a view of the delivery's body (a reference-counted
/// slice of its `Bytes`), so reading it copies no text and allocates nothing per field. A string with JSON escapes is unescaped into its own
/// buffer. Clones are cheap (a reference count), and the event stays `Send + Sync + 'static`.
///
/// ```
/// use vobiz_webhooks::event::Str;
///
/// let name = Str::from("Asha");
/// assert_eq!(name, "Asha");
/// assert_eq!(name.len(), 4); // every `str` method, through `Deref`
/// let text: &str = &name;
/// assert_eq!(text.to_uppercase(), "ASHA");
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Str(ByteString);

impl Str {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Str {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Str {
    fn from(text: &str) -> Self {
        Self(ByteString::from(text))
    }
}

impl From<String> for Str {
    fn from(text: String) -> Self {
        Self(ByteString::from(text))
    }
}

impl From<Str> for String {
    fn from(text: Str) -> Self {
        text.as_str().to_owned()
    }
}

impl PartialEq<str> for Str {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Str {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Str> for str {
    fn eq(&self, other: &Str) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Str> for &str {
    fn eq(&self, other: &Str) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Str> for String {
    fn eq(&self, other: &Str) -> bool {
        self == other.as_str()
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl Serialize for Str {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Str, E> {
                Ok(shared(text))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Str, E> {
                Ok(Str::from(text))
            }
            fn visit_string<E: de::Error>(self, text: String) -> Result<Str, E> {
                Ok(Str::from(text))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

thread_local! {
    /// The text being typed on this thread, whose borrowed strings become slices of it.
    static SOURCE: RefCell<Option<ByteString>> = const { RefCell::new(None) };
}

/// Runs `parse` over `source` with every borrowed string [`shared`] from it rather than copied.
///
/// serde cannot hand a deserializer context to the values it builds, so the source waits in a
/// thread-local for the length of the call (restored afterwards, so calls may nest).
pub(crate) fn sharing<R>(source: &ByteString, parse: impl FnOnce(&str) -> R) -> R {
    struct Restore(Option<ByteString>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SOURCE.with_borrow_mut(|source| *source = previous);
        }
    }
    let previous = SOURCE.with_borrow_mut(|slot| slot.replace(source.clone()));
    let _restore = Restore(previous);
    parse(source)
}

/// `text` as a slice of the source being typed when it lies inside it, else a copy.
pub(crate) fn shared(text: &str) -> Str {
    SOURCE.with_borrow(|source| match source {
        Some(source) => view(source, text),
        None => Str::from(text),
    })
}

/// `part` as a slice of `source` when it lies inside it (no copy), else a copy.
pub(crate) fn view(source: &ByteString, part: &str) -> Str {
    if contains(source, part) {
        Str(source.slice_ref(part))
    } else {
        Str::from(part)
    }
}

/// Whether `part` lies inside `whole`'s memory (so `slice_ref` cannot panic).
fn contains(whole: &str, part: &str) -> bool {
    let start = whole.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    at >= start && at + part.len() <= start + whole.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_strings_are_views_of_the_source_and_others_are_copies() {
        let source = ByteString::from(r#"{"a":"plain","b":"esc\u0061ped"}"#);
        let (a, b) = sharing(&source, |text| {
            #[derive(serde::Deserialize)]
            struct Pair {
                a: Str,
                b: Str,
            }
            let pair: Pair = serde_json::from_str(text).expect("json");
            (pair.a, pair.b)
        });
        assert_eq!(a, "plain");
        assert_eq!(b, "escaped");
        assert!(contains(&source, &a), "a view of the source");
        assert!(!contains(&source, &b), "an unescaped copy");
        // Outside `sharing`, nothing is shared.
        let c: Str = serde_json::from_str(r#""x""#).expect("json");
        assert_eq!(c, "x");
    }

    #[test]
    fn nested_sharing_restores_the_outer_source() {
        let outer = ByteString::from("outer text");
        let inner = ByteString::from("inner text");
        sharing(&outer, |outer_text| {
            sharing(&inner, |inner_text| {
                assert!(contains(&inner, &shared(&inner_text[..5])));
            });
            assert!(contains(&outer, &shared(&outer_text[..5])));
        });
        assert!(SOURCE.with_borrow(Option::is_none));
    }
}
