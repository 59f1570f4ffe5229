//! `LocalMasters`: a group of master processes on 127.0.0.1, for tests, benchmarks and the demo.
//!
//! Each master is the given program (`tethys`) run as `master` with its own directory under a root
//! the caller owns; the first forms the group. Masters listen on free ports and print where; the
//! launcher then gives every master the whole list on standard input. The cluster secret reaches
//! them in the environment (`TETHYS_CLUSTER_SECRET`), never on a command line. Dropping the value
//! kills every master still running.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tethys_net::launcher::{LISTENING_PREFIX, SECRET_ENV};

/// What a master prints before where it serves HTTP (`tethys master --http`), on the line after
/// the one saying where it listens.
pub const HTTP_PREFIX: &str = "http ";

/// Master processes on this host (see the module documentation).
pub struct LocalMasters {
    program: PathBuf,
    secret: String,
    dirs: Vec<PathBuf>,
    checkpoint_root: PathBuf,
    addrs: Vec<String>,
    /// Where each master serves HTTP (the API, `/metrics` and the console), when they do.
    http: Vec<String>,
    processes: Vec<Option<Child>>,
}

impl LocalMasters {
    /// Starts `count` masters of `program`, with directories `root/master-<id>` and the jobs'
    /// checkpoints under `root/checkpoints`.
    pub fn start(program: &Path, count: usize, secret: &str, root: &Path) -> std::io::Result<LocalMasters> {
        LocalMasters::launch(program, count, secret, root, false)
    }

    /// As [`LocalMasters::start`], each master also serving HTTP (its API, `/metrics` and the
    /// console) on a free port of 127.0.0.1 ([`LocalMasters::http_addrs`]).
    pub fn start_serving_http(program: &Path, count: usize, secret: &str, root: &Path) -> std::io::Result<LocalMasters> {
        LocalMasters::launch(program, count, secret, root, true)
    }

    fn launch(program: &Path, count: usize, secret: &str, root: &Path, serve_http: bool) -> std::io::Result<LocalMasters> {
        let dirs: Vec<PathBuf> = (0..count).map(|id| root.join(format!("master-{id}"))).collect();
        let checkpoint_root = root.join("checkpoints");
        let mut masters = LocalMasters {
            program: program.to_path_buf(),
            secret: secret.to_string(),
            dirs,
            checkpoint_root,
            addrs: Vec::new(),
            http: Vec::new(),
            processes: Vec::new(),
        };
        for id in 0..count {
            let mut command = masters.command(id);
            command.arg("--members-from-stdin");
            if id == 0 {
                command.arg("--bootstrap");
            }
            if serve_http {
                command.args(["--http", "127.0.0.1:0"]);
            }
            let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
            let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
            let mut announced = |prefix: &str, what: &str| -> std::io::Result<String> {
                let mut line = String::new();
                stdout.read_line(&mut line)?;
                let addr = line
                    .trim()
                    .strip_prefix(prefix)
                    .ok_or_else(|| std::io::Error::other(format!("master {id} printed {line:?}, not {what}")))?;
                Ok(addr.to_string())
            };
            let addr = announced(LISTENING_PREFIX, "where it listens");
            let http = if serve_http { Some(announced(HTTP_PREFIX, "where it serves HTTP")) } else { None };
            masters.processes.push(Some(child));
            masters.addrs.push(addr?);
            if let Some(http) = http {
                masters.http.push(http?);
            }
        }
        let members = masters.members_line();
        for child in masters.processes.iter_mut().flatten() {
            writeln!(child.stdin.take().expect("piped"), "{members}")?;
        }
        Ok(masters)
    }

    fn command(&self, id: usize) -> Command {
        let mut command = Command::new(&self.program);
        command.env(SECRET_ENV, &self.secret).args(["master", "--id", &id.to_string(), "--log", "warn", "--dir"]).arg(&self.dirs[id]);
        command.arg("--checkpoint-root").arg(&self.checkpoint_root);
        command
    }

    /// `0=<addr>,1=<addr>,...`.
    pub fn members_line(&self) -> String {
        self.addrs.iter().enumerate().map(|(id, addr)| format!("{id}={addr}")).collect::<Vec<_>>().join(",")
    }

    /// Each master's address, by id.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// Where each master serves HTTP, by id (empty unless started by
    /// [`LocalMasters::start_serving_http`]).
    pub fn http_addrs(&self) -> &[String] {
        &self.http
    }

    /// Whether master `id` runs.
    pub fn is_running(&self, id: usize) -> bool {
        self.processes[id].is_some()
    }

    /// Master `id`'s process id, while it runs (e.g. to pause it with SIGSTOP).
    pub fn pid(&self, id: usize) -> Option<u32> {
        self.processes[id].as_ref().map(Child::id)
    }

    /// Kills master `id` (SIGKILL) and waits for it to end.
    pub fn kill(&mut self, id: usize) -> std::io::Result<()> {
        if let Some(mut child) = self.processes[id].take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts master `id` again on its directory and address.
    pub fn restart(&mut self, id: usize) -> std::io::Result<()> {
        assert!(self.processes[id].is_none(), "master {id} still runs");
        let mut command = self.command(id);
        command.args(["--listen", &self.addrs[id], "--members", &self.members_line()]).stdout(Stdio::null());
        if let Some(http) = self.http.get(id) {
            command.args(["--http", http]);
        }
        self.processes[id] = Some(command.spawn()?);
        Ok(())
    }
}

impl Drop for LocalMasters {
    fn drop(&mut self) {
        for child in self.processes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
