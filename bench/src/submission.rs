//! Submission: authenticated senders into the queue, delivered to a
//! loopback sink.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;

/// A loopback SMTP server that takes every message (the next hop of the
/// submission figures); counts what it got to the end of data.
pub(crate) fn smtp_sink(count: Arc<std::sync::atomic::AtomicUsize>) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind sink");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let _ = conn.set_nodelay(true);
            let count = count.clone();
            std::thread::spawn(move || {
                use std::io::{BufRead, BufReader, Write};
                let mut w = conn.try_clone().expect("clone");
                let mut r = BufReader::new(conn);
                let _ = w.write_all(b"220 sink ESMTP\r\n");
                let mut line = Vec::new();
                let mut in_data = false;
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let reply: &[u8] = if in_data {
                        if line != b".\r\n" {
                            continue;
                        }
                        in_data = false;
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        b"250 2.0.0 OK\r\n"
                    } else if line.starts_with(b"EHLO") {
                        b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                    } else if line.starts_with(b"DATA") {
                        in_data = true;
                        b"354 go on\r\n"
                    } else if line.starts_with(b"QUIT") {
                        let _ = w.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        b"250 2.0.0 OK\r\n"
                    };
                    if w.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One submission client over implicit TLS: AUTH PLAIN once, then `count`
/// pipelined transactions; returns when the last got its 250.
pub(crate) fn submission_sender(addr: std::net::SocketAddr, user: &str, id: usize, count: usize) {
    use std::io::{Read, Write};
    let tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let name = rustls::pki_types::ServerName::try_from("bench.example.org").expect("name");
    let conn = rustls::ClientConnection::new(sealmail::net::tls::opportunistic_client(), name)
        .expect("tls");
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut buf: Vec<u8> = Vec::new();
    let mut reply = |s: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>| loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = buf.drain(..i + 2).collect();
            if line.get(3) != Some(&b'-') {
                return String::from_utf8_lossy(&line).to_string();
            }
            continue;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "server closed");
        buf.extend_from_slice(&chunk[..n]);
    };
    reply(&mut s);
    s.write_all(b"EHLO bench.example.net\r\n").expect("write");
    reply(&mut s);
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0pw"));
    s.write_all(format!("AUTH PLAIN {auth}\r\n").as_bytes())
        .expect("write");
    let r = reply(&mut s);
    assert!(r.starts_with("235"), "{r}");
    let mut rng = id as u64 + 3;
    for i in 0..count {
        let body = message(id * 100_000 + i, 4096, &mut rng);
        let body = String::from_utf8_lossy(&body).replace("From: sender", "X-Was: sender");
        let head = format!("From: {user}\r\n");
        s.write_all(
            format!("MAIL FROM:<{user}>\r\nRCPT TO:<rcpt{id}@sink.test>\r\nDATA\r\n").as_bytes(),
        )
        .expect("write");
        for _ in 0..3 {
            reply(&mut s);
        }
        s.write_all(head.as_bytes()).expect("write");
        s.write_all(body.as_bytes()).expect("write");
        s.write_all(b".\r\n").expect("write");
        let last = reply(&mut s);
        assert!(last.starts_with("250"), "{last}");
    }
    let _ = s.write_all(b"QUIT\r\n");
}

pub(crate) fn submission_bench(tmp: &Path) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let data = tmp.join("submission");
    let mut config = ten_users(&data);
    let keys = sealmail::smtp::dkim::generate(sealmail::util::now_unix()).expect("dkim");
    sealmail::app::open_control(&config)
        .expect("control")
        .add_dkim_keys("example.org", &keys)
        .expect("dkim");
    let (senders, per) = (10, 200);
    let total = senders * per;

    // Baseline: the queue's own durable commits, same sizes, no SMTP, TLS
    // or DKIM.
    let key = sealmail::app::server_key(&data).expect("key");
    let base_dir = tmp.join("submission-baseline");
    std::fs::create_dir_all(&base_dir).expect("dir");
    let queue = Arc::new(
        sealmail::queue::Queue::open(
            &base_dir,
            &key,
            Arc::new(sealmail::queue::SystemClock),
            sealmail::queue::Policy::default(),
        )
        .expect("queue"),
    );
    let t = Instant::now();
    std::thread::scope(|scope| {
        for id in 0..senders {
            let queue = queue.clone();
            scope.spawn(move || {
                let mut rng = id as u64 + 3;
                for i in 0..per {
                    let m = sealmail::queue::NewMessage {
                        alias: format!("user{id}@example.org"),
                        sender: format!("user{id}@example.org"),
                        recipients: vec![sealmail::queue::NewRecipient {
                            kind: sealmail::queue::Kind::Remote,
                            address: format!("rcpt{id}@sink.test"),
                            via: None,
                        }],
                        body: message(i, 4096, &mut rng),
                    };
                    queue.enqueue(&m).expect("enqueue");
                }
            });
        }
    });
    let direct = total as f64 / t.elapsed().as_secs_f64();
    drop(queue);

    let delivered = Arc::new(AtomicUsize::new(0));
    let sink = smtp_sink(delivered.clone());
    config.nameservers = vec!["127.0.0.1:9".parse().expect("addr")];
    config.relay.routes.insert(
        "sink.test".into(),
        sealmail::config::HostPort {
            host: sink.ip().to_string(),
            port: sink.port(),
        },
    );
    let (accept, delivery) = with_server(config, |_, _, _| {
        let addr = SUBMISSIONS.with(|s| s.get()).expect("submission port");
        let t = Instant::now();
        std::thread::scope(|scope| {
            for id in 0..senders {
                scope.spawn(move || {
                    submission_sender(addr, &format!("user{id}@example.org"), id, per)
                });
            }
        });
        let accepted = t.elapsed();
        let deadline = Instant::now() + Duration::from_secs(120);
        while delivered.load(Ordering::SeqCst) < total && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let done = delivered.load(Ordering::SeqCst);
        (
            total as f64 / accepted.as_secs_f64(),
            done as f64 / t.elapsed().as_secs_f64(),
        )
    });
    println!(
        "\nSubmission: {senders} senders x {per} messages of 4 KiB over implicit TLS, AUTH once per connection, \
         DKIM-signed (RSA + Ed25519), each 250 durable in the queue: {accept:.0} msgs/s accepted \
         (the queue alone, same commits without SMTP/TLS/DKIM: {direct:.0} msgs/s, ratio {:.2}); goal >= 1,000: {}",
        accept / direct,
        ok(accept >= 1000.0)
    );
    println!(
        "  delivery to a loopback SMTP sink, start of submission to last delivered: {delivery:.0} msgs/s \
         ({:.2} of the accept rate); goal: keeps up: {}",
        delivery / accept,
        ok(delivery >= 0.9 * accept)
    );
}
