//! TLS switched on: two nodes with certificates signed by the cluster's CA exchange messages over
//! mutual TLS; a node without TLS, or with a certificate another CA signed, is refused before any
//! message is delivered.

mod support;

use std::path::PathBuf;

use std::sync::Arc;

use support::{loopback, options, payload_of, secret, Recorder};
use tethys_engine::cluster::protocol::JobSpec;
use tethys_engine::cluster::JobRegistry;
use tethys_engine::sink::collect::CollectSink;
use tethys_engine::{EngineConfig, StreamEnvironment};
use tethys_net::launcher::InProcessCluster;
use tethys_net::tls::TlsConfig;
use tethys_net::{Connection, ConnectionOptions, Listener, MeshOptions, MessageKind, NetError, NodeId};

fn tls_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tls").join(name)
}

/// Options with TLS: the node's certificate (or the stranger's, signed by another CA).
fn tls_options(stranger: bool) -> ConnectionOptions {
    let (chain, key) = if stranger { ("stranger.pem", "stranger.key") } else { ("node.pem", "node.key") };
    let tls = TlsConfig::from_pem_files(&tls_file(chain), &tls_file(key), &tls_file("ca.pem")).expect("test certificates load");
    ConnectionOptions { tls: Some(tls), ..options() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_the_clusters_certificates_talk_over_mutual_tls() {
    let listener = Listener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr();
    let (dialer_inbound, acceptor_inbound) = (Recorder::new(), Recorder::new());
    let accepting = {
        let inbound = acceptor_inbound.clone();
        tokio::spawn(async move { listener.accept(NodeId(2), &secret(), inbound, &tls_options(false)).await })
    };
    let dialed = Connection::dial(addr, NodeId(1), &secret(), dialer_inbound.clone(), &tls_options(false)).await.expect("dial over TLS");
    let accepted = accepting.await.unwrap().expect("accept over TLS");
    // Shared memory would go around the encryption: a TLS connection keeps its bytes in TLS.
    assert!(!dialed.through_shared_memory() && !accepted.through_shared_memory());
    for sequence in 0..200u64 {
        dialed.send(MessageKind::Data, 3, sequence, payload_of(3, sequence, 5_000)).unwrap();
        accepted.send(MessageKind::Event, 4, sequence, payload_of(4, sequence, 10)).unwrap();
    }
    acceptor_inbound.wait_until("200 messages over TLS", |recorded| recorded.messages.len() == 200).await;
    dialer_inbound.wait_until("200 replies over TLS", |recorded| recorded.messages.len() == 200).await;
    for (sequence, message) in acceptor_inbound.recorded().messages.iter().enumerate() {
        assert_eq!(message.payload, payload_of(3, sequence as u64, 5_000));
        assert!(message.aligned);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_tls_or_with_another_cas_certificate_is_refused() {
    for (dialer_options, what) in [(options(), "plain TCP"), (tls_options(true), "a stranger's certificate")] {
        let listener = Listener::bind(loopback()).await.unwrap();
        let addr = listener.local_addr();
        let acceptor_inbound = Recorder::new();
        let accepting = {
            let inbound = acceptor_inbound.clone();
            tokio::spawn(async move { listener.accept(NodeId(2), &secret(), inbound, &tls_options(false)).await })
        };
        let dialed = Connection::dial(addr, NodeId(1), &secret(), Recorder::new(), &dialer_options).await;
        let accepted = accepting.await.unwrap();
        assert!(dialed.is_err() || accepted.is_err(), "{what}: a connection was made");
        assert!(
            matches!(accepted, Err(NetError::Tls { .. }) | Err(NetError::HandshakeTimeout { .. })),
            "{what}: the acceptor refuses in the TLS handshake: {accepted:?}"
        );
        assert!(acceptor_inbound.recorded().messages.is_empty(), "{what}: nothing delivered");
    }
}

#[test]
fn files_that_hold_no_certificate_are_named() {
    let error = TlsConfig::from_pem_files(&tls_file("node.key"), &tls_file("node.key"), &tls_file("ca.pem")).unwrap_err();
    assert!(error.to_string().contains("certificate chain"), "{error}");
    let error = TlsConfig::from_pem_files(&tls_file("node.pem"), &tls_file("missing.key"), &tls_file("ca.pem")).unwrap_err();
    assert!(error.to_string().contains("missing.key"), "{error}");
}

#[test]
fn a_job_runs_on_a_cluster_whose_connections_are_all_tls() {
    let sink = CollectSink::new();
    let registry: JobRegistry = {
        let sink = sink.clone();
        Arc::new(move |_spec: &JobSpec, env: &StreamEnvironment| {
            env.from_collection((0..10_000u64).collect::<Vec<u64>>()).rebalance().map(|x: u64| x * 2).sink("out", sink.clone());
            Ok(())
        })
    };
    let job = JobSpec { name: "doubles".into(), args: Vec::new() };
    let options = MeshOptions { connection: tls_options(false), ..MeshOptions::default() };
    let cluster = InProcessCluster::start_with(2, 1, Arc::clone(&registry), job.clone(), options).unwrap();
    let env = StreamEnvironment::new(EngineConfig { parallelism: 1, pin_slots: false, ..EngineConfig::default() });
    registry(&job, &env).unwrap();
    let result = env.execute_on_cluster("doubles", cluster.coordinator().cluster()).unwrap();
    assert!(result.channels.encoded_bytes > 0, "the records crossed between workers");
    let mut out = sink.records();
    out.sort_unstable();
    assert!(out.iter().copied().eq((0..10_000u64).map(|x| x * 2)));
}
