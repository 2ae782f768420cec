//! mbsync (isync) against a server: a thousand messages down, local
//! deletions, flags and new mail back up, both sides compared.

use std::path::Path;
use std::process::Command;

use super::*;

/// A thousand messages in `addr`'s INBOX (password "pw").
pub fn seed(env: &Env, addr: &str) {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, "pw");
    for chunk in (0..1000).collect::<Vec<_>>().chunks(250) {
        let reqs = chunk
                .iter()
                .map(|i| {
                    let m = format!(
                        "From: Ann <ann@example.net>\r\nTo: {addr}\r\nSubject: sync {i}\r\nMessage-ID: <sync{i}@example.net>\r\n\r\nbody of message {i}\r\n"
                    );
                    append_req("INBOX", m.into_bytes())
                })
                .collect();
        block(s.append_batch(reqs)).unwrap();
    }
}

/// Syncs `addr`'s mailbox (seeded by [`seed`]) with mbsync over IMAPS on
/// `imaps_port` (certificate `cert`), changes it locally, syncs back, and
/// compares both sides with what `env`'s store holds.
pub fn round_trip(env: &Env, addr: &str, imaps_port: u16, cert: &Path) {
    let work = tempfile::tempdir().unwrap();
    let mail = work.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let rc = work.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount sm\nHost 127.0.0.1\nPort {port}\nUser {addr}\nPass pw\nSSLType IMAPS\nCertificateFile {cert}\nAuthMechs PLAIN\n\n\
             IMAPStore sm-remote\nAccount sm\n\n\
             MaildirStore sm-local\nPath {mail}/\nInbox {mail}/INBOX\n\n\
             Channel sm\nFar :sm-remote:\nNear :sm-local:\nPatterns INBOX\nCreate Both\nExpunge Both\nSyncState *\nSync All\n",
            port = imaps_port,
            cert = cert.display(),
            mail = mail.display(),
        ),
    )
    .unwrap();
    let sync = || run_ok(Command::new("mbsync").arg("-c").arg(&rc).arg("-a"));

    sync();
    let local = maildir(&mail.join("INBOX"));
    let remote = server_inbox(env, addr);
    assert_eq!(local.len(), 1000);
    for (id, (bytes, _)) in &remote {
        assert_eq!(
            normalized(&local[id].0),
            normalized(bytes),
            "{id} differs after the first sync"
        );
    }

    // Local changes: 10 deleted, 5 read, 3 new.
    let inbox = mail.join("INBOX");
    let ids: Vec<String> = local.keys().cloned().collect();
    for id in &ids[..10] {
        let name = &local[id].1;
        let path = ["cur", "new"]
            .iter()
            .map(|d| inbox.join(d).join(name))
            .find(|p| p.exists())
            .unwrap();
        std::fs::remove_file(path).unwrap();
    }
    for id in &ids[10..15] {
        let name = &local[id].1;
        let from = ["cur", "new"]
            .iter()
            .map(|d| inbox.join(d).join(name))
            .find(|p| p.exists())
            .unwrap();
        let base = name.split(":2,").next().unwrap();
        std::fs::rename(&from, inbox.join("cur").join(format!("{base}:2,S"))).unwrap();
    }
    for i in 0..3 {
        let m = format!(
            "From: Ann <ann@example.net>\r\nTo: {addr}\r\nSubject: local {i}\r\nMessage-ID: <local{i}@example.net>\r\n\r\nwritten offline {i}\r\n"
        );
        std::fs::write(
            inbox.join("new").join(format!("17000000{i}.local{i}.host")),
            m,
        )
        .unwrap();
    }
    sync();
    sync();

    let local = maildir(&inbox);
    let remote = server_inbox(env, addr);
    assert_eq!(remote.len(), 993);
    assert_eq!(
        local.keys().collect::<Vec<_>>(),
        remote.keys().collect::<Vec<_>>(),
        "both sides hold the same messages"
    );
    for (id, (bytes, seen)) in &remote {
        let (lbytes, name) = &local[id];
        assert_eq!(normalized(lbytes), normalized(bytes), "{id}");
        let local_seen = name.rsplit(":2,").next().is_some_and(|f| f.contains('S'));
        assert_eq!(*seen, local_seen, "{id}: \\Seen differs ({name})");
    }
    for id in &ids[10..15] {
        assert!(remote[id].1, "{id} read locally is \\Seen on the server");
    }
    for id in &ids[..10] {
        assert!(!remote.contains_key(id), "{id} deleted locally is gone");
    }
}

/// Message-ID → bytes of every message in a Maildir folder.
fn maildir(dir: &std::path::Path) -> std::collections::BTreeMap<String, (Vec<u8>, String)> {
    let mut out = std::collections::BTreeMap::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let id = message_id(&bytes);
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            out.insert(id, (bytes, name));
        }
    }
    out
}

/// A message as both sides should agree on it: Maildir keeps bare LF, and
/// mbsync tags the copies it moves with its own X-TUID header.
fn normalized(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .lines()
        .filter(|l| !l.starts_with("X-TUID: "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn message_id(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_string))
        .unwrap_or_default()
}

/// Message-ID → (bytes, \Seen) of every message in the server's INBOX.
fn server_inbox(env: &Env, addr: &str) -> std::collections::BTreeMap<String, (Vec<u8>, bool)> {
    use sealmail::store::{FetchWhat, Flags, Section, SectionKind, UidSet};
    let (_b, store) = env.store();
    let s = unlock(&store, addr, "pw");
    let what = FetchWhat {
        sections: vec![Section {
            path: vec![],
            kind: SectionKind::Whole,
        }],
        ..Default::default()
    };
    block(s.fetch("INBOX", UidSet::all(), what))
        .unwrap()
        .into_iter()
        .map(|m| {
            let bytes = m.sections[0].1.clone();
            (message_id(&bytes), (bytes, m.meta.flags.has(Flags::SEEN)))
        })
        .collect()
}
