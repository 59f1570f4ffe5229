//! Regular-expression functions: REGEXP, REGEXP_REPLACE, REGEXP_EXTRACT and the rest, with the
//! `regex` crate (Flink's are Java regexes: the common syntax is the same; look-around and
//! back-references are not supported, and such a pattern is an error saying so).
//!
//! A pattern is compiled once: a constant one when the query is planned (an invalid one fails
//! the query there), others on first use in a thread, kept in a small per-thread cache of the
//! most recently used patterns.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use regex::Regex;

use super::{check, constant_text, evaluator, integer, text, Evaluator, ScalarFunction, INTEGER, STRING};
use crate::types::SqlType;
use crate::value::Value;

/// How many compiled patterns each thread keeps.
const CACHE_CAPACITY: usize = 64;

struct Cache {
    patterns: HashMap<String, (Regex, u64)>,
    clock: u64,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache { patterns: HashMap::new(), clock: 0 });
    static COMPILED: Cell<u64> = const { Cell::new(0) };
}

/// Compiles `pattern`, or says what is wrong with it.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    COMPILED.with(|count| count.set(count.get() + 1));
    Regex::new(pattern).map_err(|error| match error {
        regex::Error::Syntax(detail) => {
            let reason = detail.lines().rev().find_map(|line| line.strip_prefix("error: ")).unwrap_or(detail.as_str());
            format!("invalid regular expression '{pattern}': {reason}")
        }
        regex::Error::CompiledTooBig(limit) => format!("regular expression '{pattern}' is too big: over {limit} bytes compiled"),
        other => format!("invalid regular expression '{pattern}': {other}"),
    })
}

/// How many patterns this thread has compiled (for tests of the cache).
pub fn compiled_in_this_thread() -> u64 {
    COMPILED.with(Cell::get)
}

/// `f` of `pattern` compiled, from this thread's cache (compiled and kept on first use; the
/// least recently used pattern leaves when the cache is full).
pub fn with_cached<T>(pattern: &str, f: impl FnOnce(&Regex) -> T) -> Result<T, String> {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        cache.clock += 1;
        let now = cache.clock;
        if !cache.patterns.contains_key(pattern) {
            let regex = compile(pattern)?;
            if cache.patterns.len() >= CACHE_CAPACITY {
                let oldest = cache.patterns.iter().min_by_key(|(_, (_, used))| *used).map(|(key, _)| key.clone());
                if let Some(oldest) = oldest {
                    cache.patterns.remove(&oldest);
                }
            }
            cache.patterns.insert(pattern.to_string(), (regex, now));
        }
        let entry = cache.patterns.get_mut(pattern).expect("just inserted");
        entry.1 = now;
        Ok(f(&entry.0))
    })
}

/// A pattern argument: compiled when planned if it is a constant, else per value (cached).
#[derive(Clone)]
pub(crate) struct PatternArg {
    fixed: Option<Arc<Regex>>,
    index: usize,
}

impl PatternArg {
    /// Argument `index` of a call whose constants are `constants`.
    pub(crate) fn plan(constants: &[Option<Value>], index: usize) -> Result<PatternArg, String> {
        let fixed = constant_text(constants, index).map(compile).transpose()?.map(Arc::new);
        Ok(PatternArg { fixed, index })
    }

    /// `f` of the compiled pattern of this call's arguments.
    pub(crate) fn with<T>(&self, args: &[Value], f: impl FnOnce(&Regex) -> T) -> Result<T, String> {
        match &self.fixed {
            Some(regex) => Ok(f(regex)),
            None => with_cached(text(&args[self.index])?, f),
        }
    }
}

/// The matches of `regex` in `text` one after another, as Java's `Matcher.find` finds them:
/// unlike the regex crate's iterators, a match of nothing right after a match counts.
pub(crate) fn java_matches<'t>(regex: &Regex, text: &'t str) -> Vec<regex::Match<'t>> {
    let mut matches = Vec::new();
    let mut at = 0;
    while let Some(found) = regex.find_at(text, at) {
        matches.push(found);
        at = if found.is_empty() {
            match text[found.end()..].chars().next() {
                Some(c) => found.end() + c.len_utf8(),
                None => break,
            }
        } else {
            found.end()
        };
    }
    matches
}

/// `text` with every match of `regex` replaced by `replacement`, taken literally.
fn java_replace_all(regex: &Regex, text: &str, replacement: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for found in java_matches(regex, text) {
        out.push_str(&text[last..found.start()]);
        out.push_str(replacement);
        last = found.end();
    }
    out.push_str(&text[last..]);
    out
}

/// `text` split around the matches of `separator` as Java's `String.split` does: a match of
/// nothing at the start makes no leading empty part, and trailing empty parts are dropped.
pub(crate) fn java_split<'t>(separator: &Regex, text: &'t str) -> Vec<&'t str> {
    let mut parts = Vec::new();
    let mut last = 0;
    for found in java_matches(separator, text) {
        if found.end() == 0 {
            continue;
        }
        parts.push(&text[last..found.start()]);
        last = found.end();
    }
    parts.push(&text[last..]);
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    parts
}

fn planned(
    name: &str,
    signature: &str,
    count: std::ops::RangeInclusive<usize>,
    kinds: &'static [super::Kind],
    result: SqlType,
    eval: fn(&PatternArg, &[Value]) -> Result<Value, String>,
) -> ScalarFunction {
    ScalarFunction::planned(name, signature, move |args, constants| {
        check(args, count.clone(), kinds)?;
        let pattern = PatternArg::plan(constants, 1)?;
        let eval: Evaluator = evaluator(move |values, _| eval(&pattern, values));
        Ok((result.clone(), eval))
    })
}

/// The text of group `index` of the first match, NULL if there is none (or no such group).
fn extract(pattern: &PatternArg, args: &[Value], default_index: i64) -> Result<Value, String> {
    let s = text(&args[0])?;
    let index = args.get(2).map(integer).transpose()?.unwrap_or(default_index);
    pattern
        .with(args, |regex| {
            let group = usize::try_from(index).ok()?;
            regex.captures(s)?.get(group).map(|found| Value::text(found.as_str().to_string()))
        })
        .map(|found| found.unwrap_or(Value::Null))
}

const TWO_STRINGS: &[super::Kind] = &[STRING];
const STRINGS_AND_INDEX: &[super::Kind] = &[STRING, STRING, INTEGER];

/// The regular-expression functions.
pub fn functions() -> Vec<ScalarFunction> {
    vec![
        planned("REGEXP", "REGEXP(s STRING, pattern STRING) -> BOOLEAN", 2..=2, TWO_STRINGS, SqlType::Boolean, |pattern, args| {
            let s = text(&args[0])?;
            if args[1].as_str() == Some("") {
                return Ok(Value::Bool(false));
            }
            pattern.with(args, |regex| Value::Bool(regex.is_match(s)))
        })
        .describe("Whether some part of the text (possibly empty) matches the regular expression; FALSE for an empty pattern.")
        .example("REGEXP('flink-1.20', '[0-9]+\\.[0-9]+')", "TRUE"),
        planned(
            "REGEXP_REPLACE",
            "REGEXP_REPLACE(s STRING, pattern STRING, replacement STRING) -> STRING",
            3..=3,
            TWO_STRINGS,
            SqlType::String,
            |pattern, args| {
                let (s, replacement) = (text(&args[0])?, text(&args[2])?);
                pattern.with(args, |regex| Value::text(java_replace_all(regex, s, replacement)))
            },
        )
        .describe("The text with every match of the regular expression replaced by the replacement, taken literally (`$1` is not a group).")
        .example("REGEXP_REPLACE('foobar', 'oo|ar', '')", "fb"),
        planned(
            "REGEXP_EXTRACT",
            "REGEXP_EXTRACT(s STRING, pattern STRING[, group INT]) -> STRING",
            2..=3,
            STRINGS_AND_INDEX,
            SqlType::String,
            |pattern, args| extract(pattern, args, 0),
        )
        .describe(
            "Group `group` (0, the default as in Flink, is the whole match) of the first match of the regular expression; \
             NULL if nothing matches or there is no such group.",
        )
        .example("REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)', 2)", "bar"),
        planned(
            "REGEXP_EXTRACT_ALL",
            "REGEXP_EXTRACT_ALL(s STRING, pattern STRING[, group INT]) -> ARRAY<STRING>",
            2..=3,
            STRINGS_AND_INDEX,
            SqlType::Array(Box::new(SqlType::String)),
            |pattern, args| {
                let s = text(&args[0])?;
                let index = args.get(2).map(integer).transpose()?.unwrap_or(1);
                pattern
                    .with(args, |regex| {
                        let group = usize::try_from(index).ok().filter(|group| *group < regex.captures_len())?;
                        let found = java_matches(regex, s)
                            .into_iter()
                            .map(|found| {
                                let group = regex.captures_at(s, found.start()).and_then(|captures| captures.get(group));
                                group.map_or(Value::Null, |m| Value::text(m.as_str().to_string()))
                            })
                            .collect();
                        Some(Value::Array(found))
                    })
                    .map(|found| found.unwrap_or(Value::Null))
            },
        )
        .describe(
            "Group `group` (1 by default; 0 is the whole match) of every match of the regular expression; NULL if there is no such group.",
        )
        .example("REGEXP_EXTRACT_ALL('k1=v1;k2=v2', '(\\w+)=(\\w+)', 2)", "[v1, v2]"),
        planned("REGEXP_COUNT", "REGEXP_COUNT(s STRING, pattern STRING) -> INT", 2..=2, TWO_STRINGS, SqlType::Int, |pattern, args| {
            let s = text(&args[0])?;
            pattern.with(args, |regex| Value::Int(java_matches(regex, s).len() as i64))
        })
        .describe("How many times the regular expression matches in the text (matches do not overlap).")
        .example("REGEXP_COUNT('ababab', 'ab')", "3"),
        planned("REGEXP_INSTR", "REGEXP_INSTR(s STRING, pattern STRING) -> INT", 2..=2, TWO_STRINGS, SqlType::Int, |pattern, args| {
            let s = text(&args[0])?;
            pattern.with(args, |regex| Value::Int(regex.find(s).map_or(0, |found| s[..found.start()].chars().count() as i64 + 1)))
        })
        .describe("Where (from 1) the first match of the regular expression starts, or 0 if there is none.")
        .example("REGEXP_INSTR('hello 42 world', '[0-9]+')", "7"),
        planned(
            "REGEXP_SUBSTR",
            "REGEXP_SUBSTR(s STRING, pattern STRING) -> STRING",
            2..=2,
            TWO_STRINGS,
            SqlType::String,
            |pattern, args| {
                let s = text(&args[0])?;
                pattern.with(args, |regex| regex.find(s).map_or(Value::Null, |found| Value::text(found.as_str().to_string())))
            },
        )
        .describe("The first match of the regular expression in the text, or NULL if there is none.")
        .example("REGEXP_SUBSTR('order 1234 shipped', '[0-9]+')", "1234"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::eval_text as eval;
    use crate::function::FunctionRegistry;

    #[test]
    fn patterns_are_compiled_once_per_thread() {
        let before = compiled_in_this_thread();
        for _ in 0..100 {
            assert!(with_cached("a+b", |regex| regex.is_match("xaab")).unwrap());
        }
        assert_eq!(compiled_in_this_thread() - before, 1);
        // Through a function, with a pattern that is no constant: once, then from the cache.
        let function = FunctionRegistry::default().scalar("REGEXP").unwrap().clone();
        let (_, planned) = function.plan(&[SqlType::String, SqlType::String], &[None, None]).unwrap();
        let before = compiled_in_this_thread();
        for row in 0..1000 {
            let args = [Value::text(format!("row {row}")), Value::text("row [0-9]+$")];
            assert_eq!(planned.eval(&args, &Default::default()).unwrap(), Value::Bool(true));
        }
        assert_eq!(compiled_in_this_thread() - before, 1);
        // A constant pattern is compiled when the call is planned.
        let before = compiled_in_this_thread();
        let (_, planned) = function.plan(&[SqlType::String, SqlType::String], &[None, Some(Value::Str("x".into()))]).unwrap();
        for _ in 0..10 {
            planned.eval(&[Value::Str("x".into()), Value::Str("x".into())], &Default::default()).unwrap();
        }
        assert_eq!(compiled_in_this_thread() - before, 1);
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used() {
        for i in 0..CACHE_CAPACITY + 10 {
            with_cached(&format!("p{i}"), |_| ()).unwrap();
            with_cached("kept", |_| ()).unwrap();
        }
        let before = compiled_in_this_thread();
        with_cached("kept", |_| ()).unwrap();
        assert_eq!(compiled_in_this_thread(), before, "a pattern in use stays");
        with_cached("p0", |_| ()).unwrap();
        assert_eq!(compiled_in_this_thread(), before + 1, "the oldest left");
        CACHE.with(|cache| assert!(cache.borrow().patterns.len() <= CACHE_CAPACITY));
    }

    #[test]
    fn invalid_patterns_are_errors_naming_them() {
        assert_eq!(eval("REGEXP('a', '(a')"), "error: line 1, column 1: REGEXP: invalid regular expression '(a': unclosed group (signature: REGEXP(s STRING, pattern STRING) -> BOOLEAN)");
        assert!(eval("REGEXP_REPLACE('a', '(?=a)', 'b')").contains("invalid regular expression '(?=a)': look-around"));
        assert_eq!(eval("REGEXP('abc', CONCAT('[', 'a'))"), "error: REGEXP: invalid regular expression '[a': unclosed character class");
    }

    #[test]
    fn matching_extracting_and_replacing_follow_flink() {
        assert_eq!(eval("REGEXP('abc', '')"), "FALSE");
        assert_eq!(eval("REGEXP('abc', '^b')"), "FALSE");
        assert_eq!(eval("REGEXP(NULL, 'a')"), "<NULL>");
        assert_eq!(eval("REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)')"), "foothebar");
        assert_eq!(eval("REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)', 1)"), "the");
        assert_eq!(eval("REGEXP_EXTRACT('foothebar', 'foo(.*?)(bar)', 3)"), "<NULL>");
        assert_eq!(eval("REGEXP_EXTRACT('foothebar', 'x(y)')"), "<NULL>");
        assert_eq!(eval("REGEXP_EXTRACT('ab', 'a(x)?b', 1)"), "<NULL>");
        assert_eq!(eval("REGEXP_REPLACE('a1b22', '[0-9]+', '$0#')"), "a$0#b$0#");
        assert_eq!(eval("REGEXP_REPLACE('abc', 'x*', '-')"), "-a-b-c-");
        assert_eq!(eval("REGEXP_EXTRACT_ALL('a1b22', '[0-9]+', 0)"), "[1, 22]");
        assert_eq!(eval("REGEXP_EXTRACT_ALL('a1', '([0-9])', 2)"), "<NULL>");
        assert_eq!(eval("REGEXP_COUNT('aaa', 'a*')"), "2");
        assert_eq!(eval("REGEXP_REPLACE('aaa', 'a*', '-')"), "--");
        assert_eq!(eval("REGEXP_EXTRACT_ALL('ab', 'b*', 0)"), "[, b, ]");
        assert_eq!(eval("REGEXP_INSTR('héllo', 'l+')"), "3");
        assert_eq!(eval("REGEXP_SUBSTR('abc', '[0-9]')"), "<NULL>");
    }

    #[test]
    fn java_split_drops_trailing_empty_parts() {
        let comma = Regex::new(",").unwrap();
        assert_eq!(java_split(&comma, "a,b,,"), vec!["a", "b"]);
        assert_eq!(java_split(&comma, ",a"), vec!["", "a"]);
        assert_eq!(java_split(&comma, "a"), vec!["a"]);
        assert_eq!(java_split(&Regex::new("").unwrap(), "ab"), vec!["a", "b"]);
    }
}
