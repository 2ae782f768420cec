//! Every reply that acknowledges stored mail follows a sync of the
//! mailbox's log (issue: 20 APPENDs caused no fsync). Counted through
//! `util::wal_syncs`, the process-wide number of log syncs, so this file
//! is a binary of its own: other tests would move the count.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::thread;

use common::imap::{Client, dev_env, msg};
use sealmail::util::wal_syncs;

fn append(c: &mut Client, tag: &str, m: &str) -> Vec<String> {
    c.send(format!("{tag} APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes());
    c.until(tag)
}

#[test]
fn append_copy_and_move_are_acknowledged_after_a_sync() {
    let env = dev_env();
    let user = env.alias("ann", "pw");
    let server = env.serve();
    let mut c = Client::login(server.imap, &user);
    c.cmd("c CREATE Archive");
    for i in 0..20 {
        let before = wal_syncs();
        let r = append(&mut c, "a", &msg(i));
        assert!(r.last().unwrap().starts_with("a OK [APPENDUID"), "{r:?}");
        assert!(
            wal_syncs() > before,
            "APPEND {i} was acknowledged before a sync"
        );
    }
    c.cmd("s SELECT INBOX");
    for (tag, cmd) in [
        ("k", "UID COPY 1:5 Archive"),
        ("m", "UID MOVE 6:10 Archive"),
    ] {
        let before = wal_syncs();
        let r = c.cmd(&format!("{tag} {cmd}"));
        assert!(r.last().unwrap().starts_with(&format!("{tag} OK")), "{r:?}");
        assert!(wal_syncs() > before, "{cmd} was acknowledged before a sync");
    }
    // Concurrent APPENDs share syncs, and each still follows one.
    let before = wal_syncs();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (imap, user) = (server.imap, user.clone());
            thread::spawn(move || {
                let mut c = Client::login(imap, &user);
                for i in 0..10 {
                    let r = append(&mut c, "p", &msg(100 + t * 10 + i));
                    assert!(r.last().unwrap().starts_with("p OK"), "{r:?}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let syncs = wal_syncs() - before;
    assert!((1..=80).contains(&syncs), "{syncs} syncs for 80 APPENDs");
    let r = c.cmd("t STATUS INBOX (MESSAGES)");
    assert_eq!(r[0], "* STATUS \"INBOX\" (MESSAGES 95)");
}
