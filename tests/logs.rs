//! What the server logs while it works, as an operator reads it: a mail
//! flow (MX in, IMAP read, submission out, a bounce), failed logins and a
//! ban each leave their line with its fields; no password, message body
//! line or key appears anywhere in the log; and fail2ban's own
//! `fail2ban-regex` matches the failed logins with the shipped filter, and
//! not the successful ones. `[log]` writes JSON lines to a file that
//! SIGUSR1 reopens, with addresses redacted, and a reload changes it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};

use common::imap::Client;
use common::*;

const PASSWORD: &str = "Secret-Horse-77-battery";
const WRONG: &str = "Wrong-Password-99-staple";
const CANARY: &str = "BODY-CANARY-4711-line";

fn imap_login_from(source: IpAddr, imap: SocketAddr, user: &str, password: &str) -> String {
    let s = connect_from(source, imap);
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    w.write_all(format!("a LOGIN {user} {password}\r\n").as_bytes())
        .unwrap();
    line.clear();
    r.read_line(&mut line).unwrap();
    line
}

#[test]
fn a_mail_flow_and_an_attack_leave_their_lines_and_no_secret() {
    let work = tempfile::tempdir().unwrap();
    let zone = serde_json::json!({ "nomail.test": [["MX", "0 ."]] });
    let (_dns, dns_port) = start_dns(work.path(), &zone);
    let mut env = Env::subprocess();
    let submission = free_port();
    let text = std::fs::read_to_string(&env.config.file)
        .unwrap()
        .replace(
            "nameservers = []",
            &format!("nameservers = [\"127.0.0.1:{dns_port}\"]"),
        )
        .replace(
            "submission = \"127.0.0.1:0\"",
            &format!("submission = \"127.0.0.1:{submission}\""),
        )
        .replace("check_senders = false", "check_senders = true");
    std::fs::write(&env.config.file, text).unwrap();
    env.config = sealmail::config::Config::load(env.data()).unwrap();
    let ann = env.alias("ann", PASSWORD);
    let server = env.spawn_server(&[("SEALMAIL_LOG", "sealmail=info")]);
    let log = || std::fs::read_to_string(env.data().join("serve.log")).unwrap_or_default();
    let (mx, imap) = (env.config.listen.smtp, env.config.listen.imap);

    // MX in, one unknown recipient refused.
    let r = smtp_exchange(
        TcpStream::connect(mx).unwrap(),
        &[
            "EHLO sender.example.net".into(),
            "MAIL FROM:<bob@sender.example.net>".into(),
            "RCPT TO:<nobody@example.org>".into(),
            format!("RCPT TO:<{ann}>"),
            "DATA".into(),
            format!("Subject: logs\r\n\r\n{CANARY}\r\n."),
            "QUIT".into(),
        ],
    );
    assert!(r[3].starts_with("550") && r[6].starts_with("250"), "{r:?}");

    // IMAP read.
    let mut c = Client::connect(imap).0;
    assert!(
        c.cmd(&format!("l LOGIN {ann} {PASSWORD}"))
            .last()
            .unwrap()
            .starts_with("l OK")
    );
    c.await_messages("INBOX", 1);
    drop(c);

    // Submission out (Python's smtplib, STARTTLS) to a domain with a null
    // MX: a bounce comes back.
    let script = format!(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP("127.0.0.1", {submission}, timeout=60) as s:
    s.starttls(context=ctx)
    s.login(sys.argv[1], sys.argv[2])
    s.sendmail(sys.argv[1], ["someone@nomail.test"],
               "From: <" + sys.argv[1] + ">\r\nTo: <someone@nomail.test>\r\nSubject: out\r\n\r\n{CANARY}\r\n")
"#
    );
    run_ok(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(&script)
            .arg(&ann)
            .arg(PASSWORD),
    );
    wait_for("the bounce", || log().contains("status=bounced"));

    // Failed logins from one address; then an attack from another that
    // ends in its ban (attempts sent at once count as one after another).
    let one: IpAddr = "127.0.0.2".parse().unwrap();
    for _ in 0..2 {
        assert!(imap_login_from(one, imap, &ann, WRONG).contains("NO"));
    }
    let attacker: IpAddr = "127.0.0.3".parse().unwrap();
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let ann = ann.clone();
            std::thread::spawn(move || imap_login_from(attacker, imap, &ann, WRONG))
        })
        .collect();
    let answers: Vec<String> = attempts.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        answers.iter().any(|a| a.contains("too many failed logins")),
        "{answers:?}"
    );
    wait_for("the ban's line", || log().contains("reason=banned"));
    drop(server);
    let log = log();

    let lines: Vec<&str> = log.lines().collect();
    let has = |needles: &[&str]| lines.iter().any(|l| needles.iter().all(|n| l.contains(n)));
    let mx_line = [
        "sealmail::smtp: mx id=",
        "client=127.0.0.1",
        "helo=\"sender.example.net\"",
        "from=\"bob@sender.example.net\"",
        &format!("rcpts=\"{ann}\""),
        "reply=\"250 ",
        "tls=no",
        "checks=\"spf=none dkim=none dmarc=none\"",
    ];
    assert!(has(&mx_line), "{log}");
    assert!(
        has(&[
            "sealmail::smtp: mx disconnect client=127.0.0.1",
            "commands=6 transactions=1 errors=",
            "end=quit"
        ]),
        "{log}"
    );
    assert!(
        has(&[
            "rcpt refused",
            "to=\"nobody@example.org\"",
            "reply=550 5.1.1"
        ]),
        "{log}"
    );
    assert!(
        has(&[
            "INFO sealmail::login: login ok proto=imap client=127.0.0.1",
            &format!("user=\"{ann}\""),
            "mechanism=LOGIN"
        ]),
        "{log}"
    );
    assert!(
        has(&["login ok proto=submission", "mechanism=PLAIN"]),
        "{log}"
    );
    assert!(
        has(&[
            "sealmail::smtp: submission id=",
            &format!("user=\"{ann}\""),
            "rcpts=\"someone@nomail.test\""
        ]),
        "{log}"
    );
    // The queue id of submission's reply names the message in the queue.
    let queued = log
        .split("Message queued as ")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a queued reply");
    assert!(
        has(&[
            "sealmail::queue:",
            &format!("queue_id={queued} "),
            "to=\"someone@nomail.test\"",
            "status=bounced",
            "dsn=5.0.0",
            "delay=",
            "null MX"
        ]),
        "{log}"
    );
    assert!(
        has(&[
            "WARN sealmail::login: login failed proto=imap client=127.0.0.2",
            "reason=auth-failed"
        ]),
        "{log}"
    );
    assert!(
        has(&["login failed proto=imap client=127.0.0.3", "reason=banned"]),
        "{log}"
    );

    // Nothing secret.
    for secret in [PASSWORD, WRONG, CANARY] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
    let key = std::fs::read(env.data().join("server.key")).unwrap();
    assert!(!log.contains(&hex::encode(&key)));
    let dek = env.dek(&ann, PASSWORD);
    assert!(!log.contains(&hex::encode(&dek[..])));

    // fail2ban's own matcher, with the shipped filter: the failed logins
    // (2 from .2, the attacker's), never a successful one.
    let file = work.path().join("serve.log");
    std::fs::write(&file, &log).unwrap();
    let filter = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/fail2ban/filter.d/sealmail.conf");
    let out = std::process::Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(&file)
        .arg(&filter)
        .output()
        .expect("fail2ban-regex (Debian's fail2ban; `make test` installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    let failed = lines.iter().filter(|l| l.contains("login failed")).count();
    assert!(failed >= 3);
    assert!(
        report.contains(&format!("{failed} matched")),
        "{failed} failed-login lines; fail2ban-regex said:\n{report}"
    );
    let matched: Vec<&str> = report
        .lines()
        .skip_while(|l| !l.contains("Matched line(s):"))
        .skip(1)
        .take_while(|l| l.starts_with("|  "))
        .collect();
    assert!(!matched.is_empty(), "{report}");
    for m in matched {
        assert!(m.contains("login failed"), "matched: {m}");
    }
}

/// The lines of a log file that parse as JSON objects.
fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn json_lines_to_a_file_reopened_after_rotation_with_addresses_redacted() {
    let mut env = Env::subprocess();
    let text = std::fs::read_to_string(&env.config.file).unwrap();
    let json = text
        .replace("format = \"text\"", "format = \"json\"")
        .replace(
            "# file = \"/var/log/sealmail/sealmail.log\"",
            "file = \"sealmail.log\"",
        )
        .replace("redact_addresses = false", "redact_addresses = true");
    assert_ne!(json, text);
    std::fs::write(&env.config.file, &json).unwrap();
    env.config = sealmail::config::Config::load(env.data()).unwrap();
    let ann = env.alias("ann", PASSWORD);
    let (domain, imap) = (
        ann.rsplit_once('@').unwrap().1.to_string(),
        env.config.listen.imap,
    );
    let server = env.spawn_server(&[("SEALMAIL_LOG", "sealmail=info")]);
    let file = env.data().join("sealmail.log");
    let login =
        |password: &str| imap_login_from("127.0.0.1".parse().unwrap(), imap, &ann, password);
    let logins = |path: &std::path::Path| -> Vec<serde_json::Value> {
        json_lines(path)
            .into_iter()
            .filter(|l| l["target"] == "sealmail::login")
            .collect()
    };

    // JSON objects with the event's fields at the top level, addresses
    // redacted to their domain.
    assert!(login(PASSWORD).contains("OK"));
    assert!(login(WRONG).contains("NO"));
    wait_for("two login lines", || logins(&file).len() >= 2);
    let lines = logins(&file);
    let ok = lines.iter().find(|l| l["message"] == "login ok").unwrap();
    assert_eq!(ok["level"], "INFO");
    assert_eq!(ok["proto"], "imap");
    assert_eq!(ok["client"], "127.0.0.1");
    assert_eq!(ok["mechanism"], "LOGIN");
    assert_eq!(ok["user"], format!("*@{domain}"));
    assert!(ok["port"].is_u64() && ok["timestamp"].is_string(), "{ok}");
    let failed = lines
        .iter()
        .find(|l| l["message"] == "login failed")
        .unwrap();
    assert_eq!(failed["level"], "WARN");
    assert_eq!(failed["reason"], "auth-failed");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(!written.contains(&ann), "{written}");

    // logrotate moves the file and sends SIGUSR1: the next lines go to a
    // new file under the old name.
    let rotated = env.data().join("sealmail.log.1");
    std::fs::rename(&file, &rotated).unwrap();
    server.signal("USR1");
    wait_for("the reopened file", || file.exists());
    assert!(login(PASSWORD).contains("OK"));
    wait_for("a login in the new file", || logins(&file).len() == 1);
    assert_eq!(logins(&rotated).len(), 2);

    // A reload back to text with addresses shown: the next lines follow it.
    std::fs::write(
        &env.config.file,
        json.replace("format = \"json\"", "format = \"text\"")
            .replace("redact_addresses = true", "redact_addresses = false"),
    )
    .unwrap();
    server.signal("HUP");
    wait_for("the reload", || {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .contains("configuration reloaded")
    });
    assert!(login(PASSWORD).contains("OK"));
    let expected = "INFO sealmail::login: login ok proto=imap client=127.0.0.1";
    wait_for("a text line", || {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(expected) && l.contains(&format!("user=\"{ann}\"")))
    });
    drop(server);
}

/// A Sieve script that runs past its bounds leaves a line saying so (and
/// no word of the message); the message is kept.
#[test]
fn a_sieve_script_past_its_bounds_is_logged_and_the_message_kept() {
    let env = Env::subprocess();
    let ann = env.alias("ann", PASSWORD);
    {
        let mut control = env.control();
        let looping = "require \"include\";\ninclude :personal \"main\";\n";
        control.sieve_put(&ann, "main", looping).unwrap();
        control.sieve_activate(&ann, Some("main")).unwrap();
    }
    let server = env.spawn_server(&[("SEALMAIL_LOG", "sealmail=info")]);
    let log = || std::fs::read_to_string(env.data().join("serve.log")).unwrap_or_default();
    let reply = smtp_send(env.config.listen.smtp, &ann, CANARY);
    assert!(reply.starts_with("250"), "{reply}");
    wait_for("the Sieve line", || log().contains("Sieve script failed"));
    drop(server);
    let log = log();
    let line = log
        .lines()
        .find(|l| l.contains("Sieve script failed"))
        .unwrap();
    assert!(line.contains("script_error="), "{line}");
    assert!(!log.contains(CANARY), "{log}");
    let (_b, store) = env.store();
    let (s, n) = unlock_imported(&store, &ann, PASSWORD);
    assert_eq!(n, 1);
    drop(s);
}
