//! A raw IMAP client for the scenario tests: sends lines, reads responses
//! with literals inline, and parses a response's parenthesized data into
//! tokens so tests can check FETCH items field by field.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// An environment in development mode (plaintext login allowed).
pub fn dev_env() -> super::Env {
    let mut env = super::Env::new();
    env.config.dev = true;
    env
}

/// Test message number `i`: plain text from Ann to Bob.
pub fn msg(i: usize) -> String {
    format!(
        "From: Ann <ann@example.net>\r\nTo: bob@example.org\r\nSubject: note {i}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m{i}@example.net>\r\n\r\nbody number {i}\r\n"
    )
}

pub struct Client {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> (Client, String) {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut c = Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let greeting = c.line();
        (c, greeting)
    }

    pub fn login(addr: SocketAddr, user: &str) -> Client {
        let (mut c, _) = Client::connect(addr);
        let r = c.cmd(&format!("L LOGIN {user} pw"));
        assert!(r.last().unwrap().starts_with("L OK"), "{r:?}");
        c
    }

    /// Asks STATUS until `folder` holds at least `n` messages (sealed
    /// mail is imported after LOGIN answers); returns the count. Two
    /// minutes at most.
    #[allow(dead_code)] // Not every test binary waits for imports.
    pub fn await_messages(&mut self, folder: &str, n: usize) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let seen: usize = self
                .cmd(&format!("w STATUS {folder} (MESSAGES)"))
                .iter()
                .find_map(|l| {
                    let at = l.find("(MESSAGES ")?;
                    l[at + 10..].trim_end_matches(')').parse().ok()
                })
                .unwrap_or(0);
            if seen >= n {
                return seen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "only {seen} of {n} messages arrived in {folder}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.w.write_all(raw).unwrap();
    }

    /// One response's bytes, without its final CRLF; a literal's bytes
    /// (`{n}` or `~{n}`) are kept inline after their CRLF.
    pub fn line_bytes(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut l = Vec::new();
            self.r.read_until(b'\n', &mut l).unwrap();
            assert!(!l.is_empty(), "connection closed");
            out.extend_from_slice(&l);
            let t = String::from_utf8_lossy(&l).trim_end().to_string();
            if let Some(open) = t.rfind('{')
                && t.ends_with('}')
                && let Ok(n) = t[open + 1..t.len() - 1]
                    .trim_end_matches('+')
                    .parse::<usize>()
            {
                let mut lit = vec![0; n];
                self.r.read_exact(&mut lit).unwrap();
                out.extend_from_slice(&lit);
                continue;
            }
            while out.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
                out.pop();
            }
            return out;
        }
    }

    /// One response line as text (lossy for binary literals).
    pub fn line(&mut self) -> String {
        String::from_utf8_lossy(&self.line_bytes()).to_string()
    }

    /// Sends `line` (which starts with its tag) and returns every response
    /// up to and including the tagged one.
    pub fn cmd(&mut self, line: &str) -> Vec<String> {
        let tag = line.split(' ').next().unwrap().to_string();
        self.send(format!("{line}\r\n").as_bytes());
        self.until(&tag)
    }

    pub fn until(&mut self, tag: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.line();
            let done = l.starts_with(&format!("{tag} "));
            out.push(l);
            if done {
                return out;
            }
        }
    }
}

/// One item of a response's data: an atom (numbers and NIL included), a
/// quoted string or literal, or a parenthesized list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Tok>),
}

impl Tok {
    pub fn atom(&self) -> Option<&str> {
        match self {
            Tok::Atom(a) => Some(a),
            _ => None,
        }
    }

    pub fn list(&self) -> Option<&[Tok]> {
        match self {
            Tok::List(l) => Some(l),
            _ => None,
        }
    }

    /// A string's text; `NIL` is `None`.
    pub fn text(&self) -> Option<String> {
        match self {
            Tok::Str(s) => Some(String::from_utf8_lossy(s).to_string()),
            Tok::Atom(a) if !a.eq_ignore_ascii_case("NIL") => Some(a.clone()),
            _ => None,
        }
    }
}

/// Parses `bytes` (a response after its `* n FETCH ` prefix, or any
/// sequence of items) into tokens. Bracketed section specs such as
/// `BODY[1.MIME]<0>` stay one atom.
pub fn tokens(bytes: &[u8]) -> Vec<Tok> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < bytes.len() {
        if bytes[pos] == b' ' {
            pos += 1;
            continue;
        }
        out.push(token(bytes, &mut pos));
    }
    out
}

fn token(b: &[u8], pos: &mut usize) -> Tok {
    match b[*pos] {
        b'(' => {
            *pos += 1;
            let mut items = Vec::new();
            loop {
                while b.get(*pos) == Some(&b' ') {
                    *pos += 1;
                }
                match b.get(*pos) {
                    Some(b')') => {
                        *pos += 1;
                        return Tok::List(items);
                    }
                    None => return Tok::List(items),
                    _ => items.push(token(b, pos)),
                }
            }
        }
        b'"' => {
            *pos += 1;
            let mut s = Vec::new();
            while *pos < b.len() && b[*pos] != b'"' {
                if b[*pos] == b'\\' {
                    *pos += 1;
                }
                s.push(b[*pos]);
                *pos += 1;
            }
            *pos += 1;
            Tok::Str(s)
        }
        b'{' | b'~' if literal_len(b, *pos).is_some() => {
            let (n, start) = literal_len(b, *pos).unwrap();
            let s = b[start..start + n].to_vec();
            *pos = start + n;
            Tok::Str(s)
        }
        _ => {
            let start = *pos;
            let mut depth = 0;
            while *pos < b.len() {
                let c = b[*pos];
                if c == b'[' {
                    depth += 1;
                } else if c == b']' {
                    depth -= 1;
                } else if depth == 0 && (c == b' ' || c == b')' || c == b'(') {
                    break;
                }
                *pos += 1;
            }
            Tok::Atom(String::from_utf8_lossy(&b[start..*pos]).to_string())
        }
    }
}

/// `{n}\r\n` or `~{n}\r\n` at `pos`: the length and where the bytes start.
fn literal_len(b: &[u8], pos: usize) -> Option<(usize, usize)> {
    let open = if b[pos] == b'~' { pos + 1 } else { pos };
    if b.get(open) != Some(&b'{') {
        return None;
    }
    let close = open + b[open..].iter().position(|&c| c == b'}')?;
    let n: usize = std::str::from_utf8(&b[open + 1..close])
        .ok()?
        .trim_end_matches('+')
        .parse()
        .ok()?;
    let start = close + 3;
    (start + n <= b.len()).then_some((n, start))
}

/// The items of `* n FETCH (...)` as name → value pairs, names uppercased.
pub fn fetch_items(line: &[u8]) -> Option<(u32, Vec<(String, Tok)>)> {
    let text = String::from_utf8_lossy(line);
    let rest = text.strip_prefix("* ")?;
    let (n, rest) = rest.split_once(' ')?;
    let n: u32 = n.parse().ok()?;
    if !rest.starts_with("FETCH (") {
        return None;
    }
    let at = line.iter().position(|&c| c == b'(')?;
    let toks = tokens(&line[at..]);
    let list = toks.first()?.list()?;
    let mut out = Vec::new();
    let mut it = list.iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        out.push((name.atom()?.to_ascii_uppercase(), value.clone()));
    }
    Some((n, out))
}
