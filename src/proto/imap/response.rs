//! Responses of an IMAP server, as a client (`sealmail migrate`) reads
//! them: atoms, quoted strings, literals and parenthesized lists.
//!
//! Imports nothing of ours. Invariants: total over any input (an error,
//! never a panic); nesting is bounded; a literal's bytes are never looked
//! into, so a message body cannot pose as response syntax. The reader
//! takes each literal off the wire whole and leaves in the text a NUL, the
//! literal's index and a NUL in its place; no server may send a NUL
//! itself (RFC 3501 §4.3).

/// The deepest list nesting taken.
const MAX_DEPTH: usize = 64;

/// Why a response could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseError {
    TooDeep,
    BadLiteral,
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResponseError::TooDeep => "lists nested too deeply",
            ResponseError::BadLiteral => "a NUL outside a literal",
        })
    }
}

/// One part of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An atom, with any `[section]` it carries (`BODY[]`, `[READ-ONLY]`).
    Atom(String),
    /// A quoted string or a literal.
    String(Vec<u8>),
    List(Vec<Token>),
    Nil,
}

impl Token {
    pub fn atom(&self) -> Option<&str> {
        match self {
            Token::Atom(a) => Some(a),
            _ => None,
        }
    }

    /// A string's bytes, or an atom's.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Token::String(b) => Some(b),
            Token::Atom(a) => Some(a.as_bytes()),
            _ => None,
        }
    }
}

/// The tokens of one response: `text` with its literals taken out (see
/// the module's doc), and `literals` in order.
pub fn parse_response(
    text: &[u8],
    mut literals: Vec<Vec<u8>>,
) -> Result<Vec<Token>, ResponseError> {
    let mut at = 0;
    tokens(text, &mut at, &mut literals, 0)
}

/// The tokens of `text` from `*at`, up to the end or the `)` that closes
/// a list `depth` deep.
fn tokens(
    text: &[u8],
    at: &mut usize,
    literals: &mut [Vec<u8>],
    depth: usize,
) -> Result<Vec<Token>, ResponseError> {
    if depth > MAX_DEPTH {
        return Err(ResponseError::TooDeep);
    }
    let mut out = Vec::new();
    while let Some(&b) = text.get(*at) {
        match b {
            b' ' => *at += 1,
            b'(' => {
                *at += 1;
                out.push(Token::List(tokens(text, at, literals, depth + 1)?));
            }
            b')' => {
                *at += 1;
                if depth > 0 {
                    return Ok(out);
                }
            }
            b'"' => {
                *at += 1;
                let mut s = Vec::new();
                while let Some(&c) = text.get(*at) {
                    *at += 1;
                    match c {
                        b'\\' => {
                            if let Some(&e) = text.get(*at) {
                                s.push(e);
                                *at += 1;
                            }
                        }
                        b'"' => break,
                        c => s.push(c),
                    }
                }
                out.push(Token::String(s));
            }
            0 => {
                let start = *at + 1;
                let end = text
                    .get(start..)
                    .and_then(|t| t.iter().position(|&c| c == 0))
                    .map(|p| start + p)
                    .ok_or(ResponseError::BadLiteral)?;
                let index: usize = std::str::from_utf8(text.get(start..end).unwrap_or_default())
                    .ok()
                    .and_then(|i| i.parse().ok())
                    .ok_or(ResponseError::BadLiteral)?;
                let literal = literals
                    .get_mut(index)
                    .map(std::mem::take)
                    .ok_or(ResponseError::BadLiteral)?;
                out.push(Token::String(literal));
                *at = end + 1;
            }
            _ => {
                let start = *at;
                let mut brackets = 0i32;
                while let Some(&c) = text.get(*at) {
                    match c {
                        b'[' => brackets += 1,
                        b']' => brackets -= 1,
                        b' ' | b'(' | b')' if brackets <= 0 => break,
                        0 | b'"' if brackets <= 0 => break,
                        _ => {}
                    }
                    *at += 1;
                }
                let atom =
                    String::from_utf8_lossy(text.get(start..*at).unwrap_or_default()).to_string();
                out.push(if atom.eq_ignore_ascii_case("NIL") {
                    Token::Nil
                } else {
                    Token::Atom(atom)
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per form: the tokens each response gives.
    #[test]
    fn response_table() {
        let a = |s: &str| Token::Atom(s.into());
        let q = |s: &[u8]| Token::String(s.to_vec());
        let table: Vec<(&[u8], Vec<Token>)> = vec![
            (b"* OK ready", vec![a("*"), a("OK"), a("ready")]),
            (
                b"m1 OK [READ-ONLY] done",
                vec![a("m1"), a("OK"), a("[READ-ONLY]"), a("done")],
            ),
            (
                b"* LIST (\\HasNoChildren) \".\" \"Work.Sub \\\"q\\\"\"",
                vec![
                    a("*"),
                    a("LIST"),
                    Token::List(vec![a("\\HasNoChildren")]),
                    q(b"."),
                    q(b"Work.Sub \"q\""),
                ],
            ),
            (
                b"* LIST () NIL INBOX",
                vec![
                    a("*"),
                    a("LIST"),
                    Token::List(vec![]),
                    Token::Nil,
                    a("INBOX"),
                ],
            ),
            (
                b"* 1 FETCH (BODY[HEADER.FIELDS (A B)] \x000\x00 UID 3)",
                vec![
                    a("*"),
                    a("1"),
                    a("FETCH"),
                    Token::List(vec![
                        a("BODY[HEADER.FIELDS (A B)]"),
                        q(b"li)t\""),
                        a("UID"),
                        a("3"),
                    ]),
                ],
            ),
            (b"", vec![]),
            (b"\"open", vec![q(b"open")]),
            (b"a\"b\"", vec![a("a"), q(b"b")]),
            (b")))", vec![]),
            (
                b"(((",
                vec![Token::List(vec![Token::List(vec![Token::List(vec![])])])],
            ),
        ];
        for (text, want) in table {
            assert_eq!(
                parse_response(text, vec![b"li)t\"".to_vec()]).unwrap(),
                want,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        for bad in [
            &b"\x00"[..],
            b"\x009\x00",
            b"\x00x\x00",
            b"\x000\x00 \x000\x00 \x001\x00",
        ] {
            assert_eq!(
                parse_response(bad, vec![b"l".to_vec()]),
                Err(ResponseError::BadLiteral),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_response(&b"(".repeat(100), vec![]),
            Err(ResponseError::TooDeep)
        );
    }
}
