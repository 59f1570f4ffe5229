//! One-click formatting: a script laid out the same way whoever wrote it, comments kept.
//!
//! Formatting works on the script's tokens (so comments, which the parser drops, stay where they
//! were): SQL's words in capitals, one space between tokens, each main clause (`FROM`, `WHERE`,
//! `GROUP BY`, ...) of a statement on a line of its own, a `CREATE TABLE`'s columns one per line,
//! statements apart. It is idempotent, and it checks itself: the formatted script must parse to
//! the same statements, else it is refused.

use crate::dialect::TethysDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use crate::error::{Position, SqlError};
use crate::script::parse_script;

/// Words written in capitals (SQL's own; a column that happens to be named so is too, which SQL,
/// blind to case, reads the same).
const KEYWORDS: &[&str] = &[
    "ALL",
    "AND",
    "AS",
    "ASC",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASE",
    "CAST",
    "CREATE",
    "CROSS",
    "CUMULATE",
    "DAY",
    "DESC",
    "DESCRIBE",
    "DESCRIPTOR",
    "DISTINCT",
    "ELSE",
    "END",
    "ENFORCED",
    "EXECUTE",
    "EXISTS",
    "EXPLAIN",
    "FALSE",
    "FOR",
    "FROM",
    "FULL",
    "GROUP",
    "HAVING",
    "HOP",
    "HOUR",
    "IF",
    "IN",
    "INNER",
    "INSERT",
    "INTERVAL",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LEFT",
    "LIKE",
    "LIMIT",
    "MINUTE",
    "MONTH",
    "NOT",
    "NULL",
    "OF",
    "ON",
    "OR",
    "ORDER",
    "OVER",
    "PARTITION",
    "PRIMARY",
    "RIGHT",
    "ROWS",
    "SECOND",
    "SELECT",
    "SESSION",
    "SET",
    "SHOW",
    "STATEMENT",
    "SYSTEM_TIME",
    "TABLE",
    "TABLES",
    "TEMPORARY",
    "THEN",
    "TO",
    "TRUE",
    "TUMBLE",
    "UNION",
    "VALUES",
    "VIEW",
    "WATERMARK",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
    "YEAR",
];

/// Words that begin a clause of their own line (at a statement's top level).
const CLAUSES: &[&str] =
    &["SELECT", "FROM", "WHERE", "GROUP", "HAVING", "WINDOW", "ORDER", "LIMIT", "UNION", "JOIN", "LEFT", "RIGHT", "INNER", "FULL", "CROSS"];

/// Words after which `(` is not a call's: a space stays between them.
const SPACED_BEFORE_PAREN: &[&str] =
    &["AS", "IN", "EXISTS", "VALUES", "KEY", "ON", "AND", "OR", "NOT", "WITH", "FROM", "JOIN", "TABLE", "OVER"];

fn upper(token: &Token) -> Option<String> {
    match token {
        Token::Word(word) if word.quote_style.is_none() => Some(word.value.to_uppercase()),
        _ => None,
    }
}

/// The script formatted; an error when it does not parse (formatting needs a valid script) or
/// when the formatted text would not parse to the same statements.
pub fn format_script(sql: &str) -> Result<String, Vec<SqlError>> {
    let before = parse_script(sql)?;
    let dialect = TethysDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|error| vec![SqlError::at(Position::of(error.location), error.message)])?;
    let tokens: Vec<Token> = tokens
        .into_iter()
        .map(|token| token.token)
        .filter(|token| !matches!(token, Token::Whitespace(Whitespace::Space | Whitespace::Newline | Whitespace::Tab) | Token::EOF))
        .collect();
    let formatted = lay_out(&tokens);
    let after = parse_script(&formatted).map_err(|errors| {
        errors.into_iter().map(|error| SqlError::at(None, format!("formatting would break the script: {error}"))).collect::<Vec<_>>()
    })?;
    let same = before.len() == after.len()
        && before.iter().zip(&after).all(|(one, other)| format!("{:?}", strip(&one.statement)) == format!("{:?}", strip(&other.statement)));
    if !same {
        return Err(vec![SqlError::at(None, "formatting would change what the script means; it is left as it is")]);
    }
    Ok(formatted)
}

/// A statement as text without places, to compare two parses of it.
fn strip(statement: &crate::script::Statement) -> String {
    match statement {
        crate::script::Statement::Other(other) => other.to_string(),
        crate::script::Statement::StatementSet(inserts) => {
            inserts.iter().map(|insert| strip(&insert.statement)).collect::<Vec<_>>().join("; ")
        }
        crate::script::Statement::CreateTable(table) => {
            let columns: Vec<String> = table.columns.iter().map(|column| format!("{} {:?}", column.name, column.kind)).collect();
            let watermark = table.watermark.as_ref().map(|watermark| format!("{} {}", watermark.column, watermark.strategy));
            format!("{} {} {columns:?} {watermark:?} {:?} {:?}", table.name, table.temporary, table.primary_key, table.options)
        }
    }
}

fn lay_out(tokens: &[Token]) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    let mut statement_start = 0usize;
    let mut creates_table = false;
    // The statement is `EXECUTE STATEMENT SET BEGIN ... END`.
    let mut executes_set = false;
    let mut columns_depth: Option<usize> = None;
    // The CREATE TABLE's column list was laid out (its WITH options stay on one line).
    let mut columns_done = false;
    let mut previous: Option<&Token> = None;
    for (index, token) in tokens.iter().enumerate() {
        let word = upper(token);
        let at_line_start = out.is_empty() || out.ends_with('\n');
        if index == statement_start {
            // `CREATE [TEMPORARY] TABLE`: its column list is laid out one per line.
            let head: Vec<String> = tokens[index..].iter().filter_map(upper).take(3).collect();
            creates_table = head.first().is_some_and(|first| first == "CREATE") && head.iter().any(|word| word == "TABLE");
            executes_set = head == ["EXECUTE", "STATEMENT", "SET"];
        }
        // A new line before a clause at the statement's top level (not its first word, not the
        // second word of a two-word join).
        // `EXECUTE STATEMENT SET` then `BEGIN` on a line of its own, and each statement of the set
        // laid out as one of its own.
        let begins_set = executes_set && depth == 0 && word.as_deref() == Some("BEGIN");
        let clause = depth == 0
            && index > statement_start
            && word.as_deref().is_some_and(|word| CLAUSES.contains(&word))
            && !(word.as_deref() == Some("JOIN") && previous.and_then(upper).is_some_and(|before| CLAUSES.contains(&before.as_str())));
        let clause = clause || begins_set;
        if clause && !at_line_start {
            out.push('\n');
        }
        let at_line_start = out.is_empty() || out.ends_with('\n');
        let opens_columns = creates_table && depth == 0 && !columns_done && matches!(token, Token::LParen);
        let tight_before = matches!(token, Token::Comma | Token::SemiColon | Token::Period | Token::RParen)
            || (matches!(token, Token::LParen)
                && !opens_columns
                && previous.is_some_and(|before| match before {
                    Token::Word(_) => !upper(before).is_some_and(|word| SPACED_BEFORE_PAREN.contains(&word.as_str())),
                    _ => false,
                }));
        let tight_after_previous = matches!(previous, Some(Token::LParen | Token::Period));
        if !at_line_start && !tight_before && !tight_after_previous {
            out.push(' ');
        }
        match token {
            Token::Whitespace(Whitespace::SingleLineComment { comment, prefix }) => {
                out.push_str(prefix);
                out.push_str(comment.trim_end());
                out.push('\n');
            }
            Token::LParen => {
                depth += 1;
                out.push('(');
                if opens_columns {
                    columns_depth = Some(1);
                    columns_done = true;
                    out.push_str("\n  ");
                }
            }
            Token::RParen => {
                if columns_depth == Some(depth) {
                    while out.ends_with(' ') {
                        out.pop();
                    }
                    out.push_str("\n)");
                    columns_depth = None;
                } else {
                    out.push(')');
                }
                depth = depth.saturating_sub(1);
            }
            Token::Comma => {
                out.push(',');
                if columns_depth == Some(depth) {
                    out.push_str("\n  ");
                }
            }
            Token::SemiColon => {
                out.push_str(";\n\n");
                depth = 0;
                columns_depth = None;
                columns_done = false;
                statement_start = index + 1;
            }
            _ => match word.filter(|word| KEYWORDS.contains(&word.as_str())) {
                Some(keyword) => out.push_str(&keyword),
                None => out.push_str(&token.to_string()),
            },
        }
        if begins_set {
            out.push('\n');
            executes_set = false;
            statement_start = index + 1;
        }
        // After a new line inside a CREATE TABLE's columns, the next token is indented already.
        if out.ends_with("\n  ") {
            previous = Some(&Token::LParen);
            continue;
        }
        previous = Some(token);
    }
    let mut formatted = out.trim_end().to_string();
    formatted.push('\n');
    formatted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_is_laid_out_with_its_comments_kept() {
        let script = "-- the bids\ncreate table bids (auction bigint,price decimal(10,2),   bid_time timestamp(3),\n\
                      watermark for bid_time as bid_time - interval '5' second) with ('connector'='datagen');\n\
                      insert into out select auction, count(*) as n /* per auction */ from bids where price>10 group by auction";
        let formatted = format_script(script).unwrap();
        assert_eq!(
            formatted,
            "-- the bids\nCREATE TABLE bids (\n  auction bigint,\n  price decimal(10, 2),\n  bid_time timestamp(3),\n  \
             WATERMARK FOR bid_time AS bid_time - INTERVAL '5' SECOND\n) WITH ('connector' = 'datagen');\n\n\
             INSERT INTO out\nSELECT auction, count(*) AS n /* per auction */\nFROM bids\nWHERE price > 10\nGROUP BY auction\n"
        );
        assert_eq!(format_script(&formatted).unwrap(), formatted, "formatting is idempotent");
    }

    #[test]
    fn joins_subqueries_views_and_set_format_to_the_same_meaning_and_stay_so() {
        let script = "set 'parallelism.default' = '2';\n\
                      create view expensive as select * from bids where price in (select max(price) from bids) ;\n\
                      select b.auction, case when b.price > 10 then 'high' else 'low' end as band, p.name \
                      from bids b left join people p on b.bidder = p.id where p.name is not null and b.price between 1 and 5 \
                      order by b.auction desc limit 10; -- the end";
        let formatted = format_script(script).unwrap();
        assert!(formatted.contains("\nFROM bids b\nLEFT JOIN people p ON b.bidder = p.id\nWHERE p.name IS NOT NULL"), "{formatted}");
        assert!(formatted.contains("IN (SELECT max(price) FROM bids)"), "a subquery stays on its line: {formatted}");
        assert!(formatted.ends_with("LIMIT 10;\n\n-- the end\n"), "{formatted}");
        assert_eq!(format_script(&formatted).unwrap(), formatted);
    }

    #[test]
    fn a_lookup_join_keeps_its_table_version() {
        let script = "select o.id, c.tier from orders o left join customers for system_time as of o.proc as c on o.customer = c.name";
        let formatted = format_script(script).unwrap();
        assert!(formatted.contains("LEFT JOIN customers FOR SYSTEM_TIME AS OF o.proc AS c ON o.customer = c.name"), "{formatted}");
        assert_eq!(format_script(&formatted).unwrap(), formatted);
    }

    #[test]
    fn a_statement_set_puts_begin_and_each_insert_on_lines_of_their_own() {
        let script = "execute statement set begin insert into a select x from t; insert into b select y from t where y > 1; end;";
        let formatted = format_script(script).unwrap();
        assert_eq!(
            formatted,
            "EXECUTE STATEMENT SET\nBEGIN\nINSERT INTO a\nSELECT x\nFROM t;\n\nINSERT INTO b\nSELECT y\nFROM t\nWHERE y > 1;\n\nEND;\n"
        );
        assert_eq!(format_script(&formatted).unwrap(), formatted);
        let other_form = format_script("begin statement set; insert into a select x from t; end;").unwrap();
        assert!(other_form.starts_with("BEGIN STATEMENT SET;\n\nINSERT INTO a\n"), "{other_form}");
        assert_eq!(format_script(&other_form).unwrap(), other_form);
    }

    #[test]
    fn a_named_window_is_kept() {
        let script = "select sum(amount) over w as s from orders window w as (partition by customer order by ts)";
        let formatted = format_script(script).unwrap();
        assert!(formatted.contains("WINDOW w AS (PARTITION BY customer ORDER BY ts)"), "{formatted}");
        assert_eq!(format_script(&formatted).unwrap(), formatted);
    }

    #[test]
    fn a_script_that_does_not_parse_is_not_formatted() {
        let errors = format_script("SELECT FROM WHERE").unwrap_err();
        assert!(errors[0].at.is_some(), "{errors:?}");
    }
}
