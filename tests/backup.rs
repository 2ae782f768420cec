//! Mailbox backups by hand (`sealmail backup now|list|restore`) to the
//! local directory target: unchanged mailboxes are not stored twice, the
//! object is the encrypted file (no SQLite header, no canary, opens only
//! with the key), a restore brings every message back byte-identical with
//! new UIDVALIDITY values, and a running server blocks a restore.

mod common;

use common::*;
use sealmail::store::db::DbKey;
use sealmail::store::mailbox::{Limits, Mailbox};
use sealmail::store::{FetchWhat, FlagOp, Flags, Section, SectionKind, StoreFlags, UidSet};

const CANARY: &str = "BackupCanary4471";

fn backup(env: &Env, args: &[&str]) -> String {
    let mut cmd = env.bin();
    cmd.arg("backup").args(args).env("SEALMAIL_PASSWORD", "pw");
    run_ok(&mut cmd)
}

fn whole_messages(env: &Env, addr: &str) -> (u32, Vec<Vec<u8>>) {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, "pw");
    let info = block(s.select("INBOX")).unwrap();
    let what = FetchWhat {
        sections: vec![Section {
            path: vec![],
            kind: SectionKind::Whole,
        }],
        ..Default::default()
    };
    let got = block(s.fetch("INBOX", UidSet::all(), what)).unwrap();
    (
        info.status.uidvalidity,
        got.into_iter().map(|m| m.sections[0].1.clone()).collect(),
    )
}

#[test]
fn backup_list_restore() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, "pw");
        for i in 0..20 {
            let m = with_attachment(&format!("m{i}"), &format!("{CANARY} {i}"), &[i as u8; 5000]);
            block(s.append(append_req("INBOX", m))).unwrap();
        }
    }
    let (validity_before, before) = whole_messages(&env, &addr);
    assert_eq!(before.len(), 20);

    let out = backup(&env, &["now", &addr]);
    assert!(
        out.contains("backed up") && out.contains("20 messages"),
        "{out}"
    );
    let out = backup(&env, &["now", &addr]);
    assert!(out.contains("unchanged"), "{out}");

    // The object: the encrypted file, opening only with the key.
    let id = env.control().alias(&addr).unwrap().unwrap().mailbox_id;
    let dir = env.data().join("backups").join(&id);
    let objects: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let bytes = std::fs::read(&objects[0]).unwrap();
    assert!(!bytes.starts_with(b"SQLite format 3"));
    assert!(files_containing(env.data(), CANARY.as_bytes()).is_empty());
    assert!(!objects[0].to_string_lossy().contains("ann"));
    assert!(Mailbox::open(&objects[0], DbKey::Plain, Limits::default()).is_err());
    let dek = env.dek(&addr, "pw");
    let copy = env.dir.path().join("copy.sqlite");
    std::fs::copy(&objects[0], &copy).unwrap();
    Mailbox::open(&copy, DbKey::Raw(&dek), Limits::default()).unwrap();
    std::fs::remove_file(&copy).unwrap();

    // A change makes a new version; both are listed.
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, "pw");
        block(s.append(append_req("INBOX", text_message("later", "x")))).unwrap();
    }
    assert!(backup(&env, &["now", &addr]).contains("21 messages"));
    let listed = backup(&env, &["list", &addr]);
    assert_eq!(listed.lines().count(), 2, "{listed}");

    // Lose the mailbox's contents, then restore the first backup.
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, "pw");
        block(s.store_flags(StoreFlags {
            folder: "INBOX".into(),
            uids: UidSet::all(),
            op: FlagOp::Add,
            flags: Flags::system(Flags::DELETED),
            unchanged_since: None,
        }))
        .unwrap();
        block(s.expunge("INBOX", None)).unwrap();
    }
    assert_eq!(whole_messages(&env, &addr).1.len(), 0);
    let first = listed.lines().next().unwrap().split('\t').next().unwrap();
    {
        let _server = env.serve();
        let mut cmd = env.bin();
        cmd.args(["backup", "restore", &addr])
            .env("SEALMAIL_PASSWORD", "pw");
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("stop it first"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = backup(&env, &["restore", &addr, "--at", first]);
    assert!(
        out.contains("restored") && out.contains("20 messages"),
        "{out}"
    );
    let (validity_after, after) = whole_messages(&env, &addr);
    assert_eq!(after, before, "byte-identical");
    assert!(
        validity_after > validity_before,
        "no UID reuse: new UIDVALIDITY"
    );
}
