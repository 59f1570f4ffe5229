//! JSON functions: JSON_VALUE, JSON_QUERY and JSON_EXISTS with SQL/JSON paths, IS_JSON, and
//! JSON_STRING, as Flink's.
//!
//! Paths are `$` followed by steps: `.name`, `['name']` or `["name"]`, `[index]` (from 0;
//! negative counts from the end), and `.*` or `[*]` for every member or element; a leading
//! `lax` (the default) or `strict` sets the mode. In lax mode a step that finds nothing gives
//! nothing; in strict mode it is an error. Errors (text that is not JSON, a value of the wrong
//! kind) give NULL, or FALSE for JSON_EXISTS, as Flink's default `NULL ON ERROR` does; a constant
//! path that is not a path fails the query when it is planned.
//!
//! Objects keep their members' order, as Flink's (Jackson's) do.

use std::fmt::{self, Write};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{check, constant_text, evaluator, text, Evaluator, ScalarFunction, ANY, STRING};
use crate::types::SqlType;
use crate::value::{format_double, Value};

/// A JSON value, its objects' members in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object: its members in order (a repeated name keeps its first place and last value).
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = seq.next_element()? {
            values.push(value);
        }
        Ok(Json::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members: Vec<(String, Json)> = Vec::new();
        while let Some((name, value)) = map.next_entry::<String, Json>()? {
            match members.iter_mut().find(|(existing, _)| *existing == name) {
                Some(member) => member.1 = value,
                None => members.push((name, value)),
            }
        }
        Ok(Json::Object(members))
    }
}

impl Json {
    /// Parses JSON text, or says why it is not JSON.
    pub fn parse(text: &str) -> Result<Json, String> {
        serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))
    }

    /// Whether it is an object or an array.
    fn is_container(&self) -> bool {
        matches!(self, Json::Array(_) | Json::Object(_))
    }

    /// Its compact JSON text.
    pub fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            // Doubles as Java (and so Flink) writes them: 1.0E20.
            Json::Number(number) => match number.as_f64().filter(|_| number.is_f64()) {
                Some(double) => out.push_str(&format_double(double)),
                None => out.push_str(&number.to_string()),
            },
            Json::String(text) => write_string(text, out),
            Json::Array(values) => {
                out.push('[');
                for (i, value) in values.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    value.write(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (name, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(name, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    /// A scalar as JSON_VALUE returns it: a string's text, a number or boolean as written,
    /// `None` for null.
    fn scalar_text(&self) -> Option<String> {
        match self {
            Json::String(text) => Some(text.clone()),
            Json::Number(number) if number.is_f64() => number.as_f64().map(format_double),
            Json::Number(number) => Some(number.to_string()),
            Json::Bool(value) => Some(value.to_string()),
            _ => None,
        }
    }
}

fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Member(String),
    Index(i64),
    Wildcard,
}

/// A compiled SQL/JSON path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    strict: bool,
    steps: Vec<Step>,
}

impl JsonPath {
    /// Compiles `path`, or says what is wrong with it.
    pub fn parse(path: &str) -> Result<JsonPath, String> {
        let fail = |message: &str| format!("invalid JSON path '{path}': {message}");
        let trimmed = path.trim();
        let (strict, rest) = if let Some(rest) = trimmed.strip_prefix("strict") {
            (true, rest.trim_start())
        } else {
            (false, trimmed.strip_prefix("lax").map_or(trimmed, str::trim_start))
        };
        let mut rest = rest.strip_prefix('$').ok_or_else(|| fail("it must start with $"))?;
        let mut steps = Vec::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix('.') {
                if let Some(after) = after.strip_prefix('*') {
                    steps.push(Step::Wildcard);
                    rest = after;
                    continue;
                }
                let end = after.find(['.', '[', ' ']).unwrap_or(after.len());
                if end == 0 {
                    return Err(fail("a '.' needs a member name after it"));
                }
                steps.push(Step::Member(after[..end].to_string()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let after = after.trim_start();
                let (step, after) = if let Some(after) = after.strip_prefix('*') {
                    (Step::Wildcard, after)
                } else if let Some(quote) = after.chars().next().filter(|c| *c == '\'' || *c == '"') {
                    let body = &after[1..];
                    let mut name = String::new();
                    let mut chars = body.char_indices();
                    let mut end = None;
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => name.extend(chars.next().map(|(_, escaped)| escaped)),
                            c if c == quote => {
                                end = Some(i + 1);
                                break;
                            }
                            c => name.push(c),
                        }
                    }
                    let end = end.ok_or_else(|| fail("a quoted name is not closed"))?;
                    (Step::Member(name), &body[end..])
                } else {
                    let end = after.find(|c: char| !(c.is_ascii_digit() || c == '-')).unwrap_or(after.len());
                    let index = after[..end].parse::<i64>().map_err(|_| fail("'[' needs an index, a quoted name or *"))?;
                    (Step::Index(index), &after[end..])
                };
                rest = after.trim_start().strip_prefix(']').ok_or_else(|| fail("a '[' is not closed"))?;
                steps.push(step);
            } else {
                return Err(fail(&format!("unexpected '{}'", rest.chars().next().unwrap_or(' '))));
            }
        }
        Ok(JsonPath { strict, steps })
    }

    /// Whether it finds at most one value (it has no wildcard).
    fn is_definite(&self) -> bool {
        !self.steps.contains(&Step::Wildcard)
    }

    /// The values it finds in `root`, or (in strict mode) why a step found nothing.
    fn find<'j>(&self, root: &'j Json) -> Result<Vec<&'j Json>, String> {
        let mut found = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for value in found {
                match (step, value) {
                    (Step::Member(name), Json::Object(members)) => match members.iter().find(|(member, _)| member == name) {
                        Some((_, member)) => next.push(member),
                        None if self.strict => return Err(format!("no member {name}")),
                        None => {}
                    },
                    (Step::Index(index), Json::Array(values)) => {
                        let at = if *index < 0 { values.len() as i64 + index } else { *index };
                        match usize::try_from(at).ok().and_then(|at| values.get(at)) {
                            Some(element) => next.push(element),
                            None if self.strict => return Err(format!("no element {index}")),
                            None => {}
                        }
                    }
                    (Step::Wildcard, Json::Array(values)) => next.extend(values),
                    (Step::Wildcard, Json::Object(members)) => next.extend(members.iter().map(|(_, member)| member)),
                    _ if self.strict => return Err(format!("{step:?} does not apply to {}", value.text())),
                    _ => {}
                }
            }
            found = next;
        }
        Ok(found)
    }
}

/// A path argument: compiled when planned if it is a constant (an invalid one is an error
/// then), else per call (an invalid one gives the function's error result).
#[derive(Clone)]
struct PathArg(Option<JsonPath>);

impl PathArg {
    fn plan(constants: &[Option<Value>]) -> Result<PathArg, String> {
        Ok(PathArg(constant_text(constants, 1).map(JsonPath::parse).transpose()?))
    }

    /// The values the path finds in the JSON text, `None` on any error.
    fn find(&self, args: &[Value]) -> Option<(Vec<Json>, bool)> {
        let root = Json::parse(args[0].as_str()?).ok()?;
        let parsed;
        let path = match &self.0 {
            Some(path) => path,
            None => {
                parsed = JsonPath::parse(args[1].as_str()?).ok()?;
                &parsed
            }
        };
        let found = path.find(&root).ok()?;
        Some((found.into_iter().cloned().collect(), path.is_definite()))
    }
}

fn path_function(name: &str, signature: &str, result: SqlType, eval: fn(&PathArg, &[Value]) -> Value) -> ScalarFunction {
    ScalarFunction::planned(name, signature, move |args, constants| {
        check(args, 2..=2, &[STRING])?;
        let path = PathArg::plan(constants)?;
        let eval: Evaluator = evaluator(move |args, _| Ok(eval(&path, args)));
        Ok((result.clone(), eval))
    })
}

/// A value as JSON, rows' fields named after `data_type`'s.
fn to_json(value: &Value, data_type: &SqlType) -> Json {
    let element = |t: &SqlType| match t {
        SqlType::Array(element) => (**element).clone(),
        _ => SqlType::Null,
    };
    match value {
        Value::Null => Json::Null,
        Value::Bool(value) => Json::Bool(*value),
        Value::Int(value) => Json::Number((*value).into()),
        Value::Float(value) => serde_json::Number::from_f64(*value).map_or_else(|| Json::String(format_double(*value)), Json::Number),
        Value::Decimal(value) => match value.to_string().parse::<serde_json::Number>() {
            Ok(number) => Json::Number(number),
            Err(_) => Json::String(value.to_string()),
        },
        Value::Str(text) => Json::String(text.to_string()),
        Value::Bytes(bytes) => Json::String(super::string::base64_encode(bytes)),
        Value::Array(values) => Json::Array(values.iter().map(|v| to_json(v, &element(data_type))).collect()),
        Value::Map(entries) => {
            let value_type = match data_type {
                SqlType::Map(_, value) => (**value).clone(),
                _ => SqlType::Null,
            };
            Json::Object(entries.iter().map(|(key, value)| (key.to_string(), to_json(value, &value_type))).collect())
        }
        Value::Row(values) => {
            let fields = match data_type {
                SqlType::Row(fields) => fields.clone(),
                _ => Vec::new(),
            };
            Json::Object(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, value)| match fields.get(i) {
                        Some((name, field_type)) => (name.clone(), to_json(value, field_type)),
                        None => (format!("f{i}"), to_json(value, &SqlType::Null)),
                    })
                    .collect(),
            )
        }
        other => Json::String(other.to_string()),
    }
}

fn json_kind_matches(json: &Json, kind: &str) -> Result<bool, String> {
    Ok(match kind.to_ascii_uppercase().as_str() {
        "VALUE" => true,
        "SCALAR" => !json.is_container(),
        "ARRAY" => matches!(json, Json::Array(_)),
        "OBJECT" => matches!(json, Json::Object(_)),
        other => return Err(format!("IS_JSON tests for VALUE, SCALAR, ARRAY or OBJECT, not {other}")),
    })
}

/// The JSON functions.
pub fn functions() -> Vec<ScalarFunction> {
    vec![
        path_function("JSON_VALUE", "JSON_VALUE(json STRING, path STRING) -> STRING", SqlType::String, |path, args| {
            match path.find(args) {
                Some((found, true)) => match found.as_slice() {
                    [scalar] => scalar.scalar_text().map_or(Value::Null, Value::text),
                    _ => Value::Null,
                },
                _ => Value::Null,
            }
        })
        .describe("The scalar (string, number or boolean) the path finds in the JSON text, as text; NULL if it finds none, or an object or array, or the text is not JSON.")
        .example("JSON_VALUE('{\"a\": {\"b\": [10, 20]}}', '$.a.b[1]')", "20"),
        path_function("JSON_QUERY", "JSON_QUERY(json STRING, path STRING) -> STRING", SqlType::String, |path, args| match path.find(args) {
            Some((found, true)) => match found.as_slice() {
                [container] if container.is_container() => Value::text(container.text()),
                _ => Value::Null,
            },
            Some((found, false)) if !found.is_empty() => Value::text(Json::Array(found).text()),
            _ => Value::Null,
        })
        .describe("The object or array the path finds in the JSON text, as JSON text (what a wildcard finds, as an array); NULL for a scalar, nothing, or text that is not JSON.")
        .example("JSON_QUERY('{\"a\": [{\"c\": \"c1\"}, {\"c\": \"c2\"}]}', 'lax $.a[*].c')", "[\"c1\",\"c2\"]"),
        path_function("JSON_EXISTS", "JSON_EXISTS(json STRING, path STRING) -> BOOLEAN", SqlType::Boolean, |path, args| {
            Value::Bool(path.find(args).is_some_and(|(found, _)| !found.is_empty()))
        })
        .describe("Whether the path finds a value (JSON null counts) in the JSON text; FALSE if the text is not JSON.")
        .example("JSON_EXISTS('{\"a\": null}', '$.a')", "TRUE"),
        ScalarFunction::new(
            "IS_JSON",
            "IS_JSON(s STRING[, kind STRING]) -> BOOLEAN",
            |args| {
                check(args, 1..=2, &[STRING])?;
                Ok(SqlType::Boolean)
            },
            |args, _| {
                let Some(json) = args[0].as_str().and_then(|json| Json::parse(json).ok()) else {
                    return Ok(Value::Bool(false));
                };
                let kind = match args.get(1) {
                    Some(kind) => text(kind)?,
                    None => "VALUE",
                };
                Ok(Value::Bool(json_kind_matches(&json, kind)?))
            },
        )
        .handles_nulls()
        .describe("Whether the text is JSON, of a kind: 'VALUE' (the default), 'SCALAR', 'ARRAY' or 'OBJECT' (Flink's `s IS JSON [kind]`); FALSE for NULL.")
        .example("IS_JSON('[1, 2]', 'ARRAY')", "TRUE"),
        ScalarFunction::planned("JSON_STRING", "JSON_STRING(value ANY) -> STRING", |args, _| {
            check(args, 1..=1, &[ANY])?;
            let data_type = args[0].clone();
            let eval: Evaluator = evaluator(move |args, _| Ok(Value::text(to_json(&args[0], &data_type).text())));
            Ok((SqlType::String, eval))
        })
        .describe("The value as JSON text (a string quoted, an array as a JSON array, a map or row as an object); NULL for NULL.")
        .example("JSON_STRING(ARRAY[1, 2])", "[1,2]"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::eval_text as eval;

    const DOC: &str = r#"'{"id": 7, "price": 1.50, "tags": ["a", "b"], "owner": {"name": "Ann", "x y": true, "zip": null}, "big": 1e20}'"#;

    fn value(path: &str) -> String {
        eval(&format!("JSON_VALUE({DOC}, '{path}')"))
    }

    fn query(path: &str) -> String {
        eval(&format!("JSON_QUERY({DOC}, '{path}')"))
    }

    #[test]
    fn json_value_finds_scalars() {
        assert_eq!(value("$.id"), "7");
        assert_eq!(value("$.price"), "1.5");
        assert_eq!(value("$.big"), "1.0E20");
        assert_eq!(value("$.tags[0]"), "a");
        assert_eq!(value("$.tags[-1]"), "b");
        assert_eq!(value("$.tags[2]"), "<NULL>");
        assert_eq!(value("$.owner.name"), "Ann");
        assert_eq!(value("$[''owner''][''x y'']"), "true");
        assert_eq!(value("$[\"owner\"].name"), "Ann");
        assert_eq!(value("$.owner.zip"), "<NULL>");
        assert_eq!(value("$.owner"), "<NULL>");
        assert_eq!(value("$.tags[*]"), "<NULL>");
        assert_eq!(value("$.missing.deeper"), "<NULL>");
        assert_eq!(value("strict $.missing"), "<NULL>");
        assert_eq!(eval("JSON_VALUE('not json', '$.a')"), "<NULL>");
        assert_eq!(eval("JSON_VALUE('\"plain\"', '$')"), "plain");
    }

    #[test]
    fn json_query_finds_objects_and_arrays() {
        assert_eq!(query("$.owner"), r#"{"name":"Ann","x y":true,"zip":null}"#);
        assert_eq!(query("$.tags"), r#"["a","b"]"#);
        assert_eq!(query("$.id"), "<NULL>");
        assert_eq!(query("$.tags[*]"), r#"["a","b"]"#);
        assert_eq!(query("$.owner.*"), r#"["Ann",true,null]"#);
        assert_eq!(query("$.nothing[*]"), "<NULL>");
        assert_eq!(query("$"), r#"{"id":7,"price":1.5,"tags":["a","b"],"owner":{"name":"Ann","x y":true,"zip":null},"big":1.0E20}"#);
    }

    #[test]
    fn json_exists_is_json_and_json_string() {
        assert_eq!(eval(&format!("JSON_EXISTS({DOC}, '$.owner.zip')")), "TRUE");
        assert_eq!(eval(&format!("JSON_EXISTS({DOC}, '$.owner.age')")), "FALSE");
        assert_eq!(eval(&format!("JSON_EXISTS({DOC}, 'strict $.tags[5]')")), "FALSE");
        assert_eq!(eval("JSON_EXISTS('{', '$')"), "FALSE");
        assert_eq!(eval("IS_JSON('{}', 'object')"), "TRUE");
        assert_eq!(eval("IS_JSON('1', 'SCALAR')"), "TRUE");
        assert_eq!(eval("IS_JSON('{a: 1}')"), "FALSE");
        assert_eq!(eval("IS_JSON(NULL)"), "FALSE");
        assert_eq!(eval("JSON_STRING('say \"hi\"')"), r#""say \"hi\"""#);
        assert_eq!(eval("JSON_STRING(1.50)"), "1.5");
        assert_eq!(eval("JSON_STRING(CAST(NULL AS INT))"), "<NULL>");
        assert_eq!(eval("JSON_STRING(MAP('k', ARRAY[TRUE]))"), r#"{"k":[true]}"#);
        assert_eq!(eval("JSON_STRING(ROW(1, 'x'))"), r#"{"EXPR$0":1,"EXPR$1":"x"}"#);
    }

    #[test]
    fn invalid_paths_fail_when_planned() {
        assert!(eval("JSON_VALUE('{}', 'a.b')").contains("invalid JSON path 'a.b': it must start with $"));
        assert!(eval("JSON_VALUE('{}', '$.a[')").contains("invalid JSON path '$.a[': '[' needs an index, a quoted name or *"));
        assert!(eval("JSON_QUERY('{}', '$[''a')").contains("a quoted name is not closed"));
        assert_eq!(eval("JSON_VALUE('{\"a\": 1}', CONCAT('$', '.a'))"), "1");
        assert_eq!(eval("JSON_VALUE('{\"a\": 1}', CONCAT('$', '..'))"), "<NULL>");
        assert_eq!(JsonPath::parse("lax $.a").unwrap(), JsonPath::parse("$['a']").unwrap());
    }
}
