//! Messages over 1 MiB wait in spill files while they arrive; what is
//! stored is byte for byte what was sent: DATA (dot-stuffed lines across
//! the spill edges), BDAT chunks across them, APPEND with sync and
//! non-sync literals, MULTIAPPEND, CATENATE and REPLACE. A literal that
//! looks like a placeholder is stored as sent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::imap::{Client, Tok, dev_env, fetch_items};
use common::smtp_reply as reply;

const MIB: usize = 1 << 20;

/// A message body of about `n` bytes whose lines differ (so a misplaced
/// chunk shows), some starting with a dot.
fn body(n: usize, seed: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 100);
    let mut i = 0;
    while out.len() < n {
        if i % 7 == 0 {
            out.extend_from_slice(format!(".dot line {seed} {i}\r\n").as_bytes());
        } else {
            out.extend_from_slice(format!("line {seed} {i} {}\r\n", "z".repeat(i % 70)).as_bytes());
        }
        i += 1;
    }
    out
}

fn message(subject: &str, text: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "From: a@example.net\r\nTo: ann@example.org\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.net>\r\n\r\n"
    )
    .into_bytes();
    m.extend_from_slice(text);
    m
}

fn smtp(server: SocketAddr, rcpt: &str) -> (BufReader<TcpStream>, TcpStream) {
    let s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    assert!(reply(&mut r).starts_with("220"));
    for cmd in [
        "EHLO c.example.net".to_string(),
        "MAIL FROM:<a@example.net>".into(),
        format!("RCPT TO:<{rcpt}>"),
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let l = reply(&mut r);
        assert!(l.starts_with("250"), "{cmd}: {l}");
    }
    (r, w)
}

/// BODY[TEXT] of the message with `uid` in the selected mailbox.
fn text_of(c: &mut Client, uid: u32) -> Vec<u8> {
    c.send(format!("f UID FETCH {uid} BODY.PEEK[TEXT]\r\n").as_bytes());
    let mut found = None;
    loop {
        let l = c.line_bytes();
        if l.starts_with(b"f ") {
            assert!(l.starts_with(b"f OK"), "{}", String::from_utf8_lossy(&l));
            return found.expect("a FETCH response");
        }
        if let Some((_, items)) = fetch_items(&l)
            && let Some((_, Tok::Str(b))) = items.iter().find(|(k, _)| k.starts_with("BODY[TEXT]"))
        {
            found = Some(b.clone());
        }
    }
}

/// The UIDs of messages whose subject is `subject`.
fn uid_of(c: &mut Client, subject: &str) -> u32 {
    let r = c.cmd(&format!(
        "s UID SEARCH HEADER Message-ID \"<{subject}@example.net>\""
    ));
    let hit = r.iter().find(|l| l.starts_with("* SEARCH")).unwrap();
    let uids: Vec<u32> = hit.split(' ').skip(2).map(|u| u.parse().unwrap()).collect();
    assert_eq!(uids.len(), 1, "{subject}: {r:?}");
    uids[0]
}

#[test]
fn spilled_messages_are_stored_byte_for_byte() {
    let env = dev_env();
    let ann = env.alias("ann", "pw");
    let server = env.serve();

    // DATA of 3 MiB: dot-stuffed lines across the spill edges.
    let data_text = body(3 * MIB, "data");
    let (mut r, mut w) = smtp(server.smtp, &ann);
    w.write_all(b"DATA\r\n").unwrap();
    assert!(reply(&mut r).starts_with("354"));
    let mut wire = Vec::new();
    for line in message("viadata", &data_text).split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            wire.push(b'.');
        }
        wire.extend_from_slice(line);
    }
    wire.extend_from_slice(b".\r\n");
    w.write_all(&wire).unwrap();
    let l = reply(&mut r);
    assert!(l.starts_with("250"), "{l}");

    // BDAT in chunks of 700 KiB, 900 KiB and the rest: the spill edge
    // falls inside the second.
    let bdat_text = body(3 * MIB, "bdat");
    let whole = message("viabdat", &bdat_text);
    let (mut r, mut w) = smtp(server.smtp, &ann);
    let (a, rest) = whole.split_at(700 * 1024);
    let (b, c) = rest.split_at(900 * 1024);
    for (chunk, last) in [(a, false), (b, false), (c, true)] {
        let head = if last {
            format!("BDAT {} LAST\r\n", chunk.len())
        } else {
            format!("BDAT {}\r\n", chunk.len())
        };
        w.write_all(head.as_bytes()).unwrap();
        w.write_all(chunk).unwrap();
        let l = reply(&mut r);
        assert!(l.starts_with("250"), "{l}");
    }

    let mut c = Client::login(server.imap, &ann);
    c.w.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    c.await_messages("INBOX", 2);
    assert!(c.cmd("x SELECT INBOX").last().unwrap().starts_with("x OK"));
    let uid = uid_of(&mut c, "viadata");
    assert!(text_of(&mut c, uid) == data_text, "DATA came back changed");
    let uid = uid_of(&mut c, "viabdat");
    assert!(text_of(&mut c, uid) == bdat_text, "BDAT came back changed");

    // APPEND, synchronising literal.
    let sync_text = body(2 * MIB + 333, "sync");
    let m = message("sync", &sync_text);
    c.send(format!("a APPEND INBOX {{{}}}\r\n", m.len()).as_bytes());
    assert!(c.line().starts_with('+'));
    c.send(&m);
    c.send(b"\r\n");
    assert!(c.until("a").last().unwrap().starts_with("a OK"));
    // MULTIAPPEND: a small message, then a large non-synchronising one,
    // then a literal that looks like a placeholder.
    let small = message("small", b"tiny\r\n");
    let large_text = body(3 * MIB + 5, "multi");
    let large = message("multi", &large_text);
    let fake = message("fake", b"00000000000000000000000000000000-0\r\n");
    let mut cmd = format!("b APPEND INBOX {{{}+}}\r\n", small.len()).into_bytes();
    cmd.extend_from_slice(&small);
    cmd.extend_from_slice(format!(" {{{}+}}\r\n", large.len()).as_bytes());
    cmd.extend_from_slice(&large);
    cmd.extend_from_slice(format!(" {{{}+}}\r\n", fake.len()).as_bytes());
    cmd.extend_from_slice(&fake);
    cmd.extend_from_slice(b"\r\n");
    c.send(&cmd);
    let r = c.until("b");
    assert!(r.last().unwrap().starts_with("b OK"), "{r:?}");
    let uid = uid_of(&mut c, "sync");
    assert!(
        text_of(&mut c, uid) == sync_text,
        "APPEND came back changed"
    );
    let uid = uid_of(&mut c, "multi");
    assert!(
        text_of(&mut c, uid) == large_text,
        "MULTIAPPEND came back changed"
    );
    let uid = uid_of(&mut c, "small");
    assert_eq!(text_of(&mut c, uid), b"tiny\r\n");
    let uid = uid_of(&mut c, "fake");
    assert_eq!(
        text_of(&mut c, uid),
        b"00000000000000000000000000000000-0\r\n"
    );

    // CATENATE: a large TEXT part, then the text of the DATA message.
    let data_uid = uid_of(&mut c, "viadata");
    let head = message("cat", &body(MIB + 77, "cat"));
    let mut cmd = format!("c APPEND INBOX CATENATE (TEXT {{{}+}}\r\n", head.len()).into_bytes();
    cmd.extend_from_slice(&head);
    cmd.extend_from_slice(format!(" URL \"/INBOX/;UID={data_uid}/;SECTION=TEXT\")\r\n").as_bytes());
    c.send(&cmd);
    let r = c.until("c");
    assert!(r.last().unwrap().starts_with("c OK"), "{r:?}");
    let uid = uid_of(&mut c, "cat");
    let mut expected = body(MIB + 77, "cat");
    expected.extend_from_slice(&data_text);
    assert!(
        text_of(&mut c, uid) == expected,
        "CATENATE came back changed"
    );

    // REPLACE the APPENDed message with a larger one.
    let sync_uid = uid_of(&mut c, "sync");
    let new_text = body(2 * MIB, "replaced");
    let m = message("replaced", &new_text);
    c.send(format!("d UID REPLACE {sync_uid} INBOX {{{}+}}\r\n", m.len()).as_bytes());
    c.send(&m);
    c.send(b"\r\n");
    let r = c.until("d");
    assert!(r.last().unwrap().starts_with("d OK"), "{r:?}");
    let uid = uid_of(&mut c, "replaced");
    assert!(
        text_of(&mut c, uid) == new_text,
        "REPLACE came back changed"
    );

    // Nothing is left in the spill directory.
    assert_eq!(
        std::fs::read_dir(env.data().join("spill")).unwrap().count(),
        0
    );
}
