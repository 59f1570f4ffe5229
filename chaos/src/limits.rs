//! The proxy's limits, all in one place.
//!
//! The proxy must never hide backpressure behind an unbounded buffer: a test that checks what a
//! slow receiver does to a sender is only meaningful if the proxy, like a real link, stops taking
//! bytes once its own buffer is full. The bounds below are fixed (tests compare against them) and
//! checked against each other at compile time.

use std::time::Duration;

/// The most bytes the proxy holds for one direction of one connection: read from the sender and
/// not yet forwarded (delayed, throttled, paused, or waiting for the receiver). Once fewer than
/// [`READ_CHUNK_BYTES`] bytes of room are left the proxy stops reading that direction, and the
/// sender meets TCP backpressure.
pub const CONNECTION_BUFFER_BYTES_MAX: usize = 1 << 20;

/// The most bytes the proxy reads from a socket at once; room for this many is reserved in the
/// connection's buffer before each read.
pub const READ_CHUNK_BYTES: usize = 64 << 10;

/// A throttle's token bucket holds this much time's worth of its rate: the most it sends in one
/// burst after an idle spell, and so the size of each throttled write (at most [`READ_CHUNK_BYTES`]).
pub(crate) const THROTTLE_BURST: Duration = Duration::from_millis(10);

/// How long the accept loop waits after a failed accept (out of file descriptors, a handshake
/// aborted by the peer) before it tries again, rather than spinning.
pub(crate) const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);

const _: () = {
    assert!(READ_CHUNK_BYTES > 0);
    assert!(READ_CHUNK_BYTES <= CONNECTION_BUFFER_BYTES_MAX, "a read must fit in an empty buffer");
    // Room is reserved through a semaphore, whose requests are counted in u32.
    assert!(CONNECTION_BUFFER_BYTES_MAX <= u32::MAX as usize);
    assert!(THROTTLE_BURST.as_nanos() > 0);
};
