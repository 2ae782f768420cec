//! The MX: intake of small messages from several sessions, and the
//! memory of idle SMTP connections.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;

/// One SMTP sender: `count` transactions on one connection.
pub(crate) fn mx_sender(addr: std::net::SocketAddr, rcpt: &str, id: usize, count: usize) {
    sender(addr, "EHLO", rcpt, id, count, 4096);
}

/// One SMTP (`hello` EHLO) or LMTP (LHLO) sender: `count` transactions
/// of one recipient each, of messages of about `size` bytes, on one
/// connection.
pub(crate) fn sender(
    addr: std::net::SocketAddr,
    hello: &str,
    rcpt: &str,
    id: usize,
    count: usize,
    size: usize,
) {
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
    w.write_all(format!("{hello} bench.example.net\r\n").as_bytes())
        .expect("write");
    reply(&mut r);
    let mut rng = id as u64 + 1;
    for i in 0..count {
        let body = message(id * 100_000 + i, size, &mut rng);
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

pub(crate) fn mx_bench(tmp: &Path) {
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
    let (smtp, inbox) = with_server(config, |addr, _, imap| {
        let t = Instant::now();
        std::thread::scope(|scope| {
            for id in 0..10 {
                scope.spawn(move || mx_sender(addr, &format!("user{id}@example.org"), id, per));
            }
        });
        let sealed = (10 * per) as f64 / t.elapsed().as_secs_f64();
        // The same load to one owner who is logged in (IMAP, INBOX
        // selected): every message goes into the open mailbox.
        let mut owner = crate::imap::ImapClient::connect(imap);
        owner.cmd("LOGIN user0@example.org pw");
        // The sealed phase left mail waiting for this owner: let its
        // import finish first, so that what follows measures delivery
        // into the open mailbox, not sealing.
        let deadline = Instant::now() + Duration::from_secs(60);
        // (The store's own run above sealed as many again.)
        while !owner
            .lines("STATUS INBOX (MESSAGES)")
            .iter()
            .any(|l| l.contains(&format!("(MESSAGES {})", 2 * per)))
        {
            assert!(Instant::now() < deadline, "the spool import did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
        owner.cmd("SELECT INBOX");
        let t = Instant::now();
        std::thread::scope(|scope| {
            for id in 0..10 {
                scope.spawn(move || mx_sender(addr, "user0@example.org", id, per));
            }
        });
        let inbox = (10 * per) as f64 / t.elapsed().as_secs_f64();
        owner.cmd("LOGOUT");
        (sealed, inbox)
    });
    println!(
        "\nMX: 10 senders x {per} messages of 4 KiB, sealed to owners who are away, each 250 durable: {smtp:.0} msgs/s \
         (the store alone, same deliveries without SMTP: {direct:.0} msgs/s, ratio {:.2}); \
         goal >= 1,300 (2x Postfix->Dovecot LMTP's ~650), aim 2,000: {}",
        smtp / direct,
        ok(smtp >= 1300.0)
    );
    println!(
        "MX: 10 senders x {per} messages of 4 KiB to one owner who is logged in, each 250 durable in the mailbox: \
         {inbox:.0} msgs/s; goal >= 2,000: {}",
        ok(inbox >= 2000.0)
    );
}

/// 1,000 SMTP sessions that said EHLO and wait: how much memory they hold.
pub(crate) fn idle_sessions_bench(tmp: &Path) {
    let data = tmp.join("idle");
    let mut config = crate::common::dev_data(&data);
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

/// What the content bench turns on besides the executable check.
#[derive(Clone, Copy)]
enum Scanner<'a> {
    None,
    Clamd(&'a Path),
    Rspamd(u16),
}

/// MX intake with the executable-attachment check on and off, same load
/// (10 senders x 200 messages of 4 KiB, sealed), alternating, twice each;
/// then with clamd (started here with a one-signature database: the cost
/// of the round trip and of clamd's mail parsing, not of a full signature
/// set) and with rspamd (its stock rules, without Redis or network
/// lookups), each when installed.
pub(crate) fn mx_content_bench(tmp: &Path) {
    let per = 200;
    let run_with = |name: &str, check: bool, scanner: Scanner<'_>| {
        let mut config = ten_users(&tmp.join(name));
        config.mx.refuse_executables = check;
        match scanner {
            Scanner::None => {}
            Scanner::Clamd(socket) => {
                config.mx.clamd = Some(sealmail::config::Clamd {
                    socket: sealmail::config::ClamdSocket::Unix(socket.to_path_buf()),
                    deliver_unscanned: false,
                    timeout: Duration::from_secs(60),
                    exempt: Vec::new(),
                });
            }
            Scanner::Rspamd(port) => {
                config.mx.rspamd = Some(sealmail::config::Rspamd {
                    address: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                    timeout: Duration::from_secs(60),
                    exempt: Vec::new(),
                });
            }
        }
        with_server(config, |addr, _, _| {
            let t = Instant::now();
            std::thread::scope(|scope| {
                for id in 0..10 {
                    scope.spawn(move || mx_sender(addr, &format!("user{id}@example.org"), id, per));
                }
            });
            (10 * per) as f64 / t.elapsed().as_secs_f64()
        })
    };
    let run = |name: &str, check: bool| run_with(name, check, Scanner::None);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..2 {
        off.push(run(&format!("mx-exe-off-{round}"), false));
        on.push(run(&format!("mx-exe-on-{round}"), true));
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let ratio = mean(&on) / mean(&off);
    println!(
        "MX with the executable-attachment check: {:.0} msgs/s; without: {:.0} msgs/s (runs {on:.0?} / {off:.0?}); ratio {ratio:.2}, goal >= 0.9: {}",
        mean(&on),
        mean(&off),
        ok(ratio >= 0.9)
    );
    match start_clamd(&tmp.join("clamd")) {
        Some((mut clamd, socket)) => {
            let scanned = run_with("mx-clamd", true, Scanner::Clamd(&socket));
            let _ = clamd.kill();
            let _ = clamd.wait();
            println!(
                "MX with the executable check and clamd (one signature): {scanned:.0} msgs/s; ratio to the check alone {:.2} (clamd's cost, no goal)",
                scanned / mean(&on)
            );
        }
        None => println!("MX with clamd: not measured (apt install clamav-daemon)"),
    }
    let port = 20_000 + (std::process::id() % 5_000) as u16 * 2;
    match start_rspamd(&tmp.join("rspamd"), port) {
        Some(mut rspamd) => {
            let checked = run_with("mx-rspamd", true, Scanner::Rspamd(port));
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(rspamd.id().to_string())
                .status();
            let _ = rspamd.wait();
            println!(
                "MX with the executable check and rspamd: {checked:.0} msgs/s; ratio to the check alone {:.2} (rspamd's cost, no goal)",
                checked / mean(&on)
            );
        }
        None => println!("MX with rspamd: not measured (apt install rspamd)"),
    }
}

/// clamd on a Unix socket under `dir` with a one-signature database
/// (`tests/interop/clamd.sh`); `None` when clamd is not installed.
fn start_clamd(dir: &Path) -> Option<(std::process::Child, std::path::PathBuf)> {
    installed("clamd")?;
    let child = std::process::Command::new("bash")
        .arg(interop("clamd.sh"))
        .arg(dir)
        .arg("Bench.Pattern")
        .arg(hex::encode("SEALMAIL-BENCH-PATTERN"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let socket = dir.join("clamd.sock");
    wait_until("clamd", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    Some((child, socket))
}

/// rspamd with its stock rules, its normal worker on `port`
/// (`tests/interop/rspamd.sh`); `None` when rspamd is not installed.
fn start_rspamd(dir: &Path, port: u16) -> Option<std::process::Child> {
    installed("rspamd")?;
    let child = std::process::Command::new("bash")
        .arg(interop("rspamd.sh"))
        .arg(dir)
        .arg(port.to_string())
        .arg((port + 1).to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    wait_until("rspamd", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Some(child)
}

fn installed(program: &str) -> Option<()> {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(std::process::Stdio::null())
        .status()
        .ok()
        .filter(|s| s.success())
        .map(|_| ())
}

fn interop(script: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/interop")
        .join(script)
}

fn wait_until(what: &str, mut up: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !up() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}
