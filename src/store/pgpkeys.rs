//! Owners' OpenPGP public keys, in the control database: read without
//! the owner's password because mail is encrypted to them on arrival,
//! usually while the owner's key is not in memory, and served to anyone
//! by the Web Key Directory.
//!
//! Imports `store::control`, `openpgp` and `util`. Invariants: a key is
//! stored only after `openpgp::check` accepted it for the alias' address;
//! one key per alias (an import replaces it); only public material.

use rusqlite::{OptionalExtension, params};

use super::control::{Control, ControlError};
use super::types::PgpKey;
use crate::util::iso8601_utc;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pgp_keys (
    alias_id        INTEGER PRIMARY KEY REFERENCES aliases(id) ON DELETE CASCADE,
    key             BLOB NOT NULL,
    fingerprint     TEXT NOT NULL,
    encrypt         INTEGER NOT NULL,
    protect_subject INTEGER NOT NULL,
    forward         INTEGER NOT NULL,
    publish         INTEGER NOT NULL,
    local_hash      TEXT NOT NULL,
    imported        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pgp_keys_hash ON pgp_keys(local_hash);
";

const SELECT: &str =
    "SELECT k.key, k.fingerprint, k.encrypt, k.protect_subject, k.forward, k.publish
    FROM pgp_keys k JOIN aliases a ON a.id = k.alias_id";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PgpKey> {
    Ok(PgpKey {
        key: r.get(0)?,
        fingerprint: r.get(1)?,
        encrypt: r.get(2)?,
        protect_subject: r.get(3)?,
        forward: r.get(4)?,
        publish: r.get(5)?,
    })
}

impl Control {
    /// Stores the alias' key (replacing one it had), with its settings;
    /// `key.key` has passed `openpgp::check` for this address.
    pub fn pgp_put(&mut self, address: &str, key: &PgpKey) -> Result<(), ControlError> {
        let alias = self.require(address)?;
        let local = alias.address.rsplit_once('@').map_or("", |(l, _)| l);
        self.conn.execute(
            "INSERT OR REPLACE INTO pgp_keys
             (alias_id, key, fingerprint, encrypt, protect_subject, forward, publish, local_hash, imported)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                alias.id,
                key.key,
                key.fingerprint,
                key.encrypt,
                key.protect_subject,
                key.forward,
                key.publish,
                crate::openpgp::wkd::hash(local),
                iso8601_utc(crate::util::now_unix()),
            ],
        )?;
        Ok(())
    }

    /// The alias' key, if it has one.
    pub fn pgp_key(&self, address: &str) -> Result<Option<PgpKey>, ControlError> {
        match self.alias(address)? {
            Some(alias) => self.pgp_key_of(alias.id),
            None => Ok(None),
        }
    }

    /// The key of the alias with this id (a delivery has the alias).
    pub fn pgp_key_of(&self, alias_id: i64) -> Result<Option<PgpKey>, ControlError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("{SELECT} WHERE k.alias_id = ?1"))?;
        Ok(stmt.query_row([alias_id], row).optional()?)
    }

    /// Removes the alias' key; whether it had one.
    pub fn pgp_remove(&mut self, address: &str) -> Result<bool, ControlError> {
        let alias = self.require(address)?;
        Ok(self
            .conn
            .execute("DELETE FROM pgp_keys WHERE alias_id = ?1", [alias.id])?
            > 0)
    }

    /// The published key of `domain` whose local part hashes to `hash`
    /// (WKD); none when the alias did not publish it.
    pub fn wkd_key(&self, domain: &str, hash: &str) -> Result<Option<PgpKey>, ControlError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT} JOIN domains d ON d.id = a.domain_id
             WHERE d.name = ?1 AND k.local_hash = ?2 AND k.publish = 1"
        ))?;
        Ok(stmt
            .query_row(params![domain.to_ascii_lowercase(), hash], row)
            .optional()?)
    }
}
