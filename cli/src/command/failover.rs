//! `tethys bench-failover`: how long the control plane is without a leader when its leader dies.
//!
//! It starts three master processes (`LocalMasters`), then, run after run: finds the leader, kills
//! it (SIGKILL), and measures until a write (registering a worker, sent to a survivor, which
//! forwards it) is committed by a new leader: "kill to a new leader serving". The killed master
//! is restarted on its directory and the next run waits until it follows again. It prints each
//! run and the p50, p99 and maximum.
//!
//! With `--with-job`, two worker processes run a long job (the `digest` job, checkpointing every
//! 100 ms) through every run, and each run also measures the reconciliation: from the kill to the
//! new leader's adoption of the running attempt committed, and to the job's next checkpoint
//! committed (the job back in business: its output commits again). The job must never restart.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use tethys_control::launcher::LocalMasters;
use tethys_control::rpc::proto::control_client::ControlClient;
use tethys_control::rpc::proto::{JobInfo, JobRequest, RegisterWorkerRequest, SubmitJobRequest};
use tethys_control::rpc::SecretAuth;

use super::cluster::ask_cluster;
use super::CliError;

/// Arguments of `tethys bench-failover`.
#[derive(Args, Debug)]
pub struct FailoverArgs {
    /// Leader kills to measure.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Directory for the masters' state (default: a fresh one under the system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also run a job on two workers and measure its adoption by each new leader.
    #[arg(long)]
    pub with_job: bool,
    /// Instead of leaders, kill a worker the job runs on, run after run, and measure until the
    /// job runs again from its checkpoint on the others and commits its next checkpoint.
    #[arg(long, conflicts_with = "with_job")]
    pub kill_workers: bool,
}

/// Worker processes of the measurement with their control addresses, killed when dropped.
struct Workers(Vec<std::process::Child>, Vec<String>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `count` workers of this program on the masters `addrs`.
fn start_workers(program: &std::path::Path, addrs: &str, count: usize) -> Result<Workers, CliError> {
    let mut workers = Workers(Vec::new(), Vec::new());
    add_workers(&mut workers, program, addrs, count)?;
    Ok(workers)
}

/// Starts `count` more workers.
fn add_workers(workers: &mut Workers, program: &std::path::Path, addrs: &str, count: usize) -> Result<(), CliError> {
    use std::io::BufRead;
    for _ in 0..count {
        let mut child = std::process::Command::new(program)
            .env(tethys_net::launcher::SECRET_ENV, SECRET)
            .args(["worker", "--masters", addrs, "--slots", "2", "--log", "warn"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).map_err(|e| format!("a worker: {e}"))?;
        workers.0.push(child);
        workers.1.push(line.trim().trim_start_matches(tethys_net::launcher::LISTENING_PREFIX).to_string());
    }
    Ok(())
}

/// The job of `--with-job`: its status through any of `addrs`.
async fn job_status(addrs: &str, job: u64) -> Option<JobInfo> {
    super::cluster::call_any(addrs, SECRET, None, |mut client| async move { client.job_status(JobRequest { job_id: job }).await })
        .await
        .ok()
}

/// Milliseconds of a duration, for the report.
fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// p50, p99 and the maximum of `times`, in milliseconds.
fn quantiles(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let at = |quantile: f64| ms(times[((times.len() as f64 * quantile).ceil() as usize).clamp(1, times.len()) - 1]);
    (at(0.5), at(0.99), at(1.0))
}

/// Prints the quantiles of `times` (none: nothing) under `what`.
fn report(what: &str, times: &mut [Duration]) {
    if times.is_empty() {
        return;
    }
    let (p50, p99, max) = quantiles(times);
    println!("{what}, {} runs: p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms", times.len());
}

const SECRET: &str = "bench-failover-secret";
const GIVE_UP: Duration = Duration::from_secs(30);

/// Registers a worker through the first of `addrs` that takes it; whether one committed it.
async fn write_through_any(addrs: &[String], auth: &SecretAuth) -> bool {
    for addr in addrs {
        let Ok(endpoint) = tethys_control::rpc::endpoint(addr, None, Duration::from_millis(200), Duration::from_millis(1000)) else {
            continue;
        };
        let Ok(channel) = endpoint.connect().await else { continue };
        let request = RegisterWorkerRequest { control_addr: "bench-failover".into(), data_addr: "none".into(), slots: 1 };
        if ControlClient::with_interceptor(channel, auth.add()).register_worker(request).await.is_ok() {
            return true;
        }
    }
    false
}

/// Runs the measurement.
pub fn run(args: FailoverArgs) -> Result<(), CliError> {
    if args.kill_workers {
        return run_worker_kills(&args);
    }
    let root = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("tethys-bench-failover-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut masters = LocalMasters::start(&program, 3, SECRET, &root).map_err(|e| format!("cannot start the masters: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start a runtime: {e}"))?;
    let auth = SecretAuth::new(SECRET)?;
    let all = masters.addrs().to_vec();
    let mut times = Vec::new();
    // With a job: its workers, its id, and per run the time to its adoption and next checkpoint.
    let mut job = None;
    let (mut adoptions, mut resumed) = (Vec::new(), Vec::new());
    let _workers = match args.with_job {
        true => Some(start_workers(&program, &all.join(","), 2)?),
        false => None,
    };
    for run in 0..args.runs {
        // Every master running follows one leader that serves writes.
        let started = Instant::now();
        let leader = loop {
            if let Ok(reply) = runtime.block_on(ask_cluster(&all.join(","), SECRET, None)) {
                // And has applied what the leader had: a master restarted in the run before has
                // caught up (a lagging master cannot win an election, and only delays it).
                let every_master_caught_up = all.iter().all(|addr| {
                    runtime.block_on(ask_cluster(addr, SECRET, None)).is_ok_and(|seen| {
                        seen.leader_id == reply.leader_id && !seen.leader_addr.is_empty() && seen.applied_index >= reply.applied_index
                    })
                });
                if every_master_caught_up && runtime.block_on(write_through_any(&all, &auth)) {
                    if !args.with_job {
                        break reply.leader_id as usize;
                    }
                    // The job runs, with a checkpoint the masters committed.
                    let id = match job {
                        Some(id) => id,
                        None => {
                            let request = long_job(&root);
                            let submitted = runtime.block_on(super::cluster::call_any(&all.join(","), SECRET, None, |mut client| {
                                let request = request.clone();
                                async move { client.submit_job(request).await }
                            }))?;
                            job = Some(submitted.job_id);
                            submitted.job_id
                        }
                    };
                    if let Some(info) = runtime.block_on(job_status(&all.join(","), id)) {
                        if info.status != "running" && info.status != "created" {
                            return Err(format!("the job is {} ({}), attempt {}", info.status, info.reason, info.attempt).into());
                        }
                        if info.status == "running" && info.last_checkpoint > 0 {
                            break reply.leader_id as usize;
                        }
                    }
                }
            }
            if started.elapsed() > GIVE_UP {
                return Err(format!("run {run}: the masters did not settle on a leader within {GIVE_UP:?}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let before = job.and_then(|id| runtime.block_on(job_status(&all.join(","), id)));
        masters.kill(leader).map_err(|e| format!("cannot kill master {leader}: {e}"))?;
        let killed = Instant::now();
        let survivors: Vec<String> = all.iter().enumerate().filter(|(id, _)| *id != leader).map(|(_, addr)| addr.clone()).collect();
        // First when a survivor names another leader, then when a write is committed.
        let elected = loop {
            let named = survivors.iter().any(|addr| {
                runtime
                    .block_on(ask_cluster(addr, SECRET, None))
                    .is_ok_and(|seen| seen.leader_id != leader as u64 && !seen.leader_addr.is_empty())
            });
            if named {
                break killed.elapsed();
            }
            if killed.elapsed() > GIVE_UP {
                return Err(format!("run {run}: no new leader within {GIVE_UP:?}").into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        while !runtime.block_on(write_through_any(&survivors, &auth)) {
            if killed.elapsed() > GIVE_UP {
                return Err(format!("run {run}: the new leader served no write within {GIVE_UP:?}").into());
            }
        }
        let took = killed.elapsed();
        println!(
            "run {run}: killed master {leader}; a new leader was named after {:.0} ms and served a write after {:.0} ms",
            ms(elected),
            ms(took)
        );
        times.push(took);
        if let (Some(id), Some(before)) = (job, before) {
            // The adoption committed, then a checkpoint above the one committed before the kill.
            let (mut adopted, survivors) = (None, survivors.join(","));
            loop {
                let info = runtime.block_on(job_status(&survivors, id));
                if let Some(info) = &info {
                    if info.attempt != before.attempt || !matches!(info.status.as_str(), "running") {
                        return Err(format!(
                            "run {run}: the job was not adopted: {} attempt {} ({})",
                            info.status, info.attempt, info.reason
                        )
                        .into());
                    }
                    if adopted.is_none() && info.adoptions > before.adoptions {
                        adopted = Some(killed.elapsed());
                    }
                    if let (Some(adopted), true) = (adopted, info.last_checkpoint > before.last_checkpoint) {
                        let checkpointed = killed.elapsed();
                        println!(
                            "run {run}: the job was adopted after {:.0} ms and committed a checkpoint after {:.0} ms",
                            ms(adopted),
                            ms(checkpointed)
                        );
                        adoptions.push(adopted);
                        resumed.push(checkpointed);
                        break;
                    }
                }
                if killed.elapsed() > GIVE_UP {
                    return Err(format!("run {run}: the job was not adopted within {GIVE_UP:?}: {info:?}").into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        masters.restart(leader).map_err(|e| format!("cannot restart master {leader}: {e}"))?;
    }
    if let Some(id) = job {
        let _ = runtime.block_on(super::cluster::call_any(&all.join(","), SECRET, None, |mut client| async move {
            client.cancel_job(JobRequest { job_id: id }).await
        }));
    }
    drop(masters);
    let _ = std::fs::remove_dir_all(&root);
    report("leader failover (kill to a write committed by the new leader)", &mut times);
    report("reconciliation (kill to the running job adopted)", &mut adoptions);
    report("job back in business (kill to its next checkpoint committed)", &mut resumed);
    Ok(())
}

/// The digest job of the measurements with a job: long (500 M events), a checkpoint every 100 ms.
fn long_job(root: &std::path::Path) -> SubmitJobRequest {
    SubmitJobRequest {
        name: "digest".into(),
        args: vec![root.join("job-output").display().to_string(), "window".into(), "500000000".into(), "7".into()],
        parallelism: 2,
        slots: 0,
        checkpoint_interval_ms: 100,
        build_id: tethys_engine::graph::fingerprint::build_id().to_string(),
        restore_from: String::new(),
        program: String::new(),
    }
}

/// `--kill-workers`: three masters, three workers, one job; per run a worker the job runs on is
/// killed (SIGKILL) and replaced, and the time is taken until the job runs its next attempt and
/// until that attempt commits a checkpoint. A job takes as many restarts as the masters allow
/// (`RESTARTS_PER_JOB`), then a new one is submitted.
/// Restarts the masters give a job over its life.
const RESTARTS_PER_JOB: usize = super::master::RESTARTS_MAX as usize;

fn run_worker_kills(args: &FailoverArgs) -> Result<(), CliError> {
    let root = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("tethys-bench-failover-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let masters = LocalMasters::start(&program, 3, SECRET, &root).map_err(|e| format!("cannot start the masters: {e}"))?;
    let all = masters.addrs().join(",");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("cannot start a runtime: {e}"))?;
    let mut workers = start_workers(&program, &all, 3)?;
    let started = Instant::now();
    loop {
        let cluster = runtime.block_on(ask_cluster(&all, SECRET, None));
        if cluster.is_ok_and(|cluster| cluster.workers.iter().filter(|worker| worker.alive).count() == 3) {
            break;
        }
        if started.elapsed() > GIVE_UP {
            return Err("the workers did not register".to_string().into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let submit = || -> Result<u64, CliError> {
        let request = long_job(&root);
        let submitted = runtime.block_on(super::cluster::call_any(&all, SECRET, None, |mut client| {
            let request = request.clone();
            async move { client.submit_job(request).await }
        }))?;
        Ok(submitted.job_id)
    };
    let cancel = |job: u64| {
        let _ = runtime.block_on(super::cluster::call_any(&all, SECRET, None, |mut client| async move {
            client.cancel_job(JobRequest { job_id: job }).await
        }));
    };
    let mut job = submit()?;
    let (mut running, mut checkpointed) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        // A job restarts at most `RESTARTS_PER_JOB` times over its life: then the next one.
        if run > 0 && run % RESTARTS_PER_JOB == 0 {
            cancel(job);
            job = submit()?;
        }
        // The job runs with a checkpoint committed in its current attempt.
        let waited = Instant::now();
        let before = loop {
            if let Some(info) = runtime.block_on(job_status(&all, job)) {
                if info.status != "running" && info.status != "created" && info.status != "restarting" && info.status != "failing" {
                    return Err(format!("the job is {} ({})", info.status, info.reason).into());
                }
                let cluster = runtime.block_on(ask_cluster(&all, SECRET, None)).ok();
                let alive = cluster.as_ref().map_or(0, |cluster| cluster.workers.iter().filter(|worker| worker.alive).count());
                let its_own = info.last_checkpoint > 0 && info.last_checkpoint_attempt == info.attempt;
                if info.status == "running" && its_own && alive == 3 && !info.placements.is_empty() {
                    break (info, cluster.expect("answered"));
                }
            }
            if waited.elapsed() > GIVE_UP {
                return Err(format!("run {run}: the job did not settle").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (info, cluster) = before;
        let victim_id = info.placements[0].worker_id;
        let victim_addr = cluster.workers.iter().find(|worker| worker.id == victim_id).map(|worker| worker.control_addr.clone());
        let victim = workers.1.iter().position(|addr| Some(addr) == victim_addr.as_ref()).ok_or("the job's worker is not ours")?;
        let _ = workers.0[victim].kill();
        let _ = workers.0[victim].wait();
        let killed = Instant::now();
        let mut again = None;
        loop {
            if let Some(now) = runtime.block_on(job_status(&all, job)) {
                if again.is_none() && now.status == "running" && now.attempt > info.attempt {
                    again = Some(killed.elapsed());
                }
                // A checkpoint of the new attempt (one the old took may still commit after the kill).
                let its_own = now.attempt > info.attempt && now.last_checkpoint_attempt == now.attempt;
                if let (Some(again), true) = (again, its_own) {
                    let done = killed.elapsed();
                    println!(
                        "run {run}: killed worker {victim_id}; the job ran again after {:.0} ms and committed a checkpoint after {:.0} ms",
                        ms(again),
                        ms(done)
                    );
                    running.push(again);
                    checkpointed.push(done);
                    break;
                }
                if now.status == "failed" || now.status == "finished" || now.status == "cancelled" {
                    return Err(format!("run {run}: the job is {} ({})", now.status, now.reason).into());
                }
            }
            if killed.elapsed() > GIVE_UP {
                return Err(format!("run {run}: the job did not recover within {GIVE_UP:?}").into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        add_workers(&mut workers, &program, &all, 1)?;
    }
    cancel(job);
    drop(workers);
    drop(masters);
    let _ = std::fs::remove_dir_all(&root);
    report("worker loss (kill to the job running again from its checkpoint)", &mut running);
    report("worker loss (kill to the job's next checkpoint committed)", &mut checkpointed);
    Ok(())
}
