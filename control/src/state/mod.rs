//! The replicated state of the control plane: what every master agrees on through the Raft log.
//!
//! [`ClusterState::apply`] is a pure function of the state, one committed [`Command`] and the term
//! of the log entry that carried it: every master applies the same entries in the same order and
//! so holds the same state, with no clock and no randomness of its own (times come in commands,
//! stamped by the leader that proposed them). A command that does not fit the state (a deployment
//! for an old attempt, a status change out of a terminal state) is *refused*: it stays in the log,
//! changes nothing, and every master refuses it alike.
//!
//! Invariants ([`ClusterState::check_invariants`], asserted after every apply in tests and by the
//! simulation):
//! - a job in a terminal state (finished, failed, cancelled) never leaves it, and holds no slots;
//! - a job's attempt never decreases; its deployment, if any, is of its current attempt;
//! - a job's completed checkpoints have increasing ids;
//! - a placement names a live worker and one of its slots, and no slot holds two subtasks;
//! - ids (workers, jobs) are never reused.
//!
//! Fencing: every deployment records the Raft term that made it (`Deployment::term`); the leader of
//! a term sends it with every command to workers and every commit of a checkpoint, and a worker
//! refuses anything from a term lower than one it has seen, so a deposed leader can neither commit
//! through Raft (Raft refuses it) nor command a worker.

pub mod command;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use command::{Command, Refusal, Response};

/// A worker process, as registered; never reused, a restarted worker registers anew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkerId(pub u64);

/// A submitted job; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobId(pub u64);

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "worker {}", self.0)
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {}", self.0)
    }
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Its id.
    pub id: WorkerId,
    /// Where masters reach it (its control address).
    pub control_addr: String,
    /// Where other workers reach it (its data-plane address).
    pub data_addr: String,
    /// Slots it offers.
    pub slots: u32,
    /// When it registered (leader's clock, milliseconds since the epoch).
    pub registered_at_ms: u64,
    /// Whether it is alive: false once a leader declared it lost. A lost worker stays listed (its
    /// id is never reused) and holds no slots.
    pub alive: bool,
}

/// The program a job runs, as workers fetch and check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// The program's build id (a hash of its executable): a worker running another build is refused.
    pub build_id: String,
    /// The uploaded program whose job it is (its id in the masters' program store); none: a job of
    /// the program the masters and workers run themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
}

/// A program uploaded to the masters: what it says of itself. Its file is in the masters'
/// program store (`crate::programs::ProgramStore`), named by its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramRecord {
    /// The SHA-256 of its file, in hex.
    pub id: String,
    /// What it said of itself when it was uploaded.
    pub info: crate::programs::ProgramInfo,
    /// Its size in bytes.
    pub size: u64,
    /// When it was uploaded (the leader's clock, milliseconds since the Unix epoch).
    pub uploaded_at_ms: u64,
}

/// Programs kept.
pub const PROGRAMS_MAX: usize = 100;

/// What a user submitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's name in the program's registry (e.g. a benchmark query).
    pub name: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Parallelism of its operators.
    pub parallelism: u32,
    /// Slots its plan needs (computed from the graph when it was submitted).
    pub slots: u32,
    /// Checkpoint interval in milliseconds; 0 for none.
    pub checkpoint_interval_ms: u64,
}

/// A job's life cycle, as Flink's: created -> running -> failing -> restarting -> running ..., ending
/// finished, failed or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Submitted, not yet deployed.
    Created,
    /// Deployed (its current attempt) and running.
    Running,
    /// Its attempt failed; its tasks are being stopped.
    Failing {
        /// Why.
        reason: String,
    },
    /// Waiting to be deployed again from its last completed checkpoint.
    Restarting,
    /// Ran to its end.
    Finished,
    /// Failed for good.
    Failed {
        /// Why.
        reason: String,
    },
    /// Cancelled by a user.
    Cancelled,
}

impl JobStatus {
    /// Whether the job has ended: nothing changes it any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self, JobStatus::Finished | JobStatus::Failed { .. } | JobStatus::Cancelled)
    }

    /// Its name, for messages and the API.
    pub fn name(&self) -> &'static str {
        match self {
            JobStatus::Created => "created",
            JobStatus::Running => "running",
            JobStatus::Failing { .. } => "failing",
            JobStatus::Restarting => "restarting",
            JobStatus::Finished => "finished",
            JobStatus::Failed { .. } => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// Where one slot of a job's plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The worker.
    pub worker: WorkerId,
    /// The worker's slot.
    pub slot: u32,
}

/// A job's attempt placed on workers: plan slot `i` runs on `placements[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The attempt (1 for the first deployment).
    pub attempt: u32,
    /// The Raft term of the leader that made it: workers refuse commands of lower terms.
    pub term: u64,
    /// Per plan slot.
    pub placements: Vec<Placement>,
    /// The checkpoint it restores from, if any.
    pub restore_from: Option<u64>,
}

/// A checkpoint every task acknowledged, committed through Raft: only then are sinks told to commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedCheckpoint {
    /// Its id.
    pub id: u64,
    /// The attempt that took it.
    pub attempt: u32,
    /// Where its data is (the checkpoint store's location).
    pub location: String,
    /// When it completed (leader's clock).
    pub completed_at_ms: u64,
}

/// A job as the masters know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its id.
    pub id: JobId,
    /// What was submitted.
    pub spec: JobSpec,
    /// The program it runs.
    pub artifact: Artifact,
    /// Where it is in its life cycle.
    pub status: JobStatus,
    /// Its latest attempt (0 before the first deployment).
    pub attempt: u32,
    /// Its current deployment, while it holds slots (running or failing).
    pub deployment: Option<Deployment>,
    /// Its latest completed checkpoint.
    pub last_checkpoint: Option<CompletedCheckpoint>,
    /// Completed checkpoints so far.
    pub checkpoints_completed: u64,
    /// When it was submitted (leader's clock).
    pub submitted_at_ms: u64,
    /// How many times a new leader adopted its running attempt (reconciliation, no restart).
    #[serde(default)]
    pub adoptions: u64,
    /// The newest savepoint taken through the masters: its directory.
    #[serde(default)]
    pub last_savepoint: Option<String>,
    /// Why its attempts failed, oldest first (the newest [`FAILURES_KEPT`]).
    #[serde(default)]
    pub failures: Vec<AttemptFailure>,
}

/// Failures kept per job.
pub const FAILURES_KEPT: usize = 20;

/// Why an attempt of a job failed (what the engine said: the operator and subtask, and the error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFailure {
    /// The attempt.
    pub attempt: u32,
    /// Why.
    pub reason: String,
}

/// A draft of a SQL job, saved from the console's workbench: its versions, oldest first (the
/// newest [`DRAFT_VERSIONS_KEPT`]; numbers keep growing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    /// Its name.
    pub name: String,
    /// Its versions, oldest first.
    pub versions: Vec<DraftVersion>,
}

/// One saved version of a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftVersion {
    /// Its number (from 1).
    pub version: u32,
    /// When it was saved (the leader's clock, milliseconds since the Unix epoch).
    pub saved_at_ms: u64,
    /// The script.
    pub script: String,
    /// Its test case (JSON, as the workbench sends it), or empty.
    pub test_case: String,
    /// What changed, or empty.
    pub note: String,
}

/// Versions kept per draft.
pub const DRAFT_VERSIONS_KEPT: usize = 50;
/// Drafts kept.
pub const DRAFTS_MAX: usize = 500;
/// The longest name of a draft.
pub const DRAFT_NAME_MAX: usize = 100;
/// The most bytes a draft's version holds (script, test case and note).
pub const DRAFT_BYTES_MAX: usize = 256 * 1024;

/// The replicated state (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    workers: BTreeMap<WorkerId, WorkerRecord>,
    jobs: BTreeMap<JobId, JobRecord>,
    /// Drafts of SQL jobs (the console's workbench), by name.
    #[serde(default)]
    drafts: BTreeMap<String, Draft>,
    /// Uploaded programs, by id.
    #[serde(default)]
    programs: BTreeMap<String, ProgramRecord>,
    next_worker: u64,
    next_job: u64,
    /// The highest Raft term of an applied entry.
    term: u64,
}

impl ClusterState {
    /// The empty state.
    pub fn new() -> ClusterState {
        ClusterState::default()
    }

    /// Drafts, by name.
    pub fn drafts(&self) -> impl Iterator<Item = &Draft> {
        self.drafts.values()
    }

    /// One draft.
    pub fn draft(&self, name: &str) -> Option<&Draft> {
        self.drafts.get(name)
    }

    pub(crate) fn drafts_mut(&mut self) -> &mut BTreeMap<String, Draft> {
        &mut self.drafts
    }

    /// Uploaded programs, by id.
    pub fn programs(&self) -> impl Iterator<Item = &ProgramRecord> {
        self.programs.values()
    }

    /// One uploaded program.
    pub fn program(&self, id: &str) -> Option<&ProgramRecord> {
        self.programs.get(id)
    }

    pub(crate) fn programs_mut(&mut self) -> &mut BTreeMap<String, ProgramRecord> {
        &mut self.programs
    }

    /// Registered workers, alive or lost, by id.
    pub fn workers(&self) -> impl Iterator<Item = &WorkerRecord> {
        self.workers.values()
    }

    /// One worker.
    pub fn worker(&self, id: WorkerId) -> Option<&WorkerRecord> {
        self.workers.get(&id)
    }

    /// Jobs, by id.
    pub fn jobs(&self) -> impl Iterator<Item = &JobRecord> {
        self.jobs.values()
    }

    /// One job.
    pub fn job(&self, id: JobId) -> Option<&JobRecord> {
        self.jobs.get(&id)
    }

    /// The highest Raft term of an applied entry.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Slots of `worker` that hold a subtask, with the job holding each.
    pub fn used_slots(&self, worker: WorkerId) -> BTreeMap<u32, JobId> {
        let mut used = BTreeMap::new();
        for job in self.jobs.values() {
            for placement in job.deployment.iter().flat_map(|deployment| &deployment.placements) {
                if placement.worker == worker {
                    used.insert(placement.slot, job.id);
                }
            }
        }
        used
    }

    /// Free slots per live worker, for the scheduler.
    pub fn free_slots(&self) -> Vec<(WorkerId, Vec<u32>)> {
        self.workers
            .values()
            .filter(|worker| worker.alive)
            .map(|worker| {
                let used = self.used_slots(worker.id);
                (worker.id, (0..worker.slots).filter(|slot| !used.contains_key(slot)).collect())
            })
            .collect()
    }

    /// Of the attempts a worker runs, those the masters ended: the job is over or unknown, a newer
    /// attempt of it was deployed, or it is restarting (its attempt failed). Never an attempt this
    /// state has not seen deployed yet, so a state that lags the log only keeps more.
    pub fn stale_attempts(&self, running: &[(JobId, u32)]) -> Vec<(JobId, u32)> {
        let stale = |&(job, attempt): &(JobId, u32)| match self.job(job) {
            None => true,
            Some(record) if record.status.is_terminal() => true,
            Some(record) => attempt < record.attempt || (attempt == record.attempt && record.status == JobStatus::Restarting),
        };
        running.iter().copied().filter(stale).collect()
    }

    /// Applies one committed command carried by an entry of Raft term `term` (see the module
    /// documentation): the response, or why it was refused (the state is then unchanged).
    pub fn apply(&mut self, term: u64, command: &Command) -> Result<Response, Refusal> {
        debug_assert!(term >= self.term, "Raft applies entries in log order, whose terms never decrease");
        self.term = self.term.max(term);
        command::apply(self, term, command)
    }

    /// Checks the invariants of the module documentation; the first one broken, described.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut held: BTreeMap<(WorkerId, u32), JobId> = BTreeMap::new();
        for job in self.jobs.values() {
            if job.id.0 >= self.next_job {
                return Err(format!("{} is not below the next job id {}", job.id, self.next_job));
            }
            if job.status.is_terminal() && job.deployment.is_some() {
                return Err(format!("{} is {} but still holds slots", job.id, job.status.name()));
            }
            if let Some(deployment) = &job.deployment {
                if deployment.attempt != job.attempt {
                    return Err(format!("{} is at attempt {} but deployed for attempt {}", job.id, job.attempt, deployment.attempt));
                }
                if deployment.placements.len() != job.spec.slots as usize {
                    return Err(format!("{} needs {} slots but is placed on {}", job.id, job.spec.slots, deployment.placements.len()));
                }
                for placement in &deployment.placements {
                    let Some(worker) = self.workers.get(&placement.worker) else {
                        return Err(format!("{} is placed on unknown {}", job.id, placement.worker));
                    };
                    if !worker.alive || placement.slot >= worker.slots {
                        return Err(format!(
                            "{} is placed on slot {} of {} (alive {}, {} slots)",
                            job.id, placement.slot, worker.id, worker.alive, worker.slots
                        ));
                    }
                    if let Some(other) = held.insert((placement.worker, placement.slot), job.id) {
                        return Err(format!("slot {} of {} holds both {} and {}", placement.slot, placement.worker, other, job.id));
                    }
                }
            }
            if let Some(checkpoint) = &job.last_checkpoint {
                if checkpoint.attempt > job.attempt {
                    return Err(format!("{} has a checkpoint of attempt {} past its attempt {}", job.id, checkpoint.attempt, job.attempt));
                }
            }
        }
        if let Some(worker) = self.workers.keys().find(|worker| worker.0 >= self.next_worker) {
            return Err(format!("{worker} is not below the next worker id {}", self.next_worker));
        }
        Ok(())
    }

    pub(crate) fn workers_mut(&mut self) -> &mut BTreeMap<WorkerId, WorkerRecord> {
        &mut self.workers
    }

    pub(crate) fn jobs_mut(&mut self) -> &mut BTreeMap<JobId, JobRecord> {
        &mut self.jobs
    }

    pub(crate) fn take_worker_id(&mut self) -> WorkerId {
        self.next_worker += 1;
        WorkerId(self.next_worker - 1)
    }

    pub(crate) fn take_job_id(&mut self) -> JobId {
        self.next_job += 1;
        JobId(self.next_job - 1)
    }
}
