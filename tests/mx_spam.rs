//! Spam filtering at the MX with a real rspamd (Debian's rspamd 3.4)
//! started by the test on its own ports, with its stock rules (GTUBE) and
//! one of the test's (a subject scored as spam): reject is refused,
//! "add header" lands in Junk, plain mail in INBOX, each with its
//! X-Spam-Status; with rspamd gone, mail is delivered marked unchecked.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use sealmail::config::Rspamd;
use sealmail::store::Criteria;

/// rspamd with the stock configuration and the test rule of
/// `tests/interop/rspamd.sh`, its normal worker on `port`.
fn start_rspamd(dir: &Path, port: u16) -> Daemon {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/rspamd.sh");
    let process = Daemon(
        std::process::Command::new("bash")
            .arg(script)
            .arg(dir)
            .arg(port.to_string())
            .arg(free_port().to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(
        "rspamd's normal worker (rspamd is installed by `make test`)",
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    process
}

fn count(env: &Env, addr: &str, folder: &str, criteria: Criteria) -> usize {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, "pw");
    block(s.search(folder, criteria)).unwrap().uids.len()
}

#[test]
fn rspamd_refuses_junks_and_passes_by_its_action() {
    let mut env = Env::new();
    let ann = env.alias("ann", "pw");
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let rspamd = start_rspamd(work.path(), port);
    env.config.mx.rspamd = Some(Rspamd {
        address: format!("127.0.0.1:{port}").parse().unwrap(),
        timeout: Duration::from_secs(60),
        exempt: Vec::new(),
    });
    let server = env.serve();
    let run = |mode: &str| {
        let out = python(
            "mx_spam.py",
            &[server.smtp.port().to_string(), ann.clone(), mode.into()],
        );
        assert!(out.contains(" 0 failed"), "{out}");
    };
    run("checking");
    drop(rspamd);
    run("down");
    drop(server);

    let junk = {
        let (_b, store) = env.store();
        let s = unlock(&store, &ann, "pw");
        let folders = block(s.list_folders()).unwrap();
        folders
            .into_iter()
            .find(|f| f.special_use.as_deref() == Some("\\Junk"))
            .map(|f| f.name)
            .unwrap_or_else(|| "INBOX".into())
    };
    let subject = |s: &str| Criteria::Subject(s.into());
    let status = |v: &str| Criteria::Header("X-Spam-Status".into(), v.into());
    assert_eq!(count(&env, &ann, "INBOX", subject("gtube")), 0);
    assert_ne!(junk, "INBOX", "the mailbox has a Junk folder");
    assert_eq!(
        count(
            &env,
            &ann,
            &junk,
            Criteria::And(vec![subject("spammy"), status("Yes, score=")])
        ),
        1
    );
    assert_eq!(
        count(
            &env,
            &ann,
            "INBOX",
            Criteria::And(vec![subject("lunch"), status("No, score=")])
        ),
        1
    );
    assert_eq!(
        count(
            &env,
            &ann,
            "INBOX",
            Criteria::And(vec![
                subject("while rspamd is down"),
                Criteria::Header("X-Sealmail-Spam-Scan".into(), "not checked".into())
            ])
        ),
        1
    );
}
