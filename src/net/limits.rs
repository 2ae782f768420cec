//! Limits shared by every listener: connections per client address, per
//! protocol and for the server, the open-files limit, and
//! authentication throttling (growing delays and bans per address; turns
//! and delays, never a ban, per account; bounded password checks).
//!
//! Imports nothing of ours. Invariants: a connection slot is released when
//! its guard drops, whatever ends the connection; a login attempt counts
//! from before its password is checked until its outcome, so attempts in
//! flight count; failure records forget themselves after `window` without
//! failures, so the maps stay small; at most `checks_global` password
//! checks run at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use smol::lock::{Semaphore, SemaphoreGuardArc};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Caps concurrent connections: per client address, per protocol, and
/// for the whole server.
pub struct ConnLimiter {
    /// Both changeable while connections are open (a reload): the new
    /// caps apply to the next connection, none is cut.
    per_ip: AtomicUsize,
    max_total: AtomicUsize,
    state: Mutex<Conns>,
}

#[derive(Default)]
struct Conns {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// One protocol's share of the server's connections (its listeners
/// together): a flood on one port leaves room for the others.
pub struct ProtocolSlots {
    open: Mutex<usize>,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// Its address holds `per_ip` connections already.
    Address,
    /// The server, or this protocol's share of it, is full.
    Server,
}

/// One admitted connection; dropping it frees its slots.
pub struct ConnGuard {
    limiter: Arc<ConnLimiter>,
    protocol: Arc<ProtocolSlots>,
    ip: IpAddr,
}

impl ConnLimiter {
    pub fn new(per_ip: usize, max_total: usize) -> Arc<ConnLimiter> {
        let limiter = ConnLimiter {
            per_ip: AtomicUsize::new(0),
            max_total: AtomicUsize::new(0),
            state: Mutex::new(Conns::default()),
        };
        limiter.set(per_ip, max_total);
        Arc::new(limiter)
    }

    /// New caps for the connections to come (a reload).
    pub fn set(&self, per_ip: usize, max_total: usize) {
        self.per_ip.store(per_ip, Ordering::Relaxed);
        self.max_total.store(max_total.max(1), Ordering::Relaxed);
    }

    /// A protocol's share: three quarters of the server's connections.
    pub fn protocol(&self) -> Arc<ProtocolSlots> {
        Arc::new(ProtocolSlots {
            open: Mutex::new(0),
        })
    }

    /// Slots for a connection from `ip` to `protocol`, or why not.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        protocol: &Arc<ProtocolSlots>,
    ) -> Result<ConnGuard, Full> {
        let mut state = lock(&self.state);
        let mut open = lock(&protocol.open);
        let max_total = self.max_total.load(Ordering::Relaxed);
        let protocol_max = (max_total * 3 / 4).max(1);
        if state.total >= max_total || *open >= protocol_max {
            return Err(Full::Server);
        }
        let n = state.per_ip.entry(ip).or_insert(0);
        if *n >= self.per_ip.load(Ordering::Relaxed) {
            return Err(Full::Address);
        }
        *n += 1;
        state.total += 1;
        *open += 1;
        Ok(ConnGuard {
            limiter: self.clone(),
            protocol: protocol.clone(),
            ip,
        })
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut state = lock(&self.limiter.state);
        if let Some(n) = state.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                state.per_ip.remove(&self.ip);
            }
        }
        state.total = state.total.saturating_sub(1);
        let mut open = lock(&self.protocol.open);
        *open = open.saturating_sub(1);
    }
}

/// Raises the soft limit on open files to the hard limit (at start, before
/// any listener binds); returns the limit in force.
pub fn raise_open_files() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "cannot raise the open-files limit");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The default server-wide connection cap for an open-files limit: what
/// is left after a reserve for mailbox files, logs and backups, at most
/// 20,000.
pub fn default_max_connections(open_files: u64) -> usize {
    let reserve = (open_files / 4).max(256);
    open_files.saturating_sub(reserve).clamp(16, 20_000) as usize
}

/// Policy of [`AuthThrottle`].
#[derive(Clone, Copy, Debug)]
pub struct ThrottlePolicy {
    /// Delay before a failure is answered; doubles with each further
    /// failure from the address.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Failures within `window`, with attempts still being checked, that
    /// ban an address.
    pub ban_ip_after: u32,
    /// Failures within `window`, with attempts in flight, after which an
    /// account is under attack: attempts from addresses that never logged
    /// in to it take turns, one password check at a time, each after a
    /// delay that doubles from `first_delay` up to `max_delay`.
    pub slow_account_after: u32,
    /// Attempts that may wait for their turn on an attacked account; one
    /// more is told to try again shortly.
    pub account_waiters: usize,
    /// How long failures are remembered, and how long a ban lasts.
    pub window: Duration,
    /// How long an address that logged in to an account stays known to it
    /// (and passes an attacked account's queue).
    pub known_for: Duration,
    /// Password checks (argon2) running at once, in all and per address.
    pub checks_global: usize,
    pub checks_per_ip: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            ban_ip_after: 10,
            slow_account_after: 20,
            account_waiters: 4,
            window: Duration::from_secs(15 * 60),
            known_for: Duration::from_secs(30 * 24 * 3600),
            checks_global: 4,
            checks_per_ip: 2,
        }
    }
}

/// Failures and attempts in flight, per address or account.
#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    pending: u32,
    last: Instant,
}

impl Record {
    fn new() -> Record {
        Record {
            failures: 0,
            pending: 0,
            last: Instant::now(),
        }
    }
}

/// Why a login attempt is refused before its password is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The address has used up its failures (and attempts in flight).
    AddressBanned,
    /// The account is under attack and enough attempts from addresses it
    /// does not know are waiting already: try again shortly.
    AccountBusy,
}

/// How many password checks have been let through since start.
static CHECKS: AtomicU64 = AtomicU64::new(0);

/// Password checks let through since start (for tests and metrics).
pub fn password_checks() -> u64 {
    CHECKS.load(Ordering::Relaxed)
}

/// Login throttling per client address and per account. An attempt
/// reserves its place before its password is checked, so attempts sent at
/// once count as they would one after another. Addresses are banned;
/// accounts never are: an attacked account slows down attempts from
/// addresses it does not know, and those it knows pass.
pub struct AuthThrottle {
    policy: ThrottlePolicy,
    ips: Mutex<HashMap<IpAddr, Record>>,
    accounts: Mutex<HashMap<String, Record>>,
    /// Per account: its turn-taking gate while under attack, and how many
    /// attempts hold or wait for it.
    gates: Mutex<HashMap<String, Gate>>,
    /// Per account: addresses that logged in to it, with when.
    known: Mutex<HashMap<String, Vec<(IpAddr, Instant)>>>,
    global: Arc<Semaphore>,
    per_ip: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

struct Gate {
    turn: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
}

/// A place in an attacked account's queue, given back on drop.
struct Queued(Arc<AtomicUsize>);

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Most addresses remembered per account.
const KNOWN_PER_ACCOUNT: usize = 32;

/// One login attempt between its reservation and its outcome. Dropped
/// without an outcome (the store failed), it counts as nothing.
pub struct Attempt {
    throttle: Arc<AuthThrottle>,
    ip: IpAddr,
    account: Option<String>,
    settled: bool,
    _slots: Vec<SemaphoreGuardArc>,
    _queued: Option<Queued>,
}

impl AuthThrottle {
    pub fn new(policy: ThrottlePolicy) -> Arc<AuthThrottle> {
        Arc::new(AuthThrottle {
            policy,
            ips: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            global: Arc::new(Semaphore::new(policy.checks_global.max(1))),
            per_ip: Mutex::new(HashMap::new()),
        })
    }

    /// The live record for `key`, a fresh one once the window has passed.
    fn record<'m, K: std::hash::Hash + Eq + Clone>(
        &self,
        map: &'m mut HashMap<K, Record>,
        key: &K,
    ) -> &'m mut Record {
        let r = map.entry(key.clone()).or_insert_with(Record::new);
        if self.expired(r) {
            *r = Record::new();
        }
        r
    }

    /// The live record of `ip`; a ban whose window has passed is lifted
    /// (and logged) here or by `sweep`, whichever comes first.
    fn ip_record<'m>(&self, ips: &'m mut HashMap<IpAddr, Record>, ip: IpAddr) -> &'m mut Record {
        if let Some(r) = ips.get(&ip)
            && self.expired(r)
        {
            self.lift(ip, r);
        }
        self.record(ips, &ip)
    }

    fn expired(&self, r: &Record) -> bool {
        r.pending == 0 && r.last.elapsed() >= self.policy.window
    }

    fn lift(&self, ip: IpAddr, r: &Record) {
        if r.failures >= self.policy.ban_ip_after {
            tracing::info!(target: "sealmail::login", client = %ip, failures = r.failures, "ban lifted");
        }
    }

    /// Addresses whose logins are refused now.
    pub fn banned_count(&self) -> usize {
        let ips = lock(&self.ips);
        ips.values()
            .filter(|r| r.failures + r.pending >= self.policy.ban_ip_after)
            .count()
    }

    /// True if logins from `ip` are refused for now.
    pub fn banned(&self, ip: IpAddr) -> bool {
        let mut ips = lock(&self.ips);
        let r = self.ip_record(&mut ips, ip);
        r.failures + r.pending >= self.policy.ban_ip_after
    }

    fn knows(&self, account: &str, ip: IpAddr) -> bool {
        lock(&self.known).get(account).is_some_and(|list| {
            list.iter()
                .any(|(a, when)| *a == ip && when.elapsed() < self.policy.known_for)
        })
    }

    /// Reserves a login attempt from `ip` for `account` and waits until
    /// its password may be checked: its turn on an attacked account, then a
    /// check slot for its address and one of the server's.
    pub async fn begin(
        self: &Arc<Self>,
        ip: IpAddr,
        account: Option<&str>,
    ) -> Result<Attempt, Refused> {
        {
            let mut ips = lock(&self.ips);
            let r = self.ip_record(&mut ips, ip);
            if r.failures + r.pending >= self.policy.ban_ip_after {
                return Err(Refused::AddressBanned);
            }
            r.pending += 1;
            r.last = Instant::now();
        }
        let key = account.map(str::to_lowercase);
        let mut attempt = Attempt {
            throttle: self.clone(),
            ip,
            account: key.clone(),
            settled: false,
            _slots: Vec::new(),
            _queued: None,
        };
        if let Some(key) = key {
            let failures = {
                let mut accounts = lock(&self.accounts);
                let r = self.record(&mut accounts, &key);
                let seen = r.failures + r.pending;
                r.pending += 1;
                r.last = Instant::now();
                (seen >= self.policy.slow_account_after).then_some(r.failures)
            };
            if let Some(failures) = failures
                && !self.knows(&key, ip)
            {
                let (turn, queued) = {
                    let mut gates = lock(&self.gates);
                    let g = gates.entry(key.clone()).or_insert_with(|| Gate {
                        turn: Arc::new(Semaphore::new(1)),
                        queued: Arc::new(AtomicUsize::new(0)),
                    });
                    (g.turn.clone(), g.queued.clone())
                };
                if queued.fetch_add(1, Ordering::Relaxed) >= self.policy.account_waiters {
                    queued.fetch_sub(1, Ordering::Relaxed);
                    tracing::warn!(account = %crate::util::log::addr(&key), %ip, "login refused for now: account under attack, queue full");
                    // It counts against the address, not the account.
                    drop(attempt);
                    self.failed_without_check(ip);
                    return Err(Refused::AccountBusy);
                }
                attempt._queued = Some(Queued(queued));
                tracing::info!(account = %crate::util::log::addr(&key), %ip, failures, "login waits its turn: account under attack");
                attempt._slots.push(turn.acquire_arc().await);
                let over = failures.saturating_sub(self.policy.slow_account_after);
                smol::Timer::after(self.delay(over)).await;
            }
        }
        let per_ip = lock(&self.per_ip)
            .entry(ip)
            .or_insert_with(|| Arc::new(Semaphore::new(self.policy.checks_per_ip.max(1))))
            .clone();
        attempt._slots.push(per_ip.acquire_arc().await);
        attempt._slots.push(self.global.acquire_arc().await);
        CHECKS.fetch_add(1, Ordering::Relaxed);
        Ok(attempt)
    }

    /// `first_delay` doubled `n` times, at most `max_delay`.
    fn delay(&self, n: u32) -> Duration {
        (self.policy.first_delay * (1u32 << n.min(16))).min(self.policy.max_delay)
    }

    fn settle(&self, ip: IpAddr, account: Option<&str>, failed: bool) -> u32 {
        let now = Instant::now();
        let ip_failures = {
            let mut ips = lock(&self.ips);
            let r = self.ip_record(&mut ips, ip);
            r.pending = r.pending.saturating_sub(1);
            if failed {
                r.failures += 1;
                r.last = now;
            }
            r.failures
        };
        if let Some(key) = account {
            let mut accounts = lock(&self.accounts);
            let r = self.record(&mut accounts, &key.to_string());
            r.pending = r.pending.saturating_sub(1);
            if failed {
                r.failures += 1;
                r.last = now;
                if r.failures == self.policy.slow_account_after {
                    tracing::warn!(account = %crate::util::log::addr(key), failures = r.failures, "account under attack: unknown addresses now take turns");
                }
            }
        }
        if failed && ip_failures == self.policy.ban_ip_after {
            tracing::warn!(target: "sealmail::login", client = %ip, failures = ip_failures, minutes = self.policy.window.as_secs() / 60, "address banned from logging in");
        }
        ip_failures
    }

    /// Drops records older than the window, and gates and slots nobody
    /// holds.
    pub fn sweep(&self) {
        lock(&self.ips).retain(|ip, r| {
            let expired = self.expired(r);
            if expired {
                self.lift(*ip, r);
            }
            !expired
        });
        lock(&self.accounts).retain(|_, r| !self.expired(r));
        lock(&self.gates).retain(|_, g| Arc::strong_count(&g.turn) > 1);
        lock(&self.per_ip).retain(|_, g| Arc::strong_count(g) > 1);
        let k = self.policy.known_for;
        lock(&self.known).retain(|_, list| {
            list.retain(|(_, when)| when.elapsed() < k);
            !list.is_empty()
        });
    }
}

impl AuthThrottle {
    /// A failure with no password to check (a malformed or forbidden
    /// request): counts against the address; returns the answer's delay.
    pub fn failed_without_check(&self, ip: IpAddr) -> Duration {
        {
            let mut ips = lock(&self.ips);
            self.ip_record(&mut ips, ip).pending += 1;
        }
        let n = self.settle(ip, None, true);
        crate::util::metrics::inc("sealmail_logins_total", &[("result", "failed")]);
        self.delay(n.saturating_sub(1))
    }
}

impl Attempt {
    /// The password was right: the address' failures are forgiven, and the
    /// address becomes known to the account.
    pub fn succeeded(mut self) {
        self.settled = true;
        crate::util::metrics::inc("sealmail_logins_total", &[("result", "ok")]);
        let t = &self.throttle;
        t.settle(self.ip, self.account.as_deref(), false);
        lock(&t.ips).remove(&self.ip);
        if let Some(key) = &self.account {
            let mut known = lock(&t.known);
            let list = known.entry(key.clone()).or_default();
            list.retain(|(a, _)| *a != self.ip);
            if list.len() >= KNOWN_PER_ACCOUNT {
                list.remove(0);
            }
            list.push((self.ip, Instant::now()));
        }
    }

    /// The password was wrong (or the account unknown): the failure
    /// counts; returns how long to wait before answering. The check slots
    /// are free before the wait.
    pub fn failed(mut self) -> Duration {
        self.settled = true;
        crate::util::metrics::inc("sealmail_logins_total", &[("result", "failed")]);
        let n = self.throttle.settle(self.ip, self.account.as_deref(), true);
        self.throttle.delay(n.saturating_sub(1))
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.settled {
            self.throttle
                .settle(self.ip, self.account.as_deref(), false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_freed() {
        let l = ConnLimiter::new(2, 100);
        let p = l.protocol();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = l.admit(ip, &p).unwrap();
        let _b = l.admit(ip, &p).unwrap();
        assert_eq!(l.admit(ip, &p).err(), Some(Full::Address));
        assert!(l.admit("192.0.2.2".parse().unwrap(), &p).is_ok());
        drop(a);
        assert!(l.admit(ip, &p).is_ok());
    }

    #[test]
    fn new_caps_apply_to_new_connections_only() {
        let l = ConnLimiter::new(3, 100);
        let p = l.protocol();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let held: Vec<ConnGuard> = (0..3).map(|_| l.admit(ip, &p).unwrap()).collect();
        l.set(1, 100);
        assert_eq!(l.admit(ip, &p).err(), Some(Full::Address));
        drop(held);
        let _one = l.admit(ip, &p).unwrap();
        assert_eq!(l.admit(ip, &p).err(), Some(Full::Address));
        l.set(5, 100);
        assert!(l.admit(ip, &p).is_ok());
    }

    #[test]
    fn the_server_and_each_protocol_are_capped() {
        let l = ConnLimiter::new(100, 8);
        let (mx, imap) = (l.protocol(), l.protocol());
        let held: Vec<ConnGuard> = (0..6u8)
            .map(|i| l.admit(IpAddr::from([192, 0, 2, i]), &mx).unwrap())
            .collect();
        // The MX's share (6 of 8) is spent; IMAP still has room.
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(l.admit(other, &mx).err(), Some(Full::Server));
        let i1 = l.admit(other, &imap).unwrap();
        let _i2 = l.admit(other, &imap).unwrap();
        assert_eq!(l.admit(other, &imap).err(), Some(Full::Server));
        drop(i1);
        assert!(l.admit(other, &imap).is_ok());
        drop(held);
        assert!(l.admit(other, &mx).is_ok());
        assert_eq!(default_max_connections(1024), 768);
        assert_eq!(default_max_connections(20_000), 15_000);
        assert_eq!(default_max_connections(1 << 20), 20_000);
        assert_eq!(default_max_connections(100), 16);
    }

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(8),
            ban_ip_after: 3,
            slow_account_after: 5,
            ..ThrottlePolicy::default()
        }
    }

    #[test]
    fn failures_grow_delays_then_ban_the_address() {
        smol::block_on(async {
            let t = AuthThrottle::new(policy());
            let ip: IpAddr = "192.0.2.1".parse().unwrap();
            let a = t.begin(ip, Some("a@x")).await.unwrap();
            assert_eq!(a.failed(), Duration::from_millis(1));
            let a = t.begin(ip, Some("a@x")).await.unwrap();
            assert_eq!(a.failed(), Duration::from_millis(2));
            assert!(!t.banned(ip));
            t.begin(ip, Some("A@x")).await.unwrap().failed();
            assert!(t.banned(ip));
            assert!(t.begin(ip, Some("b@x")).await.is_err());
            // Another address still gets its checks.
            let other: IpAddr = "192.0.2.9".parse().unwrap();
            t.begin(other, Some("a@x")).await.unwrap().succeeded();
        });
    }

    #[test]
    fn attempts_in_flight_count_before_their_outcome() {
        smol::block_on(async {
            let t = AuthThrottle::new(ThrottlePolicy {
                checks_per_ip: 3,
                ..policy()
            });
            let ip: IpAddr = "192.0.2.1".parse().unwrap();
            // Three attempts at once use up the address' allowance.
            let held: Vec<Attempt> = vec![
                t.begin(ip, None).await.unwrap(),
                t.begin(ip, None).await.unwrap(),
            ];
            assert!(!t.banned(ip));
            let third = t.begin(ip, None).await;
            assert!(third.is_ok());
            assert!(t.banned(ip), "reservations count");
            assert_eq!(t.begin(ip, None).await.err(), Some(Refused::AddressBanned));
            // Attempts that end without an outcome give their place back.
            drop(third);
            drop(held);
            assert!(!t.banned(ip));
        });
    }

    #[test]
    fn an_attacked_account_slows_strangers_but_never_refuses() {
        smol::block_on(async {
            let t = AuthThrottle::new(ThrottlePolicy {
                ban_ip_after: 100,
                ..policy()
            });
            let owner: IpAddr = "198.51.100.1".parse().unwrap();
            t.begin(owner, Some("a@x")).await.unwrap().succeeded();
            for i in 0..8u8 {
                let ip = IpAddr::from([203, 0, 113, i]);
                t.begin(ip, Some("a@x")).await.unwrap().failed();
            }
            // A fresh address still gets its check (after its turn).
            let fresh: IpAddr = "192.0.2.77".parse().unwrap();
            t.begin(fresh, Some("a@x")).await.unwrap().succeeded();
            // While a stranger holds the account's turn, the known owner
            // passes and a second stranger waits.
            let stranger = t
                .begin("203.0.113.200".parse().unwrap(), Some("a@x"))
                .await
                .unwrap();
            t.begin(owner, Some("a@x")).await.unwrap().succeeded();
            let waiting = t.clone();
            let second = smol::spawn(async move {
                waiting
                    .begin("203.0.113.201".parse().unwrap(), Some("a@x"))
                    .await
                    .map(Attempt::failed)
            });
            smol::Timer::after(Duration::from_millis(50)).await;
            assert!(!second.is_finished(), "strangers take turns");
            stranger.failed();
            assert!(second.await.is_ok());
        });
    }

    #[test]
    fn password_checks_are_bounded_globally() {
        smol::block_on(async {
            let t = AuthThrottle::new(ThrottlePolicy {
                checks_global: 2,
                ban_ip_after: 100,
                ..policy()
            });
            let a = t.begin("192.0.2.1".parse().unwrap(), None).await.unwrap();
            let b = t.begin("192.0.2.2".parse().unwrap(), None).await.unwrap();
            let t2 = t.clone();
            let third =
                smol::spawn(
                    async move { t2.begin("192.0.2.3".parse().unwrap(), None).await.is_ok() },
                );
            smol::Timer::after(Duration::from_millis(50)).await;
            assert!(!third.is_finished());
            drop(a);
            assert!(third.await);
            drop(b);
        });
    }
}
