//! Backups to a real S3-compatible server on loopback (moto's server, from
//! PyPI): one object and a manifest per change, nothing for no change, the
//! object encrypted (no SQLite header, no canary, opens only with the key),
//! and a restore from the bucket.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use sealmail::store::db::DbKey;
use sealmail::store::mailbox::{Limits, Mailbox};

const CANARY: &str = "S3Canary90210";

/// One test of this file at a time: one stops its moto and starts it again
/// on the same port, which another test's `free_port` could hand out
/// meanwhile.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn start_moto() -> (Peer, u16) {
    start_moto_on(free_port())
}

fn start_moto_on(port: u16) -> (Peer, u16) {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyenv/bin/moto_server");
    assert!(
        bin.exists(),
        "{} is missing: run `make test`",
        bin.display()
    );
    let child = std::process::Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let peer = Peer(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "moto did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (peer, port)
}

fn bucket(port: u16) -> Box<s3::Bucket> {
    let region = s3::Region::Custom {
        region: "eu-west-1".into(),
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let creds = s3::creds::Credentials::new(Some("test"), Some("test"), None, None, None).unwrap();
    // A moto that has just opened its port may refuse a first request on
    // a busy machine: try for a while.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = s3::Bucket::create_with_path_style(
        "mail-backups",
        region.clone(),
        creds.clone(),
        s3::BucketConfiguration::default(),
    ) {
        assert!(Instant::now() < deadline, "moto refused the bucket: {e}");
        std::thread::sleep(Duration::from_millis(200));
    }
    s3::Bucket::new("mail-backups", region, creds)
        .unwrap()
        .with_path_style()
}

/// Keys of mailbox backups (not the control database's or the spool's).
fn mailbox_keys(b: &s3::Bucket) -> Vec<String> {
    keys(b)
        .into_iter()
        .filter(|k| !k.starts_with("control/") && !k.starts_with("spool/"))
        .collect()
}

fn keys(b: &s3::Bucket) -> Vec<String> {
    let mut k: Vec<String> = b
        .list(String::new(), None)
        .unwrap()
        .into_iter()
        .flat_map(|p| p.contents)
        .map(|o| o.key)
        .collect();
    k.sort();
    k
}

#[test]
fn backups_go_to_s3_encrypted_and_come_back() {
    let _serial = one_at_a_time();
    let (_moto, port) = start_moto();
    let b = bucket(port);
    let env = Env::new();
    let file = env.data().join("sealmail.toml");
    let mut toml = std::fs::read_to_string(&file).unwrap();
    toml.push_str(&format!(
        "\n[backup.s3]\nendpoint = \"http://127.0.0.1:{port}\"\nregion = \"eu-west-1\"\nbucket = \"mail-backups\"\nprefix = \"sm\"\npath_style = true\n"
    ));
    std::fs::write(&file, toml).unwrap();
    let addr = env.alias("ann", "pw");
    {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, "pw");
        for i in 0..10 {
            let m = text_message(&format!("m{i}"), &format!("{CANARY} {i}"));
            block(s.append(append_req("INBOX", m))).unwrap();
        }
    }
    let run = |args: &[&str]| {
        let mut cmd = env.bin();
        cmd.arg("backup")
            .args(args)
            .env("SEALMAIL_PASSWORD", "pw")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test");
        run_ok(&mut cmd)
    };
    assert!(run(&["now", &addr]).contains("backed up"));
    assert!(run(&["now", &addr]).contains("unchanged"));
    let id = env.control().alias(&addr).unwrap().unwrap().mailbox_id;
    let k = keys(&b);
    assert_eq!(k.len(), 2, "{k:?}");
    assert!(
        k.iter().all(|k| k.starts_with(&format!("sm/{id}/"))),
        "{k:?}"
    );
    assert!(!k.iter().any(|k| k.contains("ann")));
    let object = k.iter().find(|k| k.ends_with(".sqlite")).unwrap();
    let bytes = b.get_object(object).unwrap().bytes().to_vec();
    assert!(!bytes.starts_with(b"SQLite format 3"));
    assert!(!bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()));
    let copy = env.dir.path().join("downloaded.sqlite");
    std::fs::write(&copy, &bytes).unwrap();
    assert!(Mailbox::open(&copy, DbKey::Plain, Limits::default()).is_err());
    let dek = env.dek(&addr, "pw");
    let mut mb = Mailbox::open(&copy, DbKey::Raw(&dek), Limits::default()).unwrap();
    assert_eq!(mb.usage().unwrap().1, 10);
    drop(mb);
    std::fs::remove_file(&copy).unwrap();

    {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, "pw");
        block(s.append(append_req("INBOX", text_message("m10", "more")))).unwrap();
    }
    assert!(run(&["now", &addr]).contains("11 messages"));
    assert_eq!(keys(&b).len(), 4);
    assert_eq!(run(&["list", &addr]).lines().count(), 2);

    // Lose the mailbox file entirely, then restore the newest backup.
    let live = env.mailbox_path(&addr);
    std::fs::remove_file(&live).unwrap();
    // Asked for, a progress line goes to stderr; stdout stays as scripts
    // read it.
    let out = env
        .bin()
        .args(["backup", "restore", &addr])
        .env("SEALMAIL_PASSWORD", "pw")
        .env("SEALMAIL_PROGRESS", "1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("11 messages"), "{stdout}");
    assert!(!stdout.contains("MiB"), "{stdout}");
    assert!(
        stderr.contains("downloading ") && stderr.contains("MiB (100%)"),
        "{stderr}"
    );
    let (_b, store) = env.store();
    let s = unlock(&store, &addr, "pw");
    let found = block(s.search("INBOX", sealmail::store::Criteria::Body(CANARY.into())))
        .unwrap()
        .uids;
    assert_eq!(found.len(), 10);
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn scheduler_backs_up_open_mailboxes_and_rides_out_an_s3_outage() {
    let _serial = one_at_a_time();
    let (moto, port) = start_moto();
    let b = bucket(port);
    let mut env = Env::new();
    env.config.dev = true;
    env.config.backup_s3 = Some(sealmail::config::S3 {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "eu-west-1".into(),
        bucket: "mail-backups".into(),
        prefix: String::new(),
        path_style: true,
        access_key: Some("test".into()),
        secret_key: Some("test".into()),
    });
    env.config.backup_policy = Some(sealmail::backup::scheduler::Policy {
        interval: Duration::from_secs(2),
        keep_daily: 7,
        keep_weekly: 4,
        concurrency: 2,
    });
    let addr = env.alias("ann", "pw");
    let server = env.serve();
    let _pop = pop3_login(server.pop3, &addr);
    let manifests = |b: &s3::Bucket| {
        mailbox_keys(b)
            .iter()
            .filter(|k| k.ends_with(".json"))
            .count()
    };
    // Message counts of the backups in the bucket (one that retention
    // removed between the listing and the read is skipped).
    let counts = |b: &s3::Bucket| -> Vec<u64> {
        mailbox_keys(b)
            .iter()
            .filter(|k| k.ends_with(".json"))
            .filter_map(|k| b.get_object(k).ok())
            .map(|object| {
                let m: serde_json::Value = serde_json::from_slice(object.bytes()).unwrap();
                m["messages"].as_u64().unwrap()
            })
            .collect()
    };
    wait_for(
        "the first scheduled backup",
        Duration::from_secs(30),
        || manifests(&b) >= 1,
    );
    // The server's own files come along: the control database.
    wait_for(
        "the control database's backup",
        Duration::from_secs(30),
        || {
            keys(&b)
                .iter()
                .any(|k| k.starts_with("control/") && k.ends_with(".json"))
        },
    );
    assert!(smtp_send(server.smtp, &addr, "after first backup").starts_with("250 "));
    // Retention keeps one backup per day: the newer replaces the older.
    wait_for("a backup of the change", Duration::from_secs(30), || {
        counts(&b) == vec![1]
    });

    // S3 goes away: mail still flows, the failure is recorded.
    drop(moto);
    assert!(smtp_send(server.smtp, &addr, "during the outage").starts_with("250 "));
    let id = env.control().alias(&addr).unwrap().unwrap().id;
    wait_for("a recorded failure", Duration::from_secs(60), || {
        env.control()
            .backup_status(id)
            .unwrap()
            .is_some_and(|s| s.last_error.is_some())
    });
    // It comes back (empty, as moto keeps nothing): the next try succeeds.
    let (_moto2, _) = start_moto_on(port);
    let b2 = bucket(port);
    wait_for("a backup after the outage", Duration::from_secs(60), || {
        counts(&b2) == vec![2]
    });
    wait_for("the error cleared", Duration::from_secs(30), || {
        env.control()
            .backup_status(id)
            .unwrap()
            .is_some_and(|s| s.last_ok.is_some() && s.last_error.is_none())
    });
    drop(server);
    assert_eq!(subjects(&env, &addr), 2);
}

fn subjects(env: &Env, addr: &str) -> usize {
    let (_b, store) = env.store();
    let s = unlock(&store, addr, "pw");
    block(s.select("INBOX")).unwrap().uids.len()
}

/// A server that dies in the middle of an upload (the process aborts after
/// 12 MiB of a ~20 MiB multipart upload, as a kill -9 would leave it): the
/// previous backup stays listed and restorable, no half backup appears,
/// and the next run after a restart completes.
#[test]
fn a_server_killed_mid_upload_leaves_the_previous_backup() {
    let _serial = one_at_a_time();
    let (_moto, port) = start_moto();
    let b = bucket(port);
    let mut env = Env::new();
    let pop3 = free_port();
    let mut text = std::fs::read_to_string(&env.config.file).unwrap();
    text = text
        .replace("dev = false", "dev = true")
        .replace("\"0.0.0.0:110\"", &format!("\"127.0.0.1:{pop3}\""))
        .replace("interval = \"24h\"", "interval = \"2s\"");
    for p in ["25", "587", "465", "143", "993", "995"] {
        text = text.replace(&format!("\"0.0.0.0:{p}\""), "\"127.0.0.1:0\"");
    }
    text.push_str(&format!(
        "\n[backup.s3]\nendpoint = \"http://127.0.0.1:{port}\"\nregion = \"eu-west-1\"\nbucket = \"mail-backups\"\npath_style = true\naccess_key = \"test\"\nsecret_key = \"test\"\n"
    ));
    std::fs::write(&env.config.file, text).unwrap();
    env.config = sealmail::config::Config::load(env.data()).unwrap();
    let addr = env.alias("ann", "pw");
    let append = |from: usize, to: usize| {
        let (_b, store) = env.store();
        let s = unlock(&store, &addr, "pw");
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for i in from..to {
            // About 1 MiB that does not compress: ~1.3 MiB of base64.
            let noise: Vec<u8> = (0..(1 << 20))
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect();
            let m = with_attachment(&format!("m{i}"), "big", &noise);
            block(s.append(append_req("INBOX", m))).unwrap();
        }
    };
    append(0, 14);
    let cli = |args: &[&str]| {
        let mut cmd = env.bin();
        cmd.args(args).env("SEALMAIL_PASSWORD", "pw");
        run_ok(&mut cmd)
    };
    assert!(cli(&["backup", "now", &addr]).contains("14 messages"));
    append(14, 15);
    let manifests = |b: &s3::Bucket| {
        mailbox_keys(b)
            .iter()
            .filter(|k| k.ends_with(".json"))
            .count()
    };
    let objects = |b: &s3::Bucket| {
        mailbox_keys(b)
            .iter()
            .filter(|k| k.ends_with(".sqlite"))
            .count()
    };
    assert_eq!((manifests(&b), objects(&b)), (1, 1));

    let log = env.dir.path().join("server.log");
    let serve = |crash: Option<&str>| {
        let mut cmd = env.bin();
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        cmd.arg("serve")
            .env("SEALMAIL_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(err);
        if let Some(c) = crash {
            cmd.env("SEALMAIL_CRASH_AT", c);
        }
        let child = cmd.spawn().unwrap();
        wait_for("the server", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", pop3)).is_ok()
        });
        child
    };
    // The owner logs in, the scheduler starts the backup of the change,
    // and the process dies 12 MiB into the upload.
    let mut server = serve(Some("backup-upload-mib:12"));
    let pop = pop3_login(format!("127.0.0.1:{pop3}").parse().unwrap(), &addr);
    let status = wait_exit(&mut server, Duration::from_secs(60));
    assert!(!status.success(), "the server was to die mid-upload");
    drop(pop);
    assert_eq!(
        (manifests(&b), objects(&b)),
        (1, 1),
        "no half backup: {:?}",
        mailbox_keys(&b)
    );
    // The upload it left is incomplete: never listed, but its parts use
    // space until someone aborts it.
    assert_eq!(
        incomplete_uploads(&b).len(),
        1,
        "{:?}",
        incomplete_uploads(&b)
    );
    let listed = cli(&["backup", "list", &addr]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("14 messages"), "{listed}");
    let restored = cli(&["backup", "restore", &addr]);
    assert!(restored.contains("14 messages"), "{restored}");

    // After a restart the next run completes (and retention, keeping one
    // backup a day, then drops the older one of today).
    let before: Vec<String> = mailbox_keys(&b);
    let mut server = serve(None);
    let _pop = pop3_login(format!("127.0.0.1:{pop3}").parse().unwrap(), &addr);
    let start = Instant::now();
    while mailbox_keys(&b) == before {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no second backup; server log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Retention also aborts the upload the killed process left.
    let start = Instant::now();
    while (manifests(&b), objects(&b)) != (1, 1) || !incomplete_uploads(&b).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "retention: {:?}, incomplete {:?}; server log:\n{}",
            mailbox_keys(&b),
            incomplete_uploads(&b),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let listed = cli(&["backup", "list", &addr]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(
        !before.contains(&mailbox_keys(&b)[0]),
        "a new backup: {listed}"
    );
    assert!(listed.contains("14 messages"), "{listed}");
}

/// Keys of the multipart uploads begun and never completed or aborted.
fn incomplete_uploads(b: &s3::Bucket) -> Vec<String> {
    b.list_multiparts_uploads(None, None)
        .unwrap()
        .into_iter()
        .flat_map(|p| p.uploads)
        .map(|u| u.key)
        .collect()
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// After a disk loss, from S3 (moto): see
/// [`common::disaster::whole_server_restore`].
#[test]
fn the_whole_server_comes_back_from_s3_after_a_disk_loss() {
    let _serial = one_at_a_time();
    let (_moto, port) = start_moto();
    let _bucket = bucket(port);
    let env = Env::new();
    let s3 = format!(
        "\n[backup.s3]\nendpoint = \"http://127.0.0.1:{port}\"\nregion = \"eu-west-1\"\nbucket = \"mail-backups\"\npath_style = true\naccess_key = \"test\"\nsecret_key = \"test\"\n"
    );
    let use_s3 = move |env: &Env| {
        let file = env.data().join("sealmail.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        if !text.contains("[backup.s3]\nendpoint") {
            std::fs::write(&file, text + &s3).unwrap();
        }
    };
    // The whole data directory goes: the backups are in the bucket.
    let nothing_kept = env.data().join("no such directory");
    common::disaster::whole_server_restore(&env, &nothing_kept, &use_s3);
}
