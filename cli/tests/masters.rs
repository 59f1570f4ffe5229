//! Three `tethys master` processes on 127.0.0.1 form a group, as a user starts them; `tethys
//! cluster` shows the leader and its term; the leader killed (SIGKILL), the other two elect a new
//! one in a later term; the killed master, restarted on its directory, rejoins. A master and a
//! worker with `--tls-cert/--tls-key/--tls-ca` run a job over mutual TLS, and answer only a client
//! with a certificate of their CA.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tethys_control::launcher::LocalMasters;
use tethys_storage::test_dir::TestDir;

const SECRET: &str = "masters-test-secret";
const WAIT: Duration = Duration::from_secs(30);

fn tethys() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tethys"));
    command.env("TETHYS_CLUSTER_SECRET", SECRET);
    command
}

/// The master processes and the directory that holds theirs.
struct Masters {
    group: LocalMasters,
    _root: TestDir,
}

impl Masters {
    fn start() -> Masters {
        let root = TestDir::new("master-processes");
        let group =
            LocalMasters::start(std::path::Path::new(env!("CARGO_BIN_EXE_tethys")), 3, SECRET, root.path()).expect("start three masters");
        Masters { group, _root: root }
    }

    /// `tethys cluster --json` asked of `masters` (addresses), once it names a leader.
    fn cluster(&self, masters: &[&String]) -> serde_json::Value {
        let list = masters.iter().map(|addr| addr.as_str()).collect::<Vec<_>>().join(",");
        let deadline = Instant::now() + WAIT;
        loop {
            let output = tethys().args(["cluster", "--json", "--masters", &list]).output().unwrap();
            if output.status.success() {
                let reply: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
                if !reply["leader"].is_null() {
                    return reply;
                }
            }
            assert!(Instant::now() < deadline, "no leader named within {WAIT:?}: {}", String::from_utf8_lossy(&output.stderr));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn master_processes_elect_fail_over_and_rejoin() {
    let mut masters = Masters::start();
    let addrs: Vec<String> = masters.group.addrs().to_vec();
    let all: Vec<&String> = addrs.iter().collect();
    let first = masters.cluster(&all);
    assert_eq!(first["masters"].as_array().unwrap().len(), 3);
    let leader = first["leader"].as_u64().unwrap() as usize;
    assert_eq!(first["leader_addr"].as_str().unwrap(), addrs[leader]);
    let term = first["term"].as_u64().unwrap();

    masters.group.kill(leader).unwrap();
    let survivors: Vec<String> = (0..3).filter(|id| *id != leader).map(|id| addrs[id].clone()).collect();
    let deadline = Instant::now() + WAIT;
    let second = loop {
        let reply = masters.cluster(&survivors.iter().collect::<Vec<_>>());
        if reply["leader"].as_u64() != Some(leader as u64) {
            break reply;
        }
        assert!(Instant::now() < deadline, "the dead leader was not replaced");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(second["term"].as_u64().unwrap() > term, "the new leader is in a later term: {second}");
    let new_leader = second["leader"].as_u64().unwrap();

    masters.group.restart(leader).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = masters.cluster(&[&addrs[leader]]);
        if reply["answered_by"].as_u64() == Some(leader as u64) && reply["leader"].as_u64() == Some(new_leader) {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted master did not rejoin: {reply}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The text form names the leader and every master.
    let text = tethys().args(["cluster", "--masters", &addrs[0]]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("leader: master {new_leader} at")), "{text}");
    assert!(text.matches("127.0.0.1:").count() >= 3, "{text}");

    // Jobs: checked by the masters (a job this program defines, with arguments it accepts),
    // listed and cancelled from any master.
    let masters_list = addrs.join(",");
    let unknown = tethys().args(["submit", "--masters", &masters_list, "nosuchjob"]).output().unwrap();
    assert!(!unknown.status.success());
    let unknown = String::from_utf8_lossy(&unknown.stderr);
    assert!(unknown.contains("nosuchjob"), "the refusal names the job: {unknown}");
    let submitted = tethys()
        .args(["submit", "--json", "--masters", &masters_list, "--parallelism", "2", "bench", "filter", "1000", "7"])
        .output()
        .unwrap();
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    let job = serde_json::from_slice::<serde_json::Value>(&submitted.stdout).unwrap()["job"].as_u64().unwrap();
    let listed = tethys().args(["list", "--json", "--masters", &addrs[leader]]).output().unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["id"].as_u64(), Some(job));
    assert_eq!(listed[0]["status"], "created");
    assert_eq!(listed[0]["parallelism"], 2);
    let cancelled = tethys().args(["cancel", "--masters", &masters_list, &job.to_string()]).output().unwrap();
    assert!(String::from_utf8_lossy(&cancelled.stdout).contains("cancelled"), "{}", String::from_utf8_lossy(&cancelled.stdout));

    // Without the secret, nothing.
    let refused = Command::new(env!("CARGO_BIN_EXE_tethys"))
        .env("TETHYS_CLUSTER_SECRET", "wrong")
        .args(["cluster", "--masters", &addrs[0]])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cluster secret"), "{}", String::from_utf8_lossy(&refused.stderr));
}

/// A process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tethys <args>` started, with the address it printed after `listening `.
fn start(args: &[&str], tls: &[String]) -> (Process, String) {
    let mut child = tethys().args(args).args(tls).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("{line:?} is not where it listens")).to_string();
    (Process(child), addr)
}

/// The TLS options of a process with the certificate `chain` and its `key`, trusting `ca`.
fn tls_args(chain: &str, key: &str, ca: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../net/tests/tls");
    let file = |name: &str| -> String { dir.join(name).display().to_string() };
    ["--tls-cert".to_string(), file(chain), "--tls-key".to_string(), file(key), "--tls-ca".to_string(), file(ca)].into()
}

#[test]
fn a_master_and_a_worker_with_tls_answer_only_clients_with_a_certificate() {
    let root = TestDir::new("masters-tls");
    let dir: PathBuf = root.path().join("master");
    let member = tls_args("node.pem", "node.key", "ca.pem");
    let (mut master, addr) =
        start(&["master", "--id", "0", "--members-from-stdin", "--bootstrap", "--log", "warn", "--dir", dir.to_str().unwrap()], &member);
    writeln!(master.0.stdin.take().unwrap(), "0={addr}").unwrap();
    let cluster = |tls: &[String]| tethys().args(["cluster", "--json", "--masters", &addr]).args(tls).output().unwrap();
    // `tethys cluster` with the cluster's certificate until its answer passes `done`.
    let wait_for = |what: &str, done: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + WAIT;
        loop {
            let output = cluster(&member);
            if output.status.success() && done(&serde_json::from_slice(&output.stdout).unwrap()) {
                return;
            }
            assert!(Instant::now() < deadline, "{what} over TLS: {}", String::from_utf8_lossy(&output.stderr));
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // With the cluster's certificate: a leader, and a worker registered over TLS.
    wait_for("no leader", &|reply| reply["leader"] == 0);
    let (_worker, _) = start(&["worker", "--masters", &addr, "--slots", "1", "--log", "warn"], &member);
    wait_for("the worker did not register", &|reply| {
        reply["workers"].as_array().is_some_and(|workers| workers.len() == 1 && workers[0]["alive"] == true)
    });

    // Without a certificate, with a stranger's, or with half the options: nothing.
    for (what, tls) in [("no TLS", Vec::new()), ("a stranger's certificate", tls_args("stranger.pem", "stranger.key", "ca.pem"))] {
        let refused = cluster(&tls);
        assert!(!refused.status.success(), "{what}: {}", String::from_utf8_lossy(&refused.stdout));
        assert!(refused.stdout.is_empty(), "{what}: {}", String::from_utf8_lossy(&refused.stdout));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(&addr) && !stderr.contains("cluster secret"), "{what}: refused at the connection: {stderr}");
    }
    let half = cluster(&member[..2]);
    assert!(!half.status.success() && half.stdout.is_empty());
    assert!(String::from_utf8_lossy(&half.stderr).contains("--tls-key"), "{}", String::from_utf8_lossy(&half.stderr));

    // A job runs: the leader drives the worker over TLS (its gRPC API and the data plane).
    let submitted = tethys()
        .args(["submit", "--json", "--masters", &addr, "--parallelism", "1", "bench", "filter", "5000", "7"])
        .args(&member)
        .output()
        .unwrap();
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    let job = serde_json::from_slice::<serde_json::Value>(&submitted.stdout).unwrap()["job"].as_u64().unwrap().to_string();
    let deadline = Instant::now() + WAIT;
    loop {
        let output = tethys().args(["status", "--json", "--masters", &addr, &job]).args(&member).output().unwrap();
        let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
        if info["status"] == "finished" {
            break;
        }
        assert!(info["status"] != "failed" && info["status"] != "cancelled", "the job ended {info}");
        assert!(Instant::now() < deadline, "the job did not finish over TLS: {info} {}", String::from_utf8_lossy(&output.stderr));
        std::thread::sleep(Duration::from_millis(100));
    }
}
