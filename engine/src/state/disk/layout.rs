//! How the disk backend lays its entries out in the store's one ordered key space.
//!
//! Every entry's store key is `key_group (u32 BE) ++ state id (u32 BE) ++ key length (u16 BE) ++
//! key (codec) [++ user key (codec), for a map state]`, so everything of one key group is one
//! contiguous prefix (a snapshot or a restore is a prefix scan), everything of one state in one group
//! is a longer one (the cleanup cursor walks it), and a key's map is a longer one still (iteration
//! and clear). The key is written in its codec encoding, not its canonical `KeyBytes` (which only
//! feeds the key hash and cannot be decoded): `keys` and snapshots must give keys back. The codec's
//! encoding is deterministic (rkyv zeroes padding), so equal keys of derived types store equal bytes;
//! the length in front keeps a key's bytes from running into its user key's. Every store value is
//! the TTL stamp (`i64` LE, milliseconds; 0 without TTL) followed by the value's codec encoding, so
//! expiry is decided from the first eight bytes, without knowing the value's type.

use rkyv::util::AlignedVec;

use crate::base::codec::{self, Codec, CodecError};

/// Bytes of the key group in front of every store key.
pub(crate) const GROUP_PREFIX_BYTES: usize = 4;
/// Bytes of key group and state id in front of every store key.
pub(crate) const STATE_PREFIX_BYTES: usize = 8;
/// Bytes of the key's length after the state prefix.
const KEY_LENGTH_BYTES: usize = 2;
/// Bytes of the TTL stamp in front of every store value.
pub(crate) const STAMP_BYTES: usize = 8;
/// Longest store key the store accepts (fjall keys are at most 64 KiB).
pub(crate) const STORE_KEY_BYTES_MAX: usize = u16::MAX as usize;

/// The prefix of every entry of `key_group`.
#[inline]
pub(crate) fn group_prefix(key_group: usize) -> [u8; GROUP_PREFIX_BYTES] {
    group_u32(key_group).to_be_bytes()
}

/// The prefix of every entry of state `state` in `key_group`.
#[inline]
pub(crate) fn state_prefix(key_group: usize, state: u32) -> [u8; STATE_PREFIX_BYTES] {
    ((u64::from(group_u32(key_group)) << 32) | u64::from(state)).to_be_bytes()
}

/// The first store key past every entry of state `state` in `key_group`: the exclusive end of
/// its prefix range.
#[inline]
pub(crate) fn state_prefix_end(key_group: usize, state: u32) -> [u8; STATE_PREFIX_BYTES] {
    // Key groups fit in 32 bits, so the 64-bit prefix never is u64::MAX.
    (((u64::from(group_u32(key_group)) << 32) | u64::from(state)) + 1).to_be_bytes()
}

#[inline]
fn group_u32(key_group: usize) -> u32 {
    u32::try_from(key_group).expect("key groups are numbered below 2^32")
}

/// Writes the store key of `key` in state `state` of `key_group` into `out` (cleared first),
/// encoding the key in `scratch` (reused: no allocation once both buffers have grown).
///
/// Panics if the key's encoding is longer than 65,535 bytes: the store keeps keys of at most 64 KiB.
#[inline]
pub(crate) fn write_key<K: Codec>(
    out: &mut Vec<u8>,
    key_group: usize,
    state: u32,
    key: &K,
    scratch: &mut AlignedVec,
) -> Result<(), CodecError> {
    codec::encode_into_aligned(key, scratch)?;
    let Ok(length) = u16::try_from(scratch.len()) else { key_too_long(scratch.len()) };
    out.clear();
    out.extend_from_slice(&state_prefix(key_group, state));
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(scratch);
    Ok(())
}

/// Appends the encoding of a map state's user key to a store key `write_key` wrote, encoding it
/// in `scratch`.
///
/// Panics if the whole store key gets longer than 65,535 bytes.
#[inline]
pub(crate) fn append_user_key<UK: Codec>(out: &mut Vec<u8>, user_key: &UK, scratch: &mut AlignedVec) -> Result<(), CodecError> {
    codec::encode_into_aligned(user_key, scratch)?;
    if out.len() + scratch.len() > STORE_KEY_BYTES_MAX {
        key_too_long(out.len() + scratch.len());
    }
    out.extend_from_slice(scratch);
    Ok(())
}

#[cold]
#[inline(never)]
fn key_too_long(bytes: usize) -> ! {
    panic!("a state key of {bytes} encoded bytes: the disk state backend stores keys (with a map's user key) of at most {STORE_KEY_BYTES_MAX} bytes")
}

/// A store key taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreKey<'a> {
    pub key_group: usize,
    pub state: u32,
    /// The key's codec encoding.
    pub key: &'a [u8],
    /// A map entry's user key encoding (empty for other states).
    pub user_key: &'a [u8],
}

impl<'a> StoreKey<'a> {
    /// Takes a store key apart; `None` if it is not one `write_key` could have written.
    pub fn parse(bytes: &'a [u8]) -> Option<StoreKey<'a>> {
        let (prefix, rest) = bytes.split_first_chunk::<STATE_PREFIX_BYTES>()?;
        let (length, rest) = rest.split_first_chunk::<KEY_LENGTH_BYTES>()?;
        let length = usize::from(u16::from_be_bytes(*length));
        if rest.len() < length {
            return None;
        }
        let (key, user_key) = rest.split_at(length);
        let prefix = u64::from_be_bytes(*prefix);
        Some(StoreKey { key_group: (prefix >> 32) as usize, state: prefix as u32, key, user_key })
    }

    /// The bytes of the store key up to and including the key: the prefix of the key's map.
    #[cfg(test)]
    pub fn key_prefix_len(&self) -> usize {
        STATE_PREFIX_BYTES + KEY_LENGTH_BYTES + self.key.len()
    }
}

/// Writes a store value, `value` stamped at `stamp_ms`, into `out` (cleared first).
#[inline]
pub(crate) fn write_value<T: Codec>(out: &mut Vec<u8>, stamp_ms: i64, value: &T) -> Result<(), CodecError> {
    out.clear();
    out.extend_from_slice(&stamp_ms.to_le_bytes());
    value.encode_into(out)
}

/// Writes a store value of a value already encoded (`encoded`) stamped at `stamp_ms` into `out`
/// (cleared first): the same bytes as `write_value` of the value.
#[inline]
pub(crate) fn write_encoded_value(out: &mut Vec<u8>, stamp_ms: i64, encoded: &[u8]) {
    out.clear();
    out.extend_from_slice(&stamp_ms.to_le_bytes());
    out.extend_from_slice(encoded);
}

/// A store value's stamp and the encoding of its value; `None` if it is too short to be one.
#[inline]
pub(crate) fn split_value(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let (stamp, value) = bytes.split_first_chunk::<STAMP_BYTES>()?;
    Some((i64::from_le_bytes(*stamp), value))
}

/// A copy of store value `bytes` stamped at `stamp_ms` instead: a refresh without re-encoding.
pub(crate) fn restamp(bytes: &[u8], stamp_ms: i64) -> Vec<u8> {
    debug_assert!(bytes.len() >= STAMP_BYTES, "a store value starts with its stamp");
    let mut restamped = bytes.to_vec();
    restamped[..STAMP_BYTES].copy_from_slice(&stamp_ms.to_le_bytes());
    restamped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::codec;

    #[test]
    fn a_key_group_and_a_state_are_contiguous_prefixes_in_order() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_key(&mut a, 3, 7, &"zzz".to_string(), &mut AlignedVec::new()).unwrap();
        write_key(&mut b, 3, 8, &String::new(), &mut AlignedVec::new()).unwrap();
        assert!(a.starts_with(&group_prefix(3)) && a.starts_with(&state_prefix(3, 7)));
        assert!(state_prefix(3, 7).as_slice() < a.as_slice() && a.as_slice() < state_prefix_end(3, 7).as_slice());
        assert!(a < b, "state 7's entries sort before state 8's, whatever the keys");
        assert_eq!(state_prefix_end(3, 7), state_prefix(3, 8));
        assert_eq!(state_prefix_end(3, u32::MAX), state_prefix(4, 0));
        write_key(&mut b, 2, u32::MAX, &u64::MAX, &mut AlignedVec::new()).unwrap();
        assert!(b < a, "group 2 sorts before group 3");
    }

    #[test]
    fn a_store_key_parses_back_into_its_parts() {
        let mut bytes = Vec::new();
        write_key(&mut bytes, 65_537, 2, &(5u64, "five".to_string()), &mut AlignedVec::new()).unwrap();
        let map_prefix_len = bytes.len();
        append_user_key(&mut bytes, &9u32, &mut AlignedVec::new()).unwrap();
        let parsed = StoreKey::parse(&bytes).unwrap();
        assert_eq!((parsed.key_group, parsed.state), (65_537, 2));
        assert_eq!(codec::decode::<(u64, String)>(parsed.key).unwrap(), (5, "five".to_string()));
        assert_eq!(codec::decode::<u32>(parsed.user_key).unwrap(), 9);
        assert_eq!(parsed.key_prefix_len(), map_prefix_len);
        assert_eq!(StoreKey::parse(&bytes[..STATE_PREFIX_BYTES + 1]), None);
        assert_eq!(StoreKey::parse(&bytes[..STATE_PREFIX_BYTES + KEY_LENGTH_BYTES + 1]), None, "shorter than its length says");
    }

    #[test]
    fn each_key_parses_back_whole_beside_its_user_key() {
        // Without the length in front, the bytes of key "a" with user key "bc" could be read back
        // as key "ab" with user key "c".
        for (key, user_key) in [("a", "bc"), ("ab", "c"), ("", "abc"), ("abc", "")] {
            let mut bytes = Vec::new();
            write_key(&mut bytes, 1, 1, &key.to_string(), &mut AlignedVec::new()).unwrap();
            append_user_key(&mut bytes, &user_key.to_string(), &mut AlignedVec::new()).unwrap();
            let parsed = StoreKey::parse(&bytes).unwrap();
            assert_eq!(codec::decode::<String>(parsed.key).unwrap(), key);
            assert_eq!(codec::decode::<String>(parsed.user_key).unwrap(), user_key);
        }
    }

    #[test]
    fn a_store_value_is_its_stamp_then_its_encoding() {
        let mut bytes = Vec::new();
        write_value(&mut bytes, -5, &vec!["a".to_string()]).unwrap();
        let (stamp, value) = split_value(&bytes).unwrap();
        assert_eq!(stamp, -5);
        assert_eq!(codec::decode::<Vec<String>>(value).unwrap(), ["a"]);
        let mut encoded = Vec::new();
        write_encoded_value(&mut encoded, -5, &codec::encode(&vec!["a".to_string()]).unwrap());
        assert_eq!(encoded, bytes, "a value encoded before is stored as one encoded on the spot");
        let refreshed = restamp(&bytes, 1_000);
        assert_eq!(split_value(&refreshed).unwrap().0, 1_000);
        assert_eq!(split_value(&refreshed).unwrap().1, value);
        assert_eq!(split_value(&[1, 2, 3]), None);
    }

    #[test]
    #[should_panic(expected = "at most 65535 bytes")]
    fn a_key_past_64_kib_is_refused_by_name() {
        write_key(&mut Vec::new(), 0, 0, &"x".repeat(70_000), &mut AlignedVec::new()).unwrap();
    }
}
