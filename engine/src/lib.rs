//! The Tethys dataflow engine: a typed DataStream API, the logical job graph and its execution
//! plan, operators, sources and sinks, and the single-process runtime that runs each task as an
//! actor on a pinned core and moves frames of records between tasks over credit-based channels.
//!
//! Start at [`StreamEnvironment`]: define a job with sources, transformations and sinks, then
//! `execute` it. `ARCHITECTURE.md` at the repository root maps the modules.

#![deny(missing_docs)]

pub mod api;
pub mod base;
pub mod channel;
pub mod config;
pub mod error;
pub mod frame;
pub mod graph;
pub mod key_group;
pub mod operator;
pub mod record;
pub(crate) mod runtime;
pub mod sink;
pub mod source;
pub mod state;
pub mod time;
pub mod topic;
pub mod window;

#[cfg(test)]
pub(crate) mod test_dir;

pub use api::env::{JobClient, JobControls, PlanError, StreamEnvironment};
pub use api::keyed::{KeyedStream, WindowedStream};
pub use api::stream::{DataStream, DataStreamSink};
pub use base::{AggregateFunction, Codec, CodecError, Key, MergingAggregateFunction, OperatorFailure, SubtaskContext, UserError};
pub use channel::partitioner::Partitioning;
pub use config::EngineConfig;
pub use error::JobError;
pub use graph::logical::{JobGraph, OperatorKind};
pub use graph::plan::{ExecutionPlan, GraphError};
pub use operator::async_io::{
    AsyncFunction, AsyncIoError, AsyncMode, AsyncOptions, AsyncOptionsError, BoxFuture, RequestTimedOut, RetryStrategy,
};
pub use operator::process::{KeyedProcessFunction, ProcessContext};
pub use operator::timestamps::PeriodicWatermarks;
pub use operator::{FrameOperator, Output, OutputTag, TaskWaker};
pub use record::InlineStr;
/// rkyv, re-exported: records, keys and state values derive its traits to get [`Codec`].
pub use rkyv;
pub use runtime::checkpoint::{CheckpointStats, CheckpointingMode, SubtaskCheckpoint};
/// Running a job across processes: the coordinator, workers, and what a transport provides.
pub use runtime::cluster;
pub use runtime::job::{ChannelMetrics, JobResult, OperatorMetrics};
pub use runtime::keeper::{CheckpointDone, CheckpointGate};
pub use runtime::live::{LiveBoard, OutputSample, OutputSampler, OutputTap, SampledRecord, SubtaskLive};
pub use runtime::restart::RestartStrategy;
pub use runtime::snapshot::{InFlightFrames, JobSnapshot, OperatorSnapshot, RestoreError};
pub use time::watermark::{WatermarkGenerator, WatermarkStrategy};
pub use topic::{Topic, TopicError};
pub use window::cumulate::CumulateEventTimeWindows;
pub use window::global::GlobalWindows;
pub use window::operator::{LatePolicy, LateRecord};
pub use window::session::EventTimeSessionWindows;
pub use window::sliding::SlidingEventTimeWindows;
pub use window::trigger::{CountTrigger, EventTimeTrigger, PurgingTrigger, Trigger, TriggerResult};
pub use window::tumbling::TumblingEventTimeWindows;
pub use window::{TimeWindow, WindowError, WindowResult};
