//! Shared by the end-to-end tests: a target to proxy to, connections through the proxy with
//! deadlines on every read and write, payloads that are a function of their offset (so a missing
//! or moved byte is visible), and waiting on a condition with a deadline.

#![allow(dead_code)] // each test binary uses a part

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use tethys_chaos::ChaosProxy;

/// How long any single step of a test may take before it counts as hung.
pub const STEP_DEADLINE: Duration = Duration::from_secs(10);

/// A listening target on an ephemeral loopback port.
pub struct Target {
    listener: TcpListener,
}

impl Target {
    pub fn bind() -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind target");
        listener.set_nonblocking(true).expect("nonblocking target listener");
        Target { listener }
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("target address")
    }

    /// The next connection the proxy opened to the target, within [`STEP_DEADLINE`].
    pub fn accept(&self) -> TcpStream {
        let mut accepted = None;
        wait_until("the proxy connects to the target", || {
            accepted = self.try_accept();
            accepted.is_some()
        });
        accepted.expect("accepted")
    }

    /// A connection the proxy opened to the target, if one is waiting now.
    pub fn try_accept(&self) -> Option<TcpStream> {
        match self.listener.accept() {
            Ok((stream, _)) => Some(with_deadlines(stream)),
            Err(error) if error.kind() == ErrorKind::WouldBlock => None,
            Err(error) => panic!("target accept failed: {error}"),
        }
    }
}

/// A client connected through `proxy`, and the target's side of the same connection.
pub fn connect_through(proxy: &ChaosProxy, target: &Target) -> (TcpStream, TcpStream) {
    let client = with_deadlines(TcpStream::connect(proxy.addr()).expect("connect to proxy"));
    let server = target.accept();
    (client, server)
}

fn with_deadlines(stream: TcpStream) -> TcpStream {
    stream.set_nonblocking(false).expect("blocking socket");
    stream.set_read_timeout(Some(STEP_DEADLINE)).expect("read timeout");
    stream.set_write_timeout(Some(STEP_DEADLINE)).expect("write timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// The payload byte at `offset` of a stream: it depends on the offset through a multiplicative
/// hash, so a stream with bytes missing, repeated or moved differs from the expected one.
pub fn payload_byte(offset: u64) -> u8 {
    (offset.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

/// The payload bytes at offsets `start..start + len`.
pub fn payload(start: u64, len: usize) -> Vec<u8> {
    (start..start + len as u64).map(payload_byte).collect()
}

/// Reads until the end of the stream; a timeout or error fails the test.
pub fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    stream.read_to_end(&mut received).expect("read to end of stream");
    received
}

/// Reads exactly `len` bytes; a timeout or error fails the test.
pub fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut received = vec![0; len];
    stream.read_exact(&mut received).expect("read exactly");
    received
}

/// Writes `bytes` on its own thread, so the caller can read the other end meanwhile.
pub fn write_in_background(stream: &TcpStream, bytes: Vec<u8>) -> thread::JoinHandle<()> {
    let mut writer = stream.try_clone().expect("clone socket");
    thread::spawn(move || writer.write_all(&bytes).expect("write payload"))
}

/// Writes `bytes` on its own thread and half-closes, so the caller can read the other end to its
/// end meanwhile.
pub fn write_and_close_in_background(stream: &TcpStream, bytes: Vec<u8>) -> thread::JoinHandle<()> {
    let mut writer = stream.try_clone().expect("clone socket");
    thread::spawn(move || {
        writer.write_all(&bytes).expect("write payload");
        writer.shutdown(std::net::Shutdown::Write).expect("half-close");
    })
}

/// Fails the test at the first offset where `received` differs from `expected`, without printing
/// megabytes.
pub fn assert_same_bytes(received: &[u8], expected: &[u8], what: &str) {
    if let Some(offset) = received.iter().zip(expected).position(|(got, want)| got != want) {
        panic!("{what}: first difference at byte {offset} of {}", expected.len());
    }
    assert_eq!(received.len(), expected.len(), "{what}: length");
}

/// Whether a read on `stream` sees the connection closed (end of stream or reset) before its
/// read deadline; a timeout means it stayed open.
pub fn sees_close(stream: &mut TcpStream) -> bool {
    let mut byte = [0; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("read data where a close was expected"),
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_) => true,
    }
}

/// Polls `condition` until it holds; fails the test naming `what` after [`STEP_DEADLINE`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP_DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Whether an error on a nonblocking socket means it would block (nothing to read, or its send
/// buffer full).
pub fn is_would_block(error: &io::Error) -> bool {
    error.kind() == ErrorKind::WouldBlock
}
