//! Completion at a cursor: what may be typed there, ranked by how well it matches what is typed
//! already (the word the cursor ends).
//!
//! Tables come after `FROM`, `JOIN`, `INTO`, `TABLE` and `DESCRIBE`; after `name.` the columns of
//! the table `name` is (or aliases); elsewhere in a statement that reads tables, their columns
//! with their types, then keywords. Tables and columns are those the script defines (its
//! `CREATE TABLE`s that parse, so a statement being typed does not hide them). A candidate
//! matches when it starts with the typed word, or, ranked after those, when it is near it (a
//! misspelling).

use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::ddl::{ColumnKind, TableDef};
use crate::error::Position;
use crate::script::{parse_script_partly, Statement};

/// What a completion inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CompletionKind {
    /// A column of a table in scope.
    Column,
    /// A table or view.
    Table,
    /// A keyword.
    Keyword,
}

/// One thing that may be typed at the cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// What is inserted.
    pub label: String,
    /// What it is.
    pub kind: CompletionKind,
    /// More about it: a column's type and table, a table's connector.
    pub detail: String,
}

const STATEMENT_KEYWORDS: &[&str] =
    &["SELECT", "INSERT INTO", "CREATE TABLE", "CREATE TEMPORARY TABLE", "CREATE VIEW", "SET", "SHOW TABLES", "DESCRIBE", "EXPLAIN"];
const CLAUSE_KEYWORDS: &[&str] = &[
    "FROM",
    "WHERE",
    "GROUP BY",
    "HAVING",
    "ORDER BY",
    "LIMIT",
    "JOIN",
    "LEFT JOIN",
    "ON",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IS NULL",
    "IS NOT NULL",
    "IN",
    "BETWEEN",
    "LIKE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "INTERVAL",
    "DISTINCT",
    "UNION ALL",
];

/// The completions at `cursor` in `sql`, best first.
pub fn complete(sql: &str, cursor: Position) -> Vec<Completion> {
    let dialect = GenericDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize_with_location() else { return Vec::new() };
    let tokens: Vec<TokenWithSpan> = tokens.into_iter().filter(|token| !matches!(token.token, Token::Whitespace(_) | Token::EOF)).collect();
    let before = |token: &TokenWithSpan| Position::of(token.span.end).is_some_and(|end| end <= cursor);
    let typed = tokens.iter().filter(|token| before(token)).count();
    // The word the cursor ends, if it ends one: what is typed of the completion.
    let (prefix, context) = match tokens[..typed].last() {
        Some(last) if Position::of(last.span.end) == Some(cursor) && matches!(last.token, Token::Word(_)) => {
            (word(&last.token).unwrap_or_default(), &tokens[..typed - 1])
        }
        _ => (String::new(), &tokens[..typed]),
    };
    // The statement the cursor is in: from after the last `;` before it to the next one.
    let start = context.iter().rposition(|token| token.token == Token::SemiColon).map_or(0, |at| at + 1);
    let end = tokens[typed..].iter().position(|token| token.token == Token::SemiColon).map_or(tokens.len(), |at| typed + at);
    let statement = &tokens[start..end];
    let context = &context[start..];

    let (parsed, _) = parse_script_partly(sql);
    let tables: Vec<&TableDef> = parsed
        .iter()
        .filter_map(|statement| match &statement.statement {
            Statement::CreateTable(table) => Some(table.as_ref()),
            Statement::Other(_) => None,
        })
        .collect();
    let table_named = |name: &str| tables.iter().copied().find(|table| table.name.eq_ignore_ascii_case(name));

    let mut candidates: Vec<Completion> = Vec::new();
    let previous = context.last().map(|token| &token.token);
    let previous_word = previous.and_then(word).map(|word| word.to_uppercase());
    if let (Some(Token::Period), Some(qualifier)) = (previous, context.len().checked_sub(2).and_then(|at| word(&context[at].token))) {
        // `name.`: the columns of the table `name` is, or aliases.
        let table = table_named(&qualifier).or_else(|| aliased(statement, &qualifier).and_then(|name| table_named(&name)));
        candidates.extend(table.into_iter().flat_map(columns_of));
    } else if matches!(previous_word.as_deref(), Some("FROM" | "JOIN" | "INTO" | "TABLE" | "DESCRIBE")) {
        candidates.extend(tables.iter().map(|table| Completion {
            label: table.name.clone(),
            kind: CompletionKind::Table,
            detail: table.option("connector").map_or_else(|| "table".to_string(), |connector| format!("table ({connector})")),
        }));
    } else if context.is_empty() {
        candidates.extend(keywords(STATEMENT_KEYWORDS));
    } else {
        // Columns of the tables the statement reads (named after FROM or JOIN anywhere in it).
        for pair in statement.windows(2) {
            let after = word(&pair[0].token).map(|word| word.to_uppercase());
            if matches!(after.as_deref(), Some("FROM" | "JOIN")) {
                if let Some(table) = word(&pair[1].token).and_then(|name| table_named(&name)) {
                    candidates.extend(columns_of(table));
                }
            }
        }
        candidates.extend(keywords(CLAUSE_KEYWORDS));
    }
    rank(candidates, &prefix)
}

fn word(token: &Token) -> Option<String> {
    match token {
        Token::Word(word) => Some(word.value.clone()),
        _ => None,
    }
}

/// The table `alias` names in `statement` (`FROM bids b`, `JOIN bids AS b`).
fn aliased(statement: &[TokenWithSpan], alias: &str) -> Option<String> {
    let words: Vec<Option<String>> = statement.iter().map(|token| word(&token.token)).collect();
    let is = |at: usize, expected: &str| words.get(at).and_then(Option::as_ref).is_some_and(|word| word.eq_ignore_ascii_case(expected));
    (0..words.len()).find_map(|at| {
        if !(is(at, "FROM") || is(at, "JOIN")) {
            return None;
        }
        let table = words.get(at + 1)?.clone()?;
        let named = if is(at + 2, "AS") { at + 3 } else { at + 2 };
        is(named, alias).then_some(table)
    })
}

fn columns_of(table: &TableDef) -> impl Iterator<Item = Completion> + '_ {
    table.columns.iter().map(move |column| Completion {
        label: column.name.clone(),
        kind: CompletionKind::Column,
        detail: match &column.kind {
            ColumnKind::Physical { data_type, .. } => format!("{data_type} ({})", table.name),
            ColumnKind::Computed(expr) => format!("AS {expr} ({})", table.name),
        },
    })
}

fn keywords(words: &'static [&'static str]) -> impl Iterator<Item = Completion> {
    words.iter().map(|word| Completion { label: word.to_string(), kind: CompletionKind::Keyword, detail: "keyword".to_string() })
}

/// The candidates that match `prefix`, best first: those starting with it (columns, then tables,
/// then keywords), then those near it, nearest first.
fn rank(candidates: Vec<Completion>, prefix: &str) -> Vec<Completion> {
    let typed = prefix.to_lowercase();
    let mut scored: Vec<(u8, u32, Completion)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let label = candidate.label.to_lowercase();
            if label.starts_with(&typed) {
                return Some((0, 0, candidate));
            }
            let similarity = strsim::jaro_winkler(&typed, &label);
            (typed.chars().count() >= 2 && similarity >= 0.8).then_some((1, ((1.0 - similarity) * 1000.0) as u32, candidate))
        })
        .collect();
    scored.sort_by(|a, b| (a.0, a.1, a.2.kind, &a.2.label).cmp(&(b.0, b.1, b.2.kind, &b.2.label)));
    scored.dedup_by(|a, b| a.2.label == b.2.label && a.2.kind == b.2.kind);
    scored.into_iter().map(|(_, _, candidate)| candidate).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: &str = "CREATE TABLE bids (auction BIGINT, price DECIMAL(10, 2), bidder STRING) WITH ('connector' = 'datagen');\n\
                          CREATE TABLE bidders (name STRING) WITH ('connector' = 'print');\n";

    /// The completions where `|` is in `statement` (on the line after the tables).
    fn at_bar(statement: &str) -> Vec<(String, CompletionKind)> {
        let column = statement.find('|').unwrap() as u64 + 1;
        let sql = format!("{TABLES}{}", statement.replace('|', ""));
        complete(&sql, Position { line: 3, column }).into_iter().map(|completion| (completion.label, completion.kind)).collect()
    }

    fn labels(statement: &str) -> Vec<String> {
        at_bar(statement).into_iter().map(|(label, _)| label).collect()
    }

    #[test]
    fn tables_after_from_and_into() {
        assert_eq!(labels("SELECT * FROM b|"), ["bidders", "bids"]);
        assert_eq!(labels("INSERT INTO |"), ["bidders", "bids"]);
        assert_eq!(at_bar("SELECT * FROM bidd|")[0], ("bidders".to_string(), CompletionKind::Table));
    }

    #[test]
    fn columns_of_the_tables_the_statement_reads_come_before_keywords() {
        assert_eq!(labels("SELECT pr| FROM bids"), ["price"]);
        let all = at_bar("SELECT * FROM bids WHERE |");
        assert_eq!(all[..3].iter().map(|(label, _)| label.as_str()).collect::<Vec<_>>(), ["auction", "bidder", "price"]);
        assert!(all.iter().any(|(label, kind)| label == "AND" && *kind == CompletionKind::Keyword));
    }

    #[test]
    fn columns_of_a_table_named_or_aliased_before_a_dot() {
        assert_eq!(labels("SELECT b.| FROM bids b"), ["auction", "bidder", "price"]);
        assert_eq!(labels("SELECT x.p| FROM bids AS x"), ["price"]);
        assert_eq!(labels("SELECT bidders.| FROM bidders"), ["name"]);
    }

    #[test]
    fn statements_begin_with_their_keywords_and_a_misspelling_finds_its_name() {
        assert_eq!(labels("SE|"), ["SELECT", "SET"]);
        assert_eq!(labels("SELECT prcie| FROM bids")[0], "price");
    }

    #[test]
    fn a_column_shows_its_type_and_table() {
        let sql = format!("{TABLES}SELECT auc FROM bids");
        let found = complete(&sql, Position { line: 3, column: 11 });
        assert_eq!(found[0].detail, "BIGINT (bids)");
    }
}
