//! Backups without the owner's key: the encrypted file of a mailbox the
//! server has closed, copied as it is, and its check with the key at the
//! owner's next login.
//!
//! Imports the parent and `store::mailbox` (the file claim and its log).
//! Invariants: the file is copied under an exclusive claim, so nothing
//! writes it meanwhile; such a backup is unverified until [`verify`]
//! opens it with the key, and marked bad (never restored) if that fails.

use std::path::Path;

use super::*;

/// Backs up the mailbox file at `live` without its key, for an owner who
/// is away: the server has the file closed, so claimed whole
/// ([`FileClaim::try_take`]) nothing writes it while it is copied; a file
/// whose write-ahead log is not empty (an unclean stop) waits for the
/// owner's key. The copy is unverified until [`verify`] checks it.
/// `None`: nothing to do (no file yet, or the server has it open now and
/// backs it up with the key).
pub fn backup_closed(
    target: &Target,
    data_dir: &Path,
    mailbox_id: &str,
    live: &Path,
    credentials: &Credentials,
) -> Result<Option<Outcome>, BackupError> {
    if !live.exists() {
        return Ok(None);
    }
    let previous = latest(target, mailbox_id)?;
    let (tmp, _held) = temp_path(data_dir, "snapshot")?;
    let result = (|| {
        {
            let Some(_claim) = crate::store::mailbox::FileClaim::try_take(live)? else {
                return Ok(None);
            };
            if !crate::store::mailbox::wal_is_empty(live)? {
                return Err(BackupError::Check(
                    "its write-ahead log holds changes not yet in the file (the server stopped \
                     uncleanly): it is backed up with the owner's key at their next login"
                        .into(),
                ));
            }
            std::fs::copy(live, &tmp)?;
        }
        let (sha256, size) = sha256_file(&tmp)?;
        // Nothing wrote the file since the newest backup: same bytes.
        if let Some(last) = previous.as_ref().filter(|m| m.sha256 == sha256) {
            return Ok(Some(Outcome::Unchanged(last.clone())));
        }
        let created_at = next_time(previous.as_ref());
        let manifest = Manifest {
            mailbox_id: mailbox_id.to_string(),
            created_at,
            created: iso8601_utc(created_at),
            state: format!("file:{sha256}"),
            sha256,
            size,
            schema_version: previous.as_ref().map_or(0, |m| m.schema_version),
            messages: 0,
            credentials: WrappedKey::from_credentials(credentials),
            verified: false,
            bad: None,
        };
        publish(target, &manifest, &tmp, false)?;
        Ok(Some(Outcome::Stored(manifest)))
    })();
    remove_db_files(&tmp);
    result
}

/// Checks with the owner's key a backup copied without it: downloads it,
/// compares the hash, opens it, runs `quick_check`, and rewrites its
/// manifest as verified (with its message count and state, so an
/// unchanged mailbox is not stored again) or as bad (with why).
pub fn verify(
    target: &Target,
    data_dir: &Path,
    manifest: &Manifest,
    dek: &[u8; 32],
) -> Result<Manifest, BackupError> {
    let (id, at) = (&manifest.mailbox_id, manifest.created_at);
    let (tmp, _held) = temp_path(data_dir, "verify")?;
    let result = (|| {
        target.get_file(&object_key(id, at, "sqlite"), &tmp, None)?;
        let checked = (|| {
            let (sha, size) = sha256_file(&tmp)?;
            if sha != manifest.sha256 || size != manifest.size {
                return Err(BackupError::Damaged(format!(
                    "hash or size differs from the manifest ({size} bytes)"
                )));
            }
            let mut copy = open_copy(&tmp, dek)?;
            check_copy(&mut copy, None)?;
            let messages = message_count(&mut copy)?;
            let conn = copy.connection();
            let state = state_of(conn)?;
            let version: i64 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(StoreError::from)?;
            Ok::<_, BackupError>((messages, state, version))
        })();
        let mut updated = manifest.clone();
        match checked {
            Ok((messages, state, version)) => {
                updated.verified = true;
                updated.messages = messages;
                updated.state = state;
                updated.schema_version = version;
            }
            Err(e) => updated.bad = Some(e.to_string()),
        }
        let json = serde_json::to_vec_pretty(&updated).map_err(std::io::Error::other)?;
        target.put_bytes(&object_key(id, at, "json"), &json)?;
        Ok(updated)
    })();
    remove_db_files(&tmp);
    result
}
