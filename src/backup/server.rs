//! Backups of what is not a mailbox: the control database (aliases,
//! credentials, domains, DKIM keys), as a verified snapshot still encrypted
//! under the server key, and the sealed spool, each file as it is (already
//! encrypted to its owner's key).
//!
//! Imports `backup` (manifests, targets, retention), `store::{db, spool}`
//! and `util`. Invariants: the control snapshot is a `VACUUM INTO` copy
//! checked with the server key before upload and, like a mailbox's, exists
//! only once its manifest is written; it is useless without `server.key`,
//! which is never uploaded. A spool object is deleted only when its file
//! left the spool and a mailbox backup taken after the upload holds it
//! (a spool file leaves only by import at a login, before any backup of
//! that session).

use std::path::Path;

use sha2::{Digest, Sha256};

use super::{
    BackupError, Manifest, Outcome, Target, WrappedKey, latest, next_time, object_key, publish,
    remove_db_files, sha256_file, swap_in, temp_path,
};
use crate::store::StoreError;
use crate::store::db::{self, DbKey};
use crate::util::{iso8601_utc, now_unix};

/// The name the control database's backups go under, in place of a
/// mailbox id (those are hex).
pub const CONTROL: &str = "control";

/// Tables whose content is the control database's state; `usage` and
/// `backup_status` change on their own and are not worth a new backup.
const STATE_TABLES: [&str; 4] = ["domains", "aliases", "credentials", "dkim_keys"];

fn control_state(conn: &rusqlite::Connection) -> Result<(String, u64), StoreError> {
    let mut h = Sha256::new();
    for table in STATE_TABLES {
        h.update(table.as_bytes());
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY rowid"))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            for i in 0..columns {
                let v: rusqlite::types::Value = r.get(i)?;
                h.update(format!("{v:?}\u{1f}").as_bytes());
            }
            h.update(b"\x1e");
        }
    }
    let aliases: i64 = conn.query_row("SELECT count(*) FROM aliases", [], |r| r.get(0))?;
    Ok((hex::encode(h.finalize()), aliases as u64))
}

/// Backs up `<data>/control.sqlite`: a consistent copy (SQLite's read
/// snapshot; the server keeps writing meanwhile), checked with the server
/// key, skipped when its state equals the newest backup's.
pub fn backup_control(
    target: &Target,
    data_dir: &Path,
    server_key: &[u8; 32],
) -> Result<Outcome, BackupError> {
    let previous = latest(target, CONTROL)?;
    let conn = db::open(&data_dir.join("control.sqlite"), DbKey::Raw(server_key))
        .map_err(|e| StoreError::Internal(format!("control database: {e}")))?;
    let (state, aliases) = control_state(&conn)?;
    if let Some(last) = previous.as_ref().filter(|m| m.state == state) {
        return Ok(Outcome::Unchanged(last.clone()));
    }
    let (tmp, _held) = temp_path(data_dir, "control")?;
    let result = (|| {
        conn.execute("VACUUM INTO ?1", [tmp.to_string_lossy().as_ref()])
            .map_err(StoreError::from)?;
        let schema_version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(StoreError::from)?;
        check_control(&tmp, server_key, aliases)?;
        let (sha256, size) = sha256_file(&tmp)?;
        let created_at = next_time(previous.as_ref());
        let manifest = Manifest {
            mailbox_id: CONTROL.to_string(),
            created_at,
            created: iso8601_utc(created_at),
            sha256,
            state,
            size,
            schema_version,
            messages: aliases,
            // Opened with the server key, not a password.
            credentials: WrappedKey::default(),
            verified: true,
            bad: None,
        };
        publish(target, &manifest, &tmp, false)?;
        Ok(Outcome::Stored(manifest))
    })();
    remove_db_files(&tmp);
    result
}

/// Opens a control copy with the server key: `quick_check`, alias count.
fn check_control(path: &Path, server_key: &[u8; 32], aliases: u64) -> Result<(), BackupError> {
    let copy = db::open(path, DbKey::Raw(server_key))
        .map_err(|e| BackupError::Check(format!("the copy does not open: {e}")))?;
    let check: String = copy
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(StoreError::from)?;
    if check != "ok" {
        return Err(BackupError::Check(format!("quick_check: {check}")));
    }
    let n: i64 = copy
        .query_row("SELECT count(*) FROM aliases", [], |r| r.get(0))
        .map_err(StoreError::from)?;
    if n as u64 != aliases {
        return Err(BackupError::Check(format!(
            "{n} aliases in the copy, {aliases} in the database"
        )));
    }
    Ok(())
}

/// Replaces `<data>/control.sqlite` with `manifest`'s backup: download,
/// hash, open with the server key, check, rename over the live file. The
/// server must be stopped (the caller holds the serve lock).
pub fn restore_control(
    target: &Target,
    data_dir: &Path,
    manifest: &Manifest,
    server_key: &[u8; 32],
) -> Result<u64, BackupError> {
    let (tmp, _held) = temp_path(data_dir, "control-restore")?;
    let result = (|| {
        target.get_file(
            &object_key(CONTROL, manifest.created_at, "sqlite"),
            &tmp,
            None,
        )?;
        let (sha, size) = sha256_file(&tmp)?;
        if sha != manifest.sha256 || size != manifest.size {
            return Err(BackupError::Damaged(format!(
                "hash or size differs from the manifest ({size} bytes)"
            )));
        }
        check_control(&tmp, server_key, manifest.messages).map_err(|e| match e {
            BackupError::Check(why) => BackupError::Damaged(format!(
                "{why} (is this data directory's server.key the one the backup was made with? Give the lost server's with --server-key)"
            )),
            other => other,
        })?;
        swap_in(&tmp, &data_dir.join("control.sqlite"))?;
        Ok(manifest.messages)
    })();
    remove_db_files(&tmp);
    result
}

/// What [`sync_spool`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SpoolSync {
    pub uploaded: usize,
    pub pruned: usize,
}

/// Object key of a spool file: `spool/<mailbox id>/<upload time>.<name>`.
fn spool_key(mailbox_id: &str, uploaded: i64, name: &str) -> String {
    format!("spool/{mailbox_id}/{uploaded:012}.{name}")
}

/// Uploads every sealed spool file the target does not have yet, and
/// deletes the objects of files that were imported since and are now
/// inside a newer mailbox backup.
pub fn sync_spool(target: &Target, data_dir: &Path) -> Result<SpoolSync, BackupError> {
    let mut done = SpoolSync::default();
    let mut ids: Vec<String> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(data_dir.join("spool")) {
        ids.extend(
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string)),
        );
    }
    // Mailboxes whose spool is empty locally may still have objects.
    for key in target.list("spool/")? {
        if let Some(id) = key.strip_prefix("spool/").and_then(|k| k.split('/').next())
            && !ids.iter().any(|i| i == id)
        {
            ids.push(id.to_string());
        }
    }
    for id in ids {
        let local = crate::store::spool::pending(data_dir, &id)?;
        let remote: Vec<(String, i64, String)> = target
            .list(&format!("spool/{id}/"))?
            .into_iter()
            .filter_map(|key| {
                let file = key.rsplit('/').next()?.to_string();
                let (at, name) = file.split_once('.')?;
                Some((key.clone(), at.parse().ok()?, name.to_string()))
            })
            .collect();
        let now = now_unix();
        for p in &local {
            if !remote.iter().any(|(_, _, name)| *name == p.name) {
                target.put_file(&spool_key(&id, now, &p.name), &p.path, None)?;
                done.uploaded += 1;
            }
        }
        let gone: Vec<&(String, i64, String)> = remote
            .iter()
            .filter(|(_, _, name)| !local.iter().any(|p| p.name == *name))
            .collect();
        if gone.is_empty() {
            continue;
        }
        let newest = latest(target, &id)?.map(|m| m.created_at);
        for (key, uploaded, _) in gone {
            if newest.is_some_and(|b| b > *uploaded) {
                target.delete(key)?;
                done.pruned += 1;
            }
        }
    }
    Ok(done)
}

/// Puts back spool files from the target that are missing locally (after a
/// loss of the data directory). Returns how many. A file that was imported
/// and backed up inside its mailbox since, but whose object was not pruned
/// yet, comes back too and is imported again at the next login.
pub fn restore_spool(target: &Target, data_dir: &Path) -> Result<usize, BackupError> {
    let mut restored = 0;
    for key in target.list("spool/")? {
        let mut parts = key.split('/').skip(1);
        let (Some(id), Some(file)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Some((_, name)) = file.split_once('.') else {
            continue;
        };
        let dir = crate::store::spool::dir(data_dir, id);
        let dest = dir.join(name);
        if dest.exists() {
            continue;
        }
        crate::util::create_private_dir(&dir)?;
        // Through a dot-file, which the spool ignores until the rename.
        let tmp = dir.join(format!(".{name}.restore"));
        target.get_file(&key, &tmp, None)?;
        std::fs::rename(&tmp, &dest)?;
        crate::util::fsync_dir(&dir)?;
        restored += 1;
    }
    Ok(restored)
}

/// What [`restore_mailboxes`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MailboxesPut {
    pub restored: usize,
    /// No good backup of the mailbox exists.
    pub missing: usize,
    /// The file is there already: left alone.
    pub present: usize,
}

/// Puts back, for each of `mailbox_ids` whose file is missing, its newest
/// backup that did not fail a check: downloaded, hash compared, renamed
/// into `mailboxes/`, with the mark ([`crate::store::mailbox::restored_mark`])
/// that makes the first open with the owner's key give its folders new
/// UIDVALIDITY values. No key is needed: the file is the encrypted file.
pub fn restore_mailboxes(
    target: &Target,
    data_dir: &Path,
    mailbox_ids: &[String],
) -> Result<MailboxesPut, BackupError> {
    let dir = data_dir.join("mailboxes");
    crate::util::create_private_dir(&dir)?;
    let mut done = MailboxesPut::default();
    for id in mailbox_ids {
        let live = dir.join(format!("{id}.sqlite"));
        if live.exists() {
            done.present += 1;
            continue;
        }
        let all = super::list(target, id)?;
        let Some(newest) = all.iter().rev().find(|m| m.bad.is_none()) else {
            done.missing += 1;
            continue;
        };
        let (tmp, _held) = temp_path(data_dir, "restore")?;
        let result = (|| {
            target.get_file(&object_key(id, newest.created_at, "sqlite"), &tmp, None)?;
            let (sha, size) = sha256_file(&tmp)?;
            if sha != newest.sha256 || size != newest.size {
                return Err(BackupError::Damaged(format!(
                    "the backup of mailbox {id}: hash or size differs from its manifest"
                )));
            }
            std::fs::File::open(&tmp)?.sync_all()?;
            // The mark first: a file without it would keep its old
            // UIDVALIDITY values.
            crate::util::write_durable(&crate::store::mailbox::restored_mark(&live), b"", 0o600)?;
            std::fs::rename(&tmp, &live)?;
            crate::util::fsync_dir(&dir)?;
            Ok(())
        })();
        remove_db_files(&tmp);
        result?;
        done.restored += 1;
    }
    Ok(done)
}
