//! The backup scheduler inside the server (no cron): every mailbox is
//! backed up once its last success is older than the interval, with
//! per-mailbox jitter, at most `concurrency` at a time, retrying failures
//! with backoff, and old backups pruned after each new one. A mailbox
//! whose key is in memory (its owner logged in) is snapshotted and checked
//! with the key; one whose owner is away is copied as the encrypted file it
//! is, without a key, and checked with the key at the owner's next login
//! (a copy that fails the check is marked bad and a new backup taken). The
//! control database and the spool (`server`) follow the same interval when
//! the scheduler has the server key.
//!
//! Imports `backup`, `store::local` (mailboxes and the keys in memory) and
//! `util`. Invariants: a mailbox is only opened with a key its owner's
//! login put in memory (the server holds no other key); a file copied
//! without the key is one the server has closed and claimed, so nothing
//! writes it meanwhile; a failure never affects mail flow and leaves the
//! previous backups as they were; time comes from a [`Clock`], so tests
//! drive days of schedule without waiting.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Outcome, Target};
use crate::store::local::{ClosedMailbox, LocalBackend, OpenMailbox};

pub use crate::config::BackupPolicy as Policy;
pub use crate::util::{Clock, SystemClock};

#[derive(Default, Clone, Copy, Debug)]
struct State {
    /// Unix time of the newest backup (None: none yet).
    last_ok: Option<i64>,
    first_seen: i64,
    failures: u32,
    /// No attempt before this (backoff after a failure).
    not_before: i64,
    /// The newest backup was copied without the key (or failed its check
    /// with it): the next pass with the key checks it, due or not.
    needs_key: bool,
}

pub struct Scheduler {
    target: Arc<Target>,
    data_dir: std::path::PathBuf,
    policy: Policy,
    clock: Arc<dyn Clock>,
    states: Mutex<HashMap<String, State>>,
    /// Set: the control database and the spool are backed up too.
    server_key: Option<zeroize::Zeroizing<[u8; 32]>>,
}

impl Scheduler {
    pub fn new(
        target: Target,
        data_dir: &std::path::Path,
        policy: Policy,
        clock: Arc<dyn Clock>,
    ) -> Scheduler {
        Scheduler {
            target: Arc::new(target),
            data_dir: data_dir.to_path_buf(),
            policy,
            clock,
            states: Mutex::new(HashMap::new()),
            server_key: None,
        }
    }

    /// Also back up the control database (under `server_key`) and the
    /// sealed spool, on the same interval.
    pub fn with_server_files(mut self, server_key: &[u8; 32]) -> Scheduler {
        self.server_key = Some(zeroize::Zeroizing::new(*server_key));
        self
    }

    fn states(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A spread in `[0, min(interval / 10, 5 min))`, fixed per mailbox, so
    /// mailboxes opened together are not backed up together.
    fn jitter(&self, mailbox_id: &str) -> i64 {
        let span = (self.policy.interval.as_secs() / 10).clamp(1, 300) as i64;
        let h = Sha256::digest(mailbox_id.as_bytes());
        (u64::from_be_bytes(h[..8].try_into().unwrap_or([0; 8])) % span as u64) as i64
    }

    /// Whether a mailbox is due at `now`.
    fn due(&self, mailbox_id: &str, s: &State, now: i64) -> bool {
        let base = match s.last_ok {
            Some(t) => t + self.policy.interval.as_secs() as i64,
            None => s.first_seen,
        };
        now >= base + self.jitter(mailbox_id) && now >= s.not_before
    }

    /// What is known of `id`'s backups; the first time in this process,
    /// the newest existing backup is read from the target.
    async fn state(&self, id: &str, now: i64) -> State {
        if let Some(s) = self.states().get(id).copied() {
            return s;
        }
        let target = self.target.clone();
        let key = id.to_string();
        let last = blocking::unblock(move || super::latest(&target, &key).ok().flatten()).await;
        let s = State {
            last_ok: last.as_ref().map(|b| b.created_at),
            first_seen: now,
            needs_key: last.is_some_and(|b| !b.verified || b.bad.is_some()),
            ..State::default()
        };
        self.states().insert(id.to_string(), s);
        s
    }

    /// One pass: the server's own files when due, then every due mailbox
    /// whose key is in memory (and any whose newest backup waits for the
    /// key's check), then every due mailbox whose owner is away.
    pub async fn tick(&self, backend: &LocalBackend) {
        self.server_files().await;
        let now = self.clock.now();
        let mut due = Vec::new();
        for m in backend.open_with_keys() {
            let state = self.state(&m.mailbox_id, now).await;
            if state.needs_key || self.due(&m.mailbox_id, &state, now) {
                due.push((m, state.needs_key));
            }
        }
        for chunk in due.chunks_mut(self.policy.concurrency.max(1)) {
            let mut running = Vec::new();
            for (m, needs_key) in chunk.iter_mut() {
                running.push(self.start(m, *needs_key));
            }
            // The tasks run on the blocking pool side by side; awaiting
            // them in turn only collects the results.
            for task in running {
                let (alias_id, mailbox_id, result) = task.await;
                self.finish(backend, alias_id, &mailbox_id, result.map(Some));
            }
        }
        let mut away = Vec::new();
        for m in backend.closed_mailboxes() {
            let state = self.state(&m.mailbox_id, now).await;
            if self.due(&m.mailbox_id, &state, now) && m.path.exists() {
                away.push(m);
            }
        }
        for chunk in away.chunks(self.policy.concurrency.max(1)) {
            let running: Vec<_> = chunk.iter().map(|m| self.start_closed(m)).collect();
            for task in running {
                let (alias_id, mailbox_id, result) = task.await;
                self.finish(backend, alias_id, &mailbox_id, result);
            }
        }
        self.count_stale(self.clock.now());
    }

    /// Publishes how many mailboxes this scheduler knows and how many of
    /// them have no backup younger than the interval.
    fn count_stale(&self, now: i64) {
        let interval = self.policy.interval.as_secs() as i64;
        let states = self.states();
        let mailboxes = states.keys().filter(|k| *k != super::server::CONTROL);
        let (mut all, mut stale) = (0u64, 0u64);
        for id in mailboxes {
            all += 1;
            let fresh = states
                .get(id)
                .and_then(|s| s.last_ok)
                .is_some_and(|t| now - t <= interval);
            if !fresh {
                stale += 1;
            }
        }
        crate::util::metrics::set("sealmail_mailboxes", &[], all as f64);
        crate::util::metrics::set(
            "sealmail_mailboxes_without_recent_backup",
            &[],
            stale as f64,
        );
    }

    /// The control database and the spool (no owner key needed: the one
    /// is under the server key, the other sealed already).
    async fn server_files(&self) {
        let Some(key) = self.server_key.clone() else {
            return;
        };
        let id = super::server::CONTROL;
        let now = self.clock.now();
        let state = self.state(id, now).await;
        if !self.due(id, &state, now) {
            return;
        }
        let target = self.target.clone();
        let data_dir = self.data_dir.clone();
        let policy = self.policy;
        let result = blocking::unblock(move || {
            let outcome = super::server::backup_control(&target, &data_dir, &key)?;
            if let Outcome::Stored(m) = &outcome {
                tracing::info!(
                    aliases = m.messages,
                    size = m.size,
                    "control database backed up"
                );
                super::apply_retention(&target, id, policy.keep_daily, policy.keep_weekly)?;
            }
            let spool = super::server::sync_spool(&target, &data_dir)?;
            if spool.uploaded + spool.pruned > 0 {
                tracing::info!(
                    uploaded = spool.uploaded,
                    pruned = spool.pruned,
                    "spool backed up"
                );
            }
            Ok::<_, super::BackupError>(outcome)
        })
        .await
        .map_err(|e| e.to_string());
        self.settle(id, result.as_ref().map(drop).map_err(Clone::clone));
    }

    /// Records an attempt's result; returns the retry delay after a failure.
    fn settle(&self, id: &str, result: Result<(), String>) -> Option<i64> {
        let now = self.clock.now();
        let mut states = self.states();
        let s = states.entry(id.to_string()).or_default();
        match result {
            Ok(()) => {
                // An unchanged state counts as backed up now.
                s.last_ok = Some(now);
                s.failures = 0;
                s.not_before = 0;
                None
            }
            Err(e) => {
                s.failures += 1;
                let wait =
                    (60i64 << s.failures.min(10)).min(self.policy.interval.as_secs().max(1) as i64);
                s.not_before = now + wait;
                tracing::warn!(error = %e, retry_in_s = wait, "backup failed");
                Some(wait)
            }
        }
    }

    /// A backup with the key; `check` first checks a newest backup that
    /// was copied without it.
    fn start(
        &self,
        m: &mut OpenMailbox,
        check: bool,
    ) -> blocking::Task<(i64, String, Result<Outcome, String>)> {
        let target = self.target.clone();
        let data_dir = self.data_dir.clone();
        let policy = self.policy;
        let alias_id = m.alias_id;
        let mailbox_id = m.mailbox_id.clone();
        let mailbox = m.mailbox.clone();
        let dek = m.dek.clone();
        let creds = m.credentials.clone();
        blocking::unblock(move || {
            if check {
                check_unverified(&target, &data_dir, &mailbox_id, &dek);
            }
            let result = super::backup_now(
                &target,
                &data_dir,
                &mailbox_id,
                &mailbox,
                &dek,
                &creds,
                false,
            )
            .map_err(|e| e.to_string());
            if let Ok(Outcome::Stored(_)) = &result {
                retain(&target, &mailbox_id, policy);
            }
            (alias_id, mailbox_id, result)
        })
    }

    /// A backup without the key of a mailbox whose owner is away.
    fn start_closed(
        &self,
        m: &ClosedMailbox,
    ) -> blocking::Task<(i64, String, Result<Option<Outcome>, String>)> {
        let target = self.target.clone();
        let data_dir = self.data_dir.clone();
        let policy = self.policy;
        let (alias_id, mailbox_id) = (m.alias_id, m.mailbox_id.clone());
        let (path, creds) = (m.path.clone(), m.credentials.clone());
        blocking::unblock(move || {
            let result = super::backup_closed(&target, &data_dir, &mailbox_id, &path, &creds)
                .map_err(|e| e.to_string());
            if let Ok(Some(Outcome::Stored(_))) = &result {
                retain(&target, &mailbox_id, policy);
            }
            (alias_id, mailbox_id, result)
        })
    }

    /// `None`: nothing was attempted (the owner came back meanwhile).
    fn finish(
        &self,
        backend: &LocalBackend,
        alias_id: i64,
        mailbox_id: &str,
        result: Result<Option<Outcome>, String>,
    ) {
        let result = match result {
            Ok(None) => return,
            Ok(Some(outcome)) => Ok(outcome),
            Err(e) => Err(e),
        };
        if let Ok(Outcome::Stored(m)) = &result {
            if m.verified {
                tracing::info!(
                    mailbox = mailbox_id,
                    messages = m.messages,
                    size = m.size,
                    "mailbox backed up"
                );
            } else {
                tracing::info!(
                    mailbox = mailbox_id,
                    size = m.size,
                    "mailbox backed up without its key (its owner is away): checked at their next login"
                );
            }
        }
        if let Ok(outcome) = &result {
            let newest = match outcome {
                Outcome::Stored(m) | Outcome::Unchanged(m) => m,
            };
            if let Some(s) = self.states().get_mut(mailbox_id) {
                s.needs_key = !newest.verified || newest.bad.is_some();
            }
        }
        let error = result.as_ref().err().cloned();
        self.settle(mailbox_id, result.map(drop));
        match error {
            None => backend.record_backup(alias_id, Ok(())),
            Some(e) => backend.record_backup(alias_id, Err(&e)),
        }
    }
}

/// With the owner's key in hand: checks the newest backup if it was
/// copied without it ([`super::verify`]), logging what it found.
fn check_unverified(target: &Target, data_dir: &std::path::Path, mailbox_id: &str, dek: &[u8; 32]) {
    let Ok(Some(newest)) = super::latest(target, mailbox_id) else {
        return;
    };
    if newest.verified || newest.bad.is_some() {
        return;
    }
    match super::verify(target, data_dir, &newest, dek) {
        Ok(m) if m.bad.is_none() => tracing::info!(
            mailbox = mailbox_id,
            backup = m.created_at,
            messages = m.messages,
            "backup copied without the key checked with it: verified"
        ),
        Ok(m) => tracing::warn!(
            mailbox = mailbox_id,
            backup = m.created_at,
            why = m.bad.as_deref().unwrap_or(""),
            "backup copied without the key failed its check: marked bad, a new one is taken"
        ),
        Err(e) => {
            tracing::warn!(mailbox = mailbox_id, error = %e, "cannot check a backup copied without the key")
        }
    }
}

/// Prunes old backups after a new one.
fn retain(target: &Target, mailbox_id: &str, policy: Policy) {
    if let Err(e) =
        super::apply_retention(target, mailbox_id, policy.keep_daily, policy.keep_weekly)
    {
        tracing::warn!(error = %e, "backup retention failed; will retry after the next backup");
    }
}

/// Runs the scheduler until `stop` closes.
pub async fn run(
    scheduler: Arc<Scheduler>,
    backend: Arc<LocalBackend>,
    stop: async_channel::Receiver<()>,
) {
    let every =
        (scheduler.policy.interval / 4).clamp(Duration::from_millis(250), Duration::from_secs(30));
    while crate::util::wait_or_stop(every, &stop).await {
        scheduler.tick(&backend).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::FakeClock;

    #[test]
    fn due_follows_interval_jitter_and_backoff() {
        let clock = FakeClock::new(1_000_000);
        let policy = Policy {
            interval: Duration::from_secs(86_400),
            keep_daily: 7,
            keep_weekly: 4,
            concurrency: 2,
        };
        let s = Scheduler::new(
            Target::Dir("/nonexistent".into()),
            std::path::Path::new("/nonexistent"),
            policy,
            clock.clone(),
        );
        let j = s.jitter("mbox");
        assert!((0..300).contains(&j));
        assert_ne!(s.jitter("mbox"), s.jitter("other-mailbox-id-x"), "spread");
        let now = clock.now();
        let fresh = State {
            last_ok: Some(now - 3600),
            first_seen: now,
            ..State::default()
        };
        assert!(!s.due("mbox", &fresh, now));
        assert!(!s.due("mbox", &fresh, now - 3600 + 86_400 + j - 1));
        assert!(s.due("mbox", &fresh, now - 3600 + 86_400 + j));
        let never = State {
            first_seen: now,
            ..State::default()
        };
        assert!(s.due("mbox", &never, now + j));
        let failing = State {
            not_before: now + 600,
            ..never
        };
        assert!(!s.due("mbox", &failing, now + 599));
        assert!(s.due("mbox", &failing, now + 600));
    }
}
