//! One mailbox file: opening it, its folders, and (in the submodules) the
//! messages inside. Everything here is synchronous and runs on the blocking
//! pool, one caller at a time per connection: a file has one writing
//! connection ([`Mailbox::open`]) and may have read-only ones
//! ([`Mailbox::open_reader`]), which run reads in one read transaction.
//!
//! Imports `store::{db, schema, search, mime, types}` and `util`.
//! Invariants: UIDs in a folder only grow (UIDNEXT never goes back, and a
//! re-created folder gets a larger UIDVALIDITY); every change to messages
//! bumps the folder's HIGHESTMODSEQ and stamps the changed rows with it;
//! each operation is one transaction; a commit that stores mail is
//! acknowledged only after [`Durable::wait`].

mod bodies;
mod fetch;
mod messages;
mod snapshot;

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::db::{self, DbKey};
use super::mime::Limits as MimeLimits;
use super::types::{FolderInfo, FolderStatus, IfMissing, JUNK, Listing, SelectInfo};
use super::{StoreError, schema, search};
use crate::util::GroupSync;

pub use bodies::load_message;
pub use messages::parse_within;
pub use snapshot::{CopyKind, export_plain, finish_restore, restored_mark, wal_is_empty};

/// A claim on a mailbox file between processes: whoever has the file open
/// (the server, `sealmail import`) holds it shared; `sealmail backup
/// restore` holds it exclusively while it replaces the file, so it runs
/// only when nobody has the mailbox open, and nobody opens it meanwhile.
/// It is a `flock` on a separate `<file>.lock`: SQLite's own locks are
/// POSIX record locks on the database, which another descriptor of the
/// same file in the same process would silently drop.
pub struct FileClaim(#[allow(dead_code)] std::fs::File);

impl FileClaim {
    /// A shared claim, for using the file; `None` while a restore runs.
    pub fn try_share(path: &Path) -> Result<Option<FileClaim>, StoreError> {
        let f = lock_file(path)?;
        match f.try_lock_shared() {
            Ok(()) => Ok(Some(FileClaim(f))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }

    /// The exclusive claim, for replacing the file; `None` while anyone
    /// has it open.
    pub fn try_take(path: &Path) -> Result<Option<FileClaim>, StoreError> {
        let f = lock_file(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(FileClaim(f))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

fn lock_file(path: &Path) -> Result<std::fs::File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::path::PathBuf::from(lock_path))?)
}

/// Limits applied to what a mailbox accepts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_message_bytes: u64,
    pub mime: MimeLimits,
    /// Bodies that may wait for the full-text index (SEARCH reads their
    /// stored text meanwhile); a write that brings more indexes them all
    /// itself. Below it, the store indexes them in the background.
    pub unindexed_max: usize,
}

impl Limits {
    /// Whether a message is small enough to store: at most
    /// `max_message_bytes`, or, for mail encrypted on arrival (PGP/MIME),
    /// at most what a message of that size can become: armored (4/3 and
    /// line ends) under an outer header no larger than its own.
    pub fn fits(&self, raw: &[u8]) -> bool {
        let n = raw.len() as u64;
        n <= self.max_message_bytes
            || (n <= self.max_message_bytes.saturating_mul(5) / 2 + 65_536
                && crate::openpgp::already_encrypted(raw))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 50 * 1024 * 1024,
            mime: MimeLimits::default(),
            unindexed_max: UNINDEXED_MAX,
        }
    }
}

/// An open mailbox file.
pub struct Mailbox {
    // Declared (so dropped) before `raw`: see `raw`.
    conn: Connection,
    limits: Limits,
    /// Group commit of this file's log: what an acknowledgement waits for.
    sync: Arc<GroupSync>,
    /// The database file opened a second time, by the first snapshot, and
    /// kept open until after `conn` has closed: closing any descriptor of
    /// the file would drop the POSIX locks SQLite holds on it.
    raw: Option<std::fs::File>,
    /// Bodies waiting for the full-text index (`fts_pending`), as far as
    /// this connection knows.
    unindexed: usize,
}

/// Bodies the full-text index takes in one transaction when the store
/// indexes in the background: one short hold of the mailbox.
pub const INDEX_BATCH: usize = 256;

/// Default for [`Limits::unindexed_max`]: SEARCH reads at most this many
/// bodies' stored text beside the index (0.2-0.3 s for 4 KiB messages).
/// Only a spool import's bodies, indexed after it, may exceed it.
pub const UNINDEXED_MAX: usize = 8192;

/// A commit that an acknowledgement must not precede: see
/// [`Mailbox::committed`].
#[must_use = "an acknowledgement waits until its commit is on disk"]
#[derive(Clone)]
pub struct Durable {
    sync: Arc<GroupSync>,
    seq: u64,
}

impl Durable {
    /// Returns once the commit is on disk (one sync shared by every commit
    /// written before it).
    pub fn wait(self) -> Result<(), StoreError> {
        self.sync
            .wait(self.seq)
            .map_err(|e| StoreError::Unavailable(format!("cannot sync the mailbox: {e}")))
    }
}

/// A folder row.
#[derive(Clone, Debug)]
pub(crate) struct Folder {
    pub id: i64,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    /// The highest UID a session has claimed as `\Recent`.
    pub recent_uid: u32,
}

const MAX_NAME_BYTES: usize = 1000;

impl Mailbox {
    /// Opens (creating on first use) the mailbox file at `path`.
    pub fn open(path: &Path, key: DbKey<'_>, limits: Limits) -> Result<Mailbox, StoreError> {
        let mut conn = db::open(path, key)?;
        // Up to 32 MiB of decrypted pages, used only as the file needs them:
        // with less, large appends spill and re-read (re-decrypt) pages of
        // the full-text index, and encrypted appends of 100 KiB messages ran
        // at 0.57x of plain instead of 0.78x.
        conn.execute_batch("PRAGMA cache_size = -32768;")?;
        schema::migrate(&mut conn)?;
        search::register(&conn)?;
        let unindexed: i64 =
            conn.query_row("SELECT count(*) FROM fts_pending", [], |r| r.get(0))?;
        Ok(Mailbox {
            conn,
            limits,
            sync: Arc::new(GroupSync::new(path)),
            raw: None,
            unindexed: usize::try_from(unindexed).unwrap_or(0),
        })
    }

    /// Opens the file (which the writer has created and migrated) a second
    /// time, read-only, for `store::local`'s readers: FETCH and STATUS
    /// read the last commit there while a write commits. Its cache is a
    /// quarter of the writer's; the soft heap limit bounds them all.
    pub fn open_reader(path: &Path, key: DbKey<'_>, limits: Limits) -> Result<Mailbox, StoreError> {
        let conn = db::open(path, key)?;
        conn.execute_batch("PRAGMA cache_size = -8192; PRAGMA query_only = ON;")?;
        search::register(&conn)?;
        Ok(Mailbox {
            conn,
            limits,
            sync: Arc::new(GroupSync::new(path)),
            raw: None,
            unindexed: 0,
        })
    }

    /// Runs `f` in one read transaction: every statement in it sees the
    /// same commit, although writers on other connections go on.
    pub fn reading<T>(
        &mut self,
        f: impl FnOnce(&mut Mailbox) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.execute_batch("BEGIN")?;
        let out = f(self);
        // Nothing was written: ending it either way only lets the log move.
        let end = self.conn.execute_batch("ROLLBACK");
        let out = out?;
        end?;
        Ok(out)
    }

    /// Numbers the commit just made: waiting on the result (without this
    /// mailbox's lock) returns once that commit is on disk.
    pub fn committed(&self) -> Durable {
        Durable {
            seq: self.sync.written(),
            sync: self.sync.clone(),
        }
    }

    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(crate) fn folder(conn: &Connection, name: &str) -> Result<Folder, StoreError> {
        let name = normalize(name);
        conn.query_row(
            "SELECT id, name, uidvalidity, uidnext, highestmodseq, recent_uid FROM folders WHERE name = ?1",
            [&name],
            |r| {
                Ok(Folder {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    uidvalidity: r.get(2)?,
                    uidnext: r.get(3)?,
                    highestmodseq: r.get::<_, i64>(4)? as u64,
                    recent_uid: r.get(5)?,
                })
            },
        )
        .optional()?
        .ok_or(StoreError::NoSuchFolder(name))
    }

    /// The folder marked `\Junk` (RFC 6154), whatever its name, or INBOX
    /// when its owner has none: where [`crate::store::types::JUNK`]
    /// deliveries go.
    pub(crate) fn junk_folder(conn: &Connection) -> Result<Folder, StoreError> {
        let name: Option<String> = conn
            .query_row(
                "SELECT name FROM folders WHERE special_use = '\\Junk' ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Mailbox::folder(conn, name.as_deref().unwrap_or("INBOX"))
    }

    pub fn list_folders(&mut self) -> Result<Vec<FolderInfo>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT name, special_use, name IN (SELECT name FROM subscriptions) FROM folders
             ORDER BY name = 'INBOX' DESC, name",
        )?;
        let rows: Vec<(String, Option<String>, bool)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut stmt = self.conn.prepare(
            "SELECT name FROM subscriptions WHERE name NOT IN (SELECT name FROM folders) ORDER BY name",
        )?;
        let orphans: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        let mut out: Vec<FolderInfo> = rows
            .iter()
            .map(|(name, special_use, subscribed)| FolderInfo {
                has_children: names.iter().any(|n| is_child(n, name)),
                name: name.clone(),
                special_use: special_use.clone(),
                subscribed: *subscribed,
                nonexistent: false,
            })
            .collect();
        out.extend(orphans.into_iter().map(|name| FolderInfo {
            has_children: names.iter().any(|n| is_child(n, &name)),
            name,
            special_use: None,
            subscribed: true,
            nonexistent: true,
        }));
        Ok(out)
    }

    /// CREATE (RFC 3501 §6.3.3): missing parents are created too.
    pub fn create_folder(&mut self, name: &str) -> Result<(), StoreError> {
        let name = validate_name(name)?;
        let tx = self.conn.transaction()?;
        if Self::folder(&tx, &name).is_ok() {
            return Err(StoreError::FolderExists(name));
        }
        Self::create_path(&tx, &name)?;
        tx.commit()?;
        Ok(())
    }

    /// The folder an append goes to: `name` when it exists (or names the
    /// Junk role), else what `if_missing` says: refused, created, or INBOX
    /// (also when the name is not one a folder can have).
    pub(crate) fn target(
        tx: &Connection,
        name: &str,
        if_missing: IfMissing,
    ) -> Result<String, StoreError> {
        if name == JUNK || Self::folder(tx, name).is_ok() {
            return Ok(name.to_string());
        }
        match (if_missing, validate_name(name)) {
            (IfMissing::Refuse, _) => Err(StoreError::NoSuchFolder(name.to_string())),
            (IfMissing::Create, Ok(valid)) => {
                Self::create_path(tx, &valid)?;
                Ok(valid)
            }
            (IfMissing::Create | IfMissing::Inbox, _) => Ok("INBOX".to_string()),
        }
    }

    /// Creates `name` and every missing parent, in the caller's
    /// transaction.
    fn create_path(tx: &Connection, name: &str) -> Result<(), StoreError> {
        let mut prefix = String::new();
        for component in name.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            if Self::folder(tx, &prefix).is_err() {
                let validity = next_uidvalidity(tx)?;
                tx.execute(
                    "INSERT INTO folders (name, uidvalidity) VALUES (?1, ?2)",
                    params![prefix, validity],
                )?;
            }
        }
        Ok(())
    }

    /// RENAME (RFC 3501 §6.3.5): children move along; renaming INBOX moves
    /// its messages to a new folder and leaves INBOX empty.
    pub fn rename_folder(&mut self, from: &str, to: &str) -> Result<(), StoreError> {
        let to = validate_name(to)?;
        let tx = self.conn.transaction()?;
        let src = Self::folder(&tx, from)?;
        if Self::folder(&tx, &to).is_ok() {
            return Err(StoreError::FolderExists(to));
        }
        if is_child(&to, &src.name) || to == src.name {
            return Err(StoreError::BadName(
                to,
                "a folder cannot move inside itself".into(),
            ));
        }
        if src.name == "INBOX" {
            let validity = next_uidvalidity(&tx)?;
            tx.execute(
                "INSERT INTO folders (name, uidvalidity, uidnext, highestmodseq) VALUES (?1, ?2, ?3, ?4)",
                params![to, validity, src.uidnext, src.highestmodseq as i64],
            )?;
            let new_id = tx.last_insert_rowid();
            tx.execute(
                "UPDATE messages SET folder_id = ?1 WHERE folder_id = ?2",
                params![new_id, src.id],
            )?;
            // INBOX keeps its UIDNEXT so its UIDs never repeat.
            tx.commit()?;
            return Ok(());
        }
        let children: Vec<(i64, String)> = {
            let mut stmt =
                tx.prepare("SELECT id, name FROM folders WHERE substr(CAST(name AS BLOB), 1, ?1) = CAST(?2 AS BLOB)")?;
            let prefix = format!("{}/", src.name);
            stmt.query_map(params![prefix.len() as i64, prefix], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?
        };
        tx.execute(
            "UPDATE folders SET name = ?1 WHERE id = ?2",
            params![to, src.id],
        )?;
        rename_subscription(&tx, &src.name, &to)?;
        for (id, name) in children {
            let new_name = format!("{}{}", to, name.get(src.name.len()..).unwrap_or(""));
            if new_name.len() > MAX_NAME_BYTES {
                return Err(StoreError::BadName(new_name, "too long".into()));
            }
            tx.execute(
                "UPDATE folders SET name = ?1 WHERE id = ?2",
                params![new_name, id],
            )?;
            rename_subscription(&tx, &name, &new_name)?;
        }
        // Parents of the new name, so the hierarchy stays whole.
        if let Some((parent, _)) = to.rsplit_once('/') {
            let mut prefix = String::new();
            for component in parent.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(component);
                if Self::folder(&tx, &prefix).is_err() {
                    let validity = next_uidvalidity(&tx)?;
                    tx.execute(
                        "INSERT INTO folders (name, uidvalidity) VALUES (?1, ?2)",
                        params![prefix, validity],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// DELETE (RFC 3501 §6.3.4). INBOX and special-use folders are kept; a
    /// folder with children must be emptied of them first.
    pub fn delete_folder(&mut self, name: &str) -> Result<Vec<u32>, StoreError> {
        let tx = self.conn.transaction()?;
        let f = Self::folder(&tx, name)?;
        let special: Option<String> = tx.query_row(
            "SELECT special_use FROM folders WHERE id = ?1",
            [f.id],
            |r| r.get(0),
        )?;
        if f.name == "INBOX" || special.is_some() {
            return Err(StoreError::Protected(f.name, "deleted".into()));
        }
        let prefix = format!("{}/", f.name);
        let children: i64 = tx.query_row(
            "SELECT count(*) FROM folders WHERE substr(CAST(name AS BLOB), 1, ?1) = CAST(?2 AS BLOB)",
            params![prefix.len() as i64, prefix],
            |r| r.get(0),
        )?;
        if children > 0 {
            return Err(StoreError::HasChildren(f.name));
        }
        let removed = messages::remove_all(&tx, f.id)?;
        tx.execute("DELETE FROM folders WHERE id = ?1", [f.id])?;
        tx.execute("DELETE FROM metadata WHERE folder = ?1", [&f.name])?;
        tx.commit()?;
        Ok(removed)
    }

    /// SUBSCRIBE / UNSUBSCRIBE (RFC 3501 §6.3.6, §6.3.7): a name, which
    /// need not exist and stays when its folder is deleted.
    pub fn subscribe(&mut self, name: &str, subscribed: bool) -> Result<(), StoreError> {
        let name = match Self::folder(&self.conn, name) {
            Ok(f) => f.name,
            Err(_) => validate_name(name)?,
        };
        if subscribed {
            self.conn.execute(
                "INSERT OR IGNORE INTO subscriptions (name) VALUES (?1)",
                [&name],
            )?;
        } else {
            self.conn
                .execute("DELETE FROM subscriptions WHERE name = ?1", [&name])?;
        }
        Ok(())
    }

    /// See `Request::GetMetadata`. Names compare case-insensitively.
    pub fn get_metadata(
        &mut self,
        folder: &str,
        names: &[String],
        depth: u8,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let folder = self.metadata_folder(folder)?;
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, value FROM metadata WHERE folder = ?1
             AND (name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || '/') ORDER BY name",
        )?;
        for want in names {
            let want = want.to_lowercase();
            let rows = stmt.query_map(params![folder, want], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?;
            for row in rows {
                let (name, value) = row?;
                let below = name
                    .get(want.len()..)
                    .map_or(0, |rest| rest.matches('/').count());
                if usize::from(depth) >= below && !out.iter().any(|(n, _)| *n == name) {
                    out.push((name, value));
                }
            }
        }
        Ok(out)
    }

    /// See `Request::SetMetadata`: all entries in one transaction, at most
    /// `MAX_METADATA` per folder.
    pub fn set_metadata(
        &mut self,
        folder: &str,
        entries: &[(String, Option<Vec<u8>>)],
    ) -> Result<(), StoreError> {
        const MAX_METADATA: i64 = 1000;
        let folder = self.metadata_folder(folder)?;
        let tx = self.conn.transaction()?;
        for (name, value) in entries {
            let name = name.to_lowercase();
            match value {
                Some(v) => tx.execute(
                    "INSERT OR REPLACE INTO metadata (folder, name, value) VALUES (?1, ?2, ?3)",
                    params![folder, name, v],
                )?,
                None => tx.execute(
                    "DELETE FROM metadata WHERE folder = ?1 AND name = ?2",
                    params![folder, name],
                )?,
            };
        }
        let n: i64 = tx.query_row(
            "SELECT count(*) FROM metadata WHERE folder = ?1",
            [&folder],
            |r| r.get(0),
        )?;
        if n > MAX_METADATA {
            return Err(StoreError::BadName(
                folder,
                format!("more than {MAX_METADATA} metadata entries"),
            ));
        }
        tx.commit()?;
        Ok(())
    }

    /// The store's name of a folder for METADATA; `""` is the server.
    fn metadata_folder(&self, folder: &str) -> Result<String, StoreError> {
        if folder.is_empty() {
            return Ok(String::new());
        }
        Ok(Self::folder(&self.conn, folder)?.name)
    }

    /// Moves the folder's `\Recent` mark up to `up_to` (never past the
    /// last UID given out); returns the UIDs it passed over and the mark.
    pub fn claim_recent(&mut self, name: &str, up_to: u32) -> Result<(Vec<u32>, u32), StoreError> {
        let tx = self.conn.transaction()?;
        let f = Self::folder(&tx, name)?;
        let to = up_to.min(f.uidnext.saturating_sub(1));
        if to <= f.recent_uid {
            return Ok((Vec::new(), f.recent_uid));
        }
        tx.execute(
            "UPDATE folders SET recent_uid = ?1 WHERE id = ?2",
            params![to, f.id],
        )?;
        let uids: Vec<u32> = tx
            .prepare_cached(
                "SELECT uid FROM messages WHERE folder_id = ?1 AND uid > ?2 AND uid <= ?3 ORDER BY uid",
            )?
            .query_map(params![f.id, f.recent_uid, to], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        tx.commit()?;
        Ok((uids, to))
    }

    pub fn status(&mut self, name: &str) -> Result<FolderStatus, StoreError> {
        let f = Self::folder(&self.conn, name)?;
        status_of(&self.conn, &f)
    }

    /// Everything SELECT reports, in one read transaction.
    pub fn select(&mut self, name: &str) -> Result<SelectInfo, StoreError> {
        let tx = self.conn.transaction()?;
        let f = Self::folder(&tx, name)?;
        let status = status_of(&tx, &f)?;
        let uids: Vec<u32> = tx
            .prepare_cached("SELECT uid FROM messages WHERE folder_id = ?1 ORDER BY uid")?
            .query_map([f.id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let first_unseen: Option<u32> = tx.query_row(
            "SELECT min(uid) FROM messages WHERE folder_id = ?1 AND (flags & 1) = 0",
            [f.id],
            |r| r.get(0),
        )?;
        let mut keywords: Vec<String> = Vec::new();
        let mut stmt = tx.prepare_cached(
            "SELECT DISTINCT keywords FROM messages WHERE folder_id = ?1 AND keywords != ''",
        )?;
        for list in stmt.query_map([f.id], |r| r.get::<_, String>(0))? {
            for k in list?.split(' ').filter(|k| !k.is_empty()) {
                if !keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    keywords.push(k.to_string());
                }
            }
        }
        drop(stmt);
        tx.commit()?;
        Ok(SelectInfo {
            status,
            uids,
            keywords,
            first_unseen,
        })
    }

    /// UIDs and sizes, in UID order, read from the messages table alone.
    pub fn listing(&mut self, name: &str) -> Result<Listing, StoreError> {
        let tx = self.conn.transaction()?;
        let f = Self::folder(&tx, name)?;
        let entries = tx
            .prepare_cached("SELECT uid, size FROM messages WHERE folder_id = ?1 ORDER BY uid")?
            .query_map([f.id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<Result<_, _>>()?;
        tx.commit()?;
        Ok(Listing {
            uidvalidity: f.uidvalidity,
            entries,
        })
    }

    /// Rebuilds the file (reclaims space; secure_delete already zeroed freed
    /// pages).
    pub fn vacuum(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

fn status_of(conn: &Connection, f: &Folder) -> Result<FolderStatus, StoreError> {
    let (messages, unseen, deleted, size, recent): (u32, u32, u32, i64, u32) = conn
        .prepare_cached(
            "SELECT count(*), ifnull(sum((flags & 1) = 0), 0), ifnull(sum((flags & 8) != 0), 0), ifnull(sum(size), 0),
                    ifnull(sum(uid > ?2), 0)
             FROM messages WHERE folder_id = ?1",
        )?
        .query_row(params![f.id, f.recent_uid], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
    Ok(FolderStatus {
        name: f.name.clone(),
        uidvalidity: f.uidvalidity,
        uidnext: f.uidnext,
        highestmodseq: f.highestmodseq,
        messages,
        unseen,
        deleted,
        size: size as u64,
        recent,
    })
}

/// A UIDVALIDITY larger than any this file has handed out, deleted folders
/// included (RFC 3501 §2.3.1.1).
fn next_uidvalidity(conn: &Connection) -> Result<i64, StoreError> {
    let (in_use, last): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT (SELECT max(uidvalidity) FROM folders),
                (SELECT value FROM counters WHERE name = 'uidvalidity')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let floor = in_use.unwrap_or(0).max(last.unwrap_or(0)) + 1;
    let next = schema::uidvalidity_seed().max(floor).min(u32::MAX as i64);
    conn.execute(
        "INSERT INTO counters (name, value) VALUES ('uidvalidity', ?1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        [next],
    )?;
    Ok(next)
}

/// `INBOX` in any case is INBOX (RFC 3501 §5.1), also as a parent.
pub fn normalize(name: &str) -> String {
    match name.split_once('/') {
        Some((first, rest)) if first.eq_ignore_ascii_case("INBOX") => format!("INBOX/{rest}"),
        _ if name.eq_ignore_ascii_case("INBOX") => "INBOX".to_string(),
        _ => name.to_string(),
    }
}

fn is_child(name: &str, parent: &str) -> bool {
    name.len() > parent.len() + 1
        && name.starts_with(parent)
        && name.as_bytes()[parent.len()] == b'/'
}

/// Checks a folder name (UTF-8, `/` as hierarchy delimiter).
pub fn validate_name(name: &str) -> Result<String, StoreError> {
    let bad = |why: &str| Err(StoreError::BadName(name.to_string(), why.to_string()));
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("longer than 1000 bytes");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("control characters (including NUL) are not allowed");
    }
    if name.contains(['*', '%']) {
        return bad("'*' and '%' are LIST wildcards");
    }
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return bad("empty, '.' or '..' path components are not allowed");
    }
    Ok(normalize(name))
}

/// A renamed folder keeps its subscription and its METADATA under the new
/// name.
fn rename_subscription(
    tx: &rusqlite::Transaction<'_>,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE metadata SET folder = ?2 WHERE folder = ?1",
        params![from, to],
    )?;
    if tx.execute("DELETE FROM subscriptions WHERE name = ?1", [from])? > 0 {
        tx.execute(
            "INSERT OR IGNORE INTO subscriptions (name) VALUES (?1)",
            [to],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
