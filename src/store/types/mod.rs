//! The plain, serialisable values that cross the storage interface: what a
//! protocol session asks and what it gets back.
//!
//! Imports `store::mime` (envelope and part tree) and `store::search`
//! (criteria). Invariants: nothing here holds a key or a handle to a file, so
//! every value can travel over the cluster link as it is.

mod owner;

use serde::{Deserialize, Serialize};

pub use owner::*;

use super::mime::{Envelope, Part};
use super::order::{SortCriterion, ThreadAlgorithm, ThreadNode};

/// A live unlocked session, as the backend knows it.
pub type SessionId = u64;

/// An inclusive UID range; `last == u32::MAX` stands for `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidRange {
    pub first: u32,
    pub last: u32,
}

/// A set of UIDs kept as ranges: `1:*` is one range, never a list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidSet(pub Vec<UidRange>);

impl UidSet {
    pub fn all() -> UidSet {
        UidSet(vec![UidRange {
            first: 1,
            last: u32::MAX,
        }])
    }

    pub fn range(first: u32, last: u32) -> UidSet {
        UidSet(vec![UidRange {
            first: first.min(last),
            last: first.max(last),
        }])
    }

    /// Compresses sorted or unsorted UIDs into ranges.
    pub fn from_uids(uids: &[u32]) -> UidSet {
        let mut v = uids.to_vec();
        v.sort_unstable();
        v.dedup();
        let mut out: Vec<UidRange> = Vec::new();
        for u in v {
            match out.last_mut() {
                Some(r) if r.last.checked_add(1) == Some(u) => r.last = u,
                _ => out.push(UidRange { first: u, last: u }),
            }
        }
        UidSet(out)
    }

    pub fn contains(&self, uid: u32) -> bool {
        self.0.iter().any(|r| r.first <= uid && uid <= r.last)
    }
}

/// The five system flags as bits, plus keywords (RFC 3501 §2.3.2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    pub system: u8,
    pub keywords: Vec<String>,
}

impl Flags {
    pub const SEEN: u8 = 1;
    pub const ANSWERED: u8 = 2;
    pub const FLAGGED: u8 = 4;
    pub const DELETED: u8 = 8;
    pub const DRAFT: u8 = 16;

    pub fn system(bits: u8) -> Flags {
        Flags {
            system: bits,
            keywords: Vec::new(),
        }
    }

    pub fn has(&self, bit: u8) -> bool {
        self.system & bit != 0
    }
}

/// A folder name as listed: every folder, then each subscribed name that
/// has no folder (`nonexistent`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderInfo {
    pub name: String,
    pub special_use: Option<String>,
    pub subscribed: bool,
    pub has_children: bool,
    #[serde(default)]
    pub nonexistent: bool,
}

/// STATUS counters (RFC 3501 §6.3.10, RFC 8438 SIZE).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderStatus {
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    pub messages: u32,
    pub unseen: u32,
    pub deleted: u32,
    pub size: u64,
    /// Messages no session has claimed as `\Recent` yet (RFC 3501 §2.3.2).
    #[serde(default)]
    pub recent: u32,
}

/// What SELECT needs: counters, the UID list for sequence numbers, the
/// keywords in use, and the first unseen message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectInfo {
    pub status: FolderStatus,
    pub uids: Vec<u32>,
    pub keywords: Vec<String>,
    pub first_unseen: Option<u32>,
}

/// An [`AppendRequest::folder`] that names a role, not a folder: the
/// folder marked `\Junk` (RFC 6154), whatever its owner named it, or INBOX
/// when there is none. Deliveries of mail that failed DMARC under a
/// quarantine policy go there.
pub const JUNK: &str = "\\Junk";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppendRequest {
    pub folder: String,
    pub message: Vec<u8>,
    pub flags: Flags,
    /// Unix time; now when absent.
    pub internal_date: Option<i64>,
    /// What a folder that does not exist gets.
    #[serde(default)]
    pub if_missing: IfMissing,
}

/// What an append into a folder that does not exist does: refused
/// (APPEND's `[TRYCREATE]`), or, for mail a filter filed, created
/// (`fileinto :create`) or filed in INBOX instead (RFC 5228 §4.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum IfMissing {
    #[default]
    Refuse,
    Create,
    Inbox,
}

/// Where a delivery files a message, and with which flags: INBOX by
/// default, the Junk folder for mail the sender checks marked, or what
/// the owner's Sieve script chose.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// `None` is INBOX; [`JUNK`] is the Junk folder.
    pub folder: Option<String>,
    pub flags: Flags,
    /// A missing folder is created (`fileinto :create`), not replaced by
    /// INBOX.
    pub create: bool,
}

impl Placement {
    pub fn junk() -> Placement {
        Placement {
            folder: Some(JUNK.to_string()),
            ..Placement::default()
        }
    }

    /// The append that files a message here.
    pub fn request(&self, message: Vec<u8>, internal_date: Option<i64>) -> AppendRequest {
        let if_missing = match self.folder.as_deref() {
            None | Some(JUNK) => IfMissing::Refuse,
            Some(_) if self.create => IfMissing::Create,
            Some(_) => IfMissing::Inbox,
        };
        AppendRequest {
            folder: self.folder.clone().unwrap_or_else(|| "INBOX".into()),
            message,
            flags: self.flags.clone(),
            internal_date,
            if_missing,
        }
    }
}

/// UIDPLUS APPENDUID data (RFC 4315).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendUid {
    pub uidvalidity: u32,
    pub uid: u32,
}

/// Per-message data every FETCH can carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub uid: u32,
    pub modseq: u64,
    pub flags: Flags,
    /// ISO-8601 UTC.
    pub internal_date: String,
    pub size: u64,
}

/// Which bytes of a message (RFC 3501 §6.4.5 section-spec). An empty path is
/// the message itself; `[1, 2]` is part 1.2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub path: Vec<u32>,
    pub kind: SectionKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SectionKind {
    /// The whole message, or a part's body.
    Whole,
    /// The header of the message, or of an encapsulated message.
    Header,
    /// The body of the message, or of an encapsulated message.
    Text,
    /// A part's own MIME header.
    Mime,
    /// A part's body with its Content-Transfer-Encoding undone (IMAP
    /// BINARY); the message itself for an empty path.
    Binary,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FetchWhat {
    pub envelope: bool,
    pub structure: bool,
    pub sections: Vec<Section>,
    /// The first text of the message (IMAP PREVIEW).
    #[serde(default)]
    pub preview: bool,
    /// Object ids and the save date (IMAP EMAILID, THREADID, SAVEDATE).
    #[serde(default)]
    pub ids: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchedMessage {
    pub meta: MessageMeta,
    pub envelope: Option<Envelope>,
    pub structure: Option<Part>,
    /// One entry per requested section; empty bytes for a part that does not
    /// exist (RFC 3501 §6.4.5).
    pub sections: Vec<(Section, Vec<u8>)>,
    /// Binary sections whose transfer encoding is unknown or broken
    /// (IMAP `NO [UNKNOWN-CTE]`); their entries in `sections` are empty.
    #[serde(default)]
    pub undecodable: Vec<Section>,
    #[serde(default)]
    pub preview: Option<String>,
    /// With `FetchWhat::ids`.
    #[serde(default)]
    pub ids: Option<MessageIds>,
}

/// A message's object ids (RFC 8474) and when it was saved in its folder
/// (RFC 8514; the internal date for messages stored before this was kept).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageIds {
    pub email_id: i64,
    pub thread_id: i64,
    pub saved_at: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreFlags {
    pub folder: String,
    pub uids: UidSet,
    pub op: FlagOp,
    pub flags: Flags,
    /// CONDSTORE UNCHANGEDSINCE (RFC 7162 §3.1.3).
    pub unchanged_since: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StoreResult {
    /// Messages whose flags changed, with their new modseq.
    pub updated: Vec<MessageMeta>,
    /// UIDs refused by UNCHANGEDSINCE (the MODIFIED response code).
    pub modified: Vec<u32>,
}

/// UIDPLUS COPYUID data: source and destination UIDs pair up in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyResult {
    pub uidvalidity: u32,
    pub source: Vec<u32>,
    pub dest: Vec<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    pub uids: Vec<u32>,
    /// The highest modseq among matches (CONDSTORE §3.1.5).
    pub highest_modseq: Option<u64>,
}

/// What changed in a folder since a modseq (QRESYNC).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Changes {
    pub highestmodseq: u64,
    pub changed: Vec<MessageMeta>,
    pub vanished: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    pub used_bytes: u64,
    pub messages: u64,
    pub limit_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: SessionId,
    pub address: String,
    /// The owner wants POP3 deletions moved to Trash, not expunged.
    pub pop3_trash: bool,
}

/// Where an inbound message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    Inbox { uid: u32 },
    Sealed,
}

/// A change event for IDLE and NOTIFY-like pushes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    Exists { folder: String, uid: u32 },
    Flags { folder: String, meta: MessageMeta },
    Expunged { folder: String, uids: Vec<u32> },
    FoldersChanged,
}

/// UIDs and sizes of a whole folder, in UID order (a POP3 maildrop).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub uidvalidity: u32,
    pub entries: Vec<(u32, u64)>,
}

/// What an address is to this server (RCPT TO checks).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recipient {
    /// An alias of ours.
    Local(Route),
    /// A local domain, but no such alias.
    UnknownUser,
    /// Not a domain this server receives for.
    ForeignDomain,
}

/// Where mail for an alias goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The alias as stored (lowercase).
    pub address: String,
    /// It has a mailbox.
    pub mailbox: bool,
    /// Addresses that get a copy.
    pub forward: Vec<String>,
    /// URLs that get the parsed message.
    pub webhooks: Vec<String>,
}

/// One DKIM signing key of a domain.
#[derive(
    Clone, PartialEq, Eq, Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop,
)]
pub struct DkimKey {
    pub selector: String,
    /// `rsa` (PKCS#1 DER private key) or `ed25519` (PKCS#8 DER).
    pub algorithm: String,
    pub private_key: Vec<u8>,
    /// What the DNS record publishes: SubjectPublicKeyInfo DER for RSA,
    /// the raw 32 bytes for Ed25519.
    pub public_key: Vec<u8>,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// An alias that proved its password for sending (submission AUTH).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub address: String,
    /// Other addresses it may send as (see `Control::send_as`).
    pub send_as: Vec<String>,
}

impl Account {
    /// True if mail from `address` may be sent by this account.
    pub fn owns(&self, address: &str) -> bool {
        self.address.eq_ignore_ascii_case(address)
            || self.send_as.iter().any(|a| a.eq_ignore_ascii_case(address))
    }
}

/// Every request the storage interface takes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    Unlock {
        address: String,
        password: String,
    },
    Lookup {
        address: String,
    },
    /// Checks an alias' password without opening its mailbox.
    Authenticate {
        address: String,
        password: String,
    },
    DkimKeys {
        domain: String,
    },
    /// Waits for the session's sealed-mail import, if one runs (it starts
    /// at a cold unlock and runs in the background); answered with
    /// `Settled` and the number of messages it imported.
    Settle {
        session: SessionId,
    },
    Deliver {
        address: String,
        message: Vec<u8>,
        to: Placement,
    },
    /// ManageSieve's operations on the alias' scripts.
    Sieve {
        address: String,
        op: SieveOp,
    },
    /// The alias' OpenPGP key, if it has one.
    PgpKey {
        address: String,
    },
    /// A published OpenPGP key of a domain by its WKD hash.
    WkdKey {
        domain: String,
        hash: String,
    },
    /// The alias' Sieve scripts, if one is active.
    SieveScripts {
        address: String,
    },
    /// Whether a Sieve tracking `id` (a vacation reply's sender) was seen
    /// for the alias within `expiry` seconds; recorded as seen now.
    SieveSeen {
        address: String,
        id: String,
        expiry: u64,
    },
    /// Mail a cluster secondary took while this primary was away, already
    /// sealed to the alias' public key: placed in its spool as it is, once
    /// per `shipment` key (remembered across restarts).
    DeliverSealed {
        address: String,
        sealed: Vec<u8>,
        shipment: [u8; 16],
    },
    /// What a secondary keeps to take mail while its primary is away.
    Directory,
    ListFolders {
        session: SessionId,
    },
    CreateFolder {
        session: SessionId,
        name: String,
    },
    RenameFolder {
        session: SessionId,
        from: String,
        to: String,
    },
    DeleteFolder {
        session: SessionId,
        name: String,
    },
    Subscribe {
        session: SessionId,
        name: String,
        subscribed: bool,
    },
    Select {
        session: SessionId,
        folder: String,
    },
    Status {
        session: SessionId,
        folder: String,
    },
    /// METADATA entries of a folder (`""`: the server's) named by `names`,
    /// with their descendants to `depth` levels (`u8::MAX`: all);
    /// answered with `Metadata`.
    GetMetadata {
        session: SessionId,
        folder: String,
        names: Vec<String>,
        depth: u8,
    },
    /// Sets (or, with `None`, removes) METADATA entries.
    SetMetadata {
        session: SessionId,
        folder: String,
        entries: Vec<(String, Option<Vec<u8>>)>,
    },
    /// Claims the folder's messages up to `up_to` that no session has
    /// claimed as `\Recent`; answers `Expunged` with the claimed UIDs.
    ClaimRecent {
        session: SessionId,
        folder: String,
        up_to: u32,
    },
    Listing {
        session: SessionId,
        folder: String,
    },
    Append {
        session: SessionId,
        messages: Vec<AppendRequest>,
        /// The session has the folder selected and reports `\Recent`:
        /// claim the new messages in the same transaction; answered with
        /// `AppendedRecent`.
        #[serde(default)]
        recent: bool,
    },
    Fetch {
        session: SessionId,
        folder: String,
        uids: UidSet,
        what: FetchWhat,
    },
    Store {
        session: SessionId,
        request: StoreFlags,
    },
    Copy {
        session: SessionId,
        from: String,
        uids: UidSet,
        to: String,
    },
    Move {
        session: SessionId,
        from: String,
        uids: UidSet,
        to: String,
    },
    Expunge {
        session: SessionId,
        folder: String,
        uids: Option<UidSet>,
    },
    Search {
        session: SessionId,
        folder: String,
        criteria: Criteria,
    },
    /// SORT: the matching UIDs in order (answered with `Found`).
    Sort {
        session: SessionId,
        folder: String,
        criteria: Criteria,
        keys: Vec<SortCriterion>,
    },
    Thread {
        session: SessionId,
        folder: String,
        criteria: Criteria,
        algorithm: ThreadAlgorithm,
    },
    ChangesSince {
        session: SessionId,
        folder: String,
        modseq: u64,
    },
    Quota {
        session: SessionId,
    },
    Vacuum {
        session: SessionId,
    },
    /// Adds every body waiting for the full-text index now, a batch per
    /// hold of the mailbox; answered with `Indexed` and how many.
    Index {
        session: SessionId,
    },
}

/// The matching replies.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Response {
    Unlocked(SessionInfo),
    Settled(u32),
    Indexed(u64),
    Recipient(Recipient),
    Account(Account),
    DkimKeys(Vec<DkimKey>),
    Delivered(Delivery),
    Done,
    Folders(Vec<FolderInfo>),
    Selected(SelectInfo),
    Status(FolderStatus),
    Listing(Listing),
    Appended(Vec<AppendUid>),
    Metadata(Vec<(String, Vec<u8>)>),
    /// The UIDs, and whether this session claimed them as `\Recent`.
    AppendedRecent(Vec<AppendUid>, bool),
    Fetched(Vec<FetchedMessage>),
    Stored(StoreResult),
    Copied(CopyResult),
    Expunged(Vec<u32>),
    Found(SearchResult),
    Threads(Vec<ThreadNode>),
    Changes(Changes),
    Quota(QuotaUsage),
    Directory(Directory),
    SieveScripts(Option<SieveScripts>),
    PgpKey(Option<PgpKey>),
    Seen(bool),
    Sieve(SieveReply),
}

/// What a cluster secondary keeps of its primary's aliases, to take mail
/// while the primary is away: where mail goes and the public key that
/// seals it, never a key that opens a mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// The local domains.
    pub domains: Vec<String>,
    pub aliases: Vec<DirectoryEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    pub route: Route,
    /// The age recipient mail for its mailbox is sealed to.
    pub public_key: Option<String>,
    /// The OpenPGP key mail is encrypted to before it is sealed.
    #[serde(default)]
    pub pgp: Option<PgpKey>,
}

/// A calendar date, compared by day as IMAP does (RFC 3501 §6.4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// One SEARCH key or a combination. Sequence numbers, `$` (SEARCHRES) and
/// `\Recent`/NEW/OLD are session state: the protocol layer turns them into
/// `Uid` sets before asking the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Criteria {
    All,
    Uid(UidSet),
    /// A system flag set (`true`) or not set (`false`): SEEN/UNSEEN, etc.
    Flag(u8, bool),
    Keyword(String, bool),
    Larger(u64),
    Smaller(u64),
    Before(Date),
    On(Date),
    Since(Date),
    /// Internal date at or after / before this Unix time (WITHIN).
    ArrivedSince(i64),
    ArrivedBefore(i64),
    /// Object ids (RFC 8474): the body's, the thread's.
    EmailId(i64),
    ThreadId(i64),
    /// The day the message was saved in its folder (RFC 8514).
    SavedBefore(Date),
    SavedOn(Date),
    SavedSince(Date),
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    Subject(String),
    From(String),
    To(String),
    Cc(String),
    Bcc(String),
    /// HEADER field-name string; an empty string matches any message that
    /// has the field.
    Header(String, String),
    Body(String),
    Text(String),
    /// CONDSTORE MODSEQ: modseq at least this (RFC 7162 §3.1.5).
    ModSeq(u64),
    Not(Box<Criteria>),
    And(Vec<Criteria>),
    Or(Box<Criteria>, Box<Criteria>),
}
