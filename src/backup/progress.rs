//! A progress line for long backup transfers run by hand: bytes done of
//! the total, percentage and rate, redrawn on stderr at most five times a
//! second.
//!
//! Imports nothing of ours. Invariants: it only ever writes to stderr, and
//! only when stderr is a terminal or `SEALMAIL_PROGRESS=1` asks for it, so
//! the scheduler and scripts reading stdout never see it; counting never
//! changes the bytes passed through.

use std::io::{self, IsTerminal, Read, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Progress {
    label: &'static str,
    total: u64,
    done: AtomicU64,
    started: Instant,
    drawn: Mutex<Option<Instant>>,
}

const MIB: f64 = 1024.0 * 1024.0;

impl Progress {
    /// A progress line for `total` bytes, or `None` when nobody would see
    /// it.
    pub fn start(label: &'static str, total: u64) -> Option<Progress> {
        let forced = std::env::var("SEALMAIL_PROGRESS").is_ok_and(|v| v == "1");
        if !forced && !io::stderr().is_terminal() {
            return None;
        }
        Some(Progress {
            label,
            total,
            done: AtomicU64::new(0),
            started: Instant::now(),
            drawn: Mutex::new(None),
        })
    }

    fn add(&self, n: usize) {
        self.done.fetch_add(n as u64, Ordering::Relaxed);
        let now = Instant::now();
        let mut drawn = self.drawn.lock().unwrap_or_else(|e| e.into_inner());
        if drawn.is_none_or(|t| now - t >= Duration::from_millis(200)) {
            *drawn = Some(now);
            drop(drawn);
            self.draw(false);
        }
    }

    fn draw(&self, last: bool) {
        let done = self.done.load(Ordering::Relaxed);
        let pct = (done * 100).checked_div(self.total).unwrap_or(100).min(100);
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let line = format!(
            "\r{} {:.1} of {:.1} MiB ({pct}%), {:.1} MiB/s",
            self.label,
            done as f64 / MIB,
            self.total as f64 / MIB,
            done as f64 / MIB / secs
        );
        let mut err = io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        if last {
            let _ = err.write_all(b"\n");
        }
        let _ = err.flush();
    }

    /// Draws the final state and ends the line.
    pub fn finish(&self) {
        self.done.fetch_max(self.total, Ordering::Relaxed);
        self.draw(true);
    }

    pub fn reader<R: Read>(&self, inner: R) -> Counted<'_, R> {
        Counted { inner, p: self }
    }

    pub fn writer<W: Write>(&self, inner: W) -> Counted<'_, W> {
        Counted { inner, p: self }
    }
}

/// A reader or writer that reports the bytes it passes on.
pub struct Counted<'a, T> {
    inner: T,
    p: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.p.add(n);
        Ok(n)
    }
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.p.add(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
