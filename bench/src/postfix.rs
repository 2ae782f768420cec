//! Postfix as the reference MX: Debian's postfix (`make bench` installs it
//! when missing) started on loopback from a config directory of its own,
//! never the system instance, at its defaults (queue files synced before
//! `250`), handing every message for example.org to the reference Dovecot
//! over LMTP. The load tool for both MX servers is Postfix's own
//! `smtp-source`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{free_port, let_others_pass, wait_for_listener};

const POSTFIX: &str = "/usr/sbin/postfix";
const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";

/// A Postfix instance of our own; stopped on drop.
pub(crate) struct Postfix {
    etc: PathBuf,
    spool: PathBuf,
    pub(crate) smtp: SocketAddr,
}

impl Postfix {
    /// Starts Postfix in `dir`, delivering example.org's `users` to the
    /// LMTP server at `lmtp`; `None` (with the reason printed) where it
    /// cannot run here.
    pub(crate) fn start(dir: &Path, lmtp: SocketAddr, users: &[&str]) -> Option<Postfix> {
        if !Path::new(POSTFIX).exists() || !Path::new(SMTP_SOURCE).exists() {
            println!(
                "(Postfix is not installed: `make bench` installs postfix; its reference skipped)"
            );
            return None;
        }
        let (etc, spool, data) = (dir.join("etc"), dir.join("spool"), dir.join("data"));
        for d in [&etc, &spool, &data] {
            std::fs::create_dir_all(d).expect("dir");
        }
        // The queue runs as the postfix user; its data directory is its own.
        let status = Command::new("chown")
            .arg("postfix")
            .arg(&data)
            .status()
            .expect("chown");
        assert!(status.success(), "chown postfix");
        let_others_pass(dir);
        let port = free_port();
        let d = dir.display();
        std::fs::write(
            etc.join("main.cf"),
            format!(
                "compatibility_level = 3.6
config_directory = {d}/etc
queue_directory = {d}/spool
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = reference.example.net
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = example.org
virtual_mailbox_maps = texthash:{d}/etc/mailboxes
virtual_transport = lmtp:inet:{lmtp}
alias_maps =
alias_database =
biff = no
maillog_file = {d}/postfix.log
maillog_file_prefixes = {d}
"
            ),
        )
        .expect("main.cf");
        let mailboxes: String = users.iter().map(|u| format!("{u} x\n")).collect();
        std::fs::write(etc.join("mailboxes"), mailboxes).expect("mailboxes");
        // Debian's master.cf without chroot, smtpd on our port.
        let services = [
            "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup",
            "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite",
            "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce",
            "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify",
            "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap",
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "showq unix n - n - - showq",
            "error unix - - n - - error",
            "retry unix - - n - - error",
            "discard unix - - n - - discard",
            "lmtp unix - - n - - lmtp",
            "anvil unix - - n - 1 anvil",
            "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ];
        let master = format!(
            "127.0.0.1:{port} inet n - n - - smtpd\n{}\n",
            services.join("\n")
        );
        std::fs::write(etc.join("master.cf"), master).expect("master.cf");
        let ok = Command::new(POSTFIX)
            .arg("-c")
            .arg(&etc)
            .arg("start")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            println!("(Postfix did not start; see {d}/postfix.log; its reference skipped)");
            return None;
        }
        let postfix = Postfix {
            etc,
            spool,
            smtp: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        wait_for_listener(postfix.smtp, &format!("Postfix; see {d}/postfix.log"));
        Some(postfix)
    }

    /// The master process, root of every Postfix process.
    pub(crate) fn master(&self) -> Option<u32> {
        std::fs::read_to_string(self.spool.join("pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new(POSTFIX)
            .arg("-c")
            .arg(&self.etc)
            .arg("abort")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs `smtp-source`: `sessions` connections, each sending its share of
/// `count` messages of 4 KiB to `rcpt` over one connection (SMTP, or LMTP
/// where `lmtp`). Returns how long until the last was acknowledged.
pub(crate) fn smtp_source(
    addr: SocketAddr,
    lmtp: bool,
    sessions: usize,
    count: usize,
    rcpt: &str,
) -> Duration {
    let t = Instant::now();
    let mut cmd = Command::new(SMTP_SOURCE);
    if lmtp {
        cmd.arg("-L");
    }
    let status = cmd
        .args(["-d", "-s", &sessions.to_string(), "-m", &count.to_string()])
        .args(["-l", "4096", "-f", "sender@example.net", "-t", rcpt])
        .arg(addr.to_string())
        .stdin(Stdio::null())
        .status()
        .expect("smtp-source");
    assert!(status.success(), "smtp-source to {addr}: {status}");
    t.elapsed()
}

/// Messages in a Dovecot maildir (new and cur).
pub(crate) fn maildir_count(maildir: &Path) -> usize {
    ["new", "cur"]
        .iter()
        .map(|d| std::fs::read_dir(maildir.join(d)).map_or(0, |r| r.count()))
        .sum()
}

/// Waits (up to two minutes) until `maildir` holds `n` messages; the time
/// from `since`.
pub(crate) fn delivered(maildir: &Path, n: usize, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(120);
    while maildir_count(maildir) < n {
        assert!(
            Instant::now() < deadline,
            "Postfix delivered {} of {n} to {}",
            maildir_count(maildir),
            maildir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    since.elapsed()
}
