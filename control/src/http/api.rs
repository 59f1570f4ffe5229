//! The masters' JSON API: the cluster and its jobs, as the `Control` service answers them.
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/cluster` | [`ClusterView`]: the leader and its term, the masters, the workers |
//! | `GET /api/jobs` | [`JobList`]: every job, oldest first |
//! | `GET /api/jobs/{id}` | [`JobView`], or 404 |
//! | `POST /api/jobs` with a [`SubmitJob`] | 201 and [`Submitted`] (and `Location: /api/jobs/{id}`), or 400 with the reason the masters refused it |
//! | `POST /api/jobs/preview` with a [`SubmitJob`] | [`JobPreview`]: what it would take (slots, tasks, placement, memory), checked as a submission is; nothing submitted |
//! | `POST /api/jobs/{id}/cancel` | [`JobView`] as cancelled; 404 for an unknown job, 409 for one that has ended |
//! | `POST /api/jobs/{id}/savepoint` | [`SavepointView`]; with `{"stop": true}` the job stops after it |
//! | `POST /api/jobs/{id}/rescale` | [`JobView`] restarted at the new parallelism from a savepoint |
//! | `GET /api/jobs/{id}/live` | `JobLiveView` (`crate::live`): tasks, edges, live figures, history, the bottleneck; 409 unless running |
//! | `GET /api/jobs/{id}/checkpoints/{checkpoint}` | `CheckpointDetails` (`crate::live`): a completed checkpoint with each subtask's part (the newest 20) |
//! | `GET /api/workers/{id}/logs?q=&level=&after=&limit=` | [`LogsView`]: the newest matching lines of the worker's log; 404 for an unknown worker, 503 when it does not answer |
//!
//! Each handler calls the same method of `Control` a gRPC client reaches, on the master's own
//! service, so what holds for gRPC holds here: any master answers reads from its state, and a
//! follower forwards a submission or a cancellation to the leader (503 when it knows none).

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tonic::{Code, Request};

use super::ApiError;
use crate::rpc::proto::control_server::Control;
use crate::rpc::proto::{
    CheckpointRequest, ClusterReply, ClusterRequest, JobInfo, JobRequest, ListJobsRequest, LogsRequest, RescaleRequest, SavepointRequest,
    SubmitJobRequest, WorkerLogsRequest,
};

/// The cluster as the answering master knows it (`GET /api/cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// The leader's id; null when the answering master knows none.
    pub leader: Option<u64>,
    /// The leader's gRPC address; null when it knows none.
    pub leader_addr: Option<String>,
    /// The Raft term the answering master is in.
    pub term: u64,
    /// The master that answered.
    pub answered_by: u64,
    /// The index of the last log entry the answering master applied.
    pub applied_index: u64,
    /// Every master of the group.
    pub masters: Vec<MasterView>,
    /// Every registered worker, alive or lost, by id.
    pub workers: Vec<WorkerView>,
}

/// A master of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MasterView {
    /// Its id.
    pub id: u64,
    /// Its gRPC address.
    pub addr: String,
    /// Whether it is the leader the answering master knows.
    pub leader: bool,
    /// Whether the answering master reached it in its last probe (every second; itself: always).
    pub reachable: bool,
    /// Milliseconds since the answering master last reached it; null when it never has.
    pub seen_ms_ago: Option<u64>,
    /// Its term, as it said when last reached.
    pub term: u64,
    /// The leader it knew when last reached; null: none.
    pub knows_leader: Option<u64>,
    /// The index of the last log entry it applied, when last reached.
    pub applied_index: u64,
    /// Why the last probe failed, if it did.
    pub error: Option<String>,
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerView {
    /// Its id (never reused).
    pub id: u64,
    /// Where masters reach it.
    pub control_addr: String,
    /// Where other workers reach it.
    pub data_addr: String,
    /// Slots it offers.
    pub slots: u32,
    /// Slots holding a subtask of a job.
    pub slots_used: u32,
    /// False once the leader declared it lost (no heartbeat in time).
    pub alive: bool,
}

/// A job (`GET /api/jobs/{id}`, an entry of `GET /api/jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// Its id.
    pub id: u64,
    /// Its name in the program's registry.
    pub name: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// `created`, `running`, `failing`, `restarting`, `finished`, `failed` or `cancelled`.
    pub status: String,
    /// Why it is failing or failed; null otherwise.
    pub reason: Option<String>,
    /// Parallelism of its operators.
    pub parallelism: u32,
    /// Slots it takes.
    pub slots: u32,
    /// Its latest attempt (0 before its first deployment).
    pub attempt: u32,
    /// Its newest completed checkpoint; null before the first.
    pub last_checkpoint: Option<u64>,
    /// The attempt that took its newest completed checkpoint; null before the first.
    pub last_checkpoint_attempt: Option<u32>,
    /// Checkpoints completed (committed by the masters) so far.
    pub checkpoints_completed: u64,
    /// When it was submitted (the leader's clock, milliseconds since the Unix epoch).
    pub submitted_at_ms: u64,
    /// The build id of the program it runs.
    pub build_id: String,
    /// Where its slots run, plan slot `i` at index `i` (empty while not deployed).
    pub placements: Vec<PlacementView>,
    /// How many times a new leader adopted its running attempt (no restart).
    pub adoptions: u64,
    /// The newest savepoint taken through the masters, if any.
    pub last_savepoint: Option<String>,
    /// Why its attempts failed, oldest first (the newest 20).
    pub failures: Vec<FailureView>,
    /// The uploaded program it is a job of; null: the masters' own program.
    #[serde(default)]
    pub program: Option<String>,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailureView {
    /// The attempt.
    pub attempt: u32,
    /// What the engine said: the operator and subtask, and the error.
    pub reason: String,
}

/// `POST /api/jobs/{id}/savepoint`'s body (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SavepointAsk {
    /// Stop the job once the savepoint is complete.
    #[serde(default)]
    pub stop: bool,
    /// Where it goes on the leader's storage (default: the job's savepoints directory).
    #[serde(default)]
    pub dir: Option<String>,
}

/// A savepoint taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SavepointView {
    /// Its directory.
    pub path: String,
    /// The job after it.
    pub job: Option<JobView>,
}

/// Where one slot of a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlacementView {
    /// The worker's id.
    pub worker: u64,
    /// The worker's slot.
    pub slot: u32,
}

/// Every job (`GET /api/jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobList {
    /// Oldest first.
    pub jobs: Vec<JobView>,
}

/// A job to submit (the body of `POST /api/jobs`); unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// The job's name in the program's registry.
    pub name: String,
    /// Its arguments (default none).
    #[serde(default)]
    pub args: Vec<String>,
    /// Parallelism of its operators (default 1).
    #[serde(default = "one")]
    pub parallelism: u32,
    /// Slots it takes (default: its parallelism).
    #[serde(default)]
    pub slots: Option<u32>,
    /// Checkpoint interval in milliseconds (default: no checkpoints).
    #[serde(default)]
    pub checkpoint_interval_ms: Option<u64>,
    /// The build id of the program it was written for (default: the masters' own build); a job of
    /// another build is refused.
    #[serde(default)]
    pub build_id: Option<String>,
    /// A savepoint (or retained checkpoint) directory to start from, e.g. a job's
    /// `last_savepoint` (default: from the start); refused unless it restores into the job.
    #[serde(default)]
    pub restore_from: Option<String>,
    /// The uploaded program it is a job of (its id, from `GET /api/programs`; default: the
    /// masters' own program).
    #[serde(default)]
    pub program: Option<String>,
}

fn one() -> u32 {
    1
}

/// What a job would take, checked as a submission but not submitted (`POST /api/jobs/preview`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobPreview {
    /// Slots it takes.
    pub slots: u32,
    /// Its tasks (chains of operators) with their subtasks, as its plan chains them.
    pub tasks: Vec<crate::submit::TaskEstimate>,
    /// Where the masters would place it now: workers and how many of their free slots.
    pub workers: Vec<WorkerShare>,
    /// Whether the live workers have the slots free.
    pub fits: bool,
    /// Why it does not fit, when it does not.
    pub problem: Option<String>,
    /// The most bytes its input buffers hold at once (frames in flight, every channel at its credit bound).
    pub buffer_bytes: u64,
    /// The state it starts with: the size of the savepoint it restores, if any.
    pub state_bytes: Option<u64>,
    /// Buffers and state together: the memory its subtasks need beyond their code and working records.
    pub memory_bytes: u64,
}

/// A worker's part of a placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerShare {
    /// The worker.
    pub worker: u64,
    /// Its slots the job would take.
    pub slots: u32,
}

/// A job accepted (the answer to `POST /api/jobs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Submitted {
    /// Its id.
    pub job: u64,
}

impl From<ClusterReply> for ClusterView {
    fn from(reply: ClusterReply) -> ClusterView {
        let known = !reply.leader_addr.is_empty();
        let leader = known.then_some(reply.leader_id);
        ClusterView {
            leader,
            leader_addr: known.then_some(reply.leader_addr),
            term: reply.term,
            answered_by: reply.answered_by,
            applied_index: reply.applied_index,
            masters: reply
                .masters
                .into_iter()
                .map(|master| MasterView {
                    leader: leader == Some(master.id),
                    id: master.id,
                    addr: master.addr,
                    reachable: master.reachable,
                    seen_ms_ago: master.seen_ms_ago,
                    term: master.term,
                    knows_leader: master.leader_id,
                    applied_index: master.applied_index,
                    error: (!master.error.is_empty()).then_some(master.error),
                })
                .collect(),
            workers: reply
                .workers
                .into_iter()
                .map(|worker| WorkerView {
                    id: worker.id,
                    control_addr: worker.control_addr,
                    data_addr: worker.data_addr,
                    slots: worker.slots,
                    slots_used: worker.slots_used,
                    alive: worker.alive,
                })
                .collect(),
        }
    }
}

impl From<JobInfo> for JobView {
    fn from(job: JobInfo) -> JobView {
        JobView {
            id: job.id,
            name: job.name,
            args: job.args,
            status: job.status,
            reason: (!job.reason.is_empty()).then_some(job.reason),
            parallelism: job.parallelism,
            slots: job.slots,
            attempt: job.attempt,
            last_checkpoint: (job.last_checkpoint != 0).then_some(job.last_checkpoint),
            last_checkpoint_attempt: (job.last_checkpoint != 0).then_some(job.last_checkpoint_attempt),
            checkpoints_completed: job.checkpoints_completed,
            submitted_at_ms: job.submitted_at_ms,
            build_id: job.build_id,
            adoptions: job.adoptions,
            last_savepoint: (!job.last_savepoint.is_empty()).then_some(job.last_savepoint),
            program: (!job.program.is_empty()).then_some(job.program),
            failures: job.failures.into_iter().map(|failure| FailureView { attempt: failure.attempt, reason: failure.reason }).collect(),
            placements: job
                .placements
                .into_iter()
                .map(|placement| PlacementView { worker: placement.worker_id, slot: placement.slot })
                .collect(),
        }
    }
}

impl From<SubmitJob> for SubmitJobRequest {
    fn from(job: SubmitJob) -> SubmitJobRequest {
        SubmitJobRequest {
            name: job.name,
            args: job.args,
            parallelism: job.parallelism,
            slots: job.slots.unwrap_or(0),
            checkpoint_interval_ms: job.checkpoint_interval_ms.unwrap_or(0),
            // Empty: the masters' own build.
            build_id: job.build_id.unwrap_or_default(),
            restore_from: job.restore_from.unwrap_or_default(),
            program: job.program.unwrap_or_default(),
        }
    }
}

/// The API's routes, answered by `control` (a master's `Control` service).
pub fn router<C: Control + Clone>(control: C) -> Router {
    Router::new()
        .route("/api/cluster", get(cluster::<C>))
        .route("/api/jobs", get(list_jobs::<C>).post(submit_job::<C>))
        .route("/api/jobs/preview", post(preview_job::<C>))
        .route("/api/jobs/{id}", get(job_status::<C>))
        .route("/api/jobs/{id}/cancel", post(cancel_job::<C>))
        .route("/api/jobs/{id}/savepoint", post(savepoint::<C>))
        .route("/api/jobs/{id}/rescale", post(rescale::<C>))
        .route("/api/jobs/{id}/live", get(job_live::<C>))
        .route("/api/jobs/{id}/checkpoints/{checkpoint}", get(checkpoint_details::<C>))
        .route("/api/workers/{id}/logs", get(worker_logs::<C>))
        .with_state(control)
}

#[utoipa::path(get, path = "/api/cluster", tag = "cluster",
    responses((status = 200, description = "The cluster as the answering master knows it", body = ClusterView),
              (status = 401, description = "No or a wrong token", body = super::openapi::ErrorBody)))]
async fn cluster<C: Control>(State(control): State<C>) -> Result<Json<ClusterView>, ApiError> {
    let reply = control.cluster(Request::new(ClusterRequest {})).await?;
    Ok(Json(reply.into_inner().into()))
}

#[utoipa::path(get, path = "/api/jobs", tag = "jobs",
    responses((status = 200, description = "Every job, oldest first", body = JobList),
              (status = 401, description = "No or a wrong token", body = super::openapi::ErrorBody)))]
async fn list_jobs<C: Control>(State(control): State<C>) -> Result<Json<JobList>, ApiError> {
    let reply = control.list_jobs(Request::new(ListJobsRequest {})).await?;
    Ok(Json(JobList { jobs: reply.into_inner().jobs.into_iter().map(JobView::from).collect() }))
}

#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs", params(("id" = u64, Path, description = "The job's id")),
    responses((status = 200, description = "The job", body = JobView),
              (status = 400, description = "A job id that is no number", body = super::openapi::ErrorBody),
              (status = 404, description = "No such job", body = super::openapi::ErrorBody)))]
async fn job_status<C: Control>(State(control): State<C>, id: Result<Path<u64>, PathRejection>) -> Result<Json<JobView>, ApiError> {
    let job_id = job_id(id)?;
    let reply = control.job_status(Request::new(JobRequest { job_id })).await?;
    Ok(Json(reply.into_inner().into()))
}

#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs", params(("id" = u64, Path, description = "The job's id")),
    responses((status = 200, description = "The job, cancelled", body = JobView),
              (status = 404, description = "No such job", body = super::openapi::ErrorBody),
              (status = 409, description = "The job has ended", body = super::openapi::ErrorBody),
              (status = 503, description = "No leader known", body = super::openapi::ErrorBody)))]
async fn cancel_job<C: Control>(State(control): State<C>, id: Result<Path<u64>, PathRejection>) -> Result<Json<JobView>, ApiError> {
    let job_id = job_id(id)?;
    let reply = control.cancel_job(Request::new(JobRequest { job_id })).await?;
    Ok(Json(reply.into_inner().into()))
}

#[utoipa::path(post, path = "/api/jobs/{id}/savepoint", tag = "jobs", params(("id" = u64, Path, description = "The job's id")),
    request_body(content = Option<SavepointAsk>, description = "Optional: stop the job after it, and where it goes"),
    responses((status = 200, description = "The savepoint taken, and the job after it", body = SavepointView),
              (status = 400, description = "A bad body", body = super::openapi::ErrorBody),
              (status = 404, description = "No such job", body = super::openapi::ErrorBody),
              (status = 409, description = "The job is not running", body = super::openapi::ErrorBody)))]
async fn savepoint<C: Control>(
    State(control): State<C>,
    id: Result<Path<u64>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SavepointView>, ApiError> {
    let job_id = job_id(id)?;
    let body = body.map_err(body_error)?;
    let ask: SavepointAsk = if body.is_empty() {
        SavepointAsk::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| ApiError::new(Code::InvalidArgument, format!("bad savepoint JSON: {error}")))?
    };
    let request = SavepointRequest { job_id, stop: ask.stop, dir: ask.dir.unwrap_or_default() };
    let reply = control.savepoint(Request::new(request)).await?.into_inner();
    Ok(Json(SavepointView { path: reply.path, job: reply.job.map(JobView::from) }))
}

#[utoipa::path(get, path = "/api/jobs/{id}/live", tag = "live", params(("id" = u64, Path, description = "The job's id")),
    responses((status = 200, description = "The running job's tasks and edges with live figures, the last minutes of them, and the bottleneck", body = crate::live::JobLiveView),
              (status = 404, description = "No such job", body = super::openapi::ErrorBody),
              (status = 409, description = "The job is not running", body = super::openapi::ErrorBody),
              (status = 503, description = "No leader known", body = super::openapi::ErrorBody)))]
async fn job_live<C: Control>(
    State(control): State<C>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<crate::live::JobLiveView>, ApiError> {
    let job_id = job_id(id)?;
    let reply = control.job_live(Request::new(JobRequest { job_id })).await?.into_inner();
    let view = serde_json::from_str(&reply.json)
        .map_err(|error| ApiError::new(Code::Internal, format!("the leader's live view does not parse: {error}")))?;
    Ok(Json(view))
}

#[utoipa::path(get, path = "/api/jobs/{id}/checkpoints/{checkpoint}", tag = "live",
    params(("id" = u64, Path, description = "The job's id"), ("checkpoint" = u64, Path, description = "The checkpoint's id")),
    responses((status = 200, description = "The checkpoint with each subtask's part (acknowledgement, alignment, snapshot), for a per-subtask timeline", body = crate::live::CheckpointDetails),
              (status = 400, description = "A bad id", body = super::openapi::ErrorBody),
              (status = 404, description = "No such job, or the checkpoint's parts are not kept (only the newest 20 the leader completed)", body = super::openapi::ErrorBody),
              (status = 503, description = "No leader known", body = super::openapi::ErrorBody)))]
async fn checkpoint_details<C: Control>(
    State(control): State<C>,
    ids: Result<Path<(u64, u64)>, PathRejection>,
) -> Result<Json<crate::live::CheckpointDetails>, ApiError> {
    let Path((job_id, checkpoint_id)) =
        ids.map_err(|rejection| ApiError::new(Code::InvalidArgument, format!("bad job or checkpoint id: {}", rejection.body_text())))?;
    let reply = control.checkpoint_details(Request::new(CheckpointRequest { job_id, checkpoint_id })).await?.into_inner();
    let details = serde_json::from_str(&reply.json)
        .map_err(|error| ApiError::new(Code::Internal, format!("the leader's checkpoint does not parse: {error}")))?;
    Ok(Json(details))
}

/// `GET /api/workers/{id}/logs`'s query: what to search for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Text the line holds (level, module, message or fields), ignoring case.
    pub q: Option<String>,
    /// The least severe level shown: error, warn, info, debug or trace.
    pub level: Option<String>,
    /// Only lines after this sequence number (the `next_seq` of an earlier answer, to follow).
    pub after: Option<u64>,
    /// At most this many of the newest matching lines (default 200, at most 5,000).
    pub limit: Option<u32>,
}

/// A worker's log lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogsView {
    /// The worker.
    pub worker: u64,
    /// The matching lines, oldest first.
    pub lines: Vec<LogLineView>,
    /// The sequence number the worker's next line gets: `after` to follow from.
    pub next_seq: u64,
    /// Lines the worker dropped so far to keep its log bounded.
    pub dropped: u64,
    /// False when the worker's process keeps no log.
    pub kept: bool,
}

/// A line of a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLineView {
    /// Its place in the process's log, from 1.
    pub seq: u64,
    /// When it was logged (milliseconds since the Unix epoch).
    pub time_ms: u64,
    /// ERROR, WARN, INFO, DEBUG or TRACE.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// Its message.
    pub message: String,
    /// Its other fields, `name=value` space-separated.
    pub fields: String,
}

#[utoipa::path(get, path = "/api/workers/{id}/logs", tag = "cluster",
    params(("id" = u64, Path, description = "The worker's id"), LogsQuery),
    responses((status = 200, description = "The newest matching lines of the worker's log, oldest first", body = LogsView),
              (status = 400, description = "A bad id, level or query", body = super::openapi::ErrorBody),
              (status = 404, description = "No such worker", body = super::openapi::ErrorBody),
              (status = 503, description = "The worker did not answer", body = super::openapi::ErrorBody)))]
async fn worker_logs<C: Control>(
    State(control): State<C>,
    id: Result<Path<u64>, PathRejection>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Json<LogsView>, ApiError> {
    let worker_id = id.map_err(|rejection| ApiError::new(Code::InvalidArgument, format!("bad worker id: {}", rejection.body_text())))?.0;
    let Query(query) =
        query.map_err(|rejection| ApiError::new(Code::InvalidArgument, format!("bad log query: {}", rejection.body_text())))?;
    let request = WorkerLogsRequest {
        worker_id,
        query: Some(LogsRequest {
            contains: query.q.unwrap_or_default(),
            min_level: query.level.unwrap_or_default(),
            after_seq: query.after.unwrap_or(0),
            limit: query.limit.unwrap_or(0),
        }),
    };
    let reply = control.worker_logs(Request::new(request)).await?.into_inner();
    Ok(Json(LogsView {
        worker: worker_id,
        lines: reply
            .lines
            .into_iter()
            .map(|line| LogLineView {
                seq: line.seq,
                time_ms: line.time_ms,
                level: line.level,
                target: line.target,
                message: line.message,
                fields: line.fields,
            })
            .collect(),
        next_seq: reply.next_seq,
        dropped: reply.dropped,
        kept: reply.kept,
    }))
}

/// `POST /api/jobs/{id}/rescale`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescaleAsk {
    /// The new parallelism.
    pub parallelism: u32,
}

#[utoipa::path(post, path = "/api/jobs/{id}/rescale", tag = "jobs", params(("id" = u64, Path, description = "The job's id")),
    request_body = RescaleAsk,
    responses((status = 200, description = "The job, restarted at the new parallelism from a savepoint", body = JobView),
              (status = 400, description = "A bad body or parallelism", body = super::openapi::ErrorBody),
              (status = 404, description = "No such job", body = super::openapi::ErrorBody),
              (status = 409, description = "The job is not running", body = super::openapi::ErrorBody)))]
async fn rescale<C: Control>(
    State(control): State<C>,
    id: Result<Path<u64>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<JobView>, ApiError> {
    let job_id = job_id(id)?;
    let ask: RescaleAsk = serde_json::from_slice(&body.map_err(body_error)?)
        .map_err(|error| ApiError::new(Code::InvalidArgument, format!("bad rescale JSON: {error}")))?;
    let reply = control.rescale(Request::new(RescaleRequest { job_id, parallelism: ask.parallelism })).await?;
    Ok(Json(reply.into_inner().into()))
}

#[utoipa::path(post, path = "/api/jobs", tag = "jobs", request_body = SubmitJob,
    responses((status = 201, description = "Accepted; `Location` is the job's path", body = Submitted),
              (status = 400, description = "A bad body, or a job the masters refuse (unknown name, parallelism, build)", body = super::openapi::ErrorBody),
              (status = 413, description = "A body over 1 MiB", body = super::openapi::ErrorBody),
              (status = 503, description = "No leader known", body = super::openapi::ErrorBody)))]
async fn submit_job<C: Control>(
    State(control): State<C>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, [(header::HeaderName, String); 1], Json<Submitted>), ApiError> {
    let job = parse_submission(&body.map_err(body_error)?)?;
    let reply = control.submit_job(Request::new(job.into())).await?.into_inner();
    let location = [(header::LOCATION, format!("/api/jobs/{}", reply.job_id))];
    Ok((StatusCode::CREATED, location, Json(Submitted { job: reply.job_id })))
}

#[utoipa::path(post, path = "/api/jobs/preview", tag = "jobs", request_body = SubmitJob,
    responses((status = 200, description = "What the job would take: slots, tasks, placement, memory", body = JobPreview),
              (status = 400, description = "A bad body, or a job the masters would refuse (unknown name, arguments, parallelism)", body = super::openapi::ErrorBody)))]
async fn preview_job<C: Control>(State(control): State<C>, body: Result<Bytes, BytesRejection>) -> Result<Json<JobPreview>, ApiError> {
    let job = parse_submission(&body.map_err(body_error)?)?;
    let reply = control.preview_job(Request::new(job.into())).await?.into_inner();
    let preview = serde_json::from_str(&reply.json).map_err(|error| ApiError::new(Code::Internal, format!("a bad preview: {error}")))?;
    Ok(Json(preview))
}

/// The job of a body, or 400 with what is wrong with its JSON.
fn parse_submission(body: &[u8]) -> Result<SubmitJob, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::new(Code::InvalidArgument, format!("bad job JSON: {error}")))
}

/// A body that could not be read: 413 when over the limit.
pub(super) fn body_error(rejection: BytesRejection) -> ApiError {
    let status = rejection.status();
    let code = if status == StatusCode::PAYLOAD_TOO_LARGE { Code::ResourceExhausted } else { Code::InvalidArgument };
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the body is over the limit of {} bytes", super::BODY_BYTES_MAX)
    } else {
        rejection.body_text()
    };
    ApiError::with_status(status, code, message)
}

fn job_id(id: Result<Path<u64>, PathRejection>) -> Result<u64, ApiError> {
    id.map(|Path(id)| id).map_err(|rejection| ApiError::new(Code::InvalidArgument, format!("bad job id: {}", rejection.body_text())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::proto::{MasterInfo, PlacementInfo, WorkerInfo};

    #[test]
    fn a_submission_takes_defaults_and_refuses_what_it_does_not_know() {
        let job = parse_submission(br#"{"name": "count", "args": ["a"]}"#).unwrap();
        let request = SubmitJobRequest::from(job);
        assert_eq!((request.parallelism, request.slots, request.checkpoint_interval_ms), (1, 0, 0));
        assert_eq!(request.build_id, "", "empty: the masters' own build");
        let full = r#"{"name":"count","args":[],"parallelism":3,"slots":4,"checkpoint_interval_ms":500,"build_id":"b1"}"#;
        let request = SubmitJobRequest::from(parse_submission(full.as_bytes()).unwrap());
        assert_eq!((request.parallelism, request.slots, request.checkpoint_interval_ms, request.build_id.as_str()), (3, 4, 500, "b1"));

        for (body, says) in [
            (&br#"{"name": "count", "paralelism": 2}"#[..], "unknown field `paralelism`"),
            (br#"{"args": []}"#, "missing field `name`"),
            (br#"{"name": "count""#, "EOF"),
            (br#"{"name": "count", "parallelism": -1}"#, "invalid value"),
        ] {
            let error = parse_submission(body).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
            assert!(error.message.contains(says), "{} should say {says}", error.message);
        }
    }

    #[test]
    fn replies_become_views() {
        let reply = ClusterReply {
            leader_id: 1,
            leader_addr: "127.0.0.1:2".into(),
            term: 4,
            masters: vec![
                MasterInfo { id: 0, addr: "127.0.0.1:1".into(), reachable: true, ..MasterInfo::default() },
                MasterInfo { id: 1, addr: "127.0.0.1:2".into(), error: "connection refused".into(), ..MasterInfo::default() },
            ],
            workers: vec![WorkerInfo {
                id: 7,
                control_addr: "127.0.0.1:9".into(),
                data_addr: "127.0.0.1".into(),
                slots: 2,
                slots_used: 1,
                alive: true,
            }],
            answered_by: 0,
            applied_index: 12,
        };
        let view = ClusterView::from(reply.clone());
        assert_eq!((view.leader, view.leader_addr.as_deref(), view.term), (Some(1), Some("127.0.0.1:2"), 4));
        assert_eq!(view.masters.iter().map(|master| master.leader).collect::<Vec<_>>(), [false, true]);
        assert_eq!(view.masters.iter().map(|master| master.reachable).collect::<Vec<_>>(), [true, false]);
        assert_eq!((view.masters[0].error.as_deref(), view.masters[1].error.as_deref()), (None, Some("connection refused")));
        assert_eq!((view.workers[0].id, view.workers[0].slots_used, view.workers[0].alive), (7, 1, true));
        let leaderless = ClusterView::from(ClusterReply { leader_id: u64::MAX, leader_addr: String::new(), ..reply });
        assert_eq!((leaderless.leader, leaderless.leader_addr), (None, None));
        assert!(leaderless.masters.iter().all(|master| !master.leader));

        let job = JobInfo {
            id: 3,
            name: "count".into(),
            status: "running".into(),
            placements: vec![PlacementInfo { worker_id: 7, slot: 1 }],
            ..JobInfo::default()
        };
        let view = JobView::from(job.clone());
        assert_eq!((view.reason, view.last_checkpoint, view.placements), (None, None, vec![PlacementView { worker: 7, slot: 1 }]));
        let failed = JobView::from(JobInfo { status: "failed".into(), reason: "lost".into(), last_checkpoint: 5, ..job });
        assert_eq!((failed.reason.as_deref(), failed.last_checkpoint), (Some("lost"), Some(5)));
    }
}
