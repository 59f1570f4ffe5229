//! Flink's `CREATE TABLE`: the columns a source or sink has, how its event time and watermarks
//! are defined, its key, and the connector options that say where its rows come from or go.
//!
//! ```sql
//! CREATE TABLE bids (
//!   auction BIGINT,
//!   price DECIMAL(10, 2),
//!   bid_time TIMESTAMP(3),
//!   price_cents AS CAST(price * 100 AS BIGINT),
//!   WATERMARK FOR bid_time AS bid_time - INTERVAL '5' SECOND,
//!   PRIMARY KEY (auction) NOT ENFORCED
//! ) WITH ('connector' = 'datagen', 'rows-per-second' = '1000')
//! ```
//!
//! Parsed with sqlparser's parser (its data types and expressions) after the statement's first
//! words; checked as Flink checks it: column names unique, the watermark's column and the key's
//! columns among the table's, the key not enforced, one watermark, options named once.

use std::collections::BTreeSet;

use sqlparser::ast::{DataType, Expr};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::error::{Position, SqlError};

/// A table as `CREATE TABLE` defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    /// Its name, as written (`catalog.db.name` parts joined by dots).
    pub name: String,
    /// `CREATE TEMPORARY TABLE`: it lives for the session only.
    pub temporary: bool,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// Its columns, in order.
    pub columns: Vec<ColumnDef>,
    /// Its event time and watermark strategy, if it has one.
    pub watermark: Option<WatermarkDef>,
    /// Its key's columns (`PRIMARY KEY (...) NOT ENFORCED`), empty when none.
    pub primary_key: Vec<String>,
    /// Its `WITH` options in order: the connector and its settings.
    pub options: Vec<(String, String)>,
}

impl TableDef {
    /// The value of option `key`, if given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().find(|(name, _)| name == key).map(|(_, value)| value.as_str())
    }

    /// Its column `name`, if it has one (names compare without case, as Flink's do not).
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|column| column.name.eq_ignore_ascii_case(name))
    }
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    /// Its name.
    pub name: String,
    /// Stored or computed.
    pub kind: ColumnKind,
    /// Where it is defined.
    pub at: Option<Position>,
}

/// What a column holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnKind {
    /// A value of each row, of this type; `NOT NULL` makes `nullable` false.
    Physical {
        /// Its type.
        data_type: DataType,
        /// Whether it may be NULL.
        nullable: bool,
    },
    /// `name AS expr`: computed from the row's other columns.
    Computed(Box<Expr>),
}

/// `WATERMARK FOR column AS expr`: the column is the table's event time; the expression, of
/// each row, is the watermark it allows (e.g. `ts - INTERVAL '5' SECOND`).
#[derive(Debug, Clone, PartialEq)]
pub struct WatermarkDef {
    /// The event-time column.
    pub column: String,
    /// The watermark expression.
    pub strategy: Expr,
    /// Where it is defined.
    pub at: Option<Position>,
}

fn here(parser: &Parser) -> Option<Position> {
    Position::of(parser.peek_token().span.start)
}

fn is_word(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(found) if found.value.eq_ignore_ascii_case(word) && found.quote_style.is_none())
}

/// A closing `>` of a nested type, where the tokenizer may have read `>>` as one token: the
/// second half is kept for the enclosing type.
fn expect_closing_angle(parser: &mut Parser, pending: &mut u32) -> Result<(), SqlError> {
    if *pending > 0 {
        *pending -= 1;
        return Ok(());
    }
    match parser.next_token().token {
        Token::Gt => Ok(()),
        Token::ShiftRight => {
            *pending += 1;
            Ok(())
        }
        other => Err(SqlError::at(here(parser), format!("expected > to close the type, found {other}"))),
    }
}

fn parse_type_nested(parser: &mut Parser, pending: &mut u32) -> Result<DataType, SqlError> {
    use sqlparser::ast::{ArrayElemTypeDef, MapBracketKind, StructBracketKind, StructField};
    let token = parser.peek_token().token;
    let keyword = |word: &str| is_word(&token, word);
    let angle_next = || matches!(parser.peek_nth_token(1).token, Token::Lt);
    if (keyword("ROW") || keyword("STRUCT")) && (angle_next() || matches!(parser.peek_nth_token(1).token, Token::LParen)) {
        parser.next_token();
        let angle = parser.consume_token(&Token::Lt);
        if !angle {
            parser.expect_token(&Token::LParen).map_err(SqlError::from_parser)?;
        }
        let mut fields = Vec::new();
        loop {
            let name = parser.parse_identifier().map_err(SqlError::from_parser)?;
            let field_type = parse_type_nested(parser, pending)?;
            // A field's comment ('...') is allowed and dropped.
            if let Token::SingleQuotedString(_) = parser.peek_token().token {
                parser.next_token();
            }
            fields.push(StructField { field_name: Some(name), field_type, options: None });
            if *pending > 0 || !parser.consume_token(&Token::Comma) {
                break;
            }
        }
        if angle {
            expect_closing_angle(parser, pending)?;
        } else {
            parser.expect_token(&Token::RParen).map_err(SqlError::from_parser)?;
        }
        return Ok(DataType::Struct(fields, if angle { StructBracketKind::AngleBrackets } else { StructBracketKind::Parentheses }));
    }
    if (keyword("MAP")) && angle_next() {
        parser.next_token();
        parser.next_token();
        let key = parse_type_nested(parser, pending)?;
        parser.expect_token(&Token::Comma).map_err(SqlError::from_parser)?;
        let value = parse_type_nested(parser, pending)?;
        expect_closing_angle(parser, pending)?;
        return Ok(DataType::Map(Box::new(key), Box::new(value), MapBracketKind::AngleBrackets));
    }
    if (keyword("ARRAY") || keyword("MULTISET")) && angle_next() {
        parser.next_token();
        parser.next_token();
        let element = parse_type_nested(parser, pending)?;
        expect_closing_angle(parser, pending)?;
        return Ok(DataType::Array(ArrayElemTypeDef::AngleBracket(Box::new(element))));
    }
    // `TIMESTAMP[(p)] WITH LOCAL TIME ZONE`, which sqlparser does not take.
    if keyword("TIMESTAMP") {
        let with_at = if matches!(parser.peek_nth_token(1).token, Token::LParen) { 4 } else { 1 };
        let local = |n: usize| is_word(&parser.peek_nth_token(n).token, if n == with_at { "WITH" } else { "LOCAL" });
        if local(with_at) && local(with_at + 1) {
            for _ in 0..with_at {
                parser.next_token();
            }
            parser.expect_keywords(&[Keyword::WITH, Keyword::LOCAL, Keyword::TIME, Keyword::ZONE]).map_err(SqlError::from_parser)?;
            return Ok(DataType::Custom(sqlparser::ast::ObjectName::from(vec![sqlparser::ast::Ident::new("TIMESTAMP_LTZ")]), Vec::new()));
        }
    }
    parser.parse_data_type().map_err(SqlError::from_parser)
}

/// A column's type in Flink's notation: sqlparser's types, and `ROW<name type, ...>` (or
/// `ROW(...)`), `MAP<k, v>`, `ARRAY<t>` nested in any way, `TIMESTAMP(p) WITH LOCAL TIME ZONE`.
pub(crate) fn parse_column_type(parser: &mut Parser) -> Result<DataType, SqlError> {
    let mut pending = 0;
    let data_type = parse_type_nested(parser, &mut pending)?;
    if pending > 0 {
        return Err(SqlError::at(here(parser), "a > too many closes the type"));
    }
    Ok(data_type)
}

/// Parses a `CREATE TABLE` after its `CREATE [TEMPORARY] TABLE` words (`temporary`: the second
/// was there) up to the end of the statement, and checks it.
pub(crate) fn parse_create_table(parser: &mut Parser, temporary: bool) -> Result<TableDef, SqlError> {
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name_at = here(parser);
    let name = parser.parse_object_name(false).map_err(SqlError::from_parser)?.to_string();
    parser.expect_token(&Token::LParen).map_err(SqlError::from_parser)?;
    let mut table =
        TableDef { name, temporary, if_not_exists, columns: Vec::new(), watermark: None, primary_key: Vec::new(), options: Vec::new() };
    let mut key_at = None;
    loop {
        let at = here(parser);
        if is_word(&parser.peek_token().token, "WATERMARK") {
            parser.next_token();
            if table.watermark.is_some() {
                return Err(SqlError::at(at, "a table has one WATERMARK at most"));
            }
            parser.expect_keyword(Keyword::FOR).map_err(SqlError::from_parser)?;
            let column = parser.parse_identifier().map_err(SqlError::from_parser)?.value;
            parser.expect_keyword(Keyword::AS).map_err(SqlError::from_parser)?;
            let strategy = parser.parse_expr().map_err(SqlError::from_parser)?;
            table.watermark = Some(WatermarkDef { column, strategy, at });
        } else if parser.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]) {
            if !table.primary_key.is_empty() {
                return Err(SqlError::at(at, "a table has one PRIMARY KEY at most"));
            }
            parser.expect_token(&Token::LParen).map_err(SqlError::from_parser)?;
            let columns = parser.parse_comma_separated(|parser| parser.parse_identifier()).map_err(SqlError::from_parser)?;
            parser.expect_token(&Token::RParen).map_err(SqlError::from_parser)?;
            if !parser.parse_keywords(&[Keyword::NOT, Keyword::ENFORCED]) {
                return Err(SqlError::at(here(parser), "a primary key is not enforced on streams: write PRIMARY KEY (...) NOT ENFORCED"));
            }
            table.primary_key = columns.into_iter().map(|column| column.value).collect();
            key_at = at;
        } else {
            let name = parser.parse_identifier().map_err(SqlError::from_parser)?.value;
            let kind = if parser.parse_keyword(Keyword::AS) {
                ColumnKind::Computed(Box::new(parser.parse_expr().map_err(SqlError::from_parser)?))
            } else {
                let data_type = parse_column_type(parser)?;
                let nullable = if parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
                    false
                } else {
                    // `NULL` says what the default is.
                    let _ = parser.parse_keyword(Keyword::NULL);
                    true
                };
                ColumnKind::Physical { data_type, nullable }
            };
            if table.column(&name).is_some() {
                return Err(SqlError::at(at, format!("column {name} is defined twice")));
            }
            table.columns.push(ColumnDef { name, kind, at });
        }
        if parser.consume_token(&Token::RParen) {
            break;
        }
        parser.expect_token(&Token::Comma).map_err(SqlError::from_parser)?;
    }
    if table.columns.is_empty() {
        return Err(SqlError::at(name_at, format!("table {} has no columns", table.name)));
    }
    if let Some(watermark) = &table.watermark {
        if table.column(&watermark.column).is_none() {
            return Err(SqlError::at(watermark.at, format!("the watermark's column {} is not a column of the table", watermark.column)));
        }
    }
    for column in &table.primary_key {
        if table.column(column).is_none() {
            return Err(SqlError::at(key_at, format!("the key's column {column} is not a column of the table")));
        }
    }
    if parser.parse_keyword(Keyword::WITH) {
        parser.expect_token(&Token::LParen).map_err(SqlError::from_parser)?;
        let mut seen = BTreeSet::new();
        loop {
            let at = here(parser);
            let key = parser.parse_literal_string().map_err(SqlError::from_parser)?;
            parser.expect_token(&Token::Eq).map_err(SqlError::from_parser)?;
            let value = parser.parse_literal_string().map_err(SqlError::from_parser)?;
            if !seen.insert(key.clone()) {
                return Err(SqlError::at(at, format!("option '{key}' is given twice")));
            }
            table.options.push((key, value));
            if parser.consume_token(&Token::RParen) {
                break;
            }
            parser.expect_token(&Token::Comma).map_err(SqlError::from_parser)?;
        }
    }
    Ok(table)
}
