//! Tethys as a library for programs of one's own: a [`Program`] is the `tethys` command line
//! (master, worker, run, demo, ...) with the jobs a user wrote in Rust added to those built in.
//! Every process of a cluster runs one program and rebuilds a job from its name and arguments, so
//! a program's jobs run on a cluster once the program is uploaded to its masters (`tethys
//! programs upload`), and in one process with `<program> run <job> ...`.

mod command;
pub mod program;

pub use program::{Program, ProgramJob};

/// Rows of SQL jobs and records with heap parts are allocated on one slot's thread and freed on
/// another's; mimalloc's thread-local free lists make that cheap (bench/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Tethys: real-time stream processing.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a live example job on the embedded engine and show its progress and sampled results.
    Demo(command::demo::DemoArgs),
    /// Run a checkpointed job that fails on purpose and recovers, and show its results unchanged.
    RecoveryDemo(command::recovery_demo::RecoveryDemoArgs),
    /// Run benchmark queries, each in a fresh process, and print events/s, time and peak memory.
    Bench(command::bench::BenchArgs),
    /// Measure end-to-end latency of the filter query at fixed input rates.
    Latency(command::latency::LatencyArgs),
    /// Run a job this program knows by name, in this process or on a local cluster of workers.
    Run(command::run::RunArgs),
    /// Run a worker process of a cluster: join the mesh, run what the coordinator deploys.
    Worker(command::worker::WorkerArgs),
    /// The whole platform in this process: a master, workers, and an example job submitted through its API.
    Up(command::up::UpArgs),
    /// Run one master of the control plane (a Raft group of masters).
    Master(command::master::MasterArgs),
    /// Show the cluster as the masters see it: leader and term, masters, workers.
    Cluster(command::cluster::ClusterArgs),
    /// Search a worker's recent log (the masters fetch it from the worker).
    Logs(command::cluster::LogsArgs),
    /// Show a running job's sinks' sampled rows (its live results), or follow them.
    Output(command::cluster::OutputArgs),
    /// Jobs through the masters: submit, list, status, cancel.
    #[command(flatten)]
    Jobs(command::jobs::JobCommand),
    /// Measure leader failover: kill the masters' leader, time until a new one serves a write.
    BenchFailover(command::failover::FailoverArgs),
    /// SQL tooling: check a script, complete at a place in it, format it.
    #[command(subcommand)]
    Sql(command::sql::SqlCommand),
    /// Programs of one's own on the masters: upload, list, delete.
    #[command(subcommand)]
    Programs(command::programs::ProgramCommand),
    /// Drafts of SQL jobs the masters keep (saved from the console's workbench): list, show, save, diff, delete.
    #[command(subcommand)]
    Drafts(command::drafts::DraftCommand),
    /// Run SQL test cases (TOML: a script, inputs, expected rows) and show the rows that differ.
    Test(command::test::TestArgs),
    /// Print the masters' HTTP API as an OpenAPI document (what `/api/openapi.json` serves).
    Openapi,
    /// Run one benchmark in this process (used by `bench`).
    #[command(hide = true)]
    BenchRun(command::bench::BenchRunArgs),
    /// Print what this program is and the jobs it defines, as JSON (what the masters read of an
    /// uploaded program).
    #[command(hide = true)]
    ProgramInfo,
    /// Check that this program defines a job with these arguments at a parallelism (what the
    /// masters run of an uploaded program to check a submission).
    #[command(hide = true)]
    CheckJob(program::CheckJobArgs),
    /// Run one attempt of a job of this program for the worker that started this process.
    #[command(hide = true)]
    AttemptWorker(command::worker::AttemptWorkerArgs),
    /// Coordinate one attempt of a job of this program for the leader that started this process.
    #[command(hide = true)]
    AttemptDriver(command::ProgramProcessArgs),
}

/// Runs the command line of the program `jobs` were registered in (see [`Program::main`]).
fn run_command_line() {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Demo(args) => command::demo::run(args),
        Command::RecoveryDemo(args) => command::recovery_demo::run(args),
        Command::Bench(args) => command::bench::run(args),
        Command::BenchRun(args) => command::bench::run_one(args),
        Command::Latency(args) => command::latency::run(args),
        Command::Worker(args) => command::worker::run(args),
        Command::Master(args) => command::master::run(args),
        Command::Up(args) => command::up::run(args),
        Command::Cluster(args) => command::cluster::run(args),
        Command::Logs(args) => command::cluster::logs(args),
        Command::Output(args) => command::cluster::output(args),
        Command::BenchFailover(args) => command::failover::run(args),
        Command::Jobs(command) => command::jobs::run(command),
        Command::Run(args) => command::run::run(args),
        Command::Sql(command) => command::sql::run(command),
        Command::Test(args) => command::test::run(args),
        Command::Drafts(command) => command::drafts::run(command),
        Command::Programs(command) => command::programs::run(command),
        Command::CheckJob(args) => program::check_job(args),
        Command::AttemptWorker(args) => command::worker::attempt_worker(args),
        Command::AttemptDriver(args) => command::master::attempt_driver(args),
        Command::ProgramInfo => {
            println!("{}", serde_json::to_string(&program::installed().info()).expect("a program's info is JSON"));
            Ok(())
        }
        Command::Openapi => {
            println!("{}", tethys_control::http::openapi::document());
            Ok(())
        }
    };
    if let Err(error) = outcome {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}
