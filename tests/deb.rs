//! The Debian package as a self-hoster installs it: `dpkg -i` makes the
//! `sealmail` user and its 0700 data directory, the unit passes
//! `systemd-analyze verify` (its man page included), commands run as
//! root leave files the service can open, the unit's command line serves
//! mail as `sealmail`, and `dpkg -r` removes the program but never the
//! mail. It installs system-wide, so it runs where that is wanted: in CI
//! (`CI` set) or with `SEALMAIL_TEST_DEB=1`, as root.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const DATA: &str = "/var/lib/sealmail";
const BACKUPS: &str = "/var/backups/sealmail";

fn sh(cmd: &str) -> String {
    run_ok(Command::new("sh").arg("-c").arg(cmd))
}

/// Leaves the machine as it was: package, user and data directory gone.
fn clean() {
    let _ = Command::new("pkill")
        .args(["-f", "sealmail serve --data /var/lib/sealmail"])
        .output();
    let _ = Command::new("dpkg").args(["--purge", "sealmail"]).output();
    let _ = std::fs::remove_dir_all(DATA);
    let _ = std::fs::remove_dir_all(BACKUPS);
    let _ = Command::new("deluser")
        .args(["--system", "sealmail"])
        .output();
    let _ = Command::new("delgroup")
        .args(["--system", "sealmail"])
        .output();
}

fn owned_by(path: &Path, uid: u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    assert_eq!(
        meta.uid(),
        uid,
        "{} belongs to uid {}",
        path.display(),
        meta.uid()
    );
    if meta.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            owned_by(&e.unwrap().path(), uid);
        }
    }
}

#[test]
fn the_package_installs_serves_and_removes_cleanly() {
    let wanted =
        std::env::var_os("CI").is_some() || std::env::var_os("SEALMAIL_TEST_DEB").is_some();
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if !(wanted && root) {
        eprintln!(
            "skipped: installs a package system-wide (runs as root with CI or SEALMAIL_TEST_DEB set)"
        );
        return;
    }
    clean();
    let work = tempfile::tempdir().unwrap();
    let deb = work.path().join("sealmail.deb");
    let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/deb/build.sh");
    run_ok(
        Command::new("bash")
            .arg(&build)
            .arg(env!("CARGO_BIN_EXE_sealmail"))
            .arg(&deb)
            .arg("gzip"),
    );
    run_ok(Command::new("dpkg").arg("-i").arg(&deb));

    let uid: u32 = sh("id -u sealmail").trim().parse().unwrap();
    assert_ne!(uid, 0);
    let meta = std::fs::metadata(DATA).unwrap();
    assert_eq!(meta.uid(), uid);
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let meta = std::fs::metadata(BACKUPS).unwrap();
    assert_eq!(meta.uid(), uid);
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert!(Path::new("/usr/share/man/man1/sealmail.1.gz").exists());
    run_ok(
        Command::new("systemd-analyze").args(["verify", "/lib/systemd/system/sealmail.service"]),
    );
    let unit = std::fs::read_to_string("/lib/systemd/system/sealmail.service").unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap()
        .to_string();
    assert!(exec.starts_with("/usr/bin/sealmail serve"), "{exec}");

    // The README's path, as root.
    let bin = "/usr/bin/sealmail";
    // Backups default to /var/backups/sealmail: refused when that is the
    // data's filesystem (as on this machine), until accepted.
    let init = || {
        let mut cmd = Command::new(bin);
        cmd.args(["--data", DATA, "init", "--hostname", "mail.example.org"]);
        cmd
    };
    let same = sealmail::util::same_filesystem(Path::new(DATA), Path::new(BACKUPS)).unwrap();
    if same {
        let out = init().output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("--allow-same-disk"),
            "{err}"
        );
        assert!(!Path::new(DATA).join("sealmail.toml").exists());
        run_ok(init().arg("--allow-same-disk"));
    } else {
        run_ok(&mut init());
    }
    owned_by(Path::new(BACKUPS), uid);
    // Loopback ports for the test (the template listens on 0.0.0.0:25...).
    let config = Path::new(DATA).join("sealmail.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    let mut ports = std::collections::HashMap::new();
    text = text.replace("\"127.0.0.1:9465\"", "\"127.0.0.1:0\"");
    for p in [25u16, 587, 465, 143, 993, 110, 995, 7443, 80, 443] {
        let port = free_port();
        ports.insert(p, port);
        text = text.replace(
            &format!("\"0.0.0.0:{p}\""),
            &format!("\"127.0.0.1:{port}\""),
        );
    }
    text = text.replace("check_senders = true", "check_senders = false");
    std::fs::write(&config, text).unwrap();
    run_ok(Command::new(bin).args([
        "--data",
        DATA,
        "domain",
        "add",
        "example.org",
        "--postmaster",
        "ops@example.net",
    ]));
    let out = run_ok(Command::new(bin).args(["--data", DATA, "alias", "add", "ann@example.org"]));
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once, not stored): "))
        .unwrap()
        .to_string();
    owned_by(Path::new(DATA), uid);

    // The unit's command line, as its user.
    let args: Vec<&str> = exec.split_whitespace().collect();
    let log = std::fs::File::create(work.path().join("serve.log")).unwrap();
    let mut server = ServerProcess(
        Command::new("runuser")
            .args(["-u", "sealmail", "--"])
            .args(&args)
            .env("SEALMAIL_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let mx: SocketAddr = ([127, 0, 0, 1], ports[&25]).into();
    let deadline = Instant::now() + Duration::from_secs(60);
    let stream = loop {
        if let Ok(s) = TcpStream::connect(mx) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the packaged server did not start: {}",
            std::fs::read_to_string(work.path().join("serve.log")).unwrap_or_default()
        );
        assert!(
            server.0.try_wait().unwrap().is_none(),
            "it exited: {}",
            std::fs::read_to_string(work.path().join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let replies = smtp_exchange(
        stream,
        &[
            "EHLO sender.example.net",
            "MAIL FROM:<bob@example.net>",
            "RCPT TO:<ann@example.org>",
            "DATA",
            "Subject: packaged\r\n\r\nhello\r\n.",
            "QUIT",
        ],
    );
    assert!(replies[5].starts_with("250"), "{replies:?}");
    // runuser's child, the server, runs as sealmail; SIGTERM stops it.
    let runuser = server.0.id();
    let children =
        std::fs::read_to_string(format!("/proc/{runuser}/task/{runuser}/children")).unwrap();
    let pid = children.split_whitespace().next().expect("runuser's child");
    let owner = std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
    assert_eq!(owner, uid, "the server runs as uid {owner}");
    run_ok(Command::new("kill").args(["-TERM", pid]));
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(server);

    // Root reads the mailbox through the CLI, which runs as sealmail.
    let out = run_ok(
        Command::new(bin)
            .args(["--data", DATA, "mailbox", "status", "ann@example.org"])
            .env("SEALMAIL_PASSWORD", &password),
    );
    assert!(out.contains("INBOX\t1 messages"), "{out}");
    owned_by(Path::new(DATA), uid);

    run_ok(Command::new("dpkg").args(["-r", "sealmail"]));
    assert!(!Path::new(bin).exists());
    assert!(!Path::new("/lib/systemd/system/sealmail.service").exists());
    assert!(
        Path::new(DATA).join("sealmail.toml").exists(),
        "the mail stays"
    );
    clean();
}
