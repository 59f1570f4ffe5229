//! Jobs on a local cluster of worker processes give the results they give in one process; a
//! killed worker fails its attempt and the job recovers from its checkpoint with exactly-once
//! output.
//!
//! Every process runs the `tethys` binary (a job's processes run the same program): the test
//! starts `tethys run`, which coordinates and starts `tethys worker` processes. Each job is the
//! `digest` job (`tethys_bench::jobs`): a benchmark query whose every result goes, exactly once,
//! into part files as a digest of its encoding, so runs compare as multisets of results.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::digests;

/// A directory of this test process, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tethys-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tethys() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tethys"))
}

/// Runs `query` as the digest job on `workers` workers (0: in one process) at `parallelism`
/// and returns its digests and the job's result line.
fn run_digest(name: &str, query: &str, events: u64, workers: usize, parallelism: usize) -> (Vec<u64>, String) {
    let dir = TempDir::new(&format!("{name}-{query}-w{workers}"));
    let topic = dir.0.join("digests");
    let output = tethys()
        .args(["run", "--workers", &workers.to_string(), "--parallelism", &parallelism.to_string(), "--slots", "2", "digest"])
        .arg(&topic)
        .args([query, &events.to_string(), "7", "split"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{query} on {workers} workers failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    (digests(&topic), stdout)
}

/// Each query (DataStream and SQL) at a parallelism where its results do not depend on how its
/// inputs interleave:
/// the rolling aggregate emits every intermediate result, so it reads from one source subtask.
#[test]
fn queries_on_two_and_three_workers_give_the_results_of_one_process() {
    let queries = [
        ("passthrough", 20_000, 2),
        ("filter", 20_000, 2),
        ("window", 30_000, 2),
        ("agg", 20_000, 1),
        ("q5", 30_000, 2),
        ("q8", 30_000, 2),
        // SQL jobs: every process rebuilds the job from the query's text.
        ("sql-q0", 20_000, 2),
        ("sql-q5", 30_000, 2),
        ("sql-q7", 30_000, 2),
    ];
    for (query, events, parallelism) in queries {
        let (reference, _) = run_digest("same", query, events, 0, parallelism);
        assert!(!reference.is_empty(), "{query} has results");
        for workers in [2, 3] {
            let (digests, stdout) = run_digest("same", query, events, workers, parallelism);
            assert_eq!(digests.len(), reference.len(), "{query} on {workers} workers: {stdout}");
            assert!(digests == reference, "{query} on {workers} workers: other results than in one process");
        }
    }
}

#[test]
fn a_killed_worker_fails_its_attempt_and_the_job_recovers_exactly_once() {
    let dir = TempDir::new("kill");
    let topic = dir.0.join("digests");
    let checkpoints = dir.0.join("checkpoints");
    let events: u64 = 2_000_000;
    let mut child = tethys()
        .args(["run", "--workers", "3", "--parallelism", "3", "--slots", "1", "--restarts", "3", "--checkpoint-interval-ms", "50"])
        .arg("--checkpoint-dir")
        .arg(&checkpoints)
        .arg("digest")
        .arg(&topic)
        .args(["window", &events.to_string(), "11"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    // Once a checkpoint is complete, worker 2 is killed; its pid is the second line of output.
    let deadline = Instant::now() + Duration::from_secs(120);
    let completed = || {
        std::fs::read_dir(&checkpoints)
            .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("chk-")))
            .unwrap_or(false)
    };
    while !completed() {
        assert!(Instant::now() < deadline, "no checkpoint completed in time");
        assert!(child.try_wait().unwrap().is_none(), "the job ended before its first checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    let pids = workers_pids(&child);
    let status = Command::new("kill").args(["-9", &pids[1].to_string()]).status().unwrap();
    assert!(status.success(), "kill worker 2");
    let status = child.wait().unwrap();
    let stdout = lines.join().unwrap();
    assert!(status.success(), "the job did not recover: {stdout}");
    let result: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(result["restarts"].as_u64().unwrap() >= 1, "{stdout}");
    // Exactly once: the committed digests are those of a run in one process, each once.
    let reference = {
        let dir = TempDir::new("kill-reference");
        let reference_topic = dir.0.join("digests");
        let output = tethys()
            .args(["run", "--parallelism", "3", "--slots", "2", "digest"])
            .arg(&reference_topic)
            .args(["window", &events.to_string(), "11"])
            .output()
            .unwrap();
        assert!(output.status.success());
        digests(&reference_topic)
    };
    let recovered = digests(&topic);
    assert_eq!(recovered.len(), reference.len(), "as many results as without failure");
    assert!(recovered == reference, "the recovered job's results differ from a run without failure");
}

/// The worker process ids `tethys run` printed, by node: read from /proc (the children of `run`).
fn workers_pids(run: &std::process::Child) -> Vec<u32> {
    let children = std::fs::read_to_string(format!("/proc/{}/task/{}/children", run.id(), run.id())).unwrap();
    let mut pids: Vec<u32> = children.split_whitespace().map(|pid| pid.parse().unwrap()).collect();
    pids.sort_unstable();
    pids
}

/// With TLS switched on (every node given a certificate of the cluster's CA), the cluster runs
/// the job to the results of one process.
#[test]
fn a_cluster_with_tls_gives_the_results_of_one_process() {
    let certificates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../net/tests/tls");
    let dir = TempDir::new("tls");
    let out = dir.0.join("digests");
    let output = tethys()
        .args(["run", "--workers", "2", "--slots", "1", "--tls-cert"])
        .arg(certificates.join("node.pem"))
        .arg("--tls-key")
        .arg(certificates.join("node.key"))
        .arg("--tls-ca")
        .arg(certificates.join("ca.pem"))
        .arg("digest")
        .arg(&out)
        .args(["filter", "20000", "7", "split"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tls=true"), "the workers run with TLS: {stderr}");
    let (reference, _) = run_digest("tls", "filter", 20_000, 0, 1);
    assert!(digests(&out) == reference, "the results over TLS differ from one process's");
}
