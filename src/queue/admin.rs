//! What the operator sees and does (`sealmail queue list|show|retry|delete`):
//! messages and their recipients' states, never a body.
//!
//! Imports the rest of `queue`. Invariants: nothing here reads or returns a
//! message body; `delete` sends no bounce.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Category, Kind, Queue, QueueError};
use crate::util::iso8601_utc;

/// A recipient's state, as `queue show` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientState {
    pub address: String,
    pub kind: Kind,
    /// `queued`, `delivered`, `failed` (bounced) or `expired` (bounced
    /// after the lifetime).
    pub state: String,
    pub attempts: u32,
    pub next_attempt: Option<i64>,
    pub last_result: Option<String>,
    pub category: Option<Category>,
    pub bounced: bool,
}

/// A message, as `queue list|show` print it (never its body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageState {
    pub id: String,
    pub alias: String,
    pub sender: String,
    pub size: u64,
    pub created: i64,
    pub body_kept: bool,
    pub recipients: Vec<RecipientState>,
}

impl Queue {
    /// Messages not finished and when the oldest of them was queued.
    pub fn waiting(&self) -> Result<(u64, Option<i64>), QueueError> {
        let conn = self.conn();
        let (n, oldest): (i64, Option<i64>) = conn.query_row(
            "SELECT count(*), min(created) FROM messages WHERE finished IS NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((n.max(0) as u64, oldest))
    }

    /// Messages in the queue, newest first (at most `limit`); with
    /// `all`, finished ones too.
    pub fn list(&self, all: bool, limit: usize) -> Result<Vec<MessageState>, QueueError> {
        let ids: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT qid FROM messages WHERE ?1 OR finished IS NULL ORDER BY created DESC, id DESC LIMIT ?2",
            )?;
            stmt.query_map(params![all, limit as i64], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        ids.iter().map(|q| self.show(q)).collect()
    }

    /// One message and its recipients.
    pub fn show(&self, qid: &str) -> Result<MessageState, QueueError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT id, qid, alias, sender, size, created, body IS NOT NULL FROM messages WHERE qid = ?1",
                [qid.to_uppercase()],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        MessageState {
                            id: r.get(1)?,
                            alias: r.get(2)?,
                            sender: r.get(3)?,
                            size: r.get::<_, i64>(4)? as u64,
                            created: r.get(5)?,
                            body_kept: r.get(6)?,
                            recipients: Vec::new(),
                        },
                    ))
                },
            )
            .optional()?;
        let (id, mut m) = row.ok_or_else(|| QueueError::NotFound(qid.to_string()))?;
        let mut stmt = conn.prepare(
            "SELECT address, kind, state, attempts, next_at, last_result, category, bounced FROM recipients WHERE message_id = ?1 ORDER BY id",
        )?;
        m.recipients = stmt
            .query_map([id], |r| {
                Ok(RecipientState {
                    address: r.get(0)?,
                    kind: Kind::parse(&r.get::<_, String>(1)?),
                    state: r.get(2)?,
                    attempts: r.get::<_, i64>(3)? as u32,
                    next_attempt: r.get(4)?,
                    last_result: r.get(5)?,
                    category: r
                        .get::<_, Option<String>>(6)?
                        .as_deref()
                        .and_then(Category::parse),
                    bounced: r.get(7)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(m)
    }

    /// Makes every queued recipient of a message due now.
    pub fn retry(&self, qid: &str) -> Result<usize, QueueError> {
        let now = self.clock.now();
        let conn = self.conn();
        let id = message_id(&conn, qid)?;
        Ok(conn.execute(
            "UPDATE recipients SET next_at = ?2 WHERE message_id = ?1 AND state = 'queued'",
            params![id, now],
        )?)
    }

    /// Removes a message and its records without a bounce (the operator
    /// decided); an attempt already under way may still complete.
    pub fn delete(&self, qid: &str) -> Result<(), QueueError> {
        let conn = self.conn();
        let id = message_id(&conn, qid)?;
        conn.execute("DELETE FROM messages WHERE id = ?1", [id])?;
        Ok(())
    }
}

fn message_id(conn: &Connection, qid: &str) -> Result<i64, QueueError> {
    conn.query_row(
        "SELECT id FROM messages WHERE qid = ?1",
        [qid.to_uppercase()],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| QueueError::NotFound(qid.to_string()))
}

/// A time for people: ISO 8601 UTC.
pub fn show_time(t: i64) -> String {
    iso8601_utc(t)
}
