//! A source reading records from files: plain lines, CSV or JSON lines.
//!
//! [`FileSource`] owns everything between a path on disk and typed records: finding the files (a
//! single file, or every regular file of a directory sorted by name, except hidden ones: a name
//! starting with `.` marks a file being written, such as a file sink's in-progress part),
//! splitting them between subtasks, buffered reading, and decoding each record with the file's
//! format. The split is by whole file: subtask `i` of `p` reads files `i, i+p, i+2p, ...` of the
//! sorted list, so a single file is read by one subtask alone and a job reads in parallel only as
//! many files as it has.
//!
//! A record that cannot be decoded fails the job with a [`FileSourceError`] that names the file,
//! the line and what was wrong; nothing is skipped silently and nothing panics on bad input.
//!
//! A reader is replayable. Its position, which checkpoints record, is the file it reads (its index
//! in the subtask's list) and the byte offset where its next record starts, packed into a `u64` as
//! `file_index << 48 | offset_bytes`: the index in the high 16 bits, the offset in the low 48.
//! Index `n` (the subtask's file count) with offset 0 means finished. Checkpoints depend on this
//! encoding, so it must not change. A subtask reads at most 65,535 files and a file may hold at
//! most 2^48 - 1 bytes; more is refused with an error rather than recorded wrongly. Seeking reads
//! the file again up to the offset, to learn its line number and, for CSV, its header. A position
//! names a file by index only, so a restore must see the same files under the same names with the
//! same parallelism: a file added, removed or renamed before it moves the index to another file,
//! and seeking can only check that the offset lies within that file at the start of a record.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use csv::StringRecord;
use serde::de::DeserializeOwned;

use super::{ReaderStatus, Source, SourceReader};
use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;

/// Why a file source could not list, open or decode its input.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    /// The path, a directory entry or a file could not be opened or inspected (missing, no
    /// permission, a broken link).
    #[error("cannot read {}: {source}", .path.display())]
    Access {
        /// The path that could not be read.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Reading an open file failed partway.
    #[error("cannot read {} at line {line}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The line (1-based) being read when it failed.
        line: u64,
        /// The operating system's error.
        source: io::Error,
    },
    /// A record could not be decoded.
    #[error("malformed {format} in {} at line {line}: {message}", .path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The line (1-based) where the record starts.
        line: u64,
        /// What was being read: `line`, `CSV row` or `JSON line`.
        format: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A subtask would read more files than the file index of a position can number.
    #[error(
        "{}: subtask {subtask_index} would read {files} files, more than the {files_max} a checkpoint position can number; \
         raise the parallelism or merge files",
        .path.display()
    )]
    TooManyFiles {
        /// The file or directory read.
        path: PathBuf,
        /// The subtask.
        subtask_index: usize,
        /// How many files it would read.
        files: usize,
        /// The most files one subtask may read.
        files_max: usize,
    },
    /// A file is longer than the byte offset of a position can address.
    #[error("{} reaches byte {size_bytes}, beyond the {offset_max_bytes} bytes a checkpoint position can address", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, or the offset reached while reading it.
        size_bytes: u64,
        /// The largest offset a position holds.
        offset_max_bytes: u64,
    },
    /// `seek` to a position whose file index this subtask does not have.
    #[error(
        "cannot seek to position {position} (file {file_index}, byte {offset_bytes}): subtask {subtask_index} reads {files} \
         files of {} (files added or removed, or another parallelism?)",
        .path.display()
    )]
    SeekFileIndex {
        /// The file or directory read.
        path: PathBuf,
        /// The position asked for.
        position: u64,
        /// The subtask.
        subtask_index: usize,
        /// The file index the position holds.
        file_index: usize,
        /// The byte offset the position holds.
        offset_bytes: u64,
        /// How many files the subtask reads (index `files` at byte 0 means finished).
        files: usize,
    },
    /// `seek` to an offset beyond the end of the file.
    #[error("cannot seek to byte {offset_bytes} of {}: the file holds {size_bytes} bytes (changed since the checkpoint?)", .path.display())]
    SeekPastEnd {
        /// The file.
        path: PathBuf,
        /// The offset asked for.
        offset_bytes: u64,
        /// The file's size.
        size_bytes: u64,
    },
    /// `seek` to an offset within the file where no record starts.
    #[error("cannot seek to byte {offset_bytes} of {}: no {format} starts there (changed since the checkpoint?)", .path.display())]
    SeekNotRecordStart {
        /// The file.
        path: PathBuf,
        /// The offset asked for.
        offset_bytes: u64,
        /// What a record is: `line`, `CSV row` or `JSON line`.
        format: &'static str,
    },
}

/// Bits of a position holding the byte offset in the file; the file index takes the other 16.
const OFFSET_BITS: u32 = 48;

/// The largest byte offset a position holds.
const OFFSET_MAX_BYTES: u64 = (1 << OFFSET_BITS) - 1;

/// The most files one subtask reads: index `files` (finished) must fit in the index bits too.
const FILES_PER_SUBTASK_MAX: usize = (1 << (u64::BITS - OFFSET_BITS)) - 1;

/// Where a reader is: the file (index in its subtask's list) and the byte where the next record
/// starts. Encoded as `file_index << 48 | offset_bytes` (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FilePosition {
    file_index: usize,
    offset_bytes: u64,
}

impl FilePosition {
    fn encode(self) -> u64 {
        // The reader refuses more files and longer files before it could report such a position.
        assert!(self.file_index <= FILES_PER_SUBTASK_MAX, "file index {} beyond the position's bits", self.file_index);
        assert!(self.offset_bytes <= OFFSET_MAX_BYTES, "byte offset {} beyond the position's bits", self.offset_bytes);
        (self.file_index as u64) << OFFSET_BITS | self.offset_bytes
    }

    fn decode(position: u64) -> FilePosition {
        // At most 16 bits: fits a usize on every platform Rust supports.
        FilePosition { file_index: (position >> OFFSET_BITS) as usize, offset_bytes: position & OFFSET_MAX_BYTES }
    }
}

/// Refuses a file size or offset a position could not hold.
fn check_addressable(path: &Path, size_bytes: u64) -> Result<(), FileSourceError> {
    if size_bytes > OFFSET_MAX_BYTES {
        return Err(FileSourceError::TooLarge { path: path.to_path_buf(), size_bytes, offset_max_bytes: OFFSET_MAX_BYTES });
    }
    Ok(())
}

/// Refuses a file count for one subtask that a position's file index could not number.
fn check_file_count(path: &Path, subtask_index: usize, files: usize) -> Result<(), FileSourceError> {
    if files > FILES_PER_SUBTASK_MAX {
        return Err(FileSourceError::TooManyFiles { path: path.to_path_buf(), subtask_index, files, files_max: FILES_PER_SUBTASK_MAX });
    }
    Ok(())
}

/// How records are decoded. Every variant carries the decoding function chosen, with its bounds,
/// by the constructor, so the [`Source`] impl needs no bound beyond [`Record`].
enum Decoder<T> {
    /// One record per line, decoded from the line's bytes (line end removed).
    Lines {
        /// What a record is called in errors.
        format: &'static str,
        /// Whether lines holding only whitespace are skipped instead of decoded.
        skip_blank: bool,
        decode: fn(&[u8]) -> Result<T, String>,
    },
    /// CSV rows, decoded with the header row (if any) naming the fields.
    Csv { has_header: bool, delimiter: u8, decode: fn(&StringRecord, Option<&StringRecord>) -> Result<T, csv::Error> },
}

// By hand: a derive would require `T: Clone`, but only function pointers are copied.
impl<T> Clone for Decoder<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Decoder<T> {}

/// Reads records from a file or from the regular files of a directory.
///
/// Build one with [`FileSource::lines`], [`FileSource::csv`] or [`FileSource::json_lines`]:
///
/// ```no_run
/// use tethys_engine::source::file::FileSource;
///
/// #[derive(serde::Deserialize)]
/// struct Trade {
///     symbol: String,
///     price: f64,
/// }
///
/// let lines = FileSource::lines("input/log.txt");
/// let trades = FileSource::csv::<Trade>("input/trades").with_delimiter(b';');
/// let events = FileSource::json_lines::<serde_json::Value>("input/events.jsonl");
/// ```
///
/// A path that is a directory stands for every regular file directly in it (links to regular
/// files included, subdirectories and hidden files, whose names start with `.`, not), sorted by
/// name; an empty directory yields no records. Each subtask lists the directory when its reader
/// is created, so the directory must not change while the job starts, nor between a checkpoint
/// and a restore from it (a position names a file by its index in the list; see the module doc).
/// Subtask `i` of `p` reads files `i, i+p, ...`: a single file is read by one subtask, and
/// subtasks beyond the number of files finish at once.
pub struct FileSource<T> {
    path: PathBuf,
    decoder: Decoder<T>,
}

/// The constructors. They live on `FileSource<String>` only so that they can be called as
/// `FileSource::csv::<Row>(path)`; each returns a source of its own record type.
impl FileSource<String> {
    /// Reads each line as one `String` record, without its line end (`\n` or `\r\n`). Empty lines
    /// are records too; a line that is not valid UTF-8 is an error.
    pub fn lines(path: impl Into<PathBuf>) -> FileSource<String> {
        FileSource { path: path.into(), decoder: Decoder::Lines { format: "line", skip_blank: false, decode: decode_utf8 } }
    }

    /// Reads CSV rows, each deserialized into a `T`. By default the first row of every file is a
    /// header naming the fields (so struct fields are matched by name) and fields are separated by
    /// commas; see [`with_header`](FileSource::with_header) and
    /// [`with_delimiter`](FileSource::with_delimiter). Every row must have as many fields as the
    /// first one.
    pub fn csv<T: DeserializeOwned>(path: impl Into<PathBuf>) -> FileSource<T> {
        FileSource { path: path.into(), decoder: Decoder::Csv { has_header: true, delimiter: b',', decode: decode_csv::<T> } }
    }

    /// Reads one JSON value per line, each deserialized into a `T`. Lines holding only whitespace
    /// are skipped.
    pub fn json_lines<T: DeserializeOwned>(path: impl Into<PathBuf>) -> FileSource<T> {
        let decoder = Decoder::Lines { format: "JSON line", skip_blank: true, decode: decode_json::<T> };
        FileSource { path: path.into(), decoder }
    }
}

impl<T> FileSource<T> {
    /// Sets whether the first row of every CSV file is a header (default `true`). Without a
    /// header, fields are matched by position. Only CSV sources use it; the other formats ignore
    /// it.
    pub fn with_header(mut self, has_header: bool) -> Self {
        if let Decoder::Csv { has_header: current, .. } = &mut self.decoder {
            *current = has_header;
        }
        self
    }

    /// Sets the CSV field delimiter (default `b','`), e.g. `b';'` or `b'\t'`. Only CSV sources use
    /// it; the other formats ignore it.
    pub fn with_delimiter(mut self, delimiter: u8) -> Self {
        if let Decoder::Csv { delimiter: current, .. } = &mut self.decoder {
            *current = delimiter;
        }
        self
    }

    /// The file or directory read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl<T> fmt::Debug for FileSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("FileSource");
        debug.field("path", &self.path);
        match self.decoder {
            Decoder::Lines { format, .. } => debug.field("format", &format!("{format}s")),
            Decoder::Csv { has_header, delimiter, .. } => {
                debug.field("format", &"CSV").field("has_header", &has_header).field("delimiter", &char::from(delimiter))
            }
        };
        debug.finish()
    }
}

impl<T: Record> Source<T> for FileSource<T> {
    fn create_reader(&self, context: &SubtaskContext) -> Result<Box<dyn SourceReader<T>>, UserError> {
        let files: Vec<PathBuf> =
            list_files(&self.path)?.into_iter().skip(context.subtask_index).step_by(context.parallelism.max(1)).collect();
        check_file_count(&self.path, context.subtask_index, files.len())?;
        Ok(Box::new(FileReader {
            source_path: self.path.clone(),
            subtask_index: context.subtask_index,
            files,
            file_index: 0,
            current: None,
            decoder: self.decoder,
            line: Vec::new(),
            row: StringRecord::new(),
        }))
    }
}

/// Turns an I/O error on `path` into an access error naming it.
fn access(path: &Path) -> impl FnOnce(io::Error) -> FileSourceError + '_ {
    move |source| FileSourceError::Access { path: path.to_path_buf(), source }
}

/// The files `path` stands for: itself, or the regular files directly in it sorted by name,
/// except hidden ones (in progress, as Flink's and Hadoop's file readers skip them).
fn list_files(path: &Path) -> Result<Vec<PathBuf>, FileSourceError> {
    let metadata = fs::metadata(path).map_err(access(path))?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(access(path))? {
        let entry = entry.map_err(access(path))?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let entry_path = entry.path();
        let file_type = entry.file_type().map_err(access(&entry_path))?;
        // A link counts as what it points to; a broken link is an error, not a silent skip.
        let is_file =
            if file_type.is_symlink() { fs::metadata(&entry_path).map_err(access(&entry_path))?.is_file() } else { file_type.is_file() };
        if is_file {
            files.push(entry_path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

fn decode_utf8(bytes: &[u8]) -> Result<String, String> {
    std::str::from_utf8(bytes).map(str::to_owned).map_err(|error| format!("invalid UTF-8: {error}"))
}

fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|error| {
        // serde_json ends its message with the position inside the parsed text, always line 1
        // here; the file's line is reported separately, so keep only the column.
        let message = error.to_string();
        let suffix = format!(" at line {} column {}", error.line(), error.column());
        match message.strip_suffix(&suffix) {
            Some(problem) => format!("column {}: {problem}", error.column()),
            None => message,
        }
    })
}

fn decode_csv<T: DeserializeOwned>(row: &StringRecord, header: Option<&StringRecord>) -> Result<T, csv::Error> {
    row.deserialize(header)
}

/// What a CSV error says went wrong, without the position the caller reports itself.
fn csv_problem(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("found {len} fields, expected {expected_len} as in the first row")
        }
        csv::ErrorKind::Utf8 { err, .. } => err.to_string(),
        _ => error.to_string(),
    }
}

/// The reader of one subtask: its files, the open one, and buffers reused across records.
struct FileReader<T> {
    /// The file or directory read, for errors.
    source_path: PathBuf,
    subtask_index: usize,
    /// This subtask's files, in the order read; at most [`FILES_PER_SUBTASK_MAX`].
    files: Vec<PathBuf>,
    /// The index of the open file, or of the next one to open when none is; `files.len()` once
    /// finished. Never greater.
    file_index: usize,
    current: Option<OpenFile<T>>,
    decoder: Decoder<T>,
    /// The line being decoded (line formats).
    line: Vec<u8>,
    /// The row being decoded (CSV).
    row: StringRecord,
}

/// A file being read, with the decoder of its format.
enum OpenFile<T> {
    Lines {
        path: PathBuf,
        reader: BufReader<File>,
        /// Lines read so far: the number of the last line read.
        line: u64,
        /// Bytes read so far, blank lines skipped included: where the next record starts.
        offset_bytes: u64,
        format: &'static str,
        skip_blank: bool,
        decode: fn(&[u8]) -> Result<T, String>,
    },
    Csv {
        path: PathBuf,
        /// The csv reader buffers its input itself (an `io::BufReader` inside), so it takes the
        /// bare file. Its position is the byte where the next record starts.
        reader: csv::Reader<File>,
        header: Option<StringRecord>,
        decode: fn(&StringRecord, Option<&StringRecord>) -> Result<T, csv::Error>,
    },
}

impl<T> OpenFile<T> {
    fn open(path: PathBuf, decoder: Decoder<T>) -> Result<OpenFile<T>, FileSourceError> {
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(source) => return Err(FileSourceError::Access { path, source }),
        };
        // Refused up front rather than after reading 256 TiB; growth while reading is checked
        // after every record.
        let size_bytes = file.metadata().map_err(access(&path))?.len();
        check_addressable(&path, size_bytes)?;
        Ok(match decoder {
            Decoder::Lines { format, skip_blank, decode } => {
                OpenFile::Lines { path, reader: BufReader::new(file), line: 0, offset_bytes: 0, format, skip_blank, decode }
            }
            Decoder::Csv { has_header, delimiter, decode } => {
                let mut reader = csv::ReaderBuilder::new().has_headers(has_header).delimiter(delimiter).from_reader(file);
                let header = if has_header {
                    match reader.headers() {
                        Ok(header) => Some(header.clone()),
                        Err(error) => return Err(csv_error(path, error, 1)),
                    }
                } else {
                    None
                };
                OpenFile::Csv { path, reader, header, decode }
            }
        })
    }

    /// The file read.
    fn path(&self) -> &Path {
        match self {
            OpenFile::Lines { path, .. } | OpenFile::Csv { path, .. } => path,
        }
    }

    /// The byte where the next record starts (past the header, once a CSV header was read).
    fn offset_bytes(&self) -> u64 {
        match self {
            OpenFile::Lines { offset_bytes, .. } => *offset_bytes,
            OpenFile::Csv { reader, .. } => reader.position().byte(),
        }
    }

    /// Moves a file just opened to `offset_bytes`, a position it reported earlier, so that it
    /// goes on exactly as it did from there.
    ///
    /// The file is read from its start up to the offset instead of jumping there: the lines
    /// before it are counted, so that later errors name the file's true lines, and a CSV
    /// reader parses the header and the rows before it again, which restores its header (fields
    /// decoded by name), its line count and its field count in one go. This costs reading the
    /// prefix once per restore, never on the hot path. Reading also checks the offset: it must lie
    /// within the file at the start of a record.
    fn skip_to(&mut self, offset_bytes: u64) -> Result<(), FileSourceError> {
        match self {
            OpenFile::Lines { path, reader, line, offset_bytes: read_bytes, format, .. } => {
                assert!(*read_bytes == 0 && *line == 0, "skip_to on a file already read");
                let read_error = |path: &Path, line: u64| {
                    let path = path.to_path_buf();
                    move |source| FileSourceError::Read { path, line: line + 1, source }
                };
                let mut last_byte = b'\n';
                while *read_bytes < offset_bytes {
                    let buffer = reader.fill_buf().map_err(read_error(path, *line))?;
                    if buffer.is_empty() {
                        return Err(FileSourceError::SeekPastEnd { path: path.clone(), offset_bytes, size_bytes: *read_bytes });
                    }
                    let wanted = usize::try_from(offset_bytes - *read_bytes).unwrap_or(usize::MAX);
                    let prefix = &buffer[..buffer.len().min(wanted)];
                    *line += prefix.iter().filter(|&&byte| byte == b'\n').count() as u64;
                    last_byte = prefix[prefix.len() - 1];
                    let taken = prefix.len();
                    reader.consume(taken);
                    *read_bytes += taken as u64;
                }
                if last_byte != b'\n' {
                    // Only the end of a file whose last line has no line end follows a line
                    // without its `\n`: that line was read whole.
                    if !reader.fill_buf().map_err(read_error(path, *line))?.is_empty() {
                        return Err(FileSourceError::SeekNotRecordStart { path: path.clone(), offset_bytes, format });
                    }
                    *line += 1;
                }
                Ok(())
            }
            OpenFile::Csv { path, reader, .. } => {
                // Offset 0 is where a fresh reader starts, past the header already read if any.
                if offset_bytes == 0 {
                    return Ok(());
                }
                let mut skipped = csv::ByteRecord::new();
                while reader.position().byte() < offset_bytes {
                    match reader.read_byte_record(&mut skipped) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(error) => {
                            let line = reader.position().line();
                            return Err(csv_error(path.clone(), error, line));
                        }
                    }
                }
                let reached_bytes = reader.position().byte();
                if reached_bytes < offset_bytes {
                    return Err(FileSourceError::SeekPastEnd { path: path.clone(), offset_bytes, size_bytes: reached_bytes });
                }
                if reached_bytes != offset_bytes {
                    return Err(FileSourceError::SeekNotRecordStart { path: path.clone(), offset_bytes, format: "CSV row" });
                }
                Ok(())
            }
        }
    }

    /// The next record of the file, or `None` at its end.
    fn next_record(&mut self, line_buffer: &mut Vec<u8>, row: &mut StringRecord) -> Result<Option<T>, FileSourceError> {
        match self {
            OpenFile::Lines { path, reader, line, offset_bytes, format, skip_blank, decode } => loop {
                line_buffer.clear();
                let read = reader.read_until(b'\n', line_buffer);
                match read {
                    Ok(0) => return Ok(None),
                    Ok(read) => {
                        *line += 1;
                        *offset_bytes += read as u64;
                    }
                    Err(source) => return Err(FileSourceError::Read { path: path.clone(), line: *line + 1, source }),
                }
                let mut bytes = line_buffer.as_slice();
                if let Some(rest) = bytes.strip_suffix(b"\n") {
                    bytes = rest.strip_suffix(b"\r").unwrap_or(rest);
                }
                if *skip_blank && bytes.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return decode(bytes).map(Some).map_err(|message| FileSourceError::Malformed {
                    path: path.clone(),
                    line: *line,
                    format: *format,
                    message,
                });
            },
            OpenFile::Csv { path, reader, header, decode } => match reader.read_record(row) {
                Ok(false) => Ok(None),
                Ok(true) => {
                    let line = row.position().map_or_else(|| reader.position().line(), csv::Position::line);
                    decode(row, header.as_ref()).map(Some).map_err(|error| csv_error(path.clone(), error, line))
                }
                Err(error) => {
                    let line = reader.position().line();
                    Err(csv_error(path.clone(), error, line))
                }
            },
        }
    }
}

/// A CSV error as a file source error, at the error's own line if it knows one, else at `line`.
fn csv_error(path: PathBuf, error: csv::Error, line: u64) -> FileSourceError {
    let line = error.position().map_or(line, csv::Position::line);
    let message = csv_problem(&error);
    match error.into_kind() {
        csv::ErrorKind::Io(source) => FileSourceError::Read { path, line, source },
        _ => FileSourceError::Malformed { path, line, format: "CSV row", message },
    }
}

impl<T: Record> SourceReader<T> for FileReader<T> {
    fn poll_frame(&mut self, frame: &mut Vec<T>, records_max: usize) -> Result<ReaderStatus, UserError> {
        debug_assert!(self.file_index <= self.files.len(), "file index past the subtask's files");
        let mut appended = 0;
        while appended < records_max {
            let Some(file) = self.current.as_mut() else {
                match self.files.get(self.file_index) {
                    Some(path) => {
                        let file = OpenFile::open(path.clone(), self.decoder)?;
                        // A CSV header may have taken the reader past the size checked at open.
                        check_addressable(file.path(), file.offset_bytes())?;
                        self.current = Some(file);
                        continue;
                    }
                    None => return Ok(ReaderStatus::Finished),
                }
            };
            match file.next_record(&mut self.line, &mut self.row)? {
                Some(record) => {
                    // The file may have grown since it was opened.
                    check_addressable(file.path(), file.offset_bytes())?;
                    frame.push(record);
                    appended += 1;
                }
                None => {
                    self.current = None;
                    self.file_index += 1;
                }
            }
        }
        Ok(if self.current.is_none() && self.file_index == self.files.len() { ReaderStatus::Finished } else { ReaderStatus::Ready })
    }

    /// The open file and the byte of its next record; a file not yet opened, or the end of the
    /// list once finished, at byte 0.
    fn position(&self) -> Option<u64> {
        let offset_bytes = self.current.as_ref().map_or(0, OpenFile::offset_bytes);
        Some(FilePosition { file_index: self.file_index, offset_bytes }.encode())
    }

    fn seek(&mut self, position: u64) -> Result<(), UserError> {
        let FilePosition { file_index, offset_bytes } = FilePosition::decode(position);
        let finished = file_index == self.files.len() && offset_bytes == 0;
        if file_index >= self.files.len() && !finished {
            return Err(Box::new(FileSourceError::SeekFileIndex {
                path: self.source_path.clone(),
                position,
                subtask_index: self.subtask_index,
                file_index,
                offset_bytes,
                files: self.files.len(),
            }));
        }
        let current = match self.files.get(file_index) {
            Some(path) => {
                let mut file = OpenFile::open(path.clone(), self.decoder)?;
                file.skip_to(offset_bytes)?;
                Some(file)
            }
            None => None,
        };
        self.file_index = file_index;
        self.current = current;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde::Deserialize;

    use super::*;

    /// A fresh directory under the system temp directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let unique = format!("tethys-file-source-{}-{}-{name}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            let path = std::env::temp_dir().join(unique);
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn context(subtask_index: usize, parallelism: usize) -> SubtaskContext {
        SubtaskContext {
            operator_name: "Source: files".to_string(),
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

    /// Reads everything subtask `index` of `parallelism` gets, in frames of at most 2 records.
    fn read_subtask<T: Record>(source: &FileSource<T>, index: usize, parallelism: usize) -> Result<Vec<T>, UserError> {
        let mut reader = source.create_reader(&context(index, parallelism))?;
        let mut records = Vec::new();
        loop {
            let mut frame = Vec::new();
            let status = reader.poll_frame(&mut frame, 2)?;
            assert!(frame.len() <= 2, "frame of {} records", frame.len());
            records.extend(frame);
            match status {
                ReaderStatus::Finished => return Ok(records),
                ReaderStatus::Ready => {}
                ReaderStatus::Idle => panic!("a file reader is never idle"),
            }
        }
    }

    fn read_all<T: Record>(source: &FileSource<T>) -> Result<Vec<T>, UserError> {
        read_subtask(source, 0, 1)
    }

    #[derive(Debug, Clone, PartialEq, Deserialize, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    struct Row {
        id: u32,
        name: String,
        price: f64,
    }

    #[test]
    fn file_lines_are_records_without_line_ends() {
        let dir = TempDir::new("lines");
        let path = dir.write("in.txt", "first\r\nsecond\n\nlast without newline");
        let records = read_all(&FileSource::lines(path)).unwrap();
        assert_eq!(records, vec!["first", "second", "", "last without newline"]);
    }

    #[test]
    fn file_csv_with_header_matches_fields_by_name() {
        let dir = TempDir::new("csv-header");
        let path = dir.write("in.csv", "price,name,id\n1.5,\"a, quoted\",1\n2,b,2\n");
        let records = read_all(&FileSource::csv::<Row>(path)).unwrap();
        assert_eq!(records, vec![Row { id: 1, name: "a, quoted".into(), price: 1.5 }, Row { id: 2, name: "b".into(), price: 2.0 }]);
    }

    #[test]
    fn file_csv_without_header_and_other_delimiter_matches_fields_by_position() {
        let dir = TempDir::new("csv-no-header");
        let path = dir.write("in.csv", "1;a;1.5\n2;b;2\n");
        let source = FileSource::csv::<(u32, String, f64)>(path).with_header(false).with_delimiter(b';');
        assert_eq!(read_all(&source).unwrap(), vec![(1, "a".to_string(), 1.5), (2, "b".to_string(), 2.0)]);
    }

    #[test]
    fn file_json_lines_skip_blank_lines() {
        let dir = TempDir::new("json");
        let text = "{\"id\":1,\"name\":\"a\",\"price\":1.5}\n\n  \n{\"id\":2,\"name\":\"b\",\"price\":2}\n";
        let path = dir.write("in.jsonl", text);
        let records = read_all(&FileSource::json_lines::<Row>(path)).unwrap();
        assert_eq!(records, vec![Row { id: 1, name: "a".into(), price: 1.5 }, Row { id: 2, name: "b".into(), price: 2.0 }]);
    }

    #[test]
    fn file_directory_split_between_subtasks_reads_every_record_once() {
        let dir = TempDir::new("split");
        dir.write("b.txt", "b1\nb2\nb3\n");
        dir.write("a.txt", "a1\na2\n");
        dir.write("c.txt", "c1\n");
        fs::create_dir(dir.0.join("subdirectory")).unwrap();
        let source = FileSource::lines(&dir.0);

        let first = read_subtask(&source, 0, 2).unwrap();
        let second = read_subtask(&source, 1, 2).unwrap();
        // Sorted by name, files a and c go to subtask 0 and file b to subtask 1, each in order.
        assert_eq!(first, vec!["a1", "a2", "c1"]);
        assert_eq!(second, vec!["b1", "b2", "b3"]);

        let mut all: Vec<String> = first.into_iter().chain(second).collect();
        all.sort();
        assert_eq!(all, vec!["a1", "a2", "b1", "b2", "b3", "c1"]);
    }

    #[test]
    fn file_single_file_is_read_by_one_subtask() {
        let dir = TempDir::new("single");
        let path = dir.write("in.txt", "x\ny\n");
        let source = FileSource::lines(path);
        assert_eq!(read_subtask(&source, 0, 3).unwrap(), vec!["x", "y"]);
        assert!(read_subtask(&source, 1, 3).unwrap().is_empty());
        assert!(read_subtask(&source, 2, 3).unwrap().is_empty());
    }

    #[test]
    fn file_malformed_csv_row_names_file_and_line() {
        let dir = TempDir::new("bad-csv");
        let path = dir.write("bad.csv", "id,name,price\n1,a,1.5\n2,b,not-a-number\n3,c,3\n");
        let error = read_all(&FileSource::csv::<Row>(path)).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("bad.csv") && message.contains("line 3"), "{message}");
        assert!(message.contains("float"), "{message}");
        assert!(matches!(error.downcast_ref::<FileSourceError>(), Some(FileSourceError::Malformed { line: 3, .. })));
    }

    #[test]
    fn file_csv_row_with_missing_field_names_file_and_line() {
        let dir = TempDir::new("short-csv");
        let path = dir.write("short.csv", "id,name,price\n1,a,1.5\n2,b\n");
        let message = read_all(&FileSource::csv::<Row>(path)).unwrap_err().to_string();
        assert!(message.contains("short.csv") && message.contains("line 3") && message.contains("found 2 fields"), "{message}");
    }

    #[test]
    fn file_malformed_json_line_names_file_and_line() {
        let dir = TempDir::new("bad-json");
        let path = dir.write("bad.jsonl", "{\"id\":1,\"name\":\"a\",\"price\":1.5}\n{\"id\":2,\"name\":}\n");
        let message = read_all(&FileSource::json_lines::<Row>(path)).unwrap_err().to_string();
        assert!(message.contains("bad.jsonl") && message.contains("line 2"), "{message}");
        assert!(!message.contains("line 1"), "position inside the line reported as a line: {message}");
    }

    #[test]
    fn file_invalid_utf8_line_names_file_and_line() {
        let dir = TempDir::new("bad-utf8");
        let path = dir.0.join("bytes.txt");
        fs::write(&path, b"ok\n\xff\xfe\n").unwrap();
        let message = read_all(&FileSource::lines(path)).unwrap_err().to_string();
        assert!(message.contains("bytes.txt") && message.contains("line 2") && message.contains("UTF-8"), "{message}");
    }

    #[test]
    fn file_missing_path_is_an_error_naming_it() {
        let dir = TempDir::new("missing");
        let missing = dir.0.join("no-such-input");
        let Err(error) = FileSource::lines(&missing).create_reader(&context(0, 1)) else {
            panic!("reading a missing path succeeded");
        };
        let message = error.to_string();
        assert!(message.contains(&missing.display().to_string()), "{message}");
        assert!(matches!(error.downcast_ref::<FileSourceError>(), Some(FileSourceError::Access { .. })));
    }

    #[test]
    fn file_empty_directory_yields_nothing() {
        let dir = TempDir::new("empty");
        assert!(read_all(&FileSource::lines(&dir.0)).unwrap().is_empty());
    }

    #[test]
    fn file_directory_skips_hidden_files_being_written() {
        let dir = TempDir::new("hidden");
        dir.write("part-0-0.txt", "committed\n");
        dir.write(".part-0-1.txt.inprogress", "in progress\n");
        assert_eq!(read_all(&FileSource::lines(&dir.0)).unwrap(), vec!["committed"]);
        let hidden = dir.0.join(".part-0-1.txt.inprogress");
        assert_eq!(read_all(&FileSource::lines(hidden)).unwrap(), vec!["in progress"], "a file named on its own is read");
    }
    /// Reads subtask `index` of `parallelism` to its end in frames of at most `frame_records`
    /// records; returns the records and, before the first frame and after each, how many records
    /// had been read and the reader's position.
    fn read_with_positions<T: Record>(
        source: &FileSource<T>,
        index: usize,
        parallelism: usize,
        frame_records: usize,
    ) -> (Vec<T>, Vec<(usize, u64)>) {
        let mut reader = source.create_reader(&context(index, parallelism)).unwrap();
        let mut records = Vec::new();
        let mut positions = vec![(0, reader.position().expect("a file reader reports a position"))];
        for _ in 0..10_000 {
            let status = reader.poll_frame(&mut records, frame_records).unwrap();
            positions.push((records.len(), reader.position().unwrap()));
            if status == ReaderStatus::Finished {
                return (records, positions);
            }
        }
        panic!("reader not finished after 10,000 frames");
    }

    /// Reads what `reader` gives from now on, to its end.
    fn read_rest<T: Record>(reader: &mut dyn SourceReader<T>) -> Vec<T> {
        let mut records = Vec::new();
        for _ in 0..10_000 {
            if reader.poll_frame(&mut records, 2).unwrap() == ReaderStatus::Finished {
                return records;
            }
        }
        panic!("reader not finished after 10,000 frames");
    }

    /// Subtask `index` of `parallelism`, read in frames of 1, 2 and 3 records, yields `expected`
    /// (the subtask's records as the input holds them), its positions never go backwards, and a
    /// fresh reader moved to any of them reads exactly the rest of `expected`.
    fn check_replay_from_every_frame<T: Record + PartialEq + fmt::Debug>(
        source: &FileSource<T>,
        index: usize,
        parallelism: usize,
        expected: &[T],
    ) {
        for frame_records in 1..=3 {
            let (records, positions) = read_with_positions(source, index, parallelism, frame_records);
            assert_eq!(records, expected, "frames of {frame_records}");
            assert!(positions.windows(2).all(|pair| pair[0].1 <= pair[1].1), "positions went backwards: {positions:x?}");
            for &(consumed, position) in &positions {
                let mut restored = source.create_reader(&context(index, parallelism)).unwrap();
                if let Err(error) = restored.seek(position) {
                    panic!("seek to {position:#x}, after {consumed} records in frames of {frame_records}: {error}");
                }
                assert_eq!(
                    read_rest(restored.as_mut()),
                    &expected[consumed..],
                    "restored at {position:#x}, after {consumed} records in frames of {frame_records}"
                );
            }
        }
    }

    /// Reads `records_before` records in one frame, moves a fresh reader to the position reached
    /// and returns the error it then fails with.
    fn error_after_seek<T: Record>(source: &FileSource<T>, records_before: usize) -> FileSourceError {
        let mut original = source.create_reader(&context(0, 1)).unwrap();
        let mut frame = Vec::new();
        original.poll_frame(&mut frame, records_before).unwrap();
        assert_eq!(frame.len(), records_before, "records before the bad one");
        let mut restored = source.create_reader(&context(0, 1)).unwrap();
        restored.seek(original.position().unwrap()).unwrap();
        let Err(error) = restored.poll_frame(&mut Vec::new(), 10) else {
            panic!("the bad record after the position was read without error");
        };
        *error.downcast::<FileSourceError>().expect("a file source error")
    }

    fn seek_error<T: Record>(source: &FileSource<T>, file_index: u64, offset_bytes: u64) -> FileSourceError {
        let mut reader = source.create_reader(&context(0, 1)).unwrap();
        let Err(error) = reader.seek(file_index << 48 | offset_bytes) else {
            panic!("seek to file {file_index} byte {offset_bytes} succeeded");
        };
        *error.downcast::<FileSourceError>().expect("a file source error")
    }

    #[test]
    fn file_position_holds_file_index_high_and_byte_offset_low() {
        let position = FilePosition { file_index: 3, offset_bytes: 17 };
        assert_eq!(position.encode(), 3 << 48 | 17);
        assert_eq!(FilePosition::decode(3 << 48 | 17), position);
        let largest = FilePosition { file_index: 65_535, offset_bytes: (1 << 48) - 1 };
        assert_eq!(largest.encode(), u64::MAX);
        assert_eq!(FilePosition::decode(u64::MAX), largest);

        // The positions a reader reports, from the input's byte counts: every line takes 3 bytes.
        let dir = TempDir::new("position-encoding");
        dir.write("a.txt", "a1\na2\n");
        dir.write("b.txt", "b1\n");
        let (_, positions) = read_with_positions(&FileSource::lines(&dir.0), 0, 1, 1);
        let positions: Vec<u64> = positions.into_iter().map(|(_, position)| position).collect();
        // Before reading, after a1, after a2, after b1 (file b), finished (index 2 = file count).
        assert_eq!(positions, vec![0, 3, 6, 1 << 48 | 3, 2 << 48]);
    }

    #[test]
    fn file_lines_replay_from_every_frame_position() {
        let dir = TempDir::new("replay-lines");
        let path = dir.write("in.txt", "first\r\nsecond\n\n\nfifth\nlast without newline");
        let expected = ["first", "second", "", "", "fifth", "last without newline"].map(String::from);
        check_replay_from_every_frame(&FileSource::lines(path), 0, 1, &expected);
    }

    #[test]
    fn file_csv_with_header_replays_from_every_frame_position_matching_fields_by_name() {
        let dir = TempDir::new("replay-csv-header");
        // Header order differs from the struct's, so a restored reader that lost the header
        // would fail to decode; quoted delimiters and line ends, CRLF and blank lines included.
        dir.write("a.csv", "price,name,id\r\n1.5,\"a, quoted\",1\r\n2,\"two\nlines\",2\r\n\r\n3,c,3\n");
        dir.write("b.csv", "name,id,price\nd,4,4.5\ne,5,5");
        let row = |id: u32, name: &str, price: f64| Row { id, name: name.to_string(), price };
        let expected = [row(1, "a, quoted", 1.5), row(2, "two\nlines", 2.0), row(3, "c", 3.0), row(4, "d", 4.5), row(5, "e", 5.0)];
        check_replay_from_every_frame(&FileSource::csv::<Row>(&dir.0), 0, 1, &expected);
    }

    #[test]
    fn file_csv_without_header_replays_from_every_frame_position() {
        let dir = TempDir::new("replay-csv-no-header");
        let path = dir.write("in.csv", "1;a;1.5\n2;\"b;c\";2\n\n3;d;3\r\n4;e;4");
        let source = FileSource::csv::<(u32, String, f64)>(path).with_header(false).with_delimiter(b';');
        let expected =
            [(1, "a", 1.5), (2, "b;c", 2.0), (3, "d", 3.0), (4, "e", 4.0)].map(|(id, name, price)| (id, name.to_string(), price));
        check_replay_from_every_frame(&source, 0, 1, &expected);
    }

    #[test]
    fn file_json_lines_replay_from_every_frame_position() {
        let dir = TempDir::new("replay-json");
        let line = |id: u32| format!("{{\"id\":{id},\"name\":\"n{id}\",\"price\":{id}.5}}");
        let text = format!("\n{}\n  \n\n{}\r\n{}\n{}\n\n", line(1), line(2), line(3), line(4));
        let path = dir.write("in.jsonl", &text);
        let expected: Vec<Row> = (1..=4).map(|id| Row { id, name: format!("n{id}"), price: f64::from(id) + 0.5 }).collect();
        check_replay_from_every_frame(&FileSource::json_lines::<Row>(path), 0, 1, &expected);
    }

    #[test]
    fn file_directory_split_between_two_subtasks_replays_across_file_boundaries() {
        let dir = TempDir::new("replay-split");
        dir.write("a.txt", "a1\na2\n");
        dir.write("b.txt", "b1\nb2\nb3\n");
        dir.write("c.txt", "");
        dir.write("d.txt", "d1\n");
        dir.write("e.txt", "e1\ne2");
        dir.write(".f.txt.inprogress", "hidden\n");
        let source = FileSource::lines(&dir.0);
        // Sorted by name: subtask 0 reads a, c (empty) and e; subtask 1 reads b and d.
        check_replay_from_every_frame(&source, 0, 2, &["a1", "a2", "e1", "e2"].map(String::from));
        check_replay_from_every_frame(&source, 1, 2, &["b1", "b2", "b3", "d1"].map(String::from));
    }

    #[test]
    fn file_position_at_the_end_of_a_file_seeks_to_the_next_one() {
        let dir = TempDir::new("end-of-file");
        dir.write("a.txt", "a1\na2\n");
        dir.write("b.txt", "b1\n");
        let source = FileSource::lines(&dir.0);
        let mut original = source.create_reader(&context(0, 1)).unwrap();
        let mut frame = Vec::new();
        original.poll_frame(&mut frame, 2).unwrap();
        assert_eq!(frame, ["a1", "a2"]);
        // The end of file a is not yet seen: the position is its last byte.
        assert_eq!(original.position(), Some(6));
        let mut restored = source.create_reader(&context(0, 1)).unwrap();
        restored.seek(6).unwrap();
        assert_eq!(read_rest(restored.as_mut()), ["b1"]);
    }

    #[test]
    fn file_finished_reader_position_seeks_to_finished() {
        let dir = TempDir::new("finished");
        dir.write("a.txt", "a\n");
        dir.write("b.txt", "b\n");
        let source = FileSource::lines(&dir.0);
        let mut reader = source.create_reader(&context(0, 1)).unwrap();
        assert_eq!(read_rest(reader.as_mut()), ["a", "b"]);
        let position = reader.position().unwrap();
        assert_eq!(position, 2 << 48, "index 2 of 2 files, byte 0");
        let mut restored = source.create_reader(&context(0, 1)).unwrap();
        restored.seek(position).unwrap();
        let mut frame = Vec::new();
        assert_eq!(restored.poll_frame(&mut frame, 2).unwrap(), ReaderStatus::Finished);
        assert!(frame.is_empty());

        // A subtask without files is finished from the start, at position 0.
        let single = FileSource::lines(dir.0.join("a.txt"));
        let mut idle = single.create_reader(&context(1, 2)).unwrap();
        assert_eq!(idle.position(), Some(0));
        idle.seek(0).unwrap();
        assert_eq!(idle.poll_frame(&mut frame, 2).unwrap(), ReaderStatus::Finished);
        assert!(frame.is_empty());
    }

    #[test]
    fn file_decode_error_after_seek_reports_the_true_line() {
        let dir = TempDir::new("error-after-seek");

        let path = dir.0.join("bytes.txt");
        fs::write(&path, b"ok\n\nok\n\xff\n").unwrap();
        let error = error_after_seek(&FileSource::lines(path), 3);
        assert!(matches!(error, FileSourceError::Malformed { line: 4, .. }), "{error}");
        assert!(error.to_string().contains("bytes.txt"), "{error}");

        let text = "{\"id\":1,\"name\":\"a\",\"price\":1}\n\n  \n{\"id\":2,\"name\":\"b\",\"price\":2}\n\n{\"id\":3,\"name\":}\n";
        let path = dir.write("bad.jsonl", text);
        let error = error_after_seek(&FileSource::json_lines::<Row>(path), 2);
        assert!(matches!(error, FileSourceError::Malformed { line: 6, .. }), "{error}");

        // Lines: 1 header, 2 and 3 the quoted two-line row, 4 row two, 5 the bad row.
        let path = dir.write("bad.csv", "id,name,price\n1,\"two\nlines\",1.5\n2,b,2\n3,c,not-a-number\n");
        let source = FileSource::csv::<Row>(path);
        let unrestored = read_all(&source).unwrap_err();
        assert!(matches!(unrestored.downcast_ref::<FileSourceError>(), Some(FileSourceError::Malformed { line: 5, .. })), "{unrestored}");
        let error = error_after_seek(&source, 2);
        assert!(matches!(error, FileSourceError::Malformed { line: 5, .. }), "{error}");

        // A row with a missing field after the position is still measured against the first row.
        let path = dir.write("short.csv", "1,a,1.5\n2,b,2\n3,c\n");
        let error = error_after_seek(&FileSource::csv::<Row>(path).with_header(false), 2);
        assert!(matches!(error, FileSourceError::Malformed { line: 3, .. }), "{error}");
        assert!(error.to_string().contains("found 2 fields"), "{error}");
    }

    #[test]
    fn file_seek_refuses_positions_the_subtask_cannot_have_naming_them() {
        let dir = TempDir::new("bad-positions");
        dir.write("a.txt", "a1\na2\n");
        dir.write("b.txt", "b1\n");
        let source = FileSource::lines(&dir.0);

        let error = seek_error(&source, 5, 0);
        assert!(matches!(error, FileSourceError::SeekFileIndex { file_index: 5, files: 2, subtask_index: 0, .. }), "{error}");
        assert!(error.to_string().contains(&dir.0.display().to_string()), "{error}");
        // Index 2 of 2 files is "finished", at byte 0 only.
        let error = seek_error(&source, 2, 1);
        assert!(matches!(error, FileSourceError::SeekFileIndex { file_index: 2, offset_bytes: 1, .. }), "{error}");

        let error = seek_error(&source, 0, 7);
        assert!(matches!(error, FileSourceError::SeekPastEnd { offset_bytes: 7, size_bytes: 6, .. }), "{error}");
        assert!(error.to_string().contains("a.txt"), "{error}");
        let error = seek_error(&source, 0, 4);
        assert!(matches!(error, FileSourceError::SeekNotRecordStart { offset_bytes: 4, format: "line", .. }), "{error}");
        assert!(error.to_string().contains("a.txt"), "{error}");

        // 14 bytes of header, then an 8-byte row.
        let path = dir.write("rows.csv", "id,name,price\n1,a,1.5\n");
        let csv = FileSource::csv::<Row>(path);
        for inside in [5, 16] {
            let error = seek_error(&csv, 0, inside);
            assert!(matches!(error, FileSourceError::SeekNotRecordStart { format: "CSV row", .. }), "{error}");
            assert!(error.to_string().contains("rows.csv"), "{error}");
        }
        let error = seek_error(&csv, 0, 100);
        assert!(matches!(error, FileSourceError::SeekPastEnd { offset_bytes: 100, size_bytes: 22, .. }), "{error}");
    }

    #[test]
    fn file_position_limits_are_typed_errors_naming_the_path() {
        let huge = Path::new("/data/huge.txt");
        assert!(check_addressable(huge, (1 << 48) - 1).is_ok());
        let error = check_addressable(huge, 1 << 48).unwrap_err();
        assert!(matches!(error, FileSourceError::TooLarge { size_bytes, .. } if size_bytes == 1 << 48), "{error}");
        assert!(error.to_string().contains("/data/huge.txt"), "{error}");

        let many = Path::new("/data/in");
        assert!(check_file_count(many, 3, 65_535).is_ok());
        let error = check_file_count(many, 3, 65_536).unwrap_err();
        assert!(matches!(error, FileSourceError::TooManyFiles { subtask_index: 3, files: 65_536, files_max: 65_535, .. }), "{error}");
        assert!(error.to_string().contains("/data/in"), "{error}");
    }
}
