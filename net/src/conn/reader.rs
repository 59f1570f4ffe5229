//! The reader task of a connection: reads, decodes, delivers, and reports the end once.
//!
//! It awaits nothing but the socket (and the signal that someone else ended the connection):
//! delivery is a synchronous call into the handler, which enqueues. `on_closed` is called by this
//! task only, after its last delivery, and exactly once: a guard calls it even when the task is
//! dropped with its runtime.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::{CloseReason, ConnectionShared, Inbound};
use crate::error::NetError;
use crate::node::NodeId;
use crate::wire::{Decoded, FrameDecoder, Header, MessageKind};

/// Calls `on_closed` once: with the connection's close reason when the reader ends, or, if the
/// task is dropped before (its runtime shut down), with `RuntimeStopped`.
struct ClosedNotice {
    inbound: Arc<dyn Inbound>,
    peer: NodeId,
    addr: SocketAddr,
    delivered: bool,
}

impl ClosedNotice {
    fn deliver(&mut self, reason: CloseReason) {
        debug_assert!(!self.delivered, "on_closed is called once per connection");
        if !self.delivered {
            self.delivered = true;
            self.inbound.on_closed(self.peer, reason);
        }
    }
}

impl Drop for ClosedNotice {
    fn drop(&mut self) {
        if !self.delivered {
            self.deliver(CloseReason::Failed(NetError::RuntimeStopped { peer: self.peer, addr: self.addr }));
        }
    }
}

pub(super) async fn run_reader<R: AsyncBufRead + Unpin>(
    mut reader: R,
    shared: Arc<ConnectionShared>,
    inbound: Arc<dyn Inbound>,
    mut decoder: FrameDecoder,
    close_linger: Duration,
) {
    let (peer, addr) = (shared.peer, shared.addr);
    let mut notice = ClosedNotice { inbound: Arc::clone(&inbound), peer, addr, delivered: false };
    // The reason this task saw, if it saw the end first.
    let seen_end: Option<CloseReason> = 'reading: loop {
        let read = tokio::select! {
            biased;
            () = shared.reader_stop.notified() => break 'reading None,
            read = reader.fill_buf() => read,
        };
        let mut input = match read {
            Ok([]) => {
                let reason = match decoder.finish() {
                    Ok(()) => NetError::PeerHungUp { peer, addr },
                    Err(source) => NetError::Wire { peer, addr, source },
                };
                break 'reading Some(CloseReason::Failed(reason));
            }
            Ok(input) => input,
            Err(source) => break 'reading Some(CloseReason::Failed(NetError::Io { peer, addr, operation: "reading from", source })),
        };
        let received = input.len();
        shared.bytes_received.fetch_add(received as u64, Ordering::Relaxed);
        // A data message's payload that lies whole in the buffer is offered where it lies.
        let mut offer = |header: &Header, payload: &[u8]| {
            header.kind == MessageKind::Data && inbound.on_data_in_place(peer, header.stream, header.aux, payload)
        };
        loop {
            match decoder.next_offering(&mut input, &mut offer) {
                Ok(Some(Decoded::TakenInPlace)) => {
                    shared.messages_received.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Some(Decoded::Message(message))) if message.kind == MessageKind::Close => {
                    let reason = String::from_utf8_lossy(&message.payload).into_owned();
                    break 'reading Some(CloseReason::ClosedByPeer { reason });
                }
                Ok(Some(Decoded::Message(message))) => {
                    shared.messages_received.fetch_add(1, Ordering::Relaxed);
                    inbound.on_message(peer, message);
                }
                Ok(None) => break,
                Err(source) => break 'reading Some(CloseReason::Failed(NetError::Wire { peer, addr, source })),
            }
        }
        // The decoder took all of it (a message cut at the end waits inside it for the rest).
        reader.consume(received);
    };
    if let Some(reason) = seen_end {
        // Whatever ends the connection here also stops the writer: nothing more is worth sending.
        shared.end(reason, true);
    }
    let reason = shared.take_close_reason();
    let closed_locally = matches!(reason, Some(CloseReason::ClosedLocally { .. }));
    // `end` always records a reason before the reader can stop.
    debug_assert!(reason.is_some());
    if let Some(reason) = reason {
        notice.deliver(reason);
    }
    if closed_locally {
        // Keep reading (and dropping) until the peer's end, so closing the socket with unread bytes
        // does not reset the connection before the peer has read our Close.
        let drain = async {
            loop {
                let received = match reader.fill_buf().await {
                    Ok([]) | Err(_) => break,
                    Ok(input) => input.len(),
                };
                shared.bytes_received.fetch_add(received as u64, Ordering::Relaxed);
                reader.consume(received);
            }
        };
        let _ = tokio::time::timeout(close_linger, drain).await;
    }
}
