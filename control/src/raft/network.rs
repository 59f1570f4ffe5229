//! Raft's messages between masters in one process: a router that hands each request to the target
//! master's `Raft`, for tests and the simulation. It can cut a master off (both directions), so a
//! test makes a partition or a dead leader without killing anything; a cut or stopped master is
//! `Unreachable`, as a dead peer over a network would be. With [`Faults`] it also loses a share of
//! the requests (or their replies) and delays the others, drawn from a seeded generator.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::AnyError;

use super::{Node, NodeId, TypeConfig};

type Raft = openraft::Raft<TypeConfig>;

/// What the router does to messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Share of requests lost, in `[0, 1]`; a lost request, or a lost reply, is `Unreachable`.
    pub loss: f64,
    /// Each message is delayed by up to this much.
    pub max_delay: std::time::Duration,
}

#[derive(Default)]
struct Routes {
    masters: BTreeMap<NodeId, Raft>,
    cut_off: BTreeSet<NodeId>,
    faults: Faults,
    random: Option<fastrand::Rng>,
}

/// Routes Raft messages between the masters of one process. Cloning shares it.
#[derive(Clone, Default)]
pub struct LocalRouter {
    routes: Arc<Mutex<Routes>>,
}

impl LocalRouter {
    /// A router with no master.
    pub fn new() -> LocalRouter {
        LocalRouter::default()
    }

    /// Makes master `id` reachable through `raft`.
    pub fn add(&self, id: NodeId, raft: Raft) {
        self.lock().masters.insert(id, raft);
    }

    /// Forgets master `id` (it stopped).
    pub fn remove(&self, id: NodeId) {
        self.lock().masters.remove(&id);
    }

    /// Cuts master `id` off from every other (or reconnects it).
    pub fn set_cut_off(&self, id: NodeId, cut_off: bool) {
        let mut routes = self.lock();
        if cut_off {
            routes.cut_off.insert(id);
        } else {
            routes.cut_off.remove(&id);
        }
    }

    /// Loses and delays messages as `faults` say, drawing from a generator seeded with `seed`.
    pub fn set_faults(&self, faults: Faults, seed: u64) {
        let mut routes = self.lock();
        routes.faults = faults;
        routes.random = Some(fastrand::Rng::with_seed(seed));
    }

    /// Delays a message as the faults say; an error if it is lost (`what` names it).
    async fn deliver<E: std::error::Error>(&self, what: impl FnOnce() -> String) -> Result<(), RPCError<NodeId, Node, E>> {
        let (lost, delay) = {
            let mut routes = self.lock();
            let faults = routes.faults;
            match routes.random.as_mut() {
                Some(random) => (random.f64() < faults.loss, faults.max_delay.mul_f64(random.f64())),
                None => (false, std::time::Duration::ZERO),
            }
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if lost {
            return Err(unreachable(format!("{} was lost", what())));
        }
        Ok(())
    }

    /// The reply of `to` on its way back to `from`: delayed, or lost, as a request is.
    async fn reply<T, E: std::error::Error>(
        &self,
        to: NodeId,
        from: NodeId,
        reply: Result<T, RPCError<NodeId, Node, E>>,
    ) -> Result<T, RPCError<NodeId, Node, E>> {
        self.deliver(|| format!("the reply of master {to} to master {from}")).await?;
        reply
    }

    /// The network of master `from`.
    pub fn network_of(&self, from: NodeId) -> LocalNetwork {
        LocalNetwork { router: self.clone(), from }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The target's `Raft`, if `from` can reach it, after the message's delay; a lost message is
    /// unreachable.
    async fn route<E: std::error::Error>(&self, from: NodeId, to: NodeId) -> Result<Raft, RPCError<NodeId, Node, E>> {
        self.deliver(|| format!("a message from master {from} to master {to}")).await?;
        let routes = self.lock();
        if routes.cut_off.contains(&from) || routes.cut_off.contains(&to) {
            return Err(unreachable(format!("master {to} is cut off from master {from}")));
        }
        routes.masters.get(&to).cloned().ok_or_else(|| unreachable(format!("master {to} is not running")))
    }
}

/// The connections of one master.
#[derive(Clone)]
pub struct LocalNetwork {
    router: LocalRouter,
    from: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for LocalNetwork {
    type Network = LocalClient;

    async fn new_client(&mut self, target: NodeId, _node: &Node) -> LocalClient {
        LocalClient { router: self.router.clone(), from: self.from, to: target }
    }
}

/// A connection from one master to another.
pub struct LocalClient {
    router: LocalRouter,
    from: NodeId,
    to: NodeId,
}

/// A peer that cannot be reached, as openraft's error of any call (it then backs off).
pub(crate) fn unreachable<E: std::error::Error>(reason: String) -> RPCError<NodeId, Node, E> {
    RPCError::Unreachable(Unreachable::from(AnyError::error(reason)))
}

/// A stopped target reads as unreachable; any other error is the target's answer.
pub(crate) fn answer<T, E: std::error::Error>(
    to: NodeId,
    result: Result<T, RaftError<NodeId, E>>,
) -> Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>> {
    result.map_err(|error| match error {
        RaftError::Fatal(fatal) => RPCError::Unreachable(Unreachable::new(&fatal)),
        other => RPCError::RemoteError(RemoteError::new(to, other)),
    })
}

impl RaftNetwork<TypeConfig> for LocalClient {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let raft = self.router.route(self.from, self.to).await?;
        let reply = answer(self.to, raft.append_entries(request).await);
        self.router.reply(self.to, self.from, reply).await
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>> {
        let raft = self.router.route(self.from, self.to).await?;
        let reply = answer(self.to, raft.install_snapshot(request).await);
        self.router.reply(self.to, self.from, reply).await
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let raft = self.router.route(self.from, self.to).await?;
        let reply = answer(self.to, raft.vote(request).await);
        self.router.reply(self.to, self.from, reply).await
    }
}
