//! The web console in a real browser against the real binary: `tethys demo` (the embedded
//! cluster with the console and its example job), driven by `console/web/e2e/console.mjs` in
//! headless Chromium (playwright-core, the machine's Chromium): log in, see the example job live,
//! deploy a job with the resource preview, savepoint, rescale 1 -> 2, the cluster page, cancel; a
//! job with a slow sink whose graph marks the bottleneck; a SQL job refused at its error, then run;
//! the example program (`cli/examples/best_bids.rs`) uploaded from the Deploy page and its job run;
//! the SQL workbench (`workbench.mjs`): a typo underlined and fixed, completion, format, explain,
//! test runs on generated and uploaded rows beside the expected ones, deploy; the canvas
//! (`canvas.mjs`): a job drawn by drag and drop, shown as SQL, previewed, refused where drawn.
//! Screenshots of each page go to `target/console-screenshots/`.
//!
//! It needs the front end built (`npm ci && npm run build` in console/web, before cargo builds
//! the binary), Node.js and Chromium. `.ci/run` provides all three and sets
//! `TETHYS_CONSOLE_REQUIRED`, where their absence fails the test; elsewhere it is skipped with
//! the reason printed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Interrupts `process` (SIGINT, as Ctrl-C: the demo stops its cluster and removes its
/// directory) and waits for it to end; kills it if it has not within 30 s.
fn stop_gracefully(mut process: Process) {
    let _ = Command::new("kill").args(["-INT", &process.0.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = process.0.try_wait() {
            assert!(status.success(), "the demo ended badly after Ctrl-C: {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the demo did not stop within 30 s of Ctrl-C");
}

/// Why the browser test cannot run here, if it cannot.
fn missing(web: &Path) -> Option<String> {
    if !web.join("../dist/index.html").exists() {
        return Some("the front end is not built (npm ci && npm run build in console/web)".into());
    }
    if !web.join("node_modules/playwright-core").exists() {
        return Some("console/web/node_modules has no playwright-core (npm ci in console/web)".into());
    }
    if Command::new("node").arg("--version").output().map(|out| !out.status.success()).unwrap_or(true) {
        return Some("no node on the PATH".into());
    }
    if !chromium().exists() {
        return Some(format!("no Chromium at {} (apt-get install chromium, or set CHROMIUM)", chromium().display()));
    }
    None
}

/// The console's `web` folder, or `None` (and why, printed) when the browser tests cannot run here.
fn browser_checks() -> Option<PathBuf> {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/web");
    match missing(&web) {
        None => Some(web),
        Some(reason) => {
            assert!(std::env::var_os("TETHYS_CONSOLE_REQUIRED").is_none(), "the console's browser test cannot run: {reason}");
            eprintln!("skipped: {reason}");
            None
        }
    }
}

/// Runs `script` (in console/web/e2e) with `env`; screenshots into target/console-screenshots.
fn run_browser_checks(web: &Path, script: &str, env: &[(&str, String)]) -> PathBuf {
    let screenshots = web.join("../../target/console-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let mut command = Command::new("node");
    command.arg(format!("e2e/{script}")).current_dir(web).env("SCREENSHOTS", &screenshots).env("CHROMIUM", chromium());
    for (key, value) in env {
        command.env(key, value);
    }
    let run = command.output().unwrap();
    let output = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "the browser checks of {script} failed (screenshots in {}):\n{output}", screenshots.display());
    eprintln!("{output}");
    screenshots
}

#[test]
fn the_console_deploys_savepoints_rescales_and_cancels_in_a_browser() {
    let Some(web) = browser_checks() else { return };
    // The demo's directory and the scripts' files go here (their temporary directory), removed
    // at the end even if the demo is killed.
    let scratch = tethys_storage::test_dir::TestDir::new("console-demo");
    let tmp = scratch.path().display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tethys"))
        .env("TMPDIR", &tmp)
        .args(["demo", "--seconds", "600", "--workers", "2", "--slots", "2", "--rate", "20000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let demo = Process(child);
    // The demo prints the console's address and token, then runs.
    let (mut url, mut token) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in stdout.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("console") {
            url = Some(rest.trim().to_string());
        }
        if let Some(rest) = line.trim().strip_prefix("token") {
            token = Some(rest.trim().to_string());
        }
        if url.is_some() && token.is_some() || Instant::now() > deadline {
            break;
        }
    }
    let (url, token) = (url.expect("the demo prints the console's URL"), token.expect("the demo prints the token"));
    // The rest of what it prints is read too (a closed pipe would end it).
    std::thread::spawn(move || stdout.for_each(drop));
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'), "{url}");

    // The example program (cargo builds the package's examples with its tests), uploaded from the
    // Deploy page.
    let program = Path::new(env!("CARGO_BIN_EXE_tethys")).parent().unwrap().join("examples/best_bids");
    assert!(program.is_file(), "{}", program.display());
    let env = [("URL", url), ("TOKEN", token), ("TMPDIR", tmp), ("PROGRAM", program.display().to_string())];
    let screenshots = run_browser_checks(&web, "console.mjs", &env);
    run_browser_checks(&web, "workbench.mjs", &env);
    run_browser_checks(&web, "canvas.mjs", &env);
    // The assets' sizes and the first views' times, printed (bench/RESULTS.md records them).
    run_browser_checks(&web, "load.mjs", &env);
    stop_gracefully(demo);
    for page in [
        "01-login",
        "02-jobs",
        "03-deploy",
        "04-job",
        "05-rescaled",
        "06-cluster",
        "07-cancelled",
        "08-bottleneck",
        "09-sql-error",
        "10-sql-job",
        "11-exceptions",
        "12-logs",
        "13-program",
        "14-program-job",
        "20-workbench-typo",
        "21-workbench-completion",
        "22-workbench-explain",
        "23-workbench-generated",
        "24-workbench-diff",
        "25-workbench-deployed",
        "26-workbench-draft-diff",
        "27-workbench-as-canvas",
        "30-canvas",
        "31-canvas-sql-preview",
    ] {
        assert!(screenshots.join(format!("{page}.png")).exists(), "no screenshot of {page}");
    }
}

const SECRET: &str = "console-failover-secret-0123";

fn tethys(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tethys"));
    command.env("TETHYS_CLUSTER_SECRET", SECRET).args(args);
    command
}

/// `tethys cluster --json` of `masters`, once it names a leader and `ready` holds.
fn cluster_when(masters: &str, ready: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = tethys(&["cluster", "--json", "--masters", masters]).output().unwrap();
        if output.status.success() {
            let reply: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            if !reply["leader"].is_null() && ready(&reply) {
                return reply;
            }
        }
        assert!(Instant::now() < deadline, "the cluster was not ready in time: {}", String::from_utf8_lossy(&output.stderr));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_console_keeps_working_through_a_leader_change_of_three_masters() {
    let Some(web) = browser_checks() else { return };
    let root = tethys_storage::test_dir::TestDir::new("console-failover");
    let program = Path::new(env!("CARGO_BIN_EXE_tethys"));
    let group = tethys_control::launcher::LocalMasters::start_serving_http(program, 3, SECRET, root.path()).expect("three masters");
    let masters = group.addrs().join(",");
    let _worker = Process(tethys(&["worker", "--masters", &masters, "--slots", "2"]).stdout(Stdio::null()).spawn().unwrap());
    cluster_when(&masters, |cluster| cluster["workers"].as_array().is_some_and(|workers| !workers.is_empty()));
    let submitted = tethys(&[
        "submit",
        "--masters",
        &masters,
        "--parallelism",
        "1",
        "--checkpoint-interval-ms",
        "500",
        "bench",
        "window",
        "1000000000000",
        "42",
        "sources=1",
        "rate=20000",
    ])
    .output()
    .unwrap();
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    let leader = cluster_when(&masters, |_| true)["leader"].as_u64().unwrap() as usize;
    let follower = (leader + 1) % 3;
    let urls: Vec<String> = group.http_addrs().iter().map(|addr| format!("http://{addr}/")).collect();
    let pids: Vec<String> = (0..3).map(|id| group.pid(id).unwrap().to_string()).collect();
    // The script kills the master that leads when it looks (the launcher reaps them all).
    let screenshots = run_browser_checks(
        &web,
        "failover.mjs",
        &[("URL", urls[follower].clone()), ("TOKEN", SECRET.to_string()), ("MASTER_PIDS", pids.join(",")), ("MASTER_URLS", urls.join(","))],
    );
    for page in ["11-cluster-before", "12-cluster-after", "13-jobs-after"] {
        assert!(screenshots.join(format!("{page}.png")).exists(), "no screenshot of {page}");
    }
}
