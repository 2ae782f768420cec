//! MTA-STS for mail that leaves (RFC 8461): a destination's policy found
//! through its `_mta-sts` TXT record, fetched over verified HTTPS from
//! `mta-sts.DOMAIN`, and kept for its `max_age`, so that an attacker who
//! later strips the TXT record or the policy server does not turn the
//! policy off (§5.1).
//!
//! Imports `dns`, `proto::mta_sts`, `util` and the sibling `http`.
//! Invariants: a policy is used only once fetched whole over HTTPS with a
//! certificate valid for `mta-sts.DOMAIN` (status 200, `text/plain`, at
//! most `MAX_POLICY` bytes, within `FETCH_TIMEOUT`); a kept policy is
//! replaced only by a newer one that fetched whole; at most `MAX_DOMAINS`
//! domains are kept, the ones expiring first leaving first; kept policies
//! survive a restart in `FILE_NAME` (written whole by `save`, read back
//! through the same parser).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dns::{Dns, LookupError};
use crate::net::conn::with_timeout;
use crate::proto::mta_sts::{self, Mode, Policy};

/// RFC 8461 §3.3 suggests a minute.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Destinations whose policies are kept.
const MAX_DOMAINS: usize = 10_000;

/// Where kept policies wait across restarts, in the data directory.
pub const FILE_NAME: &str = "mta-sts.json";

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
    /// Unix time it expires.
    until: i64,
}

/// A kept policy as saved.
#[derive(Serialize, Deserialize)]
struct Saved {
    id: String,
    until: i64,
    policy: String,
}

/// The policies of destinations, shared by every delivery.
pub struct Sts {
    kept: Mutex<HashMap<String, Kept>>,
    https_port: u16,
    file: Option<PathBuf>,
    /// Changed since the file was last written.
    dirty: std::sync::atomic::AtomicBool,
}

impl Sts {
    pub fn new(https_port: u16) -> Sts {
        Sts {
            kept: Mutex::new(HashMap::new()),
            https_port,
            file: None,
            dirty: Default::default(),
        }
    }

    /// Policies kept in `data_dir` (`FILE_NAME`), those still valid read
    /// back; a file that does not parse is ignored (policies are fetched
    /// again).
    pub fn load(https_port: u16, data_dir: &Path) -> Sts {
        let file = data_dir.join(FILE_NAME);
        let now = crate::util::now_unix();
        let saved: HashMap<String, Saved> = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let kept = saved
            .into_iter()
            .filter(|(_, s)| s.until > now)
            .filter_map(|(domain, s)| {
                let policy = mta_sts::policy(s.policy.as_bytes()).ok()?;
                Some((
                    domain,
                    Kept {
                        id: s.id,
                        policy: Arc::new(policy),
                        until: s.until,
                    },
                ))
            })
            .take(MAX_DOMAINS)
            .collect();
        Sts {
            kept: Mutex::new(kept),
            https_port,
            file: Some(file),
            dirty: Default::default(),
        }
    }

    /// Whether `save` has anything to write.
    pub fn is_dirty(&self) -> bool {
        self.file.is_some() && self.dirty.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes the kept policies to their file (when they have one and
    /// they changed).
    pub fn save(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.dirty.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let saved: HashMap<String, Saved> = self
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(d, k)| {
                (
                    d.clone(),
                    Saved {
                        id: k.id.clone(),
                        until: k.until,
                        policy: k.policy.lines().join("\n"),
                    },
                )
            })
            .collect();
        let json = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
        crate::util::write_durable(file, &json, 0o600)
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
            Some(k) if k.until > crate::util::now_unix() => Some((k.id.clone(), k.policy.clone())),
            Some(_) => {
                kept.remove(domain);
                None
            }
            None => None,
        }
    }

    fn keep(&self, domain: &str, id: String, policy: Arc<Policy>) {
        let until = crate::util::now_unix() + i64::try_from(policy.max_age).unwrap_or(0);
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= MAX_DOMAINS && !kept.contains_key(domain) {
            let now = crate::util::now_unix();
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
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn forget(&self, domain: &str) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.remove(domain);
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_policies_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sts = Sts::load(443, dir.path());
        let p =
            mta_sts::policy(b"version: STSv1\nmode: enforce\nmx: *.example.net\nmax_age: 3600\n")
                .unwrap();
        sts.keep("example.net", "20261202".into(), Arc::new(p.clone()));
        let gone =
            mta_sts::policy(b"version: STSv1\nmode: testing\nmx: a.example\nmax_age: 0\n").unwrap();
        sts.keep("expired.example", "1".into(), Arc::new(gone));
        sts.save().unwrap();
        let again = Sts::load(443, dir.path());
        let (id, kept) = again.kept("example.net").unwrap();
        assert_eq!((id.as_str(), &*kept), ("20261202", &p));
        assert!(again.kept("expired.example").is_none());
        std::fs::write(dir.path().join(FILE_NAME), "not json").unwrap();
        assert!(Sts::load(443, dir.path()).kept("example.net").is_none());
    }
}
