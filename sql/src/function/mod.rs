//! Scalar functions: the built-in ones (`builtin`) and those a program registers from Rust, each
//! with its signature, a description and an example that its tests evaluate.
//!
//! A function checks its argument types when a query is planned (`return_type`: the type it
//! returns, or why the arguments do not fit) and computes a value per row (`eval`). Most return
//! NULL when an argument is NULL without being called (`null_in_null_out`). Some are planned per
//! call ([`ScalarFunction::planned`]): their result type and computation depend on their
//! arguments' types and constant arguments (ROUND's scale, EXTRACT's unit, a regular expression
//! compiled once).
//!
//! The built-in functions live by topic: `string`, `regexp`, `math`, `conditional`, `temporal`
//! (with `date_pattern`, Java's date-time patterns), `json`, `hash`, `net` (URLs and IP
//! addresses) and `collection`; `builtin` gathers them. `docs/sql-functions.md` is generated from
//! them (see the tests here).

pub mod builtin;
pub mod collection;
pub mod conditional;
pub mod date_pattern;
pub mod hash;
pub mod json;
pub mod math;
pub mod net;
pub mod regexp;
pub mod string;
pub mod temporal;

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
type PlanFn = dyn Fn(&[SqlType], &[Option<Value>]) -> Result<(SqlType, Evaluator), String> + Send + Sync;

/// How a planned call computes its value from its arguments' values.
pub type Evaluator = Arc<EvalFn>;

/// An [`Evaluator`] from a closure.
pub fn evaluator(eval: impl Fn(&[Value], &EvalContext) -> Result<Value, String> + Send + Sync + 'static) -> Evaluator {
    Arc::new(eval)
}

/// A scalar function.
#[derive(Clone)]
pub struct ScalarFunction {
    name: String,
    signature: String,
    description: String,
    example: Option<(String, String)>,
    null_in_null_out: bool,
    deterministic: bool,
    return_type: Arc<ReturnTypeFn>,
    eval: Arc<EvalFn>,
    plan: Option<Arc<PlanFn>>,
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
            deterministic: true,
            return_type: Arc::new(return_type),
            eval: Arc::new(eval),
            plan: None,
        }
    }

    /// A function planned per call: `plan` gets the arguments' types and the values of those
    /// that are constants (`None` for the others), and returns the result type and how the call
    /// computes, or why the arguments do not fit.
    pub fn planned(
        name: &str,
        signature: &str,
        plan: impl Fn(&[SqlType], &[Option<Value>]) -> Result<(SqlType, Evaluator), String> + Send + Sync + 'static,
    ) -> ScalarFunction {
        let plan: Arc<PlanFn> = Arc::new(plan);
        let for_types = plan.clone();
        let for_values = plan.clone();
        let mut function = ScalarFunction::new(
            name,
            signature,
            move |types| for_types(types, &vec![None; types.len()]).map(|(data_type, _)| data_type),
            // Called unplanned (from Rust, not through a query): planned for the values' types.
            move |values, context| {
                let types: Vec<SqlType> = values.iter().map(type_of).collect();
                let constants: Vec<Option<Value>> = values.iter().cloned().map(Some).collect();
                let (_, eval) = for_values(&types, &constants)?;
                eval(values, context)
            },
        );
        function.plan = Some(plan);
        function
    }

    /// The same function under another name (CEILING for CEIL), its signature and example renamed.
    pub fn alias(&self, name: &str) -> ScalarFunction {
        let (from, to) = (format!("{}(", self.name), format!("{}(", name.to_uppercase()));
        let rename = |text: &str| text.replace(&from, &to);
        let mut alias = self.clone();
        alias.name = name.to_uppercase();
        alias.signature = rename(&self.signature);
        alias.example = self.example.as_ref().map(|(call, result)| (rename(call), result.clone()));
        alias
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

    /// It may give different results for the same arguments (NOW, CURRENT_DATE): it is not
    /// computed once for constant arguments.
    pub fn nondeterministic(mut self) -> Self {
        self.deterministic = false;
        self
    }

    /// Whether it gives the same result for the same arguments.
    pub fn is_deterministic(&self) -> bool {
        self.deterministic
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

    /// A call of it with arguments of these types, `constants` the values of those that are
    /// constants: its result type and the function that computes the call (itself, or a copy
    /// planned for these arguments).
    pub fn plan(self: &Arc<Self>, types: &[SqlType], constants: &[Option<Value>]) -> Result<(SqlType, Arc<ScalarFunction>), String> {
        let Some(plan) = &self.plan else {
            return Ok((self.return_type(types)?, self.clone()));
        };
        let (data_type, eval) = plan(types, constants)?;
        let planned = ScalarFunction { eval, plan: None, ..(**self).clone() };
        Ok((data_type, Arc::new(planned)))
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
    aggregates: BTreeMap<String, crate::aggregate::UserAggregateRef>,
}

impl Default for FunctionRegistry {
    /// The built-in functions.
    fn default() -> Self {
        let mut registry = FunctionRegistry { scalars: BTreeMap::new(), aggregates: BTreeMap::new() };
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

    /// Adds (or replaces) a user-defined aggregate function.
    pub fn register_aggregate(&mut self, aggregate: impl crate::aggregate::UserAggregate) {
        let name = aggregate.name().to_uppercase();
        self.aggregates.insert(name, crate::aggregate::UserAggregateRef(Arc::new(aggregate)));
    }

    /// User-defined aggregate `name` (without case), if there is one.
    pub fn aggregate(&self, name: &str) -> Option<&crate::aggregate::UserAggregateRef> {
        self.aggregates.get(&name.to_uppercase())
    }

    /// Whether `name` is an aggregate function: a built-in one or one registered.
    pub fn is_aggregate(&self, name: &str) -> bool {
        crate::expr::is_aggregate(name) || self.aggregate(name).is_some()
    }

    /// Every user-defined aggregate, by name.
    pub fn aggregates(&self) -> impl Iterator<Item = &crate::aggregate::UserAggregateRef> {
        self.aggregates.values()
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

/// A kind of argument: its name in errors and which types it takes.
pub type Kind = (&'static str, fn(&SqlType) -> bool);

/// Text.
pub const STRING: Kind = ("STRING", SqlType::is_string);
/// Any integer type.
pub const INTEGER: Kind = ("an integer", SqlType::is_integer);
/// Any number.
pub const NUMERIC: Kind = ("a number", SqlType::is_numeric);
/// An integer or a decimal.
pub const EXACT_NUMERIC: Kind = ("an integer or DECIMAL", |t| t.is_integer() || matches!(t, SqlType::Decimal { .. }));
/// `BOOLEAN`.
pub const BOOLEAN: Kind = ("BOOLEAN", |t| *t == SqlType::Boolean);
/// Any type.
pub const ANY: Kind = ("any type", |_| true);

/// Checks the number of arguments and each one's kind (`kinds[i]` for argument `i`; the last
/// kind for any further ones).
pub fn check(arguments: &[SqlType], count: std::ops::RangeInclusive<usize>, kinds: &[Kind]) -> Result<(), String> {
    arity(arguments, count)?;
    for index in 0..arguments.len() {
        if let Some((wanted, accept)) = kinds.get(index).or(kinds.last()) {
            expect(arguments, index, wanted, accept)?;
        }
    }
    Ok(())
}

/// The common type of all these types (ignoring NULLs), or an error naming the argument that
/// does not mix.
pub fn common_type(arguments: &[SqlType], first: usize) -> Result<SqlType, String> {
    let mut common = SqlType::Null;
    for (index, data_type) in arguments.iter().enumerate().skip(first) {
        common = SqlType::common(&common, data_type)
            .ok_or_else(|| format!("argument {} of type {data_type} does not mix with {common}", index + 1))?;
    }
    Ok(common)
}

/// The text of a value (checked when planned to be a STRING).
pub(crate) fn text(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| format!("expected text, got {value}"))
}

/// The integer of a value (checked when planned to be an integer).
pub(crate) fn integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(value) => Ok(*value),
        Value::Decimal(value) => value.trunc_i64().ok_or_else(|| format!("{value} is out of range")),
        Value::Float(value) if value.is_finite() => Ok(value.trunc() as i64),
        other => Err(format!("expected an integer, got {other}")),
    }
}

/// The number of a value as a double.
pub(crate) fn double(value: &Value) -> Result<f64, String> {
    value.as_f64().ok_or_else(|| format!("expected a number, got {value}"))
}

/// The text of a constant argument, if it is one.
pub(crate) fn constant_text(constants: &[Option<Value>], index: usize) -> Option<&str> {
    constants.get(index).and_then(|constant| constant.as_ref()).and_then(Value::as_str)
}

/// The type of a value, as near as it shows (for functions called outside a query).
fn type_of(value: &Value) -> SqlType {
    match value {
        Value::Null => SqlType::Null,
        Value::Bool(_) => SqlType::Boolean,
        Value::Int(_) => SqlType::BigInt,
        Value::Float(_) => SqlType::Double,
        Value::Decimal(decimal) => SqlType::Decimal { precision: crate::types::DECIMAL_PRECISION_MAX, scale: decimal.scale },
        Value::Str(_) => SqlType::String,
        Value::Bytes(_) => SqlType::Bytes,
        Value::Date(_) => SqlType::Date,
        Value::Time(_) => SqlType::Time,
        Value::Timestamp(_) => SqlType::Timestamp,
        Value::Interval(_) => SqlType::Interval,
        Value::Array(values) => SqlType::Array(Box::new(values.iter().map(type_of).find(|t| *t != SqlType::Null).unwrap_or(SqlType::Null))),
        Value::Map(entries) => {
            let key = entries.iter().map(|(key, _)| type_of(key)).find(|t| *t != SqlType::Null).unwrap_or(SqlType::Null);
            let value = entries.iter().map(|(_, value)| type_of(value)).find(|t| *t != SqlType::Null).unwrap_or(SqlType::Null);
            SqlType::Map(Box::new(key), Box::new(value))
        }
        Value::Row(values) => SqlType::Row(values.iter().enumerate().map(|(i, value)| (format!("f{i}"), type_of(value))).collect()),
    }
}

/// The reference of the built-in functions in Markdown: by topic, each function's signature,
/// description, and example with its result. `docs/sql-functions.md` is this, kept current by
/// a test.
pub fn reference_markdown() -> String {
    use std::fmt::Write;
    let topics = builtin::topics();
    let mut out = String::new();
    out.push_str("# Tethys SQL functions\n\n");
    out.push_str(
        "The built-in scalar functions of Tethys SQL (Flink's dialect), generated from their definitions in `sql/src/function` \
         by a test of `tethys-sql`; regenerate it with `TETHYS_BLESS=1 cargo test -p tethys-sql --lib function::tests`. \
         Each example's result is as Tethys prints it (NULL as `<NULL>`), and the tests check it.\n\n",
    );
    out.push_str(
        "`COALESCE`, `CASE`, `CAST`/`TRY_CAST`, `ROW`, `MAP(k, v, ...)` and `ARRAY[...]` are the binder's own syntax; \
         `a || b`, `EXTRACT(unit FROM t)`, `SUBSTRING(s FROM a FOR b)`, `POSITION(x IN s)`, `TRIM(... FROM s)` and \
         `CEIL`/`FLOOR(t TO unit)` call the functions below.\n\n",
    );
    for (title, functions) in &topics {
        let names: Vec<String> = functions.iter().map(|function| format!("`{}`", function.name())).collect();
        let _ = writeln!(out, "- {title}: {}", names.join(", "));
    }
    for (title, functions) in &topics {
        let _ = write!(out, "\n## {title}\n");
        for function in functions {
            let _ = write!(out, "\n### {}\n\n`{}`\n\n{}\n", function.name(), function.signature(), function.description());
            if let Some((call, result)) = function.example_call() {
                let _ = write!(out, "\nExample: `{call}` gives `{result}`.\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_function_reference_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sql-functions.md");
        let rendered = super::reference_markdown();
        if std::env::var("TETHYS_BLESS").as_deref() == Ok("1") {
            std::fs::create_dir_all(path.parent().expect("docs/")).expect("docs/ is created");
            std::fs::write(&path, &rendered).expect("docs/sql-functions.md is written");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != rendered {
            let line = committed
                .lines()
                .zip(rendered.lines())
                .position(|(old, new)| old != new)
                .unwrap_or(committed.lines().count().min(rendered.lines().count()));
            panic!(
                "docs/sql-functions.md is not the reference of the built-in functions (first difference at line {}): \
                 regenerate it with `TETHYS_BLESS=1 cargo test -p tethys-sql --lib function::tests` and commit it",
                line + 1
            );
        }
    }

    #[test]
    fn planned_functions_plan_per_call_and_alias_keeps_the_example() {
        use crate::function::FunctionRegistry;
        use crate::types::SqlType;
        use crate::value::Value;
        let registry = FunctionRegistry::default();
        let round = registry.scalar("ROUND").unwrap();
        assert_eq!(round.return_type(&[SqlType::Decimal { precision: 5, scale: 3 }]).unwrap(), SqlType::Decimal { precision: 3, scale: 0 });
        let (data_type, planned) =
            round.plan(&[SqlType::Decimal { precision: 5, scale: 3 }, SqlType::Int], &[None, Some(Value::Int(1))]).unwrap();
        assert_eq!(data_type, SqlType::Decimal { precision: 4, scale: 1 });
        assert_eq!(planned.name(), "ROUND");
        // Unplanned, from Rust: planned for the values' types.
        let value =
            round.eval(&[Value::Decimal(crate::value::Decimal::parse("1.25").unwrap()), Value::Int(1)], &Default::default()).unwrap();
        assert_eq!(value.to_string(), "1.3");
        let ceiling = registry.scalar("CEILING").unwrap();
        assert_eq!(ceiling.example_call(), Some(("CEILING(-1.5)", "-1")));
        assert!(ceiling.signature().starts_with("CEILING(x NUMERIC)"));
    }
}
