//! POP3 against real clients (Python's poplib, fetchmail, curl) and raw
//! sockets, each run on a server started in-process on loopback.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use sealmail::store::{FetchWhat, Flags, UidSet};

#[test]
fn poplib_session_over_stls_and_implicit_tls() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let uidls = pop3_seed(&env, &addr, 6);
    let server = env.serve();
    let out = python(
        "pop3_poplib.py",
        &[
            server.pop3.port().to_string(),
            server.pop3s.port().to_string(),
            addr.clone(),
            "pw".into(),
            uidls.join(","),
        ],
    );
    assert!(out.contains("0 failed"), "{out}");
    drop(server);
    // The mailbox as IMAP will see it: 1 and 3 gone, 2 seen.
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let metas = block(s.fetch("INBOX", UidSet::all(), FetchWhat::default())).unwrap();
    assert_eq!(
        metas.iter().map(|m| m.meta.uid).collect::<Vec<_>>(),
        vec![2, 4, 5, 6]
    );
    assert!(metas[0].meta.flags.has(Flags::SEEN));
    assert!(!metas[1].meta.flags.has(Flags::SEEN));
}

#[test]
fn hostile_input_gets_clear_errors() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    pop3_seed(&env, &addr, 3);
    let server = env.serve();
    let out = python(
        "pop3_bad_input.py",
        &[
            server.pop3.port().to_string(),
            server.pop3s.port().to_string(),
            addr,
            "pw".into(),
        ],
    );
    assert!(out.contains("0 failed"), "{out}");
}

/// A plaintext client for dev-mode servers.
struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut raw = Raw {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        assert!(raw.line().starts_with("+OK"));
        raw
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }

    fn cmd(&mut self, c: &str) -> String {
        self.w.write_all(format!("{c}\r\n").as_bytes()).unwrap();
        self.line()
    }
}

fn dev_env() -> Env {
    let mut env = Env::new();
    env.config.dev = true;
    env
}

#[test]
fn failed_logins_slow_down_then_ban() {
    let env = dev_env();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let mut c = Raw::connect(server.pop3);
    let mut delays = Vec::new();
    for _ in 0..3 {
        c.cmd(&format!("USER {addr}"));
        let t = Instant::now();
        assert_eq!(c.cmd("PASS nope"), "-ERR [AUTH] authentication failed");
        delays.push(t.elapsed());
    }
    // The server waits 250 ms, 500 ms, then 1 s before answering: lower
    // bounds, which hold however slow the machine is.
    assert!(
        delays[1] >= Duration::from_millis(500) && delays[2] >= Duration::from_secs(1),
        "delays grow: {delays:?}"
    );
    // Unknown users fail the same way.
    c.cmd("USER nobody@example.org");
    assert_eq!(c.cmd("PASS nope"), "-ERR [AUTH] authentication failed");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // Past the ban threshold even the right password is refused for now.
    for _ in 0..6 {
        let mut c = Raw::connect(server.pop3);
        c.cmd("USER x@example.org");
        c.w.write_all(b"PASS nope\r\n").unwrap();
        drop(c);
    }
    // The server counts each failure when its check ends (argon2, behind
    // other work on a busy machine): ask with a wrong password until the
    // ban shows (a right one would count as a success), then the right one.
    let banned = "-ERR [AUTH] too many failed logins; try again later";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut c = Raw::connect(server.pop3);
        c.cmd("USER x@example.org");
        if c.cmd("PASS nope") == banned || Instant::now() > deadline {
            break;
        }
    }
    let mut c = Raw::connect(server.pop3);
    c.cmd(&format!("USER {addr}"));
    assert_eq!(
        c.cmd("PASS pw"),
        "-ERR [AUTH] too many failed logins; try again later"
    );
}

#[test]
fn dele_can_move_to_trash() {
    let env = dev_env();
    let addr = env.alias("ann", "pw");
    env.control().set_pop3_trash(&addr, true).unwrap();
    pop3_seed(&env, &addr, 2);
    let server = env.serve();
    let mut c = Raw::connect(server.pop3);
    c.cmd(&format!("USER {addr}"));
    assert!(c.cmd("PASS pw").starts_with("+OK maildrop has 2 messages"));
    assert_eq!(c.cmd("DELE 1"), "+OK message 1 deleted");
    assert_eq!(c.cmd("DELE 1"), "-ERR no such message");
    assert_eq!(
        c.cmd("QUIT"),
        "+OK sealmail POP3 signing off (1 messages deleted)"
    );
    drop(server);
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    assert_eq!(block(s.status("INBOX")).unwrap().messages, 1);
    assert_eq!(block(s.status("Trash")).unwrap().messages, 1);
}

#[test]
fn sealed_mail_is_imported_at_pop3_login() {
    let env = dev_env();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    block(store.deliver(&addr, text_message("sealed", "while away"))).unwrap();
    drop(store);
    let server = env.serve();
    let mut c = Raw::connect(server.pop3);
    c.cmd(&format!("USER {addr}"));
    assert!(c.cmd("PASS pw").starts_with("+OK maildrop has 1 messages"));
}

#[test]
fn curl_retrieves_over_pop3s() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    pop3_seed(&env, &addr, 3);
    let server = env.serve();
    let curl = |path: &str| {
        run_ok(
            std::process::Command::new("curl")
                .args([
                    "-sS",
                    "-k",
                    "--max-time",
                    "20",
                    "--user",
                    &format!("{addr}:pw"),
                ])
                .arg(format!("pop3s://127.0.0.1:{}/{path}", server.pop3s.port())),
        )
    };
    let text = curl("2");
    assert!(
        text.contains("Subject: message 2") && text.contains("\r\n.dotted line\r\n"),
        "{text}"
    );
    assert_eq!(curl("").lines().count(), 3);
}

#[test]
fn fetchmail_downloads_500_messages_once() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    pop3_seed(&env, &addr, 500);
    let server = env.serve();
    let work = tempfile::tempdir().unwrap();
    let out_dir = work.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let rc = work.path().join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "set no syslog\nset no bouncemail\npoll 127.0.0.1 service {port} protocol pop3 auth password\n  user \"{addr}\" password \"pw\" is \"local\" here\n  ssl no sslcertck\n  fetchall no keep\n  mda \"/bin/sh -c 'cat > {dir}/msg.$$'\"\n",
            port = server.pop3s.port(),
            dir = out_dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let fetch = || {
        std::process::Command::new("fetchmail")
            .arg("-f")
            .arg(&rc)
            .arg("--idfile")
            .arg(work.path().join("ids"))
            .arg("--pidfile")
            .arg(work.path().join("pid"))
            .env("HOME", work.path())
            .output()
            .expect("fetchmail is installed by `make test`")
    };
    let first = fetch();
    assert!(
        first.status.success(),
        "{}{}",
        String::from_utf8_lossy(&first.stdout),
        String::from_utf8_lossy(&first.stderr)
    );
    let mut ids = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(&out_dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: "))
            .unwrap()
            .to_string();
        assert!(ids.insert(id.clone()), "{id} twice");
    }
    assert_eq!(ids.len(), 500);
    // Second run: nothing new (fetchmail exits 1 for "no mail").
    let second = fetch();
    assert_eq!(
        second.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 500);
}

#[test]
fn pop3_snapshot_and_another_session_do_not_collide() {
    let env = dev_env();
    let addr = env.alias("ann", "pw");
    pop3_seed(&env, &addr, 3);
    let server = env.serve();
    let mut c = Raw::connect(server.pop3);
    c.cmd(&format!("USER {addr}"));
    assert!(c.cmd("PASS pw").starts_with("+OK maildrop has 3 messages"));
    // Another session (as IMAP would) adds one message and expunges another.
    let (_b, store) = env.store();
    let other = unlock(&store, &addr, "pw");
    block(other.append(append_req("INBOX", text_message("new", "x")))).unwrap();
    block(other.store_flags(sealmail::store::StoreFlags {
        folder: "INBOX".into(),
        uids: UidSet::range(3, 3),
        op: sealmail::store::FlagOp::Add,
        flags: Flags::system(Flags::DELETED),
        unchanged_since: None,
    }))
    .unwrap();
    block(other.expunge("INBOX", None)).unwrap();
    assert!(
        c.cmd("STAT").starts_with("+OK 3 "),
        "the snapshot is unchanged"
    );
    assert_eq!(
        c.cmd("RETR 3"),
        "-ERR message was removed by another session"
    );
    assert_eq!(c.cmd("DELE 1"), "+OK message 1 deleted");
    // The other session sees nothing until QUIT.
    assert_eq!(block(other.status("INBOX")).unwrap().messages, 3);
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let left = block(other.fetch("INBOX", UidSet::all(), FetchWhat::default())).unwrap();
    assert_eq!(
        left.iter().map(|m| m.meta.uid).collect::<Vec<_>>(),
        vec![2, 4]
    );
}

/// Ten bad commands (unknown, malformed, wrong state) close the session,
/// as Dovecot's POP3 server does; good ones in between do not reset it.
#[test]
fn ten_bad_commands_close_the_connection() {
    let env = dev_env();
    let server = env.serve();
    let mut c = Raw::connect(server.pop3);
    let bad = ["FROB", "RETR", "STAT", "LIST 1", "DELE x", "XYZZY 1 2 3"];
    for i in 0..9 {
        let reply = c.cmd(bad[i % bad.len()]);
        assert!(reply.starts_with("-ERR"), "{i}: {reply}");
        assert!(c.cmd("CAPA").starts_with("+OK"));
        while c.line() != "." {}
    }
    assert!(
        c.cmd("NOOP")
            .starts_with("-ERR command not valid before login")
    );
    assert_eq!(c.line(), "-ERR too many bad commands; closing connection");
    let mut rest = String::new();
    assert_eq!(c.r.read_line(&mut rest).unwrap(), 0, "{rest}");
}
