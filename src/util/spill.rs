//! Spill files: the bytes of a message being received, beyond a small
//! size, kept on disk instead of in memory while the rest arrives.
//!
//! Imports nothing of ours. Invariants: nothing reaches the file in the
//! clear: it is written in frames of [`FRAME`] bytes, each sealed with
//! ChaCha20-Poly1305 under a random key that lives only in this process's
//! memory and a nonce that counts frames, so a crash leaves ciphertext
//! nobody can open (and [`Spills::open`] removes it at the next start); a
//! spill file is removed when its [`Spill`] is dropped; the bytes every
//! spill file holds together stay within [`Spills`]'s limit, and a write
//! past it fails instead of growing.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::Zeroize;

/// A message body goes to a spill file once this much of it is in memory.
pub const SPILL_AT: usize = 1024 * 1024;
/// Bytes sealed together; the last frame of a file may be shorter.
pub const FRAME: usize = 64 * 1024;
/// The authentication tag after each frame.
const TAG: usize = 16;

/// The directory of spill files and the disk they may use together.
pub struct Spills {
    dir: PathBuf,
    limit: u64,
    used: Mutex<u64>,
}

impl Spills {
    /// Opens `dir` (created 0700), removing what a crash left in it:
    /// those files were sealed under keys that died with the process.
    pub fn open(dir: &Path, limit: u64) -> io::Result<Arc<Spills>> {
        super::create_private_dir(dir)?;
        let mut removed = 0;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, dir = %dir.display(), "removed spill files left by a crash");
        }
        Ok(Arc::new(Spills {
            dir: dir.to_path_buf(),
            limit,
            used: Mutex::new(0),
        }))
    }

    /// Bytes all spill files hold now.
    pub fn used(&self) -> u64 {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `n` more bytes fit now (a check, not a reservation: the
    /// writes themselves are held against the limit).
    pub fn has_room(&self, n: u64) -> bool {
        *self.lock() + n <= self.limit
    }

    /// Takes `n` bytes of the limit; false if they are not left.
    fn take(&self, n: u64) -> bool {
        let mut used = self.lock();
        if *used + n > self.limit {
            return false;
        }
        *used += n;
        true
    }

    fn give_back(&self, n: u64) {
        let mut used = self.lock();
        *used = used.saturating_sub(n);
    }

    /// A new, empty spill file with a fresh key.
    pub fn create(self: &Arc<Self>) -> io::Result<Spill> {
        let mut key = [0u8; 32];
        super::random_fill(&mut key)?;
        let cipher = UnboundKey::new(&CHACHA20_POLY1305, &key).map(LessSafeKey::new);
        key.zeroize();
        let cipher = cipher.map_err(|_| io::Error::other("cannot make a spill key"))?;
        let path = self.dir.join(format!("{}.spill", super::random_id()?));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Spill {
            spills: self.clone(),
            path,
            file,
            cipher,
            frames: 0,
            partial: Vec::with_capacity(FRAME + TAG),
            len: 0,
            held: 0,
        })
    }
}

/// One message's spill file: written in order, then read back once.
pub struct Spill {
    spills: Arc<Spills>,
    path: PathBuf,
    file: File,
    cipher: LessSafeKey,
    /// Frames written so far (the next frame's nonce).
    frames: u64,
    /// Bytes not yet making a whole frame (never on disk).
    partial: Vec<u8>,
    len: u64,
    /// What this file holds of the limit.
    held: u64,
}

impl Spill {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frame `n`'s nonce: its number (a key seals one file's frames only).
    fn nonce(n: u64) -> Nonce {
        let mut nonce = [0u8; 12];
        nonce
            .iter_mut()
            .zip(n.to_le_bytes())
            .for_each(|(d, s)| *d = s);
        Nonce::assume_unique_for_key(nonce)
    }

    /// Appends `bytes`; fails (writing nothing more) when the spill limit
    /// is spent or the disk fails.
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let n = bytes.len() as u64;
        if !self.spills.take(n) {
            return Err(io::Error::other("the spill files' disk budget is spent"));
        }
        self.held += n;
        self.len += n;
        while !bytes.is_empty() {
            let room = FRAME - self.partial.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.partial.extend_from_slice(now);
            bytes = rest;
            if self.partial.len() == FRAME {
                self.seal_partial()?;
            }
        }
        Ok(())
    }

    /// Seals the full frame in `partial` where it is and writes it out:
    /// a spill holds one frame of memory, however much goes through it.
    fn seal_partial(&mut self) -> io::Result<()> {
        let tag = self
            .cipher
            .seal_in_place_separate_tag(Self::nonce(self.frames), Aad::empty(), &mut self.partial)
            .map_err(|_| io::Error::other("sealing a spill frame failed"))?;
        self.partial.extend_from_slice(tag.as_ref());
        self.file.write_all(&self.partial)?;
        self.partial.clear();
        self.frames += 1;
        Ok(())
    }

    /// Reads every byte back, in order, into one buffer of
    /// [`len`](Spill::len) bytes; the file is removed afterwards.
    pub fn read_all(mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.len).unwrap_or(usize::MAX));
        self.file.flush()?;
        let mut file = File::open(&self.path)?;
        let mut frame = vec![0u8; FRAME + TAG];
        for n in 0..self.frames {
            file.read_exact(&mut frame)?;
            let (body, tag) = frame.split_at_mut(FRAME);
            let tag = Tag::try_from(&*tag).map_err(|_| io::Error::other("a spill tag is short"))?;
            let clear = self
                .cipher
                .open_in_place_separate_tag(Self::nonce(n), Aad::empty(), tag, body, 0..)
                .map_err(|_| io::Error::other("a spill frame failed its check"))?;
            out.extend_from_slice(clear);
        }
        out.append(&mut self.partial);
        Ok(out)
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        self.partial.zeroize();
        let _ = fs::remove_file(&self.path);
        self.spills.give_back(self.held);
    }
}

/// A message body as it arrives: the caller keeps up to [`SPILL_AT`]
/// bytes in memory and [`put`](Incoming::put)s each full buffer here; the
/// spill file is created with the first. Writes run off the reactor.
pub struct Incoming {
    spills: Arc<Spills>,
    spill: Option<Box<Spill>>,
}

impl Incoming {
    pub fn new(spills: &Arc<Spills>) -> Incoming {
        Incoming {
            spills: spills.clone(),
            spill: None,
        }
    }

    /// Bytes in the spill file so far.
    pub fn spilled(&self) -> u64 {
        self.spill.as_ref().map_or(0, |s| s.len())
    }

    /// Moves `bytes` to the spill file. On failure (the spill limit spent,
    /// the disk full) the spill file is gone and the message cannot be
    /// kept.
    pub async fn put(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        let spill = match self.spill.take() {
            Some(s) => s,
            None => Box::new(self.spills.create()?),
        };
        let spill = blocking::unblock(move || {
            let mut spill = spill;
            spill.write(&bytes).map(|()| spill)
        })
        .await?;
        self.spill = Some(spill);
        Ok(())
    }

    /// The whole body: the spilled bytes, then `tail` (what is still in
    /// memory).
    pub async fn finish(self, mut tail: Vec<u8>) -> io::Result<Vec<u8>> {
        let Some(spill) = self.spill else {
            return Ok(tail);
        };
        let mut all = blocking::unblock(move || spill.read_all()).await?;
        all.append(&mut tail);
        Ok(all)
    }

    /// Forgets what was spilled (the message is not kept).
    pub fn discard(&mut self) {
        self.spill = None;
    }
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Incoming({} bytes spilled)", self.spilled())
    }
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spill({} bytes)", self.len)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dir() -> PathBuf {
        std::env::temp_dir().join(format!("spill-test-{}", super::super::random_id().unwrap()))
    }

    #[test]
    fn bytes_come_back_in_order_and_never_in_the_clear() {
        let d = dir();
        let spills = Spills::open(&d, 1 << 30).unwrap();
        let mut s = spills.create().unwrap();
        let text: Vec<u8> = b"Subject: secret marker\r\n\r\n"
            .iter()
            .copied()
            .cycle()
            .take(3 * FRAME + 1234)
            .collect();
        // Written in odd pieces across frame edges.
        for piece in text.chunks(FRAME / 3 + 7) {
            s.write(piece).unwrap();
        }
        assert_eq!(s.len(), text.len() as u64);
        let on_disk = fs::read(s.path()).unwrap();
        assert_eq!(on_disk.len(), 3 * (FRAME + TAG));
        assert!(!on_disk.windows(6).any(|w| w == b"secret"));
        assert_eq!(spills.used(), text.len() as u64);
        let path = s.path().to_path_buf();
        assert_eq!(s.read_all().unwrap(), text);
        assert!(!path.exists());
        assert_eq!(spills.used(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_limit_holds_and_leftovers_are_removed_at_open() {
        let d = dir();
        let spills = Spills::open(&d, 100).unwrap();
        let mut a = spills.create().unwrap();
        a.write(&[1; 60]).unwrap();
        let mut b = spills.create().unwrap();
        assert!(b.write(&[2; 41]).is_err());
        b.write(&[2; 40]).unwrap();
        drop(a);
        assert_eq!(spills.used(), 40);
        // A crash leaves files behind; the next start removes them.
        std::mem::forget(b);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        Spills::open(&d, 100).unwrap();
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn empty_and_short_spills() {
        let d = dir();
        let spills = Spills::open(&d, 1 << 20).unwrap();
        assert!(spills.create().unwrap().read_all().unwrap().is_empty());
        let mut s = spills.create().unwrap();
        s.write(b"short").unwrap();
        assert_eq!(s.read_all().unwrap(), b"short");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn incoming_joins_spilled_and_tail() {
        let d = dir();
        let spills = Spills::open(&d, 1 << 24).unwrap();
        let mut body = Incoming::new(&spills);
        smol::block_on(async {
            body.put(vec![b'a'; SPILL_AT]).await.unwrap();
            body.put(vec![b'b'; 10]).await.unwrap();
            assert_eq!(body.spilled(), SPILL_AT as u64 + 10);
            let all = body.finish(b"end".to_vec()).await.unwrap();
            assert_eq!(all.len(), SPILL_AT + 13);
            assert!(all.ends_with(b"bbend"));
        });
        assert_eq!(spills.used(), 0);
        fs::remove_dir_all(&d).unwrap();
    }
}
