//! The SQL workbench's API: the SQL crate's tooling over HTTP for the console's editor, and test
//! runs. Any master answers (nothing here touches the cluster's state); a test run runs on the
//! answering master's embedded engine, bounded in rows and time, never writing to real sinks.
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/sql/check` with [`SqlScript`] | [`SqlCheckView`]: every problem with its place and a fix when a name is near a defined one; the tables the script defines |
//! | `POST /api/sql/complete` with [`SqlCompleteAsk`] | [`SqlCompletions`]: what may be typed at the place, best first (ranked here) |
//! | `POST /api/sql/format` with [`SqlScript`] | [`SqlScript`] formatted, or 400 with the problems |
//! | `POST /api/sql/explain` with [`SqlScript`] | [`SqlExplainView`]: the plan of the script's job and its job graph, as text and as nodes and edges |
//! | `GET /api/sql/functions` | [`SqlFunctions`]: every function with its signature, description and example |
//! | `POST /api/test-runs` with [`TestRunAsk`] | [`TestRunView`]: each sink's rows, and each expected sink's rows beside the produced ones |
//! | `POST /api/canvas/compile` with a `CanvasSpec` | [`CanvasCompileView`]: the drawn job as SQL with every stream typed, or its problems where drawn |
//! | `POST /api/canvas/preview` with [`CanvasPreviewAsk`] | [`CanvasPreviewView`]: each operator's first rows in a test run |
//! | `POST /api/canvas/from-sql` with [`SqlScript`] | the script drawn as a `CanvasSpec` when it can be, or 400 saying why not |

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tethys_sql::sample::{SampleFrom, SampleSpec};
use tethys_sql::test_run::{self, Compare, GenerateSpec, RowStatus, TestCase, TestError, TestInput};
use tethys_sql::{Outcome, Position, SqlError, SqlSession};
use tonic::Code;

use super::ApiError;
use crate::rpc::proto::control_server::Control;
use crate::rpc::proto::SampleTopicRequest;

/// Test runs one master runs at once; more wait for none (503).
const TEST_RUNS_AT_ONCE: usize = 2;

/// A script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlScript {
    /// Its text.
    pub script: String,
}

/// A problem of a script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SqlProblem {
    /// Its line (from 1); null when the problem has no place.
    pub line: Option<u32>,
    /// Its column (from 1).
    pub column: Option<u32>,
    /// What is wrong.
    pub message: String,
    /// The name meant, when a misspelled one is near a defined one ("did you mean"): what replaces
    /// the word at the place.
    pub fix: Option<String>,
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SqlColumnView {
    /// Its name.
    pub name: String,
    /// Its type as written, or `AS expr` for a computed column.
    pub data_type: String,
}

/// A table a script defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SqlTableView {
    /// Its name.
    pub name: String,
    /// Its connector, if it names one.
    pub connector: Option<String>,
    /// Its columns.
    pub columns: Vec<SqlColumnView>,
    /// Its event-time column, if it has a watermark.
    pub event_time: Option<String>,
    /// Its `WITH` options.
    pub options: BTreeMap<String, String>,
}

/// A script checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SqlCheckView {
    /// Whether it has no problem.
    pub ok: bool,
    /// Its problems, in the order of the script.
    pub problems: Vec<SqlProblem>,
    /// The tables it defines (those whose definitions are sound).
    pub tables: Vec<SqlTableView>,
}

/// `POST /api/sql/complete`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlCompleteAsk {
    /// The script.
    pub script: String,
    /// The cursor's line (from 1).
    pub line: u32,
    /// The cursor's column (from 1).
    pub column: u32,
}

/// A completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SqlCompletionView {
    /// What is inserted.
    pub label: String,
    /// column, function, table or keyword.
    pub kind: String,
    /// A column's type and table, a table's connector, a function's signature.
    pub detail: String,
    /// What a function does, or empty.
    pub documentation: String,
}

/// Completions, best first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SqlCompletions {
    /// Best first.
    pub items: Vec<SqlCompletionView>,
}

/// An operator of an explained job graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExplainNode {
    /// Its index.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// Its kind: source, map, window, sink...
    pub kind: String,
    /// Its subtasks.
    pub parallelism: u32,
    /// Whether its input is keyed.
    pub keyed: bool,
}

/// A stream between two operators of an explained job graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExplainEdge {
    /// The producer.
    pub from: u32,
    /// The consumer.
    pub to: u32,
    /// How records are spread: forward, hash, rebalance, broadcast...
    pub partitioning: String,
}

/// A script's job explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SqlExplainView {
    /// The logical plan, as `EXPLAIN` prints it.
    pub plan: String,
    /// The job graph, as text.
    pub graph_text: String,
    /// Its operators, in topological order.
    pub nodes: Vec<ExplainNode>,
    /// The streams between them.
    pub edges: Vec<ExplainEdge>,
}

/// A function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SqlFunctionView {
    /// Its name.
    pub name: String,
    /// Its signature.
    pub signature: String,
    /// What it does.
    pub description: String,
    /// A call and its result, when documented.
    pub example: Option<String>,
    /// scalar or aggregate.
    pub kind: String,
}

/// Every function a query may call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SqlFunctions {
    /// By name.
    pub functions: Vec<SqlFunctionView>,
}

/// Where a table's rows come from in a test run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestInputAsk {
    /// `csv` (default) or `json` (JSON lines).
    pub format: Option<String>,
    /// The rows, as the text of such a file (typed in, or an uploaded file's text).
    pub rows: Option<String>,
    /// CSV: the first line names the columns.
    #[serde(default)]
    pub header: bool,
    /// Rows generated from the table's columns instead.
    pub generate: Option<GenerateAsk>,
    /// A sample of a topic table's live topic instead (taken from the worker holding it).
    pub sample: Option<SampleAsk>,
}

/// A sample of a topic table's live rows (see `tethys_sql::sample::SampleSpec`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleAsk {
    /// How many rows at most (default 100, at most 10,000).
    pub rows: Option<u64>,
    /// `newest` (default) or `oldest`.
    pub from: Option<String>,
    /// A condition on the table's columns (SQL, as after WHERE): only rows it holds for.
    pub filter: Option<String>,
}

/// How rows are generated (see `tethys_sql::test_run::GenerateSpec`; absent fields take its defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateAsk {
    /// How many (default 100, at most 1,000,000).
    pub rows: Option<u64>,
    /// The seed (default 1).
    pub seed: Option<u64>,
    /// Rows per second of event time (default 10).
    pub rows_per_second: Option<f64>,
    /// The share of a nullable column's values that are NULL.
    pub null_ratio: Option<f64>,
    /// The column whose values are keys.
    pub key: Option<String>,
    /// Distinct keys (default 10).
    pub keys: Option<u64>,
    /// Zipf skew of the keys (0: even).
    pub skew: Option<f64>,
    /// The share of rows moved back in event time by up to `out_of_order_ms`.
    pub out_of_order_ratio: Option<f64>,
    /// How far back (default 2,000 ms).
    pub out_of_order_ms: Option<i64>,
    /// The share of rows that come behind the watermark.
    pub late_ratio: Option<f64>,
}

/// The rows expected of a sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedAsk {
    /// changelog (in order, default), sorted, or final (what the changelog adds up to).
    pub compare: Option<String>,
    /// The rows, one per line, as Flink prints them (`+I[1, alice]`).
    pub rows: String,
}

/// `POST /api/test-runs`'s body: a test case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRunAsk {
    /// The script.
    pub script: String,
    /// Inputs by table name: every table the job reads needs one unless its source ends.
    #[serde(default)]
    pub inputs: BTreeMap<String, TestInputAsk>,
    /// Expected rows by sink table name.
    #[serde(default)]
    pub expected: BTreeMap<String, ExpectedAsk>,
}

/// One row of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiffRowView {
    /// same, missing (expected, not produced) or unexpected (produced, not expected).
    pub status: String,
    /// The row.
    pub row: String,
    /// Its line among the expected rows (from 1).
    pub expected_line: Option<u32>,
    /// Its place among the produced rows (from 1).
    pub produced_line: Option<u32>,
}

/// A sink's produced rows beside the expected ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SinkDiffView {
    /// How they were compared.
    pub compare: String,
    /// Whether they are the same.
    pub passed: bool,
    /// Every row in the order compared.
    pub rows: Vec<DiffRowView>,
}

/// A test run's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestRunView {
    /// Whether every expected sink produced its rows.
    pub passed: bool,
    /// What each sink (and each `SELECT`, as `select1`...) produced, its changelog in order.
    pub outputs: BTreeMap<String, Vec<String>>,
    /// Each expected sink's comparison.
    pub diffs: BTreeMap<String, SinkDiffView>,
    /// How long the run took, in milliseconds.
    pub took_ms: u64,
}

/// The workbench's state: how many test runs may start.
#[derive(Clone)]
struct Workbench<C> {
    runs: Arc<tokio::sync::Semaphore>,
    /// The master's service (samples of live topics come through it).
    control: C,
}

/// The workbench's routes, answered by `control` (a master's `Control` service) where they need
/// the cluster.
pub fn router<C: Control + Clone>(control: C) -> Router {
    Router::new()
        .route("/api/sql/check", post(check))
        .route("/api/sql/complete", post(complete))
        .route("/api/sql/format", post(format))
        .route("/api/sql/explain", post(explain))
        .route("/api/sql/functions", get(functions))
        .route("/api/test-runs", post(test_run::<C>))
        .route("/api/canvas/compile", post(canvas_compile))
        .route("/api/canvas/preview", post(canvas_preview::<C>))
        .route("/api/canvas/from-sql", post(canvas_from_sql))
        .with_state(Workbench { runs: Arc::new(tokio::sync::Semaphore::new(TEST_RUNS_AT_ONCE)), control })
}

fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>, what: &str) -> Result<T, ApiError> {
    let body = body.map_err(super::api::body_error)?;
    serde_json::from_slice(&body).map_err(|error| ApiError::new(Code::InvalidArgument, format!("bad {what} JSON: {error}")))
}

/// `error` as a problem: its place, and the name it suggests, if any.
fn problem(error: &SqlError) -> SqlProblem {
    SqlProblem {
        line: error.at.map(|at| at.line as u32),
        column: error.at.map(|at| at.column as u32),
        message: error.message.clone(),
        fix: suggestion(&error.message),
    }
}

/// The name a message's "did you mean X?" suggests (quotes taken off).
fn suggestion(message: &str) -> Option<String> {
    let (_, rest) = message.rsplit_once("did you mean ")?;
    let name = rest.split('?').next()?.trim().trim_matches(|c| c == '\'' || c == '`' || c == '"');
    (!name.is_empty() && !name.contains(' ')).then(|| name.to_string())
}

fn table_view(table: &tethys_sql::TableDef) -> SqlTableView {
    SqlTableView {
        name: table.name.clone(),
        connector: table.option("connector").map(str::to_string),
        columns: table
            .columns
            .iter()
            .map(|column| SqlColumnView {
                name: column.name.clone(),
                data_type: match &column.kind {
                    tethys_sql::ColumnKind::Physical { data_type, nullable } => {
                        format!("{data_type}{}", if *nullable { "" } else { " NOT NULL" })
                    }
                    tethys_sql::ColumnKind::Computed(expr) => format!("AS {expr}"),
                },
            })
            .collect(),
        event_time: table.watermark.as_ref().map(|watermark| watermark.column.clone()),
        options: table.options.iter().cloned().collect(),
    }
}

#[utoipa::path(post, path = "/api/sql/check", tag = "sql", request_body = SqlScript,
    responses((status = 200, description = "The script's problems (none: ok) and the tables it defines", body = SqlCheckView),
              (status = 400, description = "A bad body", body = super::openapi::ErrorBody)))]
async fn check(body: Result<Bytes, BytesRejection>) -> Result<Json<SqlCheckView>, ApiError> {
    let SqlScript { script } = parse_body(body, "script")?;
    let view = tokio::task::spawn_blocking(move || match tethys_sql::check_script(&script) {
        Ok((_, catalog)) => SqlCheckView { ok: true, problems: Vec::new(), tables: catalog.tables().map(table_view).collect() },
        Err(errors) => {
            // The tables whose definitions are sound, for the catalog beside the editor.
            let (statements, _) = tethys_sql::parse_script_partly(&script);
            let tables = statements
                .iter()
                .filter_map(|statement| match &statement.statement {
                    tethys_sql::Statement::CreateTable(def) => Some(table_view(def)),
                    _ => None,
                })
                .collect();
            SqlCheckView { ok: false, problems: errors.iter().map(problem).collect(), tables }
        }
    })
    .await
    .map_err(|error| ApiError::new(Code::Internal, format!("the check failed: {error}")))?;
    Ok(Json(view))
}

#[utoipa::path(post, path = "/api/sql/complete", tag = "sql", request_body = SqlCompleteAsk,
    responses((status = 200, description = "What may be typed at the place, best first", body = SqlCompletions),
              (status = 400, description = "A bad body or place", body = super::openapi::ErrorBody)))]
async fn complete(body: Result<Bytes, BytesRejection>) -> Result<Json<SqlCompletions>, ApiError> {
    let ask: SqlCompleteAsk = parse_body(body, "completion")?;
    if ask.line == 0 || ask.column == 0 {
        return Err(ApiError::new(Code::InvalidArgument, "lines and columns count from 1"));
    }
    let cursor = Position { line: u64::from(ask.line), column: u64::from(ask.column) };
    let items = tethys_sql::complete(&ask.script, cursor)
        .into_iter()
        .map(|completion| SqlCompletionView {
            label: completion.label,
            kind: format!("{:?}", completion.kind).to_lowercase(),
            detail: completion.detail,
            documentation: completion.documentation,
        })
        .collect();
    Ok(Json(SqlCompletions { items }))
}

#[utoipa::path(post, path = "/api/sql/format", tag = "sql", request_body = SqlScript,
    responses((status = 200, description = "The script formatted (comments kept)", body = SqlScript),
              (status = 400, description = "A bad body, or a script that does not parse (the first problem)", body = super::openapi::ErrorBody)))]
async fn format(body: Result<Bytes, BytesRejection>) -> Result<Json<SqlScript>, ApiError> {
    let SqlScript { script } = parse_body(body, "script")?;
    match tethys_sql::format_script(&script) {
        Ok(script) => Ok(Json(SqlScript { script })),
        Err(errors) => Err(ApiError::new(Code::InvalidArgument, errors[0].render(&script))),
    }
}

#[utoipa::path(post, path = "/api/sql/explain", tag = "sql", request_body = SqlScript,
    responses((status = 200, description = "The plan of the script's job and its job graph", body = SqlExplainView),
              (status = 400, description = "A bad body, a script with a problem, or one that defines no job", body = super::openapi::ErrorBody)))]
async fn explain(body: Result<Bytes, BytesRejection>) -> Result<Json<SqlExplainView>, ApiError> {
    let SqlScript { script } = parse_body(body, "script")?;
    let view = tokio::task::spawn_blocking(move || explain_script(&script))
        .await
        .map_err(|error| ApiError::new(Code::Internal, format!("the explanation failed: {error}")))??;
    Ok(Json(view))
}

/// The plan and job graph of `script`'s last job statement (nothing runs).
fn explain_script(script: &str) -> Result<SqlExplainView, ApiError> {
    let statements = tethys_sql::parse_script(script).map_err(|errors| ApiError::new(Code::InvalidArgument, errors[0].render(script)))?;
    let mut session = SqlSession::default();
    let mut last = None;
    for statement in &statements {
        match session.execute(statement).map_err(|error| ApiError::new(Code::InvalidArgument, error.render(script)))? {
            Outcome::Job(job) => last = Some(job),
            Outcome::Explain(plan) => {
                return Ok(SqlExplainView { plan, graph_text: String::new(), nodes: Vec::new(), edges: Vec::new() });
            }
            _ => {}
        }
    }
    let job = last.ok_or_else(|| ApiError::new(Code::InvalidArgument, "the script defines no job: add an INSERT INTO or a SELECT"))?;
    let graph = job.env.job_graph();
    let graph_text = job.env.explain().map_err(|error| ApiError::new(Code::InvalidArgument, error.to_string()))?;
    let nodes = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| ExplainNode {
            id: index as u32,
            name: node.name.clone(),
            kind: format!("{:?}", node.kind).split(['(', ' ', '{']).next().unwrap_or("").to_lowercase(),
            parallelism: graph.parallelism_of(index) as u32,
            keyed: node.keyed,
        })
        .collect();
    let edges = graph
        .edges
        .iter()
        .map(|edge| ExplainEdge {
            from: edge.from as u32,
            to: edge.to as u32,
            partitioning: format!("{:?}", edge.partitioning).split(['(', ' ', '{']).next().unwrap_or("").to_lowercase(),
        })
        .collect();
    Ok(SqlExplainView { plan: job.plan, graph_text, nodes, edges })
}

#[utoipa::path(get, path = "/api/sql/functions", tag = "sql",
    responses((status = 200, description = "Every function a query may call", body = SqlFunctions)))]
async fn functions() -> Json<SqlFunctions> {
    let registry = tethys_sql::function::FunctionRegistry::default();
    let mut functions: Vec<SqlFunctionView> = registry
        .scalars()
        .map(|function| SqlFunctionView {
            name: function.name().to_string(),
            signature: function.signature().to_string(),
            description: function.description().to_string(),
            example: function.example_call().map(|(call, result)| format!("{call} = {result}")),
            kind: "scalar".to_string(),
        })
        .collect();
    functions.extend(tethys_sql::aggregate::AGGREGATE_SIGNATURES.iter().map(|(name, signature, description)| SqlFunctionView {
        name: name.to_string(),
        signature: signature.to_string(),
        description: description.to_string(),
        example: None,
        kind: "aggregate".to_string(),
    }));
    functions.sort_by(|a, b| a.name.cmp(&b.name));
    Json(SqlFunctions { functions })
}

/// `ask` as the SQL crate's test case.
fn test_case(ask: TestRunAsk) -> Result<TestCase, ApiError> {
    let bad = |message: String| ApiError::new(Code::InvalidArgument, message);
    let mut case = TestCase { name: "test run".into(), sql: Some(ask.script), ..TestCase::default() };
    for (table, input) in ask.inputs {
        let generate = input.generate.map(|ask| {
            let default = GenerateSpec::default();
            GenerateSpec {
                rows: ask.rows.unwrap_or(default.rows),
                seed: ask.seed.unwrap_or(default.seed),
                rows_per_second: ask.rows_per_second.unwrap_or(default.rows_per_second),
                null_ratio: ask.null_ratio.unwrap_or(default.null_ratio),
                key: ask.key.filter(|key| !key.is_empty()),
                keys: ask.keys.unwrap_or(default.keys),
                skew: ask.skew.unwrap_or(default.skew),
                out_of_order_ratio: ask.out_of_order_ratio.unwrap_or(default.out_of_order_ratio),
                out_of_order_ms: ask.out_of_order_ms.unwrap_or(default.out_of_order_ms),
                late_ratio: ask.late_ratio.unwrap_or(default.late_ratio),
                ..default
            }
        });
        let sample = input
            .sample
            .map(|ask| {
                let from = match ask.from.as_deref().unwrap_or("newest") {
                    "newest" => SampleFrom::Newest,
                    "oldest" => SampleFrom::Oldest,
                    other => return Err(bad(format!("input {table}: a sample is of the 'newest' or 'oldest' rows, not '{other}'"))),
                };
                let default = SampleSpec::default();
                Ok(SampleSpec { rows: ask.rows.unwrap_or(default.rows), from, filter: ask.filter.filter(|text| !text.trim().is_empty()) })
            })
            .transpose()?;
        let input = TestInput { format: input.format, rows: input.rows, file: None, header: input.header, generate, sample, sampled: None };
        case.inputs.insert(table, input);
    }
    for (sink, expected) in ask.expected {
        let compare = match expected.compare.as_deref().unwrap_or("changelog") {
            "changelog" => Compare::Changelog,
            "sorted" => Compare::Sorted,
            "final" => Compare::Final,
            other => return Err(bad(format!("expected {sink}: compare '{other}' is not known: changelog, sorted or final"))),
        };
        case.expected.insert(sink, test_run::Expected { compare, rows: Some(expected.rows), file: None });
    }
    Ok(case)
}

#[utoipa::path(post, path = "/api/test-runs", tag = "sql", request_body = TestRunAsk,
    responses((status = 200, description = "What each sink produced, and each expected sink's rows beside the produced ones", body = TestRunView),
              (status = 400, description = "A bad case: its script, an input or an expected sink (said with its place)", body = super::openapi::ErrorBody),
              (status = 422, description = "The run failed or was stopped (more rows than allowed, or it did not end)", body = super::openapi::ErrorBody),
              (status = 503, description = "This master runs as many test runs as it takes", body = super::openapi::ErrorBody)))]
async fn test_run<C: Control + Clone>(
    State(workbench): State<Workbench<C>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TestRunView>, ApiError> {
    let ask: TestRunAsk = parse_body(body, "test run")?;
    let mut case = test_case(ask)?;
    // The samples it takes count as part of the run: a worker reads a topic for each.
    let permit = run_permit(&workbench)?;
    take_samples(&workbench.control, &mut case).await?;
    let started = std::time::Instant::now();
    let report = run_case(permit, case).await?;
    let diffs = report
        .diffs
        .iter()
        .map(|(sink, diff)| {
            let rows = diff
                .rows
                .iter()
                .map(|row| DiffRowView {
                    status: match row.status {
                        RowStatus::Same => "same",
                        RowStatus::Missing => "missing",
                        RowStatus::Unexpected => "unexpected",
                    }
                    .to_string(),
                    row: row.row.clone(),
                    expected_line: row.expected_line.map(|line| line as u32),
                    produced_line: row.produced_line.map(|line| line as u32),
                })
                .collect();
            let view = SinkDiffView { compare: format!("{:?}", diff.compare).to_lowercase(), passed: diff.passed(), rows };
            (sink.clone(), view)
        })
        .collect();
    Ok(Json(TestRunView { passed: report.passed(), outputs: report.output.sinks, diffs, took_ms: started.elapsed().as_millis() as u64 }))
}

/// Takes the samples `case`'s inputs ask for, from the workers (the one holding the topic) or
/// from the topic itself.
async fn take_samples<C: Control>(control: &C, case: &mut TestCase) -> Result<(), ApiError> {
    let script = case.sql.clone().unwrap_or_default();
    for (table, input) in &mut case.inputs {
        let Some(spec) = &input.sample else { continue };
        let spec_json = serde_json::to_string(spec).map_err(|error| ApiError::new(Code::Internal, error.to_string()))?;
        let request = SampleTopicRequest { script: script.clone(), table: table.clone(), spec_json };
        let reply = control.sample_topic(tonic::Request::new(request)).await?.into_inner();
        let rows = tethys_sql::sample::decode_rows(&reply.rows).map_err(|error| ApiError::new(Code::Internal, error))?;
        input.sampled = Some(rows);
    }
    Ok(())
}

/// One of the [`TEST_RUNS_AT_ONCE`] test runs this master takes at once (samples of live topics
/// included), or 503 when all are taken.
fn run_permit<C>(workbench: &Workbench<C>) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    workbench
        .runs
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::new(Code::Unavailable, format!("this master runs {TEST_RUNS_AT_ONCE} test runs already: try again shortly")))
}

/// Runs `case` on this master's engine, holding `permit` until it ends, in a directory of its own
/// removed after.
async fn run_case(permit: tokio::sync::OwnedSemaphorePermit, case: TestCase) -> Result<test_run::TestReport, ApiError> {
    let _permit = permit;
    let work = std::env::temp_dir().join(format!("tethys-test-run-{}-{}", std::process::id(), next_run()));
    let outcome = tokio::task::spawn_blocking(move || {
        let outcome = test_run::check_case(&case, &work);
        let _ = std::fs::remove_dir_all(&work);
        outcome
    })
    .await
    .map_err(|error| ApiError::new(Code::Internal, format!("the test run failed: {error}")))?;
    outcome.map_err(|error| match error {
        TestError::Run(message) => ApiError::with_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY, Code::FailedPrecondition, message),
        other => ApiError::new(Code::InvalidArgument, other.to_string()),
    })
}

/// A drawn job compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CanvasCompileView {
    /// Whether it is a job.
    pub ok: bool,
    /// The job as SQL, when it is one.
    pub sql: Option<String>,
    /// The stream out of each operator (by id).
    pub streams: BTreeMap<String, tethys_sql::canvas::StreamType>,
    /// Its problems, each where it was drawn.
    pub errors: Vec<tethys_sql::canvas::CanvasError>,
}

#[utoipa::path(post, path = "/api/canvas/compile", tag = "sql", request_body = tethys_sql::canvas::CanvasSpec,
    responses((status = 200, description = "The drawn job as SQL with every stream typed, or its problems where drawn", body = CanvasCompileView),
              (status = 400, description = "A body that is no canvas", body = super::openapi::ErrorBody)))]
async fn canvas_compile(body: Result<Bytes, BytesRejection>) -> Result<Json<CanvasCompileView>, ApiError> {
    let spec: tethys_sql::canvas::CanvasSpec = parse_body(body, "canvas")?;
    let view = tokio::task::spawn_blocking(move || match tethys_sql::canvas::compile(&spec) {
        Ok(compiled) => CanvasCompileView { ok: true, sql: Some(compiled.sql), streams: compiled.streams, errors: Vec::new() },
        Err(errors) => CanvasCompileView { ok: false, sql: None, streams: BTreeMap::new(), errors },
    })
    .await
    .map_err(|error| ApiError::new(Code::Internal, format!("the canvas's compilation failed: {error}")))?;
    Ok(Json(view))
}

#[utoipa::path(post, path = "/api/canvas/from-sql", tag = "sql", request_body = SqlScript,
    responses((status = 200, description = "The script drawn as a canvas", body = tethys_sql::canvas::CanvasSpec),
              (status = 400, description = "A script the canvas cannot draw (said why)", body = super::openapi::ErrorBody)))]
async fn canvas_from_sql(body: Result<Bytes, BytesRejection>) -> Result<Json<tethys_sql::canvas::CanvasSpec>, ApiError> {
    let SqlScript { script } = parse_body(body, "script")?;
    let spec = tokio::task::spawn_blocking(move || tethys_sql::canvas::from_sql(&script))
        .await
        .map_err(|error| ApiError::new(Code::Internal, format!("drawing the script failed: {error}")))?
        .map_err(|reason| ApiError::new(Code::InvalidArgument, reason))?;
    Ok(Json(spec))
}

/// `POST /api/canvas/preview`'s body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanvasPreviewAsk {
    /// The drawn job.
    pub spec: tethys_sql::canvas::CanvasSpec,
    /// Inputs by table name (a generator or topic table given none gets generated rows).
    #[serde(default)]
    pub inputs: BTreeMap<String, TestInputAsk>,
}

/// Each operator's first rows in a test run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CanvasPreviewView {
    /// By operator id, and by table for the sinks: the first 100 rows of each.
    pub outputs: BTreeMap<String, Vec<String>>,
    /// How many rows each produced.
    pub counts: BTreeMap<String, u64>,
}

/// Rows a preview shows per operator.
const PREVIEW_ROWS: usize = 100;

#[utoipa::path(post, path = "/api/canvas/preview", tag = "sql", request_body = CanvasPreviewAsk,
    responses((status = 200, description = "Each operator's first rows in a test run", body = CanvasPreviewView),
              (status = 400, description = "A drawing that is no job, or a bad input", body = super::openapi::ErrorBody),
              (status = 422, description = "The run failed or was stopped", body = super::openapi::ErrorBody),
              (status = 503, description = "This master runs as many test runs as it takes", body = super::openapi::ErrorBody)))]
async fn canvas_preview<C: Control + Clone>(
    State(workbench): State<Workbench<C>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CanvasPreviewView>, ApiError> {
    let ask: CanvasPreviewAsk = parse_body(body, "canvas preview")?;
    let compiled = tethys_sql::canvas::compile(&ask.spec).map_err(|errors| {
        let said: Vec<String> =
            errors.iter().map(|error| format!("{}: {}", error.node.as_deref().unwrap_or("canvas"), error.message)).collect();
        ApiError::new(Code::InvalidArgument, said.join("; "))
    })?;
    // Each operator's view read by a query of its own after the job: `select<n>` is the n-th.
    let operators: Vec<String> = compiled.streams.keys().cloned().collect();
    let selects: String = operators.iter().map(|id| format!("SELECT * FROM {id};\n")).collect();
    let ask = TestRunAsk { script: format!("{}\n{selects}", compiled.sql), inputs: ask.inputs, expected: BTreeMap::new() };
    let mut case = test_case(ask)?;
    let permit = run_permit(&workbench)?;
    take_samples(&workbench.control, &mut case).await?;
    let report = run_case(permit, case).await?;
    let mut outputs = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for (name, rows) in report.output.sinks {
        let key = match name.strip_prefix("select").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if (1..=operators.len()).contains(&n) => operators[n - 1].clone(),
            _ => name,
        };
        counts.insert(key.clone(), rows.len() as u64);
        outputs.insert(key, rows.into_iter().take(PREVIEW_ROWS).collect());
    }
    Ok(Json(CanvasPreviewView { outputs, counts }))
}

/// A number for each test run of this process (its directory's name).
fn next_run() -> u64 {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_takes_so_many_test_runs_at_once_and_refuses_more_with_503_until_one_ends() {
        let workbench = Workbench { runs: Arc::new(tokio::sync::Semaphore::new(TEST_RUNS_AT_ONCE)), control: () };
        let mut held: Vec<_> = (0..TEST_RUNS_AT_ONCE).map(|_| run_permit(&workbench).expect("room for a run")).collect();
        let refused = run_permit(&workbench).expect_err("every run taken");
        assert_eq!(axum::response::IntoResponse::into_response(refused).status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        held.pop();
        assert!(run_permit(&workbench).is_ok(), "a run that ended makes room");
    }

    #[test]
    fn a_did_you_mean_becomes_a_fix() {
        assert_eq!(suggestion("no table named ordrs; did you mean orders?").as_deref(), Some("orders"));
        assert_eq!(
            suggestion("table t: the datagen connector has no option 'row'; did you mean 'rows-per-second'?").as_deref(),
            Some("rows-per-second")
        );
        assert_eq!(suggestion("no column named x"), None);
    }
}
