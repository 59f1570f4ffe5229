//! The deployer's calls to workers over their gRPC service, with the cluster secret (and mutual
//! TLS when on), each worker found by its id in the replicated state.

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::Status;

use super::WorkerCalls;
use crate::raft::Master;
use crate::rpc::proto::worker_client::WorkerClient;
use crate::rpc::proto::{
    AdoptAttemptReply, AdoptAttemptRequest, PrepareAttemptReply, PrepareAttemptRequest, StartAttemptReply, StartAttemptRequest,
    StopAttemptReply, StopAttemptRequest,
};
use crate::rpc::{AddSecret, GrpcTls, SecretAuth};
use crate::state::WorkerId;

pub(super) struct GrpcWorkers {
    master: Master,
    auth: SecretAuth,
    tls: Option<GrpcTls>,
}

impl GrpcWorkers {
    pub(super) fn new(master: Master, secret_text: &str, tls: Option<GrpcTls>) -> Result<GrpcWorkers, String> {
        Ok(GrpcWorkers { master, auth: SecretAuth::new(secret_text)?, tls })
    }

    /// A client of `worker`: `NotFound` when the masters do not know it.
    fn client(&self, worker: WorkerId) -> Result<WorkerClient<InterceptedService<Channel, AddSecret>>, Status> {
        let addr = self
            .master
            .read(|state| state.worker(worker).map(|record| record.control_addr.clone()))
            .ok_or_else(|| Status::not_found(format!("{worker} is unknown")))?;
        let channel = crate::rpc::lazy_channel(&addr, self.tls.as_ref()).map_err(Status::not_found)?;
        Ok(WorkerClient::with_interceptor(channel, self.auth.add()))
    }
}

#[tonic::async_trait]
impl WorkerCalls for GrpcWorkers {
    async fn prepare_attempt(&self, worker: WorkerId, request: PrepareAttemptRequest) -> Result<PrepareAttemptReply, Status> {
        Ok(self.client(worker)?.prepare_attempt(request).await?.into_inner())
    }

    async fn start_attempt(&self, worker: WorkerId, request: StartAttemptRequest) -> Result<StartAttemptReply, Status> {
        Ok(self.client(worker)?.start_attempt(request).await?.into_inner())
    }

    async fn stop_attempt(&self, worker: WorkerId, request: StopAttemptRequest) -> Result<StopAttemptReply, Status> {
        Ok(self.client(worker)?.stop_attempt(request).await?.into_inner())
    }

    async fn adopt_attempt(&self, worker: WorkerId, request: AdoptAttemptRequest) -> Result<AdoptAttemptReply, Status> {
        Ok(self.client(worker)?.adopt_attempt(request).await?.into_inner())
    }
}
