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

#[test]
fn mbsync_syncs_a_thousand_messages_down_and_changes_back_up() {
    let env = Env::new();
    let addr = env.alias("ann", "pw");
    mbsync::seed(&env, &addr);
    let server = env.serve();
    mbsync::round_trip(&env, &addr, server.imaps.port(), &env.config.tls_cert);
}
