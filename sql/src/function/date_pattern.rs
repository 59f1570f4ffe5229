//! Java's date-time patterns (`yyyy-MM-dd HH:mm:ss.SSS`), as Flink's DATE_FORMAT, TO_TIMESTAMP,
//! UNIX_TIMESTAMP and FROM_UNIXTIME read them: a local date and time formatted by one, or parsed
//! with one.
//!
//! The letters are those of Java's `DateTimeFormatter` that do not depend on a locale: `y`/`u`
//! year (`yy` its last two digits), `M`/`L` month (`MMM` `Jan`, `MMMM` `January`), `d` day,
//! `D` day of the year, `Q`/`q` quarter, `E` day of the week (`Mon`, `EEEE` `Monday`), `a`
//! AM/PM, `H` hour 0-23, `h` 1-12, `K` 0-11, `k` 1-24, `m` minute, `s` second, `S` fraction of
//! the second (as many digits as letters), and the zone offsets `X`, `x`, `Z`. Text between
//! single quotes is literal (`''` is a quote), `[...]` is optional, and other characters stand
//! for themselves. Names are English. Parsing is lenient about widths (`M` and `MM` both read
//! `1` or `01`) but not about values: the 30th of February does not parse.

use crate::time::{civil_from_days, days_from_civil, days_in_month, is_valid_date, MS_PER_DAY};

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(String),
    Field(char, usize),
    Optional(Vec<Token>),
}

/// A compiled date-time pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct DatePattern {
    tokens: Vec<Token>,
}

/// What parsing found: the local date and time, and the zone offset if the text had one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The local date and time, in milliseconds since 1970-01-01 00:00.
    pub local_ms: i64,
    /// The offset from UTC the text gave (`+08:00`), in milliseconds.
    pub offset_ms: Option<i64>,
}

fn widest(letter: char) -> usize {
    match letter {
        'y' | 'u' => 5,
        'M' | 'L' | 'E' | 'Q' | 'q' | 'Z' => 5,
        'D' | 'X' | 'x' => 3,
        'S' => 9,
        'a' => 1,
        _ => 2,
    }
}

impl DatePattern {
    /// Compiles `pattern`, or says which part of it is not supported.
    pub fn compile(pattern: &str) -> Result<DatePattern, String> {
        let fail = |message: String| format!("date-time pattern '{pattern}': {message}");
        let mut groups: Vec<Vec<Token>> = vec![Vec::new()];
        let mut chars = pattern.chars().peekable();
        let push_literal = |groups: &mut Vec<Vec<Token>>, c: char| {
            let group = groups.last_mut().expect("a group");
            match group.last_mut() {
                Some(Token::Literal(text)) => text.push(c),
                _ => group.push(Token::Literal(c.to_string())),
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '\'' => {
                    if chars.peek() == Some(&'\'') {
                        chars.next();
                        push_literal(&mut groups, '\'');
                        continue;
                    }
                    let mut closed = false;
                    while let Some(q) = chars.next() {
                        if q == '\'' {
                            if chars.peek() == Some(&'\'') {
                                chars.next();
                                push_literal(&mut groups, '\'');
                                continue;
                            }
                            closed = true;
                            break;
                        }
                        push_literal(&mut groups, q);
                    }
                    if !closed {
                        return Err(fail("a quote is not closed".into()));
                    }
                }
                '[' => groups.push(Vec::new()),
                ']' => {
                    if groups.len() == 1 {
                        return Err(fail("']' closes no '['".into()));
                    }
                    let inner = groups.pop().expect("an optional group");
                    groups.last_mut().expect("a group").push(Token::Optional(inner));
                }
                c if c.is_ascii_alphabetic() => {
                    let mut count = 1;
                    while chars.peek() == Some(&c) {
                        chars.next();
                        count += 1;
                    }
                    if !"yuMLdDQqEaHhKkmsSXxZ".contains(c) {
                        return Err(fail(format!("the letter '{c}' is not supported (quote literal text: 'T')")));
                    }
                    if count > widest(c) && !matches!(c, 'y' | 'u') {
                        return Err(fail(format!("too many '{c}' letters")));
                    }
                    if c == 'Z' && count == 4 {
                        return Err(fail("ZZZZ is not supported: use ZZZZZ or XXX".into()));
                    }
                    groups.last_mut().expect("a group").push(Token::Field(c, count));
                }
                c => push_literal(&mut groups, c),
            }
        }
        if groups.len() > 1 {
            return Err(fail("a '[' is not closed".into()));
        }
        Ok(DatePattern { tokens: groups.pop().expect("the pattern") })
    }

    /// `local_ms` (a local date and time in milliseconds since 1970-01-01 00:00) as this pattern
    /// writes it; `offset_ms` is the zone's offset, which the letters `X`, `x` and `Z` need.
    pub fn format(&self, local_ms: i64, offset_ms: Option<i64>) -> Result<String, String> {
        let mut out = String::new();
        format_tokens(&self.tokens, local_ms, offset_ms, &mut out)?;
        Ok(out)
    }

    /// Parses `text` with this pattern; `None` if it does not match. Text after the pattern is
    /// ignored when `allow_rest` (as Java's `SimpleDateFormat` does), and fails otherwise.
    pub fn parse(&self, text: &str, allow_rest: bool) -> Option<Parsed> {
        let mut fields = Fields::default();
        let end = parse_tokens(&self.tokens, text, 0, &mut fields)?;
        if end < text.len() && !allow_rest {
            return None;
        }
        fields.resolve()
    }
}

fn pad(out: &mut String, value: i64, width: usize) {
    let sign = if value < 0 { "-" } else { "" };
    out.push_str(&format!("{sign}{:0>width$}", value.unsigned_abs()));
}

fn write_offset(out: &mut String, letter: char, count: usize, offset_ms: i64) {
    let seconds = offset_ms / 1000;
    if seconds == 0 && (letter == 'X' || (letter == 'Z' && count == 5)) {
        out.push('Z');
        return;
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let (hours, minutes) = (seconds.abs() / 3600, seconds.abs() / 60 % 60);
    out.push(sign);
    pad(out, hours, 2);
    match (letter, count) {
        ('X' | 'x', 1) if minutes == 0 => {}
        ('X' | 'x', 1 | 2) | ('Z', 1..=3) => pad(out, minutes, 2),
        _ => {
            out.push(':');
            pad(out, minutes, 2);
        }
    }
}

fn format_tokens(tokens: &[Token], local_ms: i64, offset_ms: Option<i64>, out: &mut String) -> Result<(), String> {
    let days = local_ms.div_euclid(MS_PER_DAY);
    let ms_of_day = local_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    let hour = ms_of_day / 3_600_000;
    for token in tokens {
        match token {
            Token::Literal(text) => out.push_str(text),
            Token::Optional(inner) => format_tokens(inner, local_ms, offset_ms, out)?,
            Token::Field(letter, count) => {
                let count = *count;
                match letter {
                    'y' | 'u' if count == 2 => pad(out, year.rem_euclid(100), 2),
                    'y' | 'u' => pad(out, year, count),
                    'M' | 'L' => match count {
                        1 | 2 => pad(out, i64::from(month), count),
                        3 => out.push_str(&MONTHS[month as usize - 1][..3]),
                        4 => out.push_str(MONTHS[month as usize - 1]),
                        _ => out.push_str(&MONTHS[month as usize - 1][..1]),
                    },
                    'd' => pad(out, i64::from(day), count),
                    'D' => pad(out, days - days_from_civil(year, 1, 1) + 1, count),
                    'Q' | 'q' => {
                        let quarter = (i64::from(month) + 2) / 3;
                        match count {
                            1 | 2 => pad(out, quarter, count),
                            3 => out.push_str(&format!("Q{quarter}")),
                            _ => out.push_str(["1st quarter", "2nd quarter", "3rd quarter", "4th quarter"][quarter as usize - 1]),
                        }
                    }
                    'E' => {
                        // 1970-01-01 was a Thursday.
                        let name = DAYS[(days + 3).rem_euclid(7) as usize];
                        match count {
                            4 => out.push_str(name),
                            5 => out.push_str(&name[..1]),
                            _ => out.push_str(&name[..3]),
                        }
                    }
                    'a' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
                    'H' => pad(out, hour, count),
                    'k' => pad(out, if hour == 0 { 24 } else { hour }, count),
                    'K' => pad(out, hour % 12, count),
                    'h' => pad(out, if hour % 12 == 0 { 12 } else { hour % 12 }, count),
                    'm' => pad(out, ms_of_day / 60_000 % 60, count),
                    's' => pad(out, ms_of_day / 1000 % 60, count),
                    'S' => {
                        let nanos = format!("{:09}", ms_of_day % 1000 * 1_000_000);
                        out.push_str(&nanos[..count]);
                    }
                    'X' | 'x' | 'Z' => match offset_ms {
                        Some(offset) => write_offset(out, *letter, count, offset),
                        None => return Err(format!("the pattern letter '{letter}' needs a time zone, and a TIMESTAMP has none")),
                    },
                    other => return Err(format!("the pattern letter '{other}' is not supported")),
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default)]
struct Fields {
    year: Option<i64>,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    hour: Option<i64>,
    hour_of_half: Option<i64>,
    pm: Option<bool>,
    minute: Option<i64>,
    second: Option<i64>,
    nanos: Option<i64>,
    offset_ms: Option<i64>,
}

impl Fields {
    fn resolve(self) -> Option<Parsed> {
        let year = self.year.unwrap_or(1970);
        let (month, day) = match (self.month, self.day, self.day_of_year) {
            (None, None, Some(day_of_year)) => {
                let leap = days_in_month(year, 2) == 29;
                if !(1..=if leap { 366 } else { 365 }).contains(&day_of_year) {
                    return None;
                }
                let (_, month, day) = civil_from_days(days_from_civil(year, 1, 1) + day_of_year - 1);
                (i64::from(month), i64::from(day))
            }
            (month, day, _) => (month.unwrap_or(1), day.unwrap_or(1)),
        };
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || !is_valid_date(year, month as u32, day as u32) {
            return None;
        }
        let hour = match (self.hour, self.hour_of_half, self.pm) {
            (Some(hour), _, _) => hour,
            (None, Some(hour), pm) => {
                if !(0..=12).contains(&hour) {
                    return None;
                }
                hour % 12 + if pm == Some(true) { 12 } else { 0 }
            }
            (None, None, Some(true)) => 12,
            (None, None, _) => 0,
        };
        let (minute, second) = (self.minute.unwrap_or(0), self.second.unwrap_or(0));
        if !(0..24).contains(&hour) || !(0..60).contains(&minute) || !(0..60).contains(&second) {
            return None;
        }
        let days = days_from_civil(year, month as u32, day as u32);
        let ms = ((hour * 60 + minute) * 60 + second) * 1000 + self.nanos.unwrap_or(0) / 1_000_000;
        Some(Parsed { local_ms: days * MS_PER_DAY + ms, offset_ms: self.offset_ms })
    }
}

fn is_numeric(token: Option<&Token>) -> bool {
    match token {
        Some(Token::Field(letter, count)) => match letter {
            'M' | 'L' | 'E' | 'Q' | 'q' => *count <= 2 && *letter != 'E',
            'a' | 'X' | 'x' | 'Z' => false,
            _ => true,
        },
        _ => false,
    }
}

/// Reads at most `max` (at least one) ASCII digits at `at`: the number and where it ends.
fn digits(text: &str, at: usize, max: usize) -> Option<(i64, usize)> {
    let bytes = text.as_bytes();
    let mut end = at;
    while end < bytes.len() && end - at < max && bytes[end].is_ascii_digit() {
        end += 1;
    }
    (end > at).then(|| text[at..end].parse().ok().map(|n| (n, end))).flatten()
}

/// Which of `names` (or their first three letters) `text` has at `at`, without case: its index
/// and where it ends.
fn name_at(text: &str, at: usize, names: &[&str]) -> Option<(usize, usize)> {
    let rest = text.get(at..)?;
    let starts = |prefix: &str| {
        rest.len() >= prefix.len() && rest.is_char_boundary(prefix.len()) && rest[..prefix.len()].eq_ignore_ascii_case(prefix)
    };
    names
        .iter()
        .position(|name| starts(name))
        .map(|i| (i, at + names[i].len()))
        .or_else(|| names.iter().position(|name| starts(&name[..3])).map(|i| (i, at + 3)))
}

fn parse_offset(text: &str, at: usize) -> Option<(i64, usize)> {
    let rest = text.get(at..)?;
    if rest.starts_with('Z') {
        return Some((0, at + 1));
    }
    let sign = match rest.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, mut end) = digits(text, at + 1, 2)?;
    let mut minutes = 0;
    let after_colon = if text[end..].starts_with(':') { end + 1 } else { end };
    if let Some((m, e)) = digits(text, after_colon, 2) {
        minutes = m;
        end = e;
    }
    (hours <= 18 && minutes < 60).then_some((sign * (hours * 3600 + minutes * 60) * 1000, end))
}

fn parse_tokens(tokens: &[Token], text: &str, mut at: usize, fields: &mut Fields) -> Option<usize> {
    for (index, token) in tokens.iter().enumerate() {
        match token {
            Token::Literal(literal) => {
                if !text.get(at..)?.starts_with(literal.as_str()) {
                    return None;
                }
                at += literal.len();
            }
            Token::Optional(inner) => {
                let mut attempt = *fields;
                if let Some(end) = parse_tokens(inner, text, at, &mut attempt) {
                    *fields = attempt;
                    at = end;
                }
            }
            Token::Field(letter, count) => {
                // A numeric field right before another one has its pattern's width (`yyyyMMdd`).
                let fixed = is_numeric(Some(token)) && is_numeric(tokens.get(index + 1));
                let max = |widest: usize| if fixed { *count } else { widest.max(*count) };
                match letter {
                    'y' | 'u' => {
                        let (value, end) = digits(text, at, if *count == 2 { 2 } else { max(9) })?;
                        fields.year = Some(if *count == 2 && end - at == 2 { 2000 + value } else { value });
                        at = end;
                    }
                    'M' | 'L' if *count >= 3 => {
                        let (month, end) = name_at(text, at, &MONTHS)?;
                        fields.month = Some(month as i64 + 1);
                        at = end;
                    }
                    'E' => at = name_at(text, at, &DAYS)?.1,
                    'a' => {
                        let rest = text.get(at..at + 2)?;
                        fields.pm = Some(match rest.to_ascii_uppercase().as_str() {
                            "AM" => false,
                            "PM" => true,
                            _ => return None,
                        });
                        at += 2;
                    }
                    'X' | 'x' | 'Z' => {
                        let (offset, end) = parse_offset(text, at)?;
                        fields.offset_ms = Some(offset);
                        at = end;
                    }
                    'S' => {
                        let (value, end) = digits(text, at, max(9))?;
                        fields.nanos = Some(value * 10i64.pow(9 - (end - at) as u32));
                        at = end;
                    }
                    'Q' | 'q' if *count >= 3 => return None,
                    letter => {
                        let (value, end) = digits(text, at, max(if *letter == 'D' { 3 } else { 2 }))?;
                        let slot = match letter {
                            'M' | 'L' => &mut fields.month,
                            'd' => &mut fields.day,
                            'D' => &mut fields.day_of_year,
                            'H' => &mut fields.hour,
                            'k' => {
                                fields.hour = Some(value % 24);
                                at = end;
                                continue;
                            }
                            'h' | 'K' => &mut fields.hour_of_half,
                            'm' => &mut fields.minute,
                            's' => &mut fields.second,
                            // A quarter alone says little: read, not used.
                            _ => {
                                at = end;
                                continue;
                            }
                        };
                        *slot = Some(value);
                        at = end;
                    }
                }
            }
        }
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{format_timestamp, parse_timestamp};

    fn format(pattern: &str, timestamp: &str) -> String {
        let ms = parse_timestamp(timestamp).unwrap();
        DatePattern::compile(pattern).unwrap().format(ms, None).unwrap_or_else(|error| format!("error: {error}"))
    }

    fn parse(pattern: &str, text: &str) -> Option<String> {
        DatePattern::compile(pattern).unwrap().parse(text, false).map(|parsed| format_timestamp(parsed.local_ms))
    }

    #[test]
    fn patterns_format_as_java() {
        let ts = "2024-03-05 14:07:09.045";
        assert_eq!(format("yyyy-MM-dd HH:mm:ss", ts), "2024-03-05 14:07:09");
        assert_eq!(format("yy/M/d H:m:s", ts), "24/3/5 14:7:9");
        assert_eq!(format("hh:mm a", ts), "02:07 PM");
        assert_eq!(format("h 'o''clock' a", "2024-03-05 00:30:00"), "12 o'clock AM");
        assert_eq!(format("K k", "2024-03-05 00:30:00"), "0 24");
        assert_eq!(format("SSS|S|SSSSSS", ts), "045|0|045000");
        assert_eq!(format("EEE, d MMM yyyy", ts), "Tue, 5 Mar 2024");
        assert_eq!(format("EEEE MMMM", ts), "Tuesday March");
        assert_eq!(format("D DDD Q QQQ", ts), "65 065 1 Q1");
        assert_eq!(format("yyyyMMdd'T'HHmmss", ts), "20240305T140709");
        assert_eq!(format("yyyy[-MM]", ts), "2024-03");
        assert!(format("yyyy X", ts).starts_with("error: the pattern letter 'X' needs a time zone"));
        let pattern = DatePattern::compile("HH:mm XXX|X|Z").unwrap();
        assert_eq!(pattern.format(0, Some(19_800_000)).unwrap(), "00:00 +05:30|+0530|+0530");
        assert_eq!(pattern.format(0, Some(0)).unwrap(), "00:00 Z|Z|+0000");
    }

    #[test]
    fn unsupported_letters_and_bad_quotes_are_errors() {
        assert_eq!(
            DatePattern::compile("yyyy-ww").unwrap_err(),
            "date-time pattern 'yyyy-ww': the letter 'w' is not supported (quote literal text: 'T')"
        );
        assert!(DatePattern::compile("yyyy 'T").unwrap_err().contains("a quote is not closed"));
        assert!(DatePattern::compile("yyyy]").is_err());
        assert!(DatePattern::compile("dddd").unwrap_err().contains("too many 'd' letters"));
    }

    #[test]
    fn patterns_parse_leniently_in_width_and_strictly_in_value() {
        assert_eq!(parse("yyyy-MM-dd HH:mm:ss", "2024-03-05 14:07:09").as_deref(), Some("2024-03-05 14:07:09.000"));
        assert_eq!(parse("yyyy-MM-dd HH:mm:ss", "2024-3-5 4:07:09").as_deref(), Some("2024-03-05 04:07:09.000"));
        assert_eq!(parse("yyyyMMddHHmmss", "20240305140709").as_deref(), Some("2024-03-05 14:07:09.000"));
        assert_eq!(parse("dd/MMM/yyyy:HH:mm:ss", "05/Mar/2024:14:07:09").as_deref(), Some("2024-03-05 14:07:09.000"));
        assert_eq!(parse("yyyy-MM-dd HH:mm:ss.SSS", "2024-03-05 14:07:09.5").as_deref(), Some("2024-03-05 14:07:09.500"));
        assert_eq!(parse("hh:mm a", "02:07 pm").as_deref(), Some("1970-01-01 14:07:00.000"));
        assert_eq!(parse("hh:mm a", "12:07 AM").as_deref(), Some("1970-01-01 00:07:00.000"));
        assert_eq!(parse("yy-MM", "24-02").as_deref(), Some("2024-02-01 00:00:00.000"));
        assert_eq!(parse("yyyy-MM-dd[ HH:mm]", "2024-03-05").as_deref(), Some("2024-03-05 00:00:00.000"));
        assert_eq!(parse("yyyy-MM-dd[ HH:mm]", "2024-03-05 10:30").as_deref(), Some("2024-03-05 10:30:00.000"));
        assert_eq!(parse("yyyy-DDD", "2024-060").as_deref(), Some("2024-02-29 00:00:00.000"));
        assert_eq!(parse("yyyy-MM-dd", "2023-02-29"), None);
        assert_eq!(parse("yyyy-MM-dd", "2024-13-01"), None);
        assert_eq!(parse("HH:mm", "24:00"), None);
        assert_eq!(parse("yyyy-MM-dd", "2024-03-05 10:00"), None);
        assert_eq!(parse("yyyy-MM-dd", "2024/03/05"), None);
        let lenient = DatePattern::compile("yyyy-MM-dd").unwrap().parse("2024-03-05 10:00", true).unwrap();
        assert_eq!(format_timestamp(lenient.local_ms), "2024-03-05 00:00:00.000");
        let zoned = DatePattern::compile("yyyy-MM-dd HH:mm XXX").unwrap().parse("2024-03-05 10:00 +08:00", false).unwrap();
        assert_eq!((format_timestamp(zoned.local_ms).as_str(), zoned.offset_ms), ("2024-03-05 10:00:00.000", Some(28_800_000)));
    }
}
