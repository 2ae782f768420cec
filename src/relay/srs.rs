//! The Sender Rewriting Scheme: a forwarded message leaves with an
//! envelope sender at our domain, so SPF at the next hop checks us, and a
//! bounce sent to it finds its way back to the original sender.
//!
//! Imports `util` (HMAC) only. Invariants: only addresses this server made
//! (a valid keyed hash, at most `MAX_AGE_DAYS` old) are reversed, so the
//! reverse path is no open relay; hashes compare case-insensitively
//! because MTAs may fold the case of local parts.
//!
//! Forms (those of libsrs2, with a 5-character base32 HMAC-SHA256):
//! `SRS0=HHHHH=TT=orig-domain=orig-local@our-domain` for a first hop, and
//! `SRS1=HHHHH=first-forwarder==HHHHH=TT=domain=local@our-domain` when the
//! sender already was an SRS0 address of another forwarder.

/// A bounce to an SRS address older than this is refused.
const MAX_AGE_DAYS: u64 = 21;
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Rewrites and reverses envelope senders with one secret.
#[derive(Clone)]
pub struct Srs {
    key: [u8; 32],
}

impl Srs {
    pub fn new(key: [u8; 32]) -> Srs {
        Srs { key }
    }

    /// The envelope sender for a message from `sender` forwarded by
    /// `our_domain` on day `today` (days since 1970). The null sender stays
    /// null: bounces are never rewritten.
    pub fn forward(&self, sender: &str, our_domain: &str, today: u64) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return sender.to_string();
        };
        if domain.eq_ignore_ascii_case(our_domain) {
            return sender.to_string();
        }
        let upper = local.to_ascii_uppercase();
        if upper.starts_with("SRS0=") {
            // Someone else's SRS0: point back at that forwarder (SRS1).
            let rest = local.get(4..).unwrap_or_default();
            let hash = self.hash(&[domain, rest]);
            return format!("SRS1={hash}={domain}={rest}@{our_domain}");
        }
        if upper.starts_with("SRS1=") {
            // Keep the first forwarder, re-sign for ourselves.
            if let Some((host, rest)) = local
                .get(5..)
                .unwrap_or_default()
                .split_once('=')
                .and_then(|(_, r)| r.split_once("=="))
            {
                let rest = format!("={rest}");
                let hash = self.hash(&[host, &rest]);
                return format!("SRS1={hash}={host}={rest}@{our_domain}");
            }
        }
        let tt = timestamp(today);
        let hash = self.hash(&[&tt, domain, local]);
        format!("SRS0={hash}={tt}={domain}={local}@{our_domain}")
    }

    /// The original sender behind `local` (the part before `@` of an
    /// address at one of our domains), if this server made it and it has
    /// not expired.
    pub fn reverse(&self, local: &str, today: u64) -> Option<String> {
        let upper = local.to_ascii_uppercase();
        if upper.starts_with("SRS0=") {
            let mut parts = local.get(5..)?.splitn(4, '=');
            let (hash, tt, domain, orig) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            if !self.hash(&[tt, domain, orig]).eq_ignore_ascii_case(hash) {
                return None;
            }
            let age = (day_of(today) + 1024 - decode_timestamp(tt)?) % 1024;
            if age > MAX_AGE_DAYS || domain.is_empty() || orig.is_empty() {
                return None;
            }
            return Some(format!("{orig}@{domain}"));
        }
        if upper.starts_with("SRS1=") {
            let (hash, rest) = local.get(5..)?.split_once('=')?;
            let (host, inner) = rest.split_once("==")?;
            let inner = format!("={inner}");
            if host.is_empty() || !self.hash(&[host, &inner]).eq_ignore_ascii_case(hash) {
                return None;
            }
            return Some(format!("SRS0{inner}@{host}"));
        }
        None
    }

    fn hash(&self, parts: &[&str]) -> String {
        let lowered: Vec<String> = parts
            .iter()
            .map(|p| p.to_ascii_lowercase() + "\0")
            .collect();
        let slices: Vec<&[u8]> = lowered.iter().map(|p| p.as_bytes()).collect();
        let digest = crate::util::hmac_sha256(&self.key, &slices);
        // 25 bits as five base32 characters.
        let bits = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) >> 7;
        (0..5)
            .rev()
            .map(|i| BASE32[((bits >> (i * 5)) & 31) as usize] as char)
            .collect()
    }
}

fn day_of(days_since_epoch: u64) -> u64 {
    days_since_epoch % 1024
}

fn timestamp(today: u64) -> String {
    let d = day_of(today) as usize;
    [BASE32[d >> 5] as char, BASE32[d & 31] as char]
        .iter()
        .collect()
}

fn decode_timestamp(tt: &str) -> Option<u64> {
    let b = tt.as_bytes();
    if b.len() != 2 {
        return None;
    }
    let val = |c: u8| {
        BASE32
            .iter()
            .position(|&x| x == c.to_ascii_lowercase())
            .map(|p| p as u64)
    };
    Some(val(b[0])? * 32 + val(b[1])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_expiry_and_forgery() {
        let srs = Srs::new([7; 32]);
        let day = 20_000;
        let a = srs.forward("Alice@Example.COM", "fwd.test", day);
        assert!(a.starts_with("SRS0="), "{a}");
        assert!(a.ends_with("=Example.COM=Alice@fwd.test"), "{a}");
        let local = a.rsplit_once('@').unwrap().0;
        assert_eq!(
            srs.reverse(local, day).as_deref(),
            Some("Alice@Example.COM")
        );
        assert_eq!(
            srs.reverse(&local.to_ascii_lowercase(), day + 21)
                .as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(srs.reverse(local, day + 22), None);
        assert_eq!(Srs::new([8; 32]).reverse(local, day), None);
        let forged = local.replacen("Alice", "mallory", 1);
        assert_eq!(srs.reverse(&forged, day), None);
        assert_eq!(srs.forward("", "fwd.test", day), "");
        assert_eq!(srs.forward("me@fwd.test", "fwd.test", day), "me@fwd.test");
        assert_eq!(srs.reverse("postmaster", day), None);
    }

    #[test]
    fn second_hop_points_at_first_forwarder() {
        let first = Srs::new([1; 32]);
        let second = Srs::new([2; 32]);
        let day = 20_000;
        let hop1 = first.forward("bob@origin.test", "one.test", day);
        let hop2 = second.forward(&hop1, "two.test", day);
        assert!(hop2.starts_with("SRS1="), "{hop2}");
        let back = second
            .reverse(hop2.rsplit_once('@').unwrap().0, day)
            .unwrap();
        assert_eq!(back, hop1);
        let hop3 = Srs::new([3; 32]).forward(&hop2, "three.test", day);
        let back3 = Srs::new([3; 32])
            .reverse(hop3.rsplit_once('@').unwrap().0, day)
            .unwrap();
        assert_eq!(back3, hop1);
        let local1 = back.rsplit_once('@').unwrap().0;
        assert_eq!(
            first.reverse(local1, day).as_deref(),
            Some("bob@origin.test")
        );
    }
}
