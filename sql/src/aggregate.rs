//! Aggregate functions of SQL (`COUNT`, `SUM`, `MIN`, `MAX`, `AVG`, `FIRST_VALUE`, `LAST_VALUE`,
//! `LISTAGG`, with `DISTINCT` and `FILTER (WHERE ...)`): their result types, and accumulators
//! that add rows and, for the changelog of a `GROUP BY`, take them back (retract).
//!
//! Accumulators are state values (they are checkpointed with the codec); a window aggregate's
//! are merged when session windows merge.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::error::{Position, SqlError};
use crate::expr::Scalar;
use crate::function::EvalContext;
use crate::types::SqlType;
use crate::value::{Decimal, Row, Value};

/// Which aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    /// `COUNT(*)`: rows.
    CountStar,
    /// `COUNT(x)`: rows where `x` is not NULL.
    Count,
    /// `SUM(x)`.
    Sum,
    /// `MIN(x)`.
    Min,
    /// `MAX(x)`.
    Max,
    /// `AVG(x)`.
    Avg,
    /// `FIRST_VALUE(x)`: the first non-NULL value.
    FirstValue,
    /// `LAST_VALUE(x)`: the last non-NULL value.
    LastValue,
    /// `LISTAGG(x[, separator])`: the values joined.
    ListAgg,
    /// A user-defined aggregate (the call's `user`).
    User,
}

/// An aggregate function written in Rust and registered with
/// [`FunctionRegistry::register_aggregate`](crate::function::FunctionRegistry::register_aggregate):
/// its accumulator is a [`Value`] (a `ROW` or `ARRAY` for several parts), so it is checkpointed
/// with the rows' codec.
pub trait UserAggregate: Send + Sync + 'static {
    /// Its name (calls match it without case).
    fn name(&self) -> &str;
    /// Its signature as shown to users (`RANGE_OF(x NUMERIC) -> NUMERIC`).
    fn signature(&self) -> &str;
    /// Its result type for an argument of type `input`, or why the argument does not fit.
    fn result_type(&self, input: &SqlType) -> Result<SqlType, String>;
    /// A new, empty accumulator.
    fn create(&self) -> Value;
    /// Adds a (non-NULL) value.
    fn add(&self, accumulator: &mut Value, value: &Value);
    /// Takes a value back (a GROUP BY over updates); `Err` if the aggregate cannot.
    fn retract(&self, _accumulator: &mut Value, _value: &Value) -> Result<(), String> {
        Err(format!("{} cannot take rows back, and its input has updates", self.name()))
    }
    /// Combines two accumulators (session windows merging).
    fn merge(&self, earlier: Value, later: Value) -> Value;
    /// The result for an accumulator.
    fn result(&self, accumulator: &Value) -> Value;
}

/// A user-defined aggregate, shared by the calls of it.
#[derive(Clone)]
pub struct UserAggregateRef(pub std::sync::Arc<dyn UserAggregate>);

impl std::fmt::Debug for UserAggregateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.signature())
    }
}

impl AggKind {
    /// The aggregate called `name`, if there is one.
    pub fn of(name: &str, star: bool) -> Option<AggKind> {
        Some(match name.to_uppercase().as_str() {
            "COUNT" if star => AggKind::CountStar,
            "COUNT" => AggKind::Count,
            "SUM" => AggKind::Sum,
            "MIN" => AggKind::Min,
            "MAX" => AggKind::Max,
            "AVG" => AggKind::Avg,
            "FIRST_VALUE" => AggKind::FirstValue,
            "LAST_VALUE" => AggKind::LastValue,
            "LISTAGG" => AggKind::ListAgg,
            _ => return None,
        })
    }

    /// Its result type for an argument of type `input`, as Flink types it.
    pub fn result_type(self, input: &SqlType, at: Option<Position>) -> Result<SqlType, SqlError> {
        let numeric = |name: &str| {
            if input.is_numeric() || *input == SqlType::Null {
                Ok(())
            } else {
                Err(SqlError::at(at, format!("{name} needs a number, got {input}")))
            }
        };
        Ok(match self {
            AggKind::CountStar | AggKind::Count => SqlType::BigInt,
            AggKind::Sum => {
                numeric("SUM")?;
                match input {
                    SqlType::Decimal { scale, .. } => SqlType::Decimal { precision: 38, scale: *scale },
                    t if t.is_integer() => SqlType::BigInt,
                    _ => SqlType::Double,
                }
            }
            AggKind::Avg => {
                numeric("AVG")?;
                match input {
                    SqlType::Decimal { scale, .. } => SqlType::Decimal { precision: 38, scale: (*scale).max(6) },
                    // As Flink: the average of integers is an integer of the same type.
                    t if t.is_integer() => t.clone(),
                    _ => SqlType::Double,
                }
            }
            AggKind::Min | AggKind::Max | AggKind::FirstValue | AggKind::LastValue => input.clone(),
            AggKind::ListAgg => SqlType::String,
            AggKind::User => return Err(SqlError::at(at, "a user-defined aggregate types itself")),
        })
    }

    /// Whether its accumulator can take rows back (what a `GROUP BY` over an updating input needs).
    pub fn retracts(self) -> bool {
        !matches!(self, AggKind::FirstValue | AggKind::LastValue)
    }
}

/// The aggregate functions a query may call, as users see them: name, signature and what it
/// computes (for completion and documentation). Each takes `DISTINCT` and `FILTER (WHERE ...)`.
pub const AGGREGATE_SIGNATURES: &[(&str, &str, &str)] = &[
    ("COUNT", "COUNT(* | [DISTINCT] x ANY) -> BIGINT", "The number of rows (COUNT(*)), or of rows where x is not NULL."),
    (
        "SUM",
        "SUM([DISTINCT] x NUMERIC) -> NUMERIC",
        "The sum of the non-NULL values of x (BIGINT for integers, DECIMAL(38, s) for decimals, DOUBLE otherwise); NULL when there are none.",
    ),
    ("MIN", "MIN(x ANY) -> ANY", "The smallest non-NULL value of x, of x's type."),
    ("MAX", "MAX(x ANY) -> ANY", "The largest non-NULL value of x, of x's type."),
    (
        "AVG",
        "AVG([DISTINCT] x NUMERIC) -> NUMERIC",
        "The average of the non-NULL values of x (an integer for integers, as Flink; DECIMAL(38, s) for decimals, DOUBLE otherwise).",
    ),
    (
        "FIRST_VALUE",
        "FIRST_VALUE(x ANY) -> ANY",
        "The first non-NULL value of x to arrive. It cannot take rows back: not over an updating input.",
    ),
    (
        "LAST_VALUE",
        "LAST_VALUE(x ANY) -> ANY",
        "The last non-NULL value of x to arrive. It cannot take rows back: not over an updating input.",
    ),
    (
        "LISTAGG",
        "LISTAGG([DISTINCT] x STRING [, separator STRING]) -> STRING",
        "The non-NULL values of x joined by separator (a string literal; ',' by default), in arrival order.",
    ),
];

/// One aggregate call of a query: `SUM(DISTINCT price) FILTER (WHERE price > 10)`, its argument
/// and filter bound to the aggregate's input row.
#[derive(Debug, Clone)]
pub struct AggCall {
    /// Which aggregate.
    pub kind: AggKind,
    /// Its argument (none for `COUNT(*)`).
    pub argument: Option<Scalar>,
    /// `LISTAGG`'s separator (default `,`).
    pub separator: String,
    /// Over distinct values only.
    pub distinct: bool,
    /// Only rows where this holds.
    pub filter: Option<Scalar>,
    /// The result type.
    pub result_type: SqlType,
    /// As written, for plans and errors.
    pub text: String,
    /// Its input has updates: its accumulator must take rows back (MIN and MAX then keep every
    /// value, not only the extreme).
    pub retracts: bool,
    /// The user-defined aggregate, for `AggKind::User`.
    pub user: Option<UserAggregateRef>,
}

/// An accumulator: what an aggregate keeps between rows.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum Acc {
    /// Rows counted.
    Count(i64),
    /// A sum (NULL before the first value) and how many values are in it, added minus
    /// retracted (AVG divides by it; a sum of none is NULL).
    Sum(Value, i64),
    /// Values with how many times each is in (DISTINCT; MIN and MAX over an input with
    /// updates), sorted by value: retracting the smallest finds the next.
    Values(#[rkyv(with = rkyv::with::AsVec)] BTreeMap<Sorted, i64>),
    /// The least or greatest value so far (MIN and MAX over inserts only); NULL before any.
    Extreme(Value),
    /// Values in arrival order (LISTAGG, FIRST_VALUE, LAST_VALUE).
    Ordered(Vec<Value>),
    /// A user-defined aggregate's accumulator.
    User(Value),
}

fn add_values(a: &Value, b: &Value, negate: bool) -> Value {
    match (a, b) {
        // A sum of no values (a partial or a session of NULLs only, merged) adds nothing.
        (a, Value::Null) => a.clone(),
        (Value::Null, b) if !negate => b.clone(),
        (Value::Null, b) => negate_value(b),
        (Value::Int(a), Value::Int(b)) => Value::Int(if negate { a.wrapping_sub(*b) } else { a.wrapping_add(*b) }),
        (Value::Float(_), _) | (_, Value::Float(_)) => {
            let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            Value::Float(if negate { a - b } else { a + b })
        }
        (a, b) => {
            let (a, b) = (a.as_decimal().unwrap_or(Decimal::from_i64(0)), b.as_decimal().unwrap_or(Decimal::from_i64(0)));
            let result = if negate { a.checked_sub(b) } else { a.checked_add(b) };
            result.map(Value::Decimal).unwrap_or(Value::Null)
        }
    }
}

fn negate_value(value: &Value) -> Value {
    match value {
        Value::Int(v) => Value::Int(v.wrapping_neg()),
        Value::Float(v) => Value::Float(-v),
        Value::Decimal(v) => Value::Decimal(Decimal::new(-v.unscaled(), v.scale)),
        other => other.clone(),
    }
}

/// A value ordered as a sort orders it (`Value::total_cmp`), as a key of sorted multisets.
#[derive(Debug, Clone, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Sorted(pub Value);

impl PartialEq for Sorted {
    fn eq(&self, other: &Sorted) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}

impl Eq for Sorted {}

impl PartialOrd for Sorted {
    fn partial_cmp(&self, other: &Sorted) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Sorted {
    fn cmp(&self, other: &Sorted) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn multiset_add(values: &mut BTreeMap<Sorted, i64>, value: Value, delta: i64) {
    let key = Sorted(value);
    match values.get_mut(&key) {
        Some(count) => {
            *count += delta;
            if *count <= 0 {
                values.remove(&key);
            }
        }
        None if delta > 0 => {
            values.insert(key, delta);
        }
        None => {}
    }
}

impl AggCall {
    /// A new, empty accumulator.
    pub fn create(&self) -> Acc {
        if let Some(user) = &self.user {
            return Acc::User(user.0.create());
        }
        match (self.kind, self.distinct) {
            (AggKind::User, _) => unreachable!("a user aggregate's call has it"),
            (_, true) => Acc::Values(BTreeMap::new()),
            (AggKind::Min | AggKind::Max, false) if self.retracts => Acc::Values(BTreeMap::new()),
            (AggKind::Min | AggKind::Max, false) => Acc::Extreme(Value::Null),
            (AggKind::CountStar | AggKind::Count, false) => Acc::Count(0),
            (AggKind::Sum | AggKind::Avg, false) => Acc::Sum(Value::Null, 0),
            (AggKind::FirstValue | AggKind::LastValue | AggKind::ListAgg, false) => Acc::Ordered(Vec::new()),
        }
    }

    /// Adds `row` to (or, when `retract`, takes it back from) the accumulator.
    pub fn accumulate(&self, acc: &mut Acc, row: &[Value], retract: bool, context: &EvalContext) -> Result<(), String> {
        if let Some(filter) = &self.filter {
            if filter.test(row, context)? != Some(true) {
                return Ok(());
            }
        }
        let value = match &self.argument {
            Some(argument) => argument.eval(row, context)?,
            None => Value::Bool(true),
        };
        if value.is_null() {
            return Ok(());
        }
        let delta = if retract { -1 } else { 1 };
        match acc {
            Acc::Count(count) => *count += delta,
            Acc::Sum(sum, count) => {
                *sum = add_values(sum, &value, retract);
                *count += delta;
            }
            Acc::Values(values) => multiset_add(values, value, delta),
            Acc::User(accumulator) => {
                let user = &self.user.as_ref().expect("a user aggregate's call has it").0;
                if retract {
                    user.retract(accumulator, &value)?;
                } else {
                    user.add(accumulator, &value);
                }
            }
            Acc::Extreme(extreme) => {
                debug_assert!(!retract, "an extreme is kept over inserts only");
                let better = match self.kind {
                    AggKind::Min => value.total_cmp(extreme).is_lt(),
                    _ => value.total_cmp(extreme).is_gt(),
                };
                if extreme.is_null() || better {
                    *extreme = value;
                }
            }
            Acc::Ordered(values) => {
                if retract {
                    if let Some(index) = values.iter().rposition(|candidate| *candidate == value) {
                        values.remove(index);
                    }
                } else if self.kind != AggKind::FirstValue || values.is_empty() {
                    if self.kind == AggKind::LastValue {
                        values.clear();
                    }
                    values.push(value);
                }
            }
        }
        Ok(())
    }

    /// Whether accumulating rows in parts and merging the parts' accumulators, in any order,
    /// gives what accumulating them one by one gives: not for FIRST_VALUE, LAST_VALUE and LISTAGG
    /// (arrival order), nor for user aggregates (whose merge is theirs to get right).
    pub fn merges_in_any_order(&self) -> bool {
        self.user.is_none()
            && (self.distinct
                || matches!(self.kind, AggKind::CountStar | AggKind::Count | AggKind::Sum | AggKind::Min | AggKind::Max | AggKind::Avg))
    }

    /// Merges `other` into `acc` (`other` covering later rows), as `merge` does, without taking
    /// either: a partial aggregate merged into each of the windows its slice is in.
    pub fn merge_into(&self, acc: &mut Acc, other: &Acc) {
        match (acc, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Sum(a, m), Acc::Sum(b, n)) => {
                *a = add_values(a, b, false);
                *m += n;
            }
            (Acc::Values(a), Acc::Values(b)) => b.iter().for_each(|(value, count)| multiset_add(a, value.0.clone(), *count)),
            (acc, other) => {
                let earlier = std::mem::replace(acc, Acc::Count(0));
                *acc = self.merge(earlier, other.clone());
            }
        }
    }

    /// Combines two accumulators (session windows merging; `earlier` covers earlier rows).
    pub fn merge(&self, earlier: Acc, later: Acc) -> Acc {
        match (earlier, later) {
            (Acc::Count(a), Acc::Count(b)) => Acc::Count(a + b),
            (Acc::Sum(a, m), Acc::Sum(b, n)) => Acc::Sum(add_values(&a, &b, false), m + n),
            (Acc::User(a), Acc::User(b)) => Acc::User(self.user.as_ref().expect("a user aggregate's call has it").0.merge(a, b)),
            (Acc::Extreme(a), Acc::Extreme(b)) => {
                let keep_a = match (self.kind, a.is_null(), b.is_null()) {
                    (_, _, true) => true,
                    (_, true, false) => false,
                    (AggKind::Min, _, _) => a.total_cmp(&b).is_le(),
                    _ => a.total_cmp(&b).is_ge(),
                };
                Acc::Extreme(if keep_a { a } else { b })
            }
            (Acc::Values(mut a), Acc::Values(b)) => {
                for (value, count) in b {
                    multiset_add(&mut a, value.0, count);
                }
                Acc::Values(a)
            }
            (Acc::Ordered(mut a), Acc::Ordered(b)) => match self.kind {
                AggKind::FirstValue if !a.is_empty() => Acc::Ordered(a),
                AggKind::LastValue if !b.is_empty() => Acc::Ordered(b),
                _ => {
                    a.extend(b);
                    Acc::Ordered(a)
                }
            },
            (a, _) => a,
        }
    }

    /// The aggregate's value now.
    pub fn result(&self, acc: &Acc) -> Value {
        match acc {
            Acc::Count(count) => Value::Int(*count),
            Acc::Sum(_, 0) => Value::Null,
            Acc::Sum(sum, count) => match self.kind {
                AggKind::Avg => average(sum, *count, &self.result_type),
                _ => sum.clone(),
            },
            Acc::Extreme(extreme) => extreme.clone(),
            Acc::User(accumulator) => self.user.as_ref().expect("a user aggregate's call has it").0.result(accumulator),
            Acc::Values(values) => match self.kind {
                AggKind::Min | AggKind::FirstValue => values.keys().next().map(|value| value.0.clone()).unwrap_or(Value::Null),
                AggKind::Max | AggKind::LastValue => values.keys().next_back().map(|value| value.0.clone()).unwrap_or(Value::Null),
                AggKind::Count | AggKind::CountStar => Value::Int(values.len() as i64),
                AggKind::Sum | AggKind::Avg => {
                    let mut sum = Value::Null;
                    for value in values.keys() {
                        sum = add_values(&sum, &value.0, false);
                    }
                    match (self.kind, values.len()) {
                        (_, 0) => Value::Null,
                        (AggKind::Avg, n) => average(&sum, n as i64, &self.result_type),
                        _ => sum,
                    }
                }
                AggKind::ListAgg => self.joined(values.keys().map(|value| &value.0)),
                AggKind::User => unreachable!("a user aggregate keeps its own accumulator"),
            },
            Acc::Ordered(values) => match self.kind {
                AggKind::FirstValue => values.first().cloned().unwrap_or(Value::Null),
                AggKind::LastValue => values.last().cloned().unwrap_or(Value::Null),
                _ => self.joined(values.iter()),
            },
        }
    }

    fn joined<'a>(&self, values: impl Iterator<Item = &'a Value>) -> Value {
        let parts: Vec<String> = values.map(Value::to_string).collect();
        if parts.is_empty() {
            Value::Null
        } else {
            Value::text(parts.join(&self.separator))
        }
    }
}

fn average(sum: &Value, count: i64, result_type: &SqlType) -> Value {
    match (sum, result_type) {
        (Value::Int(sum), _) => Value::Int(sum / count),
        (Value::Float(sum), _) => Value::Float(sum / count as f64),
        (Value::Decimal(sum), SqlType::Decimal { scale, .. }) => {
            sum.checked_div(Decimal::from_i64(count), *scale).map(Value::Decimal).unwrap_or(Value::Null)
        }
        _ => Value::Null,
    }
}

/// The aggregates of one query, fed whole rows: what a window operator or a group aggregate
/// keeps per key (and window).
#[derive(Debug, Clone)]
pub struct Aggregates {
    /// The calls, in the order of the query's result columns.
    pub calls: Vec<AggCall>,
    /// The evaluation context.
    pub context: EvalContext,
}

/// Every call's accumulator, and how many rows are in (a group whose count falls to zero is
/// deleted).
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Accumulators {
    /// Rows added minus rows retracted.
    pub rows: i64,
    /// One per call (one inline: a new group of a single aggregate costs no allocation; more
    /// are on the heap, as a vector). Archived as a vector.
    pub accs: smallvec::SmallVec<[Acc; 1]>,
}

impl Aggregates {
    /// Empty accumulators.
    pub fn create(&self) -> Accumulators {
        Accumulators { rows: 0, accs: self.calls.iter().map(AggCall::create).collect() }
    }

    /// Adds (or retracts) a row.
    pub fn accumulate(&self, accumulators: &mut Accumulators, row: &Row) -> Result<(), String> {
        let retract = !row.kind.is_accumulate();
        accumulators.rows += if retract { -1 } else { 1 };
        for (call, acc) in self.calls.iter().zip(&mut accumulators.accs) {
            call.accumulate(acc, &row.values, retract, &self.context).map_err(|error| format!("{}: {error}", call.text))?;
        }
        Ok(())
    }

    /// The results, one per call.
    pub fn results(&self, accumulators: &Accumulators) -> Vec<Value> {
        self.calls.iter().zip(&accumulators.accs).map(|(call, acc)| call.result(acc)).collect()
    }

    /// The results, one per call, added to the end of `values` (a result row being made).
    pub fn extend_with_results(&self, accumulators: &Accumulators, values: &mut Vec<Value>) {
        values.extend(self.calls.iter().zip(&accumulators.accs).map(|(call, acc)| call.result(acc)));
    }

    /// Merges `other` into `accumulators` (`other` covering later rows).
    pub fn merge_into(&self, accumulators: &mut Accumulators, other: &Accumulators) {
        accumulators.rows += other.rows;
        for (call, (acc, other)) in self.calls.iter().zip(accumulators.accs.iter_mut().zip(&other.accs)) {
            call.merge_into(acc, other);
        }
    }

    /// Merges two sets of accumulators.
    pub fn merge(&self, earlier: Accumulators, later: Accumulators) -> Accumulators {
        Accumulators {
            rows: earlier.rows + later.rows,
            accs: self.calls.iter().zip(earlier.accs.into_iter().zip(later.accs)).map(|(call, (a, b))| call.merge(a, b)).collect(),
        }
    }
}

/// Orders values for sorting (the multiset and Top-N), NULLs first.
pub fn order_values(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.total_cmp(y) {
            Ordering::Equal => continue,
            unequal => return unequal,
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::RowKind;

    #[test]
    fn every_aggregate_shown_to_users_is_one_a_query_calls() {
        for (name, signature, description) in AGGREGATE_SIGNATURES {
            assert!(AggKind::of(name, false).is_some() && crate::expr::is_aggregate(name), "{name}");
            assert!(signature.starts_with(&format!("{name}(")) && !description.is_empty(), "{name}");
        }
    }

    fn call(kind: AggKind, distinct: bool, result_type: SqlType) -> AggCall {
        AggCall {
            kind,
            argument: Some(Scalar::Column(0)),
            separator: ",".into(),
            distinct,
            filter: None,
            result_type,
            text: format!("{kind:?}"),
            retracts: true,
            user: None,
        }
    }

    fn run(call: &AggCall, changes: &[(RowKind, Value)]) -> Value {
        let aggregates = Aggregates { calls: vec![call.clone()], context: EvalContext::default() };
        let mut accs = aggregates.create();
        for (kind, value) in changes {
            aggregates.accumulate(&mut accs, &Row { kind: *kind, values: vec![value.clone()] }).unwrap();
        }
        aggregates.results(&accs).remove(0)
    }

    #[test]
    fn sums_averages_and_extremes_take_rows_back() {
        use RowKind::{Delete as D, Insert as I};
        let ints = [(I, Value::Int(3)), (I, Value::Int(7)), (I, Value::Null), (I, Value::Int(5)), (D, Value::Int(7))];
        assert_eq!(run(&call(AggKind::Sum, false, SqlType::BigInt), &ints), Value::Int(8));
        assert_eq!(run(&call(AggKind::Count, false, SqlType::BigInt), &ints), Value::Int(2));
        assert_eq!(run(&call(AggKind::Max, false, SqlType::Int), &ints), Value::Int(5));
        assert_eq!(run(&call(AggKind::Min, false, SqlType::Int), &ints), Value::Int(3));
        assert_eq!(run(&call(AggKind::Avg, false, SqlType::Int), &ints), Value::Int(4));
        assert_eq!(run(&call(AggKind::Sum, false, SqlType::BigInt), &[(I, Value::Null)]), Value::Null);
        let twice = [(I, Value::Int(2)), (I, Value::Int(2)), (I, Value::Int(3))];
        assert_eq!(run(&call(AggKind::Count, true, SqlType::BigInt), &twice), Value::Int(2));
        assert_eq!(run(&call(AggKind::Sum, true, SqlType::BigInt), &twice), Value::Int(5));
        let decimals = [(I, Value::Decimal(Decimal::parse("1.50").unwrap())), (I, Value::Decimal(Decimal::parse("2.25").unwrap()))];
        assert_eq!(run(&call(AggKind::Avg, false, SqlType::Decimal { precision: 38, scale: 6 }), &decimals).to_string(), "1.875000");
    }

    #[test]
    fn merged_accumulators_equal_one_accumulator_over_all_rows() {
        let aggregates = Aggregates {
            calls: vec![
                call(AggKind::Sum, false, SqlType::BigInt),
                call(AggKind::Max, false, SqlType::Int),
                call(AggKind::FirstValue, false, SqlType::Int),
            ],
            context: EvalContext::default(),
        };
        let feed = |values: &[i64]| {
            let mut accs = aggregates.create();
            for value in values {
                aggregates.accumulate(&mut accs, &Row::insert(vec![Value::Int(*value)])).unwrap();
            }
            accs
        };
        let merged = aggregates.merge(feed(&[4, 1]), feed(&[9, 2]));
        assert_eq!(aggregates.results(&merged), aggregates.results(&feed(&[4, 1, 9, 2])));
        assert_eq!(merged.rows, 4);
    }
}
