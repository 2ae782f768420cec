//! MTA-STS for mail that leaves (RFC 8461): a destination's policy found
//! through its `_mta-sts` TXT record, fetched over verified HTTPS from
//! `mta-sts.DOMAIN`, and kept for its `max_age`, so that an attacker who
//! later strips the TXT record or the policy server does not turn the
//! policy off (§5.1).
//!
//! Imports `dns`, `proto::mta_sts` and the sibling `http`. Invariants: a
//! policy is used only once fetched whole over HTTPS with a certificate
//! valid for `mta-sts.DOMAIN` (status 200, `text/plain`, at most
//! `MAX_POLICY` bytes, within `FETCH_TIMEOUT`); a kept policy is replaced
//! only by a newer one that fetched whole; at most `MAX_DOMAINS` domains
//! are kept, the ones expiring first leaving first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dns::{Dns, LookupError};
use crate::net::conn::with_timeout;
use crate::proto::mta_sts::{self, Mode, Policy};

/// RFC 8461 §3.3 suggests a minute.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Destinations whose policies are kept.
const MAX_DOMAINS: usize = 10_000;

/// What MTA-STS says of a destination.
#[derive(Clone, Debug)]
pub enum Found {
    /// No policy (no record, mode `none`, or MTA-STS is off).
    None,
    Policy(Arc<Policy>),
    /// A record announced a policy that could not be fetched, and none is
    /// kept: mail goes as without one (§5), and the failure is reported.
    FetchFailed(String),
}

struct Kept {
    id: String,
    policy: Arc<Policy>,
    until: Instant,
}

/// The policies of destinations, shared by every delivery.
pub struct Sts {
    kept: Mutex<HashMap<String, Kept>>,
    https_port: u16,
}

impl Sts {
    pub fn new(https_port: u16) -> Sts {
        Sts {
            kept: Mutex::new(HashMap::new()),
            https_port,
        }
    }

    /// `domain`'s policy: the kept one while its TXT record's id is the
    /// same (or cannot be read), a new one fetched when the id changed.
    pub async fn policy(
        &self,
        dns: &Dns,
        tls: &futures_rustls::TlsConnector,
        domain: &str,
    ) -> Found {
        let kept = self.kept(domain);
        let id = match dns.mta_sts_id(domain).await {
            Ok(id) => id,
            // No record now: a kept policy still applies until it expires
            // (§5.1); so does one when DNS cannot answer.
            Err(LookupError::NotFound | LookupError::Temporary(_)) => {
                return kept.map_or(Found::None, |(_, p)| Found::Policy(p));
            }
        };
        if let Some((kept_id, policy)) = &kept
            && *kept_id == id
        {
            return Found::Policy(policy.clone());
        }
        match with_timeout(FETCH_TIMEOUT, self.fetch(dns, tls, domain)).await {
            Ok(policy) => {
                tracing::info!(domain, mode = policy.mode.as_str(), id = %id, "MTA-STS policy fetched");
                if policy.mode == Mode::None {
                    self.forget(domain);
                    return Found::None;
                }
                let policy = Arc::new(policy);
                self.keep(domain, id, policy.clone());
                Found::Policy(policy)
            }
            Err(e) => {
                tracing::warn!(domain, error = %e, "MTA-STS policy could not be fetched");
                match kept {
                    Some((_, policy)) => Found::Policy(policy),
                    None => Found::FetchFailed(e.to_string()),
                }
            }
        }
    }

    async fn fetch(
        &self,
        dns: &Dns,
        tls: &futures_rustls::TlsConnector,
        domain: &str,
    ) -> std::io::Result<Policy> {
        let host = format!("mta-sts.{domain}");
        let limit = mta_sts::MAX_POLICY + crate::proto::http::MAX_HEAD;
        let r = super::http::get(
            dns,
            tls,
            (&host, self.https_port),
            "/.well-known/mta-sts.txt",
            limit,
        )
        .await?;
        if r.status != 200 {
            return Err(std::io::Error::other(format!(
                "https://{host}/.well-known/mta-sts.txt answered HTTP {}",
                r.status
            )));
        }
        let text_plain = r.content_type.as_deref().is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/plain"))
        });
        if !text_plain {
            return Err(std::io::Error::other(format!(
                "the policy's Content-Type is {:?}, not text/plain",
                r.content_type.unwrap_or_default()
            )));
        }
        mta_sts::policy(&r.body).map_err(std::io::Error::other)
    }

    fn kept(&self, domain: &str) -> Option<(String, Arc<Policy>)> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        match kept.get(domain) {
            Some(k) if k.until > Instant::now() => Some((k.id.clone(), k.policy.clone())),
            Some(_) => {
                kept.remove(domain);
                None
            }
            None => None,
        }
    }

    fn keep(&self, domain: &str, id: String, policy: Arc<Policy>) {
        let until = Instant::now() + Duration::from_secs(policy.max_age);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= MAX_DOMAINS && !kept.contains_key(domain) {
            let now = Instant::now();
            kept.retain(|_, k| k.until > now);
            if kept.len() >= MAX_DOMAINS
                && let Some(first) = kept
                    .iter()
                    .min_by_key(|(_, k)| k.until)
                    .map(|(d, _)| d.clone())
            {
                kept.remove(&first);
            }
        }
        kept.insert(domain.to_string(), Kept { id, policy, until });
    }

    fn forget(&self, domain: &str) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.remove(domain);
    }
}
