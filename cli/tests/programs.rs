//! Programs of one's own on a cluster: the example program `best_bids` (cargo builds the package's
//! examples with its tests) is uploaded to three `tethys master` processes; its job, which the
//! `tethys` binary does not have, is submitted by name and runs on two `tethys worker` processes
//! and the leader, each in a process of the program, committing exactly what the program commits
//! in one process, also when the leader is killed mid-job (the new leader adopts the attempt with
//! a process of the program of its own); what those processes log is in their worker's log. A
//! program's process killed (a worker's attempt, the leader's driver) fails its attempt and the job
//! restarts from its checkpoint, still exactly once. Bad uploads and submissions are refused with the reason,
//! and a program is not deleted while a job of it runs.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::cluster::{json, start_cluster, tethys, wait_status, WAIT};

/// The example program's executable, beside the `tethys` binary the tests run.
fn example_program() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_tethys")).parent().unwrap().join("examples").join("best_bids")
}

/// The lines the job wrote into `dir`'s part files, sorted.
fn lines(dir: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("part-") {
            all.extend(std::fs::read_to_string(entry.path()).unwrap().lines().map(str::to_string));
        }
    }
    all.sort();
    all
}

/// What the program's job writes run in one process.
fn one_process(dir: &Path, events: &str) -> Vec<String> {
    let output = std::process::Command::new(example_program())
        .args(["run", "--parallelism", "2", "--slots", "2", "best-bids"])
        .arg(dir)
        .args([events, "7"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    lines(dir)
}

/// Runs `tethys` with `args`; its error output, which must say it failed.
fn refused(args: &[&str]) -> String {
    let output = tethys().args(args).output().unwrap();
    assert!(!output.status.success(), "{args:?} was not refused: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_uploaded_programs_job_runs_on_the_cluster_exactly_as_in_one_process() {
    let program = example_program();
    assert!(program.is_file(), "the example program is built with the tests: {}", program.display());
    let (root, mut group, masters, _workers) = start_cluster("programs", 2);

    // What is not a Tethys program of this version is refused, and nothing is kept of it.
    let text = root.path().join("notes.txt");
    std::fs::write(&text, "not a program\n").unwrap();
    let error = refused(&["programs", "upload", "--masters", &masters, text.to_str().unwrap()]);
    assert!(error.contains("not a Tethys program: it does not run here"), "{error}");
    let script = root.path().join("script.sh");
    std::fs::write(&script, "#!/bin/sh\necho hello\n").unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    let error = refused(&["programs", "upload", "--masters", &masters, script.to_str().unwrap()]);
    assert!(error.contains("'program-info' did not say what it is"), "{error}");
    assert_eq!(json(tethys().args(["programs", "list", "--json", "--masters", &masters])), serde_json::json!([]));

    let uploaded = json(tethys().args(["programs", "upload", "--json", "--masters", &masters]).arg(&program));
    let id = uploaded["id"].as_str().unwrap().to_string();
    assert_eq!(uploaded["program"], "best-bids");
    assert_eq!(uploaded["jobs"][0]["name"], "best-bids", "{uploaded}");
    assert_eq!(uploaded["jobs"][0]["builtin"], false, "{uploaded}");

    // Submissions the program refuses, in its words.
    let error = refused(&["submit", "--masters", &masters, "--program", &"0".repeat(64), "best-bids"]);
    assert!(error.contains(&format!("no program {} was uploaded", "0".repeat(64))), "{error}");
    let error = refused(&["submit", "--masters", &masters, "--program", &id, "word-count"]);
    assert!(error.contains("unknown job 'word-count' (program 'best-bids' has 'best-bids', 'bench', 'digest', 'sql')"), "{error}");
    let error = refused(&["submit", "--masters", &masters, "--program", &id, "best-bids", "out", "many", "7"]);
    assert!(error.contains("'many' is not a number of events"), "{error}");

    // What its job would take, shown before it is submitted.
    let preview = json(tethys().args([
        "submit",
        "--preview",
        "--json",
        "--masters",
        &masters,
        "--program",
        &id,
        "--parallelism",
        "2",
        "best-bids",
        "out",
        "10",
        "7",
    ]));
    assert_eq!((preview["slots"].as_u64(), preview["fits"].as_bool()), (Some(2), Some(true)), "{preview}");
    let operators = preview["tasks"].to_string();
    assert!(operators.contains("Source: bids") && operators.contains("Window") && operators.contains("Sink: best bids"), "{preview}");
    assert!(preview["buffer_bytes"].as_u64().unwrap() > 0 && preview["workers"].as_array().unwrap().len() == 2, "{preview}");
    assert_eq!(json(tethys().args(["list", "--json", "--masters", &masters])), serde_json::json!([]), "a preview submits nothing");

    // Its job to its end: what one process of the program commits.
    let first = root.path().join("first");
    let submitted = json(
        tethys()
            .args(["submit", "--json", "--masters", &masters, "--program", &id])
            .args(["--parallelism", "2", "--checkpoint-interval-ms", "100", "best-bids"])
            .arg(&first)
            .args(["300000", "7"]),
    );
    let job = submitted["job"].as_u64().unwrap();
    let info = wait_status(&masters, job, "finished");
    assert_eq!(info["program"], id.as_str(), "{info}");
    let expected = one_process(&root.path().join("one-first"), "300000");
    assert!(expected.len() > 1000, "{}", expected.len());
    assert_eq!(lines(&first), expected, "the job on the cluster commits what it commits in one process");
    // What the program's processes logged is in their worker's log, as its own lines.
    let what = format!("attempt 1 of job {job}");
    let logged = tethys().args(["logs", "--masters", &masters, "--worker", "0", "--grep", &what]).output().unwrap();
    let logged = String::from_utf8_lossy(&logged.stdout);
    assert!(logged.contains("worker joined its cluster") && logged.contains("program_process"), "{logged}");

    // A longer one with its leader killed once a checkpoint is committed: the new leader adopts
    // the attempt (nothing restarts) and the output is still exactly once. Meanwhile the program
    // is not deleted.
    let second = root.path().join("second");
    let submitted = json(
        tethys()
            .args(["submit", "--json", "--masters", &masters, "--program", &id])
            .args(["--parallelism", "2", "--checkpoint-interval-ms", "50", "best-bids"])
            .arg(&second)
            .args(["3000000", "7"]),
    );
    let job = submitted["job"].as_u64().unwrap();
    let error = refused(&["programs", "delete", "--masters", &masters, &id]);
    assert!(error.contains(&format!("job {job} of it has not ended")), "{error}");
    let deadline = Instant::now() + WAIT;
    while wait_status(&masters, job, "running")["last_checkpoint"].as_u64() == Some(0) {
        assert!(Instant::now() < deadline, "no checkpoint of the job was committed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let leader = json(tethys().args(["cluster", "--json", "--masters", &masters]))["leader"].as_u64().unwrap() as usize;
    group.kill(leader).unwrap();
    let others: Vec<&str> = group.addrs().iter().enumerate().filter(|(index, _)| *index != leader).map(|(_, addr)| addr.as_str()).collect();
    let others = others.join(",");
    let info = wait_status(&others, job, "finished");
    assert_eq!((info["attempt"].as_u64(), info["adoptions"].as_u64()), (Some(1), Some(1)), "adopted, not restarted: {info}");
    assert_eq!(lines(&second), one_process(&root.path().join("one-second"), "3000000"), "exactly once across the leader's end");

    // Ended, its jobs let it go.
    tethys().args(["programs", "delete", "--masters", &others, &id]).status().unwrap();
    assert_eq!(json(tethys().args(["programs", "list", "--json", "--masters", &others])), serde_json::json!([]));
}

/// The process ids of the processes whose command line holds every one of `parts`.
fn pids(parts: &[&str]) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if parts.iter().all(|part| cmdline.contains(part)) {
            found.push(pid);
        }
    }
    found
}

/// Waits until the masters committed a checkpoint of running job `job`, then kills (SIGKILL) the
/// one process of the program whose command line holds `parts`.
fn kill_once_checkpointed(masters: &str, job: u64, parts: &[&str]) {
    let deadline = Instant::now() + WAIT;
    while wait_status(masters, job, "running")["last_checkpoint"].as_u64() == Some(0) {
        assert!(Instant::now() < deadline, "no checkpoint of the job was committed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let found = pids(parts);
    assert!(!found.is_empty(), "no process holds {parts:?}");
    let killed = std::process::Command::new("kill").arg("-9").arg(found[0].to_string()).status().unwrap();
    assert!(killed.success());
}

#[test]
fn a_programs_killed_process_restarts_its_job_from_the_checkpoint_exactly_once() {
    let (root, _group, masters, _workers) = start_cluster("programs-killed", 2);
    let uploaded = json(tethys().args(["programs", "upload", "--json", "--masters", &masters]).arg(example_program()));
    let id = uploaded["id"].as_str().unwrap().to_string();
    let expected = one_process(&root.path().join("one"), "3000000");
    let run = |name: &str, kill: &[&str]| {
        let dir = root.path().join(name);
        let submitted = json(
            tethys()
                .args(["submit", "--json", "--masters", &masters, "--program", &id])
                .args(["--parallelism", "2", "--checkpoint-interval-ms", "50", "best-bids"])
                .arg(&dir)
                .args(["3000000", "7"]),
        );
        let job = submitted["job"].as_u64().unwrap();
        kill_once_checkpointed(&masters, job, kill);
        let info = wait_status(&masters, job, "finished");
        assert_eq!(lines(&dir), expected, "exactly once after {kill:?} was killed: {info}");
        info
    };
    // A worker's attempt, in its process of the program (the workers keep programs in the
    // cluster's directory, so no other test's process is taken): the job's driver restarts it on
    // what is left, or the masters restart the attempt.
    let workers = root.path().join("worker-programs").display().to_string();
    run("worker-killed", &[&workers, "attempt-worker"]);
    // The leader's driver of the attempt, in its process of the program: the attempt failed, and
    // the masters started the next from the checkpoint they committed.
    let masters_programs = root.path().join("checkpoints").join("programs").display().to_string();
    let info = run("driver-killed", &[&masters_programs, "attempt-driver"]);
    assert_eq!(info["attempt"], 2, "{info}");
}
