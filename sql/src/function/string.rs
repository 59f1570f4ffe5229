//! String functions: case, length, concatenation, substrings and positions, trimming and
//! padding, splitting, character codes and Base64, as Flink's.
//!
//! Positions and lengths count characters (Unicode scalar values), from 1.

use super::{check, integer, text, ScalarFunction, INTEGER, STRING};
use crate::types::SqlType;
use crate::value::Value;

fn string_result(args: &[SqlType], count: std::ops::RangeInclusive<usize>, kinds: &[super::Kind]) -> Result<SqlType, String> {
    check(args, count, kinds)?;
    Ok(SqlType::String)
}

fn int_result(args: &[SqlType], count: std::ops::RangeInclusive<usize>, kinds: &[super::Kind]) -> Result<SqlType, String> {
    check(args, count, kinds)?;
    Ok(SqlType::Int)
}

fn str_value(text: impl Into<String>) -> Value {
    Value::text(text.into())
}

/// The characters of `s` from index `start` (from 0), at most `length` of them.
fn char_slice(s: &str, start: usize, length: usize) -> String {
    s.chars().skip(start).take(length).collect()
}

/// Where (from 1) `needle` first occurs in `haystack` at or after character `from` (from 1); 0
/// when it does not.
fn char_position(needle: &str, haystack: &str, from: usize) -> i64 {
    let Some((byte_start, _)) = haystack.char_indices().nth(from.saturating_sub(1)).or_else(|| {
        // Searching from just past the end finds only the empty string.
        (from.saturating_sub(1) == haystack.chars().count()).then_some((haystack.len(), ' '))
    }) else {
        return 0;
    };
    match haystack[byte_start..].find(needle) {
        Some(offset) => (haystack[..byte_start + offset].chars().count() + 1) as i64,
        None => 0,
    }
}

/// Flink's SUBSTRING: from `start` (from 1; negative counts from the end; 0 is 1), `length`
/// characters at most; NULL for a negative length.
fn substring(s: &str, start: i64, length: Option<i64>) -> Value {
    let length = match length {
        Some(length) if length < 0 => return Value::Null,
        Some(length) => length as usize,
        None => usize::MAX,
    };
    let count = s.chars().count() as i64;
    let begin = match start {
        start if start > 0 => start - 1,
        start if start < 0 => count + start,
        _ => 0,
    };
    if begin < 0 || begin >= count {
        return str_value("");
    }
    str_value(char_slice(s, begin as usize, length))
}

/// `text` split on every occurrence of `separator`, empty parts kept; on runs of whitespace
/// when the separator is empty (as Apache Commons' `splitByWholeSeparatorPreserveAllTokens`).
fn split_keeping_empty<'a>(text: &'a str, separator: &str) -> Vec<&'a str> {
    if text.is_empty() {
        return Vec::new();
    }
    if separator.is_empty() {
        return text.split_whitespace().collect();
    }
    text.split(separator).collect()
}

fn pad(args: &[Value], left: bool) -> Result<Value, String> {
    let (base, length, padding) = (text(&args[0])?, integer(&args[1])?, text(&args[2])?);
    if length < 0 || padding.is_empty() {
        return Ok(Value::Null);
    }
    let length = length as usize;
    let base_length = base.chars().count();
    if base_length >= length {
        return Ok(str_value(char_slice(base, 0, length)));
    }
    let fill: String = padding.chars().cycle().take(length - base_length).collect();
    Ok(str_value(if left { fill + base } else { format!("{base}{fill}") }))
}

fn trim(args: &[Value], leading: bool, trailing: bool) -> Result<Value, String> {
    let s = text(&args[0])?;
    let characters: Vec<char> = match args.get(1) {
        Some(value) => text(value)?.chars().collect(),
        None => vec![' '],
    };
    let trim = |c: char| characters.contains(&c);
    let s = if leading { s.trim_start_matches(trim) } else { s };
    let s = if trailing { s.trim_end_matches(trim) } else { s };
    Ok(str_value(s))
}

fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start_of_word = true;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if start_of_word {
                out.extend(c.to_uppercase());
            } else {
                out.extend(c.to_lowercase());
            }
            start_of_word = false;
        } else {
            out.push(c);
            start_of_word = true;
        }
    }
    out
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard Base64 (RFC 4648) with padding.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, byte)| n | u32::from(*byte) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard Base64 (padding optional, no whitespace), or says why it cannot.
pub(crate) fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim_end_matches('=');
    if text.len() - trimmed.len() > 2 || (text.len() != trimmed.len() && !text.len().is_multiple_of(4)) {
        return Err(format!("'{text}' is not Base64: bad padding"));
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0);
    for c in trimmed.bytes() {
        let Some(value) = BASE64.iter().position(|&b| b == c) else {
            return Err(format!("'{text}' is not Base64: '{}' is not a Base64 character", c as char));
        };
        buffer = buffer << 6 | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err(format!("'{text}' is not Base64: its length is not possible"));
    }
    Ok(out)
}

/// The string functions.
pub fn functions() -> Vec<ScalarFunction> {
    let char_length = ScalarFunction::new(
        "CHAR_LENGTH",
        "CHAR_LENGTH(s STRING) -> INT",
        |args| int_result(args, 1..=1, &[STRING]),
        |args, _| Ok(Value::Int(text(&args[0])?.chars().count() as i64)),
    )
    .describe("The number of characters of the text.")
    .example("CHAR_LENGTH('héllo')", "5");
    let character_length = char_length.alias("CHARACTER_LENGTH");
    vec![
        ScalarFunction::new(
            "UPPER",
            "UPPER(s STRING) -> STRING",
            |args| string_result(args, 1..=1, &[STRING]),
            |args, _| Ok(str_value(text(&args[0])?.to_uppercase())),
        )
        .describe("The text in capitals.")
        .example("UPPER('tethys')", "TETHYS"),
        ScalarFunction::new(
            "LOWER",
            "LOWER(s STRING) -> STRING",
            |args| string_result(args, 1..=1, &[STRING]),
            |args, _| Ok(str_value(text(&args[0])?.to_lowercase())),
        )
        .describe("The text in small letters.")
        .example("LOWER('Tethys')", "tethys"),
        char_length,
        character_length,
        ScalarFunction::new(
            "CONCAT",
            "CONCAT(s1 STRING, s2 STRING, ...) -> STRING",
            |args| {
                if !args.is_empty() && args.iter().all(|t| matches!(t, SqlType::Bytes | SqlType::Null)) && args.contains(&SqlType::Bytes) {
                    return Ok(SqlType::Bytes);
                }
                string_result(args, 1..=usize::MAX, &[STRING])
            },
            |args, _| {
                if let Value::Bytes(_) = args[0] {
                    let bytes = args.iter().flat_map(|arg| if let Value::Bytes(b) = arg { b.clone() } else { Vec::new() }).collect();
                    return Ok(Value::Bytes(bytes));
                }
                let mut out = String::new();
                for arg in args {
                    out.push_str(text(arg)?);
                }
                Ok(Value::text(out))
            },
        )
        .describe("The texts (or byte strings) joined end to end; NULL if any is NULL. `a || b` is CONCAT(a, b).")
        .example("CONCAT('stream', 'ing', ' SQL')", "streaming SQL"),
        ScalarFunction::new(
            "CONCAT_WS",
            "CONCAT_WS(separator STRING, s1 STRING, ...) -> STRING",
            |args| string_result(args, 1..=usize::MAX, &[STRING]),
            |args, _| {
                let Some(separator) = args[0].as_str() else {
                    return Ok(Value::Null);
                };
                let parts = args[1..].iter().filter_map(Value::as_str).collect::<Vec<_>>();
                Ok(str_value(parts.join(separator)))
            },
        )
        .handles_nulls()
        .describe("The texts joined with the separator between them, NULL ones skipped (empty ones kept); NULL if the separator is.")
        .example("CONCAT_WS('~', 'AA', NULL, 'BB', '', 'CC')", "AA~BB~~CC"),
        ScalarFunction::new(
            "SUBSTRING",
            "SUBSTRING(s STRING, start INT[, length INT]) -> STRING",
            |args| string_result(args, 2..=3, &[STRING, INTEGER]),
            |args, _| Ok(substring(text(&args[0])?, integer(&args[1])?, args.get(2).map(integer).transpose()?)),
        )
        .describe(
            "The part of the text from character `start` (from 1; negative counts from the end), `length` characters at most; \
             also written SUBSTRING(s FROM start FOR length) and SUBSTR.",
        )
        .example("SUBSTRING('streaming' FROM 3 FOR 4)", "ream"),
        ScalarFunction::new(
            "POSITION",
            "POSITION(needle STRING, haystack STRING) -> INT",
            |args| int_result(args, 2..=2, &[STRING]),
            |args, _| Ok(Value::Int(char_position(text(&args[0])?, text(&args[1])?, 1))),
        )
        .describe("Where the first text first occurs in the second (from 1), or 0; written POSITION(needle IN haystack).")
        .example("POSITION('am' IN 'streaming')", "5"),
        ScalarFunction::new(
            "LOCATE",
            "LOCATE(needle STRING, haystack STRING[, from INT]) -> INT",
            |args| int_result(args, 2..=3, &[STRING, STRING, INTEGER]),
            |args, _| {
                let from = args.get(2).map(integer).transpose()?.unwrap_or(1);
                if from < 1 {
                    return Ok(Value::Int(0));
                }
                Ok(Value::Int(char_position(text(&args[0])?, text(&args[1])?, from as usize)))
            },
        )
        .describe("Where the first text first occurs in the second at or after character `from` (from 1, the default), or 0.")
        .example("LOCATE('a', 'banana', 3)", "4"),
        ScalarFunction::new(
            "INSTR",
            "INSTR(haystack STRING, needle STRING) -> INT",
            |args| int_result(args, 2..=2, &[STRING]),
            |args, _| Ok(Value::Int(char_position(text(&args[1])?, text(&args[0])?, 1))),
        )
        .describe("Where the second text first occurs in the first (from 1), or 0.")
        .example("INSTR('streaming', 'ing')", "7"),
        ScalarFunction::new(
            "REPLACE",
            "REPLACE(s STRING, search STRING, replacement STRING) -> STRING",
            |args| string_result(args, 3..=3, &[STRING]),
            |args, _| Ok(str_value(text(&args[0])?.replace(text(&args[1])?, text(&args[2])?))),
        )
        .describe("The text with every occurrence of `search` replaced (not a regular expression: see REGEXP_REPLACE).")
        .example("REPLACE('hello world', 'world', 'flink')", "hello flink"),
        ScalarFunction::new(
            "BTRIM",
            "BTRIM(s STRING[, characters STRING]) -> STRING",
            |args| string_result(args, 1..=2, &[STRING]),
            |args, _| trim(args, true, true),
        )
        .describe("The text without the given characters (spaces by default) at either end; TRIM([BOTH] [chars FROM] s) calls it.")
        .example("TRIM(BOTH 'x' FROM 'xxhixx')", "hi"),
        ScalarFunction::new(
            "LTRIM",
            "LTRIM(s STRING[, characters STRING]) -> STRING",
            |args| string_result(args, 1..=2, &[STRING]),
            |args, _| trim(args, true, false),
        )
        .describe("The text without the given characters (spaces by default) at its start; TRIM(LEADING ...) calls it.")
        .example("CONCAT('[', LTRIM('  hi  '), ']')", "[hi  ]"),
        ScalarFunction::new(
            "RTRIM",
            "RTRIM(s STRING[, characters STRING]) -> STRING",
            |args| string_result(args, 1..=2, &[STRING]),
            |args, _| trim(args, false, true),
        )
        .describe("The text without the given characters (spaces by default) at its end; TRIM(TRAILING ...) calls it.")
        .example("RTRIM('hi!!?', '!?')", "hi"),
        ScalarFunction::new(
            "LPAD",
            "LPAD(s STRING, length INT, padding STRING) -> STRING",
            |args| string_result(args, 3..=3, &[STRING, INTEGER, STRING]),
            |args, _| pad(args, true),
        )
        .describe(
            "The text padded on the left with the padding, repeated, to `length` characters, or cut to them if longer; \
             NULL for a negative length or empty padding.",
        )
        .example("LPAD('7', 3, '0')", "007"),
        ScalarFunction::new(
            "RPAD",
            "RPAD(s STRING, length INT, padding STRING) -> STRING",
            |args| string_result(args, 3..=3, &[STRING, INTEGER, STRING]),
            |args, _| pad(args, false),
        )
        .describe(
            "The text padded on the right with the padding, repeated, to `length` characters, or cut to them if longer; \
             NULL for a negative length or empty padding.",
        )
        .example("RPAD('ab', 5, 'xy')", "abxyx"),
        ScalarFunction::new(
            "REPEAT",
            "REPEAT(s STRING, times INT) -> STRING",
            |args| string_result(args, 2..=2, &[STRING, INTEGER]),
            |args, _| {
                let times = integer(&args[1])?.max(0) as usize;
                let s = text(&args[0])?;
                if s.len().saturating_mul(times) > 1 << 30 {
                    return Err(format!("the result would be {} bytes long", s.len().saturating_mul(times)));
                }
                Ok(str_value(s.repeat(times)))
            },
        )
        .describe("The text repeated `times` times (empty for 0 or fewer).")
        .example("REPEAT('ab', 3)", "ababab"),
        ScalarFunction::new(
            "REVERSE",
            "REVERSE(s STRING) -> STRING",
            |args| string_result(args, 1..=1, &[STRING]),
            |args, _| Ok(str_value(text(&args[0])?.chars().rev().collect::<String>())),
        )
        .describe("The text's characters in reverse order.")
        .example("REVERSE('flink')", "knilf"),
        ScalarFunction::new(
            "INITCAP",
            "INITCAP(s STRING) -> STRING",
            |args| string_result(args, 1..=1, &[STRING]),
            |args, _| Ok(str_value(initcap(text(&args[0])?))),
        )
        .describe("The text with the first character of each word (a run of letters and digits) in capitals and the rest in small letters.")
        .example("INITCAP('hello wORLD-foo')", "Hello World-Foo"),
        ScalarFunction::new(
            "SPLIT_INDEX",
            "SPLIT_INDEX(s STRING, separator STRING, index INT) -> STRING",
            |args| string_result(args, 3..=3, &[STRING, STRING, INTEGER]),
            |args, _| {
                let index = integer(&args[2])?;
                let parts = split_keeping_empty(text(&args[0])?, text(&args[1])?);
                Ok(usize::try_from(index).ok().and_then(|i| parts.get(i)).map_or(Value::Null, |part| str_value(*part)))
            },
        )
        .describe("Part `index` (from 0) of the text split at the separator (a plain text); NULL when there is no such part.")
        .example("SPLIT_INDEX('Jack,John,Mary', ',', 2)", "Mary"),
        ScalarFunction::new(
            "SPLIT",
            "SPLIT(s STRING, separator STRING) -> ARRAY<STRING>",
            |args| {
                check(args, 2..=2, &[STRING])?;
                Ok(SqlType::Array(Box::new(SqlType::String)))
            },
            |args, _| {
                let (s, separator) = (text(&args[0])?, text(&args[1])?);
                let parts: Vec<Value> = if separator.is_empty() {
                    s.chars().map(|c| str_value(c.to_string())).collect()
                } else if s.is_empty() {
                    Vec::new()
                } else {
                    s.split(separator).map(str_value).collect()
                };
                Ok(Value::Array(parts))
            },
        )
        .describe("The text split at every occurrence of the separator (a plain text), empty parts kept; into characters if the separator is empty.")
        .example("SPLIT('ab,c,,d', ',')", "[ab, c, , d]"),
        ScalarFunction::new(
            "LEFT",
            "LEFT(s STRING, length INT) -> STRING",
            |args| string_result(args, 2..=2, &[STRING, INTEGER]),
            |args, _| Ok(str_value(char_slice(text(&args[0])?, 0, integer(&args[1])?.max(0) as usize))),
        )
        .describe("The first `length` characters of the text (empty for a negative length).")
        .example("LEFT('streaming', 6)", "stream"),
        ScalarFunction::new(
            "RIGHT",
            "RIGHT(s STRING, length INT) -> STRING",
            |args| string_result(args, 2..=2, &[STRING, INTEGER]),
            |args, _| {
                let s = text(&args[0])?;
                let length = integer(&args[1])?.max(0) as usize;
                let count = s.chars().count();
                Ok(str_value(char_slice(s, count.saturating_sub(length), length)))
            },
        )
        .describe("The last `length` characters of the text (empty for a negative length).")
        .example("RIGHT('streaming', 3)", "ing"),
        ScalarFunction::new(
            "ASCII",
            "ASCII(s STRING) -> TINYINT",
            |args| {
                check(args, 1..=1, &[STRING])?;
                Ok(SqlType::TinyInt)
            },
            |args, _| Ok(Value::Int(text(&args[0])?.bytes().next().map_or(0, |byte| i64::from(byte as i8)))),
        )
        .describe("The code of the text's first character (its first byte in UTF-8), 0 for empty text.")
        .example("ASCII('abc')", "97"),
        ScalarFunction::new(
            "CHR",
            "CHR(code INTEGER) -> STRING",
            |args| string_result(args, 1..=1, &[INTEGER]),
            |args, _| {
                let code = integer(&args[0])?;
                if code < 0 {
                    return Ok(str_value(""));
                }
                Ok(str_value(char::from((code & 0xFF) as u8).to_string()))
            },
        )
        .describe("The character of a code from 0 to 255 (a larger code is taken modulo 256, a negative one gives empty text).")
        .example("CHR(97)", "a"),
        ScalarFunction::new(
            "STR_TO_MAP",
            "STR_TO_MAP(s STRING[, pair_separator STRING, key_value_separator STRING]) -> MAP<STRING, STRING>",
            |args| {
                check(args, 1..=3, &[STRING])?;
                if args.len() == 2 {
                    return Err("takes 1 or 3 arguments, got 2".into());
                }
                Ok(SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::String)))
            },
            |args, _| {
                let s = text(&args[0])?;
                let (pairs, key_value) = match args.len() {
                    3 => (text(&args[1])?, text(&args[2])?),
                    _ => (",", "="),
                };
                if s.is_empty() {
                    return Ok(Value::Map(Vec::new()));
                }
                use super::regexp::{java_split, with_cached};
                let pairs: Vec<String> = with_cached(pairs, |pairs| java_split(pairs, s).into_iter().map(str::to_string).collect())?;
                let mut entries: Vec<(Value, Value)> = Vec::new();
                for pair in &pairs {
                    let (key, value) = with_cached(key_value, |key_value| match key_value.find(pair) {
                        Some(found) => (str_value(&pair[..found.start()]), str_value(&pair[found.end()..])),
                        None => (str_value(pair.as_str()), Value::Null),
                    })?;
                    match entries.iter_mut().find(|(existing, _)| *existing == key) {
                        Some(entry) => entry.1 = value,
                        None => entries.push((key, value)),
                    }
                }
                Ok(Value::Map(entries))
            },
        )
        .describe(
            "A map from text of key-value pairs: pairs split at the first separator (',' by default), each at the second ('=' by default), \
             both regular expressions; a pair without the second has a NULL value.",
        )
        .example("STR_TO_MAP('a=1,b=2,c')", "{a=1, b=2, c=<NULL>}"),
        ScalarFunction::new(
            "TO_BASE64",
            "TO_BASE64(s STRING) -> STRING",
            |args| string_result(args, 1..=1, &[STRING]),
            |args, _| Ok(str_value(base64_encode(text(&args[0])?.as_bytes()))),
        )
        .describe("The text's UTF-8 bytes in Base64.")
        .example("TO_BASE64('hello world')", "aGVsbG8gd29ybGQ="),
        ScalarFunction::new(
            "FROM_BASE64",
            "FROM_BASE64(s STRING) -> STRING",
            |args| string_result(args, 1..=1, &[STRING]),
            |args, _| {
                let bytes = base64_decode(text(&args[0])?)?;
                String::from_utf8(bytes).map(Value::text).map_err(|_| "the decoded bytes are not UTF-8 text".to_string())
            },
        )
        .describe("The text whose UTF-8 bytes are the Base64 given; an error if it is not Base64.")
        .example("FROM_BASE64('aGVsbG8gd29ybGQ=')", "hello world"),
        ScalarFunction::new(
            "OVERLAY",
            "OVERLAY(s STRING, replacement STRING, start INT[, length INT]) -> STRING",
            |args| string_result(args, 3..=4, &[STRING, STRING, INTEGER]),
            |args, _| {
                let (s, replacement, start) = (text(&args[0])?, text(&args[1])?, integer(&args[2])?);
                let length = match args.get(3) {
                    Some(length) => integer(length)?,
                    None => replacement.chars().count() as i64,
                };
                let count = s.chars().count() as i64;
                if start <= 0 || start > count {
                    return Ok(str_value(s));
                }
                let mut out = char_slice(s, 0, start as usize - 1);
                out.push_str(replacement);
                if start + length <= count && length > 0 {
                    out.push_str(&char_slice(s, (start - 1 + length) as usize, usize::MAX));
                }
                Ok(Value::text(out))
            },
        )
        .describe(
            "The text with `length` characters (the replacement's length by default) from `start` (from 1) replaced; \
             written OVERLAY(s PLACING replacement FROM start [FOR length]).",
        )
        .example("OVERLAY('abcdefg' PLACING 'XY' FROM 3 FOR 2)", "abXYefg"),
        ScalarFunction::new(
            "ELT",
            "ELT(index INT, s1 STRING, s2 STRING, ...) -> STRING",
            |args| {
                check(args, 2..=usize::MAX, &[INTEGER, STRING])?;
                Ok(SqlType::String)
            },
            |args, _| {
                let Some(index) = args[0].as_i64() else {
                    return Ok(Value::Null);
                };
                Ok(usize::try_from(index).ok().filter(|i| *i >= 1).and_then(|i| args.get(i)).cloned().unwrap_or(Value::Null))
            },
        )
        .handles_nulls()
        .describe("Text number `index` (from 1) of those that follow it; NULL when there is no such one.")
        .example("ELT(2, 'a', 'b', 'c')", "b"),
        ScalarFunction::new(
            "TRANSLATE",
            "TRANSLATE(s STRING, from STRING, to STRING) -> STRING",
            |args| string_result(args, 3..=3, &[STRING]),
            |args, _| {
                let (s, from, to) = (text(&args[0])?, text(&args[1])?, text(&args[2])?);
                let (from, to): (Vec<char>, Vec<char>) = (from.chars().collect(), to.chars().collect());
                let translated = s
                    .chars()
                    .filter_map(|c| match from.iter().position(|f| *f == c) {
                        Some(i) => to.get(i).copied(),
                        None => Some(c),
                    })
                    .collect::<String>();
                Ok(Value::text(translated))
            },
        )
        .describe("The text with each character found in `from` replaced by the one at the same place in `to` (removed if `to` is shorter).")
        .example("TRANSLATE('www.apache.org', 'wo', 'Wx')", "WWW.apache.xrg"),
    ]
}

#[cfg(test)]
mod tests {
    use crate::expr::eval_text as eval;

    #[test]
    fn padding_cuts_or_fills_to_the_length() {
        assert_eq!(eval("LPAD('hi', 4, '??')"), "??hi");
        assert_eq!(eval("LPAD('hi', 1, '??')"), "h");
        assert_eq!(eval("LPAD('hi', 5, 'ab')"), "abahi");
        assert_eq!(eval("RPAD('hi', 1, '??')"), "h");
        assert_eq!(eval("RPAD('héllo', 7, 'é')"), "hélloéé");
        assert_eq!(eval("LPAD('hi', 0, 'x')"), "");
        assert_eq!(eval("LPAD('hi', -1, 'x')"), "<NULL>");
        assert_eq!(eval("RPAD('hi', 4, '')"), "<NULL>");
        assert_eq!(eval("LPAD(NULL, 4, 'x')"), "<NULL>");
    }

    #[test]
    fn substrings_and_positions_follow_flink() {
        assert_eq!(eval("SUBSTRING('streaming', 3)"), "reaming");
        assert_eq!(eval("SUBSTRING('streaming', -3)"), "ing");
        assert_eq!(eval("SUBSTRING('streaming', 0, 3)"), "str");
        assert_eq!(eval("SUBSTRING('streaming', 20)"), "");
        assert_eq!(eval("SUBSTRING('streaming', -20, 2)"), "");
        assert_eq!(eval("SUBSTRING('streaming', 2, -1)"), "<NULL>");
        assert_eq!(eval("SUBSTR('héllo', 2, 3)"), "éll");
        assert_eq!(eval("POSITION('z' IN 'abc')"), "0");
        assert_eq!(eval("POSITION('' IN 'abc')"), "1");
        assert_eq!(eval("POSITION('l' IN 'héllo')"), "3");
        assert_eq!(eval("LOCATE('a', 'banana')"), "2");
        assert_eq!(eval("LOCATE('a', 'banana', 7)"), "0");
        assert_eq!(eval("LOCATE('a', 'banana', 0)"), "0");
        assert_eq!(eval("INSTR('abc', 'z')"), "0");
        assert_eq!(eval("LEFT('abc', -1)"), "");
        assert_eq!(eval("RIGHT('abc', 5)"), "abc");
        assert_eq!(eval("OVERLAY('abcdefg' PLACING 'XY' FROM 9)"), "abcdefg");
        assert_eq!(eval("OVERLAY('abcdefg' PLACING 'XY' FROM 6 FOR 5)"), "abcdeXY");
        assert_eq!(eval("OVERLAY('abcdefg' PLACING 'XY' FROM 2)"), "aXYdefg");
    }

    #[test]
    fn split_index_out_of_range_is_null() {
        assert_eq!(eval("SPLIT_INDEX('a,b,c', ',', 3)"), "<NULL>");
        assert_eq!(eval("SPLIT_INDEX('a,b,c', ',', -1)"), "<NULL>");
        assert_eq!(eval("SPLIT_INDEX('a,,c', ',', 1)"), "");
        assert_eq!(eval("SPLIT_INDEX('a::b', '::', 1)"), "b");
        assert_eq!(eval("SPLIT_INDEX('a b  c', '', 2)"), "c");
        assert_eq!(eval("SPLIT('abc', '')"), "[a, b, c]");
        assert_eq!(eval("SPLIT('', ',')"), "[]");
    }

    #[test]
    fn trims_concats_and_codes() {
        assert_eq!(eval("TRIM('  a b  ')"), "a b");
        assert_eq!(eval("TRIM(LEADING 'x' FROM 'xxaxx')"), "axx");
        assert_eq!(eval("TRIM(TRAILING FROM '  a  ')"), "  a");
        assert_eq!(eval("CONCAT('a', NULL)"), "<NULL>");
        assert_eq!(eval("'a' || 'b' || 'c'"), "abc");
        assert_eq!(eval("CONCAT_WS(NULL, 'a', 'b')"), "<NULL>");
        assert_eq!(eval("CONCAT_WS(',', NULL)"), "");
        assert_eq!(eval("CONCAT(x'01', x'ff')"), "x'01ff'");
        assert_eq!(eval("CHR(353)"), "a");
        assert_eq!(eval("CHR(-1)"), "");
        assert_eq!(eval("ASCII('')"), "0");
        assert_eq!(eval("REPLACE('abc', '', '-')"), "-a-b-c-");
        assert_eq!(eval("REPEAT('ab', -1)"), "");
        assert_eq!(eval("STR_TO_MAP('a:1;b:2', ';', ':')"), "{a=1, b=2}");
        assert_eq!(eval("STR_TO_MAP('')"), "{}");
        assert_eq!(eval("STR_TO_MAP('a=1=2,a=3')"), "{a=3}");
        assert_eq!(eval("ELT(4, 'a', 'b')"), "<NULL>");
        assert!(eval("UPPER(1)").contains("argument 1 must be STRING, got INT"));
        assert!(eval("LPAD('a', 'b', 'c')").contains("argument 2 must be an integer, got STRING"));
    }

    #[test]
    fn base64_round_trips() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "héllo wörld"] {
            let encoded = super::base64_encode(text.as_bytes());
            assert_eq!(super::base64_decode(&encoded).unwrap(), text.as_bytes(), "{encoded}");
        }
        assert_eq!(super::base64_encode(b"foob"), "Zm9vYg==");
        assert_eq!(super::base64_decode("Zm9vYg").unwrap(), b"foob");
        assert!(eval("FROM_BASE64('a$==')").contains("is not a Base64 character"));
        assert!(eval("FROM_BASE64('a')").contains("is not Base64"));
        assert_eq!(eval("FROM_BASE64(TO_BASE64('Tethys'))"), "Tethys");
    }
}
