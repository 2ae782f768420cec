//! The IMAP parser and its inverse agree: for generated commands,
//! `parse(encode(cmd)) == cmd`; for inputs a client could send (the fuzz
//! seeds, and byte-level mutations of them), whatever `parse` accepts
//! encodes to a form that parses to the same command.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

use std::path::Path;

use sealmail::proto::imap::*;

/// Generates commands of every kind, bounded in size and depth.
struct Gen {
    rng: fastrand::Rng,
}

const ATOM: &[u8] = b"abcXYZ019.-_&!#+$:;@'~=?";

impl Gen {
    fn bool(&mut self) -> bool {
        self.rng.bool()
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.usize(..items.len())]
    }

    fn atom(&mut self) -> String {
        let n = self.rng.usize(1..8);
        (0..n).map(|_| char::from(self.pick(ATOM))).collect()
    }

    /// Any bytes, often printable, sometimes what needs quoting or a literal.
    fn bytes(&mut self) -> Vec<u8> {
        let n = self.rng.usize(0..12);
        match self.rng.u8(0..4) {
            0 => self.atom().into_bytes(),
            1 => (0..n).map(|_| self.rng.u8(..)).collect(),
            2 => "Entwürfe/\"quoted\" \\ x".as_bytes().to_vec(),
            _ => (0..n).map(|_| self.rng.u8(b' '..=b'~')).collect(),
        }
    }

    fn text(&mut self) -> String {
        match self.rng.u8(0..3) {
            0 => self.atom(),
            1 => "caf\u{e9} \"q\" \\".to_string(),
            _ => String::new(),
        }
    }

    fn nz(&mut self) -> u32 {
        if self.bool() {
            self.rng.u32(1..100)
        } else {
            self.rng.u32(1..=u32::MAX)
        }
    }

    fn seq_num(&mut self) -> SeqNum {
        if self.rng.u8(0..5) == 0 {
            SeqNum::Star
        } else {
            SeqNum::Num(self.nz())
        }
    }

    fn seq_set(&mut self) -> SeqSet {
        if self.rng.u8(0..8) == 0 {
            return SeqSet(Vec::new());
        }
        let n = self.rng.usize(1..4);
        SeqSet(
            (0..n)
                .map(|_| {
                    let a = self.seq_num();
                    (a, if self.bool() { a } else { self.seq_num() })
                })
                .collect(),
        )
    }

    fn flags(&mut self) -> FlagList {
        let mut f = FlagList {
            system: self.rng.u8(0..32),
            ..Default::default()
        };
        for _ in 0..self.rng.usize(0..3) {
            let k = format!("${}{}", self.atom(), f.keywords.len());
            f.keywords.push(k);
        }
        if self.rng.u8(0..6) == 0 {
            f.invalid = Some("\\Recent".into());
        }
        f
    }

    fn date(&mut self) -> Date {
        Date {
            year: self.rng.u16(1000..=9999),
            month: self.rng.u8(1..=12),
            day: self.rng.u8(1..=31),
        }
    }

    fn key(&mut self, depth: u32) -> SearchKey {
        let leaf = depth > 4 || self.rng.u8(0..3) != 0;
        if !leaf {
            return match self.rng.u8(0..3) {
                0 => SearchKey::Not(Box::new(self.key(depth + 1))),
                1 => SearchKey::Or(Box::new(self.key(depth + 1)), Box::new(self.key(depth + 1))),
                _ => {
                    let n = self.rng.usize(2..4);
                    SearchKey::And((0..n).map(|_| self.key(depth + 1)).collect())
                }
            };
        }
        let bit = self.pick(&[SEEN, ANSWERED, FLAGGED, DELETED, DRAFT]);
        match self.rng.u8(0..22) {
            0 => SearchKey::All,
            1 => SearchKey::Seq(self.seq_set()),
            2 => SearchKey::Uid(self.seq_set()),
            3 => SearchKey::Flag(bit, self.bool()),
            4 => SearchKey::Keyword(self.atom(), self.bool()),
            5 => SearchKey::Recent,
            6 => SearchKey::Larger(self.rng.u64(..)),
            7 => SearchKey::Smaller(self.rng.u64(..)),
            8 => SearchKey::Before(self.date()),
            9 => SearchKey::On(self.date()),
            10 => SearchKey::Since(self.date()),
            11 => SearchKey::SentBefore(self.date()),
            12 => SearchKey::SentSince(self.date()),
            13 => SearchKey::Subject(self.text()),
            14 => SearchKey::From(self.text()),
            15 => SearchKey::Header(self.atom(), self.text()),
            16 => SearchKey::Body(self.text()),
            17 => SearchKey::Text(self.text()),
            18 => SearchKey::ModSeq(self.rng.u64(..)),
            19 if self.bool() => SearchKey::Older(self.rng.u64(1..=u64::from(u32::MAX))),
            19 => SearchKey::Younger(self.rng.u64(1..=u64::from(u32::MAX))),
            20 => match self.rng.u8(0..6) {
                0 => SearchKey::EmailId(self.atom()),
                1 => SearchKey::ThreadId(self.atom()),
                2 => SearchKey::SavedBefore(self.date()),
                3 => SearchKey::SavedOn(self.date()),
                4 => SearchKey::SavedSince(self.date()),
                _ => SearchKey::SaveDateSupported,
            },
            _ => SearchKey::SentOn(self.date()),
        }
    }

    fn status_items(&mut self) -> Vec<StatusItem> {
        let all = [
            StatusItem::Messages,
            StatusItem::Recent,
            StatusItem::UidNext,
            StatusItem::UidValidity,
            StatusItem::Unseen,
            StatusItem::Deleted,
            StatusItem::Size,
            StatusItem::HighestModSeq,
            StatusItem::MailboxId,
        ];
        let mut items: Vec<StatusItem> = all.into_iter().filter(|_| self.bool()).collect();
        if items.is_empty() {
            items.push(StatusItem::Messages);
        }
        self.rng.shuffle(&mut items);
        items
    }

    fn section(&mut self) -> SectionSpec {
        let path: Vec<u32> = (0..self.rng.usize(0..3)).map(|_| self.nz()).collect();
        let text = match self.rng.u8(0..5) {
            0 => SectionText::Whole,
            1 => SectionText::Header,
            2 => SectionText::Text,
            3 if !path.is_empty() => SectionText::Mime,
            _ => SectionText::HeaderFields {
                not: self.bool(),
                fields: (0..self.rng.usize(1..3)).map(|_| self.text()).collect(),
            },
        };
        SectionSpec { path, text }
    }

    fn partial(&mut self) -> Option<(u32, u32)> {
        self.bool().then(|| (self.rng.u32(..), self.nz()))
    }

    fn append_message(&mut self) -> AppendMessage {
        AppendMessage {
            flags: if self.bool() {
                self.flags()
            } else {
                FlagList::default()
            },
            date: self
                .bool()
                .then(|| self.rng.i64(-30_000_000_000..250_000_000_000)),
            data: if self.rng.u8(0..4) == 0 {
                let parts = (0..self.rng.usize(1..4))
                    .map(|_| {
                        if self.bool() {
                            CatPart::Text(self.bytes())
                        } else {
                            CatPart::Url(format!("/{}/;UID={}", self.text(), self.nz()))
                        }
                    })
                    .collect();
                AppendData::Catenate(parts)
            } else {
                AppendData::Literal {
                    message: self.bytes(),
                    binary: self.bool(),
                }
            },
        }
    }

    /// A PARTIAL range (RFC 9394): both ends on one side, low first.
    fn window(&mut self) -> (i64, i64) {
        let a = self.rng.i64(1..=i64::from(u32::MAX));
        let b = self.rng.i64(a..=i64::from(u32::MAX));
        if self.bool() { (a, b) } else { (-a, -b) }
    }

    fn return_options(&mut self) -> Option<Vec<SearchReturn>> {
        self.bool().then(|| {
            let all = [
                SearchReturn::Min,
                SearchReturn::Max,
                SearchReturn::All,
                SearchReturn::Count,
                SearchReturn::Save,
            ];
            (0..self.rng.usize(1..4))
                .map(|_| {
                    if self.rng.u8(0..6) == 0 {
                        let (a, b) = self.window();
                        SearchReturn::Partial(a, b)
                    } else {
                        self.pick(&all)
                    }
                })
                .collect()
        })
    }

    fn fetch_att(&mut self) -> FetchAtt {
        match self.rng.u8(0..12) {
            0 => FetchAtt::Uid,
            1 => FetchAtt::Flags,
            2 => FetchAtt::InternalDate,
            3 => FetchAtt::Size,
            4 => FetchAtt::Envelope,
            5 => FetchAtt::Body,
            6 => FetchAtt::BodyStructure,
            7 => match self.rng.u8(0..6) {
                0 => FetchAtt::Preview { lazy: false },
                1 => FetchAtt::Preview { lazy: true },
                2 => FetchAtt::EmailId,
                3 => FetchAtt::ThreadId,
                4 => FetchAtt::SaveDate,
                _ => FetchAtt::ModSeq,
            },
            8 => {
                let (text, peek, legacy) = match self.rng.u8(0..3) {
                    0 => (SectionText::Whole, false, "RFC822"),
                    1 => (SectionText::Header, true, "RFC822.HEADER"),
                    _ => (SectionText::Text, false, "RFC822.TEXT"),
                };
                FetchAtt::Section {
                    peek,
                    section: SectionSpec { path: vec![], text },
                    partial: None,
                    legacy: Some(legacy),
                }
            }
            9 => FetchAtt::Binary {
                peek: self.bool(),
                path: (0..self.rng.usize(0..3)).map(|_| self.nz()).collect(),
                partial: self.partial(),
            },
            10 => FetchAtt::BinarySize {
                path: (0..self.rng.usize(0..3)).map(|_| self.nz()).collect(),
            },
            _ => FetchAtt::Section {
                peek: self.bool(),
                section: self.section(),
                partial: self.partial(),
                legacy: None,
            },
        }
    }

    fn list_options(&mut self) -> ListOptions {
        let subscribed_only = self.bool();
        ListOptions {
            subscribed_only,
            recursive_match: subscribed_only && self.bool(),
            special_use_only: self.bool(),
            return_subscribed: subscribed_only || self.bool(),
            return_special_use: self.bool(),
            return_status: if self.bool() {
                self.status_items()
            } else {
                Vec::new()
            },
            return_metadata: self.bool().then(|| ListMetadata {
                entries: (0..self.rng.usize(1..3))
                    .map(|_| format!("/private/{}", self.text()))
                    .collect(),
                max_size: self.bool().then(|| self.rng.u32(..)),
            }),
        }
    }

    fn kind(&mut self) -> Kind {
        let uid = self.bool();
        match self.rng.u8(0..36) {
            0 => Kind::Capability,
            1 => Kind::Noop,
            2 => Kind::Logout,
            3 => Kind::StartTls,
            4 => Kind::Login {
                user: self.bytes(),
                password: self.bytes(),
            },
            5 => Kind::Authenticate {
                mechanism: "PLAIN".into(),
                initial: self.bool().then(|| b"AGFubgBwdw==".to_vec()),
            },
            6 => Kind::Id,
            7 => Kind::Enable(vec!["CONDSTORE".into(), "UTF8=ACCEPT".into()]),
            8 => Kind::Select(Select {
                mailbox: self.bytes(),
                read_only: self.bool(),
                condstore: self.bool(),
                qresync: self.bool().then(|| Qresync {
                    uidvalidity: self.nz(),
                    modseq: self.rng.u64(..),
                    known_uids: self.bool().then(|| self.seq_set()),
                }),
            }),
            9 => Kind::Create(self.bytes()),
            10 => Kind::Delete(self.bytes()),
            11 => Kind::Rename(self.bytes(), self.bytes()),
            12 => Kind::Subscribe(self.bytes()),
            13 => Kind::Unsubscribe(self.bytes()),
            14 => Kind::List {
                reference: self.bytes(),
                patterns: (0..self.rng.usize(1..3)).map(|_| self.bytes()).collect(),
                options: self.list_options(),
            },
            15 => Kind::Lsub {
                reference: self.bytes(),
                pattern: self.bytes(),
            },
            16 => Kind::Namespace,
            17 => Kind::Status {
                mailbox: self.bytes(),
                items: self.status_items(),
            },
            18 if self.rng.u8(0..4) == 0 => Kind::GetMetadata(GetMetadata {
                mailbox: self.bytes(),
                entries: (0..self.rng.usize(1..4)).map(|_| self.atom()).collect(),
                max_size: self.bool().then(|| self.rng.u32(..)),
                depth: self.pick(&[
                    MetadataDepth::Zero,
                    MetadataDepth::One,
                    MetadataDepth::Infinity,
                ]),
            }),
            18 if self.rng.u8(0..3) == 0 => Kind::SetMetadata(SetMetadata {
                mailbox: self.bytes(),
                entries: (0..self.rng.usize(1..4))
                    .map(|_| (self.atom(), self.bool().then(|| self.bytes())))
                    .collect(),
            }),
            18 if self.bool() => Kind::Replace(Replace {
                uid,
                number: self.rng.u32(1..),
                mailbox: self.bytes(),
                message: self.append_message(),
            }),
            18 => Kind::Append(Append {
                mailbox: self.bytes(),
                messages: (0..self.rng.usize(1..4))
                    .map(|_| self.append_message())
                    .collect(),
            }),
            19 => Kind::Idle,
            20 => Kind::Check,
            21 => Kind::Close,
            22 if self.bool() => Kind::Unselect,
            22 => Kind::Unauthenticate,
            23 => Kind::Expunge(self.bool().then(|| self.seq_set())),
            24 => Kind::Search(Search {
                uid,
                ret: self.return_options(),
                key: self.key(0),
            }),
            25 => Kind::Sort(Sort {
                uid,
                ret: self.return_options(),
                keys: (0..self.rng.usize(1..4))
                    .map(|_| {
                        let by = self.pick(&[
                            SortBy::Arrival,
                            SortBy::DisplayFrom,
                            SortBy::DisplayTo,
                            SortBy::Cc,
                            SortBy::Date,
                            SortBy::From,
                            SortBy::Size,
                            SortBy::Subject,
                            SortBy::To,
                        ]);
                        (by, self.bool())
                    })
                    .collect(),
                key: self.key(0),
            }),
            26 => Kind::Thread(Thread {
                uid,
                algorithm: self.pick(&[ThreadBy::OrderedSubject, ThreadBy::References]),
                key: self.key(0),
            }),
            27 => Kind::Compress("DEFLATE".into()),
            28 | 29 => {
                let changed_since = self.bool().then(|| self.rng.u64(..));
                Kind::Fetch(Fetch {
                    uid,
                    set: self.seq_set(),
                    atts: (0..self.rng.usize(1..5))
                        .map(|_| self.fetch_att())
                        .collect(),
                    changed_since,
                    vanished: uid && changed_since.is_some() && self.bool(),
                    partial: self.bool().then(|| self.window()),
                })
            }
            30 => Kind::Store(Store {
                uid,
                set: self.seq_set(),
                op: self.pick(&[StoreOp::Add, StoreOp::Remove, StoreOp::Replace]),
                silent: self.bool(),
                flags: self.flags(),
                unchanged_since: self.bool().then(|| self.rng.u64(..)),
            }),
            31 => Kind::Copy(CopyTo {
                uid,
                set: self.seq_set(),
                mailbox: self.bytes(),
            }),
            32 => Kind::Move(CopyTo {
                uid,
                set: self.seq_set(),
                mailbox: self.bytes(),
            }),
            33 => Kind::GetQuota(self.bytes()),
            34 => Kind::GetQuotaRoot(self.bytes()),
            _ => Kind::SetQuota,
        }
    }
}

#[test]
fn generated_commands_survive_encode_then_parse() {
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(0x5ea1),
    };
    for i in 0..20_000 {
        let cmd = Command {
            tag: format!("t{i}"),
            kind: g.kind(),
        };
        let wire = encode_command(&cmd);
        let back = parse(&wire);
        assert_eq!(
            back.as_ref(),
            Ok(&cmd),
            "{:?}",
            String::from_utf8_lossy(&wire)
        );
    }
}

/// Whatever `parse` accepts, `encode_command` writes in a form that parses
/// to the same command.
fn normal_form_holds(input: &[u8]) {
    if let Ok(cmd) = parse(input) {
        let wire = encode_command(&cmd);
        assert_eq!(
            parse(&wire).as_ref(),
            Ok(&cmd),
            "{:?} became {:?}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&wire)
        );
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/imap");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

#[test]
fn parsed_inputs_encode_to_a_normal_form() {
    let seeds = seeds();
    assert!(seeds.len() > 10);
    let parsed = seeds.iter().filter(|s| parse(s).is_ok()).count();
    assert!(parsed + 2 >= seeds.len(), "most seeds are valid commands");
    for s in &seeds {
        normal_form_holds(s);
    }
    // Byte-level mutations of the seeds: flips, insertions, deletions.
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..50_000 {
        let mut s = seeds[rng.usize(..seeds.len())].clone();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..=s.len());
            match rng.u8(0..3) {
                0 if at < s.len() => s[at] = rng.u8(..),
                1 => s.insert(
                    at,
                    *b" ()\"{}*%$:,.\\0123456789aZ".get(rng.usize(..25)).unwrap(),
                ),
                _ if at < s.len() => {
                    s.remove(at);
                }
                _ => {}
            }
        }
        normal_form_holds(&s);
    }
}
