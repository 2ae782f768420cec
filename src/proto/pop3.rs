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
}
