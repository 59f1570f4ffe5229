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
/// is created, so the directory must not change while the job starts. Subtask `i` of `p` reads files `i, i+p, ...`: a single file is read by one
/// subtask, and subtasks beyond the number of files finish at once.
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
        Ok(Box::new(FileReader {
            files: files.into_iter(),
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
    files: std::vec::IntoIter<PathBuf>,
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
        format: &'static str,
        skip_blank: bool,
        decode: fn(&[u8]) -> Result<T, String>,
    },
    Csv {
        path: PathBuf,
        /// The csv reader buffers its input itself (an `io::BufReader` inside), so it takes the
        /// bare file.
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
        Ok(match decoder {
            Decoder::Lines { format, skip_blank, decode } => {
                OpenFile::Lines { path, reader: BufReader::new(file), line: 0, format, skip_blank, decode }
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

    /// The next record of the file, or `None` at its end.
    fn next_record(&mut self, line_buffer: &mut Vec<u8>, row: &mut StringRecord) -> Result<Option<T>, FileSourceError> {
        match self {
            OpenFile::Lines { path, reader, line, format, skip_blank, decode } => loop {
                line_buffer.clear();
                let read = reader.read_until(b'\n', line_buffer);
                match read {
                    Ok(0) => return Ok(None),
                    Ok(_) => *line += 1,
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
        let mut appended = 0;
        while appended < records_max {
            let Some(file) = self.current.as_mut() else {
                match self.files.next() {
                    Some(path) => {
                        self.current = Some(OpenFile::open(path, self.decoder)?);
                        continue;
                    }
                    None => return Ok(ReaderStatus::Finished),
                }
            };
            match file.next_record(&mut self.line, &mut self.row)? {
                Some(record) => {
                    frame.push(record);
                    appended += 1;
                }
                None => self.current = None,
            }
        }
        Ok(if self.current.is_none() && self.files.len() == 0 { ReaderStatus::Finished } else { ReaderStatus::Ready })
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
}
