//! `tethys bench-failover`: how long the control plane is without a leader when its leader dies.
//!
//! It starts three master processes (`LocalMasters`), then, run after run: finds the leader, kills
//! it (SIGKILL), and measures until a write (registering a worker, sent to a survivor, which
//! forwards it) is committed by a new leader: "kill to a new leader serving". The killed master
//! is restarted on its directory and the next run waits until it follows again. It prints each
//! run and the p50, p99 and maximum.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use tethys_control::launcher::LocalMasters;
use tethys_control::rpc::proto::control_client::ControlClient;
use tethys_control::rpc::proto::RegisterWorkerRequest;
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
}

const SECRET: &str = "bench-failover-secret";
const GIVE_UP: Duration = Duration::from_secs(30);

/// Registers a worker through the first of `addrs` that takes it; whether one committed it.
async fn write_through_any(addrs: &[String], auth: &SecretAuth) -> bool {
    for addr in addrs {
        let Ok(endpoint) = tethys_control::rpc::endpoint(addr, Duration::from_millis(200), Duration::from_millis(1000)) else { continue };
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
    for run in 0..args.runs {
        // Every master running follows one leader that serves writes.
        let started = Instant::now();
        let leader = loop {
            if let Ok(reply) = runtime.block_on(ask_cluster(&all.join(","), SECRET)) {
                // And has applied what the leader had: a master restarted in the run before has
                // caught up (a lagging master cannot win an election, and only delays it).
                let every_master_caught_up = all.iter().all(|addr| {
                    runtime.block_on(ask_cluster(addr, SECRET)).is_ok_and(|seen| {
                        seen.leader_id == reply.leader_id && !seen.leader_addr.is_empty() && seen.applied_index >= reply.applied_index
                    })
                });
                if every_master_caught_up && runtime.block_on(write_through_any(&all, &auth)) {
                    break reply.leader_id as usize;
                }
            }
            if started.elapsed() > GIVE_UP {
                return Err(format!("run {run}: the masters did not settle on a leader within {GIVE_UP:?}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        masters.kill(leader).map_err(|e| format!("cannot kill master {leader}: {e}"))?;
        let killed = Instant::now();
        let survivors: Vec<String> = all.iter().enumerate().filter(|(id, _)| *id != leader).map(|(_, addr)| addr.clone()).collect();
        // First when a survivor names another leader, then when a write is committed.
        let elected = loop {
            let named = survivors.iter().any(|addr| {
                runtime
                    .block_on(ask_cluster(addr, SECRET))
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
            elected.as_secs_f64() * 1000.0,
            took.as_secs_f64() * 1000.0
        );
        times.push(took);
        masters.restart(leader).map_err(|e| format!("cannot restart master {leader}: {e}"))?;
    }
    drop(masters);
    let _ = std::fs::remove_dir_all(&root);
    times.sort();
    let at = |quantile: f64| times[((times.len() as f64 * quantile).ceil() as usize).clamp(1, times.len()) - 1].as_secs_f64() * 1000.0;
    if !times.is_empty() {
        println!(
            "leader failover (kill to a write committed by the new leader), {} runs: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            times.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    Ok(())
}
