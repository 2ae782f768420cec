//! Peak memory under many large transfers at once is bounded by
//! configuration, not by what clients send (issue: 10 connections holding
//! 45 MiB of unfinished DATA took RSS from 111 to 620 MiB; 8 parallel 49
//! MiB messages peaked at 1.8 GiB; 4 parallel 50 MiB APPENDs at 945 MiB).
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

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use common::imap::dev_env;
use common::peak_rss_kib;

const MIB: usize = 1 << 20;
/// What peak memory may grow by beyond the budget: what processing takes
/// beyond its estimate, the allocator's and the page cache's share.
const SLACK_KIB: i64 = 128 * 1024;

/// Resets the peak RSS to the current RSS (Linux: `clear_refs` 5).
fn reset_peak() -> u64 {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    peak_rss_kib()
}

fn reply(r: &mut BufReader<TcpStream>) -> String {
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap() == 0 {
            return "EOF".into();
        }
        if l.as_bytes().get(3) != Some(&b'-') {
            return l.trim_end().to_string();
        }
    }
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
    thread::sleep(Duration::from_secs(1));
    let grown = peak_rss_kib() as i64 - base;
    println!("20 x 45 MiB unfinished DATA: +{} MiB", grown / 1024);
    // Each one finishes: refused for now, or accepted, never lost.
    let answers: Vec<String> = held
        .into_iter()
        .map(|(mut r, mut w)| {
            w.write_all(b"\r\n.\r\n").unwrap();
            reply(&mut r)
        })
        .collect();
    for a in &answers {
        assert!(a.starts_with("250") || a.starts_with("452 4.3.1"), "{a}");
    }
    assert!(grown < budget_kib + SLACK_KIB, "+{} MiB", grown / 1024);

    // 16 messages of 49 MiB at once.
    let base = reset_peak() as i64;
    let answers: Vec<String> = (0..16)
        .map(|_| {
            let smtp = server.smtp;
            let user = user.clone();
            thread::spawn(move || {
                let (mut r, mut w) = start_data(smtp, &user, Some(49 * MIB + 4096));
                body(&mut w, 49 * MIB);
                w.write_all(b"\r\n.\r\n").unwrap();
                reply(&mut r)
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
}
