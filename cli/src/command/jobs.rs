//! `tethys submit | list | status | cancel | savepoint | rescale`: jobs through the masters' API. Any master answers; a
//! follower forwards what changes the state to the leader. The masters check a submission before
//! it reaches their log (a job this program defines with those arguments, a sane parallelism, the
//! masters' own build) and say why they refuse one.

use clap::{Args, Subcommand};
use tethys_control::rpc::proto::{JobInfo, JobRequest, ListJobsRequest, RescaleRequest, SavepointRequest, SubmitJobRequest};

use super::cluster::call_any;
use super::{CliError, MastersArgs};

/// Arguments of `tethys submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    masters: MastersArgs,
    /// Parallelism of the job's operators.
    #[arg(long, default_value_t = 1)]
    parallelism: u32,
    /// Slots the job takes (default: its parallelism).
    #[arg(long)]
    slots: Option<u32>,
    /// Checkpoint interval in milliseconds (none by default).
    #[arg(long)]
    checkpoint_interval_ms: Option<u64>,
    /// Start from this savepoint (or retained checkpoint) directory, e.g. what `tethys savepoint`
    /// printed (the masters check that it restores into the job).
    #[arg(long)]
    from_savepoint: Option<std::path::PathBuf>,
    /// A job of this uploaded program (its id, from `tethys programs list`) instead of the
    /// masters' own program.
    #[arg(long)]
    program: Option<String>,
    /// Only show what the job would take (slots, tasks, where it would go, memory), checked as a
    /// submission is; submit nothing.
    #[arg(long)]
    preview: bool,
    /// The job's name in the program (e.g. `bench`, `digest`, `sql`, or a job of an uploaded program).
    job: String,
    /// The job's arguments.
    args: Vec<String>,
}

/// The job commands.
#[derive(Subcommand, Debug)]
pub enum JobCommand {
    /// Submit a job to the masters.
    Submit(SubmitArgs),
    /// List the masters' jobs.
    List(MastersArgs),
    /// Show one job.
    Status(JobArgs),
    /// Cancel a job that has not ended.
    Cancel(JobArgs),
    /// Take a savepoint of a running job (and with --stop, stop it after).
    Savepoint(SavepointArgs),
    /// Change a running job's parallelism (it stops with a savepoint and restarts from it).
    Rescale(RescaleArgs),
}

/// Arguments of `tethys rescale`.
#[derive(Args, Debug)]
pub struct RescaleArgs {
    #[command(flatten)]
    masters: MastersArgs,
    /// The new parallelism.
    #[arg(long)]
    parallelism: u32,
    /// The job's id.
    job: u64,
}

/// Arguments of `tethys savepoint`.
#[derive(Args, Debug)]
pub struct SavepointArgs {
    #[command(flatten)]
    masters: MastersArgs,
    /// Stop the job once the savepoint is complete (it ends finished; what its sinks wrote after
    /// the savepoint is aborted).
    #[arg(long)]
    stop: bool,
    /// Where the savepoint goes, on the leader's storage (default: the job's savepoints directory
    /// under the masters' checkpoint root).
    #[arg(long)]
    dir: Option<String>,
    /// The job's id.
    job: u64,
}

/// A job by id.
#[derive(Args, Debug)]
pub struct JobArgs {
    #[command(flatten)]
    masters: MastersArgs,
    /// The job's id.
    job: u64,
}

fn describe(job: &JobInfo) -> String {
    let reason = if job.reason.is_empty() { String::new() } else { format!(" ({})", job.reason) };
    let checkpoint = if job.last_checkpoint == 0 { String::new() } else { format!(", last checkpoint {}", job.last_checkpoint) };
    let placed = if job.placements.is_empty() {
        String::new()
    } else {
        let slots: Vec<String> = job.placements.iter().map(|p| format!("{}:{}", p.worker_id, p.slot)).collect();
        format!(", on worker:slot {}", slots.join(" "))
    };
    format!(
        "job {} {} {}: {}{reason}, parallelism {}, {} slots, attempt {}{adopted}{checkpoint}{placed}",
        job.id,
        job.name,
        job.args.join(" "),
        job.status,
        job.parallelism,
        job.slots,
        job.attempt,
        adopted = if job.adoptions > 0 { format!(" (adopted by a new leader {} times)", job.adoptions) } else { String::new() },
    )
}

fn json(job: &JobInfo) -> serde_json::Value {
    serde_json::json!({
        "id": job.id, "name": job.name, "args": job.args, "status": job.status, "reason": job.reason,
        "parallelism": job.parallelism, "slots": job.slots, "attempt": job.attempt,
        "last_checkpoint": job.last_checkpoint, "checkpoints_completed": job.checkpoints_completed,
        "submitted_at_ms": job.submitted_at_ms, "build_id": job.build_id, "adoptions": job.adoptions, "last_savepoint": job.last_savepoint,
        "program": job.program,
        "placements": job.placements.iter().map(|p| serde_json::json!({"worker": p.worker_id, "slot": p.slot})).collect::<Vec<_>>(),
    })
}

fn print_job(job: &JobInfo, as_json: bool) {
    if as_json {
        println!("{}", json(job));
    } else {
        println!("{}", describe(job));
    }
}

/// A preview for people.
fn describe_preview(preview: &tethys_control::http::api::JobPreview) -> String {
    let megabytes = |bytes: u64| format!("{:.1} MB", bytes as f64 / 1e6);
    let mut text = format!("slots: {}\n", preview.slots);
    for (index, task) in preview.tasks.iter().enumerate() {
        text.push_str(&format!("task {index}: {} x{}\n", task.operators.join(" -> "), task.parallelism));
    }
    match &preview.problem {
        None => {
            let plural = |slots: u32| if slots == 1 { "" } else { "s" };
            let shares: Vec<String> = preview
                .workers
                .iter()
                .map(|share| format!("worker {} ({} slot{})", share.worker, share.slots, plural(share.slots)))
                .collect();
            text.push_str(&format!("placed on: {}\n", shares.join(", ")));
        }
        Some(problem) => text.push_str(&format!("does not fit now: {problem}\n")),
    }
    text.push_str(&format!("memory: {} (buffers {}", megabytes(preview.memory_bytes), megabytes(preview.buffer_bytes)));
    if let Some(state) = preview.state_bytes {
        text.push_str(&format!(", state restored {}", megabytes(state)));
    }
    text.push_str(")\n");
    text
}

/// Shows job `args.job`, after cancelling it when `cancel`.
fn status_or_cancel(runtime: &tokio::runtime::Runtime, args: JobArgs, cancel: bool) -> Result<(), CliError> {
    let secret = super::read_secret_text(args.masters.secret_file.as_deref())?;
    let tls = args.masters.tls.grpc()?;
    let job_id = args.job;
    let job = runtime.block_on(call_any(&args.masters.masters, &secret, tls.as_ref(), |mut client| async move {
        if cancel {
            client.cancel_job(JobRequest { job_id }).await
        } else {
            client.job_status(JobRequest { job_id }).await
        }
    }))?;
    print_job(&job, args.masters.json);
    Ok(())
}

/// Runs one job command.
pub fn run(command: JobCommand) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start a runtime: {e}"))?;
    match command {
        JobCommand::Submit(args) => {
            let secret = super::read_secret_text(args.masters.secret_file.as_deref())?;
            let tls = args.masters.tls.grpc()?;
            let request = SubmitJobRequest {
                name: args.job.clone(),
                args: args.args.clone(),
                parallelism: args.parallelism,
                slots: args.slots.unwrap_or(0),
                checkpoint_interval_ms: args.checkpoint_interval_ms.unwrap_or(0),
                // A job of this program is checked against the masters' build; one of an uploaded
                // program, against that program's.
                build_id: match &args.program {
                    None => tethys_engine::graph::fingerprint::build_id().to_string(),
                    Some(_) => String::new(),
                },
                restore_from: args.from_savepoint.as_ref().map(|path| path.display().to_string()).unwrap_or_default(),
                program: args.program.clone().unwrap_or_default(),
            };
            if args.preview {
                let reply = runtime.block_on(call_any(&args.masters.masters, &secret, tls.as_ref(), |mut client| {
                    let request = request.clone();
                    async move { client.preview_job(request).await }
                }))?;
                let preview: tethys_control::http::api::JobPreview = serde_json::from_str(&reply.json)?;
                match args.masters.json {
                    true => println!("{}", reply.json),
                    false => print!("{}", describe_preview(&preview)),
                }
                return Ok(());
            }
            let reply = runtime.block_on(call_any(&args.masters.masters, &secret, tls.as_ref(), |mut client| {
                let request = request.clone();
                async move { client.submit_job(request).await }
            }))?;
            if args.masters.json {
                println!("{}", serde_json::json!({"job": reply.job_id}));
            } else {
                println!("submitted job {}", reply.job_id);
            }
        }
        JobCommand::List(masters) => {
            let secret = super::read_secret_text(masters.secret_file.as_deref())?;
            let tls = masters.tls.grpc()?;
            let reply = runtime.block_on(call_any(&masters.masters, &secret, tls.as_ref(), |mut client| async move {
                client.list_jobs(ListJobsRequest {}).await
            }))?;
            if masters.json {
                println!("{}", serde_json::Value::Array(reply.jobs.iter().map(json).collect()));
            } else if reply.jobs.is_empty() {
                println!("no jobs");
            } else {
                for job in &reply.jobs {
                    println!("{}", describe(job));
                }
            }
        }
        JobCommand::Status(args) => status_or_cancel(&runtime, args, false)?,
        JobCommand::Cancel(args) => status_or_cancel(&runtime, args, true)?,
        JobCommand::Rescale(args) => {
            let secret = super::read_secret_text(args.masters.secret_file.as_deref())?;
            let tls = args.masters.tls.grpc()?;
            let request = RescaleRequest { job_id: args.job, parallelism: args.parallelism };
            let job = runtime.block_on(call_any(&args.masters.masters, &secret, tls.as_ref(), |mut client| {
                let request = request.clone();
                async move { client.rescale(request).await }
            }))?;
            if args.masters.json {
                println!("{}", json(&job));
            } else {
                println!("job {} stopped with a savepoint; it restarts at parallelism {}", args.job, args.parallelism);
            }
        }
        JobCommand::Savepoint(args) => {
            let secret = super::read_secret_text(args.masters.secret_file.as_deref())?;
            let tls = args.masters.tls.grpc()?;
            let request = SavepointRequest { job_id: args.job, stop: args.stop, dir: args.dir.clone().unwrap_or_default() };
            let reply = runtime.block_on(call_any(&args.masters.masters, &secret, tls.as_ref(), |mut client| {
                let request = request.clone();
                async move { client.savepoint(request).await }
            }))?;
            if args.masters.json {
                println!("{}", serde_json::json!({"path": reply.path, "job": reply.job.as_ref().map(json)}));
            } else {
                println!("savepoint of job {} at {}", args.job, reply.path);
            }
        }
    }
    Ok(())
}
