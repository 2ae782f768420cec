//! Virus scanning at the MX with a real clamd (Debian's clamav-daemon)
//! started by the test with its own configuration and a one-signature
//! database (clamd cannot fetch signatures here): infected mail is refused
//! naming the signature, also inside a zip; clean mail passes; with clamd
//! gone, mail is deferred (451) or, when so configured, delivered with a
//! header saying it was not scanned.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use sealmail::config::{Clamd, ClamdSocket};
use sealmail::store::Criteria;

/// What the test signature matches; nothing real carries it.
const PATTERN: &str = "SEALMAIL-TEST-VIRUS-PATTERN-7Q2";

/// clamd on a Unix socket in `dir`, with a database of one signature
/// (`Sealmail.Test.Pattern`, matching PATTERN anywhere).
fn start_clamd(dir: &Path) -> (Peer, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/clamd.sh");
    let clamd = std::process::Command::new("bash")
        .arg(script)
        .arg(dir)
        .arg("Sealmail.Test.Pattern")
        .arg(hex::encode(PATTERN))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let peer = Peer(clamd);
    let socket = dir.join("clamd.sock");
    wait_for("clamd's socket (clamd is installed by `make test`)", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    });
    (peer, socket)
}

fn count(env: &Env, addr: &str, criteria: Criteria) -> usize {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, "pw");
    block(s.search("INBOX", criteria)).unwrap().uids.len()
}

fn subjects(env: &Env, addr: &str, needle: &str) -> usize {
    count(env, addr, Criteria::Subject(needle.into()))
}

#[test]
fn clamd_refuses_viruses_and_its_absence_defers_or_marks() {
    let mut env = Env::new();
    let ann = env.alias("ann", "pw");
    let dev = env.alias("dev", "pw");
    let scanner = tempfile::tempdir().unwrap();
    let (clamd, socket) = start_clamd(scanner.path());
    env.config.mx.clamd = Some(Clamd {
        socket: ClamdSocket::Unix(socket),
        deliver_unscanned: false,
        timeout: Duration::from_secs(60),
        exempt: vec![dev.clone()],
    });
    let run = |server: &Server, mode: &str| {
        let out = python(
            "mx_virus.py",
            &[
                server.smtp.port().to_string(),
                ann.clone(),
                dev.clone(),
                PATTERN.into(),
                mode.into(),
            ],
        );
        assert!(out.contains(" 0 failed"), "{out}");
    };
    let server = env.serve();
    run(&server, "scanning");
    drop(clamd);
    run(&server, "defer");
    drop(server);
    env.config.mx.clamd.as_mut().unwrap().deliver_unscanned = true;
    let server = env.serve();
    run(&server, "deliver");
    drop(server);

    assert_eq!(subjects(&env, &ann, "infected"), 0);
    assert_eq!(subjects(&env, &ann, "clean scanning"), 1);
    assert_eq!(subjects(&env, &ann, "clean defer"), 0);
    assert_eq!(subjects(&env, &dev, "for dev"), 2);
    // Only the message delivered unscanned says so.
    let unscanned = |v: &str| Criteria::Header("X-Sealmail-Virus-Scan".into(), v.into());
    assert_eq!(
        count(&env, &ann, unscanned("not scanned (clamd unreachable")),
        1
    );
    assert_eq!(
        count(
            &env,
            &ann,
            Criteria::And(vec![
                unscanned(""),
                Criteria::Subject("clean deliver".into())
            ])
        ),
        1
    );
    assert_eq!(count(&env, &ann, unscanned("")), 1);
    // Nothing of the refused mail is anywhere in the data directory.
    assert!(files_containing(env.data(), PATTERN.as_bytes()).is_empty());
}
