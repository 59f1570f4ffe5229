//! The faults the proxy is told to inject: what each direction of every connection must suffer now.
//!
//! [`FaultSettings`] is a plain value published through a watch channel: the accept loop and every
//! live connection read the latest one, and wake when it changes, so a command reaches live
//! connections at once. Settings are levels (a delay, a rate, paused or not), not events; the two
//! faults that are events keep their own counters: a cut bumps `cut_epoch` (which only grows, so a
//! connection closes when the epoch differs from the one it was accepted under), and bytes to drop
//! are a budget in [`DropBudget`] that readers consume, shared by all connections of a direction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Which way through the proxy a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Bytes from the clients that connect to the proxy, towards the target.
    ToTarget,
    /// Bytes from the target back to the clients.
    FromTarget,
    /// Both of the above, each on its own (a throttle of R gives each direction R).
    Both,
}

impl Direction {
    /// The flows this direction names.
    pub(crate) fn flows(self) -> &'static [Flow] {
        match self {
            Direction::ToTarget => &[Flow::ToTarget],
            Direction::FromTarget => &[Flow::FromTarget],
            Direction::Both => &[Flow::ToTarget, Flow::FromTarget],
        }
    }
}

/// One of the two byte flows of a proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Flow {
    /// Client to target.
    ToTarget,
    /// Target to client.
    FromTarget,
}

impl Flow {
    /// Index into per-flow arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Flow::ToTarget => 0,
            Flow::FromTarget => 1,
        }
    }
}

/// The faults on one flow. The default forwards plainly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FlowFaults {
    /// How long each chunk is held after the proxy read it, before it is forwarded.
    pub(crate) delay: Duration,
    /// The rate each connection's flow is limited to; `None`: unlimited. Never `Some(0)`.
    pub(crate) throttle_bytes_per_s: Option<u64>,
    /// Whether forwarding is stopped.
    pub(crate) paused: bool,
}

/// Everything the proxy's connections must obey now; published through a watch channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FaultSettings {
    flows: [FlowFaults; 2],
    /// Whether newly accepted connections are closed at once.
    pub(crate) refuse_new: bool,
    /// How many cuts have been ordered; connections accepted under an older epoch must close.
    pub(crate) cut_epoch: u64,
}

impl FaultSettings {
    /// The faults on `flow`.
    pub(crate) fn flow(&self, flow: Flow) -> FlowFaults {
        self.flows[flow.index()]
    }

    /// Applies `change` to the faults of each flow `direction` names.
    pub(crate) fn update(&mut self, direction: Direction, mut change: impl FnMut(&mut FlowFaults)) {
        for flow in direction.flows() {
            change(&mut self.flows[flow.index()]);
        }
        for flow in &self.flows {
            assert_ne!(flow.throttle_bytes_per_s, Some(0), "a zero throttle is refused at the door");
        }
    }

    /// Orders every connection accepted so far to close.
    pub(crate) fn cut(&mut self) {
        self.cut_epoch = self.cut_epoch.checked_add(1).expect("fewer than 2^64 cuts");
    }

    /// Back to plain forwarding. The cut epoch stays: it only grows, and lowering it would cut the
    /// connections accepted since.
    pub(crate) fn reset(&mut self) {
        *self = FaultSettings { cut_epoch: self.cut_epoch, ..FaultSettings::default() };
    }
}

/// Bytes still to be discarded, per flow, by whichever connections read them first.
#[derive(Debug, Default)]
pub(crate) struct DropBudget {
    remaining_bytes: [AtomicU64; 2],
}

impl DropBudget {
    /// Adds `bytes` to the budget of each flow `direction` names.
    pub(crate) fn add(&self, direction: Direction, bytes: u64) {
        for flow in direction.flows() {
            let remaining = &self.remaining_bytes[flow.index()];
            // A saturated budget drops everything, which is what such a budget asks for.
            let _ = remaining.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| Some(left.saturating_add(bytes)));
        }
    }

    /// Takes up to `read_bytes` from `flow`'s budget; returns how many of the bytes just read must
    /// be discarded.
    pub(crate) fn take(&self, flow: Flow, read_bytes: u64) -> u64 {
        let remaining = &self.remaining_bytes[flow.index()];
        match remaining.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| (left > 0).then(|| left - left.min(read_bytes))) {
            Ok(left_before) => left_before.min(read_bytes),
            Err(_) => 0,
        }
    }

    /// Empties the budget of both flows.
    pub(crate) fn clear(&self) {
        for remaining in &self.remaining_bytes {
            remaining.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_name_both_flows_and_one_direction_one() {
        assert_eq!(Direction::Both.flows(), &[Flow::ToTarget, Flow::FromTarget]);
        assert_eq!(Direction::ToTarget.flows(), &[Flow::ToTarget]);
        assert_eq!(Direction::FromTarget.flows(), &[Flow::FromTarget]);
    }

    #[test]
    fn update_changes_only_the_named_flow() {
        let mut settings = FaultSettings::default();
        settings.update(Direction::FromTarget, |faults| faults.paused = true);
        assert!(!settings.flow(Flow::ToTarget).paused);
        assert!(settings.flow(Flow::FromTarget).paused);
    }

    #[test]
    fn reset_forwards_plainly_but_keeps_the_cut_epoch() {
        let mut settings = FaultSettings::default();
        settings.update(Direction::Both, |faults| {
            faults.delay = Duration::from_secs(1);
            faults.throttle_bytes_per_s = Some(10);
            faults.paused = true;
        });
        settings.refuse_new = true;
        settings.cut();
        settings.cut();
        settings.reset();
        assert_eq!(settings, FaultSettings { cut_epoch: 2, ..FaultSettings::default() });
    }

    #[test]
    fn drop_budget_is_consumed_across_reads_until_exhausted() {
        let budget = DropBudget::default();
        budget.add(Direction::ToTarget, 10);
        assert_eq!(budget.take(Flow::FromTarget, 100), 0, "the other flow has no budget");
        assert_eq!(budget.take(Flow::ToTarget, 4), 4);
        assert_eq!(budget.take(Flow::ToTarget, 100), 6);
        assert_eq!(budget.take(Flow::ToTarget, 100), 0);
    }

    #[test]
    fn drop_budget_adds_up_per_flow_and_clears() {
        let budget = DropBudget::default();
        budget.add(Direction::Both, 3);
        budget.add(Direction::FromTarget, 2);
        assert_eq!(budget.take(Flow::ToTarget, 100), 3);
        assert_eq!(budget.take(Flow::FromTarget, 100), 5);
        budget.add(Direction::Both, 7);
        budget.clear();
        assert_eq!(budget.take(Flow::ToTarget, 100), 0);
        assert_eq!(budget.take(Flow::FromTarget, 100), 0);
    }
}
