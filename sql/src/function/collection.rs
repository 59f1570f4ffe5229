//! Functions of arrays and maps: sizes, membership and positions, distinct and reversed arrays,
//! joining, extremes, and a map's keys, values and entries.

use std::cmp::Ordering;

use super::{check, evaluator, integer, text, Evaluator, Kind, ScalarFunction, ANY, STRING};
use crate::types::SqlType;
use crate::value::Value;

const ARRAY: Kind = ("an ARRAY", |t| matches!(t, SqlType::Array(_)));
const MAP: Kind = ("a MAP", |t| matches!(t, SqlType::Map(..)));

fn element_type(array: &SqlType) -> SqlType {
    match array {
        SqlType::Array(element) => (**element).clone(),
        _ => SqlType::Null,
    }
}

fn array(value: &Value) -> Result<&[Value], String> {
    match value {
        Value::Array(values) => Ok(values),
        other => Err(format!("expected an array, got {other}")),
    }
}

fn map(value: &Value) -> Result<&[(Value, Value)], String> {
    match value {
        Value::Map(entries) => Ok(entries),
        other => Err(format!("expected a map, got {other}")),
    }
}

/// Checks that the needle (argument 2) may be compared with the array's elements.
fn check_needle(args: &[SqlType]) -> Result<(), String> {
    check(args, 2..=2, &[ARRAY, ANY])?;
    let element = element_type(&args[0]);
    if SqlType::common(&element, &args[1]).is_none() {
        return Err(format!("argument 2 must be comparable with the elements ({element}), got {}", args[1]));
    }
    Ok(())
}

fn same(a: &Value, b: &Value) -> bool {
    (a.is_null() && b.is_null()) || a.sql_cmp(b) == Some(Ordering::Equal)
}

fn extreme(name: &str, wanted: Ordering) -> ScalarFunction {
    ScalarFunction::planned(name, &format!("{name}(array ARRAY<T>) -> T"), move |args, _| {
        check(args, 1..=1, &[ARRAY])?;
        let eval: Evaluator = evaluator(move |args, _| {
            let mut best: Option<&Value> = None;
            for value in array(&args[0])?.iter().filter(|value| !value.is_null()) {
                if best.is_none_or(|best| value.sql_cmp(best) == Some(wanted)) {
                    best = Some(value);
                }
            }
            Ok(best.cloned().unwrap_or(Value::Null))
        });
        Ok((element_type(&args[0]), eval))
    })
}

/// The collection functions.
pub fn functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction::new(
            "CARDINALITY",
            "CARDINALITY(c ARRAY | MAP) -> INT",
            |args| {
                check(args, 1..=1, &[("an ARRAY or a MAP", |t| matches!(t, SqlType::Array(_) | SqlType::Map(..)))])?;
                Ok(SqlType::Int)
            },
            |args, _| {
                Ok(Value::Int(match &args[0] {
                    Value::Array(values) => values.len() as i64,
                    Value::Map(entries) => entries.len() as i64,
                    other => return Err(format!("expected an array or a map, got {other}")),
                }))
            },
        )
        .describe("The number of elements of the array, or of entries of the map.")
        .example("CARDINALITY(ARRAY[1, 2, 3])", "3"),
        ScalarFunction::new(
            "ARRAY_CONTAINS",
            "ARRAY_CONTAINS(array ARRAY<T>, value T) -> BOOLEAN",
            |args| {
                check_needle(args)?;
                Ok(SqlType::Boolean)
            },
            |args, _| {
                if args[0].is_null() {
                    return Ok(Value::Null);
                }
                Ok(Value::Bool(array(&args[0])?.iter().any(|element| same(element, &args[1]))))
            },
        )
        .handles_nulls()
        .describe("Whether the array has the value (NULL finds a NULL element); NULL if the array is NULL.")
        .example("ARRAY_CONTAINS(ARRAY['a', 'b'], 'b')", "TRUE"),
        ScalarFunction::new(
            "ARRAY_POSITION",
            "ARRAY_POSITION(array ARRAY<T>, value T) -> INT",
            |args| {
                check_needle(args)?;
                Ok(SqlType::Int)
            },
            |args, _| {
                let position = array(&args[0])?.iter().position(|element| same(element, &args[1]));
                Ok(Value::Int(position.map_or(0, |i| i as i64 + 1)))
            },
        )
        .describe("Where (from 1) the value first occurs in the array, or 0.")
        .example("ARRAY_POSITION(ARRAY[5, 7, 7], 7)", "2"),
        ScalarFunction::planned("ARRAY_DISTINCT", "ARRAY_DISTINCT(array ARRAY<T>) -> ARRAY<T>", |args, _| {
            check(args, 1..=1, &[ARRAY])?;
            let eval: Evaluator = evaluator(|args, _| {
                let mut distinct: Vec<Value> = Vec::new();
                for value in array(&args[0])? {
                    if !distinct.iter().any(|seen| same(seen, value)) {
                        distinct.push(value.clone());
                    }
                }
                Ok(Value::Array(distinct))
            });
            Ok((args[0].clone(), eval))
        })
        .describe("The array without repeated elements, each kept where it first occurs.")
        .example("ARRAY_DISTINCT(ARRAY[1, 2, 1, NULL, NULL])", "[1, 2, <NULL>]"),
        ScalarFunction::planned("ARRAY_REVERSE", "ARRAY_REVERSE(array ARRAY<T>) -> ARRAY<T>", |args, _| {
            check(args, 1..=1, &[ARRAY])?;
            let eval: Evaluator = evaluator(|args, _| Ok(Value::Array(array(&args[0])?.iter().rev().cloned().collect())));
            Ok((args[0].clone(), eval))
        })
        .describe("The array's elements in reverse order.")
        .example("ARRAY_REVERSE(ARRAY[1, 2, 3])", "[3, 2, 1]"),
        ScalarFunction::new(
            "ARRAY_JOIN",
            "ARRAY_JOIN(array ARRAY<STRING>, separator STRING[, null_replacement STRING]) -> STRING",
            |args| {
                check(
                    args,
                    2..=3,
                    &[("an ARRAY<STRING>", |t| matches!(t, SqlType::Array(e) if matches!(**e, SqlType::String | SqlType::Null))), STRING],
                )?;
                Ok(SqlType::String)
            },
            |args, _| {
                let separator = text(&args[1])?;
                let replacement = args.get(2).map(text).transpose()?;
                let parts: Vec<&str> = array(&args[0])?.iter().filter_map(|value| value.as_str().or(replacement)).collect();
                Ok(Value::text(parts.join(separator)))
            },
        )
        .describe("The array's texts joined with the separator; NULL elements skipped, or replaced when a replacement is given.")
        .example("ARRAY_JOIN(ARRAY['a', NULL, 'c'], '-', '?')", "a-?-c"),
        extreme("ARRAY_MAX", Ordering::Greater)
            .describe("The greatest element of the array (NULLs ignored), or NULL if it has none.")
            .example("ARRAY_MAX(ARRAY[3, 9, NULL, 4])", "9"),
        extreme("ARRAY_MIN", Ordering::Less)
            .describe("The least element of the array (NULLs ignored), or NULL if it has none.")
            .example("ARRAY_MIN(ARRAY[3, 9, NULL, 4])", "3"),
        ScalarFunction::planned("ARRAY_SLICE", "ARRAY_SLICE(array ARRAY<T>, start INT[, end INT]) -> ARRAY<T>", |args, _| {
            check(args, 2..=3, &[ARRAY, super::INTEGER])?;
            let eval: Evaluator = evaluator(|args, _| {
                let values = array(&args[0])?;
                let length = values.len() as i64;
                // Positions from 1; negative ones count from the end; both ends are included.
                let position = |p: i64| if p < 0 { length + p + 1 } else { p };
                let start = position(integer(&args[1])?).max(1);
                let end = match args.get(2) {
                    Some(end) => position(integer(end)?).min(length),
                    None => length,
                };
                if start > end || length == 0 {
                    return Ok(Value::Array(Vec::new()));
                }
                Ok(Value::Array(values[start as usize - 1..end as usize].to_vec()))
            });
            Ok((args[0].clone(), eval))
        })
        .describe(
            "The elements from position `start` to `end` (from 1, both included; negative counts from the end; `end` the last by default).",
        )
        .example("ARRAY_SLICE(ARRAY[1, 2, 3, 4], 2, 3)", "[2, 3]"),
        ScalarFunction::planned("ELEMENT", "ELEMENT(array ARRAY<T>) -> T", |args, _| {
            check(args, 1..=1, &[ARRAY])?;
            let eval: Evaluator = evaluator(|args, _| match array(&args[0])? {
                [] => Ok(Value::Null),
                [only] => Ok(only.clone()),
                more => Err(format!("the array has {} elements, not one", more.len())),
            });
            Ok((element_type(&args[0]), eval))
        })
        .describe("The only element of an array of one; NULL if it is empty, an error if it has more.")
        .example("ELEMENT(ARRAY['solo'])", "solo"),
        ScalarFunction::planned("MAP_KEYS", "MAP_KEYS(map MAP<K, V>) -> ARRAY<K>", |args, _| {
            check(args, 1..=1, &[MAP])?;
            let key = match &args[0] {
                SqlType::Map(key, _) => (**key).clone(),
                _ => SqlType::Null,
            };
            let eval: Evaluator = evaluator(|args, _| Ok(Value::Array(map(&args[0])?.iter().map(|(key, _)| key.clone()).collect())));
            Ok((SqlType::Array(Box::new(key)), eval))
        })
        .describe("The keys of the map, as an array.")
        .example("MAP_KEYS(MAP('a', 1, 'b', 2))", "[a, b]"),
        ScalarFunction::planned("MAP_VALUES", "MAP_VALUES(map MAP<K, V>) -> ARRAY<V>", |args, _| {
            check(args, 1..=1, &[MAP])?;
            let value = match &args[0] {
                SqlType::Map(_, value) => (**value).clone(),
                _ => SqlType::Null,
            };
            let eval: Evaluator = evaluator(|args, _| Ok(Value::Array(map(&args[0])?.iter().map(|(_, value)| value.clone()).collect())));
            Ok((SqlType::Array(Box::new(value)), eval))
        })
        .describe("The values of the map, as an array.")
        .example("MAP_VALUES(MAP('a', 1, 'b', 2))", "[1, 2]"),
        ScalarFunction::planned("MAP_ENTRIES", "MAP_ENTRIES(map MAP<K, V>) -> ARRAY<ROW<key K, value V>>", |args, _| {
            check(args, 1..=1, &[MAP])?;
            let (key, value) = match &args[0] {
                SqlType::Map(key, value) => ((**key).clone(), (**value).clone()),
                _ => (SqlType::Null, SqlType::Null),
            };
            let eval: Evaluator = evaluator(|args, _| {
                Ok(Value::Array(map(&args[0])?.iter().map(|(key, value)| Value::Row(vec![key.clone(), value.clone()])).collect()))
            });
            Ok((SqlType::Array(Box::new(SqlType::Row(vec![("key".into(), key), ("value".into(), value)]))), eval))
        })
        .describe("The entries of the map, as an array of (key, value) rows.")
        .example("MAP_ENTRIES(MAP('a', 1))", "[(a, 1)]"),
    ]
}

#[cfg(test)]
mod tests {
    use crate::expr::eval_text as eval;

    #[test]
    fn arrays_and_maps() {
        assert_eq!(eval("CARDINALITY(MAP('a', 1))"), "1");
        assert_eq!(eval("ARRAY_CONTAINS(ARRAY[1, NULL], NULL)"), "TRUE");
        assert_eq!(eval("ARRAY_CONTAINS(ARRAY[1, 2], 3)"), "FALSE");
        assert_eq!(eval("ARRAY_CONTAINS(ARRAY[1, 2], 2.0)"), "TRUE");
        assert!(eval("ARRAY_CONTAINS(ARRAY[1, 2], 'x')").contains("argument 2 must be comparable with the elements (INT), got STRING"));
        assert!(eval("CARDINALITY('x')").contains("argument 1 must be an ARRAY or a MAP, got STRING"));
        assert_eq!(eval("ARRAY_POSITION(ARRAY[1, 2], 3)"), "0");
        assert_eq!(eval("ARRAY_POSITION(ARRAY[1, 2], NULL)"), "<NULL>");
        assert_eq!(eval("ARRAY_JOIN(ARRAY['a', NULL, 'c'], ',')"), "a,c");
        assert_eq!(eval("ARRAY_MAX(ARRAY[CAST(NULL AS INT)])"), "<NULL>");
        assert_eq!(eval("ARRAY_SLICE(ARRAY[1, 2, 3, 4], -2)"), "[3, 4]");
        assert_eq!(eval("ARRAY_SLICE(ARRAY[1, 2, 3], 3, 1)"), "[]");
        assert_eq!(eval("ELEMENT(ARRAY[1, 2])"), "error: ELEMENT: the array has 2 elements, not one");
    }
}
