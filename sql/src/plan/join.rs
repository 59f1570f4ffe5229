//! Planning `a [LEFT|RIGHT|FULL] JOIN b ON ...`: the condition split into equal keys (a left
//! expression `=` a right one) and the rest; the join's strategy chosen as Flink chooses it:
//!
//! - both inputs windowed by the same kind of window function, joined on their window_start and
//!   window_end: a **window join**, emitting a window's pairs when the watermark passes its end;
//! - both inputs append-only, with their event times bounded against each other (`l.ts BETWEEN
//!   r.ts - INTERVAL ... AND r.ts + INTERVAL ...`, or `>=`/`<` pairs): an **interval join**,
//!   dropping rows once the watermark passes their bound (inner joins);
//! - otherwise a **regular join**: every row kept (or for the state TTL), outer rows retracted
//!   when a partner comes; its output is a changelog unless it is an inner join of
//!   append-only inputs.

use crate::error::{Position, SqlError};
use crate::expr::{Arith, Compare, Numeric, Scalar, Scope};
use crate::plan::{JoinKind, JoinStrategy, Plan, PlanNode};
use crate::types::Schema;
use crate::value::Value;

/// A side's event time plus a constant: `ts`, `ts + INTERVAL ...`, `ts - INTERVAL ...`.
fn time_term(scalar: &Scalar) -> Option<(usize, i64)> {
    match scalar {
        Scalar::Column(index) => Some((*index, 0)),
        Scalar::Arith(op @ (Arith::Add | Arith::Sub), Numeric::TimePlusInterval, inner, offset) => {
            match (inner.as_ref(), offset.as_ref()) {
                (Scalar::Column(index), Scalar::Literal(Value::Interval(ms))) => Some((*index, if *op == Arith::Add { *ms } else { -ms })),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The bounds of `right time - left time` a conjunct sets, if it compares the two event times.
fn time_bound(conjunct: &Scalar, left_time: usize, right_time: usize) -> Option<(Option<i64>, Option<i64>)> {
    let Scalar::Compare(compare, a, b) = conjunct else { return None };
    let ((a_column, a_offset), (b_column, b_offset)) = (time_term(a)?, time_term(b)?);
    // Written as `left op right`: (lts + lo) op (rts + ro).
    let (compare, lo, ro) = if a_column == left_time && b_column == right_time {
        (*compare, a_offset, b_offset)
    } else if a_column == right_time && b_column == left_time {
        let flipped = match compare {
            Compare::Lt => Compare::Gt,
            Compare::LtEq => Compare::GtEq,
            Compare::Gt => Compare::Lt,
            Compare::GtEq => Compare::LtEq,
            other => *other,
        };
        (flipped, b_offset, a_offset)
    } else {
        return None;
    };
    // With d = rts - lts: lts + lo op rts + ro  <=>  lo - ro op d (as seen from d: flipped).
    let c = lo - ro;
    match compare {
        Compare::GtEq => Some((None, Some(c))),
        Compare::Gt => Some((None, Some(c - 1))),
        Compare::LtEq => Some((Some(c), None)),
        Compare::Lt => Some((Some(c + 1), None)),
        Compare::Eq => Some((Some(c), Some(c))),
        Compare::NotEq => None,
    }
}

/// The window_start and window_end columns of a windowed plan (a window function's rows, or a
/// projection or filter of them keeping both columns) and its windows.
pub(super) fn windowed_columns(plan: &Plan) -> Option<(usize, usize, crate::plan::WindowKind)> {
    match &plan.node {
        PlanNode::WindowTvf { window, .. } => {
            let width = plan.schema.fields.len();
            Some((width - 3, width - 2, window.kind))
        }
        // Rows windowed again keep the windows they had.
        PlanNode::WindowAggregate { window_keys: Some((start, end)), input, .. } => Some((*start, *end, windowed_columns(input)?.2)),
        PlanNode::WindowAggregate { keys, window, .. } => Some((keys.len(), keys.len() + 1, window.kind)),
        PlanNode::Calc { input, projection, .. } => {
            let (start, end, kind) = windowed_columns(input)?;
            let find = |column: usize| projection.iter().position(|scalar| matches!(scalar, Scalar::Column(c) if *c == column));
            Some((find(start)?, find(end)?, kind))
        }
        _ => None,
    }
}

/// Plans a join of `left` and `right` (their scopes side by side) on `condition`, bound over
/// both scopes.
pub(super) fn plan_join(
    left: Plan,
    left_scope: &Scope,
    right: Plan,
    kind: JoinKind,
    condition: Scalar,
    ttl_ms: Option<i64>,
    at: Option<Position>,
) -> Result<Plan, SqlError> {
    let width = left.schema.fields.len();
    let side_of = |scalar: &Scalar| {
        let mut columns = Vec::new();
        scalar.columns(&mut columns);
        match (columns.iter().all(|&c| c < width), columns.iter().all(|&c| c >= width), columns.is_empty()) {
            (_, _, true) => None,
            (true, _, _) => Some(true),
            (_, true, _) => Some(false),
            _ => None,
        }
    };
    let (mut left_keys, mut right_keys, mut residual) = (Vec::new(), Vec::new(), Vec::new());
    for conjunct in condition.conjuncts() {
        if let Scalar::Compare(Compare::Eq, a, b) = &conjunct {
            match (side_of(a), side_of(b)) {
                (Some(true), Some(false)) => {
                    left_keys.push((**a).clone());
                    right_keys.push(b.map_columns(&|c| c - width));
                    continue;
                }
                (Some(false), Some(true)) => {
                    left_keys.push((**b).clone());
                    right_keys.push(a.map_columns(&|c| c - width));
                    continue;
                }
                _ => {}
            }
        }
        residual.push(conjunct);
    }
    if left_keys.is_empty() {
        return Err(SqlError::at(
            at,
            "a join of streams needs an equality of a left and a right expression in ON (a.key = b.key): without one every row would meet every other",
        ));
    }
    let strategy = match (windowed_columns(&left), windowed_columns(&right)) {
        (Some((left_start, left_end, left_kind)), Some((right_start, right_end, right_kind))) => {
            let pairs: Vec<(usize, usize)> = left_keys
                .iter()
                .zip(&right_keys)
                .filter_map(|(l, r)| match (l, r) {
                    (Scalar::Column(l), Scalar::Column(r)) => Some((*l, *r)),
                    _ => None,
                })
                .collect();
            if !(pairs.contains(&(left_start, right_start)) && pairs.contains(&(left_end, right_end))) {
                return Err(SqlError::at(
                    at,
                    "a join of two window functions joins on both window_start and window_end: ON l.window_start = r.window_start AND l.window_end = r.window_end AND ...",
                ));
            }
            if left_kind != right_kind {
                return Err(SqlError::at(at, "a window join needs the same window function on both sides"));
            }
            JoinStrategy::Window { left_end, right_end }
        }
        (None, None) => {
            let left_time = left_scope.columns.iter().position(|column| column.field.event_time);
            let right_time = right.schema.event_time();
            let mut bounds = (None, None);
            if let (Some(left_time), Some(right_time), false, false) = (left_time, right_time, left.updating, right.updating) {
                for conjunct in &residual {
                    if let Some((lower, upper)) = time_bound(conjunct, left_time, right_time + width) {
                        bounds.0 = match (bounds.0, lower) {
                            (Some(a), Some(b)) => Some(i64::max(a, b)),
                            (a, b) => a.or(b),
                        };
                        bounds.1 = match (bounds.1, upper) {
                            (Some(a), Some(b)) => Some(i64::min(a, b)),
                            (a, b) => a.or(b),
                        };
                    }
                }
            }
            match (bounds, left_time, right_time) {
                ((Some(lower_ms), Some(upper_ms)), Some(left_time), Some(right_time)) => {
                    if lower_ms > upper_ms {
                        return Err(SqlError::at(
                            at,
                            format!("the join's time bounds are empty: right minus left time in [{lower_ms}, {upper_ms}] ms"),
                        ));
                    }
                    JoinStrategy::Interval { left_time, right_time, lower_ms, upper_ms }
                }
                _ => JoinStrategy::Regular { ttl_ms },
            }
        }
        // One side windowed: the windows are plain columns to the other side.
        _ => JoinStrategy::Regular { ttl_ms },
    };
    if matches!(strategy, JoinStrategy::Window { .. }) && (left.updating || right.updating) {
        return Err(SqlError::at(at, "a window join takes append-only inputs"));
    }
    // An outer interval join emits a row without partner once the watermark is past it, so its
    // time columns are no longer event time (a window on them would drop those rows as late).
    let keeps_time = match strategy {
        JoinStrategy::Regular { .. } => false,
        JoinStrategy::Interval { .. } => kind == JoinKind::Inner,
        JoinStrategy::Window { .. } => true,
    };
    let mut fields = Vec::new();
    for (field, nullable) in
        left.schema.fields.iter().map(|f| (f, kind.keeps_right())).chain(right.schema.fields.iter().map(|f| (f, kind.keeps_left())))
    {
        let mut field = field.clone();
        field.nullable |= nullable;
        field.event_time &= keeps_time;
        fields.push(field);
    }
    let updating = match strategy {
        JoinStrategy::Regular { .. } => kind != JoinKind::Inner || left.updating || right.updating,
        _ => false,
    };
    Ok(Plan {
        node: PlanNode::Join {
            left: Box::new(left),
            right: Box::new(right),
            kind,
            left_keys,
            right_keys,
            residual: Scalar::all_of(residual),
            strategy,
        },
        schema: Schema::new(fields),
        updating,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plus(column: usize, ms: i64) -> Scalar {
        Scalar::Arith(
            Arith::Add,
            Numeric::TimePlusInterval,
            Box::new(Scalar::Column(column)),
            Box::new(Scalar::Literal(Value::Interval(ms))),
        )
    }

    #[test]
    fn time_bounds_are_read_from_either_side() {
        // l.ts >= r.ts - 5: r.ts - l.ts <= 5.
        let minus_five = plus(1, -5);
        assert_eq!(
            time_bound(&Scalar::Compare(Compare::GtEq, Box::new(Scalar::Column(0)), Box::new(minus_five)), 0, 1),
            Some((None, Some(5)))
        );
        // r.ts < l.ts + 10: r.ts - l.ts < 10, so at most 9.
        assert_eq!(
            time_bound(&Scalar::Compare(Compare::Lt, Box::new(Scalar::Column(1)), Box::new(plus(0, 10))), 0, 1),
            Some((None, Some(9)))
        );
        // l.ts <= r.ts: r.ts - l.ts >= 0.
        assert_eq!(
            time_bound(&Scalar::Compare(Compare::LtEq, Box::new(Scalar::Column(0)), Box::new(Scalar::Column(1))), 0, 1),
            Some((Some(0), None))
        );
        assert_eq!(time_bound(&Scalar::Compare(Compare::LtEq, Box::new(Scalar::Column(0)), Box::new(Scalar::Column(2))), 0, 1), None);
    }
}
