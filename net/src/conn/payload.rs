//! [`Payload`]: the bytes of a message being sent, in whichever form the caller holds them, so
//! sending never copies a payload just to change its type (an rkyv `AlignedVec` goes as it is).

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
}

impl Payload {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Empty => &[],
            Payload::Bytes(bytes) => bytes,
            Payload::Aligned(bytes) => bytes,
            Payload::Pooled(bytes) => bytes,
            Payload::Static(bytes) => bytes,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
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
