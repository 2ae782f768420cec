//! IMAP against clients nobody here wrote: Python's imaplib (a whole
//! session over STARTTLS and over implicit TLS, IDLE included), IMAPClient
//! parsing ENVELOPE and BODYSTRUCTURE edge cases, Python's
//! zlib as the other end of COMPRESS=DEFLATE, curl listing and fetching over
//! IMAPS, and mbsync syncing both ways.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::process::Command;

use common::*;

#[test]
fn imaplib_session_over_starttls_and_implicit_tls() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let out = python(
        "imap_imaplib.py",
        &[
            server.imap.port().to_string(),
            server.imaps.port().to_string(),
            server.smtp.port().to_string(),
            addr,
            "pw".into(),
        ],
    );
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn imapclient_parses_envelopes_structures_and_object_ids() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let out = venv_script(
        "imap_imapclient.py",
        &[server.imaps.port().to_string(), addr, "pw".into()],
    );
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn compress_deflate_round_trips_with_zlib() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let out = python(
        "imap_compress.py",
        &[server.imaps.port().to_string(), addr, "pw".into()],
    );
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn curl_lists_and_fetches_over_imaps() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, "pw");
        let m = text_message("curl canary", "fetched by curl");
        block(s.append(append_req("INBOX", m))).unwrap();
    }
    let server = env.serve();
    let base = format!("imaps://127.0.0.1:{}", server.imaps.port());
    let user = format!("{addr}:pw");
    let list = run_ok(Command::new("curl").args(["-sS", "-k", "-u", &user, &format!("{base}/")]));
    assert!(
        list.contains("\"INBOX\"") && list.contains("\\Sent"),
        "{list}"
    );
    let msg = run_ok(Command::new("curl").args([
        "-sS",
        "-k",
        "-u",
        &user,
        &format!("{base}/INBOX;UID=1"),
    ]));
    assert!(
        msg.contains("Subject: curl canary") && msg.contains("fetched by curl"),
        "{msg}"
    );
    // A wrong password is refused.
    let bad = Command::new("curl")
        .args([
            "-sS",
            "-k",
            "-u",
            &format!("{addr}:nope"),
            &format!("{base}/"),
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
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

#[test]
fn mbsync_syncs_a_thousand_messages_down_and_changes_back_up() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, "pw");
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
    let server = env.serve();
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
            port = server.imaps.port(),
            cert = env.config.tls_cert.display(),
            mail = mail.display(),
        ),
    )
    .unwrap();
    let sync = || run_ok(Command::new("mbsync").arg("-c").arg(&rc).arg("-a"));

    sync();
    let local = maildir(&mail.join("INBOX"));
    let remote = server_inbox(&env, &addr);
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
    let remote = server_inbox(&env, &addr);
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
