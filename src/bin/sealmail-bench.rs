//! `make bench`: storage figures, each encrypted run beside the same code
//! with encryption off, measured in one process on one machine.
//!
//! Prints throughput and latency percentiles with their goals. The POP3
//! figures run a real server on loopback (plaintext, development mode, so
//! the client needs no TLS stack) beside reading the same messages straight
//! from the store. Sizes are
//! bounded (about a minute in all on two cores); `BENCH_SEARCH_MESSAGES`
//! overrides the 100,000-message mailbox of the search figures, and
//! `BENCH_BACKUP_MIB` the size of the backed-up mailbox (256; the backup
//! goal is stated for 1024);
//! `BENCH_ONLY=append,open,search,pop3,imap,mx,submission,backup` runs some
//! sections only.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealmail::store::db::DbKey;
use sealmail::store::keys::KdfParams;
use sealmail::store::local::{LocalBackend, LocalConfig};
use sealmail::store::mailbox::{Limits, Mailbox};
use sealmail::store::{AppendRequest, Criteria, Flags, Store};

const WORDS: &[&str] = &[
    "meeting", "report", "budget", "quarter", "invoice", "travel", "schedule", "project", "review",
    "draft", "contract", "customer", "delivery", "release", "server", "holiday", "lunch", "team",
    "update", "question",
];

fn main() {
    let tmp = tempdir();
    println!(
        "sealmail storage benchmark (release build, {} cores)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // BENCH_ONLY=backup,mx runs just those sections.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    if run("append") {
        append_bench(&tmp, 4 * 1024, 5_000);
        append_bench(&tmp, 100 * 1024, 500);
    }
    if run("open") {
        open_bench(&tmp);
        unlock_bench(&tmp);
    }
    let n = std::env::var("BENCH_SEARCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if run("search") {
        search_bench(&tmp, n);
    }
    if run("pop3") {
        pop3_bench(&tmp, n);
    }
    if run("imap") {
        imap_bench(&tmp);
        imap_idle_bench(&tmp);
    }
    if run("mx") {
        mx_bench(&tmp);
        idle_sessions_bench(&tmp);
    }
    if run("submission") {
        submission_bench(&tmp);
    }
    let mib = std::env::var("BENCH_BACKUP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    if run("backup") {
        backup_bench(&tmp, mib);
    }
    if std::env::var_os("BENCH_KEEP").is_some() {
        println!("kept {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

fn tempdir() -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("sealmail-bench-{}", std::process::id()));
    std::fs::create_dir_all(&p).expect("temp dir");
    p
}

fn key() -> [u8; 32] {
    let mut k = [0u8; 32];
    sealmail::util::random_fill(&mut k).expect("random");
    k
}

/// A message of about `size` bytes with some words to index.
fn message(i: usize, size: usize, rng: &mut u64) -> Vec<u8> {
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

fn open(path: &Path, k: Option<&[u8; 32]>) -> Mailbox {
    let key = match k {
        Some(k) => DbKey::Raw(k),
        None => DbKey::Plain,
    };
    Mailbox::open(path, key, Limits::default()).expect("open mailbox")
}

fn fill(mb: &mut Mailbox, n: usize, size: usize, batch: usize) -> Duration {
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
            })
            .collect();
        mb.append(&reqs, None, None).expect("append");
    }
    start.elapsed()
}

fn append_bench(tmp: &Path, size: usize, n: usize) {
    let k = key();
    let mut rates = Vec::new();
    for (label, key) in [("encrypted", Some(&k)), ("plain", None)] {
        let path = tmp.join(format!("append-{size}-{label}.sqlite"));
        let mut mb = open(&path, key);
        let t = fill(&mut mb, n, size, 100);
        drop(mb);
        let rate = n as f64 / t.as_secs_f64();
        let disk = std::fs::metadata(&path).map_or(0, |m| m.len());
        println!(
            "append {:>3} KiB x {n:<5} {label:<9} {rate:>9.0} msgs/s  ({:.1} MB/s, {:.1} KiB on disk per message)",
            size / 1024,
            rate * size as f64 / 1e6,
            disk as f64 / n as f64 / 1024.0
        );
        rates.push(rate);
    }
    let ratio = rates[0] / rates[1];
    let goal = if size <= 4096 {
        format!(
            ", goal >= 0.6 and >= 2,000 msgs/s: {}",
            ok(ratio >= 0.6 && rates[0] >= 2000.0)
        )
    } else {
        format!(", goal >= 0.6: {}", ok(ratio >= 0.6))
    };
    println!(
        "append {:>3} KiB encrypted/plain ratio {ratio:.2}{goal}\n",
        size / 1024
    );
}

fn ok(b: bool) -> &'static str {
    if b { "met" } else { "NOT MET" }
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn open_bench(tmp: &Path) {
    let k = key();
    let path = tmp.join("open.sqlite");
    fill(&mut open(&path, Some(&k)), 1000, 2048, 500);
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let mb = open(&path, Some(&k));
        times.push(t.elapsed());
        drop(mb);
    }
    let p50 = percentile(times.clone(), 0.5);
    println!(
        "open existing mailbox (keyed, PRAGMAs asserted)  p50 {:.3} ms  p99 {:.3} ms, goal p50 <= 1 ms: {}\n",
        ms(p50),
        ms(percentile(times, 0.99)),
        ok(ms(p50) <= 1.0)
    );
}

fn unlock_bench(tmp: &Path) {
    let data = tmp.join("unlock");
    sealmail::app::init(&data, "bench.example.org", false).expect("init");
    let config = sealmail::config::Config::load(&data).expect("config");
    let mut control = sealmail::app::open_control(&config).expect("control");
    control.add_domain("example.org").expect("domain");
    control
        .add_alias(
            "ann@example.org",
            Some("bench password"),
            KdfParams::default(),
        )
        .expect("alias");
    drop(control);
    let backend = |ttl: Duration| {
        let b = Arc::new(
            LocalBackend::open(LocalConfig {
                data_dir: data.clone(),
                server_key: sealmail::app::server_key(&data).expect("key"),
                kdf: KdfParams::default(),
                key_ttl: ttl,
                limits: Limits::default(),
            })
            .expect("backend"),
        );
        Store::new(b)
    };
    let cold_store = backend(Duration::ZERO);
    let mut cold = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let s =
            smol::block_on(cold_store.unlock("ann@example.org", "bench password")).expect("unlock");
        cold.push(t.elapsed());
        drop(s); // ttl 0: the key is dropped, the next unlock is cold again
    }
    let warm_store = backend(Duration::from_secs(600));
    let keep =
        smol::block_on(warm_store.unlock("ann@example.org", "bench password")).expect("unlock");
    let mut warm = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let s =
            smol::block_on(warm_store.unlock("ann@example.org", "bench password")).expect("unlock");
        warm.push(t.elapsed());
        drop(s);
    }
    drop(keep);
    let (c, w) = (percentile(cold, 0.5), percentile(warm, 0.5));
    println!(
        "unlock cold (argon2id 19 MiB, t=2, open, spool check)  p50 {:.2} ms, goal <= 60 ms: {}",
        ms(c),
        ok(ms(c) <= 60.0)
    );
    println!(
        "unlock warm (key cached)                               p50 {:.3} ms, goal <= 2 ms: {}\n",
        ms(w),
        ok(ms(w) <= 2.0)
    );
}

fn search_bench(tmp: &Path, n: usize) {
    let k = key();
    let mut p50s = Vec::new();
    for (label, key) in [("encrypted", Some(&k)), ("plain", None)] {
        let path = tmp.join(format!("search-{label}.sqlite"));
        let mut mb = open(&path, key);
        let t = fill(&mut mb, n, 1024, 1000);
        println!(
            "search {label}: filled {n} messages of ~1 KiB in {:.1} s",
            t.as_secs_f64()
        );
        drop(mb);
        let mut mb = open(&path, key);
        let t = Instant::now();
        mb.search("INBOX", &Criteria::Text("zebracorn".into()))
            .expect("search");
        println!(
            "  SEARCH TEXT rare word, first query after open  {:.2} ms",
            ms(t.elapsed())
        );
        let mut rare = Vec::new();
        let mut common = Vec::new();
        let mut select = Vec::new();
        let mut found = (0, 0);
        for i in 0..21 {
            let t = Instant::now();
            let r = mb
                .search("INBOX", &Criteria::Text("zebracorn".into()))
                .expect("search");
            rare.push(t.elapsed());
            found.0 = r.uids.len();
            let t = Instant::now();
            let r = mb
                .search(
                    "INBOX",
                    &Criteria::And(vec![
                        Criteria::Text(WORDS[i % WORDS.len()].into()),
                        Criteria::Flag(Flags::SEEN, false),
                    ]),
                )
                .expect("search");
            common.push(t.elapsed());
            found.1 = r.uids.len();
            let t = Instant::now();
            let s = mb.select("INBOX").expect("select");
            select.push(t.elapsed());
            assert_eq!(s.uids.len(), n);
        }
        let (r, c, s) = (
            percentile(rare, 0.5),
            percentile(common, 0.5),
            percentile(select, 0.5),
        );
        println!(
            "  SEARCH TEXT rare word ({} hits)       p50 {:.2} ms",
            found.0,
            ms(r)
        );
        println!(
            "  SEARCH TEXT common word UNSEEN ({} hits) p50 {:.2} ms",
            found.1,
            ms(c)
        );
        println!(
            "  SELECT (counts, UIDs, keywords)        p50 {:.2} ms",
            ms(s)
        );
        p50s.push((r, c, s));
        drop(mb);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    let (e, p) = (p50s[0], p50s[1]);
    println!(
        "search over {n}: encrypted/plain time ratio rare {:.2}, common {:.2}, select {:.2}",
        ms(e.0) / ms(p.0),
        ms(e.1) / ms(p.1),
        ms(e.2) / ms(p.2)
    );
    println!(
        "  goal SEARCH TEXT p50 <= 20 ms: {}; goal SELECT p50 <= 50 ms: {}",
        ok(ms(e.0) <= 20.0),
        ok(ms(e.2) <= 50.0)
    );
}

/// A data directory with one alias holding `n` messages of ~`size` bytes.
fn pop3_mailbox(tmp: &Path, name: &str, n: usize, size: usize) -> sealmail::config::Config {
    let data = tmp.join(name);
    sealmail::app::init(&data, "bench.example.org", true).expect("init");
    let config = sealmail::config::Config::load(&data).expect("config");
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
            })
            .collect();
        smol::block_on(s.append_batch(reqs)).expect("append");
    }
    config
}

struct Pop3Client {
    r: std::io::BufReader<std::net::TcpStream>,
    w: std::net::TcpStream,
}

impl Pop3Client {
    fn connect(addr: std::net::SocketAddr) -> Pop3Client {
        let s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let mut c = Pop3Client {
            r: std::io::BufReader::new(s.try_clone().expect("clone")),
            w: s,
        };
        c.line();
        c
    }

    fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read");
        l
    }

    fn cmd(&mut self, c: &str) -> String {
        use std::io::Write;
        self.w
            .write_all(format!("{c}\r\n").as_bytes())
            .expect("write");
        self.line()
    }

    /// Reads a multi-line body; returns its byte count.
    fn body(&mut self) -> usize {
        use std::io::BufRead;
        let mut total = 0;
        let mut l = Vec::new();
        loop {
            l.clear();
            self.r.read_until(b'\n', &mut l).expect("read");
            if l == b".\r\n" || l.is_empty() {
                return total;
            }
            total += l.len();
        }
    }
}

/// Runs a server on loopback port 0 while `f` gets its (SMTP, POP3, IMAP)
/// addresses.
fn with_server<T>(
    config: sealmail::config::Config,
    f: impl FnOnce(std::net::SocketAddr, std::net::SocketAddr, std::net::SocketAddr) -> T,
) -> T {
    let mut config = config;
    // Loopback only: no SPF/DKIM/DMARC lookups to outside resolvers.
    config.mx.check_senders = false;
    config.listen.smtp = "127.0.0.1:0".parse().expect("addr");
    config.listen.submission = "127.0.0.1:0".parse().expect("addr");
    config.listen.submissions = "127.0.0.1:0".parse().expect("addr");
    config.listen.pop3 = "127.0.0.1:0".parse().expect("addr");
    config.listen.pop3s = "127.0.0.1:0".parse().expect("addr");
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
    static SUBMISSIONS: std::cell::Cell<Option<std::net::SocketAddr>> =
        const { std::cell::Cell::new(None) };
}

fn pop3_bench(tmp: &Path, big: usize) {
    let n = 10_000;
    let config = pop3_mailbox(tmp, "pop3-retr", n, 4096);
    // Baseline: the same bytes read straight from the store, no network.
    let (_b, store) = sealmail::app::open_store(&config).expect("store");
    let s = smol::block_on(store.unlock("ann@example.org", "pw")).expect("unlock");
    let what = sealmail::store::FetchWhat {
        sections: vec![sealmail::store::Section {
            path: vec![],
            kind: sealmail::store::SectionKind::Whole,
        }],
        ..Default::default()
    };
    let t = Instant::now();
    let mut direct = 0usize;
    for uid in 1..=n as u32 {
        let got = smol::block_on(s.fetch(
            "INBOX",
            sealmail::store::UidSet::range(uid, uid),
            what.clone(),
        ))
        .expect("fetch");
        direct += got[0].sections[0].1.len();
    }
    let direct_rate = direct as f64 / t.elapsed().as_secs_f64() / 1e6;
    drop(s);
    let pop3_rate = with_server(config, |_, addr, _| {
        let mut c = Pop3Client::connect(addr);
        c.cmd("USER ann@example.org");
        assert!(c.cmd("PASS pw").starts_with("+OK"));
        let t = Instant::now();
        let mut bytes = 0;
        for i in 1..=n {
            assert!(c.cmd(&format!("RETR {i}")).starts_with("+OK"));
            bytes += c.body();
        }
        let rate = bytes as f64 / t.elapsed().as_secs_f64() / 1e6;
        c.cmd("QUIT");
        rate
    });
    println!(
        "\nPOP3 RETR of {n} messages of ~4 KiB, one at a time: {pop3_rate:.1} MB/s; the same reads straight from the store: {direct_rate:.1} MB/s (ratio {:.2})",
        pop3_rate / direct_rate
    );
    let config = pop3_mailbox(tmp, "pop3-stat", big, 512);
    with_server(config, |_, addr, _| {
        for round in ["cold key", "warm key"] {
            let mut c = Pop3Client::connect(addr);
            c.cmd("USER ann@example.org");
            let t = Instant::now();
            assert!(c.cmd("PASS pw").starts_with("+OK"));
            let login = t.elapsed();
            let t = Instant::now();
            let stat = c.cmd("STAT");
            let first = t.elapsed();
            assert!(stat.starts_with(&format!("+OK {big} ")), "{stat}");
            println!(
                "POP3 on {big} messages ({round}): PASS (unlock + snapshot) {:.1} ms, then STAT first byte {:.2} ms; goal <= 100 ms: {}",
                ms(login),
                ms(first),
                ok(ms(login + first) <= 100.0)
            );
            c.cmd("QUIT");
        }
    });
}

/// One SMTP sender: `count` transactions on one connection.
fn mx_sender(addr: std::net::SocketAddr, rcpt: &str, id: usize, count: usize) {
    use std::io::{BufRead, BufReader, Write};
    let s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let reply = |r: &mut BufReader<std::net::TcpStream>| loop {
        let mut l = String::new();
        r.read_line(&mut l).expect("read");
        if l.as_bytes().get(3) != Some(&b'-') {
            return l;
        }
    };
    reply(&mut r);
    w.write_all(b"EHLO bench.example.net\r\n").expect("write");
    reply(&mut r);
    let mut rng = id as u64 + 1;
    for i in 0..count {
        let body = message(id * 100_000 + i, 4096, &mut rng);
        // Pipelined envelope (RFC 2920), then the data.
        w.write_all(
            format!("MAIL FROM:<s{id}@example.net>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n").as_bytes(),
        )
        .expect("write");
        for _ in 0..3 {
            reply(&mut r);
        }
        w.write_all(&body).expect("write");
        w.write_all(b".\r\n").expect("write");
        let last = reply(&mut r);
        assert!(last.starts_with("250"), "{last}");
    }
    w.write_all(b"QUIT\r\n").expect("write");
}

/// A data directory with example.org and user0..user9@example.org
/// (password "pw").
fn ten_users(data: &Path) -> sealmail::config::Config {
    sealmail::app::init(data, "bench.example.org", true).expect("init");
    let config = sealmail::config::Config::load(data).expect("config");
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

fn mx_bench(tmp: &Path) {
    let config = ten_users(&tmp.join("mx"));
    // Baseline: the store's own sealed delivery, same messages, no network.
    let (_b, store) = sealmail::app::open_store(&config).expect("store");
    let per = 200;
    let t = Instant::now();
    std::thread::scope(|scope| {
        for id in 0..10 {
            let store = store.clone();
            scope.spawn(move || {
                let mut rng = id as u64 + 7;
                for i in 0..per {
                    let m = message(i, 4096, &mut rng);
                    smol::block_on(store.deliver(&format!("user{id}@example.org"), m))
                        .expect("deliver");
                }
            });
        }
    });
    let direct = (10 * per) as f64 / t.elapsed().as_secs_f64();
    let smtp = with_server(config, |addr, _, _| {
        let t = Instant::now();
        std::thread::scope(|scope| {
            for id in 0..10 {
                scope.spawn(move || mx_sender(addr, &format!("user{id}@example.org"), id, per));
            }
        });
        (10 * per) as f64 / t.elapsed().as_secs_f64()
    });
    println!(
        "\nMX: 10 senders x {per} messages of 4 KiB, sealed to owners who are away, each 250 durable: {smtp:.0} msgs/s \
         (the store alone, same deliveries without SMTP: {direct:.0} msgs/s, ratio {:.2}); \
         goal >= 1,300 (2x Postfix->Dovecot LMTP's ~650), aim 2,000: {}",
        smtp / direct,
        ok(smtp >= 1300.0)
    );
}

/// Resident memory of this process, from /proc (0 where unavailable).
fn rss_kib() -> u64 {
    rss_at("/proc/self/status")
}

/// Resident memory of another process.
fn rss_of(pid: u32) -> u64 {
    rss_at(&format!("/proc/{pid}/status"))
}

fn rss_at(status: &str) -> u64 {
    std::fs::read_to_string(status)
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// 1,000 SMTP sessions that said EHLO and wait: how much memory they hold.
fn idle_sessions_bench(tmp: &Path) {
    let data = tmp.join("idle");
    sealmail::app::init(&data, "bench.example.org", true).expect("init");
    let mut config = sealmail::config::Config::load(&data).expect("config");
    config.connections_per_ip = 100_000;
    let n = 1000;
    let (before, after) = with_server(config, |addr, _, _| {
        use std::io::{BufRead, BufReader, Write};
        std::thread::sleep(Duration::from_millis(200));
        let before = rss_kib();
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            let s = std::net::TcpStream::connect(addr)
                .expect("connect (raise the fd limit: ulimit -n 4096)");
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            r.read_line(&mut line).expect("greeting");
            (&s).write_all(b"EHLO idle.example.net\r\n").expect("write");
            loop {
                line.clear();
                r.read_line(&mut line).expect("ehlo");
                if line.as_bytes().get(3) == Some(&b' ') {
                    break;
                }
            }
            held.push(s);
        }
        std::thread::sleep(Duration::from_millis(200));
        let after = rss_kib();
        drop(held);
        (before, after)
    });
    let grew = after.saturating_sub(before);
    println!(
        "\nMX: {n} idle sessions after EHLO: RSS {} -> {} MiB ({:.1} KiB per session, client sockets included)",
        before / 1024,
        after / 1024,
        grew as f64 / n as f64
    );
}

/// A backup (checkpoint, file snapshot, keyed check, SHA-256, durable move
/// into the directory target, manifest) of a mailbox of about `mib` MiB,
/// against `cp` of the same file, and the memory it takes.
fn backup_bench(tmp: &Path, mib: u64) {
    use sealmail::backup::{Outcome, Target, backup_now};
    let dir = tmp.join("backup");
    std::fs::create_dir_all(&dir).expect("dir");
    let (creds, keys) = sealmail::store::keys::create(
        "pw",
        KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
    )
    .expect("keys");
    let path = dir.join("mailbox.sqlite");
    let mut mb = open(&path, Some(&keys.dek));
    // Random attachments: neither zstd nor the attachment store shrink them.
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut i = 0usize;
    let fill_start = Instant::now();
    while std::fs::metadata(&path).map_or(0, |m| m.len())
        + std::fs::metadata(dir.join("mailbox.sqlite-wal")).map_or(0, |m| m.len())
        < mib << 20
    {
        let reqs: Vec<AppendRequest> = (0..16)
            .map(|_| {
                let mut blob = vec![0u8; 192 * 1024];
                for b in blob.iter_mut() {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    *b = rng as u8;
                }
                i += 1;
                let body = base64_lines(&blob);
                AppendRequest {
                    folder: "INBOX".into(),
                    message: format!(
                        "From: a@example.net\r\nSubject: big {i}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}--b--\r\n"
                    )
                    .into_bytes(),
                    flags: Flags::default(),
                    internal_date: None,
                }
            })
            .collect();
        mb.append(&reqs, None, None).expect("append");
    }
    mb.connection()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    let size = std::fs::metadata(&path).expect("size").len();
    println!(
        "\nbackup: filled a {} MiB mailbox ({i} messages with random attachments) in {:.1} s",
        size >> 20,
        fill_start.elapsed().as_secs_f64()
    );
    // Each figure is taken twice: with the mailbox file out of the page
    // cache, as a daily backup mostly finds it, and with it cached.
    let cp_time = || {
        settle();
        let start = Instant::now();
        std::fs::copy(&path, dir.join("cp.sqlite")).expect("cp");
        let took = start.elapsed();
        std::fs::remove_file(dir.join("cp.sqlite")).expect("rm");
        took
    };
    let baseline = rss_kib();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(baseline));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mb = std::sync::Mutex::new(mb);
    let backup_time = |name: &str| {
        // A target of its own, so the state check finds no earlier backup.
        let target = Target::Dir(dir.join(name));
        settle();
        let start = Instant::now();
        let outcome =
            backup_now(&target, &dir, "bench", &mb, &keys.dek, &creds, false).expect("backup");
        let took = start.elapsed();
        assert!(matches!(outcome, Outcome::Stored(_)));
        took
    };
    evict_from_cache(&path);
    let cp_cold = cp_time();
    evict_from_cache(&path);
    let backup_cold = backup_time("backups-cold");
    warm_cache(&path);
    let cp_warm = cp_time();
    let backup_warm = backup_time("backups-warm");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    let grown = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(baseline);
    for (cache, took, cp) in [
        ("not cached", backup_cold, cp_cold),
        ("cached", backup_warm, cp_warm),
    ] {
        let ratio = took.as_secs_f64() / cp.as_secs_f64().max(1e-9);
        println!(
            "backup of {} MiB, file {cache}: {:.2} s; cp of the same file {:.2} s (ratio {ratio:.2}, goal <= 2: {})",
            size >> 20,
            took.as_secs_f64(),
            cp.as_secs_f64(),
            ok(ratio <= 2.0)
        );
    }
    println!(
        "backup peak memory: +{:.1} MiB over the process before it (goal <= 64 MiB, flat in size: {})",
        grown as f64 / 1024.0,
        ok(grown <= 64 * 1024)
    );
}

/// Drops a file's pages from the page cache (after writing back any dirty
/// ones), so the next read comes from the disk.
fn evict_from_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).expect("open");
    f.sync_all().expect("sync");
    // SAFETY: a plain call on a descriptor owned by `f` for its duration.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0, "posix_fadvise");
}

/// Lets the disk finish what earlier steps wrote, so one figure does not
/// pay for another's writeback.
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_secs(1));
}

/// Reads a file once, so its pages are in the page cache.
fn warm_cache(path: &Path) {
    let mut f = std::fs::File::open(path).expect("open");
    std::io::copy(&mut f, &mut std::io::sink()).expect("read");
}

fn base64_lines(data: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(b64.len() + b64.len() / 38);
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push_str("\r\n");
    }
    out
}

/// A raw IMAP client for the load: one command, responses to its tag.
struct ImapClient {
    /// One descriptor per client (writes go through `get_mut`), so 10,000
    /// fit under the usual limit.
    r: std::io::BufReader<std::net::TcpStream>,
    n: u64,
}

impl ImapClient {
    fn connect(addr: std::net::SocketAddr) -> ImapClient {
        use std::io::BufRead;
        let s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let mut c = ImapClient {
            r: std::io::BufReader::new(s),
            n: 0,
        };
        let mut greeting = String::new();
        c.r.read_line(&mut greeting).expect("greeting");
        c
    }

    /// Sends a command (literals allowed as LITERAL+) and reads to its
    /// tagged reply, which must be OK.
    fn cmd(&mut self, c: &str) {
        use std::io::{BufRead, Read, Write};
        self.n += 1;
        let tag = format!("t{}", self.n);
        self.r
            .get_mut()
            .write_all(format!("{tag} {c}\r\n").as_bytes())
            .expect("write");
        let mut line = Vec::new();
        loop {
            line.clear();
            self.r.read_until(b'\n', &mut line).expect("read");
            assert!(!line.is_empty(), "server closed");
            let text = String::from_utf8_lossy(&line);
            let t = text.trim_end();
            if let Some(open) = t.rfind('{')
                && t.ends_with('}')
                && let Ok(n) = t[open + 1..t.len() - 1].parse::<usize>()
            {
                let mut lit = vec![0; n];
                self.r.read_exact(&mut lit).expect("literal");
                continue;
            }
            if let Some(rest) = t.strip_prefix(&format!("{tag} ")) {
                assert!(rest.starts_with("OK"), "{c}: {t}");
                return;
            }
        }
    }
}

/// Commands/s of clients doing login, select, fetch, store, append,
/// expunge, logout; warm login latency; against the same work done on the
/// store directly in this process.
fn imap_bench(tmp: &Path) {
    let mut config = pop3_mailbox(tmp, "imap-load", 1000, 4096);
    config.connections_per_ip = 1000;
    let clients = 8;
    let rounds = 40;
    let small = "From: a@example.net\r\nSubject: load\r\n\r\nappended by the load\r\n";
    // One round: 9 commands.
    let (rate, logins) = with_server(config.clone(), |_, _, addr| {
        // A first login unlocks the key (argon2); the rest are warm.
        ImapClient::connect(addr).cmd("LOGIN ann@example.org pw");
        let t = Instant::now();
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut logins = Vec::new();
                    for r in 0..rounds {
                        let mut c = ImapClient::connect(addr);
                        let t = Instant::now();
                        c.cmd("LOGIN ann@example.org pw");
                        logins.push(t.elapsed());
                        c.cmd("SELECT INBOX");
                        c.cmd("FETCH 1:20 (FLAGS UID RFC822.SIZE ENVELOPE)");
                        c.cmd(&format!("FETCH {} BODY.PEEK[]", r % 900 + 1));
                        c.cmd("STORE 1:5 +FLAGS.SILENT (\\Seen)");
                        c.cmd(&format!("APPEND INBOX {{{}+}}\r\n{small}", small.len()));
                        c.cmd("UID STORE 1001:* +FLAGS.SILENT (\\Deleted)");
                        c.cmd("UID EXPUNGE 1001:*");
                        c.cmd("LOGOUT");
                    }
                    logins
                })
            })
            .collect();
        let mut logins = Vec::new();
        for h in handles {
            logins.extend(h.join().expect("client"));
        }
        let cmds = (clients * rounds * 9) as f64;
        (cmds / t.elapsed().as_secs_f64(), logins)
    });
    // Baseline: the same operations through the storage interface.
    let (_b, store) = sealmail::app::open_store(&config).expect("store");
    smol::block_on(store.unlock("ann@example.org", "pw")).expect("warm");
    let t = Instant::now();
    let ops = clients * rounds;
    for r in 0..ops {
        let s = smol::block_on(store.unlock("ann@example.org", "pw")).expect("unlock");
        let info = smol::block_on(s.select("INBOX")).expect("select");
        let what = sealmail::store::FetchWhat {
            envelope: true,
            ..Default::default()
        };
        let first = sealmail::store::UidSet::range(info.uids[0], info.uids[19]);
        smol::block_on(s.fetch("INBOX", first, what)).expect("fetch");
        let whole = sealmail::store::FetchWhat {
            sections: vec![sealmail::store::Section {
                path: vec![],
                kind: sealmail::store::SectionKind::Whole,
            }],
            ..Default::default()
        };
        let one = sealmail::store::UidSet::range(info.uids[r % 900], info.uids[r % 900]);
        smol::block_on(s.fetch("INBOX", one, whole)).expect("fetch");
        let five = sealmail::store::UidSet::range(info.uids[0], info.uids[4]);
        let flags = |uids, bit| sealmail::store::StoreFlags {
            folder: "INBOX".into(),
            uids,
            op: sealmail::store::FlagOp::Add,
            flags: Flags::system(bit),
            unchanged_since: None,
        };
        smol::block_on(s.store_flags(flags(five, Flags::SEEN))).expect("store");
        let a = smol::block_on(s.append(AppendRequest {
            folder: "INBOX".into(),
            message: small.as_bytes().to_vec(),
            flags: Flags::default(),
            internal_date: None,
        }))
        .expect("append");
        let new = sealmail::store::UidSet::range(a.uid, a.uid);
        smol::block_on(s.store_flags(flags(new.clone(), Flags::DELETED))).expect("store");
        smol::block_on(s.expunge("INBOX", Some(new))).expect("expunge");
    }
    let direct = (ops * 9) as f64 / t.elapsed().as_secs_f64();
    let p50 = percentile(logins.clone(), 0.5);
    let p99 = percentile(logins, 0.99);
    println!(
        "\nIMAP: {clients} clients x {rounds} rounds of login, select, fetch 20 envelopes, fetch a body, store, append, store, expunge, logout: \
         {rate:.0} commands/s (the same operations on the store, one thread, no network: {direct:.0}/s, ratio {:.2}); \
         warm login p50 {:.2} ms, p99 {:.2} ms (goal p50 <= 2 ms: {})",
        rate / direct,
        ms(p50),
        ms(p99),
        ok(p50 <= Duration::from_millis(2))
    );
}

/// 10,000 clients logged in, INBOX selected, in IDLE, against a server in
/// its own process (so each side has the file descriptors it needs): the
/// server's resident memory.
fn imap_idle_bench(tmp: &Path) {
    let n: usize = std::env::var("BENCH_IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let data = tmp.join("imap-idle");
    let config = pop3_mailbox(tmp, "imap-idle", 10, 4096);
    drop(config);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let file = data.join("sealmail.toml");
    let text = std::fs::read_to_string(&file).expect("config");
    let text: String = text
        .lines()
        .map(|l| {
            let key = l.split(" = ").next().unwrap_or("");
            match key {
                "imap" => format!("imap = \"127.0.0.1:{port}\""),
                "smtp" | "submission" | "submissions" | "imaps" | "pop3" | "pop3s" => {
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
    let mut server = std::process::Command::new(&bin)
        .arg("--data")
        .arg(&data)
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{} (build it: cargo build --release): {e}", bin.display()));
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = rss_of(server.id());
    let t = Instant::now();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        use std::io::{BufRead, Write};
        let mut c = ImapClient::connect(addr);
        c.cmd("LOGIN ann@example.org pw");
        c.cmd("SELECT INBOX");
        c.r.get_mut().write_all(b"i IDLE\r\n").expect("idle");
        let mut line = String::new();
        c.r.read_line(&mut line).expect("idling");
        held.push(c);
        if t.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_of(server.id());
    let held_n = held.len();
    drop(held);
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "\nIMAP: {held_n} connections logged in, INBOX selected, in IDLE (set up in {:.1} s): server RSS {} -> {} MiB \
         ({:.1} KiB per connection); goal 10,000 in <= 512 MiB: {}",
        t.elapsed().as_secs_f64(),
        before / 1024,
        after / 1024,
        after.saturating_sub(before) as f64 / held_n.max(1) as f64,
        ok(held_n >= 10_000 && after <= 512 * 1024)
    );
}

/// A loopback SMTP server that takes every message (the next hop of the
/// submission figures); counts what it got to the end of data.
fn smtp_sink(count: Arc<std::sync::atomic::AtomicUsize>) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let _ = conn.set_nodelay(true);
            let count = count.clone();
            std::thread::spawn(move || {
                use std::io::{BufRead, BufReader, Write};
                let mut w = conn.try_clone().expect("clone");
                let mut r = BufReader::new(conn);
                let _ = w.write_all(b"220 sink ESMTP\r\n");
                let mut line = Vec::new();
                let mut in_data = false;
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let reply: &[u8] = if in_data {
                        if line != b".\r\n" {
                            continue;
                        }
                        in_data = false;
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        b"250 2.0.0 OK\r\n"
                    } else if line.starts_with(b"EHLO") {
                        b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                    } else if line.starts_with(b"DATA") {
                        in_data = true;
                        b"354 go on\r\n"
                    } else if line.starts_with(b"QUIT") {
                        let _ = w.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        b"250 2.0.0 OK\r\n"
                    };
                    if w.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One submission client over implicit TLS: AUTH PLAIN once, then `count`
/// pipelined transactions; returns when the last got its 250.
fn submission_sender(addr: std::net::SocketAddr, user: &str, id: usize, count: usize) {
    use std::io::{Read, Write};
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = rustls::pki_types::ServerName::try_from("bench.example.org").expect("name");
    let conn = rustls::ClientConnection::new(sealmail::net::tls::opportunistic_client(), name)
        .expect("tls");
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut buf: Vec<u8> = Vec::new();
    let mut reply = |s: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>| loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buf.drain(..i + 2).collect();
            if line.get(3) != Some(&b'-') {
                return String::from_utf8_lossy(&line).to_string();
            }
            continue;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "server closed");
        buf.extend_from_slice(&chunk[..n]);
    };
    reply(&mut s);
    s.write_all(b"EHLO bench.example.net\r\n").expect("write");
    reply(&mut s);
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0pw"));
    s.write_all(format!("AUTH PLAIN {auth}\r\n").as_bytes())
        .expect("write");
    let r = reply(&mut s);
    assert!(r.starts_with("235"), "{r}");
    let mut rng = id as u64 + 3;
    for i in 0..count {
        let body = message(id * 100_000 + i, 4096, &mut rng);
        let body = String::from_utf8_lossy(&body).replace("From: sender", "X-Was: sender");
        let head = format!("From: {user}\r\n");
        s.write_all(
            format!("MAIL FROM:<{user}>\r\nRCPT TO:<rcpt{id}@sink.test>\r\nDATA\r\n").as_bytes(),
        )
        .expect("write");
        for _ in 0..3 {
            reply(&mut s);
        }
        s.write_all(head.as_bytes()).expect("write");
        s.write_all(body.as_bytes()).expect("write");
        s.write_all(b".\r\n").expect("write");
        let last = reply(&mut s);
        assert!(last.starts_with("250"), "{last}");
    }
    let _ = s.write_all(b"QUIT\r\n");
}

fn submission_bench(tmp: &Path) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let data = tmp.join("submission");
    let mut config = ten_users(&data);
    let keys = sealmail::smtp::dkim::generate(sealmail::util::now_unix()).expect("dkim");
    sealmail::app::open_control(&config)
        .expect("control")
        .add_dkim_keys("example.org", &keys)
        .expect("dkim");
    let (senders, per) = (10, 200);
    let total = senders * per;

    // Baseline: the queue's own durable commits, same sizes, no SMTP, TLS
    // or DKIM.
    let key = sealmail::app::server_key(&data).expect("key");
    let base_dir = tmp.join("submission-baseline");
    std::fs::create_dir_all(&base_dir).expect("dir");
    let queue = Arc::new(
        sealmail::queue::Queue::open(
            &base_dir,
            &key,
            Arc::new(sealmail::queue::SystemClock),
            sealmail::queue::Policy::default(),
        )
        .expect("queue"),
    );
    let t = Instant::now();
    std::thread::scope(|scope| {
        for id in 0..senders {
            let queue = queue.clone();
            scope.spawn(move || {
                let mut rng = id as u64 + 3;
                for i in 0..per {
                    let m = sealmail::queue::NewMessage {
                        alias: format!("user{id}@example.org"),
                        sender: format!("user{id}@example.org"),
                        recipients: vec![sealmail::queue::NewRecipient {
                            kind: sealmail::queue::Kind::Remote,
                            address: format!("rcpt{id}@sink.test"),
                            via: None,
                        }],
                        body: message(i, 4096, &mut rng),
                    };
                    queue.enqueue(&m).expect("enqueue");
                }
            });
        }
    });
    let direct = total as f64 / t.elapsed().as_secs_f64();
    drop(queue);

    let delivered = Arc::new(AtomicUsize::new(0));
    let sink = smtp_sink(delivered.clone());
    config.nameservers = vec!["127.0.0.1:9".parse().expect("addr")];
    config.relay.routes.insert(
        "sink.test".into(),
        sealmail::config::HostPort {
            host: sink.ip().to_string(),
            port: sink.port(),
        },
    );
    let (accept, delivery) = with_server(config, |_, _, _| {
        let addr = SUBMISSIONS.with(|s| s.get()).expect("submission port");
        let t = Instant::now();
        std::thread::scope(|scope| {
            for id in 0..senders {
                scope.spawn(move || {
                    submission_sender(addr, &format!("user{id}@example.org"), id, per)
                });
            }
        });
        let accepted = t.elapsed();
        let deadline = Instant::now() + Duration::from_secs(120);
        while delivered.load(Ordering::SeqCst) < total && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let done = delivered.load(Ordering::SeqCst);
        (
            total as f64 / accepted.as_secs_f64(),
            done as f64 / t.elapsed().as_secs_f64(),
        )
    });
    println!(
        "\nSubmission: {senders} senders x {per} messages of 4 KiB over implicit TLS, AUTH once per connection, \
         DKIM-signed (RSA + Ed25519), each 250 durable in the queue: {accept:.0} msgs/s accepted \
         (the queue alone, same commits without SMTP/TLS/DKIM: {direct:.0} msgs/s, ratio {:.2}); goal >= 1,000: {}",
        accept / direct,
        ok(accept >= 1000.0)
    );
    println!(
        "  delivery to a loopback SMTP sink, start of submission to last delivered: {delivery:.0} msgs/s \
         ({:.2} of the accept rate); goal: keeps up: {}",
        delivery / accept,
        ok(delivery >= 0.9 * accept)
    );
}
