//! FETCH, STORE, COPY and MOVE (RFC 3501 §6.4.5–6.4.7, RFC 3516 BINARY,
//! RFC 6851 MOVE, RFC 7162 CHANGEDSINCE/UNCHANGEDSINCE/VANISHED).
//!
//! Imports the parent's types and lexer.

use super::lexer::*;
use super::*;

impl Parser<'_> {
    pub(super) fn fetch(&mut self, uid: bool) -> R<Kind> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mut atts = Vec::new();
        if self.peek() == Some(b'(') {
            self.open()?;
            loop {
                atts.push(self.fetch_att()?);
                if self.eat(b')') {
                    self.depth -= 1;
                    break;
                }
                self.sp()?;
            }
        } else {
            let save = self.pos;
            let name = self.atom()?.to_ascii_uppercase();
            let base = [FetchAtt::Flags, FetchAtt::InternalDate, FetchAtt::Size];
            match name.as_str() {
                "ALL" => atts.extend(base.into_iter().chain([FetchAtt::Envelope])),
                "FAST" => atts.extend(base),
                "FULL" => atts.extend(base.into_iter().chain([FetchAtt::Envelope, FetchAtt::Body])),
                _ => {
                    self.pos = save;
                    atts.push(self.fetch_att()?);
                }
            }
        }
        let mut changed_since = None;
        let mut vanished = false;
        let mut partial = None;
        if self.eat(b' ') {
            self.open()?;
            loop {
                match self.atom()?.to_ascii_uppercase().as_str() {
                    "CHANGEDSINCE" => {
                        self.sp()?;
                        changed_since = Some(self.number64()?);
                    }
                    "VANISHED" => vanished = true,
                    "PARTIAL" => {
                        self.sp()?;
                        partial = Some(self.partial_range()?);
                    }
                    o => {
                        return Err(Error::Unknown {
                            what: "FETCH modifier",
                            name: o.into(),
                        });
                    }
                }
                if self.eat(b')') {
                    self.depth -= 1;
                    break;
                }
                self.sp()?;
            }
        }
        if vanished && (!uid || changed_since.is_none()) {
            return Err(Error::Invalid("VANISHED needs UID FETCH with CHANGEDSINCE"));
        }
        Ok(Kind::Fetch(Fetch {
            uid,
            set,
            atts,
            changed_since,
            vanished,
            partial,
        }))
    }

    pub(super) fn fetch_att(&mut self) -> R<FetchAtt> {
        let name = self
            .take_while(|c| is_atom_char(c) && c != b'[' && c != b'<')
            .to_ascii_uppercase();
        let simple = |a| Ok(a);
        match name.as_slice() {
            b"UID" => simple(FetchAtt::Uid),
            b"FLAGS" => simple(FetchAtt::Flags),
            b"INTERNALDATE" => simple(FetchAtt::InternalDate),
            b"RFC822.SIZE" => simple(FetchAtt::Size),
            b"ENVELOPE" => simple(FetchAtt::Envelope),
            b"BODYSTRUCTURE" => simple(FetchAtt::BodyStructure),
            b"MODSEQ" => simple(FetchAtt::ModSeq),
            b"EMAILID" => simple(FetchAtt::EmailId),
            b"THREADID" => simple(FetchAtt::ThreadId),
            b"SAVEDATE" => simple(FetchAtt::SaveDate),
            b"PREVIEW" => {
                // `PREVIEW (LAZY)`: the only modifier (RFC 8970 §3.2).
                let lazy = self
                    .b
                    .get(self.pos..self.pos + 7)
                    .is_some_and(|m| m.eq_ignore_ascii_case(b" (LAZY)"));
                if lazy {
                    self.pos += 7;
                }
                Ok(FetchAtt::Preview { lazy })
            }
            b"RFC822" | b"RFC822.HEADER" | b"RFC822.TEXT" => {
                let (text, peek, legacy) = match name.as_slice() {
                    b"RFC822" => (SectionText::Whole, false, "RFC822"),
                    b"RFC822.HEADER" => (SectionText::Header, true, "RFC822.HEADER"),
                    _ => (SectionText::Text, false, "RFC822.TEXT"),
                };
                Ok(FetchAtt::Section {
                    peek,
                    section: SectionSpec { path: vec![], text },
                    partial: None,
                    legacy: Some(legacy),
                })
            }
            b"BODY" | b"BODY.PEEK" => {
                if self.peek() != Some(b'[') {
                    return if name == b"BODY" {
                        Ok(FetchAtt::Body)
                    } else {
                        Err(Error::Invalid("BODY.PEEK needs a section"))
                    };
                }
                let section = self.section()?;
                let partial = self.partial()?;
                Ok(FetchAtt::Section {
                    peek: name == b"BODY.PEEK",
                    section,
                    partial,
                    legacy: None,
                })
            }
            b"BINARY" | b"BINARY.PEEK" | b"BINARY.SIZE" => {
                let path = self.binary_section()?;
                if name == b"BINARY.SIZE" {
                    return Ok(FetchAtt::BinarySize { path });
                }
                Ok(FetchAtt::Binary {
                    peek: name == b"BINARY.PEEK",
                    path,
                    partial: self.partial()?,
                })
            }
            _ => Err(Error::Unknown {
                what: "FETCH item",
                name: String::from_utf8_lossy(&name).into_owned(),
            }),
        }
    }

    /// `<origin.count>` after a section, if present.
    pub(super) fn partial(&mut self) -> R<Option<(u32, u32)>> {
        if !self.eat(b'<') {
            return Ok(None);
        }
        let origin = self.number()?;
        self.expect(b'.')?;
        let count = self.nz_number()?;
        self.expect(b'>')?;
        Ok(Some((origin, count)))
    }

    /// `[1.2.3]` or `[]`: a BINARY section is a part number only.
    pub(super) fn binary_section(&mut self) -> R<Vec<u32>> {
        self.expect(b'[')?;
        let mut path = Vec::new();
        while !self.eat(b']') {
            if !path.is_empty() {
                self.expect(b'.')?;
            }
            path.push(self.nz_number()?);
            if path.len() > 32 {
                return Err(Error::Invalid("section path too deep"));
            }
        }
        Ok(path)
    }

    pub(super) fn section(&mut self) -> R<SectionSpec> {
        self.expect(b'[')?;
        let mut path = Vec::new();
        while matches!(self.peek(), Some(b'1'..=b'9')) {
            path.push(self.nz_number()?);
            if path.len() > 32 {
                return Err(Error::Invalid("section path too deep"));
            }
            if !self.eat(b'.') {
                break;
            }
        }
        let word = self
            .take_while(|c| c.is_ascii_alphanumeric() || c == b'.')
            .to_ascii_uppercase();
        let text = match word.as_slice() {
            b"" => SectionText::Whole,
            b"HEADER" => SectionText::Header,
            b"TEXT" => SectionText::Text,
            b"MIME" if !path.is_empty() => SectionText::Mime,
            b"HEADER.FIELDS" | b"HEADER.FIELDS.NOT" => {
                self.sp()?;
                self.open()?;
                let mut fields = Vec::new();
                loop {
                    let f = self.astring_utf8()?;
                    fields.push(f);
                    if self.eat(b')') {
                        self.depth -= 1;
                        break;
                    }
                    self.sp()?;
                }
                SectionText::HeaderFields {
                    not: word.ends_with(b".NOT"),
                    fields,
                }
            }
            _ => return Err(Error::Invalid("bad section")),
        };
        if !path.is_empty() && word.is_empty() && self.b.get(self.pos - 1) == Some(&b'.') {
            return Err(Error::Invalid("bad section"));
        }
        self.expect(b']')?;
        Ok(SectionSpec { path, text })
    }

    pub(super) fn store(&mut self, uid: bool) -> R<Kind> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mut unchanged_since = None;
        if self.peek() == Some(b'(') {
            self.open()?;
            let m = self.atom()?;
            if !m.eq_ignore_ascii_case("UNCHANGEDSINCE") {
                return Err(Error::Unknown {
                    what: "STORE modifier",
                    name: m,
                });
            }
            self.sp()?;
            unchanged_since = Some(self.number64()?);
            self.close()?;
            self.sp()?;
        }
        let item = self.atom()?.to_ascii_uppercase();
        let (op, rest) = match item.as_bytes().first() {
            Some(b'+') => (StoreOp::Add, item.get(1..).unwrap_or_default()),
            Some(b'-') => (StoreOp::Remove, item.get(1..).unwrap_or_default()),
            _ => (StoreOp::Replace, item.as_str()),
        };
        let silent = match rest {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => {
                return Err(Error::Unknown {
                    what: "STORE item",
                    name: item,
                });
            }
        };
        self.sp()?;
        let flags = if self.peek() == Some(b'(') {
            self.flag_list()?
        } else {
            let mut list = FlagList::default();
            loop {
                let f = self.flag(false)?;
                Self::add_flag(&mut list, f);
                if !self.eat(b' ') {
                    break;
                }
            }
            list
        };
        Ok(Kind::Store(Store {
            uid,
            set,
            op,
            silent,
            flags,
            unchanged_since,
        }))
    }

    pub(super) fn copy(&mut self, uid: bool, is_move: bool) -> R<Kind> {
        self.sp()?;
        let set = self.seq_set()?;
        let mailbox = self.sp_mailbox()?;
        Ok(if is_move {
            Kind::Move(CopyTo { uid, set, mailbox })
        } else {
            Kind::Copy(CopyTo { uid, set, mailbox })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;

    #[test]
    pub(super) fn fetch_items() {
        let Kind::Fetch(Fetch { atts, .. }) = kind(
            "a UID FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From \"To\")]<0.100> BODY[] RFC822.SIZE MODSEQ) (CHANGEDSINCE 5 VANISHED)",
        ) else {
            panic!()
        };
        assert_eq!(atts.len(), 5);
        assert_eq!(
            atts[1],
            FetchAtt::Section {
                peek: true,
                section: SectionSpec {
                    path: vec![1, 2],
                    text: SectionText::HeaderFields {
                        not: false,
                        fields: vec!["From".into(), "To".into()]
                    }
                },
                partial: Some((0, 100)),
                legacy: None
            }
        );
        let Kind::Fetch(Fetch { atts, .. }) = kind("a FETCH 1 ALL") else {
            panic!()
        };
        assert_eq!(atts.len(), 4);
        assert!(
            err("a FETCH 1 (CHANGEDSINCE 3 VANISHED)").contains("unknown FETCH item CHANGEDSINCE")
        );
        assert!(err("a FETCH 1 FLAGS (VANISHED)").contains("VANISHED needs"));
        assert!(err("a FETCH 1 BODY[1.]").contains("section"));
        assert!(err("a FETCH 1 BODY[MIME]").contains("section"));
    }
}
