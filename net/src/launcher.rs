//! [`LocalCluster`]: a small cluster of worker processes on this machine (127.0.0.1), with this
//! process as its coordinator, for tests, benchmarks and demos.
//!
//! Each worker is the same program started with `worker` arguments (`tethys worker`, or whatever
//! the program's own worker command is): it binds a free port, prints `listening <address>` on
//! its standard output, reads every node's address from one line of its standard input
//! (`0=<address>,1=<address>,...`), then joins the mesh. So no port is chosen before its
//! listener exists, and no two processes race for one. The cluster secret is fresh for every
//! cluster and reaches the workers in their environment ([`SECRET_ENV`]), never on a command line.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::cluster::WorkerSlots;

use crate::auth::ClusterSecret;
use crate::cluster::{Addresses, Coordinator};
use crate::error::NetError;
use crate::mesh::MeshOptions;

/// The environment variable a worker reads the cluster secret from.
pub const SECRET_ENV: &str = "TETHYS_CLUSTER_SECRET";

/// The line a worker prints once it listens, before its address.
pub const LISTENING_PREFIX: &str = "listening ";

/// How long a worker has to report its address.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a local cluster did not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// A worker process could not be started.
    #[error("cannot start worker {node} ({program}): {source}")]
    Spawn {
        /// The worker's node.
        node: u32,
        /// The program.
        program: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A worker did not report where it listens.
    #[error("worker {node} did not report its address within {waited:?}: {reason}")]
    NoAddress {
        /// The worker's node.
        node: u32,
        /// How long it was waited for.
        waited: Duration,
        /// What happened instead.
        reason: String,
    },
    /// The coordinator's side failed (its listener or the mesh).
    #[error(transparent)]
    Net(#[from] NetError),
    /// Local I/O failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// How to start the workers of a local cluster.
#[derive(Debug, Clone)]
pub struct LocalClusterSpec {
    /// The program every worker runs (the same as this one's, for a job to be accepted).
    pub program: PathBuf,
    /// Arguments before the worker options, e.g. `["worker"]`.
    pub worker_command: Vec<String>,
    /// Number of workers.
    pub workers: usize,
    /// Slots per worker.
    pub slots_per_worker: usize,
    /// Environment variables set for every worker (besides the secret).
    pub env: Vec<(String, String)>,
    /// TLS on every connection, with these files for every node (the coordinator's too).
    pub tls: Option<crate::tls::TlsFiles>,
    /// Connections between the cluster's processes move their bytes through shared memory (they
    /// all run on this host; see `ConnectionOptions::shared_memory_ring_bytes`); false: TCP only.
    pub shared_memory: bool,
}

impl LocalClusterSpec {
    /// `workers` workers of `slots_per_worker` slots each, running this program with `worker`.
    pub fn of_this_program(workers: usize, slots_per_worker: usize) -> Result<LocalClusterSpec, LaunchError> {
        let program = std::env::current_exe().map_err(|source| LaunchError::Io { what: "find this program", source })?;
        Ok(LocalClusterSpec {
            program,
            worker_command: vec!["worker".to_string()],
            workers,
            slots_per_worker,
            env: Vec::new(),
            tls: None,
            shared_memory: true,
        })
    }
}

/// A worker process of a local cluster.
struct WorkerProcess {
    node: u32,
    child: Child,
}

/// Worker processes on this machine with this process as their coordinator (see the module
/// documentation). Dropping it shuts the workers down and waits for them (killing any that
/// does not exit).
pub struct LocalCluster {
    coordinator: Option<Coordinator>,
    workers: Vec<WorkerProcess>,
    addresses: Addresses,
}

impl LocalCluster {
    /// Starts the workers, then joins them as the coordinator of `job`.
    pub fn start(spec: &LocalClusterSpec, job: JobSpec) -> Result<LocalCluster, LaunchError> {
        assert!(spec.workers > 0 && spec.slots_per_worker > 0, "a cluster has workers with slots");
        let secret_text = fresh_secret()?;
        let secret: ClusterSecret = secret_text.parse().expect("a fresh secret is long enough");
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|source| LaunchError::Io { what: "bind the coordinator", source })?;
        let coordinator_addr = listener.local_addr().map_err(|source| LaunchError::Io { what: "bind the coordinator", source })?;
        let mut cluster = LocalCluster { coordinator: None, workers: Vec::new(), addresses: Addresses::new() };
        cluster.addresses.insert(0, coordinator_addr);
        let mut stdins = Vec::new();
        let mut reports = Vec::new();
        for index in 0..spec.workers {
            let node = index as u32 + 1;
            let mut command = Command::new(&spec.program);
            command
                .args(&spec.worker_command)
                .args([
                    "--node",
                    &node.to_string(),
                    "--slots",
                    &spec.slots_per_worker.to_string(),
                    "--listen",
                    "127.0.0.1:0",
                    "--peers-from-stdin",
                ])
                .args(spec.tls.iter().flat_map(crate::tls::TlsFiles::worker_args))
                .args((!spec.shared_memory).then_some("--no-shared-memory"))
                .env(SECRET_ENV, &secret_text)
                .envs(spec.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            let mut child = command.spawn().map_err(|source| LaunchError::Spawn { node, program: spec.program.clone(), source })?;
            let stdout = child.stdout.take().expect("piped");
            stdins.push(child.stdin.take().expect("piped"));
            cluster.workers.push(WorkerProcess { node, child });
            // Each worker's first line comes on its own thread, so a silent one cannot block the rest.
            let (sender, receiver) = mpsc::channel();
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let first = lines.next();
                let _ = sender.send(first);
                // Whatever else the worker prints goes on to this process's output.
                for line in lines.map_while(Result::ok) {
                    println!("[worker {node}] {line}");
                }
            });
            reports.push((node, receiver));
        }
        let started = Instant::now();
        for (node, receiver) in reports {
            let left = WORKER_START_TIMEOUT.saturating_sub(started.elapsed());
            let no_address = |reason: String| LaunchError::NoAddress { node, waited: WORKER_START_TIMEOUT, reason };
            let line = match receiver.recv_timeout(left) {
                Ok(Some(Ok(line))) => line,
                Ok(Some(Err(error))) => return Err(no_address(format!("reading its output failed: {error}"))),
                Ok(None) => return Err(no_address("it exited first".to_string())),
                Err(_) => return Err(no_address("it printed nothing".to_string())),
            };
            let addr: SocketAddr = line
                .strip_prefix(LISTENING_PREFIX)
                .and_then(|addr| addr.trim().parse().ok())
                .ok_or_else(|| no_address(format!("it printed {line:?}")))?;
            cluster.addresses.insert(node, addr);
        }
        let peers_line = format_addresses(&cluster.addresses);
        for mut stdin in stdins {
            writeln!(stdin, "{peers_line}").map_err(|source| LaunchError::Io { what: "tell a worker its peers", source })?;
        }
        let workers = (1..=spec.workers as u32).map(|node| WorkerSlots { node, slots: spec.slots_per_worker }).collect();
        let mut options = MeshOptions { establish_timeout: Duration::from_secs(30), ..MeshOptions::default() };
        if let Some(files) = &spec.tls {
            let tls = files
                .load()
                .map_err(|error| LaunchError::Io { what: "load the TLS files", source: std::io::Error::other(error.to_string()) })?;
            options.connection.tls = Some(tls);
        }
        if !spec.shared_memory {
            options.connection.shared_memory_ring_bytes = 0;
        }
        cluster.coordinator = Some(Coordinator::start(listener, &cluster.addresses, secret, job, workers, options)?);
        Ok(cluster)
    }

    /// The coordinator: run the job with `execute_on_cluster(.., cluster.coordinator().cluster())`.
    pub fn coordinator(&self) -> &Coordinator {
        self.coordinator.as_ref().expect("set once started")
    }

    /// Every node's address.
    pub fn addresses(&self) -> &Addresses {
        &self.addresses
    }

    /// The process id of worker `node`.
    pub fn pid(&self, node: u32) -> Option<u32> {
        self.workers.iter().find(|w| w.node == node).map(|w| w.child.id())
    }

    /// Kills worker `node` at once (SIGKILL): for failure tests.
    pub fn kill_worker(&mut self, node: u32) -> std::io::Result<()> {
        match self.workers.iter_mut().find(|w| w.node == node) {
            Some(worker) => worker.child.kill(),
            None => Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("no worker {node}"))),
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // The coordinator shuts the workers down as it goes.
        drop(self.coordinator.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        for worker in &mut self.workers {
            loop {
                match worker.child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                    _ => {
                        let _ = worker.child.kill();
                        let _ = worker.child.wait();
                        break;
                    }
                }
            }
        }
    }
}

/// Addresses as one line, `0=<address>,1=<address>,...`.
pub fn format_addresses(addresses: &Addresses) -> String {
    addresses.iter().map(|(node, addr)| format!("{node}={addr}")).collect::<Vec<_>>().join(",")
}

/// Addresses from a line `format_addresses` wrote (or a user typed), or what is wrong with it.
pub fn parse_addresses(line: &str) -> Result<Addresses, String> {
    let mut addresses = Addresses::new();
    for entry in line.trim().split(',').filter(|entry| !entry.trim().is_empty()) {
        let (node, addr) = entry.split_once('=').ok_or_else(|| format!("'{entry}' is not <node>=<address>"))?;
        let node: u32 = node.trim().parse().map_err(|_| format!("'{node}' is not a node number"))?;
        let addr: SocketAddr = addr.trim().parse().map_err(|_| format!("'{addr}' is not an address (host:port)"))?;
        if addresses.insert(node, addr).is_some() {
            return Err(format!("node {node} is given twice"));
        }
    }
    if !addresses.contains_key(&0) {
        return Err("no address for node 0, the coordinator".to_string());
    }
    Ok(addresses)
}

/// A fresh random secret, as hex.
fn fresh_secret() -> Result<String, LaunchError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| LaunchError::Io { what: "draw a cluster secret", source: std::io::Error::other(error.to_string()) })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A cluster whose coordinator and workers all run in this process, each its own node of the
/// mesh on 127.0.0.1 (so every channel between workers crosses a real TCP connection): for tests
/// and measurements whose jobs share memory with the caller (a histogram, a collecting sink).
/// Dropping it shuts the workers down.
pub struct InProcessCluster {
    coordinator: Option<Coordinator>,
    workers: Vec<crate::cluster::Worker>,
}

impl InProcessCluster {
    /// Starts `workers` workers of `slots_per_worker` slots, building jobs with `registry`, and
    /// their coordinator for `job`.
    pub fn start(
        workers: usize,
        slots_per_worker: usize,
        registry: tethys_engine::cluster::JobRegistry,
        job: JobSpec,
    ) -> Result<InProcessCluster, LaunchError> {
        InProcessCluster::start_with(workers, slots_per_worker, registry, job, MeshOptions::default())
    }

    /// `start`, every node's mesh with `options` (e.g. TLS in its connection options).
    pub fn start_with(
        workers: usize,
        slots_per_worker: usize,
        registry: tethys_engine::cluster::JobRegistry,
        job: JobSpec,
        options: MeshOptions,
    ) -> Result<InProcessCluster, LaunchError> {
        let secret: ClusterSecret = fresh_secret()?.parse().expect("a fresh secret is long enough");
        let bind = || std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|source| LaunchError::Io { what: "bind a node", source });
        let listeners: Vec<std::net::TcpListener> = (0..=workers).map(|_| bind()).collect::<Result<_, _>>()?;
        let mut addresses = Addresses::new();
        for (node, listener) in listeners.iter().enumerate() {
            let addr = listener.local_addr().map_err(|source| LaunchError::Io { what: "bind a node", source })?;
            addresses.insert(node as u32, addr);
        }
        let mut listeners = listeners.into_iter();
        let coordinator_listener = listeners.next().expect("node 0");
        // Every node waits in `start` for the others: the workers start on threads of their own.
        let starting: Vec<std::thread::JoinHandle<Result<crate::cluster::Worker, NetError>>> = listeners
            .enumerate()
            .map(|(index, listener)| {
                let (addresses, secret, registry, options) = (addresses.clone(), secret.clone(), registry.clone(), options.clone());
                std::thread::spawn(move || crate::cluster::Worker::start(index as u32 + 1, listener, &addresses, secret, registry, options))
            })
            .collect();
        let slots = (1..=workers as u32).map(|node| WorkerSlots { node, slots: slots_per_worker }).collect();
        let coordinator = Coordinator::start(coordinator_listener, &addresses, secret, job, slots, options);
        let mut started = Vec::new();
        for worker in starting {
            started.push(worker.join().expect("a worker's start does not panic")?);
        }
        Ok(InProcessCluster { coordinator: Some(coordinator?), workers: started })
    }

    /// The coordinator.
    pub fn coordinator(&self) -> &Coordinator {
        self.coordinator.as_ref().expect("set once started")
    }

    /// Worker `node` (1 and up).
    pub fn worker(&self, node: u32) -> &crate::cluster::Worker {
        &self.workers[node as usize - 1]
    }
}

impl Drop for InProcessCluster {
    fn drop(&mut self) {
        drop(self.coordinator.take());
        for worker in self.workers.drain(..) {
            worker.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_bad_lines_are_named() {
        let mut addresses = Addresses::new();
        addresses.insert(0, "127.0.0.1:4000".parse().unwrap());
        addresses.insert(2, "127.0.0.1:4002".parse().unwrap());
        assert_eq!(parse_addresses(&format_addresses(&addresses)).unwrap(), addresses);
        assert!(parse_addresses("1=127.0.0.1:1").unwrap_err().contains("node 0"));
        assert!(parse_addresses("0=nowhere").unwrap_err().contains("nowhere"));
        assert!(parse_addresses("0=127.0.0.1:1,0=127.0.0.1:2").unwrap_err().contains("twice"));
    }
}
