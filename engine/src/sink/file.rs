//! A sink writing records to files in a directory: plain lines, CSV or JSON lines.
//!
//! [`FileSink`] owns everything between typed records and files on disk: creating the directory,
//! one part file per subtask (`part-<subtask>.<extension>`, so subtasks never share a file and need
//! no coordination), buffered encoding with the chosen format, and flushing in `finish`. Every
//! error names the path it concerns. The part files match what
//! [`FileSource`](crate::source::file::FileSource) reads back from the directory.

use std::fmt::{self, Display};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Sink, SinkWriter};
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
/// Subtask `i` writes `<dir>/part-<i>.<extension>` (`txt`, `csv` or `jsonl`), replacing a file of
/// that name; the directory is created if missing. Other files in the directory are left alone, so
/// part files of an earlier run with a higher parallelism survive: give each run an empty
/// directory. Records are buffered and flushed when the sink finishes.
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

    /// The output directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The part file subtask `subtask_index` writes.
    pub fn part_path(&self, subtask_index: usize) -> PathBuf {
        let extension = match self.encoder {
            Encoder::Text { extension, .. } => extension,
            Encoder::Csv { .. } => "csv",
        };
        self.dir.join(format!("part-{subtask_index}.{extension}"))
    }
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
        let path = self.part_path(context.subtask_index);
        let file = match File::create(&path) {
            Ok(file) => file,
            Err(source) => return Err(FileSinkError::CreateFile { path, source }.into()),
        };
        let out = match self.encoder {
            Encoder::Text { encode, .. } => PartOut::Text { out: BufWriter::new(file), encode },
            Encoder::Csv { has_header, delimiter, encode } => {
                let out = csv::WriterBuilder::new().has_headers(has_header).delimiter(delimiter).from_writer(file);
                PartOut::Csv { out, encode }
            }
        };
        Ok(Box::new(FileWriter { path, records: 0, out }))
    }
}

/// The writer of one subtask: its part file and how many records went into it.
struct FileWriter<T> {
    path: PathBuf,
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

impl<T: Record> SinkWriter<T> for FileWriter<T> {
    fn write_frame(&mut self, frame: Vec<T>) -> Result<(), UserError> {
        for record in &frame {
            self.records += 1;
            let result = match &mut self.out {
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
                Err(EncodeError::Io(source)) => return Err(FileSinkError::Write { path: self.path.clone(), source }.into()),
                Err(EncodeError::Invalid(message)) => {
                    return Err(FileSinkError::Encode { path: self.path.clone(), record: self.records, message }.into())
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), UserError> {
        let flushed = match &mut self.out {
            PartOut::Text { out, .. } => out.flush(),
            PartOut::Csv { out, .. } => out.flush(),
        };
        flushed.map_err(|source| FileSinkError::Write { path: self.path.clone(), source })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde::Deserialize;

    use super::*;
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
        }
    }

    /// Writes `records` through `parallelism` subtasks, record `i` to subtask `i mod parallelism`,
    /// two records a frame.
    fn write<T: Record + Clone>(sink: &FileSink<T>, records: &[T], parallelism: usize) {
        for subtask in 0..parallelism {
            let mut writer = sink.create_writer(&context(subtask, parallelism)).unwrap();
            let mine: Vec<T> = records.iter().skip(subtask).step_by(parallelism).cloned().collect();
            for frame in mine.chunks(2) {
                writer.write_frame(frame.to_vec()).unwrap();
            }
            writer.finish().unwrap();
        }
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

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        assert!(dir.0.join("part-0.txt").is_file() && dir.0.join("part-1.txt").is_file());
        assert_eq!(read(FileSource::lines(&dir.0)), by_part(&records));
    }

    #[test]
    fn file_csv_round_trip_with_one_header_per_part_file() {
        let dir = TempDir::new("csv");
        let records = rows();
        write(&FileSink::csv(&dir.0), &records, 2);
        for part in ["part-0.csv", "part-1.csv"] {
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
        let text = fs::read_to_string(dir.0.join("part-0.csv")).unwrap();
        assert!(text.starts_with("0\t"), "{text}");
        let source = FileSource::csv::<Row>(&dir.0).with_header(false).with_delimiter(b'\t');
        assert_eq!(read(source), records);
    }

    #[test]
    fn file_json_lines_round_trip() {
        let dir = TempDir::new("json");
        let records = rows();
        write(&FileSink::json_lines(&dir.0), &records, 2);
        let text = fs::read_to_string(dir.0.join("part-0.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert_eq!(read(FileSource::json_lines::<Row>(&dir.0)), by_part(&records));
    }

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

        assert!(output.0.join("part-0.jsonl").is_file() && output.0.join("part-1.jsonl").is_file());
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
        assert_eq!(fs::read_to_string(nested.join("part-0.txt")).unwrap(), "1\n2\n3\n");
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
        #[derive(Clone, Serialize)]
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
        assert!(message.contains("part-0.csv") && message.contains("record 1"), "{message}");
        assert!(matches!(error.downcast_ref::<FileSinkError>(), Some(FileSinkError::Encode { record: 1, .. })));
    }
}
