//! A Tethys program: the `tethys` command line with jobs of one's own. A user writes jobs with the
//! DataStream API (or SQL) in a binary of their own:
//!
//! ```no_run
//! use tethys_engine::StreamEnvironment;
//!
//! fn define_my_job(args: &[String], env: &StreamEnvironment) -> Result<(), String> {
//!     // sources, operators and sinks defined into `env` from `args`
//!     # let _ = (args, env);
//!     Ok(())
//! }
//!
//! fn main() {
//!     tethys::Program::new("my-program").job("my-job", "what it does; its arguments", define_my_job).main()
//! }
//! ```
//!
//! That binary is then a whole Tethys: `my-program run my-job ...` runs the job in one process,
//! and uploaded to a cluster's masters (`tethys programs upload`, or the console's Deploy page) its
//! jobs are submitted by name; the masters and workers run them in processes of the program. The
//! jobs every program has built in (`bench`, `digest`, `sql`) stay.

use std::sync::{Arc, OnceLock};

use tethys_control::programs::{JobAbout, ProgramInfo};
use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::cluster::JobRegistry;
use tethys_engine::StreamEnvironment;

/// How a job of a program is defined: from its arguments, into an environment (the same in every
/// process that runs it, so the same arguments must give the same graph).
pub type DefineJob = Arc<dyn Fn(&[String], &StreamEnvironment) -> Result<(), String> + Send + Sync>;

/// One job of a program.
#[derive(Clone)]
pub struct ProgramJob {
    /// Its name, as submissions name it.
    pub name: String,
    /// What it does and the arguments it takes (shown by the masters and the console).
    pub about: String,
    define: DefineJob,
}

/// A program: a name and its jobs (see the module documentation).
#[derive(Clone)]
pub struct Program {
    name: String,
    jobs: Vec<ProgramJob>,
}

/// The jobs every program has built in (`tethys_bench::jobs`), with what they take.
const BUILTIN_JOBS: [(&str, &str); 3] = [
    (
        tethys_bench::jobs::BENCH_JOB,
        "a benchmark query over generated input, into a discarding sink: <query> <events> <seed> [split] [sources=N] [rate=N] [slow=N]",
    ),
    (
        tethys_bench::jobs::DIGEST_JOB,
        "a benchmark query whose results are written exactly once as digests: <output dir> <query> <events> <seed> [split]",
    ),
    (tethys_bench::jobs::SQL_JOB, "the one job of a SQL script: <script>"),
];

/// The program this process runs, once `Program::main` was called.
static INSTALLED: OnceLock<Program> = OnceLock::new();

impl Program {
    /// A program called `name` with no jobs of its own yet.
    pub fn new(name: impl Into<String>) -> Program {
        Program { name: name.into(), jobs: Vec::new() }
    }

    /// Adds the job `name`: `about` says what it does and what arguments it takes, `define`
    /// defines it into an environment from its arguments.
    ///
    /// # Panics
    /// When the program already has a job of that name (its own, or one built in), or the name is
    /// empty: a program is written once, and two jobs of one name would be one too many.
    pub fn job(
        mut self,
        name: impl Into<String>,
        about: impl Into<String>,
        define: impl Fn(&[String], &StreamEnvironment) -> Result<(), String> + Send + Sync + 'static,
    ) -> Program {
        let name = name.into();
        assert!(!name.trim().is_empty(), "a job's name must not be empty");
        assert!(
            !BUILTIN_JOBS.iter().any(|(builtin, _)| *builtin == name) && !self.jobs.iter().any(|job| job.name == name),
            "program '{}' has a job '{name}' already",
            self.name
        );
        self.jobs.push(ProgramJob { name, about: about.into(), define: Arc::new(define) });
        self
    }

    /// Runs the command line of this program (`tethys --help` lists its commands) and exits with
    /// its status: this program's jobs are the ones its processes know.
    pub fn main(self) {
        if INSTALLED.set(self).is_err() {
            panic!("Program::main runs once per process");
        }
        crate::run_command_line();
    }

    /// What the program says of itself (`program-info`).
    pub fn info(&self) -> ProgramInfo {
        let own = self.jobs.iter().map(|job| JobAbout { name: job.name.clone(), about: job.about.clone(), builtin: false });
        let builtin = BUILTIN_JOBS.iter().map(|(name, about)| JobAbout { name: name.to_string(), about: about.to_string(), builtin: true });
        ProgramInfo {
            program: self.name.clone(),
            tethys_version: env!("CARGO_PKG_VERSION").to_string(),
            build_id: tethys_engine::graph::fingerprint::build_id().to_string(),
            jobs: own.chain(builtin).collect(),
        }
    }

    /// Defines the job `spec` names into `env`, or says why not (a job this program does not
    /// have: the jobs it has are named).
    pub fn define(&self, spec: &JobSpec, env: &StreamEnvironment) -> Result<(), String> {
        if let Some(job) = self.jobs.iter().find(|job| job.name == spec.name) {
            return (job.define)(&spec.args, env).map_err(|error| format!("job '{}': {error}", spec.name));
        }
        if BUILTIN_JOBS.iter().any(|(name, _)| *name == spec.name) {
            return tethys_bench::jobs::define(spec, env);
        }
        let known: Vec<String> = self.info().jobs.into_iter().map(|job| format!("'{}'", job.name)).collect();
        Err(format!("unknown job '{}' (program '{}' has {})", spec.name, self.name, known.join(", ")))
    }
}

impl Program {
    /// Whether this program defines the job `spec` names at `parallelism`: it builds the job's
    /// graph and plan, as every process that runs it will; with `restore_from`, also that the
    /// savepoint or checkpoint there restores into it. What the job takes, or why not.
    pub fn check(
        &self,
        spec: &JobSpec,
        parallelism: u32,
        restore_from: Option<&std::path::Path>,
    ) -> Result<tethys_control::submit::JobEstimate, String> {
        let config = tethys_engine::EngineConfig {
            parallelism: parallelism as usize,
            slots: parallelism as usize,
            ..tethys_engine::EngineConfig::default()
        };
        config.validate().map_err(|error| error.to_string())?;
        let env = StreamEnvironment::new(config);
        self.define(spec, &env)?;
        let graph = env.job_graph();
        let plan = tethys_engine::ExecutionPlan::build(&graph, parallelism as usize).map_err(|error| error.to_string())?;
        if let Some(path) = restore_from {
            env.check_restore(path)?;
        }
        Ok(tethys_control::submit::JobEstimate::of(&graph, &plan, env.config()))
    }
}

/// Arguments of the hidden `check-job` command: what the masters run of an uploaded program to
/// check a submission of one of its jobs.
#[derive(clap::Args, Debug)]
pub(crate) struct CheckJobArgs {
    /// The parallelism it is submitted at.
    #[arg(long)]
    parallelism: u32,
    /// A savepoint or checkpoint it is to start from.
    #[arg(long)]
    restore_from: Option<std::path::PathBuf>,
    /// The job's name.
    job: String,
    /// Its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// `check-job`: prints what the job takes (JSON) when this program defines it so, else says why.
pub(crate) fn check_job(args: CheckJobArgs) -> Result<(), crate::command::CliError> {
    let spec = JobSpec { name: args.job, args: args.args };
    let estimate = installed().check(&spec, args.parallelism, args.restore_from.as_deref())?;
    println!("{}", serde_json::to_string(&estimate)?);
    Ok(())
}

/// The program this process runs (`tethys` itself when none was installed, as in tests).
pub(crate) fn installed() -> &'static Program {
    INSTALLED.get_or_init(|| Program::new("tethys"))
}

/// Defines the job `spec` names, as this process's program does.
pub(crate) fn define(spec: &JobSpec, env: &StreamEnvironment) -> Result<(), String> {
    installed().define(spec, env)
}

/// This process's program's jobs, as the engine's workers and coordinators look them up.
pub(crate) fn registry() -> JobRegistry {
    Arc::new(define)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> StreamEnvironment {
        StreamEnvironment::new(tethys_engine::EngineConfig { slots: 1, parallelism: 1, ..Default::default() })
    }

    fn collect_numbers(args: &[String], env: &StreamEnvironment) -> Result<(), String> {
        let [count] = args else { return Err(format!("takes <count>, not {args:?}")) };
        let count: u64 = count.parse().map_err(|_| format!("'{count}' is not a count"))?;
        env.from_collection((0..count).collect::<Vec<u64>>()).sink("discard", tethys_engine::sink::discard::DiscardSink::new());
        Ok(())
    }

    #[test]
    fn a_programs_own_jobs_come_first_and_the_builtin_ones_stay() {
        let program = Program::new("numbers").job("numbers", "numbers up to <count>", collect_numbers);
        let info = program.info();
        assert_eq!(info.program, "numbers");
        let names: Vec<(&str, bool)> = info.jobs.iter().map(|job| (job.name.as_str(), job.builtin)).collect();
        assert_eq!(names, [("numbers", false), ("bench", true), ("digest", true), ("sql", true)]);
        assert_eq!(info.build_id, tethys_engine::graph::fingerprint::build_id());

        program.define(&JobSpec { name: "numbers".into(), args: vec!["3".into()] }, &env()).unwrap();
        let bench = tethys_bench::jobs::bench_spec(tethys_bench::harness::Query::Bids(tethys_bench::bids::BidsQuery::Filter), 10, 1, false);
        program.define(&bench, &env()).unwrap();
    }

    #[test]
    fn unknown_jobs_and_bad_arguments_are_named() {
        let program = Program::new("numbers").job("numbers", "numbers up to <count>", collect_numbers);
        let error = program.define(&JobSpec { name: "nope".into(), args: vec![] }, &env()).unwrap_err();
        assert_eq!(error, "unknown job 'nope' (program 'numbers' has 'numbers', 'bench', 'digest', 'sql')");
        let error = program.define(&JobSpec { name: "numbers".into(), args: vec!["x".into()] }, &env()).unwrap_err();
        assert_eq!(error, "job 'numbers': 'x' is not a count");
    }

    #[test]
    fn the_hidden_commands_take_what_a_worker_and_the_leader_give_them() {
        use clap::Parser;
        use tethys_control::programs::process::ChildOptions;
        let tls = tethys_net::tls::TlsFiles { chain: "chain.pem".into(), key: "key.pem".into(), ca: "ca.pem".into() };
        let options = ChildOptions { tls: Some(tls), no_shared_memory: true };
        let host: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        let program = || std::iter::once("program".to_string());
        let driver = tethys_control::programs::driver::driver_args(host, &options);
        let Ok(crate::Cli { command: crate::Command::AttemptDriver(args) }) = crate::Cli::try_parse_from(program().chain(driver)) else {
            panic!("the driver's arguments parse")
        };
        assert_eq!((args.host, args.tls.files(), args.no_shared_memory), (host, options.tls.clone(), true));
        let worker = tethys_control::programs::worker::worker_args(host, std::time::Duration::from_secs(7), &options);
        let Ok(crate::Cli { command: crate::Command::AttemptWorker(args) }) = crate::Cli::try_parse_from(program().chain(worker)) else {
            panic!("the worker's arguments parse")
        };
        assert_eq!((args.orphan_timeout_ms, args.process.tls.files(), args.process.no_shared_memory), (7000, options.tls, true));
    }

    #[test]
    #[should_panic(expected = "has a job 'bench' already")]
    fn a_job_may_not_take_a_builtin_name() {
        let _ = Program::new("p").job("bench", "", collect_numbers);
    }
}
