//! Commands that carry data: APPEND with MULTIAPPEND and CATENATE,
//! REPLACE, GETMETADATA and SETMETADATA (RFC 3501 §6.3.11, RFC 3502,
//! RFC 4469, RFC 8508, RFC 5464).
//!
//! Imports the parent's types and lexer. Invariants: a message is one
//! literal or CATENATE's parts, at most `MAX_LITERALS` of them; literal
//! sizes were bounded by the reader before they were read.

use super::lexer::*;
use super::*;

impl Parser<'_> {
    /// APPEND, with MULTIAPPEND's further messages (RFC 3502 §6).
    pub(super) fn append(&mut self) -> R<Kind> {
        let mailbox = self.sp_mailbox()?;
        let mut messages = Vec::new();
        loop {
            self.sp()?;
            if !messages.is_empty() {
                // IMAPClient's multiappend sends two spaces between
                // messages; Dovecot takes it, so do we.
                self.eat(b' ');
            }
            messages.push(self.append_message()?);
            if self.at_end() {
                return Ok(Kind::Append(Append { mailbox, messages }));
            }
        }
    }

    /// `[flag-list SP] [date-time SP] literal`, after its leading space.
    fn append_message(&mut self) -> R<AppendMessage> {
        let mut flags = FlagList::default();
        if self.peek() == Some(b'(') {
            flags = self.flag_list()?;
            self.sp()?;
        }
        let mut date = None;
        if self.peek() == Some(b'"') {
            let text = self.quoted()?;
            date = Some(parse_date_time(&text).ok_or(Error::Invalid("bad APPEND date-time"))?);
            self.sp()?;
        }
        let data = if self.peek().is_some_and(|c| c.eq_ignore_ascii_case(&b'C')) {
            AppendData::Catenate(self.catenate()?)
        } else {
            // A literal8 (RFC 3516 §4.4) may carry NULs.
            let binary = self.eat(b'~');
            let message = self.literal()?;
            AppendData::Literal { message, binary }
        };
        Ok(AppendMessage { flags, date, data })
    }

    /// `CATENATE (cat-part *(SP cat-part))` (RFC 4469 §5), where a part is
    /// `TEXT literal` or `URL astring`.
    fn catenate(&mut self) -> R<Vec<CatPart>> {
        if !self.atom()?.eq_ignore_ascii_case("CATENATE") {
            return Err(Error::Invalid("APPEND takes a literal or CATENATE"));
        }
        self.sp()?;
        self.open()?;
        let mut parts = Vec::new();
        loop {
            let part = match self.atom()?.to_ascii_uppercase().as_str() {
                "TEXT" => {
                    self.sp()?;
                    // RFC 4469 §5: TEXT takes a literal (literal8 only under
                    // the BINARY-aware grammar of RFC 4469 §6, which a
                    // message with NULs needs).
                    if self.peek() == Some(b'~') {
                        return Err(Error::Invalid("CATENATE TEXT takes a literal"));
                    }
                    CatPart::Text(self.literal()?)
                }
                "URL" => {
                    self.sp()?;
                    let url = self.astring()?;
                    CatPart::Url(
                        String::from_utf8(url).map_err(|_| Error::BadString("URL is not UTF-8"))?,
                    )
                }
                other => {
                    return Err(Error::Unknown {
                        what: "CATENATE part",
                        name: other.into(),
                    });
                }
            };
            parts.push(part);
            if parts.len() > MAX_LITERALS {
                return Err(Error::TooMany("CATENATE parts"));
            }
            if self.eat(b')') {
                self.depth -= 1;
                return Ok(parts);
            }
            self.sp()?;
        }
    }

    /// GETMETADATA (RFC 5464 §4.2): `[(options)] mailbox entries`.
    pub(super) fn get_metadata(&mut self) -> R<Kind> {
        self.sp()?;
        let mut max_size = None;
        let mut depth = MetadataDepth::Zero;
        if self.peek() == Some(b'(') {
            self.open()?;
            loop {
                match self.atom()?.to_ascii_uppercase().as_str() {
                    "MAXSIZE" => {
                        self.sp()?;
                        max_size = Some(self.number()?);
                    }
                    "DEPTH" => {
                        self.sp()?;
                        depth = match self.atom()?.to_ascii_lowercase().as_str() {
                            "0" => MetadataDepth::Zero,
                            "1" => MetadataDepth::One,
                            "infinity" => MetadataDepth::Infinity,
                            _ => return Err(Error::Invalid("DEPTH is 0, 1 or infinity")),
                        };
                    }
                    o => {
                        return Err(Error::Unknown {
                            what: "GETMETADATA option",
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
            self.sp()?;
        }
        let mailbox = self.astring()?;
        self.sp()?;
        let mut entries = Vec::new();
        if self.peek() == Some(b'(') {
            self.open()?;
            loop {
                entries.push(self.astring_utf8()?);
                if self.eat(b')') {
                    self.depth -= 1;
                    break;
                }
                self.sp()?;
            }
        } else {
            entries.push(self.astring_utf8()?);
        }
        Ok(Kind::GetMetadata(GetMetadata {
            mailbox,
            entries,
            max_size,
            depth,
        }))
    }

    /// SETMETADATA (RFC 5464 §4.3): `mailbox (entry value ...)`, a value
    /// being a string, a literal8 or NIL.
    pub(super) fn set_metadata(&mut self) -> R<Kind> {
        let mailbox = self.sp_mailbox()?;
        self.sp()?;
        self.open()?;
        let mut entries = Vec::new();
        loop {
            let name = self.astring_utf8()?;
            self.sp()?;
            self.eat(b'~');
            let value = self.nstring()?;
            entries.push((name, value));
            if self.eat(b')') {
                self.depth -= 1;
                break;
            }
            self.sp()?;
        }
        Ok(Kind::SetMetadata(SetMetadata { mailbox, entries }))
    }

    /// REPLACE (RFC 8508 §3): `number mailbox message`.
    pub(super) fn replace(&mut self, uid: bool) -> R<Kind> {
        self.sp()?;
        let number = self.nz_number()?;
        let mailbox = self.sp_mailbox()?;
        self.sp()?;
        let message = self.append_message()?;
        Ok(Kind::Replace(Replace {
            uid,
            number,
            mailbox,
            message,
        }))
    }
}
