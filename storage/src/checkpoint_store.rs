//! The checkpoint store: completed checkpoints and savepoints in a directory, each published
//! atomically.
//!
//! A checkpoint is a set of named files (the state of each operator's subtasks, source positions,
//! the job's metadata) under an id that only grows. It is written into `inprogress-<id>/`, every
//! file fsynced, then a `MANIFEST` listing each file with its length and CRC32 is written and
//! fsynced, and the directory is renamed to `chk-<id>/` (or `svp-<id>/` for a savepoint) and the
//! parent directory fsynced. The rename is the commit point: a crash before it leaves an
//! `inprogress-` directory that `open` removes, and a published checkpoint is always complete.
//! Reads check each file against the manifest, so a damaged file is an error naming it, never
//! wrong state.
//!
//! Retention keeps the newest `retained_checkpoints_max` checkpoints (Flink's
//! `state.checkpoints.num-retained`); savepoints are kept until deleted on purpose, as in Flink.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The manifest's name inside a checkpoint directory; no checkpoint file may take it.
pub const MANIFEST_FILE: &str = "MANIFEST";
/// Most checkpoints `RetentionOfCheckpoints` may keep.
pub const RETAINED_CHECKPOINTS_LIMIT: usize = 1024;
/// Default number of completed checkpoints kept (Flink's default is 1; two lets a restore fall
/// back one checkpoint when the newest is damaged).
pub const RETAINED_CHECKPOINTS_DEFAULT: usize = 2;
/// Longest name of a file in a checkpoint.
pub const CHECKPOINT_FILE_NAME_BYTES_MAX: usize = 200;

const MANIFEST_HEADER: &str = "tethys-checkpoint 1";
const IN_PROGRESS_PREFIX: &str = "inprogress-";
/// A published checkpoint being removed is first renamed so: a crash in the middle of removing its
/// files leaves a directory `open` removes, never a `chk-` directory missing some of them.
const REMOVING_PREFIX: &str = "removing-";
const CHECKPOINT_PREFIX: &str = "chk-";
const SAVEPOINT_PREFIX: &str = "svp-";

/// Why the store could not do what was asked, with the path concerned.
#[derive(Debug, Error)]
pub enum CheckpointStoreError {
    /// The file system refused an operation.
    #[error("checkpoint store: {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A checkpoint id not above the newest one.
    #[error("checkpoint {id} is not newer than checkpoint {newest}: ids only grow")]
    IdNotIncreasing {
        /// The id given.
        id: u64,
        /// The newest id in the store.
        newest: u64,
    },
    /// A file name that cannot be stored (empty, too long, a path, or the manifest's name).
    #[error("checkpoint file name {name:?} is not allowed: use 1 to 200 of [A-Za-z0-9._-], not {MANIFEST_FILE}")]
    BadFileName {
        /// The name given.
        name: String,
    },
    /// The same file written twice into one checkpoint.
    #[error("checkpoint file {name:?} written twice")]
    DuplicateFile {
        /// The name.
        name: String,
    },
    /// A file the checkpoint's manifest does not list.
    #[error("checkpoint {id} has no file {name:?}")]
    NoSuchFile {
        /// The checkpoint.
        id: u64,
        /// The name asked for.
        name: String,
    },
    /// A manifest or file that does not match what was published.
    #[error("checkpoint data at {path} is damaged: {reason}")]
    Damaged {
        /// The damaged file.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// A retention setting out of range.
    #[error("retained checkpoints = {0} is out of range: 1..=1024")]
    BadRetention(usize),
}

/// Removes unpublished directory `path` (an in-progress or half-removed checkpoint); one already
/// gone (another store on the directory removed it first) is what was wanted.
fn remove_if_present(path: &Path) -> Result<(), CheckpointStoreError> {
    match fs::remove_dir_all(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(io_error("remove unpublished", path)(error)),
        _ => Ok(()),
    }
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CheckpointStoreError + 'a {
    move |source| CheckpointStoreError::Io { action, path: path.to_path_buf(), source }
}

/// Whether a published checkpoint was taken by the job on its own or on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// Periodic, owned by the job: removed by retention.
    Checkpoint,
    /// On demand, owned by the user: kept until deleted.
    Savepoint,
}

impl CheckpointKind {
    fn prefix(self) -> &'static str {
        match self {
            CheckpointKind::Checkpoint => CHECKPOINT_PREFIX,
            CheckpointKind::Savepoint => SAVEPOINT_PREFIX,
        }
    }
}

/// One entry of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ManifestEntry {
    name: String,
    bytes: u64,
    crc32: u32,
}

/// A published checkpoint or savepoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    /// Its id.
    pub id: u64,
    /// Checkpoint or savepoint.
    pub kind: CheckpointKind,
    /// Its directory.
    pub path: PathBuf,
    files: Vec<ManifestEntry>,
}

impl CompletedCheckpoint {
    /// Names of its files, in the order they were written.
    pub fn file_names(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|entry| entry.name.as_str())
    }

    /// The contents of file `name`, checked against the manifest.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, CheckpointStoreError> {
        let entry = self
            .files
            .iter()
            .find(|entry| entry.name == name)
            .ok_or_else(|| CheckpointStoreError::NoSuchFile { id: self.id, name: name.to_string() })?;
        let path = self.path.join(name);
        let bytes = fs::read(&path).map_err(io_error("read", &path))?;
        if bytes.len() as u64 != entry.bytes {
            let reason = format!("{} bytes, the manifest says {}", bytes.len(), entry.bytes);
            return Err(CheckpointStoreError::Damaged { path, reason });
        }
        let crc32 = crc32fast::hash(&bytes);
        if crc32 != entry.crc32 {
            let reason = format!("CRC32 {crc32:08x}, the manifest says {:08x}", entry.crc32);
            return Err(CheckpointStoreError::Damaged { path, reason });
        }
        Ok(bytes)
    }
}

/// Completed checkpoints and savepoints in a directory.
#[derive(Debug)]
pub struct CheckpointStore {
    dir: PathBuf,
    retained_checkpoints_max: usize,
    /// Published checkpoints and savepoints, ascending by id.
    completed: Vec<CompletedCheckpoint>,
    /// Retention waits for [`CheckpointStore::retire`] instead of following each publish.
    retention_deferred: bool,
}

impl CheckpointStore {
    /// Opens (creating it if needed) the store in `dir`, keeping at most `retained_checkpoints_max`
    /// checkpoints. Removes what a crash left half written; reads every manifest, so a damaged
    /// one is reported here.
    pub fn open(dir: &Path, retained_checkpoints_max: usize) -> Result<CheckpointStore, CheckpointStoreError> {
        if !(1..=RETAINED_CHECKPOINTS_LIMIT).contains(&retained_checkpoints_max) {
            return Err(CheckpointStoreError::BadRetention(retained_checkpoints_max));
        }
        fs::create_dir_all(dir).map_err(io_error("create", dir))?;
        let mut completed = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_error("list", dir))? {
            let entry = entry.map_err(io_error("list", dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if name.starts_with(IN_PROGRESS_PREFIX) {
                // Another store on the directory may still be writing it (a coordinator being
                // replaced). It is renamed out of the store's names first, atomically: a writer
                // that publishes it meanwhile either renamed it to `chk-` first (it is then not
                // here to take, and stays published whole) or finds it gone and fails that
                // checkpoint. Removed in place, its files could go from under a publication and
                // leave a `chk-` directory without them. What cannot be taken now is never
                // published, and a later opening (or `begin` of its id) removes it.
                let removing = dir.join(format!("{REMOVING_PREFIX}{name}"));
                if fs::rename(&path, &removing).is_ok() {
                    let _ = remove_if_present(&removing);
                }
                continue;
            }
            if name.starts_with(REMOVING_PREFIX) {
                let _ = remove_if_present(&path);
                continue;
            }
            let parsed = published_name(&path);
            // Anything else in the directory is not the store's: leave it alone.
            if let Some((id, kind)) = parsed {
                let files = read_manifest(&path.join(MANIFEST_FILE), id)?;
                completed.push(CompletedCheckpoint { id, kind, path, files });
            }
        }
        completed.sort_by_key(|checkpoint| checkpoint.id);
        sync_dir(dir)?;
        Ok(CheckpointStore { dir: dir.to_path_buf(), retained_checkpoints_max, completed, retention_deferred: false })
    }

    /// The published checkpoint or savepoint in directory `path` (a `chk-<id>` or `svp-<id>` of
    /// a store), read without opening its store: nothing in the store is touched (opening it
    /// removes what is being written, which a running job may be doing). `None` if `path` is not
    /// named as one.
    pub fn read_published(path: &Path) -> Result<Option<CompletedCheckpoint>, CheckpointStoreError> {
        let Some((id, kind)) = published_name(path) else { return Ok(None) };
        let files = read_manifest(&path.join(MANIFEST_FILE), id)?;
        Ok(Some(CompletedCheckpoint { id, kind, path: path.to_path_buf(), files }))
    }

    /// Whether `path` is named as a published checkpoint or savepoint directory (`chk-<id>`,
    /// `svp-<id>`), whether or not it is there.
    pub fn names_published(path: &Path) -> bool {
        published_name(path).is_some()
    }

    /// The newest published checkpoint or savepoint in store directory `dir`, read without
    /// opening the store: nothing is created, removed or renamed, so a job may be writing and
    /// retiring checkpoints there meanwhile. One that retention removes while it is read is
    /// passed over for the next older one. `None` if there is none (or no directory).
    pub fn read_newest(dir: &Path) -> Result<Option<CompletedCheckpoint>, CheckpointStoreError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error("list", dir)(error)),
        };
        let mut published = Vec::new();
        for entry in entries {
            let path = entry.map_err(io_error("list", dir))?.path();
            if let Some((id, kind)) = published_name(&path) {
                published.push((id, kind, path));
            }
        }
        published.sort_by_key(|(id, _, _)| std::cmp::Reverse(*id));
        for (id, kind, path) in published {
            match read_manifest(&path.join(MANIFEST_FILE), id) {
                Ok(files) => return Ok(Some(CompletedCheckpoint { id, kind, path, files })),
                // Retired since the listing (renamed away): the next older one.
                Err(CheckpointStoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound && !path.exists() => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    /// The newest published checkpoint or savepoint: where a job restores from.
    pub fn latest(&self) -> Option<&CompletedCheckpoint> {
        self.completed.last()
    }

    /// The published checkpoint or savepoint `id`.
    pub fn get(&self, id: u64) -> Option<&CompletedCheckpoint> {
        self.completed.iter().find(|checkpoint| checkpoint.id == id)
    }

    /// Every published checkpoint and savepoint, oldest first.
    pub fn completed(&self) -> &[CompletedCheckpoint] {
        &self.completed
    }

    /// Starts writing checkpoint `id`, which must be newer than every published one. Nothing of
    /// it is visible until `CheckpointWriter::publish`.
    pub fn begin(&mut self, id: u64, kind: CheckpointKind) -> Result<CheckpointWriter<'_>, CheckpointStoreError> {
        if let Some(newest) = self.completed.last().map(|checkpoint| checkpoint.id).filter(|&newest| id <= newest) {
            return Err(CheckpointStoreError::IdNotIncreasing { id, newest });
        }
        let path = self.dir.join(format!("{IN_PROGRESS_PREFIX}{id:020}"));
        remove_if_present(&path)?;
        fs::create_dir(&path).map_err(io_error("create", &path))?;
        Ok(CheckpointWriter { store: self, id, kind, path, files: Vec::new() })
    }

    /// Deletes savepoint or checkpoint `id`, if present.
    pub fn delete(&mut self, id: u64) -> Result<(), CheckpointStoreError> {
        if let Some(position) = self.completed.iter().position(|checkpoint| checkpoint.id == id) {
            let checkpoint = self.completed.remove(position);
            self.remove_published(&checkpoint.path)?;
        }
        Ok(())
    }

    /// Makes retention wait for [`CheckpointStore::retire`]: a published checkpoint retires none
    /// by itself. For a job whose checkpoints complete only once confirmed elsewhere (the control
    /// plane's log): until the newer one is confirmed, the older one is still the one to restore.
    pub fn defer_retention(&mut self) {
        self.retention_deferred = true;
    }

    /// Removes the oldest checkpoints beyond the retained number; savepoints stay.
    pub fn retire(&mut self) -> Result<(), CheckpointStoreError> {
        let checkpoints = self.completed.iter().filter(|c| c.kind == CheckpointKind::Checkpoint).count();
        let mut excess = checkpoints.saturating_sub(self.retained_checkpoints_max);
        while excess > 0 {
            let oldest = self.completed.iter().position(|c| c.kind == CheckpointKind::Checkpoint).expect("an excess checkpoint exists");
            let checkpoint = self.completed.remove(oldest);
            self.remove_published(&checkpoint.path)?;
            excess -= 1;
        }
        Ok(())
    }

    /// Removes a published checkpoint's directory: renamed out of the store's names first (the
    /// commit point of a removal, as the rename to `chk-` is of a publication), then deleted.
    fn remove_published(&self, path: &Path) -> Result<(), CheckpointStoreError> {
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let removing = self.dir.join(format!("{REMOVING_PREFIX}{name}"));
        fs::rename(path, &removing).map_err(io_error("retire", path))?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&removing).map_err(io_error("remove retired", &removing))
    }
}

/// A checkpoint being written; dropped without `publish`, it is never visible (and `open` removes
/// its directory).
pub struct CheckpointWriter<'a> {
    store: &'a mut CheckpointStore,
    id: u64,
    kind: CheckpointKind,
    path: PathBuf,
    files: Vec<ManifestEntry>,
}

impl CheckpointWriter<'_> {
    /// Writes file `name` of the checkpoint, durably (fsynced).
    pub fn put(&mut self, name: &str, bytes: &[u8]) -> Result<(), CheckpointStoreError> {
        self.check_new_name(name)?;
        write_durably(&self.path.join(name), bytes)?;
        self.files.push(ManifestEntry { name: name.to_string(), bytes: bytes.len() as u64, crc32: crc32fast::hash(bytes) });
        Ok(())
    }

    /// Makes file `name` of the published checkpoint `from` a file of this one too, without
    /// writing it again: an incremental checkpoint's unchanged part. The file is hard-linked
    /// (copied where links are refused), so deleting `from` later leaves this one whole; its
    /// manifest entry (length, CRC32) is `from`'s.
    pub fn link(&mut self, name: &str, from: &CompletedCheckpoint) -> Result<(), CheckpointStoreError> {
        self.check_new_name(name)?;
        let entry = from
            .files
            .iter()
            .find(|entry| entry.name == name)
            .ok_or_else(|| CheckpointStoreError::NoSuchFile { id: from.id, name: name.to_string() })?
            .clone();
        let (source, target) = (from.path.join(name), self.path.join(name));
        if fs::hard_link(&source, &target).is_err() {
            let bytes = from.read(name)?;
            write_durably(&target, &bytes)?;
        }
        self.files.push(entry);
        Ok(())
    }

    fn check_new_name(&self, name: &str) -> Result<(), CheckpointStoreError> {
        let allowed = !name.is_empty()
            && name.len() <= CHECKPOINT_FILE_NAME_BYTES_MAX
            && name != MANIFEST_FILE
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && name != "."
            && name != "..";
        if !allowed {
            return Err(CheckpointStoreError::BadFileName { name: name.to_string() });
        }
        if self.files.iter().any(|entry| entry.name == name) {
            return Err(CheckpointStoreError::DuplicateFile { name: name.to_string() });
        }
        Ok(())
    }

    /// Publishes the checkpoint atomically (manifest, rename, directory fsync), then retires the
    /// oldest checkpoints beyond the retained number.
    pub fn publish(self) -> Result<CompletedCheckpoint, CheckpointStoreError> {
        let mut manifest = format!("{MANIFEST_HEADER}\nid {}\n", self.id);
        for entry in &self.files {
            manifest.push_str(&format!("file {} {} {:08x}\n", entry.name, entry.bytes, entry.crc32));
        }
        let manifest_crc32 = crc32fast::hash(manifest.as_bytes());
        manifest.push_str(&format!("end {manifest_crc32:08x}\n"));
        write_durably(&self.path.join(MANIFEST_FILE), manifest.as_bytes())?;
        sync_dir(&self.path)?;
        let published = self.store.dir.join(format!("{}{:020}", self.kind.prefix(), self.id));
        fs::rename(&self.path, &published).map_err(io_error("publish", &published))?;
        sync_dir(&self.store.dir)?;
        let checkpoint = CompletedCheckpoint { id: self.id, kind: self.kind, path: published, files: self.files };
        self.store.completed.push(checkpoint.clone());
        if !self.store.retention_deferred {
            self.store.retire()?;
        }
        Ok(checkpoint)
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), CheckpointStoreError> {
    let mut file = File::create(path).map_err(io_error("create", path))?;
    file.write_all(bytes).map_err(io_error("write", path))?;
    file.sync_all().map_err(io_error("sync", path))
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointStoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error("sync directory", dir))
}

/// The id and kind a published checkpoint's directory name says, if it is named as one.
fn published_name(path: &Path) -> Option<(u64, CheckpointKind)> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    [(CHECKPOINT_PREFIX, CheckpointKind::Checkpoint), (SAVEPOINT_PREFIX, CheckpointKind::Savepoint)]
        .into_iter()
        .find_map(|(prefix, kind)| name.strip_prefix(prefix).and_then(|id| id.parse::<u64>().ok()).map(|id| (id, kind)))
}

/// Reads and checks a manifest: its header, its id, every line, and its own CRC32.
fn read_manifest(path: &Path, id: u64) -> Result<Vec<ManifestEntry>, CheckpointStoreError> {
    let damaged = |reason: String| CheckpointStoreError::Damaged { path: path.to_path_buf(), reason };
    let text = fs::read_to_string(path).map_err(io_error("read", path))?;
    let Some(body_end) = text.rfind("end ") else { return Err(damaged("no end line".into())) };
    let (body, end) = text.split_at(body_end);
    let stated = end.trim_start_matches("end ").trim_end();
    if u32::from_str_radix(stated, 16).ok() != Some(crc32fast::hash(body.as_bytes())) {
        return Err(damaged(format!("manifest CRC32 does not match (end line {stated:?})")));
    }
    let mut lines = body.lines();
    if lines.next() != Some(MANIFEST_HEADER) {
        return Err(damaged("not a manifest of this version".into()));
    }
    if lines.next() != Some(format!("id {id}").as_str()) {
        return Err(damaged(format!("the manifest is not checkpoint {id}'s")));
    }
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                ["file", name, bytes, crc32] => Ok(ManifestEntry {
                    name: name.to_string(),
                    bytes: bytes.parse().map_err(|_| damaged(format!("bad length in {line:?}")))?,
                    crc32: u32::from_str_radix(crc32, 16).map_err(|_| damaged(format!("bad CRC32 in {line:?}")))?,
                }),
                _ => Err(damaged(format!("unexpected line {line:?}"))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    fn publish(store: &mut CheckpointStore, id: u64, kind: CheckpointKind, files: &[(&str, &[u8])]) -> CompletedCheckpoint {
        let mut writer = store.begin(id, kind).unwrap();
        for (name, bytes) in files {
            writer.put(name, bytes).unwrap();
        }
        writer.publish().unwrap()
    }

    #[test]
    fn a_checkpoint_being_written_when_another_store_opens_is_never_published_in_part() {
        let dir = TestDir::new("checkpoint-taken-while-written");
        let mut writing = CheckpointStore::open(dir.path(), 2).unwrap();
        publish(&mut writing, 4, CheckpointKind::Checkpoint, &[("state", b"four")]);
        let mut writer = writing.begin(5, CheckpointKind::Checkpoint).unwrap();
        writer.put("state", b"five").unwrap();
        // A coordinator replacing this one opens the store meanwhile.
        let opened = CheckpointStore::open(dir.path(), 2).unwrap();
        assert_eq!(opened.latest().map(|checkpoint| checkpoint.id), Some(4));
        let error = writer.publish().expect_err("its directory was taken");
        assert!(matches!(error, CheckpointStoreError::Io { .. }), "{error}");
        // Nothing of checkpoint 5 is left, and the store opens as it was.
        let names: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, [format!("{CHECKPOINT_PREFIX}{:020}", 4)]);
        assert_eq!(CheckpointStore::open(dir.path(), 2).unwrap().latest().map(|checkpoint| checkpoint.id), Some(4));
    }

    #[test]
    fn a_published_checkpoint_reads_back_after_reopening() {
        let dir = TestDir::new("checkpoint-roundtrip");
        let mut store = CheckpointStore::open(dir.path(), 2).unwrap();
        assert!(store.latest().is_none());
        publish(&mut store, 7, CheckpointKind::Checkpoint, &[("op-a.0", b"state of a"), ("sources", b"")]);
        let store = CheckpointStore::open(dir.path(), 2).unwrap();
        let latest = store.latest().unwrap();
        assert_eq!((latest.id, latest.kind), (7, CheckpointKind::Checkpoint));
        assert_eq!(latest.file_names().collect::<Vec<_>>(), ["op-a.0", "sources"]);
        assert_eq!(latest.read("op-a.0").unwrap(), b"state of a");
        assert_eq!(latest.read("sources").unwrap(), b"");
        assert!(matches!(latest.read("op-b.0"), Err(CheckpointStoreError::NoSuchFile { id: 7, .. })));
    }

    #[test]
    fn a_published_checkpoint_reads_alone_leaving_what_is_being_written() {
        let dir = TestDir::new("checkpoint-read-alone");
        let mut store = CheckpointStore::open(dir.path(), 2).unwrap();
        let published = publish(&mut store, 3, CheckpointKind::Checkpoint, &[("op-a.0", b"a")]);
        let mut writing = store.begin(4, CheckpointKind::Checkpoint).unwrap();
        writing.put("op-a.0", b"being written").unwrap();
        let read = CheckpointStore::read_published(&published.path).unwrap().unwrap();
        assert_eq!((read.id, read.kind), (3, CheckpointKind::Checkpoint));
        assert_eq!(read.read("op-a.0").unwrap(), b"a");
        writing.put("op-b.0", b"still being written").unwrap();
        assert_eq!(writing.publish().unwrap().id, 4, "reading did not disturb the checkpoint being written");
        assert!(CheckpointStore::read_published(dir.path()).unwrap().is_none(), "a store's directory is not a checkpoint");
    }

    #[test]
    fn a_removal_cut_short_leaves_no_damaged_checkpoint() {
        let dir = TestDir::new("checkpoint-removal-crash");
        let mut store = CheckpointStore::open(dir.path(), 1).unwrap();
        let first = publish(&mut store, 1, CheckpointKind::Checkpoint, &[("a", b"1"), ("b", b"1")]);
        publish(&mut store, 2, CheckpointKind::Checkpoint, &[("a", b"2")]);
        let names = || fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect::<Vec<_>>();
        assert!(!first.path.exists() && names().iter().all(|name| !name.starts_with(REMOVING_PREFIX)), "retired whole: {:?}", names());
        // A process killed half-way through removing checkpoint 2: renamed, its manifest gone.
        let published = store.latest().unwrap().path.clone();
        let removing = dir.path().join(format!("{REMOVING_PREFIX}{}", published.file_name().unwrap().to_string_lossy()));
        fs::rename(&published, &removing).unwrap();
        fs::remove_file(removing.join(MANIFEST_FILE)).unwrap();
        let reopened = CheckpointStore::open(dir.path(), 1).unwrap();
        assert!(reopened.latest().is_none(), "the removed checkpoint is gone, not damaged");
        assert!(!removing.exists(), "{:?}", names());
    }

    #[test]
    fn an_unpublished_checkpoint_is_never_visible_and_is_cleaned_up() {
        let dir = TestDir::new("checkpoint-crash");
        let mut store = CheckpointStore::open(dir.path(), 2).unwrap();
        publish(&mut store, 1, CheckpointKind::Checkpoint, &[("a", b"1")]);
        {
            let mut writer = store.begin(2, CheckpointKind::Checkpoint).unwrap();
            writer.put("a", b"2").unwrap();
            // Dropped before publish: the process died mid-checkpoint.
        }
        let store = CheckpointStore::open(dir.path(), 2).unwrap();
        assert_eq!(store.latest().unwrap().id, 1);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(leftovers.iter().all(|name| !name.starts_with(IN_PROGRESS_PREFIX)), "{leftovers:?}");
    }

    #[test]
    fn retention_keeps_the_newest_checkpoints_and_every_savepoint() {
        let dir = TestDir::new("checkpoint-retention");
        let mut store = CheckpointStore::open(dir.path(), 2).unwrap();
        publish(&mut store, 1, CheckpointKind::Checkpoint, &[]);
        publish(&mut store, 2, CheckpointKind::Savepoint, &[]);
        for id in 3..=6 {
            publish(&mut store, id, CheckpointKind::Checkpoint, &[("x", b"y")]);
        }
        let ids = |store: &CheckpointStore| store.completed().iter().map(|c| c.id).collect::<Vec<_>>();
        assert_eq!(ids(&store), [2, 5, 6]);
        assert_eq!(ids(&CheckpointStore::open(dir.path(), 2).unwrap()), [2, 5, 6], "the same on disk");
        store.delete(2).unwrap();
        assert_eq!(ids(&CheckpointStore::open(dir.path(), 2).unwrap()), [5, 6]);
    }

    #[test]
    fn ids_only_grow_and_names_are_checked() {
        let dir = TestDir::new("checkpoint-ids");
        let mut store = CheckpointStore::open(dir.path(), 1).unwrap();
        publish(&mut store, 5, CheckpointKind::Checkpoint, &[]);
        assert!(matches!(store.begin(5, CheckpointKind::Checkpoint), Err(CheckpointStoreError::IdNotIncreasing { id: 5, newest: 5 })));
        let mut writer = store.begin(6, CheckpointKind::Checkpoint).unwrap();
        for bad in ["", "MANIFEST", "../x", "a/b", "a b", ".."] {
            assert!(matches!(writer.put(bad, b""), Err(CheckpointStoreError::BadFileName { .. })), "{bad:?}");
        }
        writer.put("ok", b"").unwrap();
        assert!(matches!(writer.put("ok", b""), Err(CheckpointStoreError::DuplicateFile { .. })));
        assert!(matches!(CheckpointStore::open(dir.path(), 0), Err(CheckpointStoreError::BadRetention(0))));
    }

    #[test]
    fn damaged_files_and_manifests_are_reported_naming_the_path() {
        let dir = TestDir::new("checkpoint-damage");
        let mut store = CheckpointStore::open(dir.path(), 2).unwrap();
        let checkpoint = publish(&mut store, 1, CheckpointKind::Checkpoint, &[("state", b"0123456789")]);
        // A flipped byte, then a truncation: each is caught, never returned as state.
        fs::write(checkpoint.path.join("state"), b"0123456788").unwrap();
        let error = checkpoint.read("state").unwrap_err();
        assert!(matches!(&error, CheckpointStoreError::Damaged { path, .. } if path.ends_with("state")), "{error}");
        fs::write(checkpoint.path.join("state"), b"01234").unwrap();
        assert!(matches!(checkpoint.read("state"), Err(CheckpointStoreError::Damaged { .. })));
        // A damaged manifest fails the open, naming it.
        let manifest = checkpoint.path.join(MANIFEST_FILE);
        let text = fs::read_to_string(&manifest).unwrap().replace("file state 10", "file state 11");
        fs::write(&manifest, text).unwrap();
        let error = CheckpointStore::open(dir.path(), 2).unwrap_err();
        assert!(matches!(&error, CheckpointStoreError::Damaged { path, .. } if path.ends_with(MANIFEST_FILE)), "{error}");
    }

    #[test]
    fn a_linked_file_outlives_the_checkpoint_it_came_from() {
        let dir = TestDir::new("checkpoint-link");
        let mut store = CheckpointStore::open(dir.path(), 1).unwrap();
        let first = publish(&mut store, 1, CheckpointKind::Checkpoint, &[("unchanged", b"kept"), ("changed", b"old")]);
        let mut writer = store.begin(2, CheckpointKind::Checkpoint).unwrap();
        writer.link("unchanged", &first).unwrap();
        writer.put("changed", b"new").unwrap();
        assert!(matches!(writer.link("missing", &first), Err(CheckpointStoreError::NoSuchFile { .. })));
        let second = writer.publish().unwrap();
        // Retention of one removed the first checkpoint; the linked file is still whole.
        assert!(!first.path.exists());
        assert_eq!(second.read("unchanged").unwrap(), b"kept");
        assert_eq!(second.read("changed").unwrap(), b"new");
        let reopened = CheckpointStore::open(dir.path(), 1).unwrap();
        assert_eq!(reopened.latest().unwrap().read("unchanged").unwrap(), b"kept");
    }
}
