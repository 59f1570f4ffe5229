//! Tethys's control plane: the job master, replicated with Raft.
//!
//! - `state`: the replicated state machine (workers and slots, jobs with their specs, artifacts,
//!   status and deployments, completed checkpoints) and the commands that change it.
//! - `scheduler`: where a job's slots go.
//! - `raft`: the master group (openraft over a durable log in the storage crate).
//! - `rpc`: the gRPC API: Raft between master processes, the control service, a master as a server.
//! - `launcher`: master processes on this host, for tests, benchmarks and the demo.
//! - `agent`: a worker's side: registering, heartbeats across leader changes, the term it has seen.
//! - `submit`: what the masters check of a submitted job before it reaches the log; a job as shown.
//! - `http`: the masters' HTTP/JSON API and `/metrics` (Prometheus) of masters and workers.
//! - `live`: a running job's tasks with live figures and the bottleneck, as the leader samples them.
//! - `logs`: a process's recent log in memory, searched through the API (a worker's log in the console).
//! - `output`: a running job's sinks' sampled rows (the console's live results), kept by the leader.
//! - `programs`: programs of users' own, uploaded to the masters, and the processes that run their jobs.
#![warn(missing_docs)]
// openraft's traits return its own errors (`StorageError`, `RPCError`: 128-256 bytes), and our
// helpers around them return the same types.
#![allow(clippy::result_large_err)]

pub mod agent;
pub mod deployer;
pub mod http;
pub mod launcher;
pub mod live;
pub mod logs;
pub mod output;
pub mod programs;
pub mod raft;
pub mod rpc;
pub mod scheduler;
pub mod state;
pub mod submit;
pub mod worker_node;
