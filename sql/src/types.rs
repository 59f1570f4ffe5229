//! SQL types as Flink defines them, and schemas: what each column of a table or query holds.
//!
//! Every integer type is held as an `i64` value and every approximate type as an `f64` (their
//! declared widths are kept for display, casts and `DESCRIBE`); `DECIMAL(p, s)` is exact;
//! `TIMESTAMP(p)` and `TIMESTAMP_LTZ(p)` are milliseconds since the epoch (the first in no zone,
//! the second an instant shown in the session's zone).

use std::fmt;

use sqlparser::ast::{DataType, ExactNumberInfo, TimezoneInfo};

/// A SQL type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// `BOOLEAN`.
    Boolean,
    /// `TINYINT`.
    TinyInt,
    /// `SMALLINT`.
    SmallInt,
    /// `INT`.
    Int,
    /// `BIGINT`.
    BigInt,
    /// `FLOAT`.
    Float,
    /// `DOUBLE`.
    Double,
    /// `DECIMAL(precision, scale)`.
    Decimal {
        /// Digits in all.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
    /// `STRING`, `VARCHAR(n)`, `CHAR(n)`: text (lengths are not enforced).
    String,
    /// `BYTES`, `VARBINARY(n)`.
    Bytes,
    /// `DATE`: days since 1970-01-01.
    Date,
    /// `TIME`: milliseconds of the day.
    Time,
    /// `TIMESTAMP(p)`: a date and time in no zone.
    Timestamp,
    /// `TIMESTAMP_LTZ(p)`: an instant, shown in the session's zone.
    TimestampLtz,
    /// `INTERVAL ... SECOND` and the like: a duration in milliseconds.
    Interval,
    /// `ARRAY<t>`.
    Array(Box<SqlType>),
    /// `MAP<k, v>`.
    Map(Box<SqlType>, Box<SqlType>),
    /// `ROW<name type, ...>`.
    Row(Vec<(String, SqlType)>),
    /// The type of a bare `NULL`: it becomes whatever it meets.
    Null,
}

/// The largest precision of a `DECIMAL`: its unscaled value fits an `i128`.
pub const DECIMAL_PRECISION_MAX: u8 = 38;

impl SqlType {
    /// The most characters a value of this type shows as in a result table (as Flink's SQL
    /// client sizes its columns), `None` for text and nested types, whose length has no bound.
    /// A `NULL` shows as 4 characters, which every type's width holds.
    pub fn display_width(&self) -> Option<usize> {
        Some(match self {
            SqlType::Boolean => 5,
            SqlType::TinyInt => 4,
            SqlType::SmallInt => 6,
            SqlType::Int => 11,
            SqlType::BigInt => 20,
            SqlType::Float | SqlType::Double => 24,
            // Digits, a sign and a point.
            SqlType::Decimal { precision, .. } => *precision as usize + 2,
            SqlType::Date => 10,
            SqlType::Time => 12,
            SqlType::Timestamp | SqlType::TimestampLtz => 23,
            SqlType::Null => 4,
            SqlType::String | SqlType::Bytes | SqlType::Interval | SqlType::Array(_) | SqlType::Map(..) | SqlType::Row(_) => return None,
        })
    }

    /// The type a column declared as `data_type` holds, or what is not supported.
    pub fn from_ast(data_type: &DataType) -> Result<SqlType, String> {
        use DataType as D;
        Ok(match data_type {
            D::Boolean | D::Bool => SqlType::Boolean,
            D::TinyInt(_) => SqlType::TinyInt,
            D::SmallInt(_) => SqlType::SmallInt,
            D::Int(_) | D::Integer(_) => SqlType::Int,
            D::BigInt(_) => SqlType::BigInt,
            D::Float(_) | D::Real => SqlType::Float,
            D::Double(_) | D::DoublePrecision => SqlType::Double,
            D::Decimal(info) | D::Numeric(info) | D::Dec(info) => {
                let (precision, scale) = match info {
                    ExactNumberInfo::None => (10, 0),
                    ExactNumberInfo::Precision(p) => (*p, 0),
                    ExactNumberInfo::PrecisionAndScale(p, s) => (*p, (*s).max(0) as u64),
                };
                if precision == 0 || precision > u64::from(DECIMAL_PRECISION_MAX) || scale > precision {
                    return Err(format!(
                        "DECIMAL({precision}, {scale}) is not a decimal type: precision 1 to {DECIMAL_PRECISION_MAX}, scale 0 to the precision"
                    ));
                }
                SqlType::Decimal { precision: precision as u8, scale: scale as u8 }
            }
            D::Char(_) | D::Character(_) | D::Varchar(_) | D::CharVarying(_) | D::CharacterVarying(_) | D::String(_) | D::Text => {
                SqlType::String
            }
            D::Binary(_) | D::Varbinary(_) | D::Bytes(_) | D::Blob(_) | D::Bytea => SqlType::Bytes,
            D::Date => SqlType::Date,
            D::Time(_, _) => SqlType::Time,
            D::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => SqlType::TimestampLtz,
            D::Timestamp(_, _) | D::Datetime(_) => SqlType::Timestamp,
            D::Custom(name, modifiers) if name.to_string().eq_ignore_ascii_case("TIMESTAMP_LTZ") && modifiers.len() <= 1 => {
                SqlType::TimestampLtz
            }
            D::Interval { .. } => SqlType::Interval,
            D::Array(element) => match element {
                sqlparser::ast::ArrayElemTypeDef::AngleBracket(inner)
                | sqlparser::ast::ArrayElemTypeDef::SquareBracket(inner, _)
                | sqlparser::ast::ArrayElemTypeDef::Parenthesis(inner) => SqlType::Array(Box::new(SqlType::from_ast(inner)?)),
                _ => return Err("ARRAY needs its element type: ARRAY<INT>".into()),
            },
            D::Map(key, value, _) => SqlType::Map(Box::new(SqlType::from_ast(key)?), Box::new(SqlType::from_ast(value)?)),
            D::Struct(fields, _) => SqlType::Row(
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, field)| {
                        let name = field.field_name.as_ref().map(|name| name.value.clone()).unwrap_or_else(|| format!("f{i}"));
                        Ok((name, SqlType::from_ast(&field.field_type)?))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            D::Custom(name, _) if name.to_string().eq_ignore_ascii_case("STRING") => SqlType::String,
            D::Custom(name, _) if name.to_string().eq_ignore_ascii_case("BYTES") => SqlType::Bytes,
            other => return Err(format!("type {other} is not supported")),
        })
    }

    /// Whether it is an exact or approximate number.
    pub fn is_numeric(&self) -> bool {
        self.is_integer() || matches!(self, SqlType::Float | SqlType::Double | SqlType::Decimal { .. })
    }

    /// Whether it is an integer type.
    pub fn is_integer(&self) -> bool {
        matches!(self, SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt)
    }

    /// Whether it is a timestamp (with or without a zone).
    pub fn is_timestamp(&self) -> bool {
        matches!(self, SqlType::Timestamp | SqlType::TimestampLtz)
    }

    /// Whether it is text.
    pub fn is_string(&self) -> bool {
        matches!(self, SqlType::String)
    }

    /// The precision and scale of an exact number of this type (integers as decimals with scale 0).
    pub fn decimal_digits(&self) -> Option<(u8, u8)> {
        Some(match self {
            SqlType::TinyInt => (3, 0),
            SqlType::SmallInt => (5, 0),
            SqlType::Int => (10, 0),
            SqlType::BigInt => (19, 0),
            SqlType::Decimal { precision, scale } => (*precision, *scale),
            _ => return None,
        })
    }

    fn integer_rank(&self) -> u8 {
        match self {
            SqlType::TinyInt => 1,
            SqlType::SmallInt => 2,
            SqlType::Int => 3,
            _ => 4,
        }
    }

    /// The common type of two types (for arithmetic, comparison, CASE branches, UNION), or `None`
    /// when they have none.
    pub fn common(a: &SqlType, b: &SqlType) -> Option<SqlType> {
        use SqlType as T;
        Some(match (a, b) {
            (T::Null, other) | (other, T::Null) => other.clone(),
            (a, b) if a == b => a.clone(),
            (a, b) if a.is_integer() && b.is_integer() => {
                if a.integer_rank() >= b.integer_rank() {
                    a.clone()
                } else {
                    b.clone()
                }
            }
            (T::Double, b) | (b, T::Double) if b.is_numeric() => T::Double,
            (T::Float, b) | (b, T::Float) if b.is_numeric() => T::Float,
            (a, b) if a.is_numeric() && b.is_numeric() => {
                let (pa, sa) = a.decimal_digits()?;
                let (pb, sb) = b.decimal_digits()?;
                let scale = sa.max(sb);
                let integer_digits = (pa - sa).max(pb - sb);
                T::Decimal { precision: (integer_digits + scale).min(DECIMAL_PRECISION_MAX), scale }
            }
            (T::Timestamp, T::TimestampLtz) | (T::TimestampLtz, T::Timestamp) => T::TimestampLtz,
            (T::Array(a), T::Array(b)) => T::Array(Box::new(SqlType::common(a, b)?)),
            _ => return None,
        })
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Boolean => write!(f, "BOOLEAN"),
            SqlType::TinyInt => write!(f, "TINYINT"),
            SqlType::SmallInt => write!(f, "SMALLINT"),
            SqlType::Int => write!(f, "INT"),
            SqlType::BigInt => write!(f, "BIGINT"),
            SqlType::Float => write!(f, "FLOAT"),
            SqlType::Double => write!(f, "DOUBLE"),
            SqlType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            SqlType::String => write!(f, "STRING"),
            SqlType::Bytes => write!(f, "BYTES"),
            SqlType::Date => write!(f, "DATE"),
            SqlType::Time => write!(f, "TIME(0)"),
            SqlType::Timestamp => write!(f, "TIMESTAMP(3)"),
            SqlType::TimestampLtz => write!(f, "TIMESTAMP_LTZ(3)"),
            SqlType::Interval => write!(f, "INTERVAL SECOND(3)"),
            SqlType::Array(element) => write!(f, "ARRAY<{element}>"),
            SqlType::Map(key, value) => write!(f, "MAP<{key}, {value}>"),
            SqlType::Row(fields) => {
                write!(f, "ROW<")?;
                for (i, (name, field)) in fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "`{name}` {field}")?;
                }
                write!(f, ">")
            }
            SqlType::Null => write!(f, "NULL"),
        }
    }
}

/// A column of a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Its type.
    pub data_type: SqlType,
    /// Whether it may be NULL.
    pub nullable: bool,
    /// Whether it is the stream's event time (a time attribute with a watermark): windows and
    /// interval joins need one.
    pub event_time: bool,
    /// Whether it is a processing-time attribute (a `PROCTIME()` column): windows over it assign
    /// rows and fire by the wall clock of the operator that windows them.
    pub proc_time: bool,
}

impl Field {
    /// A nullable column that is not an event time.
    pub fn new(name: impl Into<String>, data_type: SqlType) -> Field {
        Field { name: name.into(), data_type, nullable: true, event_time: false, proc_time: false }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.data_type)?;
        if !self.nullable {
            write!(f, " NOT NULL")?;
        }
        if self.event_time {
            write!(f, " *ROWTIME*")?;
        }
        if self.proc_time {
            write!(f, " *PROCTIME*")?;
        }
        Ok(())
    }
}

/// The columns of a table or of a query's rows, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    /// The columns.
    pub fields: Vec<Field>,
}

impl Schema {
    /// A schema of these columns.
    pub fn new(fields: Vec<Field>) -> Schema {
        Schema { fields }
    }

    /// The index of column `name` (compared without case).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|field| field.name.eq_ignore_ascii_case(name))
    }

    /// The column names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|field| field.name.as_str())
    }

    /// The index of the event-time column, if it has one.
    pub fn event_time(&self) -> Option<usize> {
        self.fields.iter().position(|field| field.event_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_types_widen_as_flink_does() {
        assert_eq!(SqlType::common(&SqlType::Int, &SqlType::BigInt), Some(SqlType::BigInt));
        assert_eq!(SqlType::common(&SqlType::Int, &SqlType::Double), Some(SqlType::Double));
        assert_eq!(
            SqlType::common(&SqlType::Int, &SqlType::Decimal { precision: 5, scale: 2 }),
            Some(SqlType::Decimal { precision: 12, scale: 2 })
        );
        assert_eq!(SqlType::common(&SqlType::Null, &SqlType::String), Some(SqlType::String));
        assert_eq!(SqlType::common(&SqlType::String, &SqlType::Int), None);
    }
}
