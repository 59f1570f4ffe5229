//! What a SQL session knows: its tables (with their schemas, computed columns and watermarks
//! checked and typed), views, and settings.

use std::collections::BTreeMap;

use sqlparser::ast::{BinaryOperator, Expr, Query};

use crate::check::did_you_mean;
use crate::ddl::{ColumnKind, TableDef};
use crate::error::{Position, SqlError};
use crate::expr::{interval_ms, position_of, Binder, Scalar, Scope};
use crate::function::FunctionRegistry;
use crate::types::{Field, Schema, SqlType};

/// The watermark of a table: `WATERMARK FOR column AS column - INTERVAL ...`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watermark {
    /// The event-time column's index in the table's schema.
    pub column: usize,
    /// How far behind the largest event time seen the watermark stays (out-of-orderness).
    pub delay_ms: i64,
}

/// A table of the catalog, checked.
#[derive(Debug, Clone)]
pub struct SqlTable {
    /// As defined.
    pub def: TableDef,
    /// Its physical columns: what its connector reads or writes.
    pub physical: Schema,
    /// Every column, the computed ones after the physical ones in definition order; the
    /// watermark's column is the event time.
    pub schema: Schema,
    /// The computed columns' expressions over the physical columns, in `schema` order after
    /// the physical ones.
    pub computed: Vec<Scalar>,
    /// Its watermark, if it has one.
    pub watermark: Option<Watermark>,
    /// Where its `CREATE TABLE` is.
    pub at: Option<Position>,
}

impl SqlTable {
    /// Checks a table definition: column types, computed columns (bound over the physical
    /// ones), the watermark (its column is a timestamp; its expression the column minus an
    /// interval, or the column itself).
    pub fn new(def: TableDef, at: Option<Position>, functions: &FunctionRegistry) -> Result<SqlTable, SqlError> {
        let mut physical = Vec::new();
        let mut positions = Vec::new();
        for column in &def.columns {
            if let ColumnKind::Physical { data_type, nullable } = &column.kind {
                let data_type = SqlType::from_ast(data_type).map_err(|message| SqlError::at(column.at, message))?;
                physical.push(Field { name: column.name.clone(), data_type, nullable: *nullable, event_time: false, proc_time: false });
                positions.push(column.at);
            }
        }
        let physical = Schema::new(physical);
        let scope = Scope::of(&physical, None);
        let binder = Binder::new(&scope, functions);
        let mut fields = physical.fields.clone();
        let mut computed = Vec::new();
        for column in &def.columns {
            if let ColumnKind::Computed(expr) = &column.kind {
                let bound = binder.bind(expr)?;
                // `PROCTIME()` makes the column the table's processing-time attribute.
                let proc_time = matches!(&bound.scalar, Scalar::Call(function, _) if function.name() == "PROCTIME");
                fields.push(Field {
                    name: column.name.clone(),
                    data_type: bound.data_type,
                    nullable: bound.nullable,
                    event_time: false,
                    proc_time,
                });
                computed.push(bound.scalar);
            }
        }
        let mut schema = Schema::new(fields);
        let watermark = match &def.watermark {
            None => None,
            Some(watermark) => {
                let column = schema.index_of(&watermark.column).expect("the DDL checked the watermark's column");
                let field = &mut schema.fields[column];
                if !field.data_type.is_timestamp() {
                    return Err(SqlError::at(
                        watermark.at,
                        format!("the watermark's column {} is {}, not a TIMESTAMP(3) or TIMESTAMP_LTZ(3)", field.name, field.data_type),
                    ));
                }
                field.event_time = true;
                let delay_ms = watermark_delay(&watermark.strategy, &field.name)?;
                Some(Watermark { column, delay_ms })
            }
        };
        Ok(SqlTable { def, physical, schema, computed, watermark, at })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.def.name
    }
}

/// The delay of a watermark strategy `col - INTERVAL 'n' unit` (or `col`: none).
fn watermark_delay(strategy: &Expr, column: &str) -> Result<i64, SqlError> {
    let is_column = |expr: &Expr| matches!(expr, Expr::Identifier(ident) if ident.value.eq_ignore_ascii_case(column));
    match strategy {
        expr if is_column(expr) => Ok(0),
        Expr::Nested(inner) => watermark_delay(inner, column),
        Expr::BinaryOp { left, op: BinaryOperator::Minus, right } if is_column(left) => match right.as_ref() {
            Expr::Interval(interval) => {
                let delay = interval_ms(interval, position_of(right))?;
                if delay < 0 {
                    return Err(SqlError::at(position_of(right), "a watermark's delay cannot be negative"));
                }
                Ok(delay)
            }
            other => Err(SqlError::at(position_of(other), format!("a watermark's delay is an INTERVAL: {column} - INTERVAL '5' SECOND"))),
        },
        other => Err(SqlError::at(
            position_of(other),
            format!(
                "a watermark is the event-time column, or it minus an interval: WATERMARK FOR {column} AS {column} - INTERVAL '5' SECOND"
            ),
        )),
    }
}

/// A view: a named query, planned where it is used.
#[derive(Debug, Clone)]
pub struct SqlView {
    /// Its name.
    pub name: String,
    /// Its query.
    pub query: Query,
    /// Its column names, if listed (`CREATE VIEW v (a, b) AS ...`).
    pub columns: Vec<String>,
}

/// The session's tables and views, by name without case.
#[derive(Debug, Clone, Default)]
pub struct SqlCatalog {
    tables: BTreeMap<String, SqlTable>,
    views: BTreeMap<String, SqlView>,
}

impl SqlCatalog {
    /// Adds a table; one of that name already there is an error unless `IF NOT EXISTS`.
    pub fn add_table(&mut self, table: SqlTable) -> Result<(), SqlError> {
        let key = table.name().to_lowercase();
        if self.tables.contains_key(&key) || self.views.contains_key(&key) {
            if table.def.if_not_exists {
                return Ok(());
            }
            return Err(SqlError::at(table.at, format!("a table or view named {} exists already", table.name())));
        }
        self.tables.insert(key, table);
        Ok(())
    }

    /// Adds a view.
    pub fn add_view(&mut self, view: SqlView, at: Option<Position>, or_replace: bool) -> Result<(), SqlError> {
        let key = view.name.to_lowercase();
        if self.tables.contains_key(&key) || (self.views.contains_key(&key) && !or_replace) {
            return Err(SqlError::at(at, format!("a table or view named {} exists already", view.name)));
        }
        self.views.insert(key, view);
        Ok(())
    }

    /// Removes a table or view; `false` if there was none.
    pub fn drop(&mut self, name: &str) -> bool {
        let key = name.to_lowercase();
        self.tables.remove(&key).is_some() || self.views.remove(&key).is_some()
    }

    /// Table `name`, if there is one.
    pub fn table(&self, name: &str) -> Option<&SqlTable> {
        self.tables.get(&name.to_lowercase())
    }

    /// View `name`, if there is one.
    pub fn view(&self, name: &str) -> Option<&SqlView> {
        self.views.get(&name.to_lowercase())
    }

    /// The tables, by name.
    pub fn tables(&self) -> impl Iterator<Item = &SqlTable> {
        self.tables.values()
    }

    /// The views, by name.
    pub fn views(&self) -> impl Iterator<Item = &SqlView> {
        self.views.values()
    }

    /// The error for a name that is no table or view, with the nearest one.
    pub fn unknown(&self, name: &str, at: Option<Position>) -> SqlError {
        let names = self.tables.values().map(|table| table.name()).chain(self.views.values().map(|view| view.name.as_str()));
        let hint = did_you_mean(name, names).map(|nearest| format!("; did you mean {nearest}?")).unwrap_or_default();
        SqlError::at(at, format!("no table or view named {name}{hint}"))
    }
}
