//! ManageSieve with clients nobody here wrote: Debian's `sieve-connect`
//! uploads, checks, activates, lists, downloads and deletes scripts over
//! STARTTLS; a hand-written Python client checks the protocol's edges and
//! many sessions at once (`tests/interop/managesieve_raw.py`). A script
//! uploaded over ManageSieve then filters mail on the MX.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use sealmail::store::Criteria;

/// Runs sieve-connect as `user` with `args`; (success, output).
fn sieve_connect(port: u16, user: &str, password: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("sieve-connect")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--user", user, "--passwordfd", "0", "--notlsverify"])
        .args(["--authmech", "PLAIN"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sieve-connect (make test installs it)");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn sieve_connect_manages_scripts_that_then_filter_mail() {
    let env = Env::new();
    let bob = env.alias("bob", "bob-password");
    let work = tempfile::tempdir().unwrap();
    let server = env.serve();
    let port = server.managesieve.port();
    let run = |args: &[&str]| sieve_connect(port, &bob, "bob-password", args);

    let good = work.path().join("good.sieve");
    std::fs::write(
        &good,
        "require [\"fileinto\", \"mailbox\"];\nif header :contains \"subject\" \"report\" {\n  fileinto :create \"Reports\";\n}\n",
    )
    .unwrap();
    let bad = work.path().join("bad.sieve");
    std::fs::write(&bad, "require \"fileinto\";\nfileinto \"A\"\nkeep;\n").unwrap();
    let g = good.to_str().unwrap();
    let b = bad.to_str().unwrap();

    let (ok, out) = run(&["--checkscript", "--localsieve", g]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["--checkscript", "--localsieve", b]);
    assert!(!ok && out.contains("line 3"), "{out}");
    let (ok, out) = run(&["--upload", "--localsieve", b, "--remotesieve", "bad"]);
    assert!(!ok && out.contains("line 3"), "{out}");
    let (ok, out) = run(&["--upload", "--localsieve", g, "--remotesieve", "main"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["--activate", "--remotesieve", "main"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["--list"]);
    assert!(ok && out.contains("main"), "{out}");
    assert!(out.to_lowercase().contains("active"), "{out}");
    assert!(!out.contains("bad"), "{out}");
    let back = work.path().join("back.sieve");
    let (ok, out) = run(&[
        "--download",
        "--remotesieve",
        "main",
        "--localsieve",
        back.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        std::fs::read_to_string(&good).unwrap()
    );
    // The wrong password is refused.
    let (ok, out) = sieve_connect(port, &bob, "wrong-password", &["--list"]);
    assert!(!ok, "{out}");

    // The uploaded script filters mail: sealed (bob never logged in).
    let reply = smtp_send(server.smtp, &bob, "quarterly report");
    assert!(reply.starts_with("250"), "{reply}");
    let reply = smtp_send(server.smtp, &bob, "hello");
    assert!(reply.starts_with("250"), "{reply}");

    // The active script cannot be deleted; once deactivated it can.
    let (ok, out) = run(&["--delete", "--remotesieve", "main"]);
    assert!(!ok, "{out}");
    let (ok, out) = run(&["--deactivate"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["--delete", "--remotesieve", "main"]);
    assert!(ok, "{out}");
    let (ok, out) = run(&["--list"]);
    assert!(ok && !out.contains("main"), "{out}");

    let out = python(
        "managesieve_raw.py",
        &[port.to_string(), bob.clone(), "bob-password".into()],
    );
    assert!(out.contains(" 0 failed"), "{out}");
    drop(server);

    let (_b, store) = env.store();
    let (s, _) = unlock_imported(&store, &bob, "bob-password");
    let filed = block(s.search("Reports", Criteria::Subject("report".into()))).unwrap();
    assert_eq!(filed.uids.len(), 1);
    let inbox = block(s.search("INBOX", Criteria::Subject("hello".into()))).unwrap();
    assert_eq!(inbox.uids.len(), 1);
}
