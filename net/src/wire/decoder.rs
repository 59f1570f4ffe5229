//! [`FrameDecoder`]: turns the bytes of a connection, in chunks of any size, into messages.
//!
//! The decoder is a small state machine (header being filled, then payload being filled) that
//! copies each payload straight into a pooled aligned buffer taken with the exact length its header
//! announced, once the header has been checked against the limits: so it never allocates more than
//! the limit per message, never panics on any input, and a chunk boundary anywhere (even inside the
//! length field) makes no difference. After the first error it is poisoned and repeats that error:
//! a stream that lost its framing cannot be trusted again.

use super::{check_header_prefix, decode_header, Header, Limits, MessageKind, WireError, HEADER_BYTES};
use crate::pool::{BufferPool, PooledBuf};

/// A complete message, as received.
#[derive(Debug)]
pub struct Message {
    /// What the message is.
    pub kind: MessageKind,
    /// The stream (channel) it belongs to.
    pub stream: u64,
    /// The kind-dependent word (credits granted, for `Credit`).
    pub aux: u64,
    /// The payload, 16-byte aligned.
    pub payload: PooledBuf,
}

/// What [`FrameDecoder::next_offering`] completed.
#[derive(Debug)]
pub enum Decoded {
    /// A message, its payload copied into a pooled buffer.
    Message(Message),
    /// A message whose payload the offer took where it lay in the input.
    TakenInPlace,
}

/// The incremental decoder of one connection's byte stream.
#[derive(Debug)]
pub struct FrameDecoder {
    limits: Limits,
    pool: BufferPool,
    /// Bytes of the stream consumed so far.
    offset: u64,
    /// Offset of the message being decoded.
    message_offset: u64,
    header: [u8; HEADER_BYTES],
    header_filled: usize,
    /// The message whose header is complete and whose payload is being filled.
    pending: Option<PendingPayload>,
    /// The first error; every later call returns it.
    failed: Option<WireError>,
}

#[derive(Debug)]
struct PendingPayload {
    header: Header,
    payload: PooledBuf,
}

impl FrameDecoder {
    /// A decoder accepting what `limits` allow, taking payload buffers from `pool`.
    pub fn new(limits: Limits, pool: BufferPool) -> Self {
        FrameDecoder {
            limits,
            pool,
            offset: 0,
            message_offset: 0,
            header: [0; HEADER_BYTES],
            header_filled: 0,
            pending: None,
            failed: None,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Consumes bytes from the front of `input` until a message is complete (returned) or `input`
    /// is empty (`Ok(None)`: feed the next chunk). Call it again with the rest of the chunk after a
    /// message: `while let Some(message) = decoder.next_message(&mut chunk)? { ... }`.
    pub fn next_message(&mut self, input: &mut &[u8]) -> Result<Option<Message>, WireError> {
        match self.next_offering(input, &mut |_, _| false)? {
            Some(Decoded::Message(message)) => Ok(Some(message)),
            Some(Decoded::TakenInPlace) => unreachable!("nothing is taken in place when every offer is declined"),
            None => Ok(None),
        }
    }

    /// As [`next_message`](Self::next_message), but a message whose payload lies whole in `input`
    /// is first offered to `offer` where it lies (its checked header and its payload): when the
    /// offer takes it (`true`), the payload is not copied and [`Decoded::TakenInPlace`] is
    /// returned. A payload cut by the end of `input` is never offered; it is copied as usual.
    pub fn next_offering(
        &mut self,
        input: &mut &[u8],
        offer: &mut dyn FnMut(&Header, &[u8]) -> bool,
    ) -> Result<Option<Decoded>, WireError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.advance(input, offer) {
            Ok(message) => Ok(message),
            Err(error) => {
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Declares the end of the stream: an error if it ended inside a message (or the decoder
    /// failed before).
    pub fn finish(&self) -> Result<(), WireError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if let Some(pending) = &self.pending {
            return Err(WireError::TruncatedPayload {
                offset: self.message_offset,
                received_bytes: pending.payload.len() as u64,
                payload_bytes: pending.header.payload_bytes,
            });
        }
        if self.header_filled > 0 {
            return Err(WireError::TruncatedHeader { offset: self.message_offset, received_bytes: self.header_filled });
        }
        Ok(())
    }

    fn advance(&mut self, input: &mut &[u8], offer: &mut dyn FnMut(&Header, &[u8]) -> bool) -> Result<Option<Decoded>, WireError> {
        if self.pending.is_none() {
            let wanted = HEADER_BYTES - self.header_filled;
            let taken = wanted.min(input.len());
            self.header[self.header_filled..self.header_filled + taken].copy_from_slice(&input[..taken]);
            self.consume(input, taken);
            self.header_filled += taken;
            if self.header_filled < HEADER_BYTES {
                check_header_prefix(&self.header, self.header_filled, self.message_offset, &self.limits)?;
                return Ok(None);
            }
            let header = decode_header(&self.header, self.message_offset, &self.limits)?;
            // decode_header checked the length against the limit: this allocation is bounded by it.
            debug_assert!(header.payload_bytes <= self.limits.max_payload_bytes);
            let length = header.payload_bytes as usize;
            if input.len() >= length && offer(&header, &input[..length]) {
                self.consume(input, length);
                self.header_filled = 0;
                self.message_offset = self.offset;
                return Ok(Some(Decoded::TakenInPlace));
            }
            let payload = self.pool.take(header.payload_bytes as usize);
            self.pending = Some(PendingPayload { header, payload });
        }
        let Some(pending) = &mut self.pending else { return Ok(None) };
        let missing = pending.header.payload_bytes as usize - pending.payload.len();
        let taken = missing.min(input.len());
        pending.payload.extend_from_slice(&input[..taken]);
        self.consume(input, taken);
        if taken < missing {
            return Ok(None);
        }
        let Some(PendingPayload { header, payload }) = self.pending.take() else { return Ok(None) };
        debug_assert_eq!(payload.len(), header.payload_bytes as usize);
        self.header_filled = 0;
        self.message_offset = self.offset;
        Ok(Some(Decoded::Message(Message { kind: header.kind, stream: header.stream, aux: header.aux, payload })))
    }

    fn consume(&mut self, input: &mut &[u8], bytes: usize) {
        *input = &input[bytes..];
        self.offset += bytes as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::write_message;

    fn decoder(max_payload_bytes: u32) -> FrameDecoder {
        FrameDecoder::new(Limits { max_payload_bytes }, BufferPool::default())
    }

    fn decode_all(decoder: &mut FrameDecoder, mut input: &[u8]) -> Result<Vec<Message>, WireError> {
        let mut messages = Vec::new();
        while let Some(message) = decoder.next_message(&mut input)? {
            messages.push(message);
        }
        assert!(input.is_empty(), "Ok(None) only once the input is consumed");
        Ok(messages)
    }

    #[test]
    fn messages_split_byte_by_byte_decode_whole() {
        let mut stream = Vec::new();
        write_message(&mut stream, MessageKind::Data, 7, 1, b"frame bytes", &Limits::default()).expect("small");
        write_message(&mut stream, MessageKind::Credit, 7, 16, b"", &Limits::default()).expect("small");
        let mut decoder = decoder(1024);
        let mut messages = Vec::new();
        for byte in stream.chunks(1) {
            messages.extend(decode_all(&mut decoder, byte).expect("valid"));
        }
        decoder.finish().expect("ended at a message boundary");
        assert_eq!(messages.len(), 2);
        assert_eq!((messages[0].kind, messages[0].stream, messages[0].aux), (MessageKind::Data, 7, 1));
        assert_eq!(&messages[0].payload[..], b"frame bytes");
        assert_eq!((messages[1].kind, messages[1].aux, messages[1].payload.len()), (MessageKind::Credit, 16, 0));
        assert_eq!(decoder.offset(), stream.len() as u64);
    }

    #[test]
    fn oversized_length_is_refused_before_its_payload_arrives() {
        let mut header = [0u8; HEADER_BYTES];
        header[..8].copy_from_slice(&[b'T', b'N', 1, 1, 0xff, 0xff, 0xff, 0xff]);
        let mut decoder = decoder(1024);
        // Only the first 8 bytes: the length field alone is enough to refuse.
        let error = decode_all(&mut decoder, &header[..8]).expect_err("over the limit");
        assert_eq!(error, WireError::PayloadTooLarge { offset: 4, payload_bytes: u32::MAX, max_payload_bytes: 1024 });
        assert_eq!(decoder.finish(), Err(error.clone()), "the decoder stays failed");
        assert_eq!(decode_all(&mut decoder, b"more").err(), Some(error));
    }

    #[test]
    fn truncation_is_reported_by_finish() {
        let mut stream = Vec::new();
        write_message(&mut stream, MessageKind::Event, 1, 0, b"abc", &Limits::default()).expect("small");
        write_message(&mut stream, MessageKind::Event, 1, 0, b"defgh", &Limits::default()).expect("small");
        let mut inside_header = decoder(1024);
        assert_eq!(decode_all(&mut inside_header, &stream[..27 + 10]).map(|m| m.len()), Ok(1));
        assert_eq!(inside_header.finish(), Err(WireError::TruncatedHeader { offset: 27, received_bytes: 10 }));
        let mut inside_payload = decoder(1024);
        assert_eq!(decode_all(&mut inside_payload, &stream[..27 + 26]).map(|m| m.len()), Ok(1));
        assert_eq!(inside_payload.finish(), Err(WireError::TruncatedPayload { offset: 27, received_bytes: 2, payload_bytes: 5 }));
    }

    #[test]
    fn garbage_is_refused_at_its_first_byte_pair() {
        let mut decoder = decoder(1024);
        assert_eq!(decode_all(&mut decoder, b"GET / HTTP/1.1").err(), Some(WireError::BadMagic { offset: 0, found: *b"GE" }));
    }

    #[test]
    fn payloads_are_aligned() {
        let mut stream = Vec::new();
        for len in 0..40usize {
            write_message(&mut stream, MessageKind::Data, len as u64, 0, &vec![len as u8; len], &Limits::default()).expect("small");
        }
        let messages = decode_all(&mut decoder(1024), &stream).expect("valid");
        assert_eq!(messages.len(), 40);
        for (len, message) in messages.iter().enumerate() {
            assert_eq!(message.payload.as_ptr() as usize % crate::pool::PAYLOAD_ALIGNMENT, 0);
            assert_eq!(&message.payload[..], &vec![len as u8; len][..]);
        }
    }

    #[test]
    fn a_payload_lying_whole_in_the_input_is_offered_where_it_lies_and_a_cut_one_is_copied() {
        let mut stream = Vec::new();
        write_message(&mut stream, MessageKind::Data, 1, 10, b"first", &Limits::default()).expect("small");
        write_message(&mut stream, MessageKind::Data, 2, 20, b"second", &Limits::default()).expect("small");
        write_message(&mut stream, MessageKind::Event, 3, 30, b"third", &Limits::default()).expect("small");
        // The first chunk ends inside the second message's payload.
        let cut = HEADER_BYTES + 5 + HEADER_BYTES + 2;
        let mut decoder = decoder(1024);
        let mut offered = Vec::new();
        let mut copied = Vec::new();
        for mut chunk in [&stream[..cut], &stream[cut..]] {
            let mut offer = |header: &Header, payload: &[u8]| {
                offered.push((header.stream, header.aux, payload.to_vec()));
                // The event is declined: it is delivered as a message.
                header.kind == MessageKind::Data
            };
            while let Some(decoded) = decoder.next_offering(&mut chunk, &mut offer).expect("valid") {
                if let Decoded::Message(message) = decoded {
                    copied.push((message.stream, message.aux, message.payload.to_vec()));
                }
            }
        }
        decoder.finish().expect("ended at a message boundary");
        assert_eq!(offered, vec![(1, 10, b"first".to_vec()), (3, 30, b"third".to_vec())], "the cut payload is not offered");
        assert_eq!(copied, vec![(2, 20, b"second".to_vec()), (3, 30, b"third".to_vec())]);
        assert_eq!(decoder.offset(), stream.len() as u64);
    }
}
