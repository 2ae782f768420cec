//! `sealmail migrate` against a real Dovecot (Debian's dovecot-imapd,
//! started on loopback from a config in a temp dir, never the system
//! service): 1,000 messages in several folders, with flags, keywords and
//! internal dates, all copied; killed midway and run again, every message
//! is there exactly once; a third run copies nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::*;
use sealmail::store::{FetchWhat, Flags, UidSet};

const DOVECOT: &str = "/usr/sbin/dovecot";

struct Dovecot(Child);

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Dovecot on loopback with user `old` (password pw), maildir in `dir`.
fn start_dovecot(dir: &Path) -> (Dovecot, SocketAddr) {
    assert!(
        Path::new(DOVECOT).exists(),
        "dovecot-imapd is missing: `make test` installs it"
    );
    for sub in ["run", "state", "mail"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    // Mail processes run as nobody: the directories above must let it in.
    for d in dir.ancestors().filter(|d| *d != Path::new("/")) {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d).unwrap().permissions().mode();
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o711));
    }
    run_ok(
        Command::new("chown")
            .arg("nobody:nogroup")
            .arg(dir.join("mail")),
    );
    std::fs::write(dir.join("users"), "old:{PLAIN}pw::::::\n").unwrap();
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{d}/mail/%u
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"
    );
    let file = dir.join("dovecot.conf");
    std::fs::write(&file, conf).unwrap();
    let master = Command::new(DOVECOT)
        .arg("-F")
        .arg("-c")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for("Dovecot's IMAP listener", || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    (Dovecot(master), addr)
}

/// Fills the source with Python's imaplib: folders (one nested, one not
/// ASCII), flags, keywords and internal dates. Returns per folder (as
/// sealmail names it) the count.
fn fill_source(addr: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    let script = format!(
        r#"
import imaplib, time
c = imaplib.IMAP4("127.0.0.1", {port})
c.login("old", "pw")
folders = ["INBOX", "Work", "Archive.2025", "&AMk-t&AOk-"]
for f in folders[1:]:
    c.create(f)
flags = ["", "\\Seen", "\\Seen \\Flagged", "\\Answered $label1"]
for i in range({n}):
    f = folders[i % 4]
    msg = ("From: a@old.example\r\nSubject: m%d\r\nMessage-ID: <%d@old.example>\r\n\r\n" % (i, i)
           + ("line %d\r\n" % i) * (1 + i % 50)).encode()
    date = imaplib.Time2Internaldate(1700000000 + i * 3600)
    typ, _ = c.append(f, "(" + flags[i % 4] + ")", date, msg)
    assert typ == "OK", typ
c.logout()
"#,
        port = addr.port()
    );
    run_ok(Command::new("python3").arg("-c").arg(&script));
    let mut counts = BTreeMap::new();
    for (i, f) in ["INBOX", "Work", "Archive/2025", "Été"].iter().enumerate() {
        counts.insert(f.to_string(), (0..n).filter(|k| k % 4 == i).count());
    }
    counts
}

#[test]
fn a_mailbox_moves_from_dovecot_once_even_when_interrupted() {
    // Dovecot's master runs as root (CI runs as root; `make test` there).
    if std::env::var_os("CI").is_none() && !is_root() {
        eprintln!("skipped: the Dovecot source runs as root (set CI to insist)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (_dovecot, source) = start_dovecot(work.path());
    let expected = fill_source(source, 1000);
    let env = Env::new();
    let ann = env.alias("ann", "pw");
    let url = format!("imap://old@127.0.0.1:{}", source.port());
    let migrate = || {
        let mut cmd = env.bin();
        cmd.args(["migrate", &ann, "--from", &url])
            .env("SEALMAIL_PASSWORD", "pw")
            .env("SEALMAIL_SOURCE_PASSWORD", "pw");
        cmd
    };

    // Killed once some batches are in.
    let mut child = migrate()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    kill_after(&mut child, "imported ");

    let started = Instant::now();
    let out = run_ok(&mut migrate());
    let took = started.elapsed();
    assert!(out.contains("in 4 folders"), "{out}");
    let (_b, store) = env.store();
    let s = unlock(&store, &ann, "pw");
    let mut got = BTreeMap::new();
    let mut seen_subjects = std::collections::HashSet::new();
    for f in block(s.list_folders()).unwrap() {
        if f.nonexistent || f.name == "Archive" {
            continue;
        }
        block(s.select(&f.name)).unwrap();
        let what = FetchWhat {
            envelope: true,
            ..Default::default()
        };
        let all = block(s.fetch(&f.name, UidSet::all(), what)).unwrap();
        for m in &all {
            let subject = m.envelope.as_ref().unwrap().subject.clone().unwrap();
            assert!(seen_subjects.insert(subject.clone()), "{subject} twice");
            let i: usize = subject.trim_start_matches('m').parse().unwrap();
            let flags = &m.meta.flags;
            let want = [
                0,
                Flags::SEEN,
                Flags::SEEN | Flags::FLAGGED,
                Flags::ANSWERED,
            ][i % 4];
            assert_eq!(flags.system, want, "{subject}");
            assert_eq!(
                flags.keywords.iter().any(|k| k == "$label1"),
                i % 4 == 3,
                "{subject}"
            );
            let date = sealmail::util::iso8601_utc(1_700_000_000 + i as i64 * 3600);
            assert_eq!(m.meta.internal_date, date, "{subject}");
        }
        if !all.is_empty() {
            got.insert(f.name.clone(), all.len());
        }
    }
    assert_eq!(got, expected);
    drop((s, store));
    eprintln!(
        "migrate: the remaining messages of 1,000 in {:.1} s",
        took.as_secs_f64()
    );

    // Once more: everything is there already.
    let out = run_ok(&mut migrate());
    assert!(
        out.contains("copied 0 messages") && out.contains("1000 there already"),
        "{out}"
    );
}
