//! IMAP commands (RFC 3501 with the extensions sealmail announces): one
//! whole command in (its lines and literals, as read off the wire), one
//! typed command or a typed error out.
//!
//! Imports `util` (calendar arithmetic) only. Invariants: parsing is total over any bytes;
//! parenthesis nesting is bounded by [`MAX_DEPTH`] before anything recurses
//! deeper; sequence sets stay ranges (`1:*` is one pair, never a list);
//! numbers are range-checked here. Mailbox names come out as raw bytes: their
//! decoding (modified UTF-7, see `proto::mutf7`, or UTF-8) depends on
//! session state.

mod command;
mod data;
mod emit;
mod encode;
mod error;
mod fetch;
mod lexer;
mod response;
mod search;
mod types;
mod url;

pub use emit::{command as encode_command, window_range};
pub use encode::{push_astring, push_nstring, push_string, push_utf8_string};
pub use error::{Error, Expected};
pub use response::{ResponseError, Token, parse_response};
pub use search::{parse_date, parse_date_time};
pub use types::*;
pub use url::{ImapUrl, UrlServer, parse_url};

use lexer::Parser;

/// Longest command line accepted (literals excluded), CRLF excluded.
pub const MAX_LINE: usize = 64 * 1024;
/// Deepest nesting of parentheses in any command.
pub const MAX_DEPTH: usize = 64;
/// Most literals one command may carry.
pub const MAX_LITERALS: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub kind: Kind,
}

/// Why a command was refused; the tag, when one could be read, comes along
/// so the reply can be tagged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub tag: Option<String>,
    pub error: Error,
}

pub(super) type R<T> = Result<T, Error>;

/// Parses one whole command: its lines joined by CRLF, literals inline
/// (`{n}` CRLF and n bytes), without the final CRLF.
pub fn parse(input: &[u8]) -> Result<Command, ParseError> {
    let mut p = Parser::new(input);
    let tag = p.tag().map_err(|error| ParseError { tag: None, error })?;
    let fail = |error: Error| ParseError {
        tag: Some(tag.clone()),
        error,
    };
    p.sp().map_err(fail)?;
    let kind = p.command().map_err(fail)?;
    if p.pos != p.b.len() {
        return Err(fail(Error::Trailing { at: p.pos }));
    }
    Ok(Command { tag, kind })
}

/// The tag and command name of a command's first line, when they can be
/// read (so a reader can answer before parsing, e.g. to refuse a literal).
pub fn tag_and_name(line: &[u8]) -> Option<(String, String)> {
    let mut p = Parser::new(line);
    let tag = p.tag().ok()?;
    p.sp().ok()?;
    let name = p.atom().ok()?.to_ascii_uppercase();
    let name = if name == "UID" && p.sp().is_ok() {
        format!("UID {}", p.atom().ok()?.to_ascii_uppercase())
    } else {
        name
    };
    Some((tag, name))
}

/// The literal a line announces at its end: `{n}` (synchronising) or `{n+}`.
pub fn literal_at_end(line: &[u8]) -> Option<(u64, bool)> {
    let rest = line.strip_suffix(b"}")?;
    let open = rest.iter().rposition(|&b| b == b'{')?;
    let inner = rest.get(open + 1..)?;
    let (digits, plus) = match inner.strip_suffix(b"+") {
        Some(d) => (d, true),
        None => (inner, false),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, plus))
}

#[cfg(test)]
pub(super) mod testing {
    use super::*;

    pub fn kind(s: &str) -> Kind {
        parse(s.as_bytes()).unwrap().kind
    }

    pub fn err(s: &str) -> String {
        parse(s.as_bytes()).unwrap_err().error.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_markers() {
        assert_eq!(literal_at_end(b"a APPEND x {12}"), Some((12, false)));
        assert_eq!(
            literal_at_end(b"a APPEND x {4294967295+}"),
            Some((4294967295, true))
        );
        assert_eq!(literal_at_end(b"a APPEND x {}"), None);
        assert_eq!(literal_at_end(b"a LOGIN x y"), None);
        assert_eq!(
            tag_and_name(b"t1 uid fetch 1 x"),
            Some(("t1".into(), "UID FETCH".into()))
        );
    }

    /// One row per refusal, with the exact text the client reads after BAD.
    #[test]
    fn every_refusal_names_its_problem() {
        let table: &[(&str, &str)] = &[
            ("", "a command starts with a tag"),
            (" NOOP", "a command starts with a tag"),
            ("a", "expected ' ' at byte 1"),
            ("a ", "expected an atom at byte 2"),
            ("a FROB", "unknown command FROB"),
            ("a UID FROB 1", "unknown command UID FROB"),
            (
                "a NOOP x",
                "unexpected characters at the end of the command (at byte 6)",
            ),
            ("a LOGIN", "expected ' ' at byte 7"),
            ("a LOGIN u", "expected ' ' at byte 9"),
            ("a LOGIN \"u", "unterminated quoted string"),
            ("a LOGIN \"u\\x\" p", "bad escape in quoted string"),
            ("a LOGIN \"u\0\" p", "NUL in quoted string"),
            ("a LOGIN {3}u p", "a literal's size must end its line"),
            ("a LOGIN {9}\r\nabc", "literal is shorter than announced"),
            ("a LOGIN (x) p", "expected a string at byte 8"),
            ("a ENABLE", "ENABLE needs at least one capability"),
            ("a ID x", "ID takes NIL or a parameter list"),
            ("a ID (\"a\" x)", "expected a string or NIL at byte 10"),
            ("a SELECT INBOX (FOO)", "unknown SELECT parameter FOO"),
            (
                "a SELECT INBOX (QRESYNC (0 1))",
                "0 is not a valid message number or UID",
            ),
            ("a LIST (FOO) \"\" *", "unknown LIST selection option FOO"),
            (
                "a LIST (RECURSIVEMATCH) \"\" *",
                "RECURSIVEMATCH needs the SUBSCRIBED selection option",
            ),
            ("a LIST \"\" * FOO (CHILDREN)", "expected RETURN at byte 12"),
            (
                "a LIST \"\" * RETURN (FOO)",
                "unknown LIST return option FOO",
            ),
            ("a LIST \"\" )", "expected a mailbox pattern at byte 10"),
            ("a STATUS INBOX (FOO)", "unknown STATUS item FOO"),
            ("a STATUS INBOX MESSAGES", "expected '(' at byte 15"),
            (
                "a APPEND INBOX \"1-Jan-2024\" {1}\r\nx",
                "bad APPEND date-time",
            ),
            (
                "a APPEND INBOX {1}\r\nx {1}\r\ny junk",
                "expected '{' at byte 29",
            ),
            (
                "a SEARCH RETURN (FOO) ALL",
                "unknown SEARCH return option FOO",
            ),
            ("a SEARCH FOO", "unknown search key FOO"),
            (
                "a SEARCH SINCE 1-Foo-2024",
                "bad date (expected e.g. 1-Feb-2024)",
            ),
            ("a SEARCH 0", "0 is not a valid message number or UID"),
            ("a SEARCH 4294967296", "number out of range"),
            (
                "a SEARCH LARGER 99999999999999999999",
                "number out of range",
            ),
            ("a SORT (FOO) UTF-8 ALL", "unknown sort key FOO"),
            ("a THREAD FOO UTF-8 ALL", "unknown threading algorithm FOO"),
            ("a FETCH 1 FOO", "unknown FETCH item FOO"),
            ("a FETCH 1 BODY.PEEK", "BODY.PEEK needs a section"),
            ("a FETCH 1 BODY[FOO]", "bad section"),
            ("a FETCH 1 BODY[MIME]", "bad section"),
            ("a FETCH 1 BODY[1.]", "bad section"),
            (
                "a FETCH 1 BODY[]<0.0>",
                "0 is not a valid message number or UID",
            ),
            ("a FETCH 1 FLAGS (FOO)", "unknown FETCH modifier FOO"),
            (
                "a FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",
                "VANISHED needs UID FETCH with CHANGEDSINCE",
            ),
            ("a STORE 1 (FOO 1) FLAGS ()", "unknown STORE modifier FOO"),
            ("a STORE 1 FOO ()", "unknown STORE item FOO"),
            ("a COPY 1", "expected ' ' at byte 8"),
            ("a UID EXPUNGE", "expected ' ' at byte 13"),
            (
                "a SEARCH 1:2:3",
                "unexpected characters at the end of the command (at byte 12)",
            ),
        ];
        for (input, want) in table {
            let got = parse(input.as_bytes()).map_err(|e| e.error.to_string());
            assert_eq!(got, Err(want.to_string()), "{input:?}");
        }
        let deep = format!("a SEARCH {}ALL{}", "(".repeat(65), ")".repeat(65));
        assert_eq!(
            parse(deep.as_bytes()).map_err(|e| e.error),
            Err(Error::TooDeep("parentheses"))
        );
        let nots = format!("a SEARCH {}ALL", "NOT ".repeat(65));
        assert_eq!(
            parse(nots.as_bytes()).map_err(|e| e.error),
            Err(Error::TooDeep("search keys"))
        );
        let path = format!("a FETCH 1 BINARY[{}]", vec!["1"; 33].join("."));
        assert_eq!(
            parse(path.as_bytes()).map_err(|e| e.error),
            Err(Error::Invalid("section path too deep"))
        );
        let id = format!("a ID ({})", vec!["\"k\" \"v\""; 31].join(" "));
        assert_eq!(
            parse(id.as_bytes()).map_err(|e| e.error),
            Err(Error::TooMany("ID takes at most 30 fields"))
        );
        assert_eq!(
            parse(b"a SEARCH SUBJECT {2}\r\n\xff\xfe").map_err(|e| e.error),
            Err(Error::BadString("string is not valid UTF-8"))
        );
        // The tag comes back with the error whenever it was read.
        assert_eq!(parse(b"t1 FROB").unwrap_err().tag.as_deref(), Some("t1"));
        assert_eq!(parse(b" FROB").unwrap_err().tag, None);
    }
}
