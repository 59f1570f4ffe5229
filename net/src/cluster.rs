//! The engine's cluster over the mesh: [`MeshNet`] gives the engine its links to the other
//! processes (the engine's `ClusterNet`), [`EngineInbound`] hands what arrives to the engine's
//! coordinator or worker, and [`run_worker`] and [`Coordinator`] are the two processes' entry
//! points. [`LocalCluster`](crate::launcher::LocalCluster) starts worker processes on this machine.
//!
//! Data-plane messages name their destination subtask in the stream id (see the engine's
//! `cluster::protocol::DataStream`); a frame's payload is its rkyv encoding, sent without a copy
//! from the producer's buffer and received into a pooled aligned buffer that the consuming task
//! decodes in place and then drops back into the pool.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use tethys_engine::channel::transport::{FrameBuffer, FrameBytes, LinkDown, OutgoingFrame, RemoteLink, WireEvent};
use tethys_engine::cluster::protocol::{DataStream, JobSpec};
use tethys_engine::cluster::{ClusterCoordinator, ClusterNet, DataKind, JobRegistry, Undeliverable, WorkerNode, WorkerSlots};

use crate::auth::ClusterSecret;
use crate::conn::{CloseReason, Connection, Inbound, Listener};
use crate::error::NetError;
use crate::mesh::{Mesh, MeshOptions};
use crate::node::NodeId;
use crate::pool::{BufferPool, PooledBuf};
use crate::wire::{Message, MessageKind};

/// The mesh as the engine's `ClusterNet`. The mesh is set once it is up; until then nothing is
/// sent (a process sends nothing before its mesh is complete).
pub struct MeshNet {
    me: u32,
    mesh: OnceLock<Mesh>,
    /// Buffers frames are encoded into: back here once the connection has written them.
    frame_buffers: BufferPool,
}

impl MeshNet {
    /// The links of node `me`, before its mesh is up.
    pub fn new(me: u32) -> Arc<MeshNet> {
        Arc::new(MeshNet { me, mesh: OnceLock::new(), frame_buffers: BufferPool::default() })
    }

    fn set_mesh(&self, mesh: Mesh) {
        assert!(self.mesh.set(mesh).is_ok(), "a mesh is set once");
    }

    fn connection(&self, node: u32) -> Result<Connection, LinkDown> {
        let down = |reason: &str| LinkDown { peer: format!("node {node}"), reason: reason.to_string() };
        let mesh = self.mesh.wait();
        mesh.connection(NodeId(node)).ok_or_else(|| down("not a peer of this process"))
    }

    /// Closes every connection, after what was queued on it (waiting up to `linger` for it to be
    /// written, so a last message such as a shutdown is not lost with the process).
    pub fn close(&self, reason: &str, linger: std::time::Duration) {
        let Some(mesh) = self.mesh.get() else { return };
        let connections: Vec<Connection> = mesh.connected_peers().into_iter().filter_map(|peer| mesh.connection(peer)).collect();
        mesh.close(reason);
        let deadline = std::time::Instant::now() + linger;
        while std::time::Instant::now() < deadline && connections.iter().any(|c| c.stats().bytes_queued > 0) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

impl ClusterNet for MeshNet {
    fn me(&self) -> u32 {
        self.me
    }

    fn data_link(&self, node: u32, attempt: u32) -> Result<Arc<dyn RemoteLink>, LinkDown> {
        let connection = self.connection(node)?;
        let peer = format!("node {node} at {}", connection.peer_addr());
        Ok(Arc::new(MeshLink { connection, attempt, peer, frame_buffers: self.frame_buffers.clone() }))
    }

    fn send_control(&self, node: u32, message: Vec<u8>) -> Result<(), LinkDown> {
        let connection = self.connection(node)?;
        connection
            .send(MessageKind::Control, 0, 0, message)
            .map_err(|error| LinkDown { peer: format!("node {node}"), reason: error.to_string() })
    }
}

/// The data plane of one attempt towards one process.
struct MeshLink {
    connection: Connection,
    attempt: u32,
    peer: String,
    frame_buffers: BufferPool,
}

/// Room asked of a pooled buffer for a frame (an encoding grows it as needed; a buffer kept by
/// the pool has what the frames before it needed).
const FRAME_BUFFER_BYTES: usize = 64 << 10;

impl MeshLink {
    fn stream(&self, (task, subtask): (usize, usize), port: usize) -> Result<u64, LinkDown> {
        DataStream::new(self.attempt, task, subtask, port)
            .map(DataStream::pack)
            .map_err(|error| LinkDown { peer: self.peer.clone(), reason: error.to_string() })
    }

    fn send(&self, kind: MessageKind, stream: u64, aux: u64, payload: impl Into<crate::conn::Payload>) -> Result<(), LinkDown> {
        self.connection.send(kind, stream, aux, payload).map_err(|error| LinkDown { peer: self.peer.clone(), reason: error.to_string() })
    }
}

impl RemoteLink for MeshLink {
    fn peer(&self) -> String {
        self.peer.clone()
    }

    fn frame_buffer(&self) -> FrameBuffer {
        self.frame_buffers.take_vec(FRAME_BUFFER_BYTES)
    }

    fn send_frame(&self, to: (usize, usize), channel: usize, backlog: u32, frame: OutgoingFrame) -> Result<(), LinkDown> {
        let stream = self.stream(to, channel)?;
        // Written without a copy: an encoded frame's buffer goes back to the pool once the writer is
        // done with it; plain records are written from the frame itself.
        let payload = match frame {
            OutgoingFrame::Encoded(buffer) => crate::conn::Payload::from(self.frame_buffers.adopt(buffer)),
            OutgoingFrame::Plain { header, records } => {
                crate::conn::Payload::Prefixed { prefix: header, body: Box::new(PlainBody(records)) }
            }
        };
        self.send(MessageKind::Data, stream, u64::from(backlog), payload)
    }

    fn send_event(&self, to: (usize, usize), channel: usize, backlog: u32, event: WireEvent) -> Result<(), LinkDown> {
        let stream = self.stream(to, channel)?;
        self.send(MessageKind::Event, stream, u64::from(backlog), event.encode().to_vec())
    }

    fn send_credit(&self, to: (usize, usize), output: usize, channel: usize, credits: u32) -> Result<(), LinkDown> {
        let port =
            DataStream::credit_port(output, channel).map_err(|error| LinkDown { peer: self.peer.clone(), reason: error.to_string() })?;
        let stream = self.stream(to, port)?;
        self.send(MessageKind::Credit, stream, u64::from(credits), ())
    }
}

// A plain frame's header is the payload's prefix, which keeps the records aligned when received.
const _: () = assert!(tethys_engine::frame::plain::PLAIN_HEADER_BYTES == crate::conn::PAYLOAD_PREFIX_BYTES);

/// The records of a plain frame as a payload's body.
struct PlainBody(Box<dyn FrameBytes>);

impl crate::conn::PayloadBody for PlainBody {
    fn bytes(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// A received payload as the engine reads a frame from it (aligned; back to the pool on drop).
struct PooledFrame(PooledBuf);

impl FrameBytes for PooledFrame {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Which side of the engine's cluster this process is.
enum Role {
    Worker(Arc<WorkerNode>),
    Coordinator(Arc<ClusterCoordinator>),
}

/// What arrives from the mesh, handed to the engine.
pub struct EngineInbound {
    role: OnceLock<Role>,
    net: Arc<MeshNet>,
}

impl EngineInbound {
    fn new(net: Arc<MeshNet>) -> Arc<EngineInbound> {
        Arc::new(EngineInbound { role: OnceLock::new(), net })
    }

    fn role(&self) -> &Role {
        self.role.wait()
    }
}

impl Inbound for EngineInbound {
    fn on_message(&self, peer: NodeId, message: Message) {
        let kind = match message.kind {
            MessageKind::Data => DataKind::Frame,
            MessageKind::Event => DataKind::Event,
            MessageKind::Credit => DataKind::Credit,
            MessageKind::Control => {
                match self.role() {
                    Role::Worker(worker) => worker.on_control(peer.0, &message.payload),
                    Role::Coordinator(coordinator) => coordinator.on_control(peer.0, &message.payload),
                }
                return;
            }
            MessageKind::Close => return,
        };
        let Role::Worker(worker) = self.role() else {
            // The coordinator runs no subtask: data sent to it is a peer's bug.
            tracing::warn!(%peer, ?kind, "the coordinator received data-plane traffic; closing the connection");
            if let Some(mesh) = self.net.mesh.get() {
                if let Some(connection) = mesh.connection(peer) {
                    connection.close("the coordinator runs no subtask");
                }
            }
            return;
        };
        match worker.tasks().deliver(kind, message.stream, message.aux, Box::new(PooledFrame(message.payload))) {
            Ok(()) | Err(Undeliverable::StaleAttempt { .. }) => {}
            Err(error @ (Undeliverable::MalformedEvent(_) | Undeliverable::BadCredit(_))) => {
                // Bad input from a peer: its connection goes, which fails what depends on it.
                tracing::warn!(%peer, %error, "malformed data-plane message; closing the connection");
                if let Some(connection) = self.net.mesh.get().and_then(|mesh| mesh.connection(peer)) {
                    connection.close(&format!("malformed data-plane message: {error}"));
                }
            }
            Err(error @ Undeliverable::UnknownSubtask { .. }) => {
                // A subtask of the running attempt that already stopped (the attempt is ending).
                tracing::debug!(%peer, %error, "data-plane message for a subtask not running here");
            }
        }
    }

    fn on_data_in_place(&self, _peer: NodeId, stream: u64, aux: u64, payload: &[u8]) -> bool {
        // A frame whose bytes lie whole in the receive buffer (as most do in a shared-memory
        // ring) is decoded from there into its records: one copy instead of two, and none on
        // the subtask's thread. Anything else takes the usual way, which reports what is wrong.
        match self.role.get() {
            Some(Role::Worker(worker)) => worker.tasks().deliver_frame_in_place(stream, aux, payload).unwrap_or(false),
            _ => false,
        }
    }

    fn on_closed(&self, peer: NodeId, reason: CloseReason) {
        let reason = reason.to_string();
        match self.role.get() {
            Some(Role::Worker(worker)) => worker.on_peer_lost(peer.0, &reason),
            Some(Role::Coordinator(coordinator)) => coordinator.on_peer_lost(peer.0, &reason),
            None => {}
        }
    }
}

/// How long a process that ends waits for its last messages to be written.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(2);

/// Where every process of a cluster listens: node 0 the coordinator, 1.. the workers.
pub type Addresses = BTreeMap<u32, SocketAddr>;

fn mesh_peers(addresses: &Addresses) -> BTreeMap<NodeId, SocketAddr> {
    addresses.iter().map(|(&node, &addr)| (NodeId(node), addr)).collect()
}

/// The tokio runtime a process's connections run on: two threads, apart from the task slots.
fn network_runtime(name: &str) -> Result<tokio::runtime::Runtime, NetError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|source| NetError::Runtime { source })
}

/// Runs worker `me` of a cluster until the coordinator shuts it down or is lost: joins the mesh
/// (listening on `listener`, reaching the others at `addresses`), then builds and runs what the
/// coordinator deploys with `registry`. Returns why it ended.
pub fn run_worker(
    me: u32,
    listener: std::net::TcpListener,
    addresses: &Addresses,
    secret: ClusterSecret,
    registry: JobRegistry,
    options: MeshOptions,
) -> Result<String, NetError> {
    Ok(Worker::start(me, listener, addresses, secret, registry, options)?.wait())
}

/// A worker of a cluster in this process (see [`run_worker`]).
pub struct Worker {
    me: u32,
    worker: Arc<WorkerNode>,
    net: Arc<MeshNet>,
    runtime: tokio::runtime::Runtime,
}

impl Worker {
    /// Joins the mesh as worker `me`; returns once every connection is up. Losing the
    /// coordinator ends the worker.
    pub fn start(
        me: u32,
        listener: std::net::TcpListener,
        addresses: &Addresses,
        secret: ClusterSecret,
        registry: JobRegistry,
        options: MeshOptions,
    ) -> Result<Worker, NetError> {
        Worker::start_as(me, listener, addresses, secret, registry, options, None)
    }

    /// As [`Worker::start`], for a worker whose subtasks outlive their coordinator: they run on
    /// until a new coordinator (node 0 again, connecting anew) adopts them
    /// ([`Coordinator::adopt`]), the worker is closed ([`WorkerCloser`]), or none adopted them
    /// within `orphan_timeout`.
    pub fn start_adoptable(
        me: u32,
        listener: std::net::TcpListener,
        addresses: &Addresses,
        secret: ClusterSecret,
        registry: JobRegistry,
        options: MeshOptions,
        orphan_timeout: std::time::Duration,
    ) -> Result<Worker, NetError> {
        Worker::start_as(me, listener, addresses, secret, registry, options, Some(orphan_timeout))
    }

    fn start_as(
        me: u32,
        listener: std::net::TcpListener,
        addresses: &Addresses,
        secret: ClusterSecret,
        registry: JobRegistry,
        options: MeshOptions,
        orphan_timeout: Option<std::time::Duration>,
    ) -> Result<Worker, NetError> {
        let runtime = network_runtime("tethys-net")?;
        let net = MeshNet::new(me);
        let inbound = EngineInbound::new(Arc::clone(&net));
        let worker = WorkerNode::new(me, Arc::clone(&net) as Arc<dyn ClusterNet>, registry, orphan_timeout);
        let _ = inbound.role.set(Role::Worker(Arc::clone(&worker)));
        let mesh = runtime.block_on(async {
            let listener = Listener::from_std(listener)?;
            Mesh::start(NodeId(me), listener, mesh_peers(addresses), secret, inbound.clone(), options).await
        })?;
        tracing::info!(node = me, peers = ?mesh.connected_peers(), "worker joined its cluster");
        net.set_mesh(mesh);
        Ok(Worker { me, worker, net, runtime })
    }

    /// The connection to a node, to look at its figures.
    pub fn connection(&self, node: u32) -> Option<Connection> {
        self.net.mesh.get().and_then(|mesh| mesh.connection(NodeId(node)))
    }

    /// A handle that ends this worker from another thread (see [`WorkerCloser`]).
    pub fn closer(&self) -> WorkerCloser {
        WorkerCloser { net: Arc::clone(&self.net), worker: Arc::clone(&self.worker) }
    }

    /// Closes the connection to the coordinator, if one is open: a coordinator that no longer
    /// drives the job (its leader was deposed but lives on) gives way to the one adopting it.
    pub fn drop_coordinator(&self, reason: &str) {
        if let Some(connection) = self.connection(0) {
            connection.close(reason);
        }
    }

    /// Runs until the coordinator shuts the worker down or is lost; closes the connections and
    /// returns why it ended.
    pub fn wait(self) -> String {
        let why = self.worker.wait();
        tracing::info!(node = self.me, why = %why, "worker stops");
        self.net.close(&why, CLOSE_LINGER);
        self.runtime.shutdown_timeout(CLOSE_LINGER);
        why
    }
}

/// Ends a worker from another thread: cancels its subtasks and closes its connections, and
/// `Worker::wait` returns (e.g. when a newer leader fences an attempt off).
#[derive(Clone)]
pub struct WorkerCloser {
    net: Arc<MeshNet>,
    worker: Arc<WorkerNode>,
}

impl WorkerCloser {
    /// Ends the worker, saying `reason` to its peers.
    pub fn close(&self, reason: &str) {
        self.worker.end(reason);
        self.net.close(reason, CLOSE_LINGER);
    }

    /// See [`Worker::drop_coordinator`].
    pub fn drop_coordinator(&self, reason: &str) {
        if let Some(connection) = self.net.mesh.get().and_then(|mesh| mesh.connection(NodeId(0))) {
            connection.close(reason);
        }
    }
}

/// This process as the coordinator (node 0) of a cluster whose workers run `job`.
pub struct Coordinator {
    cluster: Arc<ClusterCoordinator>,
    net: Arc<MeshNet>,
    runtime: Option<tokio::runtime::Runtime>,
    /// It gave the job up to another coordinator: the workers are not told to stop.
    abandoned: std::sync::atomic::AtomicBool,
}

impl Coordinator {
    /// Joins the mesh as node 0 (listening on `listener`, the workers at `addresses`, each with
    /// its slots in `workers`, in slot order).
    pub fn start(
        listener: std::net::TcpListener,
        addresses: &Addresses,
        secret: ClusterSecret,
        job: JobSpec,
        workers: Vec<WorkerSlots>,
        options: MeshOptions,
    ) -> Result<Coordinator, NetError> {
        Coordinator::start_as(listener, addresses, secret, job, workers, options, false)
    }

    /// As [`Coordinator::start`], for workers that run an attempt of `job` already, begun by a
    /// coordinator that was lost (they were started with [`Worker::start_adoptable`]): the job
    /// driver adopts it (see the engine's `ClusterCoordinator::adopting`).
    pub fn adopt(
        listener: std::net::TcpListener,
        addresses: &Addresses,
        secret: ClusterSecret,
        job: JobSpec,
        workers: Vec<WorkerSlots>,
        options: MeshOptions,
    ) -> Result<Coordinator, NetError> {
        Coordinator::start_as(listener, addresses, secret, job, workers, options, true)
    }

    fn start_as(
        listener: std::net::TcpListener,
        addresses: &Addresses,
        secret: ClusterSecret,
        job: JobSpec,
        workers: Vec<WorkerSlots>,
        options: MeshOptions,
        adopt: bool,
    ) -> Result<Coordinator, NetError> {
        let runtime = network_runtime("tethys-net")?;
        let net = MeshNet::new(0);
        let inbound = EngineInbound::new(Arc::clone(&net));
        let net_dyn = Arc::clone(&net) as Arc<dyn ClusterNet>;
        let cluster =
            if adopt { ClusterCoordinator::adopting(net_dyn, job, workers) } else { ClusterCoordinator::new(net_dyn, job, workers) };
        let _ = inbound.role.set(Role::Coordinator(Arc::clone(&cluster)));
        let mesh = runtime.block_on(async {
            let listener = Listener::from_std(listener)?;
            Mesh::start(NodeId(0), listener, mesh_peers(addresses), secret, inbound.clone(), options).await
        })?;
        tracing::info!(peers = ?mesh.connected_peers(), "coordinator joined its cluster");
        net.set_mesh(mesh);
        Ok(Coordinator { cluster, net, runtime: Some(runtime), abandoned: std::sync::atomic::AtomicBool::new(false) })
    }

    /// The engine's side of it: what `StreamEnvironment::execute_on_cluster` runs the job with.
    pub fn cluster(&self) -> Arc<ClusterCoordinator> {
        Arc::clone(&self.cluster)
    }

    /// The connection to a node, to look at its figures.
    pub fn connection(&self, node: u32) -> Option<Connection> {
        self.net.mesh.get().and_then(|mesh| mesh.connection(NodeId(node)))
    }

    /// Ends the job from another thread: tells the workers to stop and closes the connections, so
    /// the job driver running on this coordinator fails its attempt and returns.
    pub fn close(&self, reason: &str) {
        self.cluster.shutdown_workers();
        self.net.close(reason, CLOSE_LINGER);
    }

    /// Gives the job up without stopping it: closes the connections only, so workers started
    /// with [`Worker::start_adoptable`] run on for another coordinator to adopt, and the job
    /// driver on this one fails its attempt and returns (e.g. when its leader is deposed).
    pub fn abandon(&self, reason: &str) {
        self.abandoned.store(true, std::sync::atomic::Ordering::Release);
        self.net.close(reason, std::time::Duration::ZERO);
    }
}

impl Drop for Coordinator {
    /// Tells the workers the job is over (unless it was abandoned) and closes the mesh.
    fn drop(&mut self) {
        if !self.abandoned.load(std::sync::atomic::Ordering::Acquire) {
            self.cluster.shutdown_workers();
        }
        self.net.close("the coordinator is done", CLOSE_LINGER);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(CLOSE_LINGER);
        }
    }
}
