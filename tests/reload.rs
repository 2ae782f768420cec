//! Reload without restart: SIGHUP re-reads `sealmail.toml` and the
//! certificate files. A new TLS client sees the new certificate, a session
//! opened before keeps working, and a configuration that no longer
//! validates (or a key that does not match its certificate) is refused
//! with the error logged while the server keeps serving what it had. A
//! new connection cap applies to new connections, not to open ones; a new
//! SMTP command timeout to the next command.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn line(tls: &mut Tls) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        tls.read_exact(&mut b).unwrap();
        out.push(b[0]);
    }
    String::from_utf8_lossy(&out).trim_end().to_string()
}

/// IMAP STARTTLS, accepting only the certificate whose SHA-256 is `pin`;
/// `None` if the handshake failed (another certificate).
fn starttls(addr: SocketAddr, pin: [u8; 32]) -> Option<Tls> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(tcp.try_clone().unwrap());
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    assert!(l.starts_with("* OK"), "{l}");
    (&tcp).write_all(b"s STARTTLS\r\n").unwrap();
    l.clear();
    r.read_line(&mut l).unwrap();
    assert!(l.starts_with("s OK"), "{l}");
    let conn = rustls::ClientConnection::new(
        sealmail::net::tls::pinned_client(pin),
        "localhost".try_into().unwrap(),
    )
    .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"n NOOP\r\n").ok()?;
    let mut first = Vec::new();
    let mut b = [0u8; 1];
    while !first.ends_with(b"\r\n") {
        tls.read_exact(&mut b).ok()?;
        first.push(b[0]);
    }
    assert!(first.starts_with(b"n OK"), "{first:?}");
    Some(tls)
}

#[test]
fn sighup_swaps_the_certificate_and_refuses_a_bad_config() {
    let env = Env::subprocess();
    let cert = env.config.tls_cert.clone();
    let key = env.config.tls_key.clone();
    let old_pin = sealmail::net::tls::fingerprint(&cert).unwrap();
    let mut server = env.spawn_server(&[("SEALMAIL_LOG", "sealmail=info")]);
    let imap = env.config.listen.imap;
    let log = || std::fs::read_to_string(env.data().join("serve.log")).unwrap_or_default();

    let mut before = starttls(imap, old_pin).expect("the first certificate");

    // A new pair where the old one was, then SIGHUP.
    let fresh = tempfile::tempdir().unwrap();
    let (new_cert, new_key) = (fresh.path().join("c.pem"), fresh.path().join("k.pem"));
    sealmail::net::tls::ensure_self_signed(&new_cert, &new_key, "localhost").unwrap();
    let new_pin = sealmail::net::tls::fingerprint(&new_cert).unwrap();
    assert_ne!(new_pin, old_pin);
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    server.signal("HUP");
    wait_for("the new certificate", || starttls(imap, new_pin).is_some());
    assert!(starttls(imap, old_pin).is_none(), "the old certificate");
    assert!(log().contains("certificate reloaded"), "{}", log());

    // The session opened before still works, and the server still runs.
    before.write_all(b"c CAPABILITY\r\n").unwrap();
    let mut seen = line(&mut before);
    while !seen.starts_with("c ") {
        seen = line(&mut before);
    }
    assert!(seen.starts_with("c OK"), "{seen}");
    assert!(server.0.try_wait().unwrap().is_none(), "SIGHUP stopped it");

    // A key that does not belong to the certificate: refused, the pair in
    // use stays.
    let other = tempfile::tempdir().unwrap();
    let (_, other_key) = (other.path().join("c.pem"), other.path().join("k.pem"));
    sealmail::net::tls::ensure_self_signed(&other.path().join("c.pem"), &other_key, "localhost")
        .unwrap();
    std::fs::copy(&other_key, &key).unwrap();
    server.signal("HUP");
    wait_for("the refusal", || log().contains("certificate not reloaded"));
    assert!(starttls(imap, new_pin).is_some());
    std::fs::copy(&new_key, &key).unwrap();

    // A configuration that no longer validates: refused, nothing changes.
    let file = env.config.file.clone();
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{good}\n[imap]\nno_such_setting = 1\n")).unwrap();
    server.signal("HUP");
    wait_for("the refused reload", || log().contains("reload refused"));
    assert!(starttls(imap, new_pin).is_some());

    // A valid change that needs a restart is named.
    let changed = good.replace(
        &format!("\"{}\"", env.config.listen.pop3),
        &format!("\"127.0.0.1:{}\"", free_port()),
    );
    assert_ne!(changed, good);
    std::fs::write(&file, changed).unwrap();
    server.signal("HUP");
    wait_for("the restart notice", || {
        log().contains("take effect at the next restart")
    });
    assert!(log().contains("pop3"), "{}", log());
    assert!(server.0.try_wait().unwrap().is_none(), "still serving");

    // A lower cap per address applies to new connections; the three open
    // before it keep working.
    let source: std::net::IpAddr = "127.0.0.9".parse().unwrap();
    let greeted = |s: &mut std::net::TcpStream| {
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        line
    };
    let mut open: Vec<std::net::TcpStream> = (0..3).map(|_| connect_from(source, imap)).collect();
    for s in &mut open {
        assert!(greeted(s).starts_with("* OK"));
    }
    std::fs::write(
        &file,
        good.replace("connections_per_ip = 50", "connections_per_ip = 2"),
    )
    .unwrap();
    server.signal("HUP");
    wait_for("the new cap", || {
        log().contains("in force now settings=limits.connections_per_ip")
    });
    let mut fourth = connect_from(source, imap);
    let refused = greeted(&mut fourth);
    assert!(refused.contains("Too many connections"), "{refused}");
    for (i, s) in open.iter_mut().enumerate() {
        write!(s, "n{i} NOOP\r\n").unwrap();
        let answer = greeted(s);
        assert!(answer.starts_with(&format!("n{i} OK")), "{answer}");
    }

    // A shorter SMTP command timeout: a silent client is told so and
    // closed under the new one.
    std::fs::write(
        &file,
        good.replace("command_timeout = \"5m\"", "command_timeout = \"2s\""),
    )
    .unwrap();
    server.signal("HUP");
    wait_for("the new timeout", || {
        log()
            .lines()
            .any(|l| l.contains("in force now") && l.contains("mx.command_timeout"))
    });
    let mut silent = TcpStream::connect(env.config.listen.smtp).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    assert!(greeted(&mut silent).starts_with("220 "));
    let told = greeted(&mut silent);
    assert!(told.starts_with("421 4.4.2"), "{told}");
}
