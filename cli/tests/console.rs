//! The web console in a real browser against the real binary: `tethys demo` (the embedded
//! cluster with the console and its example job), driven by `console/web/e2e/console.mjs` in
//! headless Chromium (playwright-core, the machine's Chromium): log in, see the example job live,
//! deploy a job with the resource preview, savepoint, rescale 1 -> 2, the cluster page, cancel.
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

#[test]
fn the_console_deploys_savepoints_rescales_and_cancels_in_a_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let web = root.join("console/web");
    if let Some(reason) = missing(&web) {
        assert!(std::env::var_os("TETHYS_CONSOLE_REQUIRED").is_none(), "the console's browser test cannot run: {reason}");
        eprintln!("skipped: {reason}");
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_tethys"))
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

    let screenshots = root.join("target/console-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let run = Command::new("node")
        .arg("e2e/console.mjs")
        .current_dir(&web)
        .env("URL", &url)
        .env("TOKEN", &token)
        .env("SCREENSHOTS", &screenshots)
        .env("CHROMIUM", chromium())
        .output()
        .unwrap();
    drop(demo);
    let output = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "the browser checks failed (screenshots in {}):\n{output}", screenshots.display());
    for page in ["01-login", "02-jobs", "03-deploy", "04-job", "05-rescaled", "06-cluster", "07-cancelled"] {
        assert!(screenshots.join(format!("{page}.png")).exists(), "no screenshot of {page}");
    }
}
