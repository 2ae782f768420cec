//! The disaster-recovery scenario, run against each backup target: a
//! server with mail, folders, flags and sealed mail loses its disk; a data
//! directory made by `init`, the lost server's key, and `backup server
//! restore` bring it back, and each owner finds their mail at login under
//! new UIDVALIDITY values.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use sealmail::store::{FetchWhat, Section, SectionKind, UidSet};

const CANARY: &str = "DisasterCanary5150";

/// Folder → sorted (subject line, flags) of a mailbox (password "pw"),
/// after its sealed mail came in, and its INBOX's UIDVALIDITY.
pub fn snapshot_of(env: &Env, addr: &str) -> (BTreeMap<String, Vec<(String, u8)>>, u32) {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, "pw");
    block(s.settle()).unwrap();
    let mut out = BTreeMap::new();
    let mut validity = 0;
    for f in block(s.list_folders()).unwrap() {
        if f.nonexistent {
            continue;
        }
        let info = block(s.select(&f.name)).unwrap();
        if f.name == "INBOX" {
            validity = info.status.uidvalidity;
        }
        let what = FetchWhat {
            sections: vec![Section {
                path: vec![],
                kind: SectionKind::Whole,
            }],
            ..Default::default()
        };
        let mut all: Vec<(String, u8)> = block(s.fetch(&f.name, UidSet::all(), what))
            .unwrap()
            .into_iter()
            .map(|m| {
                let text = String::from_utf8_lossy(&m.sections[0].1).to_string();
                let subject = text
                    .lines()
                    .find(|l| l.starts_with("Subject:"))
                    .unwrap_or("")
                    .to_string();
                (subject, m.meta.flags.system)
            })
            .collect();
        all.sort();
        out.insert(f.name, all);
    }
    (out, validity)
}

/// Five mailboxes (two never logged in, one of those with sealed mail),
/// backed up to the target `use_target` puts in `sealmail.toml`; the data
/// directory is wiped but for `keep` (a directory target inside it);
/// `init` and `backup server restore --server-key` bring everything back.
pub fn whole_server_restore(env: &Env, keep: &Path, use_target: &dyn Fn(&Env)) {
    use_target(env);
    let owners: Vec<String> = ["ann", "bob", "cat", "dan"]
        .iter()
        .map(|n| env.alias(n, "pw"))
        .collect();
    let away = env.alias("eve", "pw");
    {
        let (_b, store) = env.store();
        for (k, addr) in owners.iter().enumerate() {
            let s = unlock(&store, addr, "pw");
            block(s.create_folder("Work")).unwrap();
            for i in 0..(3 + k) {
                let folder = if i % 2 == 0 { "INBOX" } else { "Work" };
                let mut r = append_req(folder, text_message(&format!("{addr} {i}"), CANARY));
                r.flags = Flags::system([0, Flags::SEEN, Flags::FLAGGED | Flags::SEEN][i % 3]);
                block(s.append(r)).unwrap();
            }
        }
        // Mail for eve, who never logged in: sealed, in the spool.
        block(store.deliver(&away, text_message("for eve while away", "x"))).unwrap();
    }
    let before: Vec<_> = owners.iter().map(|a| snapshot_of(env, a)).collect();
    for addr in &owners {
        let out = run_ok(
            env.bin()
                .args(["backup", "now", addr])
                .env("SEALMAIL_PASSWORD", "pw"),
        );
        assert!(out.contains("backed up"), "{out}");
    }
    run_ok(env.bin().args(["backup", "server", "now"]));

    // The disk is lost; the backups and a copy of the key are not.
    let saved = tempfile::tempdir().unwrap();
    let key = saved.path().join("server.key");
    std::fs::copy(env.data().join("server.key"), &key).unwrap();
    for entry in std::fs::read_dir(env.data()).unwrap() {
        let p = entry.unwrap().path();
        if p == keep {
            continue;
        }
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    run_ok(
        env.bin()
            .args([
                "init",
                "--hostname",
                "mail.example.org",
                "--allow-same-disk",
                "--backup-dir",
            ])
            .arg(env.data().join("backups")),
    );
    use_target(env);
    let out = run_ok(
        env.bin()
            .args(["backup", "server", "restore", "--server-key"])
            .arg(&key),
    );
    assert!(out.contains("1 spooled messages put back"), "{out}");
    assert!(out.contains("4 mailbox files put back"), "{out}");
    assert_eq!(
        std::fs::read(env.data().join("server.key")).unwrap(),
        std::fs::read(&key).unwrap()
    );

    for (addr, (folders, validity)) in owners.iter().zip(&before) {
        let (now, new_validity) = snapshot_of(env, addr);
        assert_eq!(&now, folders, "{addr}");
        assert!(
            new_validity > *validity,
            "{addr}: UIDVALIDITY {validity} → {new_validity}"
        );
        let id = env.control().alias(addr).unwrap().unwrap().mailbox_id;
        let mark = env
            .data()
            .join("mailboxes")
            .join(format!("{id}.sqlite.restored"));
        assert!(!mark.exists(), "the mark goes at the first login");
    }
    let (eves, _) = snapshot_of(env, &away);
    assert_eq!(eves["INBOX"].len(), 1);
    // Nothing in clear outside the mailboxes, backups included.
    assert!(files_containing(env.data(), CANARY.as_bytes()).is_empty());
}
