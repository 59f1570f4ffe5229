//! `/metrics` of masters and workers, in the Prometheus text format (version 0.0.4), written with
//! the Prometheus project's client (`prometheus-client`).
//!
//! Gauges are read when scraped: a master's from its Raft node and its applied state (as far as
//! this master applied the log: a follower may lag the leader by a heartbeat), a worker's from its
//! agent and its attempts. Counters count events where they happen ([`MasterCounters`], the
//! agent's heartbeats). Every name starts with `tethys_`; a counter's ends with `_total`.
//!
//! A master's:
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `tethys_raft_term` | gauge | the Raft term this master is in |
//! | `tethys_is_leader` | gauge | 1 on the leader, 0 elsewhere |
//! | `tethys_raft_last_log_index` | gauge | the index of the last entry of this master's log |
//! | `tethys_raft_last_applied_index` | gauge | the index of the last entry this master applied |
//! | `tethys_raft_members` | gauge | voting members of the group |
//! | `tethys_workers_registered` | gauge | workers ever registered (lost ones included) |
//! | `tethys_workers_alive` / `tethys_workers_lost` | gauge | of those, alive / declared lost |
//! | `tethys_slots_total` / `tethys_slots_used` | gauge | slots of the live workers / holding a subtask |
//! | `tethys_jobs{status}` | gauge | jobs per status (every status, 0 when none) |
//! | `tethys_checkpoints_completed_total{job}` | counter | checkpoints the masters committed, per job |
//! | `tethys_submissions_total{outcome}` | counter | submissions this master accepted (as leader) or refused (its checks, or the state's) |
//! | `tethys_forwarded_calls_total` | counter | calls this master forwarded to the leader as a follower |
//!
//! A worker's:
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `tethys_worker_id` | gauge | its id (-1 until it registers) |
//! | `tethys_worker_slots` | gauge | slots it offers |
//! | `tethys_worker_attempts_running` | gauge | attempts of jobs it runs |
//! | `tethys_worker_term` | gauge | the highest Raft term it has seen |
//! | `tethys_worker_registrations_total` | counter | times it registered (more than once: it was lost and came back) |
//! | `tethys_worker_heartbeats_total` | counter | heartbeats it sent (each try at a master) |
//! | `tethys_worker_heartbeats_failed_total` | counter | of those, the ones no master answered |

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tonic::Code;

use super::ApiError;
use crate::raft::Master;
use crate::state::ClusterState;

/// Every job status, as the API names them.
const JOB_STATUSES: [&str; 7] = ["created", "running", "failing", "restarting", "finished", "failed", "cancelled"];

/// A master's counters, shared by its gRPC service (which counts) and `/metrics` (which shows).
#[derive(Debug, Clone, Default)]
pub struct MasterCounters {
    submissions: Family<[(&'static str, &'static str); 1], Counter>,
    forwarded: Counter,
}

impl MasterCounters {
    /// A submission this master committed as the leader.
    pub fn submission_accepted(&self) {
        self.submissions.get_or_create(&[("outcome", "accepted")]).inc();
    }

    /// A submission this master refused (its checks, or the state machine's).
    pub fn submission_refused(&self) {
        self.submissions.get_or_create(&[("outcome", "refused")]).inc();
    }

    /// A call this master forwarded to the leader.
    pub fn forwarded(&self) {
        self.forwarded.inc();
    }
}

/// What a master's Raft node says of itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaftGauges {
    /// Its term.
    pub term: u64,
    /// Whether it leads.
    pub leader: bool,
    /// The index of its log's last entry.
    pub last_log_index: u64,
    /// The index of the last entry it applied.
    pub last_applied_index: u64,
    /// Voting members of the group.
    pub members: usize,
}

impl RaftGauges {
    /// Of `master`, now.
    pub fn of(master: &Master) -> RaftGauges {
        let last_log_index = master.raft().metrics().borrow().last_log_index.unwrap_or(0);
        RaftGauges {
            term: master.term(),
            leader: master.is_leader(),
            last_log_index,
            last_applied_index: master.applied_index(),
            members: master.members().len(),
        }
    }
}

/// What a worker's `/metrics` shows, read when scraped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerGauges {
    /// Its id, once registered.
    pub worker_id: Option<u64>,
    /// Slots it offers.
    pub slots: u32,
    /// Attempts it runs.
    pub attempts_running: usize,
    /// Times it registered.
    pub registrations: u64,
    /// Heartbeats sent (each try at a master).
    pub heartbeats_sent: u64,
    /// Heartbeats no master answered.
    pub heartbeats_failed: u64,
    /// The highest Raft term it has seen.
    pub term: u64,
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let gauge: Gauge = Gauge::default();
    gauge.set(value);
    registry.register(name, help, gauge);
}

fn encode(registry: &Registry) -> Result<String, ApiError> {
    let mut text = String::new();
    prometheus_text::encode(&mut text, registry)
        .map_err(|error| ApiError::new(Code::Internal, format!("cannot write the metrics: {error}")))?;
    Ok(text)
}

/// A master's metrics (see the module documentation) of its Raft node, its applied `state` and its
/// counters.
pub fn master_metrics(raft: RaftGauges, state: &ClusterState, counters: &MasterCounters) -> Result<String, ApiError> {
    let mut registry = Registry::with_prefix("tethys");
    gauge(&mut registry, "raft_term", "The Raft term this master is in", saturating_i64(raft.term));
    gauge(&mut registry, "is_leader", "1 if this master is the leader, else 0", i64::from(raft.leader));
    gauge(
        &mut registry,
        "raft_last_log_index",
        "The index of the last entry of this master's Raft log",
        saturating_i64(raft.last_log_index),
    );
    gauge(
        &mut registry,
        "raft_last_applied_index",
        "The index of the last log entry this master applied",
        saturating_i64(raft.last_applied_index),
    );
    gauge(&mut registry, "raft_members", "Voting members of the master group", raft.members as i64);

    let (mut registered, mut alive, mut slots_total) = (0i64, 0i64, 0i64);
    for worker in state.workers() {
        registered += 1;
        if worker.alive {
            alive += 1;
            slots_total += i64::from(worker.slots);
        }
    }
    // A deployment holds one slot per placement, all on live workers.
    let slots_used: usize = state.jobs().filter_map(|job| job.deployment.as_ref()).map(|deployment| deployment.placements.len()).sum();
    gauge(&mut registry, "workers_registered", "Workers ever registered, lost ones included", registered);
    gauge(&mut registry, "workers_alive", "Registered workers alive", alive);
    gauge(&mut registry, "workers_lost", "Registered workers declared lost", registered - alive);
    gauge(&mut registry, "slots_total", "Slots offered by the live workers", slots_total);
    gauge(&mut registry, "slots_used", "Slots holding a subtask of a job", slots_used as i64);

    let jobs = Family::<[(&'static str, &'static str); 1], Gauge>::default();
    let checkpoints = Family::<[(&'static str, String); 1], Counter>::default();
    for status in JOB_STATUSES {
        jobs.get_or_create(&[("status", status)]).set(0);
    }
    for job in state.jobs() {
        jobs.get_or_create(&[("status", job.status.name())]).inc();
        checkpoints.get_or_create(&[("job", job.id.0.to_string())]).inc_by(job.checkpoints_completed);
    }
    registry.register("jobs", "Jobs by status", jobs);
    registry.register("checkpoints_completed", "Checkpoints the masters committed, per job", checkpoints);
    registry.register(
        "submissions",
        "Submissions this master accepted (as the leader) or refused (its checks, or the state's)",
        counters.submissions.clone(),
    );
    registry.register("forwarded_calls", "Calls this master forwarded to the leader", counters.forwarded.clone());
    encode(&registry)
}

/// A worker's metrics (see the module documentation).
pub fn worker_metrics(worker: &WorkerGauges) -> Result<String, ApiError> {
    let mut registry = Registry::with_prefix("tethys_worker");
    gauge(&mut registry, "id", "This worker's id, -1 until it registers", worker.worker_id.map_or(-1, saturating_i64));
    gauge(&mut registry, "slots", "Slots this worker offers", i64::from(worker.slots));
    gauge(&mut registry, "attempts_running", "Attempts of jobs this worker runs", worker.attempts_running as i64);
    gauge(&mut registry, "term", "The highest Raft term this worker has seen", saturating_i64(worker.term));
    registry.register("registrations", "Times this worker registered with the masters", ConstCounter::new(worker.registrations));
    registry.register("heartbeats", "Heartbeats this worker sent, each try at a master", ConstCounter::new(worker.heartbeats_sent));
    registry.register("heartbeats_failed", "Heartbeats no master answered", ConstCounter::new(worker.heartbeats_failed));
    encode(&registry)
}

fn text(metrics: Result<String, ApiError>) -> axum::response::Response {
    match metrics {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], text).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The live views of the jobs this master drives (the leader's), read when scraped.
pub type LiveViews = Arc<dyn Fn() -> Vec<crate::live::JobLiveView> + Send + Sync>;

/// The running jobs' tasks (what `GET /api/jobs/{id}/live` shows), labelled by job, task and the
/// task's operators: records in and out per second, busy and backpressured shares, watermark lag,
/// and each job's bottleneck task (-1 for none).
pub fn task_metrics(views: &[crate::live::JobLiveView]) -> Result<String, ApiError> {
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge as FloatGauge;
    type Labels = Vec<(&'static str, String)>;
    let mut registry = Registry::with_prefix("tethys_task");
    let family = || Family::<Labels, FloatGauge<f64, std::sync::atomic::AtomicU64>>::default();
    let (records_in, records_out, busy, backpressured, lag) = (family(), family(), family(), family(), family());
    let bottleneck = Family::<Labels, Gauge>::default();
    for view in views {
        bottleneck.get_or_create(&vec![("job", view.job.to_string())]).set(view.bottleneck.map_or(-1, i64::from));
        for task in &view.tasks {
            let labels = vec![("job", view.job.to_string()), ("task", task.id.to_string()), ("operators", task.operators.join(" -> "))];
            records_in.get_or_create(&labels).set(task.records_in_per_s);
            records_out.get_or_create(&labels).set(task.records_out_per_s);
            busy.get_or_create(&labels).set(task.busy);
            backpressured.get_or_create(&labels).set(task.backpressured);
            if let Some(ms) = task.watermark_lag_ms {
                lag.get_or_create(&labels).set(ms as f64);
            }
        }
    }
    registry.register("records_in_per_second", "Records a task takes in per second, over its subtasks", records_in);
    registry.register("records_out_per_second", "Records a task sends out per second, over its subtasks", records_out);
    registry.register("busy_ratio", "Share of time a task's subtasks are busy (0 to 1)", busy);
    registry.register("backpressured_ratio", "Share of time a task's subtasks wait for credit (0 to 1)", backpressured);
    registry.register("watermark_lag_milliseconds", "How far a task's watermark is behind the wall clock", lag);
    registry.register("bottleneck", "The task of a job the others wait on, -1 for none", bottleneck);
    encode(&registry)
}

/// `GET /metrics` of a master; `live`: the running jobs it drives, for their tasks' figures.
pub fn master_router(master: Master, counters: MasterCounters, live: LiveViews) -> Router {
    let scrape = async |State((master, counters, live)): State<(Master, MasterCounters, LiveViews)>| {
        let raft = RaftGauges::of(&master);
        // Two registries (their prefixes differ), one after the other in the text format.
        let metrics = master.read(|state| master_metrics(raft, state, &counters)).and_then(|text| Ok(text + &task_metrics(&live())?));
        text(metrics)
    };
    Router::new().route("/metrics", get(scrape)).with_state((master, counters, live))
}

/// `GET /metrics` of a worker, with what `read` says when scraped.
pub fn worker_router(read: impl Fn() -> WorkerGauges + Send + Sync + 'static) -> Router {
    let read: Arc<dyn Fn() -> WorkerGauges + Send + Sync> = Arc::new(read);
    let scrape = async |State(read): State<Arc<dyn Fn() -> WorkerGauges + Send + Sync>>| text(worker_metrics(&read()));
    Router::new().route("/metrics", get(scrape)).with_state(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Artifact, Command, CompletedCheckpoint, JobId, JobSpec, JobStatus, Placement, WorkerId};

    /// The value of the sample `name` (with its labels) in `text`.
    fn sample(text: &str, name: &str) -> Option<String> {
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ').map(str::to_string))
    }

    /// Every metric the Grafana dashboard (docs/grafana/tethys.json) queries is in docs/metrics.md,
    /// and every metric documented there is one a master or worker shows.
    #[test]
    fn the_dashboard_and_the_documentation_name_metrics_that_exist() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
        let documented = std::fs::read_to_string(docs.join("metrics.md")).unwrap();
        let dashboard = std::fs::read_to_string(docs.join("grafana/tethys.json")).unwrap();
        let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
        let names = |text: &str| {
            let mut names = std::collections::BTreeSet::new();
            for (start, _) in text.match_indices("tethys_") {
                let name: String = text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                // A prefix in prose (`tethys_task_*`) names no metric.
                if !name.ends_with('_') {
                    names.insert(name);
                }
            }
            names
        };
        let exprs: Vec<String> = dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|panel| panel["targets"].as_array().unwrap().clone())
            .map(|target| target["expr"].as_str().unwrap().to_string())
            .collect();
        assert!(!exprs.is_empty());
        let documented_names = names(&documented);
        for name in exprs.iter().flat_map(|expr| names(expr)) {
            assert!(documented_names.contains(&name), "the dashboard queries {name}, which docs/metrics.md does not document");
        }
        // What the code shows: a master with a worker, a job and a running task, and a worker.
        let mut state = ClusterState::new();
        state.apply(1, &Command::RegisterWorker { control_addr: "w".into(), data_addr: "d".into(), slots: 2, at_ms: 1 }).unwrap();
        let spec = JobSpec { name: "count".into(), args: vec![], parallelism: 1, slots: 1, checkpoint_interval_ms: 0 };
        state.apply(1, &Command::SubmitJob { spec, artifact: Artifact { build_id: "b".into(), program: None }, at_ms: 1 }).unwrap();
        let counters = MasterCounters::default();
        counters.submission_accepted();
        counters.forwarded();
        let raft = RaftGauges { term: 1, leader: true, last_log_index: 1, last_applied_index: 1, members: 1 };
        let task = crate::live::TaskView {
            id: 0,
            operators: vec!["Source".into()],
            parallelism: 1,
            records_in_per_s: 1.0,
            records_out_per_s: 1.0,
            busy: 0.5,
            backpressured: 0.5,
            watermark: Some(1),
            watermark_lag_ms: Some(1),
            skew: None,
            records_in: 1,
            records_out: 1,
            subtasks: Vec::new(),
            history: Vec::new(),
        };
        let view = crate::live::JobLiveView {
            job: 0,
            attempt: 1,
            sampled_at_ms: 1,
            tasks: vec![task],
            edges: Vec::new(),
            bottleneck: None,
            checkpoints: Vec::new(),
        };
        let shown = master_metrics(raft, &state, &counters).unwrap()
            + &task_metrics(&[view]).unwrap()
            + &worker_metrics(&WorkerGauges { worker_id: Some(1), ..WorkerGauges::default() }).unwrap();
        let shown_names = names(&shown);
        for name in documented_names {
            assert!(shown_names.contains(&name), "docs/metrics.md documents {name}, which no master or worker shows");
        }
    }

    #[test]
    fn running_tasks_show_their_rates_shares_and_the_bottleneck() {
        use crate::live::{JobLiveView, TaskView};
        let task = |id: u32, busy: f64, backpressured: f64| TaskView {
            id,
            operators: vec![format!("op{id}"), "Map".into()],
            parallelism: 2,
            records_in_per_s: 1500.0,
            records_out_per_s: 750.5,
            busy,
            backpressured,
            watermark: Some(10),
            watermark_lag_ms: (id == 1).then_some(2500),
            skew: Some(1.0),
            records_in: 0,
            records_out: 0,
            subtasks: Vec::new(),
            history: Vec::new(),
        };
        let view = JobLiveView {
            job: 4,
            attempt: 1,
            sampled_at_ms: 1,
            tasks: vec![task(0, 0.1, 0.9), task(1, 0.95, 0.0)],
            edges: Vec::new(),
            bottleneck: Some(1),
            checkpoints: Vec::new(),
        };
        let text = task_metrics(&[view]).unwrap();
        let labels = |task: u32| format!("{{job=\"4\",task=\"{task}\",operators=\"op{task} -> Map\"}}");
        assert_eq!(sample(&text, &format!("tethys_task_records_in_per_second{}", labels(0))).as_deref(), Some("1500.0"));
        assert_eq!(sample(&text, &format!("tethys_task_records_out_per_second{}", labels(1))).as_deref(), Some("750.5"));
        assert_eq!(sample(&text, &format!("tethys_task_backpressured_ratio{}", labels(0))).as_deref(), Some("0.9"));
        assert_eq!(sample(&text, &format!("tethys_task_watermark_lag_milliseconds{}", labels(1))).as_deref(), Some("2500.0"));
        assert_eq!(sample(&text, &format!("tethys_task_watermark_lag_milliseconds{}", labels(0))), None);
        assert_eq!(sample(&text, "tethys_task_bottleneck{job=\"4\"}").as_deref(), Some("1"));
        let empty = task_metrics(&[]).unwrap();
        assert!(!empty.contains("tethys_task_records_in_per_second{"), "{empty}");
    }

    #[test]
    fn a_master_shows_its_raft_node_workers_slots_jobs_and_counters() {
        let mut state = ClusterState::new();
        for n in 0..3 {
            let register = Command::RegisterWorker { control_addr: format!("w{n}"), data_addr: "d".into(), slots: 2, at_ms: 1 };
            state.apply(1, &register).unwrap();
        }
        state.apply(1, &Command::WorkerLost { worker: WorkerId(2) }).unwrap();
        let spec = |parallelism| JobSpec { name: "count".into(), args: vec![], parallelism, slots: parallelism, checkpoint_interval_ms: 0 };
        for parallelism in [3, 1] {
            let submit =
                Command::SubmitJob { spec: spec(parallelism), artifact: Artifact { build_id: "b".into(), program: None }, at_ms: 1 };
            state.apply(1, &submit).unwrap();
        }
        let placements = vec![
            Placement { worker: WorkerId(0), slot: 0 },
            Placement { worker: WorkerId(0), slot: 1 },
            Placement { worker: WorkerId(1), slot: 0 },
        ];
        state.apply(1, &Command::Deploy { job: JobId(0), attempt: 1, placements, restore_from: None }).unwrap();
        for id in [1, 2] {
            let checkpoint = CompletedCheckpoint { id, attempt: 1, location: format!("cp/{id}"), completed_at_ms: 2 };
            state.apply(1, &Command::CompleteCheckpoint { job: JobId(0), checkpoint }).unwrap();
        }
        state.apply(1, &Command::Transition { job: JobId(1), attempt: None, to: JobStatus::Cancelled }).unwrap();
        let counters = MasterCounters::default();
        counters.submission_accepted();
        counters.submission_accepted();
        counters.submission_refused();
        counters.forwarded();

        let raft = RaftGauges { term: 4, leader: true, last_log_index: 12, last_applied_index: 11, members: 3 };
        let text = master_metrics(raft, &state, &counters).unwrap();
        let expected = [
            ("tethys_raft_term", "4"),
            ("tethys_is_leader", "1"),
            ("tethys_raft_last_log_index", "12"),
            ("tethys_raft_last_applied_index", "11"),
            ("tethys_raft_members", "3"),
            ("tethys_workers_registered", "3"),
            ("tethys_workers_alive", "2"),
            ("tethys_workers_lost", "1"),
            ("tethys_slots_total", "4"),
            ("tethys_slots_used", "3"),
            ("tethys_jobs{status=\"created\"}", "0"),
            ("tethys_jobs{status=\"running\"}", "1"),
            ("tethys_jobs{status=\"cancelled\"}", "1"),
            ("tethys_jobs{status=\"failed\"}", "0"),
            ("tethys_checkpoints_completed_total{job=\"0\"}", "2"),
            ("tethys_checkpoints_completed_total{job=\"1\"}", "0"),
            ("tethys_submissions_total{outcome=\"accepted\"}", "2"),
            ("tethys_submissions_total{outcome=\"refused\"}", "1"),
            ("tethys_forwarded_calls_total", "1"),
        ];
        for (name, value) in expected {
            assert_eq!(sample(&text, name).as_deref(), Some(value), "{name} in\n{text}");
        }
        assert!(text.contains("# HELP tethys_raft_term The Raft term this master is in"), "{text}");
        assert!(text.contains("# TYPE tethys_jobs gauge"), "{text}");
        assert!(text.contains("# TYPE tethys_forwarded_calls_total counter"), "{text}");
    }

    #[test]
    fn a_worker_shows_its_id_once_registered() {
        let unregistered = worker_metrics(&WorkerGauges { slots: 2, ..WorkerGauges::default() }).unwrap();
        assert_eq!(sample(&unregistered, "tethys_worker_id").as_deref(), Some("-1"));
        let worker = WorkerGauges {
            worker_id: Some(5),
            slots: 2,
            attempts_running: 1,
            registrations: 2,
            heartbeats_sent: 40,
            heartbeats_failed: 3,
            term: 7,
        };
        let text = worker_metrics(&worker).unwrap();
        for (name, value) in [
            ("tethys_worker_id", "5"),
            ("tethys_worker_slots", "2"),
            ("tethys_worker_attempts_running", "1"),
            ("tethys_worker_term", "7"),
            ("tethys_worker_registrations_total", "2"),
            ("tethys_worker_heartbeats_total", "40"),
            ("tethys_worker_heartbeats_failed_total", "3"),
        ] {
            assert_eq!(sample(&text, name).as_deref(), Some(value), "{name} in\n{text}");
        }
    }
}
