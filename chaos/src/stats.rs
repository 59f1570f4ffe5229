//! What the proxy has done and holds: live counters updated by the proxy's thread, and the snapshot
//! a test reads through [`ChaosProxy::stats`](crate::ChaosProxy::stats).
//!
//! Counters are independent atomics, so a snapshot is not taken at one instant: a test waits for
//! the counter it cares about to reach a value rather than comparing two counters of one snapshot
//! while traffic flows. `buffered_bytes` is kept by the buffered chunks themselves (see
//! `flow.rs`), so bytes held by a connection that is cut or dropped are subtracted with them.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::faults::Flow;

/// A snapshot of the proxy's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Bytes from clients to the target.
    pub to_target: DirectionStats,
    /// Bytes from the target to clients.
    pub from_target: DirectionStats,
    /// Connections accepted from clients, refused ones included.
    pub connections_accepted: u64,
    /// Connections closed on accept because the proxy was told to refuse them.
    pub connections_refused: u64,
    /// Connections being proxied now (from accept to close, connecting to the target included).
    pub connections_open: u64,
    /// Accepted connections closed because the target could not be reached.
    pub target_connect_failures: u64,
}

impl ProxyStats {
    /// Bytes held by the proxy in both directions.
    pub fn buffered_bytes(&self) -> u64 {
        self.to_target.buffered_bytes + self.from_target.buffered_bytes
    }
}

/// A snapshot of one direction's counters, summed over all connections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectionStats {
    /// Bytes written to the receiving side.
    pub forwarded_bytes: u64,
    /// Bytes discarded on command (`drop_bytes`).
    pub dropped_bytes: u64,
    /// Bytes read from the sending side and not yet forwarded. At most
    /// [`CONNECTION_BUFFER_BYTES_MAX`](crate::CONNECTION_BUFFER_BYTES_MAX) per open connection.
    pub buffered_bytes: u64,
}

/// The live counters of one flow.
#[derive(Debug, Default)]
pub(crate) struct FlowCounters {
    pub(crate) forwarded_bytes: AtomicU64,
    pub(crate) dropped_bytes: AtomicU64,
    pub(crate) buffered_bytes: AtomicU64,
}

impl FlowCounters {
    /// Takes `bytes` off the buffered count; they were forwarded or thrown away.
    pub(crate) fn unbuffer(&self, bytes: u64) {
        let before = self.buffered_bytes.fetch_sub(bytes, Ordering::AcqRel);
        assert!(before >= bytes, "unbuffered {bytes} bytes of {before} buffered");
    }

    fn snapshot(&self) -> DirectionStats {
        DirectionStats {
            forwarded_bytes: self.forwarded_bytes.load(Ordering::Acquire),
            dropped_bytes: self.dropped_bytes.load(Ordering::Acquire),
            buffered_bytes: self.buffered_bytes.load(Ordering::Acquire),
        }
    }
}

/// The live counters of the proxy.
#[derive(Debug, Default)]
pub(crate) struct ProxyCounters {
    flows: [FlowCounters; 2],
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    connections_open: AtomicU64,
    pub(crate) target_connect_failures: AtomicU64,
}

impl ProxyCounters {
    /// The counters of `flow`.
    pub(crate) fn flow(&self, flow: Flow) -> &FlowCounters {
        &self.flows[flow.index()]
    }

    /// Counts a connection as open until the returned guard is dropped, however its task ends.
    pub(crate) fn open_connection(&self) -> OpenConnection<'_> {
        self.connections_open.fetch_add(1, Ordering::AcqRel);
        OpenConnection { counters: self }
    }

    /// Reads every counter.
    pub(crate) fn snapshot(&self) -> ProxyStats {
        ProxyStats {
            to_target: self.flow(Flow::ToTarget).snapshot(),
            from_target: self.flow(Flow::FromTarget).snapshot(),
            connections_accepted: self.connections_accepted.load(Ordering::Acquire),
            connections_refused: self.connections_refused.load(Ordering::Acquire),
            connections_open: self.connections_open.load(Ordering::Acquire),
            target_connect_failures: self.target_connect_failures.load(Ordering::Acquire),
        }
    }
}

/// One open connection in [`ProxyCounters`]; counts it closed when dropped.
#[derive(Debug)]
pub(crate) struct OpenConnection<'a> {
    counters: &'a ProxyCounters,
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        let before = self.counters.connections_open.fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "closed more connections than were opened");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_connection_counts_until_its_guard_drops() {
        let counters = ProxyCounters::default();
        let first = counters.open_connection();
        let second = counters.open_connection();
        assert_eq!(counters.snapshot().connections_open, 2);
        drop(first);
        assert_eq!(counters.snapshot().connections_open, 1);
        drop(second);
        assert_eq!(counters.snapshot().connections_open, 0);
    }

    #[test]
    fn snapshot_reports_each_flow_under_its_direction() {
        let counters = ProxyCounters::default();
        counters.flow(Flow::ToTarget).forwarded_bytes.store(3, Ordering::Release);
        counters.flow(Flow::FromTarget).buffered_bytes.store(5, Ordering::Release);
        counters.flow(Flow::ToTarget).buffered_bytes.store(2, Ordering::Release);
        counters.flow(Flow::FromTarget).unbuffer(4);
        let stats = counters.snapshot();
        assert_eq!(stats.to_target, DirectionStats { forwarded_bytes: 3, dropped_bytes: 0, buffered_bytes: 2 });
        assert_eq!(stats.from_target.buffered_bytes, 1);
        assert_eq!(stats.buffered_bytes(), 3);
    }
}
