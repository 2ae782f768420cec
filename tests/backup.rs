//! Mailbox backups by hand (`sealmail backup now|list|restore`) to the
//! local directory target: unchanged mailboxes are not stored twice, the
//! object is the encrypted file (no SQLite header, no canary, opens only
//! with the key), a restore brings every message back byte-identical with
//! new UIDVALIDITY values, and a running server refuses a restore while
//! the mailbox is open and serves the restored one afterwards.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

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

/// The message count POP3's STAT reports for `addr` (password "pw").
fn pop3_stat(server: std::net::SocketAddr, addr: &str) -> usize {
    use std::io::{BufRead, BufReader, Write};
    let mut s = pop3_login(server, addr);
    s.write_all(b"STAT\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(s.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    s.write_all(b"QUIT\r\n").unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn backup_list_restore() {
    let mut env = Env::new();
    // POP3 without TLS, and keys dropped as soon as the last session ends.
    env.config.dev = true;
    env.config.key_ttl = std::time::Duration::ZERO;
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
        // A running server with a session on the mailbox: refused.
        let server = env.serve();
        let pop = pop3_login(server.pop3, &addr);
        let restore = || {
            env.bin()
                .args(["backup", "restore", &addr, "--at", first])
                .env("SEALMAIL_PASSWORD", "pw")
                .output()
                .unwrap()
        };
        let out = restore();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("in use by the running server"), "{err}");
        // Logged out (and the key gone, its time to live being 0 here):
        // the same server lets the restore through, and serves the
        // restored mailbox at the next login without a restart.
        drop(pop);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let out = loop {
            let out = restore();
            if out.status.success() || std::time::Instant::now() > deadline {
                break out;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("restored") && text.contains("20 messages"),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(pop3_stat(server.pop3, &addr), 20);
    }
    let (validity_after, after) = whole_messages(&env, &addr);
    assert_eq!(after, before, "byte-identical");
    assert!(
        validity_after > validity_before,
        "no UID reuse: new UIDVALIDITY"
    );
}

/// `sealmail backup server now|list|restore`: the control database (under
/// the server key) and the sealed spool, unchanged state not stored twice,
/// imported spool files dropped once a mailbox backup holds them, and a
/// lost control database and spool put back.
#[test]
fn control_database_and_spool_backups() {
    let env = Env::new();
    let ann = env.alias("ann", "pw");
    env.alias("bob", "pw");
    // Mail for ann while she is away: sealed into the spool.
    {
        let (_b, store) = env.store();
        block(store.deliver(&ann, text_message("away", CANARY))).unwrap();
    }
    let server = |args: &[&str]| {
        let mut cmd = env.bin();
        cmd.args(["backup", "server"]).args(args);
        run_ok(&mut cmd)
    };
    let out = server(&["now"]);
    assert!(
        out.contains("backed up the control database: 2 aliases"),
        "{out}"
    );
    assert!(out.contains("spool: 1 files uploaded"), "{out}");
    let out = server(&["now"]);
    assert!(out.contains("unchanged"), "{out}");
    assert!(out.contains("spool: 0 files uploaded, 0"), "{out}");
    assert_eq!(server(&["list"]).lines().count(), 1);
    // Encrypted: no SQLite header, no address, no mail text.
    let backups = env.data().join("backups");
    let control: Vec<_> = std::fs::read_dir(backups.join("control"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .collect();
    let bytes = std::fs::read(&control[0]).unwrap();
    assert!(!bytes.starts_with(b"SQLite format 3"));
    assert!(!bytes.windows(ann.len()).any(|w| w == ann.as_bytes()));
    assert!(files_containing(&backups, CANARY.as_bytes()).is_empty());

    // The data directory loses its control database and spool.
    std::fs::remove_file(env.data().join("control.sqlite")).unwrap();
    for s in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(env.data().join(format!("control.sqlite{s}")));
    }
    std::fs::remove_dir_all(env.data().join("spool")).unwrap();
    let out = server(&["restore"]);
    assert!(
        out.contains("2 aliases") && out.contains("1 spooled messages put back"),
        "{out}"
    );
    // Ann logs in: her password works again and the mail is imported.
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &ann, "pw");
        assert_eq!(block(s.status("INBOX")).unwrap().messages, 1);
    }
    // Once a mailbox backup holds it, the spool object goes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(backup(&env, &["now", &ann]).contains("backed up"));
    let out = server(&["now"]);
    assert!(
        out.contains("0 files uploaded, 1 no longer needed"),
        "{out}"
    );
}

/// How many messages `addr`'s INBOX holds, opened with `password`.
fn inbox_count(env: &Env, addr: &str, password: &str) -> usize {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, password);
    block(s.select("INBOX")).unwrap().status.messages as usize
}

/// A password change rewraps the mailbox's data key and keeps it, so the
/// current password restores every backup of the mailbox, those taken
/// under earlier passwords included; an earlier password is refused.
#[test]
fn every_backup_restores_with_the_current_password_after_changes() {
    let env = Env::new();
    let addr = env.alias("bo", "pw-one");
    let run = |args: &[&str], password: &str| {
        let mut cmd = env.bin();
        cmd.arg("backup")
            .args(args)
            .env("SEALMAIL_PASSWORD", password);
        cmd.output().unwrap()
    };
    let append = |password: &str, n: usize| {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, password);
        for i in 0..n {
            block(s.append(append_req("INBOX", text_message(&format!("m{i}"), "x")))).unwrap();
        }
    };
    let change = |old: &str, new: &str| {
        env.control()
            .change_password(&addr, old, new, env.config.kdf)
            .unwrap();
    };
    append("pw-one", 3);
    assert!(run(&["now", &addr], "pw-one").status.success());
    change("pw-one", "pw-two");
    append("pw-two", 1);
    // Backup versions are named by the second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(run(&["now", &addr], "pw-two").status.success());
    change("pw-two", "pw-three");

    let listed = String::from_utf8(run(&["list", &addr], "").stdout).unwrap();
    let versions: Vec<&str> = listed
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(versions.len(), 2, "{listed}");
    for (version, expected) in [(versions[0], 3), (versions[1], 4), (versions[0], 3)] {
        let out = run(&["restore", &addr, "--at", version], "pw-three");
        assert!(
            out.status.success(),
            "restore {version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(inbox_count(&env, &addr, "pw-three"), expected);
    }
    // After a disk loss, into a data directory without `mailboxes/`: a
    // login does not make an empty mailbox in place of the lost one.
    std::fs::remove_dir_all(env.data().join("mailboxes")).unwrap();
    {
        let (_b, store) = env.store();
        let err = block(store.unlock(&addr, "pw-three"))
            .map(drop)
            .unwrap_err();
        assert!(
            err.to_string().contains("missing, though it was backed up"),
            "{err}"
        );
    }
    assert!(
        !env.data()
            .join("mailboxes")
            .read_dir()
            .unwrap()
            .any(|e| { e.unwrap().path().extension().is_some_and(|x| x == "sqlite") })
    );
    let out = run(&["restore", &addr, "--at", versions[1]], "pw-three");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(inbox_count(&env, &addr, "pw-three"), 4);
    for old in ["pw-one", "pw-two"] {
        let out = run(&["restore", &addr, "--at", versions[0]], old);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("current password"), "{err}");
    }
}

/// The manifests of `mailbox_id` in the directory target, oldest first.
fn manifests(env: &Env, mailbox_id: &str) -> Vec<serde_json::Value> {
    let dir = env.data().join("backups").join(mailbox_id);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    names.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|e| e == "json"));
    names.sort();
    names
        .iter()
        .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
        .collect()
}

/// Mailboxes whose owners never log in are backed up on schedule too: the
/// server copies the encrypted file it has closed, without a key (the
/// same bytes, not stored again while nothing changes), and checks the
/// copy with the key at the owner's next login. A copy that fails that
/// check is marked bad and replaced.
#[test]
fn mailboxes_of_owners_who_stay_away_are_backed_up_and_checked_at_login() {
    let mut env = Env::new();
    env.config.dev = true;
    env.config.key_ttl = std::time::Duration::ZERO;
    env.config.backup_policy = Some(sealmail::backup::scheduler::Policy {
        interval: std::time::Duration::from_secs(2),
        keep_daily: 7,
        keep_weekly: 4,
        concurrency: 2,
    });
    let (away, damaged) = (env.alias("away", "pw"), env.alias("damaged", "pw"));
    let never = env.alias("never", "pw");
    {
        let (_b, store) = env.store();
        for (addr, n) in [(&away, 5), (&damaged, 2)] {
            let s = unlock(&store, addr, "pw");
            for i in 0..n {
                let m = text_message(&format!("m{i}"), &format!("{CANARY} {i}"));
                block(s.append(append_req("INBOX", m))).unwrap();
            }
        }
    }
    let id = |addr: &str| env.control().alias(addr).unwrap().unwrap().mailbox_id;
    let (away_id, damaged_id, never_id) = (id(&away), id(&damaged), id(&never));
    let server = env.serve();
    wait_for("backups without the key", || {
        manifests(&env, &away_id).len() == 1 && manifests(&env, &damaged_id).len() == 1
    });
    let first = &manifests(&env, &away_id)[0];
    assert_eq!(first["verified"], false, "{first}");
    assert_eq!(first["messages"], 0);
    // The object is the closed file, byte for byte.
    let live = env
        .data()
        .join("mailboxes")
        .join(format!("{away_id}.sqlite"));
    let object = env.data().join("backups").join(&away_id).join(format!(
        "{:012}.sqlite",
        first["created_at"].as_i64().unwrap()
    ));
    assert_eq!(
        std::fs::read(&object).unwrap(),
        std::fs::read(&live).unwrap()
    );
    assert!(files_containing(&env.data().join("backups"), CANARY.as_bytes()).is_empty());
    let listed = backup(&env, &["list", &away]);
    assert!(
        listed.contains("copied while its owner was away"),
        "{listed}"
    );
    // No file yet, nothing to back up.
    assert!(manifests(&env, &never_id).is_empty());
    // Unchanged over several more passes: not stored again.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(manifests(&env, &away_id).len(), 1);

    // The copy of `damaged` loses bytes in the target.
    let damaged_first = manifests(&env, &damaged_id)[0].clone();
    let damaged_object = env.data().join("backups").join(&damaged_id).join(format!(
        "{:012}.sqlite",
        damaged_first["created_at"].as_i64().unwrap()
    ));
    let mut bytes = std::fs::read(&damaged_object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&damaged_object, bytes).unwrap();

    // The owners log in: each newest copy is checked with the key.
    let a = pop3_login(server.pop3, &away);
    let d = pop3_login(server.pop3, &damaged);
    // The damaged copy fails its check and a new backup replaces it
    // (retention keeps one per day).
    let replaced = |all: &[serde_json::Value]| {
        all.len() == 1 && all[0]["created_at"] != damaged_first["created_at"]
    };
    wait_for("the check at login", || {
        manifests(&env, &away_id)[0]["verified"] == true && replaced(&manifests(&env, &damaged_id))
    });
    let checked = manifests(&env, &away_id);
    assert_eq!(checked.len(), 1, "verified in place, not stored again");
    assert_eq!(checked[0]["messages"], 5);
    let damaged_all = manifests(&env, &damaged_id);
    assert_eq!(damaged_all[0]["verified"], true);
    assert_eq!(damaged_all[0]["messages"], 2);
    drop((a, d));
    drop(server);

    // Both restore with the password.
    let at = |m: &serde_json::Value| m["created"].as_str().unwrap().to_string();
    let out = backup(&env, &["restore", &away, "--at", &at(&checked[0])]);
    assert!(out.contains("5 messages"), "{out}");
    let out = backup(&env, &["restore", &damaged]);
    assert!(out.contains("2 messages"), "{out}");
    assert_eq!(inbox_count(&env, &damaged, "pw"), 2);
}

/// After a disk loss, from a backup directory: see
/// [`common::disaster::whole_server_restore`].
#[test]
fn the_whole_server_comes_back_after_a_disk_loss() {
    let env = Env::new();
    let backups = env.data().join("backups");
    common::disaster::whole_server_restore(&env, &backups, &|_: &Env| {});
}
