//! Login floods (issue: parallel logins bypassed the limiter, and anyone
//! could lock an owner out): attempts sent at once count before their
//! password is checked, password checks are bounded, and an attacked
//! account slows strangers down without refusing its owner.
//!
//! One test in its own binary: it reads the process-wide count of password
//! checks, which other tests would move.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::thread;

use common::imap::dev_env;
use sealmail::net::limits::password_checks;

/// `a LOGIN` from `source`; the tagged reply.
fn login_from(source: IpAddr, server: SocketAddr, user: &str, password: &str) -> String {
    let stream = common::connect_from(source, server);
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("* OK"), "{line}");
    w.write_all(format!("a LOGIN \"{user}\" \"{password}\"\r\n").as_bytes())
        .unwrap();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            return "EOF".into();
        }
        if line.starts_with("a ") {
            return line.trim_end().to_string();
        }
    }
}

/// Runs `n` logins at once, the i-th from `source(i)`.
fn at_once(
    n: usize,
    server: SocketAddr,
    user: &str,
    password: &str,
    source: impl Fn(usize) -> IpAddr,
) -> Vec<String> {
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (src, user, password) = (source(i), user.to_string(), password.to_string());
            thread::spawn(move || login_from(src, server, &user, &password))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

const FAILED: &str = "a NO [AUTHENTICATIONFAILED] Authentication failed.";

#[test]
fn login_floods_are_counted_in_flight_and_never_lock_the_owner_out() {
    let env = dev_env();
    let user = env.alias("ann", "pw");
    let other = env.alias("bob", "pw");
    let server = env.serve();
    let owner_home: IpAddr = "127.0.6.1".parse().unwrap();
    assert!(login_from(owner_home, server.imap, &user, "pw").starts_with("a OK"));

    // 40 wrong logins at once from one address: 10 are checked (the ban
    // threshold), the rest refused before any check.
    let before = password_checks();
    let replies = at_once(40, server.imap, &other, "wrong", |_| {
        "127.0.3.1".parse().unwrap()
    });
    let checked = password_checks() - before;
    let failed = replies.iter().filter(|r| *r == FAILED).count();
    let banned = replies
        .iter()
        .filter(|r| *r == "a NO [UNAVAILABLE] too many failed logins; try again later")
        .count();
    assert_eq!((checked, failed, banned), (10, 10, 30), "{replies:?}");

    // 120 wrong logins at once against the account from 120 addresses: 20
    // before it counts as attacked, then at most 4 waiting their turn; the
    // rest are told to try again shortly, unchecked.
    let before = password_checks();
    let replies = at_once(120, server.imap, &user, "wrong", |i| {
        IpAddr::from([127, 0, 4, i as u8 + 1])
    });
    let checked = password_checks() - before;
    let busy = replies
        .iter()
        .filter(|r| {
            *r == "a NO [UNAVAILABLE] too many logins to this account right now; try again shortly"
        })
        .count();
    let failed = replies.iter().filter(|r| *r == FAILED).count();
    assert_eq!(failed + busy, 120, "{replies:?}");
    assert!((20..=24).contains(&checked), "{checked} password checks");
    assert_eq!(failed as u64, checked);

    // The owner: from a fresh address, after a delay at most; from an
    // address the account knows, at once.
    assert!(login_from("127.0.5.1".parse().unwrap(), server.imap, &user, "pw").starts_with("a OK"));
    assert!(login_from(owner_home, server.imap, &user, "pw").starts_with("a OK"));
}
