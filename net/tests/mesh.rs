//! Meshes of processes (each a `Mesh` in this test process) over 127.0.0.1: one connection per
//! pair whatever the start order, and refusal of strangers, duplicates and wrong directions.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use support::{loopback, options, other_secret, secret, Recorder};
use tethys_net::{Connection, Listener, Mesh, MeshOptions, MessageKind, NetError, NodeId, Refusal};

fn mesh_options() -> MeshOptions {
    MeshOptions { connection: options(), establish_timeout: Duration::from_secs(20), ..MeshOptions::default() }
}

/// Free loopback addresses: bound, read and released, so the nodes can bind them later (so a
/// dialer may find its peer not listening yet, as when processes start in any order).
fn free_addresses(count: usize) -> Vec<SocketAddr> {
    let sockets: Vec<_> = (0..count).map(|_| std::net::TcpListener::bind(loopback()).expect("bind")).collect();
    sockets.iter().map(|socket| socket.local_addr().expect("local addr")).collect()
}

/// Starts node `me` of `peers` and returns its mesh and recorder.
async fn start_node(me: NodeId, peers: BTreeMap<NodeId, SocketAddr>) -> (Mesh, Arc<Recorder>) {
    let listener = Listener::bind(peers[&me]).await.expect("bind the node's address");
    let inbound = Recorder::new();
    let mesh = Mesh::start(me, listener, peers, secret(), inbound.clone(), mesh_options()).await.expect("mesh");
    (mesh, inbound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_started_in_any_order_connect_once_per_pair() {
    for seed in 0..4u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let ids = [NodeId(1), NodeId(2), NodeId(3)];
        let peers: BTreeMap<NodeId, SocketAddr> = ids.into_iter().zip(free_addresses(3)).collect();
        let mut order = ids.to_vec();
        rng.shuffle(&mut order);
        let mut starting = Vec::new();
        for me in order {
            starting.push(tokio::spawn(start_node(me, peers.clone())));
            // Staggers the starts (this makes the order; it waits for no event).
            tokio::time::sleep(Duration::from_millis(rng.u64(0..60))).await;
        }
        let mut nodes = BTreeMap::new();
        for started in starting {
            let (mesh, inbound) = started.await.expect("node task");
            nodes.insert(mesh.me(), (mesh, inbound));
        }
        for (me, (mesh, _)) in &nodes {
            let others: Vec<NodeId> = ids.iter().copied().filter(|id| id != me).collect();
            assert_eq!(mesh.connected_peers(), others, "seed {seed}: {me}'s connections");
            for peer in &others {
                let connection = mesh.connection(*peer).expect("connected");
                assert_eq!(connection.peer(), *peer);
                connection.send(MessageKind::Control, u64::from(me.0), 0, format!("from {me}")).expect("send");
            }
        }
        for (me, (_, inbound)) in &nodes {
            inbound.wait_until("a message from each peer", |recorded| recorded.messages.len() == 2).await;
            let recorded = inbound.recorded();
            let mut senders: Vec<NodeId> = recorded.messages.iter().map(|message| message.peer).collect();
            senders.sort();
            assert_eq!(senders, ids.iter().copied().filter(|id| id != me).collect::<Vec<_>>(), "seed {seed}");
            for message in &recorded.messages {
                assert_eq!(message.stream, u64::from(message.peer.0), "each message came over its sender's connection");
            }
            assert!(recorded.closed.is_empty(), "seed {seed}: no second connection was started and closed: {:?}", recorded.closed);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_duplicates_and_wrong_directions_are_refused() {
    let peers: BTreeMap<NodeId, SocketAddr> = [NodeId(1), NodeId(2)].into_iter().zip(free_addresses(2)).collect();
    let (first, second) = tokio::join!(start_node(NodeId(1), peers.clone()), start_node(NodeId(2), peers.clone()));
    let ((mesh_1, inbound_1), (mesh_2, inbound_2)) = (first, second);
    let intruder = Recorder::new();
    let dial = |addr: SocketAddr, me: NodeId| {
        let intruder = intruder.clone();
        async move { Connection::dial(addr, me, &secret(), intruder, &options()).await }
    };
    let duplicate = dial(peers[&NodeId(2)], NodeId(1)).await;
    assert!(matches!(duplicate, Err(NetError::RefusedByPeer { refusal: Refusal::DuplicateConnection, .. })), "{duplicate:?}");
    let unknown = dial(peers[&NodeId(2)], NodeId(7)).await;
    assert!(matches!(unknown, Err(NetError::RefusedByPeer { refusal: Refusal::UnknownNode, .. })), "{unknown:?}");
    let wrong_direction = dial(peers[&NodeId(1)], NodeId(2)).await;
    assert!(matches!(wrong_direction, Err(NetError::RefusedByPeer { refusal: Refusal::WrongDirection, .. })), "{wrong_direction:?}");
    let wrong_secret = Connection::dial(peers[&NodeId(2)], NodeId(1), &other_secret(), intruder.clone(), &options()).await;
    assert!(matches!(wrong_secret, Err(NetError::Authentication { .. })), "{wrong_secret:?}");
    assert!(intruder.recorded().messages.is_empty() && intruder.recorded().closed.is_empty());
    // The mesh's own connection is untouched by the attempts.
    mesh_1.connection(NodeId(2)).expect("connected").send(MessageKind::Data, 5, 0, b"still here").expect("send");
    inbound_2.wait_until("the message", |recorded| recorded.messages.len() == 1).await;
    assert!(inbound_1.recorded().closed.is_empty() && inbound_2.recorded().closed.is_empty());
    assert_eq!(mesh_2.connected_peers(), [NodeId(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_starts_fails_the_mesh_at_its_deadline() {
    let peers: BTreeMap<NodeId, SocketAddr> = [NodeId(1), NodeId(2)].into_iter().zip(free_addresses(2)).collect();
    let listener = Listener::bind(peers[&NodeId(1)]).await.expect("bind");
    let options = MeshOptions { establish_timeout: Duration::from_millis(300), ..mesh_options() };
    let started = Mesh::start(NodeId(1), listener, peers, secret(), Recorder::new(), options).await;
    match started {
        Err(NetError::MeshDial { peer: NodeId(2), source, .. }) => assert!(matches!(*source, NetError::Connect { .. }), "{source}"),
        Err(NetError::MeshIncomplete { missing, .. }) => assert_eq!(missing, [NodeId(2)]),
        other => panic!("expected the mesh to fail naming node 2: {other:?}"),
    }
}
