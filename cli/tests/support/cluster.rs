//! A cluster under the masters for the tests of the binary: `tethys master` processes (through the
//! control crate's launcher) and `tethys worker --masters` processes on 127.0.0.1, and the
//! command-line calls the tests make of them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tethys_control::launcher::LocalMasters;
use tethys_storage::test_dir::TestDir;

pub const SECRET: &str = "jobs-test-secret";
pub const WAIT: Duration = Duration::from_secs(120);

pub fn tethys() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tethys"));
    command.env("TETHYS_CLUSTER_SECRET", SECRET);
    command
}

/// Worker processes with their control addresses, killed when dropped; those of a cluster keep
/// the uploaded programs they run in a directory of that cluster's.
pub struct Workers(pub Vec<Child>, pub Vec<String>, pub Option<PathBuf>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn start_workers(masters: &str, count: usize) -> Workers {
    let mut workers = Workers(Vec::new(), Vec::new(), None);
    add_workers(&mut workers, masters, count);
    workers
}

pub fn add_workers(workers: &mut Workers, masters: &str, count: usize) {
    for _ in 0..count {
        let mut command = tethys();
        command.args(["worker", "--masters", masters, "--slots", "2", "--log", "warn"]);
        if let Some(dir) = &workers.2 {
            command.arg("--program-dir").arg(dir);
        }
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("listening "), "{line}");
        workers.0.push(child);
        workers.1.push(line.trim().trim_start_matches("listening ").to_string());
    }
}

pub fn json(command: &mut Command) -> serde_json::Value {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{:?}: {}", command, String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Waits until job `job` has `status`, failing on an unexpected end; its last answer.
pub fn wait_status(masters: &str, job: u64, status: &str) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let output = tethys().args(["status", "--json", "--masters", masters, &job.to_string()]).output().unwrap();
        if output.status.success() {
            let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            if info["status"] == status {
                return info;
            }
            assert!(info["status"] != "failed" && info["status"] != "cancelled", "job {job} ended {info}");
        }
        assert!(Instant::now() < deadline, "job {job} did not become {status} within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Three masters under a fresh directory and `workers` workers, registered.
pub fn start_cluster(name: &str, workers: usize) -> (TestDir, LocalMasters, String, Workers) {
    let root = TestDir::new(name);
    let group = LocalMasters::start(Path::new(env!("CARGO_BIN_EXE_tethys")), 3, SECRET, root.path()).unwrap();
    let masters = group.addrs().join(",");
    let mut started = Workers(Vec::new(), Vec::new(), Some(root.path().join("worker-programs")));
    add_workers(&mut started, &masters, workers);
    wait_workers(&masters, workers);
    (root, group, masters, started)
}

pub fn wait_workers(masters: &str, alive: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        // A master still starting (on a loaded machine) may not answer in time: asked again.
        let output = tethys().args(["cluster", "--json", "--masters", masters]).output().unwrap();
        let reply: serde_json::Value =
            if output.status.success() { serde_json::from_slice(&output.stdout).unwrap() } else { serde_json::Value::Null };
        let count = reply["workers"].as_array().map_or(0, |workers| workers.iter().filter(|worker| worker["alive"] == true).count());
        if count == alive && !reply["leader"].is_null() {
            return;
        }
        assert!(Instant::now() < deadline, "{alive} workers did not register: {reply} {}", String::from_utf8_lossy(&output.stderr));
        std::thread::sleep(Duration::from_millis(50));
    }
}
