//! IMAP exactness, one behaviour per test with the exact server lines:
//! update ordering between sessions, FLAGS on new keywords, `\Recent`,
//! mailbox names, SEARCH edge cases, CONDSTORE, ENVELOPE and SORT details,
//! subscriptions, and the extensions announced in CAPABILITY.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use common::imap::Client;
use common::*;

fn dev_env() -> Env {
    let mut env = Env::new();
    env.config.dev = true;
    env
}

fn msg(i: usize) -> String {
    format!(
        "From: Ann <ann@example.net>\r\nTo: bob@example.org\r\nSubject: note {i}\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <m{i}@example.net>\r\n\r\nbody number {i}\r\n"
    )
}

/// An environment with one user whose INBOX holds `messages` (raw).
fn with_inbox(messages: &[String]) -> (Env, String) {
    let env = dev_env();
    let user = env.alias("ann", "pw");
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &user, "pw");
        for m in messages {
            block(s.append(append_req("INBOX", m.clone().into_bytes()))).unwrap();
        }
    }
    (env, user)
}

fn selected(server: &Server, user: &str) -> Client {
    let mut c = Client::login(server.imap, user);
    let r = c.cmd("S SELECT INBOX");
    assert!(r.last().unwrap().starts_with("S OK"), "{r:?}");
    c
}

#[test]
fn another_sessions_older_change_never_follows_the_newer_state() {
    let (env, user) = with_inbox(&[msg(1)]);
    let server = env.serve();
    let mut a = selected(&server, &user);
    let mut b = selected(&server, &user);
    assert_eq!(
        b.cmd("b1 STORE 1 +FLAGS (\\Flagged)"),
        ["* 1 FETCH (FLAGS (\\Flagged))", "b1 OK STORE completed"]
    );
    // A's own reply carries B's change too; B's older event is not sent
    // after it.
    assert_eq!(
        a.cmd("a1 STORE 1 +FLAGS (\\Seen)"),
        [
            "* 1 FETCH (FLAGS (\\Flagged \\Seen))",
            "a1 OK STORE completed"
        ]
    );
    assert_eq!(a.cmd("a2 NOOP"), ["a2 OK NOOP completed"]);
    // B learns A's change once.
    assert_eq!(
        b.cmd("b2 NOOP"),
        [
            "* 1 FETCH (UID 1 FLAGS (\\Flagged \\Seen))",
            "b2 OK NOOP completed"
        ]
    );

    // With CONDSTORE: a silent STORE, then the other session's older
    // change arrives; the state sent is the newest, MODSEQ does not go down.
    assert_eq!(a.cmd("a3 ENABLE CONDSTORE")[0], "* ENABLED CONDSTORE");
    assert_eq!(
        b.cmd("b3 STORE 1 -FLAGS.SILENT (\\Flagged)"),
        ["b3 OK STORE completed"]
    );
    assert_eq!(
        a.cmd("a4 STORE 1 +FLAGS.SILENT (\\Answered)"),
        [
            "* 1 FETCH (UID 1 MODSEQ (6))",
            "* 1 FETCH (UID 1 FLAGS (\\Answered \\Seen) MODSEQ (6))",
            "a4 OK STORE completed"
        ]
    );
    assert_eq!(a.cmd("a5 NOOP"), ["a5 OK NOOP completed"]);
}

#[test]
fn a_new_keyword_is_announced_to_other_sessions_before_its_fetch() {
    let (env, user) = with_inbox(&[msg(1)]);
    let server = env.serve();
    let mut a = selected(&server, &user);
    let mut b = Client::login(server.imap, &user);
    assert_eq!(
        b.cmd("b1 EXAMINE INBOX")[..2],
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
            "* OK [PERMANENTFLAGS ()] read-only"
        ]
    );
    assert_eq!(
        a.cmd("a1 STORE 1 +FLAGS.SILENT ($Todo)"),
        ["a1 OK STORE completed"]
    );
    assert_eq!(
        b.cmd("b2 NOOP"),
        [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Todo)",
            "* OK [PERMANENTFLAGS ()] read-only",
            "* 1 FETCH (UID 1 FLAGS ($Todo))",
            "b2 OK NOOP completed"
        ]
    );
    // Known now: not announced again.
    a.cmd("a2 STORE 1 -FLAGS.SILENT ($Todo)");
    assert_eq!(
        b.cmd("b3 NOOP"),
        ["* 1 FETCH (UID 1 FLAGS ())", "b3 OK NOOP completed"]
    );
}
