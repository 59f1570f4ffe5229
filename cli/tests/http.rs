//! `tethys master --http` and `tethys worker --masters ... --http`: each prints where it serves
//! HTTP after its `listening` line; the master answers the JSON API and both answer `/metrics`,
//! with the cluster secret only; a job's checkpoints with their subtasks' parts, and the
//! worker's log searched through the master.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use tethys_storage::test_dir::TestDir;

const SECRET: &str = "http-cli-test-secret-0123";
const WAIT: Duration = Duration::from_secs(20);

/// A process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tethys(args: &[&str]) -> (Process, BufReader<ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tethys"))
        .env("TETHYS_CLUSTER_SECRET", SECRET)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    (Process(child), stdout)
}

/// The address after `prefix` on the next line of `stdout`.
fn announced(stdout: &mut BufReader<ChildStdout>, prefix: &str) -> String {
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    line.trim().strip_prefix(prefix).unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}")).to_string()
}

/// `GET path` at `addr` with the bearer `token`: the status and the body.
fn get(addr: &str, path: &str, token: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// `POST path` at `addr` with the bearer `token` and a JSON `body`: the status and the body.
fn post(addr: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// `GET path` at `addr` until `done` holds for the body.
fn wait_for(addr: &str, path: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = get(addr, path, SECRET);
        if status == 200 && done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "GET {path} at {addr} never got there: {status} {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_master_and_a_worker_serve_http_where_they_say() {
    let dir = TestDir::new("http-cli");
    let master_dir = dir.path().join("master");
    let master_dir = master_dir.to_str().unwrap();
    let (mut master, mut out) = tethys(&[
        "master",
        "--id",
        "0",
        "--members-from-stdin",
        "--bootstrap",
        "--http",
        "127.0.0.1:0",
        "--log",
        "warn",
        "--dir",
        master_dir,
    ]);
    let grpc = announced(&mut out, "listening ");
    let http = announced(&mut out, "http ");
    writeln!(master.0.stdin.take().unwrap(), "0={grpc}").unwrap();

    let (status, body) = get(&http, "/api/cluster", "wrong");
    assert_eq!(status, 401, "{body}");
    let cluster = wait_for(&http, "/api/cluster", |body| body.contains("\"leader\":0"));
    let cluster: serde_json::Value = serde_json::from_str(&cluster).unwrap();
    assert_eq!(cluster["leader_addr"], grpc.as_str());

    let (_worker, mut worker_out) = tethys(&["worker", "--masters", &grpc, "--slots", "2", "--http", "127.0.0.1:0", "--log", "warn"]);
    announced(&mut worker_out, "listening ");
    let worker_http = announced(&mut worker_out, "http ");
    let metrics = wait_for(&worker_http, "/metrics", |body| body.contains("tethys_worker_id 0"));
    assert!(metrics.contains("tethys_worker_slots 2"), "{metrics}");
    let metrics = wait_for(&http, "/metrics", |body| body.contains("tethys_workers_alive 1"));
    assert!(metrics.contains("tethys_is_leader 1") && metrics.contains("tethys_slots_total 2"), "{metrics}");
    assert_eq!(get(&worker_http, "/metrics", "wrong").0, 401);

    // A checkpointing job: each checkpoint's subtasks' parts, for the console's timeline.
    let submit = r#"{"name": "bench", "args": ["window", "1000000000000", "42", "sources=1", "rate=20000"], "parallelism": 2, "checkpoint_interval_ms": 200}"#;
    let (status, body) = post(&http, "/api/jobs", SECRET, submit);
    assert_eq!(status, 201, "{body}");
    let job = serde_json::from_str::<serde_json::Value>(&body).unwrap()["job"].as_u64().unwrap();
    let live = wait_for(&http, &format!("/api/jobs/{job}/live"), |body| body.contains("\"checkpoints\":[{"));
    let live: serde_json::Value = serde_json::from_str(&live).unwrap();
    let checkpoint = live["checkpoints"].as_array().unwrap().last().unwrap().clone();
    let id = checkpoint["id"].as_u64().unwrap();
    let (status, body) = get(&http, &format!("/api/jobs/{job}/checkpoints/{id}"), SECRET);
    assert_eq!(status, 200, "{body}");
    let details: serde_json::Value = serde_json::from_str(&body).unwrap();
    let parts = details["subtasks"].as_array().unwrap();
    let tasks = live["tasks"].as_array().unwrap();
    let subtasks: u64 = tasks.iter().map(|task| task["parallelism"].as_u64().unwrap()).sum();
    assert_eq!(parts.len() as u64, subtasks, "every subtask took its part: {body}");
    assert_eq!(details["checkpoint"]["subtasks"].as_u64(), Some(subtasks));
    for part in parts {
        let (acked, sync) = (part["acknowledged_ms"].as_f64().unwrap(), part["sync_ms"].as_f64().unwrap());
        assert!(sync >= 0.0 && acked >= sync, "acknowledged after its snapshot: {part}");
        assert!(part["task"].as_u64().unwrap() < tasks.len() as u64, "{part}");
    }
    assert!(
        checkpoint["duration_ms"].as_f64().unwrap() + 1.0
            >= parts.iter().map(|p| p["acknowledged_ms"].as_f64().unwrap()).fold(0.0, f64::max)
    );
    let (status, body) = get(&http, &format!("/api/jobs/{job}/checkpoints/999999"), SECRET);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("checkpoint 999999"), "{body}");
    assert_eq!(get(&http, &format!("/api/jobs/{job}/checkpoints/x"), SECRET).0, 400);
    assert_eq!(get(&http, &format!("/api/jobs/{job}/checkpoints/{id}"), "wrong").0, 401);

    // The worker process keeps its log: the masters fetch it, searched.
    let logs = wait_for(&http, "/api/workers/0/logs?q=attempt%20started", |body| body.contains(&format!("job={job}")));
    let logs: serde_json::Value = serde_json::from_str(&logs).unwrap();
    assert_eq!(logs["kept"], true);
    assert!(logs["lines"].as_array().unwrap().iter().all(|line| line["message"].as_str().unwrap().contains("attempt started")), "{logs}");

    // A SQL job's live results: its sink's sampled rows, over HTTP and on the command line.
    let (status, body) = post(&http, &format!("/api/jobs/{job}/cancel"), SECRET, "");
    assert_eq!(status, 200, "{body}");
    let script = "CREATE TABLE gen (k BIGINT, price DOUBLE) WITH ('connector' = 'datagen', 'rows-per-second' = '100', \
                  'fields.k.kind' = 'sequence', 'fields.k.start' = '1', 'fields.k.end' = '100000000');
                  CREATE TABLE doubled (k BIGINT, price DOUBLE) WITH ('connector' = 'blackhole');
                  INSERT INTO doubled SELECT k, price * 2 FROM gen;";
    let submit = serde_json::json!({"name": "sql", "args": [script], "parallelism": 1}).to_string();
    let (status, body) = post(&http, "/api/jobs", SECRET, &submit);
    assert_eq!(status, 201, "{body}");
    let sql_job = serde_json::from_str::<serde_json::Value>(&body).unwrap()["job"].as_u64().unwrap();
    let output = wait_for(&http, &format!("/api/jobs/{sql_job}/output"), |body| body.contains("\"op\":\"+I\""));
    let output: serde_json::Value = serde_json::from_str(&output).unwrap();
    assert_eq!(output["sinks"][0]["sink"], "doubled", "{output}");
    let printed = Command::new(env!("CARGO_BIN_EXE_tethys"))
        .env("TETHYS_CLUSTER_SECRET", SECRET)
        .args(["output", "--job", &sql_job.to_string(), "--masters", &grpc, "--limit", "5"])
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&printed.stdout), String::from_utf8_lossy(&printed.stderr));
    assert!(printed.status.success(), "{out}{err}");
    assert!(out.starts_with("doubled (k, price): ") && out.lines().filter(|line| line.contains(" +I[")).count() == 5, "{out}");

    // Drafts on the command line: saved twice, listed, shown, compared, deleted.
    let drafts = |args: &[&str]| {
        let output =
            Command::new(env!("CARGO_BIN_EXE_tethys")).env("TETHYS_CLUSTER_SECRET", SECRET).arg("drafts").args(args).output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let script = dir.path().join("draft.sql");
    std::fs::write(&script, "SELECT a\nFROM t;\n").unwrap();
    let (ok, out, err) = drafts(&["save", "--masters", &grpc, "my draft", script.to_str().unwrap(), "--note", "first"]);
    assert!(ok && out.contains("saved my draft as version 1"), "{out}{err}");
    std::fs::write(&script, "SELECT a, b\nFROM t;\n").unwrap();
    let (ok, out, err) = drafts(&["save", "--masters", &grpc, "my draft", script.to_str().unwrap()]);
    assert!(ok && out.contains("version 2"), "{out}{err}");
    let (ok, out, _) = drafts(&["list", "--masters", &grpc]);
    assert!(ok && out.contains("my draft") && out.contains("v1") && out.contains("first") && out.contains("v2"), "{out}");
    let (ok, out, _) = drafts(&["show", "--masters", &grpc, "my draft", "--version", "1"]);
    assert!(ok && out == "SELECT a\nFROM t;\n", "{out:?}");
    let (ok, out, _) = drafts(&["diff", "--masters", &grpc, "my draft", "--from", "1"]);
    assert!(ok && out.contains("- SELECT a\n") && out.contains("+ SELECT a, b\n") && out.contains("  FROM t;"), "{out}");
    let (ok, out, _) = drafts(&["delete", "--masters", &grpc, "my draft"]);
    assert!(ok && out.contains("deleted my draft"), "{out}");
    let (ok, _, err) = drafts(&["show", "--masters", &grpc, "my draft"]);
    assert!(!ok && err.contains("no draft named my draft"), "{err}");
}
