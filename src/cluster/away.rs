//! Mail for a secondary's recipients while its primary is away: the
//! directory the secondary keeps (which aliases exist, where their mail
//! goes, the public keys that seal it) and its own spool of sealed mail,
//! shipped to the primary when the link is back.
//!
//! Imports `openpgp`, `store` (the interface: `Directory`, `seal`) and
//! `util`. Invariants: the directory holds no key that opens a mailbox; a
//! message is encrypted to its owner's OpenPGP key when they asked for it
//! and sealed to its alias' public key before it touches the disk, and its
//! file and directory are synced before the delivery answers; a spool file
//! goes only after the primary acknowledged it (`secondary::ship`); while
//! away, only aliases the directory names are accepted, and anything else
//! is a temporary failure, never a refusal.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::store::StoreError;
use crate::store::types::{Delivery, Directory, Recipient};
use crate::util::{create_private_dir, fsync_dir, now_unix, random_id, write_durable};

/// The directory's copy in the data directory.
pub const DIRECTORY_FILE: &str = "cluster.directory";
/// The spool of mail taken while the primary was away.
pub const SPOOL_DIR: &str = "cluster-spool";

pub struct Away {
    data_dir: PathBuf,
    directory: Mutex<Option<Directory>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unavailable() -> StoreError {
    StoreError::Unavailable("the storage primary is unreachable".into())
}

impl Away {
    /// Loads the directory kept by the last run, if any; spool files a
    /// crash left half-written are removed.
    pub fn open(data_dir: &Path) -> io::Result<Away> {
        let spool = data_dir.join(SPOOL_DIR);
        create_private_dir(&spool)?;
        for entry in fs::read_dir(&spool)? {
            let path = entry?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
            {
                fs::remove_file(&path)?;
            }
        }
        let directory = match fs::read(data_dir.join(DIRECTORY_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(_) => None,
        };
        Ok(Away {
            data_dir: data_dir.to_path_buf(),
            directory: Mutex::new(directory),
        })
    }

    /// Keeps the primary's directory, in memory and on disk (written only
    /// when it changed: it is fetched every minute).
    pub fn set_directory(&self, directory: Directory) -> io::Result<()> {
        if lock(&self.directory).as_ref() == Some(&directory) {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&directory).map_err(io::Error::other)?;
        write_durable(&self.data_dir.join(DIRECTORY_FILE), &bytes, 0o600)?;
        *lock(&self.directory) = Some(directory);
        Ok(())
    }

    /// An alias the directory names; `None` for anything else.
    pub fn lookup(&self, address: &str) -> Option<Recipient> {
        let address = address.trim().to_ascii_lowercase();
        let dir = lock(&self.directory);
        dir.as_ref()?
            .aliases
            .iter()
            .find(|e| e.route.address == address)
            .map(|e| Recipient::Local(e.route.clone()))
    }

    /// Seals `message` to the alias' public key into the spool (marked for
    /// the Junk folder when `junk`); returns once file and directory are
    /// synced.
    pub fn deliver(
        &self,
        address: &str,
        message: &[u8],
        to: &crate::store::Placement,
    ) -> Result<Delivery, StoreError> {
        let address = address.trim().to_ascii_lowercase();
        let (key, pgp) = {
            let dir = lock(&self.directory);
            let entry = dir
                .as_ref()
                .and_then(|d| d.aliases.iter().find(|e| e.route.address == address));
            let key = entry
                .and_then(|e| e.public_key.clone())
                .ok_or_else(unavailable)?;
            (key, entry.and_then(|e| e.pgp.clone()))
        };
        // Encrypted to the owner's OpenPGP key first, as the primary would.
        let encrypted;
        let message = match pgp {
            Some(k) => {
                encrypted =
                    crate::openpgp::encrypt_for(&k.key, message.to_vec(), k.protect_subject)
                        .map_err(|e| StoreError::Unavailable(format!("OpenPGP: {e}")))?;
                encrypted.as_slice()
            }
            None => message,
        };
        let sealed = crate::store::seal(&key, message, to)?;
        let io = |e: io::Error| StoreError::Unavailable(format!("the local spool: {e}"));
        let spool = self.data_dir.join(SPOOL_DIR);
        let id = random_id().map_err(io)?;
        let tmp = spool.join(format!(".tmp-{id}"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = spool.join(format!("{:012}-{nanos:09}-{id}.sealed", now_unix()));
        let written = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(address.as_bytes())?;
            f.write_all(b"\n")?;
            f.write_all(&sealed)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            fsync_dir(&spool)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(io(e));
        }
        Ok(Delivery::Sealed)
    }

    /// The spool's files, oldest first.
    pub fn waiting(&self) -> io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.data_dir.join(SPOOL_DIR))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sealed"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// A spool file's alias and sealed message.
    pub fn read(path: &Path) -> io::Result<(String, Vec<u8>)> {
        let mut bytes = fs::read(path)?;
        let end = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| io::Error::other(format!("{}: no address line", path.display())))?;
        let sealed = bytes.split_off(end + 1);
        bytes.truncate(end);
        let address = String::from_utf8(bytes).map_err(|_| {
            io::Error::other(format!("{}: the address is not UTF-8", path.display()))
        })?;
        Ok((address, sealed))
    }

    /// Removes a shipped file, durably.
    pub fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)?;
        fsync_dir(&self.data_dir.join(SPOOL_DIR))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::types::{DirectoryEntry, Route};

    /// A directory of bob@example.org alone, sealed to `public`.
    fn bob(public: String, pgp: Option<crate::store::PgpKey>) -> Directory {
        Directory {
            domains: vec!["example.org".into()],
            aliases: vec![DirectoryEntry {
                route: Route {
                    address: "bob@example.org".into(),
                    mailbox: true,
                    forward: vec![],
                    webhooks: vec![],
                },
                public_key: Some(public),
                pgp,
            }],
        }
    }

    #[test]
    fn mail_is_sealed_kept_and_read_back_for_shipping() {
        let dir = tempfile::tempdir().unwrap();
        let away = Away::open(dir.path()).unwrap();
        assert!(away.lookup("bob@example.org").is_none());
        assert!(
            away.deliver("bob@example.org", b"x", &Default::default())
                .unwrap_err()
                .is_temporary()
        );
        let identity = age::x25519::Identity::generate();
        let public = identity.to_public().to_string();
        away.set_directory(bob(public, None)).unwrap();
        // A restart keeps the directory.
        let away = Away::open(dir.path()).unwrap();
        assert!(matches!(
            away.lookup("Bob@Example.org"),
            Some(Recipient::Local(_))
        ));
        assert!(away.lookup("eve@example.org").is_none());
        away.deliver(
            "bob@example.org",
            b"Subject: canary-1234\r\n\r\nhi\r\n",
            &Default::default(),
        )
        .unwrap();
        let files = away.waiting().unwrap();
        assert_eq!(files.len(), 1);
        let raw = fs::read(&files[0]).unwrap();
        assert!(!raw.windows(11).any(|w| w == b"canary-1234"));
        let (address, sealed) = Away::read(&files[0]).unwrap();
        assert_eq!(address, "bob@example.org");
        let clear = age::decrypt(&identity, &sealed).unwrap();
        assert_eq!(clear, b"Subject: canary-1234\r\n\r\nhi\r\n");
        away.remove(&files[0]).unwrap();
        assert!(away.waiting().unwrap().is_empty());
    }

    #[test]
    fn mail_for_an_owner_with_an_openpgp_key_is_encrypted_before_the_seal() {
        use crate::openpgp::tests::{armored, decrypt, keygen, public};
        let dir = tempfile::tempdir().unwrap();
        let away = Away::open(dir.path()).unwrap();
        let identity = age::x25519::Identity::generate();
        let secret = keygen("bob@example.org", true);
        let key = crate::store::PgpKey {
            key: public(&secret),
            encrypt: true,
            ..Default::default()
        };
        away.set_directory(bob(identity.to_public().to_string(), Some(key)))
            .unwrap();
        let message = b"Subject: hello\r\n\r\ncanary-5678\r\n";
        away.deliver("bob@example.org", message, &Default::default())
            .unwrap();
        let files = away.waiting().unwrap();
        let (_, sealed) = Away::read(&files[0]).unwrap();
        let clear = age::decrypt(&identity, &sealed).unwrap();
        assert!(clear.starts_with(b"Subject: hello\r\n"));
        assert!(!clear.windows(11).any(|w| w == b"canary-5678"));
        assert_eq!(decrypt(&secret, &armored(&clear)), message);
    }
}
