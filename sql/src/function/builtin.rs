//! The built-in scalar functions, each with its signature, description and example.

use super::{arity, expect, ScalarFunction};
use crate::types::SqlType;
use crate::value::Value;

fn text(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| format!("expected text, got {value}"))
}

/// Every built-in scalar function.
pub fn functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction::new(
            "UPPER",
            "UPPER(s STRING) -> STRING",
            |args| {
                arity(args, 1..=1)?;
                expect(args, 0, "STRING", SqlType::is_string)?;
                Ok(SqlType::String)
            },
            |args, _| Ok(Value::Str(text(&args[0])?.to_uppercase())),
        )
        .describe("The text in capitals.")
        .example("UPPER('tethys')", "TETHYS"),
        ScalarFunction::new(
            "LOWER",
            "LOWER(s STRING) -> STRING",
            |args| {
                arity(args, 1..=1)?;
                expect(args, 0, "STRING", SqlType::is_string)?;
                Ok(SqlType::String)
            },
            |args, _| Ok(Value::Str(text(&args[0])?.to_lowercase())),
        )
        .describe("The text in small letters.")
        .example("LOWER('Tethys')", "tethys"),
        ScalarFunction::new(
            "CHAR_LENGTH",
            "CHAR_LENGTH(s STRING) -> INT",
            |args| {
                arity(args, 1..=1)?;
                expect(args, 0, "STRING", SqlType::is_string)?;
                Ok(SqlType::Int)
            },
            |args, _| Ok(Value::Int(text(&args[0])?.chars().count() as i64)),
        )
        .describe("The number of characters of the text.")
        .example("CHAR_LENGTH('héllo')", "5"),
    ]
}

#[cfg(test)]
mod tests {
    use crate::expr::eval_constant;
    use crate::function::FunctionRegistry;

    #[test]
    fn every_example_gives_its_result() {
        let registry = FunctionRegistry::default();
        for function in registry.scalars() {
            let (call, expected) = function.example_call().unwrap_or_else(|| panic!("{} has no example", function.name()));
            assert!(!function.description().is_empty(), "{} has no description", function.name());
            let value = eval_constant(call, &registry).unwrap_or_else(|error| panic!("{call}: {error}"));
            assert_eq!(value.to_string(), expected, "{call}");
        }
    }
}
