//! Three `tethys master` processes on 127.0.0.1 form a group, as a user starts them; `tethys
//! cluster` shows the leader and its term; the leader killed (SIGKILL), the other two elect a new
//! one in a later term; the killed master, restarted on its directory, rejoins.

use std::process::Command;
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
