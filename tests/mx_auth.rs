//! SPF, DKIM and DMARC on inbound mail, against a DNS server on loopback
//! and signatures made by dkimpy (a different implementation from the
//! verifier's).
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sealmail::store::{Criteria, FetchWhat, Section, SectionKind, UidSet};

fn dkim_key(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("dkim.pem");
    let ok = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .unwrap();
    assert!(ok.status.success());
    let der = Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    use base64::Engine;
    (
        key,
        base64::engine::general_purpose::STANDARD.encode(der.stdout),
    )
}

fn start_auth_dns(dir: &Path, public: &str) -> (Peer, u16) {
    let zone = serde_json::json!({
        "good.test": [["TXT", "v=spf1 ip4:127.0.0.1 -all"]],
        "sel._domainkey.good.test": [["TXT", format!("v=DKIM1; k=rsa; p={public}")]],
        "_dmarc.good.test": [["TXT", "v=DMARC1; p=reject"]],
        "strict.test": [["TXT", "v=spf1 ip4:192.0.2.1 -all"]],
        "_dmarc.strict.test": [["TXT", "v=DMARC1; p=reject"]],
        "lenient.test": [["TXT", "v=spf1 ip4:192.0.2.1 -all"]],
        "_dmarc.lenient.test": [["TXT", "v=DMARC1; p=quarantine"]],
    });
    start_dns(dir, &zone)
}

fn header_of(env: &Env, addr: &str, subject: &str) -> String {
    header_in(env, addr, "INBOX", subject)
}

fn header_in(env: &Env, addr: &str, folder: &str, subject: &str) -> String {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, "pw");
    let uids = block(s.search(folder, Criteria::Subject(subject.into())))
        .unwrap()
        .uids;
    assert_eq!(uids.len(), 1, "{subject}");
    let what = FetchWhat {
        sections: vec![Section {
            path: vec![],
            kind: SectionKind::Header,
        }],
        ..Default::default()
    };
    let got = block(s.fetch(folder, UidSet::range(uids[0], uids[0]), what)).unwrap();
    String::from_utf8_lossy(&got[0].sections[0].1).to_string()
}

#[test]
fn spf_dkim_dmarc_pass_fail_and_reject() {
    let work = tempfile::tempdir().unwrap();
    let (key, public) = dkim_key(work.path());
    let (_dns, port) = start_auth_dns(work.path(), &public);
    let mut env = Env::new();
    env.config.mx.check_senders = true;
    env.config.nameservers = vec![format!("127.0.0.1:{port}").parse().unwrap()];
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/mx_auth.py");
    run_ok(
        Command::new(venv_python())
            .arg(script)
            .arg(server.smtp.port().to_string())
            .arg(&addr)
            .arg(&key),
    );
    drop(server);

    let pass = header_of(&env, &addr, "authpass");
    assert!(
        pass.starts_with("Return-Path: <a@good.test>\r\nAuthentication-Results: mail.example.org;"),
        "{pass}"
    );
    for want in ["dkim=pass", "spf=pass", "dmarc=pass"] {
        assert!(pass.contains(want), "{want} in {pass}");
    }
    let forged = header_of(&env, &addr, "authforged");
    // mail-auth reports a body-hash mismatch as neutral; either way not a pass.
    assert!(
        !forged.contains("dkim=pass") && forged.contains("body hash did not verify"),
        "{forged}"
    );
    assert!(
        forged.contains("spf=pass") && forged.contains("dmarc=pass"),
        "{forged}"
    );
    // ARC is recorded: a sealed chain passes, and none is none.
    let relayed = header_of(&env, &addr, "authrelayed");
    assert!(relayed.contains("arc=pass"), "{relayed}");
    assert!(pass.contains("arc=none"), "{pass}");
    // Results fields naming this server are forged: gone. Another
    // server's stay, below ours and the Received line naming the client.
    let claimed = header_of(&env, &addr, "authclaimed");
    assert_eq!(
        claimed.matches("mail.example.org;").count(),
        1,
        "only ours: {claimed}"
    );
    assert!(
        claimed.starts_with(
            "Return-Path: <y@nopolicy.test>\r\nAuthentication-Results: mail.example.org;"
        ) && claimed.contains("dmarc=none")
            && !claimed.contains("header.d=bank.example")
            && !claimed.contains("ARC-Authentication-Results"),
        "{claimed}"
    );
    assert!(
        claimed.contains("Received: from good.test ([127.0.0.1])\r\n\tby mail.example.org (sealmail) with ESMTP id ")
            && claimed.contains("Authentication-Results: relay.example.net; spf=pass"),
        "{claimed}"
    );
    // DMARC fails under p=quarantine: accepted, into Junk (sealed here:
    // nobody was logged in), with the failing result.
    let quarantined = header_in(&env, &addr, "Junk", "authquarantine");
    assert!(quarantined.contains("dmarc=fail"), "{quarantined}");
    let none = header_of(&env, &addr, "authnone");
    assert!(
        none.contains("spf=none") && none.contains("dmarc=none"),
        "{none}"
    );
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    assert!(
        block(s.search("INBOX", Criteria::Subject("authreject".into())))
            .unwrap()
            .uids
            .is_empty()
    );
}

/// Mail from the same senders again and again: each DNS name is asked once,
/// whether it exists or not; later messages are answered from the cache.
#[test]
fn repeated_senders_are_answered_from_the_cache() {
    use std::io::{BufReader, Write};
    let work = tempfile::tempdir().unwrap();
    let (_dns, port) = start_auth_dns(work.path(), "AAAA");
    let mut env = Env::new();
    env.config.mx.check_senders = true;
    env.config.nameservers = vec![format!("127.0.0.1:{port}").parse().unwrap()];
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    for i in 0..10 {
        for sender in ["a@good.test", "y@nopolicy.test"] {
            let domain = sender.split('@').nth(1).unwrap();
            let s = std::net::TcpStream::connect(server.smtp).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
                .unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            assert!(smtp_reply(&mut r).starts_with("220"));
            for cmd in [
                format!("EHLO {domain}"),
                format!("MAIL FROM:<{sender}>"),
                format!("RCPT TO:<{addr}>"),
                "DATA".into(),
                format!("From: {sender}\r\nSubject: again {i}\r\n\r\nhello\r\n."),
            ] {
                w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
                let reply = smtp_reply(&mut r);
                assert!(
                    reply.starts_with('2') || reply.starts_with('3'),
                    "{cmd}: {reply}"
                );
            }
        }
    }
    drop(server);
    let log = std::fs::read_to_string(work.path().join("zone.json.log")).unwrap();
    let mut asked: std::collections::BTreeMap<&str, usize> = Default::default();
    for line in log.lines() {
        *asked.entry(line).or_default() += 1;
    }
    assert!(asked.contains_key("_dmarc.good.test TXT"), "{asked:?}");
    assert!(asked.contains_key("_dmarc.nopolicy.test TXT"), "{asked:?}");
    let repeated: Vec<_> = asked.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "asked more than once: {repeated:?} of {asked:?}"
    );
}

/// One MX transaction from `from` to `rcpts`: the reply to each RCPT and
/// the final one (or the last refusal).
fn transaction(
    server: std::net::SocketAddr,
    from: &str,
    rcpts: &[&str],
    subject: &str,
) -> Vec<String> {
    use std::io::{BufReader, Write};
    let s = std::net::TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    smtp_reply(&mut r);
    let mut say = |line: &str, r: &mut BufReader<std::net::TcpStream>| {
        w.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        smtp_reply(r)
    };
    say("EHLO client.example.net", &mut r);
    assert!(say(&format!("MAIL FROM:<{from}>"), &mut r).starts_with("250"));
    let mut replies: Vec<String> = rcpts
        .iter()
        .map(|to| say(&format!("RCPT TO:<{to}>"), &mut r))
        .collect();
    if replies.iter().any(|x| x.starts_with("250")) {
        let data = say("DATA", &mut r);
        assert!(data.starts_with("354"), "{data}");
        replies.push(say(
            &format!("From: <{from}>\r\nSubject: {subject}\r\n\r\nabout abuse\r\n."),
            &mut r,
        ));
    }
    replies
}

/// RFC 5321 §4.5.1: postmaster@ takes mail a DMARC reject policy refuses
/// for everyone else (with the failing result in its header), and
/// `RCPT TO:<Postmaster>` without a domain reaches the server's own.
#[test]
fn postmaster_takes_mail_dmarc_refuses_elsewhere() {
    let work = tempfile::tempdir().unwrap();
    let (_, public) = dkim_key(work.path());
    let (_dns, port) = start_auth_dns(work.path(), &public);
    let mut env = Env::new();
    env.config.mx.check_senders = true;
    env.config.nameservers = vec![format!("127.0.0.1:{port}").parse().unwrap()];
    let ann = env.alias("ann", "pw");
    let postmaster = env.alias("postmaster", "pw");
    let server = env.serve();

    let r = transaction(server.smtp, "x@strict.test", &[&ann], "to-ann");
    assert!(r.last().unwrap().starts_with("550 5.7.1"), "{r:?}");
    let r = transaction(server.smtp, "x@strict.test", &[&postmaster], "to-pm");
    assert!(r.last().unwrap().starts_with("250"), "{r:?}");
    let r = transaction(server.smtp, "x@strict.test", &["Postmaster"], "bare-pm");
    assert!(r[0].starts_with("250"), "{r:?}");
    assert!(r.last().unwrap().starts_with("250"), "{r:?}");
    // Postmaster among others does not lift the refusal for the others.
    let r = transaction(server.smtp, "x@strict.test", &[&postmaster, &ann], "mixed");
    assert!(r.last().unwrap().starts_with("550 5.7.1"), "{r:?}");
    drop(server);

    for subject in ["to-pm", "bare-pm"] {
        let h = header_of(&env, &postmaster, subject);
        assert!(h.contains("dmarc=fail"), "{h}");
    }
}
