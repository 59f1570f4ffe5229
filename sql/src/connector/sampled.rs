//! Every SQL sink samples what it writes for the console's live results: a wrapper around the
//! connector's sink whose writers describe a bounded sample of their rows as JSON
//! (`{"op":"+I","values":[...]}`, values as [`Value::to_json`](crate::value::Value::to_json)
//! writes them) on the job's live board, through the engine's
//! [`OutputTap`](tethys_engine::OutputTap). A writer without a tap (unit tests) samples nothing.

use tethys_engine::sink::{Committable, Sink, SinkCommitter, SinkWriter};
use tethys_engine::{OutputSampler, SubtaskContext, UserError};

use crate::types::Schema;
use crate::value::Row;

/// A connector's sink whose writers sample their rows.
pub struct SampledSink {
    inner: Box<dyn Sink<Row>>,
    name: String,
    columns: Vec<String>,
    types: Vec<String>,
}

impl SampledSink {
    /// `inner`, writing rows of `schema` to table `name`.
    pub fn new(inner: Box<dyn Sink<Row>>, name: &str, schema: &Schema) -> SampledSink {
        let columns = schema.fields.iter().map(|field| field.name.clone()).collect();
        let types = schema.fields.iter().map(|field| field.data_type.to_string()).collect();
        SampledSink { inner, name: name.to_string(), columns, types }
    }
}

impl Sink<Row> for SampledSink {
    fn create_writer(&self, context: &SubtaskContext) -> Result<Box<dyn SinkWriter<Row>>, UserError> {
        let writer = self.inner.create_writer(context)?;
        let sampler = context.output_tap.as_ref().map(|tap| tap.sampler(&self.name, self.columns.clone(), self.types.clone()));
        Ok(Box::new(SampledWriter { writer, sampler }))
    }

    fn create_committer(&self) -> Result<Option<Box<dyn SinkCommitter>>, UserError> {
        self.inner.create_committer()
    }
}

struct SampledWriter {
    writer: Box<dyn SinkWriter<Row>>,
    sampler: Option<OutputSampler>,
}

/// A row as its sample describes it.
pub fn sample_json(row: &Row) -> String {
    let values: Vec<serde_json::Value> = row.values.iter().map(|value| value.to_json()).collect();
    serde_json::json!({ "op": row.kind.short(), "values": values }).to_string()
}

impl SinkWriter<Row> for SampledWriter {
    fn write_frame(&mut self, frame: Vec<Row>) -> Result<(), UserError> {
        if let Some(sampler) = &mut self.sampler {
            sampler.frame(frame.len(), |index| sample_json(&frame[index]));
        }
        self.writer.write_frame(frame)
    }

    fn finish(&mut self) -> Result<(), UserError> {
        if let Some(sampler) = &mut self.sampler {
            sampler.finish();
        }
        self.writer.finish()
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Option<Committable>, UserError> {
        self.writer.pre_commit(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{RowKind, Value};

    #[test]
    fn a_sample_names_the_change_and_keeps_values_typed() {
        let row = Row { kind: RowKind::UpdateAfter, values: vec![Value::Int(7), Value::Str("a".into()), Value::Null, Value::Float(1.5)] };
        assert_eq!(sample_json(&row), r#"{"op":"+U","values":[7,"a",null,1.5]}"#);
    }
}
