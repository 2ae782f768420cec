//! The MX against smtplib, swaks and raw sockets: delivery to locked and
//! unlocked mailboxes, nothing in clear on disk, refusals, STARTTLS,
//! BDAT, and SMTP smuggling.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use common::*;
use sealmail::store::Criteria;

const CANARY: &str = "MxCanary93xq";

fn subjects_matching(env: &Env, addr: &str, needle: &str) -> usize {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, "pw");
    block(s.search("INBOX", Criteria::Subject(needle.into())))
        .unwrap()
        .uids
        .len()
}

#[test]
fn smtplib_delivery_refusals_and_smuggling() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let out = python(
        "mx_smtp.py",
        &[server.smtp.port().to_string(), addr.clone(), CANARY.into()],
    );
    assert!(out.contains("0 failed"), "{out}");
    drop(server);
    // Nobody was logged in: everything was sealed, nothing is in clear.
    assert!(files_containing(env.data(), CANARY.as_bytes()).is_empty());
    assert_eq!(
        subjects_matching(&env, &addr, CANARY),
        3,
        "plain, tls and bdat"
    );
    assert_eq!(subjects_matching(&env, &addr, "smuggle-"), 5);
    assert_eq!(subjects_matching(&env, &addr, "smuggled-"), 0);
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let whole = |subject: &str| {
        let uid = block(s.search("INBOX", Criteria::Subject(subject.into())))
            .unwrap()
            .uids;
        let what = sealmail::store::FetchWhat {
            sections: vec![sealmail::store::Section {
                path: vec![],
                kind: sealmail::store::SectionKind::Whole,
            }],
            ..Default::default()
        };
        let raw = block(s.fetch(
            "INBOX",
            sealmail::store::UidSet::range(uid[0], uid[0]),
            what,
        ))
        .unwrap();
        String::from_utf8_lossy(&raw[0].sections[0].1).to_string()
    };
    let text = whole(&format!("{CANARY} plain"));
    let tls = whole(&format!("{CANARY} tls"));
    assert!(
        tls.contains(
            "([127.0.0.1])\r\n\tby mail.example.org (sealmail) with ESMTPS (TLSv1_3/TLS13_"
        ),
        "{tls}"
    );
    // RFC 5321 §4.4: the client's HELO and its address.
    assert!(
        text.starts_with("Return-Path: <a@example.net>\r\nReceived: from client.example.net ([127.0.0.1])\r\n\tby mail.example.org (sealmail) with ESMTP id "),
        "{text}"
    );
    assert!(text.contains("\r\n.leading dot\r\n"), "dot-unstuffing");
}

#[test]
fn delivery_while_the_owner_is_logged_in_goes_straight_to_inbox() {
    use std::io::Write;
    let mut env = Env::new();
    env.config.dev = true;
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    // The owner logs in through the server (POP3 here), so its key is held.
    let mut w = pop3_login(server.pop3, &addr);
    assert!(smtp_send(server.smtp, &addr, "while logged in").starts_with("250 2.0.0"));
    let mailbox_id = env.control().alias(&addr).unwrap().unwrap().mailbox_id;
    let spool = env.data().join("spool").join(&mailbox_id);
    let sealed = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(sealed, 0, "not sealed: the key was in memory");
    w.write_all(b"QUIT\r\n").unwrap();
    drop(server);
    assert_eq!(subjects_matching(&env, &addr, "while logged in"), 1);
}

#[test]
fn swaks_delivers() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    run_ok(
        std::process::Command::new("swaks")
            .args([
                "--to",
                &addr,
                "--from",
                "sender@example.net",
                "--server",
                "127.0.0.1",
            ])
            .args(["--port", &server.smtp.port().to_string()])
            .args([
                "--header",
                &format!("Subject: swaks {CANARY}"),
                "--body",
                "hello from swaks",
                "--tls",
            ]),
    );
    drop(server);
    assert_eq!(subjects_matching(&env, &addr, "swaks"), 1);
}

#[test]
fn quota_holds_for_sealed_mail_too() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    // What the mailbox held when last open counts: fill it at the store.
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, "pw");
        block(s.append(append_req("INBOX", text_message("big", &"x".repeat(3000))))).unwrap();
    }
    env.control()
        .set_quota(&addr, Some(3000 + 2 * 1024))
        .unwrap();
    let server = env.serve();
    let mut replies = Vec::new();
    for i in 0..6 {
        replies.push(smtp_send(server.smtp, &addr, &format!("q{i}")));
    }
    drop(server);
    let accepted = replies.iter().filter(|r| r.starts_with("250 ")).count();
    assert!((1..6).contains(&accepted), "{replies:?}");
    for r in &replies[accepted..] {
        assert!(r.starts_with("452 4.2.2"), "{replies:?}");
    }
    // Everything acknowledged arrives at the next login.
    let hits = (0..6)
        .map(|i| subjects_matching(&env, &addr, &format!("q{i}")))
        .sum::<usize>();
    assert_eq!(hits, accepted);
}

/// Attachments that run when opened are refused before 250, by name,
/// declared type and first bytes, one level inside zip and gzip; a
/// recipient listed in mx.allow_executables takes them, but only when every
/// recipient is; nothing of a refused message is left on disk.
#[test]
fn executable_attachments_are_refused_naming_the_file() {
    let mut env = Env::new();
    let ann = env.alias("ann", "pw");
    let dev = env.alias("dev", "pw");
    env.config.mx.allow_executables = vec![dev.clone()];
    let server = env.serve();
    let out = python(
        "mx_content.py",
        &[
            server.smtp.port().to_string(),
            ann.clone(),
            dev.clone(),
            CANARY.into(),
        ],
    );
    assert!(out.contains(" 0 failed"), "{out}");
    drop(server);
    assert_eq!(subjects_matching(&env, &ann, "refused"), 0);
    assert_eq!(subjects_matching(&env, &ann, "clean pdf and zip"), 1);
    assert_eq!(subjects_matching(&env, &dev, "for dev"), 1);
    assert!(files_containing(env.data(), CANARY.as_bytes()).is_empty());
}

/// Past the messages or recipients one client address may send per
/// minute, MAIL and RCPT get 450 4.7.1 (a sender retries); others, and
/// networks in mx.rate_exempt, are not held back.
#[test]
fn clients_past_their_rate_get_450_and_others_pass() {
    let mut env = Env::new();
    let ann = env.alias("ann", "pw");
    env.config.mx.client_messages_per_minute = 2;
    env.config.mx.client_recipients_per_minute = 3;
    env.config.mx.rate_exempt = vec![];
    let server = env.serve();
    let send = |from: std::net::IpAddr, rcpts: usize| {
        let mut lines = vec![
            "EHLO client.example.net".to_string(),
            "MAIL FROM:<a@example.net>".into(),
        ];
        lines.extend((0..rcpts).map(|_| format!("RCPT TO:<{ann}>")));
        lines.push("QUIT".into());
        smtp_exchange(connect_from(from, server.smtp), &lines)
    };
    let a: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    // Two recipients, then two more: the fourth of the minute is refused.
    let r = send(a, 2);
    assert!(r[2].starts_with("250") && r[4].starts_with("250"), "{r:?}");
    let r = send(a, 2);
    assert!(
        r[3].starts_with("250") && r[4].starts_with("450 4.7.1"),
        "{r:?}"
    );
    // The third message of the minute is refused at MAIL.
    let r = send(a, 0);
    assert!(r[2].starts_with("450 4.7.1"), "{r:?}");
    // Another address is its own client.
    let r = send("127.0.0.3".parse().unwrap(), 1);
    assert!(r[2].starts_with("250") && r[3].starts_with("250"), "{r:?}");
    drop(server);
    // With its network exempt, the same client is not counted: three
    // messages in a minute pass.
    let mut env = env;
    env.config.mx.rate_exempt = vec![("127.0.0.0".parse().unwrap(), 8)];
    let server = env.serve();
    let mail = "MAIL FROM:<a@example.net>";
    let r = smtp_exchange(
        connect_from(a, server.smtp),
        &[
            "EHLO client.example.net",
            mail,
            "RSET",
            mail,
            "RSET",
            mail,
            "QUIT",
        ],
    );
    assert!(
        r[2].starts_with("250") && r[4].starts_with("250") && r[6].starts_with("250"),
        "{r:?}"
    );
}

/// With mx.dnsbl set, a client the (loopback) blocklist lists gets 554
/// 5.7.1 naming the list for every recipient but postmaster@; others
/// pass; the list is asked once a connection.
#[test]
fn clients_on_a_dns_blocklist_reach_only_postmaster() {
    let work = tempfile::tempdir().unwrap();
    let zone = serde_json::json!({
        // RFC 5782: 127.0.0.2 is the listed test entry; .3 is not listed.
        "2.0.0.127.bl.test": [["A", "127.0.0.2"]],
        // A list's "you may not ask" code is not a listing.
        "4.0.0.127.bl.test": [["A", "127.255.255.254"]],
    });
    let (_dns, port) = start_dns(work.path(), &zone);
    let mut env = Env::new();
    let ann = env.alias("ann", "pw");
    let postmaster = env.alias("postmaster", "pw");
    env.config.nameservers = vec![format!("127.0.0.1:{port}").parse().unwrap()];
    env.config.mx.dnsbl = vec!["bl.test".into()];
    env.config.mx.rate_exempt = vec![];
    let server = env.serve();
    let send = |from: &str| {
        smtp_exchange(
            connect_from(from.parse().unwrap(), server.smtp),
            &[
                "EHLO client.example.net".to_string(),
                "MAIL FROM:<a@example.net>".into(),
                format!("RCPT TO:<{ann}>"),
                format!("RCPT TO:<{postmaster}>"),
                "RCPT TO:<Postmaster>".into(),
                format!("RCPT TO:<{ann}>"),
                "QUIT".into(),
            ],
        )
    };
    let r = send("127.0.0.2");
    // r[0] is the greeting, r[1] EHLO, r[2] MAIL.
    assert_eq!(
        r[3], "554 5.7.1 Service unavailable; client [127.0.0.2] is listed by bl.test",
        "{r:?}"
    );
    assert!(r[4].starts_with("250") && r[5].starts_with("250"), "{r:?}");
    assert!(r[6].starts_with("554 5.7.1"), "{r:?}");
    for clean in ["127.0.0.3", "127.0.0.4"] {
        let r = send(clean);
        assert!(
            r[3..7].iter().all(|l| l.starts_with("250")),
            "{clean}: {r:?}"
        );
    }
    drop(server);
    let asked = std::fs::read_to_string(work.path().join("zone.json.log")).unwrap();
    assert_eq!(asked.matches("2.0.0.127.bl.test A").count(), 1, "{asked}");
}
