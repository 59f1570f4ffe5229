//! [`Mesh`]: a process's connections to all its peers, exactly one per pair.
//!
//! Which side dials is decided by the ids alone: the lower id dials the higher, the higher accepts.
//! So two processes never race to connect to each other, and a connection is refused unless it
//! comes from a known peer with a lower id that has no open connection yet. Peers start in any
//! order: a dialer retries with exponential backoff until the mesh's deadline. A connection ends
//! for good (reconnection is the engine's decision, later); an accepted peer whose connection has
//! closed may connect again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::auth::{authenticate_acceptor, AuthFailure, ClusterSecret, Refusal};
use crate::conn::{Connection, ConnectionOptions, Inbound, Listener};
use crate::error::NetError;
use crate::node::NodeId;

/// The times of establishing a mesh, each with its default.
#[derive(Debug, Clone)]
pub struct MeshOptions {
    /// The options of every connection.
    pub connection: ConnectionOptions,
    /// How long `Mesh::start` waits for every connection.
    pub establish_timeout: Duration,
    /// The first wait before dialing a peer again.
    pub dial_backoff_initial: Duration,
    /// The longest wait between two dials of a peer.
    pub dial_backoff_max: Duration,
}

impl MeshOptions {
    /// Default of `establish_timeout`.
    pub const ESTABLISH_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
    /// Default of `dial_backoff_initial`.
    pub const DIAL_BACKOFF_INITIAL_DEFAULT: Duration = Duration::from_millis(10);
    /// Default of `dial_backoff_max`.
    pub const DIAL_BACKOFF_MAX_DEFAULT: Duration = Duration::from_secs(1);

    /// Checks every option.
    pub fn validate(&self) -> Result<(), NetError> {
        self.connection.validate()?;
        if self.establish_timeout.is_zero() {
            return Err(NetError::Options { field: "establish_timeout", problem: "must be greater than zero" });
        }
        if self.dial_backoff_initial.is_zero() {
            return Err(NetError::Options { field: "dial_backoff_initial", problem: "must be greater than zero" });
        }
        if self.dial_backoff_max < self.dial_backoff_initial {
            return Err(NetError::Options { field: "dial_backoff_max", problem: "must be at least dial_backoff_initial" });
        }
        Ok(())
    }
}

impl Default for MeshOptions {
    fn default() -> Self {
        MeshOptions {
            connection: ConnectionOptions::default(),
            establish_timeout: Self::ESTABLISH_TIMEOUT_DEFAULT,
            dial_backoff_initial: Self::DIAL_BACKOFF_INITIAL_DEFAULT,
            dial_backoff_max: Self::DIAL_BACKOFF_MAX_DEFAULT,
        }
    }
}

/// A process's connections to its peers.
#[derive(Debug)]
pub struct Mesh {
    me: NodeId,
    local_addr: SocketAddr,
    peers: Arc<PeerTable>,
    accept_loop: JoinHandle<()>,
}

/// A peer's place in the mesh.
#[derive(Debug)]
enum PeerSlot {
    /// An incoming connection from it is being admitted (its verdict is on the way).
    Admitting,
    /// Its connection.
    Connected(Connection),
}

/// The peers of this process and their connections, shared by the accept loop and the dialers.
#[derive(Debug)]
struct PeerTable {
    me: NodeId,
    addrs: BTreeMap<NodeId, SocketAddr>,
    slots: Mutex<BTreeMap<NodeId, PeerSlot>>,
    /// How many peers have a connection; `start` waits on it.
    connected: watch::Sender<usize>,
}

impl PeerTable {
    fn lock_slots(&self) -> MutexGuard<'_, BTreeMap<NodeId, PeerSlot>> {
        // Every update of the map is one insert or remove, so a poisoned map is still consistent.
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits an authenticated dialer, reserving its slot, or says why not.
    fn reserve(&self, peer: NodeId) -> Result<(), Refusal> {
        if !self.addrs.contains_key(&peer) {
            return Err(Refusal::UnknownNode);
        }
        if peer > self.me {
            return Err(Refusal::WrongDirection);
        }
        let mut slots = self.lock_slots();
        match slots.get(&peer) {
            Some(PeerSlot::Admitting) => Err(Refusal::DuplicateConnection),
            Some(PeerSlot::Connected(connection)) if !connection.is_closed() => Err(Refusal::DuplicateConnection),
            _ => {
                slots.insert(peer, PeerSlot::Admitting);
                Ok(())
            }
        }
    }

    /// Frees a slot reserved for a connection that did not start.
    fn release(&self, peer: NodeId) {
        let mut slots = self.lock_slots();
        if matches!(slots.get(&peer), Some(PeerSlot::Admitting)) {
            slots.remove(&peer);
        }
    }

    fn insert_connected(&self, peer: NodeId, connection: Connection) {
        let mut slots = self.lock_slots();
        let replaced = slots.insert(peer, PeerSlot::Connected(connection));
        debug_assert!(!matches!(&replaced, Some(PeerSlot::Connected(old)) if !old.is_closed()), "two open connections with {peer}");
        let connected = slots.values().filter(|slot| matches!(slot, PeerSlot::Connected(_))).count();
        self.connected.send_replace(connected);
    }

    fn missing(&self) -> Vec<NodeId> {
        let slots = self.lock_slots();
        self.addrs.keys().filter(|peer| !matches!(slots.get(peer), Some(PeerSlot::Connected(_)))).copied().collect()
    }
}

impl Mesh {
    /// Connects `me` with every peer in `peers` (an entry for `me` itself is ignored): dials the
    /// peers with higher ids, accepts the others on `listener`, and returns once every connection
    /// is up, or fails at `options.establish_timeout`, or at once when a peer cannot be
    /// authenticated. Every connection delivers to `inbound`. Must be called on a tokio runtime.
    pub async fn start(
        me: NodeId,
        listener: Listener,
        peers: BTreeMap<NodeId, SocketAddr>,
        secret: ClusterSecret,
        inbound: Arc<dyn Inbound>,
        options: MeshOptions,
    ) -> Result<Mesh, NetError> {
        options.validate()?;
        let started = Instant::now();
        let deadline = started + options.establish_timeout;
        let mut addrs = peers;
        addrs.remove(&me);
        let peer_count = addrs.len();
        let (connected, mut connected_changes) = watch::channel(0);
        let table = Arc::new(PeerTable { me, addrs, slots: Mutex::new(BTreeMap::new()), connected });
        let local_addr = listener.local_addr();
        let accept_loop =
            tokio::spawn(accept_loop(listener, Arc::clone(&table), secret.clone(), Arc::clone(&inbound), options.connection.clone()));
        let mesh = Mesh { me, local_addr, peers: Arc::clone(&table), accept_loop };
        let mut dialers = JoinSet::new();
        for (&peer, &addr) in table.addrs.range(NodeId(me.0.saturating_add(1))..) {
            debug_assert!(peer > me);
            let dialer =
                Dialer { me, peer, addr, secret: secret.clone(), inbound: Arc::clone(&inbound), options: options.clone(), deadline };
            dialers.spawn(dialer.dial_until_connected(Arc::clone(&table)));
        }
        loop {
            tokio::select! {
                everyone = connected_changes.wait_for(|connected| *connected >= peer_count) => {
                    debug_assert!(everyone.is_ok(), "the table holds the sender");
                    return Ok(mesh);
                }
                Some(dialed) = dialers.join_next() => {
                    if let Ok(Err(error)) = dialed {
                        mesh.close("the mesh could not be established");
                        return Err(error);
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    let missing = table.missing();
                    mesh.close("the mesh could not be established");
                    return Err(NetError::MeshIncomplete { me, missing, waited: started.elapsed() });
                }
            }
        }
    }

    /// This process.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The address peers connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The connection with `peer`, if there is one.
    pub fn connection(&self, peer: NodeId) -> Option<Connection> {
        match self.peers.lock_slots().get(&peer) {
            Some(PeerSlot::Connected(connection)) => Some(connection.clone()),
            _ => None,
        }
    }

    /// The peers with a connection (open or closed), in id order.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        let slots = self.peers.lock_slots();
        slots.iter().filter(|(_, slot)| matches!(slot, PeerSlot::Connected(_))).map(|(peer, _)| *peer).collect()
    }

    /// Stops accepting and closes every connection with `reason`.
    pub fn close(&self, reason: &str) {
        self.accept_loop.abort();
        for slot in self.peers.lock_slots().values() {
            if let PeerSlot::Connected(connection) = slot {
                connection.close(reason);
            }
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        // The connections close when their last handle goes; the accept loop holds none of them.
        self.accept_loop.abort();
    }
}

/// Dials one higher peer until connected, an error retrying cannot mend, or the deadline.
struct Dialer {
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    secret: ClusterSecret,
    inbound: Arc<dyn Inbound>,
    options: MeshOptions,
    deadline: Instant,
}

impl Dialer {
    async fn dial_until_connected(self, table: Arc<PeerTable>) -> Result<(), NetError> {
        let mut backoff = self.options.dial_backoff_initial;
        loop {
            let dialed = Connection::dial_expecting(
                self.addr,
                self.me,
                Some(self.peer),
                &self.secret,
                Arc::clone(&self.inbound),
                &self.options.connection,
            )
            .await;
            let error = match dialed {
                Ok(connection) => {
                    table.insert_connected(self.peer, connection);
                    return Ok(());
                }
                Err(error) => error,
            };
            if !is_worth_retrying(&error) || Instant::now() + backoff >= self.deadline {
                return Err(NetError::MeshDial { me: self.me, peer: self.peer, source: Box::new(error) });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.options.dial_backoff_max);
        }
    }
}

/// Whether a failed dial may succeed later: the peer may not listen yet, may be restarting, or may
/// still hold a closing connection. A wrong secret or a wrong node at the address will not mend.
fn is_worth_retrying(error: &NetError) -> bool {
    match error {
        NetError::Connect { .. } | NetError::HandshakeTimeout { .. } | NetError::HandshakeIo { .. } => true,
        NetError::Authentication { failure, .. } => *failure == AuthFailure::PeerHungUp,
        NetError::RefusedByPeer { refusal, .. } => *refusal == Refusal::DuplicateConnection,
        _ => false,
    }
}

/// Accepts connections for as long as the mesh lives, each authenticated and admitted on its own
/// task, so a slow stranger delays no one.
async fn accept_loop(
    listener: Listener,
    table: Arc<PeerTable>,
    secret: ClusterSecret,
    inbound: Arc<dyn Inbound>,
    options: ConnectionOptions,
) {
    // Dropped with this task (when the mesh is), which aborts admissions in progress.
    let mut admissions = JoinSet::new();
    loop {
        while admissions.try_join_next().is_some() {}
        match listener.accept_tcp().await {
            Ok((stream, addr)) => {
                let admission = admit(stream, addr, Arc::clone(&table), secret.clone(), Arc::clone(&inbound), options.clone());
                admissions.spawn(admission);
            }
            // Out of file descriptors and the like: wait a moment instead of spinning on the error.
            Err(_) => tokio::time::sleep(ACCEPT_ERROR_PAUSE).await,
        }
    }
}

/// The pause after a failed `accept`.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Authenticates and admits one incoming connection. A stranger, a refused peer or a failed
/// handshake leaves no trace but its closed socket; no message of it is delivered.
async fn admit(
    stream: TcpStream,
    addr: SocketAddr,
    table: Arc<PeerTable>,
    secret: ClusterSecret,
    inbound: Arc<dyn Inbound>,
    options: ConnectionOptions,
) {
    let mut reserved = None;
    let mut reserve = |peer| {
        let admission = table.reserve(peer);
        if admission.is_ok() {
            reserved = Some(peer);
        }
        admission
    };
    let tls = tokio::time::timeout(options.handshake_timeout, crate::tls::NetStream::accepted(stream, addr, options.tls.as_ref())).await;
    let Ok(Ok(mut stream)) = tls else { return };
    let authenticated = authenticate_acceptor(&mut stream, addr, table.me, &secret, options.handshake_timeout, &mut reserve).await;
    let established = match authenticated {
        Ok(peer) => Connection::establish(stream, crate::conn::Side::Acceptor, peer, addr, inbound, &options).await.map(|c| (peer, c)),
        Err(error) => Err(error),
    };
    match established {
        Ok((peer, connection)) => table.insert_connected(peer, connection),
        Err(_) => {
            if let Some(peer) = reserved {
                table.release(peer);
            }
        }
    }
}
