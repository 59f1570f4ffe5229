//! The built-in scalar functions, gathered from their topic modules: each with its signature,
//! description and an example that the tests evaluate.

use super::{collection, conditional, hash, json, math, net, regexp, string, temporal, ScalarFunction};

/// The built-in functions by topic: each topic's title and its functions.
pub fn topics() -> Vec<(&'static str, Vec<ScalarFunction>)> {
    vec![
        ("String functions", string::functions()),
        ("Regular expressions", regexp::functions()),
        ("Math functions", math::functions()),
        ("Conditional functions", conditional::functions()),
        ("Date and time functions", temporal::functions()),
        ("JSON functions", json::functions()),
        ("Hash functions", hash::functions()),
        ("URL and IP functions", net::functions()),
        ("Array and map functions", collection::functions()),
    ]
}

/// Every built-in scalar function.
pub fn functions() -> Vec<ScalarFunction> {
    topics().into_iter().flat_map(|(_, functions)| functions).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

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

    #[test]
    fn every_function_has_one_name_and_a_signature_that_names_it() {
        let mut names = HashSet::new();
        for function in super::functions() {
            assert!(names.insert(function.name().to_string()), "{} is defined twice", function.name());
            assert!(function.signature().starts_with(&format!("{}(", function.name())), "{}", function.signature());
            assert!(function.signature().contains(" -> "), "{} has no result type", function.signature());
            assert!(function.description().ends_with('.'), "{}: a description is a sentence", function.name());
        }
        assert!(names.len() >= 48, "{} built-in functions", names.len());
    }
}
