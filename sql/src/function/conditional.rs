//! Conditional functions: IF, IFNULL, NULLIF, and the IS_ALPHA / IS_DIGIT / IS_DECIMAL tests of
//! text. (COALESCE and CASE are the binder's own.)
//!
//! Their results take the common type of the values they choose between, as Flink's.

use super::{check, common_type, evaluator, Evaluator, ScalarFunction, ANY, BOOLEAN};
use crate::expr::cast_value;
use crate::types::SqlType;
use crate::value::Value;

/// Casts argument `index` of a call with argument types `types` to `to`.
fn cast_arg(args: &[Value], types: &[SqlType], index: usize, to: &SqlType, context: &super::EvalContext) -> Result<Value, String> {
    cast_value(args[index].clone(), &types[index], to, context)
}

/// A test of text (NULL and empty text fail it); a number passes when its kind is in `numbers`
/// (integers, and decimals or doubles), as Flink's tests of Java objects do.
fn text_test(name: &str, description: &str, call: &str, result: &str, test: fn(&str) -> bool, numbers: (bool, bool)) -> ScalarFunction {
    let (integers, fractions) = numbers;
    let takes_numbers = integers || fractions;
    let signature = if takes_numbers { format!("{name}(s STRING | NUMERIC) -> BOOLEAN") } else { format!("{name}(s STRING) -> BOOLEAN") };
    ScalarFunction::new(
        name,
        &signature,
        move |args| {
            if takes_numbers {
                check(args, 1..=1, &[("STRING or a number", |t: &SqlType| t.is_string() || t.is_numeric())])?;
            } else {
                check(args, 1..=1, &[super::STRING])?;
            }
            Ok(SqlType::Boolean)
        },
        move |args, _| {
            Ok(Value::Bool(match &args[0] {
                Value::Str(text) => !text.is_empty() && test(text),
                Value::Int(_) => integers,
                Value::Float(_) | Value::Decimal(_) => fractions,
                _ => false,
            }))
        },
    )
    .handles_nulls()
    .describe(description)
    .example(call, result)
}

/// Whether Java's `Double.parseDouble` (or `Long.parseLong`) takes the text, as Flink's
/// IS_DECIMAL asks.
fn is_decimal(text: &str) -> bool {
    let trimmed = text.trim_matches(|c: char| c <= ' ');
    let body = trimmed.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(trimmed);
    let unsigned = body.strip_prefix(['+', '-']).unwrap_or(body);
    if unsigned == "NaN" || unsigned == "Infinity" {
        return true;
    }
    !unsigned.is_empty()
        && unsigned.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && unsigned.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && body.parse::<f64>().is_ok()
}

/// The conditional functions.
pub fn functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction::planned("IF", "IF(condition BOOLEAN, then T, else T) -> T", |args, _| {
            check(args, 3..=3, &[BOOLEAN, ANY])?;
            let common = common_type(args, 1)?;
            let (types, to) = (args.to_vec(), common.clone());
            let eval: Evaluator = evaluator(move |args, context| {
                let chosen = if args[0].as_bool() == Some(true) { 1 } else { 2 };
                cast_arg(args, &types, chosen, &to, context)
            });
            Ok((common, eval))
        })
        .handles_nulls()
        .describe("The second argument if the condition is TRUE, else (FALSE or NULL) the third.")
        .example("IF(5 > 3, 'big', 'small')", "big"),
        ScalarFunction::planned("IFNULL", "IFNULL(value T, replacement T) -> T", |args, _| {
            check(args, 2..=2, &[ANY])?;
            let common = common_type(args, 0)?;
            let (types, to) = (args.to_vec(), common.clone());
            let eval: Evaluator = evaluator(move |args, context| {
                let chosen = if args[0].is_null() { 1 } else { 0 };
                cast_arg(args, &types, chosen, &to, context)
            });
            Ok((common, eval))
        })
        .handles_nulls()
        .describe("The value, or the replacement when it is NULL.")
        .example("IFNULL(NULL, 'fallback')", "fallback"),
        ScalarFunction::planned("NULLIF", "NULLIF(value T, other T) -> T", |args, _| {
            check(args, 2..=2, &[ANY])?;
            let common = common_type(args, 0)?;
            let (types, to) = (args.to_vec(), common.clone());
            let data_type = if args[0] == SqlType::Null { common.clone() } else { args[0].clone() };
            let eval: Evaluator = evaluator(move |args, context| {
                let (value, other) = (cast_arg(args, &types, 0, &to, context)?, cast_arg(args, &types, 1, &to, context)?);
                if value.sql_cmp(&other) == Some(std::cmp::Ordering::Equal) {
                    return Ok(Value::Null);
                }
                Ok(args[0].clone())
            });
            Ok((data_type, eval))
        })
        .handles_nulls()
        .describe("NULL when the two values are equal, else the first.")
        .example("NULLIF(5, 5)", "<NULL>"),
        text_test(
            "IS_ALPHA",
            "Whether the text is all letters (FALSE for empty text or NULL).",
            "IS_ALPHA('Tethys')",
            "TRUE",
            |text| text.chars().all(char::is_alphabetic),
            (false, false),
        ),
        text_test(
            "IS_DIGIT",
            "Whether the text is all digits (FALSE for empty text or NULL); TRUE for an integer.",
            "IS_DIGIT('2024')",
            "TRUE",
            |text| text.chars().all(char::is_numeric),
            (true, false),
        ),
        text_test(
            "IS_DECIMAL",
            "Whether the text is a number, as Java parses one (FALSE for empty text or NULL); TRUE for a number.",
            "IS_DECIMAL('-1.5e3')",
            "TRUE",
            is_decimal,
            (true, true),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use crate::expr::eval_text as eval;

    #[test]
    fn conditions_choose_in_the_common_type() {
        assert_eq!(eval("IF(NULL, 1, 2)"), "2");
        assert_eq!(eval("IF(TRUE, 1, 2.5)"), "1.0");
        assert_eq!(eval("IF(FALSE, 1, NULL)"), "<NULL>");
        assert!(eval("IF(1, 2, 3)").contains("argument 1 must be BOOLEAN, got INT"));
        assert!(eval("IF(TRUE, 2, 'x')").contains("argument 3 of type STRING does not mix with INT"));
        assert_eq!(eval("IFNULL(2, 3)"), "2");
        assert_eq!(eval("IFNULL(NULL, NULL)"), "<NULL>");
        assert_eq!(eval("IFNULL(1, 2.25)"), "1.00");
        assert_eq!(eval("NULLIF(1, 2)"), "1");
        assert_eq!(eval("NULLIF(1, 1.0)"), "<NULL>");
        assert_eq!(eval("NULLIF(NULL, 1)"), "<NULL>");
        assert_eq!(eval("NULLIF(1, NULL)"), "1");
    }

    #[test]
    fn text_tests_follow_flink() {
        assert_eq!(eval("IS_ALPHA('')"), "FALSE");
        assert_eq!(eval("IS_ALPHA(NULL)"), "FALSE");
        assert_eq!(eval("IS_ALPHA('ab1')"), "FALSE");
        assert_eq!(eval("IS_ALPHA('héllo')"), "TRUE");
        assert_eq!(eval("IS_DIGIT('12a')"), "FALSE");
        assert_eq!(eval("IS_DIGIT(12)"), "TRUE");
        assert_eq!(eval("IS_DIGIT('-1')"), "FALSE");
        assert_eq!(eval("IS_DECIMAL('1.')"), "TRUE");
        assert_eq!(eval("IS_DECIMAL(' 42 ')"), "TRUE");
        assert_eq!(eval("IS_DECIMAL('NaN')"), "TRUE");
        assert_eq!(eval("IS_DECIMAL('1.5d')"), "TRUE");
        assert_eq!(eval("IS_DECIMAL('inf')"), "FALSE");
        assert_eq!(eval("IS_DECIMAL('1,5')"), "FALSE");
        assert_eq!(eval("IS_DECIMAL(1.5)"), "TRUE");
        assert_eq!(eval("IS_DIGIT(1.5)"), "FALSE");
    }
}
