//! The search index fed in the background: bodies that deliveries and
//! APPEND add wait in `fts_pending` (SEARCH reads their stored text) until
//! a job per mailbox indexes them, once writes pause.
//!
//! Imports the mailbox layer only. Invariants: one job per alias at a time
//! (`Inner::indexing`), deregistered under the mailbox's lock, so a write
//! after the job's last look schedules a new one; a job holds the
//! backend's state, so dropping the store waits for it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::super::StoreError;
use super::super::mailbox::{INDEX_BATCH, Mailbox};
use super::{Inner, lock};

/// The background indexer's look at a mailbox: it indexes once no body
/// was added since its last look.
const INDEX_PAUSE: Duration = Duration::from_millis(100);

impl Inner {
    /// Feeds the search index the bodies waiting for it, off the path of
    /// the writes that added them (deliveries, APPEND): in the background,
    /// once no body has been added for `INDEX_PAUSE` (a flood of mail is
    /// stored first, at the rate of the inserts alone, and indexed after),
    /// `INDEX_BATCH` per hold of the mailbox taken only when nobody holds
    /// it, for as long as `INDEX_BATCH` wait (fewer are read by SEARCH as
    /// they are). One such job per alias at a time. A flood that never
    /// pauses meets `Limits::unindexed_max`, past which each write indexes
    /// as it goes.
    pub(super) fn index_later(&self, alias: i64, mb: &Arc<Mutex<Mailbox>>) {
        if !lock(&self.indexing).insert(alias) {
            return;
        }
        // Holding the state makes dropping the store wait for the job, so
        // the file never closes on this thread while the process exits.
        let Some(inner) = self.me.upgrade() else {
            lock(&self.indexing).remove(&alias);
            return;
        };
        let mb = mb.clone();
        blocking::unblock(move || {
            inner.index_waiting(alias, &mb);
            drop(mb);
            drop(inner);
        })
        .detach();
    }

    /// `Request::Index`: the bodies waiting for the index, `INDEX_BATCH`
    /// per hold of the mailbox, until none wait or the store stops.
    pub(super) fn index_now(&self, session: super::SessionId) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let n = self.with(session, |m, _| m.index_pending(INDEX_BATCH))?;
            total += n as u64;
            if n < INDEX_BATCH || self.stopping.load(Ordering::SeqCst) {
                return Ok(total);
            }
        }
    }

    fn index_waiting(&self, alias: i64, mb: &Mutex<Mailbox>) {
        // What was waiting at the last look: a change means writes go on.
        let mut seen = None;
        loop {
            std::thread::sleep(INDEX_PAUSE);
            if self.stopping.load(Ordering::SeqCst) {
                // The rest waits for the next write.
                lock(&self.indexing).remove(&alias);
                return;
            }
            let mut m = match mb.try_lock() {
                Ok(m) => m,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => continue,
            };
            let waiting = m.unindexed();
            if waiting >= INDEX_BATCH && seen != Some(waiting) {
                seen = Some(waiting);
                continue;
            }
            if waiting >= INDEX_BATCH {
                match m.index_pending(INDEX_BATCH) {
                    Ok(_) => {
                        seen = Some(m.unindexed());
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot add new mail to the search index yet")
                    }
                }
            }
            // Under the mailbox's lock: a write after this schedules anew.
            lock(&self.indexing).remove(&alias);
            return;
        }
    }
}
