//! Why an IMAP command was refused, as a value: the session decides the
//! reply from the variant (`BadCharset` is `NO [BADCHARSET]`, every other
//! one `BAD`), and the text from `Display`.
//!
//! Imports nothing. Invariants: plain data; no variant carries more than a
//! short name from the input (bounded by the line limit).

use std::fmt;

/// A token the grammar needed where something else stood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    Char(u8),
    Atom,
    Number,
    String,
    StringOrNil,
    MailboxPattern,
    Return,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The line does not start with a tag.
    NoTag,
    Expected {
        what: Expected,
        at: usize,
    },
    /// A name the command's grammar does not know (`what` says which kind:
    /// "command", "SEARCH key", "STATUS item", …).
    Unknown {
        what: &'static str,
        name: String,
    },
    /// Parentheses or search keys nest deeper than `MAX_DEPTH`.
    TooDeep(&'static str),
    /// More of something than a command may carry.
    TooMany(&'static str),
    /// A number that does not fit its field.
    OutOfRange,
    /// 0 where a message number or UID must be positive.
    Zero,
    /// A quoted string or literal that is not well formed.
    BadString(&'static str),
    /// A form the grammar allows nowhere, with what is wrong.
    Invalid(&'static str),
    /// A SEARCH, SORT or THREAD charset other than UTF-8 and US-ASCII.
    BadCharset,
    /// Bytes after a complete command.
    Trailing {
        at: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoTag => f.write_str("a command starts with a tag"),
            Error::Expected { what, at } => match what {
                Expected::Char(c) => write!(f, "expected '{}' at byte {at}", char::from(*c)),
                Expected::Atom => write!(f, "expected an atom at byte {at}"),
                Expected::Number => write!(f, "expected a number at byte {at}"),
                Expected::String => write!(f, "expected a string at byte {at}"),
                Expected::StringOrNil => write!(f, "expected a string or NIL at byte {at}"),
                Expected::MailboxPattern => write!(f, "expected a mailbox pattern at byte {at}"),
                Expected::Return => write!(f, "expected RETURN at byte {at}"),
            },
            Error::Unknown { what, name } => write!(f, "unknown {what} {name}"),
            Error::TooDeep(what) => write!(f, "{what} nest deeper than {}", super::MAX_DEPTH),
            Error::TooMany(what) => f.write_str(what),
            Error::OutOfRange => f.write_str("number out of range"),
            Error::Zero => f.write_str("0 is not a valid message number or UID"),
            Error::BadString(why) | Error::Invalid(why) => f.write_str(why),
            Error::BadCharset => f.write_str("only UTF-8 and US-ASCII are supported"),
            Error::Trailing { at } => write!(
                f,
                "unexpected characters at the end of the command (at byte {at})"
            ),
        }
    }
}
