//! SMTP commands (RFC 5321 with RFC 1870 SIZE, 6152 8BITMIME, 6531 SMTPUTF8,
//! 3030 CHUNKING, 3207 STARTTLS) and the DATA receiver.
//!
//! Imports nothing of ours. Invariants: parsing is total; paths are
//! bounded (local part 64, whole path 256 octets, RFC 5321 §4.5.3.1); the
//! DATA receiver ends a message only at `<CRLF>.<CRLF>` — a bare LF or CR
//! and their dot variants are message content, so a smuggled second message
//! can never be split off (CVE-2023-51764 class).

/// Longest command line accepted, CRLF excluded (RFC 5321 §4.5.3.1.4 says
/// 512 with CRLF; extensions may add parameters, so a little more).
pub const MAX_LINE: usize = 1000;
const MAX_PATH: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    /// MAIL FROM: the reverse path (empty for `<>`) and its parameters.
    Mail {
        from: String,
        size: Option<u64>,
        smtputf8: bool,
    },
    Rcpt(String),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Help,
    StartTls,
    /// AUTH mechanism [initial-response] (RFC 4954).
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// 500 5.5.2
    Unknown,
    /// 501 5.5.4, with what is wrong.
    Syntax(&'static str),
}

/// Parses one command line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    // NUL, a bare CR and other controls have no place in a command (a CR
    // could make one line read as two elsewhere).
    if line.iter().any(|&b| b < b' ' && b != b'\t' || b == 0x7f) {
        return Err(ParseError::Syntax("control characters are not allowed"));
    }
    let text =
        std::str::from_utf8(line).map_err(|_| ParseError::Syntax("command is not valid UTF-8"))?;
    let (verb, rest) = match text.split_once(' ') {
        Some((v, r)) => (v, r.trim_ascii()),
        None => (text, ""),
    };
    let none = |c: Command| {
        if rest.is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax("no arguments allowed"))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" | "HELO" => {
            let domain = rest.split(' ').next().unwrap_or("");
            if domain.is_empty() || domain.len() > 255 || domain.chars().any(|c| c.is_control()) {
                return Err(ParseError::Syntax("expected a domain or address literal"));
            }
            if verb.eq_ignore_ascii_case("EHLO") {
                Ok(Command::Ehlo(domain.to_string()))
            } else {
                Ok(Command::Helo(domain.to_string()))
            }
        }
        "MAIL" => mail(rest),
        "RCPT" => {
            let arg = strip_keyword(rest, "TO:")
                .ok_or(ParseError::Syntax("expected RCPT TO:<address>"))?;
            // `<Postmaster>` needs no domain (RFC 5321 §4.1.1.3).
            if arg
                .get(..12)
                .is_some_and(|p| p.eq_ignore_ascii_case("<postmaster>"))
            {
                return Ok(Command::Rcpt(POSTMASTER.into()));
            }
            let (path, _params) = path(arg)?;
            if path.is_empty() {
                return Err(ParseError::Syntax("the recipient may not be empty"));
            }
            Ok(Command::Rcpt(path))
        }
        "DATA" => none(Command::Data),
        "BDAT" => {
            let mut words = rest.split(' ').filter(|w| !w.is_empty());
            let size = words
                .next()
                .filter(|w| w.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|w| w.parse::<u64>().ok())
                .ok_or(ParseError::Syntax("expected BDAT chunk-size [LAST]"))?;
            let last = match words.next() {
                None => false,
                Some(w) if w.eq_ignore_ascii_case("LAST") => true,
                Some(_) => return Err(ParseError::Syntax("expected BDAT chunk-size [LAST]")),
            };
            if words.next().is_some() {
                return Err(ParseError::Syntax("expected BDAT chunk-size [LAST]"));
            }
            Ok(Command::Bdat { size, last })
        }
        "RSET" => none(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => none(Command::Quit),
        "VRFY" | "EXPN" => Ok(Command::Vrfy),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => none(Command::StartTls),
        "AUTH" => {
            let mut words = rest.split(' ').filter(|w| !w.is_empty());
            let mechanism = words
                .next()
                .filter(|m| m.len() <= 20)
                .ok_or(ParseError::Syntax(
                    "expected AUTH mechanism [initial-response]",
                ))?
                .to_ascii_uppercase();
            let initial = words.next().map(str::to_string);
            if words.next().is_some() {
                return Err(ParseError::Syntax(
                    "expected AUTH mechanism [initial-response]",
                ));
            }
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(ParseError::Unknown),
    }
}

/// A command as a client writes it (without CRLF): `parse`'s inverse, so
/// that `parse(encode(c)) == c` for every command `parse` returns.
pub fn encode(cmd: &Command) -> String {
    match cmd {
        Command::Ehlo(d) => format!("EHLO {d}"),
        Command::Helo(d) => format!("HELO {d}"),
        Command::Mail {
            from,
            size,
            smtputf8,
        } => {
            let mut line = format!("MAIL FROM:<{from}>");
            if let Some(n) = size {
                line.push_str(&format!(" SIZE={n}"));
            }
            if *smtputf8 {
                line.push_str(" SMTPUTF8");
            }
            line
        }
        Command::Rcpt(to) => format!("RCPT TO:<{to}>"),
        Command::Data => "DATA".into(),
        Command::Bdat { size, last: true } => format!("BDAT {size} LAST"),
        Command::Bdat { size, last: false } => format!("BDAT {size}"),
        Command::Rset => "RSET".into(),
        Command::Noop => "NOOP".into(),
        Command::Quit => "QUIT".into(),
        Command::Vrfy => "VRFY".into(),
        Command::Help => "HELP".into(),
        Command::StartTls => "STARTTLS".into(),
        Command::Auth {
            mechanism,
            initial: Some(i),
        } => format!("AUTH {mechanism} {i}"),
        Command::Auth {
            mechanism,
            initial: None,
        } => format!("AUTH {mechanism}"),
    }
}

fn strip_keyword<'a>(s: &'a str, kw: &str) -> Option<&'a str> {
    let head = s.get(..kw.len())?;
    let rest = s.get(kw.len()..)?;
    head.eq_ignore_ascii_case(kw).then(|| rest.trim_start())
}

fn mail(rest: &str) -> Result<Command, ParseError> {
    let arg =
        strip_keyword(rest, "FROM:").ok_or(ParseError::Syntax("expected MAIL FROM:<address>"))?;
    let (from, params) = path(arg)?;
    let mut size = None;
    let mut smtputf8 = false;
    for p in params.split(' ').filter(|p| !p.is_empty()) {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        match k.to_ascii_uppercase().as_str() {
            "SIZE" => {
                size = Some(
                    v.parse::<u64>()
                        .map_err(|_| ParseError::Syntax("SIZE needs a number"))?,
                )
            }
            "BODY" if v.eq_ignore_ascii_case("8BITMIME") || v.eq_ignore_ascii_case("7BIT") => {}
            "BODY" if v.eq_ignore_ascii_case("BINARYMIME") => {
                return Err(ParseError::Syntax("BODY=BINARYMIME is not supported"));
            }
            "SMTPUTF8" => smtputf8 = true,
            // RFC 5321 §4.1.1.11: unknown parameters are refused (555).
            _ => return Err(ParseError::Syntax("unknown MAIL parameter")),
        }
    }
    Ok(Command::Mail {
        from,
        size,
        smtputf8,
    })
}

/// What `RCPT TO:<Postmaster>` (any case, no domain) parses to: the
/// server's own postmaster, resolved by the MX.
pub const POSTMASTER: &str = "postmaster";

/// `<path> params`: the address (source route dropped, RFC 5321 §4.1.1.3)
/// and the parameter text after it.
fn path(s: &str) -> Result<(String, &str), ParseError> {
    let inner_end = s
        .find('>')
        .ok_or(ParseError::Syntax("addresses go in angle brackets"))?;
    let inner = s
        .strip_prefix('<')
        .ok_or(ParseError::Syntax("addresses go in angle brackets"))?
        .get(..inner_end - 1)
        .unwrap_or("");
    let params = s.get(inner_end + 1..).unwrap_or("").trim_ascii();
    let addr = match inner.rsplit_once(':') {
        Some((route, a)) if route.starts_with('@') => a,
        _ => inner,
    };
    if addr.len() > MAX_PATH {
        return Err(ParseError::Syntax("address too long"));
    }
    if addr.is_empty() {
        return Ok((String::new(), params));
    }
    let (local, domain) = addr
        .rsplit_once('@')
        .ok_or(ParseError::Syntax("address needs a domain"))?;
    if local.is_empty() || local.len() > 64 || domain.is_empty() {
        return Err(ParseError::Syntax("malformed address"));
    }
    if addr
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '<')
    {
        return Err(ParseError::Syntax("malformed address"));
    }
    Ok((addr.to_string(), params))
}

/// Receives DATA bytes: undoes dot-stuffing and stops at `<CRLF>.<CRLF>`.
pub struct DataReceiver {
    state: State,
    max: usize,
    out: Vec<u8>,
    /// Bytes of message so far, taken or not.
    total: usize,
    /// The message grew past `max`; the rest is read and dropped.
    pub too_big: bool,
    /// The message is not kept (no memory for it); the rest is read and
    /// dropped.
    pub dropped: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or at the very start).
    LineStart,
    Middle,
    /// Saw CR in the middle of a line.
    Cr,
    /// Saw `.` at a line start.
    Dot,
    /// Saw `.` CR at a line start.
    DotCr,
}

impl DataReceiver {
    pub fn new(max: usize) -> DataReceiver {
        DataReceiver {
            state: State::LineStart,
            max,
            out: Vec::new(),
            total: 0,
            too_big: false,
            dropped: false,
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        if self.total + bytes.len() > self.max {
            self.too_big = true;
            self.out = Vec::new();
        }
        if self.too_big || self.dropped {
            return;
        }
        self.total += bytes.len();
        if self.out.capacity() - self.out.len() < bytes.len() {
            // Grown by an eighth at a time, not doubled: what is held stays
            // close to what arrived (see `held`).
            let more = (self.out.len() / 8).max(64 * 1024).max(bytes.len());
            self.out
                .reserve_exact(more.min(self.max.saturating_sub(self.total).max(bytes.len())));
        }
        self.out.extend_from_slice(bytes);
    }

    /// Allocates room for `n` bytes of message at once (a size the client
    /// declared), at most the limit.
    pub fn expect(&mut self, n: usize) {
        self.out.reserve_exact(n.min(self.max));
    }

    /// Memory held for the message so far (its buffer, as allocated).
    pub fn held(&self) -> usize {
        self.out.capacity()
    }

    /// Bytes of message in the buffer now.
    pub fn buffered(&self) -> usize {
        self.out.len()
    }

    /// Takes the buffered bytes (the caller keeps them elsewhere); the
    /// buffer keeps its size for what follows.
    pub fn take(&mut self) -> Vec<u8> {
        let room = self.out.capacity();
        std::mem::replace(&mut self.out, Vec::with_capacity(room))
    }

    /// Stops keeping the message; the rest is still read, to its end mark.
    pub fn drop_message(&mut self) {
        self.dropped = true;
        self.out = Vec::new();
    }

    /// Feeds bytes; returns how many were consumed and whether the end
    /// mark was reached (bytes after it are the client's next commands).
    pub fn feed(&mut self, data: &[u8]) -> (usize, bool) {
        for (i, &b) in data.iter().enumerate() {
            self.state = match (self.state, b) {
                (State::LineStart, b'.') => State::Dot,
                (State::Dot, b'\r') => State::DotCr,
                (State::DotCr, b'\n') => return (i + 1, true),
                (State::Dot, _) => {
                    // A stuffed dot: drop it, keep what follows.
                    self.byte(b)
                }
                (State::DotCr, _) => {
                    self.emit(b"\r");
                    self.byte(b)
                }
                (State::Cr, b'\n') => {
                    self.emit(b"\r\n");
                    State::LineStart
                }
                (State::Cr, _) => {
                    self.emit(b"\r");
                    self.byte(b)
                }
                (State::LineStart | State::Middle, _) => self.byte(b),
            };
        }
        (data.len(), false)
    }

    fn byte(&mut self, b: u8) -> State {
        if b == b'\r' {
            State::Cr
        } else {
            self.emit(&[b]);
            State::Middle
        }
    }

    pub fn into_message(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse(b"EHLO mx.example.net"),
            Ok(Command::Ehlo("mx.example.net".into()))
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b.org> SIZE=1000 BODY=8BITMIME"),
            Ok(Command::Mail {
                from: "a@b.org".into(),
                size: Some(1000),
                smtputf8: false
            })
        );
        assert_eq!(
            parse(b"mail from:<>"),
            Ok(Command::Mail {
                from: String::new(),
                size: None,
                smtputf8: false
            })
        );
        assert_eq!(
            parse(b"RCPT TO:<@relay.org:ann@example.org>"),
            Ok(Command::Rcpt("ann@example.org".into()))
        );
        assert_eq!(
            parse(b"RCPT TO:<>"),
            Err(ParseError::Syntax("the recipient may not be empty"))
        );
        assert_eq!(
            parse(b"RCPT TO:ann@example.org"),
            Err(ParseError::Syntax("addresses go in angle brackets"))
        );
        assert_eq!(
            parse(b"MAIL FROM:<a@b> FOO=1"),
            Err(ParseError::Syntax("unknown MAIL parameter"))
        );
        assert_eq!(
            parse(b"BDAT 100 LAST"),
            Ok(Command::Bdat {
                size: 100,
                last: true
            })
        );
        assert_eq!(
            parse(b"BDAT -1"),
            Err(ParseError::Syntax("expected BDAT chunk-size [LAST]"))
        );
        assert_eq!(parse(b"XYZZY"), Err(ParseError::Unknown));
        assert_eq!(
            parse(b"DATA x"),
            Err(ParseError::Syntax("no arguments allowed"))
        );
        assert_eq!(
            parse(b"\xff"),
            Err(ParseError::Syntax("command is not valid UTF-8"))
        );
        let long = format!("RCPT TO:<{}@x.org>", "a".repeat(300));
        assert!(parse(long.as_bytes()).is_err());
    }

    fn receive(input: &[u8]) -> (Vec<u8>, usize, bool) {
        let mut r = DataReceiver::new(1 << 20);
        let (n, done) = r.feed(input);
        (r.into_message(), n, done)
    }

    #[test]
    fn only_crlf_dot_crlf_ends_data() {
        let (m, n, done) = receive(b"a\r\n..b\r\n.\r\nMAIL FROM:<x@y>\r\n");
        assert!(done);
        assert_eq!(m, b"a\r\n.b\r\n");
        assert_eq!(n, 11);
        for smuggle in [&b"\n.\n"[..], b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\r.\r"] {
            let mut input = b"Subject: x\r\n\r\nbody".to_vec();
            input.extend_from_slice(smuggle);
            input.extend_from_slice(b"MAIL FROM:<evil@x>\r\nRCPT TO:<a@b>\r\nDATA\r\nsmuggled");
            let (_, _, done) = receive(&input);
            assert!(!done, "{smuggle:?} must not end DATA");
        }
    }

    #[test]
    fn split_feeds_and_limits() {
        let mut r = DataReceiver::new(1 << 20);
        for b in b"x\r\n.\r" {
            assert!(!r.feed(&[*b]).1);
        }
        assert!(r.feed(b"\n").1);
        assert_eq!(r.into_message(), b"x\r\n");
        let mut r = DataReceiver::new(4);
        assert!(r.feed(b"12345\r\n.\r\n").1);
        assert!(r.too_big);
        let (m, _, done) = receive(b".\r\n");
        assert!(done && m.is_empty());
    }

    #[test]
    fn taken_bytes_still_count_toward_the_limit() {
        let mut r = DataReceiver::new(10);
        assert!(!r.feed(b"12345\r\n").1);
        assert_eq!(r.buffered(), 7);
        assert_eq!(r.take(), b"12345\r\n");
        assert_eq!(r.buffered(), 0);
        assert!(!r.feed(b"..ab").1);
        assert!(!r.too_big);
        assert_eq!(r.take(), b".ab");
        assert!(r.feed(b"c\r\n.\r\n").1);
        assert!(r.too_big, "7 + 3 + 3 bytes are over 10");
    }

    /// For the inputs below and byte-level mutations of them: whatever
    /// parses encodes to a line that parses to the same command.
    #[test]
    fn encode_is_the_inverse_of_parse() {
        let lines: &[&[u8]] = &[
            b"EHLO mail.example.org",
            b"HELO [127.0.0.1]",
            b"MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8",
            b"MAIL FROM:<>",
            b"mail from:<@r1,@r2:u@example.org>",
            b"RCPT TO:<user@example.org> NOTIFY=NEVER",
            b"BDAT 100 LAST",
            b"BDAT 0",
            b"AUTH PLAIN AGFubgBwdw==",
            b"AUTH login",
            b"DATA",
            b"RSET",
            b"NOOP x",
            b"QUIT",
            b"VRFY x",
            b"EXPN list",
            b"HELP me",
            b"STARTTLS",
        ];
        let mut parsed = 0;
        for line in super::super::mutations(lines, b" <>:@=.0a", 25, 100_000) {
            if let Ok(cmd) = parse(&line) {
                parsed += 1;
                assert_eq!(parse(encode(&cmd).as_bytes()), Ok(cmd.clone()), "{line:?}");
            }
        }
        assert!(parsed > 10_000, "{parsed}");
    }

    /// One row per command form and per refusal, with the exact bytes.
    #[test]
    fn every_form_and_every_refusal() {
        use Command as C;
        let syntax = |w: &'static str| Err(ParseError::Syntax(w));
        let mail = |from: &str, size: Option<u64>, smtputf8: bool| {
            Ok(C::Mail {
                from: from.into(),
                size,
                smtputf8,
            })
        };
        let table: &[(&[u8], Result<Command, ParseError>)] = &[
            (b"EHLO a.example", Ok(C::Ehlo("a.example".into()))),
            // Only ASCII space and tab separate and are trimmed: a no-break
            // space stays part of the word, as it does when encoded again.
            (
                "EHLO a.example\u{a0}".as_bytes(),
                Ok(C::Ehlo("a.example\u{a0}".into())),
            ),
            ("HELO [\u{a0} x".as_bytes(), Ok(C::Helo("[\u{a0}".into()))),
            (b"ehlo [192.0.2.1] extra", Ok(C::Ehlo("[192.0.2.1]".into()))),
            (b"HELO a", Ok(C::Helo("a".into()))),
            (b"EHLO", syntax("expected a domain or address literal")),
            (b"EHLO ", syntax("expected a domain or address literal")),
            (b"MAIL FROM:<a@b.c>", mail("a@b.c", None, false)),
            (b"MAIL FROM: <a@b.c>", mail("a@b.c", None, false)),
            (b"MAIL FROM:<a@b.c> SIZE=0", mail("a@b.c", Some(0), false)),
            (
                b"MAIL FROM:<a@b.c> size=5 smtputf8",
                mail("a@b.c", Some(5), true),
            ),
            (b"MAIL FROM:<a@b.c> BODY=7BIT", mail("a@b.c", None, false)),
            (b"MAIL FROM:<>", mail("", None, false)),
            (b"MAIL FROM:<@x.org:a@b.c>", mail("a@b.c", None, false)),
            (b"MAIL FROM:<a@b.c> SIZE=x", syntax("SIZE needs a number")),
            (
                b"MAIL FROM:<a@b.c> BODY=BINARYMIME",
                syntax("BODY=BINARYMIME is not supported"),
            ),
            (
                b"MAIL FROM:<a@b.c> AUTH=<>",
                syntax("unknown MAIL parameter"),
            ),
            (b"MAIL TO:<a@b.c>", syntax("expected MAIL FROM:<address>")),
            (b"MAIL", syntax("expected MAIL FROM:<address>")),
            (b"MAIL FROM:a@b.c", syntax("addresses go in angle brackets")),
            (
                b"MAIL FROM:<a@b.c",
                syntax("addresses go in angle brackets"),
            ),
            (b"MAIL FROM:<ab.c>", syntax("address needs a domain")),
            (b"MAIL FROM:<@b.c>", syntax("malformed address")),
            (b"MAIL FROM:<a@>", syntax("malformed address")),
            (b"MAIL FROM:<a b@c.d>", syntax("malformed address")),
            (b"RCPT TO:<a@b.c>", Ok(C::Rcpt("a@b.c".into()))),
            (b"rcpt to:<a@b.c> NOTIFY=NEVER", Ok(C::Rcpt("a@b.c".into()))),
            (b"RCPT TO:<Postmaster>", Ok(C::Rcpt("postmaster".into()))),
            (
                b"RCPT TO:<POSTMASTER> NOTIFY=NEVER",
                Ok(C::Rcpt("postmaster".into())),
            ),
            (b"RCPT TO:<postmasters>", syntax("address needs a domain")),
            (
                b"RCPT TO:<Postmaster@b.c>",
                Ok(C::Rcpt("Postmaster@b.c".into())),
            ),
            (b"RCPT FROM:<a@b.c>", syntax("expected RCPT TO:<address>")),
            (b"RCPT TO:<>", syntax("the recipient may not be empty")),
            (b"DATA", Ok(C::Data)),
            (b"DATA now", syntax("no arguments allowed")),
            (
                b"BDAT 0",
                Ok(C::Bdat {
                    size: 0,
                    last: false,
                }),
            ),
            (
                b"BDAT 7 last",
                Ok(C::Bdat {
                    size: 7,
                    last: true,
                }),
            ),
            (b"BDAT", syntax("expected BDAT chunk-size [LAST]")),
            (b"BDAT 1 LAST x", syntax("expected BDAT chunk-size [LAST]")),
            (b"BDAT 1 FIRST", syntax("expected BDAT chunk-size [LAST]")),
            (
                b"BDAT 99999999999999999999",
                syntax("expected BDAT chunk-size [LAST]"),
            ),
            (b"RSET", Ok(C::Rset)),
            (b"RSET x", syntax("no arguments allowed")),
            (b"NOOP", Ok(C::Noop)),
            (b"NOOP anything", Ok(C::Noop)),
            (b"QUIT", Ok(C::Quit)),
            (b"QUIT now", syntax("no arguments allowed")),
            (b"VRFY a", Ok(C::Vrfy)),
            (b"EXPN list", Ok(C::Vrfy)),
            (b"HELP", Ok(C::Help)),
            (b"STARTTLS", Ok(C::StartTls)),
            (b"STARTTLS x", syntax("no arguments allowed")),
            (
                b"AUTH plain AGFubgBwdw==",
                Ok(C::Auth {
                    mechanism: "PLAIN".into(),
                    initial: Some("AGFubgBwdw==".into()),
                }),
            ),
            (
                b"AUTH LOGIN",
                Ok(C::Auth {
                    mechanism: "LOGIN".into(),
                    initial: None,
                }),
            ),
            (
                b"AUTH",
                syntax("expected AUTH mechanism [initial-response]"),
            ),
            (
                b"AUTH PLAIN a b",
                syntax("expected AUTH mechanism [initial-response]"),
            ),
            (
                b"AUTH ABCDEFGHIJKLMNOPQRSTU",
                syntax("expected AUTH mechanism [initial-response]"),
            ),
            (b"XYZZY", Err(ParseError::Unknown)),
            (b"", Err(ParseError::Unknown)),
            (
                b"MAIL FROM:<a@b.c>\rRCPT TO:<d@e.f>",
                syntax("control characters are not allowed"),
            ),
            (b"NOOP \x00", syntax("control characters are not allowed")),
            (b"NOOP \x7f", syntax("control characters are not allowed")),
            (b"NOOP \xc3", syntax("command is not valid UTF-8")),
        ];
        for (line, want) in table {
            assert_eq!(&parse(line), want, "{:?}", String::from_utf8_lossy(line));
        }
        let at_limit = format!("RCPT TO:<{}@b.c>", "a".repeat(64));
        assert!(parse(at_limit.as_bytes()).is_ok());
        let local = format!("RCPT TO:<{}@b.c>", "a".repeat(65));
        assert_eq!(parse(local.as_bytes()), syntax("malformed address"));
        let path = format!("RCPT TO:<a@{}.c>", "b".repeat(255));
        assert_eq!(parse(path.as_bytes()), syntax("address too long"));
    }
}
