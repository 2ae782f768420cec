//! The mailbox schema inside each SQLCipher file, and its forward
//! migrations keyed by `PRAGMA user_version`.
//!
//! Imports only rusqlite. Invariants: migrations run in one transaction each
//! and only forward; a file whose version is newer than this build knows is
//! refused rather than guessed at.

use rusqlite::{Connection, params};

use crate::util::{iso8601_utc, now_unix};

/// The version this build writes.
pub const VERSION: i64 = 4;

/// Special-use folders created on first open (RFC 6154), INBOX first.
pub const SPECIAL: &[(&str, Option<&str>)] = &[
    ("INBOX", None),
    ("Sent", Some("\\Sent")),
    ("Drafts", Some("\\Drafts")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
    ("Archive", Some("\\Archive")),
];

const V1: &str = "
CREATE TABLE folders (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    uidvalidity    INTEGER NOT NULL,
    uidnext        INTEGER NOT NULL DEFAULT 1,
    highestmodseq  INTEGER NOT NULL DEFAULT 1,
    special_use    TEXT,
    subscribed     INTEGER NOT NULL DEFAULT 1
);
-- One row per distinct stored message; COPY shares a row (refcount).
CREATE TABLE bodies (
    id            INTEGER PRIMARY KEY,
    refcount      INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    header        BLOB NOT NULL,       -- the top-level header block
    rest          BLOB NOT NULL,       -- zstd: the body, attachment bodies cut out
    text          BLOB NOT NULL,       -- zstd: decoded headers, NUL, decoded text parts
    segments      TEXT NOT NULL,       -- JSON [[offset, len, sha256]] of cut-outs
    structure     TEXT NOT NULL,       -- JSON part tree (BODYSTRUCTURE)
    envelope      TEXT NOT NULL,       -- JSON ENVELOPE
    subject       TEXT NOT NULL,
    from_text     TEXT NOT NULL,
    to_text       TEXT NOT NULL,
    cc_text       TEXT NOT NULL,
    bcc_text      TEXT NOT NULL,
    sent_date     TEXT,                -- YYYY-MM-DD in the header's zone
    sent_ts       INTEGER,
    message_id    TEXT,
    in_reply_to   TEXT,
    refs          TEXT NOT NULL,
    base_subject  TEXT NOT NULL,
    sort_from     TEXT NOT NULL,
    sort_to       TEXT NOT NULL,
    sort_cc       TEXT NOT NULL
);
CREATE INDEX bodies_message_id ON bodies(message_id);
-- Attachment bodies stored once per SHA-256 of their encoded bytes.
CREATE TABLE attachments (
    sha256    BLOB PRIMARY KEY,
    refcount  INTEGER NOT NULL,
    data      BLOB NOT NULL            -- zstd
) WITHOUT ROWID;
CREATE TABLE messages (
    id             INTEGER PRIMARY KEY,
    folder_id      INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uid            INTEGER NOT NULL,
    modseq         INTEGER NOT NULL,
    flags          INTEGER NOT NULL DEFAULT 0,
    keywords       TEXT NOT NULL DEFAULT '',
    internal_date  TEXT NOT NULL,      -- ISO-8601 UTC
    size           INTEGER NOT NULL,
    body_id        INTEGER NOT NULL REFERENCES bodies(id),
    thread_id      INTEGER NOT NULL,
    UNIQUE (folder_id, uid)
);
CREATE INDEX messages_modseq ON messages(folder_id, modseq);
CREATE INDEX messages_body ON messages(body_id);
CREATE INDEX messages_date ON messages(folder_id, internal_date);
-- QRESYNC (RFC 7162 §3.2.5): UIDs expunged and the modseq that did it.
CREATE TABLE expunged (
    folder_id  INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uid        INTEGER NOT NULL,
    modseq     INTEGER NOT NULL,
    PRIMARY KEY (folder_id, uid)
) WITHOUT ROWID;
-- Sealed spool files already imported, so a crash between the import commit
-- and the unlink never imports twice.
CREATE TABLE spool_imported (
    name  TEXT PRIMARY KEY
) WITHOUT ROWID;
-- Monotonic counters that must survive the rows they describe
-- (the last UIDVALIDITY handed out).
CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
) WITHOUT ROWID;
-- rowid = bodies.id. Trigram gives substring matching for IMAP SEARCH;
-- contentless, because bodies.text keeps the text once, compressed.
CREATE VIRTUAL TABLE fts USING fts5(headers, body, tokenize = 'trigram', content = '', contentless_delete = 1);
";

/// Version 2: subscriptions are names, not a folder column, so they outlive
/// DELETE and can name folders that do not exist (RFC 3501 §6.3.9); each
/// folder keeps the highest UID a session has claimed as `\Recent` (RFC
/// 3501 §2.3.2), messages already stored counting as seen; each body has an
/// object id (IMAP EMAILID and, for a thread's first message, THREADID; RFC
/// 8474): the UIDVALIDITY and UID it was first stored under, as
/// `uidvalidity << 32 | uid`, which no other body can ever have, existing
/// bodies keeping their row id (below 2^32, so apart); each message row
/// records when it was saved (SAVEDATE, RFC 8514), unknown for rows already
/// stored; each body keeps SORT=DISPLAY's keys (RFC 5957), absent for
/// bodies already stored, which sort by mailbox instead; and `metadata`
/// keeps IMAP METADATA entries (RFC 5464).
const V2: &str = "
CREATE TABLE subscriptions (
    name  TEXT PRIMARY KEY
) WITHOUT ROWID;
INSERT INTO subscriptions (name) SELECT name FROM folders WHERE subscribed = 1;
ALTER TABLE folders DROP COLUMN subscribed;
ALTER TABLE folders ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;
UPDATE folders SET recent_uid = uidnext - 1;
ALTER TABLE bodies ADD COLUMN object_id INTEGER;
UPDATE bodies SET object_id = id;
ALTER TABLE messages ADD COLUMN saved_at TEXT;
ALTER TABLE bodies ADD COLUMN display_from TEXT;
ALTER TABLE bodies ADD COLUMN display_to TEXT;
-- IMAP METADATA (RFC 5464): entries per folder, '' for the server's.
CREATE TABLE metadata (
    folder  TEXT NOT NULL,
    name    TEXT NOT NULL,         -- lowercased entry name
    value   BLOB NOT NULL,
    PRIMARY KEY (folder, name)
) WITHOUT ROWID;
";

/// Bodies stored but not yet in the full-text index: indexing runs in
/// batches (`bodies::index_pending`), and SEARCH reads these bodies' text
/// directly until then.
const V3: &str = "
CREATE TABLE fts_pending (
    body_id  INTEGER PRIMARY KEY
);
";

/// Version 4: attachments become a rowid table with a unique index on the
/// hash. As a WITHOUT ROWID table each row (its data included) was a key of
/// the table's b-tree: a lookup compared whole overflowing keys, reading
/// every attachment it passed (decrypting each page), and inner pages held
/// copies of the keys. The index holds only the hash now.
const V4: &str = "
CREATE TABLE attachments_v4 (
    id        INTEGER PRIMARY KEY,
    sha256    BLOB NOT NULL UNIQUE,
    refcount  INTEGER NOT NULL,
    data      BLOB NOT NULL            -- zstd
);
INSERT INTO attachments_v4 (sha256, refcount, data)
    SELECT sha256, refcount, data FROM attachments;
DROP TABLE attachments;
ALTER TABLE attachments_v4 RENAME TO attachments;
";

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("mailbox schema version {0} is newer than this sealmail ({VERSION})")]
    TooNew(i64),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// Brings a freshly opened mailbox to `VERSION`, creating it if empty.
pub fn migrate(conn: &mut Connection) -> Result<(), SchemaError> {
    migrate_to(conn, VERSION)
}

fn migrate_to(conn: &mut Connection, target: i64) -> Result<(), SchemaError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > VERSION {
        return Err(SchemaError::TooNew(version));
    }
    if version < 1 {
        let tx = conn.transaction()?;
        tx.execute_batch(V1)?;
        let validity = uidvalidity_seed();
        for (i, (name, special)) in SPECIAL.iter().enumerate() {
            tx.execute(
                "INSERT INTO folders (name, uidvalidity, special_use) VALUES (?1, ?2, ?3)",
                params![name, validity + i as i64, special],
            )?;
        }
        tx.execute_batch("PRAGMA user_version = 1")?;
        tx.commit()?;
    }
    for (v, sql) in [(2, V2), (3, V3), (4, V4)] {
        if version < v && v <= target {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.execute_batch(&format!("PRAGMA user_version = {v}"))?;
            tx.commit()?;
        }
    }
    Ok(())
}

/// A UIDVALIDITY for a new folder: seconds since epoch, which grows across
/// delete and re-create, so a client never sees UIDs reused (RFC 3501 §2.3.1.1).
pub fn uidvalidity_seed() -> i64 {
    (now_unix() & 0x7fff_ffff).max(1)
}

/// Timestamp string for rows that record when something happened.
pub fn now_iso() -> String {
    iso8601_utc(now_unix())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 3 file keeps every attachment through version 4, and a
    /// lookup by hash goes through the index, not the rows.
    #[test]
    fn attachments_move_to_a_rowid_table() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 3).unwrap();
        for (i, size) in [(1u8, 10usize), (2, 300_000)] {
            conn.execute(
                "INSERT INTO attachments (sha256, refcount, data) VALUES (?1, ?2, ?3)",
                params![[i; 32].as_slice(), i64::from(i), vec![i; size]],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'attachments'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        for (i, size) in [(1u8, 10usize), (2, 300_000)] {
            let (refcount, data): (i64, Vec<u8>) = conn
                .query_row(
                    "SELECT refcount, data FROM attachments WHERE sha256 = ?1",
                    [[i; 32].as_slice()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!((refcount, data), (i64::from(i), vec![i; size]));
        }
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT data FROM attachments WHERE sha256 = x'00'",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("USING INDEX"), "{plan}");
        // A second open changes nothing.
        migrate(&mut conn).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM attachments", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }
}
