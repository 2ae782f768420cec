//! Mail that leaves the server: next-hop resolution (static routes, a
//! smarthost, or MX records with the implicit-MX fallback of RFC 5321
//! §5.1), the TLS each destination needs (`relay.tls_policy`, else its
//! MTA-STS policy, `sts`), the SMTP client, SRS, and webhooks. The MX uses it for forward
//! targets and webhooks, the outbound queue for submitted mail.
//!
//! Imports `config` (plain values), `dns`, `net`, `proto` (HTTP responses,
//! MTA-STS policies), `store::mime` and `util`; never
//! the store's mailboxes, so nothing here can write a message to disk.
//! Invariants: a recipient is `Delivered` only after the next hop's 2xx to
//! the end of data (or an HTTP 2xx); DNS and connection failures are
//! temporary, a domain that does not exist or has a null MX is permanent.

pub mod client;

pub mod daily;
pub mod dmarc_rpt;
pub mod http;
pub mod srs;
pub mod sts;
pub mod tls_rpt;
pub mod webhook;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::{HostPort, Relay as RelayConfig};
use crate::dns::secure::Tlsa;
use crate::dns::{Dns, LookupError};
use client::{ClientTls, Envelope, Need, Session, Status, Target, TlsLevel};
use std::sync::Arc;
use sts::Found;
use tls_rpt::{Judged, Outcome as TlsOutcome, TlsResults};

/// Addresses tried per destination domain, across all its MX hosts.
const MAX_ADDRESSES: usize = 5;

/// Secrets the relay derives from the server key.
pub fn derive_secret(server_key: &[u8; 32], label: &str) -> [u8; 32] {
    crate::util::hmac_sha256(server_key, &[b"sealmail/", label.as_bytes()])
}

/// The secret that signs an alias' webhook requests.
pub fn webhook_secret(server_key: &[u8; 32], alias: &str) -> [u8; 32] {
    derive_secret(server_key, &format!("webhook/{}", alias.to_lowercase()))
}

/// Everything outbound delivery shares.
pub struct Relay {
    pub dns: Dns,
    config: RelayConfig,
    helo: String,
    tls: ClientTls,
    web_tls: futures_rustls::TlsConnector,
    pub srs: srs::Srs,
    server_key: zeroize::Zeroizing<[u8; 32]>,
    smarthost_login: Option<std::sync::Arc<crate::config::Login>>,
    /// Destinations' MTA-STS policies, kept for their max_age.
    sts: sts::Sts,
    /// How sessions with MX hosts of MTA-STS domains went (TLS-RPT).
    pub tls_results: std::sync::Arc<TlsResults>,
    /// DMARC results of mail received, for aggregate reports
    /// (`mx.dmarc_reports`).
    pub dmarc_results: std::sync::Arc<dmarc_rpt::DmarcResults>,
}

/// A host's DANE records as looked up: authenticated records, none, or
/// why they could not be read.
type HostTlsa = Result<Option<Arc<Vec<Tlsa>>>, String>;

/// The policy a delivery's sessions are counted under (TLS-RPT).
enum Reported {
    Sts(Arc<crate::proto::mta_sts::Policy>),
    /// DANE: the TLSA records in presentation form, and the hosts with
    /// them.
    Tlsa(Vec<String>, Vec<String>),
}

impl Reported {
    fn judged(&self) -> Judged<'_> {
        match self {
            Reported::Sts(p) => Judged::Sts(p),
            Reported::Tlsa(records, hosts) => Judged::Tlsa { records, hosts },
        }
    }

    /// DANE reports count only the hosts DANE applied to.
    fn counts(&self, need: &Need) -> bool {
        !matches!(self, Reported::Tlsa(..)) || need.tlsa.is_some()
    }
}

impl Relay {
    /// Fails only when `relay.ca_file` cannot be read.
    pub fn new(
        dns: Dns,
        config: RelayConfig,
        hostname: &str,
        server_key: &[u8; 32],
    ) -> std::io::Result<Relay> {
        let extra_roots = match &config.ca_file {
            Some(f) => crate::net::tls::read_certificates(f)?,
            None => Vec::new(),
        };
        Ok(Relay {
            smarthost_login: config.smarthost_login.clone().map(std::sync::Arc::new),
            dns,
            sts: sts::Sts::new(config.https_port),
            tls_results: std::sync::Arc::new(TlsResults::in_memory()),
            dmarc_results: std::sync::Arc::new(dmarc_rpt::DmarcResults::in_memory()),
            config,
            helo: hostname.to_string(),
            tls: ClientTls {
                connector: crate::net::tls::opportunistic_client().into(),
                verifier: crate::net::tls::web_verifier(&extra_roots),
            },
            web_tls: crate::net::tls::verifying_client(&extra_roots).into(),
            srs: srs::Srs::new(derive_secret(server_key, "srs")),
            server_key: zeroize::Zeroizing::new(*server_key),
        })
    }

    /// Sends `message` from `from` to `rcpts` (any domains), one
    /// transaction per domain. One status per recipient, in order.
    pub async fn send(&self, from: &str, rcpts: &[String], message: &[u8]) -> Vec<Status> {
        let mut by_domain: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in rcpts.iter().enumerate() {
            let domain = r.rsplit_once('@').map_or("", |(_, d)| d).to_lowercase();
            by_domain.entry(domain).or_default().push(i);
        }
        let mut out = vec![Status::Temporary("not tried".into()); rcpts.len()];
        for (domain, idx) in by_domain {
            let group: Vec<String> = idx.iter().map(|&i| rcpts[i].clone()).collect();
            let mut session = None;
            let (results, _) = self
                .send_domain(&domain, from, &group, message, &mut session)
                .await;
            if let Some(s) = session {
                s.quit().await;
            }
            for (k, st) in idx.into_iter().zip(results) {
                out[k] = st;
            }
        }
        out
    }

    /// Sends `message` to recipients of one `domain` in one transaction,
    /// trying its next hops in order. One status per recipient, and the
    /// host that took the transaction with how TLS went.
    ///
    /// `reuse` carries a connection between calls for the same domain: an
    /// open one is used first (and replaced by a new one when the server
    /// had closed it), and the connection that carried this transaction is
    /// left there for the next. The caller ends it with `Session::quit`.
    pub async fn send_domain(
        &self,
        domain: &str,
        from: &str,
        rcpts: &[String],
        message: &[u8],
        reuse: &mut Option<Session>,
    ) -> (Vec<Status>, Option<(String, client::TlsUse)>) {
        let env = Envelope {
            from,
            rcpts,
            message,
        };
        if let Some(mut s) = reuse.take() {
            if s.reusable() {
                match s.send(&env).await {
                    Ok(outcome) => {
                        let via = Some((s.target.host.clone(), outcome.tls));
                        *reuse = Some(s);
                        return (outcome.rcpts, via);
                    }
                    Err(st @ Status::Permanent(_)) => {
                        *reuse = Some(s);
                        return (vec![st; rcpts.len()], None);
                    }
                    Err(st) if s.in_doubt() => {
                        // Broken off after DATA: wait for the retry rather
                        // than send it twice at once.
                        s.quit().await;
                        return (vec![st; rcpts.len()], None);
                    }
                    // Closed meanwhile, or a temporary refusal before any
                    // recipient: start over with the next hops in order.
                    Err(st) => tracing::debug!(status = ?st, "reused connection failed"),
                }
            }
            s.quit().await;
        }
        let (targets, by_mx) = match self.targets(domain).await {
            Ok(t) => t,
            Err(st) => return (vec![st; rcpts.len()], None),
        };
        let (targets, reported) = match self.secured(domain, by_mx, targets).await {
            Ok(t) => t,
            Err(st) => return (vec![st; rcpts.len()], None),
        };
        let report = |need: &Need, outcome: TlsOutcome<'_>| {
            if let Some(r) = reported.as_ref().filter(|r| r.counts(need)) {
                self.tls_results.record(domain, r.judged(), outcome);
            }
        };
        let mut last = Status::Temporary(format!("no address to deliver to for {domain}"));
        for (t, need) in &targets {
            let opened = Session::open(t, &self.helo, Some(&self.tls), need).await;
            match &opened {
                Ok(s) => report(
                    need,
                    match s.short_of_verify {
                        None => TlsOutcome::Success,
                        Some(f) => TlsOutcome::Failure {
                            result_type: f.result_type(),
                            host: &t.host,
                            ip: Some(t.addr.ip()),
                        },
                    },
                ),
                Err(f) => {
                    if let Some(f) = f.tls {
                        report(
                            need,
                            TlsOutcome::Failure {
                                result_type: f.result_type(),
                                host: &t.host,
                                ip: Some(t.addr.ip()),
                            },
                        );
                    }
                }
            }
            let sent = match opened {
                Ok(mut s) => {
                    let r = s.send(&env).await;
                    if r.is_ok() && s.reusable() {
                        *reuse = Some(s);
                    } else {
                        s.quit().await;
                    }
                    r
                }
                Err(failed) => Err(failed.status),
            };
            match sent {
                Ok(outcome) => {
                    tracing::debug!(host = %t.host, tls = ?outcome.tls, "relayed");
                    return (outcome.rcpts, Some((t.host.clone(), outcome.tls)));
                }
                Err(st @ Status::Permanent(_)) => return (vec![st; rcpts.len()], None),
                Err(st) => {
                    tracing::info!(host = %t.host, addr = %t.addr, "next hop failed");
                    tracing::debug!(status = ?st, "next hop reply");
                    last = st;
                }
            }
        }
        (vec![last; rcpts.len()], None)
    }

    /// The next hops mail for `domain` may use, each with the TLS it
    /// needs, and the MTA-STS policy sessions are counted under. DANE
    /// first (RFC 8461 §2: where it applies, MTA-STS does not): for MX
    /// delivery with `relay.dane` on, or when `relay.tls_policy` says
    /// `dane`/`dane-only`; then `relay.tls_policy`; then the MTA-STS
    /// policy; else opportunistic TLS.
    async fn secured(
        &self,
        domain: &str,
        by_mx: bool,
        targets: Vec<Target>,
    ) -> Result<(Vec<(Target, Need)>, Option<Reported>), Status> {
        let explicit = self.config.tls_policy.get(domain).copied();
        let dane = match explicit {
            Some(TlsLevel::Dane | TlsLevel::DaneOnly) => true,
            Some(_) => false,
            None => by_mx && self.config.dane,
        };
        if dane
            && let Some(planned) = self
                .dane(domain, &targets, explicit == Some(TlsLevel::DaneOnly))
                .await?
        {
            let mut records = Vec::new();
            let mut hosts: Vec<String> = Vec::new();
            for (t, need) in &planned {
                if let Some(tlsa) = &need.tlsa
                    && !hosts.contains(&t.host)
                {
                    hosts.push(t.host.clone());
                    records.extend(tlsa.iter().map(|r| {
                        format!(
                            "_{}._tcp.{} IN TLSA {} {} {} {}",
                            t.addr.port(),
                            t.host,
                            r.usage,
                            r.selector,
                            r.matching,
                            hex::encode(&r.data)
                        )
                    }));
                }
            }
            return Ok((planned, Some(Reported::Tlsa(records, hosts))));
        }
        let (level, targets, reported) = self.level(domain, by_mx, explicit, targets).await?;
        let planned = targets
            .into_iter()
            .map(|t| (t, Need { level, tlsa: None }))
            .collect();
        Ok((planned, reported))
    }

    /// DANE for `targets` (RFC 7672): `None` when no host has
    /// DNSSEC-authenticated TLSA records (other policies then apply),
    /// else every host with records needs them matched and the others get
    /// opportunistic TLS (none with `only`). A secure host whose records
    /// could not be read is not tried this time.
    async fn dane(
        &self,
        domain: &str,
        targets: &[Target],
        only: bool,
    ) -> Result<Option<Vec<(Target, Need)>>, Status> {
        let mut found: std::collections::HashMap<String, HostTlsa> =
            std::collections::HashMap::new();
        for t in targets {
            if !found.contains_key(&t.host) {
                let r = match self.dns.tlsa(&t.host, t.addr.port()).await {
                    Ok(records) => Ok(records.map(Arc::new)),
                    Err(LookupError::Temporary(why)) => Err(why),
                    Err(LookupError::NotFound) => Ok(None),
                };
                found.insert(t.host.clone(), r);
            }
        }
        let secured = found.values().any(|r| matches!(r, Ok(Some(_))));
        let failed: Vec<&String> = found.values().filter_map(|r| r.as_ref().err()).collect();
        if !secured && failed.is_empty() && !only {
            return Ok(None);
        }
        let planned: Vec<(Target, Need)> = targets
            .iter()
            .filter_map(|t| match found.get(&t.host) {
                Some(Ok(Some(records))) => Some((
                    t.clone(),
                    Need {
                        level: TlsLevel::Dane,
                        tlsa: Some(records.clone()),
                    },
                )),
                Some(Ok(None)) if !only => Some((t.clone(), Need::may())),
                _ => None,
            })
            .collect();
        if planned.is_empty() {
            let why = match failed.first() {
                Some(why) => {
                    format!("the TLSA records of {domain}'s MX hosts could not be read: {why}")
                }
                None => format!(
                    "no MX host of {domain} has DNSSEC-authenticated TLSA records, which relay.tls_policy (dane-only) requires"
                ),
            };
            return Err(Status::Temporary(why));
        }
        Ok(Some(planned))
    }

    /// The TLS level without DANE: `relay.tls_policy`; else, for MX
    /// delivery, the domain's MTA-STS policy, whose `enforce` mode asks for
    /// a verified certificate and keeps only the MX hosts it names (RFC
    /// 8461 §4.1); else opportunistic TLS.
    async fn level(
        &self,
        domain: &str,
        by_mx: bool,
        explicit: Option<TlsLevel>,
        targets: Vec<Target>,
    ) -> Result<(TlsLevel, Vec<Target>, Option<Reported>), Status> {
        if let Some(level) = explicit {
            return Ok((level, targets, None));
        }
        if !by_mx || !self.config.mta_sts {
            return Ok((TlsLevel::May, targets, None));
        }
        match self.sts.policy(&self.dns, &self.web_tls, domain).await {
            Found::Policy(p) if p.mode == crate::proto::mta_sts::Mode::Enforce => {
                let first = targets.first().map(|t| (t.host.clone(), t.addr.ip()));
                let named: Vec<Target> =
                    targets.into_iter().filter(|t| p.admits(&t.host)).collect();
                if named.is_empty() {
                    let (host, ip) = first.unzip();
                    self.tls_results.record(
                        domain,
                        Judged::Sts(&p),
                        TlsOutcome::Failure {
                            result_type: "validation-failure",
                            host: host.as_deref().unwrap_or_default(),
                            ip,
                        },
                    );
                    return Err(Status::Temporary(format!(
                        "no MX host of {domain} is one its MTA-STS policy names ({})",
                        p.mx.join(", ")
                    )));
                }
                Ok((TlsLevel::Verify, named, Some(Reported::Sts(p))))
            }
            Found::Policy(p) => Ok((TlsLevel::May, targets, Some(Reported::Sts(p)))),
            Found::FetchFailed(_) => {
                self.tls_results.record(
                    domain,
                    Judged::NotFetched,
                    TlsOutcome::Failure {
                        result_type: "sts-policy-fetch-error",
                        host: "",
                        ip: None,
                    },
                );
                // Without a policy, the sessions are not counted.
                Ok((TlsLevel::May, targets, None))
            }
            Found::None => Ok((TlsLevel::May, targets, None)),
        }
    }

    /// Keeps TLS and DMARC report counts (`tls_rpt::FILE_NAME`,
    /// `dmarc_rpt::FILE_NAME`) and MTA-STS policies (`sts::FILE_NAME`) in
    /// `data_dir`, starting from what was saved there.
    pub fn keep_state_in(mut self, data_dir: &std::path::Path) -> Relay {
        self.tls_results = std::sync::Arc::new(TlsResults::load(data_dir));
        self.dmarc_results = std::sync::Arc::new(dmarc_rpt::DmarcResults::load(data_dir));
        self.sts = sts::Sts::load(self.config.https_port, data_dir);
        self
    }

    /// Whether `save_state` has anything to write.
    pub fn state_changed(&self) -> bool {
        self.tls_results.is_dirty() || self.dmarc_results.is_dirty() || self.sts.is_dirty()
    }

    /// Saves what `keep_state_in` reads back (what changed since).
    pub fn save_state(&self) -> std::io::Result<()> {
        self.tls_results.save()?;
        self.dmarc_results.save()?;
        self.sts.save()
    }

    /// Where mail for `domain` goes, in the order to try, and whether
    /// they are its MX hosts (not a route or the smarthost).
    async fn targets(&self, domain: &str) -> Result<(Vec<Target>, bool), Status> {
        let fixed = self
            .config
            .routes
            .get(domain)
            .or(self.config.smarthost.as_ref());
        if let Some(HostPort { host, port }) = fixed {
            let mut targets = self.resolve(std::slice::from_ref(host), *port).await?;
            if !self.config.routes.contains_key(domain) {
                for t in &mut targets {
                    t.login = self.smarthost_login.clone();
                }
            }
            return Ok((targets, false));
        }
        let hosts = match self.dns.mx(domain).await {
            Ok(hosts) if hosts.is_empty() => {
                return Err(Status::Permanent(format!(
                    "{domain} publishes a null MX: it accepts no mail"
                )));
            }
            Ok(hosts) => hosts,
            // RFC 5321 §5.1: no MX records, the domain itself is the host.
            Err(LookupError::NotFound) => vec![domain.to_string()],
            Err(LookupError::Temporary(why)) => {
                return Err(Status::Temporary(format!("MX lookup for {domain}: {why}")));
            }
        };
        Ok((self.resolve(&hosts, self.config.port).await?, true))
    }

    async fn resolve(&self, hosts: &[String], port: u16) -> Result<Vec<Target>, Status> {
        let mut out = Vec::new();
        let mut last = None;
        for host in hosts {
            if out.len() >= MAX_ADDRESSES {
                break;
            }
            match self.dns.addresses(host, MAX_ADDRESSES - out.len()).await {
                Ok(ips) => out.extend(ips.into_iter().map(|ip| Target {
                    host: host.clone(),
                    addr: SocketAddr::new(ip, port),
                    login: None,
                })),
                Err(e) => last = Some((host, e)),
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        Err(match last {
            Some((host, LookupError::NotFound)) if hosts.len() == 1 => {
                Status::Permanent(format!("{host} does not exist"))
            }
            Some((host, LookupError::NotFound)) => {
                Status::Temporary(format!("no address for {host}"))
            }
            Some((host, LookupError::Temporary(why))) => {
                Status::Temporary(format!("address lookup for {host}: {why}"))
            }
            None => Status::Temporary("no next hop".into()),
        })
    }

    /// POSTs the parsed `message` for `alias` to `url`, signed.
    pub async fn webhook(
        &self,
        url: &str,
        alias: &str,
        from: &str,
        message: &[u8],
        limits: crate::store::mime::Limits,
    ) -> Status {
        let body = match webhook::payload(message, from, alias, limits) {
            Ok(b) => b,
            Err(why) => return Status::Permanent(format!("cannot parse the message: {why}")),
        };
        let secret = webhook_secret(&self.server_key, alias);
        webhook::post(&self.dns, &self.web_tls, url, &secret, &body).await
    }
}
