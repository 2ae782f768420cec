//! Stored message bodies: the header block, the rest with attachment bodies
//! cut out, and the attachments kept once per SHA-256 with a reference
//! count. Everything but the header is zstd-compressed: less to encrypt,
//! less to write.
//!
//! Imports `store::mime`. Invariants: a body row's refcount equals the number
//! of message rows that point at it, and an attachment's refcount equals the
//! number of body segments that name it; both rows go when their count
//! reaches zero. Reassembly gives back the exact bytes appended. New bodies
//! wait in `fts_pending` for the full-text index, which takes them here
//! (`Mailbox::index_pending`), at most `Limits::unindexed_max` waiting
//! unless a spool import added them.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::store::StoreError;
use crate::store::mime::Parsed;

/// A cut-out: offset into the body (after the header), length, SHA-256.
type Segment = (u64, u64, String);

/// Stores a parsed message's bytes under `object_id` (see the schema's
/// version 2); returns the new body id.
pub(super) fn insert(
    conn: &Connection,
    raw: &[u8],
    parsed: &Parsed,
    object_id: i64,
) -> Result<i64, StoreError> {
    let split = parsed.root.body_start as usize;
    let (header, body) = raw.split_at(split.min(raw.len()));
    let mut rest = Vec::with_capacity(body.len());
    let mut segments: Vec<Segment> = Vec::new();
    let mut at = split;
    for &(s, e) in &parsed.attachments {
        if s < at || e > raw.len() {
            continue;
        }
        rest.extend_from_slice(&raw[at..s]);
        let data = &raw[s..e];
        let sha = Sha256::digest(data);
        let bumped = conn
            .prepare_cached("UPDATE attachments SET refcount = refcount + 1 WHERE sha256 = ?1")?
            .execute([sha.as_slice()])?;
        if bumped == 0 {
            conn.prepare_cached(
                "INSERT INTO attachments (sha256, refcount, data) VALUES (?1, 1, ?2)",
            )?
            .execute(params![sha.as_slice(), compress(data)?])?;
        }
        segments.push(((s - split) as u64, data.len() as u64, hex::encode(sha)));
        at = e;
    }
    rest.extend_from_slice(&raw[at.min(raw.len())..]);
    // Each uncompressed copy goes as soon as it is compressed: a large
    // message is held about three times here, not five.
    let rest = {
        let packed = compress(&rest)?;
        drop(rest);
        packed
    };
    let text = {
        let mut text = Vec::with_capacity(parsed.header_text.len() + parsed.body_text.len() + 1);
        text.extend_from_slice(parsed.header_text.as_bytes());
        text.push(0);
        text.extend_from_slice(parsed.body_text.as_bytes());
        compress(&text)?
    };
    let f = &parsed.fields;
    conn.prepare_cached(
        "INSERT INTO bodies (refcount, size, header, rest, text, segments, structure, envelope, subject,
            from_text, to_text, cc_text, bcc_text, sent_date, sent_ts, message_id, in_reply_to, refs,
            base_subject, sort_from, sort_to, sort_cc, object_id, display_from, display_to)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
    )?
    .execute(params![
        raw.len() as i64,
        header,
        rest,
        text,
        json(&segments)?,
        json(&parsed.root)?,
        json(&parsed.envelope)?,
        f.subject,
        f.from,
        f.to,
        f.cc,
        f.bcc,
        f.sent_date,
        f.sent_ts,
        f.message_id,
        f.in_reply_to,
        f.references.join(" "),
        f.base_subject,
        f.sort_from,
        f.sort_to,
        f.sort_cc,
        object_id,
        f.display_from,
        f.display_to,
    ])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO fts_pending (body_id) VALUES (?1)")?
        .execute([id])?;
    Ok(id)
}

/// Adds up to `most` of the bodies waiting in `fts_pending` (the oldest) to
/// the full-text index, in the caller's transaction; returns how many. One
/// transaction for many bodies flushes and merges the index once, where one
/// per message made that most of a small message's cost.
pub(super) fn index_pending(conn: &Connection, most: usize) -> Result<usize, StoreError> {
    let most = i64::try_from(most).unwrap_or(i64::MAX);
    let pending: Vec<(i64, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT p.body_id, b.text FROM fts_pending p JOIN bodies b ON b.id = p.body_id
             ORDER BY p.body_id LIMIT ?1",
        )?
        .query_map([most], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut insert =
        conn.prepare_cached("INSERT INTO fts (rowid, headers, body) VALUES (?1, ?2, ?3)")?;
    for (id, blob) in &pending {
        let text = decompress(blob)?;
        let split = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        let (headers, body) = text.split_at(split);
        let body = body.get(1..).unwrap_or_default();
        insert.execute(params![
            id,
            String::from_utf8_lossy(headers),
            String::from_utf8_lossy(body)
        ])?;
    }
    if let Some((last, _)) = pending.last() {
        // The oldest are exactly those up to the last one taken.
        conn.prepare_cached("DELETE FROM fts_pending WHERE body_id <= ?1")?
            .execute([last])?;
    }
    Ok(pending.len())
}

/// The first 200 characters of a body's text parts with whitespace runs
/// made single spaces: IMAP PREVIEW (RFC 8970 §3).
pub fn load_preview(conn: &Connection, body_id: i64) -> Result<String, StoreError> {
    let text: Vec<u8> = conn
        .prepare_cached("SELECT text FROM bodies WHERE id = ?1")?
        .query_row([body_id], |r| r.get(0))?;
    let text = decompress(&text)?;
    let body = text
        .iter()
        .position(|&b| b == 0)
        .and_then(|at| text.get(at + 1..))
        .unwrap_or_default();
    let body = String::from_utf8_lossy(body);
    let mut out = String::new();
    for (i, word) in body.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() >= 200 {
            break;
        }
    }
    Ok(out.chars().take(200).collect())
}

fn compress(data: &[u8]) -> Result<Vec<u8>, StoreError> {
    zstd::bulk::compress(data, 1)
        .map_err(|e| StoreError::Internal(format!("compression failed: {e}")))
}

/// Inflates a stored blob.
pub fn decompress(data: &[u8]) -> Result<Vec<u8>, StoreError> {
    zstd::stream::decode_all(data)
        .map_err(|e| StoreError::Internal(format!("damaged stored data: {e}")))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(e.to_string()))
}

/// One more message points at the body (COPY).
pub(super) fn retain(conn: &Connection, body_id: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE bodies SET refcount = refcount + 1 WHERE id = ?1")?
        .execute([body_id])?;
    Ok(())
}

/// One message less points at the body; frees it and its attachments when
/// none is left.
pub(super) fn release(conn: &Connection, body_id: i64) -> Result<(), StoreError> {
    let left: i64 = conn
        .prepare_cached(
            "UPDATE bodies SET refcount = refcount - 1 WHERE id = ?1 RETURNING refcount",
        )?
        .query_row([body_id], |r| r.get(0))?;
    if left > 0 {
        return Ok(());
    }
    let segments: String = conn.query_row(
        "SELECT segments FROM bodies WHERE id = ?1",
        [body_id],
        |r| r.get(0),
    )?;
    for (_, _, sha) in parse_segments(&segments)? {
        let sha = hex::decode(&sha).map_err(|e| StoreError::Internal(e.to_string()))?;
        let left: i64 = conn
            .prepare_cached("UPDATE attachments SET refcount = refcount - 1 WHERE sha256 = ?1 RETURNING refcount")?
            .query_row([&sha], |r| r.get(0))?;
        if left <= 0 {
            conn.prepare_cached("DELETE FROM attachments WHERE sha256 = ?1")?
                .execute([&sha])?;
        }
    }
    let unindexed = conn
        .prepare_cached("DELETE FROM fts_pending WHERE body_id = ?1")?
        .execute([body_id])?;
    if unindexed == 0 {
        conn.prepare_cached("DELETE FROM fts WHERE rowid = ?1")?
            .execute([body_id])?;
    }
    conn.prepare_cached("DELETE FROM bodies WHERE id = ?1")?
        .execute([body_id])?;
    Ok(())
}

fn parse_segments(s: &str) -> Result<Vec<Segment>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Internal(format!("damaged body segments: {e}")))
}

/// The exact bytes of a stored message.
pub fn load_message(conn: &Connection, body_id: i64) -> Result<Vec<u8>, StoreError> {
    let row: Option<(i64, Vec<u8>, Vec<u8>, String)> = conn
        .prepare_cached("SELECT size, header, rest, segments FROM bodies WHERE id = ?1")?
        .query_row([body_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let (size, header, rest, segments) =
        row.ok_or_else(|| StoreError::Internal(format!("body {body_id} is missing")))?;
    let rest = decompress(&rest)?;
    let mut out = Vec::with_capacity(size.max(0) as usize);
    out.extend_from_slice(&header);
    let mut taken = 0usize;
    let mut written = 0u64;
    for (offset, len, sha) in parse_segments(&segments)? {
        let gap = (offset - written) as usize;
        let chunk = rest
            .get(taken..taken + gap)
            .ok_or_else(|| StoreError::Internal("damaged body segments".into()))?;
        out.extend_from_slice(chunk);
        taken += gap;
        let sha = hex::decode(&sha).map_err(|e| StoreError::Internal(e.to_string()))?;
        let data: Vec<u8> = conn
            .prepare_cached("SELECT data FROM attachments WHERE sha256 = ?1")?
            .query_row([&sha], |r| r.get(0))?;
        let data = decompress(&data)?;
        if data.len() as u64 != len {
            return Err(StoreError::Internal("attachment length mismatch".into()));
        }
        out.extend_from_slice(&data);
        written = offset + len;
    }
    out.extend_from_slice(rest.get(taken..).unwrap_or_default());
    Ok(out)
}

/// Only the top-level header block.
pub(super) fn load_header(conn: &Connection, body_id: i64) -> Result<Vec<u8>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT header FROM bodies WHERE id = ?1")?
        .query_row([body_id], |r| r.get(0))?)
}

impl super::Mailbox {
    /// Adds up to `most` of the bodies waiting for the full-text index
    /// (the oldest first) to it, in one transaction; returns how many.
    pub fn index_pending(&mut self, most: usize) -> Result<usize, StoreError> {
        if self.unindexed == 0 {
            return Ok(0);
        }
        let tx = self.conn.transaction()?;
        let n = index_pending(&tx, most)?;
        tx.commit()?;
        self.unindexed = if n < most {
            0
        } else {
            self.unindexed.saturating_sub(n).max(1)
        };
        Ok(n)
    }

    /// Bodies waiting for the full-text index, as far as this connection
    /// knows.
    pub fn unindexed(&self) -> usize {
        self.unindexed
    }

    /// Counts `n` new bodies waiting for the index. Past
    /// `Limits::unindexed_max`, indexes the oldest, at least `INDEX_BATCH`,
    /// so a flood that never pauses pays as it goes; below it the owner of
    /// the file indexes them off the writers' path (`index_pending`). A
    /// failure is logged and leaves them waiting (SEARCH reads their text
    /// meanwhile): what added them has committed.
    pub(super) fn unindexed_added(&mut self, n: usize) {
        self.unindexed += n;
        let over = self.unindexed.saturating_sub(self.limits.unindexed_max);
        if over > 0
            && let Err(e) = self.index_pending(over.max(super::INDEX_BATCH))
        {
            tracing::warn!(error = %e, "cannot add new mail to the search index yet");
        }
    }
}
