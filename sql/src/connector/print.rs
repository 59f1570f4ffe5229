//! The `print` connector, and the sink that hands a query's rows to the program that runs it
//! (the terminal view of `tethys sql run`, tests).

use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tethys_engine::sink::{Sink, SinkWriter};
use tethys_engine::{SubtaskContext, UserError};

use crate::value::Row;

/// Prints each row as Flink's print connector does: `+I[1, foo]`, after `identifier:subtask> `
/// (the identifier when given, the subtask when there are several).
#[derive(Debug, Clone)]
pub struct RowPrintSink {
    /// `'print-identifier'`.
    pub identifier: Option<String>,
    /// `'standard-error'`: print to standard error.
    pub standard_error: bool,
}

impl Sink<Row> for RowPrintSink {
    fn create_writer(&self, context: &SubtaskContext) -> Result<Box<dyn SinkWriter<Row>>, UserError> {
        let subtask = (context.parallelism > 1).then(|| (context.subtask_index + 1).to_string());
        let prefix = match (&self.identifier, subtask) {
            (Some(identifier), Some(subtask)) => format!("{identifier}:{subtask}> "),
            (Some(identifier), None) => format!("{identifier}> "),
            (None, Some(subtask)) => format!("{subtask}> "),
            (None, None) => String::new(),
        };
        Ok(Box::new(RowPrintWriter { prefix, standard_error: self.standard_error }))
    }
}

struct RowPrintWriter {
    prefix: String,
    standard_error: bool,
}

impl SinkWriter<Row> for RowPrintWriter {
    fn write_frame(&mut self, frame: Vec<Row>) -> Result<(), UserError> {
        let mut text = String::new();
        for row in &frame {
            text.push_str(&self.prefix);
            text.push_str(&row.to_string());
            text.push('\n');
        }
        // One write per frame, so lines of parallel subtasks do not interleave.
        if self.standard_error {
            std::io::stderr().lock().write_all(text.as_bytes())?;
        } else {
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
        Ok(())
    }
}

/// Sends every row to a channel as it is written (frames in order per subtask). The receiver
/// going away does not fail the job: rows are then dropped.
#[derive(Debug, Clone)]
pub struct RowChannelSink {
    sender: Arc<Mutex<mpsc::Sender<Row>>>,
}

impl RowChannelSink {
    /// A sink and the receiver of its rows.
    pub fn new() -> (RowChannelSink, mpsc::Receiver<Row>) {
        let (sender, receiver) = mpsc::channel();
        (RowChannelSink { sender: Arc::new(Mutex::new(sender)) }, receiver)
    }
}

impl Sink<Row> for RowChannelSink {
    fn create_writer(&self, _context: &SubtaskContext) -> Result<Box<dyn SinkWriter<Row>>, UserError> {
        let sender = self.sender.lock().expect("the sender's lock is never poisoned").clone();
        Ok(Box::new(RowChannelWriter { sender }))
    }
}

struct RowChannelWriter {
    sender: mpsc::Sender<Row>,
}

impl SinkWriter<Row> for RowChannelWriter {
    fn write_frame(&mut self, frame: Vec<Row>) -> Result<(), UserError> {
        for row in frame {
            if self.sender.send(row).is_err() {
                break;
            }
        }
        Ok(())
    }
}
