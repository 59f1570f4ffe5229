//! The typed half of the disk backend: per registered state, an object that knows its types, turns
//! one key group's stored entries into the backend-neutral snapshot form and back, and holds the
//! state's function (reduce or aggregate).
//!
//! The store itself is untyped bytes (see `layout`); everything the backend does to all states
//! alike (clear, list keys, expire, restore) works on those bytes. What needs the types goes
//! through the object-safe [`StateCodec`], reached by downcasting for typed access, as the heap
//! backend's tables are. The snapshot forms are the heap backend's ([`SlotEntries`],
//! [`MapEntries`]), so each backend restores what the other wrote. A codec holds no store handle
//! and no mutable state: it is shared (`Arc`) with point-in-time views that encode key groups on
//! another thread.

use crate::state::backend::Aggregator;
use std::any::Any;
use std::marker::PhantomData;

use rkyv::util::AlignedVec;

use super::layout::{self, StoreKey};
use super::store::{Store, StoredState};
use crate::base::codec::{self, CodecError};
use crate::base::{AggregateFunction, Key};
use crate::state::backend::{MapEntries, SlotEntries};
use crate::state::context::ScopedKey;
use crate::state::descriptor::StateValue;
use crate::state::ttl::TtlValue;

/// Store entries ready to write: (store key, store value).
pub(crate) type StoreEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// A stored entry read back for a snapshot, or its key and value bytes.
pub(crate) type StoredEntry = Result<(fjall::Slice, fjall::Slice), fjall::Error>;

/// Why a key group's stored entries could not be turned into a snapshot.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GroupReadError {
    /// The store failed to read them.
    #[error("the store failed to read the key group: {0}")]
    Store(#[from] fjall::Error),
    /// A stored key or value does not decode as the state's types.
    #[error("a stored entry does not decode: {0}")]
    Stored(CodecError),
    /// A stored entry is not laid out as the backend writes them.
    #[error("a stored entry is malformed ({0} bytes of key)")]
    Malformed(usize),
    /// The entries read back do not encode.
    #[error("the entries do not encode: {0}")]
    Encode(CodecError),
}

/// What the backend does to a state's entries that needs their types.
pub(crate) trait StateCodec<K>: Send + Sync + 'static {
    /// The codec as `Any`, to downcast for typed access.
    fn as_any(&self) -> &dyn Any;

    /// The snapshot form of one key group's stored entries of the state (given in store key
    /// order), encoded, with the number of entries (values, or map entries).
    fn encode_group(&self, entries: &mut dyn Iterator<Item = StoredEntry>) -> Result<(usize, Vec<u8>), GroupReadError>;

    /// The store entries of snapshot data of the state's key group `key_group`, as state `state`;
    /// with `restamp_ms`, every value is stamped anew at that time.
    fn decode_group(&self, key_group: usize, state: u32, bytes: &[u8], restamp_ms: Option<i64>) -> Result<StoreEntries, CodecError>;
}

/// A stored key and value taken apart: the key's parts, the stamp, the value's encoding.
fn split_entry<'a>(key: &'a [u8], value: &'a [u8]) -> Result<(StoreKey<'a>, i64, &'a [u8]), GroupReadError> {
    let parsed = StoreKey::parse(key).ok_or(GroupReadError::Malformed(key.len()))?;
    let (stamp_ms, value) = layout::split_value(value).ok_or(GroupReadError::Malformed(key.len()))?;
    Ok((parsed, stamp_ms, value))
}

/// Value, list (`T` is the `Vec`), reducing or aggregating state: one stored value per key, and
/// the state's function `F` (`()` if none).
pub(crate) struct SlotCodec<K, T, F = ()> {
    pub function: F,
    _types: PhantomData<fn() -> (K, T)>,
}

impl<K, T, F> SlotCodec<K, T, F> {
    pub fn new(function: F) -> SlotCodec<K, T, F> {
        SlotCodec { function, _types: PhantomData }
    }
}

impl<K: Key, T: StateValue, F: Send + Sync + 'static> StateCodec<K> for SlotCodec<K, T, F> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn encode_group(&self, entries: &mut dyn Iterator<Item = StoredEntry>) -> Result<(usize, Vec<u8>), GroupReadError> {
        let mut decoded: SlotEntries<K, T> = Vec::new();
        for entry in entries {
            let (key, value) = entry?;
            let (parsed, stamp_ms, value) = split_entry(&key, &value)?;
            let key = codec::decode::<K>(parsed.key).map_err(GroupReadError::Stored)?;
            let value = codec::decode::<T>(value).map_err(GroupReadError::Stored)?;
            decoded.push((key, TtlValue::new(value, stamp_ms)));
        }
        Ok((decoded.len(), codec::encode(&decoded).map_err(GroupReadError::Encode)?))
    }

    fn decode_group(&self, key_group: usize, state: u32, bytes: &[u8], restamp_ms: Option<i64>) -> Result<StoreEntries, CodecError> {
        let decoded = codec::decode::<SlotEntries<K, T>>(bytes)?;
        let mut entries = Vec::with_capacity(decoded.len());
        let mut scratch = AlignedVec::new();
        for (key, value) in decoded {
            let (mut store_key, mut store_value) = (Vec::new(), Vec::new());
            layout::write_key(&mut store_key, key_group, state, &key, &mut scratch)?;
            layout::write_value(&mut store_value, restamp_ms.unwrap_or(value.stamp_ms), &value.value)?;
            entries.push((store_key, store_value));
        }
        Ok(entries)
    }
}

/// Map state: one stored value per map entry, keyed by key then user key.
pub(crate) struct MapCodec<K, UK, UV> {
    _types: PhantomData<MapTypes<K, UK, UV>>,
}

/// The types a map codec stands for (a `fn` type: the codec owns none of them, and is `Send` and
/// `Sync` whatever they are).
type MapTypes<K, UK, UV> = fn() -> (K, UK, UV);

impl<K, UK, UV> MapCodec<K, UK, UV> {
    pub fn new() -> MapCodec<K, UK, UV> {
        MapCodec { _types: PhantomData }
    }
}

impl<K: Key, UK: Key, UV: StateValue> StateCodec<K> for MapCodec<K, UK, UV> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn encode_group(&self, entries: &mut dyn Iterator<Item = StoredEntry>) -> Result<(usize, Vec<u8>), GroupReadError> {
        // Entries come in store key order, so a key's map entries are consecutive.
        let mut decoded: MapEntries<K, UK, UV> = Vec::new();
        let mut current_key = Vec::new();
        let mut count = 0;
        for entry in entries {
            let (key, value) = entry?;
            let (parsed, stamp_ms, value) = split_entry(&key, &value)?;
            if decoded.is_empty() || parsed.key != current_key.as_slice() {
                current_key.clear();
                current_key.extend_from_slice(parsed.key);
                decoded.push((codec::decode::<K>(parsed.key).map_err(GroupReadError::Stored)?, Vec::new()));
            }
            let user_key = codec::decode::<UK>(parsed.user_key).map_err(GroupReadError::Stored)?;
            let value = codec::decode::<UV>(value).map_err(GroupReadError::Stored)?;
            let (_, map) = decoded.last_mut().expect("a key was pushed above");
            map.push((user_key, TtlValue::new(value, stamp_ms)));
            count += 1;
        }
        Ok((count, codec::encode(&decoded).map_err(GroupReadError::Encode)?))
    }

    fn decode_group(&self, key_group: usize, state: u32, bytes: &[u8], restamp_ms: Option<i64>) -> Result<StoreEntries, CodecError> {
        let decoded = codec::decode::<MapEntries<K, UK, UV>>(bytes)?;
        let mut entries = Vec::with_capacity(decoded.iter().map(|(_, map)| map.len()).sum());
        let mut key_prefix = Vec::new();
        let mut scratch = AlignedVec::new();
        for (key, map) in decoded {
            layout::write_key(&mut key_prefix, key_group, state, &key, &mut scratch)?;
            for (user_key, value) in map {
                let (mut store_key, mut store_value) = (key_prefix.clone(), Vec::new());
                layout::append_user_key(&mut store_key, &user_key, &mut scratch)?;
                layout::write_value(&mut store_value, restamp_ms.unwrap_or(value.stamp_ms), &value.value)?;
                entries.push((store_key, store_value));
            }
        }
        Ok(entries)
    }
}

/// An aggregating state, typed by what goes in and comes out; the accumulator type hides behind
/// one virtual call per access, as in the heap backend.
pub(crate) struct AggregatingCodec<K, In, Out> {
    pub inner: Box<dyn AggregatingOps<K, In, Out>>,
}

/// An aggregating state's typed operations.
pub(crate) trait AggregatingOps<K, In, Out>: StateCodec<K> {
    fn add(&self, store: &mut Store, state: &mut StoredState, key: ScopedKey<'_, K>, value: In);
    fn get(&self, store: &mut Store, state: &mut StoredState, key: ScopedKey<'_, K>) -> Option<Out>;
}

impl<K, In, Acc, Out, A> AggregatingOps<K, In, Out> for SlotCodec<K, Acc, Aggregator<A, In, Out>>
where
    K: Key,
    In: 'static,
    Acc: StateValue,
    Out: 'static,
    A: AggregateFunction<In, Acc, Out>,
{
    fn add(&self, store: &mut Store, state: &mut StoredState, key: ScopedKey<'_, K>, value: In) {
        let function = &self.function.function;
        store.access_slot(state, key, true, |slot| function.add(slot.get_or_insert_with(|| function.create_accumulator()), value));
    }

    fn get(&self, store: &mut Store, state: &mut StoredState, key: ScopedKey<'_, K>) -> Option<Out> {
        let function = &self.function.function;
        store.access_slot(state, key, false, |slot: &mut Option<Acc>| slot.as_ref().map(|accumulator| function.get_result(accumulator)))
    }
}

impl<K: Key, In: 'static, Out: 'static> StateCodec<K> for AggregatingCodec<K, In, Out> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn encode_group(&self, entries: &mut dyn Iterator<Item = StoredEntry>) -> Result<(usize, Vec<u8>), GroupReadError> {
        self.inner.encode_group(entries)
    }

    fn decode_group(&self, key_group: usize, state: u32, bytes: &[u8], restamp_ms: Option<i64>) -> Result<StoreEntries, CodecError> {
        self.inner.decode_group(key_group, state, bytes, restamp_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(entries: StoreEntries) -> impl Iterator<Item = StoredEntry> {
        entries.into_iter().map(|(key, value)| Ok((fjall::Slice::from(key), fjall::Slice::from(value))))
    }

    #[test]
    fn slot_entries_go_from_snapshot_form_to_the_store_and_back() {
        let codec = SlotCodec::<u64, String>::new(());
        let snapshot: SlotEntries<u64, String> = vec![(3, TtlValue::new("c".into(), 30)), (1, TtlValue::new("a".into(), 10))];
        let mut entries = codec.decode_group(9, 2, &codec::encode(&snapshot).unwrap(), None).unwrap();
        entries.sort();
        assert!(entries.iter().all(|(key, _)| key.starts_with(&layout::state_prefix(9, 2))));
        let (count, bytes) = codec.encode_group(&mut stored(entries)).unwrap();
        assert_eq!(count, 2);
        let mut back = codec::decode::<SlotEntries<u64, String>>(&bytes).unwrap();
        back.sort_by_key(|(key, _)| *key);
        assert_eq!(back, [(1, TtlValue::new("a".to_string(), 10)), (3, TtlValue::new("c".to_string(), 30))]);
    }

    #[test]
    fn map_entries_regroup_by_key_and_restamp_when_asked() {
        let codec = MapCodec::<u64, u32, String>::new();
        let snapshot: MapEntries<u64, u32, String> = vec![
            (7, vec![(1, TtlValue::new("x".into(), 5)), (2, TtlValue::new("y".into(), 6))]),
            (8, vec![(1, TtlValue::new("z".into(), 7))]),
        ];
        let mut entries = codec.decode_group(0, 0, &codec::encode(&snapshot).unwrap(), Some(100)).unwrap();
        entries.sort();
        let (count, bytes) = codec.encode_group(&mut stored(entries)).unwrap();
        assert_eq!(count, 3);
        let back = codec::decode::<MapEntries<u64, u32, String>>(&bytes).unwrap();
        type Flat = Vec<(u32, String, i64)>;
        let mut back: Vec<(u64, Flat)> = back
            .into_iter()
            .map(|(key, map)| (key, map.into_iter().map(|(user_key, value)| (user_key, value.value, value.stamp_ms)).collect()))
            .collect();
        back.iter_mut().for_each(|(_, map)| map.sort());
        back.sort();
        assert_eq!(back, [(7, vec![(1, "x".into(), 100), (2, "y".into(), 100)]), (8, vec![(1, "z".into(), 100)])]);
    }

    #[test]
    fn stored_bytes_of_other_types_are_an_error_not_a_value() {
        let codec = SlotCodec::<u64, String>::new(());
        let mut key = Vec::new();
        layout::write_key(&mut key, 0, 0, &1u64, &mut AlignedVec::new()).unwrap();
        let result = codec.encode_group(&mut stored(vec![(key.clone(), vec![0; 4])]));
        assert!(matches!(result, Err(GroupReadError::Malformed(_))), "{result:?}");
        let mut value = Vec::new();
        layout::write_value(&mut value, 0, &7u8).unwrap();
        let result = codec.encode_group(&mut stored(vec![(key, value)]));
        assert!(matches!(result, Err(GroupReadError::Stored(_))), "{result:?}");
    }
}
