//! The codec of everything that outlives a process: keys and state values in checkpoints and
//! savepoints, records in topics (and, with the data plane, in frames between processes).
//!
//! **The bound is [`Codec`], and users derive it with rkyv** (0.8, re-exported as
//! `tethys_engine::rkyv`, so a job needs no dependency of its own):
//! ```
//! use tethys_engine::rkyv::{Archive, Deserialize, Serialize};
//!
//! #[derive(Archive, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[rkyv(crate = tethys_engine::rkyv)]
//! struct Visit {
//!     page: String,
//!     millis: u64,
//! }
//!
//! let bytes = tethys_engine::base::codec::encode(&Visit { page: "/".into(), millis: 5 }).unwrap();
//! let back: Visit = tethys_engine::base::codec::decode(&bytes).unwrap();
//! assert_eq!(back, Visit { page: "/".into(), millis: 5 });
//! ```
//! Integers, floats, `bool`, `char`, `String`, `Vec`, `Option`, `Box`, tuples and arrays, and the
//! engine's `InlineStr`, already are. Why rkyv: it is what the data plane reads in place across
//! processes, so one derive serves both; measured against postcard in `bench/RESULTS.md`.
//!
//! The encoded form of a value is rkyv's archive of it (little-endian, 32-bit relative pointers:
//! rkyv's defaults), validated when decoded, so corrupt or foreign bytes give a [`CodecError`],
//! never a bad value. An archive is read from a buffer aligned to 16 bytes; [`decode`] copies
//! misaligned input into one first.

use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;

/// Types that can be written into a checkpoint, a savepoint or a topic and read back: every type
/// that derives rkyv's `Archive`, `Serialize` and `Deserialize` (see the module documentation).
/// Implemented for all of them; not implemented by hand.
///
/// rkyv's bounds are supertraits (with bounds on the archived type), so they are implied by
/// `T: Codec`: generic code can encode a `Vec<T>` or `(K, T)` of a `T: Codec` without naming rkyv.
pub trait Codec:
    rkyv::Archive<Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>> + rkyv::Deserialize<Self, HighDeserializer<rancor::Error>>>
    + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>
    + Sized
    + Send
    + 'static
{
    /// Appends the value's encoding to `out`.
    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let bytes = rkyv::to_bytes::<rancor::Error>(self).map_err(|error| CodecError::new::<Self>(error.to_string()))?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    /// Reads a value from its encoding (the whole of `bytes`).
    fn decode_from(bytes: &[u8]) -> Result<Self, CodecError> {
        let decoded = if bytes.as_ptr().align_offset(ARCHIVE_ALIGNMENT) == 0 {
            rkyv::from_bytes::<Self, rancor::Error>(bytes)
        } else {
            let mut aligned = AlignedVec::<ARCHIVE_ALIGNMENT>::with_capacity(bytes.len());
            aligned.extend_from_slice(bytes);
            rkyv::from_bytes::<Self, rancor::Error>(&aligned)
        };
        decoded.map_err(|error| CodecError::new::<Self>(error.to_string()))
    }
}

impl<T> Codec for T
where
    T: rkyv::Archive + Send + 'static,
    T: for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>> + rkyv::Deserialize<T, HighDeserializer<rancor::Error>>,
{
}

/// Alignment of the buffers archives are read from.
pub const ARCHIVE_ALIGNMENT: usize = 16;

/// A value could not be encoded, or bytes are not the encoding of a value of the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode or decode a value of type {type_name}: {reason}")]
pub struct CodecError {
    /// The type, as Rust names it.
    pub type_name: &'static str,
    /// What went wrong.
    pub reason: String,
}

impl CodecError {
    pub(crate) fn new<T>(reason: String) -> CodecError {
        CodecError { type_name: std::any::type_name::<T>(), reason }
    }
}

/// The encoding of `value`.
pub fn encode<T: Codec>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    value.encode_into(&mut out)?;
    Ok(out)
}

/// The value encoded in `bytes`.
pub fn decode<T: Codec>(bytes: &[u8]) -> Result<T, CodecError> {
    T::decode_from(bytes)
}

/// Writes the encoding of `value` into `out`, replacing what it held: the same bytes as [`encode`],
/// in a buffer aligned for [`decode`] to read in place. Unlike [`Codec::encode_into`], which
/// serializes into a fresh buffer, it reuses `out`'s memory, so a hot path that encodes into the
/// same buffer allocates nothing once the buffer has grown to its largest value.
pub fn encode_into_aligned<T: Codec>(value: &T, out: &mut AlignedVec) -> Result<(), CodecError> {
    let mut buffer = std::mem::take(out);
    buffer.clear();
    *out = rkyv::api::high::to_bytes_in::<_, rancor::Error>(value, buffer).map_err(|error| CodecError::new::<T>(error.to_string()))?;
    Ok(())
}

/// The value encoded in `bytes`, as [`decode`] reads it, but a misaligned `bytes` is copied into
/// `scratch` (cleared first, and reused across calls) rather than into a fresh buffer.
pub fn decode_in<T: Codec>(bytes: &[u8], scratch: &mut AlignedVec) -> Result<T, CodecError> {
    if bytes.as_ptr().align_offset(ARCHIVE_ALIGNMENT) == 0 {
        return T::decode_from(bytes);
    }
    scratch.clear();
    scratch.extend_from_slice(bytes);
    T::decode_from(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_from_aligned_and_misaligned_buffers() {
        let value: (u64, String, Vec<Option<i32>>) = (7, "seven".to_string(), vec![Some(-1), None]);
        let bytes = encode(&value).unwrap();
        assert_eq!(decode::<(u64, String, Vec<Option<i32>>)>(&bytes).unwrap(), value);
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(decode::<(u64, String, Vec<Option<i32>>)>(&shifted[1..]).unwrap(), value);
    }

    #[test]
    fn a_reused_aligned_buffer_holds_the_same_bytes_as_a_fresh_encoding() {
        let mut out = AlignedVec::new();
        encode_into_aligned(&vec!["a long string that grows the buffer".to_string()], &mut out).unwrap();
        let value: (u64, String) = (9, "nine".to_string());
        encode_into_aligned(&value, &mut out).unwrap();
        assert_eq!(out.as_slice(), encode(&value).unwrap().as_slice(), "what the buffer held before is gone");
        assert_eq!(decode::<(u64, String)>(&out).unwrap(), value);
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&out);
        let mut scratch = AlignedVec::new();
        assert_eq!(decode_in::<(u64, String)>(&shifted[1..], &mut scratch).unwrap(), value);
        assert_eq!(decode_in::<(u64, String)>(&out, &mut scratch).unwrap(), value);
    }

    #[test]
    fn corrupt_or_foreign_bytes_are_an_error_naming_the_type() {
        let bytes = encode(&String::from("hello")).unwrap();
        let error = decode::<Vec<String>>(&bytes[..bytes.len() - 1]).unwrap_err();
        assert!(error.type_name.contains("Vec"), "{error}");
        assert!(decode::<u64>(&[1, 2, 3]).is_err());
    }
}
