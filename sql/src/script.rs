//! A SQL script: statements separated by `;`, parsed one by one. A statement that does not parse
//! is reported and skipped to the next `;`, so a script shows every error at once.

use crate::dialect::TethysDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::ddl::{parse_create_table, TableDef};
use crate::error::{Position, SqlError};

/// A statement of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// Flink's `CREATE [TEMPORARY] TABLE`.
    CreateTable(Box<TableDef>),
    /// Any other statement (`SELECT`, `INSERT INTO ... SELECT`, `CREATE VIEW`, `SET`, ...), as
    /// sqlparser parses it.
    Other(Box<sqlparser::ast::Statement>),
    /// `EXECUTE STATEMENT SET BEGIN INSERT ...; INSERT ...; END` (or `BEGIN STATEMENT SET; ...
    /// END`): inserts run as one job, sharing its sources.
    StatementSet(Vec<StatementAt>),
}

/// A statement and where it begins.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementAt {
    /// The statement.
    pub statement: Statement,
    /// Where its first word is.
    pub at: Option<Position>,
}

/// Parses a script into its statements, or every error found (one per statement at most).
pub fn parse_script(sql: &str) -> Result<Vec<StatementAt>, Vec<SqlError>> {
    let (statements, errors) = parse_script_partly(sql);
    match errors.is_empty() {
        true => Ok(statements),
        false => Err(errors),
    }
}

/// Parses what it can of a script: the statements that parse, and the errors of those that do
/// not (an editor's script is mostly right while one statement is being typed).
pub fn parse_script_partly(sql: &str) -> (Vec<StatementAt>, Vec<SqlError>) {
    let dialect = TethysDialect;
    let tokens = match sqlparser::tokenizer::Tokenizer::new(&dialect, sql).tokenize_with_location() {
        Ok(tokens) => table_arguments(tokens),
        Err(error) => return (Vec::new(), vec![SqlError::from_parser(error.into())]),
    };
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    let (mut statements, mut errors) = (Vec::new(), Vec::new());
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let first = parser.peek_token();
        if first.token == Token::EOF {
            break;
        }
        let at = Position::of(first.span.start);
        match parse_statement(&mut parser) {
            Ok(statement) => {
                let next = parser.peek_token();
                if next.token == Token::SemiColon || next.token == Token::EOF {
                    statements.push(StatementAt { statement, at });
                    continue;
                }
                errors.push(SqlError::at(
                    Position::of(next.span.start),
                    format!("expected ';' or the end of the script after the statement, found {}", next.token),
                ));
            }
            Err(mut error) => {
                if error.at.is_none() && error.message.ends_with("found: EOF") {
                    error.at = end_of(sql);
                }
                errors.push(error);
                // The parser may have taken the `;` ending the statement to find it wrong.
                parser.prev_token();
                if parser.next_token().token == Token::SemiColon {
                    continue;
                }
            }
        }
        // Skip to the next statement.
        loop {
            let token = parser.next_token().token;
            if token == Token::SemiColon || token == Token::EOF {
                break;
            }
        }
    }
    (statements, errors)
}

fn parse_statement(parser: &mut Parser) -> Result<Statement, SqlError> {
    let [first, second, third] = parser.peek_tokens();
    let create = matches!(&first, Token::Word(word) if word.keyword == Keyword::CREATE);
    let keyword = |token: &Token, expected: Keyword| matches!(token, Token::Word(word) if word.keyword == expected);
    let word = |token: &Token, expected: &str| matches!(token, Token::Word(word) if word.value.eq_ignore_ascii_case(expected) && word.quote_style.is_none());
    // `EXECUTE STATEMENT SET BEGIN ... END` and `BEGIN STATEMENT SET; ... END`.
    let execute_set = word(&first, "EXECUTE") && word(&second, "STATEMENT") && word(&third, "SET");
    let begin_set = word(&first, "BEGIN") && word(&second, "STATEMENT") && word(&third, "SET");
    if execute_set || begin_set {
        for _ in 0..3 {
            parser.next_token();
        }
        if execute_set {
            let at = here(parser);
            if !parser.parse_keyword(Keyword::BEGIN) {
                return Err(SqlError::at(at, "EXECUTE STATEMENT SET is followed by BEGIN"));
            }
        } else {
            parser.expect_token(&Token::SemiColon).map_err(SqlError::from_parser)?;
        }
        let mut inserts = Vec::new();
        loop {
            while parser.consume_token(&Token::SemiColon) {}
            let at = here(parser);
            if parser.parse_keyword(Keyword::END) {
                break;
            }
            if parser.peek_token().token == Token::EOF {
                return Err(SqlError::at(at, "the statement set has no END"));
            }
            let statement = parser.parse_statement().map_err(SqlError::from_parser)?;
            if !matches!(statement, sqlparser::ast::Statement::Insert(_)) {
                return Err(SqlError::at(at, "a statement set holds INSERT INTO statements only"));
            }
            inserts.push(StatementAt { statement: Statement::Other(Box::new(statement)), at });
        }
        if inserts.is_empty() {
            return Err(SqlError::at(here(parser), "the statement set holds no INSERT"));
        }
        return Ok(Statement::StatementSet(inserts));
    }
    if create && keyword(&second, Keyword::TABLE) {
        parser.next_token();
        parser.next_token();
        return parse_create_table(parser, false).map(|table| Statement::CreateTable(Box::new(table)));
    }
    if create && keyword(&second, Keyword::TEMPORARY) && keyword(&third, Keyword::TABLE) {
        for _ in 0..3 {
            parser.next_token();
        }
        return parse_create_table(parser, true).map(|table| Statement::CreateTable(Box::new(table)));
    }
    parser.parse_statement().map(|statement| Statement::Other(Box::new(statement))).map_err(SqlError::from_parser)
}

fn here(parser: &Parser) -> Option<Position> {
    Position::of(parser.peek_token().span.start)
}

/// The position just after the script's last character (where "found: EOF" is).
fn end_of(sql: &str) -> Option<Position> {
    let trimmed = sql.trim_end();
    let line = trimmed.lines().count().max(1) as u64;
    let column = trimmed.lines().last().map(|last| last.chars().count() as u64 + 1).unwrap_or(1);
    Some(Position { line, column })
}

/// Flink's table arguments of window functions, which sqlparser does not parse, in a form it
/// does: `TUMBLE(TABLE t, ...)` becomes `TUMBLE(t, ...)`, and `SESSION(TABLE t PARTITION BY k,
/// ...)` becomes `SESSION(t, PARTITION_BY(k), ...)` (the planner reads both). A `TABLE` is an
/// argument when it follows `(`, `,` or `=>`.
fn table_arguments(tokens: Vec<TokenWithSpan>) -> Vec<TokenWithSpan> {
    let significant = |token: &Token| !matches!(token, Token::Whitespace(_));
    let is_word =
        |token: &Token, word: &str| matches!(token, Token::Word(w) if w.value.eq_ignore_ascii_case(word) && w.quote_style.is_none());
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        let previous = out.iter().rev().find(|t| significant(&t.token)).map(|t| &t.token);
        let after_separator = matches!(previous, Some(Token::LParen | Token::Comma | Token::RArrow));
        let next = tokens[i + 1..].iter().position(|t| significant(&t.token)).map(|offset| i + 1 + offset);
        let names_table = next.is_some_and(|n| matches!(tokens[n].token, Token::Word(_)));
        if !(is_word(&token.token, "TABLE") && after_separator && names_table) {
            out.push(token.clone());
            i += 1;
            continue;
        }
        // Drop `TABLE`; copy the table's name (dotted parts included).
        i = next.expect("checked");
        while i < tokens.len() && (matches!(tokens[i].token, Token::Word(_) | Token::Period)) {
            out.push(tokens[i].clone());
            i += 1;
        }
        let after = tokens[i..].iter().position(|t| significant(&t.token)).map(|offset| i + offset);
        let by = after.and_then(|p| tokens[p + 1..].iter().position(|t| significant(&t.token)).map(|offset| p + 1 + offset));
        if let (Some(p), Some(b)) = (after, by) {
            if is_word(&tokens[p].token, "PARTITION") && is_word(&tokens[b].token, "BY") {
                let span = tokens[p].span;
                let make = |token: Token| TokenWithSpan { token, span };
                out.push(make(Token::Comma));
                out.push(make(Token::make_word("PARTITION_BY", None)));
                out.push(make(Token::LParen));
                i = b + 1;
                let mut depth = 0usize;
                while i < tokens.len() {
                    match tokens[i].token {
                        Token::LParen => depth += 1,
                        Token::RParen if depth == 0 => break,
                        Token::RParen => depth -= 1,
                        Token::Comma if depth == 0 => break,
                        _ => {}
                    }
                    out.push(tokens[i].clone());
                    i += 1;
                }
                out.push(make(Token::RParen));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddl::ColumnKind;

    const BIDS: &str = "CREATE TABLE bids (
  auction BIGINT NOT NULL,
  price DECIMAL(10, 2),
  bid_time TIMESTAMP(3),
  price_cents AS CAST(price * 100 AS BIGINT),
  WATERMARK FOR bid_time AS bid_time - INTERVAL '5' SECOND,
  PRIMARY KEY (auction) NOT ENFORCED
) WITH ('connector' = 'datagen', 'rows-per-second' = '1000');

INSERT INTO out SELECT auction, price FROM bids WHERE price > 10;";

    fn table(sql: &str) -> TableDef {
        match parse_script(sql).unwrap_or_else(|errors| panic!("{errors:?}")).remove(0).statement {
            Statement::CreateTable(table) => *table,
            other => panic!("{other:?}"),
        }
    }

    fn errors(sql: &str) -> Vec<String> {
        parse_script(sql).expect_err("refused").iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_flink_table_with_computed_columns_a_watermark_a_key_and_options() {
        let statements = parse_script(BIDS).unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[1].at, Some(Position { line: 10, column: 1 }));
        assert!(matches!(statements[1].statement, Statement::Other(_)));
        let bids = table(BIDS);
        assert_eq!(bids.name, "bids");
        let names: Vec<&str> = bids.columns.iter().map(|column| column.name.as_str()).collect();
        assert_eq!(names, ["auction", "price", "bid_time", "price_cents"]);
        assert!(matches!(bids.columns[0].kind, ColumnKind::Physical { nullable: false, .. }));
        assert_eq!(
            bids.columns[1].kind,
            ColumnKind::Physical {
                data_type: sqlparser::ast::DataType::Decimal(sqlparser::ast::ExactNumberInfo::PrecisionAndScale(10, 2)),
                nullable: true
            }
        );
        match &bids.columns[3].kind {
            ColumnKind::Computed(expr) => assert_eq!(expr.to_string(), "CAST(price * 100 AS BIGINT)"),
            other => panic!("{other:?}"),
        }
        let watermark = bids.watermark.as_ref().unwrap();
        assert_eq!((watermark.column.as_str(), watermark.strategy.to_string().as_str()), ("bid_time", "bid_time - INTERVAL '5' SECOND"));
        assert_eq!(bids.primary_key, ["auction"]);
        assert_eq!(bids.option("connector"), Some("datagen"));
        assert_eq!(bids.option("rows-per-second"), Some("1000"));
        assert_eq!(bids.columns[2].at, Some(Position { line: 4, column: 3 }));
    }

    #[test]
    fn temporary_tables_and_if_not_exists() {
        let temporary = table("CREATE TEMPORARY TABLE IF NOT EXISTS t (ts TIMESTAMP_LTZ(3)) WITH ('connector' = 'print')");
        assert!(temporary.temporary && temporary.if_not_exists);
        assert!(!table("CREATE TABLE t (a INT)").temporary);
    }

    #[test]
    fn flink_s_rules_for_a_table_are_checked_where_they_are_broken() {
        assert_eq!(
            errors("CREATE TABLE t (a INT, b INT,\n  WATERMARK FOR ts AS ts)"),
            ["line 2, column 3: the watermark's column ts is not a column of the table"]
        );
        assert_eq!(errors("CREATE TABLE t (a INT, A BIGINT)"), ["line 1, column 24: column A is defined twice"]);
        assert_eq!(
            errors("CREATE TABLE t (a INT, PRIMARY KEY (a))"),
            ["line 1, column 39: a primary key is not enforced on streams: write PRIMARY KEY (...) NOT ENFORCED"]
        );
        assert_eq!(
            errors("CREATE TABLE t (a INT, PRIMARY KEY (b) NOT ENFORCED)"),
            ["line 1, column 24: the key's column b is not a column of the table"]
        );
        assert_eq!(
            errors("CREATE TABLE t (a INT) WITH ('connector' = 'print', 'connector' = 'blackhole')"),
            ["line 1, column 53: option 'connector' is given twice"]
        );
    }

    #[test]
    fn every_statement_s_error_is_reported_and_the_good_ones_parse() {
        let script = "SELECT a FROM t;\nSELECT FROM WHERE;\nCREATE TABLE t (a INT,);\nSELECT b FROM u";
        let found = errors(script);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("line 2, column "), "{found:?}");
        assert!(found[1].starts_with("line 3, column 23"), "{found:?}");
        // An error found at the `;` itself: the next statement is still read.
        assert_eq!(errors("SELECT a FROM t WHERE;\nSELECT b FROM WHERE;").len(), 2);
    }

    #[test]
    fn two_statements_without_a_semicolon_are_refused_on_the_second() {
        // `CREATE` reads as the first statement's table alias (SQL allows one without AS), so the
        // error is at the word after it.
        assert_eq!(
            errors("SELECT a FROM t\nCREATE TABLE u (a INT)"),
            ["line 2, column 8: expected ';' or the end of the script after the statement, found TABLE"]
        );
        assert_eq!(
            errors("SELECT a FROM t WHERE a > 1\nSELECT 2"),
            ["line 2, column 1: expected ';' or the end of the script after the statement, found SELECT"]
        );
    }
}
