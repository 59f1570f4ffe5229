//! The message format of a connection, and its incremental decoder.
//!
//! Every message is a 24-byte little-endian header followed by its payload:
//!
//! | bytes  | field                                   |
//! |--------|-----------------------------------------|
//! | 0..2   | magic `b"TN"`                           |
//! | 2      | protocol version ([`PROTOCOL_VERSION`]) |
//! | 3      | kind ([`MessageKind`])                  |
//! | 4..8   | payload length (u32)                    |
//! | 8..16  | stream (u64)                            |
//! | 16..24 | aux (u64)                               |
//!
//! The format is payload-agnostic: the engine decides what a stream is and what a payload holds.
//! The magic and version in every header let the decoder tell a stream that lost its framing (or a
//! stranger speaking another protocol) from a valid one at the first bad byte. A payload length
//! over [`Limits::max_payload_bytes`] is refused from the header alone, before anything is
//! allocated for it. There is no checksum: TCP's own (and later TLS's MAC) covers the bytes.

mod decoder;
#[cfg(test)]
mod fuzz_tests;

pub use decoder::{Decoded, FrameDecoder, Message};

use thiserror::Error;

/// The length of a message header.
pub const HEADER_BYTES: usize = 24;
/// The first two bytes of every header.
pub const MAGIC: [u8; 2] = *b"TN";
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;

/// What a message is; the payload's meaning depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageKind {
    /// An encoded frame of the channel named by the stream.
    Data = 1,
    /// A small in-band event of a channel (watermark, barrier, end of input), encoded by the caller.
    Event = 2,
    /// Credits granted to the sender of the channel named by the stream; `aux` is how many.
    Credit = 3,
    /// Job-level control, opaque bytes.
    Control = 4,
    /// An orderly goodbye; the payload is the reason, as UTF-8. Nothing follows it.
    Close = 5,
}

impl MessageKind {
    /// Every kind, in the order of their codes.
    pub const ALL: [MessageKind; 5] =
        [MessageKind::Data, MessageKind::Event, MessageKind::Credit, MessageKind::Control, MessageKind::Close];

    /// The kind a header byte names, if any.
    pub fn from_code(code: u8) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|kind| *kind as u8 == code)
    }

    /// The header byte of this kind.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// What a decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest payload a message may announce; a larger one is a [`WireError::PayloadTooLarge`].
    pub max_payload_bytes: u32,
}

impl Limits {
    /// Default of `max_payload_bytes`: 64 MiB.
    pub const MAX_PAYLOAD_BYTES_DEFAULT: u32 = 64 << 20;
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_payload_bytes: Self::MAX_PAYLOAD_BYTES_DEFAULT }
    }
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the message is.
    pub kind: MessageKind,
    /// The length of the payload after the header.
    pub payload_bytes: u32,
    /// The stream (channel) the message belongs to; its meaning is the caller's.
    pub stream: u64,
    /// A word whose meaning depends on the kind (credits granted, for `Credit`).
    pub aux: u64,
}

/// Why bytes received are not a valid message stream. Each names the byte offset in the stream
/// (counted from the first byte after the handshake) of the field that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The header does not start with `b"TN"`: the stream lost its framing or is not Tethys.
    #[error("bad magic {found:02x?} at byte offset {offset} (expected \"TN\"): the stream lost its framing or is not Tethys")]
    BadMagic {
        /// Offset of the magic.
        offset: u64,
        /// The two bytes found.
        found: [u8; 2],
    },
    /// The header's protocol version is not [`PROTOCOL_VERSION`].
    #[error("unsupported protocol version {found} at byte offset {offset} (this build speaks version {PROTOCOL_VERSION})")]
    UnsupportedVersion {
        /// Offset of the version byte.
        offset: u64,
        /// The version found.
        found: u8,
    },
    /// The kind byte names no [`MessageKind`].
    #[error("unknown message kind {found} at byte offset {offset}")]
    UnknownKind {
        /// Offset of the kind byte.
        offset: u64,
        /// The byte found.
        found: u8,
    },
    /// The header announces a payload over the limit; nothing was allocated for it.
    #[error("payload length {payload_bytes} at byte offset {offset} exceeds the limit of {max_payload_bytes} bytes")]
    PayloadTooLarge {
        /// Offset of the length field.
        offset: u64,
        /// The length announced.
        payload_bytes: u32,
        /// The limit.
        max_payload_bytes: u32,
    },
    /// The stream ended inside a header.
    #[error("stream ended inside the header of the message at byte offset {offset}: {received_bytes} of {HEADER_BYTES} bytes received")]
    TruncatedHeader {
        /// Offset of the message.
        offset: u64,
        /// Header bytes received.
        received_bytes: usize,
    },
    /// The stream ended inside a payload.
    #[error("stream ended inside the payload of the message at byte offset {offset}: {received_bytes} of {payload_bytes} payload bytes received")]
    TruncatedPayload {
        /// Offset of the message.
        offset: u64,
        /// Payload bytes received.
        received_bytes: u64,
        /// The payload length its header announced.
        payload_bytes: u32,
    },
}

/// A payload longer than the limit, refused when a message is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("payload of {payload_bytes} bytes exceeds the limit of {max_payload_bytes} bytes")]
pub struct PayloadTooLarge {
    /// The payload's length.
    pub payload_bytes: usize,
    /// The limit.
    pub max_payload_bytes: u32,
}

/// Checks a payload length against the limits, giving it as the header's u32.
pub fn check_payload_bytes(payload_bytes: usize, limits: &Limits) -> Result<u32, PayloadTooLarge> {
    match u32::try_from(payload_bytes) {
        Ok(bytes) if bytes <= limits.max_payload_bytes => Ok(bytes),
        _ => Err(PayloadTooLarge { payload_bytes, max_payload_bytes: limits.max_payload_bytes }),
    }
}

/// The 24 header bytes of a message.
pub fn encode_header(header: &Header) -> [u8; HEADER_BYTES] {
    let mut bytes = [0u8; HEADER_BYTES];
    bytes[0..2].copy_from_slice(&MAGIC);
    bytes[2] = PROTOCOL_VERSION;
    bytes[3] = header.kind.code();
    bytes[4..8].copy_from_slice(&header.payload_bytes.to_le_bytes());
    bytes[8..16].copy_from_slice(&header.stream.to_le_bytes());
    bytes[16..24].copy_from_slice(&header.aux.to_le_bytes());
    bytes
}

/// Appends one message (header and payload) to `out`.
pub fn write_message(
    out: &mut Vec<u8>,
    kind: MessageKind,
    stream: u64,
    aux: u64,
    payload: &[u8],
    limits: &Limits,
) -> Result<(), PayloadTooLarge> {
    let payload_bytes = check_payload_bytes(payload.len(), limits)?;
    out.extend_from_slice(&encode_header(&Header { kind, payload_bytes, stream, aux }));
    out.extend_from_slice(payload);
    Ok(())
}

/// Checks the fields of a header prefix of `available` bytes (of the message at `offset`) that are
/// complete, so garbage is reported at its first bad field, even in a stream that ends early.
pub(crate) fn check_header_prefix(bytes: &[u8; HEADER_BYTES], available: usize, offset: u64, limits: &Limits) -> Result<(), WireError> {
    if available >= 2 && bytes[0..2] != MAGIC {
        return Err(WireError::BadMagic { offset, found: [bytes[0], bytes[1]] });
    }
    if available >= 3 && bytes[2] != PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion { offset: offset + 2, found: bytes[2] });
    }
    if available >= 4 && MessageKind::from_code(bytes[3]).is_none() {
        return Err(WireError::UnknownKind { offset: offset + 3, found: bytes[3] });
    }
    if available >= 8 {
        let payload_bytes = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if payload_bytes > limits.max_payload_bytes {
            return Err(WireError::PayloadTooLarge { offset: offset + 4, payload_bytes, max_payload_bytes: limits.max_payload_bytes });
        }
    }
    Ok(())
}

/// Decodes a complete header of the message at `offset`.
pub fn decode_header(bytes: &[u8; HEADER_BYTES], offset: u64, limits: &Limits) -> Result<Header, WireError> {
    check_header_prefix(bytes, HEADER_BYTES, offset, limits)?;
    let word = |range: std::ops::Range<usize>| {
        let mut le = [0u8; 8];
        le.copy_from_slice(&bytes[range]);
        u64::from_le_bytes(le)
    };
    let kind = MessageKind::from_code(bytes[3]).ok_or(WireError::UnknownKind { offset: offset + 3, found: bytes[3] })?;
    Ok(Header { kind, payload_bytes: u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]), stream: word(8..16), aux: word(16..24) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_every_kind() {
        for kind in MessageKind::ALL {
            let header = Header { kind, payload_bytes: 77, stream: u64::MAX - 3, aux: 0x0102_0304_0506_0708 };
            let bytes = encode_header(&header);
            assert_eq!(decode_header(&bytes, 0, &Limits::default()), Ok(header));
        }
    }

    #[test]
    fn header_layout_is_little_endian_as_specified() {
        let bytes = encode_header(&Header { kind: MessageKind::Credit, payload_bytes: 0x0403_0201, stream: 5, aux: 9 });
        assert_eq!(&bytes[0..8], &[b'T', b'N', 1, 3, 1, 2, 3, 4]);
        assert_eq!(bytes[8], 5);
        assert_eq!(bytes[16], 9);
    }

    #[test]
    fn kind_codes_are_stable() {
        let codes: Vec<u8> = MessageKind::ALL.iter().map(|kind| kind.code()).collect();
        assert_eq!(codes, [1, 2, 3, 4, 5]);
        assert_eq!(MessageKind::from_code(0), None);
        assert_eq!(MessageKind::from_code(6), None);
    }

    #[test]
    fn writing_a_payload_over_the_limit_is_refused() {
        let mut out = Vec::new();
        let limits = Limits { max_payload_bytes: 4 };
        assert_eq!(
            write_message(&mut out, MessageKind::Data, 1, 2, &[0; 5], &limits),
            Err(PayloadTooLarge { payload_bytes: 5, max_payload_bytes: 4 })
        );
        assert!(out.is_empty());
        write_message(&mut out, MessageKind::Data, 1, 2, &[0; 4], &limits).expect("within the limit");
        assert_eq!(out.len(), HEADER_BYTES + 4);
    }

    #[test]
    fn header_errors_name_the_offset_of_the_bad_field() {
        let limits = Limits { max_payload_bytes: 10 };
        let good = encode_header(&Header { kind: MessageKind::Data, payload_bytes: 10, stream: 0, aux: 0 });
        let mut bad = good;
        bad[0] = b'X';
        assert_eq!(decode_header(&bad, 100, &limits), Err(WireError::BadMagic { offset: 100, found: [b'X', b'N'] }));
        let mut bad = good;
        bad[2] = 2;
        assert_eq!(decode_header(&bad, 100, &limits), Err(WireError::UnsupportedVersion { offset: 102, found: 2 }));
        let mut bad = good;
        bad[3] = 0;
        assert_eq!(decode_header(&bad, 100, &limits), Err(WireError::UnknownKind { offset: 103, found: 0 }));
        let mut bad = good;
        bad[4] = 11;
        assert_eq!(
            decode_header(&bad, 100, &limits),
            Err(WireError::PayloadTooLarge { offset: 104, payload_bytes: 11, max_payload_bytes: 10 })
        );
    }
}
