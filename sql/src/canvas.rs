//! The canvas: a job drawn as operators (sources, filters, projections, window aggregates,
//! aggregates, joins, deduplication, Top-N, sinks) and the streams between them, compiled to the
//! SQL the workbench runs, so a canvas and the SQL it shows are one job with one plan.
//!
//! Each operator becomes a view over its inputs' views (named by the operator's id), each sink an
//! `INSERT INTO` (several: a statement set). Every stream is typed as the planner types the view
//! it leaves: its columns, whether it is a changelog (updating) or inserts only, and its event-time
//! column. A drawing that cannot be a job is refused where it was drawn ([`CanvasError`] names the
//! operator or the stream): an unknown table, an operator with the wrong number of inputs, a
//! cycle, a window over a stream without event time, an updating stream into a sink that takes
//! only inserts, an expression the planner refuses.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::catalog::SqlTable;
use crate::script::{parse_script, Statement};
use crate::session::SqlSession;
use crate::types::Schema;

/// A drawn job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CanvasSpec {
    /// The tables the sources and sinks name: `CREATE TABLE` statements.
    pub tables: String,
    /// The operators.
    pub nodes: Vec<CanvasNode>,
    /// The streams between them.
    pub edges: Vec<CanvasEdge>,
}

/// An operator on the canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CanvasNode {
    /// Its id: a name (letters, digits, `_`), which its view takes.
    pub id: String,
    /// What it does.
    #[serde(flatten)]
    pub op: CanvasOp,
    /// Where it is drawn (kept, not compiled).
    #[serde(default)]
    pub x: f64,
    /// Where it is drawn.
    #[serde(default)]
    pub y: f64,
}

/// An output column: an expression and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OutputColumn {
    /// The expression, in SQL.
    pub expr: String,
    /// Its name (default: the planner's).
    #[serde(default)]
    pub name: Option<String>,
}

/// A window of a window aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CanvasWindow {
    /// Fixed windows of `size` (`5 SECOND`, `1 MINUTE`...).
    Tumble {
        /// Their length.
        size: String,
    },
    /// Windows of `size` every `slide`.
    Hop {
        /// How often one starts.
        slide: String,
        /// Their length.
        size: String,
    },
    /// Windows growing by `step` up to `size`.
    Cumulate {
        /// How much each grows.
        step: String,
        /// The largest.
        size: String,
    },
    /// Windows of activity closed by a `gap` without rows.
    Session {
        /// The gap.
        gap: String,
    },
}

/// What an operator does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CanvasOp {
    /// The rows of a table.
    Source {
        /// The table.
        table: String,
    },
    /// The rows for which `condition` holds.
    Filter {
        /// A SQL condition over the input's columns.
        condition: String,
    },
    /// Computed columns.
    Project {
        /// The columns.
        columns: Vec<OutputColumn>,
    },
    /// Rows grouped by key and window, aggregated when each window closes (inserts only).
    WindowAggregate {
        /// The window.
        window: CanvasWindow,
        /// The event-time column (default: the input's).
        #[serde(default)]
        time: Option<String>,
        /// The key columns.
        #[serde(default)]
        group_by: Vec<String>,
        /// The aggregates (`COUNT(*)`, `SUM(amount)`...).
        aggregates: Vec<OutputColumn>,
    },
    /// Rows grouped by key, each row updating its key's result (a changelog).
    Aggregate {
        /// The key columns.
        group_by: Vec<String>,
        /// The aggregates.
        aggregates: Vec<OutputColumn>,
    },
    /// Two inputs (ports `left` and `right`) joined on `condition` (`l.` and `r.` name them).
    Join {
        /// inner (default), left, right or full.
        #[serde(default)]
        join: Option<String>,
        /// The join condition.
        condition: String,
        /// The output columns (default: all of both).
        #[serde(default)]
        columns: Vec<OutputColumn>,
    },
    /// The first (or last) row of each key in event-time order.
    Deduplicate {
        /// The key columns.
        keys: Vec<String>,
        /// The order column (default: the input's event time).
        #[serde(default)]
        order_by: Option<String>,
        /// Keep the last row instead of the first.
        #[serde(default)]
        keep_last: bool,
    },
    /// The `n` first rows of each partition by an order.
    TopN {
        /// The partition's columns.
        #[serde(default)]
        partition_by: Vec<String>,
        /// The order, e.g. `amount DESC`.
        order_by: String,
        /// How many.
        n: u32,
    },
    /// Rows written to a table.
    Sink {
        /// The table.
        table: String,
    },
}

/// A stream from one operator to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CanvasEdge {
    /// The producing operator's id.
    pub from: String,
    /// The consuming operator's id.
    pub to: String,
    /// The consumer's port: `left` or `right` of a join; none for the others.
    #[serde(default)]
    pub port: Option<String>,
}

/// Why a drawing cannot be a job, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CanvasError {
    /// The operator, if the problem is one's.
    pub node: Option<String>,
    /// The stream (its index among the edges), if the problem is one's.
    pub edge: Option<usize>,
    /// What is wrong.
    pub message: String,
}

fn at_node(node: &str, message: impl Into<String>) -> CanvasError {
    CanvasError { node: Some(node.to_string()), edge: None, message: message.into() }
}

/// A stream's type: what flows out of an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamType {
    /// Its columns.
    pub columns: Vec<StreamColumn>,
    /// Whether it is a changelog (updates, deletes) rather than inserts only.
    pub updating: bool,
    /// Its event-time column, if it has one.
    pub event_time: Option<String>,
}

/// A column of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamColumn {
    /// Its name.
    pub name: String,
    /// Its type.
    pub data_type: String,
}

impl StreamType {
    fn of(schema: &Schema, updating: bool) -> StreamType {
        StreamType {
            columns: schema
                .fields
                .iter()
                .map(|field| StreamColumn { name: field.name.clone(), data_type: field.data_type.to_string() })
                .collect(),
            updating,
            event_time: schema.fields.iter().find(|field| field.event_time).map(|field| field.name.clone()),
        }
    }
}

/// A drawing compiled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CompiledCanvas {
    /// The job as SQL: the tables, a view per operator, the inserts.
    pub sql: String,
    /// The stream out of each operator but the sinks, by id.
    pub streams: BTreeMap<String, StreamType>,
}

/// Compiles `spec` into SQL, typing every stream, or says every problem found and where.
pub fn compile(spec: &CanvasSpec) -> Result<CompiledCanvas, Vec<CanvasError>> {
    let order = check_shape(spec)?;
    let mut session = SqlSession::default();
    let statements = parse_script(&spec.tables).map_err(|errors| {
        errors
            .iter()
            .map(|error| CanvasError { node: None, edge: None, message: format!("tables: {}", error.render(&spec.tables)) })
            .collect::<Vec<_>>()
    })?;
    for statement in &statements {
        if !matches!(statement.statement, Statement::CreateTable(_)) {
            return Err(vec![CanvasError { node: None, edge: None, message: "tables: only CREATE TABLE statements belong there".into() }]);
        }
        session
            .execute(statement)
            .map_err(|error| vec![CanvasError { node: None, edge: None, message: format!("tables: {}", error.render(&spec.tables)) }])?;
    }
    let nodes: HashMap<&str, &CanvasNode> = spec.nodes.iter().map(|node| (node.id.as_str(), node)).collect();
    let mut streams: BTreeMap<String, StreamType> = BTreeMap::new();
    let mut views = Vec::new();
    let mut inserts = Vec::new();
    let mut errors = Vec::new();
    for id in &order {
        let node = nodes[id.as_str()];
        let inputs: Vec<(usize, &CanvasEdge)> = spec.edges.iter().enumerate().filter(|(_, edge)| edge.to == *id).collect();
        // An operator fed by one that failed is not checked further: its input has no type.
        let Some(input_types) = inputs.iter().map(|(_, edge)| streams.get(&edge.from)).collect::<Option<Vec<_>>>() else { continue };
        let query = match node_query(node, &inputs, &input_types) {
            Ok(query) => query,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        if let CanvasOp::Sink { table } = &node.op {
            let (edge, input) = (inputs[0].0, input_types[0]);
            let Some(target) = session.catalog().table(table) else {
                errors.push(unknown_table(&session, id, table));
                continue;
            };
            let connector = target.def.option("connector").unwrap_or("");
            if input.updating && connector == "filesystem" {
                errors.push(CanvasError {
                    node: Some(id.clone()),
                    edge: Some(edge),
                    message: format!(
                        "{table} ({connector}) takes only inserts, and the stream from {} is a changelog (updates): aggregate over windows, or write to a table that takes updates",
                        inputs[0].1.from
                    ),
                });
                continue;
            }
            let insert = format!("INSERT INTO {table}\n{query};");
            match check_statement(&mut session, &insert) {
                Ok(()) => inserts.push(insert),
                Err(message) => errors.push(CanvasError { node: Some(id.clone()), edge: Some(edge), message }),
            }
            continue;
        }
        let view = format!("CREATE TEMPORARY VIEW {id} AS\n{query};");
        if let Err(message) = check_statement(&mut session, &view) {
            errors.push(at_node(id, message));
            continue;
        }
        match stream_of(&session, id) {
            Ok(stream) => {
                streams.insert(id.clone(), stream);
                views.push(view);
            }
            Err(message) => errors.push(at_node(id, message)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let job = match inserts.len() {
        1 => inserts.remove(0),
        _ => format!("EXECUTE STATEMENT SET BEGIN\n{}\nEND;", inserts.join("\n")),
    };
    let sql = format!("{}\n\n{}\n\n{job}\n", spec.tables.trim_end(), views.join("\n\n"));
    let sql = crate::format_script(&sql).unwrap_or(sql);
    Ok(CompiledCanvas { sql, streams })
}

/// The operators in an order where each comes after its inputs, or the shape's problems: ids,
/// streams naming no operator, operators with the wrong number of inputs or outputs, cycles.
fn check_shape(spec: &CanvasSpec) -> Result<Vec<String>, Vec<CanvasError>> {
    let mut errors = Vec::new();
    let mut seen = HashMap::new();
    for node in &spec.nodes {
        let valid = node.id.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && node.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            errors.push(at_node(&node.id, format!("an operator's id is a name (letters, digits, '_'), not {:?}", node.id)));
        }
        if seen.insert(node.id.as_str(), node).is_some() {
            errors.push(at_node(&node.id, format!("two operators are named {}", node.id)));
        }
    }
    for (index, edge) in spec.edges.iter().enumerate() {
        for end in [&edge.from, &edge.to] {
            if !seen.contains_key(end.as_str()) {
                errors.push(CanvasError {
                    node: None,
                    edge: Some(index),
                    message: format!("a stream ends at {end}, which is no operator"),
                });
            }
        }
    }
    if !spec.nodes.iter().any(|node| matches!(node.op, CanvasOp::Sink { .. })) {
        errors.push(CanvasError { node: None, edge: None, message: "the job writes nowhere: add a sink".into() });
    }
    for node in &spec.nodes {
        let inputs: Vec<(usize, &CanvasEdge)> = spec.edges.iter().enumerate().filter(|(_, edge)| edge.to == node.id).collect();
        let outputs = spec.edges.iter().filter(|edge| edge.from == node.id).count();
        let (wanted, what) = match node.op {
            CanvasOp::Source { .. } => (0, "a source reads a table: no stream goes into it"),
            CanvasOp::Join { .. } => (2, "a join takes two streams, into its left and right ports"),
            _ => (1, "it takes one stream"),
        };
        if inputs.len() != wanted {
            errors.push(at_node(
                &node.id,
                format!("{} has {} input{}: {what}", node.id, inputs.len(), if inputs.len() == 1 { "" } else { "s" }),
            ));
        }
        match node.op {
            CanvasOp::Sink { .. } if outputs > 0 => errors.push(at_node(&node.id, format!("{} is a sink: no stream leaves it", node.id))),
            CanvasOp::Sink { .. } => {}
            _ if outputs == 0 => {
                errors.push(at_node(&node.id, format!("{}'s output goes nowhere: connect it to an operator or a sink", node.id)))
            }
            _ => {}
        }
        if let CanvasOp::Join { .. } = node.op {
            let ports: Vec<Option<&str>> = inputs.iter().map(|(_, edge)| edge.port.as_deref()).collect();
            if inputs.len() == 2 && !(ports.contains(&Some("left")) && ports.contains(&Some("right"))) {
                errors.push(at_node(&node.id, format!("{}'s two streams go into its left and right ports, one each", node.id)));
            }
        } else {
            for (index, edge) in &inputs {
                if let Some(port) = &edge.port {
                    errors.push(CanvasError {
                        node: Some(node.id.clone()),
                        edge: Some(*index),
                        message: format!("{} has no port {port}: only a join has ports", node.id),
                    });
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Kahn's order; what is left is on a cycle.
    let mut pending: HashMap<&str, usize> = spec.nodes.iter().map(|node| (node.id.as_str(), 0)).collect();
    for edge in &spec.edges {
        *pending.get_mut(edge.to.as_str()).expect("checked above") += 1;
    }
    let mut ready: VecDeque<&str> = spec.nodes.iter().map(|node| node.id.as_str()).filter(|id| pending[id] == 0).collect();
    let mut order = Vec::new();
    while let Some(id) = ready.pop_front() {
        order.push(id.to_string());
        for edge in spec.edges.iter().filter(|edge| edge.from == id) {
            let count = pending.get_mut(edge.to.as_str()).expect("checked above");
            *count -= 1;
            if *count == 0 {
                ready.push_back(edge.to.as_str());
            }
        }
    }
    if order.len() < spec.nodes.len() {
        // Of those left, the ones a stream leads back to.
        let left: Vec<&str> = pending.iter().filter(|(_, count)| **count > 0).map(|(id, _)| *id).collect();
        let reaches_itself = |start: &str| {
            let mut stack = vec![start];
            let mut visited = std::collections::HashSet::new();
            while let Some(at) = stack.pop() {
                for edge in spec.edges.iter().filter(|edge| edge.from == at) {
                    if edge.to == start {
                        return true;
                    }
                    if visited.insert(edge.to.as_str()) {
                        stack.push(edge.to.as_str());
                    }
                }
            }
            false
        };
        let mut looped: Vec<&str> = left.into_iter().filter(|id| reaches_itself(id)).collect();
        looped.sort();
        return Err(looped
            .iter()
            .map(|id| at_node(id, format!("{id} is on a cycle ({}): a stream cannot come back to where it started", looped.join(", "))))
            .collect());
    }
    Ok(order)
}

fn unknown_table(session: &SqlSession, node: &str, table: &str) -> CanvasError {
    let known: Vec<&str> = session.catalog().tables().map(SqlTable::name).collect();
    let hint = crate::did_you_mean(table, known.iter().copied()).map(|near| format!("; did you mean {near}?")).unwrap_or_default();
    at_node(node, format!("no table named {table}{hint}"))
}

/// `INTERVAL '5' SECOND` from `5 SECOND` (or `5 s`, `1 minute`...).
fn interval(node: &str, text: &str) -> Result<String, CanvasError> {
    let mut parts = text.split_whitespace();
    let (Some(count), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(at_node(node, format!("a length is a number and a unit, like '5 SECOND', not {text:?}")));
    };
    if count.parse::<u64>().is_err() {
        return Err(at_node(node, format!("{count:?} is not a whole number (in {text:?})")));
    }
    let unit = match unit.to_lowercase().trim_end_matches('s') {
        "" | "sec" | "second" => "SECOND",
        "m" | "min" | "minute" => "MINUTE",
        "h" | "hour" => "HOUR",
        "d" | "day" => "DAY",
        "ms" | "millisecond" => "MILLISECOND",
        other => return Err(at_node(node, format!("unknown unit {other:?}: SECOND, MINUTE, HOUR or DAY"))),
    };
    Ok(format!("INTERVAL '{count}' {unit}"))
}

fn columns(list: &[OutputColumn]) -> String {
    list.iter()
        .map(|column| match &column.name {
            Some(name) => format!("{} AS {name}", column.expr),
            None => column.expr.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The query of operator `node` over its inputs' views.
fn node_query(node: &CanvasNode, inputs: &[(usize, &CanvasEdge)], types: &[&StreamType]) -> Result<String, CanvasError> {
    let id = node.id.as_str();
    let input = || inputs[0].1.from.as_str();
    Ok(match &node.op {
        CanvasOp::Source { table } => format!("SELECT * FROM {table}"),
        CanvasOp::Sink { .. } => format!("SELECT * FROM {}", input()),
        CanvasOp::Filter { condition } => format!("SELECT * FROM {} WHERE {condition}", input()),
        CanvasOp::Project { columns: list } => {
            if list.is_empty() {
                return Err(at_node(id, "a projection needs at least one column"));
            }
            format!("SELECT {} FROM {}", columns(list), input())
        }
        CanvasOp::WindowAggregate { window, time, group_by, aggregates } => {
            let time = match time.clone().or_else(|| types[0].event_time.clone()) {
                Some(time) => time,
                None => {
                    return Err(CanvasError {
                        node: Some(id.to_string()),
                        edge: Some(inputs[0].0),
                        message: format!(
                            "a window needs an event-time stream, and the stream from {} has none: read a table with a WATERMARK and keep its time column",
                            input()
                        ),
                    })
                }
            };
            let function = match window {
                CanvasWindow::Tumble { size } => format!("TUMBLE(TABLE {}, DESCRIPTOR({time}), {})", input(), interval(id, size)?),
                CanvasWindow::Hop { slide, size } => {
                    format!("HOP(TABLE {}, DESCRIPTOR({time}), {}, {})", input(), interval(id, slide)?, interval(id, size)?)
                }
                CanvasWindow::Cumulate { step, size } => {
                    format!("CUMULATE(TABLE {}, DESCRIPTOR({time}), {}, {})", input(), interval(id, step)?, interval(id, size)?)
                }
                CanvasWindow::Session { gap } => format!("SESSION(TABLE {}, DESCRIPTOR({time}), {})", input(), interval(id, gap)?),
            };
            if aggregates.is_empty() {
                return Err(at_node(id, "a window aggregate needs at least one aggregate, like COUNT(*)"));
            }
            let keys: String = group_by.iter().map(|key| format!(", {key}")).collect();
            format!(
                "SELECT window_start, window_end{keys}, {} FROM TABLE({function}) GROUP BY window_start, window_end{keys}",
                columns(aggregates)
            )
        }
        CanvasOp::Aggregate { group_by, aggregates } => {
            if aggregates.is_empty() {
                return Err(at_node(id, "an aggregate needs at least one aggregate, like COUNT(*)"));
            }
            let keys = group_by.join(", ");
            match group_by.is_empty() {
                true => format!("SELECT {} FROM {}", columns(aggregates), input()),
                false => format!("SELECT {keys}, {} FROM {} GROUP BY {keys}", columns(aggregates), input()),
            }
        }
        CanvasOp::Join { join, condition, columns: list } => {
            let side = |port: &str| inputs.iter().find(|(_, edge)| edge.port.as_deref() == Some(port)).map(|(_, edge)| edge.from.as_str());
            let (left, right) = (side("left").unwrap_or_default(), side("right").unwrap_or_default());
            let kind = match join.as_deref().unwrap_or("inner").to_lowercase().as_str() {
                "inner" => "JOIN",
                "left" => "LEFT JOIN",
                "right" => "RIGHT JOIN",
                "full" => "FULL JOIN",
                other => return Err(at_node(id, format!("join {other:?} is not known: inner, left, right or full"))),
            };
            let selected = if list.is_empty() { "*".to_string() } else { columns(list) };
            format!("SELECT {selected} FROM {left} AS l {kind} {right} AS r ON {condition}")
        }
        CanvasOp::Deduplicate { keys, order_by, keep_last } => {
            let order = match order_by.clone().or_else(|| types[0].event_time.clone()) {
                Some(order) => order,
                None => return Err(at_node(id, "deduplication orders rows by a time: name one, or feed it an event-time stream")),
            };
            if keys.is_empty() {
                return Err(at_node(id, "deduplication needs key columns"));
            }
            let all: Vec<&str> = types[0].columns.iter().map(|column| column.name.as_str()).collect();
            format!(
                "SELECT {} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {} ORDER BY {order} {}) AS row_num FROM {}) WHERE row_num = 1",
                all.join(", "),
                keys.join(", "),
                if *keep_last { "DESC" } else { "ASC" },
                input()
            )
        }
        CanvasOp::TopN { partition_by, order_by, n } => {
            if *n == 0 {
                return Err(at_node(id, "Top-N keeps at least one row"));
            }
            let all: Vec<&str> = types[0].columns.iter().map(|column| column.name.as_str()).collect();
            let partition = if partition_by.is_empty() { String::new() } else { format!("PARTITION BY {} ", partition_by.join(", ")) };
            format!(
                "SELECT {} FROM (SELECT *, ROW_NUMBER() OVER ({partition}ORDER BY {order_by}) AS row_num FROM {}) WHERE row_num <= {n}",
                all.join(", "),
                input()
            )
        }
    })
}

/// Runs one statement of the canvas's script in `session` (nothing runs: a view is defined, an
/// insert planned); the planner's message if it refuses.
fn check_statement(session: &mut SqlSession, sql: &str) -> Result<(), String> {
    let statements = parse_script(sql).map_err(|errors| errors[0].message.clone())?;
    for statement in &statements {
        session.execute(statement).map_err(|error| error.message)?;
    }
    Ok(())
}

/// The type of view `id`'s rows.
fn stream_of(session: &SqlSession, id: &str) -> Result<StreamType, String> {
    let statements = parse_script(&format!("SELECT * FROM {id}")).map_err(|errors| errors[0].message.clone())?;
    let Statement::Other(ast) = &statements[0].statement else { unreachable!("a SELECT") };
    let sqlparser::ast::Statement::Query(query) = ast.as_ref() else { unreachable!("a SELECT") };
    let plan = session.plan(query).map_err(|error| error.message)?;
    Ok(StreamType::of(&plan.schema, plan.updating))
}

/// `script` as a drawing, when it is one the canvas can draw: `CREATE TABLE`s, then one `INSERT
/// INTO` (or a statement set of them) whose query reads one table or view with an optional
/// `WHERE`, and either projects, or aggregates with `GROUP BY`, or aggregates per window
/// (`TABLE(TUMBLE|HOP|CUMULATE|SESSION(TABLE t, DESCRIPTOR(ts), ...))`). Otherwise why not.
pub fn from_sql(script: &str) -> Result<CanvasSpec, String> {
    let statements = parse_script(script).map_err(|errors| errors[0].render(script))?;
    let starts: Vec<usize> = statements.iter().map(|statement| statement.at.map_or(0, |at| offset_of(script, at))).collect();
    let mut tables = String::new();
    let mut spec = CanvasSpec::default();
    let mut inserts = Vec::new();
    for (index, statement) in statements.iter().enumerate() {
        match &statement.statement {
            Statement::CreateTable(_) => {
                let end = starts.get(index + 1).copied().unwrap_or(script.len());
                tables.push_str(script[starts[index]..end].trim());
                tables.push('\n');
            }
            Statement::Other(ast) => match ast.as_ref() {
                sqlparser::ast::Statement::Insert(insert) => inserts.push(insert.clone()),
                other => return Err(format!("a canvas draws tables and inserts; {} is neither", first_word(&other.to_string()))),
            },
            Statement::StatementSet(set) => {
                for insert in set {
                    if let Statement::Other(ast) = &insert.statement {
                        if let sqlparser::ast::Statement::Insert(insert) = ast.as_ref() {
                            inserts.push(insert.clone());
                        }
                    }
                }
            }
        }
    }
    if inserts.is_empty() {
        return Err("the script writes nowhere: a canvas needs an INSERT INTO".into());
    }
    spec.tables = tables;
    let mut sources: HashMap<String, String> = HashMap::new();
    for (n, insert) in inserts.iter().enumerate() {
        let sink = insert.table.to_string();
        let query = insert.source.as_ref().ok_or("an INSERT without a query cannot be drawn")?;
        let last = draw_query(&mut spec, &mut sources, query, n)?;
        let id = fresh(&spec, "sink");
        spec.nodes.push(CanvasNode { id: id.clone(), op: CanvasOp::Sink { table: sink }, x: 0.0, y: 0.0 });
        spec.edges.push(CanvasEdge { from: last, to: id, port: None });
    }
    let compiled = compile(&spec).map_err(|errors| format!("drawn, it would not compile: {}", errors[0].message))?;
    // The first row of each key is deduplication when rows are ordered by their event time;
    // by another column it is Top-1 (the same SQL, drawn as what it is).
    for index in 0..spec.nodes.len() {
        let CanvasOp::Deduplicate { keys, order_by: Some(order), keep_last } = &spec.nodes[index].op else { continue };
        let input = spec.edges.iter().find(|edge| edge.to == spec.nodes[index].id).and_then(|edge| compiled.streams.get(&edge.from));
        let by_event_time = input.and_then(|stream| stream.event_time.as_deref()).is_some_and(|time| time.eq_ignore_ascii_case(order));
        if !by_event_time {
            let order_by = if *keep_last { format!("{order} DESC") } else { order.clone() };
            spec.nodes[index].op = CanvasOp::TopN { partition_by: keys.clone(), order_by, n: 1 };
        }
    }
    Ok(spec)
}

/// The byte offset of `at` (line and column from 1, columns in characters) in `text`.
fn offset_of(text: &str, at: crate::error::Position) -> usize {
    let mut offset = 0;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        if number as u64 + 1 == at.line {
            return offset + line.char_indices().nth(at.column.saturating_sub(1) as usize).map_or(line.len(), |(i, _)| i);
        }
        offset += line.len();
    }
    text.len()
}

fn first_word(text: &str) -> String {
    text.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// An id not taken yet: `base_1`, `base_2`...
fn fresh(spec: &CanvasSpec, base: &str) -> String {
    (1..).map(|n| format!("{base}_{n}")).find(|id| !spec.nodes.iter().any(|node| &node.id == id)).expect("ids never run out")
}

/// The source node of `table` (a table read several times is one source).
fn draw_source(spec: &mut CanvasSpec, sources: &mut HashMap<String, String>, table: String) -> String {
    if let Some(id) = sources.get(&table.to_lowercase()) {
        return id.clone();
    }
    let id = fresh(spec, &table.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
    spec.nodes.push(CanvasNode { id: id.clone(), op: CanvasOp::Source { table: table.clone() }, x: 0.0, y: 0.0 });
    sources.insert(table.to_lowercase(), id.clone());
    id
}

/// A new operator `op` (id from `base`) fed by `from`; its id.
fn draw_after(spec: &mut CanvasSpec, from: &str, base: &str, op: CanvasOp) -> String {
    let id = fresh(spec, base);
    spec.nodes.push(CanvasNode { id: id.clone(), op, x: 0.0, y: 0.0 });
    spec.edges.push(CanvasEdge { from: from.to_string(), to: id.clone(), port: None });
    id
}

fn not_drawn<T>(what: &str) -> Result<T, String> {
    Err(format!("{what} cannot be drawn on a canvas yet: open it in the workbench"))
}

/// A select list as output columns (`*` alone: none, meaning all).
fn output_columns(projection: &[sqlparser::ast::SelectItem]) -> Result<Vec<OutputColumn>, String> {
    use sqlparser::ast::SelectItem;
    if matches!(projection, [SelectItem::Wildcard(_)]) {
        return Ok(Vec::new());
    }
    projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(expr) => Ok(OutputColumn { expr: expr.to_string(), name: None }),
            SelectItem::ExprWithAlias { expr, alias } => Ok(OutputColumn { expr: expr.to_string(), name: Some(alias.value.clone()) }),
            other => not_drawn(&format!("{other} among other columns")),
        })
        .collect()
}

/// Draws `query`'s operators into `spec` (a table read once is one source); the id of its last.
fn draw_query(
    spec: &mut CanvasSpec,
    sources: &mut HashMap<String, String>,
    query: &sqlparser::ast::Query,
    _n: usize,
) -> Result<String, String> {
    use sqlparser::ast::{Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, SelectItem, SetExpr, TableFactor};
    let not = not_drawn::<String>;
    if query.with.is_some() || query.order_by.is_some() || query.limit_clause.is_some() {
        return not("WITH, ORDER BY or LIMIT");
    }
    let SetExpr::Select(select) = query.body.as_ref() else { return not("a set operation") };
    if select.from.len() != 1 || select.having.is_some() || select.distinct.is_some() {
        return not("a comma join, HAVING or DISTINCT");
    }
    match select.from[0].joins.as_slice() {
        [] => {}
        [join] => return draw_join(spec, sources, select, &select.from[0].relation, join),
        _ => return not("more than one join"),
    }
    if let TableFactor::Derived { subquery, .. } = &select.from[0].relation {
        return draw_ranked(spec, sources, select, subquery);
    }
    let mut source = |spec: &mut CanvasSpec, table: String| draw_source(spec, sources, table);
    let chain = draw_after;
    let mut window = None;
    let mut last = match &select.from[0].relation {
        TableFactor::Table { name, args: None, .. } => source(spec, name.to_string()),
        TableFactor::TableFunction { expr: Expr::Function(function), .. } => {
            let kind = function.name.to_string().to_uppercase();
            let FunctionArguments::List(list) = &function.args else { return not("a window without arguments") };
            let args: Vec<&Expr> = list
                .args
                .iter()
                .filter_map(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Some(expr),
                    _ => None,
                })
                .collect();
            if args.len() != list.args.len() || args.len() < 3 {
                return not("a window with named or missing arguments");
            }
            let table = match args[0] {
                Expr::Identifier(ident) => ident.value.clone(),
                Expr::CompoundIdentifier(parts) => parts.iter().map(|part| part.value.clone()).collect::<Vec<_>>().join("."),
                _ => return not("a window over a subquery"),
            };
            let time = match args[1] {
                Expr::Function(descriptor) => descriptor.args.to_string().trim_matches(|c| c == '(' || c == ')').trim().to_string(),
                _ => return not("a window without DESCRIPTOR(column)"),
            };
            let length = |expr: &Expr| -> Result<String, String> {
                match expr {
                    Expr::Interval(interval) => {
                        let value = interval.value.to_string().trim_matches('\'').to_string();
                        let unit = interval.leading_field.as_ref().map(|field| field.to_string()).unwrap_or_else(|| "SECOND".into());
                        Ok(format!("{value} {unit}"))
                    }
                    other => Err(format!("{other} is not an INTERVAL")),
                }
            };
            window = Some((
                match (kind.as_str(), args.len()) {
                    ("TUMBLE", 3) => CanvasWindow::Tumble { size: length(args[2])? },
                    ("HOP", 4) => CanvasWindow::Hop { slide: length(args[2])?, size: length(args[3])? },
                    ("CUMULATE", 4) => CanvasWindow::Cumulate { step: length(args[2])?, size: length(args[3])? },
                    ("SESSION", 3) => CanvasWindow::Session { gap: length(args[2])? },
                    _ => return not(&format!("{kind} with {} arguments", args.len())),
                },
                time,
            ));
            source(spec, table)
        }
        _ => return not("this FROM"),
    };
    if let Some(condition) = &select.selection {
        last = chain(spec, &last, "filter", CanvasOp::Filter { condition: condition.to_string() });
    }
    let GroupByExpr::Expressions(keys, _) = &select.group_by else { return not("GROUP BY ALL") };
    let keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
    let items: Vec<OutputColumn> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(expr) => OutputColumn { expr: expr.to_string(), name: None },
            SelectItem::ExprWithAlias { expr, alias } => OutputColumn { expr: expr.to_string(), name: Some(alias.value.clone()) },
            other => OutputColumn { expr: other.to_string(), name: None },
        })
        .collect();
    let is_key = |column: &OutputColumn| column.name.is_none() && keys.iter().any(|key| key.eq_ignore_ascii_case(&column.expr));
    match window {
        Some((window, time)) => {
            let bounds = ["window_start", "window_end"];
            let group_by: Vec<String> = keys.iter().filter(|key| !bounds.contains(&key.to_lowercase().as_str())).cloned().collect();
            if keys.len() != group_by.len() + 2 {
                return not("a window aggregate not grouped by window_start and window_end");
            }
            // The window aggregate gives window_start, window_end, the keys, then each aggregate
            // (named as written, or agg_<n>); a projection after it picks the query's columns
            // when they are others or in another order.
            let is_bound = |item: &OutputColumn| item.name.is_none() && bounds.contains(&item.expr.to_lowercase().as_str());
            let mut aggregates = Vec::new();
            let mut picked = Vec::new();
            for item in &items {
                if is_key(item) || is_bound(item) {
                    picked.push(OutputColumn { expr: item.expr.clone(), name: None });
                    continue;
                }
                let name = item.name.clone().unwrap_or_else(|| format!("agg_{}", aggregates.len() + 1));
                aggregates.push(OutputColumn { expr: item.expr.clone(), name: Some(name.clone()) });
                picked.push(OutputColumn { expr: name, name: item.name.clone() });
            }
            let canonical: Vec<String> = bounds
                .iter()
                .map(|bound| bound.to_string())
                .chain(group_by.iter().cloned())
                .chain(aggregates.iter().filter_map(|aggregate| aggregate.name.clone()))
                .collect();
            let as_written: Vec<String> = picked.iter().map(|column| column.name.clone().unwrap_or_else(|| column.expr.clone())).collect();
            let reorder = as_written.iter().map(|name| name.to_lowercase()).ne(canonical.iter().map(|name| name.to_lowercase()))
                || items.iter().any(|item| item.name.is_none() && !is_key(item) && !is_bound(item));
            last = chain(spec, &last, "window_aggregate", CanvasOp::WindowAggregate { window, time: Some(time), group_by, aggregates });
            if reorder {
                last = chain(spec, &last, "project", CanvasOp::Project { columns: picked });
            }
        }
        None if !keys.is_empty() => {
            let leading: Vec<String> = items.iter().take(keys.len()).map(|item| item.expr.to_lowercase()).collect();
            if leading != keys.iter().map(|key| key.to_lowercase()).collect::<Vec<_>>() {
                return not("an aggregate whose columns are not its keys, then its aggregates");
            }
            let aggregates = items[keys.len()..].to_vec();
            last = chain(spec, &last, "aggregate", CanvasOp::Aggregate { group_by: keys, aggregates });
        }
        None => {
            let all = items.len() == 1 && items[0].expr == "*";
            if !all {
                last = chain(spec, &last, "project", CanvasOp::Project { columns: items });
            }
        }
    }
    Ok(last)
}

/// Draws a join of two tables: `SELECT ... FROM a [AS x] [LEFT|RIGHT|FULL] JOIN b [AS y] ON ...
/// [WHERE ...]` (a WHERE of an inner join joins the condition); columns named `x.c` (or `a.c`) are
/// the join's `l.c`, `y.c` its `r.c`.
fn draw_join(
    spec: &mut CanvasSpec,
    sources: &mut HashMap<String, String>,
    select: &sqlparser::ast::Select,
    left: &sqlparser::ast::TableFactor,
    join: &sqlparser::ast::Join,
) -> Result<String, String> {
    use sqlparser::ast::{visit_expressions_mut, BinaryOperator, Expr, GroupByExpr, Ident, JoinConstraint, JoinOperator, TableFactor};
    let side = |relation: &TableFactor| match relation {
        TableFactor::Table { name, alias, args: None, .. } => {
            Ok((name.to_string(), alias.as_ref().map_or_else(|| name.to_string(), |alias| alias.name.value.clone())))
        }
        _ => not_drawn("a join of other than two tables"),
    };
    let ((left_table, left_name), (right_table, right_name)) = (side(left)?, side(&join.relation)?);
    if left_name.eq_ignore_ascii_case(&right_name) {
        return not_drawn("a join of a table with itself without an alias for each side");
    }
    let (kind, constraint) = match &join.join_operator {
        JoinOperator::Join(constraint) | JoinOperator::Inner(constraint) => ("inner", constraint),
        JoinOperator::Left(constraint) | JoinOperator::LeftOuter(constraint) => ("left", constraint),
        JoinOperator::Right(constraint) | JoinOperator::RightOuter(constraint) => ("right", constraint),
        JoinOperator::FullOuter(constraint) => ("full", constraint),
        _ => return not_drawn("this kind of join"),
    };
    let JoinConstraint::On(on) = constraint else { return not_drawn("a join without ON") };
    if !matches!(&select.group_by, GroupByExpr::Expressions(keys, _) if keys.is_empty()) {
        return not_drawn("an aggregate of a join");
    }
    let mut condition = on.clone();
    if let Some(filter) = &select.selection {
        if kind != "inner" {
            return not_drawn("a WHERE after an outer join");
        }
        condition = Expr::BinaryOp {
            left: Box::new(Expr::Nested(Box::new(condition))),
            op: BinaryOperator::And,
            right: Box::new(Expr::Nested(Box::new(filter.clone()))),
        };
    }
    // `x.c` as `l.c`, `y.c` as `r.c`.
    let requalify = |expr: &mut Expr| {
        let _ = visit_expressions_mut(expr, |expr| {
            if let Expr::CompoundIdentifier(parts) = expr {
                if parts.len() == 2 {
                    if parts[0].value.eq_ignore_ascii_case(&left_name) {
                        parts[0] = Ident::new("l");
                    } else if parts[0].value.eq_ignore_ascii_case(&right_name) {
                        parts[0] = Ident::new("r");
                    }
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    };
    requalify(&mut condition);
    let mut projection = select.projection.clone();
    for item in &mut projection {
        match item {
            sqlparser::ast::SelectItem::UnnamedExpr(expr) => {
                // A column keeps its name (`x.c` is `c`), as in the query.
                let name = match &*expr {
                    Expr::CompoundIdentifier(parts) if parts.len() == 2 => Some(parts[1].clone()),
                    _ => None,
                };
                requalify(expr);
                if let Some(alias) = name {
                    *item = sqlparser::ast::SelectItem::ExprWithAlias { expr: expr.clone(), alias };
                }
            }
            sqlparser::ast::SelectItem::ExprWithAlias { expr, .. } => requalify(expr),
            _ => {}
        }
    }
    let columns = output_columns(&projection)?;
    let left_id = draw_source(spec, sources, left_table);
    let right_id = draw_source(spec, sources, right_table);
    let id = fresh(spec, "join");
    let op = CanvasOp::Join { join: (kind != "inner").then(|| kind.to_string()), condition: condition.to_string(), columns };
    spec.nodes.push(CanvasNode { id: id.clone(), op, x: 0.0, y: 0.0 });
    spec.edges.push(CanvasEdge { from: left_id, to: id.clone(), port: Some("left".into()) });
    spec.edges.push(CanvasEdge { from: right_id, to: id.clone(), port: Some("right".into()) });
    Ok(id)
}

/// Draws deduplication or Top-N: `SELECT ... FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k
/// ORDER BY c [DESC]) AS n FROM t) WHERE n = 1` (deduplication: the first or last row of each
/// key), or `n <= N` (Top-N).
fn draw_ranked(
    spec: &mut CanvasSpec,
    sources: &mut HashMap<String, String>,
    outer: &sqlparser::ast::Select,
    subquery: &sqlparser::ast::Query,
) -> Result<String, String> {
    use sqlparser::ast::{BinaryOperator, Expr, GroupByExpr, OrderBySort, SelectItem, SetExpr, TableFactor, WindowType};
    let not = not_drawn::<String>;
    let SetExpr::Select(inner) = subquery.body.as_ref() else { return not("a subquery that is not a SELECT") };
    let plain = subquery.with.is_none()
        && subquery.order_by.is_none()
        && subquery.limit_clause.is_none()
        && inner.from.len() == 1
        && inner.from[0].joins.is_empty()
        && inner.selection.is_none()
        && inner.having.is_none()
        && matches!(&inner.group_by, GroupByExpr::Expressions(keys, _) if keys.is_empty());
    let shape = "a subquery other than SELECT *, ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) AS n FROM a table";
    if !plain {
        return not(shape);
    }
    let TableFactor::Table { name: table, args: None, .. } = &inner.from[0].relation else { return not("a subquery not over a table") };
    let (true, [SelectItem::Wildcard(_), SelectItem::ExprWithAlias { expr: Expr::Function(function), alias }]) =
        (plain, inner.projection.as_slice())
    else {
        return not(shape);
    };
    let Some(WindowType::WindowSpec(window)) = &function.over else { return not(shape) };
    if !function.name.to_string().eq_ignore_ascii_case("ROW_NUMBER") || window.order_by.len() != 1 {
        return not(shape);
    }
    let order = &window.order_by[0];
    let descending = matches!(order.options.sort, Some(OrderBySort::Desc));
    let keys: Vec<String> = window.partition_by.iter().map(ToString::to_string).collect();
    let rank = |expr: &Expr| matches!(expr, Expr::Identifier(ident) if ident.value.eq_ignore_ascii_case(&alias.value));
    let number = |expr: &Expr| match expr {
        Expr::Value(value) => value.to_string().parse::<u32>().ok(),
        _ => None,
    };
    let n = match &outer.selection {
        Some(Expr::BinaryOp { left, op, right }) if rank(left) => match (op, number(right)) {
            (BinaryOperator::Eq, Some(1)) => 1,
            (BinaryOperator::LtEq, Some(n)) if n >= 1 => n,
            (BinaryOperator::Lt, Some(n)) if n >= 2 => n - 1,
            _ => return not(&format!("a filter on {} other than = 1, <= N or < N", alias.value)),
        },
        _ => return not(&format!("a filter after ROW_NUMBER() other than {} = 1 or {} <= N alone", alias.value, alias.value)),
    };
    let columns = output_columns(&outer.projection)?;
    if columns.iter().any(|column| column.expr.eq_ignore_ascii_case(&alias.value)) {
        return not(&format!("the row number {} among the columns", alias.value));
    }
    let source = draw_source(spec, sources, table.to_string());
    let order_column = order.expr.to_string();
    let mut last = if n == 1 && !keys.is_empty() {
        draw_after(spec, &source, "deduplicate", CanvasOp::Deduplicate { keys, order_by: Some(order_column), keep_last: descending })
    } else {
        let order_by = if descending { format!("{order_column} DESC") } else { order_column };
        draw_after(spec, &source, "top_n", CanvasOp::TopN { partition_by: keys, order_by, n })
    };
    if !columns.is_empty() {
        last = draw_after(spec, &last, "project", CanvasOp::Project { columns });
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: &str = "CREATE TABLE orders (id BIGINT, customer STRING, amount DECIMAL(10, 2), ts TIMESTAMP(3), \
        WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'datagen');\n\
        CREATE TABLE plain (id BIGINT, name STRING) WITH ('connector' = 'datagen');\n\
        CREATE TABLE per_window (window_start TIMESTAMP(3), window_end TIMESTAMP(3), customer STRING, orders BIGINT, \
        amount DECIMAL(38, 2)) WITH ('connector' = 'print');\n\
        CREATE TABLE files (customer STRING, orders BIGINT) WITH ('connector' = 'filesystem', 'path' = '/nonexistent', 'format' = 'csv');\n\
        CREATE TABLE totals (customer STRING, orders BIGINT) WITH ('connector' = 'print');\n\
        CREATE TABLE top_orders (id BIGINT, customer STRING, amount DECIMAL(10, 2), ts TIMESTAMP(3)) WITH ('connector' = 'print');";

    fn node(id: &str, op: CanvasOp) -> CanvasNode {
        CanvasNode { id: id.into(), op, x: 0.0, y: 0.0 }
    }

    fn edge(from: &str, to: &str) -> CanvasEdge {
        CanvasEdge { from: from.into(), to: to.into(), port: None }
    }

    fn count(name: &str) -> OutputColumn {
        OutputColumn { expr: "COUNT(*)".into(), name: Some(name.into()) }
    }

    fn window_job() -> CanvasSpec {
        CanvasSpec {
            tables: TABLES.into(),
            nodes: vec![
                node("orders_in", CanvasOp::Source { table: "orders".into() }),
                node("big", CanvasOp::Filter { condition: "amount > 1".into() }),
                node(
                    "per_customer",
                    CanvasOp::WindowAggregate {
                        window: CanvasWindow::Tumble { size: "5 SECOND".into() },
                        time: None,
                        group_by: vec!["customer".into()],
                        aggregates: vec![count("orders"), OutputColumn { expr: "SUM(amount)".into(), name: Some("amount".into()) }],
                    },
                ),
                node("out", CanvasOp::Sink { table: "per_window".into() }),
            ],
            edges: vec![edge("orders_in", "big"), edge("big", "per_customer"), edge("per_customer", "out")],
        }
    }

    fn run(sql: &str) -> Vec<String> {
        run_into(sql, "per_window")
    }

    /// What `sql` writes into `sink`, sorted, on the example orders.
    fn run_into(sql: &str, sink: &str) -> Vec<String> {
        let case = crate::test_run::TestCase {
            sql: Some(sql.into()),
            inputs: [(
                "orders".to_string(),
                crate::test_run::TestInput {
                    rows: Some("1,alice,10.00,2026-01-01 00:00:01\n2,bob,0.50,2026-01-01 00:00:02\n3,alice,7.25,2026-01-01 00:00:04\n4,carol,3.00,2026-01-01 00:00:07\n".into()),
                    ..Default::default()
                },
            ), (
                "plain".to_string(),
                crate::test_run::TestInput { rows: Some("1,one\n3,three\n5,five\n".into()), ..Default::default() },
            )]
            .into(),
            ..Default::default()
        };
        let work = std::env::temp_dir().join(format!("tethys-canvas-{}-{:?}", std::process::id(), std::thread::current().id()));
        let mut rows = crate::test_run::run_test(&case, &work).unwrap().sinks.remove(sink).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&work);
        rows.sort();
        rows
    }

    #[test]
    fn a_drawn_window_job_is_the_job_its_sql_says_and_every_stream_is_typed() {
        let compiled = compile(&window_job()).unwrap();
        assert!(compiled.sql.contains("CREATE TEMPORARY VIEW big AS"), "{}", compiled.sql);
        assert!(compiled.sql.contains("INSERT INTO per_window"), "{}", compiled.sql);
        let source = &compiled.streams["orders_in"];
        assert_eq!((source.event_time.as_deref(), source.updating), (Some("ts"), false));
        assert_eq!(compiled.streams["big"].event_time.as_deref(), Some("ts"), "a filter keeps the event time");
        let windowed = &compiled.streams["per_customer"];
        assert!(!windowed.updating, "a window aggregate emits inserts");
        assert_eq!(
            windowed.columns.iter().map(|column| column.name.as_str()).collect::<Vec<_>>(),
            ["window_start", "window_end", "customer", "orders", "amount"]
        );
        // The same job written by hand gives the same rows.
        let by_hand = format!(
            "{TABLES}\nINSERT INTO per_window SELECT window_start, window_end, customer, COUNT(*), SUM(amount) \
             FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND)) WHERE amount > 1 GROUP BY window_start, window_end, customer;"
        );
        let drawn = run(&compiled.sql);
        assert_eq!(drawn, run(&by_hand));
        assert_eq!(
            drawn,
            [
                "+I[2026-01-01 00:00:00.000, 2026-01-01 00:00:05.000, alice, 2, 17.25]",
                "+I[2026-01-01 00:00:05.000, 2026-01-01 00:00:10.000, carol, 1, 3.00]"
            ]
        );
    }

    #[test]
    fn every_operator_kind_compiles_and_an_aggregate_is_a_changelog() {
        let spec = CanvasSpec {
            tables: TABLES.into(),
            nodes: vec![
                node("o", CanvasOp::Source { table: "orders".into() }),
                node("p", CanvasOp::Source { table: "plain".into() }),
                node(
                    "named",
                    CanvasOp::Project {
                        columns: vec![
                            OutputColumn { expr: "UPPER(customer)".into(), name: Some("who".into()) },
                            OutputColumn { expr: "id".into(), name: None },
                            OutputColumn { expr: "ts".into(), name: None },
                        ],
                    },
                ),
                node("firsts", CanvasOp::Deduplicate { keys: vec!["who".into()], order_by: None, keep_last: false }),
                node(
                    "joined",
                    CanvasOp::Join {
                        join: Some("left".into()),
                        condition: "l.id = r.id".into(),
                        columns: vec![
                            OutputColumn { expr: "l.who".into(), name: Some("customer".into()) },
                            OutputColumn { expr: "r.name".into(), name: None },
                        ],
                    },
                ),
                node("counts", CanvasOp::Aggregate { group_by: vec!["customer".into()], aggregates: vec![count("orders")] }),
                node("out", CanvasOp::Sink { table: "totals".into() }),
                node("top", CanvasOp::TopN { partition_by: vec!["customer".into()], order_by: "amount DESC".into(), n: 3 }),
                node("best", CanvasOp::Sink { table: "top_orders".into() }),
            ],
            edges: vec![
                edge("o", "named"),
                edge("named", "firsts"),
                CanvasEdge { from: "firsts".into(), to: "joined".into(), port: Some("left".into()) },
                CanvasEdge { from: "p".into(), to: "joined".into(), port: Some("right".into()) },
                edge("joined", "counts"),
                edge("counts", "out"),
                edge("o", "top"),
                edge("top", "best"),
            ],
        };
        let compiled = compile(&spec).unwrap_or_else(|errors| panic!("{errors:?}"));
        assert!(compiled.streams["counts"].updating, "a GROUP BY over a stream updates its results");
        assert!(compiled.sql.contains("LEFT JOIN"), "{}", compiled.sql);
        assert!(compiled.sql.contains("EXECUTE STATEMENT SET"), "two sinks, one job: {}", compiled.sql);
        assert!(crate::check_script(&compiled.sql).is_ok(), "the SQL it shows checks: {}", compiled.sql);
    }

    fn refused(spec: &CanvasSpec) -> Vec<CanvasError> {
        compile(spec).expect_err("the drawing is refused")
    }

    #[test]
    fn a_window_over_a_stream_without_event_time_is_refused_at_its_stream() {
        let mut spec = window_job();
        spec.nodes[0] = node("orders_in", CanvasOp::Source { table: "plain".into() });
        spec.nodes[1] = node("big", CanvasOp::Filter { condition: "id > 1".into() });
        let errors = refused(&spec);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!((errors[0].node.as_deref(), errors[0].edge), (Some("per_customer"), Some(1)));
        assert!(
            errors[0].message.contains("a window needs an event-time stream, and the stream from big has none"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn an_updating_stream_into_a_sink_of_inserts_is_refused_at_its_stream() {
        let spec = CanvasSpec {
            tables: TABLES.into(),
            nodes: vec![
                node("o", CanvasOp::Source { table: "orders".into() }),
                node("counts", CanvasOp::Aggregate { group_by: vec!["customer".into()], aggregates: vec![count("orders")] }),
                node("out", CanvasOp::Sink { table: "files".into() }),
            ],
            edges: vec![edge("o", "counts"), edge("counts", "out")],
        };
        let errors = refused(&spec);
        assert_eq!((errors[0].node.as_deref(), errors[0].edge), (Some("out"), Some(1)));
        assert!(errors[0].message.contains("takes only inserts, and the stream from counts is a changelog"), "{}", errors[0].message);
    }

    #[test]
    fn cycles_wrong_inputs_and_unknown_names_are_refused_where_drawn() {
        let spec = CanvasSpec {
            tables: TABLES.into(),
            nodes: vec![
                node("a", CanvasOp::Filter { condition: "TRUE".into() }),
                node("b", CanvasOp::Filter { condition: "TRUE".into() }),
                node("out", CanvasOp::Sink { table: "totals".into() }),
            ],
            edges: vec![edge("a", "b"), edge("b", "a"), edge("b", "out")],
        };
        let errors = refused(&spec);
        assert_eq!(
            errors.iter().map(|error| error.node.as_deref().unwrap()).collect::<Vec<_>>(),
            ["a", "b"],
            "the sink is after the cycle, not on it"
        );
        assert!(errors[0].message.contains("a is on a cycle (a, b)"), "{}", errors[0].message);

        let one_sided = CanvasSpec {
            tables: TABLES.into(),
            nodes: vec![
                node("o", CanvasOp::Source { table: "orders".into() }),
                node("j", CanvasOp::Join { join: None, condition: "TRUE".into(), columns: vec![] }),
                node("out", CanvasOp::Sink { table: "totals".into() }),
            ],
            edges: vec![CanvasEdge { from: "o".into(), to: "j".into(), port: Some("left".into()) }, edge("j", "out")],
        };
        let errors = refused(&one_sided);
        assert!(
            errors.iter().any(|e| e.node.as_deref() == Some("j") && e.message.contains("j has 1 input: a join takes two streams")),
            "{errors:?}"
        );

        let mut misspelled = window_job();
        misspelled.nodes[0] = node("orders_in", CanvasOp::Source { table: "ordrs".into() });
        let errors = refused(&misspelled);
        assert_eq!(errors[0].node.as_deref(), Some("orders_in"));
        assert!(errors[0].message.contains("ordrs") && errors[0].message.contains("orders"), "{}", errors[0].message);

        let mut bad_column = window_job();
        bad_column.nodes[1] = node("big", CanvasOp::Filter { condition: "amout > 1".into() });
        let errors = refused(&bad_column);
        assert_eq!(errors[0].node.as_deref(), Some("big"));
        assert!(errors[0].message.contains("did you mean amount"), "{}", errors[0].message);

        let mut dangling = window_job();
        dangling.nodes.push(node("extra", CanvasOp::Filter { condition: "TRUE".into() }));
        dangling.edges.push(edge("big", "extra"));
        let errors = refused(&dangling);
        assert!(errors.iter().any(|e| e.node.as_deref() == Some("extra") && e.message.contains("goes nowhere")), "{errors:?}");

        let no_sink =
            CanvasSpec { tables: TABLES.into(), nodes: vec![node("o", CanvasOp::Source { table: "orders".into() })], edges: vec![] };
        assert!(refused(&no_sink).iter().any(|e| e.message.contains("writes nowhere")));

        let mut bad_size = window_job();
        bad_size.nodes[2] = node(
            "per_customer",
            CanvasOp::WindowAggregate {
                window: CanvasWindow::Tumble { size: "five seconds".into() },
                time: None,
                group_by: vec![],
                aggregates: vec![count("n")],
            },
        );
        assert!(refused(&bad_size)[0].message.contains("not a whole number"));
    }

    #[test]
    fn a_sql_job_of_a_drawable_shape_opens_as_a_canvas_that_compiles_to_the_same_rows() {
        let script = format!(
            "{TABLES}\nINSERT INTO per_window SELECT window_start, window_end, customer, COUNT(*) AS orders, SUM(amount) AS amount \
             FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND)) WHERE amount > 1 GROUP BY window_start, window_end, customer;"
        );
        let spec = from_sql(&script).unwrap();
        let kinds: Vec<&str> = spec
            .nodes
            .iter()
            .map(|node| match node.op {
                CanvasOp::Source { .. } => "source",
                CanvasOp::Filter { .. } => "filter",
                CanvasOp::WindowAggregate { .. } => "window_aggregate",
                CanvasOp::Sink { .. } => "sink",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["source", "filter", "window_aggregate", "sink"]);
        let compiled = compile(&spec).unwrap();
        assert_eq!(run(&compiled.sql), run(&script), "the drawing is the job the SQL was");

        let grouped = format!("{TABLES}\nINSERT INTO totals SELECT customer, COUNT(*) FROM orders GROUP BY customer;");
        let spec = from_sql(&grouped).unwrap();
        assert!(spec.nodes.iter().any(|node| matches!(node.op, CanvasOp::Aggregate { .. })));
        let projected = format!("{TABLES}\nINSERT INTO totals SELECT UPPER(customer), id FROM orders WHERE id > 3;");
        assert!(from_sql(&projected).unwrap().nodes.iter().any(|node| matches!(node.op, CanvasOp::Project { .. })));

        // Other columns than the window aggregate's, in another order: a projection after it.
        let picked = format!(
            "{TABLES}\nINSERT INTO totals SELECT customer, COUNT(*) FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '5' SECOND)) \
             GROUP BY window_start, window_end, customer;"
        );
        let spec = from_sql(&picked).unwrap();
        assert!(matches!(spec.nodes.last().map(|node| &node.op), Some(CanvasOp::Sink { .. })));
        assert!(matches!(&spec.nodes[spec.nodes.len() - 2].op, CanvasOp::Project { columns } if columns.len() == 2), "{:?}", spec.nodes);

        let union = format!("{TABLES}\nINSERT INTO totals SELECT customer, id FROM orders UNION ALL SELECT name, id FROM plain;");
        assert!(from_sql(&union).unwrap_err().contains("cannot be drawn on a canvas yet"));
        assert!(from_sql(TABLES).unwrap_err().contains("writes nowhere"));
    }

    #[test]
    fn joins_deduplication_and_top_n_open_as_a_canvas_that_compiles_to_the_same_rows() {
        let ops = |spec: &CanvasSpec| -> Vec<String> {
            spec.nodes.iter().map(|node| serde_json::to_value(&node.op).unwrap()["kind"].as_str().unwrap().to_string()).collect()
        };
        // A join: sides by alias, the WHERE of an inner join in its condition, columns keep their names.
        let joined =
            format!("{TABLES}\nINSERT INTO totals SELECT o.customer, p.id FROM orders o JOIN plain p ON o.id = p.id WHERE p.id > 1;");
        let spec = from_sql(&joined).unwrap();
        assert_eq!(ops(&spec), ["source", "source", "join", "sink"]);
        let ports: Vec<Option<&str>> = spec.edges.iter().filter(|edge| edge.to == "join_1").map(|edge| edge.port.as_deref()).collect();
        assert_eq!(ports, [Some("left"), Some("right")]);
        let CanvasOp::Join { join, condition, columns } = &spec.nodes[2].op else { panic!("{:?}", spec.nodes[2]) };
        assert_eq!((join, condition.as_str()), (&None, "(l.id = r.id) AND (r.id > 1)"));
        assert_eq!(
            columns.iter().map(|c| (c.expr.as_str(), c.name.as_deref())).collect::<Vec<_>>(),
            [("l.customer", Some("customer")), ("r.id", Some("id"))]
        );
        let rows = run_into(&joined, "totals");
        assert!(!rows.is_empty());
        assert_eq!(run_into(&compile(&spec).unwrap().sql, "totals"), rows, "the drawing is the job the SQL was");
        let left =
            format!("{TABLES}\nINSERT INTO totals SELECT orders.customer, plain.id FROM orders LEFT JOIN plain ON orders.id = plain.id;");
        let spec = from_sql(&left).unwrap();
        assert!(matches!(&spec.nodes[2].op, CanvasOp::Join { join: Some(kind), .. } if kind == "left"));
        // An outer join's changelog depends on which side's rows came first: what it adds up to does not.
        let (drawn, written) = (run_into(&compile(&spec).unwrap().sql, "totals"), run_into(&left, "totals"));
        let diff = crate::test_run::compare(crate::test_run::Compare::Final, &written, &drawn).unwrap();
        assert!(diff.passed(), "{}", diff.render());

        // Deduplication (the first row of each key) and Top-N.
        let first = format!(
            "{TABLES}\nINSERT INTO top_orders SELECT id, customer, amount, ts FROM \
             (SELECT *, ROW_NUMBER() OVER (PARTITION BY customer ORDER BY ts) AS rn FROM orders) WHERE rn = 1;"
        );
        let spec = from_sql(&first).unwrap();
        assert_eq!(ops(&spec), ["source", "deduplicate", "project", "sink"]);
        assert!(matches!(&spec.nodes[1].op, CanvasOp::Deduplicate { keys, keep_last: false, .. } if keys == &["customer"]));
        let rows = run_into(&first, "top_orders");
        assert_eq!(rows.len(), 3, "one per customer: {rows:?}");
        assert_eq!(run_into(&compile(&spec).unwrap().sql, "top_orders"), rows);
        let top = format!(
            "{TABLES}\nINSERT INTO top_orders SELECT id, customer, amount, ts FROM \
             (SELECT *, ROW_NUMBER() OVER (PARTITION BY customer ORDER BY amount DESC) AS rn FROM orders) WHERE rn <= 2;"
        );
        let spec = from_sql(&top).unwrap();
        assert!(matches!(&spec.nodes[1].op, CanvasOp::TopN { n: 2, order_by, .. } if order_by == "amount DESC"), "{:?}", spec.nodes);
        assert_eq!(run_into(&compile(&spec).unwrap().sql, "top_orders"), run_into(&top, "top_orders"));

        let cheapest = first.replace("ORDER BY ts", "ORDER BY amount");
        let spec = from_sql(&cheapest).unwrap();
        assert!(matches!(&spec.nodes[1].op, CanvasOp::TopN { n: 1, order_by, .. } if order_by == "amount"), "{:?}", spec.nodes);

        // What a canvas cannot draw is said.
        let constant = format!("{TABLES}\nINSERT INTO totals SELECT * FROM (SELECT 'a' AS customer, 1 AS orders) WHERE orders = 1;");
        assert!(from_sql(&constant).unwrap_err().contains("cannot be drawn"));
        let second = first.replace("rn = 1", "rn = 2");
        assert!(from_sql(&second).unwrap_err().contains("other than = 1, <= N or < N"));
        let itself = format!("{TABLES}\nINSERT INTO totals SELECT customer, id FROM orders JOIN orders ON id = id;");
        assert!(from_sql(&itself).unwrap_err().contains("with itself"));
        let counted = format!(
            "{TABLES}\nINSERT INTO totals SELECT o.customer, COUNT(*) FROM orders o JOIN plain p ON o.id = p.id GROUP BY o.customer;"
        );
        assert!(from_sql(&counted).unwrap_err().contains("an aggregate of a join"));
    }

    #[test]
    fn a_spec_reads_from_json_as_the_console_sends_it() {
        let json = r#"{"tables": "", "nodes": [{"id": "w", "kind": "window_aggregate", "window": {"type": "hop", "slide": "1 s", "size": "5 s"},
            "aggregates": [{"expr": "COUNT(*)"}], "x": 10, "y": 20}], "edges": []}"#;
        let spec: CanvasSpec = serde_json::from_str(json).unwrap();
        assert!(matches!(&spec.nodes[0].op, CanvasOp::WindowAggregate { window: CanvasWindow::Hop { .. }, .. }));
        assert!(serde_json::from_str::<CanvasSpec>(r#"{"tables": "", "nodes": [{"id": "x", "kind": "teleport"}], "edges": []}"#).is_err());
    }
}
