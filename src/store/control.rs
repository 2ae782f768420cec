//! The control plane (`control.sqlite`): domains, aliases, forwarding and
//! webhook targets, quotas, and the per-alias credentials (verifier, wrapped
//! data key, wrapped age identity, public key).
//!
//! Imports `store::{db, keys}` and `util`. Invariants: the file is keyed with
//! the server key; it never holds a password or an unwrapped key; a password
//! change replaces the credential row in one transaction, so a crash leaves
//! the old or the new password working, never neither.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::db::{self, DbError, DbKey};
use super::keys::{self, Credentials, KdfParams, KeyError, Unwrapped};
pub use super::types::DkimKey;
use crate::util::{crash_point, iso8601_utc, now_unix, random_id};

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{0:?} is not a valid domain name: {1}")]
    BadDomain(String, &'static str),
    #[error("{0:?} is not a valid address: {1}")]
    BadAddress(String, &'static str),
    #[error("domain {0} is not configured (add it with `sealmail domain add {0}`)")]
    NoDomain(String),
    #[error("domain {0} already exists")]
    DomainExists(String),
    #[error("domain {0} still has {1} aliases; remove them first")]
    DomainInUse(String, i64),
    #[error("no alias {0}")]
    NoAlias(String),
    #[error("alias {0} already exists")]
    AliasExists(String),
    #[error("alias {0} has no mailbox")]
    NoMailbox(String),
    #[error("{1}")]
    Script(super::types::ScriptRefusal, String),
    #[error(
        "{0} is required while its domain exists (RFC 5321 §4.5.1, RFC 2142): point it elsewhere with `sealmail alias forward`, or remove the domain"
    )]
    Required(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("control database: {0}")]
    Db(#[from] DbError),
}

impl From<rusqlite::Error> for ControlError {
    fn from(e: rusqlite::Error) -> Self {
        ControlError::Db(DbError::Sqlite(e))
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS domains (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,
    created  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    id          INTEGER PRIMARY KEY,
    address     TEXT NOT NULL UNIQUE,
    domain_id   INTEGER NOT NULL REFERENCES domains(id),
    mailbox     INTEGER NOT NULL,
    mailbox_id  TEXT NOT NULL UNIQUE,
    quota_bytes INTEGER,
    forward     TEXT NOT NULL DEFAULT '[]',
    webhooks    TEXT NOT NULL DEFAULT '[]',
    pop3_trash  INTEGER NOT NULL DEFAULT 0,
    created     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    alias_id          INTEGER PRIMARY KEY REFERENCES aliases(id) ON DELETE CASCADE,
    salt              BLOB NOT NULL,
    kdf               TEXT NOT NULL,
    verifier          BLOB NOT NULL,
    dek_wrapped       BLOB NOT NULL,
    identity_wrapped  BLOB NOT NULL,
    public_key        TEXT NOT NULL,
    changed           TEXT NOT NULL
);
-- Bytes a mailbox held when last open: all the server knows of a locked
-- mailbox's size, for quota checks on mail it can only seal.
CREATE TABLE IF NOT EXISTS usage (
    alias_id  INTEGER PRIMARY KEY REFERENCES aliases(id) ON DELETE CASCADE,
    bytes     INTEGER NOT NULL,
    updated   TEXT NOT NULL
);
-- The backup scheduler's last outcome per alias (shown by `backup list`).
CREATE TABLE IF NOT EXISTS backup_status (
    alias_id    INTEGER PRIMARY KEY REFERENCES aliases(id) ON DELETE CASCADE,
    last_ok     TEXT,
    last_error  TEXT,
    updated     TEXT NOT NULL
);
-- DKIM signing keys per domain (the file itself is under the server key).
CREATE TABLE IF NOT EXISTS dkim_keys (
    id          INTEGER PRIMARY KEY,
    domain_id   INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    selector    TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    private_key BLOB NOT NULL,
    public_key  BLOB NOT NULL,
    created     TEXT NOT NULL,
    UNIQUE (domain_id, selector)
);
-- Mail cluster secondaries shipped here, by shipment key, so a shipment
-- sent again after this node restarted (its answer lost) is placed once.
CREATE TABLE IF NOT EXISTS shipments (
    key  BLOB PRIMARY KEY,
    at   INTEGER NOT NULL
);
PRAGMA user_version = 1;
";

/// How long a shipment's key is remembered: far longer than any
/// secondary keeps resending one.
const SHIPMENTS_KEPT_SECONDS: i64 = 366 * 24 * 3600;

/// The addresses every domain keeps while it exists: `postmaster@` (RFC
/// 5321 §4.5.1) and `abuse@` (RFC 2142).
pub const REQUIRED: [&str; 2] = ["postmaster", "abuse"];

/// Whether `address` is one of a domain's [`REQUIRED`] addresses.
pub fn is_required(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(local, _)| REQUIRED.iter().any(|r| local.eq_ignore_ascii_case(r)))
}

/// What [`Control::backup_status`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupStatus {
    /// When the last backup succeeded (or found nothing to do).
    pub last_ok: Option<String>,
    /// The last failure since then, and when it happened.
    pub last_error: Option<(String, String)>,
}

/// One alias as the control plane knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    pub id: i64,
    pub address: String,
    pub domain: String,
    pub mailbox: bool,
    /// Random name of the mailbox file and spool directory.
    pub mailbox_id: String,
    pub quota_bytes: Option<u64>,
    pub forward: Vec<String>,
    pub webhooks: Vec<String>,
    /// The age recipient that inbound mail is sealed to.
    pub public_key: Option<String>,
    /// POP3 DELE moves to Trash instead of expunging.
    pub pop3_trash: bool,
}

pub struct Control {
    pub(super) conn: Connection,
    /// Keys the hashes of Sieve's tracking (`store::scripts`).
    pub(super) tracking_key: [u8; 32],
}

/// A password change that is checked and wrapped but not yet written.
pub struct PreparedPassword {
    alias_id: i64,
    credentials: Credentials,
}

/// Checks and lowercases a domain name (ASCII; IDNs in their xn-- form).
pub fn normalize_domain(name: &str) -> Result<String, ControlError> {
    let d = name.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |why| Err(ControlError::BadDomain(name.to_string(), why));
    if d.is_empty() || d.len() > 253 {
        return bad("must be 1 to 253 characters");
    }
    if !d.is_ascii() {
        return bad("write internationalised names in their xn-- form");
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each label must be 1 to 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label may not start or end with '-'");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("only letters, digits, '-' and '.' are allowed");
        }
    }
    Ok(d)
}

/// Splits and checks `local@domain`, lowercased.
pub fn normalize_address(addr: &str) -> Result<(String, String), ControlError> {
    let a = addr.trim();
    let bad = |why| Err(ControlError::BadAddress(addr.to_string(), why));
    let Some((local, domain)) = a.rsplit_once('@') else {
        return bad("expected local@domain");
    };
    if local.is_empty() || local.len() > 64 {
        return bad("the local part must be 1 to 64 characters");
    }
    if local
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "@<>()[],;:\\\"".contains(c))
    {
        return bad("the local part has a character that needs quoting");
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return bad("dots may not start, end or repeat in the local part");
    }
    let domain = normalize_domain(domain)
        .map_err(|_| ControlError::BadAddress(addr.to_string(), "bad domain"))?;
    Ok((local.to_lowercase(), domain))
}

impl Control {
    /// Opens (creating) the control database with the server key.
    pub fn open(path: &Path, server_key: &[u8; 32]) -> Result<Control, ControlError> {
        let conn = db::open(path, DbKey::Raw(server_key))?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(super::scripts::SCHEMA)?;
        conn.execute_batch(super::pgpkeys::SCHEMA)?;
        Ok(Control {
            conn,
            tracking_key: super::scripts::tracking_key(server_key),
        })
    }

    pub fn add_domain(&mut self, name: &str) -> Result<String, ControlError> {
        let d = normalize_domain(name)?;
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO domains (name, created) VALUES (?1, ?2)",
            params![d, iso8601_utc(now_unix())],
        )?;
        if n == 0 {
            return Err(ControlError::DomainExists(d));
        }
        Ok(d)
    }

    /// Stores DKIM keys for `domain` (a selector already there is kept).
    pub fn add_dkim_keys(&mut self, domain: &str, keys: &[DkimKey]) -> Result<(), ControlError> {
        let d = normalize_domain(domain)?;
        let tx = self.conn.transaction()?;
        let id: Option<i64> = tx
            .query_row("SELECT id FROM domains WHERE name = ?1", [&d], |r| r.get(0))
            .optional()?;
        let id = id.ok_or_else(|| ControlError::NoDomain(d.clone()))?;
        for k in keys {
            tx.execute(
                "INSERT OR IGNORE INTO dkim_keys (domain_id, selector, algorithm, private_key, public_key, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, k.selector, k.algorithm, k.private_key, k.public_key, iso8601_utc(now_unix())],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The DKIM keys of `domain`, oldest first.
    pub fn dkim_keys(&self, domain: &str) -> Result<Vec<DkimKey>, ControlError> {
        let Ok(d) = normalize_domain(domain) else {
            return Ok(Vec::new());
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT k.selector, k.algorithm, k.private_key, k.public_key FROM dkim_keys k JOIN domains d ON d.id = k.domain_id WHERE d.name = ?1 ORDER BY k.id",
        )?;
        let rows = stmt
            .query_map([d], |r| {
                Ok(DkimKey {
                    selector: r.get(0)?,
                    algorithm: r.get(1)?,
                    private_key: r.get(2)?,
                    public_key: r.get(3)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Addresses `address` may send as besides itself: the aliases of its
    /// own domain that forward to it (a role address such as `info@`
    /// delivered to its owner is also sent from by that owner).
    pub fn send_as(&self, address: &str) -> Result<Vec<String>, ControlError> {
        let Some(me) = self.alias(address)? else {
            return Ok(Vec::new());
        };
        Ok(self
            .list_aliases(Some(&me.domain))?
            .into_iter()
            .filter(|a| {
                a.id != me.id
                    && a.forward
                        .iter()
                        .any(|f| f.eq_ignore_ascii_case(&me.address))
            })
            .map(|a| a.address)
            .collect())
    }

    /// Domains with their alias counts.
    pub fn list_domains(&self) -> Result<Vec<(String, i64)>, ControlError> {
        let mut stmt = self.conn.prepare(
            "SELECT d.name, (SELECT count(*) FROM aliases a WHERE a.domain_id = d.id) FROM domains d ORDER BY d.name",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// True if `name` is a domain this server receives mail for.
    pub fn has_domain(&self, name: &str) -> Result<bool, ControlError> {
        let Ok(d) = normalize_domain(name) else {
            return Ok(false);
        };
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM domains WHERE name = ?1")?
            .query_row([d], |r| r.get(0))?;
        Ok(n > 0)
    }

    pub fn remove_domain(&mut self, name: &str) -> Result<(), ControlError> {
        let d = normalize_domain(name)?;
        let tx = self.conn.transaction()?;
        let id: Option<i64> = tx
            .query_row("SELECT id FROM domains WHERE name = ?1", [&d], |r| r.get(0))
            .optional()?;
        let id = id.ok_or_else(|| ControlError::NoDomain(d.clone()))?;
        let n: i64 = tx.query_row(
            "SELECT count(*) FROM aliases WHERE domain_id = ?1
               AND substr(address, 1, instr(address, '@') - 1) NOT IN ('postmaster', 'abuse')",
            [id],
            |r| r.get(0),
        )?;
        if n > 0 {
            return Err(ControlError::DomainInUse(d, n));
        }
        // The required addresses go with their domain.
        tx.execute("DELETE FROM aliases WHERE domain_id = ?1", [id])?;
        tx.execute("DELETE FROM dkim_keys WHERE domain_id = ?1", [id])?;
        tx.execute("DELETE FROM domains WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// Adds an alias. With `password`, it gets a mailbox and fresh keys.
    pub fn add_alias(
        &mut self,
        address: &str,
        password: Option<&str>,
        params: KdfParams,
    ) -> Result<Alias, ControlError> {
        let (local, domain) = normalize_address(address)?;
        let address = format!("{local}@{domain}");
        let creds = password.map(|p| keys::create(p, params)).transpose()?;
        let tx = self.conn.transaction()?;
        let domain_id: Option<i64> = tx
            .query_row("SELECT id FROM domains WHERE name = ?1", [&domain], |r| {
                r.get(0)
            })
            .optional()?;
        let domain_id = domain_id.ok_or_else(|| ControlError::NoDomain(domain.clone()))?;
        let exists: i64 = tx.query_row(
            "SELECT count(*) FROM aliases WHERE address = ?1",
            [&address],
            |r| r.get(0),
        )?;
        if exists > 0 {
            return Err(ControlError::AliasExists(address));
        }
        let mailbox_id = random_id().map_err(KeyError::Io)?;
        tx.execute(
            "INSERT INTO aliases (address, domain_id, mailbox, mailbox_id, created) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![address, domain_id, creds.is_some(), mailbox_id, iso8601_utc(now_unix())],
        )?;
        let id = tx.last_insert_rowid();
        if let Some((c, _)) = &creds {
            put_credentials(&tx, id, c)?;
        }
        tx.commit()?;
        self.alias(&address)?.ok_or(ControlError::NoAlias(address))
    }

    /// Looks an alias up by address (case-insensitive).
    pub fn alias(&self, address: &str) -> Result<Option<Alias>, ControlError> {
        let Ok((local, domain)) = normalize_address(address) else {
            return Ok(None);
        };
        let address = format!("{local}@{domain}");
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{ALIAS_SELECT} WHERE a.address = ?1"))?;
        Ok(stmt.query_row([&address], alias_row).optional()?)
    }

    pub fn list_aliases(&self, domain: Option<&str>) -> Result<Vec<Alias>, ControlError> {
        let mut stmt = self.conn.prepare(&format!(
            "{ALIAS_SELECT} WHERE ?1 IS NULL OR d.name = ?1 ORDER BY d.name, a.address"
        ))?;
        let domain = domain.map(normalize_domain).transpose()?;
        let rows = stmt
            .query_map([domain], alias_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn remove_alias(&mut self, address: &str) -> Result<Alias, ControlError> {
        let alias = self.require(address)?;
        if is_required(&alias.address) {
            return Err(ControlError::Required(alias.address));
        }
        self.conn
            .execute("DELETE FROM aliases WHERE id = ?1", [alias.id])?;
        Ok(alias)
    }

    pub(super) fn require(&self, address: &str) -> Result<Alias, ControlError> {
        self.alias(address)?
            .ok_or_else(|| ControlError::NoAlias(address.to_string()))
    }

    pub fn credentials(&self, alias_id: i64) -> Result<Option<Credentials>, ControlError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT salt, kdf, verifier, dek_wrapped, identity_wrapped, public_key FROM credentials WHERE alias_id = ?1",
        )?;
        let row = stmt
            .query_row([alias_id], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .optional()?;
        let Some((salt, kdf, verifier, dek_wrapped, identity_wrapped, public_key)) = row else {
            return Ok(None);
        };
        let damaged = |what| ControlError::Key(KeyError::Damaged(what));
        Ok(Some(Credentials {
            salt: salt.try_into().map_err(|_| damaged("salt"))?,
            params: serde_json::from_str(&kdf).map_err(|_| damaged("kdf parameters"))?,
            verifier: verifier.try_into().map_err(|_| damaged("verifier"))?,
            dek_wrapped,
            identity_wrapped,
            public_key,
        }))
    }

    /// First half of a password change: checks the old password and wraps
    /// the same keys under the new one. Nothing is written yet, so the
    /// caller can show the new password before [`Control::commit_password`]
    /// makes it the only one that works.
    pub fn prepare_password(
        &self,
        address: &str,
        old: &str,
        new: &str,
        params: KdfParams,
    ) -> Result<PreparedPassword, ControlError> {
        let alias = self.require(address)?;
        let creds = self
            .credentials(alias.id)?
            .ok_or_else(|| ControlError::NoMailbox(alias.address.clone()))?;
        let keys = keys::unwrap(&creds, old)?;
        let fresh = keys::wrap(new, params, &keys, creds.public_key.clone())?;
        Ok(PreparedPassword {
            alias_id: alias.id,
            credentials: fresh,
        })
    }

    /// Second half: replaces the credential row in one transaction. The
    /// mailbox file is not touched.
    pub fn commit_password(&mut self, prepared: PreparedPassword) -> Result<(), ControlError> {
        let tx = self.conn.transaction()?;
        put_credentials(&tx, prepared.alias_id, &prepared.credentials)?;
        crash_point("password-change-before-commit");
        tx.commit()?;
        crash_point("password-change-after-commit");
        Ok(())
    }

    /// Both halves at once.
    pub fn change_password(
        &mut self,
        address: &str,
        old: &str,
        new: &str,
        params: KdfParams,
    ) -> Result<(), ControlError> {
        let prepared = self.prepare_password(address, old, new, params)?;
        self.commit_password(prepared)
    }

    /// Gives an alias new keys and a new, empty mailbox, for an owner who
    /// lost the password. The old mailbox can never be opened again; its
    /// file name is returned so the caller can remove it.
    pub fn reset_password(
        &mut self,
        address: &str,
        new: &str,
        params: KdfParams,
    ) -> Result<(Alias, Unwrapped), ControlError> {
        let old = self.require(address)?;
        let (creds, keys) = keys::create(new, params)?;
        let mailbox_id = random_id().map_err(KeyError::Io)?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE aliases SET mailbox = 1, mailbox_id = ?1 WHERE id = ?2",
            params![mailbox_id, old.id],
        )?;
        put_credentials(&tx, old.id, &creds)?;
        tx.commit()?;
        Ok((old, keys))
    }

    pub fn set_forward(&mut self, address: &str, targets: &[String]) -> Result<(), ControlError> {
        for t in targets {
            normalize_address(t)?;
        }
        self.set_json(address, "forward", targets)
    }

    pub fn set_webhooks(&mut self, address: &str, urls: &[String]) -> Result<(), ControlError> {
        for u in urls {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(ControlError::BadAddress(
                    u.clone(),
                    "webhooks must be http:// or https:// URLs",
                ));
            }
        }
        self.set_json(address, "webhooks", urls)
    }

    fn set_json(
        &mut self,
        address: &str,
        column: &str,
        values: &[String],
    ) -> Result<(), ControlError> {
        let alias = self.require(address)?;
        let json = serde_json::to_string(values).unwrap_or_else(|_| "[]".into());
        self.conn.execute(
            &format!("UPDATE aliases SET {column} = ?1 WHERE id = ?2"),
            params![json, alias.id],
        )?;
        Ok(())
    }

    pub fn set_pop3_trash(&mut self, address: &str, trash: bool) -> Result<(), ControlError> {
        let alias = self.require(address)?;
        self.conn.execute(
            "UPDATE aliases SET pop3_trash = ?1 WHERE id = ?2",
            params![trash, alias.id],
        )?;
        Ok(())
    }

    /// Records what an alias' mailbox held when it was last open.
    pub fn set_usage(&mut self, alias_id: i64, bytes: u64) -> Result<(), ControlError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO usage (alias_id, bytes, updated) VALUES (?1, ?2, ?3)",
            params![
                alias_id,
                bytes as i64,
                crate::util::iso8601_utc(crate::util::now_unix())
            ],
        )?;
        Ok(())
    }

    /// What [`Control::set_usage`] last recorded (0 if never).
    pub fn usage(&self, alias_id: i64) -> Result<u64, ControlError> {
        let bytes: Option<i64> = self
            .conn
            .query_row(
                "SELECT bytes FROM usage WHERE alias_id = ?1",
                params![alias_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(bytes.unwrap_or(0).max(0) as u64)
    }

    /// Records a backup attempt: `Ok(())` clears the last error.
    pub fn set_backup_status(
        &mut self,
        alias_id: i64,
        result: Result<(), &str>,
    ) -> Result<(), ControlError> {
        let now = crate::util::iso8601_utc(crate::util::now_unix());
        match result {
            Ok(()) => self.conn.execute(
                "INSERT INTO backup_status (alias_id, last_ok, last_error, updated)
                 VALUES (?1, ?2, NULL, ?2)
                 ON CONFLICT (alias_id) DO UPDATE SET last_ok = ?2, last_error = NULL, updated = ?2",
                params![alias_id, now],
            )?,
            Err(e) => self.conn.execute(
                "INSERT INTO backup_status (alias_id, last_ok, last_error, updated)
                 VALUES (?1, NULL, ?2, ?3)
                 ON CONFLICT (alias_id) DO UPDATE SET last_error = ?2, updated = ?3",
                params![alias_id, e, now],
            )?,
        };
        Ok(())
    }

    /// Whether a secondary's shipment with this key was placed already.
    pub fn shipped(&self, key: &[u8; 16]) -> Result<bool, ControlError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM shipments WHERE key = ?1",
                params![&key[..]],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Remembers a placed shipment (and forgets those older than a year).
    pub fn record_shipment(&mut self, key: &[u8; 16]) -> Result<(), ControlError> {
        let now = now_unix();
        self.conn.execute(
            "INSERT OR IGNORE INTO shipments (key, at) VALUES (?1, ?2)",
            params![&key[..], now],
        )?;
        self.conn.execute(
            "DELETE FROM shipments WHERE at < ?1",
            params![now - SHIPMENTS_KEPT_SECONDS],
        )?;
        Ok(())
    }

    /// The backup scheduler's last outcome for an alias.
    pub fn backup_status(&self, alias_id: i64) -> Result<Option<BackupStatus>, ControlError> {
        Ok(self
            .conn
            .query_row(
                "SELECT last_ok, last_error, updated FROM backup_status WHERE alias_id = ?1",
                params![alias_id],
                |r| {
                    let err: Option<String> = r.get(1)?;
                    let at: String = r.get(2)?;
                    Ok(BackupStatus {
                        last_ok: r.get(0)?,
                        last_error: err.map(|e| (e, at)),
                    })
                },
            )
            .optional()?)
    }

    pub fn set_quota(&mut self, address: &str, bytes: Option<u64>) -> Result<(), ControlError> {
        let alias = self.require(address)?;
        self.conn.execute(
            "UPDATE aliases SET quota_bytes = ?1 WHERE id = ?2",
            params![bytes.map(|b| b as i64), alias.id],
        )?;
        Ok(())
    }
}

const ALIAS_SELECT: &str =
    "SELECT a.id, a.address, d.name, a.mailbox, a.mailbox_id, a.quota_bytes, a.forward,
    a.webhooks, c.public_key, a.pop3_trash FROM aliases a JOIN domains d ON d.id = a.domain_id
    LEFT JOIN credentials c ON c.alias_id = a.id";

fn alias_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Alias> {
    let list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
    Ok(Alias {
        id: r.get(0)?,
        address: r.get(1)?,
        domain: r.get(2)?,
        mailbox: r.get(3)?,
        mailbox_id: r.get(4)?,
        quota_bytes: r.get::<_, Option<i64>>(5)?.map(|q| q as u64),
        forward: list(r.get(6)?),
        webhooks: list(r.get(7)?),
        public_key: r.get(8)?,
        pop3_trash: r.get(9)?,
    })
}

fn put_credentials(conn: &Connection, alias_id: i64, c: &Credentials) -> Result<(), ControlError> {
    conn.execute(
        "INSERT OR REPLACE INTO credentials
            (alias_id, salt, kdf, verifier, dek_wrapped, identity_wrapped, public_key, changed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            alias_id,
            c.salt.as_slice(),
            serde_json::to_string(&c.params).unwrap_or_default(),
            c.verifier.as_slice(),
            c.dek_wrapped,
            c.identity_wrapped,
            c.public_key,
            iso8601_utc(now_unix())
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_domains_are_checked() {
        assert_eq!(normalize_domain("Example.ORG.").unwrap(), "example.org");
        assert!(normalize_domain("bad_domain.org").is_err());
        assert!(normalize_domain("-x.org").is_err());
        assert!(normalize_domain("exämple.org").is_err());
        assert_eq!(
            normalize_address("Ann@Example.org").unwrap(),
            ("ann".to_string(), "example.org".to_string())
        );
        for bad in ["ann", "@x.org", "a b@x.org", ".a@x.org", "a..b@x.org", "a@"] {
            assert!(normalize_address(bad).is_err(), "{bad}");
        }
    }
}
