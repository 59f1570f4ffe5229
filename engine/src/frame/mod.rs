//! Frames: the unit in which records move through the engine.
//!
//! A frame is a batch of records of one type, `Vec<T>`. Inside a task, operators hand frames to each
//! other by plain calls; between tasks of one process a frame moves by ownership through a channel
//! and is never copied or encoded. The runtime does not know record types, so between operators a
//! frame travels as an [`AnyFrame`]: the `Vec<T>` boxed once, with its record count beside it for
//! metrics. Only the typed code that built the job graph opens it again, so a type mismatch is a bug
//! in graph construction and panics.

use std::any::{Any, TypeId};

pub mod plain;

pub use plain::{is_plain_record, register_plain_record, PlainRecord};

/// Records a job may carry: owned data that can move to another core and be encoded with the
/// engine's codec (rkyv: derive `Archive`, `Serialize`, `Deserialize`), so frames can be stored in
/// unaligned checkpoints and, with the data plane, sent to other processes.
pub trait Record: crate::base::Codec {}
impl<T: crate::base::Codec> Record for T {}

/// Most records of type `T` in one frame: `records_max`, fewer when that many would take more
/// than `bytes_max` bytes of record memory (`size_of::<T>()` each), and at least one. Heap data a
/// record points to is not counted here; records of the engine's workloads keep their strings
/// inline, and the remote channel will bound encoded bytes on its own.
pub fn records_per_frame<T>(records_max: usize, bytes_max: usize) -> usize {
    (bytes_max / std::mem::size_of::<T>().max(1)).clamp(1, records_max.max(1))
}

/// A frame of records whose type the runtime does not know.
pub struct AnyFrame {
    records: usize,
    data: Box<dyn Any + Send>,
    /// Encodes `data` into a buffer (the one place that knows its type): unaligned checkpoints
    /// store frames, remote channels send them.
    encode: fn(&(dyn Any + Send), &mut crate::channel::transport::FrameBuffer) -> Result<(), crate::base::CodecError>,
}

impl AnyFrame {
    /// Wraps a typed frame.
    pub fn new<T: Record>(frame: Vec<T>) -> AnyFrame {
        AnyFrame { records: frame.len(), data: Box::new(frame), encode: encode_frame::<T> }
    }

    /// The frame's records encoded with the codec (as a `Vec<T>`, or as their bytes for a
    /// registered [`PlainRecord`]); read back with [`AnyFrame::decode`].
    pub fn encode(&self) -> Result<Vec<u8>, crate::base::CodecError> {
        let mut buffer = crate::channel::transport::FrameBuffer::new();
        self.encode_into(&mut buffer)?;
        Ok(buffer.into_vec())
    }

    /// Encodes the frame as [`AnyFrame::encode`] does, replacing what `buffer` held (its
    /// allocation is reused); the encoding starts aligned, so a receiver reads it in place.
    pub fn encode_into(&self, buffer: &mut crate::channel::transport::FrameBuffer) -> Result<(), crate::base::CodecError> {
        buffer.clear();
        (self.encode)(&*self.data, buffer)
    }

    /// The frame as it goes to another process: its records' own memory behind a header for a
    /// registered [`PlainRecord`], otherwise encoded into the buffer `buffer` gives.
    pub(crate) fn into_outgoing(
        self,
        buffer: impl FnOnce() -> crate::channel::transport::FrameBuffer,
    ) -> Result<crate::channel::transport::OutgoingFrame, crate::base::CodecError> {
        if let Some(plain) = plain::plain_codec((*self.data).type_id()) {
            return Ok((plain.into_outgoing)(self.data));
        }
        let mut buffer = buffer();
        self.encode_into(&mut buffer)?;
        Ok(crate::channel::transport::OutgoingFrame::Encoded(buffer))
    }

    /// A frame of `T` from bytes [`AnyFrame::encode`] wrote.
    pub fn decode<T: Record>(bytes: &[u8]) -> Result<AnyFrame, crate::base::CodecError> {
        if let Some(plain) = plain::plain_codec(TypeId::of::<Vec<T>>()) {
            return (plain.decode)(bytes);
        }
        crate::base::codec::decode::<Vec<T>>(bytes).map(AnyFrame::new)
    }

    /// Number of records in the frame.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Whether the frame holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Opens the frame as `Vec<T>`.
    ///
    /// Panics if the frame holds another type: edges are typed when the graph is built, so this
    /// means the graph was wired wrongly.
    pub fn into_typed<T: Record>(self) -> Vec<T> {
        match self.data.downcast::<Vec<T>>() {
            Ok(frame) => *frame,
            Err(_) => panic!("frame type mismatch: expected Vec<{}>", std::any::type_name::<T>()),
        }
    }
}

fn encode_frame<T: Record>(
    data: &(dyn Any + Send),
    buffer: &mut crate::channel::transport::FrameBuffer,
) -> Result<(), crate::base::CodecError> {
    if let Some(plain) = plain::plain_codec(TypeId::of::<Vec<T>>()) {
        (plain.encode)(data, buffer);
        return Ok(());
    }
    let frame = data.downcast_ref::<Vec<T>>().expect("a frame encodes its own type");
    let written = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(frame, std::mem::take(buffer))
        .map_err(|error| crate::base::CodecError::new::<Vec<T>>(error.to_string()))?;
    *buffer = written;
    Ok(())
}

impl std::fmt::Debug for AnyFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnyFrame({} records)", self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_encodes_without_knowing_its_type_and_decodes_as_it() {
        let frame = AnyFrame::new(vec![(1u32, "a".to_string()), (2, "b".to_string())]);
        let decoded = AnyFrame::decode::<(u32, String)>(&frame.encode().unwrap()).unwrap();
        assert_eq!(decoded.into_typed::<(u32, String)>(), vec![(1, "a".to_string()), (2, "b".to_string())]);
    }

    #[test]
    fn typed_round_trip_keeps_records_and_count() {
        let frame = AnyFrame::new(vec![1u32, 2, 3]);
        assert_eq!(frame.len(), 3);
        assert_eq!(frame.into_typed::<u32>(), vec![1, 2, 3]);
    }

    #[test]
    #[should_panic(expected = "frame type mismatch")]
    fn opening_as_another_type_panics() {
        AnyFrame::new(vec![1u32]).into_typed::<u64>();
    }
}
