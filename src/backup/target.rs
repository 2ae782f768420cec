//! Where backups go: a local directory (the embedded default) or an
//! S3-compatible bucket through rust-s3 (blocking; callers on the async
//! executor use `blocking::unblock`).
//!
//! Imports `config` and `util`. Invariants: an object appears under its
//! key only once it is complete (directory: temp file, fsync, rename,
//! directory fsync; S3: a PUT or a completed multipart upload), so a crash
//! mid-copy leaves no partial object under a real key, and what it left
//! elsewhere (an incomplete multipart upload, a temp file) goes once a
//! later backup exists (`abandon_before`); files are streamed
//! both ways, never held in memory; keys are relative paths of
//! `[A-Za-z0-9._-]` segments, never the address.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::progress::Progress;

/// A backup destination.
pub enum Target {
    Dir(PathBuf),
    S3 {
        bucket: Box<s3::Bucket>,
        /// Prepended to every key, with a `/`, unless empty.
        prefix: String,
    },
}

impl Target {
    /// The configured target: S3 when `[backup.s3]` is set, else the
    /// directory.
    pub fn from_config(config: &crate::config::Config) -> io::Result<Target> {
        let Some(c) = &config.backup_s3 else {
            return Ok(Target::Dir(config.backup_dir.clone()));
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let access = c.access_key.clone().or_else(|| env("AWS_ACCESS_KEY_ID"));
        let secret = c
            .secret_key
            .clone()
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
        let creds =
            s3::creds::Credentials::new(access.as_deref(), secret.as_deref(), None, None, None)
                .map_err(|e| io::Error::other(format!("S3 credentials: {e}")))?;
        let region = s3::Region::Custom {
            region: c.region.clone(),
            endpoint: c.endpoint.clone(),
        };
        let mut bucket = s3::Bucket::new(&c.bucket, region, creds)
            .map_err(|e| io::Error::other(format!("S3 bucket {}: {e}", c.bucket)))?;
        if c.path_style {
            bucket = bucket.with_path_style();
        }
        Ok(Target::S3 {
            bucket,
            prefix: c.prefix.clone(),
        })
    }
}

fn s3_err(what: &str, key: &str, e: s3::error::S3Error) -> io::Error {
    io::Error::other(format!("S3 {what} {key}: {e}"))
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
            Target::S3 { .. } => Err(io::Error::other("not a directory target")),
        }
    }

    fn s3_key(prefix: &str, key: &str) -> io::Result<String> {
        check_key(key)?;
        Ok(if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}/{key}")
        })
    }

    /// Stores the file at `src` under `key`, streamed (memory flat in size;
    /// S3 uploads large files in multipart chunks).
    pub fn put_file(&self, key: &str, src: &Path, progress: Option<&Progress>) -> io::Result<()> {
        let from = CrashPoints {
            inner: fs::File::open(src)?,
            read: 0,
        };
        let mut from: Box<dyn io::Read + '_> = match progress {
            Some(p) => Box::new(p.reader(from)),
            None => Box::new(from),
        };
        if let Target::S3 { bucket, prefix } = self {
            let k = Self::s3_key(prefix, key)?;
            bucket
                .put_object_stream(&mut from, &k)
                .map_err(|e| s3_err("upload", &k, e))?;
            return Ok(());
        }
        let dest = self.path(key)?;
        self.durable_copy(&dest, |tmp| io::copy(&mut from, tmp).map(|_| ()))
    }

    /// Like [`Target::put_file`] for a file the caller no longer needs: a
    /// directory target on the same filesystem takes it with a rename
    /// (already fsynced by the caller) instead of a copy.
    pub fn put_file_moving(
        &self,
        key: &str,
        src: &Path,
        progress: Option<&Progress>,
    ) -> io::Result<()> {
        if let Target::Dir(_) = self {
            let dest = self.path(key)?;
            let dir = dest.parent().ok_or_else(|| io::Error::other("no parent"))?;
            crate::util::create_private_dir(dir)?;
            fs::File::open(src)?.sync_all()?;
            if fs::rename(src, &dest).is_ok() {
                return crate::util::fsync_dir(dir);
            }
        }
        self.put_file(key, src, progress)
    }

    pub fn put_bytes(&self, key: &str, bytes: &[u8]) -> io::Result<()> {
        if let Target::S3 { bucket, prefix } = self {
            let k = Self::s3_key(prefix, key)?;
            bucket
                .put_object(&k, bytes)
                .map_err(|e| s3_err("upload", &k, e))?;
            return Ok(());
        }
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
        if let Target::S3 { bucket, prefix } = self {
            let k = Self::s3_key(prefix, key)?;
            let r = bucket
                .get_object(&k)
                .map_err(|e| s3_err("download", &k, e))?;
            return Ok(r.bytes().to_vec());
        }
        fs::read(self.path(key)?)
    }

    /// Copies the object under `key` into the file `dest`, streamed.
    pub fn get_file(&self, key: &str, dest: &Path, progress: Option<&Progress>) -> io::Result<()> {
        let file = fs::File::create(dest)?;
        {
            let mut to: Box<dyn io::Write + Send + '_> = match progress {
                Some(p) => Box::new(p.writer(&file)),
                None => Box::new(&file),
            };
            if let Target::S3 { bucket, prefix } = self {
                let k = Self::s3_key(prefix, key)?;
                bucket
                    .get_object_to_writer(&k, &mut to)
                    .map_err(|e| s3_err("download", &k, e))?;
            } else {
                let mut from = fs::File::open(self.path(key)?)?;
                io::copy(&mut from, &mut to)?;
            }
            to.flush()?;
        }
        file.sync_all()
    }

    /// Keys under `prefix` (which ends with `/`), in name order.
    pub fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        if let Target::S3 {
            bucket,
            prefix: root,
        } = self
        {
            let full = Self::s3_key(root, prefix.trim_end_matches('/'))? + "/";
            let pages = bucket
                .list(full.clone(), None)
                .map_err(|e| s3_err("list", &full, e))?;
            let strip = if root.is_empty() {
                String::new()
            } else {
                format!("{root}/")
            };
            let mut out: Vec<String> = pages
                .into_iter()
                .flat_map(|p| p.contents)
                .filter_map(|o| o.key.strip_prefix(&strip).map(str::to_string))
                .collect();
            out.sort();
            return Ok(out);
        }
        // Every object below, as S3 lists them (temp dot-files left out).
        let mut out = Vec::new();
        let mut dirs = vec![prefix.to_string()];
        while let Some(p) = dirs.pop() {
            let entries = match fs::read_dir(self.path(p.trim_end_matches('/'))?) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for e in entries {
                let e = e?;
                let Some(n) = e
                    .file_name()
                    .to_str()
                    .filter(|n| !n.starts_with('.'))
                    .map(str::to_string)
                else {
                    continue;
                };
                if e.file_type()?.is_dir() {
                    dirs.push(format!("{p}{n}/"));
                } else {
                    out.push(format!("{p}{n}"));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Gives up uploads under `prefix` (which ends with `/`) that never
    /// completed and whose key sorts before `before`: multipart uploads a
    /// killed process left in the bucket (their parts use space until
    /// aborted), or a directory's temp files. Returns how many went.
    pub fn abandon_before(&self, prefix: &str, before: &str) -> io::Result<usize> {
        if let Target::S3 {
            bucket,
            prefix: root,
        } = self
        {
            let full = Self::s3_key(root, prefix.trim_end_matches('/'))? + "/";
            let before = Self::s3_key(root, before)?;
            let pages = bucket
                .list_multiparts_uploads(Some(&full), None)
                .map_err(|e| s3_err("list uploads", &full, e))?;
            let mut n = 0;
            for u in pages.into_iter().flat_map(|p| p.uploads) {
                if u.key.starts_with(&full) && u.key < before {
                    bucket
                        .abort_upload(&u.key, &u.id)
                        .map_err(|e| s3_err("abort upload", &u.key, e))?;
                    n += 1;
                }
            }
            return Ok(n);
        }
        // `durable_copy`'s temp files: `.<name>.tmp` beside `<name>`.
        let dir = self.path(prefix.trim_end_matches('/'))?;
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut n = 0;
        for e in entries {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
                continue;
            };
            if format!("{prefix}{inner}").as_str() < before {
                fs::remove_file(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn delete(&self, key: &str) -> io::Result<()> {
        if let Target::S3 { bucket, prefix } = self {
            let k = Self::s3_key(prefix, key)?;
            bucket
                .delete_object(&k)
                .map_err(|e| s3_err("delete", &k, e))?;
            return Ok(());
        }
        match fs::remove_file(self.path(key)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// A reader that passes the crash point `backup-upload-mib` at every MiB,
/// so tests can end the process in the middle of an upload.
struct CrashPoints<R> {
    inner: R,
    read: u64,
}

impl<R: io::Read> io::Read for CrashPoints<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.read >> 20;
        self.read += n as u64;
        for _ in before..self.read >> 20 {
            crate::util::crash_point("backup-upload-mib");
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_drops_temp_files_of_earlier_backups_only() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::Dir(dir.path().to_path_buf());
        target.put_bytes("m1/000000000001.json", b"{}").unwrap();
        let sub = dir.path().join("m1");
        for name in [".000000000002.sqlite.tmp", ".000000000009.sqlite.tmp"] {
            fs::write(sub.join(name), b"part").unwrap();
        }
        assert_eq!(target.abandon_before("m1/", "m1/000000000005.").unwrap(), 1);
        let mut left: Vec<String> = fs::read_dir(&sub)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".000000000009.sqlite.tmp", "000000000001.json"]);
        assert_eq!(target.abandon_before("none/", "none/1").unwrap(), 0);
    }
}
