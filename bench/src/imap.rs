//! IMAP: a logged-in command mix, and idle connections' memory.

use std::path::Path;
use std::time::{Duration, Instant};

use sealmail::store::{AppendRequest, Flags};

use crate::common::*;

/// A raw IMAP client for the load: one command, responses to its tag.
pub(crate) struct ImapClient {
    /// One descriptor per client (writes go through `get_mut`), so 10,000
    /// fit under the usual limit.
    pub(crate) r: std::io::BufReader<std::net::TcpStream>,
    n: u64,
}

impl ImapClient {
    pub(crate) fn connect(addr: std::net::SocketAddr) -> ImapClient {
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

    /// ann@example.org logged in, INBOX selected, in IDLE.
    pub(crate) fn idling(addr: std::net::SocketAddr) -> ImapClient {
        use std::io::{BufRead, Write};
        let mut c = ImapClient::connect(addr);
        c.cmd("LOGIN ann@example.org pw");
        c.cmd("SELECT INBOX");
        c.r.get_mut().write_all(b"i IDLE\r\n").expect("idle");
        let mut line = String::new();
        c.r.read_line(&mut line).expect("idling");
        c
    }

    /// Sends a command (literals allowed as LITERAL+) and reads to its
    /// tagged reply, which must be OK.
    pub(crate) fn cmd(&mut self, c: &str) {
        self.lines(c);
    }

    /// `cmd`, returning the untagged lines (literals left out).
    pub(crate) fn lines(&mut self, c: &str) -> Vec<String> {
        use std::io::{BufRead, Read, Write};
        self.n += 1;
        let tag = format!("t{}", self.n);
        self.r
            .get_mut()
            .write_all(format!("{tag} {c}\r\n").as_bytes())
            .expect("write");
        let mut line = Vec::new();
        let mut untagged = Vec::new();
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
                return untagged;
            }
            untagged.push(t.to_string());
        }
    }
}

/// Commands/s of clients doing login, select, fetch, store, append,
/// expunge, logout; warm login latency; against the same work done on the
/// store directly in this process.
pub(crate) fn imap_bench(tmp: &Path) {
    let mut config = pop3_mailbox(tmp, "imap-load", 1000, 4096);
    config.connections_per_ip = 1000;
    let clients = 8;
    let rounds = 40;
    let small = "From: a@example.net\r\nSubject: load\r\n\r\nappended by the load\r\n";
    let (rate, logins) = with_server(config.clone(), |_, _, addr| {
        login_load(addr, clients, rounds)
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
            if_missing: Default::default(),
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

/// The login-per-session load of `imap_bench` against any IMAP server on
/// `addr` whose ann@example.org (password pw) holds 1,000 messages:
/// commands/s and the LOGIN latencies.
pub(crate) fn login_load(
    addr: std::net::SocketAddr,
    clients: usize,
    rounds: usize,
) -> (f64, Vec<Duration>) {
    let small = "From: a@example.net\r\nSubject: load\r\n\r\nappended by the load\r\n";
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
    // One round: 9 commands.
    let cmds = (clients * rounds * 9) as f64;
    (cmds / t.elapsed().as_secs_f64(), logins)
}

/// Clients that stay logged in (as desktop and phone clients do): 10
/// sessions on one 1,000-message mailbox, each logged in once, then rounds
/// of FETCH of envelopes, FETCH of a body, STORE, APPEND, SEARCH, UID
/// EXPUNGE. Commands/s, and FETCH latency under the load.
pub(crate) fn imap_steady_bench(tmp: &Path) {
    let config = pop3_mailbox(tmp, "imap-steady", 1000, 4096);
    let clients = 10;
    let rounds = 60;
    let (mut server, addr) = spawn_server(&config.data_dir);
    let fresh = rss_of(server.id());
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(fresh));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), server.id());
        std::thread::spawn(move || {
            use std::sync::atomic::Ordering;
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_of(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let (rate, fetches) = steady_load(addr, clients, rounds);
    // Every session has logged out; the key (and the open file) stay
    // until keys.cache_ttl.
    std::thread::sleep(Duration::from_secs(2));
    let after = rss_of(server.id());
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    let _ = server.kill();
    let _ = server.wait();
    let p50 = percentile(fetches.clone(), 0.5);
    let p99 = percentile(fetches, 0.99);
    println!(
        "\nIMAP, {clients} sessions logged in once, {rounds} rounds each of fetch 20 envelopes, fetch a body, store, append, search, store, expunge: \
         {rate:.0} commands/s; FETCH p50 {:.2} ms, p99 {:.2} ms (goal p50 <= 2 ms: {}); \
         server RSS fresh {} MiB, peak {} MiB, 2 s after the sessions ended {} MiB (goal <= fresh + 64 MiB within the key TTL: {})",
        ms(p50),
        ms(p99),
        ok(p50 <= Duration::from_millis(2)),
        fresh / 1024,
        peak / 1024,
        after / 1024,
        ok(after <= fresh + 64 * 1024)
    );
}

/// The logged-in load of `imap_steady_bench` against any IMAP server on
/// `addr` whose ann@example.org (password pw) holds 1,000 messages:
/// commands/s and the FETCH latencies.
pub(crate) fn steady_load(
    addr: std::net::SocketAddr,
    clients: usize,
    rounds: usize,
) -> (f64, Vec<Duration>) {
    let small = "From: a@example.net\r\nSubject: steady\r\n\r\nappended by the load\r\n";
    let mut sessions: Vec<ImapClient> = (0..clients)
        .map(|_| {
            let mut c = ImapClient::connect(addr);
            c.cmd("LOGIN ann@example.org pw");
            c.cmd("SELECT INBOX");
            c
        })
        .collect();
    let t = Instant::now();
    let handles: Vec<_> = sessions
        .drain(..)
        .enumerate()
        .map(|(k, mut c)| {
            std::thread::spawn(move || {
                let mut fetches = Vec::new();
                for r in 0..rounds {
                    let at = (k * rounds + r) % 900 + 1;
                    let f = Instant::now();
                    c.cmd(&format!(
                        "FETCH {at}:{} (FLAGS UID RFC822.SIZE ENVELOPE)",
                        at + 19
                    ));
                    fetches.push(f.elapsed());
                    let f = Instant::now();
                    c.cmd(&format!("FETCH {at} BODY.PEEK[]"));
                    fetches.push(f.elapsed());
                    c.cmd(&format!("STORE {at}:{} +FLAGS.SILENT (\\Seen)", at + 4));
                    c.cmd(&format!("APPEND INBOX {{{}+}}\r\n{small}", small.len()));
                    c.cmd("UID SEARCH SUBJECT steady");
                    c.cmd("UID STORE 1001:* +FLAGS.SILENT (\\Deleted)");
                    c.cmd("UID EXPUNGE 1001:*");
                }
                c.cmd("LOGOUT");
                fetches
            })
        })
        .collect();
    let mut fetches = Vec::new();
    for h in handles {
        fetches.extend(h.join().expect("client"));
    }
    let rate = (clients * rounds * 7) as f64 / t.elapsed().as_secs_f64();
    (rate, fetches)
}

/// An owner returning to `n` sealed 4 KiB messages: the first IMAP
/// LOGIN's latency (argon2 included), and how long until the session sees
/// all of them in INBOX (the import runs after LOGIN answers).
pub(crate) fn spool_login_bench(tmp: &Path) {
    let n = 5_000;
    let config = pop3_mailbox(tmp, "spool-login", 0, 4096);
    {
        // A fresh store holds no key: every delivery is sealed.
        let (_b, store) = sealmail::app::open_store(&config).expect("store");
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let messages: Vec<Vec<u8>> = (0..n).map(|i| message(i, 4096, &mut rng)).collect();
        std::thread::scope(|s| {
            for part in messages.chunks(n / 4) {
                let store = &store;
                s.spawn(move || {
                    for m in part {
                        let d = smol::block_on(store.deliver("ann@example.org", m.clone()))
                            .expect("deliver");
                        assert_eq!(d, sealmail::store::Delivery::Sealed);
                    }
                });
            }
        });
    }
    settle();
    let (login, all) = with_server(config, |_, _, addr| {
        let mut c = ImapClient::connect(addr);
        let t = Instant::now();
        c.cmd("LOGIN ann@example.org pw");
        let login = t.elapsed();
        let exists = |lines: Vec<String>| {
            lines
                .iter()
                .filter_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
                .next_back()
        };
        let mut seen: usize = exists(c.lines("SELECT INBOX")).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            seen = exists(c.lines("NOOP")).unwrap_or(seen);
        }
        assert_eq!(seen, n, "every sealed message arrives");
        (login, t.elapsed())
    });
    println!(
        "\nReturning owner: first IMAP LOGIN with {n} sealed 4 KiB messages waiting: {:.0} ms (goal <= 100 ms: {}); \
         all {n} in INBOX {:.0} ms after LOGIN was sent ({:.0} msg/s; goal <= 1.5 s: {})",
        ms(login),
        ok(login <= Duration::from_millis(100)),
        ms(all),
        n as f64 / all.as_secs_f64(),
        ok(all <= Duration::from_millis(1500))
    );
}

/// 10,000 clients logged in, INBOX selected, in IDLE, against a server in
/// its own process (so each side has the file descriptors it needs): the
/// server's resident memory.
pub(crate) fn imap_idle_bench(tmp: &Path) {
    let n: usize = std::env::var("BENCH_IDLE_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let data = pop3_mailbox(tmp, "imap-idle", 10, 4096).data_dir;
    let (mut server, addr) = spawn_server(&data);
    let before = rss_of(server.id());
    let t = Instant::now();
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        held.push(ImapClient::idling(addr));
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
