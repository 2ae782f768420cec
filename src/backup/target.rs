//! Where backups go. A local directory for now (the embedded default);
//! S3-compatible stores are to come behind the same calls.
//!
//! Imports `util`. Invariants: an object appears under its key only once
//! it is complete and durable (temp file, fsync, rename, directory fsync),
//! so a crash mid-copy leaves no partial object under a real key; keys are
//! relative paths of `[A-Za-z0-9._-]` segments, never the address.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A backup destination.
#[derive(Clone, Debug)]
pub enum Target {
    Dir(PathBuf),
}

fn check_key(key: &str) -> io::Result<()> {
    let ok = !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad object key {key:?}"),
        ))
    }
}

impl Target {
    fn path(&self, key: &str) -> io::Result<PathBuf> {
        check_key(key)?;
        match self {
            Target::Dir(root) => Ok(root.join(key)),
        }
    }

    /// Stores the file at `src` under `key`, streamed (memory flat in size).
    pub fn put_file(&self, key: &str, src: &Path) -> io::Result<()> {
        let dest = self.path(key)?;
        self.durable_copy(&dest, |tmp| {
            let mut from = fs::File::open(src)?;
            io::copy(&mut from, tmp).map(|_| ())
        })
    }

    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        let dest = self.path(key)?;
        self.durable_copy(&dest, |tmp| io::Write::write_all(tmp, bytes))
    }

    fn durable_copy(
        &self,
        dest: &Path,
        fill: impl FnOnce(&mut fs::File) -> io::Result<()>,
    ) -> io::Result<()> {
        let dir = dest.parent().ok_or_else(|| io::Error::other("no parent"))?;
        crate::util::create_private_dir(dir)?;
        let tmp = dir.join(format!(
            ".{}.tmp",
            dest.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("object")
        ));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            fill(&mut f)?;
            f.sync_all()?;
            fs::rename(&tmp, dest)?;
            crate::util::fsync_dir(dir)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    pub fn get_bytes(&self, key: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(key)?)
    }

    /// Copies the object under `key` into the file `dest`, streamed.
    pub fn get_file(&self, key: &str, dest: &Path) -> io::Result<()> {
        let mut from = fs::File::open(self.path(key)?)?;
        let mut to = fs::File::create(dest)?;
        io::copy(&mut from, &mut to)?;
        to.sync_all()
    }

    /// Keys under `prefix` (which ends with `/`), in name order.
    pub fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        let dir = self.path(prefix.trim_end_matches('/'))?;
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in entries {
            let name = e?.file_name();
            if let Some(n) = name.to_str().filter(|n| !n.starts_with('.')) {
                out.push(format!("{prefix}{n}"));
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn delete(&self, key: &str) -> io::Result<()> {
        match fs::remove_file(self.path(key)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
