//! The command line as an operator uses it: init, config errors, domains and
//! aliases, generated passwords, and `serve --dev` starting and stopping.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn run(env: &Env, args: &[&str]) -> (bool, String, String) {
    let out = env.bin().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_private_files_and_keeps_them() {
    let env = Env::new();
    for f in [
        "server.key",
        "control.sqlite",
        "sealmail.toml",
        "tls/key.pem",
    ] {
        assert_eq!(mode(&env.data().join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(env.data()), 0o700);
    let key = std::fs::read(env.data().join("server.key")).unwrap();
    let (ok, out, _) = run(&env, &["init"]);
    assert!(ok);
    assert!(
        out.contains("config kept, server key kept, certificate kept"),
        "{out}"
    );
    assert_eq!(std::fs::read(env.data().join("server.key")).unwrap(), key);
}

#[test]
fn a_bad_config_names_file_key_and_problem() {
    let env = Env::new();
    let file = env.data().join("sealmail.toml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("max_message_size = \"50M\"", "max_message_size = \"lots\"");
    std::fs::write(&file, text).unwrap();
    let (ok, _, err) = run(&env, &["domain", "list"]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "{}: limits.max_message_size: \"lots\" is not a size",
            file.display()
        )),
        "{err}"
    );
    std::fs::write(&file, "[server]\nhostname = \"x.org\"\ncolour = \"blue\"\n").unwrap();
    let (ok, _, err) = run(&env, &["domain", "list"]);
    assert!(!ok);
    assert!(
        err.contains("sealmail.toml") && err.contains("colour"),
        "{err}"
    );
}

#[test]
fn domains_and_aliases() {
    let env = Env::new();
    let (ok, out, _) = run(&env, &["alias", "add", "Ann@Example.org", "--quota", "2G"]);
    assert!(ok);
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("password (shown once, not stored): "))
        .unwrap()
        .to_string();
    assert!(password.len() >= 30);
    assert!(
        files_containing(env.data(), password.as_bytes()).is_empty(),
        "the password is never stored"
    );
    let (_, list, _) = run(&env, &["alias", "list"]);
    assert!(
        list.contains("ann@example.org\tmailbox\tquota 2 GiB (2147483648 bytes)"),
        "{list}"
    );
    assert!(!list.contains(&password));

    let (ok, _, err) = run(&env, &["alias", "add", "x@unknown.org"]);
    assert!(
        !ok && err.contains("domain unknown.org is not configured"),
        "{err}"
    );
    let (ok, _, err) = run(&env, &["domain", "remove", "example.org"]);
    assert!(!ok && err.contains("still has 1 aliases"), "{err}");
    let (ok, _, err) = run(&env, &["alias", "remove", "ann@example.org"]);
    assert!(!ok && err.contains("--purge"), "{err}");

    let (ok, _, _) = run(
        &env,
        &[
            "alias",
            "forward",
            "ann@example.org",
            "--to",
            "ann@elsewhere.net",
        ],
    );
    assert!(ok);
    let a = env.control().alias("ann@example.org").unwrap().unwrap();
    assert_eq!(a.forward, vec!["ann@elsewhere.net".to_string()]);

    let out = env
        .bin()
        .args(["mailbox", "status", "ann@example.org"])
        .env("SEALMAIL_PASSWORD", &password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("INBOX\t0 messages"));

    // Sealed mail: status imports it, and the process exits cleanly after
    // the work its logout starts (indexing the new mail) has ended.
    {
        let (_b, store) = env.store();
        for i in 0..3 {
            let m = text_message(&format!("sealed {i}"), "x");
            block(store.deliver("ann@example.org", m)).unwrap();
        }
    }
    let out = env
        .bin()
        .args(["mailbox", "status", "ann@example.org"])
        .env("SEALMAIL_PASSWORD", &password)
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("imported 3 sealed messages"), "{stdout}");
    assert!(stdout.contains("INBOX\t3 messages"), "{stdout}");

    let (ok, _, _) = run(&env, &["alias", "remove", "ann@example.org", "--purge"]);
    assert!(ok);
    assert_eq!(
        std::fs::read_dir(env.data().join("mailboxes"))
            .unwrap()
            .count(),
        0
    );
    let (ok, _, _) = run(&env, &["domain", "remove", "example.org"]);
    assert!(ok);
}

#[test]
fn serve_dev_starts_prints_the_demo_account_and_stops_cleanly() {
    let cwd = tempfile::tempdir().unwrap();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_sealmail"))
            .args(["serve", "--dev"])
            .current_dir(cwd.path())
            .env_remove("SEALMAIL_DATA")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let stop = |child: &mut std::process::Child| {
        let ok = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "serve did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let wait_ready = |child: &mut std::process::Child| {
        let err = BufReader::new(child.stderr.take().unwrap());
        for line in err.lines() {
            if line.unwrap().contains("sealmail is ready") {
                return;
            }
        }
        panic!("serve never became ready");
    };
    let mut child = start();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut password = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        if let Some(p) = line.trim().strip_prefix("password: ") {
            password = Some(p.to_string());
        }
        if line.contains("Change it with") {
            break;
        }
        line.clear();
    }
    let password = password.expect("demo password printed");
    wait_ready(&mut child);
    let status = stop(&mut child);
    assert!(status.success(), "{status:?}");
    let data = cwd.path().join("data");
    assert!(data.join("sealmail.toml").exists());
    let status = Command::new(env!("CARGO_BIN_EXE_sealmail"))
        .args([
            "--data",
            data.to_str().unwrap(),
            "mailbox",
            "status",
            "demo@sealmail.test",
        ])
        .env("SEALMAIL_PASSWORD", &password)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );

    // The second start keeps the account and prints no password.
    let mut child = start();
    wait_ready(&mut child);
    assert!(stop(&mut child).success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut rest).unwrap();
    assert!(!rest.contains("password:"), "{rest}");
}

/// A reader that goes away (`sealmail ... | head`) ends the command
/// quietly with status 0, not with a "Broken pipe" panic; `mailbox
/// status` of an unknown address says so before asking for a password;
/// quotas take the units people write and say what they took.
#[test]
fn broken_pipes_unknown_aliases_and_quota_units() {
    let env = Env::new();
    let _ = run(&env, &["domain", "add", "example.org"]);
    for i in 0..200 {
        assert!(
            run(
                &env,
                &["alias", "add", &format!("a{i}@example.org"), "--no-mailbox"]
            )
            .0
        );
    }
    for _ in 0..3 {
        let mut child = env
            .bin()
            .args(["alias", "list"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{:?}: {err}", out.status);
        assert!(!err.contains("panicked"), "{err}");
    }

    let out = env
        .bin()
        .args(["mailbox", "status", "nobody@example.org"])
        .env_remove("SEALMAIL_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no alias nobody@example.org"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (ok, out, _) = run(&env, &["alias", "add", "q@example.org", "--quota", "2GB"]);
    assert!(ok);
    assert!(out.contains("(quota 2 GiB (2147483648 bytes))"), "{out}");
    for (given, said) in [
        ("2GiB", "2 GiB (2147483648 bytes)"),
        ("2G", "2 GiB (2147483648 bytes)"),
        ("1536M", "1.5 GiB (1610612736 bytes)"),
    ] {
        let (ok, out, _) = run(&env, &["alias", "quota", "q@example.org", given]);
        assert!(ok);
        assert!(out.contains(said), "{given}: {out}");
    }
    let (ok, _, err) = run(&env, &["alias", "quota", "q@example.org", "2 parsecs"]);
    assert!(!ok);
    assert!(err.contains("units of 1024"), "{err}");
}

/// Every domain keeps postmaster@ and abuse@ (RFC 5321 §4.5.1, RFC 2142):
/// `domain add` makes them, `alias remove` refuses them, and they go
/// with their domain.
#[test]
fn domains_come_with_postmaster_and_abuse() {
    let env = Env::new();
    let (ok, out, err) = run(&env, &["domain", "add", "other.org"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("password of postmaster@other.org (shown once, not stored): "),
        "{out}"
    );
    let (_, list, _) = run(&env, &["alias", "list", "other.org"]);
    assert!(list.contains("postmaster@other.org\tmailbox"), "{list}");
    assert!(
        list.contains("abuse@other.org\tforward postmaster@other.org"),
        "{list}"
    );
    for required in ["postmaster@other.org", "ABUSE@other.org"] {
        let (ok, _, err) = run(&env, &["alias", "remove", required, "--purge"]);
        assert!(
            !ok && err.contains("is required while its domain exists"),
            "{err}"
        );
    }
    let (ok, _, err) = run(&env, &["domain", "remove", "other.org"]);
    assert!(!ok && err.contains("--purge"), "{err}");
    let id = env
        .control()
        .alias("postmaster@other.org")
        .unwrap()
        .unwrap()
        .mailbox_id;
    let file = env.data().join("mailboxes").join(format!("{id}.sqlite"));
    let (_, store) = env.store();
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("password of postmaster@other.org (shown once, not stored): "))
        .unwrap();
    drop(unlock(&store, "postmaster@other.org", password));
    drop(store);
    assert!(file.exists(), "{}", file.display());
    let (ok, _, err) = run(&env, &["domain", "remove", "other.org", "--purge"]);
    assert!(ok, "{err}");
    assert!(!file.exists(), "{}", file.display());
    let (_, list, _) = run(&env, &["alias", "list", "other.org"]);
    assert!(list.is_empty(), "{list}");

    let (ok, out, err) = run(
        &env,
        &[
            "domain",
            "add",
            "third.org",
            "--postmaster",
            "ops@example.net",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("forward to ops@example.net"), "{out}");
    assert!(!out.contains("password"), "{out}");
    let (_, list, _) = run(&env, &["alias", "list", "third.org"]);
    assert!(
        list.contains("postmaster@third.org\tforward ops@example.net"),
        "{list}"
    );
    let (ok, _, err) = run(&env, &["alias", "add", "x@third.org", "--no-mailbox"]);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&env, &["domain", "remove", "third.org"]);
    assert!(!ok && err.contains("still has 1 aliases"), "{err}");
    assert!(run(&env, &["alias", "remove", "x@third.org"]).0);
    let (ok, _, err) = run(&env, &["domain", "remove", "third.org"]);
    assert!(ok, "{err}");
}

/// Run as root on a data directory another user owns (the service's
/// user), commands run as that user: what they create belongs to it, so
/// the server can open it. A config that cannot be read for lack of
/// permission does not suggest `sealmail init`.
#[test]
fn root_runs_commands_as_the_data_directorys_owner() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    if me != 0 {
        eprintln!("not root: the owner switch is for root only; nothing to check here");
        return;
    }
    // `nobody` (65534) owns the data directory, as `sealmail` would.
    let ok = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(env.data())
        .status()
        .unwrap();
    assert!(ok.success());
    let (ok, out, err) = run(&env, &["alias", "add", "owned@example.org"]);
    assert!(ok, "{err}");
    assert!(out.contains("added owned@example.org"), "{out}");
    for entry in walk(env.data()) {
        let meta = std::fs::metadata(&entry).unwrap();
        assert_eq!(
            meta.uid(),
            65534,
            "{} belongs to {}",
            entry.display(),
            meta.uid()
        );
    }
    let out = env
        .bin()
        .args(["mailbox", "status", "owned@example.org"])
        .env("SEALMAIL_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Permission denied"));

    // The owner may not read its config: no `init` hint, the fix instead.
    std::fs::set_permissions(
        env.data().join("sealmail.toml"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let (ok, _, err) = run(&env, &["alias", "list"]);
    assert!(!ok);
    assert!(!err.contains("sealmail init"), "{err}");
    assert!(err.contains("data directory's owner"), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `alias password ADDR --choose`: the owner types the new password (on
/// standard input here, after the current one); a weak one is refused with
/// the reason and changes nothing; a good one is never printed, opens the
/// mailbox with its mail, and the old one no longer does.
#[test]
fn an_owner_chooses_a_password_the_operator_never_sees() {
    let env = Env::new();
    let addr = env.alias("cleo", "first-password-77");
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, "first-password-77");
        block(s.append(append_req("INBOX", text_message("kept", "x")))).unwrap();
    }
    let choose = |stdin: &str| {
        let mut child = env
            .bin()
            .args(["alias", "password", &addr, "--choose"])
            .env_remove("SEALMAIL_PASSWORD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    for (weak, why) in [
        ("short-1", "at least 12"),
        ("cleo-cleo-cleo-2026", "part of the address"),
        ("password123456", "only digits, symbols or common words"),
    ] {
        let out = choose(&format!("first-password-77\n{weak}\n"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{weak}: {err}");
    }
    let out = choose("not-the-password\nlantern-grapefruit-74\n");
    assert!(!out.status.success());
    let chosen = "lantern-grapefruit-74";
    let out = choose(&format!("first-password-77\n{chosen}\n"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("password changed"), "{stdout}");
    assert!(!stdout.contains(chosen) && !stderr.contains(chosen));
    let (_b, store) = env.store();
    assert!(block(store.unlock(&addr, "first-password-77")).is_err());
    let s = unlock(&store, &addr, chosen);
    assert_eq!(block(s.select("INBOX")).unwrap().status.messages, 1);
}

/// Backups on the data's disk are refused by `init` and by the server
/// unless accepted (`--allow-same-disk`, `backup.allow_same_disk`), and
/// `init` says where backups go.
#[test]
fn backups_on_the_data_disk_need_consent() {
    let dir = tempfile::tempdir().unwrap();
    let (data, backups) = (dir.path().join("data"), dir.path().join("elsewhere"));
    let sealmail = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealmail"));
        cmd.arg("--data").arg(&data);
        cmd
    };
    let out = sealmail()
        .args(["init", "--backup-dir"])
        .arg(&backups)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("same disk") && err.contains("--allow-same-disk"),
        "{err}"
    );
    assert!(!data.join("sealmail.toml").exists());

    let out = run_ok(
        sealmail()
            .args(["init", "--allow-same-disk", "--backup-dir"])
            .arg(&backups),
    );
    assert!(
        out.contains(&format!("backups: {}", backups.display())),
        "{out}"
    );
    assert!(out.contains("same disk as the mail"), "{out}");
    assert_eq!(mode(&backups), 0o700);
    let config = sealmail::config::Config::load(&data).unwrap();
    assert_eq!(config.backup_dir, backups);

    // Consent withdrawn in the file: the server does not start.
    let file = data.join("sealmail.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let ports: Vec<String> = (0..10)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let mut edited = text
        .replace("allow_same_disk = true", "allow_same_disk = false")
        .replace("\"127.0.0.1:9465\"", "\"127.0.0.1:0\"");
    for (p, port) in [
        "25", "587", "465", "143", "993", "110", "995", "7443", "80", "443",
    ]
    .iter()
    .zip(&ports)
    {
        edited = edited.replace(&format!("\"0.0.0.0:{p}\""), &format!("\"{port}\""));
    }
    std::fs::write(&file, edited).unwrap();
    let out = sealmail()
        .arg("serve")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("backup.allow_same_disk = true"), "{err}");
}
