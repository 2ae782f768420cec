//! Mailbox backups: a verified, encrypted snapshot of one mailbox file
//! written to a target with a manifest, listing, and restore.
//!
//! Imports `config` (the policy and target settings), `store` (mailbox
//! files, keys, schema) and `util`. Invariants:
//! the object is the SQLCipher file itself (never readable without the
//! DEK); the manifest is written last and is what makes a backup exist, so
//! an interrupted run leaves the previous backup intact and nothing half
//! visible; an unchanged mailbox (same state as the newest backup) is not
//! stored again; object keys carry the mailbox id, never the address; a
//! restore verifies hash and key before it replaces anything, and gives
//! every folder a UIDVALIDITY above any the live mailbox used, so no
//! client ever sees a UID reused.
//!
//! `keyless` copies the file of an owner who is away and checks it later;
//! `scheduler` runs backups inside the server; `retention` decides which
//! old ones go; `progress` draws transfers run by hand.

mod keyless;
mod progress;
pub mod scheduler;
pub mod server;
mod target;

pub use keyless::{backup_closed, verify};

use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::store::StoreError;
use crate::store::db::DbKey;
use crate::store::keys::{self, Credentials, KdfParams};
use crate::store::mailbox::{Limits, Mailbox};
use crate::util::{iso8601_utc, now_unix, random_id};

use progress::Progress;
pub use target::Target;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the snapshot failed its check: {0}")]
    Check(String),
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error("the password does not open this backup")]
    WrongPassword,
    #[error("no backup {0}")]
    NotFound(String),
    #[error("{0}")]
    Busy(String),
}

/// What makes a backup exist: written after the object, read before it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub mailbox_id: String,
    /// Unix seconds; also the object's name.
    pub created_at: i64,
    pub created: String,
    /// SHA-256 of the object's bytes (integrity).
    pub sha256: String,
    /// Identifies the mailbox's state (folders with their UIDNEXT and
    /// HIGHESTMODSEQ, message count): SQLCipher encrypts every copy with
    /// fresh IVs, so equal content never means equal bytes.
    pub state: String,
    pub size: u64,
    pub schema_version: i64,
    pub messages: u64,
    /// The credentials at backup time (wrapped DEK, salt, KDF
    /// parameters), so the password valid then restores it.
    pub credentials: WrappedKey,
    /// Opened with the key and checked (`quick_check`, message count).
    /// A copy taken while its owner was away has no key to check it with
    /// (`messages` is then 0 and `state` names the file's hash); it is
    /// checked at the owner's next login ([`verify`]).
    #[serde(default = "checked")]
    pub verified: bool,
    /// Why the check with the key failed: the copy is not restored, and a
    /// new backup replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad: Option<String>,
}

fn checked() -> bool {
    true
}

/// [`Credentials`] as stored in a manifest (empty for the control
/// database, which the server key opens).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct WrappedKey {
    pub salt: String,
    pub params: KdfParams,
    pub verifier: String,
    pub dek_wrapped: String,
    pub identity_wrapped: String,
    pub public_key: String,
}

impl WrappedKey {
    fn from_credentials(c: &Credentials) -> WrappedKey {
        WrappedKey {
            salt: hex::encode(c.salt),
            params: c.params,
            verifier: hex::encode(c.verifier),
            dek_wrapped: hex::encode(&c.dek_wrapped),
            identity_wrapped: hex::encode(&c.identity_wrapped),
            public_key: c.public_key.clone(),
        }
    }

    fn to_credentials(&self) -> Result<Credentials, BackupError> {
        let bad = |_| BackupError::Damaged("manifest key material is not hex".into());
        let salt: [u8; 16] = hex::decode(&self.salt)
            .map_err(bad)?
            .try_into()
            .map_err(|_| BackupError::Damaged("salt length".into()))?;
        let verifier: [u8; 32] = hex::decode(&self.verifier)
            .map_err(bad)?
            .try_into()
            .map_err(|_| BackupError::Damaged("verifier length".into()))?;
        Ok(Credentials {
            salt,
            params: self.params,
            verifier,
            dek_wrapped: hex::decode(&self.dek_wrapped).map_err(bad)?,
            identity_wrapped: hex::decode(&self.identity_wrapped).map_err(bad)?,
            public_key: self.public_key.clone(),
        })
    }
}

/// What [`backup_now`] did.
#[derive(Debug)]
pub enum Outcome {
    Stored(Manifest),
    /// The newest backup already has these bytes.
    Unchanged(Manifest),
}

fn object_key(mailbox_id: &str, created_at: i64, ext: &str) -> String {
    format!("{mailbox_id}/{created_at:012}.{ext}")
}

fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(h.finalize()), size))
}

/// See [`Manifest::state`]. Every change to a mailbox moves a folder's
/// UIDNEXT or HIGHESTMODSEQ, a folder row itself, or the subscriptions
/// (a `\Recent` claim is session state and does not count).
fn state_of(conn: &rusqlite::Connection) -> Result<String, StoreError> {
    let mut h = Sha256::new();
    let mut stmt = conn.prepare(
        "SELECT id, name, uidvalidity, uidnext, highestmodseq, ifnull(special_use, ''),
                name IN (SELECT name FROM subscriptions)
         FROM folders ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let line = format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, i64>(6)?
        );
        h.update(line.as_bytes());
    }
    let mut stmt = conn.prepare("SELECT name FROM subscriptions ORDER BY name")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        h.update(format!("subscribed\t{}\n", r.get::<_, String>(0)?).as_bytes());
    }
    let n: i64 = conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
    h.update(n.to_string().as_bytes());
    Ok(hex::encode(h.finalize()))
}

fn message_count(mb: &mut Mailbox) -> Result<u64, BackupError> {
    Ok(mb.usage()?.1)
}

/// An empty temp file inside the data directory (same filesystem, so
/// renames are atomic, and covered by the data directory's permissions),
/// with an exclusive `flock` held until the returned handle drops: the
/// server's start-up clean-up of `<data>/tmp` (`clean_temp`) leaves files
/// of a running backup or restore alone.
fn temp_path(data_dir: &Path, what: &str) -> Result<(PathBuf, std::fs::File), BackupError> {
    let dir = data_dir.join("tmp");
    crate::util::create_private_dir(&dir)?;
    let path = dir.join(format!(".{what}-{}", random_id()?));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    f.lock()?;
    Ok((path, f))
}

/// Removes what crashed backups and restores left in `<data>/tmp`; a file
/// whose maker still runs (it holds its lock) stays.
pub fn clean_temp(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir.join("tmp")) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        // SQLite's companions carry no lock of their own: they follow
        // their main file.
        let name = e.file_name().to_string_lossy().into_owned();
        let owner = ["-wal", "-shm", "-journal"]
            .iter()
            .find_map(|sfx| name.strip_suffix(sfx))
            .map_or_else(|| path.clone(), |main| path.with_file_name(main));
        let in_use = std::fs::OpenOptions::new()
            .write(true)
            .open(&owner)
            .is_ok_and(|f| f.try_lock().is_err());
        if !in_use {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Removes a file and SQLite's companions of it.
fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Backs up one open mailbox: under its lock, checkpoint and, unless its
/// state equals the newest backup's, copy the file to a temp file
/// ([`Mailbox::snapshot`]); then, unlocked, open the copy with the DEK and
/// check it, hash, store the object, then the manifest.
pub fn backup_now(
    target: &Target,
    data_dir: &Path,
    mailbox_id: &str,
    mailbox: &std::sync::Mutex<Mailbox>,
    dek: &[u8; 32],
    credentials: &Credentials,
    show_progress: bool,
) -> Result<Outcome, BackupError> {
    let previous = latest(target, mailbox_id)?;
    let (tmp, _held) = temp_path(data_dir, "snapshot")?;
    let result = (|| {
        // Writers wait only for the copy, not for its check or the upload.
        let measured = {
            let mut guard = mailbox.lock().unwrap_or_else(|e| e.into_inner());
            guard.snapshot(&tmp, |conn| {
                let state = state_of(conn)?;
                if let Some(last) = previous.as_ref().filter(|m| m.state == state) {
                    return Ok(ControlFlow::Break(last.clone()));
                }
                let n: i64 = conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
                let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                Ok(ControlFlow::Continue((n as u64, state, version)))
            })?
        };
        let ((messages, state, schema_version), how) = match measured {
            ControlFlow::Break(last) => return Ok(Outcome::Unchanged(last)),
            ControlFlow::Continue(m) => m,
        };
        tracing::debug!(mailbox = mailbox_id, copy = ?how, "snapshot taken");
        // The check and the hash both only read the whole file: side by
        // side. Opening the copy writes nothing (see the guard below).
        let mut copy = open_copy(&tmp, dek)?;
        let (checked, hashed) = std::thread::scope(|scope| {
            let hash = scope.spawn(|| sha256_file(&tmp));
            // A directory target keeps this very file: its writeback may
            // as well start now (the move into place still syncs it).
            if let Target::Dir(_) = target {
                scope.spawn(|| std::fs::File::open(&tmp).and_then(|f| f.sync_data()));
            }
            let checked = check_copy(&mut copy, Some(messages));
            let hashed = hash
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("hashing thread failed")));
            (checked, hashed)
        });
        // A write by the check would reach the file when the copy closes,
        // after the hash.
        let unwritten = crate::store::mailbox::wal_is_empty(&tmp);
        drop(copy);
        checked?;
        if !unwritten? {
            return Err(BackupError::Check("opening the copy changed it".into()));
        }
        let (sha256, size) = hashed?;
        let created_at = next_time(previous.as_ref());
        let manifest = Manifest {
            mailbox_id: mailbox_id.to_string(),
            created_at,
            created: iso8601_utc(created_at),
            sha256,
            state,
            size,
            schema_version,
            messages,
            credentials: WrappedKey::from_credentials(credentials),
            verified: true,
            bad: None,
        };
        publish(target, &manifest, &tmp, show_progress)?;
        Ok(Outcome::Stored(manifest))
    })();
    remove_db_files(&tmp);
    result
}

/// `sealmail backup now ADDR`: backs up `address`'s mailbox with its
/// owner's password, beside a running server (the file is shared with
/// it, not taken). Run by the command on this node, or by the primary for
/// the command run on one of its secondaries.
pub fn by_password(
    config: &crate::config::Config,
    control: &mut crate::store::control::Control,
    address: &str,
    password: &str,
    show_progress: bool,
) -> Result<Outcome, BackupError> {
    let internal = |e: crate::store::control::ControlError| StoreError::Internal(e.to_string());
    let alias = control
        .alias(address)
        .map_err(internal)?
        .filter(|a| a.mailbox)
        .ok_or_else(|| BackupError::NotFound(format!("of {address}: it has no mailbox here")))?;
    let creds = control
        .credentials(alias.id)
        .map_err(internal)?
        .ok_or_else(|| BackupError::NotFound(format!("of {address}: it has no password")))?;
    let keys = keys::unwrap(&creds, password).map_err(|_| BackupError::WrongPassword)?;
    let live = config
        .data_dir
        .join("mailboxes")
        .join(format!("{}.sqlite", alias.mailbox_id));
    let _claim = crate::store::mailbox::FileClaim::try_share(&live)?.ok_or_else(|| {
        BackupError::Busy("a restore of this mailbox is running; try again when it is done".into())
    })?;
    let mailbox =
        std::sync::Mutex::new(Mailbox::open(&live, DbKey::Raw(&keys.dek), config.limits)?);
    let outcome = backup_now(
        &Target::from_config(config)?,
        &config.data_dir,
        &alias.mailbox_id,
        &mailbox,
        &keys.dek,
        &creds,
        show_progress,
    )?;
    // What `backup list` shows, and what tells a lost file from a new one.
    if let Err(e) = control.set_backup_status(alias.id, Ok(())) {
        tracing::warn!(error = %e, "cannot record the backup in the control database");
    }
    Ok(outcome)
}

impl Outcome {
    /// The line `backup now` prints.
    pub fn describe(&self, address: &str) -> String {
        match self {
            Outcome::Stored(m) => format!(
                "backed up {address}: {} messages, {} bytes, {}",
                m.messages, m.size, m.created
            ),
            Outcome::Unchanged(m) => {
                format!("{address} is unchanged since the backup of {}", m.created)
            }
        }
    }
}

/// The name of a new backup: now, but always after `previous` (names must
/// grow even when two backups share a second).
fn next_time(previous: Option<&Manifest>) -> i64 {
    let now = now_unix();
    previous.map_or(now, |last| now.max(last.created_at + 1))
}

/// Uploads the checked copy at `tmp`, then the manifest that makes the
/// backup exist.
fn publish(
    target: &Target,
    manifest: &Manifest,
    tmp: &Path,
    show_progress: bool,
) -> Result<(), BackupError> {
    let (id, at) = (&manifest.mailbox_id, manifest.created_at);
    let progress = show_progress
        .then(|| Progress::start("uploading", manifest.size))
        .flatten();
    target.put_file_moving(&object_key(id, at, "sqlite"), tmp, progress.as_ref())?;
    if let Some(p) = &progress {
        p.finish();
    }
    crate::util::crash_point("backup-before-manifest");
    let json = serde_json::to_vec_pretty(manifest).map_err(std::io::Error::other)?;
    target.put_bytes(&object_key(id, at, "json"), &json)?;
    Ok(())
}

/// Renames the checked copy at `tmp` over the database at `live`, dropping
/// the live file's WAL first (none of it may be applied to the new file).
fn swap_in(tmp: &Path, live: &Path) -> Result<(), BackupError> {
    for suffix in ["-wal", "-shm"] {
        let mut p = live.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
    std::fs::rename(tmp, live)?;
    if let Some(dir) = live.parent() {
        crate::util::fsync_dir(dir)?;
    }
    Ok(())
}

/// Opens a copy with `dek`, runs `quick_check` and compares the count.
fn verify_copy(path: &Path, dek: &[u8; 32], messages: Option<u64>) -> Result<(), BackupError> {
    check_copy(&mut open_copy(path, dek)?, messages)
}

fn open_copy(path: &Path, dek: &[u8; 32]) -> Result<Mailbox, BackupError> {
    Mailbox::open(path, DbKey::Raw(dek), Limits::default())
        .map_err(|e| BackupError::Check(format!("the copy does not open: {e}")))
}

/// `quick_check`, and the message count when one is known.
fn check_copy(copy: &mut Mailbox, messages: Option<u64>) -> Result<(), BackupError> {
    let check: String = copy
        .connection()
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(StoreError::from)?;
    if check != "ok" {
        return Err(BackupError::Check(format!("quick_check: {check}")));
    }
    let n = message_count(copy)?;
    if let Some(messages) = messages
        && n != messages
    {
        return Err(BackupError::Check(format!(
            "{n} messages in the copy, {messages} in the mailbox"
        )));
    }
    Ok(())
}

/// Which backups a retention policy drops: all but the newest of each of
/// the last `daily` days that have backups and the newest of each of the
/// last `weekly` weeks (Monday to Sunday, UTC). The newest backup is always
/// kept. `all` is oldest first, as [`list`] returns it.
pub fn expired(all: &[Manifest], daily: usize, weekly: usize) -> Vec<&Manifest> {
    let day = |m: &Manifest| m.created_at.div_euclid(86_400);
    // 1970-01-01 was a Thursday: +3 makes weeks start on Monday.
    let week = |m: &Manifest| (m.created_at.div_euclid(86_400) + 3).div_euclid(7);
    let mut keep = vec![false; all.len()];
    if let Some(last) = keep.last_mut() {
        *last = true;
    }
    for (bucket, limit) in [
        (&day as &dyn Fn(&Manifest) -> i64, daily),
        (&week as &dyn Fn(&Manifest) -> i64, weekly),
    ] {
        let mut seen = Vec::new();
        for (i, m) in all.iter().enumerate().rev() {
            let b = bucket(m);
            if seen.contains(&b) {
                continue;
            }
            if seen.len() == limit {
                break;
            }
            seen.push(b);
            keep[i] = true;
        }
    }
    all.iter()
        .zip(keep)
        .filter(|(_, k)| !k)
        .map(|(m, _)| m)
        .collect()
}

/// Deletes what [`expired`] names: the manifest first (the backup stops
/// existing), then its object. Then gives up the uploads that never
/// completed (a process killed mid-upload) and are no newer than the
/// newest backup: that backup exists, so nobody is still waiting for them.
pub fn apply_retention(
    target: &Target,
    mailbox_id: &str,
    daily: usize,
    weekly: usize,
) -> Result<usize, BackupError> {
    let all = list(target, mailbox_id)?;
    let gone = expired(&all, daily, weekly);
    for m in &gone {
        target.delete(&object_key(mailbox_id, m.created_at, "json"))?;
        target.delete(&object_key(mailbox_id, m.created_at, "sqlite"))?;
    }
    if let Some(newest) = all.last() {
        // Keys start with their backup's time: everything named up to the
        // newest backup's second (a killed run may have used that name
        // too; aborting its upload leaves the complete object alone).
        let after_newest = object_key(mailbox_id, newest.created_at + 1, "");
        let abandoned = target.abandon_before(&format!("{mailbox_id}/"), &after_newest)?;
        if abandoned > 0 {
            tracing::info!(
                mailbox = mailbox_id,
                abandoned,
                "incomplete uploads of earlier backups removed"
            );
        }
    }
    Ok(gone.len())
}

/// Every complete backup of a mailbox (those with a manifest), oldest
/// first.
pub fn list(target: &Target, mailbox_id: &str) -> Result<Vec<Manifest>, BackupError> {
    let mut out = Vec::new();
    for key in manifest_keys(target, mailbox_id)? {
        out.extend(read_manifest(target, mailbox_id, &key)?);
    }
    out.sort_by_key(|m| m.created_at);
    Ok(out)
}

/// The newest complete backup, reading only its manifest (names sort by
/// time: they are zero-padded Unix seconds).
pub fn latest(target: &Target, mailbox_id: &str) -> Result<Option<Manifest>, BackupError> {
    for key in manifest_keys(target, mailbox_id)?.iter().rev() {
        if let Some(m) = read_manifest(target, mailbox_id, key)? {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

fn manifest_keys(target: &Target, mailbox_id: &str) -> Result<Vec<String>, BackupError> {
    let mut keys = target.list(&format!("{mailbox_id}/"))?;
    keys.retain(|k| k.ends_with(".json"));
    Ok(keys)
}

/// A manifest, or `None` (logged) if it cannot be read as one of this
/// mailbox's.
fn read_manifest(
    target: &Target,
    mailbox_id: &str,
    key: &str,
) -> Result<Option<Manifest>, BackupError> {
    let bytes = target.get_bytes(key)?;
    match serde_json::from_slice::<Manifest>(&bytes) {
        Ok(m) if m.mailbox_id == mailbox_id => Ok(Some(m)),
        Ok(_) => Ok(None),
        Err(e) => {
            tracing::warn!(%key, error = %e, "unreadable backup manifest skipped");
            Ok(None)
        }
    }
}

/// Restores `manifest`'s backup over the mailbox file at `live_path`,
/// keyed with `current_dek` (the key the alias' credentials hold now):
/// download to a temp file, verify the hash, open it with the key the
/// password unwraps from the manifest, check it, re-key it if the key has
/// changed since, raise every UIDVALIDITY above the live file's, then swap
/// it in with a rename. The server must not have the mailbox open.
pub fn restore(
    target: &Target,
    data_dir: &Path,
    manifest: &Manifest,
    password: &str,
    live_path: &Path,
    current_dek: &[u8; 32],
    show_progress: bool,
) -> Result<u64, BackupError> {
    // The key the backup was taken under: a password change rewraps the
    // mailbox's data key and keeps it, so the current key opens every
    // backup of the mailbox, whatever password was current then; the
    // manifest's own wrapping opens it with the password of its time.
    let creds = manifest.credentials.to_credentials()?;
    let dek: Zeroizing<[u8; 32]> = match keys::unwrap(&creds, password) {
        Ok(unwrapped) => Zeroizing::new(*unwrapped.dek),
        Err(keys::KeyError::WrongPassword) => Zeroizing::new(*current_dek),
        Err(other) => return Err(BackupError::Damaged(other.to_string())),
    };
    let (tmp, _held) = temp_path(data_dir, "restore")?;
    let result = (|| {
        let progress = show_progress
            .then(|| Progress::start("downloading", manifest.size))
            .flatten();
        target.get_file(
            &object_key(&manifest.mailbox_id, manifest.created_at, "sqlite"),
            &tmp,
            progress.as_ref(),
        )?;
        if let Some(p) = &progress {
            p.finish();
        }
        let (sha, size) = sha256_file(&tmp)?;
        if sha != manifest.sha256 || size != manifest.size {
            return Err(BackupError::Damaged(format!(
                "hash or size differs from the manifest ({size} bytes)"
            )));
        }
        if let Some(why) = &manifest.bad {
            return Err(BackupError::Damaged(format!(
                "it failed its check with the key: {why}"
            )));
        }
        verify_copy(&tmp, &dek, manifest.verified.then_some(manifest.messages))?;
        let floor = live_uidvalidity(live_path, current_dek);
        let mut copy = Mailbox::open(&tmp, DbKey::Raw(&dek), Limits::default())?;
        copy.raise_uidvalidity(floor)?;
        let conn = copy.connection();
        if *dek != *current_dek {
            // The password was reset since: the file takes today's key.
            conn.execute_batch(&format!(
                "PRAGMA rekey = \"x'{}'\";",
                hex::encode(current_dek)
            ))
            .map_err(StoreError::from)?;
        }
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(StoreError::from)?;
        drop(copy);
        swap_in(&tmp, live_path)?;
        tracing::info!(
            mailbox = %manifest.mailbox_id,
            backup = manifest.created_at,
            messages = manifest.messages,
            "mailbox restored"
        );
        Ok(manifest.messages)
    })();
    remove_db_files(&tmp);
    result
}

/// The highest UIDVALIDITY the live mailbox has used (0 if unreadable).
fn live_uidvalidity(path: &Path, dek: &[u8; 32]) -> i64 {
    if !path.exists() {
        return 0;
    }
    let Ok(mut mb) = Mailbox::open(path, DbKey::Raw(dek), Limits::default()) else {
        return 0;
    };
    mb.connection()
        .query_row(
            "SELECT max(ifnull((SELECT max(uidvalidity) FROM folders), 0),
                        ifnull((SELECT value FROM counters WHERE name = 'uidvalidity'), 0))",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: i64) -> Manifest {
        Manifest {
            mailbox_id: "m".into(),
            created_at: t,
            created: String::new(),
            sha256: String::new(),
            state: String::new(),
            size: 0,
            schema_version: 1,
            messages: 0,
            credentials: WrappedKey {
                salt: String::new(),
                params: KdfParams::default(),
                verifier: String::new(),
                dek_wrapped: String::new(),
                identity_wrapped: String::new(),
                public_key: String::new(),
            },
            verified: true,
            bad: None,
        }
    }

    #[test]
    fn clean_temp_spares_files_in_use() {
        let data = tempfile::tempdir().unwrap();
        let (held, lock) = temp_path(data.path(), "restore").unwrap();
        let mut held_wal = held.clone().into_os_string();
        held_wal.push("-wal");
        std::fs::write(&held_wal, b"x").unwrap();
        let stale = data.path().join("tmp/.snapshot-old");
        std::fs::write(&stale, b"x").unwrap();
        std::fs::write(data.path().join("tmp/.snapshot-old-wal"), b"x").unwrap();
        clean_temp(data.path());
        assert!(held.exists() && PathBuf::from(&held_wal).exists());
        assert!(!stale.exists());
        assert!(!data.path().join("tmp/.snapshot-old-wal").exists());
        drop(lock);
        clean_temp(data.path());
        assert!(!held.exists());
    }

    #[test]
    fn retention_keeps_daily_and_weekly() {
        let day = 86_400;
        // Two backups a day for 60 days.
        let all: Vec<Manifest> = (0..120).map(|i| at(1_000 * day + i * day / 2)).collect();
        let gone: Vec<i64> = expired(&all, 7, 4).iter().map(|m| m.created_at).collect();
        let kept: Vec<i64> = all
            .iter()
            .map(|m| m.created_at)
            .filter(|t| !gone.contains(t))
            .collect();
        assert!(kept.contains(&all.last().unwrap().created_at));
        // 7 days + up to 4 older weekly ones (the newest week overlaps).
        assert!((8..=11).contains(&kept.len()), "{}", kept.len());
        assert!(
            kept.windows(2).all(|w| w[0] / day != w[1] / day),
            "one per day"
        );
        assert_eq!(expired(&all[..1], 7, 4).len(), 0);
        assert_eq!(expired(&all, 0, 0).len(), all.len() - 1, "the newest stays");
    }
}
