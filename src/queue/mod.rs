//! The outbound queue (`queue.sqlite`, SQLCipher under a key derived from
//! the server key): submitted messages and, per recipient, where delivery
//! stands — queued with its next attempt time, delivered, or failed with
//! the reason and its category — until the records expire.
//!
//! Imports `config` (the policy), `store::db`, `relay` (the key derivation),
//! `util`; the delivery
//! loop is in `worker`, bounce messages in `dsn`, failure categories in
//! `category`, the operator's views and commands in `admin`. Invariants: `enqueue` returns only after the message and
//! all its recipients are committed and the write-ahead log holding that
//! commit is synced to disk (the `250` comes after it; concurrent enqueues
//! share one sync, see `GroupSync`); a recipient leaves
//! `queued` only by a recorded outcome, so a crash mid-delivery means one
//! more attempt, never a lost message; bodies are dropped (redacted) once
//! no recipient needs them, unless the sender's domain keeps them.

mod admin;
mod category;
pub mod dsn;
pub mod worker;

pub use admin::{MessageState, RecipientState, show_time};
pub use category::{Category, enhanced_code};

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::db::{self, DbError, DbKey};
use crate::util::{GroupSync, random_fill};

pub const FILE_NAME: &str = "queue.sqlite";

/// Records of finished messages are deleted this long after the end.
const RECORD_DAYS: i64 = 30;
pub use crate::config::{MAX_KEEP_DAYS, QueuePolicy as Policy};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue database: {0}")]
    Db(#[from] DbError),
    #[error("no queued message {0}")]
    NotFound(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        QueueError::Db(DbError::Sqlite(e))
    }
}

pub use crate::util::{Clock, FakeClock, SystemClock};

impl Policy {
    /// Seconds to wait after the `attempts`-th failed attempt (1-based):
    /// `first_retry · 2^(attempts-1)`, capped at `max_retry`, then moved by
    /// up to ±20 % so that many messages deferred together spread out.
    pub fn retry_delay(&self, attempts: u32, jitter: f64) -> i64 {
        let base =
            self.first_retry.as_secs_f64() * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
        let capped = base.min(self.max_retry.as_secs_f64());
        let factor = 1.0 + 0.2 * jitter.clamp(-1.0, 1.0);
        (capped * factor).round().max(1.0) as i64
    }
}

/// A number in [-1, 1] for retry jitter.
fn jitter() -> f64 {
    let mut b = [0u8; 4];
    if random_fill(&mut b).is_err() {
        return 0.0;
    }
    (u32::from_le_bytes(b) as f64 / u32::MAX as f64) * 2.0 - 1.0
}

/// How a recipient is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Another server, over SMTP.
    Remote,
    /// A mailbox on this server (`address` is the alias).
    Local,
    /// A local alias' webhook (`address` is the URL, `via` the alias).
    Webhook,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Remote => "remote",
            Kind::Local => "local",
            Kind::Webhook => "webhook",
        }
    }
    fn parse(s: &str) -> Kind {
        match s {
            "local" => Kind::Local,
            "webhook" => Kind::Webhook,
            _ => Kind::Remote,
        }
    }
}

/// One destination of a new message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRecipient {
    pub kind: Kind,
    pub address: String,
    pub via: Option<String>,
}

/// A message accepted for delivery.
pub struct NewMessage {
    /// The authenticated alias that sent it (bounces go to its mailbox).
    pub alias: String,
    /// The envelope sender.
    pub sender: String,
    pub recipients: Vec<NewRecipient>,
    pub body: Vec<u8>,
}

/// A recipient whose next attempt is due.
#[derive(Clone, Debug)]
pub struct Due {
    pub rcpt_id: i64,
    pub message_id: i64,
    pub kind: Kind,
    pub address: String,
    pub via: Option<String>,
    /// Lower-cased domain of a remote recipient ("" otherwise).
    pub domain: String,
    pub sender: String,
    pub attempts: u32,
    /// When the message was queued (Unix seconds): the log's delay.
    pub queued_at: i64,
    /// The message's queue id (submission's `250 … queued as QID`).
    pub qid: String,
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered; `detail` says how (next hop, TLS).
    Delivered {
        detail: String,
    },
    Temporary {
        reason: String,
        category: Category,
    },
    Permanent {
        reason: String,
        category: Category,
    },
}

/// A recipient that failed for good and whose sender has not been told.
#[derive(Clone, Debug)]
pub struct Bounce {
    pub rcpt_id: i64,
    pub address: String,
    pub reason: String,
    pub category: Category,
    pub expired: bool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id         INTEGER PRIMARY KEY,
    qid        TEXT NOT NULL UNIQUE,
    alias      TEXT NOT NULL,
    sender     TEXT NOT NULL,
    sender_domain TEXT NOT NULL,
    size       INTEGER NOT NULL,
    created    INTEGER NOT NULL,
    body       BLOB,
    -- Set once no recipient is queued and every bounce is out.
    finished   INTEGER,
    keep_until INTEGER
);
CREATE INDEX IF NOT EXISTS messages_alias ON messages (alias, created);
CREATE INDEX IF NOT EXISTS messages_domain ON messages (sender_domain, created);
CREATE INDEX IF NOT EXISTS messages_finished ON messages (finished);
CREATE TABLE IF NOT EXISTS recipients (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    address    TEXT NOT NULL,
    via        TEXT,
    domain     TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'queued',
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER,
    last_result TEXT,
    category   TEXT,
    bounced    INTEGER NOT NULL DEFAULT 0,
    updated    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS recipients_due ON recipients (state, next_at);
CREATE INDEX IF NOT EXISTS recipients_message ON recipients (message_id);
PRAGMA user_version = 1;
";

/// The queue database. Every method is blocking (run it off the executor).
pub struct Queue {
    conn: Mutex<Connection>,
    sync: GroupSync,
    pub clock: Arc<dyn Clock>,
    pub policy: Policy,
}

impl Queue {
    /// Opens (creating) `<data>/queue.sqlite`.
    pub fn open(
        data_dir: &Path,
        server_key: &[u8; 32],
        clock: Arc<dyn Clock>,
        policy: Policy,
    ) -> Result<Queue, QueueError> {
        let key = crate::relay::derive_secret(server_key, "queue");
        let path = data_dir.join(FILE_NAME);
        let conn = db::open(&path, DbKey::Raw(&key))?;
        conn.execute_batch(SCHEMA)?;
        // The log exists from here on (the schema statement wrote to it);
        // make its directory entry durable once.
        std::fs::File::open(data_dir)?.sync_all()?;
        Ok(Queue {
            conn: Mutex::new(conn),
            sync: GroupSync::new(&path),
            clock,
            policy,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A poisoned lock only means another thread panicked; SQLite keeps
        // the database whole.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits a message durably; returns its queue id.
    pub fn enqueue(&self, m: &NewMessage) -> Result<String, QueueError> {
        let now = self.clock.now();
        let qid = crate::util::random_id()?;
        let qid = qid.get(..16).unwrap_or(&qid).to_uppercase();
        let domain = domain_of(&m.sender);
        let seq = {
            let mut conn = self.conn();
            insert_message(&mut conn, &qid, &domain, now, m)?;
            self.sync.written()
        };
        // The 250 promises the message survives a power cut: the log is
        // synced past this commit (and so past every earlier one, outcomes
        // included; losing an outcome would only mean one more attempt).
        self.sync.wait(seq)?;
        Ok(qid)
    }

    /// Messages an alias and a domain sent since `since` (for daily limits).
    pub fn sent_since(
        &self,
        alias: &str,
        domain: &str,
        since: i64,
    ) -> Result<(u64, u64), QueueError> {
        let conn = self.conn();
        let a: i64 = conn
            .prepare_cached("SELECT count(*) FROM messages WHERE alias = ?1 AND created >= ?2")?
            .query_row(params![alias, since], |r| r.get(0))?;
        let d: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM messages WHERE sender_domain = ?1 AND created >= ?2",
            )?
            .query_row(params![domain, since], |r| r.get(0))?;
        Ok((a as u64, d as u64))
    }

    /// Recipients due now, oldest first, at most `limit`.
    pub fn due(&self, limit: usize) -> Result<Vec<Due>, QueueError> {
        let now = self.clock.now();
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT r.id, r.message_id, r.kind, r.address, r.via, r.domain, m.sender, r.attempts,
                    m.created, m.qid
             FROM recipients r JOIN messages m ON m.id = r.message_id
             WHERE r.state = 'queued' AND r.next_at <= ?1
             ORDER BY r.next_at, r.id LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![now, limit as i64], |r| {
                Ok(Due {
                    rcpt_id: r.get(0)?,
                    message_id: r.get(1)?,
                    kind: Kind::parse(&r.get::<_, String>(2)?),
                    address: r.get(3)?,
                    via: r.get(4)?,
                    domain: r.get(5)?,
                    sender: r.get(6)?,
                    attempts: r.get::<_, i64>(7)? as u32,
                    queued_at: r.get(8)?,
                    qid: r.get(9)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// When the next queued recipient is due, if any is.
    pub fn next_due(&self) -> Result<Option<i64>, QueueError> {
        let conn = self.conn();
        Ok(conn
            .prepare_cached("SELECT min(next_at) FROM recipients WHERE state = 'queued'")?
            .query_row([], |r| r.get(0))?)
    }

    /// The body of a message (`None` once redacted).
    pub fn body(&self, message_id: i64) -> Result<Option<Vec<u8>>, QueueError> {
        let conn = self.conn();
        Ok(conn
            .prepare_cached("SELECT body FROM messages WHERE id = ?1")?
            .query_row([message_id], |r| r.get(0))
            .optional()?
            .flatten())
    }

    /// Records an attempt's outcome for a recipient: delivered, failed, or
    /// deferred to its next attempt (failed as expired once the message
    /// outlived the policy's lifetime).
    pub fn record(&self, rcpt_id: i64, outcome: &Outcome) -> Result<(), QueueError> {
        self.record_all(&[(rcpt_id, outcome.clone())])
    }

    /// `record` for several recipients in one transaction.
    pub fn record_all(&self, outcomes: &[(i64, Outcome)]) -> Result<(), QueueError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (id, o) in outcomes {
            self.record_in(&tx, *id, o)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn record_in(
        &self,
        conn: &Connection,
        rcpt_id: i64,
        outcome: &Outcome,
    ) -> Result<(), QueueError> {
        let now = self.clock.now();
        let (attempts, created): (i64, i64) = conn
            .prepare_cached(
                "SELECT r.attempts, m.created FROM recipients r JOIN messages m ON m.id = r.message_id WHERE r.id = ?1",
            )?
            .query_row([rcpt_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let attempts = attempts + 1;
        let deadline = created + self.policy.lifetime.as_secs() as i64;
        let mut update = conn.prepare_cached(
            "UPDATE recipients SET state = ?2, attempts = ?3, next_at = ?4, last_result = ?5, category = ?6, updated = ?7 WHERE id = ?1 AND state = 'queued'",
        )?;
        match outcome {
            Outcome::Delivered { detail } => {
                update.execute(params![
                    rcpt_id,
                    "delivered",
                    attempts,
                    None::<i64>,
                    detail,
                    None::<String>,
                    now
                ])?;
            }
            Outcome::Permanent { reason, category } => {
                update.execute(params![
                    rcpt_id,
                    "failed",
                    attempts,
                    None::<i64>,
                    reason,
                    category.as_str(),
                    now
                ])?;
            }
            Outcome::Temporary { reason, category } if now >= deadline => {
                update.execute(params![
                    rcpt_id,
                    "expired",
                    attempts,
                    None::<i64>,
                    reason,
                    category.as_str(),
                    now
                ])?;
            }
            Outcome::Temporary { reason, category } => {
                let next = (now + self.policy.retry_delay(attempts as u32, jitter())).min(deadline);
                update.execute(params![
                    rcpt_id,
                    "queued",
                    attempts,
                    next,
                    reason,
                    category.as_str(),
                    now
                ])?;
            }
        }
        Ok(())
    }

    /// Failed recipients of a message whose sender was not yet told.
    pub fn bounces(&self, message_id: i64) -> Result<Vec<Bounce>, QueueError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, address, state, last_result, category FROM recipients
             WHERE message_id = ?1 AND state IN ('failed', 'expired') AND bounced = 0 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([message_id], |r| {
                Ok(Bounce {
                    rcpt_id: r.get(0)?,
                    address: r.get(1)?,
                    expired: r.get::<_, String>(2)? == "expired",
                    reason: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    category: r
                        .get::<_, Option<String>>(4)?
                        .as_deref()
                        .and_then(Category::parse)
                        .unwrap_or(Category::Other),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Messages with failed recipients whose bounce is still to be sent.
    pub fn unbounced(&self) -> Result<Vec<i64>, QueueError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT message_id FROM recipients WHERE state IN ('failed', 'expired') AND bounced = 0 LIMIT 1000",
        )?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The sender of these bounces has been told (the DSN is delivered).
    pub fn mark_bounced(&self, rcpt_ids: &[i64]) -> Result<(), QueueError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for id in rcpt_ids {
            tx.execute("UPDATE recipients SET bounced = 1 WHERE id = ?1", [id])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Who sent a message: (authenticated alias, envelope sender, created).
    pub fn origin(&self, message_id: i64) -> Result<(String, String, i64), QueueError> {
        let conn = self.conn();
        Ok(conn
            .prepare_cached("SELECT alias, sender, created FROM messages WHERE id = ?1")?
            .query_row([message_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
    }

    /// Ends a message whose recipients are all final and bounced: its body
    /// is dropped now, or kept until the sender domain's keep time ends.
    pub fn finish_if_done(&self, message_id: i64) -> Result<bool, QueueError> {
        let conn = self.conn();
        self.finish_in(&conn, message_id)
    }

    /// After a round: ends every message of `ids` that is done, in one
    /// transaction, and returns those with a bounce still to send (they
    /// end once it is sent).
    pub fn settle(&self, ids: &[i64]) -> Result<Vec<i64>, QueueError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut to_bounce = Vec::new();
        for &id in ids {
            let pending: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM recipients WHERE message_id = ?1
                     AND state IN ('failed', 'expired') AND bounced = 0",
                )?
                .query_row([id], |r| r.get(0))?;
            if pending > 0 {
                to_bounce.push(id);
            } else {
                self.finish_in(&tx, id)?;
            }
        }
        tx.commit()?;
        Ok(to_bounce)
    }

    fn finish_in(&self, conn: &Connection, message_id: i64) -> Result<bool, QueueError> {
        let now = self.clock.now();
        let open: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM recipients WHERE message_id = ?1
                 AND (state = 'queued' OR (state IN ('failed', 'expired') AND bounced = 0))",
            )?
            .query_row([message_id], |r| r.get(0))?;
        if open > 0 {
            return Ok(false);
        }
        let domain: String = conn
            .prepare_cached("SELECT sender_domain FROM messages WHERE id = ?1")?
            .query_row([message_id], |r| r.get(0))?;
        let keep_days = self
            .policy
            .keep_body_days
            .get(&domain)
            .copied()
            .unwrap_or(0)
            .min(MAX_KEEP_DAYS);
        if keep_days == 0 {
            conn.prepare_cached(
                "UPDATE messages SET finished = ?2, body = NULL, keep_until = NULL WHERE id = ?1 AND finished IS NULL",
            )?
            .execute(params![message_id, now])?;
        } else {
            let until = now + i64::from(keep_days) * 86_400;
            conn.prepare_cached(
                "UPDATE messages SET finished = ?2, keep_until = ?3 WHERE id = ?1 AND finished IS NULL",
            )?
            .execute(params![message_id, now, until])?;
        }
        Ok(true)
    }

    /// Drops kept bodies whose time is up and records older than 30 days.
    pub fn purge(&self) -> Result<(), QueueError> {
        let now = self.clock.now();
        let conn = self.conn();
        conn.execute(
            "UPDATE messages SET body = NULL, keep_until = NULL WHERE keep_until IS NOT NULL AND keep_until <= ?1",
            [now],
        )?;
        conn.execute(
            "DELETE FROM messages WHERE finished IS NOT NULL AND finished <= ?1",
            [now - RECORD_DAYS * 86_400],
        )?;
        Ok(())
    }
}

fn insert_message(
    conn: &mut Connection,
    qid: &str,
    domain: &str,
    now: i64,
    m: &NewMessage,
) -> Result<(), QueueError> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO messages (qid, alias, sender, sender_domain, size, created, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![qid, m.alias, m.sender, domain, m.body.len() as i64, now, m.body],
    )?;
    let id = tx.last_insert_rowid();
    {
        let mut ins = tx.prepare_cached(
            "INSERT INTO recipients (message_id, kind, address, via, domain, next_at, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )?;
        for r in &m.recipients {
            let d = if r.kind == Kind::Remote {
                domain_of(&r.address)
            } else {
                String::new()
            };
            ins.execute(params![id, r.kind.as_str(), r.address, r.via, d, now])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The lower-cased domain of an address ("" without one).
pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map_or("", |(_, d)| d)
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_schedule_doubles_to_its_cap_with_bounded_jitter() {
        let p = Policy::default();
        assert_eq!(p.retry_delay(1, 0.0), 300);
        assert_eq!(p.retry_delay(2, 0.0), 600);
        assert_eq!(p.retry_delay(3, 0.0), 1200);
        assert_eq!(p.retry_delay(20, 0.0), 3 * 3600);
        assert_eq!(p.retry_delay(1, 1.0), 360);
        assert_eq!(p.retry_delay(1, -1.0), 240);
        for _ in 0..100 {
            let d = p.retry_delay(1, jitter());
            assert!((240..=360).contains(&d));
        }
    }
}
