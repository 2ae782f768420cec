//! RFC 5322 §3.4 address lists, obsolete forms included (§4.4: source
//! routes, `.` in phrases, comments and folding anywhere), as IMAP's
//! ENVELOPE needs them (RFC 3501 §7.4.2): display name, source route,
//! mailbox and host per address, and groups as a start and an end marker.
//!
//! Imports nothing. Invariants: total over any input (unbalanced quotes,
//! brackets and comments end at the end of the value); memory is linear in
//! the input; comment nesting is counted, not recursed.
#![deny(clippy::indexing_slicing)]

use serde::{Deserialize, Serialize};

/// One address; a group start is `mailbox: Some(name), host: None`, a group
/// end is all `None`, as RFC 3501 encodes groups.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Address {
    pub name: Option<String>,
    /// The obsolete source route, `@a,@b` (RFC 5322 §4.4 obs-route).
    #[serde(default)]
    pub adl: Option<String>,
    pub mailbox: Option<String>,
    pub host: Option<String>,
}

impl Address {
    /// `Name <mailbox@host>`, `mailbox@host`, or the group name: the form
    /// SEARCH matches against, comments and folding removed.
    pub fn canonical(&self) -> String {
        let spec = match (&self.mailbox, &self.host) {
            (Some(m), Some(h)) => format!("{m}@{h}"),
            (Some(m), None) => m.clone(),
            _ => String::new(),
        };
        match &self.name {
            Some(n) if self.host.is_some() => format!("{n} <{spec}>"),
            _ => spec,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// An atom; `space` is whether whitespace or a comment came before it.
    Atom(String, bool),
    Quoted(String, bool),
    Comment(String),
    Literal(String),
    Special(char),
}

fn tokens(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    let mut space = false;
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => space = true,
            '(' => {
                let mut depth = 1usize;
                let mut text = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => text.extend(chars.next()),
                        '(' => {
                            depth += 1;
                            text.push(c);
                        }
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            text.push(c);
                        }
                        c => text.push(c),
                    }
                }
                out.push(Tok::Comment(text.trim().to_string()));
                space = true;
            }
            '"' => {
                let mut text = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => text.extend(chars.next()),
                        '"' => break,
                        '\r' | '\n' => {}
                        c => text.push(c),
                    }
                }
                out.push(Tok::Quoted(text, space));
                space = false;
            }
            '[' => {
                let mut text = String::from("[");
                for c in chars.by_ref() {
                    text.push(c);
                    if c == ']' {
                        break;
                    }
                }
                out.push(Tok::Literal(text));
                space = false;
            }
            '<' | '>' | '@' | ',' | ';' | ':' | '.' => {
                out.push(Tok::Special(c));
                space = false;
            }
            c => {
                let mut text = String::from(c);
                while let Some(&n) = chars.peek() {
                    if matches!(
                        n,
                        ' ' | '\t'
                            | '\r'
                            | '\n'
                            | '('
                            | '"'
                            | '['
                            | '<'
                            | '>'
                            | '@'
                            | ','
                            | ';'
                            | ':'
                            | '.'
                    ) {
                        break;
                    }
                    text.push(n);
                    chars.next();
                }
                out.push(Tok::Atom(text, space));
                space = false;
            }
        }
    }
    out
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn special(&self) -> Option<char> {
        match self.peek() {
            Some(Tok::Special(c)) => Some(*c),
            _ => None,
        }
    }

    /// Words up to a special other than `.`: a display name or a local
    /// part. Returns the words as a phrase (spaces between words) and as
    /// a local part (joined as written), and the last comment seen.
    fn words(&mut self) -> Words {
        let mut w = Words::default();
        while let Some(t) = self.peek() {
            match t {
                Tok::Atom(a, space) | Tok::Quoted(a, space) => {
                    if !w.phrase.is_empty() && (*space || !w.after_dot) {
                        w.phrase.push(' ');
                    }
                    w.phrase.push_str(a);
                    w.local.push_str(a);
                    w.after_dot = false;
                    w.any = true;
                }
                Tok::Special('.') => {
                    w.phrase.push('.');
                    w.local.push('.');
                    w.after_dot = true;
                }
                Tok::Comment(c) => {
                    if !c.is_empty() {
                        w.comment = Some(c.clone());
                    }
                }
                Tok::Literal(l) => {
                    w.phrase.push_str(l);
                    w.local.push_str(l);
                    w.any = true;
                }
                Tok::Special(_) => break,
            }
            self.pos += 1;
        }
        w
    }

    /// A domain after `@`: atoms, dots and literals up to a special, with
    /// comments dropped.
    fn domain(&mut self) -> (String, Option<String>) {
        let mut d = String::new();
        let mut comment = None;
        while let Some(t) = self.peek() {
            match t {
                Tok::Atom(a, _) | Tok::Quoted(a, _) | Tok::Literal(a) => d.push_str(a),
                Tok::Special('.') => d.push('.'),
                Tok::Comment(c) => {
                    if !c.is_empty() {
                        comment = Some(c.clone());
                    }
                }
                Tok::Special(_) => break,
            }
            self.pos += 1;
        }
        (d, comment)
    }

    /// After `<`: an optional source route, the addr-spec, then `>`.
    fn angle(&mut self, name: Option<String>) -> Address {
        let mut adl = Vec::new();
        // obs-route: ("@" domain) *("," ["@" domain]) ":"
        let start = self.pos;
        while let Some(c) = self.special() {
            match c {
                '@' => {
                    self.pos += 1;
                    let (d, _) = self.domain();
                    adl.push(format!("@{d}"));
                }
                ',' => self.pos += 1,
                ':' if !adl.is_empty() => {
                    self.pos += 1;
                    break;
                }
                _ => break,
            }
        }
        if !adl.is_empty() && self.toks.get(self.pos.wrapping_sub(1)) != Some(&Tok::Special(':')) {
            // Not a route after all: read from the start as an addr-spec.
            self.pos = start;
            adl.clear();
        }
        let local = self.words();
        let (host, _) = if self.special() == Some('@') {
            self.pos += 1;
            let (d, c) = self.domain();
            (Some(d), c)
        } else {
            (None, None)
        };
        // Anything up to `>` is ignored.
        while let Some(t) = self.peek() {
            let end = *t == Tok::Special('>');
            self.pos += 1;
            if end {
                break;
            }
        }
        Address {
            name,
            adl: (!adl.is_empty()).then(|| adl.join(",")),
            mailbox: Some(local.local),
            host,
        }
    }

    /// One mailbox (inside a group or at the top); `None` when there is no
    /// address before the next `,` `;` or the end.
    fn mailbox(&mut self) -> Option<Address> {
        let w = self.words();
        match self.special() {
            Some('<') => {
                self.pos += 1;
                let name = if w.any {
                    Some(w.phrase)
                } else {
                    w.comment.clone()
                };
                let mut a = self.angle(name);
                // A comment after `>` names the address only if nothing did.
                let trailing = self.words();
                if a.name.is_none() {
                    a.name = trailing.comment;
                }
                Some(a)
            }
            Some('@') => {
                self.pos += 1;
                let (host, comment) = self.domain();
                let trailing = self.words();
                Some(Address {
                    name: trailing.comment.or(comment).or(w.comment),
                    adl: None,
                    mailbox: Some(w.local),
                    host: Some(host),
                })
            }
            _ if w.any => Some(Address {
                name: w.comment,
                adl: None,
                mailbox: Some(w.local),
                host: None,
            }),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Words {
    phrase: String,
    local: String,
    comment: Option<String>,
    after_dot: bool,
    any: bool,
}

/// Parses an address-list header value (unfolded or not).
pub fn parse_list(value: &str) -> Vec<Address> {
    let mut p = Parser {
        toks: tokens(value),
        pos: 0,
    };
    let mut out = Vec::new();
    while p.pos < p.toks.len() {
        let start = p.pos;
        let w = p.words();
        if p.special() == Some(':') && w.any {
            // A group: its name, its mailboxes, then its end.
            p.pos += 1;
            out.push(Address {
                mailbox: Some(w.phrase),
                ..Address::default()
            });
            loop {
                match p.special() {
                    Some(';') => {
                        p.pos += 1;
                        break;
                    }
                    Some(',') => p.pos += 1,
                    None if p.peek().is_none() => break,
                    _ => {
                        let before = p.pos;
                        out.extend(p.mailbox());
                        if p.pos == before {
                            p.pos += 1;
                        }
                    }
                }
            }
            out.push(Address::default());
            continue;
        }
        p.pos = start;
        match p.special() {
            Some(',') | Some(';') | Some('>') | Some(':') => p.pos += 1,
            _ => {
                out.extend(p.mailbox());
                if p.pos == start {
                    p.pos += 1;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: Option<&str>, adl: Option<&str>, mailbox: &str, host: Option<&str>) -> Address {
        Address {
            name: name.map(str::to_string),
            adl: adl.map(str::to_string),
            mailbox: Some(mailbox.to_string()),
            host: host.map(str::to_string),
        }
    }

    fn group(name: &str) -> Address {
        Address {
            mailbox: Some(name.to_string()),
            ..Address::default()
        }
    }

    #[test]
    fn address_table() {
        let end = Address::default();
        let table: Vec<(&str, Vec<Address>)> = vec![
            (
                "ann@example.net",
                vec![a(None, None, "ann", Some("example.net"))],
            ),
            (
                "Ann Lee <ann@example.net>",
                vec![a(Some("Ann Lee"), None, "ann", Some("example.net"))],
            ),
            (
                "\"Lee, Ann\" <ann@example.net>",
                vec![a(Some("Lee, Ann"), None, "ann", Some("example.net"))],
            ),
            // The name from a comment when there is no phrase.
            (
                "ann@example.net (Ann Lee)",
                vec![a(Some("Ann Lee"), None, "ann", Some("example.net"))],
            ),
            // Comments inside the address are dropped.
            (
                "<ann (c)@ (c) example.org>",
                vec![a(None, None, "ann", Some("example.org"))],
            ),
            // A source route goes in adl.
            (
                "Ann <@relay.example,@hub.example:ann@example.net>",
                vec![a(
                    Some("Ann"),
                    Some("@relay.example,@hub.example"),
                    "ann",
                    Some("example.net"),
                )],
            ),
            // Several groups, each with a start and an end.
            (
                "A: a@x.org, b@x.org;, B: ;, c@y.org",
                vec![
                    group("A"),
                    a(None, None, "a", Some("x.org")),
                    a(None, None, "b", Some("x.org")),
                    end.clone(),
                    group("B"),
                    end.clone(),
                    a(None, None, "c", Some("y.org")),
                ],
            ),
            (
                "undisclosed-recipients:;",
                vec![group("undisclosed-recipients"), end.clone()],
            ),
            // Obsolete phrase with dots, quoted local part, domain literal.
            (
                "John Q. Public <\"john q\"@[192.0.2.1]>",
                vec![a(
                    Some("John Q. Public"),
                    None,
                    "john q",
                    Some("[192.0.2.1]"),
                )],
            ),
            ("", vec![]),
            ("<>", vec![a(None, None, "", None)]),
            ("ann", vec![a(None, None, "ann", None)]),
            // Broken input ends at the end.
            (
                "\"unterminated <a@b",
                vec![a(None, None, "unterminated <a@b", None)],
            ),
            ("(((", vec![]),
        ];
        for (input, want) in table {
            assert_eq!(parse_list(input), want, "{input:?}");
        }
        assert_eq!(
            a(Some("Ann"), None, "ann", Some("x.org")).canonical(),
            "Ann <ann@x.org>"
        );
    }

    #[test]
    fn garbage_is_total() {
        for s in [
            "<<<>>>,,;;::@@..",
            "a:b:c:d;",
            "@a,@b",
            "<@a,@b>",
            "\\",
            "((\\",
        ] {
            let _ = parse_list(s);
        }
        let deep = "(".repeat(100_000);
        assert!(parse_list(&deep).is_empty());
    }
}
