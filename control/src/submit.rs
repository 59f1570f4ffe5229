//! What the masters check of a submitted job before it reaches the Raft log, and how a job is
//! shown to clients.
//!
//! A submission is refused, with the reason, when its spec is oversized (a name over 256 bytes,
//! more than 64 arguments, an argument over 64 KiB: a SQL job's script is one), its parallelism or slots are 0 or over 4096,
//! it was built by another program than the masters' (its build id differs), or the program's
//! registry does not define it with those arguments at that parallelism (the [`JobValidator`]).
//! Only what passes is proposed, so the log never holds a job that cannot be built.

use std::sync::Arc;

use crate::rpc::proto::{AttemptFailureInfo, JobInfo, PlacementInfo, SubmitJobRequest};
use crate::state::{Artifact, JobRecord, JobSpec, JobStatus};

/// Most bytes of a job's name.
pub const NAME_BYTES_MAX: usize = 256;
/// Most arguments of a job.
pub const ARGS_MAX: usize = 64;
/// Most bytes of one argument.
pub const ARG_BYTES_MAX: usize = 64 * 1024;
/// Most subtasks per operator, and most slots, of one job.
pub const PARALLELISM_MAX: u32 = 4096;

/// Checks that the program defines job `name` with `args` at `parallelism` (e.g. by building its
/// graph and plan): what the job takes, or the reason when it does not.
pub type JobValidator = Arc<dyn Fn(&str, &[String], u32) -> Result<JobEstimate, String> + Send + Sync>;

/// What a job takes, as its plan says before it runs: its slots, its tasks, and the most memory
/// its input buffers hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct JobEstimate {
    /// Slots its plan places subtasks on.
    pub slots: u32,
    /// Its tasks (chains of operators), in plan order.
    pub tasks: Vec<TaskEstimate>,
    /// The most bytes of frames its input gates hold at once (its network buffers).
    pub buffer_bytes: u64,
}

/// A task of a job's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TaskEstimate {
    /// Its operators, head first.
    pub operators: Vec<String>,
    /// Its subtasks.
    pub parallelism: u32,
}

impl JobEstimate {
    /// What the plan of `graph` on `plan.slots` slots takes under `config`.
    pub fn of(graph: &tethys_engine::JobGraph, plan: &tethys_engine::ExecutionPlan, config: &tethys_engine::EngineConfig) -> JobEstimate {
        let tasks = plan
            .tasks
            .iter()
            .map(|task| TaskEstimate {
                operators: task.nodes.iter().map(|&node| graph.nodes[node].name.clone()).collect(),
                parallelism: task.parallelism as u32,
            })
            .collect();
        JobEstimate { slots: plan.slots as u32, tasks, buffer_bytes: plan.buffer_bytes_bound(config) }
    }
}

/// The spec and artifact of a submission that passes every check, or why it does not.
pub fn check_submission(
    request: &SubmitJobRequest,
    build_id: &str,
    validator: Option<&JobValidator>,
) -> Result<(JobSpec, Artifact), String> {
    if request.name.is_empty() {
        return Err("the job has no name".to_string());
    }
    if request.name.len() > NAME_BYTES_MAX {
        return Err(format!("the job's name is {} bytes, over the limit of {NAME_BYTES_MAX}", request.name.len()));
    }
    if request.args.len() > ARGS_MAX {
        return Err(format!("the job has {} arguments, over the limit of {ARGS_MAX}", request.args.len()));
    }
    if let Some((index, arg)) = request.args.iter().enumerate().find(|(_, arg)| arg.len() > ARG_BYTES_MAX) {
        return Err(format!("argument {index} is {} bytes, over the limit of {ARG_BYTES_MAX}", arg.len()));
    }
    if request.parallelism == 0 || request.parallelism > PARALLELISM_MAX {
        return Err(format!("parallelism {} is not between 1 and {PARALLELISM_MAX}", request.parallelism));
    }
    let slots = if request.slots == 0 { request.parallelism } else { request.slots };
    if slots > PARALLELISM_MAX {
        return Err(format!("{slots} slots are more than the limit of {PARALLELISM_MAX}"));
    }
    if !request.build_id.is_empty() && request.build_id != build_id {
        return Err(format!(
            "the job was built by another program (build {}) than the masters run (build {build_id}); submit it from the same build",
            request.build_id
        ));
    }
    if let Some(validator) = validator {
        validator(&request.name, &request.args, request.parallelism).map_err(|reason| format!("job {:?}: {reason}", request.name))?;
    }
    let spec = JobSpec {
        name: request.name.clone(),
        args: request.args.clone(),
        parallelism: request.parallelism,
        slots,
        checkpoint_interval_ms: request.checkpoint_interval_ms,
    };
    Ok((spec, Artifact { build_id: build_id.to_string(), program: None }))
}

/// A job as the API shows it.
pub fn job_info(job: &JobRecord) -> JobInfo {
    let reason = match &job.status {
        JobStatus::Failing { reason } | JobStatus::Failed { reason } => reason.clone(),
        _ => String::new(),
    };
    JobInfo {
        id: job.id.0,
        name: job.spec.name.clone(),
        args: job.spec.args.clone(),
        status: job.status.name().to_string(),
        reason,
        parallelism: job.spec.parallelism,
        slots: job.spec.slots,
        attempt: job.attempt,
        last_checkpoint: job.last_checkpoint.as_ref().map_or(0, |checkpoint| checkpoint.id),
        last_checkpoint_attempt: job.last_checkpoint.as_ref().map_or(0, |checkpoint| checkpoint.attempt),
        checkpoints_completed: job.checkpoints_completed,
        submitted_at_ms: job.submitted_at_ms,
        placements: job
            .deployment
            .iter()
            .flat_map(|deployment| &deployment.placements)
            .map(|placement| PlacementInfo { worker_id: placement.worker.0, slot: placement.slot })
            .collect(),
        build_id: job.artifact.build_id.clone(),
        adoptions: job.adoptions,
        last_savepoint: job.last_savepoint.clone().unwrap_or_default(),
        program: job.artifact.program.clone().unwrap_or_default(),
        failures: job
            .failures
            .iter()
            .map(|failure| AttemptFailureInfo { attempt: failure.attempt, reason: failure.reason.clone() })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> SubmitJobRequest {
        SubmitJobRequest {
            name: "bench".into(),
            args: vec!["filter".into()],
            parallelism: 2,
            slots: 0,
            checkpoint_interval_ms: 100,
            build_id: String::new(),
            restore_from: String::new(),
            program: String::new(),
        }
    }

    fn refused(request: SubmitJobRequest, validator: Option<&JobValidator>) -> String {
        check_submission(&request, "b1", validator).unwrap_err()
    }

    #[test]
    fn a_sound_submission_becomes_a_spec_with_the_masters_build() {
        let (spec, artifact) = check_submission(&request(), "b1", None).unwrap();
        assert_eq!((spec.parallelism, spec.slots, artifact.build_id.as_str()), (2, 2, "b1"));
        let same_build = SubmitJobRequest { build_id: "b1".into(), slots: 1, ..request() };
        assert_eq!(check_submission(&same_build, "b1", None).unwrap().0.slots, 1);
    }

    #[test]
    fn oversized_and_malformed_specs_are_refused_with_the_reason() {
        assert!(refused(SubmitJobRequest { name: String::new(), ..request() }, None).contains("no name"));
        assert!(refused(SubmitJobRequest { name: "x".repeat(300), ..request() }, None).contains("300 bytes"));
        assert!(refused(SubmitJobRequest { args: vec!["a".into(); 65], ..request() }, None).contains("65 arguments"));
        let over = ARG_BYTES_MAX + 1;
        assert!(
            refused(SubmitJobRequest { args: vec!["a".repeat(over)], ..request() }, None).contains(&format!("argument 0 is {over} bytes"))
        );
        assert!(refused(SubmitJobRequest { parallelism: 0, ..request() }, None).contains("parallelism 0"));
        assert!(refused(SubmitJobRequest { parallelism: 5000, ..request() }, None).contains("parallelism 5000"));
        assert!(refused(SubmitJobRequest { slots: 9999, ..request() }, None).contains("9999 slots"));
        assert!(refused(SubmitJobRequest { build_id: "other".into(), ..request() }, None).contains("another program"));
    }

    #[test]
    fn the_program_s_registry_has_the_last_word() {
        let validator: JobValidator = Arc::new(|name, args, _| {
            if name == "bench" && args.len() == 1 {
                Ok(JobEstimate::default())
            } else {
                Err(format!("no job {name} with {} arguments", args.len()))
            }
        });
        assert!(check_submission(&request(), "b1", Some(&validator)).is_ok());
        let message = refused(SubmitJobRequest { name: "nope".into(), ..request() }, Some(&validator));
        assert_eq!(message, "job \"nope\": no job nope with 1 arguments");
    }
}
