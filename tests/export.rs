//! `sealmail export` and `sealmail import` as an owner uses them: a round
//! trip through mbox and through EML into a fresh mailbox gives back the
//! same messages (byte for byte), folders, flags, keywords and internal
//! dates; importing the same export again adds nothing; the SQLite export
//! is a plain database any SQLite opens; an export killed midway leaves no
//! output that looks complete.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use common::*;
use sealmail::store::{AppendRequest, FetchWhat, Flags, Section, SectionKind, Session, UidSet};

/// Per folder, every message as (bytes, flags, keywords, internal date),
/// sorted (UIDs differ between mailboxes).
type Contents = BTreeMap<String, Vec<(Vec<u8>, u8, Vec<String>, String)>>;

fn contents(s: &Session) -> Contents {
    let mut out = Contents::new();
    for f in block(s.list_folders()).unwrap() {
        if f.nonexistent {
            continue;
        }
        block(s.select(&f.name)).unwrap();
        let what = FetchWhat {
            sections: vec![Section {
                path: vec![],
                kind: SectionKind::Whole,
            }],
            ..Default::default()
        };
        let mut all: Vec<_> = block(s.fetch(&f.name, UidSet::all(), what))
            .unwrap()
            .into_iter()
            .map(|m| {
                let mut keywords = m.meta.flags.keywords.clone();
                keywords.sort();
                (
                    m.sections[0].1.clone(),
                    m.meta.flags.system,
                    keywords,
                    m.meta.internal_date.clone(),
                )
            })
            .collect();
        all.sort();
        out.insert(f.name, all);
    }
    out
}

fn fill(env: &Env, addr: &str) -> Contents {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, "pw");
    block(s.create_folder("Work/2026")).unwrap();
    block(s.create_folder("Ünïcode &more")).unwrap();
    let mut requests = Vec::new();
    for i in 0..40u32 {
        let folder = ["INBOX", "Work/2026", "Ünïcode &more", "Sent"][i as usize % 4];
        let body = match i % 5 {
            // mbox hazards: From lines, quoted ones, a message without a
            // final line break, Status headers in the body.
            0 => format!("From here on\r\n>From quoted\r\n>>From twice\r\nline {i}"),
            1 => format!("Status: RO in the body\r\n\r\n\r\nblank lines {i}\r\n\r\n"),
            _ => format!("plain body {i}\r\n"),
        };
        let message = if i % 7 == 0 {
            with_attachment(&format!("m{i}"), &body, &[i as u8; 3000])
        } else {
            text_message(&format!("m{i}"), &body)
        };
        requests.push(AppendRequest {
            folder: folder.into(),
            message,
            flags: Flags {
                system: [
                    0,
                    Flags::SEEN,
                    Flags::SEEN | Flags::FLAGGED,
                    Flags::ANSWERED | Flags::DRAFT,
                ][i as usize % 4],
                keywords: if i % 3 == 0 {
                    vec!["$label1".into(), "work".into()]
                } else {
                    vec![]
                },
            },
            internal_date: Some(1_600_000_000 + i64::from(i) * 86_399),
            if_missing: Default::default(),
        });
    }
    block(s.append_batch(requests)).unwrap();
    contents(&s)
}

fn run(env: &Env, args: &[&str]) -> String {
    let mut cmd = env.bin();
    cmd.args(args).env("SEALMAIL_PASSWORD", "pw");
    run_ok(&mut cmd)
}

#[test]
fn mbox_and_eml_round_trips_keep_messages_folders_flags_and_dates() {
    let env = Env::new();
    let ann = env.alias("ann", "pw");
    let original = fill(&env, &ann);
    assert_eq!(original.values().map(Vec::len).sum::<usize>(), 40);
    let out = tempfile::tempdir().unwrap();
    for (format, target) in [("mbox", "bo"), ("eml", "cy")] {
        let path = out.path().join(format!("ann.{format}"));
        let said = run(
            &env,
            &[
                "export",
                &ann,
                "--format",
                format,
                "--output",
                path.to_str().unwrap(),
            ],
        );
        assert!(said.contains("exported 40 messages"), "{said}");
        assert!(!Path::new(&format!("{}.partial", path.display())).exists());
        let addr = env.alias(target, "pw");
        let said = run(&env, &["import", &addr, path.to_str().unwrap(), "--create"]);
        assert!(said.contains("imported 40 messages"), "{said}");
        let (_b, store) = env.store();
        let copy = contents(&unlock(&store, &addr, "pw"));
        for (folder, messages) in &original {
            assert_eq!(copy.get(folder), Some(messages), "{format}: {folder}");
        }
        // Again: every message is there already.
        let said = run(&env, &["import", &addr, path.to_str().unwrap()]);
        assert!(
            said.contains("imported 0 messages") && said.contains("40 duplicates skipped"),
            "{said}"
        );
        drop(store);
        let (_b, store) = env.store();
        assert_eq!(&contents(&unlock(&store, &addr, "pw")), &copy);
    }
    // The mbox is what other programs read: mboxrd quoting, From lines.
    let inbox = std::fs::read(out.path().join("ann.mbox/INBOX.mbox")).unwrap();
    let text = String::from_utf8_lossy(&inbox);
    assert!(text.starts_with("From MAILER-DAEMON "), "{text}");
    assert!(
        text.contains("\n>From here on\n>>From quoted\n>>>From twice\n"),
        "{text}"
    );
    assert!(out.path().join("ann.mbox/Work%2F2026.mbox").exists());
    // Plain mail: only its owner reads the export, whatever the umask.
    for entry in std::fs::read_dir(out.path().join("ann.mbox")).unwrap() {
        use std::os::unix::fs::PermissionsExt;
        let mode = entry.unwrap().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
    // A folder that does not exist is refused without --create.
    let dan = env.alias("dan", "pw");
    let mut cmd = env.bin();
    cmd.args(["import", &dan])
        .arg(out.path().join("ann.mbox"))
        .env("SEALMAIL_PASSWORD", "pw");
    let o = cmd.output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--create"));
}

#[test]
fn sqlite_export_is_a_plain_database() {
    let env = Env::new();
    let ann = env.alias("ann", "pw");
    fill(&env, &ann);
    let out = tempfile::tempdir().unwrap().keep();
    let path = out.join("ann.sqlite");
    let said = run(
        &env,
        &[
            "export",
            &ann,
            "--format",
            "sqlite",
            "--output",
            path.to_str().unwrap(),
        ],
    );
    assert!(said.contains("exported 40 messages"), "{said}");
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    let script = format!(
        "import sqlite3; c = sqlite3.connect({:?}); print(c.execute('select count(*) from messages').fetchone()[0])",
        path.display()
    );
    let n = run_ok(std::process::Command::new("python3").args(["-c", &script]));
    assert_eq!(n.trim(), "40");
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn an_export_killed_midway_leaves_no_complete_looking_output() {
    let env = Env::new();
    let ann = env.alias("ann", "pw");
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &ann, "pw");
        let big = "x".repeat(60_000);
        let requests: Vec<_> = (0..1500)
            .map(|i| append_req("INBOX", text_message(&format!("m{i}"), &big)))
            .collect();
        for chunk in requests.chunks(200) {
            block(s.append_batch(chunk.to_vec())).unwrap();
        }
    }
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("ann.mbox");
    let partial = out.path().join("ann.mbox.partial");
    let mut child = env
        .bin()
        .args(["export", &ann, "--output"])
        .arg(&path)
        .env("SEALMAIL_PASSWORD", "pw")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the export to start writing", || {
        std::fs::metadata(partial.join("INBOX.mbox")).is_ok_and(|m| m.len() > 0)
    });
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(!path.exists(), "an interrupted export looks complete");
    // The next run starts over and completes.
    let said = run(&env, &["export", &ann, "--output", path.to_str().unwrap()]);
    assert!(said.contains("exported 1500 messages"), "{said}");
    assert!(!partial.exists());
}

/// A Maildir (Dovecot's, mutt's) with a subfolder: flags from the file
/// names, dates from the files' times or, asked, from the Date header.
#[test]
fn a_maildir_imports_with_its_flags_and_folders() {
    let env = Env::new();
    let ann = env.alias("ann", "pw");
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("Maildir");
    for sub in [
        "cur",
        "new",
        "tmp",
        ".Archive.2025/cur",
        ".Archive.2025/new",
    ] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    let write = |path: &str, subject: &str, mtime: u64| {
        let p = md.join(path);
        let lf = String::from_utf8(text_message(subject, "body"))
            .unwrap()
            .replace("\r\n", "\n");
        std::fs::write(&p, lf).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
            .unwrap();
    };
    write("new/1700000000.a.host", "unread", 1_700_000_000);
    write("cur/1700000001.b.host:2,FRS", "flagged", 1_700_000_001);
    write(
        ".Archive.2025/cur/1700000002.c.host:2,S",
        "archived",
        1_700_000_002,
    );
    let said = run(&env, &["import", &ann, md.to_str().unwrap(), "--create"]);
    assert!(
        said.contains("imported 3 messages into 2 folders"),
        "{said}"
    );
    let (_b, store) = env.store();
    let got = contents(&unlock(&store, &ann, "pw"));
    let inbox = &got["INBOX"];
    assert_eq!(inbox.len(), 2);
    let flagged = inbox
        .iter()
        .find(|m| m.0.windows(7).any(|w| w == b"flagged"))
        .unwrap();
    assert_eq!(flagged.1, Flags::SEEN | Flags::ANSWERED | Flags::FLAGGED);
    assert_eq!(flagged.3, "2023-11-14T22:13:21Z");
    assert!(
        flagged.0.windows(2).any(|w| w == b"\r\n"),
        "stored with CRLF"
    );
    assert_eq!(got["Archive/2025"].len(), 1);
    assert_eq!(got["Archive/2025"][0].1, Flags::SEEN);
    drop(store);
    // The Date header instead, into one named folder.
    let bo = env.alias("bo", "pw");
    run(
        &env,
        &[
            "import",
            &bo,
            md.to_str().unwrap(),
            "--folder",
            "Old",
            "--create",
            "--date-from",
            "header",
        ],
    );
    let (_b, store) = env.store();
    let got = contents(&unlock(&store, &bo, "pw"));
    assert_eq!(got["Old"].len(), 3);
    assert!(
        got["Old"].iter().all(|m| m.3 == "2026-11-23T10:00:00Z"),
        "{:?}",
        got["Old"]
    );
}
