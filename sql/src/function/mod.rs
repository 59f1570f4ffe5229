//! Scalar functions: the built-in ones (`builtin`) and those a program registers from Rust, each
//! with its signature, a description and an example that its tests evaluate.
//!
//! A function checks its argument types when a query is planned (`return_type`: the type it
//! returns, or why the arguments do not fit) and computes a value per row (`eval`). Most return
//! NULL when an argument is NULL without being called (`null_in_null_out`).

pub mod builtin;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::time::Zone;
use crate::types::SqlType;
use crate::value::Value;

/// What a function sees besides its arguments.
#[derive(Debug, Clone, Default)]
pub struct EvalContext {
    /// The session's time zone (`SET 'table.local-time-zone' = '...'`): how `TIMESTAMP_LTZ`
    /// values show and which day a local date is.
    pub zone: Zone,
}

type ReturnTypeFn = dyn Fn(&[SqlType]) -> Result<SqlType, String> + Send + Sync;
type EvalFn = dyn Fn(&[Value], &EvalContext) -> Result<Value, String> + Send + Sync;

/// A scalar function.
#[derive(Clone)]
pub struct ScalarFunction {
    name: String,
    signature: String,
    description: String,
    example: Option<(String, String)>,
    null_in_null_out: bool,
    return_type: Arc<ReturnTypeFn>,
    eval: Arc<EvalFn>,
}

impl fmt::Debug for ScalarFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.signature)
    }
}

impl ScalarFunction {
    /// A function called `name` (in capitals: calls match it without case), with its signature
    /// as shown to users (`UPPER(s STRING) -> STRING`), how its return type follows from its
    /// arguments' types, and how it computes.
    pub fn new(
        name: &str,
        signature: &str,
        return_type: impl Fn(&[SqlType]) -> Result<SqlType, String> + Send + Sync + 'static,
        eval: impl Fn(&[Value], &EvalContext) -> Result<Value, String> + Send + Sync + 'static,
    ) -> ScalarFunction {
        ScalarFunction {
            name: name.to_uppercase(),
            signature: signature.to_string(),
            description: String::new(),
            example: None,
            null_in_null_out: true,
            return_type: Arc::new(return_type),
            eval: Arc::new(eval),
        }
    }

    /// What it does, in a sentence.
    pub fn describe(mut self, description: &str) -> Self {
        self.description = description.to_string();
        self
    }

    /// A call and its result as printed (`UPPER('ab')`, `AB`): shown to users, and checked by
    /// the tests.
    pub fn example(mut self, call: &str, result: &str) -> Self {
        self.example = Some((call.to_string(), result.to_string()));
        self
    }

    /// It is called with NULL arguments too (COALESCE, IFNULL, CONCAT_WS...), rather than
    /// returning NULL for them.
    pub fn handles_nulls(mut self) -> Self {
        self.null_in_null_out = false;
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its signature as shown to users.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// What it does.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Its example call and result, if it has one.
    pub fn example_call(&self) -> Option<(&str, &str)> {
        self.example.as_ref().map(|(call, result)| (call.as_str(), result.as_str()))
    }

    /// The type it returns for arguments of these types, or why they do not fit.
    pub fn return_type(&self, arguments: &[SqlType]) -> Result<SqlType, String> {
        (self.return_type)(arguments)
    }

    /// Its value for these arguments.
    pub fn eval(&self, arguments: &[Value], context: &EvalContext) -> Result<Value, String> {
        if self.null_in_null_out && arguments.iter().any(Value::is_null) {
            return Ok(Value::Null);
        }
        (self.eval)(arguments, context)
    }
}

/// The functions a query may call: the built-in ones and those registered.
#[derive(Debug, Clone)]
pub struct FunctionRegistry {
    scalars: BTreeMap<String, Arc<ScalarFunction>>,
}

impl Default for FunctionRegistry {
    /// The built-in functions.
    fn default() -> Self {
        let mut registry = FunctionRegistry { scalars: BTreeMap::new() };
        for function in builtin::functions() {
            registry.register(function);
        }
        registry
    }
}

impl FunctionRegistry {
    /// Adds (or replaces) a scalar function.
    pub fn register(&mut self, function: ScalarFunction) {
        self.scalars.insert(function.name.clone(), Arc::new(function));
    }

    /// Scalar function `name` (without case), if there is one.
    pub fn scalar(&self, name: &str) -> Option<&Arc<ScalarFunction>> {
        self.scalars.get(&name.to_uppercase())
    }

    /// Every scalar function, by name.
    pub fn scalars(&self) -> impl Iterator<Item = &Arc<ScalarFunction>> {
        self.scalars.values()
    }
}

/// Checks that there are `count` arguments.
pub fn arity(arguments: &[SqlType], count: std::ops::RangeInclusive<usize>) -> Result<(), String> {
    if count.contains(&arguments.len()) {
        Ok(())
    } else if count.start() == count.end() {
        Err(format!("takes {} argument{}, got {}", count.start(), if *count.start() == 1 { "" } else { "s" }, arguments.len()))
    } else {
        Err(format!("takes {} to {} arguments, got {}", count.start(), count.end(), arguments.len()))
    }
}

/// Checks that argument `index` (counting from 0) is of a type `accept` takes, named `wanted`.
pub fn expect(arguments: &[SqlType], index: usize, wanted: &str, accept: impl Fn(&SqlType) -> bool) -> Result<(), String> {
    match arguments.get(index) {
        Some(found) if *found == SqlType::Null || accept(found) => Ok(()),
        Some(found) => Err(format!("argument {} must be {wanted}, got {found}", index + 1)),
        None => Err(format!("argument {} ({wanted}) is missing", index + 1)),
    }
}
