//! IMAP commands (RFC 3501 with the extensions sealmail announces): one
//! whole command in (its lines and literals, as read off the wire), one
//! typed command or a typed error out.
//!
//! Imports `util` (calendar arithmetic) only. Invariants: parsing is total over any bytes;
//! parenthesis nesting is bounded by [`MAX_DEPTH`] before anything recurses
//! deeper; sequence sets stay ranges (`1:*` is one pair, never a list);
//! numbers are range-checked here. Mailbox names come out as raw bytes: their
//! decoding (modified UTF-7, see `proto::mutf7`, or UTF-8) depends on
//! session state.

/// Longest command line accepted (literals excluded), CRLF excluded.
pub const MAX_LINE: usize = 64 * 1024;
/// Deepest nesting of parentheses in any command.
pub const MAX_DEPTH: usize = 64;
/// Most literals one command may carry.
pub const MAX_LITERALS: usize = 1000;

/// A sequence number or UID, or `*` (the last one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqNum {
    Num(u32),
    Star,
}

/// A sequence set as the client wrote it: inclusive ranges, unordered. No
/// ranges at all is `$`, the saved search result (SEARCHRES, RFC 5182).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqSet(pub Vec<(SeqNum, SeqNum)>);

impl SeqSet {
    /// `$`: the last search result saved with `RETURN (SAVE)`.
    pub fn is_saved(&self) -> bool {
        self.0.is_empty()
    }
}

/// Flags as named in commands: system flags by bit (same bits as the store),
/// keywords by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlagList {
    pub system: u8,
    pub keywords: Vec<String>,
    /// `\Recent` or `\*` named where they cannot be set.
    pub invalid: Option<String>,
}

pub const SEEN: u8 = 1;
pub const ANSWERED: u8 = 2;
pub const FLAGGED: u8 = 4;
pub const DELETED: u8 = 8;
pub const DRAFT: u8 = 16;

/// Which bytes of a message a FETCH names (RFC 3501 §6.4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionText {
    Whole,
    Header,
    HeaderFields { not: bool, fields: Vec<String> },
    Text,
    Mime,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionSpec {
    pub path: Vec<u32>,
    pub text: SectionText,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchAtt {
    Uid,
    Flags,
    InternalDate,
    Size,
    Envelope,
    /// BODY without a section: the non-extensible structure.
    Body,
    BodyStructure,
    ModSeq,
    Section {
        peek: bool,
        section: SectionSpec,
        /// `<origin.count>`
        partial: Option<(u32, u32)>,
        /// RFC822, RFC822.HEADER or RFC822.TEXT: the name the reply uses.
        legacy: Option<&'static str>,
    },
    /// BINARY[part]<partial> and BINARY.PEEK (RFC 3516): a part with its
    /// Content-Transfer-Encoding undone.
    Binary {
        peek: bool,
        path: Vec<u32>,
        partial: Option<(u32, u32)>,
    },
    /// BINARY.SIZE[part]: the decoded size.
    BinarySize {
        path: Vec<u32>,
    },
}

/// A calendar date (SEARCH BEFORE/ON/SINCE...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// SEARCH keys, with sequence sets still as the client wrote them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Seq(SeqSet),
    Uid(SeqSet),
    Flag(u8, bool),
    Keyword(String, bool),
    /// RECENT / NEW: sealmail keeps no `\Recent`, so these match nothing.
    Recent,
    Larger(u64),
    Smaller(u64),
    Before(Date),
    On(Date),
    Since(Date),
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    Subject(String),
    From(String),
    To(String),
    Cc(String),
    Bcc(String),
    Header(String, String),
    Body(String),
    Text(String),
    ModSeq(u64),
    Not(Box<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    And(Vec<SearchKey>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    /// SEARCHRES (RFC 5182): keep the result as `$`.
    Save,
}

/// A SORT key (RFC 5256 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortBy {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
}

/// A THREAD algorithm (RFC 5256 §2.1, §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadBy {
    OrderedSubject,
    References,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    HighestModSeq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    Add,
    Remove,
    Replace,
}

/// SELECT's QRESYNC parameters (RFC 7162 §3.2.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SeqSet>,
}

/// LIST-EXTENDED options that sealmail honours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub subscribed_only: bool,
    /// With `subscribed_only`: also list unsubscribed parents of subscribed
    /// mailboxes, marked `CHILDINFO ("SUBSCRIBED")`.
    pub recursive_match: bool,
    pub special_use_only: bool,
    pub return_subscribed: bool,
    pub return_special_use: bool,
    pub return_status: Vec<StatusItem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Capability,
    Noop,
    Logout,
    StartTls,
    Login {
        user: Vec<u8>,
        password: Vec<u8>,
    },
    Authenticate {
        mechanism: String,
        initial: Option<Vec<u8>>,
    },
    Id,
    Enable(Vec<String>),
    Select {
        mailbox: Vec<u8>,
        read_only: bool,
        condstore: bool,
        qresync: Option<Qresync>,
    },
    Create(Vec<u8>),
    Delete(Vec<u8>),
    Rename(Vec<u8>, Vec<u8>),
    Subscribe(Vec<u8>),
    Unsubscribe(Vec<u8>),
    List {
        reference: Vec<u8>,
        patterns: Vec<Vec<u8>>,
        options: ListOptions,
    },
    Lsub {
        reference: Vec<u8>,
        pattern: Vec<u8>,
    },
    Namespace,
    Status {
        mailbox: Vec<u8>,
        items: Vec<StatusItem>,
    },
    Append {
        mailbox: Vec<u8>,
        flags: FlagList,
        date: Option<i64>,
        message: Vec<u8>,
    },
    Idle,
    Check,
    Close,
    Unselect,
    Expunge(Option<SeqSet>),
    Search {
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        key: SearchKey,
    },
    /// Sort keys with their REVERSE flags, most significant first.
    Sort {
        uid: bool,
        keys: Vec<(SortBy, bool)>,
        key: SearchKey,
    },
    Thread {
        uid: bool,
        algorithm: ThreadBy,
        key: SearchKey,
    },
    /// COMPRESS (RFC 4978) with its mechanism name.
    Compress(String),
    Fetch {
        uid: bool,
        set: SeqSet,
        atts: Vec<FetchAtt>,
        changed_since: Option<u64>,
        vanished: bool,
    },
    Store {
        uid: bool,
        set: SeqSet,
        op: StoreOp,
        silent: bool,
        flags: FlagList,
        unchanged_since: Option<u64>,
    },
    Copy {
        uid: bool,
        set: SeqSet,
        mailbox: Vec<u8>,
    },
    Move {
        uid: bool,
        set: SeqSet,
        mailbox: Vec<u8>,
    },
    GetQuota(Vec<u8>),
    GetQuotaRoot(Vec<u8>),
    SetQuota,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub kind: Kind,
}

/// Why a command was refused; the tag, when one could be read, comes along
/// so the reply can be tagged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub tag: Option<String>,
    pub message: String,
    /// A charset SEARCH cannot use: `NO [BADCHARSET]` rather than `BAD`.
    pub bad_charset: bool,
}

type R<T> = Result<T, String>;

/// Parses one whole command: its lines joined by CRLF, literals inline
/// (`{n}` CRLF and n bytes), without the final CRLF.
pub fn parse(input: &[u8]) -> Result<Command, ParseError> {
    let mut p = Parser {
        b: input,
        pos: 0,
        depth: 0,
    };
    let tag = match p.tag() {
        Ok(t) => t,
        Err(message) => {
            return Err(ParseError {
                tag: None,
                message,
                bad_charset: false,
            });
        }
    };
    let fail = |message: String| ParseError {
        tag: Some(tag.clone()),
        bad_charset: message.starts_with("BADCHARSET"),
        message,
    };
    p.sp().map_err(fail)?;
    let kind = p.command().map_err(fail)?;
    if p.pos != p.b.len() {
        return Err(fail(format!(
            "unexpected characters at the end of the command (at byte {})",
            p.pos
        )));
    }
    Ok(Command { tag, kind })
}

/// The tag and command name of a command's first line, when they can be
/// read (so a reader can answer before parsing, e.g. to refuse a literal).
pub fn tag_and_name(line: &[u8]) -> Option<(String, String)> {
    let mut p = Parser {
        b: line,
        pos: 0,
        depth: 0,
    };
    let tag = p.tag().ok()?;
    p.sp().ok()?;
    let name = p.atom().ok()?.to_ascii_uppercase();
    let name = if name == "UID" && p.sp().is_ok() {
        format!("UID {}", p.atom().ok()?.to_ascii_uppercase())
    } else {
        name
    };
    Some((tag, name))
}

/// The literal a line announces at its end: `{n}` (synchronising) or `{n+}`.
pub fn literal_at_end(line: &[u8]) -> Option<(u64, bool)> {
    let rest = line.strip_suffix(b"}")?;
    let open = rest.iter().rposition(|&b| b == b'{')?;
    let inner = &rest[open + 1..];
    let (digits, plus) = match inner.strip_suffix(b"+") {
        Some(d) => (d, true),
        None => (inner, false),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, plus))
}

struct Parser<'a> {
    b: &'a [u8],
    pos: usize,
    depth: usize,
}

fn is_atom_char(c: u8) -> bool {
    c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

fn is_astring_char(c: u8) -> bool {
    is_atom_char(c) || c == b']'
}

fn is_list_char(c: u8) -> bool {
    is_astring_char(c) || c == b'%' || c == b'*'
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn expect(&mut self, c: u8) -> R<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.pos))
        }
    }

    fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        &self.b[start..self.pos]
    }

    fn tag(&mut self) -> R<String> {
        let t = self.take_while(|c| is_astring_char(c) && c != b'+');
        if t.is_empty() {
            return Err("a command starts with a tag".into());
        }
        Ok(String::from_utf8_lossy(t).into_owned())
    }

    fn atom(&mut self) -> R<String> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err(format!("expected an atom at byte {}", self.pos));
        }
        Ok(String::from_utf8_lossy(a).into_owned())
    }

    /// Enters a parenthesised list, bounding the depth.
    fn open(&mut self) -> R<()> {
        self.expect(b'(')?;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("parentheses nest deeper than {MAX_DEPTH}"));
        }
        Ok(())
    }

    fn close(&mut self) -> R<()> {
        self.expect(b')')?;
        self.depth -= 1;
        Ok(())
    }

    fn number64(&mut self) -> R<u64> {
        let d = self.take_while(|c| c.is_ascii_digit());
        if d.is_empty() || d.len() > 20 {
            return Err(format!("expected a number at byte {}", self.pos));
        }
        std::str::from_utf8(d)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "number out of range".to_string())
    }

    fn number(&mut self) -> R<u32> {
        u32::try_from(self.number64()?).map_err(|_| "number out of range".to_string())
    }

    fn nz_number(&mut self) -> R<u32> {
        match self.number()? {
            0 => Err("0 is not a valid message number or UID".into()),
            n => Ok(n),
        }
    }

    fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') => return Err("unterminated quoted string".into()),
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
                        _ => return Err("bad escape in quoted string".into()),
                    }
                }
                Some(0) => return Err("NUL in quoted string".into()),
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> R<Vec<u8>> {
        self.expect(b'{')?;
        let n = self.number64()?;
        self.eat(b'+');
        self.expect(b'}')?;
        if !self.b[self.pos..].starts_with(b"\r\n") {
            return Err("a literal's size must end its line".into());
        }
        self.pos += 2;
        let n = usize::try_from(n).map_err(|_| "literal too large".to_string())?;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| "literal is shorter than announced".to_string())?;
        let out = self.b[self.pos..end].to_vec();
        self.pos = end;
        Ok(out)
    }

    fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => Err(format!("expected a string at byte {}", self.pos)),
        }
    }

    fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let a = self.take_while(is_astring_char);
                if a.is_empty() {
                    return Err(format!("expected a string at byte {}", self.pos));
                }
                Ok(a.to_vec())
            }
        }
    }

    fn astring_utf8(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| "string is not valid UTF-8".to_string())
    }

    fn list_mailbox(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let a = self.take_while(is_list_char);
                if a.is_empty() {
                    return Err(format!("expected a mailbox pattern at byte {}", self.pos));
                }
                Ok(a.to_vec())
            }
        }
    }

    fn seq_num(&mut self) -> R<SeqNum> {
        if self.eat(b'*') {
            Ok(SeqNum::Star)
        } else {
            Ok(SeqNum::Num(self.nz_number()?))
        }
    }

    fn seq_set(&mut self) -> R<SeqSet> {
        if self.eat(b'$') {
            return Ok(SeqSet(Vec::new()));
        }
        let mut out = Vec::new();
        loop {
            let a = self.seq_num()?;
            let b = if self.eat(b':') { self.seq_num()? } else { a };
            out.push((a, b));
            if out.len() > 100_000 {
                return Err("sequence set has too many ranges".into());
            }
            if !self.eat(b',') {
                return Ok(SeqSet(out));
            }
        }
    }

    fn flag(&mut self, allow_star: bool) -> R<(Option<u8>, String)> {
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

    fn add_flag(list: &mut FlagList, f: (Option<u8>, String)) {
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

    fn flag_list(&mut self) -> R<FlagList> {
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

    fn command(&mut self) -> R<Kind> {
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
                    return Err("ENABLE needs at least one capability".into());
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
            "IDLE" => Kind::Idle,
            "CHECK" => Kind::Check,
            "CLOSE" => Kind::Close,
            "UNSELECT" => Kind::Unselect,
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
                    "EXPUNGE" => {
                        self.sp()?;
                        Kind::Expunge(Some(self.seq_set()?))
                    }
                    _ => return Err(format!("unknown command UID {sub}")),
                }
            }
            _ => return Err(format!("unknown command {name}")),
        };
        Ok(kind)
    }

    fn sp_mailbox(&mut self) -> R<Vec<u8>> {
        self.sp()?;
        self.astring()
    }

    /// ID's parameter list is read and dropped: sealmail logs nothing from it.
    fn id_params(&mut self) -> R<()> {
        if self.peek() != Some(b'(') {
            let nil = self.atom()?;
            return if nil.eq_ignore_ascii_case("NIL") {
                Ok(())
            } else {
                Err("ID takes NIL or a parameter list".into())
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
                return Err("ID takes at most 30 fields".into());
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn nstring(&mut self) -> R<Option<Vec<u8>>> {
        if matches!(self.peek(), Some(b'"' | b'{')) {
            return self.string().map(Some);
        }
        let a = self.atom()?;
        if a.eq_ignore_ascii_case("NIL") {
            Ok(None)
        } else {
            Err("expected a string or NIL".into())
        }
    }

    fn select(&mut self, read_only: bool) -> R<Kind> {
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
                    _ => return Err(format!("unknown SELECT parameter {p}")),
                }
                if self.eat(b')') {
                    self.depth -= 1;
                    break;
                }
                self.sp()?;
            }
        }
        Ok(Kind::Select {
            mailbox,
            read_only,
            condstore,
            qresync,
        })
    }

    /// Skips a parenthesised list (QRESYNC's sequence match data, which
    /// only optimises; sealmail answers exactly without it).
    fn skip_list(&mut self) -> R<()> {
        self.open()?;
        loop {
            match self.peek() {
                None => return Err("unterminated list".into()),
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

    fn list(&mut self) -> R<Kind> {
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
                    o => return Err(format!("unknown LIST selection option {o}")),
                }
            }
            self.depth -= 1;
            if options.recursive_match && !options.subscribed_only {
                // RFC 5258 §3.1: it only refines another selection option.
                return Err("RECURSIVEMATCH needs the SUBSCRIBED selection option".into());
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
            let ret = self.atom()?;
            if !ret.eq_ignore_ascii_case("RETURN") {
                return Err("expected RETURN".into());
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
                    o => return Err(format!("unknown LIST return option {o}")),
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

    fn status_items(&mut self) -> R<Vec<StatusItem>> {
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
                other => return Err(format!("unknown STATUS item {other}")),
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

    fn append(&mut self) -> R<Kind> {
        let mailbox = self.sp_mailbox()?;
        self.sp()?;
        let mut flags = FlagList::default();
        if self.peek() == Some(b'(') {
            flags = self.flag_list()?;
            self.sp()?;
        }
        let mut date = None;
        if self.peek() == Some(b'"') {
            let text = self.quoted()?;
            date = Some(parse_date_time(&text).ok_or("bad APPEND date-time")?);
            self.sp()?;
        }
        // A literal8 (RFC 3516 §4.4) may carry NULs; it is stored as is.
        self.eat(b'~');
        let message = self.literal()?;
        if !self.at_end() {
            return Err("MULTIAPPEND is not supported: one message per APPEND".into());
        }
        Ok(Kind::Append {
            mailbox,
            flags,
            date,
            message,
        })
    }

    fn search(&mut self, uid: bool) -> R<Kind> {
        self.sp()?;
        let mut ret = None;
        let save = self.pos;
        if let Ok(a) = self.atom()
            && a.eq_ignore_ascii_case("RETURN")
        {
            self.sp()?;
            self.open()?;
            let mut opts = Vec::new();
            while !self.eat(b')') {
                self.eat(b' ');
                opts.push(match self.atom()?.to_ascii_uppercase().as_str() {
                    "MIN" => SearchReturn::Min,
                    "MAX" => SearchReturn::Max,
                    "ALL" => SearchReturn::All,
                    "COUNT" => SearchReturn::Count,
                    "SAVE" => SearchReturn::Save,
                    o => return Err(format!("unknown SEARCH return option {o}")),
                });
            }
            self.depth -= 1;
            if opts.is_empty() {
                opts.push(SearchReturn::All);
            }
            ret = Some(opts);
            self.sp()?;
        } else {
            self.pos = save;
        }
        let save = self.pos;
        if let Ok(a) = self.atom()
            && a.eq_ignore_ascii_case("CHARSET")
        {
            self.sp()?;
            self.charset()?;
            self.sp()?;
        } else {
            self.pos = save;
        }
        let key = self.search_keys()?;
        Ok(Kind::Search { uid, ret, key })
    }

    /// A SEARCH charset sealmail can match in (UTF-8 and its subset).
    fn charset(&mut self) -> R<()> {
        let cs = String::from_utf8_lossy(&self.astring()?).to_ascii_uppercase();
        if cs != "UTF-8" && cs != "US-ASCII" {
            return Err("BADCHARSET only UTF-8 and US-ASCII are supported".into());
        }
        Ok(())
    }

    /// One or more search keys, ANDed.
    fn search_keys(&mut self) -> R<SearchKey> {
        let mut keys = vec![self.search_key()?];
        while self.eat(b' ') {
            keys.push(self.search_key()?);
        }
        Ok(if keys.len() == 1 {
            keys.pop().unwrap_or(SearchKey::All)
        } else {
            SearchKey::And(keys)
        })
    }

    /// SORT (RFC 5256 §3): `(criteria) charset keys`.
    fn sort(&mut self, uid: bool) -> R<Kind> {
        self.sp()?;
        self.open()?;
        let mut keys = Vec::new();
        loop {
            let mut reverse = false;
            let mut name = self.atom()?.to_ascii_uppercase();
            if name == "REVERSE" {
                reverse = true;
                self.sp()?;
                name = self.atom()?.to_ascii_uppercase();
            }
            let by = match name.as_str() {
                "ARRIVAL" => SortBy::Arrival,
                "CC" => SortBy::Cc,
                "DATE" => SortBy::Date,
                "FROM" => SortBy::From,
                "SIZE" => SortBy::Size,
                "SUBJECT" => SortBy::Subject,
                "TO" => SortBy::To,
                k => return Err(format!("unknown sort key {k}")),
            };
            keys.push((by, reverse));
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        self.depth -= 1;
        self.sp()?;
        self.charset()?;
        self.sp()?;
        let key = self.search_keys()?;
        Ok(Kind::Sort { uid, keys, key })
    }

    /// THREAD (RFC 5256 §4): `algorithm charset keys`.
    fn thread(&mut self, uid: bool) -> R<Kind> {
        self.sp()?;
        let algorithm = match self.atom()?.to_ascii_uppercase().as_str() {
            "ORDEREDSUBJECT" => ThreadBy::OrderedSubject,
            "REFERENCES" => ThreadBy::References,
            a => return Err(format!("unknown threading algorithm {a}")),
        };
        self.sp()?;
        self.charset()?;
        self.sp()?;
        let key = self.search_keys()?;
        Ok(Kind::Thread {
            uid,
            algorithm,
            key,
        })
    }

    fn search_string(&mut self) -> R<String> {
        self.sp()?;
        self.astring_utf8()
    }

    fn search_date(&mut self) -> R<Date> {
        self.sp()?;
        let text = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            self.take_while(|c| c.is_ascii_alphanumeric() || c == b'-')
                .to_vec()
        };
        parse_date(&text).ok_or_else(|| "bad date (expected e.g. 1-Feb-2024)".to_string())
    }

    fn search_key(&mut self) -> R<SearchKey> {
        if self.peek() == Some(b'(') {
            self.open()?;
            let mut keys = vec![self.search_key()?];
            while self.eat(b' ') {
                keys.push(self.search_key()?);
            }
            self.close()?;
            return Ok(if keys.len() == 1 {
                keys.pop().unwrap_or(SearchKey::All)
            } else {
                SearchKey::And(keys)
            });
        }
        if matches!(self.peek(), Some(b'0'..=b'9' | b'*' | b'$')) {
            return Ok(SearchKey::Seq(self.seq_set()?));
        }
        let name = self.atom()?.to_ascii_uppercase();
        let flag = |bit, set| Ok(SearchKey::Flag(bit, set));
        match name.as_str() {
            "ALL" => Ok(SearchKey::All),
            "ANSWERED" => flag(ANSWERED, true),
            "DELETED" => flag(DELETED, true),
            "DRAFT" => flag(DRAFT, true),
            "FLAGGED" => flag(FLAGGED, true),
            "SEEN" => flag(SEEN, true),
            "UNANSWERED" => flag(ANSWERED, false),
            "UNDELETED" => flag(DELETED, false),
            "UNDRAFT" => flag(DRAFT, false),
            "UNFLAGGED" => flag(FLAGGED, false),
            "UNSEEN" => flag(SEEN, false),
            "OLD" => Ok(SearchKey::Not(Box::new(SearchKey::Recent))),
            "NEW" | "RECENT" => Ok(SearchKey::Recent),
            "KEYWORD" | "UNKEYWORD" => {
                self.sp()?;
                let k = self.atom()?;
                Ok(SearchKey::Keyword(k, name == "KEYWORD"))
            }
            "LARGER" | "SMALLER" => {
                self.sp()?;
                let n = self.number64()?;
                Ok(if name == "LARGER" {
                    SearchKey::Larger(n)
                } else {
                    SearchKey::Smaller(n)
                })
            }
            "BEFORE" => Ok(SearchKey::Before(self.search_date()?)),
            "ON" => Ok(SearchKey::On(self.search_date()?)),
            "SINCE" => Ok(SearchKey::Since(self.search_date()?)),
            "SENTBEFORE" => Ok(SearchKey::SentBefore(self.search_date()?)),
            "SENTON" => Ok(SearchKey::SentOn(self.search_date()?)),
            "SENTSINCE" => Ok(SearchKey::SentSince(self.search_date()?)),
            "SUBJECT" => Ok(SearchKey::Subject(self.search_string()?)),
            "FROM" => Ok(SearchKey::From(self.search_string()?)),
            "TO" => Ok(SearchKey::To(self.search_string()?)),
            "CC" => Ok(SearchKey::Cc(self.search_string()?)),
            "BCC" => Ok(SearchKey::Bcc(self.search_string()?)),
            "BODY" => Ok(SearchKey::Body(self.search_string()?)),
            "TEXT" => Ok(SearchKey::Text(self.search_string()?)),
            "HEADER" => {
                let field = self.search_string()?;
                let value = self.search_string()?;
                Ok(SearchKey::Header(field, value))
            }
            "UID" => {
                self.sp()?;
                Ok(SearchKey::Uid(self.seq_set()?))
            }
            "MODSEQ" => {
                self.sp()?;
                if self.peek() == Some(b'"') {
                    // entry name and type: sealmail keeps one modseq per
                    // message, so every entry compares alike.
                    self.quoted()?;
                    self.sp()?;
                    self.atom()?;
                    self.sp()?;
                }
                Ok(SearchKey::ModSeq(self.number64()?))
            }
            "NOT" => {
                self.sp()?;
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(format!("search keys nest deeper than {MAX_DEPTH}"));
                }
                let k = self.search_key()?;
                self.depth -= 1;
                Ok(SearchKey::Not(Box::new(k)))
            }
            "OR" => {
                self.sp()?;
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(format!("search keys nest deeper than {MAX_DEPTH}"));
                }
                let a = self.search_key()?;
                self.sp()?;
                let b = self.search_key()?;
                self.depth -= 1;
                Ok(SearchKey::Or(Box::new(a), Box::new(b)))
            }
            other => Err(format!("unknown search key {other}")),
        }
    }

    fn fetch(&mut self, uid: bool) -> R<Kind> {
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
        if self.eat(b' ') {
            self.open()?;
            loop {
                match self.atom()?.to_ascii_uppercase().as_str() {
                    "CHANGEDSINCE" => {
                        self.sp()?;
                        changed_since = Some(self.number64()?);
                    }
                    "VANISHED" => vanished = true,
                    o => return Err(format!("unknown FETCH modifier {o}")),
                }
                if self.eat(b')') {
                    self.depth -= 1;
                    break;
                }
                self.sp()?;
            }
        }
        if vanished && (!uid || changed_since.is_none()) {
            return Err("VANISHED needs UID FETCH with CHANGEDSINCE".into());
        }
        Ok(Kind::Fetch {
            uid,
            set,
            atts,
            changed_since,
            vanished,
        })
    }

    fn fetch_att(&mut self) -> R<FetchAtt> {
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
                        Err("BODY.PEEK needs a section".into())
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
            _ => Err(format!(
                "unknown FETCH item {}",
                String::from_utf8_lossy(&name)
            )),
        }
    }

    /// `<origin.count>` after a section, if present.
    fn partial(&mut self) -> R<Option<(u32, u32)>> {
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
    fn binary_section(&mut self) -> R<Vec<u32>> {
        self.expect(b'[')?;
        let mut path = Vec::new();
        while !self.eat(b']') {
            if !path.is_empty() {
                self.expect(b'.')?;
            }
            path.push(self.nz_number()?);
            if path.len() > 32 {
                return Err("section path too deep".into());
            }
        }
        Ok(path)
    }

    fn section(&mut self) -> R<SectionSpec> {
        self.expect(b'[')?;
        let mut path = Vec::new();
        while matches!(self.peek(), Some(b'1'..=b'9')) {
            path.push(self.nz_number()?);
            if path.len() > 32 {
                return Err("section path too deep".into());
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
            _ => return Err("bad section".into()),
        };
        if !path.is_empty() && word.is_empty() && self.b.get(self.pos - 1) == Some(&b'.') {
            return Err("bad section".into());
        }
        self.expect(b']')?;
        Ok(SectionSpec { path, text })
    }

    fn store(&mut self, uid: bool) -> R<Kind> {
        self.sp()?;
        let set = self.seq_set()?;
        self.sp()?;
        let mut unchanged_since = None;
        if self.peek() == Some(b'(') {
            self.open()?;
            let m = self.atom()?;
            if !m.eq_ignore_ascii_case("UNCHANGEDSINCE") {
                return Err(format!("unknown STORE modifier {m}"));
            }
            self.sp()?;
            unchanged_since = Some(self.number64()?);
            self.close()?;
            self.sp()?;
        }
        let item = self.atom()?.to_ascii_uppercase();
        let (op, rest) = match item.as_bytes().first() {
            Some(b'+') => (StoreOp::Add, &item[1..]),
            Some(b'-') => (StoreOp::Remove, &item[1..]),
            _ => (StoreOp::Replace, item.as_str()),
        };
        let silent = match rest {
            "FLAGS" => false,
            "FLAGS.SILENT" => true,
            _ => return Err(format!("unknown STORE item {item}")),
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
        Ok(Kind::Store {
            uid,
            set,
            op,
            silent,
            flags,
            unchanged_since,
        })
    }

    fn copy(&mut self, uid: bool, is_move: bool) -> R<Kind> {
        self.sp()?;
        let set = self.seq_set()?;
        let mailbox = self.sp_mailbox()?;
        Ok(if is_move {
            Kind::Move { uid, set, mailbox }
        } else {
            Kind::Copy { uid, set, mailbox }
        })
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// `1-Feb-1994` (RFC 3501 date).
pub fn parse_date(text: &[u8]) -> Option<Date> {
    let s = std::str::from_utf8(text).ok()?;
    let mut it = s.split('-');
    let day: u8 = it.next()?.trim_start().parse().ok()?;
    let month = it.next()?.to_ascii_uppercase();
    let month = MONTHS.iter().position(|m| *m == month)? as u8 + 1;
    let year: u16 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=31).contains(&day) || !(1000..=9999).contains(&year) {
        return None;
    }
    Some(Date { year, month, day })
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz` (RFC 3501 date-time) as Unix time.
pub fn parse_date_time(text: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(text).ok()?;
    let (date, rest) = s.trim_start().split_once(' ')?;
    let d = parse_date(date.as_bytes())?;
    let (time, zone) = rest.split_once(' ')?;
    let t: Vec<u32> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if t.len() != 3 || t[0] > 23 || t[1] > 59 || t[2] > 60 || zone.len() != 5 {
        return None;
    }
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let zh: i64 = zone[1..3].parse().ok()?;
    let zm: i64 = zone[3..5].parse().ok()?;
    let days = crate::util::days_from_civil(d.year as i64, d.month as u32, d.day as u32);
    let local = days * 86400 + (t[0] * 3600 + t[1] * 60 + t[2]) as i64;
    Some(local - sign * (zh * 3600 + zm * 60))
}

/// Writes `bytes` as an IMAP string: quoted when it can be, else a literal.
pub fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
    push_string_as(out, bytes, false);
}

/// [`push_string`] for a session that enabled UTF8=ACCEPT or IMAP4rev2,
/// where quoted strings may carry UTF-8 (RFC 6855 §3, RFC 9051 §9).
pub fn push_utf8_string(out: &mut Vec<u8>, bytes: &[u8]) {
    push_string_as(out, bytes, std::str::from_utf8(bytes).is_ok());
}

fn push_string_as(out: &mut Vec<u8>, bytes: &[u8], utf8: bool) {
    let quotable = bytes.len() < 1024
        && bytes
            .iter()
            .all(|&c| c != b'\r' && c != b'\n' && c != 0 && (c < 0x80 || utf8));
    if quotable {
        out.push(b'"');
        for &c in bytes {
            if c == b'"' || c == b'\\' {
                out.push(b'\\');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
    }
}

/// Writes `bytes` as an atom when it can be one, else as a string.
pub fn push_astring(out: &mut Vec<u8>, bytes: &[u8]) {
    if !bytes.is_empty()
        && bytes.iter().all(|&c| is_astring_char(c))
        && !bytes.eq_ignore_ascii_case(b"NIL")
    {
        out.extend_from_slice(bytes);
    } else {
        push_string(out, bytes);
    }
}

/// `NIL` or a string.
pub fn push_nstring(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => push_string(out, b),
        None => out.extend_from_slice(b"NIL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Kind {
        parse(s.as_bytes()).unwrap().kind
    }

    fn err(s: &str) -> String {
        parse(s.as_bytes()).unwrap_err().message
    }

    #[test]
    fn simple_commands_and_tags() {
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
    fn sequence_sets_stay_ranges() {
        let Kind::Fetch { set, .. } = kind("a FETCH 1:4294967295,*,3:2 FLAGS") else {
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

    #[test]
    fn fetch_items() {
        let Kind::Fetch { atts, .. } = kind(
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
        let Kind::Fetch { atts, .. } = kind("a FETCH 1 ALL") else {
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

    #[test]
    fn search_keys_nest_boundedly() {
        let Kind::Search { key, ret, uid } =
            kind("a UID SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR (FROM x 1:3) NOT SEEN")
        else {
            panic!()
        };
        assert!(uid);
        assert_eq!(ret, Some(vec![SearchReturn::Min, SearchReturn::Count]));
        assert_eq!(
            key,
            SearchKey::Or(
                Box::new(SearchKey::And(vec![
                    SearchKey::From("x".into()),
                    SearchKey::Seq(SeqSet(vec![(SeqNum::Num(1), SeqNum::Num(3))]))
                ])),
                Box::new(SearchKey::Not(Box::new(SearchKey::Flag(SEEN, true))))
            )
        );
        let deep = format!("a SEARCH {}ALL{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(err(&deep).contains("deeper"));
        let nots = format!("a SEARCH {}ALL", "NOT ".repeat(10_000));
        assert!(err(&nots).contains("deeper"));
        let e = parse(b"a SEARCH CHARSET KOI8-R ALL").unwrap_err();
        assert!(e.bad_charset);
        assert!(matches!(
            kind("a SEARCH SINCE 1-Feb-2024 BEFORE \"15-Mar-2024\""),
            Kind::Search { .. }
        ));
        assert!(err("a SEARCH SINCE 31-Foo-2024").contains("date"));
    }

    #[test]
    fn store_append_select_list() {
        assert_eq!(
            kind("a STORE 1:2 (UNCHANGEDSINCE 9) +FLAGS.SILENT (\\Seen $Junk \\seen)"),
            Kind::Store {
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
            }
        );
        let Kind::Append {
            flags,
            date,
            message,
            ..
        } = kind("a APPEND INBOX (\\Draft) \" 1-Jan-2024 10:00:00 +0100\" {5+}\r\nhello")
        else {
            panic!()
        };
        assert_eq!(flags.system, DRAFT);
        assert_eq!(date, Some(1704099600));
        assert_eq!(message, b"hello");
        assert_eq!(
            kind("a SELECT inbox (QRESYNC (67890007 20050715194045000 41,43:211))"),
            Kind::Select {
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
            }
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

    #[test]
    fn literal_markers() {
        assert_eq!(literal_at_end(b"a APPEND x {12}"), Some((12, false)));
        assert_eq!(
            literal_at_end(b"a APPEND x {4294967295+}"),
            Some((4294967295, true))
        );
        assert_eq!(literal_at_end(b"a APPEND x {}"), None);
        assert_eq!(literal_at_end(b"a LOGIN x y"), None);
        assert_eq!(
            tag_and_name(b"t1 uid fetch 1 x"),
            Some(("t1".into(), "UID FETCH".into()))
        );
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_date(b"1-Feb-1994"),
            Some(Date {
                year: 1994,
                month: 2,
                day: 1
            })
        );
        assert_eq!(parse_date(b"32-Feb-1994"), None);
        assert_eq!(
            parse_date_time(b"17-Jul-1996 02:44:25 -0700"),
            Some(837596665)
        );
    }

    #[test]
    fn strings_are_quoted_or_literal() {
        let mut out = Vec::new();
        push_string(&mut out, b"a \"b\"\\");
        assert_eq!(out, b"\"a \\\"b\\\"\\\\\"");
        out.clear();
        push_string(&mut out, b"l1\r\nl2");
        assert_eq!(out, b"{6}\r\nl1\r\nl2");
    }
}
