//! The lookup join: each row of the stream joined with the rows of a table that match its keys.
//! The table (a file, or an embedded topic's committed changes added up) is read whole by the
//! first subtask of a process that gets a row (its options were checked when the job was built),
//! indexed by its key columns, and shared by the subtasks of that process; so a row sees the
//! table as it was when its process first needed it (each process, and each restart, reads it
//! again; it is not refreshed meanwhile), as Flink's `filesystem` lookup source with a cache that
//! never expires does.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use tethys_engine::operator::{FrameOperator, Output};
use tethys_engine::UserError;

use crate::connector::LookupRows;
use crate::expr::Scalar;
use crate::function::EvalContext;
use crate::value::{Row, RowKey, Value};

/// A table's rows (their values) by the values of its key columns.
pub(super) type Index = HashMap<RowKey, Vec<Vec<Value>>>;

/// A table's rows by the values of its key columns (rows with a NULL key are left out: they
/// never equal anything).
pub(super) fn index(rows: Vec<Row>, key_columns: &[usize]) -> Index {
    let mut index = Index::new();
    for row in rows {
        let key: Vec<Value> = key_columns.iter().map(|&column| row.values[column].clone()).collect();
        if key.iter().any(|value| matches!(value, Value::Null)) {
            continue;
        }
        index.entry(RowKey::from(key)).or_default().push(row.values);
    }
    index
}

/// The looked-up table, read and indexed once, when first needed.
pub(super) struct LookupTable {
    pub rows: LookupRows,
    pub key_columns: Vec<usize>,
    pub index: OnceLock<Result<Index, String>>,
}

impl LookupTable {
    fn index(&self) -> Result<&Index, String> {
        self.index.get_or_init(|| self.rows.read().map(|rows| index(rows, &self.key_columns))).as_ref().map_err(Clone::clone)
    }
}

/// Joins each row with its matches in the table.
#[derive(Clone)]
pub(super) struct LookupJoinOperator {
    pub table: Arc<LookupTable>,
    pub left_keys: Vec<Scalar>,
    /// Left join: a row without a match comes out with the table's columns NULL.
    pub keep_unmatched: bool,
    pub table_width: usize,
    pub residual: Option<Scalar>,
    pub context: EvalContext,
}

impl LookupJoinOperator {
    fn join(&self, row: Row, out: &mut Output<'_, Row>) -> Result<(), String> {
        let failed = |error: String, row: &Row| format!("{error}, in LookupJoin of row {row}");
        let key: Vec<Value> = self
            .left_keys
            .iter()
            .map(|scalar| scalar.eval(&row.values, &self.context))
            .collect::<Result<_, _>>()
            .map_err(|error| failed(error, &row))?;
        let matches = match key.iter().any(|value| matches!(value, Value::Null)) {
            true => None,
            false => self.table.index()?.get(&RowKey::from(key)),
        };
        let mut matched = false;
        for table_row in matches.into_iter().flatten() {
            let mut values = Vec::with_capacity(row.values.len() + self.table_width);
            values.extend_from_slice(&row.values);
            values.extend_from_slice(table_row);
            if let Some(residual) = &self.residual {
                if residual.test(&values, &self.context).map_err(|error| failed(error, &row))? != Some(true) {
                    continue;
                }
            }
            matched = true;
            out.emit(Row { kind: row.kind, values });
        }
        if !matched && self.keep_unmatched {
            let mut values = row.values;
            values.extend(std::iter::repeat_n(Value::Null, self.table_width));
            out.emit(Row { kind: row.kind, values });
        }
        Ok(())
    }
}

impl FrameOperator<Row, Row> for LookupJoinOperator {
    fn process(&mut self, frame: Vec<Row>, out: &mut Output<'_, Row>) -> Result<(), UserError> {
        for row in frame {
            self.join(row, out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_with_a_null_key_are_not_indexed_and_equal_keys_gather() {
        let rows = vec![
            Row::insert(vec![Value::Int(1), Value::Int(10)]),
            Row::insert(vec![Value::Int(1), Value::Int(11)]),
            Row::insert(vec![Value::Null, Value::Int(12)]),
        ];
        let index = index(rows, &[0]);
        assert_eq!(index.len(), 1);
        assert_eq!(index[&RowKey::from(vec![Value::Int(1)])].len(), 2);
    }
}
