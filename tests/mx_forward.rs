//! Forwarding with SRS, the 451 path, no double delivery after a retry,
//! SRS bounces, and webhooks: sealmail's MX between smtplib and real
//! peers on loopback (aiosmtpd as the next hop, found through a loopback
//! DNS server's MX record; an HTTP server for the webhook).
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use common::*;
use sealmail::store::Criteria;

#[test]
fn forwards_srs_webhooks_and_retries() {
    let work = tempfile::tempdir().unwrap();
    let zone = serde_json::json!({
        "far.test": [["MX", "10 mx.far.test"]],
        "mx.far.test": [["A", "127.0.0.1"]],
        "origin.test": [["A", "127.0.0.1"]],
    });
    let (_dns, dns_port) = start_dns(work.path(), &zone);
    let (smtp_port, http_port) = (free_port(), free_port());
    let sink = work.path().join("sink");
    std::fs::create_dir(&sink).unwrap();
    let _sinks = start_peer(
        "sinks.py",
        &[
            smtp_port.to_string(),
            http_port.to_string(),
            sink.display().to_string(),
        ],
    );

    let mut env = Env::new();
    env.config.nameservers = vec![format!("127.0.0.1:{dns_port}").parse().unwrap()];
    env.config.relay.port = smtp_port;
    let mut control = env.control();
    let fwd = control
        .add_alias("fwd@example.org", None, FAST)
        .unwrap()
        .address;
    control
        .set_forward(&fwd, &["bob@far.test".to_string()])
        .unwrap();
    let both = env.alias("both", "pw");
    control
        .set_forward(&both, &["carol@far.test".to_string()])
        .unwrap();
    control
        .set_webhooks(&both, &[format!("http://127.0.0.1:{http_port}/hook")])
        .unwrap();
    drop(control);
    let key = sealmail::app::server_key(env.data()).unwrap();
    let secret = hex::encode(sealmail::relay::webhook_secret(&key, &both));

    let server = env.serve();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/mx_forward.py");
    let out = run_ok(
        std::process::Command::new(venv_python())
            .arg(script)
            .arg(server.smtp.port().to_string())
            .arg(&sink)
            .arg(&fwd)
            .arg(&both)
            .arg(&secret),
    );
    assert!(out.contains(" 0 failed"), "{out}");
    drop(server);

    // Forwarded mail never touches the disk.
    assert!(files_containing(env.data(), b"canary-forward-7f3a").is_empty());
    // The mailbox copies arrived once each, despite the 451s.
    let (_b, store) = env.store();
    let s = unlock(&store, &both, "pw");
    for subject in ["retry1", "hookfail"] {
        let found = block(s.search("INBOX", Criteria::Subject(subject.into())))
            .unwrap()
            .uids;
        assert_eq!(found.len(), 1, "{subject}");
    }
}
