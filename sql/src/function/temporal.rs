//! Date and time functions: EXTRACT and its shorthands (YEAR, HOUR...), CEIL/FLOOR to a unit,
//! DATE_FORMAT and the parsing functions (TO_TIMESTAMP, TO_DATE, UNIX_TIMESTAMP...),
//! TIMESTAMPADD/TIMESTAMPDIFF, CONVERT_TZ, and the current time (NOW, CURRENT_DATE...).
//!
//! A TIMESTAMP is a local date and time; a TIMESTAMP_LTZ is an instant, seen in the session's
//! time zone (`table.local-time-zone`, [`EvalContext::zone`](super::EvalContext)) wherever its
//! date or time of day matters. Patterns are Java's (see [`date_pattern`](super::date_pattern)).
//! Text that does not parse gives NULL, as in Flink (UNIX_TIMESTAMP gives Flink's
//! -9223372036854775808); a pattern or time zone that is not one is an error.

use super::date_pattern::DatePattern;
use super::{check, constant_text, evaluator, integer, text, EvalContext, Evaluator, Kind, ScalarFunction, INTEGER, NUMERIC, STRING};
use crate::time::{civil_from_days, days_from_civil, days_in_month, parse_date, parse_timestamp, Zone, MS_PER_DAY};
use crate::types::SqlType;
use crate::value::Value;

const DATETIME: Kind = ("DATE, TIMESTAMP or TIMESTAMP_LTZ", |t| *t == SqlType::Date || t.is_timestamp());
const DEFAULT_PATTERN: &str = "yyyy-MM-dd HH:mm:ss";

/// The local date and time of a date-time value, in milliseconds since 1970-01-01 00:00: a
/// TIMESTAMP_LTZ's in the session's zone.
fn local_ms(value: &Value, data_type: &SqlType, zone: &Zone) -> Result<i64, String> {
    match (value, data_type) {
        (Value::Date(days), _) => Ok(i64::from(*days) * MS_PER_DAY),
        (Value::Time(ms), _) => Ok(i64::from(*ms)),
        (Value::Timestamp(ms), SqlType::TimestampLtz) => Ok(ms + zone.offset_ms(*ms)),
        (Value::Timestamp(ms), _) => Ok(*ms),
        (other, _) => Err(format!("expected a date or time, got {other}")),
    }
}

/// A date-time of type `data_type` from its local milliseconds (the inverse of `local_ms`).
fn from_local(local: i64, data_type: &SqlType, zone: &Zone) -> Value {
    match data_type {
        SqlType::Date => Value::Date(local.div_euclid(MS_PER_DAY) as i32),
        SqlType::TimestampLtz => Value::Timestamp(zone.utc_of_local(local)),
        _ => Value::Timestamp(local),
    }
}

fn zone_named(name: &str) -> Result<Zone, String> {
    Zone::parse(name).ok_or_else(|| format!("'{name}' is not a time zone: use an IANA name ('Asia/Shanghai') or an offset ('+08:00')"))
}

fn now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_millis() as i64
}

/// A pattern argument: compiled when planned if it is a constant.
#[derive(Clone)]
struct PatternArg {
    fixed: Option<DatePattern>,
    index: usize,
    default: &'static str,
}

impl PatternArg {
    fn plan(constants: &[Option<Value>], index: usize, default: &'static str) -> Result<PatternArg, String> {
        let fixed = match constants.get(index) {
            Some(_) => constant_text(constants, index).map(DatePattern::compile).transpose()?,
            None => Some(DatePattern::compile(default)?),
        };
        Ok(PatternArg { fixed, index, default })
    }

    fn get(&self, args: &[Value]) -> Result<DatePattern, String> {
        match &self.fixed {
            Some(pattern) => Ok(pattern.clone()),
            None => DatePattern::compile(args.get(self.index).map(text).transpose()?.unwrap_or(self.default)),
        }
    }
}

/// A unit of EXTRACT, CEIL/FLOOR, TIMESTAMPADD and TIMESTAMPDIFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Millennium,
    Century,
    Decade,
    Year,
    IsoYear,
    Quarter,
    Month,
    Week,
    DayOfYear,
    Day,
    DayOfWeek,
    IsoDayOfWeek,
    Hour,
    Minute,
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
    Epoch,
}

impl Unit {
    fn parse(name: &str) -> Result<Unit, String> {
        Ok(match name.trim().to_ascii_uppercase().as_str() {
            "MILLENNIUM" | "MILLENIUM" => Unit::Millennium,
            "CENTURY" => Unit::Century,
            "DECADE" => Unit::Decade,
            "YEAR" | "YEARS" => Unit::Year,
            "ISOYEAR" => Unit::IsoYear,
            "QUARTER" => Unit::Quarter,
            "MONTH" | "MONTHS" => Unit::Month,
            "WEEK" | "WEEKS" | "ISOWEEK" => Unit::Week,
            "DOY" | "DAYOFYEAR" => Unit::DayOfYear,
            "DAY" | "DAYS" => Unit::Day,
            "DOW" | "DAYOFWEEK" => Unit::DayOfWeek,
            "ISODOW" => Unit::IsoDayOfWeek,
            "HOUR" | "HOURS" => Unit::Hour,
            "MINUTE" | "MINUTES" => Unit::Minute,
            "SECOND" | "SECONDS" => Unit::Second,
            "MILLISECOND" | "MILLISECONDS" => Unit::Millisecond,
            "MICROSECOND" | "MICROSECONDS" => Unit::Microsecond,
            "NANOSECOND" | "NANOSECONDS" => Unit::Nanosecond,
            "EPOCH" => Unit::Epoch,
            other => return Err(format!("unknown time unit {other}")),
        })
    }

    /// Whether it is a part of the time of day (or finer).
    fn is_time(self) -> bool {
        matches!(self, Unit::Hour | Unit::Minute | Unit::Second | Unit::Millisecond | Unit::Microsecond | Unit::Nanosecond)
    }

    /// Its length in milliseconds, if fixed (a day and finer).
    fn fixed_ms(self) -> Option<i64> {
        Some(match self {
            Unit::Millisecond => 1,
            Unit::Second => 1000,
            Unit::Minute => 60_000,
            Unit::Hour => 3_600_000,
            Unit::Day => MS_PER_DAY,
            Unit::Week => 7 * MS_PER_DAY,
            _ => return None,
        })
    }

    /// Its length in months, if it is counted in months.
    fn months(self) -> Option<i64> {
        Some(match self {
            Unit::Month => 1,
            Unit::Quarter => 3,
            Unit::Year => 12,
            Unit::Decade => 120,
            Unit::Century => 1200,
            Unit::Millennium => 12_000,
            _ => return None,
        })
    }
}

/// The ISO-8601 week (1 to 53) and its year of a date, in days since 1970-01-01.
fn iso_week(days: i64) -> (i64, i64) {
    let iso_day_of_week = (days + 3).rem_euclid(7) + 1; // Monday 1 .. Sunday 7
    let thursday = days - iso_day_of_week + 4;
    let (year, _, _) = civil_from_days(thursday);
    (year, (thursday - days_from_civil(year, 1, 1)) / 7 + 1)
}

/// Field `unit` of a local date-time (in milliseconds), as Flink's EXTRACT gives it.
fn extract(unit: Unit, local: i64) -> i64 {
    let days = local.div_euclid(MS_PER_DAY);
    let ms_of_day = local.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    match unit {
        Unit::Millennium => (year + 999).div_euclid(1000),
        Unit::Century => (year + 99).div_euclid(100),
        Unit::Decade => year.div_euclid(10),
        Unit::Year => year,
        Unit::IsoYear => iso_week(days).0,
        Unit::Quarter => (i64::from(month) + 2) / 3,
        Unit::Month => i64::from(month),
        Unit::Week => iso_week(days).1,
        Unit::DayOfYear => days - days_from_civil(year, 1, 1) + 1,
        Unit::Day => i64::from(day),
        Unit::DayOfWeek => (days + 4).rem_euclid(7) + 1,
        Unit::IsoDayOfWeek => (days + 3).rem_euclid(7) + 1,
        Unit::Hour => ms_of_day / 3_600_000,
        Unit::Minute => ms_of_day / 60_000 % 60,
        Unit::Second => ms_of_day / 1000 % 60,
        Unit::Millisecond => ms_of_day % 1000,
        Unit::Microsecond => ms_of_day % 1000 * 1000,
        Unit::Nanosecond => ms_of_day % 1000 * 1_000_000,
        Unit::Epoch => local.div_euclid(1000),
    }
}

/// Checks that `unit` can be taken from a value of type `data_type`.
fn check_extract(unit: Unit, data_type: &SqlType) -> Result<(), String> {
    match data_type {
        SqlType::Date if unit.is_time() => Err(format!("a DATE has no {unit:?}")),
        SqlType::Time if !unit.is_time() && unit != Unit::Epoch => Err(format!("a TIME has no {unit:?}")),
        _ => Ok(()),
    }
}

const TEMPORAL: Kind = ("DATE, TIME, TIMESTAMP or TIMESTAMP_LTZ", |t| matches!(t, SqlType::Date | SqlType::Time) || t.is_timestamp());

fn extract_function() -> ScalarFunction {
    ScalarFunction::planned("EXTRACT", "EXTRACT(unit STRING, t DATE | TIME | TIMESTAMP | TIMESTAMP_LTZ) -> BIGINT", |args, constants| {
        check(args, 2..=2, &[STRING, TEMPORAL])?;
        let fixed = constant_text(constants, 0).map(Unit::parse).transpose()?;
        if let Some(unit) = fixed {
            check_extract(unit, &args[1])?;
        }
        let data_type = args[1].clone();
        let eval: Evaluator = evaluator(move |args, context| {
            let unit = match fixed {
                Some(unit) => unit,
                None => Unit::parse(text(&args[0])?)?,
            };
            check_extract(unit, &data_type)?;
            Ok(Value::Int(extract(unit, local_ms(&args[1], &data_type, &context.zone)?)))
        });
        Ok((SqlType::BigInt, eval))
    })
    .describe(
        "A field of the date or time, written EXTRACT(unit FROM t): YEAR, QUARTER, MONTH, WEEK (ISO), DAY, DOY, DOW (1 is Sunday), \
         ISODOW, HOUR, MINUTE, SECOND, MILLISECOND (0-999), EPOCH (seconds), DECADE, CENTURY...; a TIMESTAMP_LTZ's in the session's zone.",
    )
    .example("EXTRACT(DOW FROM DATE '2024-05-17')", "6")
}

fn field_function(name: &str, unit: Unit, description: &str, call: &str, result: &str) -> ScalarFunction {
    let kind: Kind =
        if unit.is_time() { ("TIME, TIMESTAMP or TIMESTAMP_LTZ", |t| *t == SqlType::Time || t.is_timestamp()) } else { DATETIME };
    let signature = if unit.is_time() {
        format!("{name}(t TIME | TIMESTAMP | TIMESTAMP_LTZ) -> BIGINT")
    } else {
        format!("{name}(t DATE | TIMESTAMP | TIMESTAMP_LTZ) -> BIGINT")
    };
    ScalarFunction::planned(name, &signature, move |args, _| {
        check(args, 1..=1, &[kind])?;
        let data_type = args[0].clone();
        let eval: Evaluator = evaluator(move |args, context| Ok(Value::Int(extract(unit, local_ms(&args[0], &data_type, &context.zone)?))));
        Ok((SqlType::BigInt, eval))
    })
    .describe(description)
    .example(call, result)
}

/// The first day (in days since 1970-01-01) of the period of `months` months holding the date.
fn period_start(days: i64, unit: Unit) -> i64 {
    let (year, month, _) = civil_from_days(days);
    match unit {
        Unit::Month => days_from_civil(year, month, 1),
        Unit::Quarter => days_from_civil(year, (month - 1) / 3 * 3 + 1, 1),
        Unit::Year => days_from_civil(year, 1, 1),
        Unit::Decade => days_from_civil(year - year.rem_euclid(10), 1, 1),
        Unit::Century => days_from_civil((year + 99).div_euclid(100) * 100 - 99, 1, 1),
        _ => days_from_civil((year + 999).div_euclid(1000) * 1000 - 999, 1, 1),
    }
}

/// `local` (milliseconds) with `months` months added, the day kept or cut to the month's last.
fn add_months(local: i64, months: i64) -> i64 {
    let (days, ms_of_day) = (local.div_euclid(MS_PER_DAY), local.rem_euclid(MS_PER_DAY));
    let (year, month, day) = civil_from_days(days);
    let total = year * 12 + i64::from(month) - 1 + months;
    let (year, month) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
    let day = day.min(days_in_month(year, month));
    days_from_civil(year, month, day) * MS_PER_DAY + ms_of_day
}

/// Whole months from `from` to `to` (local milliseconds), negative when `to` is earlier.
fn months_between(from: i64, to: i64) -> i64 {
    if to < from {
        return -months_between(to, from);
    }
    let ((y1, m1, _), (y2, m2, _)) = (civil_from_days(from.div_euclid(MS_PER_DAY)), civil_from_days(to.div_euclid(MS_PER_DAY)));
    let mut months = (y2 - y1) * 12 + i64::from(m2) - i64::from(m1);
    while months > 0 && add_months(from, months) > to {
        months -= 1;
    }
    months
}

/// `local` rounded down (or up) to the unit.
fn round_to(local: i64, unit: Unit, ceil: bool) -> Result<i64, String> {
    let floor = match unit {
        Unit::Week => {
            // Weeks start on Sunday, as Flink's.
            let days = local.div_euclid(MS_PER_DAY);
            (days - (days + 4).rem_euclid(7)) * MS_PER_DAY
        }
        unit if unit.fixed_ms().is_some() => {
            let size = unit.fixed_ms().expect("a fixed unit");
            local - local.rem_euclid(size)
        }
        unit if unit.months().is_some() => period_start(local.div_euclid(MS_PER_DAY), unit) * MS_PER_DAY,
        other => return Err(format!("cannot round to {other:?}")),
    };
    if !ceil || floor == local {
        return Ok(floor);
    }
    Ok(match (unit.fixed_ms(), unit.months()) {
        (Some(size), _) => floor + size,
        (None, Some(months)) => add_months(floor, months),
        _ => floor,
    })
}

/// CEIL(t TO unit) / FLOOR(t TO unit): planned from math's CEIL and FLOOR with two arguments.
pub(crate) fn plan_ceil_floor(args: &[SqlType], constants: &[Option<Value>], ceil: bool) -> Result<(SqlType, Evaluator), String> {
    check(args, 2..=2, &[DATETIME, STRING])?;
    let unit = constant_text(constants, 1).map(Unit::parse).transpose()?;
    if let Some(unit) = unit {
        if unit.fixed_ms().is_none() && unit.months().is_none() {
            return Err(format!("cannot round to {unit:?}: use MILLISECOND, SECOND, MINUTE, HOUR, DAY, WEEK, MONTH, QUARTER, YEAR..."));
        }
        if args[0] == SqlType::Date && unit.is_time() {
            return Err(format!("a DATE cannot be rounded to {unit:?}"));
        }
    }
    let data_type = args[0].clone();
    let result_type = data_type.clone();
    let eval: Evaluator = evaluator(move |args, context| {
        let unit = match unit {
            Some(unit) => unit,
            None => Unit::parse(text(&args[1])?)?,
        };
        let local = local_ms(&args[0], &data_type, &context.zone)?;
        Ok(from_local(round_to(local, unit, ceil)?, &data_type, &context.zone))
    });
    Ok((result_type, eval))
}

fn timestamp_add() -> ScalarFunction {
    ScalarFunction::planned("TIMESTAMPADD", "TIMESTAMPADD(unit, n INT, t DATE | TIMESTAMP | TIMESTAMP_LTZ) -> type of t", |args, constants| {
        check(args, 3..=3, &[STRING, INTEGER, DATETIME])?;
        let unit = constant_text(constants, 0).map(Unit::parse).transpose()?;
        let data_type = args[2].clone();
        let result_type = match unit {
            Some(unit) if data_type == SqlType::Date && unit.is_time() => SqlType::Timestamp,
            _ => data_type.clone(),
        };
        let result = result_type.clone();
        let eval: Evaluator = evaluator(move |args, context| {
            let unit = match unit {
                Some(unit) => unit,
                None => Unit::parse(text(&args[0])?)?,
            };
            let n = integer(&args[1])?;
            let local = local_ms(&args[2], &data_type, &context.zone)?;
            let shifted = match (unit.months(), unit.fixed_ms()) {
                (Some(months), _) => add_months(local, n.saturating_mul(months)),
                (None, Some(size)) => local.saturating_add(n.saturating_mul(size)),
                _ => return Err(format!("TIMESTAMPADD cannot add {unit:?}")),
            };
            Ok(from_local(shifted, &result, &context.zone))
        });
        Ok((result_type, eval))
    })
    .describe("The date-time with n units added (YEAR, QUARTER, MONTH, WEEK, DAY, HOUR, MINUTE, SECOND, MILLISECOND); a month's end is kept within the month.")
    .example("TIMESTAMPADD(MONTH, 1, DATE '2024-01-31')", "2024-02-29")
}

fn timestamp_diff() -> ScalarFunction {
    ScalarFunction::planned(
        "TIMESTAMPDIFF",
        "TIMESTAMPDIFF(unit, t1 DATE | TIMESTAMP | TIMESTAMP_LTZ, t2 DATE | TIMESTAMP | TIMESTAMP_LTZ) -> INT",
        |args, constants| {
            check(args, 3..=3, &[STRING, DATETIME, DATETIME])?;
            let unit = constant_text(constants, 0).map(Unit::parse).transpose()?;
            let types = args.to_vec();
            let eval: Evaluator = evaluator(move |args, context| {
                let unit = match unit {
                    Some(unit) => unit,
                    None => Unit::parse(text(&args[0])?)?,
                };
                let (from, to) = (local_ms(&args[1], &types[1], &context.zone)?, local_ms(&args[2], &types[2], &context.zone)?);
                let difference = match (unit.months(), unit.fixed_ms()) {
                    (Some(months), _) => months_between(from, to) / months,
                    (None, Some(size)) => (to - from) / size,
                    _ => return Err(format!("TIMESTAMPDIFF cannot count {unit:?}")),
                };
                Ok(Value::Int(i64::from(difference as i32)))
            });
            Ok((SqlType::Int, eval))
        },
    )
    .describe("How many whole units (YEAR, QUARTER, MONTH, WEEK, DAY, HOUR, MINUTE, SECOND) t2 is after t1 (negative if before).")
    .example("TIMESTAMPDIFF(DAY, TIMESTAMP '2024-03-01 12:00:00', TIMESTAMP '2024-03-04 11:00:00')", "2")
}

fn date_format() -> ScalarFunction {
    ScalarFunction::planned(
        "DATE_FORMAT",
        "DATE_FORMAT(t TIMESTAMP | TIMESTAMP_LTZ | STRING, pattern STRING) -> STRING",
        |args, constants| {
            check(args, 2..=2, &[("TIMESTAMP, TIMESTAMP_LTZ or STRING", |t| t.is_timestamp() || t.is_string()), STRING])?;
            let pattern = PatternArg::plan(constants, 1, DEFAULT_PATTERN)?;
            let input = DatePattern::compile(DEFAULT_PATTERN)?;
            let data_type = args[0].clone();
            let eval: Evaluator = evaluator(move |args, context| {
                let pattern = pattern.get(args)?;
                let (local, offset) = match (&args[0], &data_type) {
                    (Value::Str(text), _) => match input.parse(text, true) {
                        Some(parsed) => (parsed.local_ms, None),
                        None => return Ok(Value::Null),
                    },
                    (Value::Timestamp(ms), SqlType::TimestampLtz) => {
                        let offset = context.zone.offset_ms(*ms);
                        (ms + offset, Some(offset))
                    }
                    (value, data_type) => (local_ms(value, data_type, &context.zone)?, None),
                };
                pattern.format(local, offset).map(Value::text)
            });
            Ok((SqlType::String, eval))
        },
    )
    .describe(
        "The date-time written with a Java date-time pattern (yyyy, MM, dd, HH, hh, mm, ss, SSS, a, EEE, 'quoted text'...); \
         a TIMESTAMP_LTZ in the session's zone; text is first read as 'yyyy-MM-dd HH:mm:ss'.",
    )
    .example("DATE_FORMAT(TIMESTAMP '2024-05-17 14:03:09', 'yyyy/MM/dd hh:mm a')", "2024/05/17 02:03 PM")
}

fn parse_with(pattern: &PatternArg, args: &[Value], allow_rest: bool) -> Result<Option<super::date_pattern::Parsed>, String> {
    Ok(pattern.get(args)?.parse(text(&args[0])?, allow_rest))
}

fn to_timestamp() -> ScalarFunction {
    ScalarFunction::planned("TO_TIMESTAMP", "TO_TIMESTAMP(s STRING[, pattern STRING]) -> TIMESTAMP(3)", |args, constants| {
        check(args, 1..=2, &[STRING])?;
        let pattern = (args.len() == 2).then(|| PatternArg::plan(constants, 1, DEFAULT_PATTERN)).transpose()?;
        let eval: Evaluator = evaluator(move |args, _| {
            let s = text(&args[0])?;
            let parsed = match &pattern {
                Some(pattern) => parse_with(pattern, args, false)?.map(|parsed| parsed.local_ms),
                None => None,
            };
            // Without a pattern, or when it does not match: 'yyyy-[M]M-[d]d[ HH:mm:ss[.fff]]', as Flink falls back to.
            Ok(parsed.or_else(|| parse_timestamp(s)).map_or(Value::Null, Value::Timestamp))
        });
        Ok((SqlType::Timestamp, eval))
    })
    .describe(
        "The text read as a date and time with a Java date-time pattern ('yyyy-MM-dd HH:mm:ss' by default); NULL if it does not parse.",
    )
    .example("TO_TIMESTAMP('17/05/2024 14:03', 'dd/MM/yyyy HH:mm')", "2024-05-17 14:03:00.000")
}

fn to_date() -> ScalarFunction {
    ScalarFunction::planned("TO_DATE", "TO_DATE(s STRING[, pattern STRING]) -> DATE", |args, constants| {
        check(args, 1..=2, &[STRING])?;
        let pattern = (args.len() == 2).then(|| PatternArg::plan(constants, 1, "yyyy-MM-dd")).transpose()?;
        let eval: Evaluator = evaluator(move |args, _| {
            let s = text(&args[0])?;
            let days = match &pattern {
                Some(pattern) => parse_with(pattern, args, true)?.map(|parsed| parsed.local_ms.div_euclid(MS_PER_DAY) as i32),
                None => parse_date(s.trim().split(' ').next().unwrap_or_default()),
            };
            Ok(days.map_or(Value::Null, Value::Date))
        });
        Ok((SqlType::Date, eval))
    })
    .describe("The text read as a date with a Java date-time pattern ('yyyy-MM-dd' by default); NULL if it does not parse.")
    .example("TO_DATE('20240517', 'yyyyMMdd')", "2024-05-17")
}

fn unix_timestamp() -> ScalarFunction {
    ScalarFunction::planned("UNIX_TIMESTAMP", "UNIX_TIMESTAMP(s STRING[, pattern STRING]) -> BIGINT", |args, constants| {
        check(args, 1..=2, &[STRING])?;
        let pattern = PatternArg::plan(constants, 1, DEFAULT_PATTERN)?;
        let eval: Evaluator = evaluator(move |args, context| {
            Ok(Value::Int(match parse_with(&pattern, args, true)? {
                Some(parsed) => {
                    let utc = match parsed.offset_ms {
                        Some(offset) => parsed.local_ms - offset,
                        None => context.zone.utc_of_local(parsed.local_ms),
                    };
                    utc / 1000
                }
                None => i64::MIN,
            }))
        });
        Ok((SqlType::BigInt, eval))
    })
    .describe(
        "Seconds since 1970-01-01 00:00:00 UTC of the text read with a Java date-time pattern ('yyyy-MM-dd HH:mm:ss' by default) \
         in the session's zone (or the offset the text gives); -9223372036854775808 if it does not parse, as Flink.",
    )
    .example("UNIX_TIMESTAMP('2024-05-17 14:03:09')", "1715954589")
}

fn from_unixtime() -> ScalarFunction {
    ScalarFunction::planned("FROM_UNIXTIME", "FROM_UNIXTIME(seconds NUMERIC[, pattern STRING]) -> STRING", |args, constants| {
        check(args, 1..=2, &[NUMERIC, STRING])?;
        let pattern = PatternArg::plan(constants, 1, DEFAULT_PATTERN)?;
        let eval: Evaluator = evaluator(move |args, context| {
            let utc = integer(&args[0])?.saturating_mul(1000);
            let offset = context.zone.offset_ms(utc);
            pattern.get(args)?.format(utc + offset, Some(offset)).map(Value::text)
        });
        Ok((SqlType::String, eval))
    })
    .describe("The instant `seconds` after 1970-01-01 00:00:00 UTC written in the session's zone with a Java date-time pattern ('yyyy-MM-dd HH:mm:ss' by default).")
    .example("FROM_UNIXTIME(44)", "1970-01-01 00:00:44")
}

fn convert_tz() -> ScalarFunction {
    ScalarFunction::planned("CONVERT_TZ", "CONVERT_TZ(s STRING, from_zone STRING, to_zone STRING) -> STRING", |args, constants| {
        check(args, 3..=3, &[STRING])?;
        let from = constant_text(constants, 1).map(zone_named).transpose()?;
        let to = constant_text(constants, 2).map(zone_named).transpose()?;
        let pattern = DatePattern::compile(DEFAULT_PATTERN)?;
        let eval: Evaluator = evaluator(move |args, _| {
            let from = match &from {
                Some(zone) => zone.clone(),
                None => zone_named(text(&args[1])?)?,
            };
            let to = match &to {
                Some(zone) => zone.clone(),
                None => zone_named(text(&args[2])?)?,
            };
            let Some(parsed) = pattern.parse(text(&args[0])?, true) else {
                return Ok(Value::Null);
            };
            let utc = from.utc_of_local(parsed.local_ms);
            pattern.format(utc + to.offset_ms(utc), None).map(Value::text)
        });
        Ok((SqlType::String, eval))
    })
    .describe(
        "The date and time ('yyyy-MM-dd HH:mm:ss') in one time zone as the same instant in another; zones are IANA names \
         (with their daylight-saving rules) or offsets; NULL if the text does not parse.",
    )
    .example("CONVERT_TZ('1970-01-01 00:00:00', 'UTC', 'America/Los_Angeles')", "1969-12-31 16:00:00")
}

/// The valid range of TO_TIMESTAMP_LTZ's results, as Flink's: years 0000 to 9999.
const MIN_EPOCH_MS: i64 = -62_167_219_200_000;
const MAX_EPOCH_MS: i64 = 253_402_300_799_999;

fn to_timestamp_ltz() -> ScalarFunction {
    ScalarFunction::planned(
        "TO_TIMESTAMP_LTZ",
        "TO_TIMESTAMP_LTZ(epoch NUMERIC[, precision INT]) -> TIMESTAMP_LTZ(3); TO_TIMESTAMP_LTZ(s STRING[, pattern STRING[, zone STRING]]) -> TIMESTAMP_LTZ(3)",
        |args, constants| {
            if args.first().is_some_and(SqlType::is_string) {
                check(args, 1..=3, &[STRING])?;
                let pattern = PatternArg::plan(constants, 1, "yyyy-MM-dd HH:mm:ss[.SSS]")?;
                let zone = constant_text(constants, 2).map(zone_named).transpose()?;
                let eval: Evaluator = evaluator(move |args, _| {
                    let zone = match (&zone, args.get(2)) {
                        (Some(zone), _) => zone.clone(),
                        (None, Some(name)) => zone_named(text(name)?)?,
                        (None, None) => Zone::Utc,
                    };
                    Ok(match parse_with(&pattern, args, false)? {
                        Some(parsed) => Value::Timestamp(match parsed.offset_ms {
                            Some(offset) => parsed.local_ms - offset,
                            None => zone.utc_of_local(parsed.local_ms),
                        }),
                        None => Value::Null,
                    })
                });
                return Ok((SqlType::TimestampLtz, eval));
            }
            check(args, 1..=2, &[NUMERIC, INTEGER])?;
            let eval: Evaluator = evaluator(|args, _| {
                let precision = args.get(1).map(integer).transpose()?.unwrap_or(3);
                let ms = match (precision, &args[0]) {
                    (0, Value::Float(seconds)) => (seconds * 1000.0) as i64,
                    (0, seconds) => integer(seconds)?.saturating_mul(1000),
                    (3, ms) => integer(ms)?,
                    (other, _) => {
                        return Err(format!("the precision is 0 (seconds) or 3 (milliseconds), not {other}"));
                    }
                };
                Ok(if (MIN_EPOCH_MS..=MAX_EPOCH_MS).contains(&ms) { Value::Timestamp(ms) } else { Value::Null })
            });
            Ok((SqlType::TimestampLtz, eval))
        },
    )
    .describe(
        "The instant `epoch` seconds (precision 0) or milliseconds (precision 3, the default) after 1970-01-01 00:00:00 UTC; \
         or the text read with a pattern ('yyyy-MM-dd HH:mm:ss[.SSS]') in a time zone ('UTC' by default). NULL when out of range or unparseable.",
    )
    .example("TO_TIMESTAMP_LTZ(1700000000, 0)", "2023-11-14 22:13:20.000")
}

fn current(name: &str, data_type: SqlType, description: &str, call: &str) -> ScalarFunction {
    let result = data_type.clone();
    ScalarFunction::new(
        name,
        &format!("{name}() -> {data_type}"),
        move |args| {
            check(args, 0..=0, &[])?;
            Ok(result.clone())
        },
        move |_, context: &EvalContext| {
            let now = now_ms();
            let local = now + context.zone.offset_ms(now);
            Ok(match &data_type {
                SqlType::Date => Value::Date(local.div_euclid(MS_PER_DAY) as i32),
                SqlType::Time => Value::Time(local.rem_euclid(MS_PER_DAY) as i32),
                SqlType::TimestampLtz => Value::Timestamp(now),
                _ => Value::Timestamp(local),
            })
        },
    )
    .nondeterministic()
    .describe(description)
    .example(call, "TRUE")
}

/// The date and time functions (CEIL and FLOOR to a unit are math's, planned here).
pub fn functions() -> Vec<ScalarFunction> {
    let now = current("NOW", SqlType::TimestampLtz, "The current instant, read anew for each row.", "YEAR(NOW()) >= 2024");
    let current_timestamp = current(
        "CURRENT_TIMESTAMP",
        SqlType::TimestampLtz,
        "The current instant, read anew for each row; written without parentheses.",
        "CURRENT_TIMESTAMP > TIMESTAMP '2024-01-01 00:00:00'",
    );
    vec![
        extract_function(),
        field_function("YEAR", Unit::Year, "The year of the date.", "YEAR(DATE '2024-05-17')", "2024"),
        field_function("QUARTER", Unit::Quarter, "The quarter (1 to 4) of the date.", "QUARTER(DATE '2024-05-17')", "2"),
        field_function("MONTH", Unit::Month, "The month (1 to 12) of the date.", "MONTH(DATE '2024-05-17')", "5"),
        field_function(
            "WEEK",
            Unit::Week,
            "The ISO-8601 week (1 to 53) of the date; weeks start on Monday.",
            "WEEK(DATE '2024-12-30')",
            "1",
        ),
        field_function("DAYOFYEAR", Unit::DayOfYear, "The day of the year (1 to 366) of the date.", "DAYOFYEAR(DATE '2024-03-01')", "61"),
        field_function("DAYOFMONTH", Unit::Day, "The day of the month (1 to 31) of the date.", "DAYOFMONTH(DATE '2024-05-17')", "17"),
        field_function(
            "DAYOFWEEK",
            Unit::DayOfWeek,
            "The day of the week of the date, 1 for Sunday to 7 for Saturday.",
            "DAYOFWEEK(DATE '2024-05-19')",
            "1",
        ),
        field_function("HOUR", Unit::Hour, "The hour (0 to 23) of the time.", "HOUR(TIMESTAMP '2024-05-17 14:03:09')", "14"),
        field_function("MINUTE", Unit::Minute, "The minute (0 to 59) of the time.", "MINUTE(TIMESTAMP '2024-05-17 14:03:09')", "3"),
        field_function("SECOND", Unit::Second, "The second (0 to 59) of the time.", "SECOND(TIMESTAMP '2024-05-17 14:03:09')", "9"),
        date_format(),
        to_timestamp(),
        to_date(),
        unix_timestamp(),
        from_unixtime(),
        convert_tz(),
        to_timestamp_ltz(),
        timestamp_add(),
        timestamp_diff(),
        now,
        current("PROCTIME", SqlType::TimestampLtz, "The current instant. As a computed column (`proc AS PROCTIME()`) it is the table's processing-time attribute: TUMBLE, HOP and CUMULATE over it window rows by the wall clock of the operator that aggregates them, and fire when that clock passes a window's end.", "YEAR(PROCTIME()) >= 2024"),
        current_timestamp,
        current(
            "LOCALTIMESTAMP",
            SqlType::Timestamp,
            "The current date and time in the session's zone.",
            "LOCALTIMESTAMP > TIMESTAMP '2024-01-01 00:00:00'",
        ),
        current("CURRENT_DATE", SqlType::Date, "The current date in the session's zone.", "CURRENT_DATE >= DATE '2024-01-01'"),
        current("CURRENT_TIME", SqlType::Time, "The current time of day in the session's zone.", "CURRENT_TIME >= TIME '00:00:00'"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{Binder, Scope};
    use crate::function::FunctionRegistry;

    fn eval_in(sql: &str, zone: &str) -> String {
        let dialect = crate::dialect::TethysDialect;
        let expr = sqlparser::parser::Parser::new(&dialect).try_with_sql(sql).unwrap().parse_expr().unwrap();
        let (scope, functions) = (Scope::default(), FunctionRegistry::default());
        let bound = match Binder::new(&scope, &functions).bind(&expr) {
            Ok(bound) => bound,
            Err(error) => return format!("error: {error}"),
        };
        let context = EvalContext { zone: Zone::parse(zone).unwrap() };
        match bound.scalar.eval(&[], &context) {
            Ok(value) => value.to_string(),
            Err(error) => format!("error: {error}"),
        }
    }

    fn eval(sql: &str) -> String {
        eval_in(sql, "UTC")
    }

    #[test]
    fn extract_follows_flink() {
        let ts = "TIMESTAMP '2024-12-30 23:59:58.765'";
        let field = |unit: &str| eval(&format!("EXTRACT({unit} FROM {ts})"));
        assert_eq!(field("YEAR"), "2024");
        assert_eq!(field("ISOYEAR"), "2025");
        assert_eq!(field("WEEK"), "1");
        assert_eq!(field("QUARTER"), "4");
        assert_eq!(field("DOY"), "365");
        assert_eq!(field("DOW"), "2");
        assert_eq!(field("ISODOW"), "1");
        assert_eq!(field("SECOND"), "58");
        assert_eq!(field("MILLISECOND"), "765");
        assert_eq!(field("EPOCH"), "1735603198");
        assert_eq!(field("DECADE"), "202");
        assert_eq!(field("CENTURY"), "21");
        assert_eq!(field("MILLENNIUM"), "3");
        assert_eq!(eval("EXTRACT(WEEK FROM DATE '2021-01-03')"), "53");
        assert_eq!(eval("EXTRACT(EPOCH FROM DATE '1970-01-02')"), "86400");
        assert_eq!(eval("EXTRACT(HOUR FROM TIME '10:20:30')"), "10");
        assert!(eval("EXTRACT(HOUR FROM DATE '2024-01-01')").contains("a DATE has no Hour"));
        assert!(eval("EXTRACT(DAY FROM TIME '10:00:00')").contains("a TIME has no Day"));
        assert!(eval("EXTRACT(HOUR FROM 'x')").contains("argument 2 must be DATE, TIME, TIMESTAMP or TIMESTAMP_LTZ, got STRING"));
    }

    #[test]
    fn timestamp_ltz_fields_are_in_the_session_zone() {
        let ltz = "TO_TIMESTAMP_LTZ(1704067200, 0)"; // 2024-01-01 00:00:00 UTC
        assert_eq!(eval_in(&format!("HOUR({ltz})"), "UTC"), "0");
        assert_eq!(eval_in(&format!("HOUR({ltz})"), "Asia/Shanghai"), "8");
        assert_eq!(eval_in(&format!("DAYOFMONTH({ltz})"), "America/New_York"), "31");
        assert_eq!(eval_in(&format!("DATE_FORMAT({ltz}, 'yyyy-MM-dd HH:mm XXX')"), "America/New_York"), "2023-12-31 19:00 -05:00");
        assert_eq!(eval_in(&format!("FLOOR({ltz} TO DAY)"), "Asia/Shanghai"), "2023-12-31 16:00:00.000");
        assert_eq!(eval_in("FROM_UNIXTIME(0)", "Asia/Tokyo"), "1970-01-01 09:00:00");
        assert_eq!(eval_in("UNIX_TIMESTAMP('1970-01-01 09:00:00')", "Asia/Tokyo"), "0");
        assert_eq!(eval_in("UNIX_TIMESTAMP('1970-01-01 09:00:00 +0900', 'yyyy-MM-dd HH:mm:ss Z')", "UTC"), "0");
    }

    #[test]
    fn convert_tz_follows_daylight_saving() {
        // New York: UTC-5 in winter, UTC-4 in summer (from 2024-03-10 02:00 local).
        assert_eq!(eval("CONVERT_TZ('2024-01-15 12:00:00', 'UTC', 'America/New_York')"), "2024-01-15 07:00:00");
        assert_eq!(eval("CONVERT_TZ('2024-07-15 12:00:00', 'UTC', 'America/New_York')"), "2024-07-15 08:00:00");
        assert_eq!(eval("CONVERT_TZ('2024-03-10 06:59:59', 'UTC', 'America/New_York')"), "2024-03-10 01:59:59");
        assert_eq!(eval("CONVERT_TZ('2024-03-10 07:00:00', 'UTC', 'America/New_York')"), "2024-03-10 03:00:00");
        // A local time the change skips moves forward by it.
        assert_eq!(eval("CONVERT_TZ('2024-03-10 02:30:00', 'America/New_York', 'UTC')"), "2024-03-10 07:30:00");
        assert_eq!(eval("CONVERT_TZ('2024-05-01 08:00:00', 'Asia/Shanghai', 'Europe/London')"), "2024-05-01 01:00:00");
        assert_eq!(eval("CONVERT_TZ('2024-05-01 08:00:00', '+08:00', 'GMT-3')"), "2024-04-30 21:00:00");
        assert_eq!(eval("CONVERT_TZ('not a date', 'UTC', 'Asia/Shanghai')"), "<NULL>");
        assert!(eval("CONVERT_TZ('2024-05-01 08:00:00', 'Mars/Olympus', 'UTC')").contains("'Mars/Olympus' is not a time zone"));
    }

    #[test]
    fn parsing_gives_null_for_bad_text_and_errors_for_bad_patterns() {
        assert_eq!(eval("TO_TIMESTAMP('2024-05-17 14:03:09')"), "2024-05-17 14:03:09.000");
        assert_eq!(eval("TO_TIMESTAMP('2024-5-7')"), "2024-05-07 00:00:00.000");
        assert_eq!(eval("TO_TIMESTAMP('yesterday')"), "<NULL>");
        assert_eq!(eval("TO_TIMESTAMP('2024-02-30 00:00:00')"), "<NULL>");
        assert_eq!(eval("TO_TIMESTAMP('17/05/2024', 'dd/MM/yyyy HH:mm')"), "<NULL>");
        assert_eq!(eval("TO_TIMESTAMP('2024-05-17 10:00:00', 'dd/MM/yyyy')"), "2024-05-17 10:00:00.000");
        assert!(eval("TO_TIMESTAMP('2024', 'yyyy-ww')").contains("the letter 'w' is not supported"));
        assert_eq!(eval("TO_DATE('2024-05-17 10:00:00')"), "2024-05-17");
        assert_eq!(eval("TO_DATE('May 17, 2024', 'MMM d, yyyy')"), "2024-05-17");
        assert_eq!(eval("TO_DATE('bad', 'yyyy')"), "<NULL>");
        assert_eq!(eval("UNIX_TIMESTAMP('bad')"), "-9223372036854775808");
        assert_eq!(eval("UNIX_TIMESTAMP('2024-05-17 14:03:09.999')"), "1715954589");
        assert_eq!(eval("DATE_FORMAT('2024-05-17 14:03:09', 'MM/dd')"), "05/17");
        assert_eq!(eval("DATE_FORMAT('2024-05-17', 'MM/dd')"), "<NULL>");
        assert!(eval("DATE_FORMAT(TIMESTAMP '2024-05-17 14:03:09', 'X')").contains("needs a time zone"));
        assert_eq!(eval("TO_TIMESTAMP_LTZ(1700000000123)"), "2023-11-14 22:13:20.123");
        // As Flink: a decimal's fraction of a second is cut, a double's kept.
        assert_eq!(eval("TO_TIMESTAMP_LTZ(1.5, 0)"), "1970-01-01 00:00:01.000");
        assert_eq!(eval("TO_TIMESTAMP_LTZ(CAST(1.5 AS DOUBLE), 0)"), "1970-01-01 00:00:01.500");
        assert_eq!(eval("TO_TIMESTAMP_LTZ(253402300800, 0)"), "<NULL>");
        assert!(eval("TO_TIMESTAMP_LTZ(1, 6)").contains("the precision is 0 (seconds) or 3 (milliseconds), not 6"));
        assert_eq!(eval("TO_TIMESTAMP_LTZ('2024-01-01 08:00:00', 'yyyy-MM-dd HH:mm:ss', 'Asia/Shanghai')"), "2024-01-01 00:00:00.000");
        assert_eq!(eval("TO_TIMESTAMP_LTZ('2024-01-01 08:00:00.250')"), "2024-01-01 08:00:00.250");
    }

    #[test]
    fn rounding_and_arithmetic_to_units() {
        let ts = "TIMESTAMP '2024-05-17 14:03:09.5'";
        assert_eq!(eval(&format!("CEIL({ts} TO HOUR)")), "2024-05-17 15:00:00.000");
        assert_eq!(eval(&format!("FLOOR({ts} TO MINUTE)")), "2024-05-17 14:03:00.000");
        assert_eq!(eval(&format!("FLOOR({ts} TO WEEK)")), "2024-05-12 00:00:00.000");
        assert_eq!(eval(&format!("CEIL({ts} TO MONTH)")), "2024-06-01 00:00:00.000");
        assert_eq!(eval(&format!("FLOOR({ts} TO QUARTER)")), "2024-04-01 00:00:00.000");
        assert_eq!(eval(&format!("CEIL({ts} TO YEAR)")), "2025-01-01 00:00:00.000");
        assert_eq!(eval(&format!("FLOOR({ts} TO DECADE)")), "2020-01-01 00:00:00.000");
        assert_eq!(eval(&format!("FLOOR({ts} TO CENTURY)")), "2001-01-01 00:00:00.000");
        assert_eq!(eval("CEIL(TIMESTAMP '2024-05-17 00:00:00' TO DAY)"), "2024-05-17 00:00:00.000");
        assert_eq!(eval("FLOOR(DATE '2024-05-17' TO MONTH)"), "2024-05-01");
        assert!(eval("FLOOR(DATE '2024-05-17' TO HOUR)").contains("a DATE cannot be rounded to Hour"));
        assert_eq!(eval("TIMESTAMPADD(HOUR, -3, TIMESTAMP '2024-01-01 01:00:00')"), "2023-12-31 22:00:00.000");
        assert_eq!(eval("TIMESTAMPADD(YEAR, 1, DATE '2024-02-29')"), "2025-02-28");
        assert_eq!(eval("TIMESTAMPADD(HOUR, 1, DATE '2024-02-29')"), "2024-02-29 01:00:00.000");
        assert_eq!(eval("TIMESTAMPDIFF(MONTH, DATE '2024-01-31', DATE '2024-02-29')"), "1");
        assert_eq!(eval("TIMESTAMPDIFF(MONTH, TIMESTAMP '2024-01-15 10:00:00', TIMESTAMP '2024-03-15 09:00:00')"), "1");
        assert_eq!(eval("TIMESTAMPDIFF(YEAR, DATE '2024-06-01', DATE '2020-06-02')"), "-3");
        assert_eq!(eval("TIMESTAMPDIFF(SECOND, TIMESTAMP '2024-01-01 00:00:10', TIMESTAMP '2024-01-01 00:00:00')"), "-10");
        assert!(eval("TIMESTAMPDIFF(FORTNIGHT, DATE '2024-01-01', DATE '2024-02-01')").contains("unknown time unit FORTNIGHT"));
    }

    #[test]
    fn the_current_time_is_now() {
        assert_eq!(eval("CURRENT_DATE = CAST(NOW() AS DATE)"), "TRUE");
        assert_eq!(eval("YEAR(LOCALTIMESTAMP) >= 2024"), "TRUE");
        assert!(!FunctionRegistry::default().scalar("NOW").unwrap().is_deterministic());
    }
}
