//! The lexer under every IMAP command: bytes, atoms, numbers, strings
//! (quoted and literal), sequence sets and flag lists (RFC 3501 §9).
//!
//! Imports the parent's types. Invariants: it never reads past the input;
//! parenthesis depth is counted on `open` and refused past `MAX_DEPTH`.

use super::{
    ANSWERED, DELETED, DRAFT, Error, Expected, FLAGGED, FlagList, MAX_DEPTH, R, SEEN, SeqNum,
    SeqSet,
};

pub(super) struct Parser<'a> {
    pub(super) b: &'a [u8],
    pub(super) pos: usize,
    pub(super) depth: usize,
}

pub(super) fn is_atom_char(c: u8) -> bool {
    c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

pub(super) fn is_astring_char(c: u8) -> bool {
    is_atom_char(c) || c == b']'
}

pub(super) fn is_list_char(c: u8) -> bool {
    is_astring_char(c) || c == b'%' || c == b'*'
}

impl<'a> Parser<'a> {
    pub(super) fn new(b: &'a [u8]) -> Parser<'a> {
        Parser {
            b,
            pos: 0,
            depth: 0,
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    pub(super) fn expect(&mut self, c: u8) -> R<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Error::Expected {
                what: Expected::Char(c),
                at: self.pos,
            })
        }
    }

    pub(super) fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }

    pub(super) fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// What is left of the input.
    pub(super) fn rest(&self) -> &'a [u8] {
        self.b.get(self.pos..).unwrap_or_default()
    }

    pub(super) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.b.get(start..self.pos).unwrap_or_default()
    }

    pub(super) fn tag(&mut self) -> R<String> {
        let t = self.take_while(|c| is_astring_char(c) && c != b'+');
        if t.is_empty() {
            return Err(Error::NoTag);
        }
        Ok(String::from_utf8_lossy(t).into_owned())
    }

    pub(super) fn atom(&mut self) -> R<String> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err(Error::Expected {
                what: Expected::Atom,
                at: self.pos,
            });
        }
        Ok(String::from_utf8_lossy(a).into_owned())
    }

    /// Enters a parenthesised list, bounding the depth.
    pub(super) fn open(&mut self) -> R<()> {
        self.expect(b'(')?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::TooDeep("parentheses"));
        }
        Ok(())
    }

    pub(super) fn close(&mut self) -> R<()> {
        self.expect(b')')?;
        self.depth -= 1;
        Ok(())
    }

    pub(super) fn number64(&mut self) -> R<u64> {
        let d = self.take_while(|c| c.is_ascii_digit());
        if d.is_empty() || d.len() > 20 {
            return Err(Error::Expected {
                what: Expected::Number,
                at: self.pos,
            });
        }
        std::str::from_utf8(d)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Error::OutOfRange)
    }

    pub(super) fn number(&mut self) -> R<u32> {
        u32::try_from(self.number64()?).map_err(|_| Error::OutOfRange)
    }

    pub(super) fn nz_number(&mut self) -> R<u32> {
        match self.number()? {
            0 => Err(Error::Zero),
            n => Ok(n),
        }
    }

    pub(super) fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => {
                    return Err(Error::BadString("unterminated quoted string"));
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return Err(Error::BadString("bad escape in quoted string")),
                    }
                }
                Some(0) => return Err(Error::BadString("NUL in quoted string")),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    pub(super) fn literal(&mut self) -> R<Vec<u8>> {
        self.expect(b'{')?;
        let n = self.number64()?;
        self.eat(b'+');
        self.expect(b'}')?;
        if !self.rest().starts_with(b"\r\n") {
            return Err(Error::BadString("a literal's size must end its line"));
        }
        self.pos += 2;
        let n = usize::try_from(n).map_err(|_| Error::BadString("literal too large"))?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(Error::BadString("literal is shorter than announced"))?;
        let out = self.b.get(self.pos..end).unwrap_or_default().to_vec();
        self.pos = end;
        Ok(out)
    }

    pub(super) fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => Err(Error::Expected {
                what: Expected::String,
                at: self.pos,
            }),
        }
    }

    pub(super) fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let a = self.take_while(is_astring_char);
                if a.is_empty() {
                    return Err(Error::Expected {
                        what: Expected::String,
                        at: self.pos,
                    });
                }
                Ok(a.to_vec())
            }
        }
    }

    pub(super) fn astring_utf8(&mut self) -> R<String> {
        String::from_utf8(self.astring()?)
            .map_err(|_| Error::BadString("string is not valid UTF-8"))
    }

    pub(super) fn list_mailbox(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let a = self.take_while(is_list_char);
                if a.is_empty() {
                    return Err(Error::Expected {
                        what: Expected::MailboxPattern,
                        at: self.pos,
                    });
                }
                Ok(a.to_vec())
            }
        }
    }

    pub(super) fn seq_num(&mut self) -> R<SeqNum> {
        if self.eat(b'*') {
            Ok(SeqNum::Star)
        } else {
            Ok(SeqNum::Num(self.nz_number()?))
        }
    }

    pub(super) fn seq_set(&mut self) -> R<SeqSet> {
        if self.eat(b'$') {
            return Ok(SeqSet(Vec::new()));
        }
        let mut out = Vec::new();
        loop {
            let a = self.seq_num()?;
            let b = if self.eat(b':') { self.seq_num()? } else { a };
            out.push((a, b));
            if out.len() > 100_000 {
                return Err(Error::TooMany("sequence set has too many ranges"));
            }
            if !self.eat(b',') {
                return Ok(SeqSet(out));
            }
        }
    }

    pub(super) fn flag(&mut self, allow_star: bool) -> R<(Option<u8>, String)> {
        if self.eat(b'\\') {
            if allow_star && self.eat(b'*') {
                return Ok((None, "\\*".into()));
            }
            let a = self.atom()?;
            let bit = match a.to_ascii_uppercase().as_str() {
                "SEEN" => SEEN,
                "ANSWERED" => ANSWERED,
                "FLAGGED" => FLAGGED,
                "DELETED" => DELETED,
                "DRAFT" => DRAFT,
                _ => return Ok((None, format!("\\{a}"))),
            };
            Ok((Some(bit), a))
        } else {
            Ok((None, self.atom()?))
        }
    }

    pub(super) fn add_flag(list: &mut FlagList, f: (Option<u8>, String)) {
        match f {
            (Some(bit), _) => list.system |= bit,
            (None, name) if name.starts_with('\\') => list.invalid = Some(name),
            (None, name) => {
                if !list.keywords.iter().any(|k| k.eq_ignore_ascii_case(&name)) {
                    list.keywords.push(name)
                }
            }
        }
    }

    pub(super) fn flag_list(&mut self) -> R<FlagList> {
        let mut list = FlagList::default();
        self.open()?;
        if !self.eat(b')') {
            loop {
                let f = self.flag(false)?;
                Self::add_flag(&mut list, f);
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
        } else {
            self.depth -= 1;
            return Ok(list);
        }
        self.depth -= 1;
        Ok(list)
    }

    pub(super) fn sp_mailbox(&mut self) -> R<Vec<u8>> {
        self.sp()?;
        self.astring()
    }

    pub(super) fn nstring(&mut self) -> R<Option<Vec<u8>>> {
        if matches!(self.peek(), Some(b'"' | b'{')) {
            return self.string().map(Some);
        }
        let at = self.pos;
        let a = self.atom()?;
        if a.eq_ignore_ascii_case("NIL") {
            Ok(None)
        } else {
            Err(Error::Expected {
                what: Expected::StringOrNil,
                at,
            })
        }
    }

    /// Skips a parenthesised list (QRESYNC's sequence match data, which
    /// only optimises; sealmail answers exactly without it).
    pub(super) fn skip_list(&mut self) -> R<()> {
        self.open()?;
        loop {
            match self.peek() {
                None => return Err(Error::Invalid("unterminated list")),
                Some(b'(') => self.skip_list()?,
                Some(b')') => {
                    self.close()?;
                    return Ok(());
                }
                Some(b'"' | b'{') => {
                    self.string()?;
                }
                Some(_) => self.pos += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;

    #[test]
    pub(super) fn sequence_sets_stay_ranges() {
        let Kind::Fetch(Fetch { set, .. }) = kind("a FETCH 1:4294967295,*,3:2 FLAGS") else {
            panic!()
        };
        assert_eq!(
            set.0,
            vec![
                (SeqNum::Num(1), SeqNum::Num(u32::MAX)),
                (SeqNum::Star, SeqNum::Star),
                (SeqNum::Num(3), SeqNum::Num(2))
            ]
        );
        assert!(err("a FETCH 0 FLAGS").contains("0 is not"));
        assert!(err("a FETCH 4294967296 FLAGS").contains("range"));
    }
}
