//! The sealed spool's import into INBOX after a cold unlock, in the
//! background: LOGIN answers once the key is unwrapped, and sessions see the
//! mail arrive as `EXISTS`. The bodies are added to the search index after
//! the last batch, `INDEX_BATCH` at a time.
//!
//! Imports the rest of `store` and `util`. Invariants: at most one import
//! runs per alias; while it is registered, deliveries to that alias are
//! sealed (so mail keeps its arrival order), and it imports its last batch
//! and deregisters under the alias' gate, so nothing sealed is left behind
//! and a steady stream of mail cannot keep it running; each batch is one `synchronous=FULL` transaction that records the
//! files it took, and only then are they unlinked (exactly once across
//! crashes; the unlinking runs beside the next batch's commit, and records
//! go only after their files); a batch holds at most `BATCH_MESSAGES` messages or
//! `BATCH_BYTES` of sealed files (one larger message alone), and at most two
//! batches are in memory at once.

use std::collections::HashSet;
use std::sync::{Condvar, Mutex};

use zeroize::Zeroizing;

use super::super::StoreError;
use super::super::control::Alias;
use super::super::mailbox::{INDEX_BATCH, Mailbox};
use super::super::mime::{self, Parsed};
use super::super::spool::{self, Pending};
use super::super::types::{AppendRequest, Change};
use super::{Inner, lock};
use crate::util::{crash_point, pause_point};

/// Messages per import transaction.
const BATCH_MESSAGES: usize = 500;
/// Sealed bytes per import transaction.
const BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// One alias' running import, for sessions that must wait for it (POP3's
/// maildrop, the command line).
#[derive(Default)]
pub(super) struct Import {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    imported: u32,
    /// `Some` once the import has ended: its error, if it failed.
    ended: Option<Option<String>>,
}

impl Import {
    /// Waits for the import to end; returns how many messages it imported.
    pub(super) fn wait(&self) -> Result<u32, StoreError> {
        let mut state = lock(&self.state);
        loop {
            match &state.ended {
                Some(None) => return Ok(state.imported),
                Some(Some(why)) => {
                    return Err(StoreError::Unavailable(format!(
                        "the sealed mail could not be imported: {why}"
                    )));
                }
                None => {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    fn add(&self, n: u32) {
        lock(&self.state).imported += n;
    }

    fn end(&self, result: Result<(), StoreError>) {
        lock(&self.state).ended = Some(result.err().map(|e| e.to_string()));
        self.changed.notify_all();
    }
}

/// A batch decrypted and parsed, ready for its transaction.
struct Batch<'p> {
    files: Vec<&'p Pending>,
    requests: Vec<AppendRequest>,
    parsed: Vec<Parsed>,
}

impl Inner {
    /// Imports everything in the alias' spool, then deregisters `import`.
    /// Runs on a blocking thread of its own.
    pub(super) fn run_import(
        &self,
        alias: &Alias,
        mb: &Mutex<Mailbox>,
        identity: &Zeroizing<String>,
        import: &Import,
    ) {
        let mut skipped = HashSet::new();
        // The first look imports everything then waiting without the gate;
        // later looks find what arrived meanwhile.
        let mut first = true;
        let result = self.reconcile(alias, mb).and_then(|()| {
            loop {
                if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(StoreError::Unavailable("the server is stopping".into()));
                }
                let pending = self.pending(alias, &skipped)?;
                if pending.len() <= BATCH_MESSAGES {
                    // Deliveries seal while the import is registered: the
                    // last batch, the last look at the spool and the
                    // deregistration are one step under the gate, so nothing
                    // sealed is left behind, and mail that keeps arriving
                    // cannot keep the import (and itself) on the slow path.
                    let gate = self.gate(alias.id);
                    let _g = lock(&gate);
                    let pending = self.pending(alias, &skipped)?;
                    if pending.len() <= BATCH_MESSAGES {
                        self.import_all(alias, mb, identity, &pending, &mut skipped, import)?;
                        lock(&self.imports).remove(&alias.id);
                        return Ok(());
                    }
                    continue;
                }
                if first {
                    first = false;
                    self.import_all(alias, mb, identity, &pending, &mut skipped, import)?;
                    continue;
                }
                // Mail sealed as fast as it is imported would keep the
                // import chasing it: after the first look, each batch is
                // taken with deliveries held off, so the spool shrinks by
                // a batch every round.
                let gate = self.gate(alias.id);
                let _g = lock(&gate);
                let oldest = pending.get(..BATCH_MESSAGES).unwrap_or(&pending);
                self.import_all(alias, mb, identity, oldest, &mut skipped, import)?;
            }
        });
        if let Err(e) = &result {
            tracing::warn!(error = %e, "sealed mail import stopped; the rest waits for the next login");
            let gate = self.gate(alias.id);
            let _g = lock(&gate);
            lock(&self.imports).remove(&alias.id);
        }
        let imported = lock(&import.state).imported;
        if imported > 0 {
            tracing::info!(
                address = %crate::util::log::addr(&alias.address),
                messages = imported,
                "sealed mail imported into INBOX"
            );
        }
        import.end(result);
        self.record_usage(alias.id);
        self.index_imported(mb);
    }

    /// Adds the imported bodies to the search index once every message is
    /// in INBOX (indexing was most of an import's time), `INDEX_BATCH` per
    /// short hold of the mailbox; SEARCH reads their text meanwhile.
    fn index_imported(&self, mb: &Mutex<Mailbox>) {
        while !self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            match lock(mb).index_pending(INDEX_BATCH) {
                Ok(n) if n == INDEX_BATCH => {}
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot add imported mail to the search index yet");
                    return;
                }
            }
        }
    }

    /// Sealed files not yet imported, less those this import left in place.
    fn pending(
        &self,
        alias: &Alias,
        skipped: &HashSet<String>,
    ) -> Result<Vec<Pending>, StoreError> {
        let mut pending = spool::pending(&self.cfg.data_dir, &alias.mailbox_id)?;
        pending.retain(|p| !skipped.contains(&p.name));
        Ok(pending)
    }

    /// Finishes what an interrupted import left: a file recorded as
    /// imported is removed (it was committed), then its record.
    fn reconcile(&self, alias: &Alias, mb: &Mutex<Mailbox>) -> Result<(), StoreError> {
        let recorded: HashSet<String> = lock(mb)
            .connection()
            .prepare("SELECT name FROM spool_imported")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if recorded.is_empty() {
            return Ok(());
        }
        let pending = spool::pending(&self.cfg.data_dir, &alias.mailbox_id)?;
        let done: Vec<&Pending> = pending
            .iter()
            .filter(|p| recorded.contains(&p.name))
            .collect();
        if !done.is_empty() {
            spool::remove(&done)?;
        }
        forget(mb, recorded.iter().map(String::as_str))
    }

    /// Imports `pending` in batches: one thread decrypts and parses the
    /// next batch while this one commits the last and announces its
    /// messages; when all are committed, the files are unlinked and then
    /// their records forgotten.
    fn import_all(
        &self,
        alias: &Alias,
        mb: &Mutex<Mailbox>,
        identity: &Zeroizing<String>,
        pending: &[Pending],
        skipped: &mut HashSet<String>,
        import: &Import,
    ) -> Result<(), StoreError> {
        let limits = self.cfg.limits;
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(Batch<'_>, Vec<String>)>(0);
            s.spawn(move || {
                for chunk in batches(pending) {
                    let prepared = prepare(chunk, identity, limits);
                    if tx.send(prepared).is_err() {
                        break;
                    }
                }
            });
            let mut committed: Vec<&Pending> = Vec::new();
            for (batch, bad) in rx {
                skipped.extend(bad);
                let (n, files) = self.commit(alias, mb, batch)?;
                import.add(n);
                committed.extend(files);
                pause_point("spool-import-batch");
            }
            // The files go once every batch is visible: unlinking them
            // earlier competes with decryption for the CPU and delays the
            // last batches. A crash before this leaves files whose names
            // are recorded as imported; the next import removes them
            // without storing them again.
            for files in committed.chunks(BATCH_MESSAGES) {
                spool::remove(files)?;
                forget(mb, files.iter().map(|p| p.name.as_str()))?;
            }
            Ok(())
        })
    }

    /// Commits one batch and tells the sessions. Returns how many messages
    /// it stored, and the files that may now go.
    fn commit<'p>(
        &self,
        alias: &Alias,
        mb: &Mutex<Mailbox>,
        batch: Batch<'p>,
    ) -> Result<(u32, Vec<&'p Pending>), StoreError> {
        if batch.files.is_empty() {
            return Ok((0, Vec::new()));
        }
        let names: Vec<&str> = batch.files.iter().map(|p| p.name.as_str()).collect();
        let appended = lock(mb).import(&batch.requests, &batch.parsed, &names)?;
        crash_point("spool-import-after-commit");
        let changes: Vec<Change> = appended
            .into_iter()
            .map(|(folder, a)| Change::Exists { folder, uid: a.uid })
            .collect();
        let n = u32::try_from(changes.len()).unwrap_or(u32::MAX);
        self.hub.publish(alias.id, changes);
        Ok((n, batch.files))
    }
}

/// Drops the records of files that are gone, in one transaction.
fn forget<'a>(mb: &Mutex<Mailbox>, names: impl Iterator<Item = &'a str>) -> Result<(), StoreError> {
    let mut m = lock(mb);
    let tx = m.connection().transaction()?;
    for name in names {
        tx.prepare_cached("DELETE FROM spool_imported WHERE name = ?1")?
            .execute([name])?;
    }
    tx.commit()?;
    Ok(())
}

/// Splits `pending` into batches by count and sealed size.
fn batches(pending: &[Pending]) -> impl Iterator<Item = &[Pending]> {
    let mut rest = pending;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0u64;
        let mut n = 0;
        for p in rest.iter().take(BATCH_MESSAGES) {
            let size = std::fs::metadata(&p.path).map_or(0, |m| m.len());
            if n > 0 && bytes + size > BATCH_BYTES {
                break;
            }
            bytes += size;
            n += 1;
        }
        let (batch, tail) = rest.split_at(n.max(1).min(rest.len()));
        rest = tail;
        Some(batch)
    })
}

/// Opens and parses a batch. A file that does not open or does not parse
/// is left in place (logged) and named in the second value.
fn prepare<'p>(
    chunk: &'p [Pending],
    identity: &Zeroizing<String>,
    limits: super::super::mailbox::Limits,
) -> (Batch<'p>, Vec<String>) {
    let mut batch = Batch {
        files: Vec::with_capacity(chunk.len()),
        requests: Vec::with_capacity(chunk.len()),
        parsed: Vec::with_capacity(chunk.len()),
    };
    let mut bad = Vec::new();
    for p in chunk {
        let (message, to) = match spool::open(p, identity) {
            Ok(m) => spool::take_mark(m),
            Err(e) => {
                tracing::warn!(error = %e, "sealed spool file left in place");
                bad.push(p.name.clone());
                continue;
            }
        };
        let parsed = if !limits.fits(&message) {
            Err("larger than the largest message allowed".to_string())
        } else {
            mime::parse(&message, limits.mime).map_err(|e| e.to_string())
        };
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(why) => {
                tracing::warn!(%why, "sealed spool message could not be stored; left in place");
                bad.push(p.name.clone());
                continue;
            }
        };
        batch.files.push(p);
        batch.requests.push(to.request(message, Some(p.arrived)));
        batch.parsed.push(parsed);
    }
    (batch, bad)
}
