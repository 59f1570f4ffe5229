//! `tethys up`: the whole platform in one process, as a new user first meets it: one master (a
//! Raft group of one) and a few workers, each serving its gRPC API on 127.0.0.1 exactly as the
//! separate processes do, and an example job submitted through that API, whose progress (status,
//! attempt, checkpoints committed by the master) is shown until it ends. The master serves its
//! HTTP/JSON API and `/metrics` too, on a free port of 127.0.0.1 (the URL is printed). With
//! `--keep` the cluster stays up afterwards, for `tethys cluster`, `submit`, `list` and `cancel`
//! (or the HTTP API) against it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tethys_control::rpc::proto::{JobRequest, SubmitJobRequest};
use tethys_control::rpc::server::{MasterNode, MasterOptions};
use tethys_control::worker_node::{WorkerOptions, WorkerProcess};

use super::cluster::{call_any, describe};
use super::CliError;

/// Arguments of `tethys up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Workers to start.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Slots per worker.
    #[arg(long, default_value_t = 1)]
    pub slots: u32,
    /// The master's directory (default: a fresh one under the system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the cluster up after the example job, until interrupted.
    #[arg(long)]
    pub keep: bool,
    /// The example job and its arguments (a job this program defines).
    #[arg(default_values_t = ["bench".to_string(), "window".to_string(), "30000000".to_string(), "42".to_string()])]
    pub job: Vec<String>,
}

/// The secret of the embedded cluster (`up`, `demo`): it serves 127.0.0.1 only.
pub(super) const SECRET: &str = "tethys-up-local-cluster";

/// A master (a Raft group of one, serving the HTTP API, `/metrics` and the console) and its
/// workers, all in this process on 127.0.0.1.
pub(super) struct Platform {
    pub master: MasterNode,
    pub master_addr: String,
    pub http_addr: std::net::SocketAddr,
    pub workers: Vec<WorkerProcess>,
    pub dir: PathBuf,
}

impl Platform {
    /// Starts it in `dir`, and waits until every worker registered.
    pub async fn start(workers: usize, slots: u32, dir: PathBuf) -> Result<(Platform, tethys_control::rpc::proto::ClusterReply), CliError> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("cannot listen: {e}"))?;
        let master_addr = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?.to_string();
        let mut options = MasterOptions::new(0, dir.join("master"), [(0, master_addr.clone())].into(), SECRET.to_string());
        options.bootstrap = true;
        super::master::run_this_program(&mut options, Some(dir.join("checkpoints")));
        let mut master = MasterNode::start(options, listener).await?;
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("cannot listen: {e}"))?;
        let http_addr = master.serve_http_with(http, Some(super::console_pages()))?;
        let mut started = Vec::new();
        for _ in 0..workers.max(1) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("cannot listen: {e}"))?;
            let options = WorkerOptions {
                masters: vec![master_addr.clone()],
                slots: slots.max(1),
                secret: SECRET.to_string(),
                tls: None,
                registry: crate::program::registry(),
                mesh: tethys_net::MeshOptions::default(),
                orphan_timeout: WorkerOptions::ORPHAN_TIMEOUT_DEFAULT,
                program_dir: WorkerOptions::default_program_dir(),
                program_processes: Default::default(),
            };
            started.push(WorkerProcess::start(options, listener).await?);
        }
        // Every worker registered.
        let cluster = loop {
            let cluster = super::cluster::ask_cluster(&master_addr, SECRET, None).await?;
            if cluster.workers.iter().filter(|worker| worker.alive).count() == started.len() {
                break cluster;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok((Platform { master, master_addr, http_addr, workers: started, dir }, cluster))
    }

    /// Submits a job through the masters' API; its id.
    pub async fn submit(&self, job: &[String], parallelism: u32, slots: u32) -> Result<u64, CliError> {
        let (name, job_args) = job.split_first().ok_or("no job given")?;
        let request = SubmitJobRequest {
            name: name.clone(),
            args: job_args.to_vec(),
            parallelism,
            slots,
            checkpoint_interval_ms: 500,
            build_id: tethys_engine::graph::fingerprint::build_id().to_string(),
            restore_from: String::new(),
            program: String::new(),
        };
        let submitted = call_any(&self.master_addr, SECRET, None, |mut client| {
            let request = request.clone();
            async move { client.submit_job(request).await }
        })
        .await?;
        Ok(submitted.job_id)
    }

    /// Stops the workers and the master; removes the directory when `remove`.
    pub async fn stop(self, remove: bool) {
        for worker in self.workers {
            worker.stop();
        }
        self.master.stop().await;
        if remove {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs the embedded cluster and its example job.
pub fn run(args: UpArgs) -> Result<(), CliError> {
    super::init_logs(tracing::Level::WARN);
    let dir = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("tethys-up-{}", std::process::id())));
    super::service_runtime()?.block_on(async {
        let (platform, cluster) = Platform::start(args.workers, args.slots, dir).await?;
        let (master_addr, http_addr) = (platform.master_addr.clone(), platform.http_addr);
        println!("master 0 at {master_addr} (directory {})", platform.dir.display());
        println!("console at http://{http_addr}/ (token: {SECRET})");
        println!("HTTP API and metrics at http://{http_addr}/api/cluster, /api/jobs, /metrics (header Authorization: Bearer {SECRET})");
        print!("{}", describe(&cluster));
        let parallelism = platform.workers.len() as u32 * args.slots.max(1);
        let job_id = platform.submit(&args.job, parallelism, parallelism).await?;
        println!("submitted job {job_id}: {} (parallelism {parallelism}, a checkpoint every 500 ms)", args.job.join(" "));
        let mut last = String::new();
        let info = loop {
            let info =
                call_any(&master_addr, SECRET, None, |mut client| async move { client.job_status(JobRequest { job_id }).await }).await?;
            let line = format!("  {} attempt {}, {} checkpoints committed", info.status, info.attempt, info.checkpoints_completed);
            if line != last {
                println!("{line}");
                last = line;
            }
            if matches!(info.status.as_str(), "finished" | "failed" | "cancelled") {
                break info;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        println!("job {job_id} {}{}", info.status, if info.reason.is_empty() { String::new() } else { format!(": {}", info.reason) });
        if args.keep {
            println!("the cluster stays up: TETHYS_CLUSTER_SECRET={SECRET} tethys cluster --masters {master_addr}; Ctrl-C stops it");
            tokio::signal::ctrl_c().await.map_err(|e| format!("cannot wait for a signal: {e}"))?;
        }
        platform.stop(args.dir.is_none()).await;
        if info.status == "finished" {
            Ok(())
        } else {
            Err(format!("the example job ended {}", info.status).into())
        }
    })
}
