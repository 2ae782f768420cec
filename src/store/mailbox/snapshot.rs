//! Whole-file snapshots of a mailbox, for backups: a copy of the file as
//! one commit left it, readable with the same key and nothing else; its
//! plain export; and what a restored file needs at its first open (new
//! UIDVALIDITY values).
//!
//! Imports the parent `mailbox`, `store::StoreError` and `util`. Invariants: the
//! raw copy is taken inside one read transaction that began on an empty
//! write-ahead log, so that transaction reads the database file alone
//! (SQLite's read lock 0) and no checkpoint, from any process, may write
//! into the file until the copy is done; `measure` runs in that same
//! transaction and so describes exactly what is copied. When the log
//! cannot be emptied (a reader in another process holds it), the copy is
//! made with `VACUUM INTO` instead. The file is read through a descriptor
//! the mailbox keeps open until after its connection closes (see
//! `Mailbox::raw`).

use std::io::{Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::types::Value;

use super::Mailbox;
use crate::store::StoreError;

/// How a snapshot was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyKind {
    /// The encrypted file's bytes as they are on disk, copied by the kernel.
    Raw,
    /// `VACUUM INTO`: every page read, decrypted, encrypted and written.
    Vacuum,
}

impl Mailbox {
    /// Copies the whole mailbox into `out`, an existing empty file. First
    /// `measure` reads, in the transaction the copy is taken from, what
    /// the caller needs to know about the copied state; if it breaks,
    /// nothing is copied and its value is returned.
    ///
    /// With `auto_vacuum=FULL` the file holds no free pages, so the raw
    /// copy is as compact as a `VACUUM INTO` one, at the cost of a kernel
    /// file copy instead of decrypting and encrypting every page.
    pub fn snapshot<B, R>(
        &mut self,
        out: &Path,
        measure: impl FnOnce(&Connection) -> Result<ControlFlow<B, R>, StoreError>,
    ) -> Result<ControlFlow<B, (R, CopyKind)>, StoreError> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        let path = self
            .conn
            .path()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| StoreError::Internal("a snapshot needs a database file".into()))?;
        let tx = self.conn.transaction()?;
        // The first read fixes the transaction's view of the file.
        let page_count: i64 = tx.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        // SQLCipher answers this PRAGMA as text.
        let page_size: i64 = match tx.query_row("PRAGMA page_size", [], |r| r.get(0))? {
            Value::Integer(n) => n,
            Value::Text(t) => t.parse().unwrap_or(0),
            _ => 0,
        };
        // Empty now, with the transaction begun, means it reads the file
        // alone: whatever is committed from here on waits in the log.
        let raw_copy = busy == 0 && wal_is_empty(&path)?;
        let measured = match measure(&tx)? {
            ControlFlow::Break(b) => return Ok(ControlFlow::Break(b)),
            ControlFlow::Continue(r) => r,
        };
        if raw_copy {
            let raw = match &mut self.raw {
                Some(f) => f,
                None => self.raw.insert(std::fs::File::open(&path)?),
            };
            raw.seek(SeekFrom::Start(0))?;
            let mut dest = std::fs::OpenOptions::new().write(true).open(out)?;
            let copied = std::io::copy(raw, &mut dest)?;
            if i64::try_from(copied).ok() != Some(page_count * page_size) {
                return Err(StoreError::Internal(format!(
                    "the snapshot copied {copied} bytes of a {page_count}-page file"
                )));
            }
            return Ok(ControlFlow::Continue((measured, CopyKind::Raw)));
        }
        // Another process's reader kept the log: copy through SQLite,
        // which sees the log too. Only another process can commit between
        // `measure` and this copy, and the caller's check of the copy
        // catches that.
        drop(tx);
        self.conn
            .execute("VACUUM INTO ?1", [out.to_string_lossy().as_ref()])?;
        Ok(ControlFlow::Continue((measured, CopyKind::Vacuum)))
    }
}

impl Mailbox {
    /// Gives every folder a new UIDVALIDITY above `floor`, above any this
    /// file used and above the time-based seed, in one transaction: after
    /// a restore, no client may take a UID it saw before for another
    /// message (RFC 3501 §2.3.1.1).
    pub fn raise_uidvalidity(&mut self, floor: i64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let used: i64 = tx.query_row(
            "SELECT max(ifnull((SELECT max(uidvalidity) FROM folders), 0),
                        ifnull((SELECT value FROM counters WHERE name = 'uidvalidity'), 0))",
            [],
            |r| r.get(0),
        )?;
        let mut next = floor
            .max(used)
            .max(crate::store::schema::uidvalidity_seed())
            + 1;
        let ids: Vec<i64> = {
            let mut stmt = tx.prepare("SELECT id FROM folders ORDER BY id")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        for id in ids {
            tx.execute(
                "UPDATE folders SET uidvalidity = ?1 WHERE id = ?2",
                [next, id],
            )?;
            next += 1;
        }
        tx.execute(
            "INSERT INTO counters (name, value) VALUES ('uidvalidity', ?1)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            [next - 1],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// The file that marks a mailbox file put back without its key (a
/// restore of the whole server): the first open with the key raises its
/// UIDVALIDITY values, then removes the mark.
pub fn restored_mark(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".restored");
    std::path::PathBuf::from(p)
}

/// Finishes a keyless restore of the file at `path`, now open with its
/// key as `mb`: new UIDVALIDITY values, then the mark removed.
pub fn finish_restore(mb: &mut Mailbox, path: &Path) -> Result<(), StoreError> {
    let mark = restored_mark(path);
    if !mark.exists() {
        return Ok(());
    }
    mb.raise_uidvalidity(0)?;
    std::fs::remove_file(&mark)?;
    if let Some(dir) = path.parent() {
        crate::util::fsync_dir(dir)?;
    }
    Ok(())
}

/// Writes the mailbox file at `path`, opened with `dek`, decrypted into
/// a new plain SQLite database at `out` (the owner's export): one read
/// transaction, beside a running server. Returns the message count.
pub fn export_plain(path: &Path, dek: &[u8; 32], out: &Path) -> Result<u64, StoreError> {
    let _claim = super::FileClaim::try_share(path)?.ok_or_else(|| {
        StoreError::Unavailable("the mailbox is being restored; try again when it is done".into())
    })?;
    let mut mb = Mailbox::open(
        path,
        crate::store::db::DbKey::Raw(dek),
        super::Limits::default(),
    )?;
    let conn = mb.connection();
    let count: i64 = conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
    conn.execute(
        "ATTACH DATABASE ?1 AS plain KEY ''",
        [out.to_string_lossy().as_ref()],
    )?;
    let exported = conn
        .query_row("SELECT sqlcipher_export('plain')", [], |_| Ok(()))
        .map_err(StoreError::from);
    conn.execute_batch("DETACH DATABASE plain")?;
    exported?;
    Ok(count as u64)
}

/// True when the database at `db` has no write-ahead log content: the file
/// is missing or empty (as `wal_checkpoint(TRUNCATE)` leaves it).
pub fn wal_is_empty(db: &Path) -> Result<bool, StoreError> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::metadata(PathBuf::from(wal)) {
        Ok(m) => Ok(m.len() == 0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::db::{self, DbKey};
    use crate::store::mailbox::Limits;
    use crate::store::types::{AppendRequest, Flags};

    const KEY: [u8; 32] = [7; 32];

    fn add(mb: &mut Mailbox, n: usize) {
        let reqs: Vec<AppendRequest> = (0..n)
            .map(|i| AppendRequest {
                folder: "INBOX".into(),
                message: format!("Subject: m{i}\r\n\r\nbody {i}\r\n").into_bytes(),
                flags: Flags::default(),
                internal_date: None,
                if_missing: Default::default(),
            })
            .collect();
        mb.append(&reqs, None).unwrap();
    }

    fn count(conn: &Connection) -> Result<i64, StoreError> {
        Ok(conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?)
    }

    /// Opens `copy` with the key and returns its message count, after
    /// `quick_check`.
    fn checked_count(copy: &Path) -> i64 {
        let mut mb = Mailbox::open(copy, DbKey::Raw(&KEY), Limits::default()).unwrap();
        let check: String = mb
            .connection()
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        count(mb.connection()).unwrap()
    }

    fn empty_file(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap();
        p
    }

    #[test]
    fn a_raw_snapshot_holds_exactly_the_measured_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let mut mb = Mailbox::open(&path, DbKey::Raw(&KEY), Limits::default()).unwrap();
        add(&mut mb, 30);
        // Another connection, as another process would have.
        let other = db::open(&path, DbKey::Raw(&KEY)).unwrap();
        let out = empty_file(dir.path(), "copy.sqlite");
        let flow = mb
            .snapshot(&out, |conn| {
                let n = count(conn)?;
                // A commit and a checkpoint elsewhere while the snapshot
                // is open: the commit waits in the log, and the checkpoint
                // may not write it into the file being copied.
                other
                    .execute_batch("PRAGMA busy_timeout = 0; INSERT INTO counters VALUES ('x', 1)")
                    .unwrap();
                let busy: i64 = other
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(busy, 1, "a checkpoint ran under the snapshot");
                Ok(ControlFlow::<(), _>::Continue(n))
            })
            .unwrap();
        let ControlFlow::Continue((n, how)) = flow else {
            panic!("no copy")
        };
        assert_eq!((n, how), (30, CopyKind::Raw));
        assert_eq!(checked_count(&out), 30);
        let bytes = std::fs::read(&out).unwrap();
        assert!(!bytes.starts_with(b"SQLite format 3"));
        // The mailbox still works after its file was read beside SQLite.
        add(&mut mb, 1);
        assert_eq!(count(mb.connection()).unwrap(), 31);
    }

    #[test]
    fn a_reader_elsewhere_makes_it_a_vacuum_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let mut mb = Mailbox::open(&path, DbKey::Raw(&KEY), Limits::default()).unwrap();
        mb.connection()
            .busy_timeout(std::time::Duration::from_millis(20))
            .unwrap();
        add(&mut mb, 5);
        let mut reader = db::open(&path, DbKey::Raw(&KEY)).unwrap();
        let tx = reader.transaction().unwrap();
        assert_eq!(count(&tx).unwrap(), 5);
        add(&mut mb, 5);
        let out = empty_file(dir.path(), "copy.sqlite");
        let flow = mb
            .snapshot(&out, |conn| {
                Ok(ControlFlow::<(), _>::Continue(count(conn)?))
            })
            .unwrap();
        assert!(matches!(
            flow,
            ControlFlow::Continue((10, CopyKind::Vacuum))
        ));
        drop(tx);
        assert_eq!(checked_count(&out), 10);
    }

    #[test]
    fn a_break_copies_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let mut mb = Mailbox::open(&path, DbKey::Raw(&KEY), Limits::default()).unwrap();
        let out = empty_file(dir.path(), "copy.sqlite");
        let flow = mb
            .snapshot(&out, |_| Ok(ControlFlow::<_, ()>::Break("same")))
            .unwrap();
        assert!(matches!(flow, ControlFlow::Break("same")));
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 0);
    }
}
