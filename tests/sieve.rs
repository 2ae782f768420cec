//! Sieve at delivery with real peers: scripts stored with the `sealmail
//! alias sieve` command, mail sent by smtplib to the MX while the owner is
//! away (sealed) and while logged in, read back by imaplib; what the server
//! sends (vacation replies, redirects, rejection notices) caught by an
//! aiosmtpd sink found through a loopback DNS server, and replies checked
//! by dkimpy (`tests/interop/sieve_mx.py`).
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use common::*;
use sealmail::store::Criteria;

const SCRIPT: &str = r#"require ["fileinto", "mailbox", "imap4flags", "vacation", "reject", "ereject"];
# Each test message names what is to happen to it.
if header :is "subject" ["to-work", "to-work-live"] {
    fileinto :flags ["\\Flagged", "$Work"] "Work"; stop;
}
if header :is "subject" "to-new" { fileinto :create :flags "\\Seen" "New/Sub"; stop; }
if header :is "subject" "to-fresh-live" { fileinto :create "Fresh"; stop; }
if header :is "subject" "to-missing" { fileinto "Missing"; stop; }
if header :is "subject" "discard-me" { discard; stop; }
if header :is "subject" "ereject-me" { ereject "no thanks"; stop; }
if header :is "subject" "reject-me" { reject "not wanted here"; stop; }
if header :is "subject" "redirect-me" { redirect "carol@remote.test"; stop; }
if header :matches "subject" "vacation*" {
    vacation :days 7 :subject "Away until Monday" "I am away.";
}
"#;

#[test]
fn scripts_file_reject_redirect_and_reply() {
    let work = tempfile::tempdir().unwrap();
    let (_sinks, smtp_port, sink) = start_sinks(work.path());
    let mut env = Env::new();
    let mut zone = serde_json::json!({
        "remote.test": [["MX", "10 mx.remote.test"]],
        "mx.remote.test": [["A", "127.0.0.1"]],
    });
    publish_dkim(&env, &mut zone);
    let (_dns, dns_port) = start_dns(work.path(), &zone);
    env.config.nameservers = vec![format!("127.0.0.1:{dns_port}").parse().unwrap()];
    env.config.relay.port = smtp_port;
    let bob = env.alias("bob", "bob-password");
    let dave = env.alias("dave", "dave-password");
    let looper = env.alias("looper", "looper-password");
    // A folder that exists before mail is sealed for it.
    env.mailbox_file(&bob, "bob-password")
        .create_folder("Work")
        .unwrap();

    // The command line refuses a script that does not compile, naming the
    // line, and stores one that does.
    let bad = work.path().join("bad.sieve");
    std::fs::write(&bad, "require \"fileinto\";\nfileinto \"A\"\nkeep;\n").unwrap();
    let (ok, out) = env.cli(&["alias", "sieve", &bob, "check", bad.to_str().unwrap()]);
    assert!(!ok && out.contains("line 3"), "{out}");
    let (ok, out) = env.cli(&["alias", "sieve", &bob, "put", "bad", bad.to_str().unwrap()]);
    assert!(!ok, "{out}");
    let good = work.path().join("main.sieve");
    std::fs::write(&good, SCRIPT).unwrap();
    let (ok, out) = env.cli(&[
        "alias",
        "sieve",
        &bob,
        "put",
        "main",
        good.to_str().unwrap(),
        "--activate",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = env.cli(&["alias", "sieve", &bob, "list"]);
    assert!(
        ok && out.contains("main") && out.contains("(active)"),
        "{out}"
    );
    assert!(!out.contains("bad"), "{out}");
    let (ok, out) = env.cli(&["alias", "sieve", &bob, "get", "main"]);
    assert!(ok && out == SCRIPT, "{out}");
    // A script that includes itself, for ever.
    let looping = work.path().join("loop.sieve");
    std::fs::write(
        &looping,
        "require \"include\";\ninclude :personal \"main\";\n",
    )
    .unwrap();
    let (ok, out) = env.cli(&[
        "alias",
        "sieve",
        &looper,
        "put",
        "main",
        looping.to_str().unwrap(),
        "--activate",
    ]);
    assert!(ok, "{out}");

    let server = env.serve();
    let run = |phase: &str| {
        venv_script(
            "sieve_mx.py",
            &[
                server.smtp.port().to_string(),
                server.imaps.port().to_string(),
                bob.clone(),
                "bob-password".into(),
                dave.clone(),
                looper.clone(),
                dns_port.to_string(),
                sink.display().to_string(),
                phase.into(),
            ],
        )
    };
    let out = run("away");
    assert!(out.contains(" 0 failed"), "{out}");
    // Nothing of the messages, their senders or what the script decided is
    // readable on disk: the spool is sealed, the rest encrypted.
    for needle in [&b"dora@remote.test"[..], b"to-work", b"New/Sub", b"$Work"] {
        assert!(
            files_containing(env.data(), needle).is_empty(),
            "{}",
            String::from_utf8_lossy(needle)
        );
    }
    // The control database, opened with the server key: the scripts are
    // there, and the vacation tracking as hashes; no sender, subject or
    // decision about a message.
    let key = sealmail::app::server_key(env.data()).unwrap();
    let db = sealmail::store::db::open(
        &env.data().join("control.sqlite"),
        sealmail::store::db::DbKey::Raw(&key),
    )
    .unwrap();
    let text = db_text(&db);
    assert!(text.contains("Away until Monday"), "the script is kept");
    for canary in [
        "dora@remote.test",
        "hank@remote.test",
        "vacation-1",
        "Hello.",
    ] {
        assert!(!text.contains(canary), "{canary} in the control database");
    }
    let hashes: Vec<Vec<u8>> = db
        .prepare("SELECT hash FROM sieve_seen")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(hashes.len(), 2, "one per sender replied to (dora, hank)");
    assert!(hashes.iter().all(|h| h.len() == 32));
    drop(db);
    let out = run("import");
    assert!(out.contains(" 0 failed"), "{out}");
    let out = run("present");
    assert!(out.contains(" 0 failed"), "{out}");
    drop(server);

    // dave (no script) got the message bob's script rejected; the looping
    // script's message is in INBOX.
    let (_b, store) = env.store();
    let (s, _) = unlock_imported(&store, &dave, "dave-password");
    let found = block(s.search("INBOX", Criteria::Subject("reject-me".into()))).unwrap();
    assert_eq!(found.uids.len(), 1);
    let (s, _) = unlock_imported(&store, &looper, "looper-password");
    let found = block(s.search("INBOX", Criteria::Subject("loop-me".into()))).unwrap();
    assert_eq!(found.uids.len(), 1);
}

#[test]
fn vacation_command_writes_an_active_script() {
    let env = Env::new();
    let bob = env.alias("bob", "pw");
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.txt");
    std::fs::write(&body, "Back on the 4th.\n\"Quoted\" and \\ kept.\n").unwrap();
    let (ok, out) = env.cli(&[
        "alias",
        "vacation",
        &bob,
        "--subject",
        "Out",
        "--body-file",
        body.to_str().unwrap(),
        "--days",
        "3",
        "--from",
        "2026-01-01",
        "--until",
        "2099-01-01",
    ]);
    assert!(ok, "{out}");
    let scripts = env.control().sieve_scripts(&bob).unwrap().unwrap();
    assert_eq!(scripts.active, "vacation");
    let (ok, out) = env.cli(&[
        "alias",
        "vacation",
        &bob,
        "--until",
        "20260101",
        "--body-file",
        "x",
    ]);
    assert!(!ok && out.contains("not a date"), "{out}");
    let (ok, out) = env.cli(&["alias", "vacation", &bob, "--off"]);
    assert!(ok, "{out}");
    assert_eq!(env.control().sieve_scripts(&bob).unwrap(), None);
}
