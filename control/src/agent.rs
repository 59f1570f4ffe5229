//! A worker's side of the control plane: it registers with the masters, sends heartbeats, and
//! keeps doing so across leader changes.
//!
//! The agent talks to any master (a follower forwards to the leader), trying the masters in turn
//! when one does not answer, so a dead leader costs it only the calls that fail until a new one is
//! elected: the worker's tasks never wait on the masters. If the masters answer that they no longer
//! know the worker (it was declared lost while cut off), it registers again and gets a new id. It
//! keeps the highest Raft term it has seen: a command from a lower term comes from a deposed
//! leader and is refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::rpc::proto::control_client::ControlClient;
use crate::rpc::proto::{AttemptRef, HeartbeatRequest, RegisterWorkerRequest};
use crate::rpc::{AddSecret, GrpcTls, SecretAuth};

/// What a worker tells the masters about itself.
#[derive(Debug, Clone)]
pub struct WorkerProfile {
    /// Where masters reach it.
    pub control_addr: String,
    /// Where other workers reach it.
    pub data_addr: String,
    /// Slots it offers.
    pub slots: u32,
}

/// What the agent knows, shared with the worker.
#[derive(Default)]
pub struct AgentState {
    /// The worker's id plus one (0 until registered).
    worker: AtomicU64,
    /// The highest Raft term seen.
    term: AtomicU64,
    /// Registrations so far (more than one: the worker was lost and came back).
    registrations: AtomicU64,
    /// Called when the masters answer that they declared this worker lost.
    on_declared_lost: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// The attempts the worker runs, reported with each heartbeat: (job, attempt).
    running_attempts: std::sync::OnceLock<Box<dyn Fn() -> Vec<(u64, u32)> + Send + Sync>>,
    /// Called with the attempts the masters answer they ended.
    on_stale_attempts: std::sync::OnceLock<Box<dyn Fn(Vec<(u64, u32)>) + Send + Sync>>,
    /// Heartbeats sent, each try at a master.
    heartbeats_sent: AtomicU64,
    /// Heartbeats no master answered.
    heartbeats_failed: AtomicU64,
}

impl std::fmt::Debug for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentState")
            .field("worker", &self.worker_id())
            .field("term", &self.term())
            .field("registrations", &self.registrations())
            .finish_non_exhaustive()
    }
}

impl AgentState {
    /// The worker's id, once registered.
    pub fn worker_id(&self) -> Option<u64> {
        self.worker.load(Ordering::Acquire).checked_sub(1)
    }

    /// The highest Raft term seen in the masters' answers.
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    /// How many times the worker registered.
    pub fn registrations(&self) -> u64 {
        self.registrations.load(Ordering::Acquire)
    }

    /// Heartbeats sent so far, each try at a master.
    pub fn heartbeats_sent(&self) -> u64 {
        self.heartbeats_sent.load(Ordering::Relaxed)
    }

    /// Heartbeats no master answered (a failed try; the next master is tried).
    pub fn heartbeats_failed(&self) -> u64 {
        self.heartbeats_failed.load(Ordering::Relaxed)
    }

    /// Whether a command stamped with `term` may be obeyed: not from a deposed leader.
    pub fn admits(&self, term: u64) -> bool {
        term >= self.term()
    }

    /// Calls `lost` whenever the masters answer that they declared this worker lost (they failed
    /// every attempt placed on it, to run elsewhere): what it still runs must stop. Set once.
    pub fn on_declared_lost(&self, lost: impl Fn() + Send + Sync + 'static) {
        assert!(self.on_declared_lost.set(Box::new(lost)).is_ok(), "set once");
    }

    /// Reports the attempts the worker runs with every heartbeat (`running`), and stops those
    /// the masters answer they ended (`stop`): an attempt whose stop never reached the worker,
    /// or that a lost leader drove, ends at the next heartbeat rather than at the orphan timeout.
    pub fn report_attempts(
        &self,
        running: impl Fn() -> Vec<(u64, u32)> + Send + Sync + 'static,
        stop: impl Fn(Vec<(u64, u32)>) + Send + Sync + 'static,
    ) {
        assert!(self.running_attempts.set(Box::new(running)).is_ok(), "set once");
        assert!(self.on_stale_attempts.set(Box::new(stop)).is_ok(), "set once");
    }

    pub(crate) fn saw_term(&self, term: u64) {
        self.term.fetch_max(term, Ordering::AcqRel);
    }
}

type Client = ControlClient<InterceptedService<Channel, AddSecret>>;

/// How long a registration may take (it commits through the masters' log).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// A running agent; dropping it stops the agent.
pub struct WorkerAgent {
    state: Arc<AgentState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WorkerAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WorkerAgent {
    /// Starts the agent of the worker `profile` on the current tokio runtime, reaching `masters`
    /// (addresses) with the cluster secret of `auth`, over mutual TLS with `tls`.
    pub fn start(masters: Vec<String>, auth: SecretAuth, tls: Option<&GrpcTls>, profile: WorkerProfile) -> Result<WorkerAgent, String> {
        if masters.is_empty() {
            return Err("no masters given".to_string());
        }
        let clients = masters
            .iter()
            .map(|addr| {
                crate::rpc::lazy_channel(addr, tls).map(|channel| (addr.clone(), ControlClient::with_interceptor(channel, auth.add())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let state = Arc::new(AgentState::default());
        let task = tokio::spawn(run(clients, profile, Arc::clone(&state)));
        Ok(WorkerAgent { state, task })
    }

    /// What the agent knows.
    pub fn state(&self) -> &Arc<AgentState> {
        &self.state
    }
}

/// Retries a call over the masters, starting with the one that answered last, until one answers.
struct Masters {
    clients: Vec<(String, Client)>,
    next: usize,
}

impl Masters {
    /// Each call may take `timeout`: a master that is paused or cut off, whose connection stays
    /// open, is given up on after it, not only after the channel's own timeout.
    async fn call<T, F, Fut>(&mut self, what: &str, timeout: Duration, mut call: F) -> T
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut backoff = Duration::from_millis(50);
        loop {
            for _ in 0..self.clients.len() {
                let (addr, client) = &self.clients[self.next];
                let answered = tokio::time::timeout(timeout, call(client.clone())).await;
                match answered.unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded(format!("no answer within {timeout:?}")))) {
                    Ok(reply) => return reply.into_inner(),
                    Err(status) => {
                        tracing::debug!(master = %addr, code = ?status.code(), message = status.message(), "{what} failed; trying the next master");
                        self.next = (self.next + 1) % self.clients.len();
                    }
                }
            }
            // An election takes a few hundred milliseconds: only a longer silence is worth a warning.
            if backoff >= Duration::from_millis(400) {
                tracing::warn!("no master answered to {what}; retrying in {backoff:?}");
            } else {
                tracing::debug!("no master answered to {what}; retrying in {backoff:?}");
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

async fn run(clients: Vec<(String, Client)>, profile: WorkerProfile, state: Arc<AgentState>) {
    let mut masters = Masters { clients, next: 0 };
    loop {
        let request = RegisterWorkerRequest {
            control_addr: profile.control_addr.clone(),
            data_addr: profile.data_addr.clone(),
            slots: profile.slots,
        };
        let registered = masters.call("registering", REGISTER_TIMEOUT, |mut client| {
            let request = request.clone();
            async move { client.register_worker(request).await }
        });
        let registered = registered.await;
        // The id last: whoever sees it also sees the term and the count of this registration.
        state.saw_term(registered.term);
        state.registrations.fetch_add(1, Ordering::AcqRel);
        state.worker.store(registered.worker_id + 1, Ordering::Release);
        tracing::info!(worker = registered.worker_id, term = registered.term, "registered with the masters");
        let interval = Duration::from_millis(registered.heartbeat_interval_ms.max(10));
        // Well within the time the masters wait before they declare the worker lost.
        let heartbeat_timeout = (interval * 2).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(interval).await;
            let worker_id = registered.worker_id;
            let running: Vec<AttemptRef> = state
                .running_attempts
                .get()
                .map(|running| running().into_iter().map(|(job_id, attempt)| AttemptRef { job_id, attempt }).collect())
                .unwrap_or_default();
            let reply = masters
                .call("a heartbeat", heartbeat_timeout * 2, |mut client| {
                    let state = Arc::clone(&state);
                    let request = HeartbeatRequest { worker_id, running: running.clone() };
                    async move {
                        state.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
                        // Timed out here too, so a master that does not answer counts as a failure.
                        let reply = tokio::time::timeout(heartbeat_timeout, client.heartbeat(request))
                            .await
                            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded(format!("no answer within {heartbeat_timeout:?}"))));
                        if reply.is_err() {
                            state.heartbeats_failed.fetch_add(1, Ordering::Relaxed);
                        }
                        reply
                    }
                })
                .await;
            state.saw_term(reply.term);
            if let (false, Some(stop)) = (reply.stale.is_empty(), state.on_stale_attempts.get()) {
                stop(reply.stale.iter().map(|stale| (stale.job_id, stale.attempt)).collect());
            }
            if !reply.known {
                tracing::warn!(worker = worker_id, "the masters declared this worker lost; stopping what it ran and registering again");
                if let Some(lost) = state.on_declared_lost.get() {
                    lost();
                }
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_of_lower_terms_are_refused() {
        let state = AgentState::default();
        assert_eq!(state.worker_id(), None);
        state.saw_term(5);
        state.saw_term(3);
        assert_eq!(state.term(), 5);
        assert!(state.admits(5) && state.admits(6));
        assert!(!state.admits(4));
    }
}
