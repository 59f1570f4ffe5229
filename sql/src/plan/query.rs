//! Planning a query (`SELECT ... FROM ... WHERE ... GROUP BY ... HAVING ...`, `UNION ALL`,
//! `WITH`, subqueries and views in `FROM`, window table functions) into a [`Plan`].
//!
//! Aggregate queries are planned in three steps: the input (with `WHERE`), the aggregate (keys
//! and aggregate calls bound to the input row), then a `Calc` over the aggregate's row for the
//! select list and `HAVING`, in which each aggregate call and each grouped expression is read as
//! a column of that row.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions_mut, DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArgumentClause, FunctionArguments, GroupByExpr,
    Ident, LimitClause, OrderBy, OrderByExpr, OrderByKind, Query, Select, SelectItem, SetExpr, SetOperator, SetQuantifier, TableFactor,
    TableWithJoins,
};

use super::{AggPhaseStrategy, JoinKind, Plan, PlanNode, WindowKind, WindowSpec};
use crate::aggregate::{AggCall, AggKind};
use crate::catalog::SqlCatalog;
use crate::error::{Position, SqlError};
use crate::expr::{interval_ms, position_of, Binder, Compare, Scalar, Scope, ScopeColumn, Typed};
use crate::function::{EvalContext, FunctionRegistry};
use crate::types::{Field, Schema, SqlType};

/// Plans queries against a catalog.
pub struct Planner<'a> {
    catalog: &'a SqlCatalog,
    functions: &'a FunctionRegistry,
    context: EvalContext,
    /// `WITH` queries in scope, by name without case.
    ctes: BTreeMap<String, Plan>,
    /// `table.exec.state.ttl`: how long regular joins and group aggregates keep an idle key.
    state_ttl_ms: Option<i64>,
    /// `table.optimizer.agg-phase-strategy`: which aggregates run in two phases.
    agg_phases: AggPhaseStrategy,
}

/// Where a statement's part is, for errors about it.
fn ident_at(ident: &Ident) -> Option<Position> {
    Position::of(ident.span.start)
}

/// The name a select item's column gets: its alias, the column it names, or `EXPR$i` as Flink.
fn item_name(expr: &Expr, index: usize) -> String {
    match expr {
        Expr::Identifier(ident) => ident.value.clone(),
        Expr::CompoundIdentifier(parts) => parts.last().map(|part| part.value.clone()).unwrap_or_default(),
        Expr::Nested(inner) => item_name(inner, index),
        _ => format!("EXPR${index}"),
    }
}

fn window_columns(qualifier: Option<&str>) -> Vec<ScopeColumn> {
    ["window_start", "window_end", "window_time"]
        .iter()
        .map(|name| ScopeColumn {
            qualifier: qualifier.map(str::to_string),
            field: Field {
                name: name.to_string(),
                data_type: SqlType::Timestamp,
                nullable: false,
                event_time: *name == "window_time",
                proc_time: false,
            },
            hidden: false,
        })
        .collect()
}

/// A relation of `FROM` planned: its plan and the columns its rows bring into scope.
struct Relation {
    plan: Plan,
    scope: Scope,
}

/// A `LIMIT`'s count: a positive integer literal.
fn row_count(limit: &Expr) -> Result<i64, SqlError> {
    let count = match limit {
        Expr::Value(value) => match &value.value {
            sqlparser::ast::Value::Number(text, _) => text.parse::<i64>().ok(),
            _ => None,
        },
        _ => None,
    };
    count.filter(|count| *count > 0).ok_or_else(|| SqlError::at(position_of(limit), format!("LIMIT {limit}: a positive number of rows")))
}

fn unsupported(at: Option<Position>, what: &str) -> SqlError {
    SqlError::at(at, format!("{what} is not supported yet"))
}

impl<'a> Planner<'a> {
    /// A planner over `catalog`, calling `functions`.
    pub fn new(catalog: &'a SqlCatalog, functions: &'a FunctionRegistry, context: EvalContext) -> Planner<'a> {
        Planner { catalog, functions, context, ctes: BTreeMap::new(), state_ttl_ms: None, agg_phases: AggPhaseStrategy::default() }
    }

    /// Which aggregates aggregate each frame's rows per key (and slice) before the shuffle.
    pub fn with_agg_phase_strategy(mut self, strategy: AggPhaseStrategy) -> Self {
        self.agg_phases = strategy;
        self
    }

    /// Regular joins and group aggregates keep an idle key's state this long.
    pub fn with_state_ttl(mut self, ttl_ms: Option<i64>) -> Self {
        self.state_ttl_ms = ttl_ms;
        self
    }

    /// Plans a query.
    pub fn plan_query(&mut self, query: &Query) -> Result<Plan, SqlError> {
        let saved = self.ctes.clone();
        let result = self.plan_query_inner(query);
        self.ctes = saved;
        result
    }

    fn plan_query_inner(&mut self, query: &Query) -> Result<Plan, SqlError> {
        if let Some(with) = &query.with {
            if with.recursive {
                return Err(unsupported(Position::of(with.with_token.0.span.start), "WITH RECURSIVE"));
            }
            for cte in &with.cte_tables {
                let plan = self.plan_query(&cte.query)?;
                let plan = rename_columns(plan, &cte.alias.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>())?;
                self.ctes.insert(cte.alias.name.value.to_lowercase(), plan);
            }
        }
        if query.fetch.is_some() {
            return Err(unsupported(None, "FETCH FIRST on a stream (write LIMIT n)"));
        }
        let limit = match &query.limit_clause {
            None => None,
            Some(LimitClause::LimitOffset { limit: Some(limit), offset: None, limit_by }) if limit_by.is_empty() => Some(row_count(limit)?),
            Some(LimitClause::LimitOffset { limit: None, .. }) => return Err(unsupported(None, "LIMIT ALL")),
            Some(_) => return Err(unsupported(None, "OFFSET on a stream (only LIMIT n)")),
        };
        let order = match &query.order_by {
            None => Vec::new(),
            Some(OrderBy { kind: OrderByKind::Expressions(items), .. }) => items.clone(),
            Some(_) => return Err(unsupported(None, "ORDER BY ALL")),
        };
        let plan = self.plan_set_expr(&query.body)?;
        match limit {
            Some(limit) => self.top_n(plan, &order, limit),
            None if order.is_empty() => Ok(plan),
            None => Err(SqlError::at(
                position_of(&order[0].expr),
                "ORDER BY on an unbounded stream needs a LIMIT: its first rows are kept and updated as rows come (a Top-N); \
                 without one the whole stream would be sorted",
            )),
        }
    }

    /// `ORDER BY ... LIMIT n` (or `LIMIT n` alone: the first n rows) over `input`, as Flink plans
    /// it: a Top-N without partition keys, on one subtask, whose result is updated as rows come
    /// (with `LIMIT` alone it only grows). The order may name output columns, aliases or ordinals.
    fn top_n(&mut self, input: Plan, order_by: &[OrderByExpr], limit: i64) -> Result<Plan, SqlError> {
        let width = input.schema.fields.len();
        let scope = Scope::of(&input.schema, None);
        let binder = Binder::new(&scope, self.functions);
        let mut order = Vec::new();
        for item in order_by {
            let descending = matches!(item.options.sort, Some(sqlparser::ast::OrderBySort::Desc));
            let scalar = match &item.expr {
                Expr::Value(value) => match &value.value {
                    sqlparser::ast::Value::Number(text, _) => match text.parse::<usize>() {
                        Ok(ordinal) if (1..=width).contains(&ordinal) => Scalar::Column(ordinal - 1),
                        _ => {
                            return Err(SqlError::at(
                                position_of(&item.expr),
                                format!("ORDER BY {text}: the query has columns 1 to {width}"),
                            ))
                        }
                    },
                    _ => binder.bind(&item.expr)?.scalar,
                },
                expr => binder.bind(expr)?.scalar,
            };
            order.push((scalar, descending));
        }
        let mut ranked_schema = input.schema.clone();
        ranked_schema.fields.iter_mut().for_each(|field| field.event_time = false);
        let mut schema = ranked_schema.clone();
        ranked_schema.fields.push(Field {
            name: "$rank".into(),
            data_type: SqlType::BigInt,
            nullable: false,
            event_time: false,
            proc_time: false,
        });
        // Without an order a row of an input without updates never moves: the first n rows are
        // inserted and stay.
        let updating = !order.is_empty() || input.updating;
        let text = format!("{} LIMIT {limit}", if order.is_empty() { "first rows" } else { "ORDER BY" });
        let rank = Plan {
            node: PlanNode::Rank {
                input: Box::new(input),
                partition: Vec::new(),
                order,
                limit: Some(limit),
                window_end: None,
                numbered: false,
            },
            schema: ranked_schema,
            updating,
        };
        schema.fields.truncate(width);
        Ok(Plan {
            node: PlanNode::Calc { input: Box::new(rank), projection: (0..width).map(Scalar::Column).collect(), filter: None, text },
            schema,
            updating,
        })
    }

    fn plan_set_expr(&mut self, body: &SetExpr) -> Result<Plan, SqlError> {
        match body {
            SetExpr::Select(select) => self.plan_select(select),
            SetExpr::Query(query) => self.plan_query(query),
            SetExpr::SetOperation { op: SetOperator::Union, set_quantifier, left, right } => {
                if !matches!(set_quantifier, SetQuantifier::All) {
                    return Err(SqlError::at(
                        None,
                        "UNION without ALL removes duplicates, which an unbounded stream cannot do cheaply: write UNION ALL (or SELECT DISTINCT over it)",
                    ));
                }
                let (left, right) = (self.plan_set_expr(left)?, self.plan_set_expr(right)?);
                if left.schema.fields.len() != right.schema.fields.len() {
                    return Err(SqlError::at(
                        None,
                        format!(
                            "UNION ALL of {} and {} columns: both sides need the same columns",
                            left.schema.fields.len(),
                            right.schema.fields.len()
                        ),
                    ));
                }
                let mut fields = Vec::new();
                for (l, r) in left.schema.fields.iter().zip(&right.schema.fields) {
                    if l.data_type != r.data_type {
                        return Err(SqlError::at(
                            None,
                            format!(
                                "UNION ALL column {} is {} on the left and {} on the right: cast one side",
                                l.name, l.data_type, r.data_type
                            ),
                        ));
                    }
                    fields.push(Field {
                        nullable: l.nullable || r.nullable,
                        event_time: l.event_time && r.event_time,
                        proc_time: l.proc_time && r.proc_time,
                        ..l.clone()
                    });
                }
                let updating = left.updating || right.updating;
                let mut inputs = Vec::new();
                for side in [left, right] {
                    match side.node {
                        PlanNode::Union { inputs: nested } => inputs.extend(nested),
                        node => inputs.push(Plan { node, ..side }),
                    }
                }
                Ok(Plan { node: PlanNode::Union { inputs }, schema: Schema::new(fields), updating })
            }
            SetExpr::SetOperation { op, .. } => Err(unsupported(None, &format!("{op} on streams"))),
            SetExpr::Values(_) => Err(unsupported(None, "VALUES")),
            other => Err(unsupported(None, &format!("query {other}"))),
        }
    }

    fn plan_from(&mut self, from: &[TableWithJoins], at: Option<Position>) -> Result<Relation, SqlError> {
        match from {
            [] => Err(SqlError::at(at, "a query needs FROM: a table, view, subquery or window function")),
            [single] => {
                let mut relation = self.plan_factor(&single.relation)?;
                for join in &single.joins {
                    relation = self.plan_join(relation, join)?;
                }
                Ok(relation)
            }
            [_, second, ..] => Err(unsupported(position_of_factor(&second.relation), "a comma join here")),
        }
    }

    fn plan_factor(&mut self, factor: &TableFactor) -> Result<Relation, SqlError> {
        match factor {
            TableFactor::Table { name, alias, args: None, .. } => {
                let at = name.0.first().and_then(|part| part.as_ident()).and_then(ident_at);
                let table_name = name.to_string();
                let qualifier = alias
                    .as_ref()
                    .map(|alias| alias.name.value.clone())
                    .unwrap_or_else(|| name.0.last().and_then(|part| part.as_ident()).map(|ident| ident.value.clone()).unwrap_or_default());
                let plan = self.named_relation(&table_name, at)?;
                let plan = match alias {
                    Some(alias) if !alias.columns.is_empty() => {
                        rename_columns(plan, &alias.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>())?
                    }
                    _ => plan,
                };
                let scope = Scope::of(&plan.schema, Some(&qualifier));
                Ok(Relation { plan, scope })
            }
            TableFactor::Derived { subquery, alias, lateral, .. } => {
                if *lateral {
                    return Err(unsupported(None, "LATERAL"));
                }
                let plan = self.plan_query(subquery)?;
                let plan = match alias {
                    Some(alias) if !alias.columns.is_empty() => {
                        rename_columns(plan, &alias.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>())?
                    }
                    _ => plan,
                };
                let qualifier = alias.as_ref().map(|alias| alias.name.value.clone());
                let scope = Scope::of(&plan.schema, qualifier.as_deref());
                Ok(Relation { plan, scope })
            }
            TableFactor::TableFunction { expr, alias } => {
                let qualifier = alias.as_ref().map(|alias| alias.name.value.clone());
                self.plan_window_tvf(expr, qualifier.as_deref())
            }
            other => Err(unsupported(position_of_factor(other), &format!("FROM {other}"))),
        }
    }

    fn plan_join(&mut self, left: Relation, join: &sqlparser::ast::Join) -> Result<Relation, SqlError> {
        use sqlparser::ast::{JoinConstraint, JoinOperator};
        let at = position_of_factor(&join.relation);
        if let TableFactor::Table { version: Some(sqlparser::ast::TableVersion::ForSystemTimeAsOf(as_of)), .. } = &join.relation {
            return self.plan_lookup_join(left, join, as_of, at);
        }
        let right = self.plan_factor(&join.relation)?;
        let (kind, constraint) = match &join.join_operator {
            JoinOperator::Join(constraint) | JoinOperator::Inner(constraint) => (JoinKind::Inner, constraint),
            JoinOperator::Left(constraint) | JoinOperator::LeftOuter(constraint) => (JoinKind::Left, constraint),
            JoinOperator::Right(constraint) | JoinOperator::RightOuter(constraint) => (JoinKind::Right, constraint),
            JoinOperator::FullOuter(constraint) => (JoinKind::Full, constraint),
            other => return Err(unsupported(at, &format!("{other:?} joins").replace("(None)", ""))),
        };
        let mut scope = left.scope.clone();
        scope.columns.extend(right.scope.columns.iter().cloned());
        let condition = match constraint {
            JoinConstraint::On(expr) => Binder::new(&scope, self.functions).bind_condition(expr, "ON")?.scalar,
            JoinConstraint::Using(columns) => {
                let width = left.scope.columns.len();
                let mut conjuncts = Vec::new();
                for column in columns {
                    let name = column.to_string();
                    let l = left.scope.resolve(None, &name, at)?;
                    let r = right.scope.resolve(None, &name, at)?;
                    conjuncts.push(Scalar::Compare(Compare::Eq, Box::new(Scalar::Column(l)), Box::new(Scalar::Column(width + r))));
                }
                Scalar::all_of(conjuncts).ok_or_else(|| SqlError::at(at, "USING names no column"))?
            }
            _ => return Err(SqlError::at(at, "a join of streams needs ON (or USING) with the keys to join on")),
        };
        self.join_relations(left, right, kind, condition, at)
    }

    /// `JOIN t FOR SYSTEM_TIME AS OF s.proc ON ...`: the stream joined with a table looked up by
    /// its keys (inner or left), the table as it is when the job starts.
    fn plan_lookup_join(
        &mut self,
        left: Relation,
        join: &sqlparser::ast::Join,
        as_of: &Expr,
        at: Option<Position>,
    ) -> Result<Relation, SqlError> {
        use sqlparser::ast::{JoinConstraint, JoinOperator};
        let kind = match &join.join_operator {
            JoinOperator::Join(_) | JoinOperator::Inner(_) => JoinKind::Inner,
            JoinOperator::Left(_) | JoinOperator::LeftOuter(_) => JoinKind::Left,
            _ => return Err(SqlError::at(at, "a lookup join is an inner or a left join")),
        };
        let as_of_at = position_of(as_of);
        let time = Binder::new(&left.scope, self.functions).bind(as_of)?;
        if !matches!(time.scalar, Scalar::Column(column) if left.scope.columns[column].field.proc_time) {
            return Err(SqlError::at(
                as_of_at,
                "FOR SYSTEM_TIME AS OF takes the stream's processing-time column (one AS PROCTIME()): \
                 a lookup join reads the table as it is now; joins as of event time are not supported",
            ));
        }
        let right = self.plan_factor(&join.relation)?;
        let PlanNode::Scan { table, .. } = &right.plan.node else {
            return Err(SqlError::at(
                at,
                "a lookup join looks up a table (CREATE TABLE ... WITH ('connector' = 'filesystem', ...)), not a view",
            ));
        };
        if !table.computed.is_empty() {
            return Err(SqlError::at(
                at,
                format!("table {} has computed columns: a lookup join reads a table's own columns", table.name()),
            ));
        }
        let table = table.clone();
        let constraint = match &join.join_operator {
            JoinOperator::Join(constraint)
            | JoinOperator::Inner(constraint)
            | JoinOperator::Left(constraint)
            | JoinOperator::LeftOuter(constraint) => constraint,
            _ => unreachable!("checked above"),
        };
        let JoinConstraint::On(on) = constraint else {
            return Err(SqlError::at(at, "a lookup join needs ON with the table's key columns: ON s.key = t.key"));
        };
        let width = left.scope.columns.len();
        let mut scope = left.scope.clone();
        scope.columns.extend(right.scope.columns.iter().cloned());
        let condition = Binder::new(&scope, self.functions).bind_condition(on, "ON")?.scalar;
        let (mut left_keys, mut right_keys, mut residual) = (Vec::new(), Vec::new(), Vec::new());
        for conjunct in condition.conjuncts() {
            if let Scalar::Compare(Compare::Eq, a, b) = &conjunct {
                let of_left = |scalar: &Scalar| {
                    let mut columns = Vec::new();
                    scalar.columns(&mut columns);
                    !columns.is_empty() && columns.iter().all(|&column| column < width)
                };
                let key = match (a.as_ref(), b.as_ref()) {
                    (Scalar::Column(column), other) | (other, Scalar::Column(column)) if *column >= width && of_left(other) => {
                        Some((other.clone(), column - width))
                    }
                    _ => None,
                };
                if let Some((left_key, right_column)) = key {
                    left_keys.push(left_key);
                    right_keys.push(right_column);
                    continue;
                }
            }
            residual.push(conjunct);
        }
        if left_keys.is_empty() {
            return Err(SqlError::at(
                at,
                "a lookup join needs an equality of a table column and the stream's expression in ON: ON s.key = t.key",
            ));
        }
        let mut fields = left.plan.schema.fields.clone();
        for column in &right.scope.columns {
            let mut field = column.field.clone();
            field.nullable |= kind == JoinKind::Left;
            field.event_time = false;
            field.proc_time = false;
            fields.push(field);
        }
        for (column, field) in scope.columns.iter_mut().zip(&fields) {
            column.field = field.clone();
        }
        let updating = left.plan.updating;
        let node =
            PlanNode::LookupJoin { input: Box::new(left.plan), table, kind, left_keys, right_keys, residual: Scalar::all_of(residual) };
        Ok(Relation { plan: Plan { node, schema: Schema::new(fields), updating }, scope })
    }

    /// `left` and `right` joined on `condition` (bound over both scopes side by side).
    fn join_relations(
        &self,
        left: Relation,
        right: Relation,
        kind: JoinKind,
        condition: Scalar,
        at: Option<Position>,
    ) -> Result<Relation, SqlError> {
        let mut scope = left.scope.clone();
        scope.columns.extend(right.scope.columns.iter().cloned());
        let plan = super::join::plan_join(left.plan, &left.scope, right.plan, kind, condition, self.state_ttl_ms, at)?;
        for (column, field) in scope.columns.iter_mut().zip(&plan.schema.fields) {
            column.field = field.clone();
        }
        Ok(Relation { plan, scope })
    }

    /// `FROM a, b, ... WHERE ...`: inner joins, each on the conjuncts of WHERE that its tables
    /// answer; the conjuncts left over are returned as the rest of WHERE.
    fn plan_comma_join(
        &mut self,
        from: &[TableWithJoins],
        selection: Option<&Expr>,
        at: Option<Position>,
    ) -> Result<(Relation, Option<Expr>), SqlError> {
        fn conjuncts(expr: &Expr, out: &mut Vec<Expr>) {
            match expr {
                Expr::BinaryOp { left, op: sqlparser::ast::BinaryOperator::And, right } => {
                    conjuncts(left, out);
                    conjuncts(right, out);
                }
                Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: sqlparser::ast::BinaryOperator::And, .. }) => {
                    conjuncts(inner, out)
                }
                other => out.push(other.clone()),
            }
        }
        let mut remaining = Vec::new();
        if let Some(selection) = selection {
            conjuncts(selection, &mut remaining);
        }
        let mut relation = self.plan_from(&from[..1], at)?;
        for table in &from[1..] {
            let right = self.plan_from(std::slice::from_ref(table), at)?;
            let mut scope = relation.scope.clone();
            scope.columns.extend(right.scope.columns.iter().cloned());
            let binder = Binder::new(&scope, self.functions);
            let mut condition = Vec::new();
            let mut unused = Vec::new();
            for conjunct in remaining {
                match binder.bind_condition(&conjunct, "WHERE") {
                    Ok(bound) => condition.push(bound.scalar),
                    Err(_) => unused.push(conjunct),
                }
            }
            remaining = unused;
            let condition = Scalar::all_of(condition)
                .ok_or_else(|| SqlError::at(at, "FROM a, b joins streams on WHERE a.key = b.key: no condition joins these tables"))?;
            relation = self.join_relations(relation, right, JoinKind::Inner, condition, at)?;
        }
        let rest = remaining.into_iter().reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: sqlparser::ast::BinaryOperator::And,
            right: Box::new(b),
        });
        Ok((relation, rest))
    }

    /// A table, view or `WITH` query by name.
    fn named_relation(&mut self, name: &str, at: Option<Position>) -> Result<Plan, SqlError> {
        if let Some(plan) = self.ctes.get(&name.to_lowercase()) {
            return Ok(plan.clone());
        }
        if let Some(table) = self.catalog.table(name) {
            return Ok(Plan {
                node: PlanNode::Scan { table: Box::new(table.clone()), pushed: None },
                schema: table.schema.clone(),
                updating: false,
            });
        }
        if let Some(view) = self.catalog.view(name) {
            let view = view.clone();
            let plan = Planner::new(self.catalog, self.functions, self.context.clone())
                .with_state_ttl(self.state_ttl_ms)
                .with_agg_phase_strategy(self.agg_phases)
                .plan_query(&view.query)?;
            return rename_columns(plan, &view.columns.iter().map(|c| Ident::new(c.clone())).collect::<Vec<_>>());
        }
        Err(self.catalog.unknown(name, at))
    }

    /// `TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL ...)` and its kin (the script parser turns
    /// `TABLE t` into `t`, and `TABLE t PARTITION BY k` into `t, PARTITION_BY(k)`).
    fn plan_window_tvf(&mut self, expr: &Expr, qualifier: Option<&str>) -> Result<Relation, SqlError> {
        let at = position_of(expr);
        let Expr::Function(function) = expr else {
            return Err(SqlError::at(at, "TABLE(...) in FROM takes a window function: TUMBLE, HOP, CUMULATE or SESSION"));
        };
        let name = function.name.to_string().to_uppercase();
        let FunctionArguments::List(list) = &function.args else {
            return Err(SqlError::at(at, format!("{name} needs its arguments")));
        };
        // Positional or named (`DATA => TABLE t, TIMECOL => DESCRIPTOR(ts), SIZE => ...`).
        let mut positional: Vec<&Expr> = Vec::new();
        let mut named: BTreeMap<String, &Expr> = BTreeMap::new();
        for argument in &list.args {
            match argument {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => positional.push(expr),
                FunctionArg::Named { name, arg: FunctionArgExpr::Expr(expr), .. } => {
                    named.insert(name.value.to_uppercase(), expr);
                }
                _ => return Err(SqlError::at(at, format!("{name}: an argument is not an expression"))),
            }
        }
        let mut partition = None;
        if let Some(Expr::Function(second)) = positional.get(1) {
            if second.name.to_string().eq_ignore_ascii_case("PARTITION_BY") {
                partition = Some(positional.remove(1));
            }
        }
        let parameters: &[&str] = match name.as_str() {
            "TUMBLE" => &["DATA", "TIMECOL", "SIZE", "OFFSET"],
            "HOP" => &["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"],
            "CUMULATE" => &["DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"],
            "SESSION" => &["DATA", "TIMECOL", "GAP"],
            _ => {
                return Err(SqlError::at(at, format!("{name} is not a window function: use TUMBLE, HOP, CUMULATE or SESSION")));
            }
        };
        let required = if name == "SESSION" { 3 } else { parameters.len() - 1 };
        let mut arguments: Vec<Option<&Expr>> = parameters.iter().map(|parameter| named.remove(*parameter)).collect();
        if !positional.is_empty() && arguments.iter().any(Option::is_some) {
            return Err(SqlError::at(at, format!("{name}: give all arguments by position or all by name")));
        }
        if let Some(unknown) = named.keys().next() {
            return Err(SqlError::at(at, format!("{name} has no parameter {unknown}; its parameters are {}", parameters.join(", "))));
        }
        if !positional.is_empty() {
            if positional.len() > parameters.len() || positional.len() < required {
                return Err(SqlError::at(
                    at,
                    format!(
                        "{name} takes {required} to {} arguments ({}), got {}",
                        parameters.len(),
                        parameters.join(", "),
                        positional.len()
                    ),
                ));
            }
            arguments = parameters.iter().enumerate().map(|(i, _)| positional.get(i).copied()).collect();
        }
        if let Some(missing) = arguments.iter().take(required).position(Option::is_none) {
            return Err(SqlError::at(at, format!("{name} needs its {} argument", parameters[missing])));
        }
        let data = arguments[0].expect("checked");
        let data_relation = match data {
            Expr::Identifier(ident) => {
                let plan = self.named_relation(&ident.value, ident_at(ident))?;
                let scope = Scope::of(&plan.schema, Some(&ident.value));
                Relation { plan, scope }
            }
            Expr::CompoundIdentifier(parts) => {
                let table = parts.iter().map(|part| part.value.as_str()).collect::<Vec<_>>().join(".");
                let plan = self.named_relation(&table, ident_at(&parts[0]))?;
                let last = parts.last().map(|part| part.value.clone());
                let scope = Scope::of(&plan.schema, last.as_deref());
                Relation { plan, scope }
            }
            Expr::Subquery(query) => {
                let plan = self.plan_query(query)?;
                let scope = Scope::of(&plan.schema, None);
                Relation { plan, scope }
            }
            other => return Err(SqlError::at(position_of(other), format!("{name}'s first argument is a table: TABLE name"))),
        };
        let time_expr = arguments[1].expect("checked");
        let time_column = match time_expr {
            Expr::Function(descriptor) if descriptor.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
                let column = match &descriptor.args {
                    FunctionArguments::List(list) if list.args.len() == 1 => match &list.args[0] {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(ident))) => ident.clone(),
                        _ => return Err(SqlError::at(position_of(time_expr), "DESCRIPTOR names one column: DESCRIPTOR(ts)")),
                    },
                    _ => return Err(SqlError::at(position_of(time_expr), "DESCRIPTOR names one column: DESCRIPTOR(ts)")),
                };
                let index = data_relation.scope.resolve(None, &column.value, ident_at(&column))?;
                let field = &data_relation.scope.columns[index].field;
                if !field.event_time && !field.proc_time {
                    return Err(SqlError::at(
                        ident_at(&column),
                        format!(
                            "{name} needs an event-time column, and {} is not one: declare WATERMARK FOR {} in its table \
                             (or window by processing time over a column AS PROCTIME())",
                            field.name, field.name
                        ),
                    ));
                }
                index
            }
            other => return Err(SqlError::at(position_of(other), format!("{name}'s time column is given as DESCRIPTOR(column)"))),
        };
        let duration = |index: usize| -> Result<i64, SqlError> {
            match arguments[index] {
                None => Ok(0),
                Some(Expr::Interval(interval)) => {
                    let ms = interval_ms(interval, position_of(arguments[index].expect("some")))?;
                    if ms <= 0 && parameters[index] != "OFFSET" {
                        return Err(SqlError::at(
                            position_of(arguments[index].expect("some")),
                            format!("{name}'s {} must be positive", parameters[index]),
                        ));
                    }
                    Ok(ms)
                }
                Some(other) => Err(SqlError::at(position_of(other), format!("{name}'s {} is an INTERVAL", parameters[index]))),
            }
        };
        let kind = match name.as_str() {
            "TUMBLE" => WindowKind::Tumble { size_ms: duration(2)?, offset_ms: duration(3)? },
            "HOP" => {
                let (slide_ms, size_ms) = (duration(2)?, duration(3)?);
                if slide_ms > size_ms {
                    return Err(SqlError::at(at, format!("HOP's slide ({slide_ms} ms) is larger than its size ({size_ms} ms)")));
                }
                WindowKind::Hop { slide_ms, size_ms, offset_ms: duration(4)? }
            }
            "CUMULATE" => {
                let (step_ms, max_size_ms) = (duration(2)?, duration(3)?);
                if max_size_ms % step_ms != 0 {
                    return Err(SqlError::at(
                        at,
                        format!("CUMULATE's size ({max_size_ms} ms) must be a whole number of steps ({step_ms} ms)"),
                    ));
                }
                WindowKind::Cumulate { step_ms, max_size_ms, offset_ms: duration(4)? }
            }
            _ => WindowKind::Session { gap_ms: duration(2)? },
        };
        let partition = match partition {
            None => Vec::new(),
            Some(Expr::Function(function)) => {
                let mut columns = Vec::new();
                if let FunctionArguments::List(list) = &function.args {
                    for argument in &list.args {
                        let FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) = argument else { continue };
                        let exprs: Vec<&Expr> = match expr {
                            Expr::Tuple(items) => items.iter().collect(),
                            Expr::Nested(inner) => vec![inner.as_ref()],
                            other => vec![other],
                        };
                        for expr in exprs {
                            let Expr::Identifier(ident) = expr else {
                                return Err(SqlError::at(position_of(expr), "SESSION is partitioned by columns"));
                            };
                            columns.push(data_relation.scope.resolve(None, &ident.value, ident_at(ident))?);
                        }
                    }
                }
                columns
            }
            Some(_) => Vec::new(),
        };
        if !partition.is_empty() && name != "SESSION" {
            return Err(SqlError::at(at, format!("PARTITION BY is for SESSION windows, not {name}")));
        }
        let processing_time = data_relation.scope.columns[time_column].field.proc_time;
        let window = WindowSpec { kind, time_column, partition, time_offset_ms: 0, processing_time };
        if data_relation.plan.updating {
            return Err(SqlError::at(at, format!("{name} takes an append-only input, and its input has updates")));
        }
        Ok(windowed_relation(data_relation, window, qualifier))
    }

    /// `GROUP BY TUMBLE(ts, INTERVAL ...)` (and HOP, SESSION), Flink's group window syntax: the
    /// input windowed as the window table function would (so the window aggregation plans as
    /// for one), the group keys with `window_start, window_end` in the window's place, and
    /// `TUMBLE_START(...)`, `_END`, `_ROWTIME` read as `window_start`, `window_end`, `window_time`.
    fn group_window(&self, relation: Relation, group_by: &mut Vec<Expr>, select: &mut Select) -> Result<Relation, SqlError> {
        let position = group_by.iter().position(|expr| {
            matches!(expr, Expr::Function(f) if ["TUMBLE", "HOP", "SESSION"].iter().any(|name| f.name.to_string().eq_ignore_ascii_case(name)))
        });
        let Some(position) = position else { return Ok(relation) };
        let call = group_by.remove(position);
        let at = position_of(&call);
        let Expr::Function(function) = &call else { unreachable!("found a function") };
        let name = function.name.to_string().to_uppercase();
        let arguments: Vec<&Expr> = match &function.args {
            FunctionArguments::List(list) => list
                .args
                .iter()
                .filter_map(|argument| match argument {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Some(expr),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let interval = |index: usize| match arguments.get(index) {
            Some(Expr::Interval(interval)) => interval_ms(interval, at),
            _ => Err(SqlError::at(at, format!("{name}(time, ...) takes INTERVALs after its time column"))),
        };
        let kind = match (name.as_str(), arguments.len()) {
            ("TUMBLE", 2) => WindowKind::Tumble { size_ms: interval(1)?, offset_ms: 0 },
            ("HOP", 3) => WindowKind::Hop { slide_ms: interval(1)?, size_ms: interval(2)?, offset_ms: 0 },
            ("SESSION", 2) => WindowKind::Session { gap_ms: interval(1)? },
            _ => {
                return Err(SqlError::at(
                    at,
                    format!("{name} as a group window takes its time column and its intervals: {name}(ts, INTERVAL ...)"),
                ))
            }
        };
        let time_column = match arguments.first() {
            Some(Expr::Identifier(ident)) => relation.scope.resolve(None, &ident.value, ident_at(ident))?,
            Some(Expr::CompoundIdentifier(parts)) if parts.len() == 2 => {
                relation.scope.resolve(Some(&parts[0].value), &parts[1].value, ident_at(&parts[1]))?
            }
            _ => return Err(SqlError::at(at, format!("{name}'s first argument is the event-time column"))),
        };
        let time_field = &relation.scope.columns[time_column].field;
        if !time_field.event_time && !time_field.proc_time {
            let column = &time_field.name;
            return Err(SqlError::at(
                at,
                format!("{name} needs an event-time column, and {column} is not one: declare WATERMARK FOR {column} in its table"),
            ));
        }
        let processing_time = time_field.proc_time;
        if relation.plan.updating {
            return Err(SqlError::at(at, format!("{name} takes an append-only input, and its input has updates")));
        }
        group_by.insert(position, Expr::Identifier(Ident::new("window_end")));
        group_by.insert(position, Expr::Identifier(Ident::new("window_start")));
        let auxiliary = |expr: &mut Expr| -> ControlFlow<SqlError> {
            let Expr::Function(function) = expr else { return ControlFlow::Continue(()) };
            let called = function.name.to_string().to_uppercase();
            let Some((window, part)) = called.split_once('_') else { return ControlFlow::Continue(()) };
            if !["TUMBLE", "HOP", "SESSION"].contains(&window) {
                return ControlFlow::Continue(());
            }
            let column = match part {
                "START" => "window_start",
                "END" => "window_end",
                "ROWTIME" => "window_time",
                _ => return ControlFlow::Break(unsupported(position_of(expr), &called)),
            };
            *expr = Expr::Identifier(Ident::new(column));
            ControlFlow::Continue(())
        };
        if let ControlFlow::Break(error) = visit_expressions_mut(&mut select.projection, auxiliary) {
            return Err(error);
        }
        if let Some(having) = &mut select.having {
            if let ControlFlow::Break(error) = visit_expressions_mut(having, auxiliary) {
                return Err(error);
            }
        }
        let qualifier = relation.scope.columns.first().and_then(|column| column.qualifier.clone());
        let window = WindowSpec { kind, time_column, partition: Vec::new(), time_offset_ms: 0, processing_time };
        Ok(windowed_relation(relation, window, qualifier.as_deref()))
    }

    fn plan_select(&mut self, select: &Select) -> Result<Plan, SqlError> {
        let at = Position::of(select.select_token.0.span.start);
        if select.having.is_some()
            && matches!(&select.group_by, GroupByExpr::Expressions(exprs, _) if exprs.is_empty())
            && !has_aggregate_items(select, self.functions)
        {
            return Err(SqlError::at(at, "HAVING needs GROUP BY or aggregates"));
        }
        if select.qualify.is_some() {
            return Err(unsupported(at, "QUALIFY"));
        }
        let (relation, select) = if select.from.len() > 1 {
            let (relation, rest) = self.plan_comma_join(&select.from, select.selection.as_ref(), at)?;
            (relation, std::borrow::Cow::Owned(Select { selection: rest, ..select.clone() }))
        } else {
            (self.plan_from(&select.from, at)?, std::borrow::Cow::Borrowed(select))
        };
        let select: &Select = &select;
        let group_by: Vec<Expr> = match &select.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(unsupported(at, "GROUP BY modifiers (ROLLUP, CUBE)"));
                }
                exprs.clone()
            }
            GroupByExpr::All(_) => return Err(unsupported(at, "GROUP BY ALL")),
        };
        let distinct = match &select.distinct {
            None => false,
            Some(sqlparser::ast::Distinct::Distinct) => true,
            Some(other) => return Err(unsupported(at, &other.to_string())),
        };
        let aggregated = !group_by.is_empty() || has_aggregate_items(select, self.functions) || select.having.is_some();
        if aggregated {
            let (mut group_by, mut select) = (group_by, select.clone());
            let relation = self.group_window(relation, &mut group_by, &mut select)?;
            let plan = self.plan_aggregate(&select, relation, &group_by, at)?;
            return if distinct { self.distinct(plan) } else { Ok(plan) };
        }
        // A plain projection and filter: over the window function's rows, or any input.
        if let PlanNode::WindowTvf { window, .. } = &relation.plan.node {
            if matches!(window.kind, WindowKind::Session { .. }) {
                return Err(SqlError::at(at, "SESSION windows are only for window aggregation: GROUP BY window_start, window_end"));
            }
        }
        let binder = Binder::new(&relation.scope, self.functions);
        let mut filter =
            select.selection.as_ref().map(|condition| binder.bind_condition(condition, "WHERE")).transpose()?.map(|bound| bound.scalar);
        let mut items = select.projection.clone();
        let (mut input, scope) = match super::over::take_window_calls(&mut items, &select.named_window)? {
            Some((spec, calls)) => {
                // WHERE filters the rows before window functions see them.
                let input = match filter.take() {
                    Some(condition) => {
                        let width = relation.plan.schema.fields.len();
                        let updating = relation.plan.updating;
                        Plan {
                            schema: relation.plan.schema.clone(),
                            node: PlanNode::Calc {
                                input: Box::new(relation.plan),
                                projection: (0..width).map(Scalar::Column).collect(),
                                filter: Some(condition),
                                text: format!("where={}", select.selection.as_ref().expect("a filter")),
                            },
                            updating,
                        }
                    }
                    None => relation.plan,
                };
                super::over::plan_window_calls(input, &relation.scope, &spec, &calls, &binder, |call| self.aggregate_call(call, &binder))?
            }
            None => (relation.plan, relation.scope),
        };
        // A filter on a rank's row number is its limit (Top-N).
        if let Some(column) = super::over::open_rank_column(&input) {
            let (limit, rest) = super::over::take_rank_limit(filter, column);
            if let Some(limit) = limit {
                if limit < 1 {
                    return Err(SqlError::at(at, format!("a Top-N keeps at least one row, and the filter keeps {limit}")));
                }
                super::over::set_rank_limit(&mut input, limit);
            }
            filter = rest;
        }
        let (projection, fields) = self.bind_items(&items, &scope)?;
        let text = calc_text(select);
        let updating = input.updating;
        let plan = Plan {
            node: PlanNode::Calc {
                input: Box::new(input),
                projection: projection.into_iter().map(|bound| bound.scalar).collect(),
                filter,
                text,
            },
            schema: Schema::new(fields),
            updating,
        };
        if distinct {
            self.distinct(plan)
        } else {
            Ok(plan)
        }
    }

    /// `SELECT DISTINCT`: a group aggregate keyed by every column, with no aggregates.
    fn distinct(&self, plan: Plan) -> Result<Plan, SqlError> {
        let keys = (0..plan.schema.fields.len()).map(Scalar::Column).collect();
        let mut schema = plan.schema.clone();
        schema.fields.iter_mut().for_each(|field| field.event_time = false);
        Ok(Plan {
            node: PlanNode::GroupAggregate { input: Box::new(plan), keys, aggregates: Vec::new(), two_phase: false },
            schema,
            updating: true,
        })
    }

    /// The select list bound over `scope`: one expression and field per column (`*` expanded).
    fn bind_items(&self, items: &[SelectItem], scope: &Scope) -> Result<(Vec<Typed>, Vec<Field>), SqlError> {
        let binder = Binder::new(scope, self.functions);
        let (mut bound, mut fields) = (Vec::new(), Vec::new());
        for item in items {
            match item {
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } => {
                    let typed = binder.bind(expr)?;
                    let name = match item {
                        SelectItem::ExprWithAlias { alias, .. } => alias.value.clone(),
                        _ => item_name(expr, fields.len()),
                    };
                    // A column passed through keeps being the event time.
                    let passed = match typed.scalar {
                        Scalar::Column(i) => Some(&scope.columns[i].field),
                        _ => None,
                    };
                    // `PROCTIME()` in a select list makes a processing-time attribute, as in a table.
                    let made = matches!(&typed.scalar, Scalar::Call(function, _) if function.name() == "PROCTIME");
                    let (event_time, proc_time) = passed.map_or((false, made), |field| (field.event_time, field.proc_time));
                    fields.push(Field { name, data_type: typed.data_type.clone(), nullable: typed.nullable, event_time, proc_time });
                    bound.push(typed);
                }
                SelectItem::ExprWithAliases { .. } => return Err(unsupported(None, "several aliases for one expression")),
                SelectItem::Wildcard(_) => {
                    for (i, column) in scope.columns.iter().enumerate().filter(|(_, column)| !column.hidden) {
                        fields.push(column.field.clone());
                        bound.push(Typed {
                            scalar: Scalar::Column(i),
                            data_type: column.field.data_type.clone(),
                            nullable: column.field.nullable,
                        });
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let written = kind.to_string();
                    let qualifier = written.strip_suffix(".*").unwrap_or(&written).to_string();
                    let mut any = false;
                    for (i, column) in scope.columns.iter().enumerate() {
                        if column.hidden || !column.qualifier.as_deref().is_some_and(|q| q.eq_ignore_ascii_case(&qualifier)) {
                            continue;
                        }
                        any = true;
                        fields.push(column.field.clone());
                        bound.push(Typed {
                            scalar: Scalar::Column(i),
                            data_type: column.field.data_type.clone(),
                            nullable: column.field.nullable,
                        });
                    }
                    if !any {
                        return Err(SqlError::at(None, format!("{qualifier}.*: no table named {qualifier} in FROM")));
                    }
                }
            }
        }
        Ok((bound, fields))
    }

    fn plan_aggregate(&mut self, select: &Select, relation: Relation, group_by: &[Expr], at: Option<Position>) -> Result<Plan, SqlError> {
        // A window aggregate groups a window function's rows by window_start and window_end.
        let is_window_column = |expr: &Expr, name: &str| -> bool {
            let ident = match expr {
                Expr::Identifier(ident) => ident,
                Expr::CompoundIdentifier(parts) => parts.last().expect("parts"),
                _ => return false,
            };
            ident.value.eq_ignore_ascii_case(name)
        };
        let windowed = matches!(relation.plan.node, PlanNode::WindowTvf { .. });
        let window_qualifier = relation.scope.columns.last().and_then(|column| column.qualifier.clone());
        let (input_plan, input_scope, window) = match relation.plan.node {
            PlanNode::WindowTvf { input, window } => {
                let has = |name: &str| group_by.iter().any(|expr| is_window_column(expr, name));
                if !(has("window_start") && has("window_end")) {
                    return Err(SqlError::at(
                        at,
                        "a window aggregation groups by both window_start and window_end of its window function: GROUP BY window_start, window_end, ...",
                    ));
                }
                let mut scope = relation.scope.clone();
                // The window columns are the aggregate's, not the input's.
                scope.columns.truncate(scope.columns.len() - 3);
                let time_field = &mut scope.columns[window.time_column].field;
                if window.processing_time {
                    time_field.proc_time = true;
                } else {
                    time_field.event_time = true;
                }
                (*input, scope, Some(window))
            }
            node => (Plan { node, ..relation.plan }, relation.scope, None),
        };
        let binder = Binder::new(&input_scope, self.functions);
        let mut input = input_plan;
        if let Some(condition) = &select.selection {
            let bound = binder.bind_condition(condition, "WHERE").map_err(|error| {
                if windowed
                    && ["window_start", "window_end", "window_time"].iter().any(|name| error.message.contains(&format!("named {name}")))
                {
                    SqlError::at(error.at, "WHERE on window columns of a window aggregation is not supported yet: filter after aggregating")
                } else {
                    error
                }
            })?;
            let width = input.schema.fields.len();
            let updating = input.updating;
            input = Plan {
                schema: input.schema.clone(),
                node: PlanNode::Calc {
                    input: Box::new(input),
                    projection: (0..width).map(Scalar::Column).collect(),
                    filter: Some(bound.scalar),
                    text: format!("where={condition}"),
                },
                updating,
            };
        }
        if window.is_some() && input.updating {
            return Err(SqlError::at(at, "a window aggregation takes an append-only input, and its input has updates"));
        }
        // Keys (window_start / window_end aside).
        let mut keys: Vec<(Expr, Typed)> = Vec::new();
        for expr in group_by {
            if window.is_some() && (is_window_column(expr, "window_start") || is_window_column(expr, "window_end")) {
                continue;
            }
            if window.is_some() && is_window_column(expr, "window_time") {
                return Err(SqlError::at(position_of(expr), "GROUP BY window_time is not supported: group by window_start, window_end"));
            }
            keys.push((expr.clone(), binder.bind(expr)?));
        }
        // Rows windowed already (a window aggregate's), grouped by their window_start and
        // window_end: windowed again, each row's window the one it has (as Flink cascades window
        // aggregates). A tumbling window one window-end step long, on the window's last
        // millisecond, holds exactly the rows of one window.
        let mut window = window;
        let mut window_keys = None;
        if window.is_none() && !input.updating {
            if let Some((start, end, kind)) = super::join::windowed_columns(&input) {
                let key_of = |column: usize| keys.iter().position(|(_, typed)| matches!(typed.scalar, Scalar::Column(c) if c == column));
                let step = match kind {
                    WindowKind::Tumble { size_ms, offset_ms } => Some((size_ms, offset_ms)),
                    WindowKind::Hop { slide_ms, offset_ms, .. } => Some((slide_ms, offset_ms)),
                    WindowKind::Cumulate { step_ms, offset_ms, .. } => Some((step_ms, offset_ms)),
                    WindowKind::Session { .. } => None,
                };
                if let (Some(start_key), Some(end_key), Some((size_ms, offset_ms))) = (key_of(start), key_of(end), step) {
                    window = Some(WindowSpec {
                        kind: WindowKind::Tumble { size_ms, offset_ms },
                        time_column: end,
                        partition: Vec::new(),
                        time_offset_ms: -1,
                        processing_time: false,
                    });
                    window_keys = Some((start_key, end_key));
                }
            }
        }
        // Aggregate calls, taken out of the select list and HAVING.
        let mut items = select.projection.clone();
        let mut having = select.having.clone();
        let mut calls: Vec<(String, AggCall)> = Vec::new();
        let mut extract = |expr: &mut Expr| -> ControlFlow<SqlError> {
            let Expr::Function(function) = expr else { return ControlFlow::Continue(()) };
            let name = function.name.to_string();
            if function.over.is_some() {
                return ControlFlow::Break(unsupported(position_of(expr), "a window function (OVER) in a GROUP BY query"));
            }
            if !self.functions.is_aggregate(&name) {
                return ControlFlow::Continue(());
            }
            let text = expr.to_string();
            let index = match calls.iter().position(|(seen, _)| *seen == text) {
                Some(index) => index,
                None => match self.aggregate_call(expr, &binder) {
                    Ok(call) => {
                        calls.push((text, call));
                        calls.len() - 1
                    }
                    Err(error) => return ControlFlow::Break(error),
                },
            };
            *expr = Expr::Identifier(Ident::new(format!("$agg{index}")));
            ControlFlow::Continue(())
        };
        if let ControlFlow::Break(error) = visit_expressions_mut(&mut items, &mut extract) {
            return Err(error);
        }
        if let Some(having) = &mut having {
            if let ControlFlow::Break(error) = visit_expressions_mut(having, &mut extract) {
                return Err(error);
            }
        }
        // Grouped expressions that are not plain columns (a nested field such as `bid.auction`
        // included) are read as the key's column; a select item that is one keeps its own name.
        let computed_key = |expr: &Expr| keys.iter().position(|(key, typed)| key == expr && !matches!(typed.scalar, Scalar::Column(_)));
        for (index, item) in items.iter_mut().enumerate() {
            if let SelectItem::UnnamedExpr(expr) = item {
                if computed_key(expr).is_some() {
                    let alias = Ident::new(item_name(expr, index));
                    *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias };
                }
            }
        }
        let mut replace_keys = |expr: &mut Expr| -> ControlFlow<SqlError> {
            if let Some(index) = computed_key(expr) {
                *expr = Expr::Identifier(Ident::new(format!("$key{index}")));
            }
            ControlFlow::Continue(())
        };
        let _ = visit_expressions_mut(&mut items, &mut replace_keys);
        if let Some(having) = &mut having {
            let _ = visit_expressions_mut(having, &mut replace_keys);
        }
        // The aggregate's row: keys, the window's columns, the aggregates.
        let mut scope = Scope::default();
        for (i, (expr, typed)) in keys.iter().enumerate() {
            let (qualifier, name) = match (&typed.scalar, expr) {
                (Scalar::Column(index), _) => {
                    (input_scope.columns[*index].qualifier.clone(), input_scope.columns[*index].field.name.clone())
                }
                _ => (None, format!("$key{i}")),
            };
            scope.columns.push(ScopeColumn {
                qualifier,
                field: Field { name, data_type: typed.data_type.clone(), nullable: typed.nullable, event_time: false, proc_time: false },
                hidden: false,
            });
        }
        if window_keys.is_some() {
            // The windows are the grouped columns; the aggregate's own are hidden.
            for mut column in window_columns(None) {
                column.field.name = format!("${}", column.field.name);
                column.hidden = true;
                scope.columns.push(column);
            }
        } else if let Some(window) = &window {
            // A processing-time window's results carry no event time.
            let processing_time = window.processing_time;
            scope.columns.extend(window_columns(window_qualifier.as_deref()).into_iter().map(|mut column| {
                column.field.event_time &= !processing_time;
                column
            }));
        }
        for (i, (_, call)) in calls.iter().enumerate() {
            scope.columns.push(ScopeColumn {
                qualifier: None,
                field: Field {
                    name: format!("$agg{i}"),
                    data_type: call.result_type.clone(),
                    nullable: true,
                    event_time: false,
                    proc_time: false,
                },
                hidden: true,
            });
        }
        let aggregate_schema = scope.schema();
        let key_scalars: Vec<Scalar> = keys.into_iter().map(|(_, typed)| typed.scalar).collect();
        let aggregates: Vec<AggCall> = calls.into_iter().map(|(_, call)| call).collect();
        let aggregate = match window {
            Some(window) => Plan {
                node: PlanNode::WindowAggregate {
                    // Partial aggregates of slices give the windows' rows only when the windows
                    // slice, every aggregate merges whatever the order of its partials, and the
                    // input is inserts; rows are windowed by the clock of the global phase.
                    two_phase: self.agg_phases != AggPhaseStrategy::OnePhase
                        && window.kind.slices().is_some()
                        && !window.processing_time
                        && !input.updating
                        && aggregates.iter().all(AggCall::merges_in_any_order),
                    input: Box::new(input),
                    window,
                    keys: key_scalars,
                    aggregates,
                    window_keys,
                },
                schema: aggregate_schema,
                updating: false,
            },
            None => Plan {
                node: PlanNode::GroupAggregate {
                    aggregates: aggregates.into_iter().map(|call| AggCall { retracts: input.updating, ..call }).collect(),
                    // Partial accumulators merge exactly only over inserts.
                    two_phase: self.agg_phases == AggPhaseStrategy::TwoPhase && !input.updating,
                    input: Box::new(input),
                    keys: key_scalars,
                },
                schema: aggregate_schema,
                updating: true,
            },
        };
        // The select list and HAVING over the aggregate's row.
        let explain_ungrouped = |error: SqlError| -> SqlError {
            if let Some(name) =
                error.message.strip_prefix("no column named ").map(|rest| rest.split(';').next().unwrap_or(rest).to_string())
            {
                if input_scope.columns.iter().any(|column| column.field.name.eq_ignore_ascii_case(name.rsplit('.').next().unwrap_or(&name)))
                {
                    return SqlError::at(error.at, format!("{name} is neither grouped nor aggregated: add it to GROUP BY or aggregate it"));
                }
            }
            error
        };
        let (projection, fields) = self.bind_items(&items, &scope).map_err(explain_ungrouped)?;
        let filter = match &having {
            Some(having) => Some(Binder::new(&scope, self.functions).bind_condition(having, "HAVING").map_err(explain_ungrouped)?.scalar),
            None => None,
        };
        let identity = filter.is_none()
            && projection.len() == aggregate.schema.fields.len()
            && projection.iter().enumerate().all(|(i, bound)| matches!(bound.scalar, Scalar::Column(c) if c == i))
            && fields.iter().zip(&aggregate.schema.fields).all(|(a, b)| a.name == b.name);
        if identity {
            return Ok(aggregate);
        }
        let updating = aggregate.updating;
        Ok(Plan {
            node: PlanNode::Calc {
                input: Box::new(aggregate),
                projection: projection.into_iter().map(|bound| bound.scalar).collect(),
                filter,
                text: calc_text_of(&items, having.as_ref()),
            },
            schema: Schema::new(fields),
            updating,
        })
    }

    fn aggregate_call(&self, expr: &Expr, binder: &Binder<'_>) -> Result<AggCall, SqlError> {
        let at = position_of(expr);
        let Expr::Function(function) = expr else { unreachable!("called on functions") };
        let name = function.name.to_string().to_uppercase();
        let (arguments, distinct) = match &function.args {
            FunctionArguments::List(list) => {
                if list.clauses.iter().any(|clause| !matches!(clause, FunctionArgumentClause::IgnoreOrRespectNulls(_))) {
                    return Err(unsupported(at, &format!("{name} with ORDER BY or other clauses")));
                }
                (list.args.clone(), matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct)))
            }
            FunctionArguments::None => (Vec::new(), false),
            FunctionArguments::Subquery(_) => return Err(SqlError::at(at, "a subquery is not an aggregate's argument")),
        };
        let star = matches!(arguments.as_slice(), [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]);
        let user = self.functions.aggregate(&name).cloned();
        let kind = match &user {
            Some(_) => AggKind::User,
            None => AggKind::of(&name, star).ok_or_else(|| unsupported(at, &format!("aggregate {name}")))?,
        };
        let exprs: Vec<&Expr> = arguments
            .iter()
            .filter_map(|argument| match argument {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Some(expr),
                _ => None,
            })
            .collect();
        let nested = exprs.iter().any(|expr| expr.to_string().contains("$agg"));
        if nested {
            return Err(SqlError::at(at, "aggregate calls cannot be nested"));
        }
        let (argument, input_type) = match (kind, exprs.as_slice()) {
            (AggKind::CountStar, []) => (None, SqlType::BigInt),
            (AggKind::ListAgg, [value] | [value, _]) | (_, [value]) => {
                let bound = binder.bind(value)?;
                (Some(bound.scalar), bound.data_type)
            }
            _ => return Err(SqlError::at(at, format!("{name} takes one argument"))),
        };
        let separator = match (kind, exprs.get(1)) {
            (AggKind::ListAgg, Some(Expr::Value(value))) => match &value.value {
                sqlparser::ast::Value::SingleQuotedString(text) => text.clone(),
                other => return Err(SqlError::at(at, format!("LISTAGG's separator is a string literal, got {other}"))),
            },
            _ => ",".to_string(),
        };
        let filter = match &function.filter {
            Some(condition) => Some(binder.bind_condition(condition, "FILTER (WHERE ...)")?.scalar),
            None => None,
        };
        let result_type = match &user {
            Some(user) => user
                .0
                .result_type(&input_type)
                .map_err(|message| SqlError::at(at, format!("{name}: {message} (signature: {})", user.0.signature())))?,
            None => kind.result_type(&input_type, at)?,
        };
        Ok(AggCall { kind, argument, separator, distinct, filter, result_type, text: expr.to_string(), retracts: false, user })
    }
}

/// `data`'s rows with the window columns of `window` appended, as a window table function's.
fn windowed_relation(data_relation: Relation, window: WindowSpec, qualifier: Option<&str>) -> Relation {
    let time_column = window.time_column;
    let mut scope = data_relation.scope.clone();
    let qualifier = qualifier.map(str::to_string).or_else(|| scope.columns.first().and_then(|column| column.qualifier.clone()));
    if let Some(qualifier) = &qualifier {
        for column in &mut scope.columns {
            column.qualifier = Some(qualifier.clone());
        }
    }
    // The original time column stays a plain timestamp: window_time is the rows' event time
    // (of event-time windows; processing-time windows' columns are plain timestamps).
    scope.columns[time_column].field.event_time = false;
    scope.columns[time_column].field.proc_time = false;
    let processing_time = window.processing_time;
    scope.columns.extend(window_columns(qualifier.as_deref()).into_iter().map(|mut column| {
        column.field.event_time &= !processing_time;
        column
    }));
    let plan = Plan { node: PlanNode::WindowTvf { input: Box::new(data_relation.plan), window }, schema: scope.schema(), updating: false };
    Relation { plan, scope }
}

fn has_aggregate_items(select: &Select, functions: &FunctionRegistry) -> bool {
    let mut items = select.projection.clone();
    let mut found = false;
    let _ = visit_expressions_mut(&mut items, |expr| {
        if let Expr::Function(function) = expr {
            if functions.is_aggregate(&function.name.to_string()) && function.over.is_none() {
                found = true;
            }
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

fn calc_text(select: &Select) -> String {
    calc_text_of(&select.projection, select.selection.as_ref())
}

fn calc_text_of(items: &[SelectItem], filter: Option<&Expr>) -> String {
    let select = items.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    match filter {
        Some(filter) => format!("select=[{select}], where={filter}"),
        None => format!("select=[{select}]"),
    }
}

fn position_of_factor(factor: &TableFactor) -> Option<Position> {
    use sqlparser::ast::Spanned;
    Position::of(factor.span().start)
}

/// The plan with its columns renamed (`AS t (a, b)`, `CREATE VIEW v (a, b)`); no names keeps it.
fn rename_columns(mut plan: Plan, names: &[Ident]) -> Result<Plan, SqlError> {
    if names.is_empty() {
        return Ok(plan);
    }
    if names.len() != plan.schema.fields.len() {
        return Err(SqlError::at(ident_at(&names[0]), format!("{} column names for {} columns", names.len(), plan.schema.fields.len())));
    }
    for (field, name) in plan.schema.fields.iter_mut().zip(names) {
        field.name = name.value.clone();
    }
    Ok(plan)
}
