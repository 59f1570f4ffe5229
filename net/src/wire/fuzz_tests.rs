//! The decoder's fuzz test on the stable toolchain: seeded, structured generators of valid message
//! streams cut into random chunks, and of corrupted ones (header fields made invalid, random byte
//! flips, random bytes, truncation at every position). Over a million inputs in all; each failure
//! names its seed and case so it can be replayed (`TETHYS_NET_FUZZ_SEED` overrides the seed).
//!
//! What must hold: the decoder never panics; a valid stream decodes to exactly the messages sent,
//! wherever it is cut; a corrupted one delivers exactly the messages before the damage and then the
//! error naming it (or, for damage the format cannot see, such as a flipped payload byte, the same
//! framing); nothing over the limit is ever delivered.

use super::{write_message, FrameDecoder, Limits, MessageKind, WireError, HEADER_BYTES};
use crate::pool::BufferPool;

const MAX_PAYLOAD_BYTES: u32 = 4096;
const LIMITS: Limits = Limits { max_payload_bytes: MAX_PAYLOAD_BYTES };

#[derive(Debug, Clone, PartialEq, Eq)]
struct SentMessage {
    kind: MessageKind,
    stream: u64,
    aux: u64,
    payload: Vec<u8>,
}

/// A message stream: its bytes and the offset where each message starts.
struct EncodedStream {
    messages: Vec<SentMessage>,
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

fn seed(test_seed: u64) -> u64 {
    std::env::var("TETHYS_NET_FUZZ_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or(test_seed)
}

/// Mostly small payloads, some past the writer's staging size, a few up to the limit.
fn random_payload_len(rng: &mut fastrand::Rng) -> usize {
    match rng.u8(0..100) {
        0..70 => rng.usize(0..32),
        70..95 => rng.usize(32..256),
        _ => rng.usize(256..=MAX_PAYLOAD_BYTES as usize),
    }
}

fn random_stream(rng: &mut fastrand::Rng, messages_max: usize) -> EncodedStream {
    random_stream_of(rng, messages_max, random_payload_len)
}

fn random_stream_of(rng: &mut fastrand::Rng, messages_max: usize, payload_len: fn(&mut fastrand::Rng) -> usize) -> EncodedStream {
    let count = rng.usize(0..=messages_max);
    let messages: Vec<SentMessage> = (0..count)
        .map(|_| SentMessage {
            kind: MessageKind::ALL[rng.usize(0..MessageKind::ALL.len())],
            stream: if rng.bool() { rng.u64(0..8) } else { rng.u64(..) },
            aux: rng.u64(..),
            payload: (0..payload_len(rng)).map(|_| rng.u8(..)).collect(),
        })
        .collect();
    let mut bytes = Vec::new();
    let mut starts = Vec::with_capacity(count);
    for message in &messages {
        starts.push(bytes.len());
        write_message(&mut bytes, message.kind, message.stream, message.aux, &message.payload, &LIMITS).expect("within the limit");
    }
    EncodedStream { messages, bytes, starts }
}

/// Decodes `bytes` fed in random chunks: the messages delivered, and the first error (of a chunk
/// or of `finish`).
fn decode_in_random_chunks(rng: &mut fastrand::Rng, pool: &BufferPool, bytes: &[u8]) -> (Vec<SentMessage>, Result<(), WireError>) {
    let mut decoder = FrameDecoder::new(LIMITS, pool.clone());
    let mut delivered = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let chunk_len = match rng.u8(0..4) {
            0 => 1,
            1 => rng.usize(1..=HEADER_BYTES),
            _ => rng.usize(1..=rest.len()),
        }
        .min(rest.len());
        let (mut chunk, tail) = rest.split_at(chunk_len);
        rest = tail;
        loop {
            match decoder.next_message(&mut chunk) {
                Ok(Some(message)) => {
                    assert!(message.payload.len() <= MAX_PAYLOAD_BYTES as usize, "a payload over the limit was delivered");
                    assert_eq!(message.payload.as_ptr() as usize % crate::pool::PAYLOAD_ALIGNMENT, 0);
                    delivered.push(SentMessage {
                        kind: message.kind,
                        stream: message.stream,
                        aux: message.aux,
                        payload: message.payload.to_vec(),
                    });
                }
                Ok(None) => {
                    assert!(chunk.is_empty(), "the decoder stopped before the end of its input");
                    break;
                }
                Err(error) => return (delivered, Err(error)),
            }
        }
    }
    let end = decoder.finish();
    if end.is_ok() {
        assert_eq!(decoder.offset(), bytes.len() as u64, "a clean end consumed every byte");
    }
    (delivered, end)
}

#[test]
fn valid_streams_cut_anywhere_decode_to_the_messages_sent() {
    let seed = seed(0x7e7e_0001);
    let mut rng = fastrand::Rng::with_seed(seed);
    let pool = BufferPool::default();
    for case in 0..400_000 {
        let stream = random_stream(&mut rng, 6);
        let (delivered, end) = decode_in_random_chunks(&mut rng, &pool, &stream.bytes);
        assert_eq!(end, Ok(()), "seed {seed} case {case}");
        assert_eq!(delivered, stream.messages, "seed {seed} case {case}");
    }
}

#[test]
fn invalid_header_fields_are_reported_after_the_messages_before_them() {
    let seed = seed(0x7e7e_0002);
    let mut rng = fastrand::Rng::with_seed(seed);
    let pool = BufferPool::default();
    // Counts only the inputs that were corrupted (an empty stream has nothing to corrupt).
    let mut case = 0;
    while case < 300_000 {
        let mut stream = random_stream(&mut rng, 5);
        if stream.messages.is_empty() {
            continue;
        }
        case += 1;
        let victim = rng.usize(0..stream.messages.len());
        let start = stream.starts[victim];
        let offset = start as u64;
        let expected = match rng.u8(0..4) {
            0 => {
                let found = loop {
                    let found = [rng.u8(..), rng.u8(..)];
                    if found != *b"TN" {
                        break found;
                    }
                };
                stream.bytes[start..start + 2].copy_from_slice(&found);
                WireError::BadMagic { offset, found }
            }
            1 => {
                let found = loop {
                    let found = rng.u8(..);
                    if found != super::PROTOCOL_VERSION {
                        break found;
                    }
                };
                stream.bytes[start + 2] = found;
                WireError::UnsupportedVersion { offset: offset + 2, found }
            }
            2 => {
                let found = loop {
                    let found = rng.u8(..);
                    if MessageKind::from_code(found).is_none() {
                        break found;
                    }
                };
                stream.bytes[start + 3] = found;
                WireError::UnknownKind { offset: offset + 3, found }
            }
            _ => {
                let payload_bytes = rng.u32(MAX_PAYLOAD_BYTES + 1..);
                stream.bytes[start + 4..start + 8].copy_from_slice(&payload_bytes.to_le_bytes());
                WireError::PayloadTooLarge { offset: offset + 4, payload_bytes, max_payload_bytes: MAX_PAYLOAD_BYTES }
            }
        };
        let (delivered, end) = decode_in_random_chunks(&mut rng, &pool, &stream.bytes);
        assert_eq!(end, Err(expected), "seed {seed} case {case}");
        assert_eq!(delivered, stream.messages[..victim], "seed {seed} case {case}");
    }
}

#[test]
fn flipped_bytes_never_panic_and_spare_the_messages_before_them() {
    let seed = seed(0x7e7e_0003);
    let mut rng = fastrand::Rng::with_seed(seed);
    let pool = BufferPool::default();
    // Counts only the inputs that were corrupted (an empty stream has nothing to corrupt).
    let mut case = 0;
    while case < 200_000 {
        let mut stream = random_stream(&mut rng, 5);
        if stream.bytes.is_empty() {
            continue;
        }
        case += 1;
        let flips: Vec<usize> = (0..rng.usize(1..=4)).map(|_| rng.usize(0..stream.bytes.len())).collect();
        for &position in &flips {
            stream.bytes[position] ^= rng.u8(1..);
        }
        let first_flip = flips.iter().copied().min().unwrap_or(0);
        let (delivered, end) = decode_in_random_chunks(&mut rng, &pool, &stream.bytes);
        let intact = stream
            .starts
            .iter()
            .zip(&stream.messages)
            .take_while(|(start, message)| **start + HEADER_BYTES + message.payload.len() <= first_flip);
        for (index, (_, message)) in intact.enumerate() {
            assert_eq!(delivered.get(index), Some(message), "seed {seed} case {case}: message {index} lies before every flip");
        }
        let framing_touched = flips.iter().any(|&position| stream.starts.iter().any(|&start| (start..start + 8).contains(&position)));
        if !framing_touched {
            // A flip in a stream, aux or payload byte is invisible to the format (TCP's checksum is
            // the guard there), but the framing holds: same messages, same kinds and lengths.
            assert_eq!(end, Ok(()), "seed {seed} case {case}");
            let shape = |messages: &[SentMessage]| messages.iter().map(|m| (m.kind, m.payload.len())).collect::<Vec<_>>();
            assert_eq!(shape(&delivered), shape(&stream.messages), "seed {seed} case {case}");
        } else {
            assert!(delivered.len() <= stream.messages.len() + stream.bytes.len() / HEADER_BYTES, "seed {seed} case {case}");
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let seed = seed(0x7e7e_0004);
    let mut rng = fastrand::Rng::with_seed(seed);
    let pool = BufferPool::default();
    for case in 0..100_000 {
        let mut bytes: Vec<u8> = (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect();
        // Half start like a header, so the generator reaches past the magic and version checks.
        if rng.bool() && bytes.len() >= 8 {
            bytes[..3].copy_from_slice(&[b'T', b'N', super::PROTOCOL_VERSION]);
            bytes[3] = rng.u8(0..8);
            bytes[4..8].copy_from_slice(&rng.u32(0..64).to_le_bytes());
        }
        let (delivered, end) = decode_in_random_chunks(&mut rng, &pool, &bytes);
        let delivered_bytes: usize = delivered.iter().map(|message| HEADER_BYTES + message.payload.len()).sum();
        assert!(delivered_bytes <= bytes.len(), "seed {seed} case {case}: more delivered than received");
        if end.is_ok() {
            assert_eq!(delivered_bytes, bytes.len(), "seed {seed} case {case}: a clean end is a whole number of messages");
        }
    }
}

#[test]
fn truncation_at_every_position_is_reported() {
    let seed = seed(0x7e7e_0005);
    let mut rng = fastrand::Rng::with_seed(seed);
    let pool = BufferPool::default();
    let mut inputs = 0usize;
    while inputs < 150_000 {
        // Small streams, so the cuts cover many of them.
        let stream = random_stream_of(&mut rng, 4, |rng| rng.usize(0..48));
        for cut in 0..=stream.bytes.len() {
            inputs += 1;
            let (delivered, end) = decode_in_random_chunks(&mut rng, &pool, &stream.bytes[..cut]);
            let whole = stream
                .starts
                .iter()
                .zip(&stream.messages)
                .filter(|(start, message)| *start + HEADER_BYTES + message.payload.len() <= cut)
                .count();
            assert_eq!(delivered, stream.messages[..whole], "seed {seed} cut {cut}");
            let expected = match stream.starts.get(whole) {
                None => Ok(()),
                Some(&start) if cut == start => Ok(()),
                Some(&start) if cut - start < HEADER_BYTES => {
                    Err(WireError::TruncatedHeader { offset: start as u64, received_bytes: cut - start })
                }
                Some(&start) => Err(WireError::TruncatedPayload {
                    offset: start as u64,
                    received_bytes: (cut - start - HEADER_BYTES) as u64,
                    payload_bytes: stream.messages[whole].payload.len() as u32,
                }),
            };
            assert_eq!(end, expected, "seed {seed} cut {cut}");
        }
    }
}
