//! The HTTP(S) listener as clients and attackers meet it: autoconfig,
//! Autodiscover, the Apple profile and the MTA-STS policy read by Python's
//! own parsers (`tests/interop/web_check.py`), metrics read by
//! prometheus_client's parser and linted by promtool while mail flows,
//! and hostile requests (endless headers, slowloris, 10,000 requests on
//! one connection) answered with bounded memory while IMAP goes on.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::imap::Client;
use common::*;

#[test]
fn clients_configure_themselves_for_served_domains_only() {
    let env = Env::new();
    env.alias("ann", "pw");
    let server = env.serve();
    let out = venv_script(
        "web_check.py",
        &[
            "site".into(),
            server.http.port().to_string(),
            server.https.port().to_string(),
            server.imaps.port().to_string(),
            server.submissions.port().to_string(),
        ],
    );
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

/// The samples of one scrape, by `name{label=value,...}`.
fn scrape(port: u16) -> serde_json::Map<String, serde_json::Value> {
    let out = venv_script("web_check.py", &["metrics".into(), port.to_string()]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["type"].as_str(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    v["samples"].as_object().unwrap().clone()
}

fn sample(s: &serde_json::Map<String, serde_json::Value>, key: &str) -> f64 {
    s.get(key).and_then(|v| v.as_f64()).unwrap_or(0.0)
}

#[test]
fn metrics_move_as_mail_flows() {
    let mut env = Env::new();
    env.config.dev = true;
    let ann = env.alias("ann", "pw");
    let server = env.serve();
    let before = scrape(server.metrics.port());
    assert_eq!(smtp_send(server.smtp, &ann, "counted")[..3], *"250");
    let refused = smtp_exchange(
        std::net::TcpStream::connect(server.smtp).unwrap(),
        &[
            "EHLO client.example.net",
            "MAIL FROM:<a@example.net>",
            "RCPT TO:<nobody@example.org>",
            "QUIT",
        ],
    );
    assert!(refused[3].starts_with("550 5.1.1"), "{refused:?}");
    let mut ok = Client::login(server.imap, &ann);
    let (mut bad, _) = Client::connect(server.imap);
    let r = bad.cmd("b LOGIN ann@example.org wrong");
    assert!(r.last().unwrap().starts_with("b NO"), "{r:?}");
    let after = scrape(server.metrics.port());
    let moved = |key: &str| sample(&after, key) - sample(&before, key);
    assert_eq!(
        moved("sealmail_messages_total{port=mx,reason=2.0.0,result=accepted}"),
        1.0,
        "{after:?}"
    );
    assert_eq!(
        moved("sealmail_recipients_total{port=mx,reason=5.1.1,result=refused}"),
        1.0,
        "{after:?}"
    );
    assert_eq!(
        moved("sealmail_recipients_total{port=mx,reason=2.1.5,result=accepted}"),
        1.0
    );
    assert_eq!(moved("sealmail_logins_total{result=ok}"), 1.0, "{after:?}");
    assert_eq!(moved("sealmail_logins_total{result=failed}"), 1.0);
    assert!(moved("sealmail_connections_total{protocol=smtp}") >= 1.0);
    assert!(sample(&after, "sealmail_sessions{protocol=imap}") >= 2.0);
    assert!(sample(&after, "process_resident_memory_bytes{}") > 1e6);
    assert!(sample(&after, "process_open_fds{}") > 5.0);
    assert!(
        sample(
            &after,
            "sealmail_http_requests_total{code=200,port=metrics}"
        ) >= 1.0
    );
    ok.cmd("z LOGOUT");
}

/// A server process with its web listeners on known ports: (env, http,
/// https).
fn web_process() -> (Env, u16, u16) {
    let mut env = Env::subprocess();
    let ports = env.known_ports(&["http", "https"]);
    (env, ports[0], ports[1])
}

/// The server's resident set now and at its peak, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Sends one header line without end until the server stops reading
/// (or `cap` bytes went); returns what the server answered.
fn endless_header(addr: SocketAddr, cap: usize) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: example.org\r\nX-Big: ");
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    while sent < cap {
        if s.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).to_string()
}

#[test]
fn hostile_http_gets_clear_answers_in_bounded_memory() {
    let (env, http, _https) = web_process();
    let server = env.spawn_server(&[]);
    let pid = server.0.id();
    let http_addr: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    wait_for("the HTTP listener", || {
        TcpStream::connect(http_addr).is_ok()
    });
    let (rss_start, _) = rss_kib(pid);

    // An IMAP session stays open through all of it.
    let (mut imap, greeting) = Client::connect(env.config.listen.imap);
    assert!(greeting.starts_with("* OK"), "{greeting}");

    // Eight clients each try to send a 1 GiB header at once: each is told
    // 431 (or cut off) long before, and memory stays flat.
    let senders: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || endless_header(http_addr, 1 << 30)))
        .collect();
    for s in senders {
        let answer = s.join().unwrap();
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
            "{answer:?}"
        );
    }
    let (_, peak) = rss_kib(pid);
    assert!(
        peak < rss_start + 64 * 1024,
        "peak {peak} KiB from {rss_start} KiB"
    );

    // Slowloris: a byte every half second. The server ends it after its
    // ten seconds for a request head, not when the client is done.
    let started = Instant::now();
    let mut slow = TcpStream::connect(http_addr).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut closed = false;
    for b in b"GET / HTTP/1.1\r\nHost: example.org\r\nX-Slow: "
        .iter()
        .cycle()
        .take(600)
    {
        if slow.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {
                // An answer (408) before the close is fine too.
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "a slow client was never cut off");
    assert!(started.elapsed() < Duration::from_secs(290));

    // 10,000 requests pipelined on one connection: 100 are answered, the
    // last with Connection: close, then the connection ends.
    let s = TcpStream::connect(http_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..10_000 {
            if w.write_all(
                b"GET /mail/config-v1.1.xml HTTP/1.1\r\nHost: autoconfig.example.org\r\n\r\n",
            )
            .is_err()
            {
                break;
            }
        }
    });
    let mut r = BufReader::new(s);
    let (mut answers, mut close_seen) = (0, false);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.starts_with("HTTP/1.1 200") {
            answers += 1;
        }
        if line.eq_ignore_ascii_case("connection: close\r\n") {
            close_seen = true;
        }
    }
    writer.join().unwrap();
    assert_eq!(answers, 100);
    assert!(close_seen);

    // Unknown hosts and traversal are answered plainly (web_check.py has
    // the full table); the mail ports never noticed.
    let mut s = TcpStream::connect(http_addr).unwrap();
    s.write_all(b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let r = imap.cmd("n NOOP");
    assert!(r.last().unwrap().starts_with("n OK"), "{r:?}");
    let (_, peak) = rss_kib(pid);
    assert!(peak < rss_start + 64 * 1024, "peak {peak} KiB");
    drop(server);
}

/// `domain dns` as a zone for the loopback DNS server, less the records
/// `skip` names and with `change`d values.
fn zone_from(printed: &str, skip: &[&str], change: &[(&str, &str, &str)]) -> serde_json::Value {
    let mut zone = serde_json::Map::new();
    for line in printed.lines().filter(|l| !l.starts_with(';')) {
        let (name, rest) = line.split_once("\tIN ").unwrap();
        let name = name.trim_end_matches('.');
        let (kind, value) = rest.split_once(' ').unwrap();
        if skip.contains(&name) {
            continue;
        }
        let value = match kind {
            // The quoted strings of a TXT record, joined.
            "TXT" => value.split('"').skip(1).step_by(2).collect::<String>(),
            _ => value.trim_end_matches('.').to_string(),
        };
        let value = change
            .iter()
            .find(|(n, k, _)| *n == name && *k == kind)
            .map_or(value, |(_, _, v)| v.to_string());
        zone.entry(name.to_string())
            .or_insert_with(|| serde_json::json!([]))
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!([kind, value]));
    }
    zone.insert(
        "mail.example.org".into(),
        serde_json::json!([["A", "127.0.0.1"]]),
    );
    serde_json::Value::Object(zone)
}

#[test]
fn domain_check_reads_what_domain_dns_prints() {
    // A server on known ports, whose SRV records `domain dns` prints.
    let mut env = Env::subprocess();
    env.known_ports(&["imaps", "submissions"]);
    let imaps = env.config.listen.imaps.port();
    let printed = run_ok(env.bin().args(["domain", "dns", "example.org"]));
    let imaps_srv = format!("_imaps._tcp.example.org.\tIN SRV 0 1 {imaps} mail.example.org.");
    for want in [
        imaps_srv.as_str(),
        "autoconfig.example.org.\tIN CNAME mail.example.org.",
        "mta-sts.example.org.\tIN CNAME mail.example.org.",
        "_autodiscover._tcp.example.org.\tIN SRV 0 1 443 mail.example.org.",
    ] {
        assert!(printed.contains(want), "{want} missing:\n{printed}");
    }
    // The MTA-STS id is the served policy's.
    let policy = sealmail::app::mta_sts_policy(&env.config);
    assert!(printed.contains(&format!("\"v=STSv1; id={}\"", policy.id())));

    // Published: all but IMAP's SRV record and the autodiscover name, an
    // SPF record of its own, and mta-sts by address rather than CNAME.
    let work = tempfile::tempdir().unwrap();
    let zone = zone_from(
        &printed,
        &["_imap._tcp.example.org", "autodiscover.example.org"],
        &[
            ("example.org", "TXT", "v=spf1 a -all"),
            ("mta-sts.example.org", "CNAME", "unused"),
        ],
    );
    let mut zone = zone;
    zone["mta-sts.example.org"] = serde_json::json!([["A", "127.0.0.1"]]);
    let (_dns, port) = start_dns(work.path(), &zone);
    let text = std::fs::read_to_string(&env.config.file).unwrap().replace(
        "nameservers = []",
        &format!("nameservers = [\"127.0.0.1:{port}\"]"),
    );
    std::fs::write(&env.config.file, text).unwrap();
    let out = env
        .bin()
        .args(["domain", "check", "example.org"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{said}");
    assert!(err.contains("3 of 19 records"), "{err}");
    let line = |start: &str| {
        said.lines()
            .find(|l| l.contains(start))
            .unwrap_or_else(|| panic!("{start} not in:\n{said}"))
            .to_string()
    };
    assert!(line("MX example.org").starts_with("OK"));
    assert!(line("._domainkey.example.org").starts_with("OK"));
    assert!(line("TXT _mta-sts.example.org").starts_with("OK"));
    assert!(line("SRV _imaps._tcp.example.org").starts_with("OK"));
    assert!(line("address autoconfig.example.org").starts_with("OK"));
    assert!(line("address mta-sts.example.org").starts_with("OK"));
    let spf = line("TXT example.org");
    assert!(
        spf.starts_with("DIFFERENT")
            && spf.contains("v=spf1 a -all")
            && spf.contains("v=spf1 mx -all"),
        "{spf}"
    );
    assert!(line("SRV _imap._tcp.example.org").starts_with("MISSING"));
    assert!(line("address autodiscover.example.org").starts_with("MISSING"));
    // The DMARC record was published as printed, the TLS-RPT one too.
    assert!(line("TXT _dmarc.example.org").starts_with("OK"));
    assert!(line("TXT _smtp._tls.example.org").starts_with("OK"));

    // A client that reads SRV records (dnspython) finds the server and
    // gets its IMAP and submission greetings.
    let server = env.spawn_server(&[]);
    let out = venv_script(
        "web_check.py",
        &["srv".into(), port.to_string(), "example.org".into()],
    );
    assert!(out.contains("2 passed, 0 failed"), "{out}");
    drop(server);
}

/// One GET on a keep-alive connection: (status, body).
fn get(r: &mut BufReader<TcpStream>, host: &str, path: &str) -> (u16, String) {
    r.get_mut()
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

#[test]
fn many_clients_at_once_each_get_their_own_answer() {
    let env = Env::new();
    env.control().add_domain("second.test").unwrap();
    let server = env.serve();
    let http = server.http;
    // The model: what each (host, path) must answer.
    let cases: Vec<(String, String, u16, String)> = (0..40)
        .map(|i| match i % 4 {
            0 => (
                "autoconfig.example.org".into(),
                format!("/mail/config-v1.1.xml?emailaddress=u{i}%40example.org"),
                200,
                "<domain>example.org</domain>".into(),
            ),
            1 => (
                "autoconfig.second.test".into(),
                "/mail/config-v1.1.xml".into(),
                200,
                "<domain>second.test</domain>".into(),
            ),
            2 => (
                format!("autoconfig.other{i}.net"),
                "/mail/config-v1.1.xml".into(),
                404,
                format!("other{i}.net"),
            ),
            _ => (
                "example.org".into(),
                format!(
                    "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=x{i}%40second.test"
                ),
                200,
                "<domain>second.test</domain>".into(),
            ),
        })
        .collect();
    let cases = std::sync::Arc::new(cases);
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let cases = cases.clone();
            std::thread::spawn(move || {
                let s = TcpStream::connect(http).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut r = BufReader::new(s);
                for n in 0..60 {
                    let (host, path, status, needle) = &cases[(c * 7 + n) % cases.len()];
                    let (got, body) = get(&mut r, host, path);
                    assert_eq!(got, *status, "{host}{path}: {body}");
                    assert!(body.contains(needle.as_str()), "{host}{path}: {body}");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}
