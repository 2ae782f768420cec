//! Peak memory under many large transfers at once is bounded by
//! configuration, not by what clients send (issue: 10 connections holding
//! 45 MiB of unfinished DATA took RSS from 111 to 620 MiB; 8 parallel 49
//! MiB messages peaked at 1.8 GiB; 4 parallel 50 MiB APPENDs at 945 MiB).
//!
//! Messages over 1 MiB arriving wait in encrypted spill files, so
//! unfinished transfers hold little memory; whole messages are processed
//! in memory held from the budget.
//!
//! One test in its own binary: it reads this process' peak RSS (the server
//! runs in it) and resets it between cases.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use common::imap::dev_env;
use common::peak_rss_kib;
use common::smtp_reply as reply;

const MIB: usize = 1 << 20;
/// What peak memory may grow by beyond the budget: what processing takes
/// beyond its estimate, the allocator's and the page cache's share.
const SLACK_KIB: i64 = 128 * 1024;

/// Resets the peak RSS to the current RSS (Linux: `clear_refs` 5).
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    peak_rss_kib()
}

/// An SMTP session up to DATA's 354; with `size`, MAIL declares it (as
/// every MTA does).
fn start_data(
    server: SocketAddr,
    rcpt: &str,
    size: Option<usize>,
) -> (BufReader<TcpStream>, TcpStream) {
    let s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    assert!(reply(&mut r).starts_with("220"));
    for cmd in [
        "EHLO big.example.net".to_string(),
        match size {
            Some(n) => format!("MAIL FROM:<a@example.net> SIZE={n}"),
            None => "MAIL FROM:<a@example.net>".into(),
        },
        format!("RCPT TO:<{rcpt}>"),
        "DATA".into(),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let line = reply(&mut r);
        assert!(
            line.starts_with('2') || line.starts_with("354"),
            "{cmd}: {line}"
        );
    }
    (r, w)
}

/// Writes `n` bytes of message body (lines of 76 characters).
fn body(w: &mut TcpStream, n: usize) {
    let line = [b"x".repeat(74), b"\r\n".to_vec()].concat();
    let chunk: Vec<u8> = line.repeat(MIB / line.len());
    let mut sent = 0;
    w.write_all(b"Subject: big\r\n\r\n").unwrap();
    while sent < n {
        w.write_all(&chunk).unwrap();
        sent += chunk.len();
    }
}

#[test]
fn many_large_transfers_at_once_stay_within_the_budget() {
    let env = dev_env();
    let user = env.alias("ann", "pw");
    // APPENDs go to another mailbox: ann's login would first import the
    // sealed messages the MX cases left.
    let other = env.alias("bob", "pw");
    let server = env.serve();
    let budget_kib = (env.config.message_memory / 1024) as i64;

    // 20 connections, each holding 45 MiB of unfinished DATA.
    let base = reset_peak() as i64;
    let held: Vec<_> = (0..20)
        .map(|_| {
            let smtp = server.smtp;
            let user = user.clone();
            thread::spawn(move || {
                let (r, mut w) = start_data(smtp, &user, None);
                body(&mut w, 45 * MIB);
                (r, w)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    // They wait on disk, each in its own file, none of it in the clear.
    let spill = env.data().join("spill");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let files = loop {
        let files: Vec<_> = std::fs::read_dir(&spill)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let written = files
            .iter()
            .filter(|f| std::fs::metadata(f).unwrap().len() > 40 * MIB as u64)
            .count();
        if written == 20 || std::time::Instant::now() > deadline {
            break files;
        }
        thread::sleep(Duration::from_millis(200));
    };
    let grown = peak_rss_kib() as i64 - base;
    println!("20 x 45 MiB unfinished DATA: +{} MiB", grown / 1024);
    assert_eq!(files.len(), 20, "{files:?}");
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len();
        assert!(len > 40 * MIB as u64, "{f:?}: {len} bytes");
        // The message is 97% `x`; its ciphertext has them at 1 in 256.
        let mut head = vec![0; 4 * MIB];
        std::io::Read::read_exact(&mut std::fs::File::open(f).unwrap(), &mut head).unwrap();
        let xs = head.iter().filter(|&&b| b == b'x').count();
        assert!(xs < head.len() / 100, "{f:?} holds clear text ({xs} x)");
    }
    // What 20 transfers hold in memory is the part of each not yet
    // spilled (about 1 MiB, 2 while one is being written), not their size
    // (900 MiB in all).
    assert!(grown < 128 * 1024, "+{} MiB", grown / 1024);
    // Four finish (all ends sent, then the answers read): each accepted,
    // or refused for now, never lost. The others hang up; their spill
    // files go with them.
    let mut held = held;
    let finishing: Vec<_> = held.drain(..4).collect();
    drop(held);
    for (_, w) in &finishing {
        let mut w = w;
        w.write_all(b"\r\n.\r\n").unwrap();
    }
    for (mut r, _) in finishing {
        let a = reply(&mut r);
        assert!(a.starts_with("250") || a.starts_with("452 4.3.1"), "{a}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&spill).unwrap().count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "spill files are removed"
        );
        thread::sleep(Duration::from_millis(100));
    }

    // 16 messages of 49 MiB at once.
    let base = reset_peak() as i64;
    let answers: Vec<String> = (0..16)
        .map(|_| {
            let smtp = server.smtp;
            let user = user.clone();
            thread::spawn(move || {
                let t0 = std::time::Instant::now();
                let (mut r, mut w) = start_data(smtp, &user, Some(49 * MIB + 4096));
                body(&mut w, 49 * MIB);
                w.write_all(b"\r\n.\r\n").unwrap();
                let sent = t0.elapsed();
                let a = reply(&mut r);
                eprintln!("sent in {sent:?}, answered after {:?}: {a}", t0.elapsed());
                a
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let grown = peak_rss_kib() as i64 - base;
    let ok = answers.iter().filter(|a| a.starts_with("250")).count();
    let mut kinds: Vec<&str> = answers.iter().map(|a| a.get(..9).unwrap_or(a)).collect();
    kinds.dedup();
    println!(
        "16 x 49 MiB messages: +{} MiB, {ok} accepted {kinds:?}",
        grown / 1024
    );
    assert!(answers.iter().any(|a| a.starts_with("250")), "{answers:?}");
    for a in &answers {
        assert!(a.starts_with("250") || a.starts_with("452 4.3.1"), "{a}");
    }
    assert!(grown < budget_kib + SLACK_KIB, "+{} MiB", grown / 1024);

    // 8 APPENDs of 50 MiB at once (and first one alone, for the record).
    for n in [1, 8] {
        let base = reset_peak() as i64;
        let answers: Vec<String> = (0..n)
            .map(|_| {
                let imap = server.imap;
                let user = other.clone();
                thread::spawn(move || {
                    let mut c = common::imap::Client::login(imap, &user);
                    // Eight 50 MiB messages into one mailbox take their turns.
                    c.w.set_read_timeout(Some(Duration::from_secs(900)))
                        .unwrap();
                    let size = 50 * MIB;
                    c.send(format!("a APPEND INBOX {{{size}}}\r\n").as_bytes());
                    let go = c.line();
                    if !go.starts_with('+') {
                        return go;
                    }
                    let mut w = c.w.try_clone().unwrap();
                    // Streamed from one small chunk: the client holds no copy.
                    let head = b"Subject: big append\r\n\r\n";
                    w.write_all(head).unwrap();
                    let line = [b"y".repeat(74), b"\r\n".to_vec()].concat();
                    let chunk = line.repeat(MIB / line.len());
                    let mut left = size - head.len();
                    while left > 0 {
                        let n = left.min(chunk.len());
                        w.write_all(&chunk[..n]).unwrap();
                        left -= n;
                    }
                    w.write_all(b"\r\n").unwrap();
                    c.until("a").last().unwrap().clone()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let grown = peak_rss_kib() as i64 - base;
        let ok = answers.iter().filter(|a| a.starts_with("a OK")).count();
        println!("{n} x 50 MiB APPEND: +{} MiB, {ok} stored", grown / 1024);
        assert!(answers.iter().any(|a| a.starts_with("a OK")), "{answers:?}");
        for a in &answers {
            assert!(
                a.starts_with("a OK") || a.starts_with("a NO [LIMIT]"),
                "{a}"
            );
        }
        assert!(grown < budget_kib + SLACK_KIB, "+{} MiB", grown / 1024);
    }
    assert_eq!(
        std::fs::read_dir(&spill).unwrap().count(),
        0,
        "spill files are removed"
    );
}
