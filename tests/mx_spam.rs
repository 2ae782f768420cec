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

/// rspamd's main process; its workers stop with it (SIGTERM).
struct RspamdProcess(std::process::Child);

impl Drop for RspamdProcess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// rspamd with the stock configuration, its local overrides in `dir`:
/// the normal worker on `port`, the controller on another, no proxy, a
/// multimap rule scoring subjects with "sealmail-spammy-test" 10.
fn start_rspamd(dir: &Path, port: u16) -> RspamdProcess {
    let local = dir.join("local.d");
    for d in [&local, &dir.join("db"), &dir.join("run"), &dir.join("log")] {
        std::fs::create_dir_all(d).unwrap();
    }
    let w = |name: &str, text: String| std::fs::write(local.join(name), text).unwrap();
    w(
        "worker-normal.inc",
        format!("bind_socket = \"127.0.0.1:{port}\";\n"),
    );
    w(
        "worker-controller.inc",
        format!("bind_socket = \"127.0.0.1:{}\";\n", free_port()),
    );
    w("worker-proxy.inc", "enabled = false;\n".into());
    w(
        "logging.inc",
        format!(
            "type = \"file\"; filename = \"{}\"; level = \"error\";\n",
            dir.join("log/rspamd.log").display()
        ),
    );
    std::fs::write(dir.join("spammy.map"), "/sealmail-spammy-test/i\n").unwrap();
    w(
        "multimap.conf",
        format!(
            "SEALMAIL_TEST_SPAMMY {{\n  type = \"header\";\n  header = \"Subject\";\n  regexp = true;\n  map = \"{}\";\n  score = 10.0;\n}}\n",
            dir.join("spammy.map").display()
        ),
    );
    let mut cmd = std::process::Command::new("rspamd");
    cmd.arg("-f")
        .arg("-c")
        .arg("/etc/rspamd/rspamd.conf")
        .arg(format!("--var=LOCAL_CONFDIR={}", dir.display()))
        .arg(format!("--var=DBDIR={}", dir.join("db").display()))
        .arg(format!("--var=RUNDIR={}", dir.join("run").display()))
        .arg(format!("--var=LOGDIR={}", dir.join("log").display()))
        .arg("-p")
        .arg(dir.join("run/rspamd.pid"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if nix::unistd::Uid::effective().is_root() {
        // rspamd would switch to its own user, who cannot write here.
        cmd.args(["-i", "-u", "root", "-g", "root"]);
    }
    let process = RspamdProcess(
        cmd.spawn()
            .expect("rspamd is missing: run `make test`, which installs it"),
    );
    wait_for("rspamd's normal worker", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
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
