//! The state of transactions in the log: which are open, which aborted. Pure bookkeeping fed with
//! the records the log appends or finds on open; no I/O.
//!
//! Design (Kafka's read-committed isolation): a transaction's records go into the log itself as
//! `TxnData` records carrying its id, and a `TxnCommit` or `TxnAbort` marker ends it. A reader
//! reads only below the *last stable offset*: the first offset of the oldest transaction still
//! open (or the durable end if none is). Below it every transaction is decided, and a `TxnData`
//! record is visible unless its transaction aborted; the aborted ones are kept here as offset
//! ranges. Why this design rather than a staging log per transaction: one append path, one fsync
//! per commit, records keep the offsets they were given when appended, and a prepared transaction
//! survives a crash (its records are durable; its id is listed as open on reopen) so a
//! two-phase-commit sink can commit it on restore. A transaction never committed is never visible.
//! The price: an open transaction holds back readers of everything appended after its first
//! record until it is decided, as in Kafka.

use std::collections::{BTreeMap, HashMap};

use super::record::RecordKind;

/// Offsets `[first, abort_marker]` of one aborted transaction: its records in that range are hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AbortedRange {
    first_offset: u64,
    marker_offset: u64,
}

/// Open and aborted transactions.
#[derive(Debug, Default)]
pub(crate) struct TxnTable {
    /// Open transactions and the offset of their first record (`None`: begun, nothing appended).
    open: BTreeMap<u64, Option<u64>>,
    /// Aborted transactions whose records the log may still hold.
    aborted: HashMap<u64, Vec<AbortedRange>>,
}

impl TxnTable {
    /// Whether `txn` is open.
    pub(crate) fn is_open(&self, txn: u64) -> bool {
        self.open.contains_key(&txn)
    }

    /// Opens `txn`; false if it is already open.
    pub(crate) fn begin(&mut self, txn: u64) -> bool {
        if self.open.contains_key(&txn) {
            return false;
        }
        self.open.insert(txn, None);
        true
    }

    /// Applies a record appended, or found when the log is opened, at `offset`.
    pub(crate) fn apply(&mut self, kind: RecordKind, txn: u64, offset: u64) {
        match kind {
            RecordKind::Data => {}
            RecordKind::TxnData => {
                let first = self.open.entry(txn).or_insert(None);
                first.get_or_insert(offset);
            }
            RecordKind::TxnCommit => {
                self.open.remove(&txn);
            }
            RecordKind::TxnAbort => {
                if let Some(Some(first_offset)) = self.open.remove(&txn) {
                    self.aborted.entry(txn).or_default().push(AbortedRange { first_offset, marker_offset: offset });
                }
            }
        }
    }

    /// The first offset of the oldest open transaction that has records, if any.
    pub(crate) fn first_open_offset(&self) -> Option<u64> {
        self.open.values().flatten().min().copied()
    }

    /// Open transactions, by id.
    pub(crate) fn open_ids(&self) -> Vec<u64> {
        self.open.keys().copied().collect()
    }

    /// Whether the `TxnData` record at `offset` of `txn` belongs to an aborted transaction. Valid
    /// below the last stable offset, where every transaction is decided.
    pub(crate) fn is_aborted(&self, txn: u64, offset: u64) -> bool {
        self.aborted.get(&txn).is_some_and(|ranges| ranges.iter().any(|r| (r.first_offset..=r.marker_offset).contains(&offset)))
    }

    /// Forgets aborted ranges that end below `start_offset` (deleted by retention).
    pub(crate) fn forget_below(&mut self, start_offset: u64) {
        self.aborted.retain(|_, ranges| {
            ranges.retain(|r| r.marker_offset >= start_offset);
            !ranges.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_transaction_holds_the_stable_offset_at_its_first_record() {
        let mut table = TxnTable::default();
        assert!(table.begin(7));
        assert_eq!(table.first_open_offset(), None, "no record yet: nothing held back");
        table.apply(RecordKind::TxnData, 7, 3);
        table.apply(RecordKind::TxnData, 7, 5);
        assert_eq!(table.first_open_offset(), Some(3));
        table.apply(RecordKind::TxnCommit, 7, 6);
        assert_eq!(table.first_open_offset(), None);
        assert!(!table.is_aborted(7, 3));
    }

    #[test]
    fn aborted_records_are_hidden_by_range_even_when_the_id_is_reused() {
        let mut table = TxnTable::default();
        table.apply(RecordKind::TxnData, 1, 0);
        table.apply(RecordKind::TxnAbort, 1, 2);
        table.apply(RecordKind::TxnData, 1, 3);
        table.apply(RecordKind::TxnCommit, 1, 4);
        assert!(table.is_aborted(1, 0));
        assert!(!table.is_aborted(1, 3));
        table.forget_below(3);
        assert!(!table.is_aborted(1, 0));
    }

    #[test]
    fn a_transaction_found_on_open_without_a_marker_stays_open() {
        let mut table = TxnTable::default();
        table.apply(RecordKind::TxnData, 9, 10);
        assert_eq!(table.open_ids(), vec![9]);
        assert!(!table.begin(9));
    }
}
