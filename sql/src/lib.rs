//! Tethys's streaming SQL, in the Flink SQL dialect users know.
//!
//! - `script`: a script (statements separated by `;`) parsed into [`Statement`]s, each with where
//!   it starts; queries, `INSERT`, `SET` and the rest as sqlparser parses them, Flink's
//!   `CREATE TABLE` here.
//! - `ddl`: `CREATE [TEMPORARY] TABLE` with typed and computed columns, `WATERMARK FOR col AS
//!   expr`, `PRIMARY KEY (...) NOT ENFORCED` and `WITH ('key' = 'value', ...)` connector options.
//! - `check`: the script checked without running it: unknown tables and columns, with the
//!   nearest defined name as a suggestion, then every statement planned in a session (types,
//!   functions, aggregates, watermarks, sinks, connector options), every error reported.
//! - `complete`: what may be typed at a cursor (tables, columns in scope with their types,
//!   functions with their signatures, window functions, keywords), ranked by what is typed
//!   already.
//! - `error`: what is wrong and where (line and column), shown with the line and a caret.
//! - `format`: one-click formatting, comments kept, checked to mean the same.
//! - `highlight`: a script's tokens by kind and place, for an editor's colours.
//!
//! - `types`, `value`, `time`: SQL types, values and rows (the records of SQL jobs), dates.
//! - `expr`, `function`, `aggregate`: typed expressions, scalar and aggregate functions.
//! - `catalog`: tables (checked, typed) and views; `connector`: where rows come from and go.
//! - `plan`: queries planned into relational plans; `job`: plans built into engine jobs.
//! - `session`: a script's statements run in order (DDL, SET, SHOW, DESCRIBE, EXPLAIN, INSERT,
//!   SELECT).
//! - `canvas`: a job drawn as operators and streams, compiled to SQL (a view per operator), each
//!   stream typed (columns, changelog or inserts, event time), a drawing that cannot be a job
//!   refused where it was drawn.
//! - `test_run`: test runs that never touch real sources and sinks (inputs typed in, from files
//!   or generated; inserts captured), and produced rows beside the expected ones (`tethys test`).
//! - `sample`: a bounded, filtered sample of an embedded topic's rows, a test run's input from a
//!   live source.
#![warn(missing_docs)]

pub mod aggregate;
pub mod canvas;
pub mod catalog;
pub mod check;
pub mod complete;
pub mod connector;
pub mod ddl;
pub mod dialect;
pub mod error;
pub mod expr;
pub mod format;
pub mod function;
pub mod highlight;
pub mod job;
pub mod plan;
pub mod sample;
pub mod script;
pub mod session;
pub mod test_run;
pub mod text;
pub mod time;
pub mod types;
pub mod value;

pub use check::{check_script, check_script_with, did_you_mean, Catalog};
pub use complete::{complete, complete_with, Completion, CompletionKind};
pub use ddl::{ColumnDef, ColumnKind, TableDef, WatermarkDef};
pub use error::{Position, SqlError};
pub use format::format_script;
pub use highlight::{highlight, Highlight, TokenKind};
pub use script::{parse_script, parse_script_partly, Statement, StatementAt};
pub use session::{run_job, run_script, Outcome, SqlJob, SqlSession};
