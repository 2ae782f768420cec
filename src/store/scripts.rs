//! Owners' Sieve scripts and Sieve's reply tracking, in the control
//! database.
//!
//! This is the one setting of an owner the server can read without their
//! password: a filter runs when mail arrives, and the owner's key is then
//! usually not in memory, so the script must be readable with the server
//! key alone. What a script decided about a message never lands here:
//! folders and flags travel inside the seal of the message they concern.
//! The tracking of `vacation` replies keeps keyed hashes of senders'
//! addresses, never the addresses, and forgets them when they expire.
//!
//! Imports `store::control` and `util`. Invariants: an alias has at most
//! [`MAX_SCRIPTS`] scripts of at most [`MAX_SCRIPT_BYTES`] each, and at
//! most one active; the active script cannot be deleted (deactivate it
//! first, as ManageSieve's DELETESCRIPT has it); the store checks quotas
//! and names, its callers check syntax (`sieve::Interpreter::compile`).

use rusqlite::{OptionalExtension, params};

use super::control::{Control, ControlError};
use super::types::{ScriptRefusal as R, SieveOp, SieveReply, SieveScripts};
use crate::util::{hmac_sha256, iso8601_utc, now_unix};

pub use super::types::{
    SIEVE_MAX_SCRIPT_BYTES as MAX_SCRIPT_BYTES, SIEVE_MAX_SCRIPTS as MAX_SCRIPTS,
};
/// A script name's longest, in characters (RFC 5804 §1.6 asks for 128 at
/// least).
pub const MAX_NAME_CHARS: usize = 128;
/// Tracking entries kept per alias; the oldest go first past it.
const MAX_TRACKED: i64 = 10_000;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sieve_scripts (
    alias_id INTEGER NOT NULL REFERENCES aliases(id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    script   TEXT NOT NULL,
    active   INTEGER NOT NULL DEFAULT 0,
    changed  TEXT NOT NULL,
    PRIMARY KEY (alias_id, name)
);
-- Sieve's tracking (vacation replies sent, duplicate ids): HMAC of the id
-- under a key derived from the server key, and when it is forgotten.
CREATE TABLE IF NOT EXISTS sieve_seen (
    alias_id INTEGER NOT NULL REFERENCES aliases(id) ON DELETE CASCADE,
    hash     BLOB NOT NULL,
    expires  INTEGER NOT NULL,
    PRIMARY KEY (alias_id, hash)
);
";

/// The key of the tracking hashes, from the server key.
pub(super) fn tracking_key(server_key: &[u8; 32]) -> [u8; 32] {
    hmac_sha256(server_key, &[b"sealmail/sieve-tracking"])
}

/// One script as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptInfo {
    pub name: String,
    pub active: bool,
    pub bytes: usize,
}

/// Why a script name is refused (RFC 5804 §1.6: no control characters,
/// no line breaks; not empty).
pub fn check_name(name: &str) -> Result<(), ControlError> {
    let bad = |why: &str| {
        Err(ControlError::Script(
            R::BadName,
            format!("bad script name {name:?}: {why}"),
        ))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return bad("too long");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return bad("control characters are not allowed");
    }
    Ok(())
}

fn no_such(name: &str) -> ControlError {
    ControlError::Script(R::NoSuchScript, format!("no script {name:?}"))
}

impl Control {
    /// Carries out a ManageSieve operation.
    pub fn sieve(&mut self, address: &str, op: SieveOp) -> Result<SieveReply, ControlError> {
        Ok(match op {
            SieveOp::Put { name, script } => {
                self.sieve_put(address, &name, &script)?;
                SieveReply::Done
            }
            SieveOp::List => SieveReply::List(
                self.sieve_list(address)?
                    .into_iter()
                    .map(|s| (s.name, s.active))
                    .collect(),
            ),
            SieveOp::Get { name } => SieveReply::Script(
                self.sieve_get(address, &name)?
                    .ok_or_else(|| no_such(&name))?,
            ),
            SieveOp::Activate { name } => {
                self.sieve_activate(address, name.as_deref())?;
                SieveReply::Done
            }
            SieveOp::Delete { name } => {
                self.sieve_delete(address, &name)?;
                SieveReply::Done
            }
            SieveOp::Rename { from, to } => {
                self.sieve_rename(address, &from, &to)?;
                SieveReply::Done
            }
            SieveOp::HaveSpace { name, size } => SieveReply::Space(self.sieve_has_space(
                address,
                &name,
                usize::try_from(size).unwrap_or(usize::MAX),
            )?),
        })
    }

    /// Stores (or replaces) a script; the caller has compiled it.
    pub fn sieve_put(&mut self, address: &str, name: &str, text: &str) -> Result<(), ControlError> {
        check_name(name)?;
        let alias = self.require(address)?;
        let exists = self.sieve_get(address, name)?.is_some();
        if !self.sieve_has_space(address, name, text.len())? {
            let count = self.sieve_list(address)?.len() + usize::from(!exists);
            return Err(if text.len() > MAX_SCRIPT_BYTES {
                ControlError::Script(
                    R::TooLarge,
                    format!("the script is larger than {MAX_SCRIPT_BYTES} bytes"),
                )
            } else {
                ControlError::Script(
                    R::TooMany,
                    format!("at most {MAX_SCRIPTS} scripts per address ({count} with this one)"),
                )
            });
        }
        self.conn.execute(
            "INSERT INTO sieve_scripts (alias_id, name, script, changed) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (alias_id, name) DO UPDATE SET script = excluded.script, changed = excluded.changed",
            params![alias.id, name, text, iso8601_utc(now_unix())],
        )?;
        Ok(())
    }

    /// Whether a script of `bytes` named `name` would fit the quotas.
    pub fn sieve_has_space(
        &self,
        address: &str,
        name: &str,
        bytes: usize,
    ) -> Result<bool, ControlError> {
        let list = self.sieve_list(address)?;
        let count = list.len() + usize::from(!list.iter().any(|s| s.name == name));
        Ok(bytes <= MAX_SCRIPT_BYTES && count <= MAX_SCRIPTS)
    }

    pub fn sieve_list(&self, address: &str) -> Result<Vec<ScriptInfo>, ControlError> {
        let alias = self.require(address)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, active, length(CAST(script AS BLOB)) FROM sieve_scripts
             WHERE alias_id = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([alias.id], |r| {
            Ok(ScriptInfo {
                name: r.get(0)?,
                active: r.get(1)?,
                bytes: r.get::<_, i64>(2)? as usize,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn sieve_get(&self, address: &str, name: &str) -> Result<Option<String>, ControlError> {
        let alias = self.require(address)?;
        Ok(self
            .conn
            .query_row(
                "SELECT script FROM sieve_scripts WHERE alias_id = ?1 AND name = ?2",
                params![alias.id, name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Makes `name` the active script, or none with `None`.
    pub fn sieve_activate(
        &mut self,
        address: &str,
        name: Option<&str>,
    ) -> Result<(), ControlError> {
        let alias = self.require(address)?;
        if let Some(n) = name
            && self.sieve_get(address, n)?.is_none()
        {
            return Err(no_such(n));
        }
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE sieve_scripts SET active = 0 WHERE alias_id = ?1",
            [alias.id],
        )?;
        if let Some(n) = name {
            tx.execute(
                "UPDATE sieve_scripts SET active = 1 WHERE alias_id = ?1 AND name = ?2",
                params![alias.id, n],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes a script that is not active.
    pub fn sieve_delete(&mut self, address: &str, name: &str) -> Result<(), ControlError> {
        let alias = self.require(address)?;
        let active: Option<bool> = self
            .conn
            .query_row(
                "SELECT active FROM sieve_scripts WHERE alias_id = ?1 AND name = ?2",
                params![alias.id, name],
                |r| r.get(0),
            )
            .optional()?;
        match active {
            None => Err(no_such(name)),
            Some(true) => Err(ControlError::Script(
                R::Active,
                format!("{name:?} is the active script; deactivate it first"),
            )),
            Some(false) => {
                self.conn.execute(
                    "DELETE FROM sieve_scripts WHERE alias_id = ?1 AND name = ?2",
                    params![alias.id, name],
                )?;
                Ok(())
            }
        }
    }

    /// Renames a script (it stays active if it was).
    pub fn sieve_rename(
        &mut self,
        address: &str,
        from: &str,
        to: &str,
    ) -> Result<(), ControlError> {
        check_name(to)?;
        let alias = self.require(address)?;
        if self.sieve_get(address, from)?.is_none() {
            return Err(no_such(from));
        }
        if self.sieve_get(address, to)?.is_some() {
            return Err(ControlError::Script(
                R::Exists,
                format!("a script {to:?} exists already"),
            ));
        }
        self.conn.execute(
            "UPDATE sieve_scripts SET name = ?3 WHERE alias_id = ?1 AND name = ?2",
            params![alias.id, from, to],
        )?;
        Ok(())
    }

    /// What the MX runs: the active script's name and every script (for
    /// `include`); `None` when no script is active.
    pub fn sieve_scripts(&self, address: &str) -> Result<Option<SieveScripts>, ControlError> {
        let Some(alias) = self.alias(address)? else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, script, active FROM sieve_scripts WHERE alias_id = ?1 ORDER BY name",
        )?;
        let rows: Vec<(String, String, bool)> = stmt
            .query_map([alias.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let Some(active) = rows.iter().find(|r| r.2).map(|r| r.0.clone()) else {
            return Ok(None);
        };
        Ok(Some(SieveScripts {
            active,
            scripts: rows.into_iter().map(|(n, s, _)| (n, s)).collect(),
        }))
    }

    /// Whether `id` was seen for the alias within `expiry` seconds; it is
    /// recorded as seen now (until now + `expiry`) unless it was.
    pub fn sieve_seen(
        &mut self,
        address: &str,
        id: &str,
        expiry: u64,
    ) -> Result<bool, ControlError> {
        let alias = self.require(address)?;
        let now = now_unix();
        let hash = hmac_sha256(
            &self.tracking_key,
            &[&alias.id.to_be_bytes(), id.to_lowercase().as_bytes()],
        );
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM sieve_seen WHERE alias_id = ?1 AND expires <= ?2",
            params![alias.id, now],
        )?;
        let seen: bool = tx
            .query_row(
                "SELECT 1 FROM sieve_seen WHERE alias_id = ?1 AND hash = ?2",
                params![alias.id, &hash[..]],
                |_| Ok(true),
            )
            .optional()?
            .unwrap_or(false);
        if !seen {
            let expires = now.saturating_add(i64::try_from(expiry).unwrap_or(i64::MAX));
            tx.execute(
                "INSERT INTO sieve_seen (alias_id, hash, expires) VALUES (?1, ?2, ?3)",
                params![alias.id, &hash[..], expires],
            )?;
            tx.execute(
                "DELETE FROM sieve_seen WHERE alias_id = ?1 AND hash IN
                 (SELECT hash FROM sieve_seen WHERE alias_id = ?1 ORDER BY expires DESC
                  LIMIT -1 OFFSET ?2)",
                params![alias.id, MAX_TRACKED],
            )?;
        }
        tx.commit()?;
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn control() -> (tempfile::TempDir, Control) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Control::open(&dir.path().join("control.sqlite"), &[7; 32]).unwrap();
        c.add_domain("example.org").unwrap();
        c.add_alias(
            "bob@example.org",
            None,
            crate::store::keys::KdfParams::default(),
        )
        .unwrap();
        (dir, c)
    }

    #[test]
    fn scripts_quotas_activation() {
        let (_d, mut c) = control();
        let a = "bob@example.org";
        assert_eq!(c.sieve_scripts(a).unwrap(), None);
        c.sieve_put(a, "main", "keep;").unwrap();
        c.sieve_put(a, "other", "discard;").unwrap();
        assert_eq!(c.sieve_scripts(a).unwrap(), None, "none active yet");
        c.sieve_activate(a, Some("main")).unwrap();
        let s = c.sieve_scripts(a).unwrap().unwrap();
        assert_eq!(s.active, "main");
        assert_eq!(s.scripts.len(), 2);
        assert!(c.sieve_delete(a, "main").is_err(), "active");
        c.sieve_rename(a, "main", "renamed").unwrap();
        assert_eq!(c.sieve_scripts(a).unwrap().unwrap().active, "renamed");
        assert!(c.sieve_rename(a, "renamed", "other").is_err());
        c.sieve_activate(a, None).unwrap();
        c.sieve_delete(a, "renamed").unwrap();
        assert_eq!(c.sieve_list(a).unwrap().len(), 1);
        assert!(c.sieve_activate(a, Some("gone")).is_err());
        assert!(
            c.sieve_put(a, "big", &"#".repeat(MAX_SCRIPT_BYTES + 1))
                .is_err()
        );
        assert!(c.sieve_put(a, "bad\nname", "keep;").is_err());
        assert!(c.sieve_put(a, "", "keep;").is_err());
        for i in 1..MAX_SCRIPTS {
            c.sieve_put(a, &format!("s{i}"), "keep;").unwrap();
        }
        assert!(c.sieve_put(a, "one-too-many", "keep;").is_err());
        // Replacing an existing one still fits.
        c.sieve_put(a, "s1", "discard;").unwrap();
        assert_eq!(c.sieve_get(a, "s1").unwrap().as_deref(), Some("discard;"));
    }

    #[test]
    fn tracking_keeps_hashes_only_and_expires() {
        let (dir, mut c) = control();
        let a = "bob@example.org";
        assert!(!c.sieve_seen(a, "_vann@example.net", 3600).unwrap());
        assert!(c.sieve_seen(a, "_vANN@example.net", 3600).unwrap());
        assert!(!c.sieve_seen(a, "_vcarol@example.net", 0).unwrap());
        assert!(
            !c.sieve_seen(a, "_vcarol@example.net", 0).unwrap(),
            "expired at once"
        );
        let stored: Vec<Vec<u8>> = c
            .conn
            .prepare("SELECT hash FROM sieve_seen")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(stored.iter().all(|h| h.len() == 32));
        drop(c);
        // The file is encrypted; nothing of the address shows in it.
        let raw = std::fs::read(dir.path().join("control.sqlite")).unwrap();
        assert!(!raw.windows(7).any(|w| w == b"example"));
    }
}
