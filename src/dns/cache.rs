//! Answers kept for their time to live: the records mail-auth parsed
//! (SPF, DKIM keys, DMARC policies, MX hosts, addresses), shared by the
//! MX's checks and the relay, with the hits and misses counted.
//!
//! Imports mail-auth only. Invariants: an answer is never used after the
//! time its record allowed (and never kept longer than [`MAX_TTL`]); each
//! kind holds at most [`ENTRIES`] answers, the oldest going first. Negative
//! answers (no such name, no such record) are kept by the resolver's own
//! cache under the SOA's TTL (RFC 2308), as mail-auth does not hand them
//! here.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mail_auth::{MX, RecordSet, ResolverCache, Txt};

/// Answers of one kind kept at most.
pub const ENTRIES: usize = 4096;
/// However long a record says it may be kept, at most this.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// The caches of every kind mail-auth asks for.
#[derive(Default)]
pub struct Caches {
    pub txt: Cache<Box<str>, Txt>,
    pub mx: Cache<Box<str>, RecordSet<MX>>,
    pub ipv4: Cache<Box<str>, RecordSet<Ipv4Addr>>,
    pub ipv6: Cache<Box<str>, RecordSet<Ipv6Addr>>,
    pub ptr: Cache<IpAddr, RecordSet<Box<str>>>,
}

impl Caches {
    /// Answers held now, all kinds.
    pub fn len(&self) -> usize {
        self.txt.len() + self.mx.len() + self.ipv4.len() + self.ipv6.len() + self.ptr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One kind's answers, bounded, oldest out first.
pub struct Cache<K, V> {
    inner: Mutex<Entries<K, V>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Entries<K, V> {
    map: HashMap<K, (V, Instant)>,
    /// Keys in the order they came in; some may be gone from `map`.
    order: VecDeque<K>,
}

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Cache {
            inner: Mutex::new(Entries {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }
}

impl<K, V> Cache<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (hits, misses) of this kind.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

impl<K: Hash + Eq + Clone, V: Clone> ResolverCache<K, V> for Cache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut e = self.lock();
        let found = match e.map.get(name) {
            Some((v, until)) if *until > Instant::now() => Some(v.clone()),
            Some(_) => {
                e.map.remove(name);
                None
            }
            None => None,
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn remove<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.lock().map.remove(name).map(|(v, _)| v)
    }

    fn insert(&self, key: K, value: V, valid_until: Instant) {
        let now = Instant::now();
        if valid_until <= now {
            return;
        }
        let until = valid_until.min(now + MAX_TTL);
        let mut e = self.lock();
        if !e.map.contains_key(&key) {
            while e.map.len() >= ENTRIES {
                let Some(old) = e.order.pop_front() else {
                    break;
                };
                e.map.remove(&old);
            }
            e.order.push_back(key.clone());
            // Keys removed on expiry linger in the order; drop them when
            // they outnumber the answers.
            if e.order.len() > 2 * ENTRIES {
                let Entries { map, order } = &mut *e;
                order.retain(|k| map.contains_key(k));
            }
        }
        e.map.insert(key, (value, until));
    }
}

impl Caches {
    /// (hits, misses) of every kind together.
    pub fn counts(&self) -> (u64, u64) {
        [
            self.txt.counts(),
            self.mx.counts(),
            self.ipv4.counts(),
            self.ipv6.counts(),
            self.ptr.counts(),
        ]
        .iter()
        .fold((0, 0), |(h, m), (h2, m2)| (h + h2, m + m2))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answers_live_for_their_ttl_and_the_oldest_go_first() {
        let c: Cache<Box<str>, u32> = Cache::default();
        let now = Instant::now();
        c.insert("a.test.".into(), 1, now + Duration::from_secs(60));
        c.insert("gone.test.".into(), 2, now);
        assert_eq!(c.get("a.test."), Some(1));
        assert_eq!(c.get("gone.test."), None);
        assert_eq!(c.counts(), (1, 1));
        for i in 0..ENTRIES + 10 {
            c.insert(
                format!("n{i}.test.").into(),
                3,
                now + Duration::from_secs(60),
            );
        }
        assert_eq!(c.len(), ENTRIES);
        assert_eq!(c.get("a.test."), None, "the oldest went first");
        assert_eq!(c.get(format!("n{}.test.", ENTRIES + 9).as_str()), Some(3));
    }

    #[test]
    fn an_answer_is_kept_at_most_a_day() {
        let c: Cache<Box<str>, u32> = Cache::default();
        c.insert(
            "long.test.".into(),
            1,
            Instant::now() + Duration::from_secs(10 * 24 * 3600),
        );
        let until = c.lock().map.get("long.test.").unwrap().1;
        assert!(until <= Instant::now() + MAX_TTL);
    }
}
