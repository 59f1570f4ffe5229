//! Raft's messages between master processes over gRPC: openraft's requests and replies as JSON in
//! a `RaftMessage`. A master that cannot be reached (refused, timed out, stopped) is `Unreachable`
//! to openraft, which then backs off; an error the remote Raft returned comes back as it was.

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::AnyError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::proto::raft_client::RaftClient;
use super::proto::RaftMessage;
use super::{AddSecret, GrpcTls, SecretAuth};
use crate::raft::network::{answer, unreachable};
use crate::raft::{Node, NodeId, TypeConfig};

type Client = RaftClient<InterceptedService<Channel, AddSecret>>;

/// Whether each peer answered its last call, shared by every client of this master (openraft
/// makes a new client per replication stream and per election): a change is logged once.
type Reachability = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<NodeId, bool>>>;

/// Connects a master to the others over gRPC.
#[derive(Clone)]
pub struct GrpcNetwork {
    auth: SecretAuth,
    reachability: Reachability,
    tls: Option<GrpcTls>,
}

impl GrpcNetwork {
    /// A network whose calls carry the cluster secret of `auth`, over mutual TLS with `tls`.
    pub fn new(auth: SecretAuth, tls: Option<GrpcTls>) -> GrpcNetwork {
        GrpcNetwork { auth, reachability: Reachability::default(), tls }
    }
}

impl RaftNetworkFactory<TypeConfig> for GrpcNetwork {
    type Network = GrpcRaftClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> GrpcRaftClient {
        let client =
            super::lazy_channel(&node.addr, self.tls.as_ref()).map(|channel| RaftClient::with_interceptor(channel, self.auth.add()));
        GrpcRaftClient { target, addr: node.addr.clone(), client, reachability: std::sync::Arc::clone(&self.reachability) }
    }
}

/// The connection of one master to another.
pub struct GrpcRaftClient {
    target: NodeId,
    addr: String,
    client: Result<Client, String>,
    /// Whether the last call reached each peer: a change is logged once, not every retry.
    reachability: Reachability,
}

impl GrpcRaftClient {
    async fn call<Req, Resp, E>(
        &mut self,
        method: &'static str,
        request: &Req,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let (target, addr) = (self.target, self.addr.clone());
        let client = self.client.as_mut().map_err(|reason| unreachable(format!("master {target}: {reason}")))?;
        let json = serde_json::to_vec(request).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        let message = tonic::Request::new(RaftMessage { json });
        let reply = match method {
            "append_entries" => client.append_entries(message).await,
            "vote" => client.vote(message).await,
            _ => client.install_snapshot(message).await,
        };
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown => {
                unreachable(format!("master {target} at {addr}: {}", status.message()))
            }
            _ => RPCError::Network(NetworkError::from(AnyError::error(format!("master {target} at {addr}: {status}")))),
        })?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply.into_inner().json).map_err(|error| RPCError::Network(NetworkError::new(&error)))?;
        answer(target, result)
    }
}

impl GrpcRaftClient {
    /// Logs when the peer stops or starts answering.
    fn note<T, E: std::error::Error>(&mut self, result: &Result<T, RPCError<NodeId, Node, E>>) {
        let unreachable = matches!(result, Err(RPCError::Unreachable(_)));
        let reachable = self.reachability.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(self.target, !unreachable);
        let reachable = reachable.unwrap_or(true);
        if unreachable && reachable {
            if let Err(error) = result {
                tracing::warn!(peer = self.target, addr = %self.addr, %error, "master unreachable");
            }
        } else if !unreachable && !reachable {
            tracing::info!(peer = self.target, addr = %self.addr, "master reachable again");
        }
    }
}

impl RaftNetwork<TypeConfig> for GrpcRaftClient {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let result = self.call("append_entries", &request).await;
        self.note(&result);
        result
    }

    async fn install_snapshot(
        &mut self,
        request: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>> {
        let result = self.call("install_snapshot", &request).await;
        self.note(&result);
        result
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let result = self.call("vote", &request).await;
        self.note(&result);
        result
    }
}
