//! `make bench`: storage figures, each encrypted run beside the same code
//! with encryption off, measured in one process on one machine.
//!
//! Prints throughput and latency percentiles with their goals. The POP3
//! figures run a real server on loopback (plaintext, development mode, so
//! the client needs no TLS stack) beside reading the same messages straight
//! from the store. Sizes are
//! bounded (about a minute in all on two cores); `BENCH_SEARCH_MESSAGES`
//! overrides the 100,000-message mailbox of the search figures, and
//! `BENCH_BACKUP_MIB` the size of the backed-up mailbox (256; the backup
//! goal is stated for 1024);
//! `BENCH_ONLY=append,open,search,pop3,spool,imap,mx,sieve,openpgp,content,reference,cluster,submission,backup,web,data`
//! runs some sections only; `data` imports an mbox of `BENCH_DATA_MIB`
//! (1024), exports it again and migrates from Dovecot (`data.rs`); `reference` runs the IMAP and POP3 loads against
//! Debian's Dovecot beside sealmail (`reference.rs`); `web` scrapes
//! `/metrics` with 10,000 aliases (`web.rs`).

mod backup;
mod cluster;
mod common;
mod data;
mod imap;
mod mx;
mod openpgp;
mod pop3;
mod postfix;
mod reference;
mod sieve;
mod store;
mod submission;
mod web;

use common::tempdir;
use imap::{imap_bench, imap_idle_bench, imap_steady_bench, spool_login_bench};
use mx::{idle_sessions_bench, mx_bench, mx_content_bench};
use pop3::pop3_bench;
use store::{append_bench, open_bench, search_bench, unlock_bench};

fn main() {
    let tmp = tempdir();
    println!(
        "sealmail storage benchmark (release build, {} cores)\n",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // BENCH_ONLY=backup,mx runs just those sections.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|o| o.trim() == name);
    if run("append") {
        append_bench(&tmp, 4 * 1024, 5_000);
        append_bench(&tmp, 100 * 1024, 500);
    }
    if run("open") {
        open_bench(&tmp);
        unlock_bench(&tmp);
    }
    let n = env_or("BENCH_SEARCH_MESSAGES", 100_000) as usize;
    if run("search") {
        search_bench(&tmp, n);
    }
    if run("pop3") {
        pop3_bench(&tmp, n);
    }
    if run("spool") {
        spool_login_bench(&tmp);
    }
    if run("imap") {
        imap_steady_bench(&tmp);
        imap_bench(&tmp);
        imap_idle_bench(&tmp);
    }
    if run("mx") {
        mx_bench(&tmp);
        idle_sessions_bench(&tmp);
    }
    if run("sieve") {
        sieve::mx_sieve_bench(&tmp);
    }
    if run("openpgp") {
        openpgp::openpgp_bench(&tmp);
    }
    if run("content") {
        mx_content_bench(&tmp);
    }
    // Against Dovecot: run by name only (BENCH_ONLY=reference) or in the
    // full run.
    if run("reference") {
        reference::reference_bench(&tmp);
    }
    if run("cluster") {
        cluster::cluster_bench(&tmp);
    }
    if run("submission") {
        submission::submission_bench(&tmp);
    }
    if run("backup") {
        backup::backup_bench(&tmp, env_or("BENCH_BACKUP_MIB", 256));
    }
    if run("web") {
        web::web_bench(&tmp);
    }
    if run("data") {
        data::data_bench(&tmp, env_or("BENCH_DATA_MIB", 1024));
    }
    if std::env::var_os("BENCH_KEEP").is_some() {
        println!("kept {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

/// A number from the environment, or `default`.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
