//! `sealmail dmarc report`: aggregate reports mailed by other servers
//! (zip, gzip, plain XML, made by Python's modules) reach the rua mailbox
//! through the MX and add up, a duplicate once, another domain's and an
//! oversized one skipped.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use common::*;

#[test]
fn aggregate_reports_in_the_rua_mailbox_add_up() {
    let env = Env::new();
    let rua = env.alias("dmarc", "pw");
    let server = env.serve();
    let out = python(
        "dmarc_reports.py",
        &[server.smtp.port().to_string(), rua.clone()],
    );
    assert!(out.contains(" 0 failed"), "{out}");
    drop(server);
    let text = run_ok(
        env.bin()
            .args(["dmarc", "report", "example.org", "--mailbox", &rua])
            .env("SEALMAIL_PASSWORD", "pw"),
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "DMARC aggregate reports for example.org: 3 reports from 3 organisations, 2025-11-30 to 2025-11-30",
        "{text}"
    );
    assert_eq!(
        lines[1], "messages: 63 (passed 55, failed 8; quarantined 2, rejected 6)",
        "{text}"
    );
    let row = |ip: &str| {
        lines
            .iter()
            .find(|l| l.trim_start().starts_with(ip))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(row("192.0.2.10"), "55 55 0", "{text}");
    assert_eq!(row("203.0.113.66"), "6 0 6", "{text}");
    assert_eq!(row("198.51.100.7"), "2 0 2", "{text}");
    assert!(
        text.contains(
            "skipped: 1 repeated reports, 1 messages not reports about example.org, 1 reports that could not be read"
        ),
        "{text}"
    );
    // A wrong password opens nothing.
    let wrong = env
        .bin()
        .args(["dmarc", "report", "example.org", "--mailbox", &rua])
        .env("SEALMAIL_PASSWORD", "nope")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
}

/// With mx.dmarc_reports on, mail from a domain whose DMARC record asks
/// for reports is counted; after the day, one gzipped XML report goes to
/// its rua (another domain's, which agrees through
/// `DOMAIN._report._dmarc.OTHER`), read back with Python's ElementTree; a
/// rua whose domain does not agree gets nothing.
#[test]
fn aggregate_reports_go_to_senders_who_ask() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let zone = serde_json::json!({
        "sender.test": [["TXT", "v=spf1 ip4:127.0.0.0/8 -all"]],
        "_dmarc.sender.test": [["TXT", "v=DMARC1; p=quarantine; rua=mailto:dmarc@reports.test"]],
        "sender.test._report._dmarc.reports.test": [["TXT", "v=DMARC1"]],
        "reports.test": [["MX", "10 mx.reports.test"]],
        "mx.reports.test": [["A", "127.0.0.2"]],
        "loner.test": [["TXT", "v=spf1 ip4:127.0.0.0/8 -all"]],
        "_dmarc.loner.test": [["TXT", "v=DMARC1; p=none; rua=mailto:dmarc@elsewhere.test"]],
        "elsewhere.test": [["MX", "10 mx.reports.test"]],
    });
    let (_dns, dns_port) = start_dns(dir, &zone);
    let smtp_port = free_port();
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let peers = serde_json::json!({
        "smtp_port": smtp_port, "out": out, "smtp": [{"ip": "127.0.0.2", "tls": false}],
    });
    let _peers = common::tls_peers::start_tls_peers(dir, &peers);

    let mut env = Env::new();
    let ann = env.alias("ann", "pw");
    env.alias("postmaster", "pw");
    env.config.nameservers = vec![format!("127.0.0.1:{dns_port}").parse().unwrap()];
    env.config.relay.port = smtp_port;
    env.config.mx.check_senders = true;
    env.config.mx.dmarc_reports = true;
    env.config.mx.rate_exempt = vec![("127.0.0.0".parse().unwrap(), 8)];
    let server = env.serve();
    let send = |from_ip: &str, mail_from: &str, header_from: &str| {
        let r = smtp_exchange(
            connect_from(from_ip.parse().unwrap(), server.smtp),
            &[
                "EHLO client.sender.test".to_string(),
                format!("MAIL FROM:<{mail_from}>"),
                format!("RCPT TO:<{ann}>"),
                "DATA".into(),
                format!(
                    "From: {header_from}\r\nTo: {ann}\r\nSubject: hello\r\nMessage-ID: <{from_ip}.{mail_from}@x>\r\n\r\nhello\r\n."
                ),
                "QUIT".into(),
            ],
        );
        assert!(r[5].starts_with("250"), "{r:?}");
    };
    // Two that pass (SPF aligned), one that fails (MAIL FROM elsewhere).
    send("127.0.0.5", "a@sender.test", "a@sender.test");
    send("127.0.0.5", "b@sender.test", "b@sender.test");
    send("127.0.0.6", "x@other.test", "c@sender.test");
    send("127.0.0.5", "a@loner.test", "a@loner.test");
    drop(server);

    // The day ends: its counts become yesterday's.
    let file = env.data().join("dmarc-reports.json");
    let mut counts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let now = sealmail::util::now_unix();
    let today = sealmail::util::date_only(now, 0);
    let yesterday = sealmail::util::date_only(now - 86_400, 0);
    let day = counts
        .as_object_mut()
        .unwrap()
        .remove(&today)
        .unwrap_or_else(|| panic!("{counts}"));
    counts[&yesterday] = day;
    std::fs::write(&file, counts.to_string()).unwrap();

    let server = env.serve();
    let reports = || {
        std::fs::read_dir(&out)
            .unwrap()
            .filter(|e| {
                std::fs::read_to_string(e.as_ref().unwrap().path())
                    .unwrap_or_default()
                    .contains("dmarc@reports.test")
            })
            .count()
    };
    wait_for("the DMARC report", || reports() >= 1);
    drop(server);
    let checked = dir.join("checked.json");
    let said = python(
        "dmarc_check.py",
        &[out.display().to_string(), checked.display().to_string()],
    );
    assert!(said.contains(" 0 failed"), "{said}");
    let found: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&checked).unwrap()).unwrap();
    let report = &found["sender.test"];
    assert_eq!(report["org"], "mail.example.org", "{found}");
    assert_eq!(report["p"], "quarantine", "{found}");
    assert_eq!(report["rcpt"], serde_json::json!(["dmarc@reports.test"]));
    assert_eq!(
        report["rows"],
        serde_json::json!([
            ["127.0.0.5", 2, "none", "fail", "pass", "sender.test"],
            ["127.0.0.6", 1, "quarantine", "fail", "fail", "sender.test"],
        ]),
        "{found}"
    );
    // elsewhere.test never agreed to take loner.test's reports.
    assert!(found.get("loner.test").is_none(), "{found}");
}
