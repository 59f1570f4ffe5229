//! [`Payload`]: the bytes of a message being sent, in whichever form the caller holds them, so
//! sending never copies a payload just to change its type (an rkyv `AlignedVec` goes as it is, a
//! frame of records as its own memory behind a short header).

use std::fmt;

use rkyv::util::AlignedVec;

use crate::pool::PooledBuf;

/// The payload of a message to send; it is kept until written, then dropped on the writer's task.
pub enum Payload {
    /// No payload.
    Empty,
    /// An owned byte vector.
    Bytes(Vec<u8>),
    /// An aligned vector, as rkyv encodes into.
    Aligned(AlignedVec),
    /// A received payload, forwarded.
    Pooled(PooledBuf),
    /// Bytes that live for the whole program.
    Static(&'static [u8]),
    /// A 16-byte prefix (e.g. a frame's header, so what follows stays 16-byte aligned in the
    /// receiver's buffer) and a body held by its owner's type, written from where it is.
    Prefixed {
        /// The first bytes.
        prefix: [u8; PAYLOAD_PREFIX_BYTES],
        /// The rest.
        body: Box<dyn PayloadBody>,
    },
}

/// Bytes of [`Payload::Prefixed`].
pub const PAYLOAD_PREFIX_BYTES: usize = 16;

/// The body of a [`Payload::Prefixed`]: bytes kept by whatever holds them until written.
pub trait PayloadBody: Send + 'static {
    /// The bytes.
    fn bytes(&self) -> &[u8];
}

impl Payload {
    /// The bytes, in two parts to write one after the other: the prefix of a `Prefixed`
    /// payload (empty for the others) and the rest.
    pub fn parts(&self) -> [&[u8]; 2] {
        match self {
            Payload::Empty => [&[], &[]],
            Payload::Bytes(bytes) => [&[], bytes],
            Payload::Aligned(bytes) => [&[], bytes],
            Payload::Pooled(bytes) => [&[], bytes],
            Payload::Static(bytes) => [&[], bytes],
            Payload::Prefixed { prefix, body } => [prefix, body.bytes()],
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        let [prefix, rest] = self.parts();
        prefix.len() + rest.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Payload({} bytes)", self.len())
    }
}

impl From<()> for Payload {
    fn from((): ()) -> Payload {
        Payload::Empty
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Payload {
        Payload::Bytes(bytes)
    }
}

impl From<AlignedVec> for Payload {
    fn from(bytes: AlignedVec) -> Payload {
        Payload::Aligned(bytes)
    }
}

impl From<PooledBuf> for Payload {
    fn from(bytes: PooledBuf) -> Payload {
        Payload::Pooled(bytes)
    }
}

impl From<&'static [u8]> for Payload {
    fn from(bytes: &'static [u8]) -> Payload {
        Payload::Static(bytes)
    }
}

impl<const N: usize> From<&'static [u8; N]> for Payload {
    fn from(bytes: &'static [u8; N]) -> Payload {
        Payload::Static(bytes)
    }
}

impl From<String> for Payload {
    fn from(text: String) -> Payload {
        Payload::Bytes(text.into_bytes())
    }
}
