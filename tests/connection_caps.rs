//! Connection floods (issue: 4,000 connections from 80 addresses were all
//! accepted, and at the descriptor limit every port went silent): past the
//! server's cap, or a protocol's share of it, a client reads its
//! protocol's "server busy" line and is closed; a logged-in client keeps
//! working throughout, and other protocols keep their room.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpStream};

use common::imap::{Client, dev_env, msg};
use common::{connect_from, smtp_send};

/// The first line the server sends on `s`.
fn first_line(s: &TcpStream) -> String {
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

#[test]
fn past_the_cap_clients_read_busy_and_logged_in_clients_keep_working() {
    let mut env = dev_env();
    // IMAP's share is three quarters: 300.
    env.config.max_connections = Some(400);
    let user = env.alias("ann", "pw");
    let server = env.serve();
    let mut owner = Client::login(server.imap, &user);
    owner.cmd("s SELECT INBOX");

    // 5,000 connections from 100 addresses, 50 each (the per-address cap).
    let mut open = Vec::new();
    let (mut admitted, mut busy) = (0, 0);
    for i in 0..5000usize {
        let source = IpAddr::from([127, 0, 8, (i % 100) as u8 + 1]);
        let s = connect_from(source, server.imap);
        match first_line(&s).as_str() {
            l if l.starts_with("* OK") => {
                admitted += 1;
                open.push(s);
            }
            "* BYE [UNAVAILABLE] Server busy; try again later" => {
                busy += 1;
                // Closed by the server after its line.
                let mut rest = Vec::new();
                let _ = (&s).read_to_end(&mut rest);
                assert!(rest.is_empty(), "{rest:?}");
            }
            other => panic!("connection {i}: {other:?}"),
        }
        if i % 1000 == 999 {
            // The logged-in client works throughout.
            let m = msg(i);
            owner.send(format!("a APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()).as_bytes());
            let r = owner.until("a");
            assert!(r.last().unwrap().starts_with("a OK"), "{r:?}");
        }
    }
    assert_eq!(admitted, 299, "IMAP's share less the owner's connection");
    assert_eq!(admitted + busy, 5000);
    // The MX keeps its own room while IMAP is full.
    let reply = smtp_send(server.smtp, &user, "while IMAP is full");
    assert!(reply.starts_with("250"), "{reply}");
    let r = owner.cmd("n NOOP");
    assert!(r.last().unwrap().starts_with("n OK"), "{r:?}");
    // Once the flood lets go, new clients get in.
    for s in &open {
        let _ = (&*s).write_all(b"x LOGOUT\r\n");
    }
    drop(open);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (c, greeting) = Client::connect(server.imap);
        drop(c);
        if greeting.starts_with("* OK") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{greeting}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Out of descriptors, the accept loop pauses (doubling up to a second)
/// and logs once per run of failures, not 20 lines a second; once clients
/// let go, it accepts again.
#[test]
fn out_of_descriptors_the_accept_loop_pauses_and_logs_once() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let mut env = common::Env::new();
    let smtp = common::free_port();
    let text = std::fs::read_to_string(&env.config.file).unwrap();
    let text = text
        .replace("dev = false", "dev = true")
        .replace("\"0.0.0.0:25\"", &format!("\"127.0.0.1:{smtp}\""))
        .replace("# max_connections = 20000", "max_connections = 5000");
    let text = ["587", "465", "110", "143", "993", "995"]
        .iter()
        .fold(text, |t, p| {
            t.replace(&format!("\"0.0.0.0:{p}\""), "\"127.0.0.1:0\"")
        });
    std::fs::write(&env.config.file, text).unwrap();
    env.config = sealmail::config::Config::load(env.data()).unwrap();
    let log = env.data().join("serve.log");
    // The server starts with 128 descriptors and cannot raise them.
    let mut server = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_sealmail"))
        .arg("--data")
        .arg(env.data())
        .arg("serve")
        .env("SEALMAIL_LOG", "sealmail::net=info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{smtp}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // 180 connections from 6 addresses: more than 128 descriptors hold
    // (the rest wait in the listen backlog).
    let flood: Vec<TcpStream> = (0..180usize)
        .map(|i| connect_from(IpAddr::from([127, 0, 9, (i % 6) as u8 + 1]), addr))
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    drop(flood);
    // Accepting again once the flood has gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        let _ = BufReader::new(&s).read_line(&mut line);
        if line.starts_with("220") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no greeting after the flood: {line:?}"
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    // One line per run of failures: each run but the last of a listener
    // ends in "accepting again". (Hundreds of accepts failed.) How many
    // listeners a flood wakes, and how often one resumes too early,
    // depends on the machine's load.
    let failures = text.matches("accept failed").count();
    let resumed = text.matches("accepting again").count();
    assert!(
        failures >= 1 && failures <= resumed + 7,
        "{failures} accept-failure lines, {resumed} resumed:\n{text}"
    );
}
