//! The writer task of a connection: takes what `send` queued and writes it in few syscalls.
//!
//! It takes every message already queued (up to `write_batch_bytes_max`) into one batch: headers
//! and small payloads are copied side by side into one staging buffer, larger payloads are written
//! from where they are, and the whole batch goes out in one vectored write when the socket takes
//! it. So a burst of small credits and events costs one syscall, and a large frame is never copied.

use std::io::{self, IoSlice};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{CloseReason, ConnectionShared, Outgoing, Payload};
use crate::error::NetError;
use crate::wire::{encode_header, Header, MessageKind, HEADER_BYTES};

/// Payloads up to this size are copied into the staging buffer; larger ones are written in place.
const STAGED_PAYLOAD_BYTES_MAX: usize = 4 << 10;
/// Messages in one batch: with a staged run and a payload per message, a batch stays well under
/// the operating system's limit of slices per vectored write (1024 on Linux).
const BATCH_MESSAGES_MAX: usize = 256;

/// One part of a batch, in write order.
enum Piece {
    /// A run of the staging buffer.
    Staged(Range<usize>),
    /// A payload written in place (index into `held`).
    Held(usize),
}

/// The messages of one write.
struct WriteBatch {
    staged: Vec<u8>,
    /// Start of the staging run not yet closed into a piece.
    open_run_start: usize,
    pieces: Vec<Piece>,
    held: Vec<Payload>,
    /// Payloads up to this size are staged (everything, when the stream cannot write vectored).
    staged_payload_bytes_max: usize,
    bytes: usize,
    messages: usize,
}

impl WriteBatch {
    fn new(vectored: bool) -> WriteBatch {
        WriteBatch {
            staged: Vec::new(),
            open_run_start: 0,
            pieces: Vec::new(),
            held: Vec::new(),
            staged_payload_bytes_max: if vectored { STAGED_PAYLOAD_BYTES_MAX } else { usize::MAX },
            bytes: 0,
            messages: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.messages == 0
    }

    fn is_full(&self, bytes_max: usize) -> bool {
        self.bytes >= bytes_max || self.messages >= BATCH_MESSAGES_MAX
    }

    fn push(&mut self, header: &[u8; HEADER_BYTES], payload: Payload) {
        self.bytes += HEADER_BYTES + payload.len();
        self.messages += 1;
        self.staged.extend_from_slice(header);
        let [prefix, body] = payload.parts();
        self.staged.extend_from_slice(prefix);
        if body.len() <= self.staged_payload_bytes_max {
            // The payload is dropped here; a pooled one goes back to its pool.
            self.staged.extend_from_slice(body);
        } else {
            self.close_run();
            self.pieces.push(Piece::Held(self.held.len()));
            self.held.push(payload);
        }
    }

    fn close_run(&mut self) {
        if self.staged.len() > self.open_run_start {
            self.pieces.push(Piece::Staged(self.open_run_start..self.staged.len()));
            self.open_run_start = self.staged.len();
        }
    }

    async fn write_to<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close_run();
        let mut slices: Vec<IoSlice<'_>> = self
            .pieces
            .iter()
            .map(|piece| match piece {
                Piece::Staged(run) => IoSlice::new(&self.staged[run.clone()]),
                Piece::Held(index) => IoSlice::new(self.held[*index].parts()[1]),
            })
            .collect();
        debug_assert_eq!(slices.iter().map(|slice| slice.len()).sum::<usize>(), self.bytes);
        let mut remaining = &mut slices[..];
        while !remaining.is_empty() {
            let written = writer.write_vectored(remaining).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut remaining, written);
        }
        Ok(())
    }

    fn clear(&mut self) {
        self.staged.clear();
        self.open_run_start = 0;
        self.pieces.clear();
        self.held.clear();
        self.bytes = 0;
        self.messages = 0;
    }
}

pub(super) async fn run_writer<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<ConnectionShared>,
    write_batch_bytes_max: usize,
) {
    let mut batch = WriteBatch::new(writer.is_write_vectored());
    loop {
        let first = tokio::select! {
            biased;
            () = shared.writer_stop.notified() => break,
            first = queue.recv() => first,
        };
        let mut shutdown = false;
        match first {
            Some(Outgoing::Message { header, payload }) => batch.push(&header, payload),
            Some(Outgoing::Shutdown) => shutdown = true,
            None => {
                // Every handle was dropped: close as `close` would, unless the connection ended already.
                let reason = "every handle of the connection was dropped";
                if !shared.end(CloseReason::ClosedLocally { reason: reason.to_owned() }, false) {
                    break;
                }
                let header = encode_header(&Header { kind: MessageKind::Close, payload_bytes: reason.len() as u32, stream: 0, aux: 0 });
                shared.bytes_queued.fetch_add((HEADER_BYTES + reason.len()) as u64, Ordering::Relaxed);
                batch.push(&header, Payload::Static(reason.as_bytes()));
                shutdown = true;
            }
        }
        while !shutdown && !batch.is_full(write_batch_bytes_max) {
            match queue.try_recv() {
                Ok(Outgoing::Message { header, payload }) => batch.push(&header, payload),
                Ok(Outgoing::Shutdown) => shutdown = true,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let written = tokio::select! {
                biased;
                () = shared.writer_stop.notified() => break,
                written = batch.write_to(&mut writer) => written,
            };
            if let Err(source) = written {
                let error = NetError::Io { peer: shared.peer, addr: shared.addr, operation: "writing to", source };
                shared.end(CloseReason::Failed(error), true);
                break;
            }
            // After the write: a direct sender (shared memory) goes first only when this is zero.
            shared.bytes_queued.fetch_sub(batch.bytes as u64, Ordering::Release);
            shared.bytes_sent.fetch_add(batch.bytes as u64, Ordering::Relaxed);
            shared.messages_sent.fetch_add(batch.messages as u64, Ordering::Relaxed);
            batch.clear();
        }
        if shutdown {
            tokio::select! {
                biased;
                () = shared.writer_stop.notified() => {}
                _ = writer.shutdown() => {}
            }
            break;
        }
    }
    // What was not written is no longer queued: keep `bytes_queued` true for an ended connection.
    queue.close();
    let mut unwritten = batch.bytes as u64;
    while let Ok(outgoing) = queue.try_recv() {
        if let Outgoing::Message { payload, .. } = outgoing {
            unwritten += (HEADER_BYTES + payload.len()) as u64;
        }
    }
    shared.bytes_queued.fetch_sub(unwritten, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(payload_bytes: usize) -> [u8; HEADER_BYTES] {
        encode_header(&Header { kind: MessageKind::Data, payload_bytes: payload_bytes as u32, stream: 1, aux: 2 })
    }

    #[tokio::test]
    async fn batch_writes_staged_and_held_payloads_in_order() {
        let small = vec![1u8; 10];
        let large = vec![2u8; STAGED_PAYLOAD_BYTES_MAX + 1];
        let mut expected = Vec::new();
        let mut batch = WriteBatch::new(true);
        for payload in [small.clone(), large.clone(), small.clone(), Vec::new(), large.clone()] {
            expected.extend_from_slice(&header(payload.len()));
            expected.extend_from_slice(&payload);
            batch.push(&header(payload.len()), Payload::Bytes(payload));
        }
        assert_eq!(batch.held.len(), 2, "only payloads over the staging size are held");
        let mut written = Vec::new();
        batch.write_to(&mut written).await.expect("writes into a Vec");
        assert_eq!(written, expected);
    }

    #[tokio::test]
    async fn partial_vectored_writes_resume_where_they_stopped() {
        let mut batch = WriteBatch::new(true);
        let mut expected = Vec::new();
        for round in 0..20u8 {
            let payload = vec![round; STAGED_PAYLOAD_BYTES_MAX * (round as usize % 3)];
            expected.extend_from_slice(&header(payload.len()));
            expected.extend_from_slice(&payload);
            batch.push(&header(payload.len()), Payload::Bytes(payload));
        }
        // A duplex pipe of 1000 bytes accepts little per write, so the batch is written in parts.
        let (mut sender, mut receiver) = tokio::io::duplex(1000);
        let reading = async {
            let mut received = Vec::new();
            while received.len() < expected.len() {
                let mut chunk = [0u8; 700];
                let read = tokio::io::AsyncReadExt::read(&mut receiver, &mut chunk).await.expect("duplex read");
                received.extend_from_slice(&chunk[..read]);
            }
            received
        };
        let (written, received) = tokio::join!(batch.write_to(&mut sender), reading);
        written.expect("writes");
        assert_eq!(received, expected);
    }
}
