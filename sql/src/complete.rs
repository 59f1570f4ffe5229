//! Completion at a cursor: what may be typed there, ranked by how well it matches what is typed
//! already (the word the cursor ends).
//!
//! Tables come after `FROM`, `JOIN`, `INTO`, `TABLE` and `DESCRIBE` (after `FROM` and `JOIN`
//! also the window functions' `TABLE(TUMBLE(` and kin, and after `FROM TABLE(` the window
//! functions themselves); after `name.` the columns of the table `name` is (or aliases); inside
//! `DESCRIPTOR(` the columns of the window function's `TABLE t`, its event-time column first;
//! elsewhere in a statement that reads tables, their columns with their types, then, where an
//! expression may begin in `SELECT`, `WHERE`, `ON`, `HAVING`, `GROUP BY` or `ORDER BY`, the
//! functions with their signatures (aggregates only where they may be: `SELECT`, `HAVING`,
//! `ORDER BY`), then keywords. Tables and columns are those the script defines (its
//! `CREATE TABLE`s that parse, so a statement being typed does not hide them). A candidate
//! matches when it starts with the typed word, or, ranked after those, when it is near it (a
//! misspelling); among equal matches columns come first, then functions, tables, keywords.

use crate::dialect::TethysDialect;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::aggregate::AGGREGATE_SIGNATURES;
use crate::ddl::{ColumnKind, TableDef};
use crate::error::Position;
use crate::function::FunctionRegistry;
use crate::script::{parse_script_partly, Statement};

/// What a completion inserts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CompletionKind {
    /// A column of a table in scope.
    Column,
    /// A function: scalar, aggregate or window table function.
    Function,
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
    /// More about it: a column's type and table, a table's connector, a function's signature.
    pub detail: String,
    /// What it does, in a sentence or two (a function's description and example), or empty.
    pub documentation: String,
}

impl Completion {
    fn new(label: impl Into<String>, kind: CompletionKind, detail: impl Into<String>) -> Completion {
        Completion { label: label.into(), kind, detail: detail.into(), documentation: String::new() }
    }

    fn documented(mut self, documentation: impl Into<String>) -> Completion {
        self.documentation = documentation.into();
        self
    }
}

/// The window table functions of `FROM TABLE(...)`: name, signature and what it does.
pub const WINDOW_FUNCTIONS: &[(&str, &str, &str)] = &[
    (
        "TUMBLE",
        "TUMBLE(TABLE t, DESCRIPTOR(ts), size INTERVAL [, offset INTERVAL])",
        "Each row of t in the fixed-size window its event time ts falls in, with window_start, window_end and window_time.",
    ),
    (
        "HOP",
        "HOP(TABLE t, DESCRIPTOR(ts), slide INTERVAL, size INTERVAL [, offset INTERVAL])",
        "Each row of t in every window of the given size, one starting each slide, that holds its event time ts (sliding windows).",
    ),
    (
        "CUMULATE",
        "CUMULATE(TABLE t, DESCRIPTOR(ts), step INTERVAL, size INTERVAL [, offset INTERVAL])",
        "Each row of t in the windows that start where its fixed window of the given size starts and grow by step up to that size.",
    ),
    (
        "SESSION",
        "SESSION(TABLE t [PARTITION BY keys], DESCRIPTOR(ts), gap INTERVAL)",
        "Rows of t grouped into sessions (per key with PARTITION BY) that end after gap without rows; for window aggregation only.",
    ),
];

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

/// The clauses whose words start one: what comes after them up to the next is theirs.
const CLAUSES: &[&str] = &["SELECT", "FROM", "JOIN", "WHERE", "ON", "BY", "HAVING", "LIMIT", "INTO", "SET", "VALUES", "WINDOW"];
/// The clauses that hold expressions.
const EXPRESSION_CLAUSES: &[&str] = &["SELECT", "WHERE", "ON", "GROUP BY", "HAVING", "ORDER BY", "PARTITION BY"];
/// The clauses where an aggregate may be called.
const AGGREGATE_CLAUSES: &[&str] = &["SELECT", "HAVING", "ORDER BY"];
/// The words after which an expression begins.
const EXPRESSION_STARTS: &[&str] =
    &["SELECT", "WHERE", "ON", "BY", "HAVING", "AND", "OR", "NOT", "CASE", "WHEN", "THEN", "ELSE", "DISTINCT", "BETWEEN", "LIKE"];

/// The completions at `cursor` in `sql`, best first, with the built-in functions.
pub fn complete(sql: &str, cursor: Position) -> Vec<Completion> {
    complete_with(sql, cursor, &FunctionRegistry::default())
}

/// The completions at `cursor` in `sql`, best first, offering the scalar functions of
/// `functions`.
pub fn complete_with(sql: &str, cursor: Position, functions: &FunctionRegistry) -> Vec<Completion> {
    let dialect = TethysDialect;
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
            Statement::Other(_) | Statement::StatementSet(_) => None,
        })
        .collect();
    let table_named = |name: &str| tables.iter().copied().find(|table| table.name.eq_ignore_ascii_case(name));

    // Candidates with a preference among equal matches (0 first).
    let mut candidates: Vec<(u8, Completion)> = Vec::new();
    let previous = context.last().map(|token| &token.token);
    let previous_word = previous.and_then(keyword);
    let call = enclosing_call(context);
    let call_name = call.and_then(|open| open.checked_sub(1)).and_then(|at| keyword(&context[at].token));
    if let (Some(Token::Period), Some(qualifier)) = (previous, context.len().checked_sub(2).and_then(|at| word(&context[at].token))) {
        // `name.`: the columns of the table `name` is, or aliases.
        let table = table_named(&qualifier).or_else(|| aliased(statement, &qualifier).and_then(|name| table_named(&name)));
        candidates.extend(table.into_iter().flat_map(columns_of).map(|column| (0, column)));
    } else if call_name.as_deref() == Some("DESCRIPTOR") {
        // `DESCRIPTOR(`: the time column of the window function's table, event time first.
        let open = call.expect("a call has its parenthesis");
        let window = enclosing_call(&context[..open - 1]);
        let table = window.and_then(|open_window| data_argument(&context[open_window + 1..open - 1])).and_then(|name| table_named(&name));
        if let Some(table) = table {
            let is_time = |column: &str| is_event_time(table, column) || is_proc_time(table, column);
            candidates.extend(columns_of(table).map(|column| (u8::from(!is_time(&column.label)), column)));
        }
    } else if previous == Some(&Token::LParen) && call_name.as_deref() == Some("TABLE") {
        // `FROM TABLE(`: the window functions.
        candidates.extend(WINDOW_FUNCTIONS.iter().map(|(name, signature, description)| {
            (0, Completion::new(*name, CompletionKind::Function, *signature).documented(*description))
        }));
    } else if matches!(previous_word.as_deref(), Some("FROM" | "JOIN")) && call.is_none_or(|open| !is_function_call(context, open)) {
        candidates.extend(tables.iter().map(|table| (0, table_completion(table))));
        // A window function's rows: `FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size))`.
        candidates.extend(WINDOW_FUNCTIONS.iter().map(|(name, signature, description)| {
            let completion = Completion::new(format!("TABLE({name}("), CompletionKind::Function, format!("TABLE({signature})"));
            (0, completion.documented(*description))
        }));
    } else if matches!(previous_word.as_deref(), Some("INTO" | "TABLE" | "DESCRIBE")) {
        candidates.extend(tables.iter().map(|table| (0, table_completion(table))));
    } else if context.is_empty() {
        candidates.extend(keywords(STATEMENT_KEYWORDS));
    } else {
        // Columns of the tables the statement reads (named after FROM or JOIN anywhere in it).
        for pair in statement.windows(2) {
            if matches!(keyword(&pair[0].token).as_deref(), Some("FROM" | "JOIN")) {
                if let Some(table) = word(&pair[1].token).and_then(|name| table_named(&name)) {
                    candidates.extend(columns_of(table).map(|column| (0, column)));
                }
            }
        }
        // Functions where an expression may begin.
        if let Some(clause) = clause_of(context).filter(|clause| EXPRESSION_CLAUSES.contains(&clause.as_str())) {
            if expression_begins(context) {
                candidates.extend(functions.scalars().map(|function| {
                    let mut documentation = function.description().to_string();
                    if let Some((example, result)) = function.example_call() {
                        documentation = format!("{documentation} Example: {example} returns {result}.").trim_start().to_string();
                    }
                    (0, Completion::new(function.name(), CompletionKind::Function, function.signature()).documented(documentation))
                }));
                if AGGREGATE_CLAUSES.contains(&clause.as_str()) {
                    candidates.extend(AGGREGATE_SIGNATURES.iter().map(|(name, signature, description)| {
                        (0, Completion::new(*name, CompletionKind::Function, *signature).documented(*description))
                    }));
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

/// An unquoted word, in capitals: a keyword or a function's name.
fn keyword(token: &Token) -> Option<String> {
    match token {
        Token::Word(word) if word.quote_style.is_none() => Some(word.value.to_uppercase()),
        _ => None,
    }
}

/// Where the innermost parenthesis still open at the end of `tokens` is.
fn enclosing_call(tokens: &[TokenWithSpan]) -> Option<usize> {
    let mut depth = 0usize;
    for (at, token) in tokens.iter().enumerate().rev() {
        match token.token {
            Token::RParen => depth += 1,
            Token::LParen if depth == 0 => return Some(at),
            Token::LParen => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Whether the parenthesis at `open` is a function call's (`EXTRACT(YEAR FROM ts)`) rather
/// than a subquery's or a list's.
fn is_function_call(tokens: &[TokenWithSpan], open: usize) -> bool {
    const NOT_CALLS: &[&str] =
        &["FROM", "JOIN", "IN", "EXISTS", "AS", "ON", "WHERE", "AND", "OR", "NOT", "SELECT", "BY", "HAVING", "VALUES"];
    open.checked_sub(1).and_then(|at| keyword(&tokens[at].token)).is_some_and(|name| !NOT_CALLS.contains(&name.as_str()))
}

/// The table a window function's arguments before `DESCRIPTOR` read: `TABLE t` (or `DATA =>
/// TABLE t`), or a first argument `t`.
fn data_argument(arguments: &[TokenWithSpan]) -> Option<String> {
    let named = arguments
        .windows(2)
        .find(|pair| keyword(&pair[0].token).as_deref() == Some("TABLE") && matches!(pair[1].token, Token::Word(_)))
        .and_then(|pair| word(&pair[1].token));
    named.or_else(|| match arguments {
        [first, next, ..] if next.token == Token::Comma || keyword(&next.token).as_deref() == Some("PARTITION") => word(&first.token),
        _ => None,
    })
}

/// The clause `tokens` end in (`SELECT`, `WHERE`, `GROUP BY`...): the last clause word outside
/// parentheses closed before the end.
fn clause_of(tokens: &[TokenWithSpan]) -> Option<String> {
    let mut depth = 0usize;
    for (at, token) in tokens.iter().enumerate().rev() {
        match &token.token {
            Token::RParen => depth += 1,
            Token::LParen => depth = depth.saturating_sub(1),
            token if depth == 0 => {
                let Some(word) = keyword(token).filter(|word| CLAUSES.contains(&word.as_str())) else { continue };
                if word != "BY" {
                    return Some(word);
                }
                let by = at.checked_sub(1).and_then(|before| keyword(&tokens[before].token)).unwrap_or_default();
                return Some(format!("{by} BY"));
            }
            _ => {}
        }
    }
    None
}

/// Whether an expression may begin at the end of `tokens`: after a clause's word, an opening
/// parenthesis, a comma, an operator (a `*` that is no wildcard), `AND`, `WHEN`...
fn expression_begins(tokens: &[TokenWithSpan]) -> bool {
    let Some((last, before)) = tokens.split_last() else { return false };
    match &last.token {
        Token::LParen
        | Token::Comma
        | Token::Plus
        | Token::Minus
        | Token::Div
        | Token::Mod
        | Token::Eq
        | Token::DoubleEq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::StringConcat => true,
        // `SELECT *`, `a, *`, `t.*`, `COUNT(*)` select; `price *` multiplies.
        Token::Mul => before.last().is_some_and(|token| {
            !matches!(token.token, Token::Comma | Token::Period | Token::LParen)
                && !matches!(keyword(&token.token).as_deref(), Some("SELECT" | "DISTINCT"))
        }),
        token => keyword(token).is_some_and(|word| EXPRESSION_STARTS.contains(&word.as_str())),
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

/// Whether `column` is `table`'s event time (its `WATERMARK`'s column).
fn is_event_time(table: &TableDef, column: &str) -> bool {
    table.watermark.as_ref().is_some_and(|watermark| watermark.column.eq_ignore_ascii_case(column))
}

/// Whether `column` is `table`'s processing time (computed `AS PROCTIME()`).
fn is_proc_time(table: &TableDef, column: &str) -> bool {
    table.columns.iter().any(|defined| {
        defined.name.eq_ignore_ascii_case(column)
            && matches!(&defined.kind, ColumnKind::Computed(expr) if expr.to_string().eq_ignore_ascii_case("PROCTIME()"))
    })
}

fn table_completion(table: &TableDef) -> Completion {
    let detail = table.option("connector").map_or_else(|| "table".to_string(), |connector| format!("table ({connector})"));
    Completion::new(table.name.clone(), CompletionKind::Table, detail)
}

fn columns_of(table: &TableDef) -> impl Iterator<Item = Completion> + '_ {
    table.columns.iter().map(move |column| {
        let rowtime = match (is_event_time(table, &column.name), is_proc_time(table, &column.name)) {
            (true, _) => " *ROWTIME*",
            (false, true) => " *PROCTIME*",
            (false, false) => "",
        };
        let detail = match &column.kind {
            ColumnKind::Physical { data_type, .. } => format!("{data_type}{rowtime} ({})", table.name),
            ColumnKind::Computed(expr) => format!("AS {expr}{rowtime} ({})", table.name),
        };
        Completion::new(column.name.clone(), CompletionKind::Column, detail)
    })
}

fn keywords(words: &'static [&'static str]) -> impl Iterator<Item = (u8, Completion)> {
    words.iter().map(|word| (0, Completion::new(*word, CompletionKind::Keyword, "keyword")))
}

/// The candidates that match `prefix`, best first: those starting with it (columns, then
/// functions, tables, keywords; among those of a kind, the preferred first), then those near it,
/// nearest first.
fn rank(candidates: Vec<(u8, Completion)>, prefix: &str) -> Vec<Completion> {
    let typed = prefix.to_lowercase();
    let mut scored: Vec<(u8, u32, u8, Completion)> = candidates
        .into_iter()
        .filter_map(|(preference, candidate)| {
            let label = candidate.label.to_lowercase();
            if label.starts_with(&typed) {
                return Some((0, 0, preference, candidate));
            }
            let similarity = strsim::jaro_winkler(&typed, &label);
            (typed.chars().count() >= 2 && similarity >= 0.8).then_some((1, ((1.0 - similarity) * 1000.0) as u32, preference, candidate))
        })
        .collect();
    scored.sort_by(|a, b| (a.0, a.1, a.3.kind, a.2, &a.3.label).cmp(&(b.0, b.1, b.3.kind, b.2, &b.3.label)));
    scored.dedup_by(|a, b| a.3.label == b.3.label && a.3.kind == b.3.kind);
    scored.into_iter().map(|(_, _, _, candidate)| candidate).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: &str = "CREATE TABLE bids (auction BIGINT, price DECIMAL(10, 2), bidder STRING) WITH ('connector' = 'datagen');\n\
                          CREATE TABLE bidders (name STRING) WITH ('connector' = 'print');\n\
                          CREATE TABLE clicks (url STRING, at_ms BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'datagen');\n";

    /// The completions where `|` is in `statement` (on the line after the tables).
    fn found(statement: &str) -> Vec<Completion> {
        let column = statement.find('|').unwrap() as u64 + 1;
        let sql = format!("{TABLES}{}", statement.replace('|', ""));
        complete(&sql, Position { line: 4, column })
    }

    fn at_bar(statement: &str) -> Vec<(String, CompletionKind)> {
        found(statement).into_iter().map(|completion| (completion.label, completion.kind)).collect()
    }

    fn labels(statement: &str) -> Vec<String> {
        at_bar(statement).into_iter().map(|(label, _)| label).collect()
    }

    fn of_kind(statement: &str, kind: CompletionKind) -> Vec<String> {
        at_bar(statement).into_iter().filter(|(_, found)| *found == kind).map(|(label, _)| label).collect()
    }

    #[test]
    fn tables_after_from_and_into() {
        assert_eq!(labels("SELECT * FROM b|"), ["bidders", "bids"]);
        assert_eq!(labels("INSERT INTO |"), ["bidders", "bids", "clicks"]);
        assert_eq!(at_bar("SELECT * FROM bidd|")[0], ("bidders".to_string(), CompletionKind::Table));
        // Inside a function call, FROM is no clause: `EXTRACT(YEAR FROM ts)`.
        assert!(of_kind("SELECT EXTRACT(YEAR FROM |) FROM clicks", CompletionKind::Table).is_empty());
    }

    #[test]
    fn columns_of_the_tables_the_statement_reads_come_before_functions_and_keywords() {
        assert_eq!(labels("SELECT pric| FROM bids")[0], "price");
        let all = at_bar("SELECT * FROM bids WHERE |");
        assert_eq!(all[..3].iter().map(|(label, _)| label.as_str()).collect::<Vec<_>>(), ["auction", "bidder", "price"]);
        let kinds: Vec<CompletionKind> = all.iter().map(|(_, kind)| *kind).collect();
        let mut sorted = kinds.clone();
        sorted.sort();
        assert_eq!(kinds, sorted, "columns, then functions, then keywords");
        assert!(kinds.contains(&CompletionKind::Function));
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
        assert_eq!(found("SELECT auc| FROM bids")[0].detail, "BIGINT (bids)");
        assert_eq!(found("SELECT t| FROM clicks")[0].detail, "TIMESTAMP(3) *ROWTIME* (clicks)");
    }

    #[test]
    fn a_function_shows_its_signature_and_description() {
        let upper = found("SELECT UPP| FROM bids").into_iter().find(|completion| completion.label == "UPPER").expect("UPPER");
        assert_eq!(upper.kind, CompletionKind::Function);
        assert_eq!(upper.detail, "UPPER(s STRING) -> STRING");
        assert!(upper.documentation.contains("Example: UPPER('tethys') returns TETHYS."), "{}", upper.documentation);
        // Where an expression begins: after an operator, a comma, inside parentheses.
        for statement in ["SELECT price * UPP| FROM bids", "SELECT auction, UPP| FROM bids", "SELECT CONCAT(UPP| FROM bids"] {
            assert!(of_kind(statement, CompletionKind::Function).contains(&"UPPER".to_string()), "{statement}");
        }
        // Not where one does not: after a wildcard, or a column.
        assert!(of_kind("SELECT * | FROM bids", CompletionKind::Function).is_empty());
        assert!(of_kind("SELECT price | FROM bids", CompletionKind::Function).is_empty());
    }

    #[test]
    fn aggregates_are_offered_where_they_may_be_called() {
        let sum = found("SELECT SU| FROM bids").into_iter().find(|completion| completion.label == "SUM").expect("SUM");
        assert_eq!(sum.detail, "SUM([DISTINCT] x NUMERIC) -> NUMERIC");
        assert!(!sum.documentation.is_empty());
        assert!(of_kind("SELECT auction FROM bids GROUP BY auction HAVING |", CompletionKind::Function).contains(&"COUNT".to_string()));
        assert!(!of_kind("SELECT * FROM bids WHERE |", CompletionKind::Function).contains(&"COUNT".to_string()));
        assert!(!of_kind("SELECT COUNT(*) FROM bids GROUP BY |", CompletionKind::Function).contains(&"SUM".to_string()));
    }

    #[test]
    fn a_registered_function_is_offered_with_its_signature() {
        let mut functions = FunctionRegistry::default();
        let twice = crate::function::ScalarFunction::new(
            "TWICE",
            "TWICE(x BIGINT) -> BIGINT",
            |_| Ok(crate::types::SqlType::BigInt),
            |values, _| Ok(values[0].clone()),
        )
        .describe("x times two.");
        functions.register(twice);
        let sql = format!("{TABLES}SELECT TWI FROM bids");
        let found = complete_with(&sql, Position { line: 4, column: 11 }, &functions);
        assert_eq!(
            (found[0].label.as_str(), found[0].detail.as_str(), found[0].documentation.as_str()),
            ("TWICE", "TWICE(x BIGINT) -> BIGINT", "x times two.")
        );
    }

    #[test]
    fn window_functions_in_from() {
        let forms = found("SELECT * FROM TAB|");
        assert_eq!(
            forms.iter().map(|completion| completion.label.as_str()).collect::<Vec<_>>(),
            ["TABLE(CUMULATE(", "TABLE(HOP(", "TABLE(SESSION(", "TABLE(TUMBLE("]
        );
        assert_eq!(forms[3].detail, "TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size INTERVAL [, offset INTERVAL]))");
        assert_eq!(labels("SELECT * FROM TABLE(|"), ["CUMULATE", "HOP", "SESSION", "TUMBLE"]);
        let tumble = found("SELECT * FROM TABLE(TU|");
        assert_eq!(tumble[0].label, "TUMBLE");
        assert_eq!(tumble[0].detail, "TUMBLE(TABLE t, DESCRIPTOR(ts), size INTERVAL [, offset INTERVAL])");
        // Its table argument is a table.
        assert_eq!(labels("SELECT * FROM TABLE(TUMBLE(TABLE cl|"), ["clicks"]);
    }

    #[test]
    fn a_descriptor_offers_a_processing_time_column_first_too() {
        let sql = "CREATE TABLE visits (page STRING, proc AS PROCTIME()) WITH ('connector' = 'datagen');\n\
                   SELECT * FROM TABLE(TUMBLE(TABLE visits, DESCRIPTOR(";
        let found = complete(sql, Position { line: 2, column: 53 });
        let labels: Vec<&str> = found.iter().map(|completion| completion.label.as_str()).collect();
        assert_eq!(labels, ["proc", "page"]);
        assert!(found[0].detail.contains("*PROCTIME*"), "{:?}", found[0]);
    }

    #[test]
    fn a_descriptor_offers_its_table_s_event_time_column_first() {
        assert_eq!(labels("SELECT * FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(|"), ["ts", "at_ms", "url"]);
        assert_eq!(labels("SELECT * FROM TABLE(HOP(DATA => TABLE clicks, TIMECOL => DESCRIPTOR(|))"), ["ts", "at_ms", "url"]);
        assert_eq!(labels("SELECT * FROM TABLE(SESSION(TABLE clicks PARTITION BY url, DESCRIPTOR(a|"), ["at_ms"]);
        assert_eq!(labels("SELECT * FROM TABLE(TUMBLE(bids, DESCRIPTOR(|"), ["auction", "bidder", "price"]);
    }
}
