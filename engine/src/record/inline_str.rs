//! `InlineStr<N>`: a string of at most `N` bytes stored inside the record, with no heap allocation.
//!
//! Why: a heap `String` per field per record halves throughput on the hot path (bench/WORKLOADS.md, the hand loop), and
//! freeing a frame of them costs more again. Records of the bids and Nexmark workloads carry short
//! strings, so they keep them inline; the record stays `Copy` and a frame of records is one
//! contiguous allocation. Invariant: `len <= N`, `bytes[..len]` is valid UTF-8 and the bytes past
//! `len` are zero (so equal strings are equal bytes). With no padding and a check of any bytes
//! against that invariant, a record of inline strings and numbers can travel as its own bytes
//! (`frame::plain`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTF-8 string of at most `N` bytes, stored inline.
///
/// Encoded with the engine's codec (rkyv) as its length and bytes; decoding checks the invariant
/// (length within `N`, valid UTF-8), so bytes from outside never make an invalid string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, rkyv::Archive, rkyv::Serialize)]
#[rkyv(archived = ArchivedInlineStr)]
#[repr(C)]
pub struct InlineStr<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

/// An `InlineStr` as the codec stores it; decoding checks it (see [`InlineStr`]).
impl<D, const N: usize> rkyv::Deserialize<InlineStr<N>, D> for ArchivedInlineStr<N>
where
    D: rkyv::rancor::Fallible + ?Sized,
    D::Error: rkyv::rancor::Source,
{
    fn deserialize(&self, _: &mut D) -> Result<InlineStr<N>, D::Error> {
        let len = usize::from(self.len);
        let bytes = self.bytes.get(..len).ok_or_else(|| <D::Error as rkyv::rancor::Source>::new(InlineStrOverflow { len, capacity: N }))?;
        let text = std::str::from_utf8(bytes).map_err(<D::Error as rkyv::rancor::Source>::new)?;
        InlineStr::new(text).map_err(<D::Error as rkyv::rancor::Source>::new)
    }
}

// SAFETY: every field is a `u8` or an array of them, so the type is aligned to 1 and has no
// padding: every byte of a value is initialized.
unsafe impl<const N: usize> bytemuck::NoUninit for InlineStr<N> {}

/// Any bytes of an [`InlineStr`]'s size, before they are checked to be one.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct InlineStrBits<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

// SAFETY: fields of bytes only (aligned to 1, no padding), so all-zero and every other bit
// pattern are values.
unsafe impl<const N: usize> bytemuck::Zeroable for InlineStrBits<N> {}
// SAFETY: as above.
unsafe impl<const N: usize> bytemuck::AnyBitPattern for InlineStrBits<N> {}

// SAFETY: `InlineStrBits<N>` has `InlineStr<N>`'s fields in the same order under `repr(C)`, so the
// same layout; `is_valid_bit_pattern` admits exactly the bytes the type's invariant allows.
unsafe impl<const N: usize> bytemuck::CheckedBitPattern for InlineStr<N> {
    type Bits = InlineStrBits<N>;

    fn is_valid_bit_pattern(bits: &InlineStrBits<N>) -> bool {
        let len = usize::from(bits.len);
        if len > N {
            return false;
        }
        // Frames of records check every string on arrival (a fifth of both cores' time in a
        // passthrough across processes when this was a loop over bytes), so the common case is a few 8-byte words with
        // no branch per byte: every byte ASCII, every byte past `len` zero. Text that is not
        // ASCII goes through `from_utf8`.
        let (mut high_bits, mut past_len) = (0u64, 0u64);
        let mut words = bits.bytes.chunks_exact(8);
        let mut at = 0;
        for word in &mut words {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            high_bits |= word;
            past_len |= word & bytes_from(len, at);
            at += 8;
        }
        let mut last = [0u8; 8];
        last[..words.remainder().len()].copy_from_slice(words.remainder());
        let word = u64::from_le_bytes(last);
        high_bits |= word;
        past_len |= word & bytes_from(len, at);
        if past_len != 0 {
            return false;
        }
        high_bits & 0x8080_8080_8080_8080 == 0 || std::str::from_utf8(&bits.bytes[..len]).is_ok()
    }
}

/// The mask of the bytes of a little-endian word read at byte `at` of a string's bytes that lie
/// at or past `len`.
fn bytes_from(len: usize, at: usize) -> u64 {
    match len.checked_sub(at) {
        None => u64::MAX,
        Some(inside) if inside >= 8 => 0,
        Some(inside) => u64::MAX << (inside * 8),
    }
}

/// A string did not fit the inline capacity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("string of {len} bytes exceeds inline capacity {capacity}")]
pub struct InlineStrOverflow {
    /// Length of the rejected string in bytes.
    pub len: usize,
    /// Capacity of the inline string.
    pub capacity: usize,
}

impl<const N: usize> InlineStr<N> {
    const CAPACITY_FITS_LEN: () = assert!(N <= u8::MAX as usize, "InlineStr capacity must fit in a u8");

    /// The empty string.
    pub const fn empty() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CAPACITY_FITS_LEN;
        InlineStr { len: 0, bytes: [0; N] }
    }

    /// Copies `s` inline, or fails if it is longer than `N` bytes.
    pub fn new(s: &str) -> Result<Self, InlineStrOverflow> {
        if s.len() > N {
            return Err(InlineStrOverflow { len: s.len(), capacity: N });
        }
        let mut out = Self::empty();
        out.bytes[..s.len()].copy_from_slice(s.as_bytes());
        out.len = s.len() as u8;
        Ok(out)
    }

    /// Builds a string from ASCII bytes that the caller has produced (generators).
    ///
    /// Panics if a byte is not ASCII: that is a bug in the generator, not bad input.
    pub fn from_ascii(ascii: [u8; N]) -> Self {
        assert!(ascii.is_ascii(), "InlineStr::from_ascii given non-ASCII bytes");
        #[allow(clippy::let_unit_value)]
        let () = Self::CAPACITY_FITS_LEN;
        InlineStr { len: N as u8, bytes: ascii }
    }

    /// Copies ASCII bytes of at most `N` bytes inline (generators that build text byte by byte).
    ///
    /// Panics if `ascii` is longer than `N` or not ASCII: a bug in the generator, not bad input.
    pub fn from_ascii_slice(ascii: &[u8]) -> Self {
        assert!(ascii.len() <= N && ascii.is_ascii(), "InlineStr::from_ascii_slice given {} bytes, not ASCII of at most {N}", ascii.len());
        let mut out = Self::empty();
        out.bytes[..ascii.len()].copy_from_slice(ascii);
        out.len = ascii.len() as u8;
        out
    }

    /// The string's text.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor admits only valid UTF-8 (`new` takes a `&str`, the ASCII
        // constructors assert ASCII), fields are private, and `len` never exceeds `N`; readers of
        // strings on the hot path should not pay a validation per read.
        unsafe { std::str::from_utf8_unchecked(&self.bytes[..self.len as usize]) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> Default for InlineStr<N> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> Serialize for InlineStr<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de, const N: usize> Deserialize<'de> for InlineStr<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        InlineStr::new(&s).map_err(serde::de::Error::custom)
    }
}

/// As a key, an inline string is the same key as the `str` it holds.
impl<const N: usize> crate::base::key::KeyBytes for InlineStr<N> {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut crate::base::key::KeyHasher) {
        self.as_str().write_key_bytes(hasher);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_text_up_to_capacity() {
        let s = InlineStr::<8>::new("channel").unwrap();
        assert_eq!(s.as_str(), "channel");
        assert_eq!(InlineStr::<8>::new("12345678").unwrap().len(), 8);
        assert_eq!(InlineStr::<4>::new("héé").unwrap_err(), InlineStrOverflow { len: 5, capacity: 4 });
        assert_eq!(InlineStr::<4>::new("hé").unwrap().as_str(), "hé");
        assert_eq!(InlineStr::<4>::from_ascii_slice(b"abc").as_str(), "abc");
    }

    #[test]
    #[should_panic(expected = "not ASCII")]
    fn non_ascii_bytes_are_refused() {
        InlineStr::<4>::from_ascii_slice(&[0xff]);
    }

    #[test]
    fn serde_uses_plain_strings() {
        let s = InlineStr::<24>::new("https://x").unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"https://x\"");
        let back: InlineStr<24> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
        assert!(serde_json::from_str::<InlineStr<2>>("\"abc\"").is_err());
    }

    #[test]
    fn the_codec_round_trips_and_refuses_invalid_strings() {
        use crate::base::codec::{decode, encode};
        let s = InlineStr::<8>::new("héllo").unwrap();
        assert_eq!(decode::<InlineStr<8>>(&encode(&s).unwrap()).unwrap(), s);
        // The archive is the length byte then the bytes: a length past the capacity, or bytes
        // that are not UTF-8, fail to decode instead of making an invalid string.
        let mut long = encode(&InlineStr::<4>::new("abcd").unwrap()).unwrap();
        long[0] = 5;
        assert!(decode::<InlineStr<4>>(&long).is_err());
        let mut invalid = encode(&InlineStr::<4>::new("ab").unwrap()).unwrap();
        invalid[1] = 0xff;
        assert!(decode::<InlineStr<4>>(&invalid).is_err());
    }

    #[test]
    fn bytes_are_checked_against_the_invariant() {
        use bytemuck::checked::try_from_bytes;
        let s = InlineStr::<4>::new("hé").unwrap();
        let bytes = bytemuck::bytes_of(&s).to_vec();
        assert_eq!(bytes, [3, b'h', 0xc3, 0xa9, 0]);
        assert_eq!(try_from_bytes::<InlineStr<4>>(&bytes), Ok(&s));
        for bad in [[5, b'a', b'b', b'c', b'd'], [2, 0xc3, b'a', 0, 0], [1, b'a', b'b', 0, 0]] {
            assert!(try_from_bytes::<InlineStr<4>>(&bad).is_err(), "{bad:?}");
        }
    }

    /// The invariant stated byte by byte, for the word-wise check to agree with.
    fn valid_by_bytes<const N: usize>(len: u8, bytes: &[u8; N]) -> bool {
        let len = usize::from(len);
        len <= N && bytes[len..].iter().all(|&byte| byte == 0) && std::str::from_utf8(&bytes[..len]).is_ok()
    }

    fn agrees<const N: usize>() {
        use bytemuck::checked::try_from_bytes;
        for len in 0..=N + 1 {
            for at in 0..N {
                for byte in [b'a', 0, 0x80, 0xc3] {
                    let mut raw = vec![len as u8];
                    let mut bytes = [0u8; N];
                    bytes[..len.min(N)].fill(b'x');
                    bytes[at] = byte;
                    raw.extend_from_slice(&bytes);
                    let expected = valid_by_bytes(len as u8, &bytes);
                    assert_eq!(try_from_bytes::<InlineStr<N>>(&raw).is_ok(), expected, "N {N}, len {len}, byte {byte:#x} at {at}");
                }
            }
        }
    }

    #[test]
    fn the_word_wise_check_admits_exactly_the_invariants_bytes() {
        agrees::<1>();
        agrees::<7>();
        agrees::<8>();
        agrees::<13>();
        agrees::<30>();
        agrees::<64>();
    }
}
