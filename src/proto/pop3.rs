//! POP3 commands (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH):
//! one line in, one typed command or a typed error out.
//!
//! Imports nothing of ours. Invariants: total over any bytes; numbers are
//! range-checked here (message numbers 1..=u32::MAX, TOP line counts
//! saturate at u64::MAX), so a session never sees a malformed argument.

/// The longest command line accepted, CRLF excluded (RFC 2449 §4: 255
/// octets including CRLF); AUTH continuations may be longer.
pub const MAX_LINE: usize = 253;
/// The longest SASL response line (base64 of an authzid, authcid and a
/// password of 255 octets each).
pub const MAX_SASL_LINE: usize = 1100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Capa,
    Stls,
    User(String),
    Pass(String),
    /// AUTH with a mechanism and an optional initial response; bare `AUTH`
    /// lists mechanisms.
    Auth(Option<(String, Option<String>)>),
    Stat,
    List(Option<u32>),
    Uidl(Option<u32>),
    Retr(u32),
    Top(u32, u64),
    Dele(u32),
    Noop,
    Rset,
    Quit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    Unknown(String),
    /// The command is known but its arguments are wrong; says how.
    Syntax(&'static str),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Unknown(c) => write!(f, "unknown command {c:?}"),
            ParseError::Syntax(why) => f.write_str(why),
        }
    }
}

fn msg_number(s: &str) -> Result<u32, ParseError> {
    match s.parse::<u32>() {
        Ok(n) if n >= 1 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(ParseError::Syntax("a message number is a positive integer")),
    }
}

/// Parses one command line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split(' ');
    let verb = words.next().unwrap_or("").to_ascii_uppercase();
    let args: Vec<&str> = words.collect();
    let rest = text.split_once(' ').map(|(_, r)| r).unwrap_or("");
    let none = |cmd: Command| {
        if args.is_empty() {
            Ok(cmd)
        } else {
            Err(ParseError::Syntax("this command takes no arguments"))
        }
    };
    let optional_number = |cmd: fn(Option<u32>) -> Command| match args.as_slice() {
        [] => Ok(cmd(None)),
        [n] => Ok(cmd(Some(msg_number(n)?))),
        _ => Err(ParseError::Syntax("expected at most one message number")),
    };
    let one_number = |cmd: fn(u32) -> Command| match args.as_slice() {
        [n] => Ok(cmd(msg_number(n)?)),
        _ => Err(ParseError::Syntax("expected one message number")),
    };
    match verb.as_str() {
        "CAPA" => none(Command::Capa),
        "STLS" => none(Command::Stls),
        "STAT" => none(Command::Stat),
        "NOOP" => none(Command::Noop),
        "RSET" => none(Command::Rset),
        "QUIT" => none(Command::Quit),
        "LIST" => optional_number(Command::List),
        "UIDL" => optional_number(Command::Uidl),
        "RETR" => one_number(Command::Retr),
        "DELE" => one_number(Command::Dele),
        "TOP" => match args.as_slice() {
            [n, lines] if !lines.is_empty() && lines.bytes().all(|b| b.is_ascii_digit()) => Ok(
                Command::Top(msg_number(n)?, lines.parse::<u64>().unwrap_or(u64::MAX)),
            ),
            _ => Err(ParseError::Syntax("expected TOP message-number line-count")),
        },
        // RFC 1939 §7: the user name may contain spaces in practice; take the
        // rest of the line, as other servers do.
        "USER" if !rest.is_empty() => Ok(Command::User(rest.to_string())),
        "USER" => Err(ParseError::Syntax("expected USER name")),
        "PASS" if !rest.is_empty() => Ok(Command::Pass(rest.to_string())),
        "PASS" => Err(ParseError::Syntax("expected PASS password")),
        "AUTH" => match args.as_slice() {
            [] => Ok(Command::Auth(None)),
            [mech] => Ok(Command::Auth(Some((mech.to_ascii_uppercase(), None)))),
            [mech, initial] => Ok(Command::Auth(Some((
                mech.to_ascii_uppercase(),
                Some(initial.to_string()),
            )))),
            _ => Err(ParseError::Syntax(
                "expected AUTH mechanism [initial-response]",
            )),
        },
        _ => Err(ParseError::Unknown(verb.chars().take(16).collect())),
    }
}

/// A command as a client writes it (without CRLF): `parse`'s inverse, so
/// that `parse(encode(c)) == c` for every command `parse` returns.
pub fn encode(cmd: &Command) -> String {
    let number = |name: &str, n: &Option<u32>| match n {
        Some(n) => format!("{name} {n}"),
        None => name.to_string(),
    };
    match cmd {
        Command::Capa => "CAPA".into(),
        Command::Stls => "STLS".into(),
        Command::User(u) => format!("USER {u}"),
        Command::Pass(p) => format!("PASS {p}"),
        Command::Auth(None) => "AUTH".into(),
        Command::Auth(Some((mech, None))) => format!("AUTH {mech}"),
        Command::Auth(Some((mech, Some(initial)))) => format!("AUTH {mech} {initial}"),
        Command::Stat => "STAT".into(),
        Command::List(n) => number("LIST", n),
        Command::Uidl(n) => number("UIDL", n),
        Command::Retr(n) => format!("RETR {n}"),
        Command::Top(n, lines) => format!("TOP {n} {lines}"),
        Command::Dele(n) => format!("DELE {n}"),
        Command::Noop => "NOOP".into(),
        Command::Rset => "RSET".into(),
        Command::Quit => "QUIT".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        let cases: &[(&str, Result<Command, ParseError>)] = &[
            ("capa", Ok(Command::Capa)),
            ("LIST", Ok(Command::List(None))),
            ("LIST 3", Ok(Command::List(Some(3)))),
            (
                "RETR -1",
                Err(ParseError::Syntax("a message number is a positive integer")),
            ),
            (
                "RETR 0",
                Err(ParseError::Syntax("a message number is a positive integer")),
            ),
            (
                "RETR +5",
                Err(ParseError::Syntax("a message number is a positive integer")),
            ),
            (
                "RETR 99999999999",
                Err(ParseError::Syntax("a message number is a positive integer")),
            ),
            ("TOP 1 99999999999", Ok(Command::Top(1, 99_999_999_999))),
            (
                "TOP 1 999999999999999999999999",
                Ok(Command::Top(1, u64::MAX)),
            ),
            (
                "TOP 1 -1",
                Err(ParseError::Syntax("expected TOP message-number line-count")),
            ),
            (
                "USER ann@example.org",
                Ok(Command::User("ann@example.org".into())),
            ),
            (
                "PASS a secret with spaces",
                Ok(Command::Pass("a secret with spaces".into())),
            ),
            (
                "AUTH PLAIN AGEAYg==",
                Ok(Command::Auth(Some((
                    "PLAIN".into(),
                    Some("AGEAYg==".into()),
                )))),
            ),
            (
                "STAT x",
                Err(ParseError::Syntax("this command takes no arguments")),
            ),
            ("\u{0}\u{1}", Err(ParseError::Unknown("\u{0}\u{1}".into()))),
            ("", Err(ParseError::Unknown(String::new()))),
        ];
        for (line, want) in cases {
            assert_eq!(&parse(line.as_bytes()), want, "{line:?}");
        }
        let _ = parse(b"\xff\xfe RETR");
    }

    /// For the inputs below and byte-level mutations of them: whatever
    /// parses encodes to a line that parses to the same command.
    #[test]
    fn encode_is_the_inverse_of_parse() {
        let lines: &[&[u8]] = &[
            b"CAPA",
            b"STLS",
            b"USER ann@example.org",
            b"PASS secret words",
            b"AUTH PLAIN AGFubgBwdw==",
            b"AUTH",
            b"STAT",
            b"LIST 3",
            b"UIDL",
            b"RETR 1",
            b"TOP 1 10",
            b"DELE 4294967295",
            b"NOOP",
            b"RSET",
            b"QUIT",
            b"TOP 2 99999999999999999999999",
        ];
        let mut parsed = 0;
        for line in super::super::mutations(lines, b" 0123456789", 1939, 100_000) {
            if let Ok(cmd) = parse(&line) {
                parsed += 1;
                assert_eq!(parse(encode(&cmd).as_bytes()), Ok(cmd.clone()), "{line:?}");
            }
        }
        assert!(parsed > 10_000, "{parsed}");
    }

    /// The forms and refusals the table above leaves out, with exact bytes.
    #[test]
    fn every_other_form_and_refusal() {
        use Command as C;
        let syntax = |w: &'static str| Err(ParseError::Syntax(w));
        let table: &[(&[u8], Result<Command, ParseError>)] = &[
            (b"STLS", Ok(C::Stls)),
            (b"STLS now", syntax("this command takes no arguments")),
            (b"STAT", Ok(C::Stat)),
            (b"NOOP", Ok(C::Noop)),
            (b"RSET", Ok(C::Rset)),
            (b"QUIT", Ok(C::Quit)),
            (b"quit x", syntax("this command takes no arguments")),
            (b"UIDL", Ok(C::Uidl(None))),
            (b"UIDL 7", Ok(C::Uidl(Some(7)))),
            (b"UIDL 1 2", syntax("expected at most one message number")),
            (b"LIST 1 2", syntax("expected at most one message number")),
            (b"LIST 4294967295", Ok(C::List(Some(u32::MAX)))),
            (
                b"LIST 4294967296",
                syntax("a message number is a positive integer"),
            ),
            (b"RETR 1", Ok(C::Retr(1))),
            (b"RETR", syntax("expected one message number")),
            (b"RETR 1 2", syntax("expected one message number")),
            (b"DELE 2", Ok(C::Dele(2))),
            (b"DELE", syntax("expected one message number")),
            (b"DELE x", syntax("a message number is a positive integer")),
            (b"TOP 1 0", Ok(C::Top(1, 0))),
            (b"TOP 1", syntax("expected TOP message-number line-count")),
            (b"TOP 0 1", syntax("a message number is a positive integer")),
            (
                b"TOP 1 1 1",
                syntax("expected TOP message-number line-count"),
            ),
            (b"USER", syntax("expected USER name")),
            (b"USER ", syntax("expected USER name")),
            (b"PASS", syntax("expected PASS password")),
            (b"PASS  two", Ok(C::Pass(" two".into()))),
            (b"AUTH", Ok(C::Auth(None))),
            (b"auth plain", Ok(C::Auth(Some(("PLAIN".into(), None))))),
            (
                b"AUTH a b c",
                syntax("expected AUTH mechanism [initial-response]"),
            ),
            (b"RETRIEVE 1", Err(ParseError::Unknown("RETRIEVE".into()))),
            (
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                Err(ParseError::Unknown("ABCDEFGHIJKLMNOP".into())),
            ),
        ];
        for (line, want) in table {
            assert_eq!(&parse(line), want, "{:?}", String::from_utf8_lossy(line));
        }
    }
}
