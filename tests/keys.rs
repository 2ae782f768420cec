//! Keys: only the owner's password opens a mailbox; aliases cannot read each
//! other; an interrupted password change leaves exactly one password working.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use common::*;
use sealmail::store::db::{self, DbError, DbKey};
use sealmail::store::{StoreError, UidSet};

#[test]
fn wrong_password_is_refused_and_the_file_needs_the_key() {
    let env = Env::new();
    let addr = env.alias("ann", "right password");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "right password");
    block(s.append(append_req("INBOX", text_message("hello", "secret body")))).unwrap();
    drop(s);
    assert_eq!(
        block(store.unlock(&addr, "wrong")).err(),
        Some(StoreError::AuthFailed)
    );
    assert_eq!(
        block(store.unlock("nobody@example.org", "x")).err(),
        Some(StoreError::AuthFailed)
    );
    let path = env.mailbox_path(&addr);
    assert!(matches!(
        db::open(&path, DbKey::Plain),
        Err(DbError::WrongKey)
    ));
    assert!(matches!(
        db::open(&path, DbKey::Raw(&[0u8; 32])),
        Err(DbError::WrongKey)
    ));
    let head = std::fs::read(&path).unwrap();
    assert!(!head.starts_with(b"SQLite format 3"));
}

#[test]
fn two_aliases_cannot_read_each_others_mailbox() {
    let env = Env::new();
    let ann = env.alias("ann", "pw-ann");
    let bob = env.alias("bob", "pw-bob");
    let (_b, store) = env.store();
    for (a, pw) in [(&ann, "pw-ann"), (&bob, "pw-bob")] {
        let s = unlock(&store, a, pw);
        block(s.append(append_req("INBOX", text_message("x", "y")))).unwrap();
    }
    let ann_key = env.dek(&ann, "pw-ann");
    let bob_key = env.dek(&bob, "pw-bob");
    assert_ne!(*ann_key, *bob_key);
    assert!(matches!(
        db::open(&env.mailbox_path(&bob), DbKey::Raw(&ann_key)),
        Err(DbError::WrongKey)
    ));
    assert!(matches!(
        db::open(&env.mailbox_path(&ann), DbKey::Raw(&bob_key)),
        Err(DbError::WrongKey)
    ));
    assert_eq!(
        block(store.unlock(&ann, "pw-bob")).err(),
        Some(StoreError::AuthFailed)
    );
}

/// Runs `alias password` with a crash point; returns the new password it
/// printed before dying.
fn change_with_crash(env: &Env, addr: &str, old: &str, point: &str) -> String {
    let out = env
        .bin()
        .args(["alias", "password", addr])
        .env("SEALMAIL_PASSWORD", old)
        .env("SEALMAIL_CRASH_AT", point)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the crash point should have stopped the process"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("new password (shown once, not stored): "))
        .unwrap_or_else(|| panic!("no password printed: {stdout}"))
        .to_string()
}

fn check_mail(env: &Env, addr: &str, password: &str) {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, password);
    let got = block(s.fetch("INBOX", UidSet::all(), Default::default())).unwrap();
    assert_eq!(got.len(), 1, "the mail is intact");
}

#[test]
fn interrupted_password_change_leaves_exactly_one_password() {
    let env = Env::new();
    let addr = env.alias("ann", "old-password");
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, "old-password");
        block(s.append(append_req("INBOX", text_message("keep", "me")))).unwrap();
    }
    // Dies inside the transaction: the old password still works.
    let new = change_with_crash(&env, &addr, "old-password", "password-change-before-commit");
    {
        let (_b, store) = env.store();
        assert_eq!(
            block(store.unlock(&addr, &new)).err(),
            Some(StoreError::AuthFailed)
        );
    }
    check_mail(&env, &addr, "old-password");
    // Dies right after the commit: only the new password works.
    let new = change_with_crash(&env, &addr, "old-password", "password-change-after-commit");
    {
        let (_b, store) = env.store();
        assert_eq!(
            block(store.unlock(&addr, "old-password")).err(),
            Some(StoreError::AuthFailed)
        );
    }
    check_mail(&env, &addr, &new);
}

#[test]
fn password_change_keeps_the_mailbox_key() {
    let env = Env::new();
    let addr = env.alias("ann", "one");
    let before = env.dek(&addr, "one");
    env.control()
        .change_password(&addr, "one", "two", FAST)
        .unwrap();
    assert_eq!(*env.dek(&addr, "two"), *before);
    assert!(
        env.control()
            .change_password(&addr, "one", "three", FAST)
            .is_err()
    );
}

#[test]
fn warm_unlock_needs_the_same_password() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let first = unlock(&store, &addr, "pw");
    // The key is cached now; a wrong password must still fail.
    assert_eq!(
        block(store.unlock(&addr, "not-pw")).err(),
        Some(StoreError::AuthFailed)
    );
    let second = unlock(&store, &addr, "pw");
    drop(first);
    drop(second);
}

#[test]
fn old_password_stops_working_at_once_even_with_the_key_cached() {
    let env = Env::new();
    let addr = env.alias("ann", "old");
    let (_b, store) = env.store();
    let live = unlock(&store, &addr, "old");
    // Another process (the CLI) changes the password while a session lives.
    env.control()
        .change_password(&addr, "old", "new", FAST)
        .unwrap();
    assert_eq!(
        block(store.unlock(&addr, "old")).err(),
        Some(StoreError::AuthFailed)
    );
    let again = unlock(&store, &addr, "new");
    block(again.append(append_req("INBOX", text_message("a", "b")))).unwrap();
    drop(live);
}

#[test]
fn reset_gives_a_new_empty_mailbox_even_with_the_key_cached() {
    let env = Env::new();
    let addr = env.alias("ann", "old");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "old");
    block(s.append(append_req("INBOX", text_message("before reset", "x")))).unwrap();
    drop(s);
    env.control().reset_password(&addr, "fresh", FAST).unwrap();
    let s = unlock(&store, &addr, "fresh");
    assert_eq!(block(s.status("INBOX")).unwrap().messages, 0);
}

#[test]
fn delivery_after_a_reset_reaches_the_new_mailbox() {
    let env = Env::new();
    let addr = env.alias("ann", "old");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "old");
    env.control().reset_password(&addr, "fresh", FAST).unwrap();
    // The old key is still cached for the live session; it must not be used.
    let d = block(store.deliver(&addr, text_message("after reset", "x"))).unwrap();
    assert_eq!(d, sealmail::store::Delivery::Sealed);
    drop(s);
    let (s, imported) = unlock_imported(&store, &addr, "fresh");
    assert_eq!(imported, 1);
    assert_eq!(block(s.status("INBOX")).unwrap().messages, 1);
}
