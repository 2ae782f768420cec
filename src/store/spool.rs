//! The sealed spool: mail for an alias whose key is not in memory, sealed
//! with age to the alias' X25519 public key, kept until its owner next logs
//! in.
//!
//! Imports `util` and age. Invariants: a spool file appears only whole
//! (temp file, fsync, rename; acknowledged after a directory fsync) and
//! only sealed; the server
//! never holds the identity that opens it except during an unlock; file
//! names are `<unix time>-<nanoseconds>-<random>.age` so they sort by arrival and never
//! collide.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::store::types::Placement;
use crate::util::{create_private_dir, now_unix, random_id};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the alias' public key is not a valid age recipient")]
    BadRecipient,
    #[error("sealing failed: {0}")]
    Seal(String),
    #[error("the sealed file {0} does not open with this key")]
    Open(PathBuf),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The spool directory of one mailbox.
pub fn dir(data: &Path, mailbox_id: &str) -> PathBuf {
    data.join("spool").join(mailbox_id)
}

/// A message sealed into a temporary file of a spool and synced, not yet
/// seen by the import (its name starts with a dot); removed if dropped
/// before [`Sealed::place`]. Sealing and syncing, the slow part, happen
/// before the caller takes its alias' gate; placing is a rename.
pub struct Sealed {
    tmp: PathBuf,
    dir: PathBuf,
    placed: bool,
}

/// Seals `message` to `public_key` into a temporary file of the mailbox's
/// spool, synced to disk; where it is to be filed (`to`) goes inside the
/// seal (the operator does not learn it).
pub fn prepare(
    data: &Path,
    mailbox_id: &str,
    public_key: &str,
    message: &[u8],
    to: &Placement,
) -> Result<Sealed, SpoolError> {
    let bytes = seal(public_key, message, to)?;
    write_temp(data, mailbox_id, &bytes)
}

/// Seals `message` to the age recipient `public_key`, marked with where it
/// is to be filed unless that is INBOX without flags.
pub fn seal(public_key: &str, message: &[u8], to: &Placement) -> Result<Vec<u8>, SpoolError> {
    let mark = if *to == Placement::default() {
        Vec::new()
    } else if *to == Placement::junk() {
        JUNK_MARK.to_vec()
    } else {
        let mut m = PLACEMENT_MARK.to_vec();
        m.extend_from_slice(&serde_json::to_vec(to).map_err(|e| SpoolError::Seal(e.to_string()))?);
        m.push(b'\n');
        m
    };
    seal_parts(public_key, &[&mark, message])
}

/// The first bytes of a sealed message for the Junk folder: a NUL, which
/// no message begins with, and a word; [`take_mark`] removes them.
const JUNK_MARK: &[u8] = b"\0junk\n";
/// The first bytes of a sealed message filed elsewhere: a NUL, a word, and
/// its [`Placement`] as one line of JSON.
const PLACEMENT_MARK: &[u8] = b"\0placement ";

fn seal_parts(public_key: &str, parts: &[&[u8]]) -> Result<Vec<u8>, SpoolError> {
    use std::io::Write;
    let recipient =
        age::x25519::Recipient::from_str(public_key).map_err(|_| SpoolError::BadRecipient)?;
    let seal_err = |e: &dyn std::fmt::Display| SpoolError::Seal(e.to_string());
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(|e| seal_err(&e))?;
    let size: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(size + size / 1024 * 16 + 256);
    let mut writer = encryptor.wrap_output(&mut out).map_err(|e| seal_err(&e))?;
    for part in parts {
        writer.write_all(part).map_err(|e| seal_err(&e))?;
    }
    writer.finish().map_err(|e| seal_err(&e))?;
    Ok(out)
}

/// An opened sealed message without its mark, and where it is to be
/// filed. A mark that does not read is INBOX (never lose the message).
pub fn take_mark(mut plain: Vec<u8>) -> (Vec<u8>, Placement) {
    if plain.starts_with(JUNK_MARK) {
        plain.drain(..JUNK_MARK.len());
        return (plain, Placement::junk());
    }
    if plain.starts_with(PLACEMENT_MARK)
        && let Some(end) = plain.iter().position(|&b| b == b'\n')
    {
        let json = plain.get(PLACEMENT_MARK.len()..end).unwrap_or_default();
        let to = serde_json::from_slice(json).unwrap_or_default();
        plain.drain(..=end);
        return (plain, to);
    }
    (plain, Placement::default())
}

/// The first line of every age file.
const AGE_HEADER: &[u8] = b"age-encryption.org/v1\n";

/// Like [`prepare`] for a message sealed elsewhere (a cluster secondary
/// while its primary was away): refused unless it is an age file.
pub fn prepare_sealed(data: &Path, mailbox_id: &str, sealed: &[u8]) -> Result<Sealed, SpoolError> {
    if !sealed.starts_with(AGE_HEADER) {
        return Err(SpoolError::Seal(
            "the sealed message is not an age file".into(),
        ));
    }
    write_temp(data, mailbox_id, sealed)
}

fn write_temp(data: &Path, mailbox_id: &str, bytes: &[u8]) -> Result<Sealed, SpoolError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let d = dir(data, mailbox_id);
    if !d.exists() {
        create_private_dir(&d)?;
        crate::util::fsync_dir(d.parent().unwrap_or(data))?;
    }
    let sealed = Sealed {
        tmp: d.join(format!(".seal.tmp-{}", random_id()?)),
        dir: d,
        placed: false,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&sealed.tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(sealed)
}

impl Sealed {
    /// Names the file by its arrival, now, so names sort in the order the
    /// callers placed them, and makes it visible to the import. It is
    /// durable once the spool directory is synced ([`Sealed::dir`]).
    pub fn place(mut self) -> Result<PathBuf, SpoolError> {
        // Seconds, then nanoseconds: names sort in arrival order, so the
        // import keeps it.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = self.dir.join(format!(
            "{:012}-{nanos:09}-{}.age",
            now_unix(),
            random_id()?
        ));
        fs::rename(&self.tmp, &path)?;
        self.placed = true;
        Ok(path)
    }

    /// The spool directory the file goes to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        if !self.placed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A sealed file waiting for import.
pub struct Pending {
    pub path: PathBuf,
    /// The file name, recorded in the mailbox when imported.
    pub name: String,
    /// Arrival time, from the name.
    pub arrived: i64,
}

/// Sealed files of a mailbox, oldest first. Leftover temp files of an
/// interrupted seal are ignored (they were never acknowledged).
pub fn pending(data: &Path, mailbox_id: &str) -> io::Result<Vec<Pending>> {
    let d = dir(data, mailbox_id);
    let entries = match fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".age").filter(|_| !name.starts_with('.')) else {
            continue;
        };
        let arrived = stem
            .split('-')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(now_unix);
        out.push(Pending {
            path: entry.path(),
            name,
            arrived,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Bytes of sealed mail waiting (close to the messages' sizes: age adds
/// a small header and 16 bytes per 64 KiB).
pub fn pending_bytes(data: &Path, mailbox_id: &str) -> io::Result<u64> {
    let mut total = 0;
    for p in pending(data, mailbox_id)? {
        match fs::metadata(&p.path) {
            Ok(m) => total += m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// Bytes of sealed mail waiting for every mailbox (`pending_bytes` of
/// each directory under `spool/`).
pub fn all_pending_bytes(data: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(data.join("spool")) else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|id| pending_bytes(data, &id).ok())
        .sum()
}

/// True if the mailbox has sealed mail waiting.
pub fn has_pending(data: &Path, mailbox_id: &str) -> bool {
    pending(data, mailbox_id)
        .map(|p| !p.is_empty())
        .unwrap_or(true)
}

/// Opens one sealed file with the alias' identity.
pub fn open(p: &Pending, identity: &str) -> Result<Vec<u8>, SpoolError> {
    let id =
        age::x25519::Identity::from_str(identity).map_err(|_| SpoolError::Open(p.path.clone()))?;
    let sealed = fs::read(&p.path)?;
    age::decrypt(&id, &sealed).map_err(|_| SpoolError::Open(p.path.clone()))
}

/// Removes imported files of one mailbox durably: every unlink, then one
/// sync of the directory.
pub fn remove(files: &[&Pending]) -> io::Result<()> {
    for p in files {
        match fs::remove_file(&p.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if let Some(d) = files.first().and_then(|p| p.path.parent()) {
        crate::util::fsync_dir(d)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Junk mark is inside the seal, and only a marked file has it.
    #[test]
    fn sealed_file_opens_only_with_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let public = id.to_public().to_string();
        prepare(
            dir.path(),
            "mbx",
            &public,
            b"Subject: canary-xyz\r\n\r\nhi",
            &Placement::junk(),
        )
        .unwrap()
        .place()
        .unwrap();
        let p = pending(dir.path(), "mbx").unwrap();
        assert_eq!(p.len(), 1);
        let raw = fs::read(&p[0].path).unwrap();
        assert!(!raw.windows(10).any(|w| w == b"canary-xyz"));
        assert!(!raw.windows(4).any(|w| w == b"junk"));
        use age::secrecy::ExposeSecret;
        let secret = id.to_string();
        let plain = open(&p[0], secret.expose_secret()).unwrap();
        assert_eq!(
            take_mark(plain),
            (b"Subject: canary-xyz\r\n\r\nhi".to_vec(), Placement::junk())
        );
        assert_eq!(
            take_mark(b"Subject: junk\r\n\r\n".to_vec()),
            (b"Subject: junk\r\n\r\n".to_vec(), Placement::default())
        );
        // A folder and flags a filter chose travel inside the seal.
        let to = Placement {
            folder: Some("Work/Reports".into()),
            flags: crate::store::types::Flags {
                system: crate::store::types::Flags::SEEN,
                keywords: vec!["$Label1".into()],
            },
            create: true,
        };
        let sealed = seal(&public, b"Subject: s\r\n\r\n", &to).unwrap();
        assert!(!sealed.windows(4).any(|w| w == b"Work"));
        let plain = age::decrypt(&id, &sealed).unwrap();
        assert_eq!(take_mark(plain), (b"Subject: s\r\n\r\n".to_vec(), to));
        // A mark that does not read files into INBOX.
        assert_eq!(
            take_mark(b"\0placement {bad\nSubject: s\r\n\r\n".to_vec()),
            (b"Subject: s\r\n\r\n".to_vec(), Placement::default())
        );
        assert!(open(&p[0], other.to_string().expose_secret()).is_err());
    }

    /// A prepared file is invisible to the import until placed, is named
    /// by when it was placed (not prepared), and leaves nothing behind if
    /// it is never placed.
    #[test]
    fn prepared_files_appear_when_placed_in_placing_order() {
        let dir = tempfile::tempdir().unwrap();
        let public = age::x25519::Identity::generate().to_public().to_string();
        let first = prepare(
            dir.path(),
            "mbx",
            &public,
            b"Subject: first\r\n\r\n",
            &Placement::default(),
        )
        .unwrap();
        let second = prepare(
            dir.path(),
            "mbx",
            &public,
            b"Subject: second\r\n\r\n",
            &Placement::default(),
        )
        .unwrap();
        let dropped = prepare(
            dir.path(),
            "mbx",
            &public,
            b"Subject: never\r\n\r\n",
            &Placement::default(),
        )
        .unwrap();
        assert!(pending(dir.path(), "mbx").unwrap().is_empty());
        let second = second.place().unwrap();
        let first = first.place().unwrap();
        drop(dropped);
        let names: Vec<PathBuf> = pending(dir.path(), "mbx")
            .unwrap()
            .into_iter()
            .map(|p| p.path)
            .collect();
        assert_eq!(names, [second, first]);
        let all = fs::read_dir(super::dir(dir.path(), "mbx")).unwrap().count();
        assert_eq!(all, 2, "no temporary file is left");
    }
}
