//! A sink that prints every record on standard output, one per line, prefixed with the subtask
//! number as Flink's print sink does (`2> record`).

use std::fmt::Debug;
use std::io::Write;

use super::{Sink, SinkWriter};
use crate::base::{SubtaskContext, UserError};
use crate::frame::Record;

/// Prints records with `Debug`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrintSink;

impl<T: Record + Debug> Sink<T> for PrintSink {
    fn create_writer(&self, context: &SubtaskContext) -> Result<Box<dyn SinkWriter<T>>, UserError> {
        let prefix = if context.parallelism > 1 { format!("{}> ", context.subtask_index + 1) } else { String::new() };
        Ok(Box::new(PrintWriter { prefix }))
    }
}

struct PrintWriter {
    prefix: String,
}

impl<T: Record + Debug> SinkWriter<T> for PrintWriter {
    fn write_frame(&mut self, frame: Vec<T>) -> Result<(), UserError> {
        let mut text = String::new();
        for record in &frame {
            text.push_str(&self.prefix);
            text.push_str(&format!("{record:?}\n"));
        }
        // One write per frame so lines of parallel subtasks do not interleave mid-line.
        std::io::stdout().lock().write_all(text.as_bytes())?;
        Ok(())
    }
}
