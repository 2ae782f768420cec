//! Tests of one mailbox file: new mail waiting for the full-text index and
//! found meanwhile, folder names, and the size limit of encrypted mail.
//!
//! Imports the parent module and `store`'s plain types.

use super::*;
use crate::store::search::Criteria;
use crate::store::types::{AppendRequest, FlagOp, Flags, StoreFlags, UidSet};

fn pending(m: &Mailbox) -> i64 {
    m.conn
        .query_row("SELECT count(*) FROM fts_pending", [], |r| r.get(0))
        .unwrap()
}

fn text(subject: &str, body: &str) -> AppendRequest {
    AppendRequest {
        folder: "INBOX".into(),
        message: format!("From: a@example.org\r\nSubject: {subject}\r\n\r\n{body}\r\n")
            .into_bytes(),
        flags: Flags::default(),
        internal_date: None,
        if_missing: Default::default(),
    }
}

/// New mail waits for the full-text index until more than
/// `unindexed_max` bodies wait; SEARCH finds it either way, and an
/// expunged body leaves both the waiting list and the index.
#[test]
fn new_mail_is_indexed_in_batches_and_found_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Mailbox::open(
        &dir.path().join("m.sqlite"),
        DbKey::Plain,
        Limits {
            unindexed_max: INDEX_BATCH,
            ..Limits::default()
        },
    )
    .unwrap();
    let find = |m: &mut Mailbox, needle: &str| {
        m.search("INBOX", &Criteria::Body(needle.into()))
            .unwrap()
            .uids
    };
    m.append(&[text("one", "walrus waiting"), text("two", "otter")], None)
        .unwrap();
    assert_eq!(pending(&m), 2);
    assert_eq!(find(&mut m, "walrus"), [1]);
    let many: Vec<AppendRequest> = (0..INDEX_BATCH)
        .map(|i| text(&format!("bulk {i}"), "pelican"))
        .collect();
    m.append(&many, None).unwrap();
    assert_eq!(pending(&m), 2, "the oldest indexed past unindexed_max");
    assert_eq!(find(&mut m, "walrus"), [1]);
    assert_eq!(find(&mut m, "pelican").len(), INDEX_BATCH);
    assert_eq!(m.index_pending(usize::MAX).unwrap(), 2);
    m.append(&[text("three", "walrus again")], None).unwrap();
    assert_eq!(find(&mut m, "walrus"), [1, INDEX_BATCH as u32 + 3]);
    // Expunge one indexed and one waiting body.
    let last = INDEX_BATCH as u32 + 3;
    m.store_flags(&StoreFlags {
        folder: "INBOX".into(),
        uids: UidSet::from_uids(&[1, last]),
        op: FlagOp::Add,
        flags: Flags::system(Flags::DELETED),
        unchanged_since: None,
    })
    .unwrap();
    m.expunge("INBOX", None).unwrap();
    assert_eq!(pending(&m), 0);
    assert!(find(&mut m, "walrus").is_empty());
    let in_index: i64 = m
        .conn
        .query_row(
            "SELECT count(*) FROM fts WHERE fts MATCH 'walrus'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(in_index, 0);
    assert_eq!(m.index_pending(usize::MAX).unwrap(), 0);
}

#[test]
fn names_are_checked() {
    for bad in [
        "", "a//b", "/a", "a/", "..", "a/../b", "a\0b", "a\x07", "x*", "%",
    ] {
        assert!(validate_name(bad).is_err(), "{bad:?}");
    }
    assert_eq!(validate_name("inbox/Sub").unwrap(), "INBOX/Sub");
    assert_eq!(validate_name("Работа/2026").unwrap(), "Работа/2026");
}

#[test]
fn encrypted_mail_may_grow_past_the_limit_it_was_sent_under() {
    let limits = Limits {
        max_message_bytes: 1000,
        ..Default::default()
    };
    let encrypted = |len: usize| {
        let mut m = b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n".to_vec();
        m.resize(len, b'A');
        m
    };
    let plain = |len: usize| vec![b'A'; len];
    let cases = [
        (plain(1000), true),
        (plain(1001), false),
        (encrypted(1001), true),
        (encrypted(2500 + 65_536), true),
        (encrypted(2501 + 65_536), false),
    ];
    for (message, fits) in cases {
        assert_eq!(limits.fits(&message), fits, "{} bytes", message.len());
    }
}
