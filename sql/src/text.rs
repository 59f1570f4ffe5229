//! [`Text`]: the string of a SQL value, allocated only when it must be.
//!
//! Rows are made by the million, and a heap string per text field per row was a good part of what
//! a SQL job spends per row. Short text (up to [`INLINE_BYTES`]) is kept inside the value; text
//! that lives as long as the program (a generator's pool of padding) is borrowed; only the rest
//! goes on the heap. It reads as a `str` either way, compares,
//! orders and hashes as its text, and the codec stores it as a string.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use rkyv::rancor::{Fallible, Source};
use rkyv::ser::Writer;
use rkyv::string::{ArchivedString, StringResolver};
use rkyv::with::{ArchiveWith, DeserializeWith, SerializeWith};
use rkyv::Place;

/// Bytes of text kept inside a [`Text`].
pub const INLINE_BYTES: usize = 22;

/// A UTF-8 string: inline, borrowed for the whole program, or on the heap.
#[derive(Clone)]
pub enum Text {
    /// At most [`INLINE_BYTES`] bytes, inside the value.
    Inline(InlineText),
    /// Text that outlives every row.
    Static(&'static str),
    /// Anything else.
    Heap(Box<str>),
}

/// Text of at most [`INLINE_BYTES`] bytes. Invariant: `bytes[..len]` is UTF-8 (its fields are
/// private: only [`Text::from`] makes one, from a whole `str`).
#[derive(Clone, Copy)]
pub struct InlineText {
    len: u8,
    bytes: [u8; INLINE_BYTES],
}

const _: () = assert!(std::mem::size_of::<Text>() == 24, "a text is 24 bytes, so a value stays 32");

impl Text {
    /// Text borrowed for the whole program: never copied.
    pub fn from_static(text: &'static str) -> Text {
        Text::Static(text)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            Text::Inline(inline) => {
                let bytes = &inline.bytes[..usize::from(inline.len)];
                debug_assert!(std::str::from_utf8(bytes).is_ok());
                // SAFETY: the invariant of `InlineText`: its bytes were copied from a whole `str`.
                unsafe { std::str::from_utf8_unchecked(bytes) }
            }
            Text::Static(text) => text,
            Text::Heap(text) => text,
        }
    }

    /// As an owned `String`.
    pub fn into_string(self) -> String {
        match self {
            Text::Heap(text) => text.into_string(),
            other => other.as_str().to_string(),
        }
    }
}

impl From<&str> for Text {
    fn from(text: &str) -> Text {
        if text.len() <= INLINE_BYTES {
            let mut bytes = [0u8; INLINE_BYTES];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            Text::Inline(InlineText { len: text.len() as u8, bytes })
        } else {
            Text::Heap(text.into())
        }
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        if text.len() <= INLINE_BYTES {
            Text::from(text.as_str())
        } else {
            Text::Heap(text.into_boxed_str())
        }
    }
}

impl From<&String> for Text {
    fn from(text: &String) -> Text {
        Text::from(text.as_str())
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Text) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Text) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Text {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

/// Stores a [`Text`] as the codec stores a `String` (`#[rkyv(with = AsString)]`), so what a value
/// encodes to does not depend on where its text lived.
pub struct AsString;

impl ArchiveWith<Text> for AsString {
    type Archived = ArchivedString;
    type Resolver = StringResolver;

    fn resolve_with(field: &Text, resolver: StringResolver, out: Place<ArchivedString>) {
        ArchivedString::resolve_from_str(field.as_str(), resolver, out);
    }
}

impl<S> SerializeWith<Text, S> for AsString
where
    S: Fallible + Writer + ?Sized,
    S::Error: Source,
{
    fn serialize_with(field: &Text, serializer: &mut S) -> Result<StringResolver, S::Error> {
        ArchivedString::serialize_from_str(field.as_str(), serializer)
    }
}

impl<D: Fallible + ?Sized> DeserializeWith<ArchivedString, Text, D> for AsString {
    fn deserialize_with(field: &ArchivedString, _: &mut D) -> Result<Text, D::Error> {
        Ok(Text::from(field.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_inline_when_short_borrowed_when_static_and_the_same_text_either_way() {
        let short = Text::from("channel-42");
        assert!(matches!(short, Text::Inline(_)));
        let long = Text::from("x".repeat(INLINE_BYTES + 1));
        assert!(matches!(long, Text::Heap(_)));
        assert!(matches!(Text::from("é".repeat(INLINE_BYTES / 2)), Text::Inline(_)));
        let borrowed = Text::from_static("channel-42");
        assert_eq!(short, borrowed);
        assert_eq!(short.cmp(&Text::from("channel-5")), "channel-42".cmp("channel-5"));
        let hash = |text: &Text| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            text.hash(&mut hasher);
            hasher.finish()
        };
        assert_eq!(hash(&short), hash(&borrowed));
        assert_eq!(long.clone().into_string(), "x".repeat(INLINE_BYTES + 1));
        assert_eq!(format!("{short} {short:?}"), "channel-42 \"channel-42\"");
    }
}
