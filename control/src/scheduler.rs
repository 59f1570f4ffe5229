//! Placing a job's slots on workers: spread for fault tolerance, or a clear error when the cluster
//! is too small.
//!
//! A job's plan needs `n` slots (its pipelines, chained, at their parallelism). The scheduler puts
//! each on the live worker with the most free slots left (ties to the lower id), so a job spreads
//! over as many workers as it can and the loss of one worker takes as few of its slots as
//! possible. It is a pure function of the free slots, so every master would place alike.

use crate::state::{Placement, WorkerId};

/// Why a job cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Fewer free slots than the job needs.
    #[error("the job needs {needed} slots but the cluster has {free} free ({workers} live workers)")]
    NotEnoughSlots {
        /// Slots the job needs.
        needed: usize,
        /// Free slots on live workers.
        free: usize,
        /// Live workers.
        workers: usize,
    },
}

/// Places `needed` slots on the free slots given per live worker (see the module documentation).
pub fn place(needed: usize, free: &[(WorkerId, Vec<u32>)]) -> Result<Vec<Placement>, ScheduleError> {
    let total: usize = free.iter().map(|(_, slots)| slots.len()).sum();
    if needed > total {
        return Err(ScheduleError::NotEnoughSlots { needed, free: total, workers: free.len() });
    }
    // Remaining free slots per worker, lowest slot first.
    let mut remaining: Vec<(WorkerId, std::collections::VecDeque<u32>)> =
        free.iter().map(|(worker, slots)| (*worker, slots.iter().copied().collect())).collect();
    remaining.sort_by_key(|(worker, _)| *worker);
    let mut placements = Vec::with_capacity(needed);
    for _ in 0..needed {
        let (worker, slots) = remaining
            .iter_mut()
            .filter(|(_, slots)| !slots.is_empty())
            // The most free slots; among equals the first (lowest id), as `max_by_key` keeps the last.
            .rev()
            .max_by_key(|(_, slots)| slots.len())
            .expect("enough free slots were counted");
        placements.push(Placement { worker: *worker, slot: slots.pop_front().expect("not empty") });
    }
    Ok(placements)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workers(free: &[u32]) -> Vec<(WorkerId, Vec<u32>)> {
        free.iter().enumerate().map(|(id, &n)| (WorkerId(id as u64), (0..n).collect())).collect()
    }

    fn on(worker: u64, slot: u32) -> Placement {
        Placement { worker: WorkerId(worker), slot }
    }

    #[test]
    fn slots_spread_over_workers() {
        assert_eq!(place(3, &workers(&[2, 2, 2])).unwrap(), vec![on(0, 0), on(1, 0), on(2, 0)]);
        assert_eq!(place(4, &workers(&[2, 2, 2])).unwrap(), vec![on(0, 0), on(1, 0), on(2, 0), on(0, 1)]);
        // The emptiest worker first.
        assert_eq!(place(2, &workers(&[1, 3])).unwrap(), vec![on(1, 0), on(1, 1)]);
    }

    #[test]
    fn used_slots_are_skipped() {
        let free = vec![(WorkerId(4), vec![1, 3]), (WorkerId(2), vec![])];
        assert_eq!(place(2, &free).unwrap(), vec![on(4, 1), on(4, 3)]);
    }

    #[test]
    fn a_cluster_too_small_is_a_clear_error() {
        let error = place(5, &workers(&[2, 2])).unwrap_err();
        assert_eq!(error, ScheduleError::NotEnoughSlots { needed: 5, free: 4, workers: 2 });
        assert_eq!(error.to_string(), "the job needs 5 slots but the cluster has 4 free (2 live workers)");
        assert!(place(1, &[]).is_err());
    }

    #[test]
    fn placements_are_distinct_and_balanced() {
        for seed in 0..500 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let free: Vec<u32> = (0..rng.usize(1..6)).map(|_| rng.u32(0..5)).collect();
            let total: u32 = free.iter().sum();
            let needed = rng.usize(0..=total as usize);
            let placements = place(needed, &workers(&free)).unwrap();
            let distinct: std::collections::BTreeSet<_> = placements.iter().map(|p| (p.worker, p.slot)).collect();
            assert_eq!(distinct.len(), needed, "seed {seed}");
            // No worker gets two more than another that still had room.
            for (worker, &offered) in free.iter().enumerate() {
                let used = placements.iter().filter(|p| p.worker == WorkerId(worker as u64)).count() as u32;
                assert!(used <= offered, "seed {seed}");
            }
        }
    }
}
