//! A process's recent log, kept in memory to be searched: a `tracing` layer ([`LogBook::layer`])
//! copies every event it is given into a bounded ring ([`LOG_LINES_KEPT`] lines; the oldest go
//! first and are counted), and a worker answers searches of it over its gRPC service (`Logs`).
//! The masters pass them on (`GET /api/workers/{id}/logs`, `tethys logs`), so an operator reads a
//! worker's log from the console without a shell on its host.
//!
//! The book is the process's: a worker process's book is that worker's log. Where several
//! workers share one process (`tethys demo`, tests), they share its book.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::rpc::proto::{LogLine, LogsReply, LogsRequest};

/// Lines a book keeps.
pub const LOG_LINES_KEPT: usize = 20_000;
/// Lines a search answers by default.
pub const LOG_LINES_DEFAULT: u32 = 200;
/// Lines a search answers at most.
pub const LOG_LINES_MAX: u32 = 5_000;

/// The ring of a process's recent log lines.
#[derive(Debug)]
pub struct LogBook {
    capacity: usize,
    ring: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    /// The sequence number the next line gets (from 1).
    next_seq: u64,
    /// Lines dropped to keep the ring bounded.
    dropped: u64,
}

static INSTALLED: OnceLock<Arc<LogBook>> = OnceLock::new();

/// A search's bad input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogQueryError {
    /// A level that is not one of `tracing`'s.
    #[error("unknown log level `{0}` (one of error, warn, info, debug, trace)")]
    UnknownLevel(String),
}

impl LogBook {
    /// A book of at most `capacity` lines.
    pub fn new(capacity: usize) -> LogBook {
        assert!(capacity > 0, "a log book keeps at least one line");
        LogBook { capacity, ring: Mutex::new(Ring { next_seq: 1, ..Ring::default() }) }
    }

    /// The book this process keeps, set once by [`LogBook::install`]; none when the process keeps
    /// no log (a library's tests).
    pub fn installed() -> Option<Arc<LogBook>> {
        INSTALLED.get().cloned()
    }

    /// Makes `book` this process's book (the first call wins) and returns the layer that fills it.
    pub fn install(book: LogBook) -> LogBookLayer {
        let book = Arc::clone(INSTALLED.get_or_init(|| Arc::new(book)));
        LogBookLayer { book }
    }

    /// A layer filling this book.
    pub fn layer(self: &Arc<Self>) -> LogBookLayer {
        LogBookLayer { book: Arc::clone(self) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a line (its sequence number is set here).
    pub fn push(&self, mut line: LogLine) {
        let mut ring = self.lock();
        line.seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.lines.len() == self.capacity {
            ring.lines.pop_front();
            ring.dropped += 1;
        }
        ring.lines.push_back(line);
    }

    /// The newest lines matching `query` (at most its limit), oldest first: those after its
    /// `after_seq`, at its level or more severe, whose level, target, message or fields contain
    /// its text (ignoring case).
    pub fn search(&self, query: &LogsRequest) -> Result<LogsReply, LogQueryError> {
        let min_level = match query.min_level.trim() {
            "" => Level::TRACE,
            text => text.parse::<Level>().map_err(|_| LogQueryError::UnknownLevel(text.to_string()))?,
        };
        let limit = match query.limit {
            0 => LOG_LINES_DEFAULT,
            limit => limit.min(LOG_LINES_MAX),
        } as usize;
        let needle = query.contains.trim().to_lowercase();
        let ring = self.lock();
        let mut lines: Vec<LogLine> = ring
            .lines
            .iter()
            .rev()
            .take_while(|line| line.seq > query.after_seq)
            .filter(|line| line.level.parse::<Level>().is_ok_and(|level| level <= min_level))
            .filter(|line| needle.is_empty() || matches(line, &needle))
            .take(limit)
            .cloned()
            .collect();
        lines.reverse();
        Ok(LogsReply { lines, next_seq: ring.next_seq, dropped: ring.dropped, kept: true })
    }
}

/// Whether `line` contains `needle` (lower case) in its level, target, message or fields.
fn matches(line: &LogLine, needle: &str) -> bool {
    [&line.level, &line.target, &line.message, &line.fields].iter().any(|text| text.to_lowercase().contains(needle))
}

/// The `tracing` layer that copies events into a [`LogBook`].
pub struct LogBookLayer {
    book: Arc<LogBook>,
}

impl<S: Subscriber> Layer<S> for LogBookLayer {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let metadata = event.metadata();
        let mut text = LineText::default();
        event.record(&mut text);
        self.book.push(LogLine {
            seq: 0,
            time_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64),
            level: metadata.level().as_str().to_string(),
            target: metadata.target().to_string(),
            message: text.message,
            fields: text.fields,
        });
    }
}

/// An event's message and its other fields as `name=value`, space-separated.
#[derive(Default)]
struct LineText {
    message: String,
    fields: String,
}

impl Visit for LineText {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format_args!("{value:?}"));
    }
}

impl LineText {
    fn record(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if field.name() == "message" {
            let _ = self.message.write_fmt(value);
            return;
        }
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn query(contains: &str, min_level: &str, after_seq: u64, limit: u32) -> LogsRequest {
        LogsRequest { contains: contains.into(), min_level: min_level.into(), after_seq, limit }
    }

    #[test]
    fn events_become_lines_that_search_by_text_level_and_sequence() {
        let book = Arc::new(LogBook::new(100));
        let subscriber = tracing_subscriber::registry().with(book.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(job = 3, attempt = 1, "attempt started");
            tracing::warn!(job = 3, error = "peer gone", "attempt could not join its cluster");
            tracing::info!(job = 4, "attempt started");
            tracing::debug!("noise");
        });
        let all = book.search(&LogsRequest::default()).unwrap();
        assert!(all.kept);
        assert_eq!(all.lines.iter().map(|line| line.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(all.next_seq, 5);
        let warned = &all.lines[1];
        assert_eq!((warned.level.as_str(), warned.message.as_str()), ("WARN", "attempt could not join its cluster"));
        assert_eq!(warned.fields, "job=3 error=peer gone");
        assert!(warned.target.ends_with("logs::tests"), "{}", warned.target);

        let job3 = book.search(&query("JOB=3", "", 0, 0)).unwrap();
        assert_eq!(job3.lines.iter().map(|line| line.seq).collect::<Vec<_>>(), [1, 2], "fields match, ignoring case");
        let warnings = book.search(&query("", "warn", 0, 0)).unwrap();
        assert_eq!(warnings.lines.iter().map(|line| line.seq).collect::<Vec<_>>(), [2], "warn and worse");
        let info = book.search(&query("", "INFO", 0, 0)).unwrap();
        assert_eq!(info.lines.len(), 3, "debug is below info");
        let newer = book.search(&query("started", "", 1, 0)).unwrap();
        assert_eq!(newer.lines.iter().map(|line| line.seq).collect::<Vec<_>>(), [3], "only lines after the sequence given");
        let newest = book.search(&query("", "", 0, 2)).unwrap();
        assert_eq!(newest.lines.iter().map(|line| line.seq).collect::<Vec<_>>(), [3, 4], "the newest, oldest first");
        assert_eq!(book.search(&query("", "loud", 0, 0)).unwrap_err(), LogQueryError::UnknownLevel("loud".into()));
    }

    #[test]
    fn the_ring_keeps_the_newest_lines_and_counts_what_it_dropped() {
        let book = LogBook::new(3);
        for n in 0..5 {
            book.push(LogLine { level: "INFO".into(), message: format!("line {n}"), ..LogLine::default() });
        }
        let reply = book.search(&LogsRequest::default()).unwrap();
        assert_eq!(reply.lines.iter().map(|line| line.message.as_str()).collect::<Vec<_>>(), ["line 2", "line 3", "line 4"]);
        assert_eq!((reply.dropped, reply.next_seq), (2, 6));
        let limited = book.search(&LogsRequest { limit: u32::MAX, ..LogsRequest::default() }).unwrap();
        assert_eq!(limited.lines.len(), 3, "a limit above the maximum is the maximum");
    }
}
