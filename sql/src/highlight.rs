//! Syntax highlighting for an editor: a script's tokens, each with its kind and where it is.
//!
//! Comments and every other token are kept (the tokenizer works on any text, also one that does
//! not parse), so an editor can colour a script while it is being typed.

use crate::dialect::TethysDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

use crate::error::{Position, SqlError};

/// What a highlighted token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A word SQL reserves or knows (`SELECT`, `WATERMARK`, `INTERVAL`, ...).
    Keyword,
    /// A name: a table, column or function, quoted or not.
    Identifier,
    /// A string literal.
    String,
    /// A number.
    Number,
    /// A comment (`-- ...` or `/* ... */`).
    Comment,
    /// An operator or punctuation (`+`, `=`, `(`, `,`, `;`, ...).
    Operator,
}

/// A highlighted token: its kind and where it starts and ends (the end is just past it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Highlight {
    /// What it is.
    pub kind: TokenKind,
    /// Where it starts.
    pub start: Position,
    /// Where it ends.
    pub end: Position,
}

/// The tokens of `sql` an editor colours (whitespace left out), in order; an error only where
/// the text cannot be split into tokens (an unterminated string or comment).
pub fn highlight(sql: &str) -> Result<Vec<Highlight>, SqlError> {
    let dialect = TethysDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|error| SqlError::at(Position::of(error.location), error.message))?;
    let mut highlights = Vec::with_capacity(tokens.len());
    for token in tokens {
        let kind = match &token.token {
            Token::EOF => continue,
            Token::Whitespace(Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_)) => TokenKind::Comment,
            Token::Whitespace(_) => continue,
            Token::Word(word) if word.quote_style.is_none() && word.keyword != Keyword::NoKeyword => TokenKind::Keyword,
            Token::Word(_) => TokenKind::Identifier,
            Token::Number(..) => TokenKind::Number,
            Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::HexStringLiteral(_) => TokenKind::String,
            _ => TokenKind::Operator,
        };
        let (Some(start), Some(end)) = (Position::of(token.span.start), Position::of(token.span.end)) else { continue };
        highlights.push(Highlight { kind, start, end });
    }
    Ok(highlights)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<(TokenKind, u64, u64)> {
        highlight(sql).unwrap().iter().map(|token| (token.kind, token.start.line, token.start.column)).collect()
    }

    #[test]
    fn a_statement_s_tokens_are_coloured_by_kind_and_placed() {
        use TokenKind::*;
        let sql = "SELECT price * 100 AS cents -- in cents\nFROM `bids` WHERE bidder = 'x';";
        assert_eq!(
            kinds(sql),
            [
                (Keyword, 1, 1),
                (Identifier, 1, 8),
                (Operator, 1, 14),
                (Number, 1, 16),
                (Keyword, 1, 20),
                (Identifier, 1, 23),
                (Comment, 1, 29),
                (Keyword, 2, 1),
                (Identifier, 2, 6),
                (Keyword, 2, 13),
                (Identifier, 2, 19),
                (Operator, 2, 26),
                (String, 2, 28),
                (Operator, 2, 31),
            ]
        );
        let price = highlight(sql).unwrap()[1];
        assert_eq!(price.end, Position { line: 1, column: 13 }, "the end is just past the token");
    }

    #[test]
    fn a_script_that_does_not_parse_is_still_coloured_and_an_unterminated_string_is_placed() {
        assert_eq!(kinds("SELECT FROM WHERE ,").len(), 4);
        let error = highlight("SELECT 'open").unwrap_err();
        assert_eq!(error.at, Some(Position { line: 1, column: 8 }), "{error}");
    }
}
