//! Math functions: absolute values, remainders, powers and logarithms, rounding (exact for
//! decimals, half away from zero as Flink's), trigonometry, GREATEST/LEAST and number bases.
//!
//! A function of doubles (SQRT, LN...) takes any number and returns DOUBLE; one that keeps its
//! argument's kind (ABS, SIGN, ROUND, CEIL...) returns its type, a decimal's precision and scale
//! following Flink's rules.

use super::{check, common_type, double, evaluator, integer, Evaluator, ScalarFunction, EXACT_NUMERIC, INTEGER, NUMERIC, STRING};
use crate::expr::cast_value;
use crate::types::{SqlType, DECIMAL_PRECISION_MAX};
use crate::value::{ten_to, Decimal, Value};

fn unary_double(name: &str, description: &str, call: &str, result: &str, f: fn(f64) -> f64) -> ScalarFunction {
    ScalarFunction::new(
        name,
        &format!("{name}(x NUMERIC) -> DOUBLE"),
        |args| {
            check(args, 1..=1, &[NUMERIC])?;
            Ok(SqlType::Double)
        },
        move |args, _| Ok(Value::Float(f(double(&args[0])?))),
    )
    .describe(description)
    .example(call, result)
}

fn binary_double(name: &str, signature: &str, description: &str, call: &str, result: &str, f: fn(f64, f64) -> f64) -> ScalarFunction {
    ScalarFunction::new(
        name,
        signature,
        |args| {
            check(args, 2..=2, &[NUMERIC])?;
            Ok(SqlType::Double)
        },
        move |args, _| Ok(Value::Float(f(double(&args[0])?, double(&args[1])?))),
    )
    .describe(description)
    .example(call, result)
}

/// How a number is rounded to a place: to the nearest, halves away from zero (ROUND), or toward
/// zero (TRUNCATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rounding {
    HalfUp,
    Down,
}

/// `unscaled` divided by `10^shift`, rounded.
fn shift_right(unscaled: i128, shift: u32, rounding: Rounding) -> i128 {
    if shift == 0 {
        return unscaled;
    }
    if shift > 38 {
        return 0;
    }
    let divisor = ten_to(shift as u8);
    let (quotient, remainder) = (unscaled / divisor, unscaled % divisor);
    match rounding {
        Rounding::HalfUp if remainder.abs() >= divisor - remainder.abs() => quotient + unscaled.signum(),
        _ => quotient,
    }
}

/// A decimal rounded to `places` digits after the point (negative: before it), with the scale
/// `scale` of the result type.
fn round_decimal(value: Decimal, places: i32, scale: u8, rounding: Rounding) -> Option<Decimal> {
    let rounded = if places >= i32::from(value.scale) {
        value
    } else {
        let shift = (i32::from(value.scale) - places) as u32;
        let digits = shift_right(value.unscaled(), shift, rounding);
        if places >= 0 {
            Decimal::new(digits, places as u8)
        } else {
            Decimal::new(digits.checked_mul(10i128.checked_pow((-places) as u32)?)?, 0)
        }
    };
    rounded.rescale(scale)
}

/// A double rounded at `places` as Flink does: through its shortest decimal form (Java's
/// `BigDecimal.valueOf`), so that `ROUND(2.675E0, 2)` is 2.68.
fn round_double(value: f64, places: i32, rounding: Rounding) -> f64 {
    if !value.is_finite() || value == 0.0 {
        return value;
    }
    let text = format!("{value:e}");
    let (mantissa, exponent) = text.split_once('e').expect("an exponent");
    let exponent: i32 = exponent.parse().expect("a number");
    let fraction_digits = mantissa.split_once('.').map_or(0, |(_, fraction)| fraction.len() as i32);
    let digits: i128 = mantissa.replace('.', "").parse().expect("digits");
    // value = digits * 10^(exponent - fraction_digits)
    let power = exponent - fraction_digits;
    if power >= -places {
        return value;
    }
    let shift = (-places - power) as u32;
    let rounded = shift_right(digits, shift, rounding);
    format!("{rounded}e{}", -places).parse().unwrap_or(value)
}

/// An integer rounded at `places` (only negative places change it).
fn round_integer(value: i64, places: i32, rounding: Rounding) -> i64 {
    if places >= 0 {
        return value;
    }
    let shift = (-places) as u32;
    let rounded = shift_right(i128::from(value), shift, rounding);
    rounded.saturating_mul(10i128.saturating_pow(shift)).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Flink's result type of ROUND or TRUNCATE of a DECIMAL(p, s) to `places`.
fn round_decimal_type(precision: u8, scale: u8, places: i32) -> (u8, u8) {
    if places >= i32::from(scale) {
        (precision, scale)
    } else if places < 0 {
        ((1 + precision - scale).min(DECIMAL_PRECISION_MAX), 0)
    } else {
        ((1 + precision - scale + places as u8).min(DECIMAL_PRECISION_MAX), places as u8)
    }
}

fn rounding_function(name: &str, rounding: Rounding) -> ScalarFunction {
    ScalarFunction::planned(name, &format!("{name}(x NUMERIC[, places INT]) -> type of x"), move |args, constants| {
        check(args, 1..=2, &[NUMERIC, INTEGER])?;
        // The places decide a decimal's result type when they are known: 0 if not given.
        let places = match constants.get(1) {
            None => Some(0),
            Some(Some(Value::Int(places))) => Some((*places).clamp(-64, 64) as i32),
            Some(_) => None,
        };
        let data_type = match (&args[0], places) {
            (SqlType::Decimal { precision, scale }, Some(places)) => {
                let (precision, scale) = round_decimal_type(*precision, *scale, places);
                SqlType::Decimal { precision, scale }
            }
            (other, _) => other.clone(),
        };
        let result_type = data_type.clone();
        let eval: Evaluator = evaluator(move |args, _| {
            let places = match args.get(1) {
                Some(places) => integer(places)?.clamp(-64, 64) as i32,
                None => 0,
            };
            Ok(match &args[0] {
                Value::Int(value) => Value::Int(round_integer(*value, places, rounding)),
                Value::Float(value) => Value::Float(round_double(*value, places, rounding)),
                Value::Decimal(value) => {
                    let SqlType::Decimal { precision, scale } = result_type else {
                        return Err(format!("a DECIMAL argument typed {result_type}"));
                    };
                    match round_decimal(*value, places, scale, rounding) {
                        Some(rounded) if rounded.fits(precision) => Value::Decimal(rounded),
                        _ => Value::Null,
                    }
                }
                other => return Err(format!("expected a number, got {other}")),
            })
        });
        Ok((data_type, eval))
    })
}

/// CEIL or FLOOR of a number; of a date-time to a unit with two arguments.
fn ceil_floor(name: &str, ceil: bool) -> ScalarFunction {
    let signature = format!("{name}(x NUMERIC) -> type of x; {name}(t DATE | TIMESTAMP | TIMESTAMP_LTZ, unit STRING) -> type of t");
    ScalarFunction::planned(name, &signature, move |args, constants| {
        if args.len() == 2 {
            return super::temporal::plan_ceil_floor(args, constants, ceil);
        }
        check(args, 1..=1, &[NUMERIC])?;
        let data_type = match &args[0] {
            SqlType::Decimal { precision, scale } if *scale > 0 => {
                SqlType::Decimal { precision: (precision - scale + 1).min(DECIMAL_PRECISION_MAX), scale: 0 }
            }
            other => other.clone(),
        };
        let eval: Evaluator = evaluator(move |args, _| {
            Ok(match &args[0] {
                Value::Int(value) => Value::Int(*value),
                Value::Float(value) => Value::Float(if ceil { value.ceil() } else { value.floor() }),
                Value::Decimal(value) => {
                    let truncated = shift_right(value.unscaled(), u32::from(value.scale), Rounding::Down);
                    let exact = truncated * ten_to(value.scale) == value.unscaled();
                    let adjust = match (exact, ceil, value.unscaled() > 0) {
                        (false, true, true) => 1,
                        (false, false, false) => -1,
                        _ => 0,
                    };
                    Value::Decimal(Decimal::new(truncated + adjust, 0))
                }
                other => return Err(format!("expected a number, got {other}")),
            })
        });
        Ok((data_type, eval))
    })
}

fn greatest_least(name: &str, greatest: bool) -> ScalarFunction {
    ScalarFunction::planned(name, &format!("{name}(x1 T, x2 T, ...) -> T"), move |args, _| {
        super::arity(args, 1..=usize::MAX)?;
        let common = common_type(args, 0)?;
        if matches!(common, SqlType::Map(..)) {
            return Err(format!("{common} values cannot be compared"));
        }
        let (types, result_type) = (args.to_vec(), common.clone());
        let eval: Evaluator = evaluator(move |args, context| {
            let mut best: Option<Value> = None;
            for (value, from) in args.iter().zip(&types) {
                let value = cast_value(value.clone(), from, &result_type, context)?;
                let better = match &best {
                    None => true,
                    Some(current) => match value.sql_cmp(current) {
                        Some(ordering) => (ordering == std::cmp::Ordering::Greater) == greatest && ordering.is_ne(),
                        None => false,
                    },
                };
                if better {
                    best = Some(value);
                }
            }
            Ok(best.unwrap_or(Value::Null))
        });
        Ok((common, eval))
    })
}

fn modulo() -> ScalarFunction {
    ScalarFunction::planned("MOD", "MOD(a INTEGER | DECIMAL, b INTEGER | DECIMAL) -> type of b, or a DECIMAL", |args, _| {
        check(args, 2..=2, &[EXACT_NUMERIC])?;
        let data_type = match (args[0].decimal_digits(), args[1].decimal_digits()) {
            (Some((p1, s1)), Some((p2, s2)))
                if s1 > 0 || s2 > 0 || matches!(args[0], SqlType::Decimal { .. }) || matches!(args[1], SqlType::Decimal { .. }) =>
            {
                let scale = s1.max(s2);
                SqlType::Decimal { precision: ((p1 - s1).min(p2 - s2) + scale).min(DECIMAL_PRECISION_MAX), scale }
            }
            _ if args[1] == SqlType::Null => args[0].clone(),
            _ => args[1].clone(),
        };
        let eval: Evaluator = evaluator(|args, _| match (&args[0], &args[1]) {
            (Value::Int(_), Value::Int(0)) => Err("division by zero".into()),
            (Value::Int(a), Value::Int(b)) => Ok(Value::Int(a.wrapping_rem(*b))),
            (a, b) => {
                let (a, b) = (a.as_decimal().ok_or("expected a number")?, b.as_decimal().ok_or("expected a number")?);
                let scale = a.scale.max(b.scale);
                let (Some(a), Some(b)) = (a.rescale(scale), b.rescale(scale)) else {
                    return Ok(Value::Null);
                };
                if b.unscaled() == 0 {
                    return Err("division by zero".into());
                }
                Ok(Value::Decimal(Decimal::new(a.unscaled() % b.unscaled(), scale)))
            }
        });
        Ok((data_type, eval))
    })
}

/// The math functions.
pub fn functions() -> Vec<ScalarFunction> {
    let ceil = ceil_floor("CEIL", true)
        .describe("The smallest integer at or above the number; with a unit ('HOUR', 'DAY', 'MONTH'...), the date-time rounded up to it: CEIL(t TO HOUR).")
        .example("CEIL(-1.5)", "-1");
    let ceiling = ceil.alias("CEILING");
    vec![
        ScalarFunction::new(
            "ABS",
            "ABS(x NUMERIC) -> type of x",
            |args| {
                check(args, 1..=1, &[NUMERIC])?;
                Ok(args[0].clone())
            },
            |args, _| {
                Ok(match &args[0] {
                    Value::Int(value) => Value::Int(value.wrapping_abs()),
                    Value::Float(value) => Value::Float(value.abs()),
                    Value::Decimal(value) => Value::Decimal(Decimal::new(value.unscaled().abs(), value.scale)),
                    other => return Err(format!("expected a number, got {other}")),
                })
            },
        )
        .describe("The absolute value of the number.")
        .example("ABS(-2.5)", "2.5"),
        modulo()
            .describe("The remainder of a divided by b, negative only when a is (an error when b is 0); of integers it has b's type.")
            .example("MOD(-7, 3)", "-1"),
        binary_double(
            "POWER",
            "POWER(base NUMERIC, exponent NUMERIC) -> DOUBLE",
            "The base raised to the exponent.",
            "POWER(2, 10)",
            "1024.0",
            f64::powf,
        ),
        unary_double("SQRT", "The square root of the number (NaN for a negative one).", "SQRT(16)", "4.0", f64::sqrt),
        unary_double("EXP", "e raised to the number.", "EXP(0)", "1.0", f64::exp),
        unary_double("LN", "The natural logarithm of the number.", "LN(1)", "0.0", f64::ln),
        unary_double("LOG10", "The base-10 logarithm of the number.", "LOG10(1000)", "3.0", f64::log10),
        unary_double("LOG2", "The base-2 logarithm of the number.", "LOG2(8)", "3.0", |x| x.ln() / std::f64::consts::LN_2),
        ScalarFunction::new(
            "LOG",
            "LOG([base NUMERIC,] x NUMERIC) -> DOUBLE",
            |args| {
                check(args, 1..=2, &[NUMERIC])?;
                Ok(SqlType::Double)
            },
            |args, _| {
                Ok(Value::Float(match args {
                    [x] => double(x)?.ln(),
                    [base, x] => double(x)?.ln() / double(base)?.ln(),
                    _ => return Err("takes 1 or 2 arguments".into()),
                }))
            },
        )
        .describe("The natural logarithm of x, or with two arguments its logarithm to the given base.")
        .example("LOG(2, 1024)", "10.0"),
        rounding_function("ROUND", Rounding::HalfUp)
            .describe("The number rounded to `places` digits after the point (0 by default; negative rounds to tens, hundreds...), halves away from zero.")
            .example("ROUND(125.315, 2)", "125.32"),
        rounding_function("TRUNCATE", Rounding::Down)
            .describe("The number cut (toward zero) to `places` digits after the point (0 by default; negative zeroes digits before it).")
            .example("TRUNCATE(42.324, 2)", "42.32"),
        ceil,
        ceiling,
        ceil_floor("FLOOR", false)
            .describe("The largest integer at or below the number; with a unit ('HOUR', 'DAY', 'MONTH'...), the date-time rounded down to it: FLOOR(t TO DAY).")
            .example("FLOOR(TIMESTAMP '2024-05-17 10:42:13' TO HOUR)", "2024-05-17 10:00:00.000"),
        ScalarFunction::new(
            "SIGN",
            "SIGN(x NUMERIC) -> type of x",
            |args| {
                check(args, 1..=1, &[NUMERIC])?;
                Ok(args[0].clone())
            },
            |args, _| {
                Ok(match &args[0] {
                    Value::Int(value) => Value::Int(value.signum()),
                    Value::Float(value) if *value == 0.0 || value.is_nan() => Value::Float(*value),
                    Value::Float(value) => Value::Float(value.signum()),
                    Value::Decimal(value) => Value::Decimal(Decimal::new(value.unscaled().signum() * ten_to(value.scale), value.scale)),
                    other => return Err(format!("expected a number, got {other}")),
                })
            },
        )
        .describe("-1, 0 or 1 as the number is negative, zero or positive, in the number's type.")
        .example("SIGN(-8)", "-1"),
        ScalarFunction::new("PI", "PI() -> DOUBLE", |args| check(args, 0..=0, &[]).map(|_| SqlType::Double), |_, _| {
            Ok(Value::Float(std::f64::consts::PI))
        })
        .describe("π, the ratio of a circle's circumference to its diameter.")
        .example("PI()", "3.141592653589793"),
        ScalarFunction::new("E", "E() -> DOUBLE", |args| check(args, 0..=0, &[]).map(|_| SqlType::Double), |_, _| {
            Ok(Value::Float(std::f64::consts::E))
        })
        .describe("e, the base of natural logarithms.")
        .example("E()", "2.718281828459045"),
        greatest_least("GREATEST", true)
            .describe("The greatest of the values, in their common type; NULL if any is NULL.")
            .example("GREATEST(1, 3.5, 2)", "3.5"),
        greatest_least("LEAST", false)
            .describe("The least of the values, in their common type; NULL if any is NULL.")
            .example("LEAST('b', 'a', 'c')", "a"),
        ScalarFunction::new(
            "BIN",
            "BIN(x INTEGER) -> STRING",
            |args| {
                check(args, 1..=1, &[INTEGER])?;
                Ok(SqlType::String)
            },
            |args, _| Ok(Value::text(format!("{:b}", integer(&args[0])? as u64))),
        )
        .describe("The integer in binary (a negative one in 64-bit two's complement).")
        .example("BIN(12)", "1100"),
        ScalarFunction::new(
            "HEX",
            "HEX(x INTEGER | STRING) -> STRING",
            |args| {
                check(args, 1..=1, &[("an integer or STRING", |t| t.is_integer() || t.is_string())])?;
                Ok(SqlType::String)
            },
            |args, _| {
                Ok(Value::text(match &args[0] {
                    Value::Str(text) => text.bytes().map(|byte| format!("{byte:02X}")).collect::<String>(),
                    other => format!("{:X}", integer(other)? as u64),
                }))
            },
        )
        .describe("The integer in hexadecimal (capitals), or the text's UTF-8 bytes in hexadecimal.")
        .example("HEX('hello,world')", "68656C6C6F2C776F726C64"),
        unary_double("SIN", "The sine of the angle in radians.", "SIN(0)", "0.0", f64::sin),
        unary_double("COS", "The cosine of the angle in radians.", "COS(0)", "1.0", f64::cos),
        unary_double("TAN", "The tangent of the angle in radians.", "TAN(0)", "0.0", f64::tan),
        unary_double("COT", "The cotangent of the angle in radians.", "COT(1)", "0.6420926159343306", |x| 1.0 / x.tan()),
        unary_double("ASIN", "The arc sine of the number, in radians.", "ASIN(1)", "1.5707963267948966", f64::asin),
        unary_double("ACOS", "The arc cosine of the number, in radians.", "ACOS(1)", "0.0", f64::acos),
        unary_double("ATAN", "The arc tangent of the number, in radians.", "ATAN(1)", "0.7853981633974483", f64::atan),
        binary_double(
            "ATAN2",
            "ATAN2(y NUMERIC, x NUMERIC) -> DOUBLE",
            "The angle in radians of the point (x, y) from the x axis.",
            "ATAN2(1, 1)",
            "0.7853981633974483",
            f64::atan2,
        ),
        unary_double("SINH", "The hyperbolic sine of the number.", "SINH(0)", "0.0", f64::sinh),
        unary_double("COSH", "The hyperbolic cosine of the number.", "COSH(0)", "1.0", f64::cosh),
        unary_double("TANH", "The hyperbolic tangent of the number.", "TANH(0)", "0.0", f64::tanh),
        unary_double("DEGREES", "The angle in radians, in degrees.", "DEGREES(PI())", "180.0", f64::to_degrees),
        unary_double("RADIANS", "The angle in degrees, in radians.", "RADIANS(180)", "3.141592653589793", f64::to_radians),
        ScalarFunction::new(
            "UNHEX",
            "UNHEX(s STRING) -> BYTES",
            |args| {
                check(args, 1..=1, &[STRING])?;
                Ok(SqlType::Bytes)
            },
            |args, _| {
                let text = super::text(&args[0])?;
                let padded = if text.len() % 2 == 1 { format!("0{text}") } else { text.to_string() };
                let bytes: Option<Vec<u8>> = (0..padded.len()).step_by(2).map(|i| padded.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok())).collect();
                Ok(bytes.map_or(Value::Null, Value::Bytes))
            },
        )
        .describe("The bytes written in hexadecimal (two digits a byte); NULL if the text is not hexadecimal.")
        .example("UNHEX('4869')", "x'4869'"),
    ]
}

#[cfg(test)]
mod tests {
    use crate::expr::eval_text as eval;
    use crate::function::FunctionRegistry;
    use crate::types::SqlType;

    fn type_of(sql: &str) -> SqlType {
        let dialect = crate::dialect::TethysDialect;
        let expr = sqlparser::parser::Parser::new(&dialect).try_with_sql(sql).unwrap().parse_expr().unwrap();
        let (scope, functions) = (crate::expr::Scope::default(), FunctionRegistry::default());
        crate::expr::Binder::new(&scope, &functions).bind(&expr).unwrap().data_type
    }

    #[test]
    fn rounding_decimals_is_exact_and_half_up() {
        assert_eq!(eval("ROUND(2.5)"), "3");
        assert_eq!(eval("ROUND(-2.5)"), "-3");
        assert_eq!(eval("ROUND(-1.45, 1)"), "-1.5");
        assert_eq!(eval("ROUND(1.234, 5)"), "1.234");
        assert_eq!(eval("ROUND(123.45, -1)"), "120");
        assert_eq!(eval("ROUND(155.5, -1)"), "160");
        assert_eq!(eval("ROUND(-155.5, -2)"), "-200");
        assert_eq!(eval("ROUND(99.99, 1)"), "100.0");
        assert_eq!(eval("ROUND(0.5, -3)"), "0");
        assert_eq!(type_of("ROUND(125.315, 2)"), SqlType::Decimal { precision: 6, scale: 2 });
        assert_eq!(type_of("ROUND(125.315, -1)"), SqlType::Decimal { precision: 4, scale: 0 });
        assert_eq!(type_of("ROUND(125.315, 7)"), SqlType::Decimal { precision: 6, scale: 3 });
        assert_eq!(type_of("ROUND(125.315)"), SqlType::Decimal { precision: 4, scale: 0 });
        assert_eq!(type_of("ROUND(5, -1)"), SqlType::Int);
        assert_eq!(eval("TRUNCATE(-1.59, 1)"), "-1.5");
        assert_eq!(eval("TRUNCATE(42.324)"), "42");
        assert_eq!(eval("TRUNCATE(1999, -2)"), "1900");
    }

    #[test]
    fn rounding_integers_and_doubles_as_flink() {
        assert_eq!(eval("ROUND(125, -1)"), "130");
        assert_eq!(eval("ROUND(-125, -1)"), "-130");
        assert_eq!(eval("ROUND(7, 2)"), "7");
        assert_eq!(eval("ROUND(CAST(2.675 AS DOUBLE), 2)"), "2.68");
        assert_eq!(eval("ROUND(CAST(-0.5 AS DOUBLE))"), "-1.0");
        assert_eq!(eval("ROUND(CAST(1234.5678 AS DOUBLE), -2)"), "1200.0");
        assert_eq!(eval("ROUND(CAST(1.0E-10 AS DOUBLE), 3)"), "0.0");
        assert_eq!(eval("ROUND(CAST(1.0E300 AS DOUBLE), 3)"), "1.0E300");
        assert_eq!(eval("TRUNCATE(CAST(-2.675 AS DOUBLE), 2)"), "-2.67");
    }

    #[test]
    fn ceil_floor_sign_abs_keep_the_kind() {
        assert_eq!(eval("CEIL(1.2)"), "2");
        assert_eq!(eval("FLOOR(-1.2)"), "-2");
        assert_eq!(eval("FLOOR(3.0)"), "3");
        assert_eq!(eval("CEIL(CAST(1.2 AS DOUBLE))"), "2.0");
        assert_eq!(eval("CEIL(7)"), "7");
        assert_eq!(type_of("CEIL(12.34)"), SqlType::Decimal { precision: 3, scale: 0 });
        assert_eq!(eval("SIGN(-2.50)"), "-1.00");
        assert_eq!(eval("SIGN(CAST(0 AS DOUBLE))"), "0.0");
        assert_eq!(eval("ABS(-9223372036854775807)"), "9223372036854775807");
    }

    #[test]
    fn mod_greatest_least_and_bases() {
        assert_eq!(eval("MOD(7, 0)"), "error: MOD: division by zero");
        assert_eq!(eval("MOD(7.5, 2)"), "1.5");
        assert_eq!(type_of("MOD(CAST(7 AS BIGINT), 3)"), SqlType::Int);
        assert!(eval("MOD(CAST(7 AS DOUBLE), 2)").contains("argument 1 must be an integer or DECIMAL, got DOUBLE"));
        assert_eq!(eval("GREATEST(1, 2, NULL)"), "<NULL>");
        assert_eq!(eval("GREATEST(3, 2.5)"), "3.0");
        assert_eq!(eval("LEAST(CAST(2 AS DOUBLE), 1)"), "1.0");
        assert_eq!(eval("GREATEST(DATE '2024-01-01', DATE '2023-12-31')"), "2024-01-01");
        assert!(eval("GREATEST(1, 'a')").contains("argument 2 of type STRING does not mix with INT"));
        assert_eq!(eval("BIN(-1)").len(), 64);
        assert_eq!(eval("HEX(255)"), "FF");
        assert_eq!(eval("HEX(-1)"), "FFFFFFFFFFFFFFFF");
        assert_eq!(eval("UNHEX('zz')"), "<NULL>");
        assert_eq!(eval("LOG(10, 1000)"), "2.9999999999999996");
        assert_eq!(eval("SQRT(-1)"), "NaN");
    }
}
