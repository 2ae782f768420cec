//! Deliveries into an open mailbox, committed together: while one delivery
//! holds its alias' gate and commits, the deliveries that arrive queue
//! here, and the next one to take the gate commits everything queued in
//! one transaction (one WAL commit, one sync shared through the mailbox's
//! `GroupSync`); the search index takes their bodies later, off this path.
//!
//! Imports `store` types only. Invariants: a queued delivery is taken and
//! its outcome set only under the alias' gate, so a delivery that holds
//! the gate and has no outcome is still queued; a batch commits in arrival
//! order, so UIDs follow the order in which deliveries queued; each
//! delivery gets the outcome it would have had alone (a batch that fails,
//! for a quota for example, is retried one message at a time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::lock;
use crate::store::StoreError;
use crate::store::mailbox::{Durable, INDEX_BATCH, Mailbox};
use crate::store::mime::Parsed;
use crate::store::types::{AppendRequest, AppendUid};

/// At most this many messages, or about this many bytes, per transaction:
/// a batch holds the mailbox no longer than a large APPEND would.
const BATCH_MESSAGES: usize = 64;
const BATCH_BYTES: usize = 8 << 20;

/// What a committed delivery learns: its folder and UID, and the commit
/// whose sync its `250` waits for.
pub(super) type Outcome = Result<(String, AppendUid, Durable), StoreError>;

/// One delivery waiting for its turn.
pub(super) struct Queued {
    /// The message, until a gate holder takes it into a batch.
    work: Mutex<Option<(AppendRequest, Parsed)>>,
    outcome: Mutex<Option<Outcome>>,
    bytes: usize,
}

impl Queued {
    pub(super) fn new(request: AppendRequest, parsed: Parsed) -> Arc<Queued> {
        Arc::new(Queued {
            bytes: request.message.len(),
            work: Mutex::new(Some((request, parsed))),
            outcome: Mutex::new(None),
        })
    }

    /// The outcome, once a gate holder committed this delivery.
    pub(super) fn outcome(&self) -> Option<Outcome> {
        lock(&self.outcome).take()
    }
}

/// Deliveries queued per alias.
#[derive(Default)]
pub(super) struct Intake {
    queued: Mutex<HashMap<i64, Vec<Arc<Queued>>>>,
}

impl Intake {
    pub(super) fn enqueue(&self, alias: i64, q: &Arc<Queued>) {
        lock(&self.queued).entry(alias).or_default().push(q.clone());
    }

    /// Takes `q` back out of the queue (it is to be sealed instead) and
    /// returns its message; `None` when a batch already took it.
    pub(super) fn withdraw(&self, alias: i64, q: &Arc<Queued>) -> Option<(AppendRequest, Parsed)> {
        let mut queued = lock(&self.queued);
        if let Some(list) = queued.get_mut(&alias) {
            list.retain(|other| !Arc::ptr_eq(other, q));
            if list.is_empty() {
                queued.remove(&alias);
            }
        }
        lock(&q.work).take()
    }

    /// The oldest queued deliveries of `alias`, up to one batch.
    fn take_batch(&self, alias: i64) -> Vec<Arc<Queued>> {
        let mut queued = lock(&self.queued);
        let Some(list) = queued.get_mut(&alias) else {
            return Vec::new();
        };
        let mut n = 0;
        let mut bytes = 0;
        while n < list.len() && n < BATCH_MESSAGES && (n == 0 || bytes < BATCH_BYTES) {
            bytes += list[n].bytes;
            n += 1;
        }
        let batch: Vec<Arc<Queued>> = list.drain(..n).collect();
        if list.is_empty() {
            queued.remove(&alias);
        }
        batch
    }

    /// Commits queued deliveries of `alias` into `mailbox` until `mine`
    /// has its outcome. The caller holds the alias' gate. Also returns
    /// whether a batch left enough bodies waiting for the search index
    /// that it should be fed (`INDEX_BATCH`).
    pub(super) fn commit_until(
        &self,
        alias: i64,
        mailbox: &Mutex<Mailbox>,
        quota: Option<u64>,
        mine: &Queued,
    ) -> (Outcome, bool) {
        let mut index = false;
        loop {
            if let Some(outcome) = mine.outcome() {
                return (outcome, index);
            }
            let batch = self.take_batch(alias);
            if batch.is_empty() {
                // Not queued and no outcome: cannot happen under the gate.
                let lost = StoreError::Internal("a queued delivery was lost".into());
                return (Err(lost), index);
            }
            let mut m = lock(mailbox);
            commit(&mut m, quota, &batch);
            index |= m.unindexed() >= INDEX_BATCH;
        }
    }
}

/// Commits `batch` in one transaction, or, if that fails, one message at a
/// time, and sets every delivery's outcome.
fn commit(mailbox: &mut Mailbox, quota: Option<u64>, batch: &[Arc<Queued>]) {
    let (mut requests, mut parsed) = (Vec::new(), Vec::new());
    let mut owners = Vec::new();
    for q in batch {
        if let Some((r, p)) = lock(&q.work).take() {
            requests.push(r);
            parsed.push(p);
            owners.push(q);
        }
    }
    if let Ok(appended) = mailbox.append_parsed(&requests, &parsed, quota) {
        let durable = mailbox.committed();
        for (q, (folder, uid)) in owners.iter().zip(appended) {
            *lock(&q.outcome) = Some(Ok((folder, uid, durable.clone())));
        }
        return;
    }
    for ((q, r), p) in owners.iter().zip(&requests).zip(&parsed) {
        let outcome = mailbox
            .append_parsed(std::slice::from_ref(r), std::slice::from_ref(p), quota)
            .and_then(|appended| {
                let (folder, uid) = appended
                    .into_iter()
                    .next()
                    .ok_or_else(|| StoreError::Internal("append returned nothing".into()))?;
                Ok((folder, uid, mailbox.committed()))
            });
        *lock(&q.outcome) = Some(outcome);
    }
}
