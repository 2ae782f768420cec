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
mod emit;
mod encode;
mod error;
mod fetch;
mod lexer;
mod search;
mod types;

pub use emit::command as encode_command;
pub use encode::{push_astring, push_nstring, push_string, push_utf8_string};
pub use error::{Error, Expected};
pub use search::{parse_date, parse_date_time};
pub use types::*;

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
}
