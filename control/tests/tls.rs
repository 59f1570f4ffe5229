//! Mutual TLS on the gRPC API (rpc/tls.rs), with the test certificates of net/tests/tls: three
//! masters with certificates of the cluster's CA elect a leader over TLS, a worker registers
//! through a follower (forwarded to the leader over TLS) and serves its own API over TLS; a client
//! without a certificate, with a stranger's (another CA's), trusting another CA, or without TLS
//! gets nothing, and the secret is still checked inside TLS.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tethys_control::rpc::proto::control_client::ControlClient;
use tethys_control::rpc::proto::worker_client::WorkerClient;
use tethys_control::rpc::proto::{ClusterReply, ClusterRequest, InventoryRequest};
use tethys_control::rpc::server::MasterNode;
use tethys_control::rpc::tls::TlsFiles;
use tethys_control::rpc::{AddSecret, GrpcTls, SecretAuth};
use tethys_control::worker_node::{WorkerOptions, WorkerProcess};
use tethys_storage::test_dir::TestDir;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

mod support;

const SECRET: &str = "tls-test-secret-0123";
const WAIT: Duration = Duration::from_secs(15);

fn certificate(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../net/tests/tls").join(name)
}

/// The TLS of a process with the certificate `chain` and its `key`, trusting the CA `ca`.
fn tls(chain: &str, key: &str, ca: &str) -> GrpcTls {
    GrpcTls::load(&TlsFiles { chain: certificate(chain), key: certificate(key), ca: certificate(ca) }).unwrap()
}

/// A process of the cluster: a certificate the cluster's CA signed.
fn member() -> GrpcTls {
    tls("node.pem", "node.key", "ca.pem")
}

fn endpoint(addr: &str, tls: Option<&GrpcTls>) -> tonic::transport::Endpoint {
    tethys_control::rpc::endpoint(addr, tls, Duration::from_millis(500), Duration::from_secs(5)).unwrap()
}

fn client(addr: &str, tls: Option<&GrpcTls>, secret: &str) -> ControlClient<InterceptedService<Channel, AddSecret>> {
    ControlClient::with_interceptor(endpoint(addr, tls).connect_lazy(), SecretAuth::new(secret).unwrap().add())
}

/// Masters on 127.0.0.1 with the cluster's certificates.
struct Cluster {
    _dirs: Vec<TestDir>,
    addrs: BTreeMap<u64, String>,
    nodes: BTreeMap<u64, MasterNode>,
}

impl Cluster {
    async fn start(count: u64) -> Cluster {
        let support::Masters { dirs, addrs, nodes } =
            support::start_masters(count, "tls-master", SECRET, |options| options.tls = Some(member())).await;
        Cluster { _dirs: dirs, addrs, nodes }
    }

    /// The cluster as master `id` answers over TLS, once it names a leader that is running.
    async fn leader_seen_by(&self, id: u64) -> ClusterReply {
        let tls = member();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(reply) = client(&self.addrs[&id], Some(&tls), SECRET).cluster(ClusterRequest {}).await {
                let reply = reply.into_inner();
                if self.nodes.get(&reply.leader_id).is_some_and(|node| node.master().is_leader()) {
                    return reply;
                }
            }
            assert!(Instant::now() < deadline, "master {id} knows no running leader within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        for (_, node) in self.nodes {
            node.stop().await;
        }
    }
}

/// A call that must fail at the connection: an error (no reply) that tonic's transport raised
/// (its code depends on where the handshake broke), not a handler's or the secret's refusal.
fn assert_refused_at_the_connection<T: std::fmt::Debug>(what: &str, result: Result<tonic::Response<T>, tonic::Status>) {
    let status = result.expect_err(what);
    let transport = std::error::Error::source(&status).is_some_and(|source| source.is::<tonic::transport::Error>());
    assert!(transport, "{what}: refused at the connection, not by a handler: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_and_a_worker_over_mutual_tls() {
    let cluster = Cluster::start(3).await;
    // Elected over TLS: the bootstrapping master needs another's vote.
    let seen = cluster.leader_seen_by(0).await;
    let leader = seen.leader_id;
    assert_eq!(seen.masters.len(), 3);
    for id in 0..3 {
        assert_eq!(cluster.leader_seen_by(id).await.leader_id, leader, "every master names the same leader");
    }

    // A worker registers through a follower first in its list (forwarded to the leader over TLS).
    let follower = (0..3).find(|id| *id != leader).unwrap();
    let mut masters = vec![cluster.addrs[&follower].clone()];
    masters.extend(cluster.addrs.iter().filter(|(id, _)| **id != follower).map(|(_, addr)| addr.clone()));
    let options = WorkerOptions {
        masters,
        slots: 2,
        secret: SECRET.to_string(),
        tls: Some(member()),
        registry: tethys_bench::jobs::registry(),
        mesh: tethys_net::MeshOptions::default(),
        orphan_timeout: WorkerOptions::ORPHAN_TIMEOUT_DEFAULT,
        program_dir: WorkerOptions::default_program_dir(),
        program_processes: Default::default(),
    };
    let worker = WorkerProcess::start(options, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await.unwrap();
    let tls = member();
    let deadline = Instant::now() + WAIT;
    let reply = loop {
        let reply = client(&cluster.addrs[&follower], Some(&tls), SECRET).cluster(ClusterRequest {}).await.unwrap().into_inner();
        if worker.agent().worker_id().is_some() && reply.workers.iter().any(|seen| seen.alive) {
            break reply;
        }
        assert!(Instant::now() < deadline, "the worker did not register over TLS: {reply:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(reply.workers.len(), 1);
    assert_eq!(reply.workers[0].control_addr, worker.addr().to_string());
    assert_eq!(Some(reply.workers[0].id), worker.agent().worker_id());

    // The worker's own API: over TLS with the secret, and nothing without TLS.
    let worker_addr = worker.addr().to_string();
    let worker_client = |tls: Option<&GrpcTls>| {
        WorkerClient::with_interceptor(endpoint(&worker_addr, tls).connect_lazy(), SecretAuth::new(SECRET).unwrap().add())
    };
    let inventory = worker_client(Some(&tls)).inventory(InventoryRequest {}).await.unwrap().into_inner();
    assert!(inventory.attempts.is_empty(), "{inventory:?}");
    assert_refused_at_the_connection("a plain client of a TLS worker", worker_client(None).inventory(InventoryRequest {}).await);

    // Inside TLS, the secret is still checked.
    let wrong = client(&cluster.addrs[&leader], Some(&tls), "wrong").cluster(ClusterRequest {}).await.unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    worker.stop();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_the_clusters_certificate_get_nothing() {
    let cluster = Cluster::start(1).await;
    cluster.leader_seen_by(0).await;
    let addr = cluster.addrs[&0].clone();

    // TLS that checks the master's certificate but presents none.
    let ca = tonic::transport::Certificate::from_pem(std::fs::read(certificate("ca.pem")).unwrap());
    let anonymous = tonic::transport::ClientTlsConfig::new().ca_certificate(ca).domain_name(tethys_control::rpc::tls::NODE_NAME);
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(5))
        .tls_config(anonymous)
        .unwrap()
        .connect_lazy();
    let mut anonymous = ControlClient::with_interceptor(channel, SecretAuth::new(SECRET).unwrap().add());
    assert_refused_at_the_connection("a client without a certificate", anonymous.cluster(ClusterRequest {}).await);

    // A certificate another CA signed (the client trusts the master).
    let stranger = tls("stranger.pem", "stranger.key", "ca.pem");
    assert_refused_at_the_connection(
        "a client with a stranger's certificate",
        client(&addr, Some(&stranger), SECRET).cluster(ClusterRequest {}).await,
    );

    // A client that trusts only another CA refuses the master's certificate.
    let elsewhere = tls("stranger.pem", "stranger.key", "stranger-ca.pem");
    assert_refused_at_the_connection(
        "a client trusting another CA",
        client(&addr, Some(&elsewhere), SECRET).cluster(ClusterRequest {}).await,
    );

    // No TLS at all.
    assert_refused_at_the_connection("a plain client", client(&addr, None, SECRET).cluster(ClusterRequest {}).await);

    // The master still serves its members.
    let reply = client(&addr, Some(&member()), SECRET).cluster(ClusterRequest {}).await.unwrap().into_inner();
    assert_eq!(reply.answered_by, 0);
    cluster.stop().await;
}
