//! Three masters over gRPC on 127.0.0.1 (one test process): the leader and its term from any
//! master, workers registered through a follower, heartbeats, a silent worker declared lost, a
//! dead leader replaced, and calls without the cluster secret refused.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tethys_control::rpc::proto::control_client::ControlClient;
use tethys_control::rpc::proto::{ClusterReply, ClusterRequest, HeartbeatRequest, RegisterWorkerRequest};
use tethys_control::rpc::server::MasterNode;
use tethys_control::rpc::SecretAuth;
use tethys_storage::test_dir::TestDir;

mod support;

const SECRET: &str = "test-secret";
const WAIT: Duration = Duration::from_secs(15);
const WORKER_TIMEOUT: Duration = Duration::from_millis(1500);

struct Cluster {
    dirs: Vec<TestDir>,
    addrs: BTreeMap<u64, String>,
    nodes: BTreeMap<u64, MasterNode>,
}

impl Cluster {
    async fn start() -> Cluster {
        // Long against the heartbeat, so a loaded 2-core machine does not lose a worker that beats.
        let support::Masters { dirs, addrs, nodes } =
            support::start_masters(3, "grpc-master", SECRET, |options| options.worker_timeout = WORKER_TIMEOUT).await;
        Cluster { dirs, addrs, nodes }
    }

    fn client(
        &self,
        id: u64,
        secret: &str,
    ) -> ControlClient<tonic::service::interceptor::InterceptedService<tonic::transport::Channel, tethys_control::rpc::AddSecret>> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addrs[&id])).unwrap().connect_lazy();
        ControlClient::with_interceptor(channel, SecretAuth::new(secret).unwrap().add())
    }

    /// The cluster as master `id` answers, once it knows a leader that is running.
    async fn leader_seen_by(&self, id: u64) -> ClusterReply {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(reply) = self.client(id, SECRET).cluster(ClusterRequest {}).await {
                let reply = reply.into_inner();
                if self.nodes.contains_key(&reply.leader_id) && self.nodes[&reply.leader_id].master().is_leader() {
                    return reply;
                }
            }
            assert!(Instant::now() < deadline, "master {id} knows no running leader within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_over_grpc_lead_register_watch_workers_and_fail_over() {
    let mut cluster = Cluster::start().await;
    let seen = cluster.leader_seen_by(0).await;
    let leader = seen.leader_id;
    assert_eq!(seen.masters.len(), 3);
    assert_eq!(seen.leader_addr, cluster.addrs[&leader]);
    for id in 0..3 {
        assert_eq!(cluster.leader_seen_by(id).await.leader_id, leader, "every master names the same leader");
    }

    // Registered through a follower, which forwards to the leader.
    let follower = (0..3).find(|id| *id != leader).unwrap();
    let mut workers = Vec::new();
    for n in 0..2 {
        let request = RegisterWorkerRequest { control_addr: format!("127.0.0.1:{}", 9000 + n), data_addr: "127.0.0.1:1".into(), slots: 2 };
        let reply = cluster.client(follower, SECRET).register_worker(request).await.unwrap().into_inner();
        assert_eq!(reply.heartbeat_interval_ms, 50);
        workers.push(reply.worker_id);
    }
    assert_eq!(workers, vec![0, 1]);

    // Worker 0 keeps beating (through any master); worker 1 falls silent and is declared lost.
    let beating = {
        let client = cluster.client(follower, SECRET);
        tokio::spawn(async move {
            loop {
                let _ = client.clone().heartbeat(HeartbeatRequest { worker_id: 0, running: vec![] }).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = cluster.client(leader, SECRET).cluster(ClusterRequest {}).await.unwrap().into_inner();
        let alive: Vec<(u64, bool)> = reply.workers.iter().map(|worker| (worker.id, worker.alive)).collect();
        if alive == [(0, true), (1, false)] {
            break;
        }
        assert!(Instant::now() < deadline, "worker 1 was not declared lost: {alive:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lost = cluster.client(leader, SECRET).heartbeat(HeartbeatRequest { worker_id: 1, running: vec![] }).await.unwrap().into_inner();
    assert!(!lost.known, "a lost worker is told to register again");

    // The leader dies; the other two elect one in a later term, which still knows the workers and
    // does not declare the beating worker lost.
    let old_term = seen.term;
    cluster.nodes.remove(&leader).unwrap().stop().await;
    let survivor = (0..3).find(|id| *id != leader).unwrap();
    let after = cluster.leader_seen_by(survivor).await;
    assert_ne!(after.leader_id, leader);
    assert!(after.term > old_term);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let reply = cluster.client(after.leader_id, SECRET).cluster(ClusterRequest {}).await.unwrap().into_inner();
    let alive: Vec<(u64, bool)> = reply.workers.iter().map(|worker| (worker.id, worker.alive)).collect();
    assert_eq!(alive, [(0, true), (1, false)], "the beating worker survives the leader change");
    beating.abort();

    // Every master probes the others: a follower says the dead master is unreachable, and the
    // survivors are up and know the new leader and its term.
    let other = (0..3).find(|id| *id != leader && *id != after.leader_id).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = cluster.client(other, SECRET).cluster(ClusterRequest {}).await.unwrap().into_inner();
        let health: Vec<(u64, bool, Option<u64>, u64)> =
            reply.masters.iter().map(|master| (master.id, master.reachable, master.leader_id, master.term)).collect();
        let dead_is_down = health.iter().any(|(id, reachable, _, _)| *id == leader && !reachable);
        let survivors_up = health
            .iter()
            .filter(|(id, ..)| *id != leader)
            .all(|(_, reachable, knows, term)| *reachable && *knows == Some(after.leader_id) && *term == after.term);
        if dead_is_down && survivors_up {
            let dead = reply.masters.iter().find(|master| master.id == leader).unwrap();
            assert!(!dead.error.is_empty(), "why it is unreachable is said");
            break;
        }
        assert!(Instant::now() < deadline, "master {other} does not see master {leader} down and the others up: {health:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // No secret, or another: refused.
    let refused = cluster.client(survivor, "wrong").cluster(ClusterRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let zero_slots = RegisterWorkerRequest { control_addr: "x".into(), data_addr: "y".into(), slots: 0 };
    assert_eq!(cluster.client(survivor, SECRET).register_worker(zero_slots).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    for (_, node) in std::mem::take(&mut cluster.nodes) {
        node.stop().await;
    }
    drop(cluster.dirs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_keep_beating_across_a_leader_change_and_a_dead_one_is_lost() {
    use tethys_control::agent::{WorkerAgent, WorkerProfile};

    let mut cluster = Cluster::start().await;
    let first = cluster.leader_seen_by(0).await;
    let masters: Vec<String> = cluster.addrs.values().cloned().collect();
    let auth = SecretAuth::new(SECRET).unwrap();
    let profile = |n: u32| WorkerProfile { control_addr: format!("127.0.0.1:{}", 9100 + n), data_addr: "127.0.0.1:1".into(), slots: 2 };
    let staying = WorkerAgent::start(masters.clone(), auth.clone(), None, profile(0)).unwrap();
    let leaving = WorkerAgent::start(masters, auth, None, profile(1)).unwrap();
    let alive = |reply: &ClusterReply| reply.workers.iter().filter(|worker| worker.alive).count();
    let deadline = Instant::now() + WAIT;
    // The masters count a worker once its registration commits; the worker knows its id once the reply arrives.
    let registered = |agent: &WorkerAgent| agent.state().worker_id().is_some();
    while alive(&cluster.client(first.leader_id, SECRET).cluster(ClusterRequest {}).await.unwrap().into_inner()) < 2
        || !registered(&staying)
        || !registered(&leaving)
    {
        assert!(Instant::now() < deadline, "the workers did not register");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(staying.state().term() >= first.term);

    // The leader dies: the workers find the new one through the others, and are not lost.
    cluster.nodes.remove(&first.leader_id).unwrap().stop().await;
    let survivor = (0..3).find(|id| *id != first.leader_id).unwrap();
    let second = cluster.leader_seen_by(survivor).await;
    tokio::time::sleep(WORKER_TIMEOUT * 3 / 2).await;
    let reply = cluster.client(second.leader_id, SECRET).cluster(ClusterRequest {}).await.unwrap().into_inner();
    assert_eq!(alive(&reply), 2, "{reply:?}");
    assert_eq!((staying.state().registrations(), leaving.state().registrations()), (1, 1), "no worker had to register again");
    let deadline = Instant::now() + WAIT;
    while staying.state().term() < second.term {
        assert!(Instant::now() < deadline, "the worker never saw the new term");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!staying.state().admits(first.term), "a command of the deposed leader's term is refused");

    // A worker that stops beating is declared lost; the other stays.
    let gone = leaving.state().worker_id().unwrap();
    drop(leaving);
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = cluster.client(second.leader_id, SECRET).cluster(ClusterRequest {}).await.unwrap().into_inner();
        let lost: Vec<u64> = reply.workers.iter().filter(|worker| !worker.alive).map(|worker| worker.id).collect();
        if lost == [gone] {
            assert_eq!(alive(&reply), 1);
            break;
        }
        assert!(Instant::now() < deadline, "the silent worker was not declared lost: {reply:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(staying);
    for (_, node) in std::mem::take(&mut cluster.nodes) {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_checked_before_the_log_listed_and_cancelled_from_any_master() {
    use tethys_control::rpc::proto::{JobRequest, ListJobsRequest, SubmitJobRequest};

    let mut cluster = Cluster::start().await;
    let leader = cluster.leader_seen_by(0).await.leader_id;
    let follower = (0..3).find(|id| *id != leader).unwrap();
    let submit = |name: &str, args: Vec<&str>, parallelism: u32, build_id: &str| SubmitJobRequest {
        name: name.into(),
        args: args.into_iter().map(String::from).collect(),
        parallelism,
        slots: 0,
        checkpoint_interval_ms: 100,
        build_id: build_id.into(),
        restore_from: String::new(),
        program: String::new(),
    };
    // Refused before the log, with the reason; through a follower as through the leader.
    let cases = [
        (submit("nope", vec!["x"], 1, ""), "defines no job \"nope\""),
        (submit("count", vec![], 1, ""), "count takes 1 argument, not 0"),
        (submit("count", vec!["x"], 0, ""), "parallelism 0"),
        (submit("count", vec!["x"], 1, "another-build"), "another program"),
        (submit("count", vec![&"x".repeat(tethys_control::submit::ARG_BYTES_MAX + 1)], 1, ""), "over the limit"),
    ];
    for (request, reason) in cases {
        let status = cluster.client(follower, SECRET).submit_job(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(reason), "{} should say {reason}", status.message());
    }
    assert!(
        cluster.client(leader, SECRET).list_jobs(ListJobsRequest {}).await.unwrap().into_inner().jobs.is_empty(),
        "nothing refused reached the log"
    );

    let first = cluster.client(follower, SECRET).submit_job(submit("count", vec!["a"], 2, "test-build")).await.unwrap().into_inner().job_id;
    let second = cluster.client(leader, SECRET).submit_job(submit("count", vec!["b"], 1, "")).await.unwrap().into_inner().job_id;
    assert_eq!((first, second), (0, 1));
    let info = cluster.client(leader, SECRET).job_status(JobRequest { job_id: first }).await.unwrap().into_inner();
    assert_eq!(
        (info.name.as_str(), info.args.clone(), info.status.as_str(), info.parallelism, info.slots),
        ("count", vec!["a".to_string()], "created", 2, 2)
    );
    assert_eq!(info.build_id, "test-build");

    let cancelled = cluster.client(follower, SECRET).cancel_job(JobRequest { job_id: first }).await.unwrap().into_inner();
    assert_eq!(cancelled.status, "cancelled");
    let again = cluster.client(follower, SECRET).cancel_job(JobRequest { job_id: first }).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::FailedPrecondition);
    assert!(again.message().contains("has ended"), "{}", again.message());
    let unknown = cluster.client(leader, SECRET).job_status(JobRequest { job_id: 99 }).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    // Committed: a new leader lists the same jobs, the cancelled one still cancelled.
    cluster.nodes.remove(&leader).unwrap().stop().await;
    let next = cluster.leader_seen_by(follower).await.leader_id;
    let jobs = cluster.client(next, SECRET).list_jobs(ListJobsRequest {}).await.unwrap().into_inner().jobs;
    let statuses: Vec<(u64, String)> = jobs.iter().map(|job| (job.id, job.status.clone())).collect();
    assert_eq!(statuses, [(0, "cancelled".to_string()), (1, "created".to_string())]);
    for (_, node) in std::mem::take(&mut cluster.nodes) {
        node.stop().await;
    }
}
