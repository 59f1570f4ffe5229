//! A SQL error: what is wrong and where, shown with the line it is on and a caret under it.

use std::fmt;

/// A place in a SQL text: line and column, both from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The line, from 1.
    pub line: u64,
    /// The column (in characters), from 1.
    pub column: u64,
}

impl Position {
    /// Where a sqlparser token starts (its line 0 means no place: the end of the text).
    pub(crate) fn of(location: sqlparser::tokenizer::Location) -> Option<Position> {
        (location.line > 0).then_some(Position { line: location.line, column: location.column.max(1) })
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a SQL text was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", at.map(|at| format!("{at}: ")).unwrap_or_default())]
pub struct SqlError {
    /// What is wrong.
    pub message: String,
    /// Where, when known.
    pub at: Option<Position>,
}

impl SqlError {
    /// An error at `at`.
    pub fn at(at: Option<Position>, message: impl Into<String>) -> SqlError {
        SqlError { message: message.into(), at }
    }

    /// sqlparser's error, its place (which it writes at the end of its message) taken out.
    pub(crate) fn from_parser(error: sqlparser::parser::ParserError) -> SqlError {
        use sqlparser::parser::ParserError;
        let text = match error {
            ParserError::TokenizerError(text) | ParserError::ParserError(text) => text,
            ParserError::RecursionLimitExceeded => return SqlError::at(None, "the statement nests too deeply"),
        };
        match text.rfind(" at Line: ") {
            Some(index) => {
                let place = &text[index + " at Line: ".len()..];
                let mut numbers = place.split(", Column: ").map(|number| number.trim().parse::<u64>());
                match (numbers.next(), numbers.next()) {
                    (Some(Ok(line)), Some(Ok(column))) if line > 0 => {
                        SqlError::at(Some(Position { line, column: column.max(1) }), text[..index].to_string())
                    }
                    _ => SqlError::at(None, text),
                }
            }
            None => SqlError::at(None, text),
        }
    }

    /// The error with the line of `sql` it is on and a caret under its column, as a terminal
    /// shows it.
    pub fn render(&self, sql: &str) -> String {
        let Some(at) = self.at else { return format!("error: {}", self.message) };
        let line = sql.lines().nth(at.line as usize - 1).unwrap_or_default();
        let number = at.line.to_string();
        let pad = " ".repeat(number.len());
        let caret = " ".repeat(at.column as usize - 1);
        format!("error: {}\n {pad}--> {at}\n {pad} |\n {number} | {line}\n {pad} | {caret}^", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parser_error_keeps_its_place_apart_from_its_message() {
        let error = SqlError::from_parser(sqlparser::parser::ParserError::ParserError(
            "Expected: an expression, found: FROM at Line: 2, Column: 8".into(),
        ));
        assert_eq!(error.at, Some(Position { line: 2, column: 8 }));
        assert_eq!(error.message, "Expected: an expression, found: FROM");
        assert_eq!(error.to_string(), "line 2, column 8: Expected: an expression, found: FROM");
    }

    #[test]
    fn an_error_is_shown_under_its_line_with_a_caret() {
        let error = SqlError::at(Some(Position { line: 2, column: 8 }), "no such column: prise");
        let shown = error.render("SELECT\n  price, prise\nFROM bids");
        assert_eq!(shown, "error: no such column: prise\n  --> line 2, column 8\n   |\n 2 |   price, prise\n   |        ^");
    }
}
