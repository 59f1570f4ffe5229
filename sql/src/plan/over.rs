//! Planning window functions in a select list (`... OVER (PARTITION BY ... ORDER BY ...)`):
//!
//! - `ROW_NUMBER()`: a `Rank` node, whose limit comes from the enclosing query's filter on the
//!   row number (`WHERE rn <= 3`, `rn < 4`, `rn = 1`), as Flink plans Top-N and deduplication;
//!   partitioned by window_start and window_end of a windowed input, it is a window Top-N;
//! - aggregates: an `Over` node, ordered by an event-time column, over `ROWS` or `RANGE`
//!   frames of preceding rows.
//!
//! Each window function call in the select list is read as a column the node appends.

use std::ops::ControlFlow;

use sqlparser::ast::{
    visit_expressions_mut, Expr, Ident, NamedWindowDefinition, NamedWindowExpr, OrderBySort, SelectItem, WindowFrameBound,
    WindowFrameUnits, WindowSpec, WindowType,
};

use super::join::windowed_columns;
use super::{OverFrame, Plan, PlanNode};
use crate::aggregate::AggCall;
use crate::error::SqlError;
use crate::expr::{interval_ms, position_of, Binder, Compare, Scalar, Scope, ScopeColumn};
use crate::types::{Field, SqlType};
use crate::value::Value;

/// The window named `name` by the select's `WINDOW name AS (...)` clause (one may name another).
fn named_window(name: &Ident, named: &[NamedWindowDefinition], at: Option<crate::error::Position>) -> Result<WindowSpec, SqlError> {
    let mut name = name;
    // A chain of names is at most as long as the clause; a longer one goes round.
    for _ in 0..=named.len() {
        let Some(NamedWindowDefinition(_, expr)) =
            named.iter().find(|NamedWindowDefinition(defined, _)| defined.value.eq_ignore_ascii_case(&name.value))
        else {
            let known: Vec<String> = named.iter().map(|NamedWindowDefinition(defined, _)| defined.value.clone()).collect();
            let hint = crate::check::did_you_mean(&name.value, known.iter().map(String::as_str))
                .map(|nearest| format!("; did you mean {nearest}?"))
                .unwrap_or_default();
            return Err(SqlError::at(at, format!("no window named {name} in this select's WINDOW clause{hint}")));
        };
        match expr {
            NamedWindowExpr::WindowSpec(spec) => return Ok(spec.clone()),
            NamedWindowExpr::NamedWindow(next) => name = next,
        }
    }
    Err(SqlError::at(at, format!("window {name} is defined by itself in the WINDOW clause")))
}

/// The select list's window function calls, taken out (each replaced by `$over{i}`), with the
/// spec they share; `OVER w` reads `w` from the select's `WINDOW` clause, `named`.
pub(super) fn take_window_calls(
    items: &mut Vec<SelectItem>,
    named: &[NamedWindowDefinition],
) -> Result<Option<(WindowSpec, Vec<Expr>)>, SqlError> {
    let mut calls: Vec<Expr> = Vec::new();
    let mut spec: Option<WindowSpec> = None;
    let flow = visit_expressions_mut(items, |expr| {
        let at = position_of(expr);
        let Expr::Function(function) = expr else { return ControlFlow::Continue(()) };
        let Some(over) = &function.over else { return ControlFlow::Continue(()) };
        let this = match over {
            WindowType::WindowSpec(this) => this.clone(),
            WindowType::NamedWindow(name) => match named_window(name, named, at) {
                Ok(spec) => spec,
                Err(error) => return ControlFlow::Break(error),
            },
        };
        match &spec {
            Some(seen) if *seen != this => {
                return ControlFlow::Break(SqlError::at(
                    at,
                    "every window function of a select list has the same OVER (...): Tethys, as Flink, computes one window per query",
                ))
            }
            _ => spec = Some(this),
        }
        calls.push(expr.clone());
        *expr = Expr::Identifier(Ident::new(format!("$over{}", calls.len() - 1)));
        ControlFlow::Continue(())
    });
    if let ControlFlow::Break(error) = flow {
        return Err(error);
    }
    Ok(spec.map(|spec| (spec, calls)))
}

/// The node computing `calls` over `input` (with `scope`), and the scope of its rows (the
/// input's columns, then one per call).
pub(super) fn plan_window_calls(
    input: Plan,
    scope: &Scope,
    spec: &WindowSpec,
    calls: &[Expr],
    binder: &Binder<'_>,
    aggregate_call: impl Fn(&Expr) -> Result<AggCall, SqlError>,
) -> Result<(Plan, Scope), SqlError> {
    let first = &calls[0];
    let at = position_of(first);
    let partition = spec.partition_by.iter().map(|expr| binder.bind(expr).map(|bound| bound.scalar)).collect::<Result<Vec<_>, _>>()?;
    let mut order = Vec::new();
    for item in &spec.order_by {
        let descending = matches!(item.options.sort, Some(OrderBySort::Desc));
        order.push((binder.bind(&item.expr)?.scalar, descending));
    }
    let is_row_number = |expr: &Expr| matches!(expr, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("ROW_NUMBER"));
    let mut out_scope = scope.clone();
    for column in &mut out_scope.columns {
        column.field.event_time = false;
    }
    let plan = if calls.iter().any(is_row_number) {
        if calls.len() > 1 {
            return Err(SqlError::at(at, "ROW_NUMBER() is the only window function of its select list"));
        }
        if order.is_empty() {
            return Err(SqlError::at(at, "ROW_NUMBER() OVER needs ORDER BY: which rows come first"));
        }
        let window_end = windowed_columns(&input).and_then(|(start, end, _)| {
            let has = |column: usize| partition.iter().any(|scalar| matches!(scalar, Scalar::Column(c) if *c == column));
            (has(start) && has(end)).then_some(end)
        });
        // Over the stream, an input with updates keeps every row of a partition (Flink's
        // retractable Top-N); a window Top-N ranks a window once, so its rows must be final.
        if input.updating && window_end.is_some() {
            return Err(SqlError::at(at, "a window Top-N takes an input without updates (ranked once, when its window ends)"));
        }
        out_scope.columns.push(hidden_column("$over0", SqlType::BigInt, false));
        let mut schema = out_scope.schema();
        if window_end.is_some() {
            // A window Top-N keeps the window's time columns as they were.
            schema.fields.iter_mut().zip(&input.schema.fields).for_each(|(field, input)| field.event_time = input.event_time);
        }
        let updating = window_end.is_none();
        Plan {
            node: PlanNode::Rank { input: Box::new(input), partition, order, limit: None, window_end, numbered: true },
            schema,
            updating,
        }
    } else {
        let time_column = match order.as_slice() {
            [(Scalar::Column(column), false)] if scope.columns[*column].field.event_time => *column,
            _ => {
                return Err(SqlError::at(
                    at,
                    "an OVER aggregate is ordered by the input's event-time column, ascending: OVER (PARTITION BY k ORDER BY ts ...)",
                ))
            }
        };
        if input.updating {
            return Err(SqlError::at(at, "an OVER aggregate takes an append-only input"));
        }
        let frame = frame_of(spec)?;
        let aggregates = calls.iter().map(&aggregate_call).collect::<Result<Vec<_>, _>>()?;
        for (i, call) in aggregates.iter().enumerate() {
            out_scope.columns.push(hidden_column(&format!("$over{i}"), call.result_type.clone(), true));
        }
        // The rows keep their event time: an OVER aggregate emits in event-time order.
        let mut schema = out_scope.schema();
        schema.fields[time_column].event_time = true;
        out_scope.columns[time_column].field.event_time = true;
        Plan { node: PlanNode::Over { input: Box::new(input), partition, time_column, frame, aggregates }, schema, updating: false }
    };
    Ok((plan, out_scope))
}

fn hidden_column(name: &str, data_type: SqlType, nullable: bool) -> ScopeColumn {
    ScopeColumn {
        qualifier: None,
        field: Field { name: name.into(), data_type, nullable, event_time: false, proc_time: false },
        hidden: true,
    }
}

fn frame_of(spec: &WindowSpec) -> Result<OverFrame, SqlError> {
    let Some(frame) = &spec.window_frame else {
        // SQL's default with ORDER BY: RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW.
        return Ok(OverFrame::Range(None));
    };
    if !matches!(frame.end_bound, None | Some(WindowFrameBound::CurrentRow)) {
        return Err(SqlError::at(None, "an OVER frame ends at CURRENT ROW on a stream (FOLLOWING rows have not come yet)"));
    }
    let preceding = match &frame.start_bound {
        WindowFrameBound::Preceding(None) => None,
        WindowFrameBound::Preceding(Some(bound)) => Some(bound.as_ref()),
        WindowFrameBound::CurrentRow => {
            return Ok(if frame.units == WindowFrameUnits::Rows { OverFrame::Rows(Some(0)) } else { OverFrame::Range(Some(0)) })
        }
        WindowFrameBound::Following(_) => return Err(SqlError::at(None, "an OVER frame starts at or before CURRENT ROW")),
    };
    match frame.units {
        WindowFrameUnits::Rows => match preceding {
            None => Ok(OverFrame::Rows(None)),
            Some(Expr::Value(value)) => match &value.value {
                sqlparser::ast::Value::Number(text, _) => text
                    .parse()
                    .map(|n| OverFrame::Rows(Some(n)))
                    .map_err(|_| SqlError::at(None, format!("ROWS {text} PRECEDING: not a count"))),
                other => Err(SqlError::at(None, format!("ROWS {other} PRECEDING: not a count"))),
            },
            Some(other) => Err(SqlError::at(position_of(other), "ROWS n PRECEDING takes a number")),
        },
        WindowFrameUnits::Range => match preceding {
            None => Ok(OverFrame::Range(None)),
            Some(Expr::Interval(interval)) => Ok(OverFrame::Range(Some(interval_ms(interval, None)?))),
            Some(other) => Err(SqlError::at(position_of(other), "RANGE ... PRECEDING takes an INTERVAL on a stream")),
        },
        WindowFrameUnits::Groups => Err(SqlError::at(None, "GROUPS frames are not supported")),
    }
}

/// The limit a filter sets on a rank's row number column `column` (`rn <= 3`, `rn < 4`,
/// `rn = 1`), and the filter without it.
pub(super) fn take_rank_limit(filter: Option<Scalar>, column: usize) -> (Option<i64>, Option<Scalar>) {
    let Some(filter) = filter else { return (None, None) };
    let mut limit = None;
    let mut rest = Vec::new();
    for conjunct in filter.conjuncts() {
        let found = match &conjunct {
            Scalar::Compare(compare, a, b) => match (a.as_ref(), b.as_ref()) {
                (Scalar::Column(c), Scalar::Literal(Value::Int(n))) if *c == column => match compare {
                    Compare::LtEq => Some(*n),
                    Compare::Lt => Some(n - 1),
                    Compare::Eq if *n == 1 => Some(1),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        };
        match found {
            Some(n) => limit = Some(limit.map_or(n, |l: i64| l.min(n))),
            None => rest.push(conjunct),
        }
    }
    (limit, Scalar::all_of(rest))
}

/// The row number column of a rank without a limit under `plan` (through projections that
/// keep it), and a way to set the limit.
pub(super) fn open_rank_column(plan: &Plan) -> Option<usize> {
    match &plan.node {
        PlanNode::Rank { limit: None, .. } => Some(plan.schema.fields.len() - 1),
        PlanNode::Calc { input, projection, filter: None, .. } => {
            let column = open_rank_column(input)?;
            projection.iter().position(|scalar| matches!(scalar, Scalar::Column(c) if *c == column))
        }
        _ => None,
    }
}

/// Sets the limit of the rank without one under `plan`.
pub(super) fn set_rank_limit(plan: &mut Plan, new_limit: i64) {
    match &mut plan.node {
        PlanNode::Rank { limit, .. } => *limit = Some(new_limit),
        PlanNode::Calc { input, .. } => set_rank_limit(input, new_limit),
        _ => {}
    }
}
