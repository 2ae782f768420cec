//! Small helpers with no knowledge of mail: the log's set-up, settings a
//! reload replaces (`Live`), randomness, time formatting,
//! durable file writes, group commit of a write-ahead log, a memory budget
//! and encrypted spill files for messages in flight, HMAC, waiting on a stop signal, the clock that schedules read (faked in
//! tests).
//!
//! May import nothing of ours. Invariants: durable writes go through a temp
//! file in the same directory, are fsynced, renamed, and the directory is
//! fsynced, so a crash leaves either no file or the whole file.

pub mod log;
pub mod metrics;
pub mod spill;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A setting a reload may replace while sessions run: readers copy the
/// value in force when they look, and clones share it.
#[derive(Debug, Default)]
pub struct Live<T>(Arc<Mutex<T>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live(self.0.clone())
    }
}

impl<T: Copy> Live<T> {
    pub fn new(value: T) -> Live<T> {
        Live(Arc::new(Mutex::new(value)))
    }

    pub fn get(&self) -> T {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, value: T) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = value;
    }
}

/// Fills `buf` from the operating system's CSPRNG.
///
/// The OS generator failing is not recoverable in any meaningful way for a
/// server that must create keys, so it is reported as an I/O error.
pub fn random_fill(buf: &mut [u8]) -> io::Result<()> {
    getrandom::fill(buf).map_err(|e| io::Error::other(format!("system random source failed: {e}")))
}

/// A random identifier of 128 bits as 32 lowercase hex digits.
pub fn random_id() -> io::Result<String> {
    let mut b = [0u8; 16];
    random_fill(&mut b)?;
    Ok(hex::encode(b))
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Day count since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time.
pub fn iso8601_utc(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// The Unix time of `YYYY-MM-DDTHH:MM:SSZ` (seconds or the whole time
/// may be left out: a date alone is its midnight, UTC).
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once('T').unwrap_or((s, "00:00:00"));
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi) = (t.next()??, t.next().flatten().unwrap_or(0));
    let sec = t.next().flatten().unwrap_or(0);
    let days = days_from_civil(y, u32::try_from(m).ok()?, u32::try_from(dd).ok()?);
    Some(days * 86_400 + h * 3600 + mi * 60 + sec)
}

/// `YYYY-MM-DD` of a Unix time shifted by `offset_secs` (a header's zone).
pub fn date_only(secs: i64, offset_secs: i64) -> String {
    let (y, m, d) = civil_from_days((secs + offset_secs).div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// An RFC 5322 date-time in UTC, e.g. `Mon, 23 Nov 2026 19:50:00 +0000`.
pub fn rfc5322_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let s = secs.rem_euclid(86_400);
    format!(
        "{}, {d} {} {y} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// Fsyncs a directory so that a rename or unlink inside it is durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` durably and atomically, with the given mode.
pub fn write_durable(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("path has no parent directory"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        random_id()?
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Group commit for a SQLite database in WAL mode at
/// `synchronous=NORMAL`: commits go to the log without a sync; a writer
/// that must acknowledge durably takes its commit's number
/// ([`written`](GroupSync::written), while it still holds the connection)
/// and then waits ([`wait`](GroupSync::wait)) without it. One
/// `fdatasync` of the log covers every commit written before it, so
/// concurrent writers share it. SQLite syncs the log before a checkpoint
/// copies it into the database (and the database after), so a synced
/// commit stays durable through checkpoints; a log that is gone was
/// checkpointed and removed, its commits with it.
pub struct GroupSync {
    wal: PathBuf,
    written: AtomicU64,
    synced: Mutex<u64>,
}

/// Log syncs done by every [`GroupSync`] since start (for tests).
static WAL_SYNCS: AtomicU64 = AtomicU64::new(0);

/// How many log syncs [`GroupSync`]s have done since start.
pub fn wal_syncs() -> u64 {
    WAL_SYNCS.load(Ordering::SeqCst)
}

impl GroupSync {
    /// For the database at `db` (its log is `db` + `-wal`).
    pub fn new(db: &Path) -> GroupSync {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        GroupSync {
            wal: wal.into(),
            written: AtomicU64::new(0),
            synced: Mutex::new(0),
        }
    }

    /// Numbers a commit just made; call it before releasing the connection.
    pub fn written(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Returns once commit number `seq` is on disk.
    pub fn wait(&self, seq: u64) -> io::Result<()> {
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        if *synced >= seq {
            // Another writer's sync covered this commit while we waited.
            return Ok(());
        }
        let upto = self.written.load(Ordering::SeqCst);
        match File::open(&self.wal) {
            Ok(f) => f.sync_data()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        WAL_SYNCS.fetch_add(1, Ordering::SeqCst);
        *synced = upto;
        Ok(())
    }
}

/// Memory for messages in flight, shared by every connection: bytes being
/// received are held against a part of it that leaves room to process the
/// largest message (so receivers can never take what a received message
/// needs to be processed), bytes being processed against all of it. A
/// transfer that finds no room waits, then is refused for now, not let
/// grow: peak memory follows the configuration, not the clients.
pub struct MemoryBudget {
    limit: u64,
    receive_limit: u64,
    state: Mutex<Used>,
}

#[derive(Default)]
struct Used {
    total: u64,
    receiving: u64,
}

/// What one transfer holds of a [`MemoryBudget`]; given back on drop.
pub struct Reserved {
    budget: Arc<MemoryBudget>,
    receiving: u64,
    processing: u64,
}

impl MemoryBudget {
    /// `limit` in all; what is being received at most `receive_limit`.
    pub fn new(limit: u64, receive_limit: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            receive_limit: receive_limit.min(limit),
            state: Mutex::new(Used::default()),
        })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes held now, by every transfer.
    pub fn used(&self) -> u64 {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Used> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A transfer's account, empty so far.
    pub fn start(self: &Arc<Self>) -> Reserved {
        Reserved {
            budget: self.clone(),
            receiving: 0,
            processing: 0,
        }
    }
}

impl Reserved {
    /// Holds `n` more bytes being received; false (nothing held) when the
    /// receivers' part is spent.
    pub fn receive(&mut self, n: u64) -> bool {
        let mut used = self.budget.lock();
        if used.receiving + n > self.budget.receive_limit || used.total + n > self.budget.limit {
            return false;
        }
        used.receiving += n;
        used.total += n;
        self.receiving += n;
        true
    }

    /// [`receive`](Reserved::receive), waiting until `deadline` for
    /// others to finish (the sender waits meanwhile: what it sends stays
    /// in the network's buffers); false if it never fits.
    pub async fn receive_by(&mut self, n: u64, deadline: Instant) -> bool {
        loop {
            if self.receive(n) {
                return true;
            }
            if Instant::now() >= deadline || n > self.budget.receive_limit {
                return false;
            }
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    }

    /// Holds `n` more bytes for processing a received message, waiting up
    /// to `patience` for others to finish; false if it never fits.
    pub async fn process(&mut self, n: u64, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        loop {
            {
                let mut used = self.budget.lock();
                if used.total + n <= self.budget.limit {
                    used.total += n;
                    self.processing += n;
                    return true;
                }
            }
            if Instant::now() >= deadline || n > self.budget.limit {
                return false;
            }
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    }

    /// Bytes this transfer holds.
    pub fn held(&self) -> u64 {
        self.receiving + self.processing
    }

    /// Gives back what it holds (the transfer was dropped or is done).
    pub fn release(&mut self) {
        let mut used = self.budget.lock();
        used.receiving = used.receiving.saturating_sub(self.receiving);
        used.total = used.total.saturating_sub(self.receiving + self.processing);
        self.receiving = 0;
        self.processing = 0;
    }
}

impl std::fmt::Debug for Reserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reserved({} bytes)", self.held())
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.release();
    }
}

/// Creates a directory (and parents) with mode 0700.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Creates a new file only its owner may read (mode 0600); fails if it
/// exists.
pub fn create_private_file(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Whether `a` and `b` are on one filesystem (a path that does not exist
/// yet counts as its nearest existing parent's).
pub fn same_filesystem(a: &Path, b: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    fn device(p: &Path) -> io::Result<u64> {
        let mut at = Some(p);
        while let Some(path) = at {
            match fs::metadata(path) {
                Ok(m) => return Ok(m.dev()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => at = path.parent(),
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no part of it exists", p.display()),
        ))
    }
    Ok(device(a)? == device(b)?)
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A named crash point for tests of interrupted work: when the environment
/// variable `SEALMAIL_CRASH_AT` is `name` (or `name:N`, the N-th time this
/// point is reached), the process aborts here, as a power cut or kill -9
/// would stop it. Unset in normal operation, where this is one load.
pub fn crash_point(name: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static AT: std::sync::OnceLock<Option<(String, usize)>> = std::sync::OnceLock::new();
    static HITS: AtomicUsize = AtomicUsize::new(0);
    let at = AT.get_or_init(|| {
        let v = std::env::var("SEALMAIL_CRASH_AT").ok()?;
        Some(match v.rsplit_once(':') {
            Some((n, count)) => (n.to_string(), count.parse().unwrap_or(1)),
            None => (v, 1),
        })
    });
    if let Some((point, count)) = at
        && point == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 >= *count
    {
        std::process::abort();
    }
}

/// A named pause point for tests that must see work half done: when the
/// environment variable `SEALMAIL_PAUSE_AT` is `name=PATH`, each time this
/// point is reached the thread waits while `PATH` exists (five minutes at
/// most). Unset in normal operation, where this is one load.
pub fn pause_point(name: &str) {
    static AT: std::sync::OnceLock<Option<(String, PathBuf)>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        let v = std::env::var("SEALMAIL_PAUSE_AT").ok()?;
        let (point, path) = v.split_once('=')?;
        Some((point.to_string(), PathBuf::from(path)))
    });
    if let Some((point, path)) = at
        && point == name
    {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while path.exists() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
#[allow(clippy::expect_used)] // INVARIANT below.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // INVARIANT: HMAC takes keys of any length; `new_from_slice` cannot fail.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Waits `period`; false if `stop` fired (or closed) first.
pub async fn wait_or_stop(period: std::time::Duration, stop: &async_channel::Receiver<()>) -> bool {
    let tick = async {
        smol::Timer::after(period).await;
        true
    };
    let stopped = async {
        let _ = stop.recv().await;
        false
    };
    futures_lite::future::or(tick, stopped).await
}

/// Runs futures concurrently on the current task and returns their
/// outputs in order.
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    use std::task::Poll;
    let mut pending: Vec<Option<std::pin::Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    futures_lite::future::poll_fn(|cx| {
        let mut open = false;
        for (slot, out) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    Poll::Pending => open = true,
                }
            }
        }
        if open { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// Unix seconds now: the system clock, or a test's hand (the queue and the
/// backup scheduler both read one).
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        now_unix()
    }
}

/// A clock that moves only when told to.
pub struct FakeClock(AtomicI64);

impl FakeClock {
    pub fn new(start: i64) -> std::sync::Arc<FakeClock> {
        std::sync::Arc::new(FakeClock(AtomicI64::new(start)))
    }
    pub fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A network: an address and a prefix length.
pub type Network = (std::net::IpAddr, u8);

/// Whether `ip` is in `network`.
pub fn network_contains((net, len): Network, ip: std::net::IpAddr) -> bool {
    match (net, ip.to_canonical()) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// `192.0.2.0/24`, `2001:db8::/32`, or an address alone (all of it).
pub fn parse_network(s: &str) -> Option<Network> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u8>().ok()?)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((addr, len))
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_budget_keeps_room_for_processing() {
        let b = MemoryBudget::new(100, 50);
        let mut r1 = b.start();
        assert!(r1.receive(30));
        let mut r2 = b.start();
        assert!(r2.receive(20));
        // Receivers hold at most their part.
        assert!(!r2.receive(1));
        assert_eq!(b.used(), 50);
        // Processing may use the rest, and waits for it.
        assert!(smol::block_on(r1.process(50, Duration::ZERO)));
        assert!(!smol::block_on(r2.process(1, Duration::from_millis(30))));
        drop(r1);
        assert_eq!(b.used(), 20);
        assert!(smol::block_on(r2.process(60, Duration::ZERO)));
        r2.release();
        assert_eq!(b.used(), 0);
        assert!(!smol::block_on(
            b.start().process(101, Duration::from_secs(60))
        ));
    }
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for days in [-800_000, -1, 0, 1, 59, 60, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(date_only(1_700_000_000, 3 * 3600), "2023-11-15");
        assert_eq!(
            rfc5322_date(1_700_000_000),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
    }

    #[test]
    fn durable_write_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_durable(&p, b"one", 0o600).unwrap();
        write_durable(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn networks() {
        for (net, addr, inside) in [
            ("127.0.0.0/8", "127.9.9.9", true),
            ("127.0.0.0/8", "128.0.0.1", false),
            ("::1", "::1", true),
            ("::1", "::2", false),
            ("0.0.0.0/0", "203.0.113.5", true),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("192.0.2.0/24", "::ffff:192.0.2.1", true),
            ("192.0.2.0/24", "2001:db8::1", false),
        ] {
            assert_eq!(
                network_contains(parse_network(net).unwrap(), addr.parse().unwrap()),
                inside,
                "{net} {addr}"
            );
        }
        for bad in ["", "x", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/"] {
            assert_eq!(parse_network(bad), None, "{bad}");
        }
    }
}
