//! Pure parsers and encoders of wire and file formats (mbox, POP3, SMTP,
//! IMAP, results header fields, executable content, clamd's replies,
//! HTTP responses, MTA-STS policies, rspamd's verdicts, certificates'
//! public keys for DANE, client autoconfiguration): no I/O,
//! no async.
//!
//! Imports nothing of ours but `util`'s pure helpers. Invariants: every parser is total (any input
//! gives a value or an error, never a panic) and bounded.

#![deny(clippy::indexing_slicing)]

pub mod autoconfig;
pub mod clamd;
pub mod executable;
pub mod http;
pub mod imap;
pub mod managesieve;
pub mod mbox;
pub mod mta_sts;
pub mod mutf7;
pub mod pop3;
pub mod rar;
pub mod results;
pub mod rspamd;
pub mod sasl;
pub mod sevenz;
pub mod smtp;
pub mod x509;

/// At most `n` characters of `s`: how a parser quotes input in an error.
pub(crate) fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Inputs for round-trip tests: each seed as it is, then `n` byte-level
/// mutations of them (a byte replaced by any byte, one of `inserts` put in,
/// or a byte removed), from a fixed random seed.
#[cfg(test)]
pub(crate) fn mutations(seeds: &[&[u8]], inserts: &[u8], seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out: Vec<Vec<u8>> = seeds.iter().map(|s| s.to_vec()).collect();
    for i in 0..n {
        let mut line = seeds[i % seeds.len()].to_vec();
        for _ in 0..rng.usize(1..3) {
            let at = rng.usize(..=line.len());
            match rng.u8(0..3) {
                0 if at < line.len() => line[at] = rng.u8(..),
                1 => line.insert(at, inserts[rng.usize(..inserts.len())]),
                _ if at < line.len() => {
                    line.remove(at);
                }
                _ => {}
            }
        }
        out.push(line);
    }
    out
}
