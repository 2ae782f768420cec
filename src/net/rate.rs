//! Inbound mail per client address, as Postfix's anvil counts it: each
//! MAIL FROM is a message, each RCPT TO a recipient, in one-minute
//! windows; past the limit the MX answers 450 4.7.1 and the sender tries
//! again later. An IPv6 /64 counts as one client (one host usually has a
//! whole /64 to pick from); listed networks (loopback by default, like
//! Postfix's `mynetworks`) are not counted.
//!
//! Imports `util` (networks). Invariants: the table holds at most
//! `MAX_CLIENTS` addresses (expired windows are swept when it is full;
//! an address that finds it full of live windows is not counted), so
//! memory is bounded whatever the number of senders.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::util::{Network, network_contains};

/// The counting window.
const WINDOW: Duration = Duration::from_secs(60);

/// Client addresses remembered at once.
pub const MAX_CLIENTS: usize = 100_000;

/// Messages and recipients per client address and minute.
pub struct InboundRate {
    /// Per minute; 0 is no limit.
    messages: u32,
    recipients: u32,
    exempt: Vec<Network>,
    clients: Mutex<HashMap<IpAddr, Window>>,
}

struct Window {
    start: Instant,
    messages: u32,
    recipients: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl InboundRate {
    pub fn new(messages: u32, recipients: u32, exempt: Vec<Network>) -> InboundRate {
        InboundRate {
            messages,
            recipients,
            exempt,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a message (MAIL FROM) from `ip`; false past the limit.
    pub fn message(&self, ip: IpAddr) -> bool {
        self.count(ip, self.messages, |w| &mut w.messages)
    }

    /// Counts a recipient (RCPT TO) from `ip`; false past the limit.
    pub fn recipient(&self, ip: IpAddr) -> bool {
        self.count(ip, self.recipients, |w| &mut w.recipients)
    }

    fn count(&self, ip: IpAddr, limit: u32, which: impl Fn(&mut Window) -> &mut u32) -> bool {
        if limit == 0 || self.exempt.iter().any(|&n| network_contains(n, ip)) {
            return true;
        }
        let key = client(ip);
        let mut clients = lock(&self.clients);
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&key) {
            clients.retain(|_, w| w.start.elapsed() < WINDOW);
            if clients.len() >= MAX_CLIENTS {
                return true;
            }
        }
        let w = clients.entry(key).or_insert_with(|| Window {
            start: Instant::now(),
            messages: 0,
            recipients: 0,
        });
        if w.start.elapsed() >= WINDOW {
            *w = Window {
                start: Instant::now(),
                messages: 0,
                recipients: 0,
            };
        }
        let n = which(w);
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }
}

/// The address a client is counted under: itself, or its /64.
fn client(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn limits_per_client_and_kind() {
        let rate = InboundRate::new(
            2,
            3,
            vec![crate::util::parse_network("127.0.0.0/8").unwrap()],
        );
        let a = ip("192.0.2.7");
        assert!(rate.message(a) && rate.message(a));
        assert!(!rate.message(a), "the third message in a minute");
        // Recipients are counted apart; another client is not touched.
        assert!(rate.recipient(a) && rate.recipient(a) && rate.recipient(a));
        assert!(!rate.recipient(a));
        assert!(rate.message(ip("192.0.2.8")));
        // Loopback is exempt, however much it sends.
        assert!((0..100).all(|_| rate.message(ip("127.0.0.1"))));
        // One /64 is one client; the next /64 is another.
        assert!(rate.message(ip("2001:db8:0:1::1")) && rate.message(ip("2001:db8:0:1::2")));
        assert!(!rate.message(ip("2001:db8:0:1:ffff::9")));
        assert!(rate.message(ip("2001:db8:0:2::1")));
        // A v4-mapped address is its v4 address.
        assert!(!rate.message(ip("::ffff:192.0.2.7")));
        // 0 is no limit.
        let open = InboundRate::new(0, 0, Vec::new());
        assert!((0..1000).all(|_| open.message(a) && open.recipient(a)));
    }

    /// Full of live windows, the table takes no one more (not counted),
    /// and never grows past its bound.
    #[test]
    fn the_table_is_bounded() {
        let rate = InboundRate::new(1, 1, Vec::new());
        for i in 0..MAX_CLIENTS as u32 + 10 {
            let a = IpAddr::V4((0x0a00_0000 + i).into());
            assert!(rate.message(a));
        }
        assert_eq!(lock(&rate.clients).len(), MAX_CLIENTS);
    }
}
