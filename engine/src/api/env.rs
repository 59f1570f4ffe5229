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
use crate::runtime::job::{run_job, JobResult};
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
        let graph = self.job_graph();
        let plan = self.validated_plan(&graph).map_err(|error| match error {
            PlanError::Config(source) => JobError::Config { job: job.to_string(), source },
            PlanError::Graph(source) => JobError::Graph { job: job.to_string(), source },
        })?;
        let factories = self.builder.borrow().factories.clone();
        run_job(job, graph, factories, plan, self.config.clone())
    }

    /// The one validation of `plan`, `explain` and `execute`: settings first, then the graph.
    fn validated_plan(&self, graph: &JobGraph) -> Result<ExecutionPlan, PlanError> {
        self.config.validate()?;
        Ok(ExecutionPlan::build(graph, self.config.slots)?)
    }
}
