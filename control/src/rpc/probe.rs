//! Each master's watch over the others: every [`PROBE_INTERVAL`] it asks every other master for
//! its own view (the `Cluster` call, bounded by [`PROBE_TIMEOUT`]) and keeps what it heard. So any
//! master, follower or leader, can say which masters are up, the term and leader each knows, and
//! how far behind each applies the log; a killed master shows as unreachable within about two
//! seconds. Raft's own traffic says less: a follower hears only from the leader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::proto::control_client::ControlClient;
use super::proto::{ClusterReply, ClusterRequest, MasterInfo};
use super::{AddSecret, GrpcTls, SecretAuth};
use crate::raft::{Master, NodeId};

/// How often a master probes the others.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a probe may take before the master counts as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(800);

/// What a master last heard from another.
#[derive(Debug, Clone, Default)]
struct PeerHealth {
    reachable: bool,
    last_seen: Option<Instant>,
    term: u64,
    leader: Option<NodeId>,
    applied_index: u64,
    error: String,
}

/// What this master heard from the others, by id.
#[derive(Debug, Default)]
pub struct Peers {
    health: Mutex<HashMap<NodeId, PeerHealth>>,
}

impl Peers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, PeerHealth>> {
        self.health.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `peer` answered with its view.
    fn reached(&self, peer: NodeId, reply: &ClusterReply) {
        let leader = (reply.leader_id != u64::MAX).then_some(reply.leader_id);
        let health = PeerHealth {
            reachable: true,
            last_seen: Some(Instant::now()),
            term: reply.term,
            leader,
            applied_index: reply.applied_index,
            error: String::new(),
        };
        self.lock().insert(peer, health);
    }

    /// `peer` did not answer: what was last heard from it stays, marked unreachable.
    fn missed(&self, peer: NodeId, error: String) {
        let mut health = self.lock();
        let entry = health.entry(peer).or_default();
        entry.reachable = false;
        entry.error = error;
    }

    /// `peer` (at `addr`) as this master knows it.
    pub fn info(&self, peer: NodeId, addr: String) -> MasterInfo {
        let health =
            self.lock().get(&peer).cloned().unwrap_or_else(|| PeerHealth { error: "not probed yet".to_string(), ..PeerHealth::default() });
        MasterInfo {
            id: peer,
            addr,
            reachable: health.reachable,
            seen_ms_ago: health.last_seen.map(|seen| seen.elapsed().as_millis() as u64),
            term: health.term,
            leader_id: health.leader,
            applied_index: health.applied_index,
            error: health.error,
        }
    }
}

type Client = ControlClient<InterceptedService<Channel, AddSecret>>;

/// Probes every other member of `master`'s group every [`PROBE_INTERVAL`], forever (the task is
/// aborted when the master stops).
pub async fn probe_masters(master: Master, peers: Arc<Peers>, auth: SecretAuth, tls: Option<GrpcTls>) {
    let mut clients: HashMap<String, Client> = HashMap::new();
    let mut ticks = tokio::time::interval(PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let others: Vec<(NodeId, String)> = master.member_addrs().into_iter().filter(|(id, _)| *id != master.id()).collect();
        let mut probes = Vec::with_capacity(others.len());
        for (peer, addr) in others {
            let client = match clients.get(&addr) {
                Some(client) => client.clone(),
                None => match super::lazy_channel(&addr, tls.as_ref()) {
                    Ok(channel) => {
                        let client = ControlClient::with_interceptor(channel, auth.add());
                        clients.insert(addr.clone(), client.clone());
                        client
                    }
                    Err(reason) => {
                        peers.missed(peer, reason);
                        continue;
                    }
                },
            };
            let peers = Arc::clone(&peers);
            probes.push(async move {
                let mut client = client;
                match tokio::time::timeout(PROBE_TIMEOUT, client.cluster(ClusterRequest {})).await {
                    Ok(Ok(reply)) => peers.reached(peer, reply.get_ref()),
                    Ok(Err(status)) => peers.missed(peer, super::status_reason(&status)),
                    Err(_) => peers.missed(peer, format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
                }
            });
        }
        futures_util::future::join_all(probes).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_unknown_until_probed_then_keeps_what_it_said_when_it_stops_answering() {
        let peers = Peers::default();
        let unknown = peers.info(2, "127.0.0.1:2".into());
        assert!(!unknown.reachable);
        assert_eq!(unknown.seen_ms_ago, None);
        assert_eq!(unknown.error, "not probed yet");

        let reply = ClusterReply { leader_id: 1, term: 7, applied_index: 40, ..ClusterReply::default() };
        peers.reached(2, &reply);
        let up = peers.info(2, "127.0.0.1:2".into());
        assert!(up.reachable);
        assert!(up.seen_ms_ago.is_some());
        assert_eq!((up.term, up.leader_id, up.applied_index), (7, Some(1), 40));

        peers.missed(2, "connection refused".into());
        let down = peers.info(2, "127.0.0.1:2".into());
        assert!(!down.reachable);
        assert_eq!(down.error, "connection refused");
        assert!(down.seen_ms_ago.is_some(), "when it was last reached stays");
        assert_eq!(down.term, 7);

        let leaderless = ClusterReply { leader_id: u64::MAX, term: 8, ..ClusterReply::default() };
        peers.reached(2, &leaderless);
        assert_eq!(peers.info(2, String::new()).leader_id, None);
    }
}
