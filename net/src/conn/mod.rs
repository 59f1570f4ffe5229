//! [`Connection`]: one authenticated connection with a peer process, carrying every stream between
//! the two.
//!
//! Each connection runs two tasks on the runtime that made it. The reader decodes what arrives and
//! hands each message to the caller's [`Inbound`] handler, which only enqueues: the reader never
//! waits for a consumer, because the engine's per-channel credits guarantee room, so one slow
//! channel never stalls the others on the same connection. The writer drains a queue that
//! [`Connection::send`] fills from any thread (runtime thread or not, without blocking) and writes
//! what is queued in few vectored writes. A connection ends exactly once, for the first of: a local
//! `close`, the peer's `Close`, an I/O error, a malformed stream; the reader then calls
//! [`Inbound::on_closed`] once with that reason, after the last message it delivered. The tasks are
//! generic over the byte stream, so TLS can wrap the TCP stream later.

mod listener;
mod payload;
mod reader;
mod writer;

pub use listener::Listener;
pub use payload::{Payload, PayloadBody, PAYLOAD_PREFIX_BYTES};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncBufRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use crate::auth::{authenticate_dialer, ClusterSecret};
use crate::error::NetError;
use crate::node::NodeId;
use crate::pool::BufferPool;
use crate::tls::NetStream;
use crate::wire::{check_payload_bytes, encode_header, FrameDecoder, Header, Limits, Message, MessageKind, PayloadTooLarge, HEADER_BYTES};

/// What a connection delivers to: the engine's side of the connection. Both calls run on the
/// connection's reader task and must not block (enqueue and return).
pub trait Inbound: Send + Sync + 'static {
    /// A message from `peer`, in the order the peer sent it (`Close` is never delivered: it ends the
    /// connection and arrives as `on_closed`).
    fn on_message(&self, peer: NodeId, message: Message);

    /// A data message whose payload lies whole in the receive buffer, offered before it is
    /// copied out: `true` when the handler took it from there (then `on_message` never sees it),
    /// `false` to have it delivered as a [`Message`]. In order with `on_message`'s deliveries.
    fn on_data_in_place(&self, peer: NodeId, stream: u64, aux: u64, payload: &[u8]) -> bool {
        let _ = (peer, stream, aux, payload);
        false
    }

    /// The connection with `peer` ended; called exactly once, after the last `on_message`.
    fn on_closed(&self, peer: NodeId, reason: CloseReason);
}

/// Why a connection ended.
#[derive(Debug)]
pub enum CloseReason {
    /// This process closed it ([`Connection::close`], or every handle was dropped).
    ClosedLocally {
        /// The reason given.
        reason: String,
    },
    /// The peer said goodbye with a `Close` message.
    ClosedByPeer {
        /// The peer's reason.
        reason: String,
    },
    /// It failed.
    Failed(NetError),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::ClosedLocally { reason } => write!(f, "closed here: {reason}"),
            CloseReason::ClosedByPeer { reason } => write!(f, "closed by the peer: {reason}"),
            CloseReason::Failed(error) => write!(f, "{error}"),
        }
    }
}

impl CloseReason {
    /// The error, if the connection failed.
    pub fn error(&self) -> Option<&NetError> {
        match self {
            CloseReason::Failed(error) => Some(error),
            CloseReason::ClosedLocally { .. } | CloseReason::ClosedByPeer { .. } => None,
        }
    }
}

/// The sizes and times of a connection, each with its default.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// What a received message may be.
    pub limits: Limits,
    /// Where received payloads are allocated; share one pool between connections.
    pub pool: BufferPool,
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
    /// How long the handshake may take.
    pub handshake_timeout: Duration,
    /// After a local close, how long the writer may take to write what is queued and the `Close`,
    /// and the reader to see the peer's end.
    pub close_linger: Duration,
    /// The reader's buffer: bytes read in one call.
    pub read_chunk_bytes: usize,
    /// The writer writes at most this many bytes in one batch (one vectored write when it fits).
    pub write_batch_bytes_max: usize,
    /// `send` refuses a message that would queue more bytes than this: a safety net, as the engine
    /// bounds what it queues by credits.
    pub queued_bytes_max: u64,
    /// Mutual TLS on every connection (see [`crate::tls`]); `None` (the default): plain TCP.
    pub tls: Option<crate::tls::TlsConfig>,
    /// Bytes of each direction's ring when a connection between two processes of one host moves
    /// its bytes through shared memory (see `shm`); 0: always TCP. A dialer offers shared memory
    /// when this is not 0 and there is no TLS; an acceptor takes the offer when this is not 0.
    pub shared_memory_ring_bytes: usize,
    /// Over shared memory: the longest the reader keeps watching its empty ring before it sleeps
    /// (and must be woken through the socket). It watches only when bytes have lately come back
    /// sooner than that (twice the typical gap, within this), so a busy channel needs no wake-up
    /// per frame (on two cores of a virtual machine that is most of the gain, RESULTS.md) and a
    /// quiet connection costs nothing; 0: never watch.
    pub shared_memory_poll: Duration,
}

impl ConnectionOptions {
    /// Default of `connect_timeout`.
    pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
    /// Default of `handshake_timeout`.
    pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
    /// Default of `close_linger`.
    pub const CLOSE_LINGER_DEFAULT: Duration = Duration::from_secs(2);
    /// Default of `read_chunk_bytes`.
    pub const READ_CHUNK_BYTES_DEFAULT: usize = 1 << 20;
    /// Default of `write_batch_bytes_max`.
    pub const WRITE_BATCH_BYTES_MAX_DEFAULT: usize = 1 << 20;
    /// Default of `queued_bytes_max`.
    pub const QUEUED_BYTES_MAX_DEFAULT: u64 = 1 << 30;
    /// Default of `shared_memory_ring_bytes`: about 26 frames of 1,024 bids (80 bytes each),
    /// most of a remote channel's 32 credits; what does not fit waits in the connection's queue.
    pub const SHARED_MEMORY_RING_BYTES_DEFAULT: usize = 2 << 20;
    /// Default of `shared_memory_poll`.
    pub const SHARED_MEMORY_POLL_DEFAULT: Duration = Duration::from_micros(100);

    /// Checks every option.
    pub fn validate(&self) -> Result<(), NetError> {
        let positive = [
            ("connect_timeout", self.connect_timeout.is_zero()),
            ("handshake_timeout", self.handshake_timeout.is_zero()),
            ("close_linger", self.close_linger.is_zero()),
            ("read_chunk_bytes", self.read_chunk_bytes == 0),
            ("write_batch_bytes_max", self.write_batch_bytes_max == 0),
            ("queued_bytes_max", self.queued_bytes_max == 0),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, zero)| *zero) {
            return Err(NetError::Options { field, problem: "must be greater than zero" });
        }
        let ring = self.shared_memory_ring_bytes;
        if ring != 0 && (!ring.is_power_of_two() || !(crate::shm::RING_BYTES_MIN..=crate::shm::RING_BYTES_MAX).contains(&ring)) {
            return Err(NetError::Options {
                field: "shared_memory_ring_bytes",
                problem: "must be 0 (off) or a power of two from 64 KiB to 1 GiB",
            });
        }
        Ok(())
    }
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            limits: Limits::default(),
            pool: BufferPool::default(),
            connect_timeout: Self::CONNECT_TIMEOUT_DEFAULT,
            handshake_timeout: Self::HANDSHAKE_TIMEOUT_DEFAULT,
            close_linger: Self::CLOSE_LINGER_DEFAULT,
            read_chunk_bytes: Self::READ_CHUNK_BYTES_DEFAULT,
            write_batch_bytes_max: Self::WRITE_BATCH_BYTES_MAX_DEFAULT,
            queued_bytes_max: Self::QUEUED_BYTES_MAX_DEFAULT,
            tls: None,
            shared_memory_ring_bytes: Self::SHARED_MEMORY_RING_BYTES_DEFAULT,
            shared_memory_poll: Self::SHARED_MEMORY_POLL_DEFAULT,
        }
    }
}

/// Counters of a connection since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Bytes (headers and payloads) queued by `send` and not yet written to the socket.
    pub bytes_queued: u64,
    /// Bytes written to the socket.
    pub bytes_sent: u64,
    /// Bytes read from the socket.
    pub bytes_received: u64,
    /// Messages written to the socket.
    pub messages_sent: u64,
    /// Messages delivered to the handler.
    pub messages_received: u64,
}

/// Why `send` did not queue a message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendRefusal {
    /// The connection has ended (see `Inbound::on_closed` for why).
    #[error("the connection is closed")]
    Closed,
    /// The payload is over the limit the peer accepts.
    #[error(transparent)]
    PayloadTooLarge(#[from] PayloadTooLarge),
    /// Queuing it would exceed `queued_bytes_max`.
    #[error("{queued_bytes} bytes would be queued, over queued_bytes_max = {queued_bytes_max}")]
    QueueFull {
        /// Bytes queued with this message.
        queued_bytes: u64,
        /// The maximum.
        queued_bytes_max: u64,
    },
    /// `Close` is sent by `Connection::close`, which also ends the connection.
    #[error("a Close message is sent by Connection::close, not by send")]
    CloseKind,
}

/// A message `send` did not queue: why, and its payload handed back.
#[derive(Debug, Error)]
#[error("cannot send to {peer}: {refusal}")]
pub struct SendError {
    /// The peer.
    pub peer: NodeId,
    /// Why.
    pub refusal: SendRefusal,
    payload: Payload,
}

impl SendError {
    /// The payload that was not sent.
    pub fn into_payload(self) -> Payload {
        self.payload
    }
}

/// Which end of the connection this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Dialed it.
    Dialer,
    /// Accepted it.
    Acceptor,
}

/// What the writer task takes from its queue.
enum Outgoing {
    /// A message to write.
    Message { header: [u8; HEADER_BYTES], payload: Payload },
    /// Write what was queued before, shut the socket's sending side, stop.
    Shutdown,
}

/// State shared by a connection's handles and its tasks.
struct ConnectionShared {
    peer: NodeId,
    addr: SocketAddr,
    closed: AtomicBool,
    /// The first reason the connection ended; the reader takes it to call `on_closed`.
    close_reason: Mutex<Option<CloseReason>>,
    /// Wakes the reader when someone else ended the connection.
    reader_stop: Notify,
    /// Stops the writer without writing what is queued.
    writer_stop: Notify,
    bytes_queued: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    messages_sent: AtomicU64,
    messages_received: AtomicU64,
}

impl ConnectionShared {
    /// Ends the connection for `reason` unless it already ended (then returns false): no `send`
    /// succeeds after, the reader stops, and the writer stops at once if `stop_writer` (otherwise
    /// it writes what is queued up to its `Shutdown`).
    fn end(&self, reason: CloseReason, stop_writer: bool) -> bool {
        {
            let mut close_reason = self.close_reason.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if self.closed.swap(true, Ordering::SeqCst) {
                return false;
            }
            debug_assert!(close_reason.is_none(), "a connection ends once");
            *close_reason = Some(reason);
        }
        self.reader_stop.notify_one();
        if stop_writer {
            self.writer_stop.notify_one();
        }
        true
    }

    /// The reason recorded by `end` (once; the reader calls `on_closed` with it).
    fn take_close_reason(&self) -> Option<CloseReason> {
        self.close_reason.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}

/// The reason sent in a `Close` message is cut to this many bytes.
const CLOSE_REASON_BYTES_MAX: usize = 1024;

/// One authenticated connection with a peer. Cloning gives another handle to the same connection;
/// when every handle is dropped the connection closes.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<ConnectionShared>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    limits: Limits,
    queued_bytes_max: u64,
    close_linger: Duration,
    /// The runtime of the connection's tasks, so `close` can start its linger timer from any thread.
    runtime: tokio::runtime::Handle,
    /// Over shared memory: the ring, which `send` writes itself when nothing is queued.
    direct: Option<Weak<Mutex<crate::shm::ShmWriteHalf>>>,
}

impl Connection {
    /// Connects to `addr`, authenticates as `me`, and starts the connection, delivering to `inbound`.
    /// Must be called on a tokio runtime; the connection's tasks run there.
    pub async fn dial(
        addr: SocketAddr,
        me: NodeId,
        secret: &ClusterSecret,
        inbound: Arc<dyn Inbound>,
        options: &ConnectionOptions,
    ) -> Result<Connection, NetError> {
        Connection::dial_expecting(addr, me, None, secret, inbound, options).await
    }

    /// `dial`, refusing a peer other than `expected_peer` before anything is delivered.
    pub(crate) async fn dial_expecting(
        addr: SocketAddr,
        me: NodeId,
        expected_peer: Option<NodeId>,
        secret: &ClusterSecret,
        inbound: Arc<dyn Inbound>,
        options: &ConnectionOptions,
    ) -> Result<Connection, NetError> {
        options.validate()?;
        let connect = tokio::time::timeout(options.connect_timeout, TcpStream::connect(addr));
        let stream = match connect.await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(NetError::Connect { addr, source }),
            Err(_) => return Err(NetError::Connect { addr, source: std::io::ErrorKind::TimedOut.into() }),
        };
        stream.set_nodelay(true).map_err(|source| NetError::Connect { addr, source })?;
        let tls = NetStream::dialed(stream, addr, options.tls.as_ref());
        let mut stream = tokio::time::timeout(options.handshake_timeout, tls)
            .await
            .map_err(|_| NetError::HandshakeTimeout { addr, timeout: options.handshake_timeout })??;
        let peer = authenticate_dialer(&mut stream, addr, me, expected_peer, secret, options.handshake_timeout).await?;
        Connection::establish(stream, Side::Dialer, peer, addr, inbound, options).await
    }

    /// Settles the transport of an authenticated connection (over plain TCP, the dialer offers
    /// shared memory and the acceptor answers; see `shm`) and starts its tasks.
    pub(crate) async fn establish(
        stream: NetStream,
        side: Side,
        peer: NodeId,
        addr: SocketAddr,
        inbound: Arc<dyn Inbound>,
        options: &ConnectionOptions,
    ) -> Result<Connection, NetError> {
        let timeout = options.handshake_timeout;
        let ring_bytes = options.shared_memory_ring_bytes;
        let mut stream = match stream {
            NetStream::Tls(stream) => {
                let (read_half, write_half) = tokio::io::split(*stream);
                let read_half = BufReader::with_capacity(options.read_chunk_bytes, read_half);
                return Ok(Connection::start_halves(read_half, write_half, peer, addr, inbound, options));
            }
            NetStream::Plain(stream) => stream,
        };
        let mapping = match side {
            Side::Dialer => crate::shm::offer(&mut stream, addr, ring_bytes, timeout).await?,
            Side::Acceptor => crate::shm::answer(&mut stream, addr, ring_bytes != 0, timeout).await?,
        };
        match mapping {
            Some(mapping) => {
                tracing::debug!(%peer, %addr, ring_bytes, "connection through shared memory");
                let (read_half, write_half) = crate::shm::split(stream, mapping, options.shared_memory_poll);
                let direct = write_half.direct();
                let mut connection = Connection::start_halves(read_half, write_half, peer, addr, inbound, options);
                connection.direct = Some(direct);
                Ok(connection)
            }
            None => {
                // Owned halves: no lock between reader and writer, unlike `tokio::io::split`.
                let (read_half, write_half) = stream.into_split();
                let read_half = BufReader::with_capacity(options.read_chunk_bytes, read_half);
                Ok(Connection::start_halves(read_half, write_half, peer, addr, inbound, options))
            }
        }
    }

    /// Starts the tasks of an authenticated connection over any pair of read and write halves (a
    /// TCP stream's, a TLS stream's, or a shared-memory link's).
    fn start_halves<R, W>(
        read_half: R,
        write_half: W,
        peer: NodeId,
        addr: SocketAddr,
        inbound: Arc<dyn Inbound>,
        options: &ConnectionOptions,
    ) -> Connection
    where
        R: AsyncBufRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let shared = Arc::new(ConnectionShared {
            peer,
            addr,
            closed: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            reader_stop: Notify::new(),
            writer_stop: Notify::new(),
            bytes_queued: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            messages_sent: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
        });
        let (outgoing, queue) = mpsc::unbounded_channel();
        let decoder = FrameDecoder::new(options.limits, options.pool.clone());
        let reader = reader::run_reader(read_half, Arc::clone(&shared), inbound, decoder, options.close_linger);
        tokio::spawn(reader);
        tokio::spawn(writer::run_writer(write_half, queue, Arc::clone(&shared), options.write_batch_bytes_max));
        Connection {
            shared,
            outgoing,
            limits: options.limits,
            queued_bytes_max: options.queued_bytes_max,
            close_linger: options.close_linger,
            runtime: tokio::runtime::Handle::current(),
            direct: None,
        }
    }

    /// Over shared memory, writes the message into the ring from this thread when the writer task
    /// has nothing queued or in hand (else the message would overtake those) and the ring has room
    /// for all of it: no queueing, no wake-up of the writer task. False: queue it.
    fn send_direct(&self, header: &[u8; HEADER_BYTES], payload: &Payload) -> bool {
        let Some(ring) = self.direct.as_ref() else { return false };
        // The writer task subtracts what it wrote only after writing it (release), so nothing it
        // holds is unwritten when this reads zero; holding the ring's lock keeps it from starting
        // a write meanwhile.
        if self.shared.bytes_queued.load(Ordering::Acquire) != 0 {
            return false;
        }
        let Some(ring) = ring.upgrade() else { return false };
        let Ok(mut ring) = ring.try_lock() else { return false };
        if self.shared.bytes_queued.load(Ordering::Acquire) != 0 {
            return false;
        }
        let [prefix, body] = payload.parts();
        if !ring.try_write_whole(&[header, prefix, body]) {
            return false;
        }
        self.shared.bytes_sent.fetch_add((HEADER_BYTES + payload.len()) as u64, Ordering::Relaxed);
        self.shared.messages_sent.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Whether the connection moves its bytes through shared memory (a peer process of this host,
    /// no TLS) rather than through TCP.
    pub fn through_shared_memory(&self) -> bool {
        self.direct.is_some()
    }

    /// The authenticated peer.
    pub fn peer(&self) -> NodeId {
        self.shared.peer
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Whether the connection has ended (a `send` would be refused).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Queues a message for the writer, from any thread, without blocking. A message queued before
    /// another on this connection is written before it. `Ok` means queued, not delivered: if the
    /// connection fails later, `on_closed` says so.
    pub fn send(&self, kind: MessageKind, stream: u64, aux: u64, payload: impl Into<Payload>) -> Result<(), SendError> {
        let payload = payload.into();
        let refuse = |refusal, payload| Err(SendError { peer: self.shared.peer, refusal, payload });
        if kind == MessageKind::Close {
            return refuse(SendRefusal::CloseKind, payload);
        }
        let payload_bytes = match check_payload_bytes(payload.len(), &self.limits) {
            Ok(bytes) => bytes,
            Err(too_large) => return refuse(SendRefusal::PayloadTooLarge(too_large), payload),
        };
        if self.is_closed() {
            return refuse(SendRefusal::Closed, payload);
        }
        let header = encode_header(&Header { kind, payload_bytes, stream, aux });
        if self.send_direct(&header, &payload) {
            return Ok(());
        }
        let message_bytes = (HEADER_BYTES + payload.len()) as u64;
        let queued_bytes = self.shared.bytes_queued.fetch_add(message_bytes, Ordering::Relaxed) + message_bytes;
        if queued_bytes > self.queued_bytes_max {
            self.shared.bytes_queued.fetch_sub(message_bytes, Ordering::Relaxed);
            return refuse(SendRefusal::QueueFull { queued_bytes, queued_bytes_max: self.queued_bytes_max }, payload);
        }
        match self.outgoing.send(Outgoing::Message { header, payload }) {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendError(outgoing)) => {
                self.shared.bytes_queued.fetch_sub(message_bytes, Ordering::Relaxed);
                let payload = match outgoing {
                    Outgoing::Message { payload, .. } => payload,
                    Outgoing::Shutdown => Payload::Empty,
                };
                refuse(SendRefusal::Closed, payload)
            }
        }
    }

    /// Closes the connection: what was queued before is written, then a `Close` with `reason`
    /// (cut to 1 KiB), then the socket's sending side is shut (all within `close_linger`). Later
    /// sends are refused. The reader stops after the chunk it is decoding (its messages may still
    /// be delivered) and calls `on_closed(ClosedLocally)`. Callable from any thread; closing a
    /// closed connection does nothing.
    pub fn close(&self, reason: &str) {
        let reason = truncate_reason(reason);
        if !self.shared.end(CloseReason::ClosedLocally { reason: reason.to_owned() }, false) {
            return;
        }
        let payload = Payload::Bytes(reason.as_bytes().to_vec());
        let header = encode_header(&Header { kind: MessageKind::Close, payload_bytes: payload.len() as u32, stream: 0, aux: 0 });
        self.shared.bytes_queued.fetch_add((HEADER_BYTES + payload.len()) as u64, Ordering::Relaxed);
        // If the writer already stopped there is nothing left to close.
        let _ = self.outgoing.send(Outgoing::Message { header, payload });
        let _ = self.outgoing.send(Outgoing::Shutdown);
        // A peer that does not read cannot hold the writer (and the socket) beyond the linger time.
        let shared = Arc::clone(&self.shared);
        let linger = self.close_linger;
        self.runtime.spawn(async move {
            tokio::time::sleep(linger).await;
            shared.writer_stop.notify_one();
        });
    }

    /// The connection's counters now.
    pub fn stats(&self) -> ConnectionStats {
        let shared = &self.shared;
        ConnectionStats {
            bytes_queued: shared.bytes_queued.load(Ordering::Relaxed),
            bytes_sent: shared.bytes_sent.load(Ordering::Relaxed),
            bytes_received: shared.bytes_received.load(Ordering::Relaxed),
            messages_sent: shared.messages_sent.load(Ordering::Relaxed),
            messages_received: shared.messages_received.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.shared.peer)
            .field("addr", &self.shared.addr)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// `reason` cut to at most `CLOSE_REASON_BYTES_MAX` bytes, at a character boundary.
fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(CLOSE_REASON_BYTES_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reason_is_cut_at_a_character_boundary() {
        let long = "é".repeat(CLOSE_REASON_BYTES_MAX);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= CLOSE_REASON_BYTES_MAX && cut.len() >= CLOSE_REASON_BYTES_MAX - 1);
        assert_eq!(truncate_reason("short"), "short");
    }

    #[test]
    fn zero_options_are_refused_by_name() {
        let options = ConnectionOptions { handshake_timeout: Duration::ZERO, ..ConnectionOptions::default() };
        assert!(matches!(options.validate(), Err(NetError::Options { field: "handshake_timeout", .. })));
        ConnectionOptions::default().validate().expect("defaults are valid");
    }
}
