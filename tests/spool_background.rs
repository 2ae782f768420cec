//! A returning owner's LOGIN does not wait for the sealed spool: the import
//! runs in the background while IMAP sessions see the mail arrive as
//! EXISTS, mail that arrives meanwhile keeps its place after the older
//! sealed mail, and POP3 takes its maildrop only once the import is done.
//! The server runs as its own process, held after its first import batch
//! by a pause point, so "while the import runs" is a state, not a race.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use common::imap::Client;
use common::*;
use sealmail::store::Delivery;

/// How many sealed messages wait: more than one import batch (500).
const WAITING: usize = 1200;

fn exists(lines: &[String]) -> Option<usize> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("* ")?.strip_suffix(" EXISTS")?.parse().ok())
        .next_back()
}

#[test]
fn login_answers_while_the_spool_is_imported() {
    let env = Env::subprocess();
    let addr = env.alias("ann", "pw");
    {
        let (_b, store) = env.store();
        for i in 0..WAITING {
            let d = block(store.deliver(
                &addr,
                text_message(&format!("spooled {i:04}"), "while away"),
            ))
            .unwrap();
            assert_eq!(d, Delivery::Sealed);
        }
    }
    let hold = env.data().join("hold-import");
    std::fs::write(&hold, b"").unwrap();
    let pause = format!("spool-import-batch={}", hold.display());
    let server = env.spawn_server(&[("SEALMAIL_PAUSE_AT", &pause)]);

    // LOGIN answers although the import is held after its first batch.
    let mut imap = Client::login(env.config.listen.imap, &addr);
    let selected = imap.cmd("S SELECT INBOX");
    assert!(selected.last().unwrap().starts_with("S OK"), "{selected:?}");
    let seen = exists(&selected).unwrap();
    assert!(seen < WAITING, "the held import cannot be done: {seen}");

    // Mail arriving now is answered at once and sealed behind the rest.
    let reply = smtp_send(env.config.listen.smtp, &addr, "arrived during the import");
    assert!(reply.starts_with("250"), "{reply}");

    // POP3 waits for the import: its maildrop is the whole INBOX.
    let pop = std::net::TcpStream::connect(env.config.listen.pop3).unwrap();
    pop.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut pop_r = BufReader::new(pop.try_clone().unwrap());
    let mut pop_w = pop;
    let mut line = String::new();
    pop_r.read_line(&mut line).unwrap();
    pop_w
        .write_all(format!("USER {addr}\r\n").as_bytes())
        .unwrap();
    line.clear();
    pop_r.read_line(&mut line).unwrap();
    assert!(line.starts_with("+OK"), "USER: {line}");
    pop_w.write_all(b"PASS pw\r\n").unwrap();

    std::fs::remove_file(&hold).unwrap();
    line.clear();
    pop_r.read_line(&mut line).unwrap();
    assert!(
        line.starts_with(&format!("+OK maildrop has {} messages", WAITING + 1)),
        "PASS: {line}"
    );

    // The IMAP session hears of every message, in arrival order.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut total = seen;
    while total < WAITING + 1 {
        assert!(Instant::now() < deadline, "only {total} messages arrived");
        std::thread::sleep(Duration::from_millis(50));
        if let Some(n) = exists(&imap.cmd("N NOOP")) {
            total = n;
        }
    }
    assert_eq!(total, WAITING + 1);
    let fetched = imap.cmd("F UID FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    let subjects: Vec<String> = fetched
        .iter()
        .filter_map(|l| {
            let at = l.find("Subject: ")?;
            Some(l[at + 9..].split("\r\n").next()?.to_string())
        })
        .collect();
    let mut want: Vec<String> = (0..WAITING).map(|i| format!("spooled {i:04}")).collect();
    want.push("arrived during the import".into());
    assert_eq!(subjects, want, "each message once, in arrival order");
    let uids: Vec<u32> = fetched
        .iter()
        .filter_map(|l| {
            let at = l.find("UID ")?;
            l[at + 4..].split([' ', ')']).next()?.parse().ok()
        })
        .collect();
    assert_eq!(uids, (1..=(WAITING as u32 + 1)).collect::<Vec<_>>());
    drop(server);
    assert!(
        std::fs::read_dir(env.data().join("spool"))
            .unwrap()
            .flatten()
            .all(|d| std::fs::read_dir(d.path()).unwrap().next().is_none()),
        "the spool is empty"
    );
}
