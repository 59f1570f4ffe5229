//! `tethys worker`: one worker process of a cluster. It listens, joins the mesh of the cluster's
//! processes (node 0 is the coordinator), then builds and runs whatever the coordinator deploys,
//! from the jobs this program knows, until the coordinator shuts it down or is lost. Logs go to
//! standard error through `tracing` (`RUST_LOG`-style level with `--log`).

use std::io::{BufRead, Write};
use std::net::{SocketAddr, TcpListener};

use clap::Args;
use tethys_net::launcher::{parse_addresses, LISTENING_PREFIX};
use tethys_net::{ClusterSecret, MeshOptions};

use super::CliError;

/// Arguments of `tethys worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// This worker's node number (1 and up; 0 is the coordinator), in a cluster its coordinator
    /// started (`tethys run --workers`); not with `--masters`.
    #[arg(long, required_unless_present = "masters", conflicts_with = "masters")]
    pub node: Option<u32>,
    /// Masters to register with, `host:port,...`: the worker then runs the attempts the leader
    /// deploys on it (its control address is `--listen`).
    #[arg(long)]
    pub masters: Option<String>,
    /// Slots (cores) this worker offers; the coordinator's plan decides what runs in them.
    #[arg(long, default_value_t = 1)]
    pub slots: usize,
    /// Address to listen on (port 0: any free port, printed as `listening <address>`).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Every node's address, `0=<host:port>,1=<host:port>,...`.
    #[arg(long, conflicts_with = "peers_from_stdin")]
    pub peers: Option<String>,
    /// Read the addresses (as for `--peers`) from one line of standard input, after printing
    /// where this worker listens (what a launcher uses).
    #[arg(long)]
    pub peers_from_stdin: bool,
    /// With `--masters`: serve `/metrics` on this address too (port 0: any free port, printed as
    /// `http <address>`); every request needs `Authorization: Bearer <secret>`.
    #[arg(long, requires = "masters")]
    pub http: Option<SocketAddr>,
    /// Under --masters: how long an attempt whose leader died runs on for a new leader to adopt
    /// it, in milliseconds; then it ends.
    #[arg(long, requires = "masters", default_value_t = 60_000)]
    pub orphan_timeout_ms: u64,
    /// Under --masters: where the uploaded programs whose jobs it runs are kept (default:
    /// `tethys-programs` in the temporary directory).
    #[arg(long, requires = "masters")]
    pub program_dir: Option<std::path::PathBuf>,
    /// File holding the cluster secret (default: the environment variable TETHYS_CLUSTER_SECRET).
    #[arg(long)]
    pub secret_file: Option<std::path::PathBuf>,
    /// Keep every connection on TCP, even with a process of this host (by default such a
    /// connection moves its bytes through shared memory, and TCP carries only its wake-ups).
    #[arg(long)]
    pub no_shared_memory: bool,
    /// Mutual TLS on every connection (all nodes of the cluster must have it on): the data plane's,
    /// and with `--masters` the gRPC API's (served, and dialled to the masters).
    #[command(flatten)]
    pub tls: super::TlsArgs,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    pub log: tracing::Level,
}

/// Runs the worker under the masters until it is killed or interrupted.
fn run_under_masters(args: &WorkerArgs, masters: &str) -> Result<(), CliError> {
    let secret = super::read_secret_text(args.secret_file.as_deref())?;
    let mut mesh = MeshOptions::default();
    if let Some(files) = args.tls.files() {
        mesh.connection.tls = Some(files.load()?);
    }
    if args.no_shared_memory {
        mesh.connection.shared_memory_ring_bytes = 0;
    }
    let options = tethys_control::worker_node::WorkerOptions {
        masters: masters.split(',').map(|addr| addr.trim().to_string()).filter(|addr| !addr.is_empty()).collect(),
        slots: args.slots as u32,
        secret,
        tls: args.tls.grpc()?,
        registry: crate::program::registry(),
        mesh,
        orphan_timeout: std::time::Duration::from_millis(args.orphan_timeout_ms),
        program_dir: args.program_dir.clone().unwrap_or_else(tethys_control::worker_node::WorkerOptions::default_program_dir),
        program_processes: tethys_control::programs::process::ChildOptions {
            tls: args.tls.files(),
            no_shared_memory: args.no_shared_memory,
        },
    };
    super::service_runtime()?.block_on(async {
        let listener = super::listen_and_announce(args.listen).await?;
        let http = match args.http {
            Some(addr) => Some(super::listen_http_and_announce(addr).await?),
            None => None,
        };
        let mut worker = tethys_control::worker_node::WorkerProcess::start(options, listener).await?;
        if let Some(http) = http {
            worker.serve_http(http)?;
        }
        tokio::signal::ctrl_c().await.map_err(|e| format!("cannot wait for a signal: {e}"))?;
        tracing::info!("interrupted; stopping");
        worker.stop();
        Ok::<(), CliError>(())
    })
}

/// Runs the worker until the coordinator (or, with `--masters`, an interrupt) ends it.
pub fn run(args: WorkerArgs) -> Result<(), CliError> {
    super::init_logs(args.log);
    if let Some(masters) = &args.masters {
        return run_under_masters(&args, masters);
    }
    let node = args.node.expect("clap requires --node without --masters");
    if node == 0 {
        return Err("--node 0 is the coordinator; workers are 1 and up".into());
    }
    let secret: ClusterSecret =
        super::read_secret_text(args.secret_file.as_deref())?.parse().map_err(|e| format!("bad cluster secret: {e}"))?;
    let listener = TcpListener::bind(args.listen).map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
    println!("{LISTENING_PREFIX}{local}");
    std::io::stdout().flush().map_err(|e| format!("cannot write to standard output: {e}"))?;
    let peers_line = match (&args.peers, args.peers_from_stdin) {
        (Some(peers), _) => peers.clone(),
        (None, true) => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the peers from standard input: {e}"))?;
            line
        }
        (None, false) => return Err("give --peers or --peers-from-stdin".into()),
    };
    let addresses = parse_addresses(&peers_line).map_err(|e| format!("bad peers: {e}"))?;
    if !addresses.contains_key(&node) {
        return Err(format!("the peers name no address for node {node} (this worker)").into());
    }
    let mut options = MeshOptions::default();
    if let Some(files) = args.tls.files() {
        options.connection.tls = Some(files.load()?);
    }
    if args.no_shared_memory {
        options.connection.shared_memory_ring_bytes = 0;
    }
    tracing::info!(node, slots = args.slots, %local, tls = options.connection.tls.is_some(), "worker listening");
    let why = tethys_net::cluster::run_worker(node, listener, &addresses, secret, crate::program::registry(), options)?;
    tracing::info!(node, %why, "worker done");
    Ok(())
}

/// Arguments of the hidden `attempt-worker` command: one attempt of a job of this program, for the
/// worker process that started this one (`tethys_control::programs::worker`).
#[derive(Args, Debug)]
pub struct AttemptWorkerArgs {
    #[command(flatten)]
    pub process: super::ProgramProcessArgs,
    /// How long the attempt runs on without a coordinator, in milliseconds.
    #[arg(long)]
    pub orphan_timeout_ms: u64,
}

/// Runs one attempt for the worker that started this process, until it ends.
pub fn attempt_worker(args: AttemptWorkerArgs) -> Result<(), CliError> {
    let options = args.process.start();
    let orphan_timeout = std::time::Duration::from_millis(args.orphan_timeout_ms);
    let registry = crate::program::registry();
    Ok(tethys_control::programs::worker::run_attempt_worker(args.process.host, orphan_timeout, &options, registry)?)
}
