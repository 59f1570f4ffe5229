//! [`NetError`]: why a connection could not be made, or why it ended. Each names the address (and
//! the node, once the handshake told it) so an operator knows which link failed and how.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

use crate::auth::{AuthFailure, Refusal};
use crate::node::NodeId;
use crate::wire::WireError;

/// An error of the net crate.
#[derive(Debug, Error)]
pub enum NetError {
    /// An option is out of range (checked when a connection or mesh starts).
    #[error("invalid net options: {field} {problem}")]
    Options {
        /// The option.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// Accepting an incoming connection failed.
    #[error("cannot accept a connection on {addr}: {source}")]
    Accept {
        /// The listening address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The TCP connection could not be established (refused, unreachable, timed out).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address dialed.
        addr: SocketAddr,
        /// The OS error (`TimedOut` after the connect timeout).
        source: io::Error,
    },
    /// The handshake did not complete in time.
    #[error("handshake with {addr} timed out after {timeout:?}")]
    HandshakeTimeout {
        /// The peer's address.
        addr: SocketAddr,
        /// The handshake timeout.
        timeout: Duration,
    },
    /// Reading or writing failed during the handshake.
    #[error("I/O error during the handshake with {addr}: {source}")]
    HandshakeIo {
        /// The peer's address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The peer did not prove it holds the cluster secret (or does not speak this protocol).
    #[error("authentication of {addr} failed: {failure}")]
    Authentication {
        /// The peer's address.
        addr: SocketAddr,
        /// What failed.
        failure: AuthFailure,
    },
    /// The peer authenticated, but as another node than the one dialed.
    #[error("{addr} is {found}, not the {expected} it was dialed as")]
    UnexpectedPeer {
        /// The address dialed.
        addr: SocketAddr,
        /// The node expected there.
        expected: NodeId,
        /// The node that answered.
        found: NodeId,
    },
    /// The acceptor authenticated us and refused the connection.
    #[error("{peer} at {addr} refused the connection: {refusal}")]
    RefusedByPeer {
        /// The acceptor's address.
        addr: SocketAddr,
        /// The acceptor.
        peer: NodeId,
        /// Why.
        refusal: Refusal,
    },
    /// We authenticated the dialer and refused its connection.
    #[error("refused the connection of {peer} from {addr}: {refusal}")]
    NotAdmitted {
        /// The dialer's address.
        addr: SocketAddr,
        /// The dialer.
        peer: NodeId,
        /// Why.
        refusal: Refusal,
    },
    /// The peer sent bytes that are not a valid message stream; the connection was closed.
    #[error("malformed stream from {peer} at {addr}: {source}")]
    Wire {
        /// The peer.
        peer: NodeId,
        /// The peer's address.
        addr: SocketAddr,
        /// What was wrong, and where.
        source: WireError,
    },
    /// The transport offer after the handshake (shared memory or TCP) was not understood.
    #[error("transport offer with {addr} failed: {problem}")]
    SharedMemory {
        /// The peer's address.
        addr: SocketAddr,
        /// What was wrong.
        problem: String,
    },
    /// The TLS handshake with a peer failed (no TLS there, or a certificate the CA did not sign).
    #[error("TLS with {addr} failed: {source}")]
    Tls {
        /// The peer's address.
        addr: SocketAddr,
        /// What rustls reported.
        source: io::Error,
    },
    /// The process's network runtime could not start.
    #[error("cannot start the network runtime: {source}")]
    Runtime {
        /// The OS error.
        source: io::Error,
    },
    /// Reading from or writing to an established connection failed.
    #[error("I/O error {operation} {peer} at {addr}: {source}")]
    Io {
        /// The peer.
        peer: NodeId,
        /// The peer's address.
        addr: SocketAddr,
        /// `"reading from"` or `"writing to"`.
        operation: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The peer closed the connection at a message boundary without a `Close` message (it exited
    /// or dropped the connection).
    #[error("{peer} at {addr} closed the connection without a Close message")]
    PeerHungUp {
        /// The peer.
        peer: NodeId,
        /// The peer's address.
        addr: SocketAddr,
    },
    /// The connection's tasks were dropped before it closed: their runtime shut down.
    #[error("the connection with {peer} at {addr} stopped with its runtime")]
    RuntimeStopped {
        /// The peer.
        peer: NodeId,
        /// The peer's address.
        addr: SocketAddr,
    },
    /// Dialing a peer of the mesh failed in a way retrying cannot mend (or until the deadline).
    #[error("{me} cannot connect to {peer}: {source}")]
    MeshDial {
        /// This process.
        me: NodeId,
        /// The peer.
        peer: NodeId,
        /// The last attempt's error.
        source: Box<NetError>,
    },
    /// The mesh was not complete when its deadline passed.
    #[error("{me} has no connection to {missing:?} after {waited:?}")]
    MeshIncomplete {
        /// This process.
        me: NodeId,
        /// The peers without a connection.
        missing: Vec<NodeId>,
        /// How long the mesh waited.
        waited: Duration,
    },
}
