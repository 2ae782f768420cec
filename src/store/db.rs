//! Opening SQLCipher databases with the PRAGMA set of DESIGN.md, asserted.
//!
//! Imports only `util`. Invariants: every database sealmail writes is opened
//! here, after SQLite and SQLCipher finished initialising; a keyed open checks the key before anything else reads the file and
//! then reads every PRAGMA back, refusing to continue if one did not take.
//! `temp_store=MEMORY` is asserted because SQLCipher leaves temp files in
//! clear.

use std::path::Path;

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use zeroize::Zeroizing;

/// The key a database is opened with.
pub enum DbKey<'a> {
    /// A raw 256-bit SQLCipher key (no KDF runs on open).
    Raw(&'a [u8; 32]),
    /// No encryption. Only for benchmark baselines; production paths never
    /// pass it.
    Plain,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the key does not open this database")]
    WrongKey,
    #[error("database setting {pragma} is {found:?}, expected {expected:?}")]
    Pragma {
        pragma: &'static str,
        found: String,
        expected: String,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// SQLCipher 4 defaults that every keyed database must report.
const CIPHER_SETTINGS: &[(&str, &str)] = &[
    ("cipher_page_size", "4096"),
    ("cipher_hmac_algorithm", "HMAC_SHA512"),
    ("cipher_kdf_algorithm", "PBKDF2_HMAC_SHA512"),
    ("cipher_plaintext_header_size", "0"),
];

/// Finishes SQLite's process-wide initialisation once, before any keyed
/// open. SQLCipher's part of it runs after SQLite marks itself initialised,
/// so a second thread opening at that moment would find the cipher not yet
/// set up and fail `PRAGMA key`; every open waits here until it is.
fn initialise_once() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // Opening any connection runs sqlite3_initialize to its end.
        if let Err(e) = Connection::open_in_memory() {
            tracing::error!(error = %e, "SQLite failed to initialise");
        }
    });
}

/// Caps SQLite's memory in this process (every connection's page cache,
/// statements and the rest) at about `bytes`: near it, a cache reuses its
/// own least recently used pages instead of growing. `PRAGMA
/// soft_heap_limit` is process-wide, so this is called once, at start.
pub fn limit_memory(bytes: u64) -> Result<(), DbError> {
    initialise_once();
    let conn = Connection::open_in_memory()?;
    let limit = i64::try_from(bytes).unwrap_or(i64::MAX);
    conn.query_row(&format!("PRAGMA soft_heap_limit = {limit}"), [], |_| Ok(()))?;
    let now: i64 = conn.query_row("PRAGMA soft_heap_limit", [], |r| r.get(0))?;
    expect("soft_heap_limit", now.to_string(), &limit.to_string())
}

/// Opens (creating if missing) a database with the full PRAGMA set.
pub fn open(path: &Path, key: DbKey<'_>) -> Result<Connection, DbError> {
    initialise_once();
    create_private(path).map_err(|e| {
        DbError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!("{}: {e}", path.display())),
        ))
    })?;
    let conn = Connection::open(path)?;
    // SQLCipher prints "ERROR CORE" lines on a wrong key unless told not to.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    let keyed = match key {
        DbKey::Raw(k) => {
            let stmt = Zeroizing::new(format!("PRAGMA key = \"x'{}'\";", hex::encode(k)));
            conn.execute_batch(&stmt)?;
            true
        }
        DbKey::Plain => false,
    };
    // The first read decrypts page 1: a wrong key fails here.
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::NotADatabase =>
        {
            return Err(DbError::WrongKey);
        }
        Err(e) => return Err(e.into()),
    }
    if keyed {
        check_cipher(&conn)?;
    }
    // Setting auto_vacuum rewrites page 1 even when the value is already
    // there, so an existing file is left alone (and checked below).
    let auto_vacuum: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if auto_vacuum != 1 {
        conn.execute_batch("PRAGMA auto_vacuum = FULL;")?;
    }
    conn.execute_batch(
        "PRAGMA encoding = 'UTF-8';
         PRAGMA busy_timeout = 5000;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA temp_store = MEMORY;",
    )?;
    // Plans that do not depend on the values bound: otherwise SQLite
    // recompiles a cached statement that joins tables and compares a
    // column with a parameter each time the value changes (every lookup
    // by address, every delivery), on the chance that another plan suits
    // the new value better. sealmail has no statistics tables, partial
    // indexes or LIKE patterns as parameters for such plans to use.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    expect("journal_mode", mode.to_lowercase(), "wal")?;
    assert_pragmas(&conn)?;
    Ok(conn)
}

/// Creates an empty file with mode 0600 if none exists; SQLite gives its
/// -wal and -shm files the same mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn check_cipher(conn: &Connection) -> Result<(), DbError> {
    let version: String = conn.query_row("PRAGMA cipher_version", [], |r| r.get(0))?;
    if !version.starts_with('4') {
        return Err(DbError::Pragma {
            pragma: "cipher_version",
            found: version,
            expected: "4.x".into(),
        });
    }
    for (pragma, want) in CIPHER_SETTINGS {
        let got: String = conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))?;
        expect(pragma, got, want)?;
    }
    Ok(())
}

fn assert_pragmas(conn: &Connection) -> Result<(), DbError> {
    let int = |p: &str| conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0));
    expect("busy_timeout", int("busy_timeout")?.to_string(), "5000")?;
    expect("synchronous", int("synchronous")?.to_string(), "1")?;
    expect("foreign_keys", int("foreign_keys")?.to_string(), "1")?;
    expect("secure_delete", int("secure_delete")?.to_string(), "1")?;
    expect("temp_store", int("temp_store")?.to_string(), "2")?;
    // auto_vacuum can only change before the first table exists; sealmail
    // creates every database through here, so it must read FULL (1).
    expect("auto_vacuum", int("auto_vacuum")?.to_string(), "1")?;
    let enc: String = conn.query_row("PRAGMA encoding", [], |r| r.get(0))?;
    expect("encoding", enc, "UTF-8")
}

fn expect(pragma: &'static str, found: String, want: &str) -> Result<(), DbError> {
    if found == want {
        Ok(())
    } else {
        Err(DbError::Pragma {
            pragma,
            found,
            expected: want.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_database_refuses_other_keys_and_plain_open() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sqlite");
        let k1 = [7u8; 32];
        let conn = open(&p, DbKey::Raw(&k1)).unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES ('secret-canary');")
            .unwrap();
        drop(conn);
        assert!(matches!(
            open(&p, DbKey::Raw(&[8u8; 32])),
            Err(DbError::WrongKey)
        ));
        assert!(matches!(open(&p, DbKey::Plain), Err(DbError::WrongKey)));
        let conn = open(&p, DbKey::Raw(&k1)).unwrap();
        let v: String = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(v, "secret-canary");
    }

    /// A cached statement that joins tables and compares a column with a
    /// text parameter runs again without being compiled again. (Unless
    /// told otherwise, SQLite recompiles such a statement whenever the
    /// value bound changes, in case a better plan depends on it: every
    /// address lookup and every delivery paid for a compile.)
    #[test]
    fn cached_statements_are_not_recompiled_per_value() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("x.sqlite"), DbKey::Raw(&[7u8; 32])).unwrap();
        conn.execute_batch(
            "CREATE TABLE a(id INTEGER PRIMARY KEY, name TEXT UNIQUE, b INTEGER);
             CREATE TABLE b(id INTEGER PRIMARY KEY, v TEXT);",
        )
        .unwrap();
        let sql = "SELECT b.v FROM a JOIN b ON b.id = a.b WHERE a.name = ?1";
        for i in 0..20 {
            let mut stmt = conn.prepare_cached(sql).unwrap();
            let _ = stmt.exists([format!("name{i}")]).unwrap();
        }
        let stmt = conn.prepare_cached(sql).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    #[test]
    fn opening_an_existing_database_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.sqlite");
        let conn = open(&p, DbKey::Raw(&[7u8; 32])).unwrap();
        conn.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        drop(conn);
        let before = std::fs::read(&p).unwrap();
        let conn = open(&p, DbKey::Raw(&[7u8; 32])).unwrap();
        let auto_vacuum: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        assert_eq!(auto_vacuum, 1);
        drop(conn);
        assert!(
            std::fs::read(&p).unwrap() == before,
            "the open rewrote the file"
        );
    }
}
