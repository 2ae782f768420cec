//! Writing IMAP strings: quoted, literal, atom or NIL (RFC 3501 §4.3,
//! RFC 6855 §3 for UTF-8 in quoted strings).
//!
//! Imports the lexer's character classes.

use super::lexer::is_astring_char;

/// Writes `bytes` as an IMAP string: quoted when it can be, else a literal.
pub fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
    push_string_as(out, bytes, false);
}

/// [`push_string`] for a session that enabled UTF8=ACCEPT or IMAP4rev2,
/// where quoted strings may carry UTF-8 (RFC 6855 §3, RFC 9051 §9).
pub fn push_utf8_string(out: &mut Vec<u8>, bytes: &[u8]) {
    push_string_as(out, bytes, std::str::from_utf8(bytes).is_ok());
}

fn push_string_as(out: &mut Vec<u8>, bytes: &[u8], utf8: bool) {
    let quotable = bytes.len() < 1024
        && bytes
            .iter()
            .all(|&c| c != b'\r' && c != b'\n' && c != 0 && (c < 0x80 || utf8));
    if quotable {
        out.push(b'"');
        for &c in bytes {
            if c == b'"' || c == b'\\' {
                out.push(b'\\');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
    }
}

/// Writes `bytes` as an atom when it can be one, else as a string.
pub fn push_astring(out: &mut Vec<u8>, bytes: &[u8]) {
    if !bytes.is_empty()
        && bytes.iter().all(|&c| is_astring_char(c))
        && !bytes.eq_ignore_ascii_case(b"NIL")
    {
        out.extend_from_slice(bytes);
    } else {
        push_string(out, bytes);
    }
}

/// `NIL` or a string.
pub fn push_nstring(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => push_string(out, b),
        None => out.extend_from_slice(b"NIL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_or_literal() {
        let mut out = Vec::new();
        push_string(&mut out, b"a \"b\"\\");
        assert_eq!(out, b"\"a \\\"b\\\"\\\\\"");
        out.clear();
        push_string(&mut out, b"l1\r\nl2");
        assert_eq!(out, b"{6}\r\nl1\r\nl2");
    }
}
