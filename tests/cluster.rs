//! Several nodes, each its own process of the real binary on loopback: a
//! primary and secondaries linked over the cluster's TLS WebSocket. Mail
//! taken by one node is read through another, and IDLE on a secondary
//! sees a delivery made through a third; imaplib, poplib, smtplib and
//! mbsync work through a secondary; a reply lost in a proxy is retried
//! and applied once; a secondary whose primary is down seals mail into its
//! own spool (ciphertext only) and ships it once, after its own kill -9
//! too; mail acknowledged while the primary is killed under load is
//! stored exactly once; impostors, strangers, garbage, 1 GiB frames,
//! version skew, unknown requests and foreign sessions get nothing, and
//! the primary keeps serving; `backup now` on a secondary runs on the
//! primary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::imap::Client;
use common::*;

/// A node's data directory, with its role and (for a primary) its link
/// port written into `[cluster]`, every listener on a known port.
fn node(role: &str) -> (Env, u16) {
    let mut env = Env::subprocess();
    let port = free_port();
    let mut text = std::fs::read_to_string(&env.config.file)
        .unwrap()
        .replace("role = \"standalone\"", &format!("role = \"{role}\""))
        .replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
    for key in ["submission", "submissions", "imaps", "pop3s"] {
        text = text.replace(
            &format!("{key} = \"127.0.0.1:0\""),
            &format!("{key} = \"127.0.0.1:{}\"", free_port()),
        );
    }
    std::fs::write(&env.config.file, text).unwrap();
    env.config = sealmail::config::Config::load(env.data()).unwrap();
    (env, port)
}

/// `cluster init` on the primary: (url, secret, pin).
fn init(primary: &Env) -> (String, String, String) {
    let out = run_ok(
        primary
            .bin()
            .args(["cluster", "init", "--host", "127.0.0.1"]),
    );
    let line = out
        .lines()
        .find(|l| l.contains("cluster join"))
        .expect("a join command");
    let words: Vec<&str> = line.split_whitespace().collect();
    let n = words.len();
    (
        words[n - 3].to_string(),
        words[n - 2].to_string(),
        words[n - 1].to_string(),
    )
}

fn secondary_of(url: &str, secret: &str, pin: &str) -> Env {
    let (env, _) = node("secondary");
    run_ok(env.bin().args(["cluster", "join", url, secret, pin]));
    env
}

/// Waits (60 s at most) until an IMAP LOGIN on `addr` succeeds: a
/// secondary answers before its link is up.
fn login_when_linked(addr: SocketAddr, user: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (mut c, _) = Client::connect(addr);
        let r = c.cmd(&format!("L LOGIN {user} pw"));
        if r.last().unwrap().starts_with("L OK") {
            return c;
        }
        assert!(Instant::now() < deadline, "no login through {addr}: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends over `addr`'s MX until a 250 (the link may still be coming up:
/// 4xx until then); panics on a 5xx or after 60 s.
fn send_when_linked(addr: SocketAddr, rcpt: &str, subject: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = smtp_deliver(addr, rcpt, subject, || {});
        if reply.starts_with("250") {
            return;
        }
        assert!(reply.starts_with('4'), "{reply}");
        assert!(
            Instant::now() < deadline,
            "no delivery through {addr}: {reply}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The MX's answer to RCPT TO:<rcpt>.
fn rcpt_reply(addr: SocketAddr, rcpt: &str) -> String {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    smtp_reply(&mut r);
    let mut last = String::new();
    for cmd in [
        "HELO client.example.net".to_string(),
        "MAIL FROM:<a@example.net>".into(),
        format!("RCPT TO:<{rcpt}>"),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        last = smtp_reply(&mut r);
    }
    last
}

fn pop3_stat(addr: SocketAddr, user: &str) -> String {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    w.write_all(format!("USER {user}\r\nPASS pw\r\nSTAT\r\nQUIT\r\n").as_bytes())
        .unwrap();
    let mut lines = Vec::new();
    for _ in 0..3 {
        line.clear();
        r.read_line(&mut line).unwrap();
        lines.push(line.trim_end().to_string());
    }
    assert!(lines[1].starts_with("+OK"), "{lines:?}");
    lines[2].clone()
}

#[test]
fn mail_through_one_secondary_is_read_through_another_and_the_primary() {
    let (primary, _) = node("primary");
    let bob = primary.alias("bob", "pw");
    let (url, secret, pin) = init(&primary);
    let a = secondary_of(&url, &secret, &pin);
    let b = secondary_of(&url, &secret, &pin);
    let _p = primary.spawn_server(&[]);
    let _a = a.spawn_server(&[]);
    let _b = b.spawn_server(&[]);

    // The owner is away: the primary seals it.
    send_when_linked(a.config.listen.smtp, &bob, "first, through A");
    let mut imap = login_when_linked(b.config.listen.imap, &bob);
    assert_eq!(imap.await_messages("INBOX", 1), 1);
    let r = imap.cmd("s SELECT INBOX");
    assert!(r.iter().any(|l| l == "* 1 EXISTS"), "{r:?}");
    let r = imap.cmd("f FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]");
    assert!(r.iter().any(|l| l.contains("first, through A")), "{r:?}");

    // IDLE on B sees what A delivers to the logged-in owner.
    imap.send(b"i IDLE\r\n");
    assert_eq!(imap.line(), "+ idling");
    send_when_linked(a.config.listen.smtp, &bob, "second, through A");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = imap.line();
        if l == "* 2 EXISTS" {
            break;
        }
        assert!(Instant::now() < deadline, "no EXISTS, last: {l}");
    }
    imap.send(b"DONE\r\n");
    assert_eq!(imap.until("i").last().unwrap(), "i OK IDLE terminated");
    let r = imap.cmd("f FETCH 2 BODY.PEEK[HEADER.FIELDS (SUBJECT)]");
    assert!(r.iter().any(|l| l.contains("second, through A")), "{r:?}");
    imap.cmd("o LOGOUT");

    // `cluster status` on each side shows the links.
    wait_for("status on the primary", || {
        run_ok(primary.bin().args(["cluster", "status"])).contains("primary, 2 secondaries linked")
    });
    wait_for("status on a secondary", || {
        let out = run_ok(a.bin().args(["cluster", "status"]));
        out.contains(&format!("secondary of {url}: connected")) && out.contains("round trip")
    });

    // The primary serves POP3 from the same mailbox.
    assert!(pop3_stat(primary.config.listen.pop3, &bob).starts_with("+OK 2 "));

    // A secondary keeps no mail: its data directory has no mailbox file
    // and no spool entry for bob.
    for env in [&a, &b] {
        let mailboxes = std::fs::read_dir(env.data().join("mailboxes"))
            .unwrap()
            .count();
        assert_eq!(mailboxes, 0, "a secondary opened a mailbox");
        assert!(files_containing(env.data(), b"through A").is_empty());
    }
}

#[test]
fn strangers_on_the_link_get_nothing_and_the_primary_keeps_serving() {
    let (primary, link_port) = node("primary");
    let bob = primary.alias("bob", "pw");
    let (url, _secret, pin) = init(&primary);
    let wrong = "ab".repeat(32);
    let impostor = secondary_of(&url, &wrong, &pin);
    let _p = primary.spawn_server(&[]);
    let _i = impostor.spawn_server(&[]);
    let link: SocketAddr = ([127, 0, 0, 1], link_port).into();

    // Plain TCP with garbage, and a huge claimed frame in the clear: the
    // TLS handshake fails and the connection is closed.
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ] {
        let mut s = TcpStream::connect(link).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(junk);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }

    // The impostor's clients are told to come back later, never let in.
    for _ in 0..3 {
        let (mut c, _) = Client::connect(impostor.config.listen.imap);
        let r = c.cmd(&format!("L LOGIN {bob} pw"));
        assert!(r.last().unwrap().starts_with("L NO"), "{r:?}");
        let reply = rcpt_reply(impostor.config.listen.smtp, &bob);
        assert!(reply.starts_with("451"), "{reply}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = std::fs::read_to_string(primary.data().join("serve.log")).unwrap();
    assert!(log.contains("wrong cluster secret"), "{log}");

    // Through all of it, the primary serves its own clients.
    smtp_send(primary.config.listen.smtp, &bob, "direct");
    let mut imap = Client::login(primary.config.listen.imap, &bob);
    assert_eq!(imap.await_messages("INBOX", 1), 1);
}

/// A TCP proxy in front of the primary's link port. Each connection gets
/// a number; the replies (primary to secondary) of the connection whose
/// number is in `stall` are swallowed, as a link that dies half-way does.
struct Proxy {
    port: u16,
    accepted: Arc<AtomicU64>,
    stall: Arc<AtomicU64>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let stall = Arc::new(AtomicU64::new(0));
        let (acc, st) = (accepted.clone(), stall.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let n = acc.fetch_add(1, Ordering::SeqCst) + 1;
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(client, server, None));
                let st = st.clone();
                std::thread::spawn(move || pump(s2, c2, Some((st, n))));
            }
        });
        Proxy {
            port,
            accepted,
            stall,
        }
    }

    /// Swallows the replies of the connection accepted last.
    fn stall_current(&self) {
        self.stall
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, stall: Option<(Arc<AtomicU64>, u64)>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((s, me)) = &stall
            && s.load(Ordering::SeqCst) == *me
        {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// The whole SMTP exchange for one message, `before_dot` run just before
/// the final dot; the final reply, or the first that refused (60 s at
/// most for each).
fn smtp_deliver(addr: SocketAddr, rcpt: &str, subject: &str, before_dot: impl FnOnce()) -> String {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    smtp_reply(&mut r);
    for cmd in [
        "HELO client.example.net".to_string(),
        "MAIL FROM:<a@example.net>".into(),
        format!("RCPT TO:<{rcpt}>"),
        "DATA".into(),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let reply = smtp_reply(&mut r);
        assert!(
            reply.starts_with('2') || reply.starts_with('3'),
            "{cmd}: {reply}"
        );
    }
    w.write_all(format!("Subject: {subject}\r\n\r\nhello\r\n").as_bytes())
        .unwrap();
    before_dot();
    w.write_all(b".\r\n").unwrap();
    smtp_reply(&mut r)
}

#[test]
fn a_delivery_whose_reply_was_lost_is_retried_and_stored_once() {
    let (primary, link_port) = node("primary");
    let bob = primary.alias("bob", "pw");
    let (_, secret, pin) = init(&primary);
    let proxy = Proxy::start(([127, 0, 0, 1], link_port).into());
    let a = secondary_of(&format!("wss://127.0.0.1:{}", proxy.port), &secret, &pin);
    let _p = primary.spawn_server(&[]);
    let _a = a.spawn_server(&[]);
    send_when_linked(a.config.listen.smtp, &bob, "before the cut");

    // From now on the primary's answers on this link are lost: the
    // delivery is stored, the secondary never hears so, finds the link
    // silent, reconnects and sends the same request again.
    let reply = smtp_deliver(a.config.listen.smtp, &bob, "reply lost", || {
        proxy.stall_current()
    });
    assert!(reply.starts_with("250"), "{reply}");
    assert!(proxy.accepted.load(Ordering::SeqCst) >= 2, "no reconnect");

    let mut imap = Client::login(primary.config.listen.imap, &bob);
    assert_eq!(imap.await_messages("INBOX", 2), 2);
    imap.cmd("s SELECT INBOX");
    let r = imap.cmd("f SEARCH SUBJECT \"reply lost\"");
    assert_eq!(r[0], "* SEARCH 2", "{r:?}");
    // Nothing else arrives: the retry was not applied a second time.
    std::thread::sleep(Duration::from_secs(1));
    let r = imap.cmd("n NOOP");
    assert!(!r.iter().any(|l| l.ends_with("EXISTS")), "{r:?}");
    let r = imap.cmd("c STATUS INBOX (MESSAGES)");
    assert!(r[0].ends_with("(MESSAGES 2)"), "{r:?}");
}

fn spooled(env: &Env) -> usize {
    std::fs::read_dir(env.data().join("cluster-spool"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_secondary_keeps_mail_while_its_primary_is_down_and_ships_it_once() {
    let (primary, _) = node("primary");
    let bob = primary.alias("bob", "pw");
    let (url, secret, pin) = init(&primary);
    let a = secondary_of(&url, &secret, &pin);
    let mut p = Some(primary.spawn_server(&[]));
    let mut sa = Some(a.spawn_server(&[]));
    send_when_linked(a.config.listen.smtp, &bob, "before the primary went");
    wait_for("the directory on the secondary", || {
        a.data().join("cluster.directory").exists()
    });

    // kill -9 the primary: the secondary seals mail for bob into its own
    // spool, synced before each 250; logins are told to come back later.
    drop(p.take());
    let canary = "canary-7d1f0c2b9e";
    for i in 0..10 {
        let reply = smtp_deliver(a.config.listen.smtp, &bob, &format!("{canary} {i}"), || {});
        assert!(reply.starts_with("250"), "{i}: {reply}");
    }
    assert_eq!(spooled(&a), 10);
    let (mut c, _) = Client::connect(a.config.listen.imap);
    let r = c.cmd(&format!("L LOGIN {bob} pw"));
    assert!(r.last().unwrap().starts_with("L NO [UNAVAILABLE]"), "{r:?}");
    let reply = rcpt_reply(a.config.listen.smtp, "nobody@example.org");
    assert!(
        reply.starts_with("451"),
        "an unknown address while away: {reply}"
    );
    // Only ciphertext: the canary is in no byte of the secondary's data.
    assert!(files_containing(a.data(), canary.as_bytes()).is_empty());

    // kill -9 the secondary too; after its restart, and the primary's,
    // it ships what it holds, once.
    drop(sa.take());
    let _a = a.spawn_server(&[]);
    p = Some(primary.spawn_server(&[]));
    wait_for("the spool shipped", || spooled(&a) == 0);
    let mut imap = Client::login(primary.config.listen.imap, &bob);
    assert_eq!(imap.await_messages("INBOX", 11), 11);
    imap.cmd("s SELECT INBOX");
    for i in 0..10 {
        let r = imap.cmd(&format!("f SEARCH SUBJECT \"{canary} {i}\""));
        assert_eq!(r[0].split(' ').count(), 3, "{i}: {r:?}");
    }
    let r = imap.cmd("c STATUS INBOX (MESSAGES)");
    assert!(r[0].ends_with("(MESSAGES 11)"), "{r:?}");
    drop(p);
}

/// Sends `count` messages over one SMTP connection, subjects
/// `{prefix}-{i}`; returns the numbers that got 250. A refused message is
/// not sent again (the test counts only what was acknowledged).
fn smtp_stream(addr: SocketAddr, rcpt: &str, prefix: &str, count: usize) -> Vec<usize> {
    let connect = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        smtp_reply(&mut r);
        w.write_all(b"EHLO load.example.net\r\n").unwrap();
        smtp_reply(&mut r);
        (r, w)
    };
    let (mut r, mut w) = connect();
    let mut acked = Vec::new();
    for i in 0..count {
        let mut ok = true;
        for cmd in [
            "MAIL FROM:<load@example.net>".to_string(),
            format!("RCPT TO:<{rcpt}>"),
            "DATA".into(),
        ] {
            w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
            let reply = smtp_reply(&mut r);
            if !(reply.starts_with('2') || reply.starts_with('3')) {
                ok = false;
                break;
            }
        }
        if !ok {
            w.write_all(b"RSET\r\n").unwrap();
            smtp_reply(&mut r);
            continue;
        }
        w.write_all(format!("Subject: {prefix}-{i}\r\n\r\nload\r\n.\r\n").as_bytes())
            .unwrap();
        let reply = smtp_reply(&mut r);
        if reply.starts_with("250") {
            acked.push(i);
        } else if reply == "EOF" {
            (r, w) = connect();
        }
    }
    acked
}

#[test]
fn mail_acknowledged_while_the_primary_is_killed_is_stored_exactly_once() {
    let (primary, _) = node("primary");
    let bob = primary.alias("bob", "pw");
    let (url, secret, pin) = init(&primary);
    let a = secondary_of(&url, &secret, &pin);
    let b = secondary_of(&url, &secret, &pin);
    let mut p = Some(primary.spawn_server(&[]));
    let _a = a.spawn_server(&[]);
    let _b = b.spawn_server(&[]);
    for s in [&a, &b] {
        send_when_linked(s.config.listen.smtp, &bob, "warm-up");
        wait_for("the directory", || {
            s.data().join("cluster.directory").exists()
        });
    }

    // 8 connections, 4 to each secondary, 2,000 messages; the primary is
    // killed (-9) a third of the way in and restarted once the
    // secondaries have sealed mail of their own.
    const PER: usize = 250;
    let senders: Vec<_> = (0..8)
        .map(|t| {
            let addr = if t % 2 == 0 {
                a.config.listen.smtp
            } else {
                b.config.listen.smtp
            };
            let bob = bob.clone();
            std::thread::spawn(move || (t, smtp_stream(addr, &bob, &format!("load-{t}"), PER)))
        })
        .collect();
    wait_for("a third of the load", || {
        // The owner is away, so the primary seals: count its spool.
        let dir = primary.data().join("spool");
        let sealed: usize = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| std::fs::read_dir(e.path()).map(|f| f.count()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        sealed > 8 * PER / 3
    });
    drop(p.take());
    wait_for("mail sealed by both secondaries", || {
        spooled(&a) > 10 && spooled(&b) > 10
    });
    p = Some(primary.spawn_server(&[]));
    let mut acked: Vec<String> = Vec::new();
    for s in senders {
        let (t, ok) = s.join().unwrap();
        acked.extend(ok.into_iter().map(|i| format!("load-{t}-{i}")));
    }
    assert!(
        acked.len() > 8 * PER / 2,
        "only {} acknowledged",
        acked.len()
    );
    for s in [&a, &b] {
        wait_for("the spools shipped", || spooled(s) == 0);
    }

    let mut imap = Client::login(primary.config.listen.imap, &bob);
    imap.await_messages("INBOX", acked.len() + 2);
    imap.cmd("s SELECT INBOX");
    let r = imap.cmd("f FETCH 1:* BODY.PEEK[HEADER.FIELDS (SUBJECT)]");
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for l in &r {
        if let Some(at) = l.find("Subject: ") {
            let subject = l[at + 9..].split_whitespace().next().unwrap().to_string();
            *seen.entry(subject).or_default() += 1;
        }
    }
    for id in &acked {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "{id} acknowledged, stored {:?} times",
            seen.get(id)
        );
    }
    let dup: Vec<_> = seen
        .iter()
        .filter(|(k, n)| k.starts_with("load-") && **n > 1)
        .collect();
    assert!(dup.is_empty(), "stored twice: {dup:?}");
    drop(p);
}

#[test]
fn clients_nobody_here_wrote_work_through_a_secondary() {
    let (primary, _) = node("primary");
    let ann = primary.alias("ann", "pw");
    let bob = primary.alias("bob", "pw");
    // bob's mailbox for poplib: six messages with known UIDLs.
    let uidls = pop3_seed(&primary, &bob, 6);
    let carol = primary.alias("carol", "pw");
    let (url, secret, pin) = init(&primary);
    let mut a = secondary_of(&url, &secret, &pin);
    // Production mode, as the scripts expect: no plaintext login.
    let text = std::fs::read_to_string(&a.config.file).unwrap();
    std::fs::write(&a.config.file, text.replace("dev = true", "dev = false")).unwrap();
    a.config = sealmail::config::Config::load(a.data()).unwrap();
    let _p = primary.spawn_server(&[]);
    let _a = a.spawn_server(&[]);
    let l = &a.config.listen;
    send_when_linked(l.smtp, &carol, "linked");

    let out = python(
        "imap_imaplib.py",
        &[
            l.imap.port().to_string(),
            l.imaps.port().to_string(),
            l.smtp.port().to_string(),
            ann.clone(),
            "pw".into(),
        ],
    );
    assert!(out.contains(" passed, 0 failed"), "imaplib: {out}");
    let out = python(
        "pop3_poplib.py",
        &[
            l.pop3.port().to_string(),
            l.pop3s.port().to_string(),
            bob.clone(),
            "pw".into(),
            uidls.join(","),
        ],
    );
    assert!(out.contains(" 0 failed"), "poplib: {out}");
    let canary = "canary-secondary-5e0c";
    let out = python(
        "mx_smtp.py",
        &[l.smtp.port().to_string(), bob.clone(), canary.into()],
    );
    assert!(out.contains(" 0 failed"), "smtplib: {out}");
    // What came through the secondary is on the primary, and nowhere on
    // the secondary.
    let mut imap = Client::login(primary.config.listen.imap, &bob);
    imap.cmd("s SELECT INBOX");
    let r = imap.cmd(&format!("f SEARCH SUBJECT \"{canary}\""));
    assert_eq!(r[0].split(' ').count(), 5, "plain, tls and bdat: {r:?}");
    assert!(files_containing(a.data(), canary.as_bytes()).is_empty());
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// One frame from the primary (unmasked): its payload.
fn server_frame(tls: &mut Tls) -> Vec<u8> {
    let mut hdr = [0u8; 2];
    tls.read_exact(&mut hdr).unwrap();
    assert_eq!(hdr[0], 0x82, "a binary frame");
    let len = match hdr[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            tls.read_exact(&mut b).unwrap();
            usize::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            tls.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    tls.read_exact(&mut payload).unwrap();
    payload
}

/// A TLS connection to the link port that passed the WebSocket upgrade
/// and read the primary's greeting, as a stranger would get.
fn upgraded(link: SocketAddr, pin: &str) -> Tls {
    upgraded_with_hello(link, pin).0
}

fn upgraded_with_hello(link: SocketAddr, pin: &str) -> (Tls, Vec<u8>) {
    let mut pin_bytes = [0u8; 32];
    hex::decode_to_slice(pin, &mut pin_bytes).unwrap();
    let config = sealmail::net::tls::pinned_client(pin_bytes);
    let conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    let tcp = TcpStream::connect(link).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(
        b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let hello = server_frame(&mut tls);
    (tls, hello)
}

/// A masked binary frame from a client.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x82];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]); // A zero mask leaves the bytes as they are.
    f.extend_from_slice(payload);
    f
}

#[test]
fn bad_frames_on_the_link_are_refused_in_bounded_memory() {
    let (primary, link_port) = node("primary");
    let bob = primary.alias("bob", "pw");
    let (_, _, pin) = init(&primary);
    let p = primary.spawn_server(&[]);
    let link: SocketAddr = ([127, 0, 0, 1], link_port).into();
    let before = rss_kib(p.0.id());

    // Garbage instead of a proof: refused, closed.
    let mut s = upgraded(link, &pin);
    s.write_all(&client_frame(b"\xff\xfe garbage")).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        String::from_utf8_lossy(&rest).contains("wrong cluster secret"),
        "{rest:?}"
    );

    // A secondary of another version: told so, by name.
    let link_codec = sealmail::cluster::Link::new(1 << 20, Duration::from_secs(1));
    let proof = link_codec
        .encode(&sealmail::cluster::Frame::Proof {
            version: 99,
            mac: vec![0; 32],
        })
        .unwrap();
    let mut s = upgraded(link, &pin);
    s.write_all(&client_frame(&proof)).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.contains("version skew")
            && text.contains(&format!(
                "version {}, the secondary 99",
                sealmail::cluster::VERSION
            )),
        "{text}"
    );

    // Frames claiming 1 GiB, from 8 connections at once, each followed by
    // 4 MiB of it: closed at the header; the primary's memory stays put.
    let floods: Vec<_> = (0..8)
        .map(|_| {
            let pin = pin.clone();
            std::thread::spawn(move || {
                let mut s = upgraded(link, &pin);
                let mut head = vec![0x82, 0x80 | 127];
                head.extend_from_slice(&(1u64 << 30).to_be_bytes());
                head.extend_from_slice(&[0, 0, 0, 0]);
                let _ = s.write_all(&head);
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..64 {
                    if s.write_all(&chunk).is_err() {
                        break;
                    }
                }
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
            })
        })
        .collect();
    for f in floods {
        f.join().unwrap();
    }
    let after = rss_kib(p.0.id());
    assert!(
        after < before + 64 * 1024,
        "the primary grew from {before} to {after} KiB"
    );

    // It still serves its own clients.
    smtp_send(primary.config.listen.smtp, &bob, "after the floods");
    let mut imap = Client::login(primary.config.listen.imap, &bob);
    assert_eq!(imap.await_messages("INBOX", 1), 1);
}

#[test]
fn a_linked_secondary_gets_typed_errors_and_only_its_own_sessions() {
    use sealmail::cluster::{Frame, Link, proof};
    use sealmail::store::StoreError;
    use sealmail::store::types::{Recipient, Request, Response};
    let (primary, link_port) = node("primary");
    let bob = primary.alias("bob", "pw");
    let (_, secret, pin) = init(&primary);
    let _p = primary.spawn_server(&[]);
    let link: SocketAddr = ([127, 0, 0, 1], link_port).into();
    let codec = Link::new(1 << 20, Duration::from_secs(1));
    let (mut s, hello) = upgraded_with_hello(link, &pin);
    let Ok(Frame::Hello { nonce, .. }) = codec.decode::<Frame>(&hello) else {
        panic!("no greeting");
    };
    let secret = sealmail::cluster::parse_secret(&secret).unwrap();
    let proof = Frame::Proof {
        version: sealmail::cluster::VERSION,
        mac: proof(&secret, &nonce),
    };
    s.write_all(&client_frame(&codec.encode(&proof).unwrap()))
        .unwrap();
    assert!(matches!(
        codec.decode::<Frame>(&server_frame(&mut s)),
        Ok(Frame::Welcome)
    ));

    let mut call = |id: u64, request: Vec<u8>| {
        let frame = Frame::Call {
            id,
            key: (7, id),
            deadline_ms: 10_000,
            request,
        };
        s.write_all(&client_frame(&codec.encode(&frame).unwrap()))
            .unwrap();
        loop {
            match codec.decode::<Frame>(&server_frame(&mut s)).unwrap() {
                Frame::Reply { id: got, result } if got == id => return result,
                _ => continue,
            }
        }
    };
    // A request kind the primary does not know: an error reply, and the
    // link stays up for the next one.
    let r = call(1, vec![0xee, 0xee, 0xee]);
    assert!(matches!(r, Err(StoreError::Internal(_))), "{r:?}");
    let lookup = codec
        .encode(&Request::Lookup {
            address: bob.clone(),
        })
        .unwrap();
    let r = call(2, lookup);
    assert!(
        matches!(r, Ok(Response::Recipient(Recipient::Local(_)))),
        "{r:?}"
    );
    // A session this link did not open (another node's, say) is refused
    // before any mailbox is touched.
    for session in [0, 1, 2, 12345] {
        let req = codec.encode(&Request::ListFolders { session }).unwrap();
        let r = call(10 + session, req);
        assert!(matches!(r, Err(StoreError::NoSession)), "{r:?}");
    }
}

#[test]
fn mbsync_syncs_through_a_secondary() {
    let (primary, _) = node("primary");
    let ann = primary.alias("ann", "pw");
    let carol = primary.alias("carol", "pw");
    mbsync::seed(&primary, &ann);
    let (url, secret, pin) = init(&primary);
    let a = secondary_of(&url, &secret, &pin);
    let _p = primary.spawn_server(&[]);
    let _a = a.spawn_server(&[]);
    send_when_linked(a.config.listen.smtp, &carol, "linked");
    // mbsync talks to the secondary (its certificate); the comparison
    // reads the primary's store.
    mbsync::round_trip(
        &primary,
        &ann,
        a.config.listen.imaps.port(),
        &a.config.tls_cert,
    );
}

/// `sealmail backup now ADDR` on a secondary is run by the primary (the
/// only node with mailboxes): the backup lands in the primary's target,
/// the secondary's data directory gets none, and a wrong password gets a
/// clear refusal.
#[test]
fn backup_now_on_a_secondary_is_run_by_the_primary() {
    let (primary, _) = node("primary");
    let bob = primary.alias("bob", "pw");
    let (url, secret, pin) = init(&primary);
    let a = secondary_of(&url, &secret, &pin);
    let _p = primary.spawn_server(&[]);
    let _a = a.spawn_server(&[]);
    send_when_linked(a.config.listen.smtp, &bob, "kept-safe");
    let mut imap = login_when_linked(a.config.listen.imap, &bob);
    imap.await_messages("INBOX", 1);
    drop(imap);

    let out = run_ok(
        a.bin()
            .args(["backup", "now", &bob])
            .env("SEALMAIL_PASSWORD", "pw"),
    );
    assert!(
        out.contains(&format!("backed up {bob}: 1 messages")),
        "{out}"
    );
    let listed = run_ok(primary.bin().args(["backup", "list", &bob]));
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("\t1 messages\t"), "{listed}");
    let backups = std::fs::read_dir(a.data().join("backups"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(backups, 0, "a backup on the secondary");
    let files = std::fs::read_dir(a.data().join("mailboxes"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(files, 0, "a mailbox file on the secondary");

    let wrong = a
        .bin()
        .args(["backup", "now", &bob])
        .env("SEALMAIL_PASSWORD", "not it")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("the password does not open"), "refusal: {err}");
    let unknown = a
        .bin()
        .args(["backup", "now", "nobody@example.org"])
        .env("SEALMAIL_PASSWORD", "pw")
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("has no mailbox here"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}
