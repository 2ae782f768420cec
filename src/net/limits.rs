//! Limits shared by every listener: connections per client address, and
//! authentication throttling (growing delays, then bans per address and per
//! account).
//!
//! Imports nothing of ours. Invariants: a connection slot is released when
//! its guard drops, whatever ends the connection; failure records forget
//! themselves after `window` without failures, so the maps stay small.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Caps concurrent connections per client address.
pub struct ConnLimiter {
    per_ip: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees the slot.
pub struct ConnGuard {
    limiter: Arc<ConnLimiter>,
    ip: IpAddr,
}

impl ConnLimiter {
    pub fn new(per_ip: usize) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter {
            per_ip,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip`, or `None` if it already has `per_ip` connections.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnGuard> {
        let mut map = lock(&self.counts);
        let n = map.entry(ip).or_insert(0);
        if *n >= self.per_ip {
            return None;
        }
        *n += 1;
        Some(ConnGuard {
            limiter: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut map = lock(&self.limiter.counts);
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Policy of [`AuthThrottle`].
#[derive(Clone, Copy, Debug)]
pub struct ThrottlePolicy {
    /// Delay after the first failure; doubles with each further one.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Failures within `window` that ban an address.
    pub ban_ip_after: u32,
    /// Failures within `window` that ban logins to an account.
    pub ban_account_after: u32,
    /// How long failures are remembered, and how long a ban lasts.
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            ban_ip_after: 10,
            ban_account_after: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed logins per client address and per account.
pub struct AuthThrottle {
    policy: ThrottlePolicy,
    ips: Mutex<HashMap<IpAddr, Failures>>,
    accounts: Mutex<HashMap<String, Failures>>,
}

impl AuthThrottle {
    pub fn new(policy: ThrottlePolicy) -> Arc<AuthThrottle> {
        Arc::new(AuthThrottle {
            policy,
            ips: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
        })
    }

    fn current<K: std::hash::Hash + Eq>(&self, map: &mut HashMap<K, Failures>, key: &K) -> u32 {
        match map.get(key) {
            Some(f) if f.last.elapsed() < self.policy.window => f.count,
            Some(_) => {
                map.remove(key);
                0
            }
            None => 0,
        }
    }

    /// True if logins from `ip`, or to `account`, are refused for now.
    pub fn banned(&self, ip: IpAddr, account: Option<&str>) -> bool {
        if self.current(&mut lock(&self.ips), &ip) >= self.policy.ban_ip_after {
            return true;
        }
        account.is_some_and(|a| {
            let key = a.to_lowercase();
            self.current(&mut lock(&self.accounts), &key) >= self.policy.ban_account_after
        })
    }

    /// Records a failure; returns how long to wait before answering.
    pub fn failed(&self, ip: IpAddr, account: Option<&str>) -> Duration {
        let now = Instant::now();
        let n = {
            let mut ips = lock(&self.ips);
            let count = self.current(&mut ips, &ip) + 1;
            ips.insert(ip, Failures { count, last: now });
            count
        };
        if let Some(a) = account {
            let key = a.to_lowercase();
            let mut accounts = lock(&self.accounts);
            let count = self.current(&mut accounts, &key) + 1;
            accounts.insert(key, Failures { count, last: now });
        }
        let shift = n.saturating_sub(1).min(16);
        (self.policy.first_delay * (1u32 << shift)).min(self.policy.max_delay)
    }

    /// A successful login clears the address' record.
    pub fn succeeded(&self, ip: IpAddr) {
        lock(&self.ips).remove(&ip);
    }

    /// Drops records older than the window.
    pub fn sweep(&self) {
        let w = self.policy.window;
        lock(&self.ips).retain(|_, f| f.last.elapsed() < w);
        lock(&self.accounts).retain(|_, f| f.last.elapsed() < w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_freed() {
        let l = ConnLimiter::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = l.admit(ip).unwrap();
        let _b = l.admit(ip).unwrap();
        assert!(l.admit(ip).is_none());
        assert!(l.admit("192.0.2.2".parse().unwrap()).is_some());
        drop(a);
        assert!(l.admit(ip).is_some());
    }

    #[test]
    fn failures_grow_delays_then_ban() {
        let t = AuthThrottle::new(ThrottlePolicy {
            ban_ip_after: 3,
            ban_account_after: 5,
            ..ThrottlePolicy::default()
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(t.failed(ip, Some("a@x")), Duration::from_millis(250));
        assert_eq!(t.failed(ip, Some("a@x")), Duration::from_millis(500));
        assert!(!t.banned(ip, Some("a@x")));
        t.failed(ip, Some("A@x"));
        assert!(t.banned(ip, None));
        let other: IpAddr = "192.0.2.9".parse().unwrap();
        t.failed(other, Some("a@x"));
        t.failed(other, Some("a@x"));
        assert!(
            t.banned(other, Some("a@x")),
            "the account is banned from anywhere"
        );
        assert!(!t.banned(other, Some("b@x")));
        t.succeeded(ip);
        assert!(!t.banned(ip, None));
    }
}
