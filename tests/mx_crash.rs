//! kill -9 of the server while ten clients send: every message that got
//! 250 is there after restart, and none is there twice. A message cut off
//! by the kill left only ciphertext in its spill file, removed at the next
//! start.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use sealmail::store::{FetchWhat, Section, SectionKind, UidSet};

fn start(env: &Env) -> ServerProcess {
    env.spawn_server(&[])
}

/// Runs the load, kills the server after `after`, returns the acked IDs.
fn load_and_kill(env: &Env, addr: &str, tag: &str, pop: bool, after: Duration) -> Vec<String> {
    let mut server = start(env);
    let out = env.data().join(format!("acked-{tag}"));
    let pop_port = if pop {
        env.config.listen.pop3.port().to_string()
    } else {
        "-".into()
    };
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/mx_load.py");
    let mut load = std::process::Command::new("python3")
        .arg(script)
        .args([
            &env.config.listen.smtp.port().to_string(),
            &pop_port,
            addr,
            "pw",
            "10",
            "100",
            tag,
        ])
        .arg(&out)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The kill timer starts once the load is under way: a cold POP3 login
    // that imports the spool can take seconds on a slow machine.
    // The reader lives until the script exits, so its last print has a pipe.
    let mut reader = std::io::BufReader::new(load.stdout.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut reader, &mut ready).unwrap();
    assert_eq!(ready.trim(), "ready", "the load script started");
    std::thread::sleep(after);
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    assert!(load.wait().unwrap().success());
    drop(reader);
    let text = std::fs::read_to_string(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    text.lines().map(str::to_string).collect()
}

#[test]
fn killed_server_keeps_every_acknowledged_message_once() {
    let env = Env::subprocess();
    let addr = env.alias("ann", "pw");

    let mut acked = load_and_kill(&env, &addr, "sealed", false, Duration::from_millis(1500));
    acked.extend(load_and_kill(
        &env,
        &addr,
        "inbox",
        true,
        Duration::from_millis(1500),
    ));
    eprintln!("{} messages acknowledged before the kills", acked.len());
    assert!(
        acked.len() > 50,
        "the load made progress before the kills ({})",
        acked.len()
    );

    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let what = FetchWhat {
        sections: vec![Section {
            path: vec![],
            kind: SectionKind::Header,
        }],
        ..Default::default()
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for m in block(s.fetch("INBOX", UidSet::all(), what)).unwrap() {
        let h = String::from_utf8_lossy(&m.sections[0].1).to_string();
        if let Some(id) = h.lines().find_map(|l| l.strip_prefix("Message-ID: ")) {
            *seen.entry(id.to_string()).or_default() += 1;
        }
    }
    for id in &acked {
        assert!(seen.contains_key(id), "{id} got 250 but is missing");
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "duplicated: {dups:?}");
}

#[test]
fn a_message_cut_off_by_a_kill_leaves_only_ciphertext_removed_at_start() {
    use std::io::{BufRead, Write};
    let env = Env::subprocess();
    let addr = env.alias("ann", "pw");
    let mut server = start(&env);
    let s = std::net::TcpStream::connect(env.config.listen.smtp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = std::io::BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    for cmd in [
        "EHLO c.example.net",
        "MAIL FROM:<a@example.net>",
        &format!("RCPT TO:<{addr}>"),
        "DATA",
    ] {
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
    }
    line.clear();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("354"), "{line}");
    let secret = b"Subject: the secret plan\r\n\r\nmeet at the old mill\r\n";
    for _ in 0..(3 << 20) / secret.len() {
        w.write_all(secret).unwrap();
    }
    // The first megabytes reach the spill file.
    let spill = env.data().join("spill");
    let deadline = Instant::now() + Duration::from_secs(60);
    let file = loop {
        let big = std::fs::read_dir(&spill)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| std::fs::metadata(p).unwrap().len() >= 1 << 20);
        if let Some(f) = big {
            break f;
        }
        assert!(Instant::now() < deadline, "nothing was spilled");
        std::thread::sleep(Duration::from_millis(50));
    };
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    let left = std::fs::read(&file).unwrap();
    assert!(left.len() >= 1 << 20);
    assert!(
        !left
            .windows(8)
            .any(|w| w == b"old mill" || w == b"Subject:"),
        "the spill file holds clear text"
    );
    // The port is bound before the start removes what was left, so the
    // removal is waited for, not assumed once the port answers.
    let mut server = start(&env);
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&spill).unwrap().count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the spill file is removed at start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!file.exists());
    server.0.kill().unwrap();
    server.0.wait().unwrap();
}
