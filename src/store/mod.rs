//! Storage: the control plane, keys, the encrypted mailbox files, search,
//! the sealed spool, change events, and the one interface protocol sessions
//! use to reach all of it.
//!
//! May import `openpgp` and `util` only; never a
//! protocol or `app`. Protocol code holds a [`Store`] and the [`Session`]s it
//! unlocks; behind them sits a [`Backend`]: [`local::LocalBackend`] in this
//! process, or (later) a remote one over the cluster link. Requests and
//! replies are the serialisable values of [`types`], so both backends speak
//! the same language. All SQLite and argon2 work runs on the blocking pool.

pub mod address;
pub mod binary;
pub mod control;
pub mod db;
pub mod events;
pub mod keys;
pub mod local;
pub mod mailbox;
pub mod mime;
pub mod order;
pub mod pgpkeys;
pub mod schema;
pub mod scripts;
pub mod search;
pub mod spool;
pub mod types;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use mailbox::normalize as normalize_folder_name;

/// Seals `message` to an alias' public key (an age recipient), as the
/// spool does: what only the alias' owner can open; where it is to be
/// filed (`to`) goes inside the seal.
pub fn seal(public_key: &str, message: &[u8], to: &Placement) -> Result<Vec<u8>, StoreError> {
    spool::seal(public_key, message, to).map_err(|e| StoreError::Internal(e.to_string()))
}
pub use order::{SortCriterion, SortKey, ThreadAlgorithm, ThreadNode};
pub use types::*;

/// Errors as a protocol needs them: each variant says whether the client did
/// something wrong (a `NO`/5xx), or the server cannot now (`NO
/// [UNAVAILABLE]`/4xx).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StoreError {
    /// Wrong password and unknown address look the same on purpose.
    #[error("authentication failed")]
    AuthFailed,
    #[error("no such address")]
    NoSuchAddress,
    #[error("this address has no mailbox")]
    NoMailbox,
    #[error("no folder named {0:?}")]
    NoSuchFolder(String),
    #[error("a folder named {0:?} already exists")]
    FolderExists(String),
    #[error("folder name {0:?} is not allowed: {1}")]
    BadName(String, String),
    #[error("folder {0:?} cannot be {1}")]
    Protected(String, String),
    #[error("folder {0:?} has child folders; delete them first")]
    HasChildren(String),
    #[error("mailbox quota exceeded")]
    OverQuota,
    #[error("message is larger than {0} bytes")]
    TooBig(u64),
    #[error("message refused: {0}")]
    BadMessage(String),
    #[error("session is closed or unknown")]
    NoSession,
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    #[error("internal storage error: {0}")]
    Internal(String),
    #[error("{1}")]
    Script(ScriptRefusal, String),
}

impl StoreError {
    /// True for failures that a retry later may cure (4xx, `[UNAVAILABLE]`).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Internal(_) | StoreError::OverQuota
        )
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match &e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                StoreError::Unavailable("mailbox is busy".into())
            }
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

impl From<db::DbError> for StoreError {
    fn from(e: db::DbError) -> Self {
        match e {
            db::DbError::WrongKey => StoreError::AuthFailed,
            other => StoreError::Internal(other.to_string()),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

impl From<schema::SchemaError> for StoreError {
    fn from(e: schema::SchemaError) -> Self {
        StoreError::Internal(e.to_string())
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What sits behind the storage interface.
pub trait Backend: Send + Sync + 'static {
    /// Runs one request.
    fn call(&self, request: Request) -> BoxFuture<'_, Result<Response, StoreError>>;
    /// Change events of the session's mailbox (all folders), for IDLE.
    fn subscribe(&self, session: SessionId) -> Result<async_channel::Receiver<Change>, StoreError>;
    /// Ends a session; must not block (called from `Drop`).
    fn release(&self, session: SessionId);
}

/// The handle protocol code holds.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

macro_rules! expect_reply {
    ($fut:expr, $variant:ident) => {
        match $fut.await? {
            Response::$variant(v) => Ok(v),
            other => Err(StoreError::Internal(format!(
                "backend answered {other:?} to a {} request",
                stringify!($variant)
            ))),
        }
    };
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Store {
        Store { backend }
    }

    /// Opens a mailbox with its owner's password.
    pub async fn unlock(&self, address: &str, password: &str) -> Result<Session, StoreError> {
        let info = expect_reply!(
            self.backend.call(Request::Unlock {
                address: address.to_string(),
                password: password.to_string(),
            }),
            Unlocked
        )?;
        Ok(Session {
            backend: self.backend.clone(),
            info,
        })
    }

    /// What `address` is here: a mailbox, a forward, unknown, or foreign.
    pub async fn lookup(&self, address: &str) -> Result<Recipient, StoreError> {
        expect_reply!(
            self.backend.call(Request::Lookup {
                address: address.to_string(),
            }),
            Recipient
        )
    }

    /// `postmaster@` of `hostname` or of the nearest parent domain served
    /// here: where `RCPT TO:<Postmaster>` (no domain) goes, and who sends
    /// the server's own reports.
    pub async fn own_postmaster(&self, hostname: &str) -> Option<String> {
        let mut name = hostname;
        loop {
            let address = format!("postmaster@{name}");
            if let Ok(Recipient::Local(_)) = self.lookup(&address).await {
                return Some(address);
            }
            name = name.split_once('.')?.1;
            if !name.contains('.') {
                return None;
            }
        }
    }

    /// Checks an alias' password for sending, without opening its mailbox.
    pub async fn authenticate(&self, address: &str, password: &str) -> Result<Account, StoreError> {
        expect_reply!(
            self.backend.call(Request::Authenticate {
                address: address.to_string(),
                password: password.to_string(),
            }),
            Account
        )
    }

    /// The DKIM signing keys of a local domain (none if it has no keys).
    pub async fn dkim_keys(&self, domain: &str) -> Result<Vec<DkimKey>, StoreError> {
        expect_reply!(
            self.backend.call(Request::DkimKeys {
                domain: domain.to_string(),
            }),
            DkimKeys
        )
    }

    /// Delivers inbound mail: into INBOX if the alias' key is present, else
    /// sealed to its public key. Returns once the message is durable.
    pub async fn deliver(&self, address: &str, message: Vec<u8>) -> Result<Delivery, StoreError> {
        self.deliver_to(address, message, Placement::default())
            .await
    }

    /// [`Store::deliver`] into a folder with flags (the Junk folder, or
    /// what a Sieve script chose); sealed mail carries the choice inside
    /// its seal and is filed so at import.
    pub async fn deliver_to(
        &self,
        address: &str,
        message: Vec<u8>,
        to: Placement,
    ) -> Result<Delivery, StoreError> {
        expect_reply!(
            self.backend.call(Request::Deliver {
                address: address.to_string(),
                message,
                to,
            }),
            Delivered
        )
    }

    /// The alias' OpenPGP key, if it has one.
    pub async fn pgp_key(&self, address: &str) -> Result<Option<PgpKey>, StoreError> {
        expect_reply!(
            self.backend.call(Request::PgpKey {
                address: address.to_string(),
            }),
            PgpKey
        )
    }

    /// The key the Web Key Directory serves for a hashed local part of a
    /// domain, if its alias published one.
    pub async fn wkd_key(&self, domain: &str, hash: &str) -> Result<Option<PgpKey>, StoreError> {
        expect_reply!(
            self.backend.call(Request::WkdKey {
                domain: domain.to_string(),
                hash: hash.to_string(),
            }),
            PgpKey
        )
    }

    /// ManageSieve's operations on the alias' scripts.
    pub async fn sieve(&self, address: &str, op: SieveOp) -> Result<SieveReply, StoreError> {
        expect_reply!(
            self.backend.call(Request::Sieve {
                address: address.to_string(),
                op,
            }),
            Sieve
        )
    }

    /// The alias' Sieve scripts when one is active.
    pub async fn sieve_scripts(&self, address: &str) -> Result<Option<SieveScripts>, StoreError> {
        expect_reply!(
            self.backend.call(Request::SieveScripts {
                address: address.to_string(),
            }),
            SieveScripts
        )
    }

    /// Whether the alias' Sieve tracking saw `id` within `expiry` seconds
    /// (recorded as seen now either way).
    pub async fn sieve_seen(
        &self,
        address: &str,
        id: &str,
        expiry: u64,
    ) -> Result<bool, StoreError> {
        expect_reply!(
            self.backend.call(Request::SieveSeen {
                address: address.to_string(),
                id: id.to_string(),
                expiry,
            }),
            Seen
        )
    }
}

/// An unlocked mailbox. Dropping it closes the session.
pub struct Session {
    backend: Arc<dyn Backend>,
    info: SessionInfo,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.backend.release(self.info.id);
    }
}

impl Session {
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    fn id(&self) -> SessionId {
        self.info.id
    }

    pub fn subscribe(&self) -> Result<async_channel::Receiver<Change>, StoreError> {
        self.backend.subscribe(self.id())
    }

    async fn done(&self, req: Request) -> Result<(), StoreError> {
        match self.backend.call(req).await? {
            Response::Done => Ok(()),
            other => Err(StoreError::Internal(format!(
                "backend answered {other:?} where Done was expected"
            ))),
        }
    }

    pub async fn list_folders(&self) -> Result<Vec<FolderInfo>, StoreError> {
        expect_reply!(
            self.backend
                .call(Request::ListFolders { session: self.id() }),
            Folders
        )
    }

    pub async fn create_folder(&self, name: &str) -> Result<(), StoreError> {
        self.done(Request::CreateFolder {
            session: self.id(),
            name: name.into(),
        })
        .await
    }

    pub async fn rename_folder(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.done(Request::RenameFolder {
            session: self.id(),
            from: from.into(),
            to: to.into(),
        })
        .await
    }

    pub async fn delete_folder(&self, name: &str) -> Result<(), StoreError> {
        self.done(Request::DeleteFolder {
            session: self.id(),
            name: name.into(),
        })
        .await
    }

    pub async fn subscribe_folder(&self, name: &str, subscribed: bool) -> Result<(), StoreError> {
        self.done(Request::Subscribe {
            session: self.id(),
            name: name.into(),
            subscribed,
        })
        .await
    }

    pub async fn select(&self, folder: &str) -> Result<SelectInfo, StoreError> {
        let req = Request::Select {
            session: self.id(),
            folder: folder.into(),
        };
        expect_reply!(self.backend.call(req), Selected)
    }

    pub async fn status(&self, folder: &str) -> Result<FolderStatus, StoreError> {
        let req = Request::Status {
            session: self.id(),
            folder: folder.into(),
        };
        expect_reply!(self.backend.call(req), Status)
    }

    /// Claims as `\Recent` for this session the messages up to `up_to` no
    /// session has claimed yet: exactly one session sees each message as
    /// recent (RFC 3501 §2.3.2). Returns their UIDs.
    pub async fn claim_recent(&self, folder: &str, up_to: u32) -> Result<Vec<u32>, StoreError> {
        let req = Request::ClaimRecent {
            session: self.id(),
            folder: folder.into(),
            up_to,
        };
        expect_reply!(self.backend.call(req), Expunged)
    }

    /// METADATA entries (RFC 5464) of `folder` (`""`: the server's) named
    /// by `names`, with descendants to `depth` levels (`u8::MAX`: all).
    pub async fn get_metadata(
        &self,
        folder: &str,
        names: Vec<String>,
        depth: u8,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let req = Request::GetMetadata {
            session: self.id(),
            folder: folder.into(),
            names,
            depth,
        };
        expect_reply!(self.backend.call(req), Metadata)
    }

    /// Sets or (with `None`) removes METADATA entries, all or none.
    pub async fn set_metadata(
        &self,
        folder: &str,
        entries: Vec<(String, Option<Vec<u8>>)>,
    ) -> Result<(), StoreError> {
        let req = Request::SetMetadata {
            session: self.id(),
            folder: folder.into(),
            entries,
        };
        match self.backend.call(req).await? {
            Response::Done => Ok(()),
            other => Err(StoreError::Internal(format!("unexpected reply {other:?}"))),
        }
    }

    /// UIDs and sizes of every message in a folder.
    pub async fn listing(&self, folder: &str) -> Result<Listing, StoreError> {
        let req = Request::Listing {
            session: self.id(),
            folder: folder.into(),
        };
        expect_reply!(self.backend.call(req), Listing)
    }

    /// Appends one message.
    pub async fn append(&self, request: AppendRequest) -> Result<AppendUid, StoreError> {
        let mut v = self.append_batch(vec![request]).await?;
        v.pop()
            .ok_or_else(|| StoreError::Internal("append returned no UID".into()))
    }

    /// Appends several messages in one transaction (import, MULTIAPPEND).
    pub async fn append_batch(
        &self,
        messages: Vec<AppendRequest>,
    ) -> Result<Vec<AppendUid>, StoreError> {
        let req = Request::Append {
            session: self.id(),
            messages,
            recent: false,
        };
        expect_reply!(self.backend.call(req), Appended)
    }

    /// `append_batch` into the folder this session has selected, claiming
    /// the new messages as `\Recent` in the same transaction when no older
    /// message is unclaimed; says whether it did.
    pub async fn append_recent(
        &self,
        messages: Vec<AppendRequest>,
    ) -> Result<(Vec<AppendUid>, bool), StoreError> {
        let req = Request::Append {
            session: self.id(),
            messages,
            recent: true,
        };
        match self.backend.call(req).await? {
            Response::AppendedRecent(uids, claimed) => Ok((uids, claimed)),
            other => Err(StoreError::Internal(format!("unexpected reply {other:?}"))),
        }
    }

    pub async fn fetch(
        &self,
        folder: &str,
        uids: UidSet,
        what: FetchWhat,
    ) -> Result<Vec<FetchedMessage>, StoreError> {
        let req = Request::Fetch {
            session: self.id(),
            folder: folder.into(),
            uids,
            what,
        };
        expect_reply!(self.backend.call(req), Fetched)
    }

    pub async fn store_flags(&self, request: StoreFlags) -> Result<StoreResult, StoreError> {
        let req = Request::Store {
            session: self.id(),
            request,
        };
        expect_reply!(self.backend.call(req), Stored)
    }

    pub async fn copy(&self, from: &str, uids: UidSet, to: &str) -> Result<CopyResult, StoreError> {
        let req = Request::Copy {
            session: self.id(),
            from: from.into(),
            uids,
            to: to.into(),
        };
        expect_reply!(self.backend.call(req), Copied)
    }

    pub async fn move_messages(
        &self,
        from: &str,
        uids: UidSet,
        to: &str,
    ) -> Result<CopyResult, StoreError> {
        let req = Request::Move {
            session: self.id(),
            from: from.into(),
            uids,
            to: to.into(),
        };
        expect_reply!(self.backend.call(req), Copied)
    }

    /// Removes `\Deleted` messages, all of them or those in `uids` (UID
    /// EXPUNGE); returns the UIDs removed.
    pub async fn expunge(
        &self,
        folder: &str,
        uids: Option<UidSet>,
    ) -> Result<Vec<u32>, StoreError> {
        let req = Request::Expunge {
            session: self.id(),
            folder: folder.into(),
            uids,
        };
        expect_reply!(self.backend.call(req), Expunged)
    }

    pub async fn search(
        &self,
        folder: &str,
        criteria: Criteria,
    ) -> Result<SearchResult, StoreError> {
        let req = Request::Search {
            session: self.id(),
            folder: folder.into(),
            criteria,
        };
        expect_reply!(self.backend.call(req), Found)
    }

    /// SORT: the UIDs `criteria` matches, ordered by `keys` (RFC 5256).
    pub async fn sort(
        &self,
        folder: &str,
        criteria: Criteria,
        keys: Vec<SortCriterion>,
    ) -> Result<Vec<u32>, StoreError> {
        let req = Request::Sort {
            session: self.id(),
            folder: folder.into(),
            criteria,
            keys,
        };
        expect_reply!(self.backend.call(req), Found).map(|f| f.uids)
    }

    /// THREAD: the messages `criteria` matches as threads (RFC 5256).
    pub async fn thread(
        &self,
        folder: &str,
        criteria: Criteria,
        algorithm: ThreadAlgorithm,
    ) -> Result<Vec<ThreadNode>, StoreError> {
        let req = Request::Thread {
            session: self.id(),
            folder: folder.into(),
            criteria,
            algorithm,
        };
        expect_reply!(self.backend.call(req), Threads)
    }

    pub async fn changes_since(&self, folder: &str, modseq: u64) -> Result<Changes, StoreError> {
        let req = Request::ChangesSince {
            session: self.id(),
            folder: folder.into(),
            modseq,
        };
        expect_reply!(self.backend.call(req), Changes)
    }

    pub async fn quota(&self) -> Result<QuotaUsage, StoreError> {
        expect_reply!(
            self.backend.call(Request::Quota { session: self.id() }),
            Quota
        )
    }

    /// Waits until the sealed mail waiting at this unlock is in INBOX (the
    /// import runs in the background); returns how many messages it
    /// imported. POP3 takes its maildrop after this.
    pub async fn settle(&self) -> Result<u32, StoreError> {
        expect_reply!(
            self.backend.call(Request::Settle { session: self.id() }),
            Settled
        )
    }

    /// Rebuilds the mailbox file to reclaim space.
    pub async fn vacuum(&self) -> Result<(), StoreError> {
        self.done(Request::Vacuum { session: self.id() }).await
    }

    /// Adds every body still waiting for the full-text index (which the
    /// server would otherwise do in the background) and says how many: an
    /// import ends with its mail searchable.
    pub async fn index_now(&self) -> Result<u64, StoreError> {
        expect_reply!(
            self.backend.call(Request::Index { session: self.id() }),
            Indexed
        )
    }
}
