//! A sink writing records to files in a directory: plain lines, CSV or JSON lines, exactly once.
//!
//! [`FileSink`] owns everything between typed records and files on disk: creating the directory,
//! part files per subtask (so subtasks never share a file and need no coordination), buffered
//! encoding with the chosen format, and the two-phase commit of part files (see [`sink`](super)).
//! A writer writes a hidden in-progress file, `.part-<subtask>-<sequence>.<extension>.inprogress`;
//! `pre_commit` flushes, fsyncs and closes it, and its committable names it and its part file,
//! `part-<subtask>-<sequence>.<extension>`; the committer renames the one to the other (atomic;
//! done already when the part file exists and the in-progress file does not) and fsyncs the
//! directory. So a part file appears whole, once its checkpoint completed or the job finished, and
//! never holds records a restarted job writes again. Sequences start above every part or
//! in-progress file of the subtask found in the directory when the writer is created, so a
//! restarted job never overwrites a committed part. Every error names the path it concerns. The
//! part files match what [`FileSource`](crate::source::file::FileSource) reads back from the
//! directory, which skips hidden files.

use std::fmt::{self, Display};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Committable, Sink, SinkCommitter, SinkWriter};
use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;

/// Why a file sink could not create or write its files.
#[derive(Debug, thiserror::Error)]
pub enum FileSinkError {
    /// The output directory could not be created.
    #[error("cannot create directory {}: {source}", .path.display())]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A part file could not be created.
    #[error("cannot create {}: {source}", .path.display())]
    CreateFile {
        /// The part file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Writing or flushing a part file failed.
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        /// The part file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A record cannot be expressed in the sink's format (e.g. a nested map in CSV).
    #[error("cannot encode record {record} of {}: {message}", .path.display())]
    Encode {
        /// The part file.
        path: PathBuf,
        /// The record's number (1-based) in the part file.
        record: u64,
        /// What was wrong.
        message: String,
    },
    /// The output directory could not be listed or synced.
    #[error("cannot {operation} directory {}: {source}", .path.display())]
    Directory {
        /// `list` or `sync`.
        operation: &'static str,
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// An in-progress file could not be renamed to its part file.
    #[error("cannot commit {} as {}: {source}", .in_progress.display(), .part.display())]
    Commit {
        /// The in-progress file.
        in_progress: PathBuf,
        /// The part file.
        part: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Neither the in-progress file of a committable nor its part file exists: the pre-committed
    /// records are gone (deleted after the pre-commit, or aborted before being committed).
    #[error("cannot commit {} as {}: neither file exists", .in_progress.display(), .part.display())]
    CommittedPartMissing {
        /// The in-progress file.
        in_progress: PathBuf,
        /// The part file.
        part: PathBuf,
    },
    /// A leftover in-progress file could not be deleted.
    #[error("cannot delete {}: {source}", .path.display())]
    Delete {
        /// The in-progress file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// A committable that is not one a file sink of this directory and format encoded.
    #[error("file sink {}: malformed committable of {bytes} bytes: {reason}", .dir.display())]
    MalformedCommittable {
        /// The output directory.
        dir: PathBuf,
        /// The committable's length.
        bytes: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Why encoding one record failed.
enum EncodeError {
    Io(io::Error),
    Invalid(String),
}

/// How records are encoded. Every variant carries the encoding function chosen, with its bounds,
/// by the constructor, so the [`Sink`] impl needs no bound beyond [`Record`].
enum Encoder<T> {
    /// Text written through a `BufWriter`, one record per line.
    Text { extension: &'static str, format: &'static str, encode: fn(&mut BufWriter<File>, &T) -> Result<(), EncodeError> },
    /// CSV rows, with a header row of field names (struct records) at the top of each part file.
    Csv { has_header: bool, delimiter: u8, encode: fn(&mut csv::Writer<File>, &T) -> csv::Result<()> },
}

// By hand: a derive would require `T: Clone`, but only function pointers are copied.
impl<T> Clone for Encoder<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Encoder<T> {}

/// Writes records to part files in a directory, one file per subtask.
///
/// Build one with [`FileSink::lines`], [`FileSink::csv`] or [`FileSink::json_lines`]; the record
/// type is usually inferred from the stream it is given to:
///
/// ```no_run
/// use tethys_engine::sink::file::FileSink;
///
/// #[derive(serde::Serialize)]
/// struct Total {
///     symbol: String,
///     volume: u64,
/// }
///
/// let csv = FileSink::csv::<Total>("output/totals").with_delimiter(b'\t');
/// let json = FileSink::json_lines::<Total>("output/totals-json");
/// let text = FileSink::lines::<String>("output/log");
/// ```
///
/// Subtask `i` writes `<dir>/part-<i>-<sequence>.<extension>` (`txt`, `csv` or `jsonl`): one part
/// file per checkpoint in which it wrote records, and one for what it wrote after the last
/// checkpoint, each visible once committed (see the module documentation); a job without
/// checkpoints leaves `part-<i>-0.<extension>` for every subtask that wrote a record (in an empty
/// directory). The directory is created if missing. Other files in it are left alone, so part
/// files of an earlier run survive beside the new ones: give each run an empty directory. One
/// file sink per directory and format: a sink's committer deletes every in-progress file of the
/// format's extension when the job restarts.
pub struct FileSink<T> {
    dir: PathBuf,
    encoder: Encoder<T>,
}

/// The constructors. They live on `FileSink<String>` only so that they can be called as
/// `FileSink::csv::<Row>(dir)`; each returns a sink of its own record type.
impl FileSink<String> {
    /// Writes each record with `Display`, one per line (`\n`). A record whose text holds a line
    /// break spans several lines and is read back as several records.
    pub fn lines<T: Display>(dir: impl Into<PathBuf>) -> FileSink<T> {
        FileSink { dir: dir.into(), encoder: Encoder::Text { extension: "txt", format: "lines", encode: encode_display::<T> } }
    }

    /// Writes each record as a CSV row, fields quoted where needed. By default each part file
    /// starts with a header row of field names, written once before its first record (records
    /// must then be structs; tuples and plain values have no names and get no header), and fields
    /// are separated by commas; see [`with_header`](FileSink::with_header) and
    /// [`with_delimiter`](FileSink::with_delimiter). A part file without records stays empty.
    pub fn csv<T: Serialize>(dir: impl Into<PathBuf>) -> FileSink<T> {
        FileSink { dir: dir.into(), encoder: Encoder::Csv { has_header: true, delimiter: b',', encode: encode_csv::<T> } }
    }

    /// Writes each record as one line of JSON.
    pub fn json_lines<T: Serialize>(dir: impl Into<PathBuf>) -> FileSink<T> {
        let encoder = Encoder::Text { extension: "jsonl", format: "JSON lines", encode: encode_json::<T> };
        FileSink { dir: dir.into(), encoder }
    }
}

impl<T> FileSink<T> {
    /// Sets whether each CSV part file starts with a header row (default `true`). Only CSV sinks
    /// use it; the other formats ignore it.
    pub fn with_header(mut self, has_header: bool) -> Self {
        if let Encoder::Csv { has_header: current, .. } = &mut self.encoder {
            *current = has_header;
        }
        self
    }

    /// Sets the CSV field delimiter (default `b','`), e.g. `b';'` or `b'\t'`. Only CSV sinks use
    /// it; the other formats ignore it.
    pub fn with_delimiter(mut self, delimiter: u8) -> Self {
        if let Encoder::Csv { delimiter: current, .. } = &mut self.encoder {
            *current = delimiter;
        }
        self
    }

    /// Names part files with `extension` instead of their format's (`csv` for lines that are
    /// CSV rows already encoded). Only line sinks use it; the other formats ignore it.
    pub fn with_extension(mut self, extension: &'static str) -> Self {
        if let Encoder::Text { extension: current, .. } = &mut self.encoder {
            *current = extension;
        }
        self
    }

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The part file of sequence number `sequence` of subtask `subtask_index`, once committed.
    pub fn part_path(&self, subtask_index: usize, sequence: u64) -> PathBuf {
        self.dir.join(part_name(PartState::Committed, subtask_index, sequence, self.extension()))
    }

    /// The extension of the part files: `txt`, `csv` or `jsonl`.
    pub fn extension(&self) -> &'static str {
        match self.encoder {
            Encoder::Text { extension, .. } => extension,
            Encoder::Csv { .. } => "csv",
        }
    }
}

/// Whether a part file is committed or still being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartState {
    InProgress,
    Committed,
}

/// The file name of a part file: `part-<subtask>-<sequence>.<extension>`, hidden and suffixed
/// `.inprogress` while in progress.
fn part_name(state: PartState, subtask_index: usize, sequence: u64, extension: &str) -> String {
    match state {
        PartState::Committed => format!("part-{subtask_index}-{sequence}.{extension}"),
        PartState::InProgress => format!(".part-{subtask_index}-{sequence}.{extension}.inprogress"),
    }
}

/// The state, subtask and sequence of a part file name with `extension`; `None` for other names.
fn parse_part_name(name: &str, extension: &str) -> Option<(PartState, usize, u64)> {
    let (state, name) = match name.strip_prefix('.') {
        Some(hidden) => (PartState::InProgress, hidden.strip_suffix(".inprogress")?),
        None => (PartState::Committed, name),
    };
    let stem = name.strip_prefix("part-")?.strip_suffix(extension)?.strip_suffix('.')?;
    let (subtask_index, sequence) = stem.split_once('-')?;
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(subtask_index) || !digits(sequence) {
        return None;
    }
    Some((state, subtask_index.parse().ok()?, sequence.parse().ok()?))
}

/// The names of the files in `dir`; none if it does not exist.
fn file_names(dir: &Path) -> Result<Vec<String>, FileSinkError> {
    let list_error = |source| FileSinkError::Directory { operation: "list", path: dir.to_path_buf(), source };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(list_error(error)),
    };
    let mut names = Vec::new();
    for entry in entries {
        // A name that is not UTF-8 is not one of ours.
        if let Ok(name) = entry.map_err(list_error)?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Makes renames and deletions in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), FileSinkError> {
    File::open(dir).and_then(|dir| dir.sync_all()).map_err(|source| FileSinkError::Directory {
        operation: "sync",
        path: dir.to_path_buf(),
        source,
    })
}

impl<T> fmt::Debug for FileSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("FileSink");
        debug.field("dir", &self.dir);
        match self.encoder {
            Encoder::Text { format, .. } => debug.field("format", &format),
            Encoder::Csv { has_header, delimiter, .. } => {
                debug.field("format", &"CSV").field("has_header", &has_header).field("delimiter", &char::from(delimiter))
            }
        };
        debug.finish()
    }
}

fn encode_display<T: Display>(out: &mut BufWriter<File>, record: &T) -> Result<(), EncodeError> {
    writeln!(out, "{record}").map_err(EncodeError::Io)
}

fn encode_json<T: Serialize>(out: &mut BufWriter<File>, record: &T) -> Result<(), EncodeError> {
    serde_json::to_writer(&mut *out, record).map_err(|error| {
        if error.is_io() {
            EncodeError::Io(io::Error::from(error))
        } else {
            EncodeError::Invalid(error.to_string())
        }
    })?;
    out.write_all(b"\n").map_err(EncodeError::Io)
}

fn encode_csv<T: Serialize>(out: &mut csv::Writer<File>, record: &T) -> csv::Result<()> {
    out.serialize(record)
}

impl<T: Record> Sink<T> for FileSink<T> {
    fn create_writer(&self, context: &SubtaskContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        // Safe to race: every subtask creates the directory, and an existing one is success.
        fs::create_dir_all(&self.dir).map_err(|source| FileSinkError::CreateDirectory { path: self.dir.clone(), source })?;
        let extension = self.extension();
        let subtask_index = context.subtask_index;
        let next_sequence = file_names(&self.dir)?
            .iter()
            .filter_map(|name| parse_part_name(name, extension))
            .filter(|&(_, subtask, _)| subtask == subtask_index)
            .map(|(_, _, sequence)| sequence + 1)
            .max()
            .unwrap_or(0);
        Ok(Box::new(FileWriter {
            dir: self.dir.clone(),
            subtask_index,
            extension,
            encoder: self.encoder,
            next_sequence,
            part: None,
            last_checkpoint: None,
        }))
    }

    fn create_committer(&self) -> Result<Option<Box<dyn SinkCommitter>>, UserError> {
        Ok(Some(Box::new(FileCommitter { dir: self.dir.clone(), extension: self.extension() })))
    }
}

/// What a committable of a file sink holds: file names in the sink's directory.
#[derive(Debug, Serialize, Deserialize)]
struct FileCommittable {
    in_progress: String,
    part: String,
}

/// The writer of one subtask: the in-progress part file, opened at the first record after a
/// pre-commit.
struct FileWriter<T> {
    dir: PathBuf,
    subtask_index: usize,
    extension: &'static str,
    encoder: Encoder<T>,
    /// The sequence number of the next part file.
    next_sequence: u64,
    part: Option<OpenPart<T>>,
    last_checkpoint: Option<u64>,
}

/// An in-progress part file being written.
struct OpenPart<T> {
    sequence: u64,
    /// The in-progress file.
    path: PathBuf,
    /// Records written to it.
    records: u64,
    out: PartOut<T>,
}

/// An open part file with the encoder of its format.
enum PartOut<T> {
    Text {
        out: BufWriter<File>,
        encode: fn(&mut BufWriter<File>, &T) -> Result<(), EncodeError>,
    },
    /// The csv writer buffers its output itself, so it takes the bare file.
    Csv {
        out: csv::Writer<File>,
        encode: fn(&mut csv::Writer<File>, &T) -> csv::Result<()>,
    },
}

impl<T> FileWriter<T> {
    /// Creates the next in-progress file (never one that exists).
    fn open_part(&mut self) -> Result<OpenPart<T>, FileSinkError> {
        let sequence = self.next_sequence;
        let path = self.dir.join(part_name(PartState::InProgress, self.subtask_index, sequence, self.extension));
        let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(source) => return Err(FileSinkError::CreateFile { path, source }),
        };
        self.next_sequence += 1;
        let out = match self.encoder {
            Encoder::Text { encode, .. } => PartOut::Text { out: BufWriter::new(file), encode },
            Encoder::Csv { has_header, delimiter, encode } => {
                let out = csv::WriterBuilder::new().has_headers(has_header).delimiter(delimiter).from_writer(file);
                PartOut::Csv { out, encode }
            }
        };
        Ok(OpenPart { sequence, path, records: 0, out })
    }
}

impl<T> OpenPart<T> {
    /// Writes what is buffered to the file.
    fn flush(&mut self) -> Result<(), FileSinkError> {
        let flushed = match &mut self.out {
            PartOut::Text { out, .. } => out.flush(),
            PartOut::Csv { out, .. } => out.flush(),
        };
        flushed.map_err(|source| FileSinkError::Write { path: self.path.clone(), source })
    }

    /// Flushes and fsyncs the file.
    fn sync(&mut self) -> Result<(), FileSinkError> {
        self.flush()?;
        let file = match &self.out {
            PartOut::Text { out, .. } => out.get_ref(),
            PartOut::Csv { out, .. } => out.get_ref(),
        };
        file.sync_all().map_err(|source| FileSinkError::Write { path: self.path.clone(), source })
    }
}

impl<T: Record> SinkWriter<T> for FileWriter<T> {
    fn write_frame(&mut self, frame: Vec<T>) -> Result<(), UserError> {
        if frame.is_empty() {
            return Ok(());
        }
        let part = match &mut self.part {
            Some(part) => part,
            None => {
                let part = self.open_part()?;
                self.part.insert(part)
            }
        };
        for record in &frame {
            part.records += 1;
            let result = match &mut part.out {
                PartOut::Text { out, encode } => encode(out, record),
                PartOut::Csv { out, encode } => encode(out, record).map_err(|error| {
                    let message = error.to_string();
                    match error.into_kind() {
                        csv::ErrorKind::Io(source) => EncodeError::Io(source),
                        _ => EncodeError::Invalid(message),
                    }
                }),
            };
            match result {
                Ok(()) => {}
                Err(EncodeError::Io(source)) => return Err(FileSinkError::Write { path: part.path.clone(), source }.into()),
                Err(EncodeError::Invalid(message)) => {
                    return Err(FileSinkError::Encode { path: part.path.clone(), record: part.records, message }.into())
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        if let Some(part) = &mut self.part {
            part.flush()?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<Committable>, UserError> {
        if let Some(last) = self.last_checkpoint {
            assert!(checkpoint > last, "pre-commit for checkpoint {checkpoint} after checkpoint {last}: checkpoint ids only grow");
        }
        self.last_checkpoint = Some(checkpoint);
        let Some(part) = &mut self.part else {
            return Ok(None);
        };
        part.sync()?;
        let committable = FileCommittable {
            in_progress: part_name(PartState::InProgress, self.subtask_index, part.sequence, self.extension),
            part: part_name(PartState::Committed, self.subtask_index, part.sequence, self.extension),
        };
        // Closes the file; the next record opens the next one.
        self.part = None;
        Ok(Some(serde_json::to_vec(&committable).expect("a committable is plain data")))
    }
}

/// The committer of a file sink: renames in-progress files to part files in its directory.
struct FileCommitter {
    dir: PathBuf,
    extension: &'static str,
}

impl FileCommitter {
    /// The in-progress file and part file a committable names; both must be part file names of
    /// this sink, of the same subtask and sequence.
    fn decode(&self, committable: &[u8]) -> Result<(PathBuf, PathBuf), FileSinkError> {
        let malformed = |reason: String| FileSinkError::MalformedCommittable { dir: self.dir.clone(), bytes: committable.len(), reason };
        let FileCommittable { in_progress, part } = serde_json::from_slice(committable).map_err(|error| malformed(error.to_string()))?;
        let (from, to) = (parse_part_name(&in_progress, self.extension), parse_part_name(&part, self.extension));
        match (from, to) {
            (Some((PartState::InProgress, subtask, sequence)), Some((PartState::Committed, part_subtask, part_sequence)))
                if (subtask, sequence) == (part_subtask, part_sequence) =>
            {
                Ok((self.dir.join(in_progress), self.dir.join(part)))
            }
            _ => Err(malformed(format!("{in_progress:?} and {part:?} are not an in-progress file and its part file"))),
        }
    }
}

impl SinkCommitter for FileCommitter {
    fn commit(&mut self, committables: &[Committable]) -> Result<(), UserError> {
        let mut renamed = false;
        for committable in committables {
            let (in_progress, part) = self.decode(committable)?;
            match fs::rename(&in_progress, &part) {
                Ok(()) => renamed = true,
                // Committed before (a rename is atomic): nothing to do.
                Err(error) if error.kind() == io::ErrorKind::NotFound && part.is_file() => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    return Err(FileSinkError::CommittedPartMissing { in_progress, part }.into())
                }
                Err(source) => return Err(FileSinkError::Commit { in_progress, part, source }.into()),
            }
        }
        if renamed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn abort_uncommitted(&mut self) -> Result<(), UserError> {
        let mut deleted = false;
        for name in file_names(&self.dir)? {
            if !matches!(parse_part_name(&name, self.extension), Some((PartState::InProgress, ..))) {
                continue;
            }
            let path = self.dir.join(name);
            match fs::remove_file(&path) {
                Ok(()) => deleted = true,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(FileSinkError::Delete { path, source }.into()),
            }
        }
        if deleted {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde::Deserialize;

    use super::*;
    use crate::sink::FINAL_CHECKPOINT;
    use crate::source::file::FileSource;
    use crate::source::{ReaderStatus, Source};
    use crate::{EngineConfig, StreamEnvironment};

    /// A fresh directory path under the system temp directory (not created), removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let unique = format!("tethys-file-sink-{}-{}-{name}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            let path = std::env::temp_dir().join(unique);
            let _ = fs::remove_dir_all(&path);
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn context(subtask_index: usize, parallelism: usize) -> SubtaskContext {
        SubtaskContext {
            operator_name: "Sink: files".to_string(),
            subtask_index,
            parallelism,
            max_parallelism: 128,
            frame_records_max: 2,
            frame_bytes_max: crate::config::FRAME_BYTES_MAX_DEFAULT,
            watermark_interval: std::time::Duration::from_millis(10),
            side_outputs: Vec::new(),
            state_dir: None,
            state_cache_bytes: None,
            output_tap: None,
        }
    }

    /// Writes `records` through `parallelism` subtasks, record `i` to subtask `i mod parallelism`,
    /// two records a frame, then does what the runtime does when a job without checkpoints
    /// finishes: pre-commits [`FINAL_CHECKPOINT`] and commits the committables.
    fn write<T: Record + Clone>(sink: &FileSink<T>, records: &[T], parallelism: usize) {
        let mut committables = Vec::new();
        for subtask in 0..parallelism {
            let mut writer = sink.create_writer(&context(subtask, parallelism)).unwrap();
            let mine: Vec<T> = records.iter().skip(subtask).step_by(parallelism).cloned().collect();
            for frame in mine.chunks(2) {
                writer.write_frame(frame.to_vec()).unwrap();
            }
            writer.finish().unwrap();
            committables.extend(writer.pre_commit(FINAL_CHECKPOINT).unwrap());
        }
        committer(sink).commit(&committables).unwrap();
    }

    fn committer<T: Record>(sink: &FileSink<T>) -> Box<dyn SinkCommitter> {
        sink.create_committer().unwrap().expect("a file sink has a committer")
    }

    /// The names of the files in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    /// Reads the whole directory back with one subtask: part files in name order.
    fn read<T: Record>(source: FileSource<T>) -> Vec<T> {
        let mut reader = source.create_reader(&context(0, 1)).unwrap();
        let mut records = Vec::new();
        loop {
            let mut frame = Vec::new();
            let status = reader.poll_frame(&mut frame, 3).unwrap();
            records.extend(frame);
            if status == ReaderStatus::Finished {
                return records;
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    struct Row {
        id: u32,
        name: String,
        price: f64,
    }

    fn rows() -> Vec<Row> {
        (0..7).map(|id| Row { id, name: format!("name {id}, \"quoted\""), price: f64::from(id) * 1.25 }).collect()
    }

    /// Records in part order: subtask 0's, then subtask 1's.
    fn by_part<T: Clone>(records: &[T]) -> Vec<T> {
        records.iter().step_by(2).chain(records.iter().skip(1).step_by(2)).cloned().collect()
    }

    #[test]
    fn file_lines_round_trip() {
        let dir = TempDir::new("lines");
        let records: Vec<String> = vec!["one".into(), "two words".into(), String::new(), "ünïcode".into(), "last".into()];
        let sink = FileSink::lines(&dir.0);
        write(&sink, &records, 2);
        assert_eq!(names(&dir.0), vec!["part-0-0.txt", "part-1-0.txt"]);
        assert_eq!(sink.part_path(1, 0), dir.0.join("part-1-0.txt"));
        assert_eq!(read(FileSource::lines(&dir.0)), by_part(&records));
    }

    #[test]
    fn file_csv_round_trip_with_one_header_per_part_file() {
        let dir = TempDir::new("csv");
        let records = rows();
        write(&FileSink::csv(&dir.0), &records, 2);
        for part in ["part-0-0.csv", "part-1-0.csv"] {
            let text = fs::read_to_string(dir.0.join(part)).unwrap();
            assert_eq!(text.matches("id,name,price").count(), 1, "{text}");
            assert!(text.starts_with("id,name,price\n"), "{text}");
        }
        assert_eq!(read(FileSource::csv::<Row>(&dir.0)), by_part(&records));
    }

    #[test]
    fn file_csv_round_trip_without_header_and_other_delimiter() {
        let dir = TempDir::new("csv-tab");
        let records = rows();
        write(&FileSink::csv(&dir.0).with_header(false).with_delimiter(b'\t'), &records, 1);
        let text = fs::read_to_string(dir.0.join("part-0-0.csv")).unwrap();
        assert!(text.starts_with("0\t"), "{text}");
        let source = FileSource::csv::<Row>(&dir.0).with_header(false).with_delimiter(b'\t');
        assert_eq!(read(source), records);
    }

    #[test]
    fn file_json_lines_round_trip() {
        let dir = TempDir::new("json");
        let records = rows();
        write(&FileSink::json_lines(&dir.0), &records, 2);
        let text = fs::read_to_string(dir.0.join("part-0-0.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert_eq!(read(FileSource::json_lines::<Row>(&dir.0)), by_part(&records));
    }

    // Through the runtime: the part files appear when the job has finished (the writers
    // pre-commit after `finish`, the job's committer commits).
    #[test]
    fn file_job_reads_a_directory_and_writes_part_files_through_the_runtime() {
        let input = TempDir::new("job-in");
        let output = TempDir::new("job-out");
        let records = rows();
        // Three input files: subtask 0 of the source reads two of them, subtask 1 one.
        write(&FileSink::csv(&input.0), &records, 3);

        let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism: 2, ..EngineConfig::default() });
        env.source("rows", FileSource::csv::<Row>(&input.0))
            .map(|row: Row| Row { price: row.price * 2.0, ..row })
            .sink("files", FileSink::json_lines(&output.0));
        env.execute("file-copy").unwrap();

        assert!(output.0.join("part-0-0.jsonl").is_file() && output.0.join("part-1-0.jsonl").is_file());
        let mut copied = read(FileSource::json_lines::<Row>(&output.0));
        copied.sort_by_key(|row| row.id);
        let expected: Vec<Row> = records.into_iter().map(|row| Row { price: row.price * 2.0, ..row }).collect();
        assert_eq!(copied, expected);
    }

    #[test]
    fn file_job_over_a_malformed_file_fails_naming_file_and_line() {
        let input = TempDir::new("job-bad");
        fs::create_dir_all(&input.0).unwrap();
        fs::write(input.0.join("good.jsonl"), "{\"id\":1,\"name\":\"a\",\"price\":1}\n").unwrap();
        fs::write(input.0.join("bad.jsonl"), "{\"id\":2,\"name\":\"b\",\"price\":2}\n{\"id\":3,\n").unwrap();

        let env = StreamEnvironment::new(EngineConfig { slots: 2, parallelism: 2, ..EngineConfig::default() });
        env.source("rows", FileSource::json_lines::<Row>(&input.0)).sink("discard", crate::sink::discard::DiscardSink::new());
        let message = env.execute("file-bad").unwrap_err().to_string();
        assert!(message.contains("bad.jsonl") && message.contains("line 2"), "{message}");
    }

    #[test]
    fn file_sink_creates_missing_directories() {
        let dir = TempDir::new("nested");
        let nested = dir.0.join("a").join("b");
        write(&FileSink::lines(&nested), &[1u32, 2, 3], 1);
        assert_eq!(fs::read_to_string(nested.join("part-0-0.txt")).unwrap(), "1\n2\n3\n");
    }

    #[test]
    fn file_sink_error_names_the_path() {
        let dir = TempDir::new("blocked");
        fs::create_dir_all(&dir.0).unwrap();
        let blocker = dir.0.join("not-a-directory");
        fs::write(&blocker, "a file where the output directory should be").unwrap();
        let sink = FileSink::lines::<String>(&blocker);
        let Err(error) = sink.create_writer(&context(0, 1)) else {
            panic!("writing under a regular file succeeded");
        };
        let message = error.to_string();
        assert!(message.contains(&blocker.display().to_string()), "{message}");
        assert!(matches!(error.downcast_ref::<FileSinkError>(), Some(FileSinkError::CreateDirectory { .. })));
    }

    #[test]
    fn file_csv_record_that_cannot_be_encoded_names_file_and_record() {
        #[derive(Clone, Serialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
        struct Nested {
            id: u32,
            tags: BTreeMap<String, u32>,
        }
        let dir = TempDir::new("csv-nested");
        let sink = FileSink::csv(&dir.0);
        let mut writer = sink.create_writer(&context(0, 1)).unwrap();
        let record = Nested { id: 1, tags: BTreeMap::from([("a".to_string(), 1)]) };
        let error = writer.write_frame(vec![record]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(".part-0-0.csv.inprogress") && message.contains("record 1"), "{message}");
        assert!(matches!(error.downcast_ref::<FileSinkError>(), Some(FileSinkError::Encode { record: 1, .. })));
    }

    /// The records of `dir` readers see, in part-file order.
    fn visible(dir: &Path) -> Vec<String> {
        read(FileSource::lines(dir))
    }

    fn frame(records: &[&str]) -> Vec<String> {
        records.iter().map(|record| record.to_string()).collect()
    }

    #[test]
    fn file_sink_makes_parts_visible_when_committed_and_only_once() {
        let dir = TempDir::new("commit");
        let sink = FileSink::lines::<String>(&dir.0);
        let mut writer = sink.create_writer(&context(0, 1)).unwrap();
        writer.write_frame(frame(&["a", "b"])).unwrap();
        let first = writer.pre_commit(1).unwrap().expect("records were written");
        writer.write_frame(frame(&["c"])).unwrap();
        let second = writer.pre_commit(2).unwrap().expect("records were written");
        assert_eq!(writer.pre_commit(3).unwrap(), None, "nothing written since the last pre-commit");
        assert_eq!(visible(&dir.0), Vec::<String>::new(), "pre-committed is not visible");

        let mut committer = committer(&sink);
        committer.commit(std::slice::from_ref(&first)).unwrap();
        assert_eq!(visible(&dir.0), vec!["a", "b"]);
        committer.commit(std::slice::from_ref(&first)).unwrap();
        committer.commit(&[first, second]).unwrap();
        assert_eq!(visible(&dir.0), vec!["a", "b", "c"], "committing again changes nothing");
        assert_eq!(names(&dir.0), vec!["part-0-0.txt", "part-0-1.txt"]);
    }

    #[test]
    fn file_sink_abort_uncommitted_deletes_what_was_not_committed() {
        let dir = TempDir::new("abort");
        let sink = FileSink::lines::<String>(&dir.0);
        let mut writer = sink.create_writer(&context(0, 1)).unwrap();
        writer.write_frame(frame(&["a"])).unwrap();
        let first = writer.pre_commit(1).unwrap().unwrap();
        writer.write_frame(frame(&["b"])).unwrap();
        writer.pre_commit(2).unwrap().unwrap();
        writer.write_frame(frame(&["c"])).unwrap();
        fs::write(dir.0.join(".part-0-9.csv.inprogress"), "another format's file").unwrap();

        let mut committer = committer(&sink);
        committer.commit(&[first]).unwrap();
        committer.abort_uncommitted().unwrap();
        assert_eq!(names(&dir.0), vec![".part-0-9.csv.inprogress", "part-0-0.txt"], "only this sink's in-progress files go");
        assert_eq!(visible(&dir.0), vec!["a"]);
    }

    #[test]
    fn file_sink_restart_gives_each_record_once_and_never_overwrites_a_part() {
        let dir = TempDir::new("restart");
        let sink = FileSink::lines::<String>(&dir.0);
        let mut old = sink.create_writer(&context(0, 1)).unwrap();
        old.write_frame(frame(&["a"])).unwrap();
        let checkpoint_1 = old.pre_commit(1).unwrap().unwrap();
        committer(&sink).commit(std::slice::from_ref(&checkpoint_1)).unwrap();
        old.write_frame(frame(&["b"])).unwrap();
        old.pre_commit(2).unwrap().unwrap(); // checkpoint 2 never completes
        old.write_frame(frame(&["c"])).unwrap();
        drop(old); // the crash

        // Restore from checkpoint 1: commit what it holds (again), abort the rest, replay.
        let mut committer = committer(&sink);
        committer.commit(std::slice::from_ref(&checkpoint_1)).unwrap();
        committer.abort_uncommitted().unwrap();
        let mut new = sink.create_writer(&context(0, 1)).unwrap();
        new.write_frame(frame(&["b", "c"])).unwrap();
        new.finish().unwrap();
        let last = new.pre_commit(FINAL_CHECKPOINT).unwrap().unwrap();
        committer.commit(&[last]).unwrap();

        assert_eq!(visible(&dir.0), vec!["a", "b", "c"]);
        assert_eq!(fs::read_to_string(sink.part_path(0, 0)).unwrap(), "a\n", "the committed part is untouched");
        assert_eq!(names(&dir.0), vec!["part-0-0.txt", "part-0-1.txt"]);
    }

    #[test]
    fn file_sink_new_writer_continues_after_the_parts_in_the_directory() {
        let dir = TempDir::new("sequence");
        let sink = FileSink::lines::<String>(&dir.0);
        write(&sink, &frame(&["a", "b"]), 2);
        fs::write(dir.0.join(".part-1-4.txt.inprogress"), "left over").unwrap();
        write(&sink, &frame(&["c", "d"]), 2);
        assert_eq!(names(&dir.0), vec![".part-1-4.txt.inprogress", "part-0-0.txt", "part-0-1.txt", "part-1-0.txt", "part-1-5.txt"]);
    }

    #[test]
    fn file_sink_subtask_without_records_writes_no_file() {
        let dir = TempDir::new("no-records");
        let sink = FileSink::json_lines::<Row>(&dir.0);
        let mut writer = sink.create_writer(&context(0, 1)).unwrap();
        writer.write_frame(Vec::new()).unwrap();
        writer.finish().unwrap();
        assert_eq!(writer.pre_commit(FINAL_CHECKPOINT).unwrap(), None);
        assert!(names(&dir.0).is_empty());
    }

    #[test]
    fn file_commit_errors_name_the_files() {
        let dir = TempDir::new("commit-errors");
        let sink = FileSink::lines::<String>(&dir.0);
        let mut writer = sink.create_writer(&context(0, 1)).unwrap();
        writer.write_frame(frame(&["a"])).unwrap();
        let committable = writer.pre_commit(1).unwrap().unwrap();
        fs::remove_file(dir.0.join(".part-0-0.txt.inprogress")).unwrap();
        let error = committer(&sink).commit(&[committable]).unwrap_err();
        assert!(matches!(error.downcast_ref::<FileSinkError>(), Some(FileSinkError::CommittedPartMissing { .. })), "{error}");
        assert!(error.to_string().contains("part-0-0.txt"), "{error}");

        let escaping = serde_json::to_vec(&FileCommittable { in_progress: "../x".into(), part: "part-0-0.txt".into() }).unwrap();
        let error = committer(&sink).commit(&[escaping]).unwrap_err();
        assert!(matches!(error.downcast_ref::<FileSinkError>(), Some(FileSinkError::MalformedCommittable { .. })), "{error}");
    }
}
