//! The mailbox files a backend keeps open: opening one with a key (under
//! a shared claim, so a restore by hand cannot replace it), the bound on
//! how many stay open (`limits.open_mailboxes`, least recently used
//! closed first), and what happens to a file when its owner leaves (size
//! recorded, cache given back) or its key expires (closed), and the
//! read-only connections beside each (`Readers`).
//!
//! Part of `store::local`; imports the rest of `store`. Invariants: a file
//! that a session, an import or any other holder of its mailbox needs is
//! never closed for the bound; closing (a checkpoint) happens outside the
//! map's lock; a file's readers close before its writer (see
//! `Mailbox::raw`), and never write.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::super::StoreError;
use super::super::control::Alias;
use super::super::db::DbKey;
use super::super::keys::Dek;
use super::super::mailbox::{FileClaim, Limits, Mailbox};
use super::{Inner, lock};

/// How long opening a mailbox waits for a backup copying its file.
const CLAIM_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Open files by alias id.
pub(super) type OpenFiles = HashMap<i64, OpenFile>;

pub(super) struct OpenFile {
    /// The mailbox id the file was opened for (a reset gives the alias a
    /// new file).
    pub(super) id: String,
    /// Declared (so dropped) before `mailbox`.
    pub(super) readers: Arc<Readers>,
    pub(super) mailbox: Arc<Mutex<Mailbox>>,
    _claim: FileClaim,
    /// `Inner::tick` when last used, for closing the least recently used.
    used: AtomicU64,
}

impl Inner {
    /// Remembers an open mailbox's size in the control plane, for quota
    /// checks while it is locked. Best effort: a failure only means an
    /// older figure is used.
    pub(super) fn record_usage(&self, alias_id: i64) {
        let Some(mb) = lock(&self.open).get(&alias_id).map(|f| f.mailbox.clone()) else {
            return;
        };
        let used = lock(&mb).usage();
        match used {
            Ok((bytes, _)) => {
                if let Err(e) = lock(&self.control).set_usage(alias_id, bytes) {
                    tracing::warn!(error = %e, "cannot record mailbox usage");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot measure mailbox usage"),
        }
    }

    /// The open mailbox of an alias, opening it with `dek` if needed. The
    /// file is claimed (shared, `FileClaim`) for as long as it stays open,
    /// so a restore by hand cannot replace it underneath.
    pub(super) fn open_mailbox(
        &self,
        alias: &Alias,
        dek: &Dek,
    ) -> Result<Arc<Mutex<Mailbox>>, StoreError> {
        let cached = lock(&self.open)
            .get(&alias.id)
            .filter(|f| f.id == alias.mailbox_id)
            .map(|f| self.used(f));
        if let Some(m) = cached {
            return Ok(m);
        }
        let path = self.mailbox_path(alias);
        // A missing file is a new mailbox, unless it was backed up: then
        // it was lost, and an empty one in its place would hide that (and
        // keep a whole-server restore from putting it back).
        if !path.exists() {
            let backed_up = lock(&self.control)
                .backup_status(alias.id)
                .ok()
                .flatten()
                .is_some_and(|s| s.last_ok.is_some());
            if backed_up {
                tracing::error!(mailbox = %alias.mailbox_id, "a mailbox file that was backed up is missing");
                return Err(StoreError::Unavailable(format!(
                    "the mailbox file is missing, though it was backed up: the operator restores it \
                     (sealmail backup restore {} or sealmail backup server restore)",
                    alias.address
                )));
            }
        }
        // A backup without the key holds the file for as long as a copy
        // takes: wait for it. A restore by hand may hold it longer.
        let deadline = std::time::Instant::now() + CLAIM_WAIT;
        let claim = loop {
            if let Some(claim) = FileClaim::try_share(&path)? {
                break claim;
            }
            if std::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable(
                    "the mailbox is being restored from a backup; try again in a moment".into(),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut mb = Mailbox::open(&path, DbKey::Raw(dek), self.cfg.limits)?;
        super::super::mailbox::finish_restore(&mut mb, &path)?;
        let mb = Arc::new(Mutex::new(mb));
        // Files some session or import needs are never closed here.
        let needed: HashSet<i64> = lock(&self.sessions)
            .values()
            .map(|l| l.alias)
            .chain(lock(&self.imports).keys().copied())
            .collect();
        let (mb, closing) = {
            let mut open = lock(&self.open);
            match open.get(&alias.id) {
                Some(f) if f.id == alias.mailbox_id => (self.used(f), None),
                _ => {
                    let file = OpenFile {
                        id: alias.mailbox_id.clone(),
                        readers: Arc::new(Readers {
                            path: path.clone(),
                            key: dek.clone(),
                            limits: self.cfg.limits,
                            idle: Mutex::new(Vec::new()),
                        }),
                        mailbox: mb.clone(),
                        _claim: claim,
                        used: AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed)),
                    };
                    // Replaced: the alias' file was reset.
                    let old = open.insert(alias.id, file);
                    let lru = (open.len() > self.cfg.open_mailboxes)
                        .then(|| least_recently_used(&open, alias.id, &needed))
                        .flatten();
                    let closing = lru.and_then(|a| open.remove(&a).map(|f| (a, f)));
                    drop(old);
                    (mb, closing)
                }
            }
        };
        // Closing checkpoints the file's log: outside the map's lock.
        if let Some((alias_id, file)) = closing {
            if let Ok((bytes, _)) = lock(&file.mailbox).usage() {
                let _ = lock(&self.control).set_usage(alias_id, bytes);
            }
            drop(file);
        }
        Ok(mb)
    }

    /// Stamps an open file as used now; returns its mailbox.
    pub(super) fn used(&self, f: &OpenFile) -> Arc<Mutex<Mailbox>> {
        f.used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        f.mailbox.clone()
    }

    /// Gives back the page cache of an alias' open file.
    pub(super) fn shrink(&self, alias: i64) {
        let Some((mb, readers)) = lock(&self.open)
            .get(&alias)
            .map(|f| (f.mailbox.clone(), f.readers.clone()))
        else {
            return;
        };
        readers.close_idle();
        if let Err(e) = lock(&mb)
            .connection()
            .execute_batch("PRAGMA shrink_memory;")
        {
            tracing::warn!(error = %e, "cannot shrink a mailbox's cache");
        }
    }

    pub(super) fn sweep(&self) {
        for alias in self.keys.sweep() {
            // Closed (checkpointed) once the map's lock is released.
            let closed = lock(&self.open).remove(&alias);
            drop(closed);
        }
    }
}

/// Read-only connections to one open file. While a write holds the
/// mailbox's lock (through its commit), FETCH, STATUS, LIST and the like
/// run on one of these instead, in a read transaction on the last commit.
/// A session's own writes have committed before its next command, so it
/// always reads them. A reader's page cache is emptied by every commit on
/// the file (SQLite's rule in WAL mode), and with SQLCipher each page
/// read again is decrypted again: SEARCH, SORT and THREAD, which scan a
/// folder, wait for the mailbox instead (on readers they cut the steady
/// IMAP load to a third).
pub(super) struct Readers {
    path: PathBuf,
    key: Dek,
    limits: Limits,
    idle: Mutex<Vec<Mailbox>>,
}

/// Readers kept open per file between reads; as many more as read at once
/// are opened, and closed after their read.
const IDLE_READERS: usize = 4;

impl Readers {
    /// Runs `f` in a read transaction on an idle reader, or a new one.
    pub(super) fn run<T>(
        &self,
        f: impl FnOnce(&mut Mailbox) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = lock(&self.idle).pop();
        let mut reader = match idle {
            Some(r) => r,
            None => Mailbox::open_reader(&self.path, DbKey::Raw(&self.key), self.limits)?,
        };
        let out = reader.reading(f);
        let spare = {
            let mut idle = lock(&self.idle);
            if idle.len() < IDLE_READERS {
                idle.push(reader);
                None
            } else {
                Some(reader)
            }
        };
        drop(spare);
        out
    }

    /// Closes the readers not in use (their owner left).
    pub(super) fn close_idle(&self) {
        let closed = std::mem::take(&mut *lock(&self.idle));
        drop(closed);
    }
}

/// The open file used longest ago that nothing needs: not `keep`, no session
/// or import of its alias (`needed`), and its mailbox held by no one else.
fn least_recently_used(open: &OpenFiles, keep: i64, needed: &HashSet<i64>) -> Option<i64> {
    open.iter()
        .filter(|(a, f)| **a != keep && !needed.contains(a) && Arc::strong_count(&f.mailbox) == 1)
        .min_by_key(|(_, f)| f.used.load(Ordering::Relaxed))
        .map(|(a, _)| *a)
}
