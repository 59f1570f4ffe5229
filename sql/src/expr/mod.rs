//! Typed expressions: a query's expressions checked against the columns in scope
//! ([`Binder`]), each with its type, and computed per row ([`Scalar::eval`]).
//!
//! Binding reports what is wrong where it is written: an unknown column (with the nearest name),
//! an ambiguous one, an unknown function, arguments of the wrong type, an operator on types it
//! does not take. Evaluation follows SQL's rules: NULL propagates through operators and
//! functions, `AND`/`OR` use three-valued logic, integer arithmetic wraps as Flink's (Java's)
//! does, decimal arithmetic is exact with Flink's result precision and scale (NULL when it
//! overflows), integer division by zero is an error.

pub mod cast;
mod like;

use std::cmp::Ordering;
use std::sync::Arc;

use sqlparser::ast::{
    BinaryOperator, CastKind, DateTimeField, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Spanned, UnaryOperator,
    Value as AstValue,
};

use crate::check::did_you_mean;
use crate::error::{Position, SqlError};
use crate::function::{EvalContext, FunctionRegistry, ScalarFunction};
use crate::types::{Field, Schema, SqlType, DECIMAL_PRECISION_MAX};
use crate::value::{Decimal, Value};

pub use cast::cast_value;

/// Where an expression starts.
pub fn position_of(expr: &Expr) -> Option<Position> {
    Position::of(expr.span().start)
}

/// A column in scope: its field and the table (or alias) it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeColumn {
    /// The table or alias that qualifies it (`b` in `b.price`), if any.
    pub qualifier: Option<String>,
    /// The column.
    pub field: Field,
    /// Not selected by `*` (the window columns' internals, group keys under another name).
    pub hidden: bool,
}

/// The columns an expression may name, in the order of the row it is evaluated on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    /// The columns.
    pub columns: Vec<ScopeColumn>,
}

impl Scope {
    /// The columns of `schema`, qualified by `qualifier`.
    pub fn of(schema: &Schema, qualifier: Option<&str>) -> Scope {
        Scope {
            columns: schema
                .fields
                .iter()
                .map(|field| ScopeColumn { qualifier: qualifier.map(str::to_string), field: field.clone(), hidden: false })
                .collect(),
        }
    }

    /// The row's schema.
    pub fn schema(&self) -> Schema {
        Schema::new(self.columns.iter().map(|column| column.field.clone()).collect())
    }

    /// The index of the column `qualifier.name` (or `name`), or an error saying why there is none.
    pub fn resolve(&self, qualifier: Option<&str>, name: &str, at: Option<Position>) -> Result<usize, SqlError> {
        let matches: Vec<usize> = (0..self.columns.len())
            .filter(|&i| {
                let column = &self.columns[i];
                column.field.name.eq_ignore_ascii_case(name)
                    && match qualifier {
                        Some(qualifier) => column.qualifier.as_deref().is_some_and(|q| q.eq_ignore_ascii_case(qualifier)),
                        None => true,
                    }
            })
            .collect();
        match matches.as_slice() {
            [index] => Ok(*index),
            [] => {
                let shown = match qualifier {
                    Some(qualifier) => format!("{qualifier}.{name}"),
                    None => name.to_string(),
                };
                let names =
                    self.columns.iter().filter(|column| !column.field.name.starts_with('$')).map(|column| column.field.name.as_str());
                let hint = did_you_mean(name, names).map(|nearest| format!("; did you mean {nearest}?")).unwrap_or_default();
                Err(SqlError::at(at, format!("no column named {shown}{hint}")))
            }
            _ => Err(SqlError::at(at, format!("column {name} is ambiguous: qualify it with its table"))),
        }
    }
}

/// How an arithmetic operator computes, decided from its operands' types.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Numeric {
    /// Integers (wrapping, as Java's).
    Int,
    /// Doubles.
    Float,
    /// Decimals, the result of this precision and scale.
    Decimal {
        /// The result's precision.
        precision: u8,
        /// The result's scale.
        scale: u8,
    },
    /// A timestamp (or date, as days) and an interval.
    TimePlusInterval,
    /// Two intervals.
    Interval,
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// `=`
    Eq,
    /// `<>`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
}

impl Compare {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Compare::Eq => ordering == Ordering::Equal,
            Compare::NotEq => ordering != Ordering::Equal,
            Compare::Lt => ordering == Ordering::Less,
            Compare::LtEq => ordering != Ordering::Greater,
            Compare::Gt => ordering == Ordering::Greater,
            Compare::GtEq => ordering != Ordering::Less,
        }
    }
}

/// A bound expression, computed per row.
#[derive(Debug, Clone)]
pub enum Scalar {
    /// The row's column at this index.
    Column(usize),
    /// A constant.
    Literal(Value),
    /// `NOT e`.
    Not(Box<Scalar>),
    /// `-e`.
    Negate(Box<Scalar>),
    /// Arithmetic.
    Arith(Arith, Numeric, Box<Scalar>, Box<Scalar>),
    /// A comparison.
    Compare(Compare, Box<Scalar>, Box<Scalar>),
    /// `a AND b`.
    And(Box<Scalar>, Box<Scalar>),
    /// `a OR b`.
    Or(Box<Scalar>, Box<Scalar>),
    /// `e IS [NOT] NULL`.
    IsNull(Box<Scalar>, bool),
    /// `e IS [NOT] TRUE|FALSE`: (expression, the truth value, negated).
    IsBool(Box<Scalar>, bool, bool),
    /// `a IS [NOT] DISTINCT FROM b`.
    IsDistinct(Box<Scalar>, Box<Scalar>, bool),
    /// `e [NOT] IN (list)`.
    In(Box<Scalar>, Vec<Scalar>, bool),
    /// `e [NOT] LIKE pattern`: (expression, pattern, negated, escape).
    Like(Box<Scalar>, Box<Scalar>, bool, Option<char>),
    /// `CASE WHEN c THEN v ... ELSE e END` (a simple CASE is bound to this form).
    Case(Vec<(Scalar, Scalar)>, Box<Scalar>),
    /// `CAST(e AS t)` (`TRY_CAST`: NULL when it fails).
    Cast(Box<Scalar>, SqlType, SqlType, bool),
    /// A function call.
    Call(Arc<ScalarFunction>, Vec<Scalar>),
    /// `COALESCE(a, b, ...)`.
    Coalesce(Vec<Scalar>),
    /// `array[i]` (from 1) or `map[key]`.
    Index(Box<Scalar>, Box<Scalar>),
    /// `row.field`.
    Field(Box<Scalar>, usize),
    /// `ARRAY[...]`.
    Array(Vec<Scalar>),
    /// `MAP[k, v, ...]`.
    Map(Vec<(Scalar, Scalar)>),
    /// `ROW(...)`.
    Row(Vec<Scalar>),
}

/// A bound expression with its type.
#[derive(Debug, Clone)]
pub struct Typed {
    /// The expression.
    pub scalar: Scalar,
    /// Its type.
    pub data_type: SqlType,
    /// Whether it may be NULL.
    pub nullable: bool,
}

impl Typed {
    fn new(scalar: Scalar, data_type: SqlType, nullable: bool) -> Typed {
        Typed { scalar, data_type, nullable }
    }
}

fn truth(value: &Value) -> Option<bool> {
    value.as_bool()
}

fn decimal_of(precision: u8, scale: u8) -> Numeric {
    Numeric::Decimal { precision, scale }
}

/// Flink's rule for a decimal result too wide for 38 digits: keep the integer digits, and at
/// least 6 (or the wanted, if fewer) after the point.
fn adjust_decimal(precision: u32, scale: u32) -> (u8, u8) {
    let max = u32::from(DECIMAL_PRECISION_MAX);
    if precision <= max {
        return (precision as u8, scale as u8);
    }
    let integer_digits = precision - scale;
    let min_scale = scale.min(6);
    let scale = max.saturating_sub(integer_digits).max(min_scale);
    (max as u8, scale as u8)
}

/// The result type of `left op right` on numbers, as Flink types it.
fn arithmetic_type(op: Arith, left: &SqlType, right: &SqlType) -> Option<(SqlType, Numeric)> {
    if left == &SqlType::Null || right == &SqlType::Null {
        let other = if left == &SqlType::Null { right } else { left };
        return arithmetic_type(op, other, other).or(Some((SqlType::Null, Numeric::Int)));
    }
    if !left.is_numeric() || !right.is_numeric() {
        return None;
    }
    if left.is_integer() && right.is_integer() {
        return Some((SqlType::common(left, right)?, Numeric::Int));
    }
    if matches!(left, SqlType::Float | SqlType::Double) || matches!(right, SqlType::Float | SqlType::Double) {
        return Some((SqlType::Double, Numeric::Float));
    }
    let (p1, s1) = left.decimal_digits()?;
    let (p2, s2) = right.decimal_digits()?;
    let (p1, s1, p2, s2) = (u32::from(p1), u32::from(s1), u32::from(p2), u32::from(s2));
    let (precision, scale) = match op {
        Arith::Add | Arith::Sub => {
            let scale = s1.max(s2);
            adjust_decimal((p1 - s1).max(p2 - s2) + scale + 1, scale)
        }
        Arith::Mul => adjust_decimal(p1 + p2, s1 + s2),
        Arith::Div => {
            let scale = 6.max(s1 + p2 + 1);
            adjust_decimal(p1 - s1 + s2 + scale, scale)
        }
        Arith::Mod => {
            let scale = s1.max(s2);
            adjust_decimal((p1 - s1).min(p2 - s2) + scale, scale)
        }
    };
    Some((SqlType::Decimal { precision, scale }, decimal_of(precision, scale)))
}

impl Scalar {
    /// The value of this expression for `row`, or what went wrong (integer division by zero, a
    /// cast that cannot be done, a function's own error).
    ///
    /// The kinds every query evaluates per row (columns, fields, constants, comparisons, AND, OR,
    /// CASE) are handled in this small function; the others in `eval_other`, whose large stack
    /// frame only they pay for (it was a quarter of Nexmark q0's time in SQL).
    #[inline]
    pub fn eval(&self, row: &[Value], context: &EvalContext) -> Result<Value, String> {
        match self {
            Scalar::Column(index) => Ok(row[*index].clone()),
            Scalar::Literal(value) => Ok(value.clone()),
            // A field of a column is read in place, not by copying the whole row.
            Scalar::Field(inner, index) => match inner.as_ref() {
                Scalar::Column(column) => Ok(match &row[*column] {
                    Value::Row(values) => values.get(*index).cloned().unwrap_or(Value::Null),
                    _ => Value::Null,
                }),
                _ => self.eval_other(row, context),
            },
            Scalar::Compare(..) | Scalar::And(..) | Scalar::Or(..) => Ok(self.test(row, context)?.map_or(Value::Null, Value::Bool)),
            Scalar::Case(branches, otherwise) => {
                for (condition, result) in branches {
                    if condition.test(row, context)? == Some(true) {
                        return result.eval(row, context);
                    }
                }
                otherwise.eval(row, context)
            }
            _ => self.eval_other(row, context),
        }
    }

    /// Its truth for `row`: `None` for NULL (or a value that is no boolean). A comparison or
    /// connective is decided without making a value of it.
    pub fn test(&self, row: &[Value], context: &EvalContext) -> Result<Option<bool>, String> {
        match self {
            Scalar::Compare(compare, left, right) => {
                let (left, right) = (left.operand(row, context)?, right.operand(row, context)?);
                Ok(left.sql_cmp(&right).map(|ordering| compare.holds(ordering)))
            }
            Scalar::And(left, right) => connective(left, right, false, row, context),
            Scalar::Or(left, right) => connective(left, right, true, row, context),
            _ => Ok(truth(&self.eval(row, context)?)),
        }
    }

    /// The kinds `eval` leaves to it (a field of anything but a column, and all the rest).
    #[inline(never)]
    fn eval_other(&self, row: &[Value], context: &EvalContext) -> Result<Value, String> {
        Ok(match self {
            Scalar::Column(_) | Scalar::Literal(_) | Scalar::Compare(..) | Scalar::And(..) | Scalar::Or(..) | Scalar::Case(..) => {
                unreachable!("evaluated by eval itself")
            }
            Scalar::Not(inner) => match inner.eval(row, context)? {
                Value::Bool(value) => Value::Bool(!value),
                _ => Value::Null,
            },
            Scalar::Negate(inner) => match inner.eval(row, context)? {
                Value::Int(value) => Value::Int(value.wrapping_neg()),
                Value::Float(value) => Value::Float(-value),
                Value::Decimal(value) => Value::Decimal(Decimal::new(-value.unscaled(), value.scale)),
                Value::Interval(value) => Value::Interval(-value),
                _ => Value::Null,
            },
            Scalar::Arith(op, numeric, left, right) => {
                let (left, right) = (left.operand(row, context)?, right.operand(row, context)?);
                if left.is_null() || right.is_null() {
                    return Ok(Value::Null);
                }
                arithmetic(*op, *numeric, &left, &right)?
            }
            Scalar::IsNull(inner, negated) => Value::Bool(inner.operand(row, context)?.is_null() != *negated),
            Scalar::IsBool(inner, wanted, negated) => Value::Bool((truth(&inner.eval(row, context)?) == Some(*wanted)) != *negated),
            Scalar::IsDistinct(left, right, negated) => {
                let (left, right) = (left.eval(row, context)?, right.eval(row, context)?);
                let same = match (left.is_null(), right.is_null()) {
                    (true, true) => true,
                    (false, false) => left.sql_cmp(&right) == Some(Ordering::Equal),
                    _ => false,
                };
                Value::Bool(same == *negated)
            }
            Scalar::In(inner, list, negated) => {
                let value = inner.eval(row, context)?;
                if value.is_null() {
                    return Ok(Value::Null);
                }
                let mut saw_null = false;
                for candidate in list {
                    match value.sql_cmp(&candidate.eval(row, context)?) {
                        Some(Ordering::Equal) => return Ok(Value::Bool(!negated)),
                        None => saw_null = true,
                        Some(_) => {}
                    }
                }
                if saw_null {
                    Value::Null
                } else {
                    Value::Bool(*negated)
                }
            }
            Scalar::Like(inner, pattern, negated, escape) => {
                let (value, pattern) = (inner.eval(row, context)?, pattern.eval(row, context)?);
                match (value.as_str(), pattern.as_str()) {
                    (Some(value), Some(pattern)) => Value::Bool(like::matches(value, pattern, *escape)? != *negated),
                    _ => Value::Null,
                }
            }
            Scalar::Cast(inner, from, to, safe) => {
                let value = inner.eval(row, context)?;
                match cast_value(value, from, to, context) {
                    Ok(value) => value,
                    Err(_) if *safe => Value::Null,
                    Err(error) => return Err(error),
                }
            }
            Scalar::Call(function, arguments) => {
                let values = arguments.iter().map(|argument| argument.eval(row, context)).collect::<Result<Vec<_>, _>>()?;
                function.eval(&values, context).map_err(|error| format!("{}: {error}", function.name()))?
            }
            Scalar::Coalesce(arguments) => {
                for argument in arguments {
                    let value = argument.eval(row, context)?;
                    if !value.is_null() {
                        return Ok(value);
                    }
                }
                Value::Null
            }
            Scalar::Index(container, index) => match (container.eval(row, context)?, index.eval(row, context)?) {
                (Value::Array(values), Value::Int(index)) => usize::try_from(index)
                    .ok()
                    .and_then(|index| index.checked_sub(1))
                    .and_then(|i| values.get(i).cloned())
                    .unwrap_or(Value::Null),
                (Value::Map(entries), key) => entries
                    .into_iter()
                    .find(|(candidate, _)| candidate.sql_cmp(&key) == Some(Ordering::Equal))
                    .map(|(_, v)| v)
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            },
            // A field of a column is read in place by `eval`; of anything else, taken out of it.
            Scalar::Field(inner, index) => match inner.eval(row, context)? {
                Value::Row(mut values) if *index < values.len() => values.swap_remove(*index),
                _ => Value::Null,
            },
            Scalar::Array(elements) => Value::Array(elements.iter().map(|e| e.eval(row, context)).collect::<Result<_, _>>()?),
            Scalar::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(key, value)| Ok((key.eval(row, context)?, value.eval(row, context)?)))
                    .collect::<Result<_, String>>()?,
            ),
            Scalar::Row(fields) => Value::Row(fields.iter().map(|e| e.eval(row, context)).collect::<Result<_, _>>()?),
        })
    }

    /// Its value for an operator to read: a column, a constant or a column's field borrowed
    /// where it is (no copy of a text or a row), anything else computed.
    fn operand<'a>(&'a self, row: &'a [Value], context: &EvalContext) -> Result<std::borrow::Cow<'a, Value>, String> {
        use std::borrow::Cow;
        Ok(match self {
            Scalar::Column(index) => Cow::Borrowed(&row[*index]),
            Scalar::Literal(value) => Cow::Borrowed(value),
            Scalar::Field(inner, field) => match inner.as_ref() {
                Scalar::Column(column) => match &row[*column] {
                    Value::Row(values) => values.get(*field).map_or(Cow::Owned(Value::Null), Cow::Borrowed),
                    _ => Cow::Owned(Value::Null),
                },
                _ => Cow::Owned(self.eval(row, context)?),
            },
            _ => Cow::Owned(self.eval(row, context)?),
        })
    }

    /// The same expression reading column `f(i)` where it read column `i` (to move an
    /// expression onto another row layout, e.g. one side of a join).
    pub fn map_columns(&self, f: &impl Fn(usize) -> usize) -> Scalar {
        self.substitute(&|index| Scalar::Column(f(index)))
    }

    /// The same expression with each column `i` it reads replaced by expression `f(i)` (to
    /// fuse a projection into the one below it).
    pub fn substitute(&self, f: &impl Fn(usize) -> Scalar) -> Scalar {
        self.rewrite(&|scalar| match scalar {
            Scalar::Column(index) => Some(f(*index)),
            _ => None,
        })
    }

    /// The same expression with every part `f` gives a replacement for (tried on a part before
    /// its parts) replaced.
    pub fn rewrite(&self, f: &impl Fn(&Scalar) -> Option<Scalar>) -> Scalar {
        if let Some(replaced) = f(self) {
            return replaced;
        }
        let map = |scalar: &Scalar| Box::new(scalar.rewrite(f));
        let list = |scalars: &[Scalar]| scalars.iter().map(|scalar| scalar.rewrite(f)).collect::<Vec<_>>();
        match self {
            Scalar::Column(index) => Scalar::Column(*index),
            Scalar::Literal(value) => Scalar::Literal(value.clone()),
            Scalar::Not(inner) => Scalar::Not(map(inner)),
            Scalar::Negate(inner) => Scalar::Negate(map(inner)),
            Scalar::Arith(op, numeric, a, b) => Scalar::Arith(*op, *numeric, map(a), map(b)),
            Scalar::Compare(op, a, b) => Scalar::Compare(*op, map(a), map(b)),
            Scalar::And(a, b) => Scalar::And(map(a), map(b)),
            Scalar::Or(a, b) => Scalar::Or(map(a), map(b)),
            Scalar::IsNull(inner, negated) => Scalar::IsNull(map(inner), *negated),
            Scalar::IsBool(inner, wanted, negated) => Scalar::IsBool(map(inner), *wanted, *negated),
            Scalar::IsDistinct(a, b, negated) => Scalar::IsDistinct(map(a), map(b), *negated),
            Scalar::In(inner, items, negated) => Scalar::In(map(inner), list(items), *negated),
            Scalar::Like(a, b, negated, escape) => Scalar::Like(map(a), map(b), *negated, *escape),
            Scalar::Case(branches, otherwise) => {
                Scalar::Case(branches.iter().map(|(condition, result)| (condition.rewrite(f), result.rewrite(f))).collect(), map(otherwise))
            }
            Scalar::Cast(inner, from, to, safe) => Scalar::Cast(map(inner), from.clone(), to.clone(), *safe),
            Scalar::Call(function, arguments) => Scalar::Call(function.clone(), list(arguments)),
            Scalar::Coalesce(arguments) => Scalar::Coalesce(list(arguments)),
            Scalar::Index(a, b) => Scalar::Index(map(a), map(b)),
            Scalar::Field(inner, index) => Scalar::Field(map(inner), *index),
            Scalar::Array(items) => Scalar::Array(list(items)),
            Scalar::Map(entries) => Scalar::Map(entries.iter().map(|(k, v)| (k.rewrite(f), v.rewrite(f))).collect()),
            Scalar::Row(items) => Scalar::Row(list(items)),
        }
    }

    /// The same expression with its constant parts computed once (Flink's expression reduction):
    /// an operator, comparison, connective, CAST or COALESCE whose operands are all constants
    /// becomes its value, and a CASE loses the branches whose condition is a constant that is not
    /// TRUE (and ends at one that is). Function calls are left alone (some are not deterministic),
    /// and so is a part whose computation fails: it fails per row, with the row named.
    pub fn folded(self, context: &EvalContext) -> Scalar {
        let fold = |scalar: Box<Scalar>| Box::new(scalar.folded(context));
        let folded = match self {
            Scalar::Not(inner) => Scalar::Not(fold(inner)),
            Scalar::Negate(inner) => Scalar::Negate(fold(inner)),
            Scalar::Arith(op, numeric, left, right) => Scalar::Arith(op, numeric, fold(left), fold(right)),
            Scalar::Compare(compare, left, right) => Scalar::Compare(compare, fold(left), fold(right)),
            Scalar::And(left, right) => Scalar::And(fold(left), fold(right)),
            Scalar::Or(left, right) => Scalar::Or(fold(left), fold(right)),
            Scalar::IsNull(inner, negated) => Scalar::IsNull(fold(inner), negated),
            Scalar::IsBool(inner, wanted, negated) => Scalar::IsBool(fold(inner), wanted, negated),
            Scalar::IsDistinct(left, right, negated) => Scalar::IsDistinct(fold(left), fold(right), negated),
            Scalar::Cast(inner, from, to, try_cast) => Scalar::Cast(fold(inner), from, to, try_cast),
            Scalar::Coalesce(list) => Scalar::Coalesce(list.into_iter().map(|scalar| scalar.folded(context)).collect()),
            Scalar::Case(branches, otherwise) => {
                let mut kept = Vec::with_capacity(branches.len());
                for (condition, result) in branches {
                    let (condition, result) = (condition.folded(context), result.folded(context));
                    match &condition {
                        Scalar::Literal(Value::Bool(true)) if kept.is_empty() => return result,
                        Scalar::Literal(Value::Bool(true)) => {
                            // Every row that gets here takes it: it is the CASE's ELSE.
                            return Scalar::Case(kept, Box::new(result));
                        }
                        Scalar::Literal(_) => {}
                        _ => kept.push((condition, result)),
                    }
                }
                let otherwise = otherwise.folded(context);
                if kept.is_empty() {
                    return otherwise;
                }
                Scalar::Case(kept, Box::new(otherwise))
            }
            other => return other,
        };
        if folded.children().iter().all(|child| matches!(child, Scalar::Literal(_))) {
            if let Ok(value) = folded.eval(&[], context) {
                return Scalar::Literal(value);
            }
        }
        folded
    }

    /// The expressions it is made of, one level down.
    pub fn children(&self) -> Vec<&Scalar> {
        match self {
            Scalar::Column(_) | Scalar::Literal(_) => Vec::new(),
            Scalar::Not(inner)
            | Scalar::Negate(inner)
            | Scalar::IsNull(inner, _)
            | Scalar::IsBool(inner, _, _)
            | Scalar::Field(inner, _)
            | Scalar::Cast(inner, ..) => vec![inner],
            Scalar::Arith(_, _, a, b)
            | Scalar::Compare(_, a, b)
            | Scalar::And(a, b)
            | Scalar::Or(a, b)
            | Scalar::IsDistinct(a, b, _)
            | Scalar::Like(a, b, _, _)
            | Scalar::Index(a, b) => vec![a, b],
            Scalar::In(inner, list, _) => std::iter::once(inner.as_ref()).chain(list).collect(),
            Scalar::Case(branches, otherwise) => {
                branches.iter().flat_map(|(condition, result)| [condition, result]).chain(std::iter::once(otherwise.as_ref())).collect()
            }
            Scalar::Call(_, list) | Scalar::Coalesce(list) | Scalar::Array(list) | Scalar::Row(list) => list.iter().collect(),
            Scalar::Map(entries) => entries.iter().flat_map(|(k, v)| [k, v]).collect(),
        }
    }

    /// Its conjuncts: `a AND b AND c` as `[a, b, c]`.
    pub fn conjuncts(self) -> Vec<Scalar> {
        match self {
            Scalar::And(a, b) => {
                let mut all = a.conjuncts();
                all.extend(b.conjuncts());
                all
            }
            other => vec![other],
        }
    }

    /// The conjunction of `conjuncts` (none: `None`).
    pub fn all_of(conjuncts: Vec<Scalar>) -> Option<Scalar> {
        conjuncts.into_iter().reduce(|a, b| Scalar::And(Box::new(a), Box::new(b)))
    }

    /// The column indexes it reads.
    pub fn columns(&self, out: &mut Vec<usize>) {
        match self {
            Scalar::Column(index) => out.push(*index),
            other => other.children().into_iter().for_each(|child| child.columns(out)),
        }
    }
}

/// AND (`decisive` FALSE) or OR (`decisive` TRUE) in three-valued logic: the decisive value on
/// either side decides (the right side is not computed when the left one decides), two other
/// truth values give the other one, and anything else is NULL.
/// AND (`decisive` false) or OR (true) in three-valued logic; `None` is NULL.
fn connective(left: &Scalar, right: &Scalar, decisive: bool, row: &[Value], context: &EvalContext) -> Result<Option<bool>, String> {
    let left = left.test(row, context)?;
    if left == Some(decisive) {
        return Ok(Some(decisive));
    }
    Ok(match (left, right.test(row, context)?) {
        (_, Some(right)) if right == decisive => Some(decisive),
        (Some(_), Some(_)) => Some(!decisive),
        _ => None,
    })
}

fn arithmetic(op: Arith, numeric: Numeric, left: &Value, right: &Value) -> Result<Value, String> {
    Ok(match numeric {
        Numeric::Int => {
            let (a, b) = (left.as_i64().ok_or("not an integer")?, right.as_i64().ok_or("not an integer")?);
            Value::Int(match op {
                Arith::Add => a.wrapping_add(b),
                Arith::Sub => a.wrapping_sub(b),
                Arith::Mul => a.wrapping_mul(b),
                Arith::Div if b == 0 => return Err("division by zero".into()),
                Arith::Div => a.wrapping_div(b),
                Arith::Mod if b == 0 => return Err("division by zero".into()),
                Arith::Mod => a.wrapping_rem(b),
            })
        }
        Numeric::Float => {
            let (a, b) = (left.as_f64().ok_or("not a number")?, right.as_f64().ok_or("not a number")?);
            Value::Float(match op {
                Arith::Add => a + b,
                Arith::Sub => a - b,
                Arith::Mul => a * b,
                Arith::Div => a / b,
                Arith::Mod => a % b,
            })
        }
        Numeric::Decimal { precision, scale } => {
            let (a, b) = (left.as_decimal().ok_or("not a number")?, right.as_decimal().ok_or("not a number")?);
            let result = match op {
                Arith::Add => a.checked_add(b),
                Arith::Sub => a.checked_sub(b),
                Arith::Mul => a.checked_mul(b),
                Arith::Div => a.checked_div(b, scale),
                Arith::Mod => {
                    let scale = a.scale.max(b.scale);
                    match (a.rescale(scale), b.rescale(scale)) {
                        (Some(a), Some(b)) if b.unscaled() != 0 => Some(Decimal::new(a.unscaled() % b.unscaled(), scale)),
                        _ => None,
                    }
                }
            };
            // As Flink: a decimal result that overflows its type is NULL.
            match result.and_then(|value| value.rescale(scale)) {
                Some(value) if value.fits(precision) => Value::Decimal(value),
                _ => Value::Null,
            }
        }
        Numeric::TimePlusInterval => match (left, right, op) {
            (Value::Timestamp(t), Value::Interval(i), Arith::Add) | (Value::Interval(i), Value::Timestamp(t), Arith::Add) => {
                Value::Timestamp(t + i)
            }
            (Value::Timestamp(t), Value::Interval(i), Arith::Sub) => Value::Timestamp(t - i),
            (Value::Date(d), Value::Interval(i), Arith::Add) | (Value::Interval(i), Value::Date(d), Arith::Add) => {
                Value::Date(*d + (i / crate::time::MS_PER_DAY) as i32)
            }
            (Value::Date(d), Value::Interval(i), Arith::Sub) => Value::Date(*d - (i / crate::time::MS_PER_DAY) as i32),
            _ => return Err("unsupported date-time arithmetic".into()),
        },
        Numeric::Interval => {
            let (a, b) = (left.as_i64().ok_or("not an interval")?, right.as_i64().ok_or("not an interval")?);
            match (left, right, op) {
                (Value::Interval(_), Value::Interval(_), Arith::Add) => Value::Interval(a + b),
                (Value::Interval(_), Value::Interval(_), Arith::Sub) => Value::Interval(a - b),
                (_, _, Arith::Mul) => Value::Interval(a * b),
                (Value::Interval(_), Value::Int(_), Arith::Div) if b != 0 => Value::Interval(a / b),
                _ => return Err("unsupported interval arithmetic".into()),
            }
        }
    })
}

/// Binds expressions against a scope.
pub struct Binder<'a> {
    scope: &'a Scope,
    functions: &'a FunctionRegistry,
}

/// The milliseconds of one unit of an interval field.
pub fn interval_unit_ms(field: &DateTimeField) -> Option<i64> {
    Some(match field {
        DateTimeField::Millisecond | DateTimeField::Milliseconds => 1,
        DateTimeField::Second | DateTimeField::Seconds => 1000,
        DateTimeField::Minute | DateTimeField::Minutes => 60_000,
        DateTimeField::Hour | DateTimeField::Hours => 3_600_000,
        DateTimeField::Day | DateTimeField::Days => 86_400_000,
        DateTimeField::Week(_) | DateTimeField::Weeks => 7 * 86_400_000,
        _ => return None,
    })
}

/// Milliseconds of an `INTERVAL` literal: `INTERVAL '5' SECOND`, `INTERVAL '10' MINUTES`,
/// `INTERVAL '1.5' SECOND`, `INTERVAL '01:30' MINUTE TO SECOND`.
pub fn interval_ms(interval: &sqlparser::ast::Interval, at: Option<Position>) -> Result<i64, SqlError> {
    let text = match interval.value.as_ref() {
        Expr::Value(value) => match &value.value {
            AstValue::SingleQuotedString(text) | AstValue::Number(text, _) => text.clone(),
            _ => return Err(SqlError::at(at, "an interval's value is a quoted number: INTERVAL '5' SECOND")),
        },
        _ => return Err(SqlError::at(at, "an interval's value is a quoted number: INTERVAL '5' SECOND")),
    };
    let leading = interval.leading_field.clone().unwrap_or(DateTimeField::Second);
    let Some(unit) = interval_unit_ms(&leading) else {
        return Err(SqlError::at(
            at,
            format!("INTERVAL ... {leading} is not supported: use MILLISECOND, SECOND, MINUTE, HOUR, DAY or WEEK (months vary in length)"),
        ));
    };
    let text = text.trim();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let ms = if interval.last_field.is_some() {
        // `HH:MM:SS[.fff]`-like parts from the leading unit down.
        let units = [86_400_000, 3_600_000, 60_000, 1000];
        let start = units.iter().position(|&u| u == unit).ok_or_else(|| SqlError::at(at, "unsupported interval range"))?;
        let parts: Vec<&str> = text.split([':', ' ']).collect();
        let mut total = 0i64;
        for (i, part) in parts.iter().enumerate() {
            let unit = *units.get(start + i).ok_or_else(|| SqlError::at(at, format!("interval '{text}' has too many parts")))?;
            let value: f64 = part.parse().map_err(|_| SqlError::at(at, format!("interval part '{part}' is not a number")))?;
            total += (value * unit as f64).round() as i64;
        }
        total
    } else {
        let value: f64 = text.parse().map_err(|_| SqlError::at(at, format!("interval value '{text}' is not a number")))?;
        (value * unit as f64).round() as i64
    };
    Ok(if negative { -ms } else { ms })
}

fn number_literal(text: &str, at: Option<Position>) -> Result<Typed, SqlError> {
    if let Ok(value) = text.parse::<i64>() {
        let data_type = if i32::try_from(value).is_ok() { SqlType::Int } else { SqlType::BigInt };
        return Ok(Typed::new(Scalar::Literal(Value::Int(value)), data_type, false));
    }
    if !text.contains(['e', 'E']) {
        if let Some(decimal) = Decimal::parse(text) {
            let digits = decimal.unscaled().unsigned_abs().to_string().len() as u8;
            let precision = digits.max(decimal.scale).max(1);
            if precision <= DECIMAL_PRECISION_MAX {
                return Ok(Typed::new(
                    Scalar::Literal(Value::Decimal(decimal)),
                    SqlType::Decimal { precision, scale: decimal.scale },
                    false,
                ));
            }
        }
    }
    match text.parse::<f64>() {
        Ok(value) => Ok(Typed::new(Scalar::Literal(Value::Float(value)), SqlType::Double, false)),
        Err(_) => Err(SqlError::at(at, format!("{text} is not a number"))),
    }
}

/// The names of the aggregate functions: a query's planner takes them out of expressions before
/// binding; met anywhere else, they are an error.
pub const AGGREGATE_FUNCTIONS: &[&str] =
    &["COUNT", "SUM", "MIN", "MAX", "AVG", "FIRST_VALUE", "LAST_VALUE", "LISTAGG", "STDDEV_POP", "STDDEV_SAMP", "VAR_POP", "VAR_SAMP"];

/// Whether `name` is an aggregate function.
pub fn is_aggregate(name: &str) -> bool {
    AGGREGATE_FUNCTIONS.iter().any(|aggregate| aggregate.eq_ignore_ascii_case(name))
}

impl<'a> Binder<'a> {
    /// A binder for expressions over `scope`, calling `functions`.
    pub fn new(scope: &'a Scope, functions: &'a FunctionRegistry) -> Binder<'a> {
        Binder { scope, functions }
    }

    /// `expr` bound, with its type; a boolean is required where `want_boolean` says so (WHERE,
    /// HAVING, ON).
    pub fn bind_condition(&self, expr: &Expr, clause: &str) -> Result<Typed, SqlError> {
        let bound = self.bind(expr)?;
        if !matches!(bound.data_type, SqlType::Boolean | SqlType::Null) {
            return Err(SqlError::at(position_of(expr), format!("{clause} needs a BOOLEAN condition, got {}", bound.data_type)));
        }
        Ok(bound)
    }

    /// `expr` bound, with its type.
    pub fn bind(&self, expr: &Expr) -> Result<Typed, SqlError> {
        let at = position_of(expr);
        match expr {
            Expr::Identifier(ident) => self.column(None, &ident.value, Position::of(ident.span.start)),
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [qualifier, name] => {
                    // `t.col`, or `row_col.field` when `t` is no table here.
                    match self.column(Some(&qualifier.value), &name.value, Position::of(qualifier.span.start)) {
                        Ok(bound) => Ok(bound),
                        Err(error) => match self.column(None, &qualifier.value, Position::of(qualifier.span.start)) {
                            Ok(row) => self.field_of(row, &name.value, Position::of(name.span.start)),
                            Err(_) => Err(error),
                        },
                    }
                }
                [qualifier, name, rest @ ..] => {
                    let mut bound = self.column(Some(&qualifier.value), &name.value, Position::of(qualifier.span.start))?;
                    for field in rest {
                        bound = self.field_of(bound, &field.value, Position::of(field.span.start))?;
                    }
                    Ok(bound)
                }
                _ => Err(SqlError::at(at, format!("{expr} is not a column"))),
            },
            Expr::Value(value) => self.literal(&value.value, at),
            Expr::TypedString(typed) => {
                let text = match &typed.value.value {
                    AstValue::SingleQuotedString(text) => text.clone(),
                    other => return Err(SqlError::at(at, format!("{other} is not a quoted literal"))),
                };
                let to = SqlType::from_ast(&typed.data_type).map_err(|message| SqlError::at(at, message))?;
                let value = cast_value(Value::text(text), &SqlType::String, &to, &EvalContext::default())
                    .map_err(|message| SqlError::at(at, message))?;
                Ok(Typed::new(Scalar::Literal(value), to, false))
            }
            Expr::Interval(interval) => {
                Ok(Typed::new(Scalar::Literal(Value::Interval(interval_ms(interval, at)?)), SqlType::Interval, false))
            }
            Expr::Nested(inner) => self.bind(inner),
            Expr::UnaryOp { op, expr: inner } => {
                let bound = self.bind(inner)?;
                match op {
                    UnaryOperator::Not => {
                        self.expect_boolean(&bound, inner, "NOT")?;
                        Ok(Typed::new(Scalar::Not(Box::new(bound.scalar)), SqlType::Boolean, bound.nullable))
                    }
                    UnaryOperator::Minus => {
                        if let Scalar::Literal(Value::Int(value)) = &bound.scalar {
                            return Ok(Typed::new(Scalar::Literal(Value::Int(-value)), bound.data_type, false));
                        }
                        if !bound.data_type.is_numeric() && bound.data_type != SqlType::Interval {
                            return Err(SqlError::at(at, format!("- needs a number, got {}", bound.data_type)));
                        }
                        Ok(Typed::new(Scalar::Negate(Box::new(bound.scalar)), bound.data_type, bound.nullable))
                    }
                    UnaryOperator::Plus => Ok(bound),
                    other => Err(SqlError::at(at, format!("operator {other} is not supported"))),
                }
            }
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right, at),
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => {
                let bound = self.bind(inner)?;
                Ok(Typed::new(Scalar::IsNull(Box::new(bound.scalar), matches!(expr, Expr::IsNotNull(_))), SqlType::Boolean, false))
            }
            Expr::IsTrue(inner) | Expr::IsNotTrue(inner) | Expr::IsFalse(inner) | Expr::IsNotFalse(inner) => {
                let bound = self.bind(inner)?;
                self.expect_boolean(&bound, inner, "IS TRUE / IS FALSE")?;
                let wanted = matches!(expr, Expr::IsTrue(_) | Expr::IsNotTrue(_));
                let negated = matches!(expr, Expr::IsNotTrue(_) | Expr::IsNotFalse(_));
                Ok(Typed::new(Scalar::IsBool(Box::new(bound.scalar), wanted, negated), SqlType::Boolean, false))
            }
            Expr::IsDistinctFrom(left, right) | Expr::IsNotDistinctFrom(left, right) => {
                let (left_bound, right_bound) = (self.bind(left)?, self.bind(right)?);
                self.comparable(&left_bound, &right_bound, at)?;
                let negated = matches!(expr, Expr::IsNotDistinctFrom(..));
                Ok(Typed::new(
                    Scalar::IsDistinct(Box::new(left_bound.scalar), Box::new(right_bound.scalar), negated),
                    SqlType::Boolean,
                    false,
                ))
            }
            Expr::In { expr: inner, target: sqlparser::ast::InTarget::List(list), negated, .. } => {
                let bound = self.bind(inner)?;
                let mut nullable = bound.nullable;
                let mut items = Vec::new();
                for item in list {
                    let item_bound = self.bind(item)?;
                    self.comparable(&bound, &item_bound, position_of(item))?;
                    nullable |= item_bound.nullable;
                    items.push(item_bound.scalar);
                }
                Ok(Typed::new(Scalar::In(Box::new(bound.scalar), items, *negated), SqlType::Boolean, nullable))
            }
            Expr::Between { expr: inner, negated, low, high } => {
                let (value, low_bound, high_bound) = (self.bind(inner)?, self.bind(low)?, self.bind(high)?);
                self.comparable(&value, &low_bound, position_of(low))?;
                self.comparable(&value, &high_bound, position_of(high))?;
                let nullable = value.nullable || low_bound.nullable || high_bound.nullable;
                let within = Scalar::And(
                    Box::new(Scalar::Compare(Compare::GtEq, Box::new(value.scalar.clone()), Box::new(low_bound.scalar))),
                    Box::new(Scalar::Compare(Compare::LtEq, Box::new(value.scalar), Box::new(high_bound.scalar))),
                );
                let scalar = if *negated { Scalar::Not(Box::new(within)) } else { within };
                Ok(Typed::new(scalar, SqlType::Boolean, nullable))
            }
            Expr::Like { negated, expr: inner, pattern, escape_char, any: false }
            | Expr::ILike { negated, expr: inner, pattern, escape_char, any: false } => {
                let (value, pattern_bound) = (self.bind(inner)?, self.bind(pattern)?);
                for (bound, side) in [(&value, inner), (&pattern_bound, pattern)] {
                    if !matches!(bound.data_type, SqlType::String | SqlType::Null) {
                        return Err(SqlError::at(position_of(side), format!("LIKE needs text, got {}", bound.data_type)));
                    }
                }
                let escape = match escape_char {
                    None => None,
                    Some(escape) => match escape.as_ref() {
                        Expr::Value(value) => match &value.value {
                            AstValue::SingleQuotedString(text) if text.chars().count() == 1 => text.chars().next(),
                            other => return Err(SqlError::at(at, format!("an ESCAPE is one character, got {other}"))),
                        },
                        other => return Err(SqlError::at(at, format!("an ESCAPE is one character, got {other}"))),
                    },
                };
                let nullable = value.nullable || pattern_bound.nullable;
                let (value, pattern_scalar) = if matches!(expr, Expr::ILike { .. }) {
                    let lower = self.functions.scalar("LOWER").expect("LOWER is built in").clone();
                    (Scalar::Call(lower.clone(), vec![value.scalar]), Scalar::Call(lower, vec![pattern_bound.scalar]))
                } else {
                    (value.scalar, pattern_bound.scalar)
                };
                Ok(Typed::new(Scalar::Like(Box::new(value), Box::new(pattern_scalar), *negated, escape), SqlType::Boolean, nullable))
            }
            Expr::Case { operand, conditions, else_result, .. } => self.case(operand.as_deref(), conditions, else_result.as_deref()),
            Expr::Cast { kind, expr: inner, data_type, .. } => {
                let bound = self.bind(inner)?;
                let to = SqlType::from_ast(data_type).map_err(|message| SqlError::at(at, message))?;
                if !cast::can_cast(&bound.data_type, &to) {
                    return Err(SqlError::at(at, format!("cannot cast {} to {to}", bound.data_type)));
                }
                let safe = matches!(kind, CastKind::TryCast | CastKind::SafeCast);
                let nullable = bound.nullable || safe || cast::may_fail(&bound.data_type, &to);
                Ok(Typed::new(Scalar::Cast(Box::new(bound.scalar), bound.data_type, to.clone(), safe), to, nullable))
            }
            Expr::Extract { field, expr: inner, .. } => {
                let unit = Expr::value(AstValue::SingleQuotedString(field.to_string()));
                self.call_named("EXTRACT", &[unit, (**inner).clone()], at)
            }
            Expr::Substring { expr: inner, substring_from, substring_for, .. } => {
                let mut arguments = vec![(**inner).clone()];
                arguments.push(substring_from.as_deref().cloned().unwrap_or_else(|| Expr::value(AstValue::Number("1".into(), false))));
                arguments.extend(substring_for.as_deref().cloned());
                self.call_named("SUBSTRING", &arguments, at)
            }
            Expr::Position { expr: needle, r#in } => self.call_named("POSITION", &[(**needle).clone(), (**r#in).clone()], at),
            Expr::Overlay { expr: inner, overlay_what, overlay_from, overlay_for } => {
                let mut arguments = vec![(**inner).clone(), (**overlay_what).clone(), (**overlay_from).clone()];
                arguments.extend(overlay_for.as_deref().cloned());
                self.call_named("OVERLAY", &arguments, at)
            }
            Expr::Trim { trim_where, trim_what, expr: inner, .. } => {
                let name = match trim_where {
                    Some(sqlparser::ast::TrimWhereField::Leading) => "LTRIM",
                    Some(sqlparser::ast::TrimWhereField::Trailing) => "RTRIM",
                    _ => "BTRIM",
                };
                let mut arguments = vec![(**inner).clone()];
                arguments.extend(trim_what.as_deref().cloned());
                self.call_named(name, &arguments, at)
            }
            Expr::Ceil { expr: inner, field } | Expr::Floor { expr: inner, field } => {
                let name = if matches!(expr, Expr::Ceil { .. }) { "CEIL" } else { "FLOOR" };
                let mut arguments = vec![(**inner).clone()];
                if let sqlparser::ast::CeilFloorKind::DateTimeField(unit) = field {
                    if *unit != DateTimeField::NoDateTime {
                        arguments.push(Expr::value(AstValue::SingleQuotedString(unit.to_string())));
                    }
                }
                self.call_named(name, &arguments, at)
            }
            Expr::Function(function) => self.function(function, at),
            Expr::Array(array) => {
                let elements = array.elem.iter().map(|e| self.bind(e)).collect::<Result<Vec<_>, _>>()?;
                let mut element_type = SqlType::Null;
                for (element, source) in elements.iter().zip(&array.elem) {
                    element_type = SqlType::common(&element_type, &element.data_type).ok_or_else(|| {
                        SqlError::at(
                            position_of(source),
                            format!("array elements of types {element_type} and {} do not mix", element.data_type),
                        )
                    })?;
                }
                let scalars = elements.into_iter().map(|e| self.coerce(e, &element_type)).collect();
                Ok(Typed::new(Scalar::Array(scalars), SqlType::Array(Box::new(element_type)), false))
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                let mut bound = self.bind(root)?;
                for access in access_chain {
                    bound = match access {
                        sqlparser::ast::AccessExpr::Subscript(sqlparser::ast::Subscript::Index { index }) => {
                            let index_bound = self.bind(index)?;
                            let element = match &bound.data_type {
                                SqlType::Array(element) if index_bound.data_type.is_integer() => (**element).clone(),
                                SqlType::Map(key, value) if SqlType::common(key, &index_bound.data_type).is_some() => (**value).clone(),
                                other => {
                                    return Err(SqlError::at(
                                        position_of(index),
                                        format!("cannot index {other} with {}", index_bound.data_type),
                                    ))
                                }
                            };
                            Typed::new(Scalar::Index(Box::new(bound.scalar), Box::new(index_bound.scalar)), element, true)
                        }
                        sqlparser::ast::AccessExpr::Dot(Expr::Identifier(name)) => {
                            self.field_of(bound, &name.value, Position::of(name.span.start))?
                        }
                        _ => return Err(SqlError::at(at, format!("{expr} is not supported"))),
                    };
                }
                Ok(bound)
            }
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => Err(SqlError::at(at, "* is not an expression here")),
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::In { .. } => {
                Err(SqlError::at(at, "subqueries in expressions are not supported yet: write a join"))
            }
            other => Err(SqlError::at(at, format!("expression {other} is not supported"))),
        }
    }

    fn column(&self, qualifier: Option<&str>, name: &str, at: Option<Position>) -> Result<Typed, SqlError> {
        let index = self.scope.resolve(qualifier, name, at)?;
        let field = &self.scope.columns[index].field;
        Ok(Typed::new(Scalar::Column(index), field.data_type.clone(), field.nullable))
    }

    fn field_of(&self, row: Typed, name: &str, at: Option<Position>) -> Result<Typed, SqlError> {
        let SqlType::Row(fields) = &row.data_type else {
            return Err(SqlError::at(at, format!("{name}: a field of a {}, which has none", row.data_type)));
        };
        let Some(index) = fields.iter().position(|(field, _)| field.eq_ignore_ascii_case(name)) else {
            let hint = did_you_mean(name, fields.iter().map(|(field, _)| field.as_str()))
                .map(|nearest| format!("; did you mean {nearest}?"))
                .unwrap_or_default();
            return Err(SqlError::at(at, format!("the row has no field {name}{hint}")));
        };
        let data_type = fields[index].1.clone();
        Ok(Typed::new(Scalar::Field(Box::new(row.scalar), index), data_type, true))
    }

    fn literal(&self, value: &AstValue, at: Option<Position>) -> Result<Typed, SqlError> {
        match value {
            AstValue::Number(text, _) => number_literal(text, at),
            AstValue::SingleQuotedString(text) | AstValue::DoubleQuotedString(text) | AstValue::EscapedStringLiteral(text) => {
                Ok(Typed::new(Scalar::Literal(Value::text(text.as_str())), SqlType::String, false))
            }
            AstValue::Boolean(value) => Ok(Typed::new(Scalar::Literal(Value::Bool(*value)), SqlType::Boolean, false)),
            AstValue::Null => Ok(Typed::new(Scalar::Literal(Value::Null), SqlType::Null, true)),
            AstValue::HexStringLiteral(hex) => {
                let bytes = (0..hex.len())
                    .step_by(2)
                    .map(|i| hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| SqlError::at(at, format!("x'{hex}' is not hexadecimal bytes")))?;
                Ok(Typed::new(Scalar::Literal(Value::Bytes(bytes)), SqlType::Bytes, false))
            }
            other => Err(SqlError::at(at, format!("literal {other} is not supported"))),
        }
    }

    fn expect_boolean(&self, bound: &Typed, expr: &Expr, what: &str) -> Result<(), SqlError> {
        match bound.data_type {
            SqlType::Boolean | SqlType::Null => Ok(()),
            ref other => Err(SqlError::at(position_of(expr), format!("{what} needs a BOOLEAN, got {other}"))),
        }
    }

    fn comparable(&self, left: &Typed, right: &Typed, at: Option<Position>) -> Result<(), SqlError> {
        let ok = SqlType::common(&left.data_type, &right.data_type).is_some()
            || (left.data_type.is_numeric() && right.data_type.is_numeric())
            || (left.data_type == SqlType::Date && right.data_type.is_timestamp())
            || (left.data_type.is_timestamp() && right.data_type == SqlType::Date);
        if ok {
            Ok(())
        } else {
            Err(SqlError::at(at, format!("cannot compare {} with {}", left.data_type, right.data_type)))
        }
    }

    /// `bound` as a value of type `to` (a cast where the types differ in kind; numbers of one
    /// kind need none).
    fn coerce(&self, bound: Typed, to: &SqlType) -> Scalar {
        let same_kind = bound.data_type == *to
            || bound.data_type == SqlType::Null
            || (bound.data_type.is_integer() && to.is_integer())
            || (matches!(bound.data_type, SqlType::Float | SqlType::Double) && matches!(to, SqlType::Float | SqlType::Double));
        if same_kind {
            bound.scalar
        } else {
            Scalar::Cast(Box::new(bound.scalar), bound.data_type, to.clone(), false)
        }
    }

    fn binary(&self, left: &Expr, op: &BinaryOperator, right: &Expr, at: Option<Position>) -> Result<Typed, SqlError> {
        let (l, r) = (self.bind(left)?, self.bind(right)?);
        let nullable = l.nullable || r.nullable;
        let compare = match op {
            BinaryOperator::Eq => Some(Compare::Eq),
            BinaryOperator::NotEq => Some(Compare::NotEq),
            BinaryOperator::Lt => Some(Compare::Lt),
            BinaryOperator::LtEq => Some(Compare::LtEq),
            BinaryOperator::Gt => Some(Compare::Gt),
            BinaryOperator::GtEq => Some(Compare::GtEq),
            _ => None,
        };
        if let Some(compare) = compare {
            self.comparable(&l, &r, at)?;
            let (ls, rs) = match (&l.data_type, &r.data_type) {
                (SqlType::Date, t) if t.is_timestamp() => (Scalar::Cast(Box::new(l.scalar), SqlType::Date, t.clone(), false), r.scalar),
                (t, SqlType::Date) if t.is_timestamp() => (l.scalar, Scalar::Cast(Box::new(r.scalar), SqlType::Date, t.clone(), false)),
                _ => (l.scalar, r.scalar),
            };
            return Ok(Typed::new(Scalar::Compare(compare, Box::new(ls), Box::new(rs)), SqlType::Boolean, nullable));
        }
        let arith = match op {
            BinaryOperator::Plus => Some(Arith::Add),
            BinaryOperator::Minus => Some(Arith::Sub),
            BinaryOperator::Multiply => Some(Arith::Mul),
            BinaryOperator::Divide => Some(Arith::Div),
            BinaryOperator::Modulo => Some(Arith::Mod),
            _ => None,
        };
        if let Some(arith) = arith {
            let time_kind = |t: &SqlType| t.is_timestamp() || *t == SqlType::Date;
            let (data_type, numeric) = match (&l.data_type, &r.data_type) {
                (t, SqlType::Interval) if time_kind(t) && matches!(arith, Arith::Add | Arith::Sub) => {
                    (t.clone(), Numeric::TimePlusInterval)
                }
                (SqlType::Interval, t) if time_kind(t) && arith == Arith::Add => (t.clone(), Numeric::TimePlusInterval),
                (SqlType::Interval, SqlType::Interval) if matches!(arith, Arith::Add | Arith::Sub) => {
                    (SqlType::Interval, Numeric::Interval)
                }
                (SqlType::Interval, t) | (t, SqlType::Interval) if t.is_integer() && arith == Arith::Mul => {
                    (SqlType::Interval, Numeric::Interval)
                }
                (SqlType::Interval, t) if t.is_integer() && arith == Arith::Div => (SqlType::Interval, Numeric::Interval),
                (a, b) => arithmetic_type(arith, a, b)
                    .ok_or_else(|| SqlError::at(at, format!("operator {op} does not take {} and {}", l.data_type, r.data_type)))?,
            };
            let nullable = nullable || matches!(numeric, Numeric::Decimal { .. });
            return Ok(Typed::new(Scalar::Arith(arith, numeric, Box::new(l.scalar), Box::new(r.scalar)), data_type, nullable));
        }
        match op {
            BinaryOperator::And | BinaryOperator::Or => {
                self.expect_boolean(&l, left, &op.to_string())?;
                self.expect_boolean(&r, right, &op.to_string())?;
                let (a, b) = (Box::new(l.scalar), Box::new(r.scalar));
                let scalar = if *op == BinaryOperator::And { Scalar::And(a, b) } else { Scalar::Or(a, b) };
                Ok(Typed::new(scalar, SqlType::Boolean, nullable))
            }
            BinaryOperator::StringConcat => {
                let concat = self.functions.scalar("CONCAT").cloned().ok_or_else(|| SqlError::at(at, "|| needs the CONCAT function"))?;
                let to_text = |bound: Typed| match bound.data_type {
                    SqlType::String | SqlType::Null => bound.scalar,
                    other => Scalar::Cast(Box::new(bound.scalar), other, SqlType::String, false),
                };
                Ok(Typed::new(Scalar::Call(concat, vec![to_text(l), to_text(r)]), SqlType::String, nullable))
            }
            other => Err(SqlError::at(at, format!("operator {other} is not supported"))),
        }
    }

    fn case(&self, operand: Option<&Expr>, conditions: &[sqlparser::ast::CaseWhen], otherwise: Option<&Expr>) -> Result<Typed, SqlError> {
        let operand = operand.map(|operand| self.bind(operand)).transpose()?;
        let mut branches = Vec::new();
        let mut results = Vec::new();
        for when in conditions {
            let condition = match &operand {
                Some(operand) => {
                    let value = self.bind(&when.condition)?;
                    self.comparable(operand, &value, position_of(&when.condition))?;
                    Scalar::Compare(Compare::Eq, Box::new(operand.scalar.clone()), Box::new(value.scalar))
                }
                None => self.bind_condition(&when.condition, "WHEN")?.scalar,
            };
            branches.push(condition);
            results.push((self.bind(&when.result)?, &when.result));
        }
        let otherwise_bound = match otherwise {
            Some(otherwise) => self.bind(otherwise)?,
            None => Typed::new(Scalar::Literal(Value::Null), SqlType::Null, true),
        };
        let mut data_type = otherwise_bound.data_type.clone();
        let mut nullable = otherwise_bound.nullable;
        for (result, source) in &results {
            data_type = SqlType::common(&data_type, &result.data_type).ok_or_else(|| {
                SqlError::at(position_of(source), format!("CASE results of types {data_type} and {} do not mix", result.data_type))
            })?;
            nullable |= result.nullable;
        }
        let branches =
            branches.into_iter().zip(results).map(|(condition, (result, _))| (condition, self.coerce(result, &data_type))).collect();
        let otherwise = self.coerce(otherwise_bound, &data_type);
        Ok(Typed::new(Scalar::Case(branches, Box::new(otherwise)), data_type, nullable))
    }

    fn call_named(&self, name: &str, arguments: &[Expr], at: Option<Position>) -> Result<Typed, SqlError> {
        let bound = arguments.iter().map(|argument| self.bind(argument)).collect::<Result<Vec<_>, _>>()?;
        self.call(name, bound, at)
    }

    fn call(&self, name: &str, arguments: Vec<Typed>, at: Option<Position>) -> Result<Typed, SqlError> {
        let function = self.functions.scalar(name).cloned().ok_or_else(|| {
            let names = self.functions.scalars().map(|function| function.name());
            let hint = did_you_mean(name, names).map(|nearest| format!("; did you mean {nearest}?")).unwrap_or_default();
            SqlError::at(at, format!("no function named {name}{hint}"))
        })?;
        let types: Vec<SqlType> = arguments.iter().map(|argument| argument.data_type.clone()).collect();
        // Constant arguments let a function plan the call (ROUND's places, a pattern compiled once).
        let constants: Vec<Option<Value>> = arguments
            .iter()
            .map(|argument| match &argument.scalar {
                Scalar::Literal(value) => Some(value.clone()),
                _ => None,
            })
            .collect();
        let (data_type, function) = function
            .plan(&types, &constants)
            .map_err(|message| SqlError::at(at, format!("{}: {message} (signature: {})", function.name(), function.signature())))?;
        Ok(Typed::new(Scalar::Call(function, arguments.into_iter().map(|argument| argument.scalar).collect()), data_type, true))
    }

    fn function(&self, function: &sqlparser::ast::Function, at: Option<Position>) -> Result<Typed, SqlError> {
        let name = function.name.to_string();
        if self.functions.is_aggregate(&name) {
            return Err(SqlError::at(at, format!("aggregate function {name} is not allowed here")));
        }
        if function.over.is_some() {
            return Err(SqlError::at(at, format!("{name}(...) OVER is not supported here")));
        }
        let arguments: Vec<&Expr> = match &function.args {
            FunctionArguments::None => Vec::new(),
            FunctionArguments::Subquery(_) => return Err(SqlError::at(at, "a subquery is not a function argument")),
            FunctionArguments::List(list) => {
                if list.duplicate_treatment.is_some() {
                    return Err(SqlError::at(at, format!("DISTINCT is for aggregate functions, and {name} is not one")));
                }
                list.args
                    .iter()
                    .map(|argument| match argument {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr),
                        _ => Err(SqlError::at(at, format!("{name}: only plain arguments are supported"))),
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        let upper = name.to_uppercase();
        match upper.as_str() {
            "COALESCE" => {
                if arguments.is_empty() {
                    return Err(SqlError::at(at, "COALESCE takes one or more arguments"));
                }
                let bound = arguments.iter().map(|argument| self.bind(argument)).collect::<Result<Vec<_>, _>>()?;
                let mut data_type = SqlType::Null;
                for (argument, source) in bound.iter().zip(&arguments) {
                    data_type = SqlType::common(&data_type, &argument.data_type).ok_or_else(|| {
                        SqlError::at(
                            position_of(source),
                            format!("COALESCE arguments of types {data_type} and {} do not mix", argument.data_type),
                        )
                    })?;
                }
                let nullable = bound.iter().all(|argument| argument.nullable);
                let scalars = bound.into_iter().map(|argument| self.coerce(argument, &data_type)).collect();
                Ok(Typed::new(Scalar::Coalesce(scalars), data_type, nullable))
            }
            "ROW" => {
                let bound = arguments.iter().map(|argument| self.bind(argument)).collect::<Result<Vec<_>, _>>()?;
                let fields = bound.iter().enumerate().map(|(i, argument)| (format!("EXPR${i}"), argument.data_type.clone())).collect();
                Ok(Typed::new(Scalar::Row(bound.into_iter().map(|argument| argument.scalar).collect()), SqlType::Row(fields), false))
            }
            "TIMESTAMPADD" | "TIMESTAMPDIFF" => {
                // The unit is a keyword, TIMESTAMPADD(HOUR, 1, t): passed on by name, as EXTRACT's.
                let mut arguments: Vec<Expr> = arguments.iter().map(|argument| (*argument).clone()).collect();
                if let Some(Expr::Identifier(unit)) = arguments.first() {
                    if unit.quote_style.is_none() {
                        arguments[0] = Expr::value(AstValue::SingleQuotedString(unit.value.to_uppercase()));
                    }
                }
                self.call_named(&upper, &arguments, at)
            }
            "MAP" => {
                if !arguments.len().is_multiple_of(2) {
                    return Err(SqlError::at(at, "MAP takes keys and values in pairs"));
                }
                let bound = arguments.iter().map(|argument| self.bind(argument)).collect::<Result<Vec<_>, _>>()?;
                let (mut key_type, mut value_type) = (SqlType::Null, SqlType::Null);
                for pair in bound.chunks(2) {
                    key_type =
                        SqlType::common(&key_type, &pair[0].data_type).ok_or_else(|| SqlError::at(at, "MAP keys of different types"))?;
                    value_type = SqlType::common(&value_type, &pair[1].data_type)
                        .ok_or_else(|| SqlError::at(at, "MAP values of different types"))?;
                }
                let mut entries = Vec::new();
                let mut iter = bound.into_iter();
                while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
                    entries.push((self.coerce(key, &key_type), self.coerce(value, &value_type)));
                }
                Ok(Typed::new(Scalar::Map(entries), SqlType::Map(Box::new(key_type), Box::new(value_type)), false))
            }
            _ => {
                let bound = arguments.iter().map(|argument| self.bind(argument)).collect::<Result<Vec<_>, _>>()?;
                self.call(&upper, bound, at)
            }
        }
    }
}

/// A constant expression's value as printed, or `error: ...`: what the tests of expressions and
/// functions compare.
#[cfg(test)]
pub(crate) fn eval_text(sql: &str) -> String {
    match eval_constant(sql, &FunctionRegistry::default()) {
        Ok(value) => value.to_string(),
        Err(error) => format!("error: {error}"),
    }
}

/// The value of a constant expression (no columns), e.g. `UPPER('ab')`: for examples and tests.
pub fn eval_constant(sql: &str, functions: &FunctionRegistry) -> Result<Value, String> {
    let dialect = crate::dialect::TethysDialect;
    let expr = sqlparser::parser::Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_expr())
        .map_err(|error| error.to_string())?;
    let scope = Scope::default();
    let bound = Binder::new(&scope, functions).bind(&expr).map_err(|error| error.to_string())?;
    bound.scalar.eval(&[], &EvalContext::default())
}

#[cfg(test)]
mod tests {
    use super::eval_text as eval;
    use super::*;

    fn column(index: usize) -> Box<Scalar> {
        Box::new(Scalar::Column(index))
    }

    fn int(value: i64) -> Box<Scalar> {
        Box::new(Scalar::Literal(Value::Int(value)))
    }

    #[test]
    fn folding_computes_constant_parts_and_prunes_case_branches() {
        let context = EvalContext::default();
        // nexmark's computed dateTime with event_type (column 0) fixed at 2: the third column.
        let case = |event_type: Box<Scalar>| {
            Scalar::Case(
                vec![
                    (Scalar::Compare(Compare::Eq, event_type.clone(), int(0)), Scalar::Column(1)),
                    (Scalar::Compare(Compare::Eq, event_type, int(1)), Scalar::Column(2)),
                ],
                column(3),
            )
        };
        assert!(matches!(case(int(2)).folded(&context), Scalar::Column(3)));
        assert!(matches!(case(int(1)).folded(&context), Scalar::Column(2)));
        // Not constant: kept whole.
        assert!(matches!(case(column(0)).folded(&context), Scalar::Case(branches, _) if branches.len() == 2));
        // A constant branch after a row-dependent one becomes the ELSE.
        let mixed = Scalar::Case(
            vec![
                (Scalar::Compare(Compare::Eq, column(0), int(0)), Scalar::Column(1)),
                (Scalar::Compare(Compare::Lt, int(1), int(2)), Scalar::Column(2)),
                (Scalar::Compare(Compare::Eq, column(0), int(5)), Scalar::Column(4)),
            ],
            column(3),
        );
        match mixed.folded(&context) {
            Scalar::Case(branches, otherwise) => {
                assert_eq!(branches.len(), 1);
                assert!(matches!(*otherwise, Scalar::Column(2)));
            }
            other => panic!("expected a CASE, got {other:?}"),
        }
        // Operators over constants are computed; AND over a column is not.
        let sum = Scalar::Arith(Arith::Add, Numeric::Int, int(40), int(2));
        assert!(matches!(sum.folded(&context), Scalar::Literal(Value::Int(42))));
        let and = Scalar::And(Box::new(Scalar::Compare(Compare::Eq, int(2), int(2))), Box::new(Scalar::IsNull(column(0), false)));
        assert!(matches!(and.folded(&context), Scalar::And(left, _) if matches!(*left, Scalar::Literal(Value::Bool(true)))));
        // A part that fails stays, to fail per row with the row named.
        let division = Scalar::Arith(Arith::Div, Numeric::Int, int(1), int(0));
        assert!(matches!(division.folded(&context), Scalar::Arith(..)));
    }

    #[test]
    fn arithmetic_types_and_values_follow_flink() {
        assert_eq!(eval("1 + 2 * 3"), "7");
        assert_eq!(eval("7 / 2"), "3");
        assert_eq!(eval("7 % 3"), "1");
        assert_eq!(eval("1.5 + 1"), "2.5");
        assert_eq!(eval("0.1 + 0.2"), "0.3");
        assert_eq!(eval("1.0 / 3"), "0.333333333333");
        assert_eq!(eval("CAST(1 AS DOUBLE) / 4"), "0.25");
        assert_eq!(eval("1 / 0"), "error: division by zero");
        assert_eq!(eval("-(2 - 5)"), "3");
        assert_eq!(eval("TIMESTAMP '2024-01-01 00:00:00' + INTERVAL '90' MINUTES"), "2024-01-01 01:30:00.000");
        assert_eq!(eval("DATE '2024-02-28' + INTERVAL '1' DAY"), "2024-02-29");
    }

    #[test]
    fn nulls_follow_three_valued_logic() {
        assert_eq!(eval("NULL + 1"), "<NULL>");
        assert_eq!(eval("NULL AND FALSE"), "FALSE");
        assert_eq!(eval("NULL OR TRUE"), "TRUE");
        assert_eq!(eval("NULL AND TRUE"), "<NULL>");
        assert_eq!(eval("NOT (NULL = 1)"), "<NULL>");
        assert_eq!(eval("NULL IS NULL"), "TRUE");
        assert_eq!(eval("1 IN (2, NULL)"), "<NULL>");
        assert_eq!(eval("1 IN (1, NULL)"), "TRUE");
        assert_eq!(eval("NULL IS DISTINCT FROM NULL"), "FALSE");
        assert_eq!(eval("COALESCE(NULL, 2, 3)"), "2");
    }

    #[test]
    fn case_between_like_and_casts() {
        assert_eq!(eval("CASE WHEN 1 > 2 THEN 'a' WHEN 2 > 1 THEN 'b' ELSE 'c' END"), "b");
        assert_eq!(eval("CASE 3 WHEN 1 THEN 'one' WHEN 3 THEN 'three' END"), "three");
        assert_eq!(eval("CASE 4 WHEN 1 THEN 'one' END"), "<NULL>");
        assert_eq!(eval("CASE WHEN TRUE THEN 1 ELSE 2.5 END"), "1.0");
        assert_eq!(eval("5 BETWEEN 1 AND 10"), "TRUE");
        assert_eq!(eval("5 NOT BETWEEN 1 AND 4"), "TRUE");
        assert_eq!(eval("'tethys' LIKE 't%s'"), "TRUE");
        assert_eq!(eval("'tethys' LIKE 't_thys'"), "TRUE");
        assert_eq!(eval("'50%' LIKE '50!%' ESCAPE '!'"), "TRUE");
        assert_eq!(eval("'Tethys' ILIKE 'tETHYS'"), "TRUE");
        assert_eq!(eval("CAST('42' AS INT) + 1"), "43");
        assert_eq!(eval("CAST('x' AS INT)"), "error: cannot cast 'x' to INT");
        assert_eq!(eval("TRY_CAST('x' AS INT)"), "<NULL>");
        assert_eq!(eval("CAST(2.345 AS DECIMAL(10, 2))"), "2.35");
        assert_eq!(eval("CAST(TIMESTAMP '2024-01-01 10:00:00' AS DATE)"), "2024-01-01");
        assert_eq!(eval("ARRAY[1, 2, 3][2]"), "2");
    }

    #[test]
    fn binding_errors_say_what_and_where() {
        let scope =
            Scope::of(&Schema::new(vec![Field::new("price", SqlType::BigInt), Field::new("channel", SqlType::String)]), Some("bids"));
        let functions = FunctionRegistry::default();
        let bind = |sql: &str| {
            let dialect = crate::dialect::TethysDialect;
            let expr = sqlparser::parser::Parser::new(&dialect).try_with_sql(sql).unwrap().parse_expr().unwrap();
            Binder::new(&scope, &functions).bind(&expr).map(|bound| bound.data_type).map_err(|error| error.to_string())
        };
        assert_eq!(bind("prise + 1"), Err("line 1, column 1: no column named prise; did you mean price?".into()));
        assert_eq!(bind("bids.price * 2"), Ok(SqlType::BigInt));
        assert_eq!(bind("price + channel"), Err("line 1, column 1: operator + does not take BIGINT and STRING".into()));
        assert_eq!(bind("price = 'x'"), Err("line 1, column 1: cannot compare BIGINT with STRING".into()));
        assert_eq!(bind("UPPR(channel)"), Err("line 1, column 1: no function named UPPR; did you mean UPPER?".into()));
        assert!(bind("UPPER(price)").unwrap_err().contains("argument 1 must be STRING, got BIGINT"));
        assert_eq!(bind("SUM(price)"), Err("line 1, column 1: aggregate function SUM is not allowed here".into()));
    }
}
