//! Outbound transport security against real peers on loopback: MTA-STS
//! policies served over HTTPS (a test CA that `relay.ca_file` trusts),
//! MX hosts with a valid certificate, a self-signed one, or no STARTTLS,
//! found through a loopback DNS server; and `relay.tls_policy` levels.
//! Mail goes out as forwards from the MX, so each destination's fate is
//! the MX's reply: 250 when the copy was delivered, 451 when it waits.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::path::Path;

use common::tls_peers::{
    certificate, delivered, expect_forwards, forwards, over_tls, start_tls_peers, test_ca,
};
use common::*;
use sealmail::config::TlsLevel;

fn policy(mode: &str, mx: &[&str]) -> String {
    let mut p = format!("version: STSv1\r\nmode: {mode}\r\n");
    for m in mx {
        p.push_str(&format!("mx: {m}\r\n"));
    }
    p.push_str("max_age: 86400\r\n");
    p
}

#[test]
fn mta_sts_and_tls_policy_decide_where_mail_may_go() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (ca, issuer) = test_ca(dir);
    let good = certificate(dir, "good", &["mx.good.example"], Some(&issuer), None);
    let selfsigned = certificate(dir, "bad", &["mx.bad.example"], None, None);
    let sts_names = [
        "mta-sts.good.example",
        "mta-sts.bad.example",
        "mta-sts.plain.example",
        "mta-sts.testing.example",
        "mta-sts.nomatch.example",
        "mta-sts.override.example",
        "mta-sts.wildcard.example",
        "mta-sts.unfetchable.example",
    ];
    let web = certificate(dir, "web", &sts_names, Some(&issuer), None);

    // Who is where: .2 has a valid certificate for mx.good.example, .3 a
    // self-signed one, .4 no STARTTLS at all.
    let mut zone = serde_json::json!({
        "mx.good.example": [["A", "127.0.0.2"]],
        "mx.bad.example": [["A", "127.0.0.3"]],
        "mx.plain.example": [["A", "127.0.0.4"]],
    });
    let dests: &[(&str, &str, Option<String>)] = &[
        (
            "good.example",
            "mx.good.example",
            Some(policy("enforce", &["mx.good.example"])),
        ),
        (
            "bad.example",
            "mx.bad.example",
            Some(policy("enforce", &["mx.bad.example"])),
        ),
        (
            "plain.example",
            "mx.plain.example",
            Some(policy("enforce", &["mx.plain.example"])),
        ),
        (
            "testing.example",
            "mx.bad.example",
            Some(policy("testing", &["mx.bad.example"])),
        ),
        (
            "nomatch.example",
            "mx.good.example",
            Some(policy("enforce", &["mail.nomatch.example"])),
        ),
        (
            "wildcard.example",
            "mx.good.example",
            Some(policy("enforce", &["*.good.example"])),
        ),
        (
            "override.example",
            "mx.bad.example",
            Some(policy("enforce", &["mx.bad.example"])),
        ),
        ("unfetchable.example", "mx.bad.example", None),
        ("nosts.example", "mx.bad.example", None),
        ("encrypt.example", "mx.plain.example", None),
        ("encrypt-ok.example", "mx.bad.example", None),
        ("verify.example", "mx.bad.example", None),
    ];
    let mut policies = serde_json::Map::new();
    for (domain, mx, p) in dests {
        zone[*domain] = serde_json::json!([["MX", format!("10 {mx}")]]);
        if let Some(p) = p {
            policies.insert(format!("mta-sts.{domain}"), p.clone().into());
        }
        if p.is_some() || *domain == "unfetchable.example" {
            zone[format!("_mta-sts.{domain}")] =
                serde_json::json!([["TXT", "v=STSv1; id=20261202"]]);
            zone[format!("mta-sts.{domain}")] = serde_json::json!([["A", "127.0.0.1"]]);
            zone[format!("_smtp._tls.{domain}")] =
                serde_json::json!([["TXT", "v=TLSRPTv1; rua=mailto:tlsrpt@reports.example"]]);
        }
    }
    zone["reports.example"] = serde_json::json!([["MX", "10 mx.good.example"]]);
    let (_dns, dns_port) = start_dns(dir, &zone);
    let (smtp_port, https_port) = (free_port(), free_port());
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let peers = serde_json::json!({
        "smtp_port": smtp_port,
        "out": out,
        "smtp": [
            {"ip": "127.0.0.2", "cert": good.0, "key": good.1},
            {"ip": "127.0.0.3", "cert": selfsigned.0, "key": selfsigned.1},
            {"ip": "127.0.0.4", "tls": false},
        ],
        "https": {"ip": "127.0.0.1", "port": https_port, "cert": web.0, "key": web.1,
                  "policies": policies},
    });
    let _peers = start_tls_peers(dir, &peers);

    let mut env = Env::new();
    env.config.nameservers = vec![format!("127.0.0.1:{dns_port}").parse().unwrap()];
    env.config.relay.port = smtp_port;
    env.config.relay.https_port = https_port;
    env.config.relay.ca_file = Some(ca.clone());
    env.config.relay.tls_policy = [
        ("encrypt.example", TlsLevel::Encrypt),
        ("encrypt-ok.example", TlsLevel::Encrypt),
        ("verify.example", TlsLevel::Verify),
        ("override.example", TlsLevel::May),
    ]
    .into_iter()
    .map(|(d, l)| (d.to_string(), l))
    .collect();
    env.alias("postmaster", "pw");
    let to: Vec<(&str, &str)> = dests
        .iter()
        .map(|(domain, _, _)| (domain.split('.').next().unwrap(), *domain))
        .collect();
    forwards(&env, &to);
    let server = env.serve();

    // Each destination, the reply its forward gets, and (for 451) words
    // of the reason the MX gives.
    let expect: &[(&str, u16, &str)] = &[
        ("good", 250, ""),
        (
            "bad",
            451,
            "certificate of mx.bad.example (127.0.0.3) is not valid",
        ),
        (
            "plain",
            451,
            "mx.plain.example (127.0.0.4) does not offer STARTTLS",
        ),
        ("testing", 250, ""),
        (
            "nomatch",
            451,
            "no MX host of nomatch.example is one its MTA-STS policy names",
        ),
        ("wildcard", 250, ""),
        ("override", 250, ""),
        ("unfetchable", 250, ""),
        ("nosts", 250, ""),
        ("encrypt", 451, "does not offer STARTTLS"),
        ("encrypt-ok", 250, ""),
        ("verify", 451, "is not valid"),
    ];
    expect_forwards(server.smtp, expect);
    drop(server);

    // What reached the peers: the delivered copies, each over TLS.
    let got = delivered(&out);
    let want = over_tls(&[
        ("rcpt@encrypt-ok.example", "127.0.0.3"),
        ("rcpt@good.example", "127.0.0.2"),
        ("rcpt@nosts.example", "127.0.0.3"),
        ("rcpt@override.example", "127.0.0.3"),
        ("rcpt@testing.example", "127.0.0.3"),
        ("rcpt@unfetchable.example", "127.0.0.3"),
        ("rcpt@wildcard.example", "127.0.0.2"),
    ]);
    assert_eq!(got, want);
    // Each policy was fetched once: later mail used the kept one.
    let log = std::fs::read_to_string(out.join("https.log")).unwrap();
    assert_eq!(log.matches("mta-sts.good.example ").count(), 1, "{log}");

    // Policies are kept across restarts, for their max_age.
    let kept = std::fs::read_to_string(env.data().join("mta-sts.json")).unwrap();
    assert!(
        kept.contains("\"good.example\"") && kept.contains("mode: enforce"),
        "{kept}"
    );

    tls_reports_of_the_day(&env, dir, &out);
}

/// The day's TLS counts, saved when the server stopped, are moved to
/// yesterday (a day that has ended); the next start mails one report per
/// policy domain to its rua address, which must match RFC 8460's schema
/// and say what happened above.
fn tls_reports_of_the_day(env: &Env, dir: &Path, out: &Path) {
    let file = env.data().join("tls-reports.json");
    let mut counts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let now = sealmail::util::now_unix();
    let (today, yesterday) = (
        sealmail::util::date_only(now, 0),
        sealmail::util::date_only(now - 86_400, 0),
    );
    let day = counts.as_object_mut().unwrap().remove(&today).unwrap();
    assert_eq!(day["good.example"]["successes"], 1, "{day}");
    counts[&yesterday] = day;
    std::fs::write(&file, counts.to_string()).unwrap();

    let server = env.serve();
    let reports_in = || {
        std::fs::read_dir(out)
            .unwrap()
            .filter(|e| {
                let p = e.as_ref().unwrap().path();
                p.extension().is_some_and(|x| x == "json")
                    && std::fs::read_to_string(&p)
                        .unwrap()
                        .contains("tlsrpt@reports.example")
            })
            .count()
    };
    wait_for("7 TLS reports", || reports_in() >= 7);
    drop(server);
    let checked = dir.join("reports.json");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/tlsrpt.schema.json");
    let said = python(
        "tlsrpt_check.py",
        &[
            out.display().to_string(),
            schema.display().to_string(),
            checked.display().to_string(),
        ],
    );
    assert!(said.contains(" 0 failed"), "{said}");
    let reports: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&checked).unwrap()).unwrap();
    // (successes, failures, the first failure's result type)
    let want: &[(&str, u64, u64, &str)] = &[
        ("good.example", 1, 0, ""),
        ("wildcard.example", 1, 0, ""),
        ("bad.example", 0, 1, "certificate-not-trusted"),
        ("plain.example", 0, 1, "starttls-not-supported"),
        ("testing.example", 0, 1, "certificate-not-trusted"),
        ("nomatch.example", 0, 1, "validation-failure"),
        ("unfetchable.example", 0, 1, "sts-policy-fetch-error"),
    ];
    for (domain, ok, failed, kind) in want {
        let p = &reports[domain]["policies"][0];
        assert_eq!(
            p["summary"]["total-successful-session-count"], *ok,
            "{domain}: {p}"
        );
        assert_eq!(
            p["summary"]["total-failure-session-count"], *failed,
            "{domain}: {p}"
        );
        if !kind.is_empty() {
            assert_eq!(
                p["failure-details"][0]["result-type"], *kind,
                "{domain}: {p}"
            );
        }
    }
    assert_eq!(reports.as_object().unwrap().len(), want.len(), "{reports}");
    assert_eq!(
        reports["bad.example"]["policies"][0]["failure-details"][0]["receiving-ip"],
        "127.0.0.3"
    );
    assert_eq!(
        reports["unfetchable.example"]["policies"][0]["policy"]["policy-type"],
        "no-policy-found"
    );
    // Reported days leave the file.
    let left: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(left.get(&yesterday).is_none(), "{left}");
}
