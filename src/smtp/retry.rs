//! What a transaction that answered 4xx already delivered: the sending
//! MTA will repeat the whole message, and the repeat must reach only the
//! destinations that did not get it (no double delivery after a 451).
//!
//! Imports sha2 only. Invariants: entries are held in memory for at most
//! `KEEP` and at most `MAX_ENTRIES` of them (oldest dropped first), so a
//! restart or a very late retry may deliver a second copy, never lose one.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Sending MTAs retry within minutes to hours; Postfix gives up after 5 days
/// but its first retries come well inside this.
const KEEP: Duration = Duration::from_secs(24 * 3600);
const MAX_ENTRIES: usize = 100_000;

type Key = [u8; 32];

/// Delivered (message, destination) pairs of deferred transactions.
#[derive(Default)]
pub struct Delivered {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    at: HashMap<Key, Instant>,
    order: VecDeque<(Instant, Key)>,
}

/// Identifies a message by its envelope sender and content as received.
pub fn message_digest(from: &str, body: &[u8]) -> Key {
    let mut h = Sha256::new();
    h.update(from.as_bytes());
    h.update([0]);
    h.update(body);
    h.finalize().into()
}

fn key(message: &Key, destination: &str) -> Key {
    let mut h = Sha256::new();
    h.update(message);
    h.update(destination.as_bytes());
    h.finalize().into()
}

impl Delivered {
    pub fn contains(&self, message: &Key, destination: &str) -> bool {
        let k = key(message, destination);
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.at.get(&k).is_some_and(|t| t.elapsed() < KEEP)
    }

    pub fn insert(&self, message: &Key, destination: &str) {
        let k = key(message, destination);
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&(t, old)) = inner.order.front() {
            if t.elapsed() < KEEP && inner.order.len() < MAX_ENTRIES {
                break;
            }
            inner.order.pop_front();
            if inner.at.get(&old) == Some(&t) {
                inner.at.remove(&old);
            }
        }
        inner.at.insert(k, now);
        inner.order.push_back((now, k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_message_and_destination() {
        let d = Delivered::default();
        let m = message_digest("a@x", b"body");
        d.insert(&m, "mailbox:b@y");
        assert!(d.contains(&m, "mailbox:b@y"));
        assert!(!d.contains(&m, "forward:c@z"));
        assert!(!d.contains(&message_digest("a@x", b"other"), "mailbox:b@y"));
        for i in 0..MAX_ENTRIES + 10 {
            d.insert(&m, &i.to_string());
        }
        let inner = d.inner.lock().unwrap();
        assert!(inner.order.len() <= MAX_ENTRIES);
        assert!(inner.at.len() <= MAX_ENTRIES);
    }
}
