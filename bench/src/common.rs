//! What every section shares: temp dirs, keys, generated messages,
//! percentiles, resident memory, page-cache control.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealmail::store::db::DbKey;
use sealmail::store::keys::KdfParams;
use sealmail::store::mailbox::{Limits, Mailbox};
use sealmail::store::{AppendRequest, Flags};

pub(crate) const WORDS: &[&str] = &[
    "meeting", "report", "budget", "quarter", "invoice", "travel", "schedule", "project", "review",
    "draft", "contract", "customer", "delivery", "release", "server", "holiday", "lunch", "team",
    "update", "question",
];

pub(crate) fn tempdir() -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("sealmail-bench-{}", std::process::id()));
    std::fs::create_dir_all(&p).expect("temp dir");
    p
}

pub(crate) fn key() -> [u8; 32] {
    let mut k = [0u8; 32];
    sealmail::util::random_fill(&mut k).expect("random");
    k
}

/// A message of about `size` bytes with some words to index.
pub(crate) fn message(i: usize, size: usize, rng: &mut u64) -> Vec<u8> {
    let mut body = String::with_capacity(size);
    while body.len() < size {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        body.push_str(WORDS[(*rng % WORDS.len() as u64) as usize]);
        body.push(if (*rng).is_multiple_of(11) { '\n' } else { ' ' });
    }
    if i.is_multiple_of(100) {
        body.push_str(" zebracorn");
    }
    format!(
        "From: sender{} <s{}@example.net>\r\nTo: ann@example.org\r\nSubject: {} {} #{i}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{i}@bench>\r\n\r\n{}\r\n",
        i % 50,
        i % 50,
        WORDS[i % WORDS.len()],
        WORDS[(i / 7) % WORDS.len()],
        body.replace('\n', "\r\n")
    )
    .into_bytes()
}

pub(crate) fn open(path: &Path, k: Option<&[u8; 32]>) -> Mailbox {
    let key = match k {
        Some(k) => DbKey::Raw(k),
        None => DbKey::Plain,
    };
    Mailbox::open(path, key, Limits::default()).expect("open mailbox")
}

pub(crate) fn fill(mb: &mut Mailbox, n: usize, size: usize, batch: usize) -> Duration {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let msgs: Vec<Vec<u8>> = (0..n).map(|i| message(i, size, &mut rng)).collect();
    let start = Instant::now();
    for chunk in msgs.chunks(batch) {
        let reqs: Vec<AppendRequest> = chunk
            .iter()
            .map(|m| AppendRequest {
                folder: "INBOX".into(),
                message: m.clone(),
                flags: Flags::default(),
                internal_date: None,
                if_missing: Default::default(),
            })
            .collect();
        mb.append(&reqs, None).expect("append");
    }
    start.elapsed()
}

pub(crate) fn ok(b: bool) -> &'static str {
    if b { "met" } else { "NOT MET" }
}

pub(crate) fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Resident memory of this process, from /proc (0 where unavailable).
pub(crate) fn rss_kib() -> u64 {
    rss_at("/proc/self/status")
}

/// Resident memory of another process.
pub(crate) fn rss_of(pid: u32) -> u64 {
    rss_at(&format!("/proc/{pid}/status"))
}

pub(crate) fn rss_at(status: &str) -> u64 {
    status_kib(status, "VmRSS:")
}

/// A `/proc/PID/status` figure in KiB, `field` with its colon (0 where the
/// file or the field is missing).
pub(crate) fn status_kib(status: &str, field: &str) -> u64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A loopback port free at the time of asking.
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    l.local_addr().expect("addr").port()
}

/// Waits (up to 20 s) until a server listens on `addr`; `what` names it
/// (and where its log is) if it never does.
pub(crate) fn wait_for_listener(addr: std::net::SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "no listener: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Lets other users pass through `dir` and every directory above it, for
/// reference servers whose processes run as their own users.
pub(crate) fn let_others_pass(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for d in dir.ancestors().filter(|d| *d != Path::new("/")) {
        let mode = std::fs::metadata(d).expect("stat").permissions().mode();
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o711));
    }
}

/// The process `root` and every process below it, from /proc.
fn process_tree(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
            parent_of.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while let Some(&p) = tree.get(i) {
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// /proc/<pid>/stat's fields after the command name: state is [0], ppid
/// [1], utime [11], stime [12], cutime [13], cstime [14].
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// CPU time (user + system) used by `root` and every process below it,
/// those already reaped by a process of the tree included.
pub(crate) fn cpu_of_tree(root: u32) -> Duration {
    // SAFETY: sysconf takes a constant and reads no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let ticks: u64 = process_tree(root)
        .into_iter()
        .filter_map(stat_fields)
        .map(|f| {
            (11..15)
                .filter_map(|i| f.get(i)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum();
    Duration::from_secs_f64(ticks as f64 / hz)
}

/// Proportional set size (KiB) of `root` and every process below it:
/// shared pages counted once across the tree.
pub(crate) fn pss_of_tree(root: u32) -> u64 {
    process_tree(root)
        .into_iter()
        .filter_map(|pid| {
            let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
            s.lines()
                .find_map(|l| l.strip_prefix("Pss:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Drops a file's pages from the page cache (after writing back any dirty
/// ones), so the next read comes from the disk.
pub(crate) fn evict_from_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).expect("open");
    f.sync_all().expect("sync");
    // SAFETY: a plain call on a descriptor owned by `f` for its duration.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
}

/// Lets the disk finish what earlier steps wrote, so one figure does not
/// pay for another's writeback.
pub(crate) fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_secs(1));
}

/// Reads a file once, so its pages are in the page cache.
pub(crate) fn warm_cache(path: &Path) {
    let mut f = std::fs::File::open(path).expect("open");
    std::io::copy(&mut f, &mut std::io::sink()).expect("read");
}

pub(crate) fn base64_lines(data: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(b64.len() + b64.len() / 38);
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push_str("\r\n");
    }
    out
}

/// A new development data directory (`init --dev` as
/// bench.example.org) and its config.
pub(crate) fn dev_data(data: &Path) -> sealmail::config::Config {
    sealmail::app::init(
        data,
        "bench.example.org",
        true,
        &sealmail::app::BackupChoice::default(),
    )
    .expect("init");
    sealmail::config::Config::load(data).expect("config")
}

/// A data directory with example.org and user0..user9@example.org
/// (password "pw").
pub(crate) fn ten_users(data: &Path) -> sealmail::config::Config {
    let config = dev_data(data);
    let mut control = sealmail::app::open_control(&config).expect("control");
    control.add_domain("example.org").expect("domain");
    for i in 0..10 {
        control
            .add_alias(
                &format!("user{i}@example.org"),
                Some("pw"),
                KdfParams::default(),
            )
            .expect("alias");
    }
    config
}

/// A data directory with one alias holding `n` messages of ~`size` bytes.
pub(crate) fn pop3_mailbox(
    tmp: &Path,
    name: &str,
    n: usize,
    size: usize,
) -> sealmail::config::Config {
    let config = dev_data(&tmp.join(name));
    let mut control = sealmail::app::open_control(&config).expect("control");
    control.add_domain("example.org").expect("domain");
    control
        .add_alias("ann@example.org", Some("pw"), KdfParams::default())
        .expect("alias");
    drop(control);
    let (_backend, store) = sealmail::app::open_store(&config).expect("store");
    let s = smol::block_on(store.unlock("ann@example.org", "pw")).expect("unlock");
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let reqs = chunk
            .iter()
            .map(|&i| AppendRequest {
                folder: "INBOX".into(),
                message: message(i, size, &mut rng),
                flags: Flags::default(),
                internal_date: None,
                if_missing: Default::default(),
            })
            .collect();
        smol::block_on(s.append_batch(reqs)).expect("append");
    }
    config
}

/// Runs a server on loopback port 0 while `f` gets its (SMTP, POP3, IMAP)
/// addresses.
pub(crate) fn with_server<T>(
    config: sealmail::config::Config,
    f: impl FnOnce(std::net::SocketAddr, std::net::SocketAddr, std::net::SocketAddr) -> T,
) -> T {
    let mut config = config;
    // Loopback only: no SPF/DKIM/DMARC lookups to outside resolvers.
    config.mx.check_senders = false;
    // The pre-greeting pause is one second of latency per connection, not
    // a cost per message: with ten long-lived senders it would dominate a
    // two-second run. Intake is measured without it.
    config.mx.greet_pause = std::time::Duration::ZERO;
    config.listen.smtp = "127.0.0.1:0".parse().expect("addr");
    config.listen.submission = "127.0.0.1:0".parse().expect("addr");
    config.listen.submissions = "127.0.0.1:0".parse().expect("addr");
    config.listen.pop3 = "127.0.0.1:0".parse().expect("addr");
    config.listen.pop3s = "127.0.0.1:0".parse().expect("addr");
    config.listen.http = None;
    config.listen.https = None;
    config.listen.metrics = None;
    config.listen.imap = "127.0.0.1:0".parse().expect("addr");
    config.listen.imaps = "127.0.0.1:0".parse().expect("addr");
    let listeners = sealmail::app::Listeners::bind(&config).expect("bind");
    let smtp = listeners.smtp.get_ref().local_addr().expect("addr");
    let pop3 = listeners.pop3.get_ref().local_addr().expect("addr");
    let imap = listeners.imap.get_ref().local_addr().expect("addr");
    let submissions = listeners.submissions.get_ref().local_addr().expect("addr");
    SUBMISSIONS.with(|s| s.set(Some(submissions)));
    let (tx, rx) = async_channel::bounded::<()>(1);
    let config = Arc::new(config);
    let server = std::thread::spawn(move || {
        smol::block_on(sealmail::app::run(config, listeners, async move {
            let _ = rx.recv().await;
        }))
        .expect("server");
    });
    let out = f(smtp, pop3, imap);
    let _ = tx.try_send(());
    let _ = server.join();
    out
}

thread_local! {
    /// The implicit-TLS submission port of the server `with_server` runs.
    pub(crate) static SUBMISSIONS: std::cell::Cell<Option<std::net::SocketAddr>> =
        const { std::cell::Cell::new(None) };
}

/// Starts `sealmail serve` (the release binary beside this one) on the data
/// directory as its own process, IMAP, POP3 and SMTP on free loopback
/// ports (the config file it rewrites has them), the other listeners on
/// any, no sender checks, no pause before the SMTP greeting and no
/// per-address cap; returns it and its IMAP address once that answers.
pub(crate) fn spawn_server(data: &Path) -> (std::process::Child, std::net::SocketAddr) {
    let (child, imap, _) = spawn_server_with(data, &[]);
    (child, imap)
}

/// [`spawn_server`] with more `serve` arguments; returns the IMAP and
/// SMTP addresses.
pub(crate) fn spawn_server_with(
    data: &Path,
    args: &[&str],
) -> (
    std::process::Child,
    std::net::SocketAddr,
    std::net::SocketAddr,
) {
    let (port, pop3, smtp) = (free_port(), free_port(), free_port());
    let file = data.join("sealmail.toml");
    let text = std::fs::read_to_string(&file).expect("config");
    let text: String = text
        .lines()
        .map(|l| {
            let key = l.split(" = ").next().unwrap_or("");
            match key {
                "imap" => format!("imap = \"127.0.0.1:{port}\""),
                "pop3" => format!("pop3 = \"127.0.0.1:{pop3}\""),
                "smtp" => format!("smtp = \"127.0.0.1:{smtp}\""),
                "greet_pause" => "greet_pause = \"0s\"".to_string(),
                "submission" | "submissions" | "imaps" | "pop3s" => {
                    format!("{key} = \"127.0.0.1:0\"")
                }
                "connections_per_ip" => "connections_per_ip = 100000".to_string(),
                "check_senders" => "check_senders = false".to_string(),
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, text).expect("config");
    let bin = std::env::current_exe()
        .expect("exe")
        .with_file_name("sealmail");
    let server = std::process::Command::new(&bin)
        .arg("--data")
        .arg(data)
        .arg("serve")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(data.join("serve.log")).expect("log"))
        .spawn()
        .unwrap_or_else(|e| panic!("{} (build it: cargo build --release): {e}", bin.display()));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "server did not start; see {}",
            data.join("serve.log").display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let smtp: std::net::SocketAddr = format!("127.0.0.1:{smtp}").parse().expect("addr");
    (server, addr, smtp)
}
