//! Tethys net: the data plane between the worker processes of a cluster.
//!
//! - **One connection per pair of processes** ([`Mesh`]): every channel between two processes is a
//!   stream of that one TCP connection, named by a 64-bit stream id in each message header. The
//!   lower node id dials, the higher accepts, so a pair never ends up with two.
//! - **Payload-agnostic** ([`wire`]): a message is a kind ([`MessageKind`]: data, event, credit,
//!   control, close), a stream id, an aux word and opaque bytes; the engine encodes frames and
//!   events itself (rkyv), and this crate never looks inside.
//! - **Aligned, pooled payloads** ([`BufferPool`]): received payloads land in 16-byte-aligned
//!   buffers, so the engine validates rkyv archives in place; dropping one returns it to the pool.
//! - **Authenticated** ([`auth`]): before any message, both sides prove they hold the
//!   [`ClusterSecret`] (HMAC-SHA256 over fresh nonces); a stranger's bytes are never delivered.
//! - **The reader never blocks**: flow control is per channel, by credits at the engine level (a
//!   sender sends a frame only with a credit the receiver granted, so the receiver has room), so
//!   the [`Inbound`] handler only enqueues, and a slow channel never holds up the others on its
//!   connection. For the same reason `send` never blocks and works from any thread: the engine's
//!   credits bound what is queued.
//! - **Malformed input is an error, never a panic**: a bad header, an oversized length (refused
//!   before allocation) or a truncated message closes the connection with a [`WireError`] naming
//!   the byte offset.
//!
//! - **Shared memory on one host** (`shm`): two processes of one host that connect without TLS
//!   move their bytes through rings in a mapped file; the TCP connection then carries only
//!   doorbells, and everything above the byte stream is the same.
//!
//! TLS ([`tls`]) wraps the TCP stream when a cluster has certificates.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod auth;
pub mod cluster;
pub mod conn;
pub mod error;
pub mod launcher;
pub mod mesh;
pub mod node;
pub mod pool;
mod shm;
pub mod tls;
pub mod wire;

pub use auth::{authenticate_acceptor, authenticate_dialer, AuthFailure, ClusterSecret, Refusal, SecretError};
pub use conn::{
    CloseReason, Connection, ConnectionOptions, ConnectionStats, Inbound, Listener, Payload, PayloadBody, SendError, SendRefusal,
    PAYLOAD_PREFIX_BYTES,
};
pub use error::NetError;
pub use mesh::{Mesh, MeshOptions};
pub use node::NodeId;
pub use pool::{BufferPool, PooledBuf, PAYLOAD_ALIGNMENT};
pub use shm::OFFER_TCP_ONLY;
pub use wire::{
    encode_header, write_message, Decoded, FrameDecoder, Header, Limits, Message, MessageKind, PayloadTooLarge, WireError, HEADER_BYTES,
};
