//! The storage interface as a protocol session uses it: folders, flags with
//! UNCHANGEDSINCE, copy/move/expunge, QRESYNC changes, change events, fetch
//! of envelope/structure/sections, quota, and bad input.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::time::Duration;

use common::*;
use sealmail::store::{
    Change, Criteria, FetchWhat, FlagOp, Flags, Section, SectionKind, StoreError, StoreFlags,
    UidSet,
};

fn flags(uids: UidSet, op: FlagOp, bits: u8, unchanged_since: Option<u64>) -> StoreFlags {
    StoreFlags {
        folder: "INBOX".into(),
        uids,
        op,
        flags: Flags::system(bits),
        unchanged_since,
    }
}

#[test]
fn folders_create_rename_delete_as_users_expect() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let names: Vec<String> = block(s.list_folders())
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(
        names,
        ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
    );
    let specials: Vec<Option<String>> = block(s.list_folders())
        .unwrap()
        .into_iter()
        .map(|f| f.special_use)
        .collect();
    assert_eq!(specials[0], None);
    assert_eq!(specials[4].as_deref(), Some("\\Sent"));

    block(s.create_folder("Work/2026/Q1")).unwrap();
    assert!(block(s.status("Work/2026")).is_ok(), "parents are created");
    assert_eq!(
        block(s.create_folder("Work")).err(),
        Some(StoreError::FolderExists("Work".into()))
    );
    block(s.append(append_req("Work/2026/Q1", text_message("q1", "x")))).unwrap();
    block(s.rename_folder("Work", "Jobs")).unwrap();
    assert_eq!(block(s.status("Jobs/2026/Q1")).unwrap().messages, 1);
    assert!(matches!(
        block(s.status("Work/2026/Q1")),
        Err(StoreError::NoSuchFolder(_))
    ));
    assert!(matches!(
        block(s.delete_folder("Jobs")),
        Err(StoreError::HasChildren(_))
    ));
    assert!(matches!(
        block(s.delete_folder("INBOX")),
        Err(StoreError::Protected(..))
    ));
    assert!(matches!(
        block(s.delete_folder("Trash")),
        Err(StoreError::Protected(..))
    ));
    assert!(matches!(
        block(s.rename_folder("Jobs", "Jobs/Inner")),
        Err(StoreError::BadName(..))
    ));

    // Delete and re-create: a new UIDVALIDITY, so old UIDs are never reused.
    let before = block(s.status("Jobs/2026/Q1")).unwrap();
    block(s.delete_folder("Jobs/2026/Q1")).unwrap();
    block(s.create_folder("Jobs/2026/Q1")).unwrap();
    let after = block(s.status("Jobs/2026/Q1")).unwrap();
    assert!(
        after.uidvalidity > before.uidvalidity,
        "{before:?} {after:?}"
    );

    // INBOX rename moves its mail and leaves INBOX empty, UIDNEXT kept.
    block(s.append(append_req("inbox", text_message("in", "x")))).unwrap();
    block(s.rename_folder("INBOX", "Old")).unwrap();
    assert_eq!(block(s.status("Old")).unwrap().messages, 1);
    let inbox = block(s.status("INBOX")).unwrap();
    assert_eq!((inbox.messages, inbox.uidnext), (0, 2));

    for bad in ["", "a//b", "../x", "x/..", "a\0b", "bell\x07", "*", "/abs"] {
        assert!(
            matches!(block(s.create_folder(bad)), Err(StoreError::BadName(..))),
            "{bad:?}"
        );
    }
    block(s.subscribe_folder("Old", false)).unwrap();
    let old = block(s.list_folders())
        .unwrap()
        .into_iter()
        .find(|f| f.name == "Old")
        .unwrap();
    assert!(!old.subscribed);
}

#[test]
fn flags_with_unchangedsince_and_qresync_changes() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    for i in 0..5 {
        block(s.append(append_req("INBOX", text_message(&format!("m{i}"), "x")))).unwrap();
    }
    let sel = block(s.select("INBOX")).unwrap();
    assert_eq!(sel.uids, vec![1, 2, 3, 4, 5]);
    assert_eq!(sel.first_unseen, Some(1));
    let base = sel.status.highestmodseq;

    let r =
        block(s.store_flags(flags(UidSet::range(1, 2), FlagOp::Add, Flags::SEEN, None))).unwrap();
    assert_eq!(r.updated.len(), 2);
    let m1 = r.updated[0].modseq;
    assert!(m1 > base);
    // Unchanged since an older modseq: refused for 1 and 2, applied to 3.
    let r = block(s.store_flags(flags(
        UidSet::range(1, 3),
        FlagOp::Add,
        Flags::FLAGGED,
        Some(base),
    )))
    .unwrap();
    assert_eq!(r.modified, vec![1, 2]);
    assert_eq!(
        r.updated.iter().map(|m| m.meta_uid()).collect::<Vec<_>>(),
        vec![3]
    );
    // Setting what is already set changes nothing (no new modseq).
    let r =
        block(s.store_flags(flags(UidSet::range(1, 1), FlagOp::Add, Flags::SEEN, None))).unwrap();
    assert!(r.updated.is_empty());

    block(s.store_flags(flags(
        UidSet::range(4, 5),
        FlagOp::Replace,
        Flags::DELETED,
        None,
    )))
    .unwrap();
    assert_eq!(
        block(s.expunge("INBOX", Some(UidSet::range(5, 5)))).unwrap(),
        vec![5]
    );
    let changes = block(s.changes_since("INBOX", m1)).unwrap();
    assert_eq!(changes.vanished, vec![5]);
    assert_eq!(
        changes.changed.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(
        changes.highestmodseq,
        block(s.status("INBOX")).unwrap().highestmodseq
    );
    let found = block(s.search("INBOX", Criteria::ModSeq(m1 + 1))).unwrap();
    assert_eq!(found.uids, vec![3, 4]);
    assert_eq!(found.highest_modseq, Some(changes.highestmodseq - 1));

    // Keywords: added, listed by SELECT, searched case-insensitively.
    let mut kw = flags(UidSet::range(1, 1), FlagOp::Add, 0, None);
    kw.flags.keywords = vec!["$Label1".into()];
    block(s.store_flags(kw)).unwrap();
    assert_eq!(
        block(s.select("INBOX")).unwrap().keywords,
        vec!["$Label1".to_string()]
    );
    assert_eq!(
        block(s.search("INBOX", Criteria::Keyword("$label1".into(), true)))
            .unwrap()
            .uids,
        vec![1]
    );
    let mut bad = flags(UidSet::range(1, 1), FlagOp::Add, 0, None);
    bad.flags.keywords = vec!["has space".into()];
    assert!(matches!(
        block(s.store_flags(bad)),
        Err(StoreError::BadMessage(_))
    ));
}

trait MetaUid {
    fn meta_uid(&self) -> u32;
}

impl MetaUid for sealmail::store::MessageMeta {
    fn meta_uid(&self) -> u32 {
        self.uid
    }
}

#[test]
fn huge_uid_ranges_are_not_expanded() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    block(s.append(append_req("INBOX", text_message("a", "b")))).unwrap();
    let got = block(s.fetch("INBOX", UidSet::range(1, u32::MAX), FetchWhat::default())).unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        block(s.fetch(
            "INBOX",
            UidSet::range(7, 4_000_000_000),
            FetchWhat::default()
        ))
        .unwrap()
        .is_empty()
    );
}

#[test]
fn another_session_sees_changes_as_events() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let watcher = unlock(&store, &addr, "pw");
    let events = watcher.subscribe().unwrap();
    let writer = unlock(&store, &addr, "pw");
    block(writer.append(append_req("INBOX", text_message("new", "x")))).unwrap();
    block(store.deliver(&addr, text_message("delivered", "y"))).unwrap();
    block(writer.store_flags(flags(
        UidSet::range(1, 1),
        FlagOp::Add,
        Flags::DELETED,
        None,
    )))
    .unwrap();
    block(writer.expunge("INBOX", None)).unwrap();
    let mut got = Vec::new();
    block(async {
        for _ in 0..4 {
            let e = futures_lite::future::or(async { events.recv().await.ok() }, async {
                smol::Timer::after(Duration::from_secs(1)).await;
                None
            })
            .await;
            got.push(e.expect("event within 1 s"));
        }
    });
    assert_eq!(
        got[0],
        Change::Exists {
            folder: "INBOX".into(),
            uid: 1
        }
    );
    assert_eq!(
        got[1],
        Change::Exists {
            folder: "INBOX".into(),
            uid: 2
        }
    );
    assert!(
        matches!(&got[2], Change::Flags { meta, .. } if meta.uid == 1 && meta.flags.has(Flags::DELETED))
    );
    assert_eq!(
        got[3],
        Change::Expunged {
            folder: "INBOX".into(),
            uids: vec![1]
        }
    );
}

#[test]
fn fetch_envelope_structure_and_sections() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let m = with_attachment("Quarterly", "see attached", &[b'z'; 3000]);
    block(s.append(append_req("INBOX", m.clone()))).unwrap();
    let what = FetchWhat {
        envelope: true,
        structure: true,
        sections: vec![
            Section {
                path: vec![],
                kind: SectionKind::Header,
            },
            Section {
                path: vec![1],
                kind: SectionKind::Whole,
            },
            Section {
                path: vec![2],
                kind: SectionKind::Mime,
            },
            Section {
                path: vec![9],
                kind: SectionKind::Whole,
            },
            Section {
                path: vec![],
                kind: SectionKind::Whole,
            },
        ],
        ..Default::default()
    };
    let got = block(s.fetch("INBOX", UidSet::all(), what))
        .unwrap()
        .remove(0);
    let env_ = got.envelope.unwrap();
    assert_eq!(env_.subject.as_deref(), Some("Quarterly"));
    assert_eq!(env_.from[0].mailbox.as_deref(), Some("ann"));
    let st = got.structure.unwrap();
    assert_eq!(
        (st.mime_type.as_str(), st.subtype.as_str()),
        ("multipart", "mixed")
    );
    assert_eq!(st.children[1].disposition.as_ref().unwrap().0, "attachment");
    assert!(got.sections[0].1.starts_with(b"From: ann@example.net\r\n"));
    assert!(got.sections[0].1.ends_with(b"\r\n\r\n"));
    assert_eq!(got.sections[1].1, b"see attached");
    assert!(
        got.sections[2]
            .1
            .starts_with(b"Content-Type: application/octet-stream")
    );
    assert!(got.sections[3].1.is_empty(), "a missing part is empty");
    assert_eq!(got.sections[4].1, m);
    assert_eq!(got.meta.size, m.len() as u64);
}

#[test]
fn quota_refuses_what_does_not_fit() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    env.control().set_quota(&addr, Some(1000)).unwrap();
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    block(s.append(append_req("INBOX", text_message("small", "x")))).unwrap();
    let big = text_message("big", &"y".repeat(2000));
    assert_eq!(
        block(s.append(append_req("INBOX", big.clone()))).err(),
        Some(StoreError::OverQuota)
    );
    assert_eq!(
        block(store.deliver(&addr, big)).err(),
        Some(StoreError::OverQuota)
    );
    assert!(StoreError::OverQuota.is_temporary());
    let q = block(s.quota()).unwrap();
    assert_eq!((q.messages, q.limit_bytes), (1, Some(1000)));
}

/// Many senders deliver at once to an owner who is logged in (their
/// deliveries are committed together). Checked against a model: every
/// delivery answered with a UID is in INBOX under that UID, with no gaps;
/// each sender's messages get UIDs in the order it sent them; the quota
/// holds per message, exactly as if each had come alone; every stored
/// message is announced to the owner's session.
#[test]
fn concurrent_deliveries_to_an_open_mailbox_match_a_model() {
    use sealmail::store::Delivery;
    use std::collections::BTreeMap;
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (senders, each, room) = (10, 20, 150);
    let body = "z".repeat(900);
    // Subjects of one length: every message has the same size.
    let size = text_message("m-0-00", &body).len() as u64;
    env.control()
        .set_quota(&addr, Some(room * size + size / 2))
        .unwrap();
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let events = s.subscribe().unwrap();
    let results: Vec<Vec<(String, Result<Delivery, StoreError>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..senders)
            .map(|t| {
                let (store, addr, body) = (store.clone(), addr.clone(), body.clone());
                scope.spawn(move || {
                    (0..each)
                        .map(|i| {
                            let subject = format!("m-{t}-{i:02}");
                            let r = block(store.deliver(&addr, text_message(&subject, &body)));
                            (subject, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut model: BTreeMap<u32, String> = BTreeMap::new();
    let mut refused = 0;
    for sender in &results {
        let mut last = 0;
        for (subject, r) in sender {
            match r {
                Ok(Delivery::Inbox { uid }) => {
                    assert!(*uid > last, "{subject}: UID {uid} after {last}");
                    last = *uid;
                    assert!(
                        model.insert(*uid, subject.clone()).is_none(),
                        "UID {uid} twice"
                    );
                }
                Err(StoreError::OverQuota) => refused += 1,
                other => panic!("{subject}: {other:?}"),
            }
        }
    }
    assert_eq!(model.len() as u64, room, "exactly what fits is stored");
    assert_eq!(refused, senders * each - room as usize);
    assert_eq!(
        model.keys().copied().collect::<Vec<_>>(),
        (1..=room as u32).collect::<Vec<_>>(),
        "UIDs without gaps"
    );
    let what = FetchWhat {
        envelope: true,
        ..Default::default()
    };
    let stored = block(s.fetch("INBOX", UidSet::all(), what)).unwrap();
    assert_eq!(stored.len(), model.len());
    for m in &stored {
        let subject = m.envelope.as_ref().unwrap().subject.clone().unwrap();
        assert_eq!(Some(&subject), model.get(&m.meta.uid), "UID {}", m.meta.uid);
    }
    let mut announced = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let Change::Exists { uid, .. } = e {
            announced.push(uid);
        }
    }
    announced.sort_unstable();
    assert_eq!(announced, model.keys().copied().collect::<Vec<_>>());
}

#[test]
fn bad_input_is_stored_or_refused_never_a_panic() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let mut deep = Vec::new();
    for i in 0..10_000 {
        deep.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n")
                .as_bytes(),
        );
    }
    deep.extend_from_slice(b"\r\nbottom\r\n");
    let mut many = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n".to_vec();
    for _ in 0..100_000 {
        many.extend_from_slice(b"--x\r\n\r\na\r\n");
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no header", b"just a body".to_vec()),
        ("empty", Vec::new()),
        ("broken base64", b"Subject: b\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not*base64@@@\r\n".to_vec()),
        ("broken qp", b"Subject: q\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=4\r\n".to_vec()),
        ("broken 2047", b"Subject: =?utf-8?b?!!!?= =?bogus?q?x?= =?utf-8?q?=FF?=\r\n\r\nx".to_vec()),
        ("invalid utf-8", b"Subject: \xff\xfe\xc3\r\nFrom: \x80 <a@b>\r\n\r\n\xff body".to_vec()),
        ("unterminated multipart", b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nno end".to_vec()),
        ("no boundary", b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhi".to_vec()),
        ("nul bytes", b"Subject: a\0b\r\n\r\n\0\0\0".to_vec()),
        ("deep nesting", deep),
    ];
    for (name, raw) in cases {
        let uid = block(s.append(append_req("INBOX", raw.clone())))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let what = FetchWhat {
            envelope: true,
            structure: true,
            sections: vec![Section {
                path: vec![],
                kind: SectionKind::Whole,
            }],
            ..Default::default()
        };
        let got = block(s.fetch("INBOX", UidSet::range(uid.uid, uid.uid), what)).unwrap();
        assert_eq!(got[0].sections[0].1, raw, "{name}: stored exactly");
    }
    assert_eq!(
        block(s.append(append_req("INBOX", many))).err(),
        Some(StoreError::BadMessage(
            "message has more than 1000 MIME parts".into()
        ))
    );
    let too_big = vec![b'a'; (env.config.limits.max_message_bytes + 1) as usize];
    assert!(matches!(
        block(s.append(append_req("INBOX", too_big))),
        Err(StoreError::TooBig(_))
    ));
    let found = block(s.search("INBOX", Criteria::Text("bottom".into()))).unwrap();
    assert!(
        found.uids.is_empty(),
        "text below the depth limit is kept but not indexed"
    );
    let mut nested = Criteria::All;
    for _ in 0..1000 {
        nested = Criteria::Not(Box::new(nested));
    }
    assert!(matches!(
        block(s.search("INBOX", nested)),
        Err(StoreError::BadMessage(_))
    ));
}

#[test]
fn key_stays_cached_after_the_last_session_closes() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (backend, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    assert_eq!(backend.open_mailboxes(), 1);
    drop(s);
    // The key stays cached for its time to live (15 minutes by default).
    assert_eq!(backend.open_mailboxes(), 1);
    let d = block(store.deliver(&addr, text_message("while away", "x"))).unwrap();
    assert!(matches!(d, sealmail::store::Delivery::Inbox { .. }));
}

#[test]
fn key_expires_and_mail_is_sealed_again() {
    let mut env = Env::new();
    env.config.key_ttl = Duration::from_secs(0);
    let addr = env.alias("ann", "pw");
    let (backend, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    drop(s);
    assert_eq!(backend.open_mailboxes(), 0, "file closed with the key");
    let d = block(store.deliver(&addr, text_message("while away", "x"))).unwrap();
    assert_eq!(d, sealmail::store::Delivery::Sealed);
    let (s, imported) = unlock_imported(&store, &addr, "pw");
    assert_eq!(imported, 1);
    assert_eq!(
        block(s.search("INBOX", Criteria::Subject("while away".into())))
            .unwrap()
            .uids,
        vec![1]
    );
    assert_eq!(block(s.list_folders()).err(), None);
    drop(s);
    assert!(matches!(
        block(store.deliver("nobody@example.org", vec![])),
        Err(StoreError::NoSuchAddress)
    ));
}

/// `limits.open_mailboxes` bounds the files kept open for owners who have
/// logged out: past it, the one used longest ago closes, its key stays
/// cached, and mail for it still goes straight into INBOX (the file opens
/// again). A file a session uses is never closed for the bound.
#[test]
fn open_mailboxes_beyond_the_limit_close_least_recently_used_first() {
    use sealmail::store::{Delivery, FolderStatus};
    let mut env = Env::new();
    env.config.open_mailboxes = 2;
    let owners: Vec<String> = ["ann", "bob", "cat"]
        .iter()
        .map(|n| env.alias(n, "pw"))
        .collect();
    let (backend, store) = env.store();
    for (i, addr) in owners.iter().enumerate() {
        drop(unlock(&store, addr, "pw"));
        assert_eq!(backend.open_mailboxes(), (i + 1).min(2));
    }
    // ann's file was used longest ago and was closed; her key was not.
    for addr in &owners {
        let d = block(store.deliver(addr, text_message("for you", "x"))).unwrap();
        assert!(matches!(d, Delivery::Inbox { uid: 1 }), "{addr}: {d:?}");
        assert!(backend.open_mailboxes() <= 2);
    }
    // Three sessions at once: none of their files closes, bound or not.
    let sessions: Vec<_> = owners.iter().map(|a| unlock(&store, a, "pw")).collect();
    assert_eq!(backend.open_mailboxes(), 3);
    for s in &sessions {
        let st: FolderStatus = block(s.status("INBOX")).unwrap();
        assert_eq!(st.messages, 1);
    }
    drop(sessions);
    let d = block(store.deliver(&owners[0], text_message("again", "y"))).unwrap();
    assert!(matches!(d, Delivery::Inbox { uid: 2 }), "{d:?}");
    assert!(backend.open_mailboxes() <= 3);
}

/// The mailbox files this process has open under `dir`.
fn open_files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Dropping the store returns only once every mailbox file is closed,
/// even with a job still running for a session that just ended (the
/// process may exit right after, and SQLCipher must not be mid-close).
#[test]
fn dropping_the_store_closes_every_file_before_it_returns() {
    let env = Env::new();
    let dir = env.data().join("mailboxes").canonicalize().unwrap();
    for round in 0..20 {
        let addr = env.alias(&format!("u{round}"), "pw");
        let (backend, store) = env.store();
        let s = unlock(&store, &addr, "pw");
        block(store.deliver(&addr, text_message("kept", "x"))).unwrap();
        // The last session ending gives the cache back in the background.
        drop(s);
        drop(store);
        drop(backend);
        let open = open_files_under(&dir);
        assert!(open.is_empty(), "round {round}: still open: {open:?}");
    }
}

/// FETCH and STATUS read the last commit while a write holds the mailbox
/// (here: the lock a backup snapshot takes), and see a commit as soon as it
/// is made.
#[test]
fn reads_do_not_wait_for_the_mailbox_lock() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (backend, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    for i in 0..3 {
        block(s.append(append_req("INBOX", text_message(&format!("m{i}"), "x")))).unwrap();
    }
    let open = backend.open_with_keys();
    assert_eq!(open.len(), 1);
    let writer = open[0].mailbox.clone();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _guard = writer.lock().unwrap();
        held_tx.send(()).unwrap();
        // Released when the reads are done, or after a minute at most.
        done_rx.recv_timeout(Duration::from_secs(60)).is_ok()
    });
    held_rx.recv().unwrap();
    let what = FetchWhat {
        envelope: true,
        ..Default::default()
    };
    let fetched = block(s.fetch("INBOX", UidSet::range(1, 3), what)).unwrap();
    assert_eq!(fetched.len(), 3);
    let fetched = block(s.fetch("INBOX", UidSet::range(2, 2), FetchWhat::default())).unwrap();
    assert_eq!(fetched[0].meta.uid, 2);
    assert_eq!(block(s.status("INBOX")).unwrap().messages, 3);
    done_tx.send(()).unwrap();
    assert!(
        holder.join().unwrap(),
        "the reads waited for the writer's lock"
    );
    // A commit is seen by the next read.
    block(s.append(append_req("INBOX", text_message("m3", "x")))).unwrap();
    assert_eq!(block(s.status("INBOX")).unwrap().messages, 4);
}

/// Mail delivered to an owner who is logged in is stored first and added
/// to the search index once deliveries pause: SEARCH finds it at once (by
/// its stored text), and the index has it afterwards, all but fewer than
/// `INDEX_BATCH`.
#[test]
fn delivered_mail_is_indexed_once_deliveries_pause() {
    use sealmail::store::Delivery;
    use sealmail::store::mailbox::INDEX_BATCH;
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let n = 2 * INDEX_BATCH + 40;
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (store, addr) = (store.clone(), addr.clone());
            scope.spawn(move || {
                for i in (t..n).step_by(4) {
                    let m = text_message(&format!("flood {i}"), "a pelican among the mail");
                    let d = block(store.deliver(&addr, m)).unwrap();
                    assert!(matches!(d, Delivery::Inbox { .. }), "{d:?}");
                }
            });
        }
    });
    assert_eq!(
        body_hits(&s, "pelican among"),
        n,
        "found before the index has it"
    );
    let mut file = env.mailbox_file(&addr, "pw");
    wait_for_index(&mut file, INDEX_BATCH);
    let indexed = count(
        &mut file,
        "SELECT count(*) FROM fts WHERE fts MATCH '\"pelican among\"'",
    );
    assert!(indexed >= n - INDEX_BATCH, "{indexed} of {n} in the index");
    assert_eq!(
        body_hits(&s, "pelican among"),
        n,
        "found through the index too"
    );
}

/// A cluster secondary's shipment sent again (its answer was lost, the
/// primary restarted meanwhile) is placed once: the key is remembered in
/// the control database, not only in memory.
#[test]
fn a_shipment_sent_again_after_a_restart_is_placed_once() {
    use sealmail::store::{Backend, Request, Response};
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let public = env
        .control()
        .alias(&addr)
        .unwrap()
        .unwrap()
        .public_key
        .unwrap();
    let sealed = sealmail::store::seal(
        &public,
        b"Subject: shipped\r\n\r\nonce\r\n",
        &Default::default(),
    )
    .unwrap();
    let ship = |key: [u8; 16]| {
        let (backend, _) = env.store();
        let r = block(backend.call(Request::DeliverSealed {
            address: addr.clone(),
            sealed: sealed.clone(),
            shipment: key,
        }));
        assert!(matches!(r, Ok(Response::Delivered(_))), "{r:?}");
    };
    ship([7; 16]);
    ship([7; 16]);
    ship([8; 16]);
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    block(s.settle()).unwrap();
    assert_eq!(block(s.status("INBOX")).unwrap().messages, 2);
}
