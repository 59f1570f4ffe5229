//! The transport interface of channels: where a channel's events and a gate's credits go.
//!
//! A channel's two ends are tasks. When both run in this process the other end is the consumer's
//! (or producer's) actor, and a frame moves to it by ownership, never copied or encoded
//! ([`Endpoint::Local`]). When the other end runs in another process it is reached through a
//! [`RemoteLink`] to that process ([`Endpoint::Remote`]): a frame is encoded once, on the
//! producer's slot, into an aligned buffer the link provides (or, for plain records, written from
//! its own memory behind a header: [`OutgoingFrame`]), and the receiving process validates
//! it once and hands it to the consumer task, which reads its records out of the buffer
//! ([`ReceivedFrame`]). Both ends keep the same credit protocol (`channel::credit`), so what a
//! sender may have queued towards a remote consumer is bounded by the credits that consumer gave,
//! exactly as in one process, and the link itself never needs to block or buffer beyond that.
//!
//! The engine defines this interface and knows nothing of sockets; the `tethys-net` crate
//! implements [`RemoteLink`] over its connections and delivers what arrives to the tasks.

use std::sync::Arc;

use ractor::ActorRef;
use rkyv::util::AlignedVec;

use super::credit::ChannelEvent;
use crate::base::codec::ARCHIVE_ALIGNMENT;
use crate::runtime::task::{SubtaskId, TaskMessage};

/// A buffer a frame is encoded into for another process: aligned for reading in place.
pub type FrameBuffer = AlignedVec<ARCHIVE_ALIGNMENT>;

/// Bytes of a frame held by whoever holds them: received from another process, aligned, as the
/// transport keeps them (e.g. a pooled buffer that goes back to its pool when dropped), or the
/// records of a frame being sent, written from the frame's own memory.
pub trait FrameBytes: Send + 'static {
    /// The bytes; a received frame's start at an address aligned to [`ARCHIVE_ALIGNMENT`].
    fn bytes(&self) -> &[u8];
}

/// A frame on its way to another process.
pub enum OutgoingFrame {
    /// Encoded (rkyv) into a buffer the link gave.
    Encoded(FrameBuffer),
    /// A frame of plain records (`frame::plain`): its header, then the records' own memory, which
    /// the link writes from where it is. On the wire the two are one payload, as
    /// `AnyFrame::encode` writes it.
    Plain {
        /// The frame's header.
        header: [u8; crate::frame::plain::PLAIN_HEADER_BYTES],
        /// The records.
        records: Box<dyn FrameBytes>,
    },
}

impl OutgoingFrame {
    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        match self {
            OutgoingFrame::Encoded(buffer) => buffer.len(),
            OutgoingFrame::Plain { header, records } => header.len() + records.bytes().len(),
        }
    }

    /// Whether it has no bytes (never, for a frame).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload in one buffer, as the receiver gets it.
    pub fn into_contiguous(self) -> FrameBuffer {
        match self {
            OutgoingFrame::Encoded(buffer) => buffer,
            OutgoingFrame::Plain { header, records } => {
                let mut buffer = FrameBuffer::with_capacity(header.len() + records.bytes().len());
                buffer.extend_from_slice(&header);
                buffer.extend_from_slice(records.bytes());
                buffer
            }
        }
    }
}

impl std::fmt::Debug for OutgoingFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutgoingFrame::Encoded(buffer) => write!(f, "OutgoingFrame::Encoded({} bytes)", buffer.len()),
            OutgoingFrame::Plain { records, .. } => write!(f, "OutgoingFrame::Plain({} bytes of records)", records.bytes().len()),
        }
    }
}

impl FrameBytes for FrameBuffer {
    fn bytes(&self) -> &[u8] {
        self.as_slice()
    }
}

/// A frame received from another process, not yet decoded.
pub struct ReceivedFrame(pub Box<dyn FrameBytes>);

impl std::fmt::Debug for ReceivedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReceivedFrame({} bytes)", self.0.bytes().len())
    }
}

/// An event other than a frame, as it crosses processes (see [`WireEvent::encode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireEvent {
    /// `ChannelEvent::Watermark`.
    Watermark(i64),
    /// `ChannelEvent::Idleness`.
    Idleness(bool),
    /// `ChannelEvent::EndOfInput`.
    EndOfInput,
    /// `ChannelEvent::Barrier`.
    Barrier {
        /// The checkpoint.
        id: u64,
        /// Whether it is taken unaligned.
        unaligned: bool,
    },
}

/// Bytes of an encoded [`WireEvent`]: a tag, seven zero bytes and eight bytes of value. A multiple
/// of 8, so the messages after an event in a connection's byte stream stay as aligned as before it
/// (the 24-byte message header and frames of 8-byte records keep frames read where they lie in a
/// shared-memory ring aligned for their records).
pub const WIRE_EVENT_BYTES: usize = 16;

/// An event's bytes that are not an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed channel event ({len} bytes, tag {tag:?}): expected {WIRE_EVENT_BYTES} bytes with a tag of 1 to 6 and zero padding")]
pub struct MalformedEvent {
    /// The length received.
    pub len: usize,
    /// The tag byte, if there was one.
    pub tag: Option<u8>,
}

impl WireEvent {
    /// The event of a channel event that is not a frame; `None` for a frame.
    pub(crate) fn of(event: &ChannelEvent) -> Option<WireEvent> {
        match *event {
            ChannelEvent::Frame(_) => None,
            ChannelEvent::Watermark(watermark) => Some(WireEvent::Watermark(watermark)),
            ChannelEvent::Idleness(idle) => Some(WireEvent::Idleness(idle)),
            ChannelEvent::EndOfInput => Some(WireEvent::EndOfInput),
            ChannelEvent::Barrier { id, unaligned } => Some(WireEvent::Barrier { id, unaligned }),
        }
    }

    /// The channel event it stands for.
    pub(crate) fn into_channel_event(self) -> ChannelEvent {
        match self {
            WireEvent::Watermark(watermark) => ChannelEvent::Watermark(watermark),
            WireEvent::Idleness(idle) => ChannelEvent::Idleness(idle),
            WireEvent::EndOfInput => ChannelEvent::EndOfInput,
            WireEvent::Barrier { id, unaligned } => ChannelEvent::Barrier { id, unaligned },
        }
    }

    /// Its encoding: a tag byte (1 watermark, 2 idle, 3 active, 4 end of input, 5 aligned
    /// barrier, 6 unaligned barrier), seven zero bytes and a little-endian 64-bit value (the
    /// watermark, the checkpoint id, or zero).
    pub fn encode(self) -> [u8; WIRE_EVENT_BYTES] {
        let (tag, value): (u8, u64) = match self {
            WireEvent::Watermark(watermark) => (1, watermark as u64),
            WireEvent::Idleness(true) => (2, 0),
            WireEvent::Idleness(false) => (3, 0),
            WireEvent::EndOfInput => (4, 0),
            WireEvent::Barrier { id, unaligned: false } => (5, id),
            WireEvent::Barrier { id, unaligned: true } => (6, id),
        };
        let mut bytes = [0u8; WIRE_EVENT_BYTES];
        bytes[0] = tag;
        bytes[8..].copy_from_slice(&value.to_le_bytes());
        bytes
    }

    /// The event `encode` wrote, or why `bytes` are not one.
    pub fn decode(bytes: &[u8]) -> Result<WireEvent, MalformedEvent> {
        let malformed = MalformedEvent { len: bytes.len(), tag: bytes.first().copied() };
        if bytes.len() != WIRE_EVENT_BYTES || bytes[1..8].iter().any(|&padding| padding != 0) {
            return Err(malformed);
        }
        let value = u64::from_le_bytes(bytes[8..].try_into().expect("eight bytes"));
        Ok(match bytes[0] {
            1 => WireEvent::Watermark(value as i64),
            2 => WireEvent::Idleness(true),
            3 => WireEvent::Idleness(false),
            4 => WireEvent::EndOfInput,
            5 => WireEvent::Barrier { id: value, unaligned: false },
            6 => WireEvent::Barrier { id: value, unaligned: true },
            _ => return Err(malformed),
        })
    }
}

/// A link to another process of the job failed: it is closed or its peer is gone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the connection to {peer} is down: {reason}")]
pub struct LinkDown {
    /// The process the link reached.
    pub peer: String,
    /// Why, as the transport says it.
    pub reason: String,
}

/// A connection to another process running part of the job, as channels use it. Every method is
/// called from the sending task's slot thread and never blocks: credits bound what a channel
/// may have queued, so the link can queue without limit of its own.
pub trait RemoteLink: Send + Sync + 'static {
    /// The process the link reaches, for messages (e.g. "worker 2 at 127.0.0.1:4012").
    fn peer(&self) -> String;

    /// An empty buffer to encode a frame into (pooled by the link, so its allocation is reused).
    fn frame_buffer(&self) -> FrameBuffer;

    /// Sends a frame to gate channel `channel` of subtask `to` in the peer, with the sender's
    /// backlog after it.
    fn send_frame(&self, to: SubtaskId, channel: usize, backlog: u32, frame: OutgoingFrame) -> Result<(), LinkDown>;

    /// Sends an event to gate channel `channel` of subtask `to` in the peer.
    fn send_event(&self, to: SubtaskId, channel: usize, backlog: u32, event: WireEvent) -> Result<(), LinkDown>;

    /// Gives `credits` to channel `channel` of output `output` of subtask `to` in the peer.
    fn send_credit(&self, to: SubtaskId, output: usize, channel: usize, credits: u32) -> Result<(), LinkDown>;
}

/// The other end of a channel (see the module documentation).
#[derive(Clone)]
pub(crate) enum Endpoint {
    /// A task actor in this process.
    Local(ActorRef<TaskMessage>),
    /// Subtask `task` in the process `link` reaches.
    Remote { link: Arc<dyn RemoteLink>, task: SubtaskId },
}

/// Why an event could not go to a remote consumer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendFailed {
    /// The frame does not encode.
    #[error("a frame does not encode: {0}")]
    Encode(#[from] crate::base::CodecError),
    /// The link is down.
    #[error(transparent)]
    Link(#[from] LinkDown),
}

impl Endpoint {
    /// Where it is, for messages: a task of this process, or a subtask in another one.
    pub(crate) fn describe(&self) -> String {
        match self {
            Endpoint::Local(_) => "a task of this process".to_string(),
            Endpoint::Remote { link, task } => format!("task {} subtask {} in {}", task.0, task.1, link.peer()),
        }
    }

    /// Sends `event` to gate channel `channel` of the endpoint's task, with the sender's backlog;
    /// returns the bytes a frame was encoded into (0 for a local consumer). A local consumer
    /// that stopped is not an error: the job is failing or cancelled already, and the consumer
    /// reports it itself. A remote one that cannot be reached is.
    #[inline]
    pub(crate) fn send_event(&self, channel: usize, event: ChannelEvent, backlog: u32) -> Result<u64, SendFailed> {
        match self {
            Endpoint::Local(actor) => {
                let _ = actor.send_message(TaskMessage::Event { channel, event, backlog });
                Ok(0)
            }
            Endpoint::Remote { link, task } => match event {
                ChannelEvent::Frame(frame) => {
                    let outgoing = frame.into_outgoing(|| link.frame_buffer())?;
                    let bytes = outgoing.len() as u64;
                    link.send_frame(*task, channel, backlog, outgoing)?;
                    Ok(bytes)
                }
                other => {
                    let wire = WireEvent::of(&other).expect("frames are handled above");
                    link.send_event(*task, channel, backlog, wire)?;
                    Ok(0)
                }
            },
        }
    }

    /// Gives `credits` to channel `channel` of output `output` of the endpoint's task (a
    /// producer). A stopped local producer is not an error (see `send_event`).
    pub(crate) fn send_credit(&self, output: usize, channel: usize, credits: u32) -> Result<(), SendFailed> {
        match self {
            Endpoint::Local(actor) => {
                let _ = actor.send_message(TaskMessage::Credit { output, channel, credits });
                Ok(())
            }
            Endpoint::Remote { link, task } => Ok(link.send_credit(*task, output, channel, credits)?),
        }
    }
}

/// A link to this very process that encodes everything as a remote link does: what
/// `EngineConfig::encode_channels` wires every channel through.
pub(crate) struct LoopbackLink {
    /// Every task's actor, by task and subtask; set once all are spawned, before any sends.
    actors: std::sync::OnceLock<Vec<Vec<ActorRef<TaskMessage>>>>,
}

impl LoopbackLink {
    pub(crate) fn new() -> Arc<LoopbackLink> {
        Arc::new(LoopbackLink { actors: std::sync::OnceLock::new() })
    }

    /// Sets the actors the link delivers to.
    pub(crate) fn connect(&self, actors: Vec<Vec<ActorRef<TaskMessage>>>) {
        assert!(self.actors.set(actors).is_ok(), "a loopback link is connected once");
    }

    fn actor(&self, task: SubtaskId) -> &ActorRef<TaskMessage> {
        &self.actors.get().expect("connected before the tasks start")[task.0][task.1]
    }
}

impl RemoteLink for LoopbackLink {
    fn peer(&self) -> String {
        "this process (encoded channels)".to_string()
    }

    fn frame_buffer(&self) -> FrameBuffer {
        FrameBuffer::new()
    }

    fn send_frame(&self, to: SubtaskId, channel: usize, backlog: u32, frame: OutgoingFrame) -> Result<(), LinkDown> {
        let frame = ReceivedFrame(Box::new(frame.into_contiguous()));
        let _ = self.actor(to).send_message(TaskMessage::RemoteFrame { channel, frame, backlog });
        Ok(())
    }

    fn send_event(&self, to: SubtaskId, channel: usize, backlog: u32, event: WireEvent) -> Result<(), LinkDown> {
        let event = WireEvent::decode(&event.encode()).expect("an event decodes what it encoded").into_channel_event();
        let _ = self.actor(to).send_message(TaskMessage::Event { channel, event, backlog });
        Ok(())
    }

    fn send_credit(&self, to: SubtaskId, output: usize, channel: usize, credits: u32) -> Result<(), LinkDown> {
        let _ = self.actor(to).send_message(TaskMessage::Credit { output, channel, credits });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_encodes_and_decodes_to_itself() {
        let events = [
            WireEvent::Watermark(i64::MIN),
            WireEvent::Watermark(-1),
            WireEvent::Watermark(i64::MAX),
            WireEvent::Idleness(true),
            WireEvent::Idleness(false),
            WireEvent::EndOfInput,
            WireEvent::Barrier { id: 7, unaligned: false },
            WireEvent::Barrier { id: u64::MAX, unaligned: true },
        ];
        for event in events {
            assert_eq!(WireEvent::decode(&event.encode()), Ok(event));
            assert_eq!(WireEvent::of(&event.into_channel_event()), Some(event));
        }
    }

    #[test]
    fn bytes_that_are_no_event_are_refused() {
        assert_eq!(WireEvent::decode(&[]), Err(MalformedEvent { len: 0, tag: None }));
        assert_eq!(WireEvent::decode(&[1, 2]), Err(MalformedEvent { len: 2, tag: Some(1) }));
        for tag in [0u8, 7, 255] {
            let mut bytes = [0u8; WIRE_EVENT_BYTES];
            bytes[0] = tag;
            assert!(WireEvent::decode(&bytes).is_err(), "tag {tag}");
        }
        let mut padded = WireEvent::EndOfInput.encode();
        padded[3] = 1;
        assert_eq!(WireEvent::decode(&padded), Err(MalformedEvent { len: WIRE_EVENT_BYTES, tag: Some(4) }), "padding must be zero");
    }
}
