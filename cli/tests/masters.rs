//! Three `tethys master` processes on 127.0.0.1 form a group, as a user starts them; `tethys
//! cluster` shows the leader and its term; the leader killed (SIGKILL), the other two elect a new
//! one in a later term; the killed master, restarted on its directory, rejoins.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tethys_storage::test_dir::TestDir;

const SECRET: &str = "masters-test-secret";
const WAIT: Duration = Duration::from_secs(30);

fn tethys() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tethys"));
    command.env("TETHYS_CLUSTER_SECRET", SECRET);
    command
}

/// Master processes, killed when dropped.
struct Masters {
    dirs: Vec<TestDir>,
    addrs: Vec<String>,
    processes: Vec<Option<Child>>,
}

impl Drop for Masters {
    fn drop(&mut self) {
        for child in self.processes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn members_line(addrs: &[String]) -> String {
    addrs.iter().enumerate().map(|(id, addr)| format!("{id}={addr}")).collect::<Vec<_>>().join(",")
}

impl Masters {
    /// Starts three masters on free ports; master 0 forms the group.
    fn start() -> Masters {
        let dirs: Vec<TestDir> = (0..3).map(|_| TestDir::new("master-process")).collect();
        let mut children = Vec::new();
        let mut addrs = Vec::new();
        for (id, dir) in dirs.iter().enumerate() {
            let mut command = tethys();
            command.args(["master", "--id", &id.to_string(), "--members-from-stdin", "--log", "warn", "--dir"]).arg(dir.path());
            if id == 0 {
                command.arg("--bootstrap");
            }
            let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("start a master");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            addrs.push(line.trim().strip_prefix("listening ").expect("a master prints where it listens").to_string());
            children.push(child);
        }
        let members = members_line(&addrs);
        for child in &mut children {
            writeln!(child.stdin.take().unwrap(), "{members}").unwrap();
        }
        Masters { dirs, addrs, processes: children.into_iter().map(Some).collect() }
    }

    /// Restarts master `id` on its directory and address.
    fn restart(&mut self, id: usize) {
        let child = tethys()
            .args([
                "master",
                "--id",
                &id.to_string(),
                "--listen",
                &self.addrs[id],
                "--members",
                &members_line(&self.addrs),
                "--log",
                "warn",
                "--dir",
            ])
            .arg(self.dirs[id].path())
            .stdout(Stdio::null())
            .spawn()
            .expect("restart a master");
        self.processes[id] = Some(child);
    }

    fn kill(&mut self, id: usize) {
        let mut child = self.processes[id].take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
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
    let all: Vec<&String> = masters.addrs.iter().collect();
    let first = masters.cluster(&all);
    assert_eq!(first["masters"].as_array().unwrap().len(), 3);
    let leader = first["leader"].as_u64().unwrap() as usize;
    assert_eq!(first["leader_addr"].as_str().unwrap(), masters.addrs[leader]);
    let term = first["term"].as_u64().unwrap();

    masters.kill(leader);
    let survivors: Vec<String> = (0..3).filter(|id| *id != leader).map(|id| masters.addrs[id].clone()).collect();
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

    masters.restart(leader);
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = masters.cluster(&[&masters.addrs[leader]]);
        if reply["answered_by"].as_u64() == Some(leader as u64) && reply["leader"].as_u64() == Some(new_leader) {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted master did not rejoin: {reply}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The text form names the leader and every master.
    let text = tethys().args(["cluster", "--masters", &masters.addrs[0]]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("leader: master {new_leader} at")), "{text}");
    assert!(text.matches("127.0.0.1:").count() >= 3, "{text}");

    // Without the secret, nothing.
    let refused = Command::new(env!("CARGO_BIN_EXE_tethys"))
        .env("TETHYS_CLUSTER_SECRET", "wrong")
        .args(["cluster", "--masters", &masters.addrs[0]])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cluster secret"), "{}", String::from_utf8_lossy(&refused.stderr));
}
