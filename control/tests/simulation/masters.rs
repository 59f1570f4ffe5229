//! The master group alone: three masters on an in-memory network that loses and delays
//! messages, masters crashed and restarted from their directories, masters cut off, and clients
//! proposing the commands of a cluster's life (workers joining and lost, jobs submitted, placed
//! by the scheduler, failing, restarting, checkpointed, finished, cancelled).
//!
//! Checked, for every seed:
//! - at most one leader per term, as every master reports it at every step;
//! - a master's applied state only moves forward: a job it saw in a terminal state stays so;
//! - nothing acknowledged is lost: every command a client saw committed has its effect in the
//!   final state (a worker registered, a job submitted, a deployment of attempt n or later, a
//!   terminal status, a checkpoint as new or newer, a worker lost);
//! - after healing, every master holds the same state, and it passes its invariants.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tethys_control::raft::network::Faults;
use tethys_control::raft::{Applied, NodeId};
use tethys_control::scheduler::place;
use tethys_control::state::{Artifact, ClusterState, Command, CompletedCheckpoint, JobSpec, JobStatus, Response};

use crate::group::{MasterGroup, MASTERS, STEP};

const STEPS: usize = 150;

struct Sim {
    group: MasterGroup,
    random: fastrand::Rng,
    acknowledged: Arc<Mutex<Vec<(Command, Applied)>>>,
}

impl Sim {
    /// A command that fits the leader's state most of the time (and sometimes not).
    fn command(&mut self, state: &ClusterState) -> Command {
        let jobs: Vec<_> = state.jobs().cloned().collect();
        let workers: Vec<_> = state.workers().filter(|worker| worker.alive).map(|worker| worker.id).collect();
        let random = &mut self.random;
        let job = (!jobs.is_empty()).then(|| jobs[random.usize(..jobs.len())].clone());
        match random.u8(0..10) {
            0 => Command::RegisterWorker { control_addr: "w".into(), data_addr: "d".into(), slots: random.u32(1..4), at_ms: 0 },
            1 => Command::SubmitJob {
                spec: JobSpec { name: "count".into(), args: vec![], parallelism: 1, slots: random.u32(1..4), checkpoint_interval_ms: 10 },
                artifact: Artifact { build_id: "sim".into(), program: None },
                at_ms: 0,
            },
            2 if !workers.is_empty() && random.u8(0..4) == 0 => Command::WorkerLost { worker: workers[random.usize(..workers.len())] },
            3..=4 => match job {
                Some(job) => match place(job.spec.slots as usize, &state.free_slots()) {
                    Ok(placements) => Command::Deploy {
                        job: job.id,
                        attempt: job.attempt + 1,
                        placements,
                        restore_from: job.last_checkpoint.as_ref().map(|checkpoint| checkpoint.id),
                    },
                    Err(_) => Command::RegisterWorker { control_addr: "w".into(), data_addr: "d".into(), slots: 2, at_ms: 0 },
                },
                None => Command::RegisterWorker { control_addr: "w".into(), data_addr: "d".into(), slots: 2, at_ms: 0 },
            },
            5..=6 => match job {
                Some(job) => Command::CompleteCheckpoint {
                    job: job.id,
                    checkpoint: CompletedCheckpoint {
                        id: job.last_checkpoint.as_ref().map_or(1, |checkpoint| checkpoint.id + 1),
                        attempt: job.attempt,
                        location: "cp".into(),
                        completed_at_ms: 0,
                    },
                },
                None => Command::SubmitJob {
                    spec: JobSpec { name: "count".into(), args: vec![], parallelism: 1, slots: 1, checkpoint_interval_ms: 10 },
                    artifact: Artifact { build_id: "sim".into(), program: None },
                    at_ms: 0,
                },
            },
            _ => match job {
                Some(job) => {
                    let to = match random.u8(0..6) {
                        0 => JobStatus::Failing { reason: "a task failed".into() },
                        1 => JobStatus::Restarting,
                        2 => JobStatus::Finished,
                        3 => JobStatus::Cancelled,
                        4 => JobStatus::Failed { reason: "gave up".into() },
                        _ => JobStatus::Restarting,
                    };
                    Command::Transition { job: job.id, attempt: random.bool().then_some(job.attempt), to }
                }
                None => Command::RegisterWorker { control_addr: "w".into(), data_addr: "d".into(), slots: 1, at_ms: 0 },
            },
        }
    }

    /// Proposes a command on the leader, in the background; what it returns, if it is committed,
    /// is recorded.
    fn propose(&mut self) {
        let Some(leader) = self.group.leader().cloned() else { return };
        let command = leader.read(|state| state.clone());
        let command = self.command(&command);
        let acknowledged = Arc::clone(&self.acknowledged);
        tokio::spawn(async move {
            if let Ok(applied) = leader.propose(command.clone()).await {
                acknowledged.lock().unwrap().push((command, applied));
            }
        });
    }
}

async fn simulate(seed: u64) {
    let mut random = fastrand::Rng::with_seed(seed);
    let faults = Faults { loss: random.f64() * 0.15, max_delay: Duration::from_millis(random.u64(0..25)) };
    let mut group = MasterGroup::new("masters", seed, faults);
    for id in 0..MASTERS {
        group.start(id).await;
    }
    group.initialize().await;
    let mut sim = Sim { group, random, acknowledged: Arc::new(Mutex::new(Vec::new())) };
    let mut down: Option<(NodeId, usize)> = None;
    let mut cut: Option<(NodeId, usize)> = None;
    for step in 0..STEPS {
        match sim.random.u8(0..20) {
            0 if down.is_none() && cut.is_none() => {
                let id = sim.random.u64(0..MASTERS);
                sim.group.crash(id).await;
                down = Some((id, step + sim.random.usize(5..30)));
            }
            1 if cut.is_none() && down.is_none() => {
                let id = sim.random.u64(0..MASTERS);
                sim.group.router.set_cut_off(id, true);
                cut = Some((id, step + sim.random.usize(5..30)));
            }
            _ => {
                for _ in 0..sim.random.usize(0..3) {
                    sim.propose();
                }
            }
        }
        if let Some((id, until)) = down {
            if step >= until {
                sim.group.start(id).await;
                down = None;
            }
        }
        if let Some((id, until)) = cut {
            if step >= until {
                sim.group.router.set_cut_off(id, false);
                cut = None;
            }
        }
        tokio::time::sleep(STEP).await;
        sim.group.observe();
    }

    // Heal: every master up, no faults; the group settles and commits one more command.
    let state = sim.group.settle(down.map(|(id, _)| id)).await;
    for (command, applied) in sim.acknowledged.lock().unwrap().iter() {
        let lost = match (command, applied) {
            (Command::RegisterWorker { .. }, Ok(Response::WorkerRegistered(worker))) => {
                state.worker(*worker).is_none().then_some("the worker is gone")
            }
            (Command::SubmitJob { .. }, Ok(Response::JobSubmitted(job))) => state.job(*job).is_none().then_some("the job is gone"),
            (Command::Deploy { job, attempt, .. }, Ok(_)) => {
                state.job(*job).is_none_or(|record| record.attempt < *attempt).then_some("the deployment is lost")
            }
            (Command::Transition { job, to, .. }, Ok(_)) if to.is_terminal() => {
                state.job(*job).is_none_or(|record| record.status != *to).then_some("the job left its terminal status")
            }
            (Command::CompleteCheckpoint { job, checkpoint }, Ok(_)) => state
                .job(*job)
                .is_none_or(|record| record.last_checkpoint.as_ref().is_none_or(|last| last.id < checkpoint.id))
                .then_some("the checkpoint is lost"),
            (Command::WorkerLost { worker }, Ok(_)) => {
                state.worker(*worker).is_none_or(|record| record.alive).then_some("the worker is alive again")
            }
            _ => None,
        };
        if let Some(what) = lost {
            panic!("seed {seed}: acknowledged {command:?} ({applied:?}) but {what}");
        }
    }
    if crate::verbose() {
        let acknowledged = sim.acknowledged.lock().unwrap();
        let refused = acknowledged.iter().filter(|(_, applied)| applied.is_err()).count();
        println!(
            "seed {seed}: {faults:?}; {} terms with a leader; {} commands committed ({refused} refused); {} workers, {} jobs ({} ended)",
            sim.group.leaders_by_term.len(),
            acknowledged.len(),
            state.workers().count(),
            state.jobs().count(),
            state.jobs().filter(|job| job.status.is_terminal()).count()
        );
    }
    sim.group.shutdown().await;
}

#[test]
fn the_master_group_keeps_its_invariants_under_loss_delay_crashes_and_partitions() {
    crate::for_each_seed(200, |seed| crate::on_paused_clock(simulate(seed)));
}
