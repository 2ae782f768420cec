//! The typed IMAP command that `parse` returns: sequence sets, flags,
//! FETCH items, SEARCH keys and every command's arguments.
//!
//! Imports nothing. Invariants: plain data; sequence sets stay ranges.

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
    /// PREVIEW (RFC 8970), with `(LAZY)`.
    Preview {
        lazy: bool,
    },
    /// EMAILID and THREADID (RFC 8474).
    EmailId,
    ThreadId,
    /// SAVEDATE (RFC 8514).
    SaveDate,
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
    /// RECENT: the messages this session holds as `\Recent`.
    Recent,
    Larger(u64),
    Smaller(u64),
    Before(Date),
    On(Date),
    Since(Date),
    /// WITHIN (RFC 5032): arrived more than / at most this many seconds ago.
    Older(u64),
    Younger(u64),
    /// OBJECTID (RFC 8474 §6).
    EmailId(String),
    ThreadId(String),
    /// SAVEDATE (RFC 8514 §4.3).
    SavedBefore(Date),
    SavedOn(Date),
    SavedSince(Date),
    SaveDateSupported,
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
    /// PARTIAL (RFC 9394): a window of the result, 1-based; negative
    /// numbers count from its end (`-1` is the last).
    Partial(i64, i64),
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
    /// SORT=DISPLAY (RFC 5957).
    DisplayFrom,
    DisplayTo,
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
    /// MAILBOXID (RFC 8474).
    MailboxId,
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
    /// LIST-METADATA (RFC 9590): entries to report for each mailbox.
    pub return_metadata: Option<ListMetadata>,
}

/// `RETURN (METADATA ([MAXSIZE n] entry …))` (RFC 9590).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListMetadata {
    pub entries: Vec<String>,
    pub max_size: Option<u32>,
}

/// SELECT and EXAMINE (RFC 3501 §6.3.1, §6.3.2; RFC 7162 §3.1.8, §3.2.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Select {
    pub mailbox: Vec<u8>,
    pub read_only: bool,
    pub condstore: bool,
    pub qresync: Option<Qresync>,
}

/// APPEND (RFC 3501 §6.3.11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Append {
    pub mailbox: Vec<u8>,
    /// One message, or several with MULTIAPPEND (RFC 3502).
    pub messages: Vec<AppendMessage>,
}

/// REPLACE and UID REPLACE (RFC 8508): a new message for an old one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replace {
    pub uid: bool,
    /// The message replaced: a sequence number, or a UID under UID.
    pub number: u32,
    pub mailbox: Vec<u8>,
    pub message: AppendMessage,
}

/// GETMETADATA (RFC 5464 §4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetMetadata {
    /// Empty: the server's entries.
    pub mailbox: Vec<u8>,
    pub entries: Vec<String>,
    pub max_size: Option<u32>,
    pub depth: MetadataDepth,
}

/// How far below each named entry GETMETADATA reaches (RFC 5464 §4.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataDepth {
    Zero,
    One,
    Infinity,
}

/// SETMETADATA (RFC 5464 §4.3): a value of `None` removes the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetMetadata {
    pub mailbox: Vec<u8>,
    pub entries: Vec<(String, Option<Vec<u8>>)>,
}

/// One message of an APPEND with its flags and date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: FlagList,
    pub date: Option<i64>,
    pub data: AppendData,
}

/// What an APPEND message is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendData {
    /// The message itself. `binary`: sent as a `literal8` (RFC 3516 §4.4),
    /// so it may hold binary content.
    Literal { message: Vec<u8>, binary: bool },
    /// CATENATE (RFC 4469): the message is these parts, joined in order.
    Catenate(Vec<CatPart>),
}

/// One part of a CATENATE message (RFC 4469 §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatPart {
    /// `TEXT literal`: bytes sent with the command.
    Text(Vec<u8>),
    /// `URL astring`: an IMAP URL (RFC 5092) naming a message or a part of
    /// one in the user's own mailboxes; [`parse_url`](super::parse_url)
    /// reads it when the command runs.
    Url(String),
}

/// SEARCH (RFC 3501 §6.4.4, RFC 4731 RETURN, RFC 5182 SAVE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search {
    pub uid: bool,
    pub ret: Option<Vec<SearchReturn>>,
    pub key: SearchKey,
}

/// SORT (RFC 5256 §3): keys with their REVERSE flags, most significant
/// first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sort {
    pub uid: bool,
    /// ESORT (RFC 5267 §3): return options, answered with ESEARCH.
    pub ret: Option<Vec<SearchReturn>>,
    pub keys: Vec<(SortBy, bool)>,
    pub key: SearchKey,
}

/// THREAD (RFC 5256 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thread {
    pub uid: bool,
    pub algorithm: ThreadBy,
    pub key: SearchKey,
}

/// FETCH (RFC 3501 §6.4.5, RFC 7162 CHANGEDSINCE and VANISHED).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    pub uid: bool,
    pub set: SeqSet,
    pub atts: Vec<FetchAtt>,
    pub changed_since: Option<u64>,
    pub vanished: bool,
    /// PARTIAL (RFC 9394 §3.3): only this window of the set's messages.
    pub partial: Option<(i64, i64)>,
}

/// STORE (RFC 3501 §6.4.6, RFC 7162 UNCHANGEDSINCE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Store {
    pub uid: bool,
    pub set: SeqSet,
    pub op: StoreOp,
    pub silent: bool,
    pub flags: FlagList,
    pub unchanged_since: Option<u64>,
}

/// COPY and MOVE (RFC 3501 §6.4.7, RFC 6851).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyTo {
    pub uid: bool,
    pub set: SeqSet,
    pub mailbox: Vec<u8>,
}

/// A command without its tag.
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
    Select(Select),
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
    Append(Append),
    Replace(Replace),
    GetMetadata(GetMetadata),
    SetMetadata(SetMetadata),
    Idle,
    Check,
    Close,
    Unselect,
    /// UNAUTHENTICATE (RFC 8437): back to the not-authenticated state.
    Unauthenticate,
    Expunge(Option<SeqSet>),
    Search(Search),
    Sort(Sort),
    Thread(Thread),
    /// COMPRESS (RFC 4978) with its mechanism name.
    Compress(String),
    Fetch(Fetch),
    Store(Store),
    Copy(CopyTo),
    Move(CopyTo),
    GetQuota(Vec<u8>),
    GetQuotaRoot(Vec<u8>),
    SetQuota,
}
