//! Jobs deployed by the masters: three `tethys master` processes and two `tethys worker --masters`
//! processes on 127.0.0.1; a job submitted with `tethys submit` runs on the workers, driven by the
//! leader, and commits exactly the results it commits in one process. The leader killed while a
//! job runs (also while a checkpoint waits for the masters' commit), the new leader adopts the
//! running attempt (no restart), and the committed results are still exactly those of one process.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::cluster::{add_workers, json, start_cluster, start_workers, tethys, wait_status, wait_workers, SECRET, WAIT};
use support::digests;

use tethys_control::launcher::LocalMasters;
use tethys_storage::test_dir::TestDir;

/// The digests of `query` run in one process.
fn one_process(root: &Path, query: &str, events: &str) -> Vec<u64> {
    let dir = root.join("one-process");
    let output = tethys()
        .args(["run", "--parallelism", "2", "--slots", "2", "digest"])
        .arg(&dir)
        .args([query, events, "7", "split"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    digests(&dir)
}

#[test]
fn a_submitted_job_runs_on_the_workers_and_survives_its_leader() {
    let (root, mut group, masters, _workers) = start_cluster("jobs", 2);

    // A job to its end.
    let first_dir = root.path().join("first");
    let submitted = json(
        tethys()
            .args(["submit", "--json", "--masters", &masters, "--parallelism", "2", "--checkpoint-interval-ms", "100", "digest"])
            .arg(&first_dir)
            .args(["window", "200000", "7", "split"]),
    );
    let first = submitted["job"].as_u64().unwrap();
    let info = wait_status(&masters, first, "finished");
    assert_eq!(info["attempt"], 1, "{info}");
    assert!(info["checkpoints_completed"].as_u64().unwrap() > 0, "checkpoints complete through the masters: {info}");
    let expected = one_process(root.path(), "window", "200000");
    assert!(!expected.is_empty());
    assert_eq!(digests(&first_dir), expected, "the job on the workers commits what it commits in one process");

    // The leader killed while a longer job runs: the new leader adopts the running attempt
    // (nothing restarts), and what is committed is still exactly once.
    let second_dir = root.path().join("second");
    let submitted = json(
        tethys()
            .args(["submit", "--json", "--masters", &masters, "--parallelism", "2", "--checkpoint-interval-ms", "50", "digest"])
            .arg(&second_dir)
            .args(["window", "3000000", "7", "split"]),
    );
    let second = submitted["job"].as_u64().unwrap();
    // Killed once the masters committed a checkpoint of it.
    let deadline = Instant::now() + WAIT;
    while wait_status(&masters, second, "running")["last_checkpoint"].as_u64() == Some(0) {
        assert!(Instant::now() < deadline, "no checkpoint of the job was committed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let leader = json(tethys().args(["cluster", "--json", "--masters", &masters]))["leader"].as_u64().unwrap() as usize;
    group.kill(leader).unwrap();
    finished_adopted_exactly_once(&others(&group, leader), second, &second_dir, &root.path().join("expected-second"));
}

/// The masters of `group` but `leader`, as a `--masters` list.
fn others(group: &LocalMasters, leader: usize) -> String {
    let others: Vec<&str> = group.addrs().iter().enumerate().filter(|(id, _)| *id != leader).map(|(_, addr)| addr.as_str()).collect();
    others.join(",")
}

/// Waits until the long job `job` (`submit_long_job`) finished, checks that it ran one attempt,
/// adopted once by a new leader, and that its output in `dir` is what one process (run in
/// `expected`) commits.
fn finished_adopted_exactly_once(masters: &str, job: u64, dir: &Path, expected: &Path) {
    let info = wait_status(masters, job, "finished");
    assert_eq!((info["attempt"].as_u64(), info["adoptions"].as_u64()), (Some(1), Some(1)), "adopted, not restarted: {info}");
    std::fs::create_dir_all(expected).unwrap();
    assert_eq!(digests(dir), one_process(expected, "window", "3000000"), "exactly once across the leader's end");
}

#[test]
fn tethys_up_runs_an_example_job_through_the_masters_api() {
    let output = tethys().args(["up", "--workers", "2", "bench", "filter", "200000", "3"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("leader: master 0"), "{stdout}");
    assert!(stdout.contains("workers: 2"), "{stdout}");
    assert!(stdout.contains("submitted job 0"), "{stdout}");
    assert!(stdout.contains("job 0 finished"), "{stdout}");
}

/// Submits the long digest job (checkpoints every 50 ms) writing to `dir`; its id.
fn submit_long_job(masters: &str, dir: &Path) -> u64 {
    let submitted = json(
        tethys()
            .args(["submit", "--json", "--masters", masters, "--parallelism", "2", "--checkpoint-interval-ms", "50", "digest"])
            .arg(dir)
            .args(["window", "3000000", "7", "split"]),
    );
    submitted["job"].as_u64().unwrap()
}

/// Waits until the masters committed a checkpoint of running job `job`; its status then.
fn wait_checkpointed(masters: &str, job: u64) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let info = wait_status(masters, job, "running");
        if info["last_checkpoint"].as_u64() != Some(0) {
            return info;
        }
        assert!(Instant::now() < deadline, "no checkpoint of the job was committed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_worker_killed_under_the_masters_has_its_job_restart_on_the_others() {
    let (root, _group, masters, mut workers) = start_cluster("jobs-worker-killed", 3);
    let dir = root.path().join("out");
    let job = submit_long_job(&masters, &dir);
    let info = wait_checkpointed(&masters, job);

    // One worker the job runs on dies: the masters declare it lost, and the job restarts from its
    // checkpoint on the workers left.
    let cluster = json(tethys().args(["cluster", "--json", "--masters", &masters]));
    let victim_id = info["placements"][0]["worker"].as_u64().unwrap();
    let victim_addr = cluster["workers"].as_array().unwrap().iter().find(|w| w["id"].as_u64() == Some(victim_id)).unwrap()["control_addr"]
        .as_str()
        .unwrap()
        .to_string();
    let victim = workers.1.iter().position(|addr| *addr == victim_addr).expect("the worker is one of ours");
    workers.0[victim].kill().unwrap();
    workers.0[victim].wait().unwrap();
    let info = wait_status(&masters, job, "finished");
    assert!(info["attempt"].as_u64().unwrap() >= 2, "the job ran a new attempt: {info}");
    assert!(info["placements"].as_array().unwrap().iter().all(|p| p["worker"].as_u64() != Some(victim_id)), "{info}");
    let expected = root.path().join("expected");
    std::fs::create_dir_all(&expected).unwrap();
    assert_eq!(digests(&dir), one_process(&expected, "window", "3000000"), "exactly once across the worker's death");
}

#[test]
fn a_paused_leader_is_replaced_its_job_adopted_and_it_rejoins_harmless() {
    let (root, group, masters, _workers) = start_cluster("jobs-leader-paused", 2);
    let dir = root.path().join("out");
    let job = submit_long_job(&masters, &dir);
    wait_checkpointed(&masters, job);

    // The leader stops (SIGSTOP) with its connections open: the others elect a new leader, which
    // adopts the job; the old one, continued, finds itself deposed and changes nothing.
    let leader = json(tethys().args(["cluster", "--json", "--masters", &masters]))["leader"].as_u64().unwrap() as usize;
    let pid = group.pid(leader).unwrap().to_string();
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let survivors = others(&group, leader);
    let deadline = Instant::now() + WAIT;
    loop {
        let output = tethys().args(["status", "--json", "--masters", &survivors, &job.to_string()]).output().unwrap();
        let info: Option<serde_json::Value> = output.status.success().then(|| serde_json::from_slice(&output.stdout).unwrap());
        if info.as_ref().is_some_and(|info| info["adoptions"] == 1 || info["status"] == "finished") {
            break;
        }
        assert!(Instant::now() < deadline, "the new leader did not adopt the job: {info:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    finished_adopted_exactly_once(&masters, job, &dir, &root.path().join("expected"));
}

/// Whether some subtask of the file sink writing to `dir` holds a pre-committed part (an
/// in-progress file closed at a checkpoint, not yet renamed by its commit) beside the one it
/// writes now: a checkpoint its sinks took part in and that is not committed.
fn a_checkpoint_awaits_its_commit(dir: &Path) -> bool {
    let mut in_progress: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `.part-<subtask>-<sequence>.<extension>.inprogress`
        if let Some(rest) = name.strip_prefix(".part-").filter(|_| name.ends_with(".inprogress")) {
            let subtask = rest.split('-').next().unwrap_or_default().to_string();
            *in_progress.entry(subtask).or_default() += 1;
        }
    }
    in_progress.values().any(|files| *files >= 2)
}

#[test]
fn the_leader_killed_while_a_checkpoint_waits_for_the_masters_its_job_is_adopted_exactly_once() {
    let (root, mut group, masters, _workers) = start_cluster("jobs-leader-mid-checkpoint", 2);
    let dir = root.path().join("out");
    let job = submit_long_job(&masters, &dir);
    wait_checkpointed(&masters, job);

    // The followers stop (SIGSTOP): the leader can commit nothing, so the job's next checkpoint,
    // taken by every subtask and pre-committed by the sinks, waits for the masters.
    let leader = json(tethys().args(["cluster", "--json", "--masters", &masters]))["leader"].as_u64().unwrap() as usize;
    let followers: Vec<String> = (0..3).filter(|id| *id != leader).map(|id| group.pid(id).unwrap().to_string()).collect();
    for pid in &followers {
        assert!(Command::new("kill").args(["-STOP", pid]).status().unwrap().success());
    }
    let deadline = Instant::now() + WAIT;
    while !a_checkpoint_awaits_its_commit(&dir) {
        assert!(Instant::now() < deadline, "no checkpoint came to wait for the masters");
        std::thread::sleep(Duration::from_millis(10));
    }

    // In the middle of that checkpoint the leader dies; the followers go on and elect a new one,
    // which adopts the attempt: the checkpoint that was never committed is neither lost nor
    // committed twice.
    group.kill(leader).unwrap();
    for pid in &followers {
        assert!(Command::new("kill").args(["-CONT", pid]).status().unwrap().success());
    }
    finished_adopted_exactly_once(&others(&group, leader), job, &dir, &root.path().join("expected"));
}

#[test]
fn a_worker_cut_off_from_the_masters_is_declared_lost_and_its_job_moves_to_the_others() {
    let root = TestDir::new("jobs-worker-cut-off");
    let group = LocalMasters::start(Path::new(env!("CARGO_BIN_EXE_tethys")), 3, SECRET, root.path()).unwrap();
    let masters = group.addrs().join(",");
    // The first worker reaches the masters only through fault proxies; the job starts on it and
    // on a second worker, and a third joins after.
    let proxies: Vec<tethys_chaos::ChaosProxy> =
        group.addrs().iter().map(|addr| tethys_chaos::ChaosProxy::start(addr.parse().unwrap()).unwrap()).collect();
    let proxied = proxies.iter().map(|proxy| proxy.addr().to_string()).collect::<Vec<_>>().join(",");
    let mut workers = start_workers(&proxied, 1);
    add_workers(&mut workers, &masters, 1);
    wait_workers(&masters, 2);
    let dir = root.path().join("out");
    let job = submit_long_job(&masters, &dir);
    let info = wait_checkpointed(&masters, job);
    add_workers(&mut workers, &masters, 1);
    wait_workers(&masters, 3);
    let cluster = json(tethys().args(["cluster", "--json", "--masters", &masters]));
    let cut_off = cluster["workers"].as_array().unwrap().iter().find(|w| w["control_addr"].as_str() == Some(&workers.1[0])).unwrap()["id"]
        .as_u64()
        .unwrap();
    assert!(info["placements"].as_array().unwrap().iter().any(|p| p["worker"].as_u64() == Some(cut_off)), "{info}");

    // Cut off: its heartbeats go nowhere, the masters declare it lost, and the job restarts from
    // its checkpoint on the other two.
    for proxy in &proxies {
        proxy.refuse(true);
        proxy.cut();
    }
    let info = wait_status(&masters, job, "finished");
    assert!(info["attempt"].as_u64().unwrap() >= 2, "the job ran a new attempt: {info}");
    assert!(info["placements"].as_array().unwrap().iter().all(|p| p["worker"].as_u64() != Some(cut_off)), "{info}");
    let expected = root.path().join("expected");
    std::fs::create_dir_all(&expected).unwrap();
    assert_eq!(digests(&dir), one_process(&expected, "window", "3000000"), "exactly once across the cut");

    // Reconnected, it learns it was declared lost and registers again under a new id.
    for proxy in &proxies {
        proxy.refuse(false);
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let cluster = json(tethys().args(["cluster", "--json", "--masters", &masters]));
        let records: Vec<(u64, bool)> = cluster["workers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["control_addr"].as_str() == Some(&workers.1[0]))
            .map(|w| (w["id"].as_u64().unwrap(), w["alive"] == true))
            .collect();
        if records.len() == 2
            && records.iter().any(|(id, alive)| *id == cut_off && !alive)
            && records.iter().any(|(id, alive)| *id != cut_off && *alive)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the worker did not come back: {cluster}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn savepoints_are_taken_through_any_master_and_a_job_stops_with_one() {
    let (root, group, masters, _workers) = start_cluster("jobs-savepoint", 2);
    let job = submit_long_job(&masters, &root.path().join("out"));
    wait_checkpointed(&masters, job);

    // A savepoint asked of a follower: the leader's driver takes it, the job goes on.
    let leader = json(tethys().args(["cluster", "--json", "--masters", &masters]))["leader"].as_u64().unwrap() as usize;
    let follower = group.addrs()[(leader + 1) % 3].clone();
    let taken = json(tethys().args(["savepoint", "--json", "--masters", &follower, &job.to_string()]));
    let path = taken["path"].as_str().unwrap().to_string();
    assert!(Path::new(&path).join("MANIFEST").is_file() || Path::new(&path).is_dir(), "the savepoint is on disk: {taken}");
    assert_eq!(taken["job"]["status"], "running", "{taken}");
    assert_eq!(taken["job"]["last_savepoint"], path.as_str(), "{taken}");

    // Stop with a savepoint: a newer one, and the job ends finished.
    let stopped = json(tethys().args(["savepoint", "--json", "--stop", "--masters", &masters, &job.to_string()]));
    let last = stopped["path"].as_str().unwrap().to_string();
    assert_ne!(last, path);
    assert!(Path::new(&last).is_dir(), "{stopped}");
    let info = wait_status(&masters, job, "finished");
    assert_eq!(info["last_savepoint"], last.as_str(), "{info}");

    // A job that does not run takes no savepoint, and says so.
    let refused = tethys().args(["savepoint", "--masters", &masters, &job.to_string()]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not running"), "{}", String::from_utf8_lossy(&refused.stderr));
}

#[test]
fn a_job_is_rescaled_through_the_masters_from_a_savepoint_after_checks() {
    let (root, _group, masters, _workers) = start_cluster("jobs-rescale", 3);
    let submit = |dir: &Path, options: &[&str]| {
        let submitted = json(
            tethys()
                .args(["submit", "--json", "--masters", &masters, "--parallelism", "2", "--checkpoint-interval-ms", "50", "digest"])
                .arg(dir)
                .args(["window", "3000000", "7", "split"])
                .args(options),
        );
        submitted["job"].as_u64().unwrap().to_string()
    };
    let rescale = |job: &str, parallelism: &str| {
        tethys().args(["rescale", "--json", "--masters", &masters, "--parallelism", parallelism, job]).output().unwrap()
    };
    // A job whose source keeps its parallelism (so its state restores at another), and one whose
    // source runs at the job's parallelism.
    let dir = root.path().join("out");
    let job = submit(&dir, &["sources=1"]);
    let fixed = submit(&root.path().join("other"), &[]);
    wait_checkpointed(&masters, job.parse().unwrap());
    wait_checkpointed(&masters, fixed.parse().unwrap());

    // Refused before anything stops: more slots than the cluster has, a source that cannot change.
    let too_big = rescale(&job, "9");
    assert!(!too_big.status.success());
    assert!(String::from_utf8_lossy(&too_big.stderr).contains("slots"), "{}", String::from_utf8_lossy(&too_big.stderr));
    let refused = rescale(&fixed, "3");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("keeps its parallelism"), "{}", String::from_utf8_lossy(&refused.stderr));
    assert_eq!(wait_status(&masters, fixed.parse().unwrap(), "running")["attempt"], 1, "a refused rescale stops nothing");
    assert!(tethys().args(["cancel", "--masters", &masters, &fixed]).output().unwrap().status.success());

    // Rescaled: stopped with a savepoint, restarted from it at parallelism 3, exactly once.
    let answer = rescale(&job, "3");
    assert!(answer.status.success(), "{}", String::from_utf8_lossy(&answer.stderr));
    let info = wait_status(&masters, job.parse().unwrap(), "finished");
    assert_eq!((info["parallelism"].as_u64(), info["attempt"].as_u64()), (Some(3), Some(2)), "{info}");
    assert!(info["last_savepoint"].as_str().is_some_and(|path| !path.is_empty()), "{info}");
    let expected = root.path().join("expected");
    let output = tethys()
        .args(["run", "--parallelism", "2", "--slots", "2", "digest"])
        .arg(&expected)
        .args(["window", "3000000", "7", "split", "sources=1"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(digests(&dir), digests(&expected), "exactly once across the rescale");
}
