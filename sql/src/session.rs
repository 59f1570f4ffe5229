//! A SQL session: runs a script's statements in order, as Flink's SQL client does.
//!
//! `CREATE TABLE` / `CREATE VIEW` / `DROP` change the catalog; `SET 'key' = 'value'` changes
//! settings (`parallelism.default`, `table.local-time-zone`, `pipeline.name`,
//! `execution.checkpointing.interval`); `SHOW TABLES`, `SHOW FUNCTIONS`, `DESCRIBE t` answer
//! with a table; `EXPLAIN` shows a query's plan; `INSERT INTO t SELECT ...` and a bare `SELECT`
//! become jobs ([`SqlJob`]) the caller runs on the engine: an insert writes to its table's
//! connector, a select hands its rows to the caller.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::time::Duration;

use sqlparser::ast::{ObjectType, Query, Statement as Ast};
use tethys_engine::{EngineConfig, StreamEnvironment};

use crate::catalog::{SqlCatalog, SqlTable, SqlView};
use crate::connector;
use crate::connector::print::RowChannelSink;
use crate::error::{Position, SqlError};
use crate::expr::Scalar;
use crate::function::{EvalContext, FunctionRegistry};
use crate::job::JobBuilder;
use crate::plan::query::Planner;
use crate::plan::{AggPhaseStrategy, Plan, PlanNode};
use crate::script::{parse_script, Statement, StatementAt};
use crate::time::Zone;
use crate::types::{Schema, SqlType};
use crate::value::Row;

/// A job a statement defined, ready to run on the engine.
pub struct SqlJob {
    /// Its name (`pipeline.name`, or the statement's kind and sink).
    pub name: String,
    /// The job, defined.
    pub env: StreamEnvironment,
    /// For a `SELECT`: its columns and the receiver of its rows.
    pub results: Option<(Schema, mpsc::Receiver<Row>)>,
    /// Its plan, as `EXPLAIN` shows it.
    pub plan: String,
}

/// What a statement did.
pub enum Outcome {
    /// A change of the catalog or settings, said in words.
    Done(String),
    /// An answer as a table (`SHOW`, `DESCRIBE`).
    Table {
        /// Column names.
        header: Vec<String>,
        /// Rows of text.
        rows: Vec<Vec<String>>,
    },
    /// `EXPLAIN`'s plan.
    Explain(String),
    /// A job to run.
    Job(Box<SqlJob>),
}

/// The settings a session knows, with what each takes.
pub const SETTINGS: &[(&str, &str)] = &[
    ("parallelism.default", "subtasks per operator (default 1)"),
    ("table.local-time-zone", "the zone of TIMESTAMP_LTZ values and local dates (default UTC)"),
    ("pipeline.name", "the name of the next jobs"),
    ("execution.checkpointing.interval", "how often to checkpoint ('10 s'; default: never)"),
    ("execution.checkpointing.dir", "where checkpoints go (default: a directory of the job)"),
    ("table.exec.state.ttl", "how long a regular join or GROUP BY keeps a key nobody touched ('1 h'; default: forever)"),
    (
        "table.optimizer.agg-phase-strategy",
        "AUTO (default): a window aggregate whose aggregates merge sums each frame's rows per key and slice of its windows before the shuffle; TWO_PHASE: so does a GROUP BY over inserts (fewer, coarser updates); ONE_PHASE: neither",
    ),
    ("table.optimizer.reuse-sub-plan-enabled", "true (default): what a job computes more than once is computed once and read by each reader; false"),
    ("table.optimizer.reuse-source-enabled", "true (default): a generated table scanned more than once is generated once; false"),
];

/// A SQL session: its catalog, functions and settings.
pub struct SqlSession {
    catalog: SqlCatalog,
    functions: FunctionRegistry,
    settings: BTreeMap<String, String>,
    /// The engine settings jobs start from (parallelism and checkpoints set by `SET` win).
    config: EngineConfig,
    /// A test run's redirection of sources and sinks (`redirect_for_test`), if any.
    redirect: Option<TestRedirect>,
}

/// Where a test run's rows come from and go: tables read other options (their schema and
/// watermark kept), and every insert writes to a capture instead of its table.
struct TestRedirect {
    /// By table name (lower case): the `WITH` options it reads instead of its own.
    sources: HashMap<String, Vec<(String, String)>>,
    captured: std::sync::Mutex<Vec<Capture>>,
}

/// The rows an insert wrote in a test run, instead of its table.
pub struct Capture {
    /// The table it was to write.
    pub table: String,
    /// Its rows, as they come (a changelog when the query updates).
    pub rows: mpsc::Receiver<Row>,
}

impl Default for SqlSession {
    fn default() -> Self {
        SqlSession::new(FunctionRegistry::default())
    }
}

impl SqlSession {
    /// A session calling `functions` (the built-ins, and any registered from Rust).
    pub fn new(functions: FunctionRegistry) -> SqlSession {
        // One subtask per operator unless set, as Flink's SQL client (rows keep their order).
        let config = EngineConfig { parallelism: 1, ..EngineConfig::default() };
        SqlSession { catalog: SqlCatalog::default(), functions, settings: BTreeMap::new(), config, redirect: None }
    }

    /// A test run's session: each table of `sources` (by name) reads the options given instead of
    /// its own `WITH` options, keeping its columns and watermark; every `INSERT` writes to a
    /// capture (`take_captures`), never to its table.
    pub fn redirect_for_test(&mut self, sources: HashMap<String, Vec<(String, String)>>) {
        let sources = sources.into_iter().map(|(name, options)| (name.to_lowercase(), options)).collect();
        self.redirect = Some(TestRedirect { sources, captured: std::sync::Mutex::new(Vec::new()) });
    }

    /// The captures of the inserts defined since the last call (a test run's session).
    pub fn take_captures(&mut self) -> Vec<Capture> {
        self.redirect
            .as_mut()
            .map(|redirect| std::mem::take(redirect.captured.get_mut().unwrap_or_else(|e| e.into_inner())))
            .unwrap_or_default()
    }

    /// Writes `stream` to `table`, or, in a test run, to a capture of it.
    fn write_to(&self, stream: tethys_engine::DataStream<Row>, table: &SqlTable, updating: bool) -> Result<(), SqlError> {
        match &self.redirect {
            Some(redirect) => {
                let (sink, rows) = RowChannelSink::new();
                stream.sink(table.name(), sink).parallelism(1);
                let capture = Capture { table: table.name().to_string(), rows };
                redirect.captured.lock().unwrap_or_else(|e| e.into_inner()).push(capture);
            }
            None => {
                connector::sink(stream, table, updating, self.parallelism())?;
            }
        }
        Ok(())
    }

    /// Jobs start from `config` (its parallelism unless `parallelism.default` is set).
    pub fn with_engine_config(mut self, config: EngineConfig) -> SqlSession {
        self.config = config;
        self
    }

    /// The catalog.
    pub fn catalog(&self) -> &SqlCatalog {
        &self.catalog
    }

    /// The functions.
    pub fn functions(&self) -> &FunctionRegistry {
        &self.functions
    }

    /// Setting `key`, if set.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }

    fn context(&self) -> EvalContext {
        EvalContext { zone: self.setting("table.local-time-zone").and_then(Zone::parse).unwrap_or_default() }
    }

    fn state_ttl_ms(&self) -> Option<i64> {
        self.setting("table.exec.state.ttl").and_then(connector::datagen::parse_duration_ms)
    }

    fn agg_phases(&self) -> AggPhaseStrategy {
        self.setting("table.optimizer.agg-phase-strategy").and_then(AggPhaseStrategy::parse).unwrap_or_default()
    }

    fn planner(&self) -> Planner<'_> {
        Planner::new(&self.catalog, &self.functions, self.context())
            .with_state_ttl(self.state_ttl_ms())
            .with_agg_phase_strategy(self.agg_phases())
    }

    fn job_builder<'e>(&self, env: &'e StreamEnvironment) -> JobBuilder<'e> {
        let enabled = |key: &str| self.setting(key).is_none_or(|value| !value.eq_ignore_ascii_case("false"));
        JobBuilder::new(env, self.context(), self.parallelism())
            .with_state_ttl(self.state_ttl_ms())
            .with_reuse(enabled("table.optimizer.reuse-sub-plan-enabled"), enabled("table.optimizer.reuse-source-enabled"))
    }

    fn parallelism(&self) -> usize {
        self.setting("parallelism.default").and_then(|text| text.parse().ok()).unwrap_or(self.config.parallelism.max(1))
    }

    /// Runs every statement of `sql` in order, stopping at the first that fails.
    pub fn execute_script(&mut self, sql: &str) -> Result<Vec<Outcome>, SqlError> {
        let statements = parse_script(sql).map_err(|mut errors| errors.remove(0))?;
        statements.iter().map(|statement| self.execute(statement)).collect()
    }

    /// Runs one statement.
    pub fn execute(&mut self, statement: &StatementAt) -> Result<Outcome, SqlError> {
        let at = statement.at;
        match &statement.statement {
            Statement::CreateTable(def) => {
                let mut def = (**def).clone();
                if let Some(options) = self.redirect.as_ref().and_then(|redirect| redirect.sources.get(&def.name.to_lowercase())) {
                    def.options = options.clone();
                }
                let table = SqlTable::new(def, at, &self.functions)?;
                let name = table.name().to_string();
                self.catalog.add_table(table)?;
                Ok(Outcome::Done(format!("table {name} created")))
            }
            Statement::Other(ast) => self.execute_ast(ast, at),
            Statement::StatementSet(inserts) => {
                // One job: every insert's plan built into one environment.
                let env = self.environment()?;
                let plans = self.statement_set_into(&env, inserts)?;
                let name = self.setting("pipeline.name").unwrap_or("STATEMENT SET").to_string();
                Ok(Outcome::Job(Box::new(SqlJob { name, env, results: None, plan: plans.join("\n") })))
            }
        }
    }

    fn execute_ast(&mut self, ast: &Ast, at: Option<Position>) -> Result<Outcome, SqlError> {
        match ast {
            Ast::CreateView(view) => {
                let name = view.name.to_string();
                let columns: Vec<String> = view.columns.iter().map(|column| column.name.value.clone()).collect();
                let sql_view = SqlView { name: name.clone(), query: (*view.query).clone(), columns };
                // Plan it now, so a broken view is refused where it is defined.
                let mut check = self.catalog.clone();
                check.add_view(sql_view.clone(), at, true)?;
                Planner::new(&check, &self.functions, self.context())
                    .with_state_ttl(self.state_ttl_ms())
                    .with_agg_phase_strategy(self.agg_phases())
                    .plan_query(&view.query)?;
                self.catalog.add_view(sql_view, at, view.or_replace)?;
                Ok(Outcome::Done(format!("view {name} created")))
            }
            Ast::Drop { object_type: ObjectType::Table | ObjectType::View, names, if_exists, .. } => {
                for name in names {
                    if !self.catalog.drop(&name.to_string()) && !if_exists {
                        return Err(self.catalog.unknown(&name.to_string(), at));
                    }
                }
                Ok(Outcome::Done(format!("{} dropped", names.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))))
            }
            Ast::Set(sqlparser::ast::Set::SingleAssignment { variable, values, .. }) => {
                let key =
                    variable.0.iter().filter_map(|part| part.as_ident()).map(|ident| ident.value.clone()).collect::<Vec<_>>().join(".");
                let value = match values.as_slice() {
                    [sqlparser::ast::Expr::Value(value)] => match &value.value {
                        sqlparser::ast::Value::SingleQuotedString(text) | sqlparser::ast::Value::Number(text, _) => text.clone(),
                        other => other.to_string(),
                    },
                    other => other.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                };
                self.set(&key, &value, at)?;
                Ok(Outcome::Done(format!("{key} = {value}")))
            }
            Ast::ShowTables { .. } => {
                let rows = self
                    .catalog
                    .tables()
                    .map(|table| vec![table.name().to_string(), "TABLE".into(), table.def.option("connector").unwrap_or("").to_string()])
                    .chain(self.catalog.views().map(|view| vec![view.name.clone(), "VIEW".into(), String::new()]))
                    .collect();
                Ok(Outcome::Table { header: vec!["name".into(), "kind".into(), "connector".into()], rows })
            }
            Ast::ShowFunctions { .. } => {
                let rows =
                    self.functions.scalars().map(|function| vec![function.name().to_string(), function.signature().to_string()]).collect();
                Ok(Outcome::Table { header: vec!["name".into(), "signature".into()], rows })
            }
            Ast::ExplainTable { table_name, .. } => {
                let name = table_name.to_string();
                let schema = match self.catalog.table(&name) {
                    Some(table) => table.schema.clone(),
                    None => self.plan_named(&name, at)?.schema,
                };
                let key = self.catalog.table(&name).map(|table| table.def.primary_key.clone()).unwrap_or_default();
                let rows = schema
                    .fields
                    .iter()
                    .map(|field| {
                        let in_key = key.iter().any(|column| column.eq_ignore_ascii_case(&field.name));
                        let shown_type = match (field.event_time, field.proc_time) {
                            (true, _) => format!("{} *ROWTIME*", field.data_type),
                            (false, true) => format!("{} *PROCTIME*", field.data_type),
                            (false, false) => field.data_type.to_string(),
                        };
                        vec![
                            field.name.clone(),
                            shown_type,
                            field.nullable.to_string().to_uppercase(),
                            if in_key { "PRI".into() } else { String::new() },
                        ]
                    })
                    .collect();
                Ok(Outcome::Table { header: vec!["name".into(), "type".into(), "null".into(), "key".into()], rows })
            }
            Ast::Explain { statement, .. } => {
                // The plan, then the job graph it is built into (operators, chaining, parallelism).
                let env = self.environment()?;
                let plan = match statement.as_ref() {
                    Ast::Query(query) => {
                        let plan = self.plan(query)?;
                        self.job_builder(&env).build(&plan)?.sink("results", tethys_engine::sink::discard::DiscardSink::new());
                        plan
                    }
                    Ast::Insert(insert) => {
                        let (table, plan) = self.plan_insert(insert, at)?;
                        let stream = self.job_builder(&env).build(&plan)?;
                        connector::sink(stream, &table, plan.updating, self.parallelism())?;
                        plan
                    }
                    other => return Err(SqlError::at(at, format!("EXPLAIN shows a query or an INSERT, not {other}"))),
                };
                let graph = env.explain().map_err(|error| SqlError::at(at, error.to_string()))?;
                Ok(Outcome::Explain(format!("== Plan ==\n{}\n== Job graph ==\n{graph}", plan.explain())))
            }
            Ast::Query(query) => {
                let plan = self.plan(query)?;
                let env = self.environment()?;
                let mut builder = self.job_builder(&env);
                let stream = builder.build(&plan)?;
                let (sink, receiver) = RowChannelSink::new();
                stream.sink("results", sink).parallelism(1);
                let name = self.setting("pipeline.name").unwrap_or("SELECT").to_string();
                Ok(Outcome::Job(Box::new(SqlJob { name, env, results: Some((plan.schema.clone(), receiver)), plan: plan.explain() })))
            }
            Ast::Insert(insert) => {
                let (table, plan) = self.plan_insert(insert, at)?;
                let env = self.environment()?;
                let mut builder = self.job_builder(&env);
                let stream = builder.build(&plan)?;
                self.write_to(stream, &table, plan.updating)?;
                let name = self.setting("pipeline.name").map(str::to_string).unwrap_or_else(|| format!("INSERT INTO {}", table.name()));
                Ok(Outcome::Job(Box::new(SqlJob { name, env, results: None, plan: plan.explain() })))
            }
            other => Err(SqlError::at(at, format!("statement {} is not supported", first_words(&other.to_string())))),
        }
    }

    /// Defines in `env` the job of `script`, as every process of a cluster does from the same
    /// text: its definitions and settings run in order, and its one job statement (an `INSERT
    /// INTO`, a statement set, or a `SELECT`, whose rows are then counted and dropped) is built
    /// into `env`. The job's parallelism is `env`'s (a `SET 'parallelism.default'` in the script
    /// does not change it: the cluster sized the job's slots by it). Returns the job's name.
    pub fn define_job(&mut self, env: &StreamEnvironment, script: &str) -> Result<String, SqlError> {
        self.config = env.config().clone();
        let statements = parse_script(script).map_err(|mut errors| errors.remove(0))?;
        let mut name = None;
        for statement in &statements {
            let job = match &statement.statement {
                Statement::StatementSet(inserts) => {
                    self.statement_set_into(env, inserts)?;
                    Some("STATEMENT SET".to_string())
                }
                Statement::Other(ast) => match ast.as_ref() {
                    Ast::Insert(insert) => {
                        let (table, _) = self.insert_into(&mut self.job_builder(env), insert, statement.at)?;
                        Some(format!("INSERT INTO {}", table.name()))
                    }
                    Ast::Query(query) => {
                        let plan = self.plan(query)?;
                        self.job_builder(env).build(&plan)?.sink("results", tethys_engine::sink::discard::DiscardSink::new());
                        Some("SELECT".to_string())
                    }
                    _ => None,
                },
                Statement::CreateTable(_) => None,
            };
            match (job, &name) {
                (Some(_), Some(_)) => {
                    return Err(SqlError::at(
                        statement.at,
                        "a SQL job has one job statement (an INSERT INTO, a statement set or a SELECT), and this is a second; join INSERTs in EXECUTE STATEMENT SET BEGIN ... END",
                    ))
                }
                (Some(job), None) => name = Some(job),
                (None, _) => {
                    self.execute(statement)?;
                    // The cluster sized the job by its own parallelism.
                    self.settings.remove("parallelism.default");
                }
            }
        }
        let name =
            name.ok_or_else(|| SqlError::at(None, "the script defines no job: end it with an INSERT INTO, a statement set or a SELECT"))?;
        Ok(self.setting("pipeline.name").map_or(name, str::to_string))
    }

    /// Builds `insert` with `builder`: its query's plan and the sink of its table (both returned).
    fn insert_into(
        &self,
        builder: &mut JobBuilder<'_>,
        insert: &sqlparser::ast::Insert,
        at: Option<Position>,
    ) -> Result<(SqlTable, Plan), SqlError> {
        let (table, plan) = self.plan_insert(insert, at)?;
        let stream = builder.build(&plan)?;
        self.write_to(stream, &table, plan.updating).map_err(|error| SqlError { at: error.at.or(at), ..error })?;
        Ok((table, plan))
    }

    /// Builds every insert of a statement set into `env` with one builder (so their operators'
    /// ids differ, and what several inserts compute alike is computed once); their plans' text.
    fn statement_set_into(&self, env: &StreamEnvironment, inserts: &[StatementAt]) -> Result<Vec<String>, SqlError> {
        let mut planned = Vec::new();
        for insert in inserts {
            let Statement::Other(ast) = &insert.statement else { unreachable!("a statement set holds inserts") };
            let Ast::Insert(ast) = ast.as_ref() else { unreachable!("a statement set holds inserts") };
            let (table, plan) = self.plan_insert(ast, insert.at)?;
            planned.push((table, plan, insert.at));
        }
        let plans: Vec<&Plan> = planned.iter().map(|(_, plan, _)| plan).collect();
        let streams = self.job_builder(env).build_all(&plans)?;
        for ((table, plan, at), stream) in planned.iter().zip(streams) {
            self.write_to(stream, table, plan.updating).map_err(|error| SqlError { at: error.at.or(*at), ..error })?;
        }
        Ok(planned.iter().map(|(_, plan, _)| plan.explain()).collect())
    }

    /// A job running query `sql` (one `SELECT`) into `sink`: how a program (a benchmark, a
    /// test) takes a query's rows where it wants them.
    pub fn query_into(&self, sql: &str, sink: impl tethys_engine::sink::Sink<Row>) -> Result<SqlJob, SqlError> {
        let env = self.environment()?;
        let (stream, plan) = self.query_stream(&env, sql)?;
        stream.sink("query", sink);
        let name = self.setting("pipeline.name").unwrap_or("SELECT").to_string();
        Ok(SqlJob { name, env, results: None, plan: plan.explain() })
    }

    /// Query `sql` (one `SELECT`) defined in `env` (a job being defined, the same in every
    /// process that rebuilds it from the text), its rows as a stream to end as the caller
    /// wants, and its plan.
    pub fn query_stream(&self, env: &StreamEnvironment, sql: &str) -> Result<(tethys_engine::DataStream<Row>, Plan), SqlError> {
        let statements = parse_script(sql).map_err(|mut errors| errors.remove(0))?;
        let [statement] = statements.as_slice() else {
            return Err(SqlError::at(None, format!("one query expected, got {} statements", statements.len())));
        };
        let Statement::Other(ast) = &statement.statement else {
            return Err(SqlError::at(statement.at, "a query (SELECT ...) expected"));
        };
        let Ast::Query(query) = ast.as_ref() else {
            return Err(SqlError::at(statement.at, "a query (SELECT ...) expected"));
        };
        let plan = self.plan(query)?;
        let stream = self.job_builder(env).build(&plan)?;
        Ok((stream, plan))
    }

    fn set(&mut self, key: &str, value: &str, at: Option<Position>) -> Result<(), SqlError> {
        let valid = match key {
            "parallelism.default" => value.parse::<usize>().is_ok_and(|p| (1..=256).contains(&p)),
            "table.local-time-zone" => Zone::parse(value).is_some(),
            "execution.checkpointing.interval" | "table.exec.state.ttl" => {
                connector::datagen::parse_duration_ms(value).is_some_and(|ms| ms > 0)
            }
            "pipeline.name" | "execution.checkpointing.dir" => true,
            "table.optimizer.agg-phase-strategy" => AggPhaseStrategy::parse(value).is_some(),
            "table.optimizer.reuse-sub-plan-enabled" | "table.optimizer.reuse-source-enabled" => {
                value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
            }
            _ => {
                let hint = crate::check::did_you_mean(key, SETTINGS.iter().map(|(name, _)| *name))
                    .map(|nearest| format!("; did you mean '{nearest}'?"))
                    .unwrap_or_default();
                return Err(SqlError::at(at, format!("no setting '{key}'{hint}")));
            }
        };
        if !valid {
            let what = SETTINGS.iter().find(|(name, _)| *name == key).map(|(_, what)| *what).unwrap_or("");
            return Err(SqlError::at(at, format!("'{value}' is not a value of '{key}': {what}")));
        }
        self.settings.insert(key.to_string(), value.to_string());
        Ok(())
    }

    fn environment(&self) -> Result<StreamEnvironment, SqlError> {
        let parallelism = self.parallelism();
        let mut config = EngineConfig { slots: self.config.slots.max(parallelism), parallelism, ..self.config.clone() };
        if let Some(interval) = self.setting("execution.checkpointing.interval") {
            config.checkpoint_interval = connector::datagen::parse_duration_ms(interval).map(|ms| Duration::from_millis(ms as u64));
        }
        if let Some(dir) = self.setting("execution.checkpointing.dir") {
            config.checkpoint_dir = Some(dir.into());
        }
        Ok(StreamEnvironment::new(config))
    }

    /// Plans a query (the plan rules applied).
    pub fn plan(&self, query: &Query) -> Result<Plan, SqlError> {
        Ok(crate::plan::rules::optimize(self.planner().plan_query(query)?))
    }

    fn plan_named(&self, name: &str, at: Option<Position>) -> Result<Plan, SqlError> {
        match self.catalog.view(name) {
            Some(view) => self.plan(&view.query),
            None => Err(self.catalog.unknown(name, at)),
        }
    }

    /// The sink table and the plan of `INSERT INTO table SELECT ...`, its rows cast to the
    /// table's column types where they widen.
    fn plan_insert(&self, insert: &sqlparser::ast::Insert, at: Option<Position>) -> Result<(SqlTable, Plan), SqlError> {
        let name = insert.table.to_string();
        let Some(table) = self.catalog.table(&name).cloned() else {
            return Err(if self.catalog.view(&name).is_some() {
                SqlError::at(at, format!("{name} is a view: INSERT INTO a table"))
            } else {
                self.catalog.unknown(&name, at)
            });
        };
        if !insert.columns.is_empty() {
            return Err(SqlError::at(at, "INSERT INTO with a column list is not supported yet: select every column in order"));
        }
        if insert.overwrite {
            return Err(SqlError::at(at, "INSERT OVERWRITE is for batch jobs: a stream appends"));
        }
        let Some(source) = &insert.source else { return Err(SqlError::at(at, "INSERT INTO needs a query")) };
        let plan = self.plan(source)?;
        connector::check_takes_changelog(&table, plan.updating, at)?;
        let wanted = &table.physical;
        if plan.schema.fields.len() != wanted.fields.len() {
            return Err(SqlError::at(
                at,
                format!(
                    "the query has {} columns and table {} has {} ({}): select one value per column",
                    plan.schema.fields.len(),
                    table.name(),
                    wanted.fields.len(),
                    wanted.names().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let mut projection = Vec::new();
        let mut casts = false;
        for (i, (got, want)) in plan.schema.fields.iter().zip(&wanted.fields).enumerate() {
            if got.data_type == want.data_type || got.data_type == SqlType::Null {
                projection.push(Scalar::Column(i));
                continue;
            }
            // Flink casts implicitly what widens, and a DECIMAL into a DECIMAL of any precision
            // and scale (a value too large for it is NULL, as its CAST makes it).
            let widens = SqlType::common(&got.data_type, &want.data_type).is_some_and(|common| common == want.data_type)
                || (got.data_type.is_timestamp() && want.data_type.is_timestamp())
                || (matches!(got.data_type, SqlType::Decimal { .. }) && matches!(want.data_type, SqlType::Decimal { .. }));
            if !widens {
                return Err(SqlError::at(
                    at,
                    format!(
                        "column {} of the query ({}) is {}, and column {} of table {} is {}: CAST it",
                        i + 1,
                        got.name,
                        got.data_type,
                        want.name,
                        table.name(),
                        want.data_type
                    ),
                ));
            }
            casts = true;
            projection.push(Scalar::Cast(Box::new(Scalar::Column(i)), got.data_type.clone(), want.data_type.clone(), false));
        }
        let plan = if casts {
            let updating = plan.updating;
            crate::plan::rules::optimize(Plan {
                schema: wanted.clone(),
                node: PlanNode::Calc { input: Box::new(plan), projection, filter: None, text: format!("casts to {}", table.name()) },
                updating,
            })
        } else {
            plan
        };
        Ok((table, plan))
    }
}

fn first_words(text: &str) -> String {
    text.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// Runs a job to its end (bounded sources), handing a select's rows to `on_row` as they come.
pub fn run_job(job: SqlJob, mut on_row: impl FnMut(&Row)) -> Result<tethys_engine::JobResult, String> {
    let client = job.env.execute_async(&job.name).map_err(|error| error.to_string())?;
    if let Some((_, receiver)) = &job.results {
        loop {
            match receiver.recv_timeout(Duration::from_millis(20)) {
                Ok(row) => on_row(&row),
                Err(mpsc::RecvTimeoutError::Timeout) if client.is_finished() => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let result = client.wait().map_err(|error| error.to_string());
        while let Ok(row) = receiver.try_recv() {
            on_row(&row);
        }
        return result;
    }
    client.wait().map_err(|error| error.to_string())
}

/// Runs a script on the engine and returns what its queries printed, as Flink prints rows
/// (`+I[...]`), one list per `SELECT`; inserts run to their end. For tests and examples: every
/// source must be bounded.
pub fn run_script(sql: &str) -> Result<Vec<Vec<String>>, String> {
    let mut session = SqlSession::default();
    let mut results = Vec::new();
    for outcome in session.execute_script(sql).map_err(|error| error.render(sql))? {
        if let Outcome::Job(job) = outcome {
            let select = job.results.is_some();
            let mut rows = Vec::new();
            run_job(*job, |row| rows.push(row.to_string()))?;
            if select {
                results.push(rows);
            }
        }
    }
    Ok(results)
}
