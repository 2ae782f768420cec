//! Submission and the outbound queue with real peers on loopback: smtplib
//! over STARTTLS and implicit TLS, an aiosmtpd MX found through a loopback
//! DNS server, dkimpy verifying the signatures; retries and the 5-day bounce
//! under a fake clock; kill -9 with hundreds of messages queued; daily
//! limits; the `queue` and `domain dns` commands.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use sealmail::queue::worker::{Deliverer, run_once};
use sealmail::queue::{FakeClock, Kind, NewMessage, NewRecipient, Policy, Queue};
use sealmail::store::Criteria;

const T0: i64 = 1_795_000_000;

fn sink_messages(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("smtp-") && name.ends_with(".json") {
            out.push(serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap());
        }
    }
    out
}

#[test]
fn smtplib_submits_and_dkim_verifies_at_an_mx_found_by_dns() {
    let work = tempfile::tempdir().unwrap();
    let (_sink, smtp_port, sink_dir) = start_sinks(work.path());
    let mut env = Env::new();
    let mut zone = serde_json::json!({
        "remote.test": [["MX", "10 mx.remote.test"]],
        "mx.remote.test": [["A", "127.0.0.1"]],
    });
    publish_dkim(&env, &mut zone);
    let (_dns, dns_port) = start_dns(work.path(), &zone);
    env.config.nameservers = vec![format!("127.0.0.1:{dns_port}").parse().unwrap()];
    env.config.relay.port = smtp_port;
    let ann = env.alias("ann", "ann-password");
    let bob = env.alias("bob", "bob-password");
    let server = env.serve();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/submission.py");
    let out = run_ok(
        std::process::Command::new(venv_python())
            .arg(script)
            .arg(server.submission.port().to_string())
            .arg(server.submissions.port().to_string())
            .arg(&ann)
            .arg("ann-password")
            .arg(&bob)
            .arg("carol@remote.test")
            .arg(dns_port.to_string())
            .arg(&sink_dir),
    );
    assert!(out.contains(" 0 failed"), "{out}");
    drop(server);
    // submission.hide_client_address (on by default): our Received names
    // the HELO, not where the owner sent from.
    let sent = sink_messages(&sink_dir);
    assert!(!sent.is_empty());
    for m in &sent {
        let data = m["data"].as_str().unwrap();
        let ours = data
            .split("\r\n")
            .find(|l| l.contains("(sealmail) with ESMTPSA"))
            .unwrap_or_else(|| panic!("{data}"));
        assert!(
            ours.starts_with("Received: from ") && !ours.contains("127.0.0.1"),
            "{ours}"
        );
    }

    // The queue kept the status, not the bodies.
    let key = sealmail::app::server_key(env.data()).unwrap();
    let q = Queue::open(
        env.data(),
        &key,
        Arc::new(sealmail::queue::SystemClock),
        Policy::default(),
    )
    .unwrap();
    let list = q.list(true, 100).unwrap();
    assert_eq!(list.len(), 2);
    for m in &list {
        assert!(!m.body_kept, "delivered body was redacted");
        assert_eq!(m.recipients[0].state, "delivered");
        let detail = m.recipients[0].last_result.as_deref().unwrap_or("");
        assert!(detail.contains("via mx.remote.test"), "{detail}");
        assert!(detail.contains("no TLS"), "{detail}");
    }
    // The queue file is encrypted: no message text in it.
    assert!(files_containing(env.data(), b"hello from smtplib").is_empty());
}

/// A queue on a fake clock whose remote recipients go to `port` on
/// loopback through a static route (`relay.routes`).
fn fake_queue(env: &Env, port: u16) -> (Arc<FakeClock>, Deliverer) {
    let mut relay_config = env.config.relay.clone();
    relay_config.routes.insert(
        "remote.test".into(),
        sealmail::config::HostPort {
            host: "127.0.0.1".into(),
            port,
        },
    );
    fake_queue_with(env, Policy::default(), relay_config)
}

/// A queue on a fake clock, with a resolver that answers nothing (so only
/// routes and the smarthost lead anywhere).
fn fake_queue_with(
    env: &Env,
    policy: Policy,
    relay_config: sealmail::config::Relay,
) -> (Arc<FakeClock>, Deliverer) {
    let clock = FakeClock::new(T0);
    let key = sealmail::app::server_key(env.data()).unwrap();
    let queue = Arc::new(Queue::open(env.data(), &key, clock.clone(), policy).unwrap());
    let dns = sealmail::dns::Dns::new(&["127.0.0.1:9".parse().unwrap()]).unwrap();
    let relay = sealmail::relay::Relay::new(dns, relay_config, "mail.example.org", &key).unwrap();
    let (_backend, store) = env.store();
    let d = Deliverer {
        queue,
        relay: Some(Arc::new(relay)),
        store,
        hostname: "mail.example.org".into(),
        mime_limits: env.config.limits.mime,
    };
    (clock, d)
}

fn submit(d: &Deliverer, alias: &str, rcpt: &str, subject: &str) -> String {
    d.queue
        .enqueue(&NewMessage {
            alias: alias.into(),
            sender: alias.into(),
            recipients: vec![NewRecipient {
                kind: Kind::Remote,
                address: rcpt.into(),
                via: None,
            }],
            body: format!(
                "From: {alias}\r\nTo: {rcpt}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.org>\r\n\r\nbody of {subject}\r\n"
            )
            .into_bytes(),
        })
        .unwrap()
}

#[test]
fn three_temporary_failures_then_one_delivery_on_the_schedule() {
    let work = tempfile::tempdir().unwrap();
    let (_sink, port, sink_dir) = start_sinks(work.path());
    std::fs::write(sink_dir.join("smtp_mode"), "tempfail_first 3").unwrap();
    let env = Env::new();
    let ann = env.alias("ann", "pw");
    let (clock, d) = fake_queue(&env, port);
    let qid = submit(&d, &ann, "carol@remote.test", "retried");

    // Attempt n fails at time t; the next is due first_retry·2^(n-1) later,
    // ±20 %: 5, 10, 20 minutes.
    let mut t = T0;
    for (n, base) in [(1u32, 300i64), (2, 600), (3, 1200)] {
        assert_eq!(block(run_once(&d)).unwrap(), 1);
        let m = d.queue.show(&qid).unwrap();
        let r = &m.recipients[0];
        assert_eq!((r.state.as_str(), r.attempts), ("queued", n));
        // "451 4.3.0 Try again later": a mail-system condition.
        assert_eq!(r.category, Some(sealmail::queue::Category::Other));
        let next = r.next_attempt.unwrap();
        let delay = next - t;
        assert!(
            (base * 8 / 10..=base * 12 / 10).contains(&delay),
            "attempt {n}: retry after {delay}s, expected about {base}s"
        );
        // Nothing is due before then.
        clock.set(next - 1);
        assert_eq!(block(run_once(&d)).unwrap(), 0);
        clock.set(next);
        t = next;
    }
    assert_eq!(block(run_once(&d)).unwrap(), 1);
    let m = d.queue.show(&qid).unwrap();
    assert_eq!(m.recipients[0].state, "delivered");
    assert_eq!(m.recipients[0].attempts, 4);
    assert!(!m.body_kept);
    let got = sink_messages(&sink_dir);
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert!(got[0]["data"].as_str().unwrap().contains("body of retried"));
    assert_eq!(
        std::fs::read_to_string(sink_dir.join("smtp_attempts")).unwrap(),
        "4"
    );
    // Nothing more to do.
    clock.set(t + 10 * 86_400);
    assert_eq!(block(run_once(&d)).unwrap(), 0);
}

/// A lane carries its transactions over one connection each runner, and
/// a connection the server closed is replaced without losing or doubling a
/// message.
#[test]
fn lanes_reuse_connections_and_survive_a_server_closing_them() {
    let work = tempfile::tempdir().unwrap();
    let (_sink, port, sink_dir) = start_sinks(work.path());
    let env = Env::new();
    let ann = env.alias("ann", "pw");
    let (_clock, d) = fake_queue(&env, port);
    let count = |name: &str| -> usize {
        std::fs::read_to_string(sink_dir.join(name))
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0)
    };

    // 12 messages in one round: 4 runners, 3 transactions on each
    // connection.
    let mut qids: Vec<String> = (0..12)
        .map(|i| submit(&d, &ann, "carol@remote.test", &format!("reuse{i}")))
        .collect();
    assert_eq!(block(run_once(&d)).unwrap(), 12);
    assert_eq!(count("smtp_connections"), 4, "one connection per runner");
    assert_eq!(sink_messages(&sink_dir).len(), 12);

    // The server now closes each connection after its second message: the
    // third transaction of each runner finds it closed and opens another.
    std::fs::write(sink_dir.join("smtp_mode"), "close_after 2").unwrap();
    qids.extend((12..24).map(|i| submit(&d, &ann, "carol@remote.test", &format!("reuse{i}"))));
    assert_eq!(block(run_once(&d)).unwrap(), 12);
    assert_eq!(count("smtp_connections"), 4 + 8);
    for qid in &qids {
        let r = d.queue.show(qid).unwrap().recipients.remove(0);
        assert_eq!((r.state.as_str(), r.attempts), ("delivered", 1), "{qid}");
    }
    let mut subjects: Vec<String> = sink_messages(&sink_dir)
        .iter()
        .map(|m| {
            let data = m["data"].as_str().unwrap();
            data.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap()
                .to_string()
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 24, "each message arrived exactly once");
    assert_eq!(count("smtp_attempts"), 24);
}

/// Without routes, mail for every domain goes to the smarthost; a domain
/// that keeps bodies keeps them for its days, and records go after 30.
#[test]
fn smarthost_delivery_kept_bodies_and_the_purge() {
    let work = tempfile::tempdir().unwrap();
    let (_sink, port, sink_dir) = start_sinks(work.path());
    let env = Env::new();
    let ann = env.alias("ann", "pw");
    let mut relay = env.config.relay.clone();
    relay.smarthost = Some(sealmail::config::HostPort {
        host: "127.0.0.1".into(),
        port,
    });
    let mut policy = Policy::default();
    policy.keep_body_days.insert("example.org".into(), 2);
    let (clock, d) = fake_queue_with(&env, policy, relay);
    // Two domains that have no MX in the (empty) resolver.
    let a = submit(&d, &ann, "carol@remote.test", "smart-a");
    let b = submit(&d, &ann, "dave@elsewhere.test", "smart-b");
    assert_eq!(block(run_once(&d)).unwrap(), 2);
    let got = sink_messages(&sink_dir);
    assert_eq!(got.len(), 2, "both went to the smarthost");
    for qid in [&a, &b] {
        let m = d.queue.show(qid).unwrap();
        assert_eq!(m.recipients[0].state, "delivered");
        let via = m.recipients[0].last_result.clone().unwrap();
        assert!(via.starts_with("via 127.0.0.1, no TLS"), "{via}");
        // example.org keeps bodies for 2 days.
        assert!(m.body_kept, "{qid}");
    }

    // A day later the body is still there; after two it is gone, the
    // record stays; 30 days after delivery the record goes too.
    clock.set(T0 + 86_400);
    d.queue.purge().unwrap();
    assert!(d.queue.show(&a).unwrap().body_kept);
    clock.set(T0 + 2 * 86_400);
    d.queue.purge().unwrap();
    let m = d.queue.show(&a).unwrap();
    assert!(!m.body_kept);
    assert_eq!(m.recipients[0].state, "delivered");
    clock.set(T0 + 30 * 86_400 - 1);
    d.queue.purge().unwrap();
    assert!(d.queue.show(&a).is_ok());
    clock.set(T0 + 30 * 86_400);
    d.queue.purge().unwrap();
    for qid in [&a, &b] {
        assert!(matches!(
            d.queue.show(qid),
            Err(sealmail::queue::QueueError::NotFound(_))
        ));
    }
}

/// A smarthost that wants a login (here another sealmail's port 587):
/// AUTH PLAIN after STARTTLS; never without TLS; a refused login defers.
#[test]
fn smarthost_login_only_over_tls() {
    let work = tempfile::tempdir().unwrap();
    let (_sink, sink_port, _sink_dir) = start_sinks(work.path());
    // The smarthost: a second server where ann has an account too.
    let hub = Env::new();
    let ann_at_hub = hub.alias("ann", "hub-password");
    hub.alias("bob", "pw");
    let hub_server = hub.serve();

    let env = Env::new();
    let ann = env.alias("ann", "pw");
    assert_eq!(ann, ann_at_hub);
    let via = |port: u16, password: &str| {
        let mut relay = env.config.relay.clone();
        relay.smarthost = Some(sealmail::config::HostPort {
            host: "127.0.0.1".into(),
            port,
        });
        relay.smarthost_login = Some(sealmail::config::Login {
            user: ann.clone(),
            password: password.into(),
        });
        relay
    };
    let (_clock, d) = fake_queue_with(
        &env,
        Policy::default(),
        via(hub_server.submission.port(), "hub-password"),
    );
    let qid = submit(&d, &ann, "bob@example.org", "through-the-hub");
    assert_eq!(block(run_once(&d)).unwrap(), 1);
    let r = d.queue.show(&qid).unwrap().recipients.remove(0);
    assert_eq!(r.state, "delivered", "{r:?}");
    assert_eq!(
        r.last_result.as_deref(),
        Some("via 127.0.0.1, TLS (certificate not verified)")
    );
    // The hub queued it and delivered it to bob's mailbox.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = run_ok(hub.bin().args(["queue", "list", "--all"]));
        if list.contains("1 recipients, 0 waiting") {
            let id = list.split('\t').next().unwrap();
            let shown = run_ok(hub.bin().args(["queue", "show", id]));
            assert!(shown.contains("recipient: bob@example.org"), "{shown}");
            assert!(shown.contains("delivered to a local mailbox"), "{shown}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(d);

    // A smarthost without STARTTLS never sees the password.
    let env2 = Env::new();
    let ann2 = env2.alias("ann", "pw");
    let (_clock, d) = fake_queue_with(&env2, Policy::default(), via(sink_port, "secret"));
    let qid = submit(&d, &ann2, "bob@example.org", "no-tls");
    block(run_once(&d)).unwrap();
    let r = d.queue.show(&qid).unwrap().recipients.remove(0);
    assert_eq!(r.state, "queued");
    let why = r.last_result.unwrap();
    assert!(why.contains("did not offer TLS"), "{why}");

    // A wrong password defers the message instead of bouncing it.
    let (_clock, d) = fake_queue_with(
        &env2,
        Policy::default(),
        via(hub_server.submission.port(), "wrong"),
    );
    let qid = submit(&d, &ann2, "bob@example.org", "wrong-password");
    block(run_once(&d)).unwrap();
    let r = d.queue.show(&qid).unwrap().recipients.remove(0);
    assert_eq!(r.state, "queued");
    let why = r.last_result.unwrap();
    assert!(why.contains("refused: 535 5.7.8"), "{why}");
}

#[test]
fn five_days_down_bounces_once_into_the_senders_mailbox() {
    let env = Env::new();
    let ann = env.alias("ann", "pw");
    // Nothing listens here: every attempt is refused.
    let (clock, d) = fake_queue(&env, free_port());
    let qid = submit(&d, &ann, "carol@remote.test", "never");
    let mut attempts = 0;
    loop {
        attempts += block(run_once(&d)).unwrap();
        let r = d.queue.show(&qid).unwrap().recipients.remove(0);
        if r.state != "queued" {
            assert_eq!(r.state, "expired");
            assert_eq!(r.category, Some(sealmail::queue::Category::Network));
            assert!(r.bounced);
            break;
        }
        assert!(attempts < 100, "still queued after {attempts} attempts");
        clock.set(r.next_attempt.unwrap());
    }
    // The last attempt came at the 5-day mark, not before.
    assert_eq!(clock_now(&d), T0 + 5 * 86_400);
    // Backoff capped at 3 h: 5+10+20+40+80+160 min, then every ~3 h.
    assert!((40..=60).contains(&attempts), "{attempts} attempts");
    let m = d.queue.show(&qid).unwrap();
    assert!(!m.body_kept, "body redacted after the bounce");
    // Later rounds send no second bounce.
    clock.set(T0 + 6 * 86_400);
    block(run_once(&d)).unwrap();

    // The owner was not logged in: the bounce waits sealed, and arrives
    // at login.
    let (_b, store) = env.store();
    let s = unlock(&store, &ann, "pw");
    let found = block(s.search(
        "INBOX",
        Criteria::Subject("Undelivered Mail Returned to Sender".into()),
    ))
    .unwrap()
    .uids;
    assert_eq!(found.len(), 1, "one bounce");
    let text = first_message(&s);
    for want in [
        "Content-Type: multipart/report; report-type=delivery-status",
        "Final-Recipient: rfc822; carol@remote.test",
        "Action: failed",
        "Status: 4.4.7",
        "X-Failure-Category: network",
        "Subject: never",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    assert!(
        !text.contains("body of never"),
        "the bounce quotes only the header"
    );
}

/// The whole of the first message in INBOX.
fn first_message(s: &sealmail::store::Session) -> String {
    let fetched = block(s.fetch(
        "INBOX",
        sealmail::store::UidSet::all(),
        sealmail::store::FetchWhat {
            sections: vec![sealmail::store::Section {
                path: vec![],
                kind: sealmail::store::SectionKind::Whole,
            }],
            ..Default::default()
        },
    ))
    .unwrap();
    String::from_utf8_lossy(&fetched[0].sections[0].1).to_string()
}

fn clock_now(d: &Deliverer) -> i64 {
    d.queue.clock.now()
}

#[test]
fn daily_limit_and_the_queue_commands() {
    let mut env = Env::new();
    env.config.send_limits.per_alias = 2;
    env.config.send_limits.per_domain = 3;
    // Nothing listens at the route: messages stay queued.
    env.config.nameservers = vec!["127.0.0.1:9".parse().unwrap()];
    env.config.relay.routes.insert(
        "remote.test".into(),
        sealmail::config::HostPort {
            host: "127.0.0.1".into(),
            port: free_port(),
        },
    );
    let ann = env.alias("ann", "pw");
    let bob = env.alias("bob", "pw2");
    let server = env.serve();
    let out = python(
        "submission_limit.py",
        &[
            server.submissions.port().to_string(),
            ann.clone(),
            "pw".into(),
            bob,
            "pw2".into(),
            "carol@remote.test".into(),
        ],
    );
    assert!(out.contains("5 passed, 0 failed"), "{out}");
    // Let the first attempts fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let list = run_ok(env.bin().args(["queue", "list"]));
        if list.matches("1 waiting").count() == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let list = run_ok(env.bin().args(["queue", "list"]));
    assert!(list.ends_with("3 messages\n"), "{list}");
    let id = list.split('\t').next().unwrap().to_string();
    let shown = run_ok(env.bin().args(["queue", "show", &id]));
    assert!(shown.contains("recipient: carol@remote.test"), "{shown}");
    assert!(shown.contains("state: queued"), "{shown}");
    assert!(shown.contains("category: network"), "{shown}");
    assert!(shown.contains("body: kept"), "{shown}");
    assert!(!shown.contains("hi"), "no body shown: {shown}");
    let retried = run_ok(env.bin().args(["queue", "retry", &id]));
    assert!(retried.contains("1 recipients"), "{retried}");
    let deleted = run_ok(env.bin().args(["queue", "delete", &id]));
    assert!(deleted.contains("deleted (no bounce is sent)"), "{deleted}");
    let list = run_ok(env.bin().args(["queue", "list"]));
    assert!(list.ends_with("2 messages\n"), "{list}");
    let missing = env.bin().args(["queue", "show", &id]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no queued message"));
    drop(server);

    // `domain dns` prints every record, DKIM keys included.
    let dns = run_ok(env.bin().args(["domain", "dns", "example.org"]));
    for want in [
        "example.org.\tIN MX 10 mail.example.org.",
        "example.org.\tIN TXT \"v=spf1 mx -all\"",
        "._domainkey.example.org.\tIN TXT \"v=DKIM1; k=rsa; p=MIIBIjAN",
        "._domainkey.example.org.\tIN TXT \"v=DKIM1; k=ed25519; p=",
        "_dmarc.example.org.\tIN TXT \"v=DMARC1; p=quarantine",
        "_smtp._tls.example.org.\tIN TXT \"v=TLSRPTv1;",
        "_mta-sts.example.org.\tIN TXT \"v=STSv1; id=",
    ] {
        assert!(dns.contains(want), "{want} missing:\n{dns}");
    }
    // `domain add` creates the keys up front.
    let added = run_ok(env.bin().args(["domain", "add", "second.test"]));
    assert!(added.contains("sealmail domain dns second.test"), "{added}");
    let keys = env.control().dkim_keys("second.test").unwrap();
    assert_eq!(keys.len(), 2);
}

/// kill -9 while hundreds of accepted messages wait for a slow MX: after a
/// restart every message that got 250 arrives (at least once).
#[test]
fn killed_server_delivers_every_accepted_message_after_restart() {
    let work = tempfile::tempdir().unwrap();
    let (_sink, sink_port, sink_dir) = start_sinks(work.path());
    std::fs::write(sink_dir.join("smtp_mode"), "slow 0.2").unwrap();
    let mut env = Env::new();
    let ann = env.alias("ann", "pw");
    let (p587, p465) = (free_port(), free_port());
    let text = std::fs::read_to_string(&env.config.file).unwrap();
    let mut text = text
        .replace("\"0.0.0.0:587\"", &format!("\"127.0.0.1:{p587}\""))
        .replace("\"0.0.0.0:465\"", &format!("\"127.0.0.1:{p465}\""))
        .replace("nameservers = []", "nameservers = [\"127.0.0.1:9\"]");
    for p in ["25", "110", "143", "993", "995"] {
        text = text.replace(&format!("\"0.0.0.0:{p}\""), "\"127.0.0.1:0\"");
    }
    text.push_str(&format!(
        "\n[relay.routes]\n\"remote.test\" = \"127.0.0.1:{sink_port}\"\n"
    ));
    std::fs::write(&env.config.file, text).unwrap();
    env.config = sealmail::config::Config::load(env.data()).unwrap();
    let log = work.path().join("server.log");
    let start = || {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = env
            .bin()
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", p465)).is_err() {
            assert!(std::time::Instant::now() < deadline, "server did not start");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    };
    let mut server = start();
    let acked_file = work.path().join("acked");
    let out = python(
        "submission_load.py",
        &[
            p465.to_string(),
            ann.clone(),
            "pw".into(),
            "carol@remote.test".into(),
            "5".into(),
            "100".into(),
            acked_file.display().to_string(),
        ],
    );
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    let acked: Vec<String> = std::fs::read_to_string(&acked_file)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(acked.len(), 500, "{out}");
    let before = sink_messages(&sink_dir).len();
    assert!(
        before < 500,
        "the kill came while messages were still queued"
    );
    eprintln!("{before} of 500 delivered before the kill");

    std::fs::write(sink_dir.join("smtp_mode"), "accept").unwrap();
    let mut server = start();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let ids = |msgs: &[serde_json::Value]| -> std::collections::BTreeMap<String, usize> {
        let mut seen = std::collections::BTreeMap::new();
        for m in msgs {
            let data = m["data"].as_str().unwrap_or_default();
            if let Some(id) = data.lines().find_map(|l| l.strip_prefix("Message-ID: ")) {
                *seen.entry(id.trim().to_string()).or_insert(0) += 1;
            }
        }
        seen
    };
    loop {
        let seen = ids(&sink_messages(&sink_dir));
        if acked.iter().all(|a| seen.contains_key(a)) {
            let twice = seen.values().filter(|n| **n > 1).count();
            eprintln!("all 500 delivered; {twice} twice (in flight at the kill)");
            break;
        }
        if std::time::Instant::now() > deadline {
            let missing: Vec<_> = acked.iter().filter(|a| !seen.contains_key(*a)).collect();
            panic!(
                "{} accepted messages never arrived: {:?}\nqueue:\n{}\nserver log:\n{}",
                missing.len(),
                &missing[..missing.len().min(5)],
                run_ok(env.bin().args(["queue", "list", "--all"])),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_refusal_bounces_at_once_with_its_category() {
    let work = tempfile::tempdir().unwrap();
    let (_sink, port, sink_dir) = start_sinks(work.path());
    std::fs::write(sink_dir.join("smtp_mode"), "reject").unwrap();
    let env = Env::new();
    let ann = env.alias("ann", "pw");
    let (_clock, d) = fake_queue(&env, port);
    let qid = submit(&d, &ann, "nobody@remote.test", "refused");
    assert_eq!(block(run_once(&d)).unwrap(), 1);
    let m = d.queue.show(&qid).unwrap();
    let r = &m.recipients[0];
    assert_eq!((r.state.as_str(), r.attempts), ("failed", 1));
    assert_eq!(r.category, Some(sealmail::queue::Category::UnknownUser));
    assert!(r.bounced, "bounced in the same round");
    assert!(!m.body_kept);
    let (_b, store) = env.store();
    let s = unlock(&store, &ann, "pw");
    let found = block(s.search("INBOX", Criteria::Subject("Undelivered Mail".into())))
        .unwrap()
        .uids;
    assert_eq!(found.len(), 1, "one bounce");
    let text = first_message(&s);
    assert!(text.contains("Status: 5.1.1"), "{text}");
    assert!(text.contains("X-Failure-Category: unknown-user"), "{text}");
}

/// The MX's hostile-input list on 587/465, plus password spraying
/// (tests/interop/submission_bad_input.py).
#[test]
fn hostile_input_on_the_submission_ports() {
    // Volume checks run against generous deadlines (what the server
    // answers must not depend on how fast this machine moves 100 MB);
    // deadline, socket and spraying checks against a second server with
    // short ones.
    let mut env = Env::new();
    env.config.mx.command_timeout = Duration::from_secs(120);
    env.config.mx.data_timeout = Duration::from_secs(300);
    let mut strict = Env::new();
    strict.config.mx.command_timeout = Duration::from_secs(2);
    strict.config.mx.data_timeout = Duration::from_secs(3);
    // The accounts use cheap argon2 (`FAST`); so do the checks of unknown
    // users, so that the memory measured is what the input costs (each
    // check holds its memory cost, at most one per core at once).
    env.config.kdf = FAST;
    strict.config.kdf = FAST;
    let ann = env.alias("ann", "ann-password");
    let victim = env.alias("vic", "vic-password");
    strict.alias("ann", "ann-password");
    strict.alias("vic", "vic-password");
    let server = env.serve();
    let deadlines = strict.serve();
    let before = peak_rss_kib();
    let out = python(
        "submission_bad_input.py",
        &[
            server.submission.port().to_string(),
            server.submissions.port().to_string(),
            deadlines.submission.port().to_string(),
            deadlines.submissions.port().to_string(),
            ann,
            "ann-password".into(),
            victim,
            "vic-password".into(),
        ],
    );
    let grown = peak_rss_kib().saturating_sub(before);
    print!("{out}");
    drop(server);
    drop(deadlines);
    assert!(out.contains(" 0 failed"), "{out}");
    assert!(grown < 160 * 1024, "peak RSS grew by {} MiB", grown / 1024);
}
