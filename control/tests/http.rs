//! The HTTP side over real sockets on 127.0.0.1 (one test process): three masters, each serving
//! the JSON API and `/metrics`; the cluster and jobs from a follower (which forwards submissions
//! and cancellations to the leader), refusals with their HTTP statuses, the cluster secret on
//! every request, and the metrics of masters and of a worker. Requests are written by hand
//! (HTTP/1.1, `Connection: close`), so the test needs no HTTP client.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tethys_control::http::api::{ClusterView, JobList, JobView, Submitted};
use tethys_control::rpc::server::MasterNode;
use tethys_storage::test_dir::TestDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// The data plane's rules (a worker parses it too): at least 16 bytes.
mod support;

const SECRET: &str = "http-test-secret-0123456789";
const WAIT: Duration = Duration::from_secs(10);

/// An HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{error}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The error body's code, after checking the body is an error and nothing else.
    fn error_code(&self) -> String {
        let body: Value = self.json();
        let object = body.as_object().unwrap_or_else(|| panic!("not an object: {}", self.body));
        assert_eq!(object.len(), 2, "an error and its code, nothing else: {}", self.body);
        assert!(body["error"].is_string(), "{}", self.body);
        body["code"].as_str().unwrap().to_string()
    }
}

/// Sends one request to `addr` (with the bearer `token` when given) and reads the whole answer.
async fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, body: Option<Vec<u8>>) -> Reply {
    request_with_cookie(addr, method, path, token, None, body).await
}

/// As `request`, with a `Cookie` header when given.
async fn request_with_cookie(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    cookie: Option<&str>,
    body: Option<Vec<u8>>,
) -> Reply {
    tokio::time::timeout(WAIT, exchange(addr, method, path, token, cookie, body))
        .await
        .unwrap_or_else(|_| panic!("{method} {path} at {addr}: no answer within {WAIT:?}"))
}

fn request_head(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, cookie: Option<&str>) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if let Some(cookie) = cookie {
        head.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    head
}

async fn exchange(addr: SocketAddr, method: &str, path: &str, token: Option<&str>, cookie: Option<&str>, body: Option<Vec<u8>>) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let mut head = request_head(addr, method, path, token, cookie);
    let body = body.unwrap_or_default();
    head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()));
    // Written beside the reading: a server refusing a large body answers before reading it all.
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
        writer
    });
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buffer[..n]),
            // A server that closes with part of a refused body unread resets the connection after
            // its answer.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(error) => panic!("{method} {path}: {error}"),
        }
    }
    drop(writing.await);
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let end = raw.windows(4).position(|window| window == b"\r\n\r\n").expect("a complete head");
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (key, value) = line.split_once(':').unwrap();
            (key.trim().to_string(), value.trim().to_string())
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(key, value)| key.eq_ignore_ascii_case("transfer-encoding") && value.contains("chunked"));
    if chunked {
        let (mut rest, mut whole) = (&body[..], Vec::new());
        loop {
            let line_end = rest.windows(2).position(|window| window == b"\r\n").unwrap();
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap().trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            whole.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        body = whole;
    }
    Reply { status, headers, body: String::from_utf8(body).unwrap() }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, Some(SECRET), None).await
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    request(addr, "POST", path, Some(SECRET), Some(body.as_bytes().to_vec())).await
}

/// The value of the sample `name` (with its labels) in a `/metrics` text.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Masters on 127.0.0.1, each serving HTTP too.
struct Cluster {
    _dirs: Vec<TestDir>,
    addrs: BTreeMap<u64, String>,
    http: BTreeMap<u64, SocketAddr>,
    nodes: BTreeMap<u64, MasterNode>,
}

impl Cluster {
    async fn start(count: u64) -> Cluster {
        Cluster::start_with(count, |_| {}).await
    }

    /// As [`Cluster::start`], the masters' options changed by `adjust`.
    async fn start_with(count: u64, adjust: impl Fn(&mut tethys_control::rpc::server::MasterOptions)) -> Cluster {
        let support::Masters { dirs, addrs, mut nodes } = support::start_masters(count, "http-master", SECRET, adjust).await;
        let mut http = BTreeMap::new();
        for (id, node) in &mut nodes {
            let served = node.serve_http(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
            assert_eq!(node.http_addr(), Some(served));
            http.insert(*id, served);
        }
        Cluster { _dirs: dirs, addrs, http, nodes }
    }

    /// The cluster as master `id` answers over HTTP, once it names a leader that leads.
    async fn leader_seen_by(&self, id: u64) -> ClusterView {
        let deadline = Instant::now() + WAIT;
        loop {
            let reply = get(self.http[&id], "/api/cluster").await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            let view: ClusterView = reply.json();
            if let Some(leader) = view.leader {
                if self.nodes.get(&leader).is_some_and(|node| node.master().is_leader()) {
                    return view;
                }
            }
            assert!(Instant::now() < deadline, "master {id} knows no leader within {WAIT:?}: {view:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A worker of `slots` slots in this process, registering with every master (this program's
    /// jobs, SQL scripts among them).
    async fn start_worker(&self, slots: u32) -> tethys_control::worker_node::WorkerProcess {
        use tethys_control::worker_node::{WorkerOptions, WorkerProcess};
        let options = WorkerOptions {
            masters: self.addrs.values().cloned().collect(),
            slots,
            secret: SECRET.to_string(),
            tls: None,
            registry: tethys_bench::jobs::registry(),
            mesh: tethys_net::MeshOptions::default(),
            orphan_timeout: WorkerOptions::ORPHAN_TIMEOUT_DEFAULT,
            program_dir: WorkerOptions::default_program_dir(),
            program_processes: Default::default(),
        };
        WorkerProcess::start(options, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await.unwrap()
    }

    async fn stop(mut self) {
        for (_, node) in std::mem::take(&mut self.nodes) {
            node.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_answers_from_any_master_and_needs_the_secret() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader_seen_by(0).await.leader.unwrap();
    let follower = (0..3).find(|id| *id != leader).unwrap();
    let (at_leader, at_follower) = (cluster.http[&leader], cluster.http[&follower]);

    // Without the secret, or with another: 401 and no data, on every path.
    for path in ["/api/cluster", "/api/jobs", "/api/jobs/0", "/metrics", "/nowhere"] {
        for token in [None, Some("wrong"), Some("")] {
            let refused = request(at_follower, "GET", path, token, None).await;
            assert_eq!((refused.status, refused.error_code().as_str()), (401, "UNAUTHENTICATED"), "{path} with {token:?}");
            assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        }
    }
    let refused = request(at_follower, "POST", "/api/jobs", Some("wrong"), Some(br#"{"name":"count","args":["a"]}"#.to_vec())).await;
    assert_eq!(refused.status, 401);

    // A follower names the leader and every master.
    let view: ClusterView = get(at_follower, "/api/cluster").await.json();
    assert_eq!((view.leader, view.answered_by), (Some(leader), follower));
    assert_eq!(view.leader_addr.as_deref(), Some(cluster.addrs[&leader].as_str()));
    assert_eq!(view.masters.iter().map(|master| (master.id, master.leader)).collect::<Vec<_>>(), [0, 1, 2].map(|id| (id, id == leader)));
    assert!(view.workers.is_empty());

    // Submitted through the follower, which forwards to the leader; refusals with their reasons.
    let accepted = post(at_follower, "/api/jobs", r#"{"name": "count", "args": ["a"], "parallelism": 2}"#).await;
    assert_eq!(accepted.status, 201, "{}", accepted.body);
    let first: Submitted = accepted.json();
    assert_eq!(accepted.header("location"), Some(format!("/api/jobs/{}", first.job).as_str()));
    let unknown = post(at_follower, "/api/jobs", r#"{"name": "nope", "args": ["x"]}"#).await;
    assert_eq!((unknown.status, unknown.error_code().as_str()), (400, "INVALID_ARGUMENT"));
    assert!(unknown.body.contains(r#"defines no job \"nope\""#), "{}", unknown.body);
    let other_build = post(at_follower, "/api/jobs", r#"{"name": "count", "args": ["a"], "build_id": "another"}"#).await;
    assert!(other_build.status == 400 && other_build.body.contains("another program"), "{}", other_build.body);
    let malformed = post(at_follower, "/api/jobs", r#"{"name": "count", "args": ["a"],"#).await;
    assert_eq!((malformed.status, malformed.error_code().as_str()), (400, "INVALID_ARGUMENT"));
    assert!(malformed.body.contains("bad job JSON"), "{}", malformed.body);
    let oversized = request(at_follower, "POST", "/api/jobs", Some(SECRET), Some(vec![b' '; (1 << 20) + 1])).await;
    assert_eq!((oversized.status, oversized.error_code().as_str()), (413, "RESOURCE_EXHAUSTED"), "{}", oversized.body);
    let second: Submitted = post(at_leader, "/api/jobs", r#"{"name": "count", "args": ["b"]}"#).await.json();
    assert_eq!((first.job, second.job), (0, 1));

    // Listed and shown (the leader reads what it committed).
    let listed: JobList = get(at_leader, "/api/jobs").await.json();
    let jobs: Vec<(u64, &str, &str)> = listed.jobs.iter().map(|job| (job.id, job.name.as_str(), job.status.as_str())).collect();
    assert_eq!(jobs, [(0, "count", "created"), (1, "count", "created")]);
    let job: JobView = get(at_leader, "/api/jobs/0").await.json();
    assert_eq!((job.args, job.parallelism, job.slots, job.build_id.as_str()), (vec!["a".to_string()], 2, 2, "test-build"));
    assert_eq!((job.reason, job.last_checkpoint), (None, None));

    // Cancelled through the follower; a second time is a conflict; unknown jobs and paths are 404.
    let cancelled = post(at_follower, "/api/jobs/0/cancel", "").await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.json::<JobView>().status, "cancelled");
    let again = post(at_follower, "/api/jobs/0/cancel", "").await;
    assert_eq!((again.status, again.error_code().as_str()), (409, "FAILED_PRECONDITION"));
    assert!(again.body.contains("has ended"), "{}", again.body);
    let missing = get(at_follower, "/api/jobs/99").await;
    assert_eq!((missing.status, missing.error_code().as_str()), (404, "NOT_FOUND"));
    assert_eq!(post(at_leader, "/api/jobs/99/cancel", "").await.status, 404);
    assert_eq!(get(at_follower, "/api/jobs/zero").await.status, 400);
    assert_eq!(get(at_follower, "/api/nothing").await.status, 404);
    // Live figures are a running job's (the follower asks the leader): none for one that ended,
    // none for one that does not exist.
    let ended = get(at_follower, "/api/jobs/0/live").await;
    assert_eq!((ended.status, ended.error_code().as_str()), (409, "FAILED_PRECONDITION"), "{}", ended.body);
    assert!(ended.body.contains("only a running job"), "{}", ended.body);
    assert_eq!(get(at_follower, "/api/jobs/99/live").await.status, 404);
    // Bad bodies and ids of the job actions: 400, naming what is wrong, before any call.
    for (path, body, says) in [
        ("/api/jobs/0/rescale", "", "bad rescale JSON"),
        ("/api/jobs/0/rescale", r#"{"parallelism": -2}"#, "bad rescale JSON"),
        ("/api/jobs/0/rescale", r#"{"parallelism": 2, "force": true}"#, "unknown field `force`"),
        ("/api/jobs/0/savepoint", r#"{"stop": "yes"}"#, "bad savepoint JSON"),
        ("/api/jobs/0/savepoint", r#"{"directory": "/tmp"}"#, "unknown field `directory`"),
        ("/api/jobs/x/savepoint", "", "bad job id"),
        ("/api/jobs/x/rescale", r#"{"parallelism": 2}"#, "bad job id"),
    ] {
        let refused = post(at_follower, path, body).await;
        assert_eq!((refused.status, refused.error_code().as_str()), (400, "INVALID_ARGUMENT"), "{path} {body}: {}", refused.body);
        assert!(refused.body.contains(says), "{path} {body} should say {says}: {}", refused.body);
    }

    // Metrics: every master's term, one leader, and jobs by status as each master applied them.
    let deadline = Instant::now() + WAIT;
    loop {
        let mut texts = BTreeMap::new();
        for (id, addr) in &cluster.http {
            let reply = get(*addr, "/metrics").await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert!(reply.header("content-type").is_some_and(|kind| kind.starts_with("text/plain; version=0.0.4")));
            texts.insert(*id, reply.body);
        }
        let leaders: Vec<u64> = texts.iter().filter(|(_, text)| sample(text, "tethys_is_leader") == Some(1)).map(|(id, _)| *id).collect();
        let all_applied = texts.values().all(|text| {
            sample(text, "tethys_jobs{status=\"created\"}") == Some(1) && sample(text, "tethys_jobs{status=\"cancelled\"}") == Some(1)
        });
        if all_applied {
            assert_eq!(leaders, [leader], "exactly one master leads");
            for text in texts.values() {
                assert!(sample(text, "tethys_raft_term").is_some_and(|term| term >= 1), "{text}");
                assert_eq!(sample(text, "tethys_jobs{status=\"running\"}"), Some(0), "{text}");
                assert_eq!(sample(text, "tethys_raft_members"), Some(3), "{text}");
                assert_eq!(sample(text, "tethys_workers_registered"), Some(0), "{text}");
            }
            let (led, followed) = (&texts[&leader], &texts[&follower]);
            assert_eq!(sample(led, "tethys_submissions_total{outcome=\"accepted\"}"), Some(2), "{led}");
            assert!(sample(followed, "tethys_submissions_total{outcome=\"refused\"}").is_some_and(|refused| refused >= 2), "{followed}");
            assert!(sample(followed, "tethys_forwarded_calls_total").is_some_and(|forwarded| forwarded >= 2), "{followed}");
            assert!(led.contains("# HELP tethys_jobs Jobs by status"), "{led}");
            break;
        }
        assert!(Instant::now() < deadline, "the masters' metrics never showed both jobs: {texts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_its_metrics_with_its_registered_id() {
    let cluster = Cluster::start(1).await;
    cluster.leader_seen_by(0).await;
    let mut worker = cluster.start_worker(2).await;
    let at_worker = worker.serve_http(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).unwrap();
    assert_eq!(worker.http_addr(), Some(at_worker));
    let refused = request(at_worker, "GET", "/metrics", Some("wrong"), None).await;
    assert_eq!((refused.status, refused.error_code().as_str()), (401, "UNAUTHENTICATED"));
    assert!(!refused.body.contains("tethys_"), "{}", refused.body);

    // Registered, and beating: its id is the one the masters gave it.
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = get(at_worker, "/metrics").await.body;
        if sample(&text, "tethys_worker_heartbeats_total").is_some_and(|sent| sent >= 1) {
            break text;
        }
        assert!(Instant::now() < deadline, "the worker never beat: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let view: ClusterView = get(cluster.http[&0], "/api/cluster").await.json();
    assert_eq!(view.workers.len(), 1, "{view:?}");
    assert_eq!(sample(&text, "tethys_worker_id"), Some(view.workers[0].id), "{text}");
    assert_eq!(Some(view.workers[0].id), worker.agent().worker_id());
    assert_eq!(sample(&text, "tethys_worker_slots"), Some(2), "{text}");
    assert_eq!(sample(&text, "tethys_worker_attempts_running"), Some(0), "{text}");
    assert_eq!(sample(&text, "tethys_worker_registrations_total"), Some(1), "{text}");
    assert!(sample(&text, "tethys_worker_term").is_some_and(|term| term >= 1), "{text}");
    assert!(sample(&text, "tethys_worker_heartbeats_failed_total").is_some(), "{text}");

    // The master counts it among its workers and slots.
    let master = get(cluster.http[&0], "/metrics").await.body;
    assert_eq!((sample(&master, "tethys_workers_alive"), sample(&master, "tethys_slots_total")), (Some(1), Some(2)), "{master}");
    assert_eq!(sample(&master, "tethys_is_leader"), Some(1), "{master}");
    worker.stop();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_log_is_searched_through_any_master() {
    use tethys_control::http::api::LogsView;
    use tethys_control::logs::LogBook;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    // This test process keeps its log, as the `tethys` binary does.
    let _ = tracing_subscriber::registry()
        .with(LogBook::install(LogBook::new(1000)).with_filter(tracing_subscriber::filter::LevelFilter::INFO))
        .try_init();
    let cluster = Cluster::start(2).await;
    let leader = cluster.leader_seen_by(0).await.leader.unwrap();
    let follower = 1 - leader;
    let worker = cluster.start_worker(1).await;
    let deadline = Instant::now() + WAIT;
    let id = loop {
        if let Some(id) = worker.agent().worker_id() {
            break id;
        }
        assert!(Instant::now() < deadline, "the worker never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tracing::warn!(job = 77, "a line to find: disk nearly full");

    let found: LogsView = get(cluster.http[&follower], &format!("/api/workers/{id}/logs?q=NEARLY%20full&limit=10")).await.json();
    assert!(found.kept);
    assert_eq!(found.worker, id);
    assert_eq!(found.lines.len(), 1, "{found:?}");
    let line = &found.lines[0];
    assert_eq!((line.level.as_str(), line.message.as_str(), line.fields.as_str()), ("WARN", "a line to find: disk nearly full", "job=77"));
    let serving: LogsView = get(cluster.http[&leader], &format!("/api/workers/{id}/logs?q=worker%20serving")).await.json();
    assert!(!serving.lines.is_empty(), "the worker's own start is logged: {serving:?}");
    let warnings: LogsView = get(cluster.http[&leader], &format!("/api/workers/{id}/logs?level=warn")).await.json();
    assert!(warnings.lines.iter().all(|line| line.level == "WARN" || line.level == "ERROR"), "{warnings:?}");
    let after: LogsView = get(cluster.http[&leader], &format!("/api/workers/{id}/logs?after={}", found.next_seq)).await.json();
    assert!(after.lines.iter().all(|line| line.seq >= found.next_seq), "only newer lines: {after:?}");

    // Bad input: an unknown worker, level or parameter, a bad id; no token.
    let unknown = get(cluster.http[&leader], "/api/workers/999/logs").await;
    assert_eq!((unknown.status, unknown.error_code().as_str()), (404, "NOT_FOUND"), "{}", unknown.body);
    let level = get(cluster.http[&leader], &format!("/api/workers/{id}/logs?level=loud")).await;
    assert_eq!(level.status, 400, "{}", level.body);
    assert!(level.body.contains("unknown log level `loud`"), "{}", level.body);
    let parameter = get(cluster.http[&leader], &format!("/api/workers/{id}/logs?grep=x")).await;
    assert_eq!(parameter.status, 400, "{}", parameter.body);
    assert!(parameter.body.contains("grep"), "{}", parameter.body);
    assert_eq!(get(cluster.http[&leader], "/api/workers/x/logs").await.status, 400);
    let refused = request(cluster.http[&leader], "GET", &format!("/api/workers/{id}/logs"), None, None).await;
    assert_eq!(refused.status, 401);
    assert!(!refused.body.contains("nearly full"), "{}", refused.body);

    // A worker that no longer answers: 503, saying which.
    worker.stop();
    let deadline = Instant::now() + WAIT;
    loop {
        let gone = get(cluster.http[&leader], &format!("/api/workers/{id}/logs")).await;
        if gone.status == 503 {
            assert!(gone.body.contains(&format!("worker {id}")) || gone.body.contains(&format!("worker-{id}")), "{}", gone.body);
            break;
        }
        assert!(Instant::now() < deadline, "a stopped worker still answers: {}", gone.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_jobs_sampled_rows_are_read_and_streamed_through_any_master() {
    use tethys_control::output::JobOutputView;

    // Masters that deploy this program's jobs (SQL scripts among them) on real workers.
    let cluster = Cluster::start_with(2, |options| {
        options.build_id = tethys_engine::graph::fingerprint::build_id().to_string();
        options.validator = None;
        options.deploy = Some(tethys_control::deployer::DeployOptions {
            registry: tethys_bench::jobs::registry(),
            checkpoint_root: None,
            mesh: tethys_net::MeshOptions::default(),
            restarts_max: 0,
            program_processes: Default::default(),
        });
    })
    .await;
    let leader = cluster.leader_seen_by(0).await.leader.unwrap();
    let follower = 1 - leader;
    let worker = cluster.start_worker(2).await;
    let script = "CREATE TABLE gen (k BIGINT, price DOUBLE, label STRING) WITH ('connector' = 'datagen', 'rows-per-second' = '400', \
                  'fields.k.kind' = 'sequence', 'fields.k.start' = '1', 'fields.k.end' = '1000000', 'fields.price.min' = '1', \
                  'fields.price.max' = '9', 'fields.label.length' = '3');
                  CREATE TABLE cheap (k BIGINT, price DOUBLE, label STRING) WITH ('connector' = 'blackhole');
                  INSERT INTO cheap SELECT k, price, label FROM gen WHERE price < 5;";
    let body = serde_json::json!({ "name": "sql", "args": [script], "parallelism": 2 }).to_string();
    let accepted = post(cluster.http[&follower], "/api/jobs", &body).await;
    assert_eq!(accepted.status, 201, "{}", accepted.body);
    let job = accepted.json::<Submitted>().job;

    // Rows arrive (the follower asks the leader), typed, in the sink's columns, each once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let reply = get(cluster.http[&follower], &format!("/api/jobs/{job}/output")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let view: JobOutputView = reply.json();
        if view.sinks.first().is_some_and(|sink| sink.rows.len() >= 20) {
            break view;
        }
        assert!(Instant::now() < deadline, "no sampled rows within 30 s: {view:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sink = &view.sinks[0];
    assert_eq!((sink.sink.as_str(), sink.columns.as_slice()), ("cheap", ["k", "price", "label"].map(String::from).as_slice()));
    assert_eq!(sink.types, ["BIGINT", "DOUBLE", "STRING"]);
    assert!(sink.written >= sink.rows.len() as u64, "{sink:?}");
    let mut seen = std::collections::BTreeSet::new();
    for row in &sink.rows {
        assert_eq!(row.op, "+I");
        let price = row.values[1].as_f64().expect("a number");
        assert!((1.0..5.0).contains(&price), "only what the filter passed: {row:?}");
        assert!(row.values[2].as_str().is_some_and(|label| label.len() == 3), "{row:?}");
        assert!(seen.insert(row.values[0].as_i64().unwrap()), "each row once: {row:?}");
        assert!(row.subtask < 2);
    }
    assert!(sink.rows.windows(2).all(|pair| pair[0].n < pair[1].n), "in the order taken in");

    // Only newer rows after the last seen; one sink by name, the newest few.
    let last = sink.rows.last().unwrap().n;
    let newer: JobOutputView = get(cluster.http[&leader], &format!("/api/jobs/{job}/output?after={last}")).await.json();
    assert!(newer.sinks.iter().flat_map(|sink| &sink.rows).all(|row| row.n > last), "{newer:?}");
    let few: JobOutputView = get(cluster.http[&leader], &format!("/api/jobs/{job}/output?sink=cheap&limit=3")).await.json();
    assert_eq!(few.sinks[0].rows.len(), 3);

    // Streamed: the rows kept at once, as a `rows` event.
    let streamed: JobOutputView = serde_json::from_str(
        &first_event_with(cluster.http[&follower], &format!("/api/jobs/{job}/output/stream?sink=cheap"), Some(SECRET), None, "rows").await,
    )
    .unwrap();
    assert!(streamed.sinks[0].rows.len() >= 20, "{streamed:?}");

    // Bad input: an unknown sink, job or parameter, a bad id; no token.
    let unknown = get(cluster.http[&leader], &format!("/api/jobs/{job}/output?sink=chepa")).await;
    assert_eq!((unknown.status, unknown.error_code().as_str()), (404, "NOT_FOUND"), "{}", unknown.body);
    assert!(unknown.body.contains("sinks: cheap"), "{}", unknown.body);
    assert_eq!(get(cluster.http[&follower], "/api/jobs/99/output").await.status, 404);
    let parameter = get(cluster.http[&leader], &format!("/api/jobs/{job}/output?since=3")).await;
    assert_eq!(parameter.status, 400, "{}", parameter.body);
    assert!(parameter.body.contains("since"), "{}", parameter.body);
    assert_eq!(get(cluster.http[&leader], "/api/jobs/x/output").await.status, 400);
    let refused = request(cluster.http[&leader], "GET", &format!("/api/jobs/{job}/output"), None, None).await;
    assert_eq!(refused.status, 401);
    assert!(!refused.body.contains("price"), "{}", refused.body);

    assert_eq!(post(cluster.http[&leader], &format!("/api/jobs/{job}/cancel"), "").await.status, 200);

    // A test run on a sample of a live topic, which the worker running a job into it holds:
    // the masters ask the workers for it; the filter and the bound apply.
    let dir = TestDir::new("http-sample-topic");
    let topic = dir.path().join("prices");
    let writer = format!(
        "CREATE TABLE gen (k BIGINT, price DOUBLE) WITH ('connector' = 'datagen', 'rows-per-second' = '500', \
         'fields.k.kind' = 'sequence', 'fields.k.start' = '1', 'fields.k.end' = '100000000', 'fields.price.min' = '1', 'fields.price.max' = '9');
         CREATE TABLE prices (k BIGINT, price DOUBLE) WITH ('connector' = 'topic', 'path' = '{}', 'sink.delivery-guarantee' = 'at-least-once');
         INSERT INTO prices SELECT k, price FROM gen;",
        topic.display()
    );
    let body = serde_json::json!({ "name": "sql", "args": [writer], "parallelism": 1, "checkpoint_interval_ms": 200 }).to_string();
    let accepted = post(cluster.http[&follower], "/api/jobs", &body).await;
    assert_eq!(accepted.status, 201, "{}", accepted.body);
    let test_script = format!(
        "CREATE TABLE prices (k BIGINT, price DOUBLE) WITH ('connector' = 'topic', 'path' = '{}');
         CREATE TABLE cheap (k BIGINT, price DOUBLE) WITH ('connector' = 'print');
         INSERT INTO cheap SELECT k, price FROM prices;",
        topic.display()
    );
    let ask = serde_json::json!({ "script": test_script, "inputs": { "prices": { "sample": { "rows": 5, "filter": "price < 4" } } } })
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    let outputs = loop {
        let reply = post(cluster.http[&follower], "/api/test-runs", &ask).await;
        if reply.status == 200 {
            let view: Value = reply.json();
            let rows: Vec<String> = serde_json::from_value(view["outputs"]["cheap"].clone()).unwrap_or_default();
            if rows.len() == 5 {
                break rows;
            }
        }
        assert!(Instant::now() < deadline, "no sample of 5 rows within 30 s: {} {}", reply.status, reply.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for row in &outputs {
        let price: f64 = row.trim_end_matches(']').rsplit(", ").next().unwrap().parse().unwrap();
        assert!(row.starts_with("+I[") && price < 4.0, "{row}");
    }
    let bad = serde_json::json!({ "script": test_script, "inputs": { "prices": { "sample": { "filter": "prize < 4" } } } }).to_string();
    let refused = post(cluster.http[&follower], "/api/test-runs", &bad).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("price"), "did you mean: {}", refused.body);

    worker.stop();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_workbench_checks_completes_formats_explains_and_test_runs() {
    use tethys_control::http::workbench::{SqlCheckView, SqlCompletions, SqlExplainView, SqlFunctions, SqlScript, TestRunView};

    let cluster = Cluster::start(1).await;
    cluster.leader_seen_by(0).await;
    let at = cluster.http[&0];
    let ddl = "CREATE TABLE orders (id BIGINT, customer STRING, amount INT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'datagen');\nCREATE TABLE totals (customer STRING, n BIGINT) WITH ('connector' = 'print');\n";
    let json = |value: serde_json::Value| value.to_string();

    // A misspelled column: its place, and the fix.
    let typo = format!("{ddl}INSERT INTO totals SELECT custmer, COUNT(*) FROM orders GROUP BY customer;");
    let check: SqlCheckView = post(at, "/api/sql/check", &json(serde_json::json!({ "script": typo }))).await.json();
    assert!(!check.ok);
    let problem = &check.problems[0];
    assert_eq!((problem.line, problem.column, problem.fix.as_deref()), (Some(3), Some(27), Some("customer")), "{problem:?}");
    assert_eq!(check.tables.iter().map(|table| table.name.as_str()).collect::<Vec<_>>(), ["orders", "totals"]);
    assert_eq!(check.tables[0].event_time.as_deref(), Some("ts"));
    let fixed = typo.replace("custmer", "customer");
    let check: SqlCheckView = post(at, "/api/sql/check", &json(serde_json::json!({ "script": fixed }))).await.json();
    assert!(check.ok && check.problems.is_empty(), "{check:?}");

    // A column completed at the cursor, ranked by the server.
    let partial = format!("{ddl}SELECT cust FROM orders;");
    let completions: SqlCompletions =
        post(at, "/api/sql/complete", &json(serde_json::json!({ "script": partial, "line": 3, "column": 12 }))).await.json();
    assert_eq!(
        completions.items.first().map(|item| (item.label.as_str(), item.kind.as_str())),
        Some(("customer", "column")),
        "{completions:?}"
    );

    let formatted: SqlScript = post(at, "/api/sql/format", &json(serde_json::json!({ "script": "select  id from orders" }))).await.json();
    assert!(formatted.script.starts_with("SELECT id") && formatted.script.contains("FROM orders"), "{}", formatted.script);
    let explained: SqlExplainView = post(at, "/api/sql/explain", &json(serde_json::json!({ "script": fixed }))).await.json();
    assert!(explained.nodes.len() >= 3 && !explained.edges.is_empty() && explained.plan.contains("Aggregate"), "{explained:?}");
    assert!(explained.edges.iter().any(|edge| edge.partitioning == "hash"), "a GROUP BY shuffles by key: {explained:?}");
    let functions: SqlFunctions = get(at, "/api/sql/functions").await.json();
    assert!(functions.functions.len() > 50 && functions.functions.iter().any(|f| f.name == "UPPER" && f.kind == "scalar"));
    let sum = functions.functions.iter().find(|f| f.name == "SUM").unwrap();
    assert!(sum.kind == "aggregate" && sum.signature.starts_with("SUM([DISTINCT] x NUMERIC)"), "{sum:?}");

    // A test run on typed rows, one expected row wrong: exactly that row is flagged.
    let ask = serde_json::json!({
        "script": fixed,
        "inputs": {"orders": {"rows": "1,alice,5,2026-01-01 00:00:01\n2,bob,3,2026-01-01 00:00:02\n3,alice,1,2026-01-01 00:00:03\n"}},
        "expected": {"totals": {"compare": "final", "rows": "+I[alice, 2]\n+I[bob, 7]\n"}}
    });
    let run: TestRunView = post(at, "/api/test-runs", &json(ask)).await.json();
    assert!(!run.passed);
    assert_eq!(run.outputs["totals"], ["+I[alice, 1]", "+I[bob, 1]", "-U[alice, 1]", "+U[alice, 2]"]);
    let flagged: Vec<(&str, &str)> =
        run.diffs["totals"].rows.iter().filter(|row| row.status != "same").map(|row| (row.status.as_str(), row.row.as_str())).collect();
    assert_eq!(flagged, [("missing", "+I[bob, 7]"), ("unexpected", "+I[bob, 1]")]);
    // On generated rows.
    let generated = serde_json::json!({
        "script": fixed,
        "inputs": {"orders": {"generate": {"rows": 50, "key": "customer", "keys": 1}}},
        "expected": {"totals": {"compare": "final", "rows": "+I[key-0, 50]"}}
    });
    let run: TestRunView = post(at, "/api/test-runs", &json(generated)).await.json();
    assert!(run.passed, "{run:?}");

    // Bad input: said, with the place where there is one.
    let bad =
        post(at, "/api/test-runs", &json(serde_json::json!({ "script": fixed, "expected": {"totals": {"compare": "loose", "rows": ""}} })))
            .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("compare 'loose' is not known"), "{}", bad.body);
    let unknown_table = post(at, "/api/test-runs", &json(serde_json::json!({ "script": fixed, "inputs": {"order": {"rows": ""}} }))).await;
    assert!(unknown_table.status == 400 && unknown_table.body.contains("did you mean orders?"), "{}", unknown_table.body);
    // A table given no input gets generated rows (a test run reads no live source); a run that
    // produces too much is stopped.
    let select = format!("{ddl}SELECT id FROM orders;");
    let run: TestRunView = post(at, "/api/test-runs", &json(serde_json::json!({ "script": select }))).await.json();
    assert_eq!(run.outputs["select1"].len(), 100, "the generated default: {run:?}");
    let flood = serde_json::json!({ "script": select, "inputs": {"orders": {"generate": {"rows": 150000, "rows_per_second": 100000}}} });
    let stopped = post(at, "/api/test-runs", &json(flood)).await;
    assert_eq!(stopped.status, 422, "{}", stopped.body);
    assert!(stopped.body.contains("more than 100000 rows"), "{}", stopped.body);
    assert_eq!(post(at, "/api/sql/check", "{\"text\": 1}").await.status, 400);
    let bad_format = post(at, "/api/sql/format", &json(serde_json::json!({ "script": "SELEC 1" }))).await;
    assert!(bad_format.status == 400 && bad_format.body.contains("line 1"), "{}", bad_format.body);
    assert_eq!(request(at, "POST", "/api/sql/check", None, Some(b"{}".to_vec())).await.status, 401);

    // The canvas: a drawn job compiled with its streams typed, refused where drawn, previewed.
    use tethys_control::http::workbench::{CanvasCompileView, CanvasPreviewView};
    let canvas = |window_source: &str| {
        serde_json::json!({
            "tables": ddl,
            "nodes": [
                {"id": "src", "kind": "source", "table": window_source},
                {"id": "priced", "kind": "filter", "condition": "amount > 2"},
                {"id": "counted", "kind": "aggregate", "group_by": ["customer"], "aggregates": [{"expr": "COUNT(*)", "name": "n"}]},
                {"id": "out", "kind": "sink", "table": "totals"}
            ],
            "edges": [{"from": "src", "to": "priced"}, {"from": "priced", "to": "counted"}, {"from": "counted", "to": "out"}]
        })
    };
    let compiled: CanvasCompileView = post(at, "/api/canvas/compile", &json(canvas("orders"))).await.json();
    assert!(compiled.ok, "{compiled:?}");
    assert!(compiled.sql.as_deref().unwrap().contains("CREATE TEMPORARY VIEW priced AS"), "{compiled:?}");
    assert_eq!(compiled.streams["src"].event_time.as_deref(), Some("ts"));
    assert!(compiled.streams["counted"].updating);
    let refused: CanvasCompileView = post(at, "/api/canvas/compile", &json(canvas("ordres"))).await.json();
    assert!(!refused.ok);
    assert_eq!(refused.errors[0].node.as_deref(), Some("src"));
    assert!(refused.errors[0].message.contains("did you mean orders?"), "{refused:?}");
    let bad =
        post(at, "/api/canvas/compile", "{\"tables\": \"\", \"nodes\": [{\"id\": \"x\", \"kind\": \"teleport\"}], \"edges\": []}").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let preview = serde_json::json!({
        "spec": canvas("orders"),
        "inputs": {"orders": {"rows": "1,alice,5,2026-01-01 00:00:01\n2,bob,1,2026-01-01 00:00:02\n3,alice,3,2026-01-01 00:00:03\n"}}
    });
    let previewed: CanvasPreviewView = post(at, "/api/canvas/preview", &json(preview)).await.json();
    assert_eq!(previewed.counts["src"], 3, "{previewed:?}");
    assert_eq!(previewed.outputs["priced"].len(), 2, "{previewed:?}");
    assert_eq!(previewed.outputs["totals"], ["+I[alice, 1]", "-U[alice, 1]", "+U[alice, 2]"], "{previewed:?}");
    let drawn = post(at, "/api/canvas/from-sql", &json(serde_json::json!({ "script": fixed }))).await;
    assert_eq!(drawn.status, 200, "{}", drawn.body);
    let spec: serde_json::Value = drawn.json();
    assert_eq!(
        spec["nodes"].as_array().unwrap().iter().map(|node| node["kind"].as_str().unwrap()).collect::<Vec<_>>(),
        ["source", "aggregate", "sink"]
    );
    let undrawable = post(at, "/api/canvas/from-sql", &json(serde_json::json!({ "script": format!("{ddl}SELECT 1;") }))).await;
    assert!(undrawable.status == 400 && undrawable.body.contains("canvas"), "{}", undrawable.body);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drafts_are_saved_with_versions_through_any_master_and_survive_the_leader() {
    use tethys_control::http::drafts::{DraftDiffView, DraftListView, DraftVersionView};

    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader_seen_by(0).await.leader.unwrap();
    let follower = (0..3).find(|id| *id != leader).unwrap();
    let at = cluster.http[&follower];
    let save = |script: &str, note: &str| serde_json::json!({ "script": script, "note": note, "test_case": "{}" }).to_string();
    let first = post(at, "/api/drafts/orders%20per%20window", &save("SELECT a\nFROM t;", "first")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let first: DraftVersionView = first.json();
    assert_eq!((first.name.as_str(), first.version, first.note.as_str()), ("orders per window", 1, "first"));
    let second: DraftVersionView = post(at, "/api/drafts/orders%20per%20window", &save("SELECT a, b\nFROM t;", "b too")).await.json();
    assert_eq!(second.version, 2);

    let list: DraftListView = get(at, "/api/drafts").await.json();
    assert_eq!(list.drafts.len(), 1);
    let versions: Vec<(u32, &str)> = list.drafts[0].versions.iter().map(|v| (v.version, v.note.as_str())).collect();
    assert_eq!(versions, [(1, "first"), (2, "b too")]);
    assert!(list.drafts[0].versions.iter().all(|v| v.script.is_none()), "a list leaves the texts out");
    let newest: DraftVersionView = get(at, "/api/drafts/orders%20per%20window").await.json();
    assert_eq!((newest.version, newest.script.as_deref(), newest.test_case.as_deref()), (2, Some("SELECT a, b\nFROM t;"), Some("{}")));
    let old: DraftVersionView = get(at, "/api/drafts/orders%20per%20window?version=1").await.json();
    assert_eq!(old.script.as_deref(), Some("SELECT a\nFROM t;"));
    let diff: DraftDiffView = get(at, "/api/drafts/orders%20per%20window/diff?from=1").await.json();
    assert_eq!((diff.from, diff.to), (1, 2));
    let changes: Vec<(&str, &str)> = diff.lines.iter().map(|line| (line.change.as_str(), line.text.as_str())).collect();
    assert_eq!(changes, [("removed", "SELECT a"), ("added", "SELECT a, b"), ("same", "FROM t;")]);

    // Bad input.
    let bad_name = post(at, "/api/drafts/a%2Fb", &save("x", "")).await;
    assert_eq!(bad_name.status, 400, "{}", bad_name.body);
    assert!(bad_name.body.contains("a draft's name is"), "{}", bad_name.body);
    assert_eq!(get(at, "/api/drafts/nothing").await.status, 404);
    let missing_version = get(at, "/api/drafts/orders%20per%20window?version=9").await;
    assert!(missing_version.status == 404 && missing_version.body.contains("has no version 9"), "{}", missing_version.body);
    assert_eq!(post(at, "/api/drafts/x", "{\"scrpt\": \"\"}").await.status, 400);
    assert_eq!(request(at, "GET", "/api/drafts", None, None).await.status, 401);

    // The leader goes; the drafts stay (the log holds them), and deleting one works through the new one.
    cluster.nodes.remove(&leader).unwrap().stop().await;
    let survivor = (0..3).find(|id| *id != leader).unwrap();
    let after = cluster.leader_seen_by(survivor).await;
    assert_ne!(after.leader, Some(leader));
    let kept: DraftVersionView = get(cluster.http[&survivor], "/api/drafts/orders%20per%20window").await.json();
    assert_eq!(kept.version, 2);
    let deleted = request(cluster.http[&survivor], "DELETE", "/api/drafts/orders%20per%20window", Some(SECRET), None).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(get(cluster.http[&survivor], "/api/drafts/orders%20per%20window").await.status, 404);
    cluster.stop().await;
}

/// The data of the first event named `name` that `GET path` streams (server-sent events).
async fn first_event(addr: SocketAddr, path: &str, cookie: &str, name: &str) -> String {
    first_event_with(addr, path, None, Some(cookie), name).await
}

/// As [`first_event`], with a token or a cookie.
async fn first_event_with(addr: SocketAddr, path: &str, token: Option<&str>, cookie: Option<&str>, name: &str) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = request_head(addr, "GET", path, token, cookie) + "Accept: text/event-stream\r\n\r\n";
    writer.write_all(head.as_bytes()).await.unwrap();
    let reading = async {
        let (mut raw, mut buffer) = (Vec::new(), [0u8; 8192]);
        loop {
            let n = reader.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the stream ended: {}", String::from_utf8_lossy(&raw));
            raw.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&raw).into_owned();
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            // Chunked: each event arrives whole in a chunk; its lines are what matters here.
            let marker = format!("event: {name}\n");
            if let Some(at) = text.find(&marker) {
                let rest = &text[at + marker.len()..];
                if let Some(end) = rest.find("\n\n") {
                    return rest[..end].lines().filter_map(|line| line.strip_prefix("data: ")).collect::<Vec<_>>().join("\n");
                }
            }
        }
    };
    tokio::time::timeout(WAIT, reading).await.unwrap_or_else(|_| panic!("no {name} event from {path} within {WAIT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_logs_in_with_a_cookie_and_streams_the_cluster() {
    let support::Masters { dirs: _dirs, mut nodes, .. } = support::start_masters(1, "console-master", SECRET, |_| {}).await;
    let node = nodes.get_mut(&0).unwrap();
    let pages: tethys_control::http::Pages =
        std::sync::Arc::new(|path: &str| axum::response::IntoResponse::into_response(format!("the console's page for {path}")));
    let at = node.serve_http_with(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), Some(pages)).unwrap();

    // The console's pages and the API's description need no token; the API and metrics do,
    // unknown API paths included.
    let page = request(at, "GET", "/jobs/3", None, None).await;
    assert_eq!((page.status, page.body.as_str()), (200, "the console's page for /jobs/3"));
    let document = request(at, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(document.status, 200);
    assert!(document.json::<Value>()["paths"]["/api/jobs/{id}/rescale"].is_object(), "{}", document.body);
    for path in ["/api/cluster", "/api/events", "/api/nowhere", "/metrics"] {
        let refused = request(at, "GET", path, None, None).await;
        assert_eq!((refused.status, refused.error_code().as_str()), (401, "UNAUTHENTICATED"), "{path}");
    }
    assert_eq!(get(at, "/api/nowhere").await.status, 404);

    // A wrong token gets no cookie; the right one gets a cookie that opens the API.
    let wrong = request(at, "POST", "/api/login", None, Some(br#"{"token": "not-the-secret"}"#.to_vec())).await;
    assert_eq!((wrong.status, wrong.header("set-cookie")), (401, None));
    let bad = request(at, "POST", "/api/login", None, Some(br#"{"secret": "x"}"#.to_vec())).await;
    assert_eq!((bad.status, bad.error_code().as_str()), (400, "INVALID_ARGUMENT"));
    let login = request(at, "POST", "/api/login", None, Some(format!(r#"{{"token": "{SECRET}"}}"#).into_bytes())).await;
    assert_eq!(login.status, 204, "{}", login.body);
    let set_cookie = login.header("set-cookie").expect("a session cookie").to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains(SECRET), "the cookie is not the secret: {set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let cluster = request_with_cookie(at, "GET", "/api/cluster", None, Some(&cookie), None).await;
    assert_eq!(cluster.status, 200, "{}", cluster.body);
    let forged = request_with_cookie(at, "GET", "/api/cluster", None, Some("tethys_session=00"), None).await;
    assert_eq!(forged.status, 401);

    // Live data: a snapshot of the cluster and its jobs, at once.
    let snapshot: tethys_control::http::events::Snapshot =
        serde_json::from_str(&first_event(at, "/api/events", &cookie, "snapshot").await).unwrap();
    assert_eq!((snapshot.cluster.answered_by, snapshot.cluster.masters.len()), (0, 1));
    assert!(snapshot.jobs.is_empty());

    let logout = request_with_cookie(at, "POST", "/api/logout", None, Some(&cookie), None).await;
    assert_eq!(logout.status, 204);
    assert!(logout.header("set-cookie").unwrap().contains("Max-Age=0"));
    for (_, node) in nodes {
        node.stop().await;
    }
}

/// A stand-in for a Tethys program, as the API sees one: a script that says what it is (a job
/// `fake-job`) and accepts any job it is asked to check, with a one-task estimate.
fn fake_program() -> Vec<u8> {
    let info = serde_json::json!({
        "program": "fake",
        "tethys_version": env!("CARGO_PKG_VERSION"),
        "build_id": "fake-build",
        "jobs": [{"name": "fake-job", "about": "does nothing", "builtin": false}],
    });
    let estimate = serde_json::json!({"slots": 1, "tasks": [{"operators": ["Source: nothing"], "parallelism": 1}], "buffer_bytes": 0});
    format!("#!/bin/sh\ncase \"$1\" in\n  program-info) echo '{info}';;\n  check-job) echo '{estimate}';;\nesac\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_are_uploaded_listed_and_deleted_through_any_master() {
    use tethys_control::http::programs::{ProgramListView, ProgramView};

    // Every master reaches the same program store, as they reach the checkpoints.
    let shared = TestDir::new("http-programs");
    let store = shared.path().to_path_buf();
    let cluster = Cluster::start_with(3, move |options| {
        options.program_dir = Some(store.clone());
        options.program_bytes_max = 4096;
    })
    .await;
    let leader = cluster.leader_seen_by(0).await.leader.unwrap();
    let follower = (0..3).find(|id| *id != leader).unwrap();
    let (at, elsewhere) = (cluster.http[&follower], cluster.http[&leader]);
    let upload = |body: Vec<u8>, token: Option<&'static str>| request(at, "POST", "/api/programs", token, Some(body));

    // Refused: no token, not a program, too large; nothing is kept of them.
    assert_eq!(upload(fake_program(), None).await.status, 401);
    let not_a_program = upload(b"plain text".to_vec(), Some(SECRET)).await;
    assert_eq!((not_a_program.status, not_a_program.error_code().as_str()), (400, "INVALID_ARGUMENT"), "{}", not_a_program.body);
    assert!(not_a_program.body.contains("not a Tethys program"), "{}", not_a_program.body);
    let too_large = upload(vec![b'x'; 5000], Some(SECRET)).await;
    assert_eq!((too_large.status, too_large.error_code().as_str()), (413, "RESOURCE_EXHAUSTED"), "{}", too_large.body);
    assert!(too_large.body.contains("at most 4096 bytes"), "{}", too_large.body);
    assert_eq!(std::fs::read_dir(shared.path()).unwrap().count(), 0, "the store keeps no refused file");

    // Taken through a follower (which forwards the registration), seen from every master; the same
    // file again is the same program.
    let uploaded = upload(fake_program(), Some(SECRET)).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    let program: ProgramView = uploaded.json();
    assert_eq!(uploaded.header("location"), Some(format!("/api/programs/{}", program.id).as_str()));
    assert_eq!((program.program.as_str(), program.size, program.jobs[0].name.as_str()), ("fake", fake_program().len() as u64, "fake-job"));
    let again: ProgramView = upload(fake_program(), Some(SECRET)).await.json();
    assert_eq!((again.id.as_str(), again.uploaded_at_ms), (program.id.as_str(), program.uploaded_at_ms));
    let listed: ProgramListView = get(elsewhere, "/api/programs").await.json();
    assert_eq!(listed.programs, [program.clone()]);
    let one: ProgramView = get(elsewhere, &format!("/api/programs/{}", program.id)).await.json();
    assert_eq!(one, program);
    assert_eq!(get(elsewhere, &format!("/api/programs/{}", "0".repeat(64))).await.status, 404);

    // What a job of it would take, before it is submitted: the program's plan, the savepoint's
    // size, and that these masters have no worker to place it on.
    let savepoint = TestDir::new("http-programs-savepoint");
    std::fs::write(savepoint.path().join("state"), vec![0u8; 3000]).unwrap();
    let ask = serde_json::json!({
        "name": "fake-job", "parallelism": 1, "program": program.id,
        "restore_from": savepoint.path().display().to_string(),
    });
    let preview: tethys_control::http::api::JobPreview = post(at, "/api/jobs/preview", &ask.to_string()).await.json();
    assert_eq!((preview.slots, preview.tasks[0].operators.as_slice()), (1, ["Source: nothing".to_string()].as_slice()));
    assert_eq!((preview.state_bytes, preview.memory_bytes), (Some(3000), 3000));
    assert!(!preview.fits && preview.problem.as_deref().is_some_and(|problem| problem.contains("slot")), "{preview:?}");
    let bad = post(at, "/api/jobs/preview", &serde_json::json!({ "name": "count", "args": [], "parallelism": 1 }).to_string()).await;
    assert!(bad.status == 400 && bad.body.contains("count takes 1 argument"), "{}", bad.body);

    // A job of it is checked by the program itself; while it has not ended the program stays.
    let job = serde_json::json!({ "name": "fake-job", "parallelism": 1, "program": program.id }).to_string();
    let submitted = post(at, "/api/jobs", &job).await;
    assert_eq!(submitted.status, 201, "{}", submitted.body);
    let job_id = submitted.json::<Submitted>().job;
    let shown: JobView = get(elsewhere, &format!("/api/jobs/{job_id}")).await.json();
    assert_eq!(shown.program.as_deref(), Some(program.id.as_str()));
    let unknown = serde_json::json!({ "name": "fake-job", "parallelism": 1, "program": "f".repeat(64) }).to_string();
    let refused = post(at, "/api/jobs", &unknown).await;
    assert!(refused.status == 400 && refused.body.contains("was uploaded"), "{}", refused.body);
    let path = format!("/api/programs/{}", program.id);
    let in_use = request(at, "DELETE", &path, Some(SECRET), None).await;
    assert_eq!((in_use.status, in_use.error_code().as_str()), (409, "FAILED_PRECONDITION"), "{}", in_use.body);
    assert_eq!(post(at, &format!("/api/jobs/{job_id}/cancel"), "").await.status, 200);
    assert_eq!(request(at, "DELETE", &path, Some(SECRET), None).await.status, 204);
    assert_eq!(get(elsewhere, &path).await.status, 404);
    assert_eq!(std::fs::read_dir(shared.path()).unwrap().count(), 0, "its file went with it");
    assert_eq!(request(at, "DELETE", &path, Some(SECRET), None).await.status, 404);
    assert_eq!(request(at, "DELETE", "/api/programs/not-an-id", Some(SECRET), None).await.status, 400);
    cluster.stop().await;
}
