//! SQL's `LIKE`: `%` matches any run of characters, `_` one character, an escape character
//! makes the next one literal.

/// Whether `text` matches `pattern`.
pub fn matches(text: &str, pattern: &str, escape: Option<char>) -> Result<bool, String> {
    // The pattern as literal characters and wildcards.
    #[derive(Clone, Copy, PartialEq)]
    enum Piece {
        Char(char),
        One,
        Any,
    }
    let mut pieces = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next) => pieces.push(Piece::Char(next)),
                None => return Err(format!("LIKE pattern '{pattern}' ends with its escape character")),
            }
        } else if c == '%' {
            if pieces.last() != Some(&Piece::Any) {
                pieces.push(Piece::Any);
            }
        } else if c == '_' {
            pieces.push(Piece::One);
        } else {
            pieces.push(Piece::Char(c));
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Greedy matching with backtracking to the last `%` (linear in practice).
    let (mut t, mut p) = (0, 0);
    let mut last_any: Option<(usize, usize)> = None;
    while t < text.len() {
        match pieces.get(p) {
            Some(Piece::Any) => {
                last_any = Some((p, t));
                p += 1;
            }
            Some(Piece::One) => {
                t += 1;
                p += 1;
            }
            Some(Piece::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match last_any {
                Some((any_p, any_t)) => {
                    p = any_p + 1;
                    t = any_t + 1;
                    last_any = Some((any_p, any_t + 1));
                }
                None => return Ok(false),
            },
        }
    }
    Ok(pieces[p..].iter().all(|piece| *piece == Piece::Any))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards_and_escapes() {
        assert!(matches("abc", "a%", None).unwrap());
        assert!(matches("abc", "%c", None).unwrap());
        assert!(matches("abc", "%b%", None).unwrap());
        assert!(matches("abc", "a_c", None).unwrap());
        assert!(!matches("abc", "a_", None).unwrap());
        assert!(matches("", "%", None).unwrap());
        assert!(!matches("ab", "abc", None).unwrap());
        assert!(matches("a%c", "a!%c", Some('!')).unwrap());
        assert!(!matches("abc", "a!%c", Some('!')).unwrap());
        assert!(matches("mississippi", "%iss%ppi", None).unwrap());
        assert!(matches("héllo", "h_llo", None).unwrap());
        assert!(matches("x", "a!", Some('!')).is_err());
    }
}
