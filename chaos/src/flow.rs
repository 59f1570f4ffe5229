//! One direction of one proxied connection: read from the sender into a bounded buffer, forward
//! from the buffer to the receiver as the faults allow.
//!
//! The reader reserves room in the buffer before each read (a semaphore of
//! [`CONNECTION_BUFFER_BYTES_MAX`] permits), so the buffer never holds more than its maximum and a
//! full buffer stops reading: the sender then meets TCP backpressure. Each [`BufferedChunk`] carries
//! the permits of its unforwarded bytes and hands them back as it is forwarded or dropped. The
//! forwarder takes chunks in order and, before each write, asks [`plan_forwarding`] (pure) whether
//! the current faults let it write now, and how much; a change of faults wakes it at once, so a
//! command applies to bytes already buffered. The end of the sender's stream is passed on as a
//! write shutdown once everything before it is forwarded.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::faults::{FaultSettings, Flow, FlowFaults};
use crate::limits::{CONNECTION_BUFFER_BYTES_MAX, READ_CHUNK_BYTES};
use crate::proxy::ProxyShared;
use crate::token_bucket::{Admission, TokenBucket};

/// Forwards `flow` from `sender` to `receiver` until the sender's stream ends and all of it is
/// forwarded, or either socket fails.
pub(crate) async fn forward_flow(
    flow: Flow,
    sender: OwnedReadHalf,
    receiver: OwnedWriteHalf,
    faults: watch::Receiver<FaultSettings>,
    shared: Arc<ProxyShared>,
) -> io::Result<()> {
    let room = Arc::new(Semaphore::new(CONNECTION_BUFFER_BYTES_MAX));
    // Unbounded in type only: every chunk in it holds permits of `room`.
    let (buffer_in, buffer_out) = mpsc::unbounded_channel();
    tokio::try_join!(read_into_buffer(flow, sender, buffer_in, room, shared), forward_from_buffer(flow, receiver, buffer_out, faults))?;
    Ok(())
}

async fn read_into_buffer(
    flow: Flow,
    mut sender: OwnedReadHalf,
    buffer: mpsc::UnboundedSender<BufferedChunk>,
    room: Arc<Semaphore>,
    shared: Arc<ProxyShared>,
) -> io::Result<()> {
    let mut read_buffer = vec![0_u8; READ_CHUNK_BYTES];
    loop {
        let mut reservation =
            Arc::clone(&room).acquire_many_owned(READ_CHUNK_BYTES as u32).await.expect("a flow's buffer room is never closed");
        let read_bytes = sender.read(&mut read_buffer).await?;
        if read_bytes == 0 {
            return Ok(());
        }
        let received_at = Instant::now();
        let dropped_bytes = shared.drop_budget.take(flow, read_bytes as u64) as usize;
        shared.counters.flow(flow).dropped_bytes.fetch_add(dropped_bytes as u64, Ordering::AcqRel);
        let kept = &read_buffer[dropped_bytes..read_bytes];
        if kept.is_empty() {
            continue;
        }
        let permits = reservation.split(kept.len()).expect("a read fits in the room reserved for it");
        drop(reservation);
        // A copy of exactly the bytes read: a chunk never pins more memory than it counts.
        let chunk = BufferedChunk::new(kept.to_vec(), received_at, permits, flow, Arc::clone(&shared));
        if buffer.send(chunk).is_err() {
            // The forwarder is gone, which happens only when it failed; that error ends the flow.
            return Ok(());
        }
    }
}

async fn forward_from_buffer(
    flow: Flow,
    mut receiver: OwnedWriteHalf,
    mut buffer: mpsc::UnboundedReceiver<BufferedChunk>,
    mut faults: watch::Receiver<FaultSettings>,
) -> io::Result<()> {
    let mut throttle = None;
    while let Some(mut chunk) = buffer.recv().await {
        while !chunk.unforwarded().is_empty() {
            let flow_faults = faults.borrow_and_update().flow(flow);
            match plan_forwarding(flow_faults, chunk.received_at, chunk.unforwarded().len(), &mut throttle, Instant::now()) {
                ForwardStep::Write(bytes) => {
                    receiver.write_all(&chunk.unforwarded()[..bytes]).await?;
                    chunk.mark_forwarded(bytes);
                }
                ForwardStep::WaitUntil(then) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(then) => {}
                        changed = faults.changed() => if changed.is_err() { return Ok(()) },
                    }
                }
                ForwardStep::WaitForChange => {
                    if faults.changed().await.is_err() {
                        // The proxy is shutting down; its runtime closes this connection.
                        return Ok(());
                    }
                }
            }
        }
    }
    receiver.shutdown().await
}

/// What a flow's forwarder does next with the chunk at the head of its buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ForwardStep {
    /// Write this many bytes of the chunk (more than zero) now.
    Write(usize),
    /// Nothing may be written before this instant (unless the faults change).
    WaitUntil(Instant),
    /// Nothing may be written until the faults change.
    WaitForChange,
}

/// Decides what may be forwarded of a chunk read at `received_at`, with `unforwarded_bytes` (more
/// than zero) left, under `faults` at `now`. Keeps the flow's throttle bucket in `throttle`: a new
/// rate starts a new (empty) bucket, no rate removes it.
pub(crate) fn plan_forwarding(
    faults: FlowFaults,
    received_at: Instant,
    unforwarded_bytes: usize,
    throttle: &mut Option<TokenBucket>,
    now: Instant,
) -> ForwardStep {
    assert!(unforwarded_bytes > 0, "nothing left to forward");
    if faults.paused {
        return ForwardStep::WaitForChange;
    }
    match received_at.checked_add(faults.delay) {
        // A delay past the end of time holds the chunk until the delay changes.
        None => return ForwardStep::WaitForChange,
        Some(release) if release > now => return ForwardStep::WaitUntil(release),
        Some(_) => {}
    }
    let Some(rate_bytes_per_s) = faults.throttle_bytes_per_s else {
        *throttle = None;
        return ForwardStep::Write(unforwarded_bytes);
    };
    let bucket = match throttle {
        Some(bucket) if bucket.rate_bytes_per_s() == rate_bytes_per_s => bucket,
        _ => throttle.insert(TokenBucket::new(rate_bytes_per_s, now)),
    };
    match bucket.take(unforwarded_bytes as u64, now) {
        Admission::Granted(bytes) => ForwardStep::Write(bytes as usize),
        Admission::WaitUntil(then) => ForwardStep::WaitUntil(then),
    }
}

/// Bytes read from a sender and not yet all forwarded, with the buffer room they occupy.
#[derive(Debug)]
pub(crate) struct BufferedChunk {
    bytes: Vec<u8>,
    forwarded_bytes: usize,
    received_at: Instant,
    /// Exactly one permit per unforwarded byte.
    room: OwnedSemaphorePermit,
    flow: Flow,
    shared: Arc<ProxyShared>,
}

impl BufferedChunk {
    fn new(bytes: Vec<u8>, received_at: Instant, room: OwnedSemaphorePermit, flow: Flow, shared: Arc<ProxyShared>) -> BufferedChunk {
        assert_eq!(room.num_permits(), bytes.len(), "a chunk holds one permit per byte");
        shared.counters.flow(flow).buffered_bytes.fetch_add(bytes.len() as u64, Ordering::AcqRel);
        BufferedChunk { bytes, forwarded_bytes: 0, received_at, room, flow, shared }
    }

    fn unforwarded(&self) -> &[u8] {
        &self.bytes[self.forwarded_bytes..]
    }

    /// Records that the next `bytes` were written to the receiver, and frees their room.
    fn mark_forwarded(&mut self, bytes: usize) {
        assert!(bytes <= self.unforwarded().len(), "forwarded more than the chunk holds");
        self.forwarded_bytes += bytes;
        drop(self.room.split(bytes).expect("a chunk holds one permit per unforwarded byte"));
        debug_assert_eq!(self.room.num_permits(), self.unforwarded().len());
        let counters = self.shared.counters.flow(self.flow);
        counters.forwarded_bytes.fetch_add(bytes as u64, Ordering::AcqRel);
        counters.unbuffer(bytes as u64);
    }
}

impl Drop for BufferedChunk {
    /// A chunk dropped before it is all forwarded (its connection was cut or failed) leaves the
    /// buffered count with its bytes; its permits go back with `room`.
    fn drop(&mut self) {
        self.shared.counters.flow(self.flow).unbuffer(self.unforwarded().len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn plain_faults_forward_the_whole_chunk_and_remove_a_throttle() {
        let now = Instant::now();
        let mut throttle = Some(TokenBucket::new(10, now));
        assert_eq!(plan_forwarding(FlowFaults::default(), now, 123, &mut throttle, now), ForwardStep::Write(123));
        assert!(throttle.is_none());
    }

    #[test]
    fn a_pause_waits_for_a_change_whatever_else_is_set() {
        let now = Instant::now();
        let faults = FlowFaults { paused: true, delay: Duration::ZERO, throttle_bytes_per_s: Some(1 << 30) };
        assert_eq!(plan_forwarding(faults, now - Duration::from_secs(9), 1, &mut None, now), ForwardStep::WaitForChange);
    }

    #[test]
    fn a_delay_holds_a_chunk_until_its_receipt_plus_the_delay() {
        let received_at = Instant::now();
        let faults = FlowFaults { delay: Duration::from_millis(40), ..FlowFaults::default() };
        let release = received_at + Duration::from_millis(40);
        assert_eq!(plan_forwarding(faults, received_at, 5, &mut None, received_at), ForwardStep::WaitUntil(release));
        assert_eq!(plan_forwarding(faults, received_at, 5, &mut None, release - Duration::from_nanos(1)), ForwardStep::WaitUntil(release));
        assert_eq!(plan_forwarding(faults, received_at, 5, &mut None, release), ForwardStep::Write(5));
    }

    #[test]
    fn a_delay_past_the_end_of_time_waits_for_a_change() {
        let now = Instant::now();
        let faults = FlowFaults { delay: Duration::MAX, ..FlowFaults::default() };
        assert_eq!(plan_forwarding(faults, now, 5, &mut None, now), ForwardStep::WaitForChange);
    }

    #[test]
    fn a_throttle_starts_empty_and_a_new_rate_starts_a_new_bucket() {
        let start = Instant::now();
        let faults = FlowFaults { throttle_bytes_per_s: Some(1_000), ..FlowFaults::default() };
        let mut throttle = None;
        // 1,000 B/s: a 10-byte burst, earned in 10 ms.
        assert_eq!(plan_forwarding(faults, start, 500, &mut throttle, start), ForwardStep::WaitUntil(start + Duration::from_millis(10)));
        let later = start + Duration::from_secs(1);
        assert_eq!(plan_forwarding(faults, start, 500, &mut throttle, later), ForwardStep::Write(10));
        let faster = FlowFaults { throttle_bytes_per_s: Some(2_000), ..faults };
        let after_change = later + Duration::from_millis(1);
        assert_eq!(
            plan_forwarding(faster, start, 500, &mut throttle, after_change),
            ForwardStep::WaitUntil(after_change + Duration::from_millis(10))
        );
        assert_eq!(throttle.map(|bucket| bucket.rate_bytes_per_s()), Some(2_000));
    }
}
