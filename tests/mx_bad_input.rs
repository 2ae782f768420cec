//! Hostile input to the MX (see tests/interop/mx_bad_input.py): clear
//! replies or a close, other sessions unaffected, bounded memory, no panic.
// A panic in a test is a failed test: tests may unwrap.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::string_slice
)]

mod common;

use std::time::Duration;

use common::*;

#[test]
fn hostile_smtp_input_is_bounded() {
    // Volume checks run against generous deadlines, so they depend on what
    // the server answers and not on how fast this machine moves 100 MB;
    // deadline checks run against a second server with short ones.
    let mut env = Env::new();
    env.config.mx.command_timeout = Duration::from_secs(120);
    env.config.mx.data_timeout = Duration::from_secs(300);
    let alias = env.alias("ann", "pw");
    let mut strict = Env::new();
    strict.config.mx.command_timeout = Duration::from_secs(2);
    strict.config.mx.data_timeout = Duration::from_secs(3);
    strict.alias("ann", "pw");
    let server = env.serve();
    let deadlines = strict.serve();
    let before = peak_rss_kib();
    let out = python(
        "mx_bad_input.py",
        &[
            server.smtp.port().to_string(),
            deadlines.smtp.port().to_string(),
            alias.clone(),
        ],
    );
    let grown = peak_rss_kib().saturating_sub(before);
    print!("{out}");
    drop(server);
    drop(deadlines);
    // A 1 GB line, a 100 MB message and 10,000 sockets went through; the
    // largest thing held is one message under the 50 MB limit at a time.
    assert!(grown < 160 * 1024, "peak RSS grew by {} MiB", grown / 1024);
}
