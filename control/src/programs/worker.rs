//! A worker's attempt of an uploaded program's job, run in a process of that program
//! (`<program> attempt-worker`): the worker fetches the program from the masters, starts it when
//! the leader prepares the attempt (the child binds the attempt's data-plane listener and says
//! where), and passes on the leader's start, stop and adoption. The child runs the engine's
//! adoptable worker with the program's jobs, exactly as a worker runs a job of its own program in
//! its own process.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tethys_engine::cluster::JobRegistry;
use tethys_net::cluster::WorkerCloser;

use super::process::{
    first_from_parent, follow_parent, ChildOptions, ChildProcess, ChildSays, ParentSays, ToChild, ToParent, READY_TIMEOUT,
};

/// The hidden command of every Tethys program that runs one attempt of a job for a worker.
pub const ATTEMPT_WORKER_COMMAND: &str = "attempt-worker";

/// What the child says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerChildSays {
    /// It listens for the attempt's data plane here.
    Listening {
        /// The address.
        addr: String,
    },
    /// It joined the attempt's mesh; its subtasks run.
    Joined,
    /// The attempt could not join its mesh.
    Failed {
        /// Why.
        error: String,
    },
    /// The attempt ended.
    Ended {
        /// Why.
        why: String,
    },
}

impl ChildSays for WorkerChildSays {}

/// What the worker says to the child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerParentSays {
    /// Join the attempt's mesh as `node`, with every node's address (`0=<host:port>,...`).
    Start {
        /// Its node.
        node: u32,
        /// Every node's address.
        addresses: String,
    },
    /// Stop the attempt.
    Close {
        /// Why.
        reason: String,
    },
    /// A new leader adopts the attempt: the old coordinator's connection goes.
    DropCoordinator {
        /// Why.
        reason: String,
    },
}

impl ParentSays for WorkerParentSays {}

/// An attempt prepared in a process of its program: listening, not yet started.
pub struct PreparedChild {
    process: ChildProcess,
    data_addr: SocketAddr,
}

/// The arguments of the hidden command, for an attempt listening on `host`.
pub fn worker_args(host: IpAddr, orphan_timeout: Duration, options: &ChildOptions) -> Vec<String> {
    let mut args = vec![
        ATTEMPT_WORKER_COMMAND.to_string(),
        "--host".to_string(),
        host.to_string(),
        "--orphan-timeout-ms".to_string(),
        orphan_timeout.as_millis().to_string(),
    ];
    args.extend(options.args());
    args
}

/// Starts `program`'s process for an attempt, listening on `host` (blocking until it says where,
/// at most [`READY_TIMEOUT`]).
pub fn prepare_child(
    program: &Path,
    host: IpAddr,
    orphan_timeout: Duration,
    secret: &str,
    options: &ChildOptions,
    what: &str,
) -> Result<PreparedChild, String> {
    let mut process = ChildProcess::spawn(program, &worker_args(host, orphan_timeout, options), secret, what)?;
    match process.next_within::<WorkerChildSays>(READY_TIMEOUT)? {
        WorkerChildSays::Listening { addr } => {
            let data_addr = addr.parse().map_err(|error| format!("{what} listens on a bad address {addr:?}: {error}"))?;
            Ok(PreparedChild { process, data_addr })
        }
        other => Err(format!("{what} said {other:?} before it listened")),
    }
}

impl PreparedChild {
    /// Where the attempt's data plane listens.
    pub fn data_addr(&self) -> SocketAddr {
        self.data_addr
    }

    /// Starts the attempt as `node` of `addresses`: `on_joined` gets its closer once its mesh is
    /// up, `on_end` why it ended (the process is reaped by then).
    pub fn start(
        self,
        node: u32,
        addresses: &str,
        on_joined: impl FnOnce(ChildCloser) + Send + 'static,
        on_end: impl FnOnce(String) + Send + 'static,
    ) -> Result<(), String> {
        let to_child = self.process.sender::<WorkerParentSays>();
        if !to_child.send(&WorkerParentSays::Start { node, addresses: addresses.to_string() }) {
            return Err("the attempt's process ended before it started".to_string());
        }
        let closer = ChildCloser(to_child);
        let mut on_joined = Some(on_joined);
        let last_words = Arc::new(Mutex::new(None::<String>));
        let kept = Arc::clone(&last_words);
        self.process.follow(
            move |said: WorkerChildSays| match said {
                WorkerChildSays::Joined => {
                    if let Some(on_joined) = on_joined.take() {
                        on_joined(closer.clone());
                    }
                }
                WorkerChildSays::Failed { error } => *lock(&kept) = Some(format!("it could not join its cluster: {error}")),
                WorkerChildSays::Ended { why } => *lock(&kept) = Some(why),
                WorkerChildSays::Listening { .. } => {}
            },
            move |how| on_end(lock(&last_words).take().unwrap_or(how)),
        )
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Stops an attempt running in a process of its program, or has it drop its coordinator.
#[derive(Clone)]
pub struct ChildCloser(ToChild<WorkerParentSays>);

impl ChildCloser {
    /// Stops the attempt (its process then ends).
    pub fn close(&self, reason: &str) {
        self.0.send(&WorkerParentSays::Close { reason: reason.to_string() });
    }

    /// A new leader adopts the attempt.
    pub fn drop_coordinator(&self, reason: &str) {
        self.0.send(&WorkerParentSays::DropCoordinator { reason: reason.to_string() });
    }
}

/// The child's side: runs one attempt for the worker that started this process (see the module
/// documentation), with the program's `registry`. Returns once the attempt ended.
pub fn run_attempt_worker(host: IpAddr, orphan_timeout: Duration, options: &ChildOptions, registry: JobRegistry) -> Result<(), String> {
    let secret = super::process::secret_from_parent()?;
    let mesh = options.mesh()?;
    let listener = std::net::TcpListener::bind(SocketAddr::new(host, 0)).map_err(|error| format!("cannot listen on {host}: {error}"))?;
    let addr = listener.local_addr().map_err(|error| error.to_string())?;
    let to_parent = ToParent::<WorkerChildSays>::stdout();
    to_parent.send(&WorkerChildSays::Listening { addr: addr.to_string() });
    let (node, addresses) = match first_from_parent::<WorkerParentSays>()? {
        Some(WorkerParentSays::Start { node, addresses }) => (node, addresses),
        // Its worker went away, or dropped the attempt before it started.
        None | Some(WorkerParentSays::Close { .. }) => return Ok(()),
        Some(other) => return Err(format!("told {other:?} before the attempt started")),
    };
    let addresses = tethys_net::launcher::parse_addresses(&addresses).map_err(|error| format!("bad addresses: {error}"))?;
    // What the worker says from now on; a stop that comes before the mesh is up waits for it.
    let closer: Arc<Mutex<(Option<WorkerCloser>, Option<String>)>> = Arc::new(Mutex::new((None, None)));
    let (told, gone) = (Arc::clone(&closer), Arc::clone(&closer));
    let stop = |slot: &Mutex<(Option<WorkerCloser>, Option<String>)>, reason: String| {
        let mut slot = lock(slot);
        match &slot.0 {
            Some(closer) => closer.close(&reason),
            None => slot.1 = Some(reason),
        }
    };
    follow_parent(
        move |said: WorkerParentSays| match said {
            WorkerParentSays::Close { reason } => stop(&told, reason),
            WorkerParentSays::DropCoordinator { reason } => {
                if let Some(closer) = &lock(&told).0 {
                    closer.drop_coordinator(&reason);
                }
            }
            WorkerParentSays::Start { .. } => tracing::warn!("told to start an attempt that started"),
        },
        move |why| stop(&gone, why),
    );
    let worker = match tethys_net::cluster::Worker::start_adoptable(node, listener, &addresses, secret, registry, mesh, orphan_timeout) {
        Ok(worker) => worker,
        Err(error) => {
            to_parent.send(&WorkerChildSays::Failed { error: error.to_string() });
            return Err(error.to_string());
        }
    };
    {
        let mut slot = lock(&closer);
        slot.0 = Some(worker.closer());
        if let Some(reason) = slot.1.take() {
            worker.closer().close(&reason);
        }
    }
    to_parent.send(&WorkerChildSays::Joined);
    let why = worker.wait();
    to_parent.send(&WorkerChildSays::Ended { why: why.to_string() });
    Ok(())
}
