//! The DNS resolver every part of the server shares: SPF/DKIM/DMARC
//! checks, DNS blocklists, and for mail that leaves MX lookups and the
//! MTA-STS and TLS-RPT records of destinations, with one cache of answers
//! (`cache`).
//!
//! Imports mail-auth (hickory) and async-compat only; `secure` asks a
//! validating resolver for DNSSEC-authenticated TLSA records (DANE). hickory runs on
//! tokio, so each lookup runs inside `async_compat::Compat`, which gives
//! it a tokio reactor without tokio anywhere else (DESIGN.md allows this
//! where no runtime-neutral crate exists). Invariants: every lookup is
//! bounded by `TIMEOUT`; "no such record" and "could not ask" stay
//! distinct, because only the first may make a message bounce.

pub mod cache;
pub mod secure;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::mta_sts::{MtaSts, ReportUri, TlsRpt};
use mail_auth::{DnsError, IpLookupStrategy, MX, MessageAuthenticator, Parameters, RecordSet, Txt};

use cache::{Cache, Caches};

/// mail-auth's parameters with every cache of [`Dns`] attached.
pub type Cached<'x, P> = Parameters<
    'x,
    P,
    Cache<Box<str>, Txt>,
    Cache<Box<str>, RecordSet<MX>>,
    Cache<Box<str>, RecordSet<Ipv4Addr>>,
    Cache<Box<str>, RecordSet<Ipv6Addr>>,
    Cache<IpAddr, RecordSet<Box<str>>>,
>;

/// One lookup's limit, retries included.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The name or the record does not exist (NXDOMAIN or no data).
    NotFound,
    /// The servers failed, timed out or answered garbage: try later.
    Temporary(String),
}

/// The resolver and its cache, cheap to clone (clones share both).
#[derive(Clone)]
pub struct Dns {
    inner: MessageAuthenticator,
    caches: Arc<Caches>,
    /// The loopback resolver whose AD bit DANE believes (`secure`).
    validating: Option<SocketAddr>,
}

impl Dns {
    /// Asks `nameservers` (UDP, then TCP), or the system's resolv.conf if
    /// the list is empty.
    pub fn new(nameservers: &[SocketAddr]) -> Result<Dns, String> {
        let inner = if nameservers.is_empty() {
            MessageAuthenticator::new_system_conf()
        } else {
            let servers = nameservers
                .iter()
                .map(|a| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = a.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = a.port();
                    NameServerConfig::new(a.ip(), true, vec![udp, tcp])
                })
                .collect();
            let mut opts = ResolverOpts::default();
            opts.timeout = Duration::from_secs(5);
            opts.attempts = 2;
            MessageAuthenticator::new(ResolverConfig::from_name_servers(servers), opts)
        }
        .map_err(|e| format!("cannot set up the DNS resolver: {e}"))?;
        Ok(Dns {
            inner,
            caches: Arc::default(),
            validating: secure::validating_resolver(nameservers),
        })
    }

    /// The answers kept, with their hits and misses.
    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// `params` for one of mail-auth's checks, with the caches attached.
    pub fn cached<'x, P>(&'x self, params: P) -> Cached<'x, P> {
        let c = &*self.caches;
        Parameters::new(params)
            .with_txt_cache(&c.txt)
            .with_mx_cache(&c.mx)
            .with_ipv4_cache(&c.ipv4)
            .with_ipv6_cache(&c.ipv6)
            .with_ptr_cache(&c.ptr)
    }

    /// The authenticator for SPF/DKIM/DMARC; run its futures through
    /// [`Dns::run`].
    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.inner
    }

    /// Runs a hickory-based future (it needs tokio's reactor), giving up
    /// with `None` after `limit`.
    pub async fn run<T>(&self, limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
        let work = async { Some(async_compat::Compat::new(fut).await) };
        let late = async {
            smol::Timer::after(limit).await;
            None
        };
        futures_lite::future::or(work, late).await
    }

    /// MX hosts of `domain`, best preference first (hosts of equal
    /// preference in the order given). An empty list means a null MX
    /// (RFC 7505): the domain takes no mail.
    pub async fn mx(&self, domain: &str) -> Result<Vec<String>, LookupError> {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let found = self
            .run(
                TIMEOUT,
                self.inner.mx_lookup(fqdn.as_str(), Some(&self.caches.mx)),
            )
            .await
            .ok_or_else(timed_out)?
            .map_err(classify)?;
        let mut hosts = Vec::new();
        for mx in found.rrset.iter() {
            for host in mx.exchanges.iter() {
                let host = host.trim_end_matches('.');
                if host.is_empty() {
                    // "MX 0 ." is the null MX.
                    continue;
                }
                hosts.push(host.to_ascii_lowercase());
            }
        }
        if hosts.is_empty() && found.rrset.is_empty() {
            return Err(LookupError::NotFound);
        }
        Ok(hosts)
    }

    /// Addresses of `host` (IPv4 first, then IPv6), at most `max`.
    pub async fn addresses(&self, host: &str, max: usize) -> Result<Vec<IpAddr>, LookupError> {
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        self.run(
            TIMEOUT,
            self.inner.ip_lookup(
                &fqdn,
                IpLookupStrategy::Ipv4thenIpv6,
                max,
                Some(&self.caches.ipv4),
                Some(&self.caches.ipv6),
            ),
        )
        .await
        .ok_or_else(timed_out)?
        .map_err(classify)
    }
}

impl Dns {
    /// The DNSSEC-authenticated TLSA records of `host`'s `port` (DANE):
    /// `Ok(None)` when DANE does not apply (no validating resolver on
    /// loopback, an unsigned host, no records); `Err` when it may apply
    /// but the records could not be read.
    pub async fn tlsa(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Option<Vec<secure::Tlsa>>, LookupError> {
        match self.validating {
            Some(resolver) => secure::tlsa(resolver, host, port).await,
            None => Ok(None),
        }
    }

    /// The `id` of `domain`'s MTA-STS record (`_mta-sts.DOMAIN`, RFC 8461
    /// §3.1): `NotFound` when it publishes none (or none that parses).
    pub async fn mta_sts_id(&self, domain: &str) -> Result<String, LookupError> {
        let found: Arc<MtaSts> = self.record("_mta-sts", domain).await?;
        Ok(found.id.clone())
    }

    /// A TXT record of mail-auth's kind `T` at `PREFIX.DOMAIN`, cached.
    async fn record<T>(&self, prefix: &str, domain: &str) -> Result<Arc<T>, LookupError>
    where
        T: mail_auth::common::parse::TxtRecordParser
            + Into<Txt>
            + mail_auth::common::resolver::UnwrapTxtRecord,
    {
        let name = format!("{prefix}.{}.", domain.trim_end_matches('.'));
        self.run(
            TIMEOUT,
            self.inner
                .txt_lookup::<T>(name.as_str(), Some(&self.caches.txt)),
        )
        .await
        .ok_or_else(timed_out)?
        .map_err(classify_txt)
    }

    /// Where `domain` wants TLS reports (`_smtp._tls.DOMAIN`, RFC 8460
    /// §3): its `mailto:` addresses; `NotFound` when it publishes none.
    pub async fn tls_rpt_addresses(&self, domain: &str) -> Result<Vec<String>, LookupError> {
        let found: Arc<TlsRpt> = self.record("_smtp._tls", domain).await?;
        Ok(found
            .rua
            .iter()
            .filter_map(|u| match u {
                ReportUri::Mail(m) => Some(m.clone()),
                ReportUri::Http(_) => None,
            })
            .collect())
    }
}

impl Dns {
    /// What DNS blocklist `zone` says of `ip` (RFC 5782): the address it
    /// answers in 127.0.0.0/8 when listed, `None` when not (or when the
    /// answer is one of the 127.255.255.0/24 error codes some lists give
    /// to resolvers they refuse).
    pub async fn dnsbl(&self, ip: IpAddr, zone: &str) -> Result<Option<Ipv4Addr>, LookupError> {
        let name = format!("{}.{}", reversed(ip), zone.trim_end_matches('.'));
        match self.addresses(&name, 4).await {
            Ok(found) => Ok(found.into_iter().find_map(|a| match a {
                IpAddr::V4(v4) => {
                    let [first, second, third, _] = v4.octets();
                    (first == 127 && (second, third) != (255, 255)).then_some(v4)
                }
                IpAddr::V6(_) => None,
            })),
            Err(LookupError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Dns {
    /// Whether `name` has a TXT record that begins with `prefix` (without
    /// case): how a domain agrees to take another's DMARC reports
    /// (RFC 7489 §7.1).
    pub async fn txt_begins(&self, name: &str, prefix: &str) -> Result<bool, LookupError> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self
            .run(TIMEOUT, self.inner.txt_raw_lookup(fqdn.as_str()))
            .await
            .ok_or_else(timed_out)?
            .map_err(classify)
        {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes)
                .to_ascii_lowercase()
                .starts_with(&prefix.to_ascii_lowercase())),
            Err(LookupError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The kinds of record [`Dns::records`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Txt,
    Mx,
    Srv,
    A,
    Aaaa,
}

impl Dns {
    /// Every record of `kind` at `name` in presentation form: a TXT
    /// record's strings joined, `PREF HOST` for MX, `PRIO WEIGHT PORT
    /// HOST` for SRV (host names without the final dot), addresses for A
    /// and AAAA (a CNAME followed). Not cached: for an operator's checks.
    pub async fn records(&self, name: &str, kind: Kind) -> Result<Vec<String>, LookupError> {
        use mail_auth::hickory_resolver::proto::rr::{RData, RecordType};
        let rtype = match kind {
            Kind::Txt => RecordType::TXT,
            Kind::Mx => RecordType::MX,
            Kind::Srv => RecordType::SRV,
            Kind::A => RecordType::A,
            Kind::Aaaa => RecordType::AAAA,
        };
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let lookup = self
            .run(TIMEOUT, self.inner.resolver().lookup(fqdn.as_str(), rtype))
            .await
            .ok_or_else(timed_out)?;
        let lookup = match lookup {
            Ok(l) => l,
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
                return Err(LookupError::NotFound);
            }
            Err(e) => return Err(LookupError::Temporary(e.to_string())),
        };
        let host = |n: &mail_auth::hickory_resolver::proto::rr::Name| {
            n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
        };
        let mut out = Vec::new();
        for record in lookup.answers() {
            let text = match (&record.data, kind) {
                (RData::TXT(txt), Kind::Txt) => txt
                    .txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).to_string())
                    .collect::<String>(),
                (RData::MX(mx), Kind::Mx) => format!("{} {}", mx.preference, host(&mx.exchange)),
                (RData::SRV(srv), Kind::Srv) => format!(
                    "{} {} {} {}",
                    srv.priority,
                    srv.weight,
                    srv.port,
                    host(&srv.target)
                ),
                (RData::A(a), Kind::A) => a.0.to_string(),
                (RData::AAAA(a), Kind::Aaaa) => a.0.to_string(),
                _ => continue,
            };
            out.push(text);
        }
        if out.is_empty() {
            return Err(LookupError::NotFound);
        }
        Ok(out)
    }
}

/// `ip` as DNS blocklists name it: IPv4 octets reversed, IPv6 nibbles
/// reversed (RFC 5782 §2.1, §2.4).
pub fn reversed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(63);
            for byte in v6.octets().iter().rev() {
                for nibble in [byte & 0x0f, byte >> 4] {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
                }
            }
            out
        }
    }
}

/// A TXT record that is there but not of the kind asked counts as none.
fn classify_txt(e: mail_auth::Error) -> LookupError {
    match e {
        mail_auth::Error::Dns(DnsError::RecordNotFound(_) | DnsError::InvalidRecordType)
        | mail_auth::Error::ParseError
        | mail_auth::Error::MissingParameters => LookupError::NotFound,
        other => LookupError::Temporary(other.to_string()),
    }
}

fn timed_out() -> LookupError {
    LookupError::Temporary("DNS lookup timed out".into())
}

fn classify(e: mail_auth::Error) -> LookupError {
    match e {
        mail_auth::Error::Dns(DnsError::RecordNotFound(_)) => LookupError::NotFound,
        other => LookupError::Temporary(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocklist_names() {
        assert_eq!(reversed("192.0.2.99".parse().unwrap()), "99.2.0.192");
        // RFC 5782 §2.4's example.
        assert_eq!(
            reversed("2001:db8:1:2:3:4:567:89ab".parse().unwrap()),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2"
        );
    }
}
