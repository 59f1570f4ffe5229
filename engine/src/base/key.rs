//! Keys of keyed streams and keyed state, and the key hash that places a key in its key group.
//!
//! Where a key lives (its key group) must be the same in every process, on every platform and in
//! every build, because saved state is found by it after a restore or a rescale. So the key hash
//! is specified here, on a canonical encoding of the key (`KeyBytes`), and owes nothing to
//! `std::hash::Hash` (whose byte stream the standard library does not promise to keep), to a hasher
//! crate's features, or to the pointer width. `Hash` is still required, for the in-memory maps of
//! one process.
//!
//! **Canonical encoding** (`KeyBytes::write_key_bytes`): integers little-endian at their declared
//! width, `usize`/`isize` as 64-bit; `bool` one byte 0 or 1; `char` as its `u32` scalar value;
//! strings as their byte length (`u64`) then their UTF-8 bytes; `()` nothing; tuples and arrays
//! their elements in order; `Option` a byte 0 (`None`) or 1 followed by the value; slices and
//! `Vec` their length (`u64`) then their elements. References and boxes encode as what they point
//! to, so `"a"`, `String::from("a")` and `InlineStr::<8>::new("a")` are the same key.
//!
//! **Key hash** (`KeyHasher`), over the canonical bytes `b` of length `n`: the bytes are read as
//! little-endian 64-bit words (the last one zero-padded); starting from `h = KEY_HASH_SEED`, each
//! word `w` does `h = rotl(h ^ w, 29) * KEY_HASH_MULTIPLIER` (wrapping); the hash is
//! `fmix64(h ^ n)`, MurmurHash3's 64-bit finaliser. Pinned by test vectors below.

use std::hash::Hash;

use super::codec::Codec;

/// Keys of keyed streams: a canonical encoding for the key hash, compared for equality, hashed in
/// one process's maps, moved between cores, written into checkpoints with the [`Codec`].
pub trait Key: KeyBytes + Codec + Hash + Eq + Clone + Send + Sync + 'static {}
impl<K: KeyBytes + Codec + Hash + Eq + Clone + Send + Sync + 'static> Key for K {}

/// The canonical encoding of a key (see the module documentation). Implement it for a key type of
/// your own by writing its fields in a fixed order: equal keys must write equal bytes.
pub trait KeyBytes {
    /// Writes the key's canonical bytes into `hasher`.
    fn write_key_bytes(&self, hasher: &mut KeyHasher);
}

/// Start value of the key hash.
pub const KEY_HASH_SEED: u64 = 0x243f_6a88_85a3_08d3;
/// Multiplier of the key hash's word step (an odd constant with well-spread bits).
pub const KEY_HASH_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// The engine's key hash over a key's canonical bytes, fed in pieces.
#[derive(Debug, Clone)]
pub struct KeyHasher {
    state: u64,
    /// Bytes of the current, not yet full word, in its low bytes.
    word: u64,
    word_bytes: u32,
    total_bytes: u64,
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher { state: KEY_HASH_SEED, word: 0, word_bytes: 0, total_bytes: 0 }
    }
}

impl KeyHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = (self.state ^ word).rotate_left(29).wrapping_mul(KEY_HASH_MULTIPLIER);
    }

    /// Feeds 8 bytes, as `write_bytes(&value.to_le_bytes())` does but without a byte loop when
    /// the current word is empty (the common case of integer keys).
    #[inline]
    pub fn write_u64(&mut self, value: u64) {
        if self.word_bytes == 0 {
            self.total_bytes += 8;
            self.mix(value);
        } else {
            self.write_bytes(&value.to_le_bytes());
        }
    }

    /// Feeds bytes.
    #[inline]
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        self.total_bytes += bytes.len() as u64;
        for &byte in bytes {
            self.word |= (byte as u64) << (8 * self.word_bytes);
            self.word_bytes += 1;
            if self.word_bytes == 8 {
                let word = std::mem::take(&mut self.word);
                self.word_bytes = 0;
                self.mix(word);
            }
        }
    }

    /// The hash of everything fed.
    #[inline]
    pub fn finish(mut self) -> u64 {
        if self.word_bytes > 0 {
            let word = self.word;
            self.mix(word);
        }
        fmix64(self.state ^ self.total_bytes)
    }
}

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
#[inline]
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The engine's hash of a key: identical in every process, platform and build.
#[inline]
pub fn key_hash<K: KeyBytes + ?Sized>(key: &K) -> u64 {
    let mut hasher = KeyHasher::default();
    key.write_key_bytes(&mut hasher);
    hasher.finish()
}

macro_rules! key_bytes_for_small_integers {
    ($($t:ty),*) => {$(
        impl KeyBytes for $t {
            #[inline]
            fn write_key_bytes(&self, hasher: &mut KeyHasher) {
                hasher.write_bytes(&self.to_le_bytes());
            }
        }
    )*};
}
key_bytes_for_small_integers!(u8, i8, u16, i16, u32, i32, u128, i128);

impl KeyBytes for u64 {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        hasher.write_u64(*self);
    }
}

impl KeyBytes for i64 {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        hasher.write_u64(*self as u64);
    }
}

impl KeyBytes for usize {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        hasher.write_u64(*self as u64);
    }
}

impl KeyBytes for isize {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        hasher.write_u64(*self as i64 as u64);
    }
}

impl KeyBytes for bool {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        hasher.write_bytes(&[*self as u8]);
    }
}

impl KeyBytes for char {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        hasher.write_bytes(&(*self as u32).to_le_bytes());
    }
}

impl KeyBytes for str {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        hasher.write_u64(self.len() as u64);
        hasher.write_bytes(self.as_bytes());
    }
}

impl KeyBytes for String {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        self.as_str().write_key_bytes(hasher);
    }
}

impl KeyBytes for () {
    #[inline]
    fn write_key_bytes(&self, _hasher: &mut KeyHasher) {}
}

impl<T: KeyBytes + ?Sized> KeyBytes for &T {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        (**self).write_key_bytes(hasher);
    }
}

impl<T: KeyBytes + ?Sized> KeyBytes for Box<T> {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        (**self).write_key_bytes(hasher);
    }
}

impl<T: KeyBytes> KeyBytes for Option<T> {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        match self {
            None => hasher.write_bytes(&[0]),
            Some(value) => {
                hasher.write_bytes(&[1]);
                value.write_key_bytes(hasher);
            }
        }
    }
}

impl<T: KeyBytes> KeyBytes for [T] {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        hasher.write_u64(self.len() as u64);
        for element in self {
            element.write_key_bytes(hasher);
        }
    }
}

impl<T: KeyBytes> KeyBytes for Vec<T> {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        self.as_slice().write_key_bytes(hasher);
    }
}

impl<T: KeyBytes, const N: usize> KeyBytes for [T; N] {
    #[inline]
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        for element in self {
            element.write_key_bytes(hasher);
        }
    }
}

macro_rules! key_bytes_for_tuples {
    ($(($($name:ident),+)),*) => {$(
        impl<$($name: KeyBytes),+> KeyBytes for ($($name,)+) {
            #[inline]
            #[allow(non_snake_case)]
            fn write_key_bytes(&self, hasher: &mut KeyHasher) {
                let ($($name,)+) = self;
                $($name.write_key_bytes(hasher);)+
            }
        }
    )*};
}
key_bytes_for_tuples!((A), (A, B), (A, B, C), (A, B, C, D), (A, B, C, D, E), (A, B, C, D, E, F));

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash straight from the specification in the module documentation, one byte at a time.
    fn specified_hash(bytes: &[u8]) -> u64 {
        let mut h = KEY_HASH_SEED;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(word)).rotate_left(29).wrapping_mul(KEY_HASH_MULTIPLIER);
        }
        fmix64(h ^ bytes.len() as u64)
    }

    #[test]
    fn keys_hash_as_the_specification_says_over_their_canonical_bytes() {
        assert_eq!(key_hash(&42i64), specified_hash(&42i64.to_le_bytes()));
        assert_eq!(key_hash(&7u8), specified_hash(&[7]));
        assert_eq!(key_hash(&'x'), specified_hash(&('x' as u32).to_le_bytes()));
        let mut text = 7u64.to_le_bytes().to_vec();
        text.extend_from_slice(b"auction");
        assert_eq!(key_hash("auction"), specified_hash(&text));
        let mut pair = 3u32.to_le_bytes().to_vec();
        pair.extend_from_slice(&(-1i64).to_le_bytes());
        pair.push(1);
        assert_eq!(key_hash(&(3u32, -1i64, true)), specified_hash(&pair));
        assert_eq!(key_hash(&()), specified_hash(&[]));
        assert_eq!(key_hash(&Some(5u16)), specified_hash(&[1, 5, 0]));
    }

    #[test]
    fn equal_keys_of_different_types_that_mean_the_same_hash_the_same() {
        assert_eq!(key_hash("a"), key_hash(&String::from("a")));
        assert_eq!(key_hash(&&"a"), key_hash(&Box::<str>::from("a")));
        assert_eq!(key_hash(&5usize), key_hash(&5u64), "usize encodes as 64 bits on every platform");
        assert_eq!(key_hash(&vec![1u8, 2]), key_hash(&[1u8, 2][..]));
    }

    #[test]
    fn the_key_hash_is_pinned() {
        // Saved state is found by these values: if this fails, the hash or an encoding changed and
        // every savepoint written before would restore keys into the wrong key groups. Computed
        // outside the engine, by a separate implementation of the specification (a Python script).
        assert_eq!(key_hash(&42i64), 0x83c9_1991_eb30_47f1);
        assert_eq!(key_hash("auction"), 0x0444_f00f_b886_4136);
        assert_eq!(key_hash(&('a', 1i64)), 0x11a1_8cc1_9d4e_2813);
        assert_eq!(key_hash(&()), 0x7acd_bb98_b134_4213);
    }
}
