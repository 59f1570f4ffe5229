//! Programs of users' own: a Tethys program is the `tethys` command line with jobs written in Rust
//! added (the `tethys` library's `Program`). Every process of a job runs the same program, so a
//! job of an uploaded program runs in processes of that program, which the masters and workers
//! start for it. This module holds what a program says of itself ([`ProgramInfo`], printed by
//! `<program> program-info`).

pub mod driver;
pub mod process;
pub mod worker;

use serde::{Deserialize, Serialize};

/// The hidden command of every Tethys program that prints its [`ProgramInfo`] as JSON.
pub const PROGRAM_INFO_COMMAND: &str = "program-info";

/// The hidden command of every Tethys program that checks it defines a job:
/// `check-job --parallelism P [--restore-from DIR] <job> [args...]`.
pub const CHECK_JOB_COMMAND: &str = "check-job";

/// What a program says of itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProgramInfo {
    /// The program's name, as its author gave it.
    pub program: String,
    /// The version of the Tethys library it was built with.
    pub tethys_version: String,
    /// Its build id (a hash of its executable), which jobs' graph fingerprints carry.
    pub build_id: String,
    /// The jobs it defines, its own first, then those every program has built in.
    pub jobs: Vec<JobAbout>,
}

/// One job a program defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobAbout {
    /// Its name (what a submission names).
    pub name: String,
    /// What it does and the arguments it takes.
    pub about: String,
    /// Whether every program has it (the benchmark, digest and SQL jobs of `tethys` itself).
    pub builtin: bool,
}

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use sha2::Digest;
use tokio::io::AsyncWriteExt;

/// The largest program the masters take (a debug build of a program is about 200 MB).
pub const PROGRAM_BYTES_MAX: u64 = 512 << 20;

/// How long a program may take to say what it is.
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a partly written program file goes unwritten before a store opened after treats it as
/// an upload that broke off.
const ABANDONED_AFTER: Duration = Duration::from_secs(600);

/// The pieces a program's file travels in (uploads are taken in whatever pieces they come).
pub const CHUNK_BYTES: usize = 1 << 20;

/// Why a program could not be taken, kept or run.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// Larger than the store takes ([`PROGRAM_BYTES_MAX`] by default).
    #[error("a program is at most {max} bytes; this one is larger")]
    TooLarge {
        /// The bound.
        max: u64,
    },
    /// Not a program of this Tethys: it does not run here, or does not say what it is.
    #[error("not a Tethys program: {0}")]
    NotAProgram(String),
    /// A program of another version of Tethys, whose processes would not understand ours.
    #[error("program '{program}' was built with Tethys {theirs}; this cluster runs Tethys {ours}: build it against {ours}")]
    OtherVersion {
        /// Its name.
        program: String,
        /// The version it was built with.
        theirs: String,
        /// Ours.
        ours: String,
    },
    /// An id that is not a SHA-256 in hex.
    #[error("'{0}' is not a program id (64 hexadecimal digits)")]
    BadId(String),
    /// The upload broke off.
    #[error("the upload broke off: {0}")]
    Interrupted(String),
    /// Reading or writing the store failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ProgramError {
    let context = context.into();
    move |source| ProgramError::Io { context, source }
}

/// Whether `id` is a program id: a SHA-256 in lowercase hex.
pub fn check_id(id: &str) -> Result<(), ProgramError> {
    match id.len() == 64 && id.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)) {
        true => Ok(()),
        false => Err(ProgramError::BadId(id.chars().take(80).collect())),
    }
}

/// A program file just received into a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its id: the SHA-256 of its bytes, in hex.
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where it is, executable.
    pub path: PathBuf,
}

/// Program files by id, in a directory: the masters' store of uploaded programs (on storage every
/// master reaches, as the checkpoints are), and a worker's copies of the programs it ran. A file is
/// written under a temporary name, synced, then renamed to its id, so a file named by an id is
/// whole; its id is the hash of its bytes, so a file is never changed once there.
#[derive(Debug, Clone)]
pub struct ProgramStore {
    dir: PathBuf,
    /// The largest program it takes.
    bytes_max: u64,
}

impl ProgramStore {
    /// The store in `dir` (created if needed), taking programs of up to [`PROGRAM_BYTES_MAX`];
    /// files of uploads that broke off long ago are removed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<ProgramStore, ProgramError> {
        ProgramStore::open_with_limit(dir, PROGRAM_BYTES_MAX)
    }

    /// As [`ProgramStore::open`], taking programs of up to `bytes_max` bytes.
    pub fn open_with_limit(dir: impl Into<PathBuf>, bytes_max: u64) -> Result<ProgramStore, ProgramError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create the program store {}", dir.display())))?;
        let entries = std::fs::read_dir(&dir).map_err(io(format!("cannot read the program store {}", dir.display())))?;
        for entry in entries.flatten() {
            // Another process may share the store (the workers of a host): only what nobody has
            // written to for a while is an upload that broke off.
            let idle = entry.metadata().and_then(|meta| meta.modified()).ok().and_then(|at| at.elapsed().ok());
            if entry.file_name().to_string_lossy().ends_with(".part") && idle.is_some_and(|idle| idle > ABANDONED_AFTER) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(ProgramStore { dir, bytes_max })
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the program `id` is, if this store has it.
    pub fn find(&self, id: &str) -> Result<Option<PathBuf>, ProgramError> {
        check_id(id)?;
        let path = self.dir.join(id);
        Ok(path.is_file().then_some(path))
    }

    /// Takes a program's bytes from `chunks` (refused past the store's limit) into the store.
    /// Nothing is kept of one that broke off or was too large.
    pub async fn receive<S, E>(&self, chunks: S) -> Result<Received, ProgramError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>>,
        E: std::fmt::Display,
    {
        let part = self.dir.join(format!("upload-{}-{}.part", std::process::id(), fastrand::u64(..)));
        let result = self.write(&part, chunks).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&part).await;
        }
        result
    }

    async fn write<S, E>(&self, part: &Path, chunks: S) -> Result<Received, ProgramError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>>,
        E: std::fmt::Display,
    {
        let mut file = tokio::fs::File::create(part).await.map_err(io(format!("cannot create {}", part.display())))?;
        let (mut hasher, mut size) = (sha2::Sha256::new(), 0u64);
        let mut chunks = std::pin::pin!(chunks);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|error| ProgramError::Interrupted(error.to_string()))?;
            size += chunk.len() as u64;
            if size > self.bytes_max {
                return Err(ProgramError::TooLarge { max: self.bytes_max });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io(format!("cannot write {}", part.display())))?;
        }
        if size == 0 {
            return Err(ProgramError::NotAProgram("the file is empty".to_string()));
        }
        file.sync_all().await.map_err(io(format!("cannot sync {}", part.display())))?;
        drop(file);
        let id: String = hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect();
        let path = self.dir.join(&id);
        make_executable(part).await?;
        tokio::fs::rename(part, &path).await.map_err(io(format!("cannot move the program to {}", path.display())))?;
        Ok(Received { id, size, path })
    }

    /// Removes the program `id`'s file, if there.
    pub fn remove(&self, id: &str) -> Result<(), ProgramError> {
        let Some(path) = self.find(id)? else { return Ok(()) };
        std::fs::remove_file(&path).map_err(io(format!("cannot remove {}", path.display())))
    }
}

#[cfg(unix)]
async fn make_executable(path: &Path) -> Result<(), ProgramError> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .await
        .map_err(io(format!("cannot make {} executable", path.display())))
}

#[cfg(not(unix))]
async fn make_executable(_path: &Path) -> Result<(), ProgramError> {
    Ok(())
}

/// Asks the program at `path` what it is (`program-info`, within [`INSPECT_TIMEOUT`]), and refuses
/// one that is not a Tethys program or was built with another version of Tethys than this one.
pub async fn inspect(path: &Path) -> Result<ProgramInfo, ProgramError> {
    let run = tokio::process::Command::new(path).arg(PROGRAM_INFO_COMMAND).stdin(std::process::Stdio::null()).kill_on_drop(true).output();
    let output = match tokio::time::timeout(INSPECT_TIMEOUT, run).await {
        Err(_) => return Err(ProgramError::NotAProgram(format!("'{PROGRAM_INFO_COMMAND}' did not answer in {INSPECT_TIMEOUT:?}"))),
        Ok(Err(error)) => return Err(ProgramError::NotAProgram(format!("it does not run here: {error}"))),
        Ok(Ok(output)) => output,
    };
    let said = String::from_utf8_lossy(&output.stdout);
    let info: ProgramInfo = match serde_json::from_str(said.trim()) {
        Ok(info) if output.status.success() => info,
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: String = stderr.trim().chars().take(300).collect();
            return Err(ProgramError::NotAProgram(format!(
                "'{PROGRAM_INFO_COMMAND}' did not say what it is ({}{})",
                output.status,
                if tail.is_empty() { String::new() } else { format!(": {tail}") }
            )));
        }
    };
    let ours = env!("CARGO_PKG_VERSION");
    if info.tethys_version != ours {
        return Err(ProgramError::OtherVersion { program: info.program, theirs: info.tethys_version, ours: ours.to_string() });
    }
    Ok(info)
}

/// The program `id` in `store`, fetched from the first of `masters` that has a copy when the
/// store has none (checked against its id: the hash of what arrived).
pub async fn fetch(
    store: &ProgramStore,
    id: &str,
    masters: &[String],
    auth: &crate::rpc::SecretAuth,
    tls: Option<&crate::rpc::GrpcTls>,
) -> Result<PathBuf, String> {
    if let Some(path) = store.find(id).map_err(|error| error.to_string())? {
        return Ok(path);
    }
    let mut failures = Vec::new();
    for addr in masters {
        let endpoint = crate::rpc::endpoint(addr, tls, Duration::from_millis(500), Duration::from_secs(600))?;
        let channel = match endpoint.connect().await {
            Ok(channel) => channel,
            Err(error) => {
                failures.push(format!("{addr}: {error}"));
                continue;
            }
        };
        let mut client = crate::rpc::proto::control_client::ControlClient::with_interceptor(channel, auth.add());
        let chunks = match client.fetch_program(crate::rpc::proto::ProgramRequest { id: id.to_string() }).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                failures.push(format!("{addr}: {}", crate::rpc::status_reason(&status)));
                continue;
            }
        };
        match store.receive(chunks.map(|chunk| chunk.map(|chunk| bytes::Bytes::from(chunk.data)))).await {
            Ok(received) if received.id == id => {
                tracing::info!(program = id, size = received.size, from = addr, "program fetched");
                return Ok(received.path);
            }
            Ok(received) => {
                let _ = store.remove(&received.id);
                failures.push(format!("{addr} sent a file whose hash is {}", received.id));
            }
            Err(error) => failures.push(format!("{addr}: {error}")),
        }
    }
    Err(format!("no master gave program {id} ({})", failures.join("; ")))
}

/// Whether the program at `path` defines job `name` with `args` at `parallelism` (and, with
/// `restore_from`, whether that savepoint restores into it): it builds the job's graph and plan in
/// a process of the program, within [`INSPECT_TIMEOUT`], and says what the job takes. Why not, in
/// the program's words.
pub async fn check_job(
    path: &Path,
    name: &str,
    args: &[String],
    parallelism: u32,
    restore_from: Option<&str>,
) -> Result<crate::submit::JobEstimate, String> {
    let mut command = tokio::process::Command::new(path);
    command.arg(CHECK_JOB_COMMAND).arg("--parallelism").arg(parallelism.to_string());
    if let Some(dir) = restore_from {
        command.arg("--restore-from").arg(dir);
    }
    command.arg("--").arg(name).args(args).stdin(std::process::Stdio::null()).kill_on_drop(true);
    let output = match tokio::time::timeout(INSPECT_TIMEOUT, command.output()).await {
        Err(_) => return Err(format!("the program did not check the job in {INSPECT_TIMEOUT:?}")),
        Ok(Err(error)) => return Err(format!("the program does not run here: {error}")),
        Ok(Ok(output)) => output,
    };
    if output.status.success() {
        let said = String::from_utf8_lossy(&output.stdout);
        return serde_json::from_str(said.trim())
            .map_err(|error| format!("the program's check said no estimate ({error}): {}", said.trim()));
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let said = said.trim().strip_prefix("error: ").unwrap_or(said.trim());
    Err(if said.is_empty() { format!("the program's check failed ({})", output.status) } else { said.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<bytes::Bytes, String>> {
        let parts: Vec<Result<bytes::Bytes, String>> = parts.iter().map(|part| Ok(bytes::Bytes::copy_from_slice(part))).collect();
        futures_util::stream::iter(parts)
    }

    #[tokio::test]
    async fn a_file_is_named_by_its_hash_and_nothing_is_kept_of_a_broken_upload() {
        let dir = tethys_storage::test_dir::TestDir::new("program-store");
        let store = ProgramStore::open(dir.path()).unwrap();
        let received = store.receive(chunks(&[b"#!/bin/sh\n", b"echo hi\n"])).await.unwrap();
        let expected: String = sha2::Sha256::digest(b"#!/bin/sh\necho hi\n").iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!((received.id.as_str(), received.size), (expected.as_str(), 18));
        assert_eq!(store.find(&received.id).unwrap(), Some(received.path.clone()));
        assert!(matches!(store.find("../etc/passwd"), Err(ProgramError::BadId(_))));

        let broken = futures_util::stream::iter(vec![Ok(bytes::Bytes::from_static(b"abc")), Err("connection reset".to_string())]);
        assert!(matches!(store.receive(broken).await, Err(ProgramError::Interrupted(reason)) if reason == "connection reset"));
        assert!(matches!(store.receive(chunks(&[])).await, Err(ProgramError::NotAProgram(_))));
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|entry| entry.file_name()).collect();
        assert_eq!(files, [std::ffi::OsString::from(&received.id)], "only the whole file stays");
    }

    #[tokio::test]
    async fn what_does_not_say_it_is_a_tethys_program_is_refused() {
        let dir = tethys_storage::test_dir::TestDir::new("program-inspect");
        let store = ProgramStore::open(dir.path()).unwrap();
        let script = |text: &'static str| chunks(&[b"#!/bin/sh\n", text.as_bytes()]);
        let silent = store.receive(script("exit 0\n")).await.unwrap();
        let error = inspect(&silent.path).await.unwrap_err().to_string();
        assert!(error.starts_with("not a Tethys program: 'program-info' did not say what it is"), "{error}");
        let other = r#"echo '{"program":"p","tethys_version":"0.0.1","build_id":"b","jobs":[]}'
"#;
        let error = inspect(&store.receive(script(other)).await.unwrap().path).await.unwrap_err().to_string();
        assert!(error.contains("built with Tethys 0.0.1"), "{error}");
        let data = store.receive(chunks(&[b"\x00\x01 not an executable"])).await.unwrap();
        let error = inspect(&data.path).await.unwrap_err().to_string();
        assert!(error.starts_with("not a Tethys program: it does not run here"), "{error}");
        let good = format!(
            "echo '{{\"program\":\"p\",\"tethys_version\":\"{}\",\"build_id\":\"b\",\"jobs\":[{{\"name\":\"j\",\"about\":\"\",\"builtin\":false}}]}}'\n",
            env!("CARGO_PKG_VERSION")
        );
        let good = store.receive(chunks(&[b"#!/bin/sh\n", good.as_bytes()])).await.unwrap();
        assert_eq!(inspect(&good.path).await.unwrap().jobs[0].name, "j");
    }
}
