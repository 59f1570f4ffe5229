//! `StreamEnvironment`: where a job is defined and executed.
//!
//! Building a job only records it: each DataStream call adds a node (and the edge to it) to the
//! logical graph, together with the typed code that will run it. `execute` validates the settings
//! and the graph, plans it and runs it to completion on this process's slots; `plan` and `explain`
//! validate exactly as `execute` does, so a job they accept starts.

use std::cell::RefCell;
use std::rc::Rc;

use thiserror::Error;

use super::stream::DataStream;
use crate::config::{ConfigError, EngineConfig};
use crate::error::JobError;
use crate::frame::Record;
use crate::graph::logical::{GraphFactories, JobGraph, NodeFactory, NodeSpec, OperatorKind};
use crate::graph::plan::{ExecutionPlan, GraphError};
use crate::runtime::job::{run_job, ControlCommand, JobResult, RunsOn};
use crate::source::collection::CollectionSource;
use crate::source::{Source, TypedSourceReader};

/// The graph under construction, shared by the environment and its streams.
pub(crate) struct GraphBuilder {
    pub graph: JobGraph,
    pub factories: GraphFactories,
}

impl GraphBuilder {
    pub(crate) fn add_node(&mut self, name: String, kind: OperatorKind, keyed: bool, factory: NodeFactory) -> usize {
        let id = self.graph.nodes.len();
        self.graph.nodes.push(NodeSpec {
            id,
            name,
            kind,
            parallelism: None,
            keyed,
            side_outputs: Vec::new(),
            idle_timeout_ms: None,
            watermark_alignment: None,
            uid: None,
            params: String::new(),
        });
        self.factories.nodes.push(factory);
        id
    }
}

/// Why a job cannot be planned: its settings or its graph.
#[derive(Debug, Error)]
pub enum PlanError {
    /// The engine configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The job graph cannot run.
    #[error(transparent)]
    Graph(#[from] GraphError),
}

/// Defines and runs jobs on this process's slots.
pub struct StreamEnvironment {
    builder: Rc<RefCell<GraphBuilder>>,
    config: EngineConfig,
}

impl Default for StreamEnvironment {
    fn default() -> Self {
        Self::new(EngineConfig::default())
    }
}

impl StreamEnvironment {
    /// An environment with the given runtime settings.
    pub fn new(config: EngineConfig) -> Self {
        let graph = JobGraph {
            nodes: Vec::new(),
            edges: Vec::new(),
            default_parallelism: config.parallelism,
            max_parallelism: config.max_parallelism,
        };
        StreamEnvironment { builder: Rc::new(RefCell::new(GraphBuilder { graph, factories: GraphFactories::default() })), config }
    }

    /// The runtime settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Adds a source.
    pub fn source<T: Record, S: Source<T>>(&self, name: &str, source: S) -> DataStream<T> {
        let source = std::sync::Arc::new(source);
        let factory = NodeFactory::Source(std::sync::Arc::new(move |context| {
            Ok(Box::new(TypedSourceReader(source.create_reader(context)?)) as Box<dyn crate::source::ErasedSourceReader>)
        }));
        let node = self.builder.borrow_mut().add_node(format!("Source: {name}"), OperatorKind::Source, false, factory);
        DataStream::new(Rc::clone(&self.builder), node)
    }

    /// Adds a source over the given records.
    pub fn from_collection<T: Record + Clone + Sync>(&self, records: impl Into<Vec<T>>) -> DataStream<T> {
        self.source("Collection", CollectionSource::new(records))
    }

    /// The logical graph defined so far.
    pub fn job_graph(&self) -> JobGraph {
        let mut graph = self.builder.borrow().graph.clone();
        graph.default_parallelism = self.config.parallelism;
        graph.max_parallelism = self.config.max_parallelism;
        graph
    }

    /// The code behind the graph defined so far.
    pub(crate) fn factories(&self) -> crate::graph::logical::GraphFactories {
        self.builder.borrow().factories.clone()
    }

    /// The execution plan of the job defined so far, after validating the settings and the graph
    /// as `execute` does.
    pub fn plan(&self) -> Result<ExecutionPlan, PlanError> {
        self.validated_plan(&self.job_graph())
    }

    /// The logical graph and the execution plan as text; refuses what `execute` refuses.
    pub fn explain(&self) -> Result<String, PlanError> {
        let graph = self.job_graph();
        Ok(self.validated_plan(&graph)?.explain(&graph))
    }

    /// Runs the job to completion.
    pub fn execute(&self, job: &str) -> Result<JobResult, JobError> {
        let (graph, plan) = self.graph_and_plan(job)?;
        let factories = self.builder.borrow().factories.clone();
        run_job(job, graph, factories, plan, self.config.clone(), None, RunsOn::Here(crate::runtime::live::LiveBoard::new()))
    }

    /// Runs the job to completion on the workers of `cluster` (this process is its coordinator:
    /// it drives the job, takes checkpoints and commits sinks, and runs no subtask). Every
    /// worker must run this same program and define the job as the cluster's `JobSpec` says;
    /// the engine configuration is this environment's, with `slots` set to the workers' total.
    pub fn execute_on_cluster(
        &self,
        job: &str,
        cluster: std::sync::Arc<crate::runtime::cluster::ClusterCoordinator>,
    ) -> Result<JobResult, JobError> {
        let (graph, plan, config) = self.cluster_plan(job, &cluster)?;
        run_job(job, graph, self.factories(), plan, config, None, RunsOn::Cluster(cluster))
    }

    /// Whether this job (as defined now: e.g. at another parallelism) can start from the
    /// checkpoint or savepoint at `path`; else why not (a source at another parallelism, state
    /// of an operator it does not have, another maximum parallelism).
    pub fn check_restore(&self, path: &std::path::Path) -> Result<(), String> {
        let snapshot = crate::runtime::snapshot::JobSnapshot::read_path(path)
            .map_err(|error| format!("cannot read the checkpoint at {}: {error}", path.display()))?;
        crate::runtime::snapshot::RestoreState::prepare(&snapshot, &self.job_graph()).map(drop).map_err(|error| error.to_string())
    }

    /// The graph, the plan and the configuration of the job on the workers of `cluster`.
    fn cluster_plan(
        &self,
        job: &str,
        cluster: &crate::runtime::cluster::ClusterCoordinator,
    ) -> Result<(JobGraph, ExecutionPlan, crate::EngineConfig), JobError> {
        let graph = self.job_graph();
        let mut config = self.config.clone();
        config.slots = cluster.total_slots();
        config.validate().map_err(|source| JobError::Config { job: job.to_string(), source })?;
        let plan = ExecutionPlan::build(&graph, config.slots).map_err(|source| JobError::Graph { job: job.to_string(), source })?;
        Ok((graph, plan, config))
    }

    /// As [`execute_on_cluster`](Self::execute_on_cluster), on a thread of its own, with a client
    /// to take savepoints, stop or cancel the job, and wait for its result.
    pub fn execute_on_cluster_async(
        &self,
        job: &str,
        cluster: std::sync::Arc<crate::runtime::cluster::ClusterCoordinator>,
    ) -> Result<JobClient, JobError> {
        let (graph, plan, config) = self.cluster_plan(job, &cluster)?;
        let factories = self.factories();
        let (control, commands) = std::sync::mpsc::channel();
        let name = job.to_string();
        let live = cluster.live_board();
        let driver = std::thread::Builder::new()
            .name(format!("tethys-job-{job}"))
            .spawn(move || run_job(&name, graph, factories, plan, config, Some(commands), RunsOn::Cluster(cluster)))
            .map_err(|error| JobError::Runtime { job: job.to_string(), reason: format!("cannot start the job's thread: {error}") })?;
        Ok(JobClient { job: job.to_string(), control, driver, live })
    }

    /// Starts the job on a thread of its own and returns a client to take savepoints, stop or
    /// cancel it, and wait for its result. Refuses what `execute` refuses before starting.
    pub fn execute_async(&self, job: &str) -> Result<JobClient, JobError> {
        let (graph, plan) = self.graph_and_plan(job)?;
        let factories = self.builder.borrow().factories.clone();
        let config = self.config.clone();
        let (control, commands) = std::sync::mpsc::channel();
        let name = job.to_string();
        let live = crate::runtime::live::LiveBoard::new();
        let board = std::sync::Arc::clone(&live);
        let driver = std::thread::Builder::new()
            .name(format!("tethys-job-{job}"))
            .spawn(move || run_job(&name, graph, factories, plan, config, Some(commands), RunsOn::Here(board)))
            .map_err(|error| JobError::Runtime { job: job.to_string(), reason: format!("cannot start the job's thread: {error}") })?;
        Ok(JobClient { job: job.to_string(), control, driver, live })
    }

    fn graph_and_plan(&self, job: &str) -> Result<(JobGraph, ExecutionPlan), JobError> {
        let graph = self.job_graph();
        let plan = self.validated_plan(&graph).map_err(|error| match error {
            PlanError::Config(source) => JobError::Config { job: job.to_string(), source },
            PlanError::Graph(source) => JobError::Graph { job: job.to_string(), source },
        })?;
        Ok((graph, plan))
    }

    /// The one validation of `plan`, `explain` and `execute`: settings first, then the graph.
    fn validated_plan(&self, graph: &JobGraph) -> Result<ExecutionPlan, PlanError> {
        self.config.validate()?;
        Ok(ExecutionPlan::build(graph, self.config.slots)?)
    }
}

/// A running job started with `StreamEnvironment::execute_async`.
pub struct JobClient {
    job: String,
    control: std::sync::mpsc::Sender<ControlCommand>,
    driver: std::thread::JoinHandle<Result<JobResult, JobError>>,
    live: std::sync::Arc<crate::runtime::live::LiveBoard>,
}

impl JobClient {
    /// The live figures of the job's subtasks (on a cluster, as its workers last sent them).
    pub fn live(&self) -> Vec<crate::runtime::live::SubtaskLive> {
        self.live.readings()
    }

    /// Takes a savepoint into the checkpoint store at `dir` (created if needed) and returns the
    /// savepoint's directory once it is complete; the job goes on. Start a job from it with
    /// `EngineConfig::restore_from`, at any parallelism of its keyed operators.
    pub fn trigger_savepoint(&self, dir: impl Into<std::path::PathBuf>) -> Result<std::path::PathBuf, JobError> {
        self.savepoint(dir.into(), false)
    }

    /// Takes a savepoint, then stops the job; the result names the savepoint
    /// (`JobResult::stopped_with_savepoint`). What the sinks wrote after the savepoint is aborted.
    pub fn stop_with_savepoint(self, dir: impl Into<std::path::PathBuf>) -> Result<JobResult, JobError> {
        self.savepoint(dir.into(), true)?;
        self.wait()
    }

    /// Cancels the job and waits for it to stop: the result is `JobError::Cancelled` (or the
    /// job's own outcome, if it ended first).
    pub fn cancel(self) -> Result<JobResult, JobError> {
        let _ = self.control.send(ControlCommand::Cancel);
        self.wait()
    }

    /// Waits for the job to end.
    pub fn wait(self) -> Result<JobResult, JobError> {
        let job = self.job;
        self.driver.join().unwrap_or_else(|_| Err(JobError::Runtime { job, reason: "the job's driver thread panicked".to_string() }))
    }

    /// Whether the job has ended.
    pub fn is_finished(&self) -> bool {
        self.driver.is_finished()
    }

    /// A handle that takes savepoints of the job from other threads while one waits for it.
    pub fn controls(&self) -> JobControls {
        JobControls { job: self.job.clone(), control: self.control.clone() }
    }

    fn savepoint(&self, dir: std::path::PathBuf, stop: bool) -> Result<std::path::PathBuf, JobError> {
        self.controls().savepoint(dir, stop)
    }
}

/// Takes savepoints of a running job (see [`JobClient::controls`]).
#[derive(Clone)]
pub struct JobControls {
    job: String,
    control: std::sync::mpsc::Sender<ControlCommand>,
}

impl JobControls {
    /// Takes a savepoint into the checkpoint store at `dir` (created if needed) and returns its
    /// directory once complete; with `stop`, the job then stops (its result names the savepoint).
    pub fn savepoint(&self, dir: std::path::PathBuf, stop: bool) -> Result<std::path::PathBuf, JobError> {
        let failed = |reason: String| JobError::Savepoint { job: self.job.clone(), reason };
        let (reply, answer) = std::sync::mpsc::channel();
        self.control.send(ControlCommand::Savepoint { dir, stop, reply }).map_err(|_| failed("the job has ended".to_string()))?;
        answer.recv().map_err(|_| failed("the job ended before the savepoint completed".to_string()))?.map_err(failed)
    }
}
