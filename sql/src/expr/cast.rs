//! `CAST(value AS type)`: which casts exist, which may fail on some values, and how each is done.

use crate::function::EvalContext;
use crate::time::{format_timestamp, parse_date, parse_time, parse_timestamp, MS_PER_DAY};
use crate::types::SqlType;
use crate::value::{format_double, Decimal, Value};

/// Whether a value of type `from` can be cast to `to` at all.
pub fn can_cast(from: &SqlType, to: &SqlType) -> bool {
    use SqlType as T;
    if from == to || *from == T::Null {
        return true;
    }
    match (from, to) {
        (_, T::String) => true,
        (T::String, _) => !matches!(to, T::Array(_) | T::Map(..) | T::Row(_)),
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (T::Boolean, b) | (b, T::Boolean) if b.is_numeric() => true,
        (T::Date, b) if b.is_timestamp() => true,
        (a, T::Date | T::Time) if a.is_timestamp() => true,
        (a, b) if a.is_timestamp() && b.is_timestamp() => true,
        (a, b) if a.is_timestamp() && b.is_integer() => true,
        (a, b) if a.is_integer() && b.is_timestamp() => true,
        (T::Array(a), T::Array(b)) => can_cast(a, b),
        _ => false,
    }
}

/// Whether the cast can fail for some values (text to anything else, a narrowing decimal), so
/// its result may be NULL under `TRY_CAST`.
pub fn may_fail(from: &SqlType, to: &SqlType) -> bool {
    from != to && (*from == SqlType::String || matches!(to, SqlType::Decimal { .. }))
}

fn int_range(to: &SqlType) -> (i64, i64) {
    match to {
        SqlType::TinyInt => (i64::from(i8::MIN), i64::from(i8::MAX)),
        SqlType::SmallInt => (i64::from(i16::MIN), i64::from(i16::MAX)),
        SqlType::Int => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::Str(text) => format!("'{text}'"),
        other => other.to_string(),
    }
}

/// `value` (of type `from`) as a value of type `to`, or why it cannot be.
pub fn cast_value(value: Value, from: &SqlType, to: &SqlType, context: &EvalContext) -> Result<Value, String> {
    use SqlType as T;
    if value.is_null() || from == to {
        return Ok(value);
    }
    let fail = |value: &Value| format!("cannot cast {} to {to}", shown(value));
    Ok(match to {
        T::String => match &value {
            Value::Float(v) => Value::text(format_double(*v)),
            Value::Timestamp(ms) if *from == T::TimestampLtz => Value::text(format_timestamp(ms + context.zone.offset_ms(*ms))),
            Value::Bool(v) => Value::Str(if *v { "TRUE" } else { "FALSE" }.into()),
            other => Value::text(other.to_string()),
        },
        t if t.is_integer() => {
            let integer = match &value {
                Value::Int(v) => Some(*v),
                Value::Float(v) if v.is_finite() => Some(v.trunc() as i64),
                Value::Decimal(v) => v.trunc_i64(),
                Value::Bool(v) => Some(i64::from(*v)),
                Value::Str(text) => text.trim().parse::<i64>().ok(),
                Value::Timestamp(ms) => Some(ms.div_euclid(1000)),
                _ => None,
            };
            let (min, max) = int_range(t);
            match integer {
                Some(v) if *from == T::String && !(min..=max).contains(&v) => return Err(fail(&value)),
                // Numbers narrow as Java's casts do (wrapping); Flink does the same.
                Some(v) => Value::Int(match t {
                    T::TinyInt => i64::from(v as i8),
                    T::SmallInt => i64::from(v as i16),
                    T::Int => i64::from(v as i32),
                    _ => v,
                }),
                None => return Err(fail(&value)),
            }
        }
        T::Float | T::Double => match &value {
            Value::Str(text) => Value::Float(text.trim().parse::<f64>().map_err(|_| fail(&value))?),
            Value::Bool(v) => Value::Float(if *v { 1.0 } else { 0.0 }),
            other => Value::Float(other.as_f64().ok_or_else(|| fail(other))?),
        },
        T::Decimal { precision, scale } => {
            let decimal = match &value {
                Value::Str(text) => Decimal::parse(text),
                Value::Float(v) => Decimal::from_f64(*v, *scale),
                Value::Bool(v) => Some(Decimal::from_i64(i64::from(*v))),
                other => other.as_decimal(),
            };
            match decimal.and_then(|d| d.rescale(*scale)) {
                Some(d) if d.fits(*precision) => Value::Decimal(d),
                // A number too large for the decimal is NULL, as in Flink; bad text is an error.
                Some(_) | None if !matches!(value, Value::Str(_)) => Value::Null,
                _ => return Err(fail(&value)),
            }
        }
        T::Boolean => match &value {
            Value::Str(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "1" => Value::Bool(true),
                "false" | "f" | "no" | "n" | "0" => Value::Bool(false),
                _ => return Err(fail(&value)),
            },
            other => Value::Bool(other.as_f64().ok_or_else(|| fail(other))? != 0.0),
        },
        T::Date => match &value {
            Value::Str(text) => Value::Date(
                parse_date(text)
                    .or_else(|| parse_timestamp(text).map(|ms| ms.div_euclid(MS_PER_DAY) as i32))
                    .ok_or_else(|| fail(&value))?,
            ),
            Value::Timestamp(ms) => {
                let local = if *from == T::TimestampLtz { ms + context.zone.offset_ms(*ms) } else { *ms };
                Value::Date(local.div_euclid(MS_PER_DAY) as i32)
            }
            other => return Err(fail(other)),
        },
        T::Time => match &value {
            Value::Str(text) => Value::Time(parse_time(text).ok_or_else(|| fail(&value))?),
            Value::Timestamp(ms) => Value::Time(ms.rem_euclid(MS_PER_DAY) as i32),
            other => return Err(fail(other)),
        },
        T::Timestamp | T::TimestampLtz => match &value {
            Value::Str(text) => {
                let local = parse_timestamp(text).ok_or_else(|| fail(&value))?;
                Value::Timestamp(if *to == T::TimestampLtz { local - context.zone.offset_ms(local) } else { local })
            }
            Value::Date(days) => Value::Timestamp(i64::from(*days) * MS_PER_DAY),
            Value::Timestamp(ms) => match (from, to) {
                (T::Timestamp, T::TimestampLtz) => Value::Timestamp(ms - context.zone.offset_ms(*ms)),
                (T::TimestampLtz, T::Timestamp) => Value::Timestamp(ms + context.zone.offset_ms(*ms)),
                _ => Value::Timestamp(*ms),
            },
            // Integers are seconds since the epoch, as Flink's cast.
            Value::Int(seconds) => Value::Timestamp(seconds * 1000),
            other => return Err(fail(other)),
        },
        T::Array(element) => match (&value, from) {
            (Value::Array(values), T::Array(from_element)) => {
                Value::Array(values.iter().cloned().map(|v| cast_value(v, from_element, element, context)).collect::<Result<_, _>>()?)
            }
            (other, _) => return Err(fail(other)),
        },
        _ => return Err(fail(&value)),
    })
}
