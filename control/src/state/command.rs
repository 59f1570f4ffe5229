//! The commands of the replicated state, and how each changes it.
//!
//! A command is what a leader proposes and Raft commits: registering a worker, declaring one lost,
//! submitting a job, deploying an attempt, moving a job through its life cycle, completing a
//! checkpoint. Heartbeats and metrics do not go through the log: the leader keeps them in memory
//! and commits only their consequences (`WorkerLost`).

use serde::{Deserialize, Serialize};

use super::{
    Artifact, ClusterState, CompletedCheckpoint, Deployment, Draft, DraftVersion, JobId, JobRecord, JobSpec, JobStatus, Placement,
    ProgramRecord, WorkerId, WorkerRecord, DRAFTS_MAX, DRAFT_BYTES_MAX, DRAFT_NAME_MAX, DRAFT_VERSIONS_KEPT, PROGRAMS_MAX,
};

/// A change to the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A worker process joins with its addresses and slots; it gets a new id.
    RegisterWorker {
        /// Where masters reach it.
        control_addr: String,
        /// Where other workers reach it.
        data_addr: String,
        /// Slots it offers.
        slots: u32,
        /// Leader's clock.
        at_ms: u64,
    },
    /// A worker missed its heartbeats: it is lost, and every job placed on it fails its attempt.
    WorkerLost {
        /// The worker.
        worker: WorkerId,
    },
    /// A job is submitted (already validated by the API: name, spec and artifact).
    SubmitJob {
        /// What to run.
        spec: JobSpec,
        /// The program.
        artifact: Artifact,
        /// Leader's clock.
        at_ms: u64,
    },
    /// A job is submitted to start from a savepoint (or a retained checkpoint) at `savepoint`,
    /// which the API checked restores into it: its first attempt restores it, as a restart
    /// restores the newest checkpoint.
    SubmitJobFromSavepoint {
        /// What to run.
        spec: JobSpec,
        /// The program.
        artifact: Artifact,
        /// Leader's clock.
        at_ms: u64,
        /// The savepoint's directory.
        savepoint: String,
    },
    /// The next attempt of a created or restarting job is placed on workers.
    Deploy {
        /// The job.
        job: JobId,
        /// Its new attempt: one more than its current one.
        attempt: u32,
        /// Per plan slot.
        placements: Vec<Placement>,
        /// The checkpoint it restores.
        restore_from: Option<u64>,
    },
    /// An attempt's life cycle moves on (to failing, restarting, finished, failed or cancelled).
    Transition {
        /// The job.
        job: JobId,
        /// The attempt the change is about; a change about an older attempt is refused. `None`
        /// for a user's cancel, which applies to whatever attempt runs.
        attempt: Option<u32>,
        /// The new status.
        to: JobStatus,
    },
    /// A new leader adopted the running attempt of a job whose driver died with the old one: its
    /// deployment is now driven under this entry's term, and nothing restarted.
    Adopt {
        /// The job.
        job: JobId,
        /// The attempt adopted: the job's current one.
        attempt: u32,
    },
    /// The job's attempt stopped with `savepoint` to run again at `parallelism` on `slots` slots:
    /// it restarts from the savepoint.
    Rescale {
        /// The job.
        job: JobId,
        /// The attempt that stopped.
        attempt: u32,
        /// The new parallelism.
        parallelism: u32,
        /// The slots it takes now.
        slots: u32,
        /// Where it restarts from.
        savepoint: CompletedCheckpoint,
    },
    /// A savepoint of the job completed (taken on a user's request).
    RecordSavepoint {
        /// The job.
        job: JobId,
        /// The savepoint's directory.
        location: String,
    },
    /// Every task of the job's current attempt acknowledged a checkpoint.
    CompleteCheckpoint {
        /// The job.
        job: JobId,
        /// The checkpoint.
        checkpoint: CompletedCheckpoint,
    },
    /// A new version of a draft (a SQL job being written), made if new.
    SaveDraft {
        /// The draft's name.
        name: String,
        /// Its script.
        script: String,
        /// Its test case (the workbench's inputs and expected rows, JSON), or empty.
        test_case: String,
        /// What changed, in the author's words, or empty.
        note: String,
        /// Leader's clock.
        at_ms: u64,
    },
    /// A draft and its versions are removed.
    DeleteDraft {
        /// The draft's name.
        name: String,
    },
    /// A program was uploaded (its file is in the program store); one uploaded before stays as it
    /// was.
    RegisterProgram {
        /// The program.
        program: ProgramRecord,
    },
    /// An uploaded program is removed (refused while a job of it has not ended).
    DeleteProgram {
        /// Its id.
        id: String,
    },
}

/// What an applied command returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A worker's new id.
    WorkerRegistered(WorkerId),
    /// A job's new id.
    JobSubmitted(JobId),
    /// Jobs whose attempt failed because a worker was lost.
    WorkerLost {
        /// Those jobs.
        failed_jobs: Vec<JobId>,
    },
    /// A draft's new version number.
    DraftSaved(u32),
    /// Done.
    Done,
}

/// Why a committed command changed nothing; every master refuses it alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// No such job.
    #[error("{0} does not exist")]
    UnknownJob(JobId),
    /// No such worker.
    #[error("{0} does not exist")]
    UnknownWorker(WorkerId),
    /// The job has ended; nothing changes it any more.
    #[error("{job} has ended ({status}); it cannot become {to}")]
    JobEnded {
        /// The job.
        job: JobId,
        /// Its terminal status.
        status: String,
        /// What was asked.
        to: String,
    },
    /// The command is about another attempt than the job's current one.
    #[error("{job} is at attempt {current}; the command is about attempt {asked}")]
    StaleAttempt {
        /// The job.
        job: JobId,
        /// Its current attempt.
        current: u32,
        /// The command's.
        asked: u32,
    },
    /// The life cycle does not go from the job's status to the one asked.
    #[error("{job} cannot go from {from} to {to}")]
    BadTransition {
        /// The job.
        job: JobId,
        /// Its status.
        from: String,
        /// What was asked.
        to: String,
    },
    /// The placements do not fit the job or the workers.
    #[error("{job}: {reason}")]
    BadPlacement {
        /// The job.
        job: JobId,
        /// What does not fit.
        reason: String,
    },
    /// The checkpoint is not newer than the job's last one.
    #[error("{job}: checkpoint {id} is not newer than completed checkpoint {last}")]
    StaleCheckpoint {
        /// The job.
        job: JobId,
        /// The checkpoint.
        id: u64,
        /// The job's last completed one.
        last: u64,
    },
    /// The spec cannot run.
    #[error("bad job spec: {0}")]
    BadSpec(String),
    /// A draft that cannot be saved.
    #[error("bad draft: {0}")]
    BadDraft(String),
    /// No such draft.
    #[error("no draft named {0}")]
    UnknownDraft(String),
    /// No such program.
    #[error("no program {0} was uploaded")]
    UnknownProgram(String),
    /// A program that cannot be registered or removed now.
    #[error("program {id}: {reason}")]
    BadProgram {
        /// Its id.
        id: String,
        /// Why.
        reason: String,
    },
}

pub(super) fn apply(state: &mut ClusterState, term: u64, command: &Command) -> Result<Response, Refusal> {
    match command {
        Command::RegisterWorker { control_addr, data_addr, slots, at_ms } => {
            let id = state.take_worker_id();
            let record = WorkerRecord {
                id,
                control_addr: control_addr.clone(),
                data_addr: data_addr.clone(),
                slots: *slots,
                registered_at_ms: *at_ms,
                alive: true,
            };
            state.workers_mut().insert(id, record);
            Ok(Response::WorkerRegistered(id))
        }
        Command::WorkerLost { worker } => {
            let record = state.workers_mut().get_mut(worker).ok_or(Refusal::UnknownWorker(*worker))?;
            record.alive = false;
            let mut failed_jobs = Vec::new();
            for job in state.jobs_mut().values_mut() {
                let placed_there =
                    job.deployment.as_ref().is_some_and(|deployment| deployment.placements.iter().any(|p| p.worker == *worker));
                if placed_there {
                    // Its attempt is over: the tasks there are gone. The slots on other workers are
                    // freed too; the restart deploys the whole job again.
                    job.deployment = None;
                    job.status = JobStatus::Restarting;
                    failed_jobs.push(job.id);
                }
            }
            Ok(Response::WorkerLost { failed_jobs })
        }
        Command::SubmitJobFromSavepoint { spec, artifact, at_ms, savepoint } => {
            let submitted = apply(state, term, &Command::SubmitJob { spec: spec.clone(), artifact: artifact.clone(), at_ms: *at_ms })?;
            if let Response::JobSubmitted(id) = &submitted {
                // Recorded as checkpoint 0 of attempt 0: the job's own checkpoints come after it.
                let checkpoint = CompletedCheckpoint { id: 0, attempt: 0, location: savepoint.clone(), completed_at_ms: *at_ms };
                state.jobs_mut().get_mut(id).expect("just submitted").last_checkpoint = Some(checkpoint);
            }
            Ok(submitted)
        }
        Command::SubmitJob { spec, artifact, at_ms } => {
            if spec.slots == 0 || spec.parallelism == 0 {
                return Err(Refusal::BadSpec(format!("parallelism {} and slots {} must be at least 1", spec.parallelism, spec.slots)));
            }
            let id = state.take_job_id();
            let record = JobRecord {
                id,
                spec: spec.clone(),
                artifact: artifact.clone(),
                status: JobStatus::Created,
                attempt: 0,
                deployment: None,
                last_checkpoint: None,
                checkpoints_completed: 0,
                submitted_at_ms: *at_ms,
                adoptions: 0,
                last_savepoint: None,
                failures: Vec::new(),
            };
            state.jobs_mut().insert(id, record);
            Ok(Response::JobSubmitted(id))
        }
        Command::Deploy { job, attempt, placements, restore_from } => {
            check_placements(state, *job, placements)?;
            let record = job_mut(state, *job)?;
            refuse_if_ended(record, "running")?;
            if !matches!(record.status, JobStatus::Created | JobStatus::Restarting) {
                return Err(Refusal::BadTransition { job: *job, from: record.status.name().to_string(), to: "running".to_string() });
            }
            if *attempt != record.attempt + 1 {
                return Err(Refusal::StaleAttempt { job: *job, current: record.attempt, asked: *attempt });
            }
            if placements.len() != record.spec.slots as usize {
                return Err(Refusal::BadPlacement {
                    job: *job,
                    reason: format!("{} placements for {} slots", placements.len(), record.spec.slots),
                });
            }
            let last = record.last_checkpoint.as_ref().map(|checkpoint| checkpoint.id);
            if restore_from.is_some() && *restore_from != last {
                return Err(Refusal::BadPlacement {
                    job: *job,
                    reason: format!("restores checkpoint {restore_from:?}, but the last completed is {last:?}"),
                });
            }
            record.attempt = *attempt;
            record.deployment = Some(Deployment { attempt: *attempt, term, placements: placements.clone(), restore_from: *restore_from });
            record.status = JobStatus::Running;
            Ok(Response::Done)
        }
        Command::Adopt { job, attempt } => {
            let record = job_mut(state, *job)?;
            refuse_if_ended(record, "running")?;
            if *attempt != record.attempt {
                return Err(Refusal::StaleAttempt { job: *job, current: record.attempt, asked: *attempt });
            }
            let (JobStatus::Running, Some(deployment)) = (&record.status, record.deployment.as_mut()) else {
                return Err(Refusal::BadTransition { job: *job, from: record.status.name().to_string(), to: "adopted".to_string() });
            };
            deployment.term = term;
            record.adoptions += 1;
            Ok(Response::Done)
        }
        Command::Rescale { job, attempt, parallelism, slots, savepoint } => {
            let record = job_mut(state, *job)?;
            refuse_if_ended(record, "restarting")?;
            if *attempt != record.attempt {
                return Err(Refusal::StaleAttempt { job: *job, current: record.attempt, asked: *attempt });
            }
            if record.status != JobStatus::Running {
                return Err(Refusal::BadTransition { job: *job, from: record.status.name().to_string(), to: "rescaled".to_string() });
            }
            if *parallelism == 0 || *slots == 0 {
                return Err(Refusal::BadSpec(format!("parallelism {parallelism} and slots {slots} must be at least 1")));
            }
            if record.last_checkpoint.as_ref().is_some_and(|last| savepoint.id <= last.id) {
                let last = record.last_checkpoint.as_ref().map_or(0, |last| last.id);
                return Err(Refusal::StaleCheckpoint { job: *job, id: savepoint.id, last });
            }
            record.spec.parallelism = *parallelism;
            record.spec.slots = *slots;
            record.last_checkpoint = Some(savepoint.clone());
            record.last_savepoint = Some(savepoint.location.clone());
            record.deployment = None;
            record.status = JobStatus::Restarting;
            Ok(Response::Done)
        }
        Command::RecordSavepoint { job, location } => {
            job_mut(state, *job)?.last_savepoint = Some(location.clone());
            Ok(Response::Done)
        }
        Command::Transition { job, attempt, to } => {
            let record = job_mut(state, *job)?;
            refuse_if_ended(record, to.name())?;
            if let Some(attempt) = attempt {
                if *attempt != record.attempt {
                    return Err(Refusal::StaleAttempt { job: *job, current: record.attempt, asked: *attempt });
                }
            }
            let allowed = matches!(
                (&record.status, to),
                (_, JobStatus::Cancelled | JobStatus::Failed { .. })
                    | (JobStatus::Running, JobStatus::Failing { .. } | JobStatus::Finished)
                    | (JobStatus::Failing { .. }, JobStatus::Restarting)
            );
            if !allowed {
                return Err(Refusal::BadTransition { job: *job, from: record.status.name().to_string(), to: to.name().to_string() });
            }
            if !matches!(to, JobStatus::Failing { .. }) {
                // Failing keeps the slots until its tasks are stopped; every other status frees them.
                record.deployment = None;
            }
            // An attempt's failure, once: failing for good right after failing says it again.
            let failure = match (&record.status, to) {
                (JobStatus::Failing { reason: before }, JobStatus::Failed { reason }) if before == reason => None,
                (_, JobStatus::Failing { reason } | JobStatus::Failed { reason }) => Some(reason.clone()),
                _ => None,
            };
            if let Some(reason) = failure {
                if record.failures.len() == super::FAILURES_KEPT {
                    record.failures.remove(0);
                }
                record.failures.push(super::AttemptFailure { attempt: record.attempt, reason });
            }
            record.status = to.clone();
            Ok(Response::Done)
        }
        Command::CompleteCheckpoint { job, checkpoint } => {
            let record = job_mut(state, *job)?;
            refuse_if_ended(record, "checkpointed")?;
            if checkpoint.attempt != record.attempt {
                return Err(Refusal::StaleAttempt { job: *job, current: record.attempt, asked: checkpoint.attempt });
            }
            if record.status != JobStatus::Running {
                let from = record.status.name().to_string();
                return Err(Refusal::BadTransition { job: *job, from, to: "checkpointed".to_string() });
            }
            if let Some(last) = &record.last_checkpoint {
                if checkpoint.id <= last.id {
                    return Err(Refusal::StaleCheckpoint { job: *job, id: checkpoint.id, last: last.id });
                }
            }
            record.last_checkpoint = Some(checkpoint.clone());
            record.checkpoints_completed += 1;
            Ok(Response::Done)
        }
        Command::SaveDraft { name, script, test_case, note, at_ms } => {
            check_draft(state, name, script, test_case, note)?;
            let draft = state.drafts_mut().entry(name.clone()).or_insert_with(|| Draft { name: name.clone(), versions: Vec::new() });
            let version = draft.versions.last().map_or(1, |last| last.version + 1);
            if draft.versions.len() == DRAFT_VERSIONS_KEPT {
                draft.versions.remove(0);
            }
            draft.versions.push(DraftVersion {
                version,
                saved_at_ms: *at_ms,
                script: script.clone(),
                test_case: test_case.clone(),
                note: note.clone(),
            });
            Ok(Response::DraftSaved(version))
        }
        Command::RegisterProgram { program } => {
            if state.program(&program.id).is_some() {
                return Ok(Response::Done);
            }
            if state.programs().count() >= PROGRAMS_MAX {
                return Err(Refusal::BadProgram {
                    id: program.id.clone(),
                    reason: format!("the masters keep at most {PROGRAMS_MAX} programs; delete one first"),
                });
            }
            state.programs_mut().insert(program.id.clone(), program.clone());
            Ok(Response::Done)
        }
        Command::DeleteProgram { id } => {
            if state.program(id).is_none() {
                return Err(Refusal::UnknownProgram(id.clone()));
            }
            if let Some(job) = state.jobs().find(|job| !job.status.is_terminal() && job.artifact.program.as_deref() == Some(id.as_str())) {
                return Err(Refusal::BadProgram { id: id.clone(), reason: format!("{} of it has not ended", job.id) });
            }
            state.programs_mut().remove(id);
            Ok(Response::Done)
        }
        Command::DeleteDraft { name } => match state.drafts_mut().remove(name) {
            Some(_) => Ok(Response::Done),
            None => Err(Refusal::UnknownDraft(name.clone())),
        },
    }
}

/// Refuses a draft the state does not keep: a bad name, too large, or one too many.
fn check_draft(state: &ClusterState, name: &str, script: &str, test_case: &str, note: &str) -> Result<(), Refusal> {
    let bad = |reason: String| Err(Refusal::BadDraft(reason));
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.');
    if name.trim().is_empty() || name.len() > DRAFT_NAME_MAX || !name.chars().all(allowed) || name.trim() != name {
        return bad(format!("a draft's name is 1 to {DRAFT_NAME_MAX} letters, digits, spaces, '-', '_' or '.', not {name:?}"));
    }
    let bytes = script.len() + test_case.len() + note.len();
    if bytes > DRAFT_BYTES_MAX {
        return bad(format!("{name} takes {bytes} bytes; a draft takes at most {DRAFT_BYTES_MAX}"));
    }
    if state.draft(name).is_none() && state.drafts().count() >= DRAFTS_MAX {
        return bad(format!("the masters keep at most {DRAFTS_MAX} drafts: delete one first"));
    }
    Ok(())
}

fn job_mut(state: &mut ClusterState, job: JobId) -> Result<&mut JobRecord, Refusal> {
    state.jobs_mut().get_mut(&job).ok_or(Refusal::UnknownJob(job))
}

fn refuse_if_ended(record: &JobRecord, to: &str) -> Result<(), Refusal> {
    if record.status.is_terminal() {
        return Err(Refusal::JobEnded { job: record.id, status: record.status.name().to_string(), to: to.to_string() });
    }
    Ok(())
}

/// Placements name live workers' free slots, each once.
fn check_placements(state: &ClusterState, job: JobId, placements: &[Placement]) -> Result<(), Refusal> {
    let mut seen = std::collections::BTreeSet::new();
    for placement in placements {
        let bad = |reason: String| Refusal::BadPlacement { job, reason };
        let worker = state.worker(placement.worker).ok_or_else(|| bad(format!("{} does not exist", placement.worker)))?;
        if !worker.alive {
            return Err(bad(format!("{} is lost", worker.id)));
        }
        if placement.slot >= worker.slots {
            return Err(bad(format!("{} has {} slots, not slot {}", worker.id, worker.slots, placement.slot)));
        }
        if !seen.insert((placement.worker, placement.slot)) {
            return Err(bad(format!("slot {} of {} is placed twice", placement.slot, placement.worker)));
        }
        if let Some(holder) = state.used_slots(placement.worker).get(&placement.slot) {
            if *holder != job {
                return Err(bad(format!("slot {} of {} is held by {holder}", placement.slot, placement.worker)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(slots: u32) -> JobSpec {
        JobSpec { name: "count".to_string(), args: vec![], parallelism: slots, slots, checkpoint_interval_ms: 100 }
    }

    fn artifact() -> Artifact {
        Artifact { build_id: "build".to_string(), program: None }
    }

    fn apply_ok(state: &mut ClusterState, command: Command) -> Response {
        let response = state.apply(1, &command).unwrap_or_else(|refusal| panic!("{command:?} refused: {refusal}"));
        state.check_invariants().unwrap();
        response
    }

    fn save(name: &str, script: &str) -> Command {
        Command::SaveDraft { name: name.into(), script: script.into(), test_case: String::new(), note: String::new(), at_ms: 5 }
    }

    fn program(id: &str) -> ProgramRecord {
        let info = crate::programs::ProgramInfo {
            program: "p".into(),
            tethys_version: "0".into(),
            build_id: format!("build of {id}"),
            jobs: Vec::new(),
        };
        ProgramRecord { id: id.into(), info, size: 1, uploaded_at_ms: 1 }
    }

    #[test]
    fn a_program_stays_while_a_job_of_it_runs_and_is_registered_once() {
        let mut state = ClusterState::new();
        apply_ok(&mut state, Command::RegisterProgram { program: program("a1") });
        let mut again = program("a1");
        again.uploaded_at_ms = 9;
        apply_ok(&mut state, Command::RegisterProgram { program: again });
        assert_eq!(state.program("a1").unwrap().uploaded_at_ms, 1, "an upload of the same file keeps the first record");
        let artifact = Artifact { build_id: "build of a1".into(), program: Some("a1".into()) };
        let Response::JobSubmitted(job) = apply_ok(&mut state, Command::SubmitJob { spec: spec(1), artifact, at_ms: 0 }) else {
            panic!("a job's id")
        };
        let in_use = state.apply(1, &Command::DeleteProgram { id: "a1".into() });
        assert!(matches!(&in_use, Err(Refusal::BadProgram { reason, .. }) if reason.contains("has not ended")), "{in_use:?}");
        apply_ok(&mut state, Command::Transition { job, attempt: None, to: JobStatus::Cancelled });
        apply_ok(&mut state, Command::DeleteProgram { id: "a1".into() });
        assert_eq!(state.apply(1, &Command::DeleteProgram { id: "a1".into() }), Err(Refusal::UnknownProgram("a1".into())));
        for n in 0..PROGRAMS_MAX {
            apply_ok(&mut state, Command::RegisterProgram { program: program(&format!("p{n}")) });
        }
        assert!(matches!(state.apply(1, &Command::RegisterProgram { program: program("one too many") }), Err(Refusal::BadProgram { .. })));
    }

    #[test]
    fn drafts_keep_their_newest_versions_and_refuse_bad_names_and_sizes() {
        let mut state = ClusterState::new();
        assert_eq!(apply_ok(&mut state, save("orders per window", "SELECT 1")), Response::DraftSaved(1));
        assert_eq!(apply_ok(&mut state, save("orders per window", "SELECT 2")), Response::DraftSaved(2));
        let draft = state.draft("orders per window").unwrap();
        assert_eq!(draft.versions.iter().map(|v| (v.version, v.script.as_str())).collect::<Vec<_>>(), [(1, "SELECT 1"), (2, "SELECT 2")]);
        for n in 3..=(DRAFT_VERSIONS_KEPT as u32 + 2) {
            apply_ok(&mut state, save("orders per window", &format!("SELECT {n}")));
        }
        let versions = &state.draft("orders per window").unwrap().versions;
        assert_eq!((versions.len(), versions[0].version), (DRAFT_VERSIONS_KEPT, 3), "the oldest go, numbers keep growing");
        for bad in ["", " padded", "slash/no", &"x".repeat(DRAFT_NAME_MAX + 1)] {
            assert!(matches!(state.apply(1, &save(bad, "SELECT 1")), Err(Refusal::BadDraft(_))), "{bad:?}");
        }
        let huge = "x".repeat(DRAFT_BYTES_MAX + 1);
        assert!(matches!(state.apply(1, &save("huge", &huge)), Err(Refusal::BadDraft(reason)) if reason.contains("at most")));
        assert_eq!(apply_ok(&mut state, Command::DeleteDraft { name: "orders per window".into() }), Response::Done);
        assert_eq!(
            state.apply(1, &Command::DeleteDraft { name: "orders per window".into() }),
            Err(Refusal::UnknownDraft("orders per window".into()))
        );
        assert_eq!(state.drafts().count(), 0);
    }

    fn register(state: &mut ClusterState, slots: u32) -> WorkerId {
        match apply_ok(state, Command::RegisterWorker { control_addr: "c".into(), data_addr: "d".into(), slots, at_ms: 0 }) {
            Response::WorkerRegistered(id) => id,
            other => panic!("{other:?}"),
        }
    }

    fn submit(state: &mut ClusterState, slots: u32) -> JobId {
        match apply_ok(state, Command::SubmitJob { spec: spec(slots), artifact: artifact(), at_ms: 0 }) {
            Response::JobSubmitted(id) => id,
            other => panic!("{other:?}"),
        }
    }

    fn on(worker: WorkerId, slot: u32) -> Placement {
        Placement { worker, slot }
    }

    #[test]
    fn a_job_goes_through_its_life_cycle_and_frees_its_slots() {
        let mut state = ClusterState::new();
        let (w0, w1) = (register(&mut state, 2), register(&mut state, 2));
        let job = submit(&mut state, 2);
        apply_ok(&mut state, Command::Deploy { job, attempt: 1, placements: vec![on(w0, 0), on(w1, 0)], restore_from: None });
        assert_eq!(state.job(job).unwrap().status, JobStatus::Running);
        assert_eq!(state.used_slots(w0).len(), 1);
        let checkpoint = CompletedCheckpoint { id: 1, attempt: 1, location: "cp/1".into(), completed_at_ms: 5 };
        apply_ok(&mut state, Command::CompleteCheckpoint { job, checkpoint });
        apply_ok(&mut state, Command::Transition { job, attempt: Some(1), to: JobStatus::Failing { reason: "task failed".into() } });
        assert_eq!(state.used_slots(w0).len(), 1, "a failing attempt keeps its slots until stopped");
        apply_ok(&mut state, Command::Transition { job, attempt: Some(1), to: JobStatus::Restarting });
        assert!(state.used_slots(w0).is_empty());
        apply_ok(&mut state, Command::Deploy { job, attempt: 2, placements: vec![on(w1, 1), on(w0, 1)], restore_from: Some(1) });
        apply_ok(&mut state, Command::Transition { job, attempt: Some(2), to: JobStatus::Finished });
        assert!(state.free_slots().iter().all(|(_, free)| free.len() == 2));
    }

    #[test]
    fn a_worker_is_told_to_stop_only_attempts_the_masters_ended() {
        let mut state = ClusterState::new();
        let w = register(&mut state, 2);
        let (job, other) = (submit(&mut state, 1), submit(&mut state, 1));
        let unknown = JobId(99);
        apply_ok(&mut state, Command::Deploy { job, attempt: 1, placements: vec![on(w, 0)], restore_from: None });
        // Running attempt 1 stays; attempts not deployed yet (a lagging state) stay; an unknown
        // job's attempt stops.
        assert_eq!(state.stale_attempts(&[(job, 1), (job, 2), (other, 1), (unknown, 1)]), vec![(unknown, 1)]);
        // Failing: being stopped by its leader, not by the heartbeat.
        apply_ok(&mut state, Command::Transition { job, attempt: Some(1), to: JobStatus::Failing { reason: "lost".into() } });
        assert!(state.stale_attempts(&[(job, 1)]).is_empty());
        apply_ok(&mut state, Command::Transition { job, attempt: Some(1), to: JobStatus::Restarting });
        assert_eq!(state.stale_attempts(&[(job, 1)]), vec![(job, 1)]);
        apply_ok(&mut state, Command::Deploy { job, attempt: 2, placements: vec![on(w, 0)], restore_from: None });
        assert_eq!(state.stale_attempts(&[(job, 1), (job, 2)]), vec![(job, 1)]);
        apply_ok(&mut state, Command::Transition { job, attempt: None, to: JobStatus::Cancelled });
        assert_eq!(state.stale_attempts(&[(job, 2)]), vec![(job, 2)]);
    }

    #[test]
    fn a_new_leader_adopts_only_the_running_attempt() {
        let mut state = ClusterState::new();
        let w = register(&mut state, 1);
        let job = submit(&mut state, 1);
        assert!(matches!(state.apply(1, &Command::Adopt { job, attempt: 0 }), Err(Refusal::BadTransition { .. })), "nothing runs");
        apply_ok(&mut state, Command::Deploy { job, attempt: 1, placements: vec![on(w, 0)], restore_from: None });
        assert!(matches!(state.apply(3, &Command::Adopt { job, attempt: 2 }), Err(Refusal::StaleAttempt { .. })));
        assert_eq!(state.apply(3, &Command::Adopt { job, attempt: 1 }), Ok(Response::Done));
        let record = state.job(job).unwrap();
        assert_eq!((record.adoptions, record.attempt, record.deployment.as_ref().unwrap().term), (1, 1, 3));
        assert_eq!(record.status, JobStatus::Running, "an adopted attempt runs on");
    }

    #[test]
    fn terminal_jobs_stay_terminal() {
        let mut state = ClusterState::new();
        let w = register(&mut state, 1);
        let job = submit(&mut state, 1);
        apply_ok(&mut state, Command::Transition { job, attempt: None, to: JobStatus::Cancelled });
        let deploy = Command::Deploy { job, attempt: 1, placements: vec![on(w, 0)], restore_from: None };
        assert!(matches!(state.apply(1, &deploy), Err(Refusal::JobEnded { .. })));
        let revive = Command::Transition { job, attempt: None, to: JobStatus::Failed { reason: "x".into() } };
        assert!(matches!(state.apply(1, &revive), Err(Refusal::JobEnded { .. })));
        assert_eq!(state.job(job).unwrap().status, JobStatus::Cancelled);
    }

    #[test]
    fn commands_about_an_old_attempt_are_refused() {
        let mut state = ClusterState::new();
        let w = register(&mut state, 1);
        let job = submit(&mut state, 1);
        apply_ok(&mut state, Command::Deploy { job, attempt: 1, placements: vec![on(w, 0)], restore_from: None });
        let again = Command::Deploy { job, attempt: 1, placements: vec![on(w, 0)], restore_from: None };
        assert!(matches!(state.apply(1, &again), Err(Refusal::BadTransition { .. })));
        apply_ok(&mut state, Command::Transition { job, attempt: Some(1), to: JobStatus::Failing { reason: "r".into() } });
        apply_ok(&mut state, Command::Transition { job, attempt: Some(1), to: JobStatus::Restarting });
        apply_ok(&mut state, Command::Deploy { job, attempt: 2, placements: vec![on(w, 0)], restore_from: None });
        let stale_failure = Command::Transition { job, attempt: Some(1), to: JobStatus::Failing { reason: "late".into() } };
        assert_eq!(state.apply(1, &stale_failure), Err(Refusal::StaleAttempt { job, current: 2, asked: 1 }));
        let stale_checkpoint = CompletedCheckpoint { id: 9, attempt: 1, location: "x".into(), completed_at_ms: 0 };
        assert!(matches!(
            state.apply(1, &Command::CompleteCheckpoint { job, checkpoint: stale_checkpoint }),
            Err(Refusal::StaleAttempt { .. })
        ));
        let skipped = Command::Deploy { job, attempt: 5, placements: vec![on(w, 0)], restore_from: None };
        assert!(state.apply(1, &skipped).is_err());
    }

    #[test]
    fn placements_must_fit_live_workers_free_slots() {
        let mut state = ClusterState::new();
        let w = register(&mut state, 2);
        let (a, b) = (submit(&mut state, 1), submit(&mut state, 2));
        apply_ok(&mut state, Command::Deploy { job: a, attempt: 1, placements: vec![on(w, 0)], restore_from: None });
        let cases = [
            (vec![on(w, 0), on(w, 1)], "held by job 0"),
            (vec![on(w, 1), on(w, 1)], "placed twice"),
            (vec![on(w, 1), on(w, 2)], "has 2 slots"),
            (vec![on(w, 1), on(WorkerId(7), 0)], "worker 7 does not exist"),
            (vec![on(w, 1)], "1 placements for 2 slots"),
        ];
        for (placements, expected) in cases {
            let refusal = state.apply(1, &Command::Deploy { job: b, attempt: 1, placements, restore_from: None }).unwrap_err();
            assert!(refusal.to_string().contains(expected), "{refusal} should say {expected}");
        }
        state.check_invariants().unwrap();
    }

    #[test]
    fn a_lost_worker_fails_the_jobs_placed_on_it_and_its_id_is_not_reused() {
        let mut state = ClusterState::new();
        let (w0, w1) = (register(&mut state, 1), register(&mut state, 1));
        let (on_both, elsewhere) = (submit(&mut state, 2), submit(&mut state, 1));
        apply_ok(&mut state, Command::Deploy { job: on_both, attempt: 1, placements: vec![on(w0, 0), on(w1, 0)], restore_from: None });
        let w2 = register(&mut state, 1);
        apply_ok(&mut state, Command::Deploy { job: elsewhere, attempt: 1, placements: vec![on(w2, 0)], restore_from: None });
        assert_eq!(apply_ok(&mut state, Command::WorkerLost { worker: w0 }), Response::WorkerLost { failed_jobs: vec![on_both] });
        assert_eq!(state.job(on_both).unwrap().status, JobStatus::Restarting);
        assert_eq!(state.job(elsewhere).unwrap().status, JobStatus::Running);
        assert_eq!(state.free_slots(), vec![(w1, vec![0]), (w2, vec![])]);
        assert_eq!(register(&mut state, 1), WorkerId(3));
        let onto_lost = Command::Deploy { job: on_both, attempt: 2, placements: vec![on(w0, 0), on(w1, 0)], restore_from: None };
        assert!(state.apply(1, &onto_lost).unwrap_err().to_string().contains("lost"));
    }

    #[test]
    fn a_job_submitted_from_a_savepoint_restores_it_first_and_checkpoints_after_it() {
        let mut state = ClusterState::new();
        let w = register(&mut state, 1);
        let from = Command::SubmitJobFromSavepoint { spec: spec(1), artifact: artifact(), at_ms: 5, savepoint: "svp/7".into() };
        let Response::JobSubmitted(job) = apply_ok(&mut state, from) else { panic!("not submitted") };
        let record = state.job(job).unwrap();
        assert_eq!(
            (record.status.clone(), record.last_checkpoint.as_ref().map(|c| (c.id, c.location.as_str()))),
            (JobStatus::Created, Some((0, "svp/7")))
        );
        apply_ok(&mut state, Command::Deploy { job, attempt: 1, placements: vec![on(w, 0)], restore_from: Some(0) });
        let checkpoint = CompletedCheckpoint { id: 1, attempt: 1, location: "cp/1".into(), completed_at_ms: 6 };
        apply_ok(&mut state, Command::CompleteCheckpoint { job, checkpoint });
        let bad = Command::SubmitJobFromSavepoint { spec: spec(0), artifact: artifact(), at_ms: 5, savepoint: "svp/7".into() };
        assert!(state.apply(1, &bad).is_err(), "the spec is checked as for any submission");
    }

    #[test]
    fn each_failed_attempt_is_remembered_once() {
        let mut state = ClusterState::new();
        let w = register(&mut state, 1);
        let job = submit(&mut state, 1);
        let failing = |reason: &str| JobStatus::Failing { reason: reason.into() };
        apply_ok(&mut state, Command::Deploy { job, attempt: 1, placements: vec![on(w, 0)], restore_from: None });
        apply_ok(&mut state, Command::Transition { job, attempt: Some(1), to: failing("operator Map subtask 0: boom") });
        apply_ok(&mut state, Command::Transition { job, attempt: Some(1), to: JobStatus::Restarting });
        apply_ok(&mut state, Command::Deploy { job, attempt: 2, placements: vec![on(w, 0)], restore_from: None });
        apply_ok(&mut state, Command::Transition { job, attempt: Some(2), to: failing("worker 0 lost") });
        apply_ok(&mut state, Command::Transition { job, attempt: Some(2), to: JobStatus::Failed { reason: "worker 0 lost".into() } });
        let failures: Vec<(u32, &str)> = state.job(job).unwrap().failures.iter().map(|f| (f.attempt, f.reason.as_str())).collect();
        assert_eq!(failures, [(1, "operator Map subtask 0: boom"), (2, "worker 0 lost")]);
    }

    #[test]
    fn checkpoints_only_advance_and_restore_the_last() {
        let mut state = ClusterState::new();
        let w = register(&mut state, 1);
        let job = submit(&mut state, 1);
        apply_ok(&mut state, Command::Deploy { job, attempt: 1, placements: vec![on(w, 0)], restore_from: None });
        let checkpoint = |id| CompletedCheckpoint { id, attempt: 1, location: format!("cp/{id}"), completed_at_ms: id };
        apply_ok(&mut state, Command::CompleteCheckpoint { job, checkpoint: checkpoint(3) });
        assert!(matches!(
            state.apply(1, &Command::CompleteCheckpoint { job, checkpoint: checkpoint(3) }),
            Err(Refusal::StaleCheckpoint { .. })
        ));
        apply_ok(&mut state, Command::WorkerLost { worker: w });
        let w2 = register(&mut state, 1);
        let wrong = Command::Deploy { job, attempt: 2, placements: vec![on(w2, 0)], restore_from: Some(2) };
        assert!(state.apply(1, &wrong).is_err());
        apply_ok(&mut state, Command::Deploy { job, attempt: 2, placements: vec![on(w2, 0)], restore_from: Some(3) });
        assert_eq!(state.job(job).unwrap().deployment.as_ref().unwrap().restore_from, Some(3));
    }

    #[test]
    fn deployments_record_the_term_that_made_them() {
        let mut state = ClusterState::new();
        let w = register(&mut state, 1);
        let job = submit(&mut state, 1);
        state.apply(4, &Command::Deploy { job, attempt: 1, placements: vec![on(w, 0)], restore_from: None }).unwrap();
        assert_eq!(state.job(job).unwrap().deployment.as_ref().unwrap().term, 4);
        assert_eq!(state.term(), 4);
    }

    #[test]
    fn random_commands_never_break_the_invariants() {
        for seed in 0..200 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut state = ClusterState::new();
            register(&mut state, 2);
            for _ in 0..200 {
                let job = JobId(rng.u64(0..6));
                let worker = WorkerId(rng.u64(0..6));
                let placements = (0..rng.u32(1..4)).map(|_| on(WorkerId(rng.u64(0..6)), rng.u32(0..3))).collect();
                let command = match rng.u8(0..8) {
                    0 => Command::RegisterWorker { control_addr: "c".into(), data_addr: "d".into(), slots: rng.u32(1..4), at_ms: 0 },
                    1 => Command::WorkerLost { worker },
                    2 => Command::SubmitJob { spec: spec(rng.u32(1..4)), artifact: artifact(), at_ms: 0 },
                    3 => Command::Deploy { job, attempt: rng.u32(0..4), placements, restore_from: None },
                    4 => Command::Transition {
                        job,
                        attempt: rng.bool().then(|| rng.u32(0..4)),
                        to: [JobStatus::Failing { reason: "r".into() }, JobStatus::Restarting, JobStatus::Finished, JobStatus::Cancelled]
                            [rng.usize(0..4)]
                        .clone(),
                    },
                    5 => Command::Adopt { job, attempt: rng.u32(0..4) },
                    6 if rng.bool() => Command::Rescale {
                        job,
                        attempt: rng.u32(0..4),
                        parallelism: rng.u32(0..4),
                        slots: rng.u32(0..4),
                        savepoint: CompletedCheckpoint { id: rng.u64(0..10), attempt: 0, location: "sp".into(), completed_at_ms: 0 },
                    },
                    _ => Command::CompleteCheckpoint {
                        job,
                        checkpoint: CompletedCheckpoint {
                            id: rng.u64(0..10),
                            attempt: rng.u32(0..4),
                            location: "x".into(),
                            completed_at_ms: 0,
                        },
                    },
                };
                let before = state.clone();
                let ended: Vec<(JobId, JobStatus)> =
                    before.jobs().filter(|job| job.status.is_terminal()).map(|job| (job.id, job.status.clone())).collect();
                if state.apply(1, &command).is_err() {
                    assert_eq!(state, before, "seed {seed}: a refused command changed the state: {command:?}");
                }
                state.check_invariants().unwrap_or_else(|broken| panic!("seed {seed}: after {command:?}: {broken}"));
                for (id, status) in ended {
                    assert_eq!(state.job(id).unwrap().status, status, "seed {seed}: a terminal job changed");
                }
            }
        }
    }
}
