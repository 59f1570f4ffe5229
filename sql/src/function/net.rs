//! URL and IP-address functions: PARSE_URL (the parts of a URL as Java's `java.net.URL` names
//! them, as Flink's), URL_ENCODE / URL_DECODE (HTML form encoding, as Java's `URLEncoder`), and
//! INET_ATON / INET_NTOA (IPv4 addresses as numbers, as MySQL's).

use std::net::Ipv4Addr;

use super::{check, integer, text, ScalarFunction, INTEGER, STRING};
use crate::types::SqlType;
use crate::value::Value;

/// A URL split as `java.net.URL` splits one.
#[derive(Debug, Default, PartialEq)]
struct Url<'a> {
    protocol: String,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    reference: Option<&'a str>,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Option<Url<'a>> {
        let url = url.trim();
        let (scheme, rest) = url.split_once(':')?;
        let mut scheme_chars = scheme.chars();
        if !scheme_chars.next()?.is_ascii_alphabetic() || !scheme_chars.all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)) {
            return None;
        }
        let (rest, reference) = match rest.split_once('#') {
            Some((rest, reference)) => (rest, Some(reference)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.strip_prefix("//") {
            Some(after) => {
                let end = after.find('/').unwrap_or(after.len());
                (Some(&after[..end]), &after[end..])
            }
            None => (None, rest),
        };
        Some(Url { protocol: scheme.to_ascii_lowercase(), authority, path, query, reference })
    }

    fn user_info(&self) -> Option<&'a str> {
        self.authority.and_then(|authority| authority.split_once('@')).map(|(user_info, _)| user_info)
    }

    fn host(&self) -> Option<&'a str> {
        let authority = self.authority?;
        let host = authority.split_once('@').map_or(authority, |(_, host)| host);
        if host.starts_with('[') {
            return Some(host.find(']').map_or(host, |end| &host[..=end]));
        }
        Some(host.split_once(':').map_or(host, |(host, _)| host))
    }

    fn part(&self, name: &str) -> Option<String> {
        match name {
            "HOST" => self.host().map(str::to_string),
            "PATH" => Some(self.path.to_string()),
            "QUERY" => self.query.map(str::to_string),
            "REF" => self.reference.map(str::to_string),
            "PROTOCOL" => Some(self.protocol.clone()),
            "FILE" => Some(match self.query {
                Some(query) => format!("{}?{query}", self.path),
                None => self.path.to_string(),
            }),
            "AUTHORITY" => self.authority.map(str::to_string),
            "USERINFO" => self.user_info().map(str::to_string),
            _ => None,
        }
    }
}

/// The value of `key` in a query string (`k1=v1&k2=v2`): that of its first `key=`.
fn query_value<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query.split('&').find_map(|pair| pair.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

/// `text` as Java's `URLEncoder.encode(text, UTF-8)` writes it.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => out.push(byte as char),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// `text` decoded as Java's `URLDecoder.decode(text, UTF-8)` does; `None` for a bad escape.
fn url_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(pair, 16).ok().filter(|_| pair.bytes().all(|b| b.is_ascii_hexdigit()))?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The URL and IP functions.
pub fn functions() -> Vec<ScalarFunction> {
    vec![
        ScalarFunction::new(
            "PARSE_URL",
            "PARSE_URL(url STRING, part STRING[, key STRING]) -> STRING",
            |args| {
                check(args, 2..=3, &[STRING])?;
                Ok(SqlType::String)
            },
            |args, _| {
                let Some(url) = Url::parse(text(&args[0])?) else {
                    return Ok(Value::Null);
                };
                let part = text(&args[1])?;
                let value = match args.get(2) {
                    Some(key) if part == "QUERY" => {
                        url.query.and_then(|query| query_value(query, key.as_str().unwrap_or_default())).map(str::to_string)
                    }
                    Some(_) => None,
                    None => url.part(part),
                };
                Ok(value.map_or(Value::Null, Value::text))
            },
        )
        .describe(
            "A part of the URL: 'PROTOCOL', 'HOST', 'PATH', 'QUERY' (with a key, that parameter's value), 'REF', 'FILE', \
             'AUTHORITY' or 'USERINFO'; NULL if the URL has no such part or is not one.",
        )
        .example("PARSE_URL('http://facebook.com/path1/p.php?k1=v1&k2=v2#Ref1', 'QUERY', 'k1')", "v1"),
        ScalarFunction::new(
            "URL_ENCODE",
            "URL_ENCODE(s STRING) -> STRING",
            |args| {
                check(args, 1..=1, &[STRING])?;
                Ok(SqlType::String)
            },
            |args, _| Ok(Value::text(url_encode(text(&args[0])?))),
        )
        .describe("The text encoded for a URL's query (application/x-www-form-urlencoded, UTF-8): a space is '+'.")
        .example("URL_ENCODE('a b&c=ü')", "a+b%26c%3D%C3%BC"),
        ScalarFunction::new(
            "URL_DECODE",
            "URL_DECODE(s STRING) -> STRING",
            |args| {
                check(args, 1..=1, &[STRING])?;
                Ok(SqlType::String)
            },
            |args, _| Ok(url_decode(text(&args[0])?).map_or(Value::Null, Value::text)),
        )
        .describe("The text decoded from a URL's query encoding ('+' is a space); NULL if an escape in it is bad.")
        .example("URL_DECODE('a+b%26c%3D%C3%BC')", "a b&c=ü"),
        ScalarFunction::new(
            "INET_ATON",
            "INET_ATON(ip STRING) -> BIGINT",
            |args| {
                check(args, 1..=1, &[STRING])?;
                Ok(SqlType::BigInt)
            },
            |args, _| Ok(text(&args[0])?.trim().parse::<Ipv4Addr>().map_or(Value::Null, |ip| Value::Int(i64::from(u32::from(ip))))),
        )
        .describe("The IPv4 address (dotted quad) as a number; NULL if it is not one.")
        .example("INET_ATON('10.0.5.9')", "167773449"),
        ScalarFunction::new(
            "INET_NTOA",
            "INET_NTOA(n INTEGER) -> STRING",
            |args| {
                check(args, 1..=1, &[INTEGER])?;
                Ok(SqlType::String)
            },
            |args, _| Ok(u32::try_from(integer(&args[0])?).map_or(Value::Null, |n| Value::text(Ipv4Addr::from(n).to_string()))),
        )
        .describe("The IPv4 address (dotted quad) of a number from 0 to 4294967295; NULL for others.")
        .example("INET_NTOA(167773449)", "10.0.5.9"),
    ]
}

#[cfg(test)]
mod tests {
    use crate::expr::eval_text as eval;

    #[test]
    fn urls_split_as_java_splits_them() {
        let url = "'https://user:pw@Example.com:8080/a/b.php?k1=v1&k2=&k1=again#frag'";
        let part = |name: &str| eval(&format!("PARSE_URL({url}, '{name}')"));
        assert_eq!(part("PROTOCOL"), "https");
        assert_eq!(part("HOST"), "Example.com");
        assert_eq!(part("PATH"), "/a/b.php");
        assert_eq!(part("QUERY"), "k1=v1&k2=&k1=again");
        assert_eq!(part("REF"), "frag");
        assert_eq!(part("FILE"), "/a/b.php?k1=v1&k2=&k1=again");
        assert_eq!(part("AUTHORITY"), "user:pw@Example.com:8080");
        assert_eq!(part("USERINFO"), "user:pw");
        assert_eq!(part("host"), "<NULL>");
        assert_eq!(part("PORT"), "<NULL>");
        assert_eq!(eval(&format!("PARSE_URL({url}, 'QUERY', 'k1')")), "v1");
        assert_eq!(eval(&format!("PARSE_URL({url}, 'QUERY', 'k2')")), "");
        assert_eq!(eval(&format!("PARSE_URL({url}, 'QUERY', 'k3')")), "<NULL>");
        assert_eq!(eval(&format!("PARSE_URL({url}, 'HOST', 'k1')")), "<NULL>");
        assert_eq!(eval("PARSE_URL('http://facebook.com', 'PATH')"), "");
        assert_eq!(eval("PARSE_URL('http://facebook.com', 'QUERY')"), "<NULL>");
        assert_eq!(eval("PARSE_URL('http://[::1]:80/x', 'HOST')"), "[::1]");
        assert_eq!(eval("PARSE_URL('not a url', 'HOST')"), "<NULL>");
        assert_eq!(eval("PARSE_URL('mailto:ann@example.com', 'PATH')"), "ann@example.com");
        assert_eq!(eval("PARSE_URL('mailto:ann@example.com', 'HOST')"), "<NULL>");
    }

    #[test]
    fn url_coding_and_addresses() {
        assert_eq!(eval("URL_ENCODE('~*._-')"), "%7E*._-");
        assert_eq!(eval("URL_DECODE('%zz')"), "<NULL>");
        assert_eq!(eval("URL_DECODE('%4')"), "<NULL>");
        assert_eq!(eval("URL_DECODE(URL_ENCODE('héllo wörld/?'))"), "héllo wörld/?");
        assert_eq!(eval("INET_ATON('255.255.255.255')"), "4294967295");
        assert_eq!(eval("INET_ATON('256.1.1.1')"), "<NULL>");
        assert_eq!(eval("INET_ATON('1.2.3')"), "<NULL>");
        assert_eq!(eval("INET_NTOA(-1)"), "<NULL>");
        assert_eq!(eval("INET_NTOA(4294967296)"), "<NULL>");
        assert_eq!(eval("INET_NTOA(0)"), "0.0.0.0");
    }
}
