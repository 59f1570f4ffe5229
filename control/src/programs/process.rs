//! The processes of an uploaded program that run its jobs, and how their parents talk to them.
//!
//! A worker (or the leader) starts the program with a hidden command and speaks to it in lines:
//! the child writes one JSON [`ChildSays`] per line on its standard output, the parent one JSON
//! [`ParentSays`] per line on the child's standard input. The child's logs go to its standard
//! error, which the parent reads and logs again as its own (at the child's level, naming the
//! process), so they are in the parent's searchable log too. When the parent goes away (its end of the pipe closes),
//! the child stops what it runs as if told to, so no process of a program outlives the process
//! that started it by more than its own shutdown.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};

/// How long a program's process may take to say it is ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What every process of a program is started with besides its command: how it reaches the
/// other processes of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildOptions {
    /// Mutual TLS on the data plane (the files the parent was given).
    pub tls: Option<tethys_net::tls::TlsFiles>,
    /// Keep connections with processes of this host on TCP (no shared memory).
    pub no_shared_memory: bool,
}

impl ChildOptions {
    /// The command-line arguments that say these options to a program's hidden commands.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(tls) = &self.tls {
            for (flag, path) in [("--tls-cert", &tls.chain), ("--tls-key", &tls.key), ("--tls-ca", &tls.ca)] {
                args.push(flag.to_string());
                args.push(path.display().to_string());
            }
        }
        if self.no_shared_memory {
            args.push("--no-shared-memory".to_string());
        }
        args
    }

    /// The data plane's options these say (what the child builds from its arguments).
    pub fn mesh(&self) -> Result<tethys_net::MeshOptions, String> {
        let mut mesh = tethys_net::MeshOptions::default();
        if let Some(files) = &self.tls {
            mesh.connection.tls = Some(files.load().map_err(|error| error.to_string())?);
        }
        if self.no_shared_memory {
            mesh.connection.shared_memory_ring_bytes = 0;
        }
        Ok(mesh)
    }
}

/// A line of a child, in JSON.
pub trait ChildSays: Serialize + DeserializeOwned + Send + 'static {}

/// A line of a parent, in JSON.
pub trait ParentSays: Serialize + DeserializeOwned + Send + 'static {}

/// The parent's end of a program's process: its pipes and the process itself.
pub struct ChildProcess {
    child: Child,
    to_child: Arc<Mutex<Option<ChildStdin>>>,
    from_child: Option<BufReader<ChildStdout>>,
    what: String,
    /// Whether it was waited for (it ended); until then, dropping this kills it.
    reaped: bool,
}

impl ChildProcess {
    /// Starts `program` with `args` and the cluster `secret` in its environment (never on its
    /// command line, where other users could read it).
    pub fn spawn(program: &Path, args: &[String], secret: &str, what: impl Into<String>) -> Result<ChildProcess, String> {
        let what = what.into();
        let mut child = Command::new(program)
            .args(args)
            .env(tethys_net::launcher::SECRET_ENV, secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start {what} ({}): {error}", program.display()))?;
        if let Some(stderr) = child.stderr.take() {
            let process = what.clone();
            let _ = std::thread::Builder::new().name("tethys-program-log".into()).spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    relog(&process, &line);
                }
            });
        }
        let to_child = child.stdin.take().map(|stdin| Arc::new(Mutex::new(Some(stdin)))).expect("stdin is piped");
        let from_child = child.stdout.take().map(BufReader::new);
        Ok(ChildProcess { child, to_child, from_child, what, reaped: false })
    }

    /// A handle that writes lines to the child (clones write to the same pipe).
    pub fn sender<P: ParentSays>(&self) -> ToChild<P> {
        ToChild { stdin: Arc::clone(&self.to_child), _says: std::marker::PhantomData }
    }

    /// Reads the child's next line within `timeout` (the child is killed when it says nothing that
    /// long, or ends first).
    pub fn next_within<C: ChildSays>(&mut self, timeout: Duration) -> Result<C, String> {
        let mut reader = self.from_child.take().ok_or_else(|| format!("{} has no output left", self.what))?;
        let (sent, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let line = read_line::<C>(&mut reader);
            let _ = sent.send((line, reader));
        });
        match received.recv_timeout(timeout) {
            Ok((line, reader)) => {
                self.from_child = Some(reader);
                line.map_err(|error| format!("{}: {error}", self.what))
            }
            Err(_) => {
                let _ = self.child.kill();
                Err(format!("{} said nothing in {timeout:?}; it was stopped", self.what))
            }
        }
    }

    /// Hands the child's lines to `on_line` on a thread of its own until it ends, then calls
    /// `on_end` with how it ended (its last words, or why its output ended) after reaping it.
    pub fn follow<C: ChildSays>(
        mut self,
        mut on_line: impl FnMut(C) + Send + 'static,
        on_end: impl FnOnce(String) + Send + 'static,
    ) -> Result<(), String> {
        let mut reader = self.from_child.take().ok_or_else(|| format!("{} has no output left", self.what))?;
        let (name, what) = (format!("tethys-{}", self.what.replace(' ', "-")), self.what.clone());
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let why = loop {
                    match read_line::<C>(&mut reader) {
                        Ok(line) => on_line(line),
                        Err(error) => break error,
                    }
                };
                let status = self.reap();
                on_end(format!("{why} ({status})"));
            })
            .map(drop)
            // The thread's closure, and with it the process, was dropped: killed.
            .map_err(|error| format!("cannot follow {what}: {error}"))
    }

    /// Nothing more comes from it: closes its input (it stops if it has not) and waits for it to
    /// end; how it ended.
    fn reap(&mut self) -> String {
        self.to_child.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        let status = self.child.wait().map(|status| status.to_string()).unwrap_or_else(|error| error.to_string());
        self.reaped = true;
        status
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // Not followed to its end (it failed before it ran anything, or could not be followed):
        // it must not run on.
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Logs a line of a program's process again in this one: a line of its log (`<time> <LEVEL>
/// <message>`) at its level, anything else (a panic's message) as a warning.
fn relog(process: &str, line: &str) {
    let mut words = line.splitn(3, ' ');
    let (_time, level, message) = (words.next(), words.next().unwrap_or(""), words.next().unwrap_or("").trim_start());
    match level {
        "ERROR" => tracing::error!(program_process = process, "{message}"),
        "WARN" => tracing::warn!(program_process = process, "{message}"),
        "INFO" => tracing::info!(program_process = process, "{message}"),
        "DEBUG" => tracing::debug!(program_process = process, "{message}"),
        "TRACE" => tracing::trace!(program_process = process, "{message}"),
        _ => tracing::warn!(program_process = process, "{line}"),
    }
}

fn read_line<C: ChildSays>(reader: &mut BufReader<ChildStdout>) -> Result<C, String> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => Err("its output ended".to_string()),
        Ok(_) => serde_json::from_str(line.trim()).map_err(|error| format!("it said something unexpected ({error}): {}", line.trim())),
        Err(error) => Err(format!("cannot read its output: {error}")),
    }
}

/// Writes lines to a child.
pub struct ToChild<P> {
    stdin: Arc<Mutex<Option<ChildStdin>>>,
    _says: std::marker::PhantomData<fn(P)>,
}

impl<P> Clone for ToChild<P> {
    fn clone(&self) -> Self {
        ToChild { stdin: Arc::clone(&self.stdin), _says: std::marker::PhantomData }
    }
}

impl<P: ParentSays> ToChild<P> {
    /// Writes `line`; false when the child's input is closed (it ended).
    pub fn send(&self, line: &P) -> bool {
        let text = serde_json::to_string(line).expect("a parent's line is JSON");
        let mut stdin = self.stdin.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match stdin.as_mut() {
            Some(pipe) => writeln!(pipe, "{text}").and_then(|()| pipe.flush()).is_ok(),
            None => false,
        }
    }
}

/// The child's end: its parent's lines from standard input, its own to standard output.
pub struct ToParent<C> {
    out: Arc<Mutex<std::io::Stdout>>,
    _says: std::marker::PhantomData<fn(C)>,
}

impl<C> Clone for ToParent<C> {
    fn clone(&self) -> Self {
        ToParent { out: Arc::clone(&self.out), _says: std::marker::PhantomData }
    }
}

impl<C: ChildSays> ToParent<C> {
    /// The process's standard output, for its lines.
    pub fn stdout() -> ToParent<C> {
        ToParent { out: Arc::new(Mutex::new(std::io::stdout())), _says: std::marker::PhantomData }
    }

    /// Writes `line` (a parent that went away is noticed on standard input, not here).
    pub fn send(&self, line: &C) {
        let text = serde_json::to_string(line).expect("a child's line is JSON");
        let mut out = self.out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = writeln!(out, "{text}").and_then(|()| out.flush());
    }
}

/// Reads the parent's lines from standard input on a thread of its own, handing each to
/// `on_line`; `on_gone` runs once the parent's end closed (or wrote something unreadable).
pub fn follow_parent<P: ParentSays>(mut on_line: impl FnMut(P) + Send + 'static, on_gone: impl FnOnce(String) + Send + 'static) {
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        let why = loop {
            match lines.next() {
                None => break "the process that started it ended".to_string(),
                Some(Err(error)) => break format!("cannot read from the process that started it: {error}"),
                Some(Ok(line)) => match serde_json::from_str::<P>(line.trim()) {
                    Ok(said) => on_line(said),
                    Err(error) => break format!("the process that started it said something unexpected ({error})"),
                },
            }
        };
        on_gone(why);
    });
}

/// The cluster secret the parent put in the environment ([`ChildProcess::spawn`]).
pub fn secret_from_parent() -> Result<tethys_net::ClusterSecret, String> {
    let secret_env = tethys_net::launcher::SECRET_ENV;
    let text = std::env::var(secret_env).map_err(|_| format!("no cluster secret in {secret_env}"))?;
    text.parse().map_err(|error| format!("bad cluster secret: {error}"))
}

/// Reads the parent's first line (blocking): what to do, or `None` when the parent went away.
pub fn first_from_parent<P: ParentSays>() -> Result<Option<P>, String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => Ok(None),
        Ok(_) => serde_json::from_str(line.trim()).map(Some).map_err(|error| format!("unexpected first line ({error}): {}", line.trim())),
        Err(error) => Err(format!("cannot read standard input: {error}")),
    }
}
