//! Inbound sender authentication: SPF (RFC 7208), DKIM (RFC 6376) and
//! DMARC (RFC 7489) with mail-auth, and the `Authentication-Results` header
//! (RFC 8601).
//!
//! Imports mail-auth and async-compat only. mail-auth resolves DNS through
//! hickory's tokio runtime provider, so its futures run inside
//! `async_compat::Compat`, which gives them a tokio reactor without tokio
//! anywhere else in the server (DESIGN.md allows this where no
//! runtime-neutral crate exists). Invariants: every check is bounded by
//! `TIMEOUT`; a DNS failure is a `temperror`, never a rejection.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The checker one server shares.
pub struct InboundAuth {
    authenticator: MessageAuthenticator,
    hostname: String,
    /// Refuse mail whose DMARC check fails under `p=reject`.
    pub dmarc_reject: bool,
}

/// What the checks concluded about one message.
pub struct Verdict {
    /// A complete `Authentication-Results: …\r\n` header.
    pub header: String,
    /// DMARC failed and the domain asks for rejection.
    pub dmarc_reject: bool,
}

impl InboundAuth {
    /// Uses `nameservers` (UDP and TCP), or the system's resolv.conf if empty.
    pub fn new(
        hostname: &str,
        nameservers: &[SocketAddr],
        dmarc_reject: bool,
    ) -> Result<InboundAuth, String> {
        let authenticator = if nameservers.is_empty() {
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
        Ok(InboundAuth {
            authenticator,
            hostname: hostname.to_string(),
            dmarc_reject,
        })
    }

    /// Checks a message received from `ip` (HELO `helo`, MAIL FROM
    /// `mail_from`).
    pub async fn check(&self, ip: IpAddr, helo: &str, mail_from: &str, message: &[u8]) -> Verdict {
        let work = async_compat::Compat::new(self.run(ip, helo, mail_from, message));
        let late = async {
            smol::Timer::after(TIMEOUT).await;
            Verdict {
                header: format!(
                    "Authentication-Results: {}; spf=temperror; dkim=temperror; dmarc=temperror (checks timed out)\r\n",
                    self.hostname
                ),
                dmarc_reject: false,
            }
        };
        futures_lite::future::or(work, late).await
    }

    async fn run(&self, ip: IpAddr, helo: &str, mail_from: &str, message: &[u8]) -> Verdict {
        let Some(msg) = AuthenticatedMessage::parse(message) else {
            return Verdict {
                header: format!(
                    "Authentication-Results: {}; none (message headers could not be parsed)\r\n",
                    self.hostname
                ),
                dmarc_reject: false,
            };
        };
        let a = &self.authenticator;
        let dkim = a.verify_dkim(&msg).await;
        let spf = a
            .verify_spf(SpfParameters::verify(ip, helo, &self.hostname, mail_from))
            .await;
        let mail_from_domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
        let dmarc = a
            .verify_dmarc(DmarcParameters::new(&msg, &dkim, mail_from_domain, &spf))
            .await;
        let results = AuthenticationResults::new(&self.hostname)
            .with_dkim_results(&dkim, msg.from())
            .with_spf_mailfrom_result(&spf, ip, mail_from, helo)
            .with_dmarc_result(&dmarc);
        // A temporary DNS error is never a failure (RFC 7489 §6.6.2).
        let failed = matches!(dmarc.result(), DmarcResult::Fail(_));
        Verdict {
            header: format!("Authentication-Results: {results}\r\n"),
            dmarc_reject: self.dmarc_reject && failed && dmarc.policy() == Policy::Reject,
        }
    }
}
