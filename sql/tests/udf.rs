//! Functions registered from Rust: a scalar function and an aggregate, called from SQL in a
//! window aggregation and in a GROUP BY whose input has updates.

mod support;

use std::path::Path;

use tethys_sql::aggregate::UserAggregate;
use tethys_sql::function::{arity, expect, FunctionRegistry, ScalarFunction};
use tethys_sql::types::SqlType;
use tethys_sql::value::{Decimal, Value};
use tethys_sql::SqlSession;

/// `RANGE_OF(x)`: the greatest value minus the least; its accumulator is `ROW(least, greatest,
/// values)`, where `values` keeps every value so a retraction can find the new extremes.
struct RangeOf;

impl UserAggregate for RangeOf {
    fn name(&self) -> &str {
        "RANGE_OF"
    }

    fn signature(&self) -> &str {
        "RANGE_OF(x DECIMAL) -> DECIMAL"
    }

    fn result_type(&self, input: &SqlType) -> Result<SqlType, String> {
        match input {
            SqlType::Decimal { .. } => Ok(input.clone()),
            other => Err(format!("takes a DECIMAL, got {other}")),
        }
    }

    fn create(&self) -> Value {
        Value::Array(Vec::new())
    }

    fn add(&self, accumulator: &mut Value, value: &Value) {
        if let Value::Array(values) = accumulator {
            values.push(value.clone());
        }
    }

    fn retract(&self, accumulator: &mut Value, value: &Value) -> Result<(), String> {
        if let Value::Array(values) = accumulator {
            if let Some(index) = values.iter().position(|candidate| candidate == value) {
                values.remove(index);
            }
        }
        Ok(())
    }

    fn merge(&self, earlier: Value, later: Value) -> Value {
        match (earlier, later) {
            (Value::Array(mut a), Value::Array(b)) => {
                a.extend(b);
                Value::Array(a)
            }
            (a, _) => a,
        }
    }

    fn result(&self, accumulator: &Value) -> Value {
        let Value::Array(values) = accumulator else { return Value::Null };
        let decimals: Vec<Decimal> = values.iter().filter_map(Value::as_decimal).collect();
        match (decimals.iter().min(), decimals.iter().max()) {
            (Some(least), Some(greatest)) => greatest.checked_sub(*least).map(Value::Decimal).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }
}

fn initial() -> ScalarFunction {
    ScalarFunction::new(
        "INITIAL",
        "INITIAL(s STRING) -> STRING",
        |args| {
            arity(args, 1..=1)?;
            expect(args, 0, "STRING", SqlType::is_string)?;
            Ok(SqlType::String)
        },
        |args, _| Ok(Value::text(args[0].as_str().unwrap_or_default().chars().take(1).collect::<String>().to_uppercase())),
    )
    .describe("The first letter, in capitals.")
    .example("INITIAL('tethys')", "T")
}

fn run(query: &str) -> Vec<String> {
    let mut functions = FunctionRegistry::default();
    functions.register(initial());
    functions.register_aggregate(RangeOf);
    let mut session = SqlSession::new(functions);
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/data/orders.csv");
    let script = format!(
        "CREATE TABLE orders (id BIGINT, customer STRING, amount DECIMAL(10, 2), ts TIMESTAMP(3),
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
         {query}",
        data.display()
    );
    support::run_script_in(&mut session, &script).unwrap().0
}

#[test]
fn a_registered_aggregate_and_scalar_function_run_in_a_window() {
    let mut rows = run("SELECT window_start, INITIAL(customer) AS who, RANGE_OF(amount) AS spread
         FROM TABLE(TUMBLE(TABLE orders, DESCRIPTOR(ts), INTERVAL '10' SECOND))
         GROUP BY window_start, window_end, INITIAL(customer);");
    rows.sort();
    // alice's 10.50 and 7.00 share the first window; the others are alone in theirs.
    assert_eq!(
        rows,
        [
            "+I[2024-01-01 10:00:00.000, A, 3.50]",
            "+I[2024-01-01 10:00:00.000, B, 0.00]",
            "+I[2024-01-01 10:00:10.000, B, 0.00]",
            "+I[2024-01-01 10:00:10.000, C, 0.00]",
            "+I[2024-01-01 10:00:20.000, A, 0.00]",
        ]
    );
}

#[test]
fn a_registered_aggregate_takes_rows_back_under_a_changelog() {
    // The latest order per customer (a changelog), and the spread of those amounts.
    let rows = run("SELECT RANGE_OF(amount) AS spread FROM (
           SELECT amount FROM (
             SELECT *, ROW_NUMBER() OVER (PARTITION BY customer ORDER BY ts DESC) AS rn FROM orders
           ) WHERE rn = 1
         );");
    // Latest amounts at the end: alice 4.50, bob 1.75, carol 12.00.
    assert_eq!(rows.last().map(String::as_str), Some("+U[10.25]"), "{rows:?}");
}

#[test]
fn an_aggregate_outside_aggregation_is_refused_by_name() {
    let mut functions = FunctionRegistry::default();
    functions.register_aggregate(RangeOf);
    let mut session = SqlSession::new(functions);
    session.execute_script("CREATE TABLE t (a DECIMAL(5, 2)) WITH ('connector' = 'datagen')").unwrap();
    let error = session.execute_script("SELECT a FROM t WHERE RANGE_OF(a) > 1").err().expect("refused");
    assert!(error.message.contains("aggregate function RANGE_OF is not allowed here"), "{error}");
    let error = session.execute_script("SELECT RANGE_OF(CAST(a AS DOUBLE)) FROM t").err().expect("refused");
    assert!(error.message.contains("RANGE_OF: takes a DECIMAL, got DOUBLE"), "{error}");
}
