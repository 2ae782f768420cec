//! Inbound sender authentication: SPF (RFC 7208), DKIM (RFC 6376), DMARC
//! (RFC 7489) and ARC (RFC 8617, recorded only) with mail-auth, and the
//! `Authentication-Results` header (RFC 8601).
//!
//! Imports mail-auth and `dns` (whose `run` gives mail-auth's
//! hickory lookups the tokio reactor they need). Invariants: every check
//! is bounded by `TIMEOUT`; a DNS failure is a `temperror`, never a
//! rejection.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DkimResult, DmarcResult, SpfResult};

use crate::dns::Dns;

const TIMEOUT: Duration = Duration::from_secs(20);

/// The checker one server shares.
pub struct InboundAuth {
    dns: Dns,
    hostname: String,
    /// The name the results header carries (`mx.authserv_id`).
    authserv_id: String,
    /// Refuse mail whose DMARC check fails under `p=reject`.
    pub dmarc_reject: bool,
    /// Where results are counted for DMARC aggregate reports
    /// (`mx.dmarc_reports`).
    reports: Option<Arc<crate::relay::dmarc_rpt::DmarcResults>>,
}

/// What the checks concluded about one message.
pub struct Verdict {
    /// A complete `Authentication-Results: …\r\n` header.
    pub header: String,
    /// The three results for the log: `spf=pass dkim=none dmarc=pass`.
    pub summary: String,
    /// DMARC failed and the domain asks for rejection.
    pub dmarc_reject: bool,
    /// DMARC failed under `p=quarantine`, or under `p=reject` that this
    /// server does not refuse: the Junk folder (RFC 7489 §6.3).
    pub junk: bool,
}

impl InboundAuth {
    pub fn new(dns: Dns, hostname: &str, authserv_id: &str, dmarc_reject: bool) -> InboundAuth {
        InboundAuth {
            dns,
            hostname: hostname.to_string(),
            authserv_id: authserv_id.to_string(),
            dmarc_reject,
            reports: None,
        }
    }

    /// Counts each checked message for the DMARC aggregate reports of
    /// its From domain, when that domain asks for them.
    pub fn with_reports(mut self, reports: Arc<crate::relay::dmarc_rpt::DmarcResults>) -> Self {
        self.reports = Some(reports);
        self
    }

    /// Checks a message received from `ip` (HELO `helo`, MAIL FROM
    /// `mail_from`).
    pub async fn check(&self, ip: IpAddr, helo: &str, mail_from: &str, message: &[u8]) -> Verdict {
        let work = self.run(ip, helo, mail_from, message);
        match self.dns.run(TIMEOUT, work).await {
            Some(verdict) => verdict,
            None => Verdict {
                header: format!(
                    "Authentication-Results: {}; spf=temperror; dkim=temperror; dmarc=temperror (checks timed out)\r\n",
                    self.authserv_id
                ),
                summary: "spf=temperror dkim=temperror dmarc=temperror".into(),
                dmarc_reject: false,
                junk: false,
            },
        }
    }

    async fn run(&self, ip: IpAddr, helo: &str, mail_from: &str, message: &[u8]) -> Verdict {
        let Some(msg) = AuthenticatedMessage::parse(message) else {
            return Verdict {
                header: format!(
                    "Authentication-Results: {}; none (message headers could not be parsed)\r\n",
                    self.authserv_id
                ),
                summary: "spf=none dkim=none dmarc=none".into(),
                dmarc_reject: false,
                junk: false,
            };
        };
        let (a, dns) = (self.dns.authenticator(), &self.dns);
        let dkim = a.verify_dkim(dns.cached(&msg)).await;
        // ARC (RFC 8617): recorded for filters and the owner to weigh
        // (a list that rewrote the message may vouch for what it saw); it
        // changes no decision here.
        let arc = a.verify_arc(dns.cached(&msg)).await;
        let spf = a
            .verify_spf(dns.cached(SpfParameters::verify(ip, helo, &self.hostname, mail_from)))
            .await;
        let mail_from_domain = mail_from.rsplit_once('@').map_or(helo, |(_, d)| d);
        let dmarc = a
            .verify_dmarc(dns.cached(DmarcParameters::new(&msg, &dkim, mail_from_domain, &spf)))
            .await;
        let results = AuthenticationResults::new(&self.authserv_id)
            .with_dkim_results(&dkim, msg.from())
            .with_spf_mailfrom_result(&spf, ip, mail_from, helo)
            .with_arc_result(&arc, ip)
            .with_dmarc_result(&dmarc);
        if let Some(reports) = &self.reports
            && let Some(record) = dmarc.dmarc_record()
        {
            let rua = crate::relay::dmarc_rpt::mail_addresses(record.rua());
            if !rua.is_empty() {
                use mail_auth::report::{
                    ActionDisposition, PolicyPublished, Record, SPFDomainScope,
                };
                let mut row = Record::new()
                    .with_source_ip(ip)
                    .with_header_from(dmarc.domain())
                    .with_envelope_from(mail_from_domain)
                    .with_dkim_output(&dkim)
                    .with_spf_output(&spf, SPFDomainScope::MailFrom)
                    .with_dmarc_output(&dmarc);
                // RFC 7489's schema knows none, quarantine and reject: a
                // message that passed was not acted on.
                let d = &mut row.row.policy_evaluated.disposition;
                if *d == ActionDisposition::Pass {
                    *d = ActionDisposition::None;
                }
                let policy = PolicyPublished::from_record(dmarc.domain(), record);
                reports.record(dmarc.domain(), policy, rua, row);
            }
        }
        // A temporary DNS error is never a failure (RFC 7489 §6.6.2).
        let failed = matches!(dmarc.result(), DmarcResult::Fail(_));
        Verdict {
            header: format!("Authentication-Results: {results}\r\n"),
            summary: summary(&spf, &dkim, &dmarc),
            dmarc_reject: self.dmarc_reject && failed && dmarc.policy() == Policy::Reject,
            junk: failed && matches!(dmarc.policy(), Policy::Quarantine | Policy::Reject),
        }
    }
}

/// The RFC 8601 result keywords of the three checks; for DKIM the first
/// passing signature, else the first signature's result.
fn summary(
    spf: &mail_auth::SpfOutput,
    dkim: &[mail_auth::DkimOutput<'_>],
    dmarc: &mail_auth::DmarcOutput,
) -> String {
    let spf = match spf.result() {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    };
    let dkim = dkim
        .iter()
        .find(|d| matches!(d.result(), DkimResult::Pass))
        .or_else(|| dkim.first())
        .map_or("none", |d| match d.result() {
            DkimResult::Pass => "pass",
            DkimResult::Fail(_) => "fail",
            DkimResult::Neutral(_) => "neutral",
            DkimResult::TempError(_) => "temperror",
            DkimResult::PermError(_) => "permerror",
            DkimResult::None => "none",
        });
    let dmarc = match dmarc.result() {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    };
    format!("spf={spf} dkim={dkim} dmarc={dmarc}")
}
