//! [`Str`]: the strings of an envelope and of a typed event, shared with the delivery's body
//! instead of copied. Public as `vobiz_webhooks::event::Str`.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use arrayvec::ArrayString;
use bytestring::ByteString;
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::{Serialize, Serializer};

/// A string of a typed event or of an [`Envelope`](crate::Envelope): it dereferences to `str`
/// and compares with `str` and `String`.
///
/// When an event is typed from a delivery (and when the layer reads a delivery's envelope), a
/// string without JSON escapes allocates nothing: a short one (at most 32 bytes: the ids, phone
/// numbers, names and types most fields hold) is kept inline, and a longer one is a view of the
/// delivery's body (a reference-counted slice of its `Bytes`). A string with escapes is
/// unescaped into its own buffer (inline when short). Clones are cheap (a copy or a reference count),
/// and the event stays `Send + Sync + 'static`.
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
#[derive(Clone)]
pub struct Str(Repr);

/// The longest string kept inline: longer ones share the body (or their own buffer).
const INLINE: usize = 32;

#[derive(Clone)]
enum Repr {
    /// Copying a short string costs less than the atomic reference count a view takes (and
    /// gives back on drop), and needs no source.
    Inline(ArrayString<INLINE>),
    Shared(ByteString),
}

impl Str {
    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(text) => text,
            Repr::Shared(text) => text,
        }
    }

    /// `text` inline when it is short enough, else what `shared` makes of it.
    #[inline]
    fn inline_or(text: &str, shared: impl FnOnce(&str) -> ByteString) -> Self {
        match ArrayString::from(text) {
            Ok(inline) => Self(Repr::Inline(inline)),
            Err(_) => Self(Repr::Shared(shared(text))),
        }
    }
}

impl Default for Str {
    fn default() -> Self {
        Self(Repr::Inline(ArrayString::new()))
    }
}

// Equality, order and hash are the `str`'s, whichever way each side is held (as `Borrow<str>`
// requires).
impl PartialEq for Str {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str {}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Str {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Deref for Str {
    type Target = str;

    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Str {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Str {
    fn from(text: &str) -> Self {
        Self::inline_or(text, |text| ByteString::from(text))
    }
}

impl From<String> for Str {
    fn from(text: String) -> Self {
        if text.len() <= INLINE {
            Self::from(text.as_str())
        } else {
            Self(Repr::Shared(ByteString::from(text)))
        }
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

/// `text` inline when short, else a slice of the source being typed when it lies inside it,
/// else a copy.
pub(crate) fn shared(text: &str) -> Str {
    Str::inline_or(text, |text| {
        SOURCE.with_borrow(|source| match source {
            Some(source) => view_or_copy(source, text),
            None => ByteString::from(text),
        })
    })
}

/// `part` inline when short, else a slice of `source` when it lies inside it (no copy), else a
/// copy.
pub(crate) fn view(source: &ByteString, part: &str) -> Str {
    Str::inline_or(part, |part| view_or_copy(source, part))
}

fn view_or_copy(source: &ByteString, part: &str) -> ByteString {
    if contains(source, part) {
        source.slice_ref(part)
    } else {
        ByteString::from(part)
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
    use std::collections::HashSet;

    use super::*;

    const LONG: &str = "wamid.HBgMOTE4ODg4ODg4ODg4FQIAEhggTEXT";

    fn is_inline(text: &Str) -> bool {
        matches!(text.0, Repr::Inline(_))
    }

    #[test]
    fn long_strings_are_views_of_the_source_short_ones_inline_escaped_ones_copies() {
        let source = ByteString::from(format!(r#"{{"a":"{LONG}","b":"esc\u0061ped","c":"id"}}"#));
        let (a, b, c) = sharing(&source, |text| {
            #[derive(serde::Deserialize)]
            struct Three {
                a: Str,
                b: Str,
                c: Str,
            }
            let three: Three = serde_json::from_str(text).expect("json");
            (three.a, three.b, three.c)
        });
        assert_eq!(
            (a.as_str(), b.as_str(), c.as_str()),
            (LONG, "escaped", "id")
        );
        assert!(contains(&source, &a), "a view of the source");
        assert!(is_inline(&b) && is_inline(&c), "short: inline");
        // Outside `sharing`, nothing is shared.
        let d: Str = serde_json::from_str(&format!(r#""{LONG}""#)).expect("json");
        assert_eq!(d, LONG);
        assert!(!contains(&source, &d));
    }

    #[test]
    fn inline_up_to_32_bytes_then_shared() {
        let at_limit = "a".repeat(INLINE);
        let over = "a".repeat(INLINE + 1);
        assert!(is_inline(&Str::from(at_limit.as_str())));
        assert!(is_inline(&Str::from(at_limit.clone())));
        assert!(!is_inline(&Str::from(over.as_str())));
        assert!(!is_inline(&Str::from(over.clone())));
        // A multi-byte character at the edge: by bytes, never split.
        let wide = "é".repeat(INLINE / 2 + 1);
        assert_eq!(Str::from(wide.as_str()), wide.as_str());
        let source = ByteString::from(over.clone());
        assert!(contains(&source, &view(&source, &source[..])));
        assert!(is_inline(&view(&source, &source[..INLINE])));
    }

    #[test]
    fn equal_strings_are_equal_and_hash_alike_however_held() {
        let source = ByteString::from(LONG);
        let shared = view(&source, &source[..]);
        let copied = Str::from(String::from(LONG));
        assert!(!is_inline(&shared) && !is_inline(&copied));
        assert_eq!(shared, copied);
        let set: HashSet<Str> = [shared, Str::from("x")].into();
        assert!(set.contains(LONG) && set.contains("x"));
        let (short, long) = (Str::from("a"), Str::from(LONG));
        assert_eq!(short.cmp(&long), "a".cmp(LONG));
        assert!(Str::default().is_empty());
    }

    #[test]
    fn nested_sharing_restores_the_outer_source() {
        let outer = ByteString::from(format!("outer {LONG}"));
        let inner = ByteString::from(format!("inner {LONG}"));
        sharing(&outer, |outer_text| {
            sharing(&inner, |inner_text| {
                assert!(contains(&inner, &shared(inner_text)));
            });
            assert!(contains(&outer, &shared(outer_text)));
        });
        assert!(SOURCE.with_borrow(Option::is_none));
    }
}
