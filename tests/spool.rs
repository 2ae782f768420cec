//! The sealed spool: mail for a locked mailbox is sealed, then imported
//! into INBOX exactly once at the next unlock, even if the importing process
//! dies half-way.
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

use common::*;
use sealmail::store::{Delivery, FetchWhat, Section, SectionKind, UidSet};

fn subjects(env: &Env, addr: &str, password: &str) -> BTreeMap<String, usize> {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, password);
    let what = FetchWhat {
        sections: vec![Section {
            path: vec![],
            kind: SectionKind::Header,
        }],
        ..Default::default()
    };
    let mut counts = BTreeMap::new();
    for m in block(s.fetch("INBOX", UidSet::all(), what)).unwrap() {
        let header = String::from_utf8_lossy(&m.sections[0].1).to_string();
        let subject = header
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or("")
            .to_string();
        *counts.entry(subject).or_insert(0) += 1;
    }
    counts
}

fn seal_many(env: &Env, addr: &str, n: usize) {
    let (_b, store) = env.store();
    for i in 0..n {
        let d = block(store.deliver(
            addr,
            text_message(&format!("spooled {i:03}"), "sealed body"),
        ))
        .unwrap();
        assert_eq!(d, Delivery::Sealed);
    }
}

#[test]
fn locked_delivery_is_sealed_and_imported_once() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    seal_many(&env, &addr, 5);
    let a = env.control().alias(&addr).unwrap().unwrap();
    let spool = env.data().join("spool").join(&a.mailbox_id);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 5);
    assert!(files_containing(env.data(), b"sealed body").is_empty());
    let (_b, store) = env.store();
    let (s, imported) = unlock_imported(&store, &addr, "pw");
    assert_eq!(imported, 5);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    // With a session open, delivery goes straight to INBOX.
    let d = block(store.deliver(&addr, text_message("direct", "x"))).unwrap();
    assert!(matches!(d, Delivery::Inbox { uid: 6 }));
    drop(s);
    let counts = subjects(&env, &addr, "pw");
    assert_eq!(counts.len(), 6);
    assert!(counts.values().all(|&n| n == 1));
}

/// `settle` answers for the import the login started even when that
/// import ended before anyone asked.
#[test]
fn settle_counts_an_import_that_already_ended() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    seal_many(&env, &addr, 3);
    let (_b, store) = env.store();
    let s = block(store.unlock(&addr, "pw")).unwrap();
    let a = env.control().alias(&addr).unwrap().unwrap();
    let spool = env.data().join("spool").join(&a.mailbox_id);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_dir(&spool).map_or(0, |d| d.count()) > 0
        || block(s.status("INBOX")).unwrap().messages < 3
    {
        assert!(std::time::Instant::now() < deadline, "import did not end");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The import has ended (its spool is empty and INBOX holds the mail);
    // give it time to deregister.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(block(s.settle()).unwrap(), 3);
    // A later login found nothing to import.
    let t = block(store.unlock(&addr, "pw")).unwrap();
    assert_eq!(block(t.settle()).unwrap(), 0);
}

#[test]
fn import_killed_half_way_imports_every_message_once() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    seal_many(&env, &addr, 100);
    // The worst moment: the batch committed, its files not yet gone.
    let status = env
        .bin()
        .args(["mailbox", "status", &addr])
        .env("SEALMAIL_PASSWORD", "pw")
        .env("SEALMAIL_CRASH_AT", "spool-import-after-commit:1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
    let counts = subjects(&env, &addr, "pw");
    assert_eq!(counts.len(), 100, "all 100 present");
    assert!(counts.values().all(|&n| n == 1), "none twice: {counts:?}");
}

#[test]
fn import_killed_at_random_points_loses_and_duplicates_nothing() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    seal_many(&env, &addr, 100);
    for delay_ms in [5u64, 20, 60] {
        let mut child = env
            .bin()
            .args(["mailbox", "status", &addr])
            .env("SEALMAIL_PASSWORD", "pw")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        child.wait().unwrap();
    }
    let counts = subjects(&env, &addr, "pw");
    assert_eq!(counts.len(), 100);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

/// Mail that keeps arriving while the import runs (four senders, no
/// pause) cannot keep the owner's mail on the sealed path: the import
/// takes its last batch with deliveries held off, then deliveries go
/// straight into INBOX. Nothing is lost or doubled on the way.
#[test]
fn a_steady_stream_does_not_keep_the_import_running() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    seal_many(&env, &addr, 600);
    let (_b, store) = env.store();
    let s = block(store.unlock(&addr, "pw")).unwrap();
    let straight = std::sync::atomic::AtomicBool::new(false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let sent: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (store, addr, straight) = (store.clone(), addr.clone(), &straight);
                scope.spawn(move || {
                    let mut n = 0;
                    // Each sender stops soon after the first delivery
                    // that went straight in, or at its bound.
                    let mut after = 0;
                    while n < 2_000 && after < 20 && std::time::Instant::now() < deadline {
                        let m = text_message(&format!("stream {t}-{n:04}"), "streamed body");
                        match block(store.deliver(&addr, m)).unwrap() {
                            Delivery::Inbox { .. } => {
                                straight.store(true, std::sync::atomic::Ordering::SeqCst)
                            }
                            Delivery::Sealed => {}
                        }
                        if straight.load(std::sync::atomic::Ordering::SeqCst) {
                            after += 1;
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert!(
        straight.load(std::sync::atomic::Ordering::SeqCst),
        "{sent} deliveries while the import ran, none went straight to INBOX"
    );
    block(s.settle()).unwrap();
    drop(s);
    let counts = subjects(&env, &addr, "pw");
    assert_eq!(counts.len(), 600 + sent, "every message once");
    assert!(counts.values().all(|&n| n == 1));
}

/// An import's bodies are added to the search index after its last batch,
/// in chunks, and BODY finds them before and after.
#[test]
fn imported_mail_is_indexed_after_the_import() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let n = 600; // more than one import batch and two index chunks
    seal_many(&env, &addr, n);
    let (_b, store) = env.store();
    let (s, imported) = unlock_imported(&store, &addr, "pw");
    assert_eq!(imported as usize, n);
    assert_eq!(
        body_hits(&s, "sealed body"),
        n,
        "found while waiting for the index"
    );
    let mut file = env.mailbox_file(&addr, "pw");
    wait_for_index(&mut file, 1);
    let indexed = count(
        &mut file,
        "SELECT count(*) FROM fts WHERE fts MATCH '\"sealed body\"'",
    );
    assert_eq!(indexed, n);
    assert_eq!(body_hits(&s, "sealed body"), n, "found through the index");
}

/// Mail for the Junk folder (DMARC quarantine) gets there sealed, the
/// mark inside the seal, and with the key present; a renamed Junk folder
/// still gets it by its special use.
#[test]
fn junk_deliveries_reach_the_junk_folder_on_both_paths() {
    use sealmail::store::Criteria;
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let d = block(store.deliver_to(
        &addr,
        text_message("sealed junk", "phish one"),
        sealmail::store::Placement::junk(),
    ))
    .unwrap();
    assert_eq!(d, Delivery::Sealed);
    assert!(files_containing(env.data(), b"phish one").is_empty());
    let (s, imported) = unlock_imported(&store, &addr, "pw");
    assert_eq!(imported, 1);
    let d = block(store.deliver_to(
        &addr,
        text_message("direct junk", "phish two"),
        sealmail::store::Placement::junk(),
    ))
    .unwrap();
    assert!(matches!(d, Delivery::Inbox { .. }), "{d:?}");
    block(store.deliver(&addr, text_message("wanted", "hello"))).unwrap();
    let in_folder = |folder: &str| {
        block(s.search(folder, Criteria::All))
            .map(|r| r.uids.len())
            .unwrap_or(0)
    };
    assert_eq!((in_folder("Junk"), in_folder("INBOX")), (2, 1));
    block(s.rename_folder("Junk", "Spam")).unwrap();
    block(store.deliver_to(
        &addr,
        text_message("renamed", "phish three"),
        sealmail::store::Placement::junk(),
    ))
    .unwrap();
    assert_eq!((in_folder("Spam"), in_folder("INBOX")), (3, 1));
    // A special-use folder is never deleted, so INBOX, the fallback, is
    // not reached here.
    assert!(block(s.delete_folder("Spam")).is_err());
}
