//! DANE for mail that leaves (RFC 7672), against a real DNSSEC chain on
//! loopback: a zone signed by ldns-signzone, served by nsd, validated by
//! unbound (which trusts the zone's key and sets the AD bit on what it
//! proved); MX hosts are aiosmtpd with certificates the TLSA records name
//! or do not. The TLSA digests are made by the openssl command, not by
//! sealmail. Mail goes out as forwards from the MX: 250 when delivered,
//! 451 when it waits.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::tls_peers::{
    certificate, delivered, expect_forwards, forwards, over_tls, start_tls_peers, test_ca,
};
use common::*;
use sealmail::config::TlsLevel;

/// `openssl`'s SHA-256 of a certificate's public key (TLSA 3 1 1) or of
/// the whole certificate (2 0 1), in hex.
fn digest(cert: &Path, public_key: bool) -> String {
    let script = if public_key {
        "openssl x509 -in \"$1\" -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r"
    } else {
        "openssl x509 -in \"$1\" -outform DER | openssl dgst -sha256 -r"
    };
    let out = run_ok(Command::new("sh").args(["-c", script, "sh"]).arg(cert));
    out.split_whitespace().next().unwrap().to_string()
}

#[test]
fn dane_accepts_the_named_certificate_and_refuses_another() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let smtp_port = free_port();
    let (nsd_port, unbound_port, https_port) = (free_port(), free_port(), free_port());

    let (ca, issuer) = test_ca(dir);

    let named = certificate(dir, "named", &["mx.dane.test"], None, None);
    let other = certificate(dir, "other", &["mx.wrong.dane.test"], None, None);
    let by_ca = certificate(dir, "by-ca", &["mx.ta.dane.test"], Some(&issuer), Some(&ca));
    let web = certificate(dir, "web", &["mta-sts.both.dane.test"], Some(&issuer), None);
    let ee = digest(Path::new(&named.0), true);
    let ta = digest(&ca, false);

    let p = smtp_port;
    let zone = format!(
        "$ORIGIN dane.test.\n$TTL 300\n\
         @ IN SOA ns.dane.test. hostmaster.dane.test. 1 3600 600 86400 300\n\
         @ IN NS ns.dane.test.\n\
         ns IN A 127.0.0.1\n\
         @ IN MX 10 mx.dane.test.\n\
         mx IN A 127.0.0.2\n\
         _{p}._tcp.mx IN TLSA 3 1 1 {ee}\n\
         wrong IN MX 10 mx.wrong.dane.test.\n\
         mx.wrong IN A 127.0.0.3\n\
         _{p}._tcp.mx.wrong IN TLSA 3 1 1 {ee}\n\
         ta IN MX 10 mx.ta.dane.test.\n\
         mx.ta IN A 127.0.0.4\n\
         _{p}._tcp.mx.ta IN TLSA 2 0 1 {ta}\n\
         plain IN MX 10 mx.plain.dane.test.\n\
         mx.plain IN A 127.0.0.5\n\
         _{p}._tcp.mx.plain IN TLSA 3 1 1 {ee}\n\
         nodane IN MX 10 mx.nodane.dane.test.\n\
         mx.nodane IN A 127.0.0.3\n\
         only IN MX 10 mx.nodane.dane.test.\n\
         both IN MX 10 mx.dane.test.\n\
         _mta-sts.both IN TXT \"v=STSv1; id=1\"\n\
         mta-sts.both IN A 127.0.0.1\n"
    );
    std::fs::write(dir.join("zone"), zone).unwrap();
    run_ok(
        Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/dnssec.sh"))
            .arg(dir)
            .arg("dane.test")
            .arg(nsd_port.to_string())
            .arg(unbound_port.to_string()),
    );
    let quiet = || std::process::Stdio::null();
    let _nsd = Daemon(
        Command::new("nsd")
            .args(["-d", "-c"])
            .arg(dir.join("nsd.conf"))
            .stdout(quiet())
            .stderr(quiet())
            .spawn()
            .expect("nsd is missing: run `make test`, which installs it"),
    );
    let _unbound = Daemon(
        Command::new("unbound")
            .args(["-d", "-c"])
            .arg(dir.join("unbound.conf"))
            .stdout(quiet())
            .stderr(quiet())
            .spawn()
            .expect("unbound is missing: run `make test`, which installs it"),
    );
    wait_for("nsd and unbound", || {
        std::net::TcpStream::connect(("127.0.0.1", nsd_port)).is_ok()
            && std::net::TcpStream::connect(("127.0.0.1", unbound_port)).is_ok()
    });

    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let peers = serde_json::json!({
        "smtp_port": smtp_port,
        "out": out,
        "smtp": [
            {"ip": "127.0.0.2", "cert": named.0, "key": named.1},
            {"ip": "127.0.0.3", "cert": other.0, "key": other.1},
            {"ip": "127.0.0.4", "cert": by_ca.0, "key": by_ca.1},
            {"ip": "127.0.0.5", "tls": false},
        ],
        "https": {"ip": "127.0.0.1", "port": https_port, "cert": web.0, "key": web.1,
                  "policies": {"mta-sts.both.dane.test":
                      "version: STSv1\r\nmode: enforce\r\nmx: mail.both.dane.test\r\nmax_age: 86400\r\n"}},
    });
    let _peers = start_tls_peers(dir, &peers);

    let mut env = Env::new();
    env.config.nameservers = vec![format!("127.0.0.1:{unbound_port}").parse().unwrap()];
    env.config.relay.port = smtp_port;
    env.config.relay.https_port = https_port;
    env.config.relay.ca_file = Some(ca.clone());
    env.config.relay.tls_policy = [("only.dane.test".to_string(), TlsLevel::DaneOnly)]
        .into_iter()
        .collect();
    forwards(
        &env,
        &[
            ("dane", "dane.test"),
            ("wrong", "wrong.dane.test"),
            ("ta", "ta.dane.test"),
            ("plain", "plain.dane.test"),
            ("nodane", "nodane.dane.test"),
            ("only", "only.dane.test"),
            ("both", "both.dane.test"),
        ],
    );
    let server = env.serve();

    let expect: &[(&str, u16, &str)] = &[
        ("dane", 250, ""),
        (
            "wrong",
            451,
            "matches none of its 1 DNSSEC-authenticated TLSA records",
        ),
        ("ta", 250, ""),
        ("plain", 451, "does not offer STARTTLS"),
        ("nodane", 250, ""),
        ("only", 451, "dane-only"),
        ("both", 250, ""),
    ];
    expect_forwards(server.smtp, expect);
    drop(server);
    let got = delivered(&out);
    let want = over_tls(&[
        ("rcpt@both.dane.test", "127.0.0.2"),
        ("rcpt@dane.test", "127.0.0.2"),
        ("rcpt@nodane.dane.test", "127.0.0.3"),
        ("rcpt@ta.dane.test", "127.0.0.4"),
    ]);
    assert_eq!(got, want);
    // The sessions are counted for TLS reports under the TLSA policy.
    let counts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.data().join("tls-reports.json")).unwrap())
            .unwrap();
    let today = sealmail::util::date_only(sealmail::util::now_unix(), 0);
    let day = &counts[&today];
    for (domain, ok, failed, kind) in [
        ("dane.test", 1, 0, ""),
        ("ta.dane.test", 1, 0, ""),
        ("both.dane.test", 1, 0, ""),
        ("wrong.dane.test", 0, 1, "validation-failure"),
        ("plain.dane.test", 0, 1, "starttls-not-supported"),
    ] {
        let t = &day[domain];
        assert_eq!(t["policy_type"], "tlsa", "{domain}: {t}");
        assert_eq!(
            (t["successes"].as_u64(), t["failures"].as_u64()),
            (Some(ok), Some(failed)),
            "{domain}: {t}"
        );
        if !kind.is_empty() {
            assert_eq!(t["details"][0]["result_type"], kind, "{domain}: {t}");
        }
    }
    assert!(
        day["dane.test"]["policy_string"][0]
            .as_str()
            .unwrap()
            .ends_with(&format!("IN TLSA 3 1 1 {ee}"))
    );
    // Where DANE applies, the MTA-STS policy is not even fetched.
    let fetched = std::fs::read_to_string(out.join("https.log")).unwrap_or_default();
    assert!(!fetched.contains("mta-sts.both"), "{fetched}");
}
