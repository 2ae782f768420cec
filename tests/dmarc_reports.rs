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
