//! Hostile input to the MX (see tests/interop/mx_bad_input.py): clear
//! replies or a close, other sessions unaffected, bounded memory, no panic.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn hostile_smtp_input_is_bounded() {
    // Volume checks run against generous deadlines, so they depend on what
    // the server answers and not on how fast this machine moves 100 MB;
    // deadline checks run against a second server with short ones.
    let mut env = Env::new();
    env.config.mx.command_timeout = Duration::from_secs(120);
    env.config.mx.data_timeout = Duration::from_secs(300);
    let alias = env.alias("ann", "pw");
    let mut strict = Env::new();
    strict.config.mx.command_timeout = Duration::from_secs(2);
    strict.config.mx.data_timeout = Duration::from_secs(3);
    strict.alias("ann", "pw");
    let server = env.serve();
    let deadlines = strict.serve();
    let before = peak_rss_kib();
    let out = python(
        "mx_bad_input.py",
        &[
            server.smtp.port().to_string(),
            deadlines.smtp.port().to_string(),
            alias.clone(),
        ],
    );
    let grown = peak_rss_kib().saturating_sub(before);
    print!("{out}");
    drop(server);
    drop(deadlines);
    // A 1 GB line, a 100 MB message and 10,000 sockets went through; the
    // largest thing held is one message under the 50 MB limit at a time.
    assert!(grown < 160 * 1024, "peak RSS grew by {} MiB", grown / 1024);
}

/// Postscreen's "pregreet" test and the stated recipient limit: a client
/// that talks before the greeting gets 554 and is closed; the 101st
/// recipient of a message gets 452 4.5.3.
#[test]
fn early_talkers_are_refused_and_recipients_are_capped() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut env = Env::new();
    env.config.mx.greet_pause = Duration::from_secs(1);
    let mut control = env.control();
    for i in 0..101 {
        control
            .add_alias(&format!("r{i}@example.org"), Some("pw"), FAST)
            .unwrap();
    }
    let server = env.serve();
    let line = |r: &mut BufReader<std::net::TcpStream>| {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    };
    // Talks at once: refused, closed.
    let s = std::net::TcpStream::connect(server.smtp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    (&s).write_all(b"EHLO eager.example.net\r\n").unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(
        line(&mut r),
        "554 5.5.1 Protocol error: you talked before the greeting"
    );
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // Waits for the greeting: served; 100 recipients, then 452.
    let s = std::net::TcpStream::connect(server.smtp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert!(line(&mut r).starts_with("220 "));
    let mut w = s;
    w.write_all(b"HELO polite.example.net\r\nMAIL FROM:<a@example.net>\r\n")
        .unwrap();
    assert!(line(&mut r).starts_with("250"));
    assert!(line(&mut r).starts_with("250"));
    for i in 0..101 {
        w.write_all(format!("RCPT TO:<r{i}@example.org>\r\n").as_bytes())
            .unwrap();
        let reply = line(&mut r);
        if i < 100 {
            assert!(reply.starts_with("250"), "{i}: {reply}");
        } else {
            assert_eq!(
                reply,
                "452 4.5.3 Too many recipients; send the rest in another message"
            );
        }
    }
}
