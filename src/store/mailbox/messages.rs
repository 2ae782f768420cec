//! Message rows: APPEND, STORE, COPY, MOVE, EXPUNGE, SEARCH, the rows SORT
//! and THREAD order, and the change log QRESYNC reads.
//!
//! Imports `store::{mime, order, search, types}` and the sibling `bodies`.
//! Invariants: one transaction per call; one new modseq per call that
//! changes anything, stamped on every row it changed; expunged UIDs are
//! logged with that modseq.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, params};

use super::{Folder, Limits, Mailbox, bodies};
use crate::store::StoreError;
use crate::store::mime::{self, Parsed};
use crate::store::order::OrderRow;
use crate::store::search::{self, Criteria};
use crate::store::types::{
    AppendRequest, AppendUid, Changes, CopyResult, FlagOp, Flags, JUNK, MessageMeta, SearchResult,
    StoreFlags, StoreResult, UidSet,
};
use crate::util::{iso8601_utc, now_unix};

/// A message row as the change-tracking code needs it.
struct Row {
    id: i64,
    meta: MessageMeta,
    body_id: i64,
    thread_id: i64,
}

const META_COLUMNS: &str =
    "m.id, m.uid, m.modseq, m.flags, m.keywords, m.internal_date, m.size, m.body_id, m.thread_id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        meta: MessageMeta {
            uid: r.get(1)?,
            modseq: r.get::<_, i64>(2)? as u64,
            flags: Flags {
                system: r.get(3)?,
                keywords: split_keywords(&r.get::<_, String>(4)?),
            },
            internal_date: r.get(5)?,
            size: r.get::<_, i64>(6)? as u64,
        },
        body_id: r.get(7)?,
        thread_id: r.get(8)?,
    })
}

pub(super) fn split_keywords(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

fn join_keywords(k: &[String]) -> String {
    k.join(" ")
}

/// Keywords are IMAP atoms (RFC 3501 §9 `flag-keyword`).
fn check_keywords(flags: &Flags) -> Result<(), StoreError> {
    for k in &flags.keywords {
        let bad = k.is_empty()
            || k.len() > 200
            || k.starts_with('\\')
            || k.chars()
                .any(|c| c.is_control() || " (){%*\"\\]".contains(c) || !c.is_ascii());
        if bad {
            return Err(StoreError::BadMessage(format!(
                "{k:?} is not a valid keyword"
            )));
        }
    }
    Ok(())
}

/// Rows of a folder in a UID set, in UID order.
fn rows_in(tx: &Connection, folder: i64, uids: &UidSet) -> Result<Vec<Row>, StoreError> {
    let compiled = search::compile(&Criteria::Uid(uids.clone()))
        .map_err(|e| StoreError::BadMessage(e.to_string()))?;
    let sql = format!(
        "SELECT {META_COLUMNS} FROM messages m WHERE m.folder_id = ?{} AND {} ORDER BY m.uid",
        compiled.params.len() + 1,
        compiled.sql
    );
    let mut params = compiled.params;
    params.push(rusqlite::types::Value::Integer(folder));
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Takes the next modseq of a folder.
fn bump_modseq(tx: &Connection, f: &mut Folder) -> Result<u64, StoreError> {
    f.highestmodseq += 1;
    tx.prepare_cached("UPDATE folders SET highestmodseq = ?1 WHERE id = ?2")?
        .execute(params![f.highestmodseq as i64, f.id])?;
    Ok(f.highestmodseq)
}

/// Inserts a message row pointing at `body_id`; returns its UID.
fn insert_row(
    tx: &Connection,
    f: &mut Folder,
    meta: &MessageMeta,
    body_id: i64,
    thread_id: i64,
) -> Result<u32, StoreError> {
    if f.uidnext == u32::MAX {
        return Err(StoreError::Internal(format!(
            "folder {} has run out of UIDs",
            f.name
        )));
    }
    let uid = f.uidnext;
    f.uidnext += 1;
    let modseq = bump_modseq(tx, f)?;
    tx.prepare_cached("UPDATE folders SET uidnext = ?1 WHERE id = ?2")?
        .execute(params![f.uidnext, f.id])?;
    tx.prepare_cached(
        "INSERT INTO messages (folder_id, uid, modseq, flags, keywords, internal_date, size, body_id, thread_id, saved_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        f.id,
        uid,
        modseq as i64,
        meta.flags.system,
        join_keywords(&meta.flags.keywords),
        meta.internal_date,
        meta.size as i64,
        body_id,
        thread_id,
        iso8601_utc(now_unix())
    ])?;
    Ok(uid)
}

/// The thread a new message joins: that of a message it replies to or
/// references, else a new one named by its own object id.
fn thread_for(tx: &Connection, parsed: &Parsed, object_id: i64) -> Result<i64, StoreError> {
    let f = &parsed.fields;
    let mut candidates: Vec<&String> = f.in_reply_to.iter().collect();
    candidates.extend(f.references.iter().rev());
    let mut stmt = tx.prepare_cached(
        "SELECT m.thread_id FROM bodies b JOIN messages m ON m.body_id = b.id WHERE b.message_id = ?1 LIMIT 1",
    )?;
    for id in candidates.into_iter().take(20) {
        if let Some(t) = stmt.query_map([id], |r| r.get::<_, i64>(0))?.next() {
            return Ok(t?);
        }
    }
    Ok(object_id)
}

/// Bytes used and messages held, across all folders.
pub(crate) fn usage(conn: &Connection) -> Result<(u64, u64), StoreError> {
    let (bytes, n): (i64, i64) = conn.query_row(
        "SELECT ifnull(sum(size), 0), count(*) FROM messages",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((bytes as u64, n as u64))
}

fn check_quota(conn: &Connection, quota: Option<u64>, adding: u64) -> Result<(), StoreError> {
    if let Some(limit) = quota {
        let (used, _) = usage(conn)?;
        if used.saturating_add(adding) > limit {
            return Err(StoreError::OverQuota);
        }
    }
    Ok(())
}

/// Removes every message of a folder (DELETE); returns their UIDs.
pub(super) fn remove_all(tx: &Transaction<'_>, folder: i64) -> Result<Vec<u32>, StoreError> {
    let rows = rows_in(tx, folder, &UidSet::all())?;
    for r in &rows {
        tx.execute("DELETE FROM messages WHERE id = ?1", [r.id])?;
        bodies::release(tx, r.body_id)?;
    }
    Ok(rows.iter().map(|r| r.meta.uid).collect())
}

/// Parses a message to be stored, refusing what `limits` refuse.
pub fn parse_within(limits: &Limits, raw: &[u8]) -> Result<Parsed, StoreError> {
    if !limits.fits(raw) {
        return Err(StoreError::TooBig(limits.max_message_bytes));
    }
    mime::parse(raw, limits.mime).map_err(|e| StoreError::BadMessage(e.to_string()))
}

/// What an append adds: the folder name and the new UID.
pub type Appended = Vec<(String, AppendUid)>;

impl Mailbox {
    /// Parses `raw` within this mailbox's limits.
    pub fn parse(&self, raw: &[u8]) -> Result<Parsed, StoreError> {
        parse_within(&self.limits, raw)
    }

    /// Appends messages already parsed (`parse`), in one transaction.
    pub fn append_parsed(
        &mut self,
        requests: &[AppendRequest],
        parsed: &[Parsed],
        quota: Option<u64>,
    ) -> Result<Appended, StoreError> {
        for r in requests {
            check_keywords(&r.flags)?;
        }
        let (appended, _) = self.append_in(requests, parsed, quota, &[], false)?;
        self.unindexed_added(appended.len());
        Ok(appended)
    }

    /// Appends messages in one transaction.
    pub fn append(
        &mut self,
        requests: &[AppendRequest],
        quota: Option<u64>,
    ) -> Result<Appended, StoreError> {
        let parsed = self.parse_all(requests)?;
        let (appended, _) = self.append_in(requests, &parsed, quota, &[], false)?;
        self.unindexed_added(appended.len());
        Ok(appended)
    }

    /// `append` by a session that has the target folder selected: in the
    /// same transaction it claims the new messages as `\Recent` (RFC 3501
    /// §2.3.2) when nothing older is unclaimed. Returns whether it did.
    pub fn append_recent(
        &mut self,
        requests: &[AppendRequest],
        quota: Option<u64>,
    ) -> Result<(Appended, bool), StoreError> {
        let parsed = self.parse_all(requests)?;
        let (appended, claimed) = self.append_in(requests, &parsed, quota, &[], true)?;
        self.unindexed_added(appended.len());
        Ok((appended, claimed))
    }

    /// Imports sealed spool messages, already parsed, in one transaction
    /// that records the spool files they came from (`markers`) and commits
    /// with `synchronous=FULL`: the commit after which those files may go
    /// (DESIGN.md). Their bodies wait for the full-text index: the import
    /// indexes them (`index_pending`) once everything is in.
    pub fn import(
        &mut self,
        requests: &[AppendRequest],
        parsed: &[Parsed],
        markers: &[&str],
    ) -> Result<Appended, StoreError> {
        self.conn.execute_batch("PRAGMA synchronous = FULL;")?;
        let result = self.append_in(requests, parsed, None, markers, false);
        self.conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        let (appended, _) = result?;
        self.unindexed += appended.len();
        Ok(appended)
    }

    fn parse_all(&self, requests: &[AppendRequest]) -> Result<Vec<Parsed>, StoreError> {
        requests
            .iter()
            .map(|r| {
                check_keywords(&r.flags)?;
                self.parse(&r.message)
            })
            .collect()
    }

    fn append_in(
        &mut self,
        requests: &[AppendRequest],
        parsed: &[Parsed],
        quota: Option<u64>,
        markers: &[&str],
        claim: bool,
    ) -> Result<(Appended, bool), StoreError> {
        let adding: u64 = requests.iter().map(|r| r.message.len() as u64).sum();
        let tx = self.conn.transaction()?;
        check_quota(&tx, quota, adding)?;
        let mut folders: HashMap<String, Folder> = HashMap::new();
        let mut out = Vec::with_capacity(requests.len());
        let now = now_unix();
        for (r, p) in requests.iter().zip(parsed) {
            let name = Mailbox::target(&tx, &super::normalize(&r.folder), r.if_missing)?;
            if !folders.contains_key(&name) {
                let folder = if name == JUNK {
                    Mailbox::junk_folder(&tx)?
                } else {
                    Mailbox::folder(&tx, &name)?
                };
                folders.insert(name.clone(), folder);
            }
            let Some(f) = folders.get_mut(&name) else {
                return Err(StoreError::NoSuchFolder(name));
            };
            // The folder and UID it is about to get: unique for ever.
            let object_id = (i64::from(f.uidvalidity) << 32) | i64::from(f.uidnext);
            let body_id = bodies::insert(&tx, &r.message, p, object_id)?;
            let thread = thread_for(&tx, p, object_id)?;
            let meta = MessageMeta {
                uid: 0,
                modseq: 0,
                flags: r.flags.clone(),
                internal_date: iso8601_utc(r.internal_date.unwrap_or(now)),
                size: r.message.len() as u64,
            };
            let uid = insert_row(&tx, f, &meta, body_id, thread)?;
            out.push((
                f.name.clone(),
                AppendUid {
                    uidvalidity: f.uidvalidity,
                    uid,
                },
            ));
        }
        for name in markers {
            tx.prepare_cached("INSERT INTO spool_imported (name) VALUES (?1)")?
                .execute([name])?;
        }
        let mut claimed = claim && folders.len() == 1;
        if claimed {
            for f in folders.values() {
                let first = out
                    .iter()
                    .find(|(n, _)| *n == f.name)
                    .map_or(0, |(_, a)| a.uid);
                claimed &= tx
                    .prepare_cached(
                        "UPDATE folders SET recent_uid = ?1 WHERE id = ?2 AND recent_uid = ?3",
                    )?
                    .execute(params![f.uidnext - 1, f.id, first.saturating_sub(1)])?
                    == 1;
            }
        }
        tx.commit()?;
        Ok((out, claimed))
    }

    /// STORE / UID STORE, with UNCHANGEDSINCE (RFC 7162 §3.1.3).
    pub fn store_flags(&mut self, req: &StoreFlags) -> Result<StoreResult, StoreError> {
        check_keywords(&req.flags)?;
        let tx = self.conn.transaction()?;
        let mut f = Mailbox::folder(&tx, &req.folder)?;
        let mut result = StoreResult::default();
        let mut changes: Vec<(i64, Flags, MessageMeta)> = Vec::new();
        for r in rows_in(&tx, f.id, &req.uids)? {
            if req.unchanged_since.is_some_and(|n| r.meta.modseq > n) {
                result.modified.push(r.meta.uid);
                continue;
            }
            let new = apply(&r.meta.flags, req.op, &req.flags);
            if new != r.meta.flags {
                changes.push((r.id, new, r.meta));
            }
        }
        if !changes.is_empty() {
            let modseq = bump_modseq(&tx, &mut f)?;
            let mut stmt = tx.prepare_cached(
                "UPDATE messages SET flags = ?1, keywords = ?2, modseq = ?3 WHERE id = ?4",
            )?;
            for (id, flags, mut meta) in changes {
                stmt.execute(params![
                    flags.system,
                    join_keywords(&flags.keywords),
                    modseq as i64,
                    id
                ])?;
                meta.flags = flags;
                meta.modseq = modseq;
                result.updated.push(meta);
            }
        }
        tx.commit()?;
        Ok(result)
    }

    /// COPY, or MOVE (RFC 6851) when `remove` is set.
    pub fn copy(
        &mut self,
        from: &str,
        uids: &UidSet,
        to: &str,
        remove: bool,
        quota: Option<u64>,
    ) -> Result<CopyResult, StoreError> {
        let tx = self.conn.transaction()?;
        let mut src = Mailbox::folder(&tx, from)?;
        let mut dst = Mailbox::folder(&tx, to)?;
        let rows = rows_in(&tx, src.id, uids)?;
        if !remove {
            check_quota(&tx, quota, rows.iter().map(|r| r.meta.size).sum())?;
        }
        let mut result = CopyResult {
            uidvalidity: dst.uidvalidity,
            ..CopyResult::default()
        };
        for r in &rows {
            bodies::retain(&tx, r.body_id)?;
            let uid = insert_row(&tx, &mut dst, &r.meta, r.body_id, r.thread_id)?;
            result.source.push(r.meta.uid);
            result.dest.push(uid);
        }
        if remove && !rows.is_empty() {
            let modseq = bump_modseq(&tx, &mut src)?;
            delete_rows(&tx, src.id, &rows, modseq)?;
        }
        tx.commit()?;
        Ok(result)
    }

    /// EXPUNGE / UID EXPUNGE (RFC 4315 §2.1): removes `\Deleted` messages.
    pub fn expunge(&mut self, folder: &str, uids: Option<&UidSet>) -> Result<Vec<u32>, StoreError> {
        let tx = self.conn.transaction()?;
        let mut f = Mailbox::folder(&tx, folder)?;
        let all = UidSet::all();
        let rows: Vec<Row> = rows_in(&tx, f.id, uids.unwrap_or(&all))?
            .into_iter()
            .filter(|r| r.meta.flags.has(Flags::DELETED))
            .collect();
        if !rows.is_empty() {
            let modseq = bump_modseq(&tx, &mut f)?;
            delete_rows(&tx, f.id, &rows, modseq)?;
        }
        tx.commit()?;
        Ok(rows.iter().map(|r| r.meta.uid).collect())
    }

    /// SEARCH, evaluated in SQL (see `store::search`).
    pub fn search(
        &mut self,
        folder: &str,
        criteria: &Criteria,
    ) -> Result<SearchResult, StoreError> {
        let mut result = SearchResult::default();
        self.matching(folder, criteria, "m.modseq", |r| {
            result.uids.push(r.get(0)?);
            let m = r.get::<_, i64>(1)? as u64;
            result.highest_modseq = Some(result.highest_modseq.map_or(m, |h: u64| h.max(m)));
            Ok(())
        })?;
        Ok(result)
    }

    /// What SORT and THREAD read of the messages `criteria` matches, in UID
    /// order.
    pub fn order_rows(
        &mut self,
        folder: &str,
        criteria: &Criteria,
    ) -> Result<Vec<OrderRow>, StoreError> {
        // Sent date in UTC, else the arrival time (RFC 5256 §2.2).
        const COLUMNS: &str = "unixepoch(m.internal_date), \
            coalesce(b.sent_ts, unixepoch(m.internal_date)), m.size, b.subject, b.base_subject, \
            b.sort_from, b.sort_to, b.sort_cc, b.message_id, b.in_reply_to, b.refs, \
            ifnull(b.display_from, b.sort_from), ifnull(b.display_to, b.sort_to)";
        let mut rows = Vec::new();
        self.matching(folder, criteria, COLUMNS, |r| {
            rows.push(OrderRow {
                uid: r.get(0)?,
                arrival: r.get::<_, Option<i64>>(1)?.unwrap_or(0),
                date: r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                size: r.get::<_, i64>(3)? as u64,
                subject: r.get(4)?,
                base_subject: r.get(5)?,
                from: r.get(6)?,
                to: r.get(7)?,
                cc: r.get(8)?,
                message_id: r.get(9)?,
                in_reply_to: r.get(10)?,
                references: r.get(11)?,
                display_from: r.get(12)?,
                display_to: r.get(13)?,
            });
            Ok(())
        })?;
        Ok(rows)
    }

    /// Runs one query for the messages `criteria` matches, in UID order,
    /// handing each row (`m.uid`, then `columns`) to `each`. A column of
    /// `b.` joins the message's body row.
    fn matching(
        &mut self,
        folder: &str,
        criteria: &Criteria,
        columns: &str,
        mut each: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        let f = Mailbox::folder(&self.conn, folder)?;
        let compiled =
            search::compile(criteria).map_err(|e| StoreError::BadMessage(e.to_string()))?;
        let join = if compiled.sql.contains("b.") || columns.contains("b.") {
            "JOIN bodies b ON b.id = m.body_id"
        } else {
            ""
        };
        // With a required full-text key, `+` keeps SQLite from scanning the
        // folder through its (folder_id, uid) index: it starts from the
        // trigram index's candidates and probes messages_body instead.
        let folder_col = if compiled.text_driven {
            "+m.folder_id"
        } else {
            "m.folder_id"
        };
        let sql = format!(
            "SELECT m.uid, {columns} FROM messages m {join} WHERE {folder_col} = ?{} AND {} ORDER BY m.uid",
            compiled.params.len() + 1,
            compiled.sql
        );
        let mut params = compiled.params;
        params.push(rusqlite::types::Value::Integer(f.id));
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(r) = rows.next()? {
            each(r)?;
        }
        Ok(())
    }

    /// Changed flags and vanished UIDs since `modseq` (RFC 7162 §3.2.5).
    pub fn changes_since(&mut self, folder: &str, modseq: u64) -> Result<Changes, StoreError> {
        let tx = self.conn.transaction()?;
        let f = Mailbox::folder(&tx, folder)?;
        let changed = tx
            .prepare_cached(&format!(
                "SELECT {META_COLUMNS} FROM messages m WHERE m.folder_id = ?1 AND m.modseq > ?2 ORDER BY m.uid"
            ))?
            .query_map(params![f.id, modseq as i64], row)?
            .map(|r| r.map(|r| r.meta))
            .collect::<Result<_, _>>()?;
        let vanished = tx
            .prepare_cached(
                "SELECT uid FROM expunged WHERE folder_id = ?1 AND modseq > ?2 ORDER BY uid",
            )?
            .query_map(params![f.id, modseq as i64], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        tx.commit()?;
        Ok(Changes {
            highestmodseq: f.highestmodseq,
            changed,
            vanished,
        })
    }

    /// Bytes and messages stored (QUOTA `STORAGE` and `MESSAGE`).
    pub fn usage(&mut self) -> Result<(u64, u64), StoreError> {
        usage(&self.conn)
    }
}

fn delete_rows(tx: &Connection, folder: i64, rows: &[Row], modseq: u64) -> Result<(), StoreError> {
    let mut del = tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?;
    let mut log = tx.prepare_cached(
        "INSERT OR REPLACE INTO expunged (folder_id, uid, modseq) VALUES (?1, ?2, ?3)",
    )?;
    for r in rows {
        del.execute([r.id])?;
        log.execute(params![folder, r.meta.uid, modseq as i64])?;
        bodies::release(tx, r.body_id)?;
    }
    Ok(())
}

fn apply(old: &Flags, op: FlagOp, with: &Flags) -> Flags {
    match op {
        FlagOp::Replace => {
            let mut keywords: Vec<String> = Vec::new();
            for k in &with.keywords {
                if !keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    keywords.push(k.clone());
                }
            }
            Flags {
                system: with.system,
                keywords,
            }
        }
        FlagOp::Add => {
            let mut keywords = old.keywords.clone();
            for k in &with.keywords {
                if !keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    keywords.push(k.clone());
                }
            }
            Flags {
                system: old.system | with.system,
                keywords,
            }
        }
        FlagOp::Remove => Flags {
            system: old.system & !with.system,
            keywords: old
                .keywords
                .iter()
                .filter(|k| !with.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)))
                .cloned()
                .collect(),
        },
    }
}
