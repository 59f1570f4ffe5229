//! Plain records: fixed-size records whose memory is their encoding, so a frame of them crosses
//! processes with no per-record encoding or decoding.
//!
//! A record type qualifies when it is `Copy`, has no padding (`bytemuck::NoUninit`) and can say of
//! any bytes whether they are one of its values (`bytemuck::CheckedBitPattern`): e.g. a
//! `#[repr(C)]` struct of integers, floats and `InlineStr`s laid out without gaps. Once a program
//! registers such a type ([`register_plain_record`]; the engine's own workload records are
//! registered from the start), a frame of it goes to another process as a 16-byte header followed
//! by its records' memory, written to the socket from where the frame holds it (no encoding, no
//! copy); the receiver validates the records *in the receive buffer* (integers need nothing, an
//! inline string its length, UTF-8 and zeros after it) and copies them out whole into the frame the
//! operators own. Every other record type goes through rkyv.
//!
//! The header (`b"TPLF"`, the record size as a little-endian `u32`, the record count as a
//! little-endian `u64`) makes the form self-describing: bytes written by a program that did not
//! register the type (or registered another of the same name) are refused with an error, never
//! read as records. It is 16 bytes so the records after it stay aligned in the receive buffer. Both ends run the same program, whose graph fingerprint names the form of
//! every edge (`record_type_name`), so a worker that registered differently is refused at deploy.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use super::{AnyFrame, Record};
use crate::base::codec::ARCHIVE_ALIGNMENT;
use crate::base::CodecError;
use crate::channel::transport::{FrameBuffer, FrameBytes, OutgoingFrame};

/// Records that can travel as their own bytes (see the module documentation). Implemented for
/// every type with the bounds; a type travels so only once registered.
pub trait PlainRecord: Record + Copy + bytemuck::NoUninit + bytemuck::CheckedBitPattern {}
impl<T: Record + Copy + bytemuck::NoUninit + bytemuck::CheckedBitPattern> PlainRecord for T {}

/// The header's first bytes.
const HEADER_MAGIC: [u8; 4] = *b"TPLF";
/// Bytes of the header before the records.
pub const PLAIN_HEADER_BYTES: usize = 16;

/// The encoders and decoder of one registered type; the registry finds them by the type id of a
/// frame (`Vec<T>`).
#[derive(Clone, Copy)]
pub(crate) struct PlainCodec {
    pub(crate) encode: fn(&(dyn Any + Send), &mut FrameBuffer),
    pub(crate) into_outgoing: fn(Box<dyn Any + Send>) -> OutgoingFrame,
    pub(crate) decode: fn(&[u8]) -> Result<AnyFrame, CodecError>,
}

fn registry() -> &'static RwLock<HashMap<TypeId, PlainCodec>> {
    static REGISTRY: OnceLock<RwLock<HashMap<TypeId, PlainCodec>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut codecs = HashMap::new();
        codecs.insert(TypeId::of::<Vec<crate::source::bids::Bid>>(), codec_of::<crate::source::bids::Bid>());
        RwLock::new(codecs)
    })
}

fn codec_of<T: PlainRecord>() -> PlainCodec {
    assert!(
        std::mem::align_of::<T>() <= ARCHIVE_ALIGNMENT,
        "plain record {} needs alignment {}, more than the {ARCHIVE_ALIGNMENT} of frame buffers",
        std::any::type_name::<T>(),
        std::mem::align_of::<T>()
    );
    assert!(std::mem::size_of::<T>() > 0, "plain record {} has no bytes", std::any::type_name::<T>());
    PlainCodec { encode: encode_plain::<T>, into_outgoing: outgoing_plain::<T>, decode: decode_plain::<T> }
}

/// Makes frames of `T` travel between processes (and into unaligned checkpoints) as their bytes.
/// Call it while defining the job, before the graph is built, in every process of the job (they
/// run the same program, so they do); registering twice is harmless.
///
/// Panics if `T` is zero-sized or aligned to more than 16 bytes.
pub fn register_plain_record<T: PlainRecord>() {
    let codec = codec_of::<T>();
    registry().write().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(TypeId::of::<Vec<T>>(), codec);
}

/// Whether frames of `T` travel as plain bytes.
pub fn is_plain_record<T: 'static>() -> bool {
    plain_codec(TypeId::of::<Vec<T>>()).is_some()
}

/// The codec of frames of type id `frame_type` (that of a `Vec<T>`), if `T` is registered.
pub(crate) fn plain_codec(frame_type: TypeId) -> Option<PlainCodec> {
    registry().read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&frame_type).copied()
}

/// The record type of an edge as the graph fingerprint compares it: the type's name, and its
/// form on the wire when that is plain bytes.
pub fn record_type_name<T: 'static>() -> String {
    let name = std::any::type_name::<T>();
    if is_plain_record::<T>() {
        format!("{name} (plain bytes)")
    } else {
        name.to_string()
    }
}

fn header_of<T>(count: usize) -> [u8; PLAIN_HEADER_BYTES] {
    let mut header = [0u8; PLAIN_HEADER_BYTES];
    header[..4].copy_from_slice(&HEADER_MAGIC);
    header[4..8].copy_from_slice(&(std::mem::size_of::<T>() as u32).to_le_bytes());
    header[8..].copy_from_slice(&(count as u64).to_le_bytes());
    header
}

fn encode_plain<T: PlainRecord>(data: &(dyn Any + Send), buffer: &mut FrameBuffer) {
    let frame = data.downcast_ref::<Vec<T>>().expect("a frame encodes its own type");
    let records: &[u8] = bytemuck::cast_slice(frame.as_slice());
    buffer.reserve(PLAIN_HEADER_BYTES + records.len());
    buffer.extend_from_slice(&header_of::<T>(frame.len()));
    buffer.extend_from_slice(records);
}

/// A frame of plain records as the bytes a link writes.
struct PlainRecords<T>(Vec<T>);

impl<T: PlainRecord> FrameBytes for PlainRecords<T> {
    fn bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.0.as_slice())
    }
}

fn outgoing_plain<T: PlainRecord>(data: Box<dyn Any + Send>) -> OutgoingFrame {
    let frame = data.downcast::<Vec<T>>().unwrap_or_else(|_| panic!("a frame is sent as its own type"));
    OutgoingFrame::Plain { header: header_of::<T>(frame.len()), records: Box::new(PlainRecords(*frame)) }
}

fn decode_plain<T: PlainRecord>(bytes: &[u8]) -> Result<AnyFrame, CodecError> {
    let refuse = |reason: String| CodecError::new::<Vec<T>>(reason);
    let Some(records_len) = bytes.len().checked_sub(PLAIN_HEADER_BYTES) else {
        return Err(refuse(format!("a plain frame of {} bytes is shorter than its {PLAIN_HEADER_BYTES}-byte header", bytes.len())));
    };
    let (trailer, records) = bytes.split_at(PLAIN_HEADER_BYTES);
    if trailer[..4] != HEADER_MAGIC {
        return Err(refuse(
            "the frame is not in plain form (its sender does not register this type with register_plain_record)".to_string(),
        ));
    }
    let record_size = u32::from_le_bytes(trailer[4..8].try_into().expect("four bytes")) as usize;
    let count = u64::from_le_bytes(trailer[8..16].try_into().expect("eight bytes"));
    if record_size != std::mem::size_of::<T>() {
        return Err(refuse(format!("the frame holds records of {record_size} bytes, not {}", std::mem::size_of::<T>())));
    }
    if count.checked_mul(record_size as u64) != Some(records_len as u64) {
        return Err(refuse(format!("the header announces {count} records of {record_size} bytes, but {records_len} bytes follow it")));
    }
    let not_a_record =
        |error: bytemuck::checked::CheckedCastError| refuse(format!("a record's bytes are not a value of the type: {error}"));
    // Checked and copied once: in one piece where the records are aligned, else one by one (a
    // frame read where it lies in a connection's ring need not be).
    let frame = if records.as_ptr().align_offset(std::mem::align_of::<T>()) == 0 {
        bytemuck::checked::try_cast_slice::<u8, T>(records).map_err(not_a_record)?.to_vec()
    } else {
        let read = records.chunks_exact(record_size).map(bytemuck::checked::try_pod_read_unaligned::<T>);
        read.collect::<Result<Vec<T>, _>>().map_err(not_a_record)?
    };
    Ok(AnyFrame::new(frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::bids::{Bid, BidsSource};

    fn bids(n: u64) -> Vec<Bid> {
        let source = BidsSource::new(n, 7);
        (1..=n).map(|id| source.bid(id)).collect()
    }

    #[test]
    fn bids_travel_as_their_bytes_and_come_back_equal() {
        assert!(is_plain_record::<Bid>());
        let frame = bids(100);
        let bytes = AnyFrame::new(frame.clone()).encode().unwrap();
        assert_eq!(bytes.len(), PLAIN_HEADER_BYTES + 100 * std::mem::size_of::<Bid>());
        // Sent from the frame's memory, the bytes are the same.
        assert_eq!(AnyFrame::new(frame.clone()).into_outgoing(FrameBuffer::new).unwrap().into_contiguous().as_slice(), &bytes[..]);
        assert_eq!(AnyFrame::decode::<Bid>(&bytes).unwrap().into_typed::<Bid>(), frame);
        let empty = AnyFrame::new(Vec::<Bid>::new()).encode().unwrap();
        assert!(AnyFrame::decode::<Bid>(&empty).unwrap().is_empty());
    }

    #[test]
    fn the_edge_type_names_the_plain_form() {
        assert_eq!(record_type_name::<Bid>(), format!("{} (plain bytes)", std::any::type_name::<Bid>()));
        assert_eq!(record_type_name::<u64>(), "u64");
    }

    #[test]
    fn a_registered_user_type_travels_plain() {
        #[repr(C)]
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            bytemuck::NoUninit,
            bytemuck::CheckedBitPattern,
            rkyv::Archive,
            rkyv::Serialize,
            rkyv::Deserialize,
        )]
        struct Reading {
            sensor: u32,
            celsius: f32,
            at: i64,
        }
        assert!(!is_plain_record::<Reading>());
        let frame = vec![Reading { sensor: 1, celsius: 20.5, at: 10 }, Reading { sensor: 2, celsius: -3.0, at: 11 }];
        let rkyv_bytes = AnyFrame::new(frame.clone()).encode().unwrap();
        register_plain_record::<Reading>();
        register_plain_record::<Reading>();
        assert!(is_plain_record::<Reading>());
        let plain_bytes = AnyFrame::new(frame.clone()).encode().unwrap();
        assert_eq!(plain_bytes.len(), PLAIN_HEADER_BYTES + 2 * 16);
        assert!(matches!(AnyFrame::new(frame.clone()).into_outgoing(FrameBuffer::new).unwrap(), OutgoingFrame::Plain { .. }));
        assert_eq!(AnyFrame::decode::<Reading>(&plain_bytes).unwrap().into_typed::<Reading>(), frame);
        let error = AnyFrame::decode::<Reading>(&rkyv_bytes).unwrap_err();
        assert!(error.reason.contains("not in plain form"), "{error}");
    }

    #[test]
    fn malformed_plain_frames_are_refused_with_the_reason() {
        let bytes = AnyFrame::new(bids(3)).encode().unwrap();
        let size = std::mem::size_of::<Bid>();
        let decode = |bytes: &[u8]| AnyFrame::decode::<Bid>(bytes).unwrap_err().reason;
        assert!(decode(&bytes[..10]).contains("shorter than"));
        // A record missing.
        let short = &bytes[..PLAIN_HEADER_BYTES + 2 * size];
        assert!(decode(short).contains("announces 3 records"), "{}", decode(short));
        let mut other_size = bytes.clone();
        other_size[4] = 81;
        assert!(decode(&other_size).contains("records of 81 bytes"));
        // An inline string longer than its capacity, then one that is not UTF-8.
        let channel_len_at = PLAIN_HEADER_BYTES + 3 * 8;
        let mut too_long = bytes.clone();
        too_long[channel_len_at] = 200;
        assert!(decode(&too_long).contains("not a value of the type"));
        let mut not_utf8 = bytes.clone();
        not_utf8[channel_len_at + 1] = 0xFF;
        assert!(decode(&not_utf8).contains("not a value of the type"));
        // A misaligned frame is read all the same.
        let mut shifted = FrameBuffer::new();
        shifted.push(0);
        shifted.extend_from_slice(&bytes);
        assert_eq!(AnyFrame::decode::<Bid>(&shifted[1..]).unwrap().into_typed::<Bid>(), bids(3));
    }

    #[test]
    fn any_bytes_decode_to_a_frame_or_an_error_never_a_panic() {
        let bytes = AnyFrame::new(bids(4)).encode().unwrap();
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..20_000 {
            let mut mutated = bytes.clone();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..mutated.len());
                mutated[at] = rng.u8(..);
            }
            mutated.truncate(rng.usize(mutated.len() - 20..=mutated.len()));
            let _ = AnyFrame::decode::<Bid>(&mutated);
        }
    }
}
