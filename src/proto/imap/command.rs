//! The command dispatch and the commands of the authenticated state that
//! are not about messages: ID, ENABLE, SELECT/EXAMINE, LIST (with
//! LIST-STATUS and LIST-METADATA), STATUS (RFC 3501 §6.1–6.3, RFC 5161,
//! RFC 5258, RFC 7162 §3.2.5, RFC 2971, RFC 9590). Commands that carry
//! data are in the sibling `data`.
//!
//! Imports the parent's types and lexer.

use super::lexer::*;
use super::*;

impl Parser<'_> {
    pub(super) fn command(&mut self) -> R<Kind> {
        let name = self.atom()?.to_ascii_uppercase();
        let kind = match name.as_str() {
            "CAPABILITY" => Kind::Capability,
            "NOOP" => Kind::Noop,
            "LOGOUT" => Kind::Logout,
            "STARTTLS" => Kind::StartTls,
            "LOGIN" => {
                self.sp()?;
                let user = self.astring()?;
                self.sp()?;
                let password = self.astring()?;
                Kind::Login { user, password }
            }
            "AUTHENTICATE" => {
                self.sp()?;
                let mechanism = self.atom()?.to_ascii_uppercase();
                let initial = if self.eat(b' ') {
                    Some(
                        self.take_while(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')
                        })
                        .to_vec(),
                    )
                } else {
                    None
                };
                Kind::Authenticate { mechanism, initial }
            }
            "ID" => {
                self.sp()?;
                self.id_params()?;
                Kind::Id
            }
            "ENABLE" => {
                let mut caps = Vec::new();
                while self.eat(b' ') {
                    caps.push(self.atom()?.to_ascii_uppercase());
                }
                if caps.is_empty() {
                    return Err(Error::Invalid("ENABLE needs at least one capability"));
                }
                Kind::Enable(caps)
            }
            "SELECT" | "EXAMINE" => self.select(name == "EXAMINE")?,
            "CREATE" => Kind::Create(self.sp_mailbox()?),
            "DELETE" => Kind::Delete(self.sp_mailbox()?),
            "RENAME" => {
                let from = self.sp_mailbox()?;
                Kind::Rename(from, self.sp_mailbox()?)
            }
            "SUBSCRIBE" => Kind::Subscribe(self.sp_mailbox()?),
            "UNSUBSCRIBE" => Kind::Unsubscribe(self.sp_mailbox()?),
            "LIST" => self.list()?,
            "LSUB" => {
                let reference = self.sp_mailbox()?;
                self.sp()?;
                let pattern = self.list_mailbox()?;
                Kind::Lsub { reference, pattern }
            }
            "NAMESPACE" => Kind::Namespace,
            "STATUS" => {
                let mailbox = self.sp_mailbox()?;
                self.sp()?;
                let items = self.status_items()?;
                Kind::Status { mailbox, items }
            }
            "APPEND" => self.append()?,
            "REPLACE" => self.replace(false)?,
            "GETMETADATA" => self.get_metadata()?,
            "SETMETADATA" => self.set_metadata()?,
            "IDLE" => Kind::Idle,
            "CHECK" => Kind::Check,
            "CLOSE" => Kind::Close,
            "UNSELECT" => Kind::Unselect,
            "UNAUTHENTICATE" => Kind::Unauthenticate,
            "EXPUNGE" => Kind::Expunge(None),
            "SEARCH" => self.search(false)?,
            "SORT" => self.sort(false)?,
            "THREAD" => self.thread(false)?,
            "COMPRESS" => {
                self.sp()?;
                Kind::Compress(self.atom()?.to_ascii_uppercase())
            }
            "FETCH" => self.fetch(false)?,
            "STORE" => self.store(false)?,
            "COPY" => self.copy(false, false)?,
            "MOVE" => self.copy(false, true)?,
            "GETQUOTA" => Kind::GetQuota(self.sp_mailbox()?),
            "GETQUOTAROOT" => Kind::GetQuotaRoot(self.sp_mailbox()?),
            "SETQUOTA" => {
                self.pos = self.b.len();
                Kind::SetQuota
            }
            "UID" => {
                self.sp()?;
                let sub = self.atom()?.to_ascii_uppercase();
                match sub.as_str() {
                    "SEARCH" => self.search(true)?,
                    "SORT" => self.sort(true)?,
                    "THREAD" => self.thread(true)?,
                    "FETCH" => self.fetch(true)?,
                    "STORE" => self.store(true)?,
                    "COPY" => self.copy(true, false)?,
                    "MOVE" => self.copy(true, true)?,
                    "REPLACE" => self.replace(true)?,
                    "EXPUNGE" => {
                        self.sp()?;
                        Kind::Expunge(Some(self.seq_set()?))
                    }
                    _ => {
                        return Err(Error::Unknown {
                            what: "command UID",
                            name: sub,
                        });
                    }
                }
            }
            _ => {
                return Err(Error::Unknown {
                    what: "command",
                    name,
                });
            }
        };
        Ok(kind)
    }

    pub(super) fn id_params(&mut self) -> R<()> {
        if self.peek() != Some(b'(') {
            let nil = self.atom()?;
            return if nil.eq_ignore_ascii_case("NIL") {
                Ok(())
            } else {
                Err(Error::Invalid("ID takes NIL or a parameter list"))
            };
        }
        self.open()?;
        let mut n = 0;
        while !self.eat(b')') {
            if n > 0 {
                self.sp()?;
            }
            self.string()?;
            self.sp()?;
            self.nstring()?;
            n += 1;
            if n > 30 {
                return Err(Error::TooMany("ID takes at most 30 fields"));
            }
        }
        self.depth -= 1;
        Ok(())
    }

    pub(super) fn select(&mut self, read_only: bool) -> R<Kind> {
        let mailbox = self.sp_mailbox()?;
        let mut condstore = false;
        let mut qresync = None;
        if self.eat(b' ') {
            self.open()?;
            loop {
                let p = self.atom()?.to_ascii_uppercase();
                match p.as_str() {
                    "CONDSTORE" => condstore = true,
                    "QRESYNC" => {
                        self.sp()?;
                        self.open()?;
                        let uidvalidity = self.nz_number()?;
                        self.sp()?;
                        let modseq = self.number64()?;
                        let mut known_uids = None;
                        if self.eat(b' ') {
                            if self.peek() == Some(b'(') {
                                self.skip_list()?;
                            } else {
                                known_uids = Some(self.seq_set()?);
                                if self.eat(b' ') {
                                    self.skip_list()?;
                                }
                            }
                        }
                        self.close()?;
                        qresync = Some(Qresync {
                            uidvalidity,
                            modseq,
                            known_uids,
                        });
                    }
                    _ => {
                        return Err(Error::Unknown {
                            what: "SELECT parameter",
                            name: p,
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
        Ok(Kind::Select(Select {
            mailbox,
            read_only,
            condstore,
            qresync,
        }))
    }

    pub(super) fn list(&mut self) -> R<Kind> {
        let mut options = ListOptions::default();
        self.sp()?;
        if self.peek() == Some(b'(') {
            self.open()?;
            while !self.eat(b')') {
                self.eat(b' ');
                match self.atom()?.to_ascii_uppercase().as_str() {
                    "SUBSCRIBED" => {
                        options.subscribed_only = true;
                        options.return_subscribed = true;
                    }
                    "SPECIAL-USE" => options.special_use_only = true,
                    "RECURSIVEMATCH" => options.recursive_match = true,
                    // Every mailbox here is local.
                    "REMOTE" => {}
                    o => {
                        return Err(Error::Unknown {
                            what: "LIST selection option",
                            name: o.into(),
                        });
                    }
                }
            }
            self.depth -= 1;
            if options.recursive_match && !options.subscribed_only {
                // RFC 5258 §3.1: it only refines another selection option.
                return Err(Error::Invalid(
                    "RECURSIVEMATCH needs the SUBSCRIBED selection option",
                ));
            }
            self.sp()?;
        }
        let reference = self.astring()?;
        self.sp()?;
        let mut patterns = Vec::new();
        if self.peek() == Some(b'(') {
            self.open()?;
            loop {
                patterns.push(self.list_mailbox()?);
                if self.eat(b')') {
                    break;
                }
                self.sp()?;
            }
            self.depth -= 1;
        } else {
            patterns.push(self.list_mailbox()?);
        }
        if self.eat(b' ') {
            let at = self.pos;
            let ret = self.atom()?;
            if !ret.eq_ignore_ascii_case("RETURN") {
                return Err(Error::Expected {
                    what: Expected::Return,
                    at,
                });
            }
            self.sp()?;
            self.open()?;
            while !self.eat(b')') {
                self.eat(b' ');
                match self.atom()?.to_ascii_uppercase().as_str() {
                    "SUBSCRIBED" => options.return_subscribed = true,
                    "CHILDREN" => {}
                    "SPECIAL-USE" => options.return_special_use = true,
                    "STATUS" => {
                        self.sp()?;
                        options.return_status = self.status_items()?;
                    }
                    "METADATA" => {
                        self.sp()?;
                        options.return_metadata = Some(self.list_metadata()?);
                    }
                    o => {
                        return Err(Error::Unknown {
                            what: "LIST return option",
                            name: o.into(),
                        });
                    }
                }
            }
            self.depth -= 1;
        }
        Ok(Kind::List {
            reference,
            patterns,
            options,
        })
    }

    /// LIST's `METADATA ([MAXSIZE n] entry *(SP entry))` (RFC 9590);
    /// entry names start with `/`, so MAXSIZE cannot be one.
    fn list_metadata(&mut self) -> R<ListMetadata> {
        self.open()?;
        let mut m = ListMetadata::default();
        loop {
            if self.peek().is_some_and(|c| c.eq_ignore_ascii_case(&b'M')) {
                if !self.atom()?.eq_ignore_ascii_case("MAXSIZE") || m.max_size.is_some() {
                    return Err(Error::Invalid("LIST METADATA takes MAXSIZE and entries"));
                }
                self.sp()?;
                m.max_size = Some(self.number()?);
            } else {
                m.entries.push(self.astring_utf8()?);
                if m.entries.len() > MAX_LITERALS {
                    return Err(Error::TooMany("too many METADATA entries"));
                }
            }
            if self.eat(b')') {
                self.depth -= 1;
                break;
            }
            self.sp()?;
        }
        if m.entries.is_empty() {
            return Err(Error::Invalid("LIST METADATA names at least one entry"));
        }
        Ok(m)
    }

    pub(super) fn status_items(&mut self) -> R<Vec<StatusItem>> {
        self.open()?;
        let mut items = Vec::new();
        loop {
            let item = match self.atom()?.to_ascii_uppercase().as_str() {
                "MESSAGES" => StatusItem::Messages,
                "RECENT" => StatusItem::Recent,
                "UIDNEXT" => StatusItem::UidNext,
                "UIDVALIDITY" => StatusItem::UidValidity,
                "UNSEEN" => StatusItem::Unseen,
                "DELETED" => StatusItem::Deleted,
                "SIZE" => StatusItem::Size,
                "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
                "MAILBOXID" => StatusItem::MailboxId,
                other => {
                    return Err(Error::Unknown {
                        what: "STATUS item",
                        name: other.into(),
                    });
                }
            };
            if !items.contains(&item) {
                items.push(item);
            }
            if self.eat(b')') {
                self.depth -= 1;
                return Ok(items);
            }
            self.sp()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;

    #[test]
    pub(super) fn simple_commands_and_tags() {
        assert_eq!(
            parse(b"a1 CAPABILITY").unwrap(),
            Command {
                tag: "a1".into(),
                kind: Kind::Capability
            }
        );
        assert_eq!(kind("x noop"), Kind::Noop);
        assert_eq!(parse(b"+x NOOP").unwrap_err().tag, None);
        assert!(err("a NOOP extra").contains("end of the command"));
        assert!(err("a FROB").contains("unknown command FROB"));
        assert_eq!(
            kind("a LOGIN \"u@x\" {3}\r\np\"w"),
            Kind::Login {
                user: b"u@x".to_vec(),
                password: b"p\"w".to_vec()
            }
        );
        assert!(err("a LOGIN u {10}\r\nabc").contains("shorter"));
    }

    #[test]
    pub(super) fn store_append_select_list() {
        assert_eq!(
            kind("a STORE 1:2 (UNCHANGEDSINCE 9) +FLAGS.SILENT (\\Seen $Junk \\seen)"),
            Kind::Store(Store {
                uid: false,
                set: SeqSet(vec![(SeqNum::Num(1), SeqNum::Num(2))]),
                op: StoreOp::Add,
                silent: true,
                flags: FlagList {
                    system: SEEN,
                    keywords: vec!["$Junk".into()],
                    invalid: None
                },
                unchanged_since: Some(9)
            })
        );
        let Kind::Append(Append { messages, .. }) =
            kind("a APPEND INBOX (\\Draft) \" 1-Jan-2024 10:00:00 +0100\" {5+}\r\nhello")
        else {
            panic!()
        };
        let [m] = &messages[..] else { panic!() };
        assert_eq!(m.flags.system, DRAFT);
        assert_eq!(m.date, Some(1704099600));
        assert_eq!(
            m.data,
            AppendData::Literal {
                message: b"hello".to_vec(),
                binary: false
            }
        );
        // MULTIAPPEND: several messages, each with its own flags and date.
        let Kind::Append(Append { messages, .. }) = kind(
            "a APPEND INBOX {1+}\r\na (\\Seen) ~{2+}\r\nb\0 \"1-Jan-2024 10:00:00 +0000\" {1+}\r\nc",
        ) else {
            panic!()
        };
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1].flags.system, SEEN);
        assert_eq!(
            messages[1].data,
            AppendData::Literal {
                message: b"b\0".to_vec(),
                binary: true
            }
        );
        assert_eq!(messages[2].date, Some(1704103200));
        // CATENATE (RFC 4469): text and URLs, also as one of several.
        let Kind::Append(Append { messages, .. }) = kind(
            "a APPEND Drafts (\\Seen) CATENATE (URL \"/INBOX;UIDVALIDITY=9/;UID=2/;SECTION=HEADER\" TEXT {2+}\r\n\r\n url /INBOX/;UID=2/;SECTION=1) {1+}\r\nx",
        ) else {
            panic!()
        };
        assert_eq!(
            messages[0].data,
            AppendData::Catenate(vec![
                CatPart::Url("/INBOX;UIDVALIDITY=9/;UID=2/;SECTION=HEADER".into()),
                CatPart::Text(b"\r\n".to_vec()),
                CatPart::Url("/INBOX/;UID=2/;SECTION=1".into()),
            ])
        );
        assert_eq!(messages.len(), 2);
        assert!(err("a APPEND x CATENATE ()").contains("expected"));
        assert!(err("a APPEND x CATENATE (FILE x)").contains("CATENATE part"));
        assert!(err("a APPEND x CONCAT (TEXT {1+}\r\nx)").contains("CATENATE"));
        assert_eq!(
            kind("a SELECT inbox (QRESYNC (67890007 20050715194045000 41,43:211))"),
            Kind::Select(Select {
                mailbox: b"inbox".to_vec(),
                read_only: false,
                condstore: false,
                qresync: Some(Qresync {
                    uidvalidity: 67890007,
                    modseq: 20050715194045000,
                    known_uids: Some(SeqSet(vec![
                        (SeqNum::Num(41), SeqNum::Num(41)),
                        (SeqNum::Num(43), SeqNum::Num(211))
                    ]))
                })
            })
        );
        let Kind::List {
            patterns, options, ..
        } = kind("a LIST (SUBSCRIBED) \"\" (INBOX \"Sent*\") RETURN (STATUS (MESSAGES UIDNEXT))")
        else {
            panic!()
        };
        assert_eq!(patterns.len(), 2);
        assert!(options.subscribed_only);
        assert_eq!(
            options.return_status,
            vec![StatusItem::Messages, StatusItem::UidNext]
        );
        assert_eq!(
            kind("a LIST \"\" %/*"),
            Kind::List {
                reference: vec![],
                patterns: vec![b"%/*".to_vec()],
                options: ListOptions::default()
            }
        );
    }

    /// One row per command form that needs no argument struct, with the
    /// exact bytes and the exact command.
    #[test]
    fn every_simple_form() {
        let set = |a: u32, b: u32| SeqSet(vec![(SeqNum::Num(a), SeqNum::Num(b))]);
        let table: Vec<(&str, Kind)> = vec![
            ("a CAPABILITY", Kind::Capability),
            ("a noop", Kind::Noop),
            ("a LOGOUT", Kind::Logout),
            ("a STARTTLS", Kind::StartTls),
            ("a ID NIL", Kind::Id),
            ("a ID (\"name\" \"x\" \"os\" NIL)", Kind::Id),
            ("a IDLE", Kind::Idle),
            ("a CHECK", Kind::Check),
            ("a CLOSE", Kind::Close),
            ("a UNSELECT", Kind::Unselect),
            ("a UNAUTHENTICATE", Kind::Unauthenticate),
            ("a NAMESPACE", Kind::Namespace),
            ("a EXPUNGE", Kind::Expunge(None)),
            ("a UID EXPUNGE 3:4", Kind::Expunge(Some(set(3, 4)))),
            (
                "a LOGIN ann \"p w\"",
                Kind::Login {
                    user: b"ann".to_vec(),
                    password: b"p w".to_vec(),
                },
            ),
            (
                "a LOGIN {3+}\r\nann {2}\r\npw",
                Kind::Login {
                    user: b"ann".to_vec(),
                    password: b"pw".to_vec(),
                },
            ),
            (
                "a AUTHENTICATE plain",
                Kind::Authenticate {
                    mechanism: "PLAIN".into(),
                    initial: None,
                },
            ),
            (
                "a AUTHENTICATE PLAIN =",
                Kind::Authenticate {
                    mechanism: "PLAIN".into(),
                    initial: Some(b"=".to_vec()),
                },
            ),
            (
                "a ENABLE condstore qresync",
                Kind::Enable(vec!["CONDSTORE".into(), "QRESYNC".into()]),
            ),
            ("a CREATE Work/", Kind::Create(b"Work/".to_vec())),
            ("a DELETE \"a b\"", Kind::Delete(b"a b".to_vec())),
            ("a RENAME a b", Kind::Rename(b"a".to_vec(), b"b".to_vec())),
            ("a SUBSCRIBE x", Kind::Subscribe(b"x".to_vec())),
            ("a UNSUBSCRIBE x", Kind::Unsubscribe(b"x".to_vec())),
            (
                "a LSUB \"\" %",
                Kind::Lsub {
                    reference: Vec::new(),
                    pattern: b"%".to_vec(),
                },
            ),
            (
                "a STATUS INBOX (MESSAGES MESSAGES SIZE)",
                Kind::Status {
                    mailbox: b"INBOX".to_vec(),
                    items: vec![StatusItem::Messages, StatusItem::Size],
                },
            ),
            ("a COMPRESS deflate", Kind::Compress("DEFLATE".into())),
            ("a GETQUOTA \"\"", Kind::GetQuota(Vec::new())),
            (
                "a GETQUOTAROOT INBOX",
                Kind::GetQuotaRoot(b"INBOX".to_vec()),
            ),
            ("a SETQUOTA \"\" (STORAGE 512)", Kind::SetQuota),
            (
                "a UID COPY 1:2 Archive",
                Kind::Copy(CopyTo {
                    uid: true,
                    set: set(1, 2),
                    mailbox: b"Archive".to_vec(),
                }),
            ),
            (
                "a MOVE 1 Trash",
                Kind::Move(CopyTo {
                    uid: false,
                    set: set(1, 1),
                    mailbox: b"Trash".to_vec(),
                }),
            ),
            (
                "a EXAMINE INBOX",
                Kind::Select(Select {
                    mailbox: b"INBOX".to_vec(),
                    read_only: true,
                    condstore: false,
                    qresync: None,
                }),
            ),
        ];
        for (input, want) in table {
            assert_eq!(kind(input), want, "{input:?}");
        }
    }
}
