//! ManageSieve (RFC 5804) commands as a client sends them, and the pieces
//! of the server's responses: quoted strings, literals, `OK`/`NO`/`BYE`.
//!
//! Imports nothing of ours. Invariants: [`command`] reads one whole command
//! from the start of a buffer or says how it needs more; it never reads
//! past [`MAX_LINE`] bytes of command text or [`MAX_LITERAL`] bytes of
//! literal, so a session's buffer is bounded; strings are UTF-8 without
//! NUL, CR or LF (RFC 5804 §4); total over any input.

/// Command text (everything but literals) of one command, at most.
pub const MAX_LINE: usize = 8 * 1024;
/// A literal (a script, a SASL response), at most. Scripts are refused
/// past a smaller size (`QUOTA/MAXSIZE`) once read.
pub const MAX_LITERAL: usize = 1024 * 1024;
/// Arguments of one command, at most.
const MAX_ARGS: usize = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Authenticate {
        mechanism: String,
        initial: Option<String>,
    },
    StartTls,
    Logout,
    Capability,
    Noop(Option<String>),
    HaveSpace {
        name: String,
        size: u64,
    },
    PutScript {
        name: String,
        script: Vec<u8>,
    },
    CheckScript(Vec<u8>),
    ListScripts,
    SetActive(String),
    GetScript(String),
    DeleteScript(String),
    RenameScript {
        from: String,
        to: String,
    },
    Unauthenticate,
}

/// Why a command is refused. `fatal` ones leave the stream unreadable
/// (the session ends with `BYE`); the others are answered `NO` and the
/// next command is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub message: String,
    pub fatal: bool,
}

fn bad<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error {
        message: message.into(),
        fatal: false,
    })
}

fn fatal<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error {
        message: message.into(),
        fatal: true,
    })
}

/// An argument as sent: a string (quoted or literal) or a number.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Arg {
    String(Vec<u8>),
    Number(u64),
}

/// What a read from the start of a buffer gives: `Ok(None)` when more
/// bytes are needed, else the item and the bytes it took; `Err` says why it
/// is refused and how many bytes the refused item took.
pub type Parsed<T> = Result<Option<(T, usize)>, (Error, usize)>;

/// Reads one command from the start of `buf`: `Ok(None)` when more bytes
/// are needed, else the command (or why it is refused) and how many
/// bytes it took. A refused command that is not fatal has been read whole.
pub fn command(buf: &[u8]) -> Parsed<Command> {
    let (words, args, used) = match tokens(buf) {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(None),
        Err(e) => return Err((e, 0)),
    };
    match build(&words, args) {
        Ok(c) => Ok(Some((c, used))),
        Err(e) => Err((e, used)),
    }
}

/// A SASL client response on a line of its own (RFC 5804 §2.1): a string,
/// or `*` (cancel, `Ok(None)` inside).
#[allow(clippy::type_complexity)]
pub fn sasl_response(buf: &[u8]) -> Result<Option<(Option<String>, usize)>, Error> {
    let Some((words, args, used)) = tokens(buf)? else {
        return Ok(None);
    };
    match (words.as_slice(), args.as_slice()) {
        ([w], []) if w == "*" => Ok(Some((None, used))),
        ([], [Arg::String(s)]) => Ok(Some((Some(utf8(s)?), used))),
        _ => bad("expected a string with the SASL response, or \"*\""),
    }
}

/// The command's atoms (upper-cased, the name first) and its string and
/// number arguments, and how many bytes they took.
#[allow(clippy::type_complexity)]
fn tokens(buf: &[u8]) -> Result<Option<(Vec<String>, Vec<Arg>, usize)>, Error> {
    let mut words = Vec::new();
    let mut args = Vec::new();
    let mut i = 0;
    let mut text = 0usize;
    loop {
        if text > MAX_LINE {
            return fatal("command line too long");
        }
        let Some(&b) = buf.get(i) else {
            return if buf.len() > MAX_LINE + MAX_LITERAL {
                fatal("command too long")
            } else {
                Ok(None)
            };
        };
        match b {
            b' ' => {
                i += 1;
                text += 1;
            }
            b'\r' => match buf.get(i + 1) {
                None => return Ok(None),
                Some(b'\n') => return Ok(Some((words, args, i + 2))),
                Some(_) => return fatal("CR without LF"),
            },
            b'\n' => return Ok(Some((words, args, i + 1))),
            b'"' => {
                let Some((s, n)) = quoted(buf.get(i + 1..).unwrap_or_default())? else {
                    return if buf.len() - i > MAX_LINE {
                        fatal("quoted string too long")
                    } else {
                        Ok(None)
                    };
                };
                push(&mut args, Arg::String(s))?;
                i += 1 + n;
                text += 1 + n;
            }
            b'{' => {
                let Some((len, n)) = literal_head(buf.get(i..).unwrap_or_default())? else {
                    return Ok(None);
                };
                let start = i + n;
                let Some(bytes) = buf.get(start..start + len) else {
                    return Ok(None);
                };
                push(&mut args, Arg::String(bytes.to_vec()))?;
                i = start + len;
                text += n;
            }
            b'0'..=b'9' if words.is_empty() => {
                return fatal("a command starts with its name");
            }
            b'0'..=b'9' => {
                let Some(end) = run_end(buf, i, |c| c.is_ascii_digit())? else {
                    return Ok(None);
                };
                let digits = std::str::from_utf8(buf.get(i..end).unwrap_or_default()).unwrap_or("");
                let Ok(n) = digits.parse::<u64>() else {
                    return fatal("number too large");
                };
                push(&mut args, Arg::Number(n))?;
                text += end - i;
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == b'*' => {
                if !args.is_empty() {
                    return fatal("an atom after the arguments");
                }
                let Some(end) = run_end(buf, i, |c| c.is_ascii_alphanumeric() || c == b'*')? else {
                    return Ok(None);
                };
                let word = String::from_utf8_lossy(buf.get(i..end).unwrap_or_default());
                if words.len() >= 2 {
                    return fatal("too many words");
                }
                words.push(word.to_ascii_uppercase());
                text += end - i;
                i = end;
            }
            _ => return fatal("unexpected character in a command"),
        }
    }
}

/// Where a run of bytes that `more` accepts, starting at `i`, ends;
/// `None` while it reaches the end of the buffer (more may follow).
fn run_end(buf: &[u8], i: usize, more: impl Fn(u8) -> bool) -> Result<Option<usize>, Error> {
    let rest = buf.get(i..).unwrap_or_default();
    match rest.iter().position(|&c| !more(c)) {
        Some(p) => Ok(Some(i + p)),
        None if rest.len() > MAX_LINE => fatal("command line too long"),
        None => Ok(None),
    }
}

fn push(args: &mut Vec<Arg>, a: Arg) -> Result<(), Error> {
    if args.len() >= MAX_ARGS {
        return fatal("too many arguments");
    }
    args.push(a);
    Ok(())
}

/// A quoted string's contents (after its opening quote) and the bytes it
/// took with its closing quote; `None` when it is not closed yet.
fn quoted(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, Error> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = buf.get(i) {
        match b {
            b'"' => return Ok(Some((out, i + 1))),
            b'\\' => match buf.get(i + 1) {
                Some(&c @ (b'"' | b'\\')) => {
                    out.push(c);
                    i += 2;
                }
                Some(_) => return fatal("only \\\" and \\\\ may be escaped in a quoted string"),
                None => return Ok(None),
            },
            b'\r' | b'\n' | 0 => return fatal("CR, LF or NUL in a quoted string"),
            _ => {
                out.push(b);
                i += 1;
            }
        }
        if i > MAX_LINE {
            return fatal("quoted string too long");
        }
    }
    Ok(None)
}

/// `{N+}CRLF` or `{N}CRLF` at the start of `buf`: the literal's length and
/// the head's.
fn literal_head(buf: &[u8]) -> Result<Option<(usize, usize)>, Error> {
    let Some(close) = buf.iter().take(16).position(|&b| b == b'}') else {
        return if buf.len() >= 16 {
            fatal("bad literal")
        } else {
            Ok(None)
        };
    };
    let inner = buf.get(1..close).unwrap_or_default();
    let digits = inner.strip_suffix(b"+").unwrap_or(inner);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return fatal("bad literal");
    }
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(usize::MAX);
    if len > MAX_LITERAL {
        return fatal(format!("literal larger than {MAX_LITERAL} bytes"));
    }
    match (buf.get(close + 1), buf.get(close + 2)) {
        (Some(b'\r'), Some(b'\n')) => Ok(Some((len, close + 3))),
        (Some(b'\n'), _) => Ok(Some((len, close + 2))),
        (None, _) | (Some(b'\r'), None) => Ok(None),
        _ => fatal("a literal's length ends its line"),
    }
}

fn utf8(s: &[u8]) -> Result<String, Error> {
    match String::from_utf8(s.to_vec()) {
        Ok(s) if !s.contains(['\0', '\r', '\n']) => Ok(s),
        _ => bad("a name must be UTF-8 text without NUL, CR or LF"),
    }
}

fn build(words: &[String], args: Vec<Arg>) -> Result<Command, Error> {
    let Some(name) = words.first() else {
        return bad("empty command");
    };
    if words.len() > 1 {
        return bad(format!("{name} takes no atom arguments"));
    }
    let s = |a: &Arg| match a {
        Arg::String(s) => utf8(s),
        Arg::Number(_) => bad("expected a string"),
    };
    let raw = |a: Arg| match a {
        Arg::String(s) => Ok(s),
        Arg::Number(_) => bad("expected a string"),
    };
    let mut args = args.into_iter();
    let (a, b) = (args.next(), args.next());
    if args.next().is_some() {
        return bad(format!("too many arguments to {name}"));
    }
    Ok(match (name.as_str(), a, b) {
        ("AUTHENTICATE", Some(m), initial) => Command::Authenticate {
            mechanism: s(&m)?.to_ascii_uppercase(),
            initial: initial.as_ref().map(s).transpose()?,
        },
        ("STARTTLS", None, None) => Command::StartTls,
        ("LOGOUT", None, None) => Command::Logout,
        ("CAPABILITY", None, None) => Command::Capability,
        ("NOOP", tag, None) => Command::Noop(tag.as_ref().map(s).transpose()?),
        ("HAVESPACE", Some(n), Some(Arg::Number(size))) => {
            Command::HaveSpace { name: s(&n)?, size }
        }
        ("PUTSCRIPT", Some(n), Some(script)) => Command::PutScript {
            name: s(&n)?,
            script: raw(script)?,
        },
        ("CHECKSCRIPT", Some(script), None) => Command::CheckScript(raw(script)?),
        ("LISTSCRIPTS", None, None) => Command::ListScripts,
        ("SETACTIVE", Some(n), None) => Command::SetActive(s(&n)?),
        ("GETSCRIPT", Some(n), None) => Command::GetScript(s(&n)?),
        ("DELETESCRIPT", Some(n), None) => Command::DeleteScript(s(&n)?),
        ("RENAMESCRIPT", Some(f), Some(t)) => Command::RenameScript {
            from: s(&f)?,
            to: s(&t)?,
        },
        ("UNAUTHENTICATE", None, None) => Command::Unauthenticate,
        (
            "AUTHENTICATE" | "STARTTLS" | "LOGOUT" | "CAPABILITY" | "NOOP" | "HAVESPACE"
            | "PUTSCRIPT" | "CHECKSCRIPT" | "LISTSCRIPTS" | "SETACTIVE" | "GETSCRIPT"
            | "DELETESCRIPT" | "RENAMESCRIPT" | "UNAUTHENTICATE",
            ..,
        ) => return bad(format!("wrong arguments to {name}")),
        _ => return bad(format!("unknown command {name}")),
    })
}

/// A quoted string for a response (the text is made one line).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' | '\0' => out.push(' '),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A literal for a response (RFC 5804 §4 `literal-s2c`).
pub fn literal(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{{{}}}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn one(input: &str) -> Command {
        let (c, n) = command(input.as_bytes()).unwrap().unwrap();
        assert_eq!(n, input.len(), "{input:?}");
        c
    }

    #[test]
    fn commands_table() {
        let cases: Vec<(&str, Command)> = vec![
            ("CAPABILITY\r\n", Command::Capability),
            ("capability\r\n", Command::Capability),
            ("STARTTLS\r\n", Command::StartTls),
            ("LOGOUT\n", Command::Logout),
            ("NOOP\r\n", Command::Noop(None)),
            ("NOOP \"tag\"\r\n", Command::Noop(Some("tag".into()))),
            (
                "AUTHENTICATE \"PLAIN\" \"AGJvYgBwdw==\"\r\n",
                Command::Authenticate {
                    mechanism: "PLAIN".into(),
                    initial: Some("AGJvYgBwdw==".into()),
                },
            ),
            (
                "Authenticate \"plain\"\r\n",
                Command::Authenticate {
                    mechanism: "PLAIN".into(),
                    initial: None,
                },
            ),
            (
                "HAVESPACE \"main\" 1234\r\n",
                Command::HaveSpace {
                    name: "main".into(),
                    size: 1234,
                },
            ),
            (
                "PUTSCRIPT \"main\" {6+}\r\nkeep;\n\r\n",
                Command::PutScript {
                    name: "main".into(),
                    script: b"keep;\n".to_vec(),
                },
            ),
            (
                "PUTSCRIPT {4+}\r\nm\"a\\ \"x\"\r\n",
                Command::PutScript {
                    name: "m\"a\\".into(),
                    script: b"x".to_vec(),
                },
            ),
            (
                "CHECKSCRIPT {5}\r\nkeep;\r\n",
                Command::CheckScript(b"keep;".to_vec()),
            ),
            ("LISTSCRIPTS\r\n", Command::ListScripts),
            ("SETACTIVE \"\"\r\n", Command::SetActive(String::new())),
            ("GETSCRIPT \"a b\"\r\n", Command::GetScript("a b".into())),
            (
                "DELETESCRIPT \"\\\"q\\\\\"\r\n",
                Command::DeleteScript("\"q\\".into()),
            ),
            (
                "RENAMESCRIPT \"a\" \"b\"\r\n",
                Command::RenameScript {
                    from: "a".into(),
                    to: "b".into(),
                },
            ),
            ("UNAUTHENTICATE\r\n", Command::Unauthenticate),
        ];
        for (input, want) in cases {
            assert_eq!(one(input), want, "{input:?}");
        }
    }

    #[test]
    fn partial_input_asks_for_more() {
        let full = b"PUTSCRIPT \"main\" {6+}\r\nkeep;\n\r\n";
        for n in 0..full.len() {
            assert_eq!(command(&full[..n]), Ok(None), "{n}");
        }
    }

    #[test]
    fn refusals_table() {
        for (input, is_fatal) in [
            ("FOO\r\n", false),
            ("LISTSCRIPTS \"x\"\r\n", false),
            ("HAVESPACE \"a\" \"b\"\r\n", false),
            ("GETSCRIPT \"a\" \"b\" \"c\"\r\n", false),
            ("\r\n", false),
            ("SETACTIVE {3+}\r\na\0b\r\n", false),
            ("GETSCRIPT \"a\rb\"\r\n", true),
            ("GETSCRIPT \"a\\nb\"\r\n", true),
            ("PUTSCRIPT \"a\" {99999999999+}\r\n", true),
            ("PUTSCRIPT \"a\" {12x}\r\n", true),
            ("PUTSCRIPT \"a\" {3+} \r\n", true),
            ("1 CAPABILITY\r\n", true),
            ("HAVESPACE \"a\" 99999999999999999999999\r\n", true),
            ("A\rB\r\n", true),
            ("LISTSCRIPTS \"a\" \"b\" \"c\" \"d\" \"e\"\r\n", true),
            ("@\r\n", true),
        ] {
            let err = command(input.as_bytes()).unwrap_err();
            assert_eq!(err.0.fatal, is_fatal, "{input:?}: {err:?}");
            if !is_fatal {
                assert_eq!(err.1, input.len(), "{input:?}");
            }
        }
        let not_utf8 = b"SETACTIVE {2+}\r\n\xff\xfe\r\n";
        let err = command(not_utf8).unwrap_err();
        assert!(!err.0.fatal && err.1 == not_utf8.len(), "{err:?}");
        // Bounded: a line that never ends, a quoted string that never
        // closes.
        let long = format!("NOOP {}", "x".repeat(MAX_LINE + 10));
        assert!(command(long.as_bytes()).unwrap_err().0.fatal);
        let open = format!("NOOP \"{}", "x".repeat(MAX_LINE + 10));
        assert!(command(open.as_bytes()).unwrap_err().0.fatal);
    }

    #[test]
    fn sasl_responses() {
        assert_eq!(
            sasl_response(b"\"AGJvYgBwdw==\"\r\n").unwrap(),
            Some((Some("AGJvYgBwdw==".into()), 16))
        );
        assert_eq!(
            sasl_response(b"{4+}\r\nabcd\r\n").unwrap(),
            Some((Some("abcd".into()), 12))
        );
        assert_eq!(sasl_response(b"*\r\n").unwrap(), Some((None, 3)));
        assert_eq!(sasl_response(b"\"abc").unwrap(), None);
        assert!(sasl_response(b"X\r\n").is_err());
    }

    #[test]
    fn responses() {
        assert_eq!(quote("a\"b\\c\r\nd"), "\"a\\\"b\\\\c  d\"");
        assert_eq!(literal(b"keep;"), b"{5}\r\nkeep;".to_vec());
    }
}
