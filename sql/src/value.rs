//! Values of SQL rows and the rows themselves: what flows through a SQL job's operators.
//!
//! A [`Row`] is a record of the engine (it crosses processes and checkpoints through its codec)
//! with its changelog kind, as Flink's `RowData`: `+I` insert, `-U` update-before, `+U`
//! update-after, `-D` delete. Its values are dynamically typed [`Value`]s whose types the planner
//! checked; a [`RowKey`] is the part of a row a keyed operator groups by.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use tethys_engine::base::key::{KeyBytes, KeyHasher};

use crate::text::Text;
use crate::time::{format_date, format_time, format_timestamp};

/// An exact decimal number: `unscaled / 10^scale`. The digits are kept as two 64-bit halves
/// (8-byte aligned, so a `Value` is 32 bytes rather than an `i128`'s 48).
#[derive(Debug, Clone, Copy, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Decimal {
    /// The digits' low 64 bits.
    low: u64,
    /// The digits' high 64 bits (with the sign).
    high: i64,
    /// How many of them are after the point.
    pub scale: u8,
}

const POWERS_OF_TEN: [i128; 39] = {
    let mut powers = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        powers[i] = powers[i - 1] * 10;
        i += 1;
    }
    powers
};

/// `10^exponent` (exponent at most 38).
pub fn ten_to(exponent: u8) -> i128 {
    POWERS_OF_TEN[exponent as usize]
}

impl Decimal {
    /// `unscaled / 10^scale`.
    pub fn new(unscaled: i128, scale: u8) -> Decimal {
        assert!(scale <= crate::types::DECIMAL_PRECISION_MAX, "a decimal's scale is at most 38");
        Decimal { low: unscaled as u64, high: (unscaled >> 64) as i64, scale }
    }

    /// The digits: the number times `10^scale`.
    pub fn unscaled(&self) -> i128 {
        (i128::from(self.high) << 64) | i128::from(self.low)
    }

    /// An integer as a decimal of scale 0.
    pub fn from_i64(value: i64) -> Decimal {
        Decimal::new(i128::from(value), 0)
    }

    /// The same number with `scale` digits after the point, rounded half away from zero as
    /// Flink's casts do; `None` when it overflows.
    pub fn rescale(self, scale: u8) -> Option<Decimal> {
        match scale.cmp(&self.scale) {
            Ordering::Equal => Some(self),
            Ordering::Greater => Some(Decimal::new(self.unscaled().checked_mul(ten_to(scale - self.scale))?, scale)),
            Ordering::Less => {
                let divisor = ten_to(self.scale - scale);
                let (quotient, remainder) = (self.unscaled() / divisor, self.unscaled() % divisor);
                let rounded = if remainder.abs() * 2 >= divisor { quotient + self.unscaled().signum() } else { quotient };
                Some(Decimal::new(rounded, scale))
            }
        }
    }

    /// The nearest `f64`.
    pub fn to_f64(self) -> f64 {
        self.unscaled() as f64 / ten_to(self.scale) as f64
    }

    /// The integer part (towards zero).
    pub fn trunc_i64(self) -> Option<i64> {
        i64::try_from(self.unscaled() / ten_to(self.scale)).ok()
    }

    /// `value` rounded to `scale` digits, or `None` if it is not finite or overflows.
    pub fn from_f64(value: f64, scale: u8) -> Option<Decimal> {
        let scaled = (value * ten_to(scale) as f64).round();
        (scaled.is_finite() && scaled.abs() < 1e38).then(|| Decimal::new(scaled as i128, scale))
    }

    /// Whether it fits `precision` digits in all.
    pub fn fits(self, precision: u8) -> bool {
        precision >= crate::types::DECIMAL_PRECISION_MAX || self.unscaled().abs() < ten_to(precision)
    }

    /// Parses `-12.345` (an optional sign, digits, an optional point and digits).
    pub fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.len() > 38 {
            return None;
        }
        if !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut unscaled: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            unscaled = unscaled.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        Some(Decimal::new(if negative { -unscaled } else { unscaled }, fraction.len() as u8))
    }

    fn aligned(self, other: Decimal) -> Option<(i128, i128, u8)> {
        let scale = self.scale.max(other.scale);
        Some((self.rescale(scale)?.unscaled(), other.rescale(scale)?.unscaled(), scale))
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal::new(a.checked_add(b)?, scale))
    }

    /// `self - other`, `None` on overflow.
    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Decimal::new(a.checked_sub(b)?, scale))
    }

    /// `self * other` (scales add, capped at 38 by rounding), `None` on overflow.
    pub fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale + other.scale;
        let product = Decimal::new(self.unscaled().checked_mul(other.unscaled())?, scale.min(38));
        if scale > 38 {
            return Decimal { scale, ..product }.rescale_wide(38);
        }
        Some(product)
    }

    fn rescale_wide(self, scale: u8) -> Option<Decimal> {
        let divisor = 10i128.checked_pow(u32::from(self.scale - scale))?;
        Some(Decimal::new(self.unscaled() / divisor, scale))
    }

    /// `self / other` with `scale` digits after the point, rounded half away from zero; `None`
    /// on division by zero or overflow.
    pub fn checked_div(self, other: Decimal, scale: u8) -> Option<Decimal> {
        if other.unscaled() == 0 {
            return None;
        }
        // self.unscaled() / 10^s1 / (other.unscaled() / 10^s2) * 10^scale, with one more digit to round.
        let shift = i32::from(scale) + i32::from(other.scale) - i32::from(self.scale) + 1;
        let (numerator, denominator) = if shift >= 0 {
            (self.unscaled().checked_mul(10i128.checked_pow(shift as u32)?)?, other.unscaled())
        } else {
            (self.unscaled(), other.unscaled().checked_mul(10i128.checked_pow((-shift) as u32)?)?)
        };
        let with_digit = numerator / denominator;
        let rounded = (with_digit + with_digit.signum() * 5) / 10;
        Some(Decimal::new(rounded, scale))
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Decimal) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        match self.aligned(*other) {
            Some((a, b, _)) => a.cmp(&b),
            None => self.to_f64().total_cmp(&other.to_f64()),
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.unscaled().unsigned_abs().to_string();
        let sign = if self.unscaled() < 0 { "-" } else { "" };
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        write!(f, "{sign}{whole}.{fraction}")
    }
}

/// A value of a SQL column.
#[derive(Debug, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(serialize_bounds(__S: rkyv::ser::Writer + rkyv::ser::Allocator, __S::Error: rkyv::rancor::Source))]
#[rkyv(deserialize_bounds(__D::Error: rkyv::rancor::Source))]
#[rkyv(bytecheck(bounds(__C: rkyv::validation::ArchiveContext)))]
pub enum Value {
    /// SQL's NULL.
    Null,
    /// A `BOOLEAN`.
    Bool(bool),
    /// Any integer type.
    Int(i64),
    /// `FLOAT` or `DOUBLE`.
    Float(f64),
    /// A `DECIMAL`.
    Decimal(Decimal),
    /// Text (inline when short, borrowed when it lives as long as the program: see [`Text`]).
    Str(#[rkyv(with = crate::text::AsString)] Text),
    /// Bytes.
    Bytes(Vec<u8>),
    /// A `DATE`: days since 1970-01-01.
    Date(i32),
    /// A `TIME`: milliseconds of the day.
    Time(i32),
    /// A `TIMESTAMP` or `TIMESTAMP_LTZ`: milliseconds since the epoch.
    Timestamp(i64),
    /// An interval in milliseconds.
    Interval(i64),
    /// An `ARRAY`.
    Array(#[rkyv(omit_bounds)] Vec<Value>),
    /// A `MAP`, its entries in order.
    Map(#[rkyv(omit_bounds)] Vec<(Value, Value)>),
    /// A `ROW`.
    Row(#[rkyv(omit_bounds)] Vec<Value>),
}

const _: () = assert!(std::mem::size_of::<Value>() == 32, "a value is 32 bytes: rows copy and move them by the million");

impl Clone for Value {
    /// Scalars are copied where the clone is called (keys, result rows and joined rows clone
    /// them by the million); only values owning memory take a call.
    #[inline]
    fn clone(&self) -> Value {
        match *self {
            Value::Null => Value::Null,
            Value::Bool(v) => Value::Bool(v),
            Value::Int(v) => Value::Int(v),
            Value::Float(v) => Value::Float(v),
            Value::Decimal(v) => Value::Decimal(v),
            Value::Date(v) => Value::Date(v),
            Value::Time(v) => Value::Time(v),
            Value::Timestamp(v) => Value::Timestamp(v),
            Value::Interval(v) => Value::Interval(v),
            _ => self.clone_owning(),
        }
    }
}

impl Value {
    /// The clone of a value owning memory (text, bytes, arrays, maps, rows).
    #[inline(never)]
    fn clone_owning(&self) -> Value {
        match self {
            Value::Str(text) => Value::Str(text.clone()),
            Value::Bytes(bytes) => Value::Bytes(bytes.clone()),
            Value::Array(values) => Value::Array(values.clone()),
            Value::Map(entries) => Value::Map(entries.clone()),
            Value::Row(values) => Value::Row(values.clone()),
            scalar => unreachable!("{scalar:?} is cloned inline"),
        }
    }
}

impl Value {
    /// Puts `value` in this one's place, as assignment does, but calls no drop for a NULL there:
    /// for slots of a reused row, most of them NULL after their values moved on.
    #[inline(always)]
    pub fn put(&mut self, value: Value) {
        if matches!(self, Value::Null) {
            // A NULL owns nothing: forgetting it drops nothing.
            std::mem::forget(std::mem::replace(self, value));
        } else {
            *self = value;
        }
    }

    /// Whether it is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Its boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// Its integer (an integer, or the days, milliseconds of a date, time, timestamp or interval).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(value) | Value::Timestamp(value) | Value::Interval(value) => Some(*value),
            Value::Date(value) | Value::Time(value) => Some(i64::from(*value)),
            _ => None,
        }
    }

    /// Its number as an `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(value) => Some(*value as f64),
            Value::Float(value) => Some(*value),
            Value::Decimal(value) => Some(value.to_f64()),
            _ => None,
        }
    }

    /// Its number as a decimal (integers exactly, floats rounded to 18 digits after the point).
    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Value::Int(value) => Some(Decimal::from_i64(*value)),
            Value::Decimal(value) => Some(*value),
            Value::Float(value) => Decimal::from_f64(*value, 18),
            _ => None,
        }
    }

    /// A text value.
    pub fn text(text: impl Into<Text>) -> Value {
        Value::Str(text.into())
    }

    /// Its text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(value) => Some(value),
            _ => None,
        }
    }

    /// SQL comparison of two values of comparable types (numbers with numbers, text with
    /// text, ...); `None` when either is NULL or they cannot be compared.
    pub fn sql_cmp(&self, other: &Value) -> Option<Ordering> {
        use Value as V;
        match (self, other) {
            (V::Null, _) | (_, V::Null) => None,
            (V::Bool(a), V::Bool(b)) => Some(a.cmp(b)),
            (V::Int(a), V::Int(b)) => Some(a.cmp(b)),
            (V::Decimal(a), V::Decimal(b)) => Some(a.cmp(b)),
            (V::Int(a), V::Decimal(b)) => Some(Decimal::from_i64(*a).cmp(b)),
            (V::Decimal(a), V::Int(b)) => Some(a.cmp(&Decimal::from_i64(*b))),
            (V::Float(_), _) | (_, V::Float(_)) => self.as_f64()?.partial_cmp(&other.as_f64()?),
            (V::Str(a), V::Str(b)) => Some(a.cmp(b)),
            (V::Bytes(a), V::Bytes(b)) => Some(a.cmp(b)),
            (V::Date(a), V::Date(b)) | (V::Time(a), V::Time(b)) => Some(a.cmp(b)),
            (V::Timestamp(a), V::Timestamp(b)) | (V::Interval(a), V::Interval(b)) => Some(a.cmp(b)),
            (V::Array(a), V::Array(b)) | (V::Row(a), V::Row(b)) => {
                for (x, y) in a.iter().zip(b) {
                    match x.sql_cmp(y)? {
                        Ordering::Equal => continue,
                        unequal => return Some(unequal),
                    }
                }
                Some(a.len().cmp(&b.len()))
            }
            _ => None,
        }
    }

    /// A total order for sorting (Top-N, ORDER BY): NULL first, then by `sql_cmp`, values of
    /// different kinds by kind.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Less,
            (_, Value::Null) => Ordering::Greater,
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            _ => self.sql_cmp(other).unwrap_or_else(|| self.kind_rank().cmp(&other.kind_rank())),
        }
    }

    fn kind_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) | Value::Decimal(_) => 2,
            Value::Str(_) => 3,
            Value::Bytes(_) => 4,
            Value::Date(_) => 5,
            Value::Time(_) => 6,
            Value::Timestamp(_) => 7,
            Value::Interval(_) => 8,
            Value::Array(_) => 9,
            Value::Map(_) => 10,
            Value::Row(_) => 11,
        }
    }

    fn write_canonical(&self, hasher: &mut KeyHasher) {
        match self {
            Value::Null => hasher.write_u64(0),
            Value::Bool(value) => hasher.write_u64(1 << 8 | u64::from(*value)),
            Value::Int(value) => {
                hasher.write_u64(2);
                hasher.write_u64(*value as u64);
            }
            Value::Float(value) => {
                hasher.write_u64(3);
                // -0.0 and 0.0 are one key, as are all NaNs.
                let normal = if *value == 0.0 {
                    0.0
                } else if value.is_nan() {
                    f64::NAN
                } else {
                    *value
                };
                hasher.write_u64(normal.to_bits());
            }
            Value::Decimal(value) => {
                hasher.write_u64(4);
                // Equal decimals of different scales are one key: strip trailing zeros.
                let (mut unscaled, mut scale) = (value.unscaled(), value.scale);
                while scale > 0 && unscaled % 10 == 0 {
                    unscaled /= 10;
                    scale -= 1;
                }
                hasher.write_bytes(&unscaled.to_le_bytes());
                hasher.write_u64(u64::from(scale));
            }
            Value::Str(value) => {
                hasher.write_u64(5);
                value.as_str().write_key_bytes(hasher);
            }
            Value::Bytes(value) => {
                hasher.write_u64(6);
                hasher.write_u64(value.len() as u64);
                hasher.write_bytes(value);
            }
            Value::Date(value) => hasher.write_u64(7 << 32 | u64::from(*value as u32)),
            Value::Time(value) => hasher.write_u64(8 << 32 | u64::from(*value as u32)),
            Value::Timestamp(value) => {
                hasher.write_u64(9);
                hasher.write_u64(*value as u64);
            }
            Value::Interval(value) => {
                hasher.write_u64(10);
                hasher.write_u64(*value as u64);
            }
            Value::Array(values) | Value::Row(values) => {
                hasher.write_u64(if matches!(self, Value::Array(_)) { 11 } else { 13 });
                hasher.write_u64(values.len() as u64);
                values.iter().for_each(|value| value.write_canonical(hasher));
            }
            Value::Map(entries) => {
                hasher.write_u64(12);
                hasher.write_u64(entries.len() as u64);
                for (key, value) in entries {
                    key.write_canonical(hasher);
                    value.write_canonical(hasher);
                }
            }
        }
    }
}

/// Equality as keys compare: NULL equals NULL (GROUP BY puts NULLs in one group), numbers of
/// one kind by value.
impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Float(a), Value::Float(b)) => a == b || a.is_nan() && b.is_nan(),
            (Value::Map(a), Value::Map(b)) => a == b,
            (Value::Array(a), Value::Array(b)) | (Value::Row(a), Value::Row(b)) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other) && self.sql_cmp(other) == Some(Ordering::Equal),
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut canonical = KeyHasher::default();
        self.write_canonical(&mut canonical);
        state.write_u64(canonical.finish());
    }
}

impl fmt::Display for Value {
    /// As Flink prints values: NULL as `<NULL>`, timestamps `2024-01-01 10:00:00.000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "<NULL>"),
            Value::Bool(value) => write!(f, "{}", if *value { "TRUE" } else { "FALSE" }),
            Value::Int(value) => write!(f, "{value}"),
            Value::Float(value) => write!(f, "{}", format_double(*value)),
            Value::Decimal(value) => write!(f, "{value}"),
            Value::Str(value) => write!(f, "{value}"),
            Value::Bytes(value) => {
                write!(f, "x'")?;
                value.iter().try_for_each(|byte| write!(f, "{byte:02x}"))?;
                write!(f, "'")
            }
            Value::Date(days) => write!(f, "{}", format_date(*days)),
            Value::Time(ms) => write!(f, "{}", format_time(*ms)),
            Value::Timestamp(ms) => write!(f, "{}", format_timestamp(*ms)),
            Value::Interval(ms) => write!(f, "{}", crate::time::format_interval(*ms)),
            Value::Array(values) => write_list(f, "[", values.iter().map(|value| value.to_string()), "]"),
            Value::Map(entries) => write_list(f, "{", entries.iter().map(|(key, value)| format!("{key}={value}")), "}"),
            Value::Row(values) => write_list(f, "(", values.iter().map(|value| value.to_string()), ")"),
        }
    }
}

/// A double as Java prints it (`1.0`, `0.5`, `1.0E10`), which is how Flink shows one.
pub fn format_double(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-3..1e7).contains(&magnitude) {
        let text = format!("{value:E}");
        let (mantissa, exponent) = text.split_once('E').expect("an exponent");
        let mantissa = if mantissa.contains('.') { mantissa.to_string() } else { format!("{mantissa}.0") };
        return format!("{mantissa}E{exponent}");
    }
    let text = format!("{value}");
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

/// The kind of change a row is, as Flink's `RowKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert,
    /// `-U`: the old content of a row about to be updated.
    UpdateBefore,
    /// `+U`: the new content of an updated row.
    UpdateAfter,
    /// `-D`: a row removed.
    Delete,
}

impl Value {
    /// As JSON: numbers, booleans and NULL as themselves, arrays and rows as arrays, maps as
    /// objects, everything else (timestamps, dates, text) as its text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(v) => J::from(*v),
            Value::Float(v) => serde_json::Number::from_f64(*v).map(J::Number).unwrap_or(J::Null),
            Value::Decimal(d) => serde_json::from_str(&d.to_string()).unwrap_or(J::String(d.to_string())),
            Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(entries) => J::Object(entries.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect()),
            Value::Row(items) => J::Array(items.iter().map(Value::to_json).collect()),
            other => J::String(other.to_string()),
        }
    }
}

impl RowKind {
    /// Its short form: `+I`, `-U`, `+U`, `-D`.
    pub fn short(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// Whether the row adds to what a downstream aggregate holds (`+I`, `+U`) rather than
    /// retracts (`-U`, `-D`).
    pub fn is_accumulate(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

/// A row of a SQL stream: its change kind and its values.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct Row {
    /// What change it is.
    pub kind: RowKind,
    /// Its values, one per column of its schema.
    pub values: Vec<Value>,
}

impl Row {
    /// An inserted row.
    pub fn insert(values: Vec<Value>) -> Row {
        Row { kind: RowKind::Insert, values }
    }

    /// The same values as another kind of change.
    pub fn with_kind(mut self, kind: RowKind) -> Row {
        self.kind = kind;
        self
    }
}

impl fmt::Display for Row {
    /// As Flink's print sink: `+I[1, foo]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.short())?;
        write_list(f, "[", self.values.iter().map(|value| value.to_string()), "]")
    }
}

/// `open` the items separated by `, ` `close`.
fn write_list(f: &mut fmt::Formatter<'_>, open: &str, items: impl Iterator<Item = String>, close: &str) -> fmt::Result {
    write!(f, "{open}{}{close}", items.collect::<Vec<_>>().join(", "))
}

/// The values a keyed operator groups rows by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct RowKey(pub KeyValues);

/// A key's values: a key of one column (most are) is held inline, so it costs no allocation to
/// make, copy or drop (keys are copied per record routed and per new state), and takes less
/// memory than a vector; a longer one is on the heap, as a vector. Archived as a vector, so saved
/// state reads the same.
pub type KeyValues = smallvec::SmallVec<[Value; 1]>;

impl From<Vec<Value>> for RowKey {
    fn from(values: Vec<Value>) -> Self {
        RowKey(KeyValues::from_vec(values))
    }
}

impl KeyBytes for RowKey {
    /// Each value's kind tag and canonical bytes, in order.
    fn write_key_bytes(&self, hasher: &mut KeyHasher) {
        hasher.write_u64(self.0.len() as u64);
        self.0.iter().for_each(|value| value.write_canonical(hasher));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tethys_engine::Codec;

    #[test]
    fn decimals_add_multiply_divide_and_print_exactly() {
        let price = Decimal::parse("12.50").unwrap();
        assert_eq!(price.to_string(), "12.50");
        assert_eq!(price.checked_add(Decimal::parse("0.125").unwrap()).unwrap().to_string(), "12.625");
        assert_eq!(price.checked_mul(Decimal::from_i64(3)).unwrap().to_string(), "37.50");
        assert_eq!(Decimal::from_i64(1).checked_div(Decimal::from_i64(3), 6).unwrap().to_string(), "0.333333");
        assert_eq!(Decimal::from_i64(2).checked_div(Decimal::from_i64(3), 2).unwrap().to_string(), "0.67");
        assert_eq!(Decimal::parse("-0.05").unwrap().to_string(), "-0.05");
        assert_eq!(Decimal::parse("-1.005").unwrap().rescale(2).unwrap().to_string(), "-1.01");
        assert_eq!(Decimal::from_i64(1).checked_div(Decimal::from_i64(0), 2), None);
        assert_eq!(Decimal::parse("1.10").unwrap(), Decimal::parse("1.1").unwrap());
        assert_eq!(Decimal::parse("abc"), None);
    }

    #[test]
    fn equal_keys_hash_alike_across_scales_and_zeros() {
        let key = |values| tethys_engine::base::key::key_hash(&RowKey::from(values));
        assert_eq!(key(vec![Value::Decimal(Decimal::parse("1.10").unwrap())]), key(vec![Value::Decimal(Decimal::parse("1.1").unwrap())]));
        assert_eq!(key(vec![Value::Float(0.0)]), key(vec![Value::Float(-0.0)]));
        assert_ne!(key(vec![Value::Int(1)]), key(vec![Value::Str("1".into())]));
        assert_ne!(key(vec![Value::Null, Value::Int(1)]), key(vec![Value::Int(1), Value::Null]));
    }

    #[test]
    fn a_key_encodes_as_its_values_did_in_a_vector_inline_or_not() {
        // State saved before keys held their values inline must read the same.
        #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
        struct VecKey(Vec<Value>);
        for values in [vec![Value::Int(7)], vec![Value::Str("a".into()), Value::Null, Value::Float(2.5)]] {
            let mut inline = Vec::new();
            RowKey::from(values.clone()).encode_into(&mut inline).unwrap();
            let mut vector = Vec::new();
            VecKey(values.clone()).encode_into(&mut vector).unwrap();
            assert_eq!(inline, vector);
            assert_eq!(RowKey::decode_from(&vector).unwrap().0.as_slice(), values.as_slice());
        }
        assert!(!RowKey::from(vec![Value::Int(1)]).0.spilled(), "one value is held inline");
        assert!(std::mem::size_of::<RowKey>() <= 40, "a key of one value is no larger than the value and its length");
    }

    #[test]
    fn rows_print_as_flink_and_survive_the_codec() {
        let row = Row::insert(vec![
            Value::Int(7),
            Value::Str("x".into()),
            Value::Null,
            Value::Float(1.0),
            Value::Timestamp(0),
            Value::Array(vec![Value::Int(1), Value::Row(vec![Value::Bool(true)])]),
        ]);
        assert_eq!(row.to_string(), "+I[7, x, <NULL>, 1.0, 1970-01-01 00:00:00.000, [1, (TRUE)]]");
        let mut bytes = Vec::new();
        row.encode_into(&mut bytes).unwrap();
        assert_eq!(Row::decode_from(&bytes).unwrap(), row);
    }

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(100.0), "100.0");
        assert_eq!(format_double(1e10), "1.0E10");
        assert_eq!(format_double(1.25e-5), "1.25E-5");
    }
}
