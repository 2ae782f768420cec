//! Attachments are stored once per SHA-256 and freed with their last
//! message; COPY shares bodies.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use common::*;
use sealmail::store::db::{self, DbKey};
use sealmail::store::{FetchWhat, FlagOp, Flags, Section, SectionKind, StoreFlags, UidSet};

fn counts(env: &Env, addr: &str) -> (i64, i64, i64) {
    let key = env.dek(addr, "pw");
    let conn = db::open(&env.mailbox_path(addr), DbKey::Raw(&key)).unwrap();
    conn.query_row(
        "SELECT (SELECT count(*) FROM attachments), (SELECT ifnull(sum(refcount), 0) FROM attachments), (SELECT count(*) FROM bodies)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

fn delete(s: &sealmail::store::Session, uid: u32) {
    block(s.store_flags(StoreFlags {
        folder: "INBOX".into(),
        uids: UidSet::range(uid, uid),
        op: FlagOp::Add,
        flags: Flags::system(Flags::DELETED),
        unchanged_since: None,
    }))
    .unwrap();
    assert_eq!(block(s.expunge("INBOX", None)).unwrap(), vec![uid]);
}

#[test]
fn same_attachment_is_stored_once_and_freed_with_the_last_message() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let blob: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut originals = Vec::new();
    for i in 0..3 {
        let m = with_attachment(&format!("report {i}"), &format!("text {i}"), &blob);
        originals.push(m.clone());
        block(s.append(append_req("INBOX", m))).unwrap();
    }
    assert_eq!(counts(&env, &addr), (1, 3, 3));
    // Reassembly gives back the exact bytes, and the part alone.
    let what = FetchWhat {
        sections: vec![
            Section {
                path: vec![],
                kind: SectionKind::Whole,
            },
            Section {
                path: vec![2],
                kind: SectionKind::Whole,
            },
        ],
        ..Default::default()
    };
    let got = block(s.fetch("INBOX", UidSet::all(), what)).unwrap();
    for (m, orig) in got.iter().zip(&originals) {
        assert_eq!(&m.sections[0].1, orig);
        assert_eq!(m.sections[1].1, blob);
    }
    delete(&s, 1);
    delete(&s, 2);
    assert_eq!(counts(&env, &addr), (1, 1, 1));
    delete(&s, 3);
    assert_eq!(counts(&env, &addr), (0, 0, 0));
}

#[test]
fn copy_shares_the_body_until_both_are_gone() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let blob = vec![7u8; 10_000];
    block(s.append(append_req("INBOX", with_attachment("a", "b", &blob)))).unwrap();
    let c = block(s.copy("INBOX", UidSet::all(), "Archive")).unwrap();
    assert_eq!((c.source.clone(), c.dest.clone()), (vec![1], vec![1]));
    assert_eq!(counts(&env, &addr), (1, 1, 1));
    delete(&s, 1);
    assert_eq!(counts(&env, &addr), (1, 1, 1));
    let moved = block(s.move_messages("Archive", UidSet::all(), "Trash")).unwrap();
    assert_eq!(moved.dest, vec![1]);
    assert_eq!(counts(&env, &addr), (1, 1, 1));
}
