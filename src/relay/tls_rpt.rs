//! SMTP TLS reporting (RFC 8460), the sending side: every connection to
//! an MX of a domain with an MTA-STS policy is counted as a success or a
//! failure (by RFC 8460's result types) under its UTC day and policy
//! domain; a day's counts become one JSON report per domain (§4), mailed
//! gzipped to the domain's `rua` addresses (§5.3) by `app`'s daily task.
//!
//! Imports `proto::mta_sts` (the policy's lines), `util` (time) and the
//! sibling `daily`. Invariants: counts live in memory and in
//! `tls-reports.json` in the data directory (`daily`); at most
//! `MAX_DOMAINS` policy domains a day and `MAX_DETAILS` failure rows
//! a domain are kept (past them failures still count in the summary);
//! nothing of any message is recorded, only host names, addresses and
//! counts.

use std::io;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::daily::Daily;
use crate::proto::mta_sts::Policy;

/// The file the counts are kept in, in the data directory.
pub const FILE_NAME: &str = "tls-reports.json";

const MAX_DOMAINS: usize = 10_000;
const MAX_DETAILS: usize = 100;

/// One policy domain's counts for one day.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// `sts`, `tlsa`, or `no-policy-found` when the MTA-STS policy could
    /// not be fetched.
    pub policy_type: String,
    pub policy_string: Vec<String>,
    pub mx_host: Vec<String>,
    pub successes: u64,
    pub failures: u64,
    pub details: Vec<Detail>,
}

/// Failed sessions of one kind with one MX address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detail {
    pub result_type: String,
    pub receiving_mx_hostname: String,
    pub receiving_ip: String,
    pub count: u64,
}

/// How one session went, for the report.
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    Success,
    Failure {
        result_type: &'static str,
        host: &'a str,
        ip: Option<IpAddr>,
    },
}

/// The policy a session was judged by.
#[derive(Clone, Copy, Debug)]
pub enum Judged<'a> {
    Sts(&'a Policy),
    /// DANE: the domain's TLSA records (presentation form) and the MX
    /// hosts that have them.
    Tlsa {
        records: &'a [String],
        hosts: &'a [String],
    },
    /// The `_mta-sts` record named a policy that could not be fetched.
    NotFetched,
}

/// The counts of every day not yet reported.
pub struct TlsResults(Daily<Tally>);

impl TlsResults {
    /// Counts kept in memory only (tests, the command line).
    pub fn in_memory() -> TlsResults {
        TlsResults(Daily::in_memory(MAX_DOMAINS))
    }

    /// The counts saved in `data_dir` (`FILE_NAME`).
    pub fn load(data_dir: &Path) -> TlsResults {
        TlsResults(Daily::load(data_dir.join(FILE_NAME), MAX_DOMAINS))
    }

    /// Counts one session with an MX of `domain`, today.
    pub fn record(&self, domain: &str, judged: Judged<'_>, outcome: Outcome<'_>) {
        self.record_on(&super::daily::today(), domain, judged, outcome);
    }

    /// Counts one session on `day` (`YYYY-MM-DD`).
    pub fn record_on(&self, day: &str, domain: &str, judged: Judged<'_>, outcome: Outcome<'_>) {
        self.0
            .update(day, domain, |tally| tally.add(judged, outcome));
    }

    /// Writes the counts to their file, when they changed.
    pub fn save(&self) -> io::Result<()> {
        self.0.save()
    }

    /// Whether `save` has anything to write.
    pub fn is_dirty(&self) -> bool {
        self.0.is_dirty()
    }

    /// Takes the counts of every day before `today` out (to be reported).
    pub fn take_before(&self, today: &str) -> Vec<(String, String, Tally)> {
        self.0.take_before(today)
    }

    /// The counts of `day`, left in place.
    pub fn of_day(&self, day: &str) -> std::collections::BTreeMap<String, Tally> {
        self.0.of_day(day)
    }
}

impl Tally {
    fn add(&mut self, judged: Judged<'_>, outcome: Outcome<'_>) {
        let tally = self;
        match judged {
            Judged::Sts(p) => {
                tally.policy_type = "sts".into();
                tally.policy_string = p.lines();
                tally.mx_host = p.mx.clone();
            }
            Judged::Tlsa { records, hosts } => {
                tally.policy_type = "tlsa".into();
                tally.policy_string = records.to_vec();
                tally.mx_host = hosts.to_vec();
            }
            Judged::NotFetched if tally.policy_type.is_empty() => {
                tally.policy_type = "no-policy-found".into();
            }
            Judged::NotFetched => {}
        }
        match outcome {
            Outcome::Success => tally.successes += 1,
            Outcome::Failure {
                result_type,
                host,
                ip,
            } => {
                tally.failures += 1;
                let ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
                if let Some(d) = tally.details.iter_mut().find(|d| {
                    d.result_type == result_type
                        && d.receiving_mx_hostname == host
                        && d.receiving_ip == ip
                }) {
                    d.count += 1;
                } else if tally.details.len() < MAX_DETAILS {
                    tally.details.push(Detail {
                        result_type: result_type.into(),
                        receiving_mx_hostname: host.into(),
                        receiving_ip: ip,
                        count: 1,
                    });
                }
            }
        }
    }
}

/// Who sends a report.
pub struct Submitter<'a> {
    /// `organization-name` (the host name).
    pub organization: &'a str,
    /// `contact-info` (postmaster's address).
    pub contact: &'a str,
}

/// The RFC 8460 §4.4 report of `domain`'s counts on `day`.
pub fn report(day: &str, domain: &str, tally: &Tally, by: &Submitter<'_>) -> serde_json::Value {
    let start = crate::util::parse_iso8601(day).unwrap_or(0);
    let mut policy = serde_json::json!({
        "policy-type": tally.policy_type,
        "policy-domain": domain,
    });
    if tally.policy_type == "sts" || tally.policy_type == "tlsa" {
        policy["policy-string"] = serde_json::json!(tally.policy_string);
        policy["mx-host"] = serde_json::json!(tally.mx_host);
    }
    let details: Vec<serde_json::Value> = tally
        .details
        .iter()
        .map(|d| {
            let mut v = serde_json::json!({
                "result-type": d.result_type,
                "failed-session-count": d.count,
            });
            if !d.receiving_mx_hostname.is_empty() {
                v["receiving-mx-hostname"] = d.receiving_mx_hostname.clone().into();
            }
            if !d.receiving_ip.is_empty() {
                v["receiving-ip"] = d.receiving_ip.clone().into();
            }
            v
        })
        .collect();
    serde_json::json!({
        "organization-name": by.organization,
        "date-range": {
            "start-datetime": crate::util::iso8601_utc(start),
            "end-datetime": crate::util::iso8601_utc(start + 86_399),
        },
        "contact-info": by.contact,
        "report-id": report_id(day, domain, by.organization),
        "policies": [{
            "policy": policy,
            "summary": {
                "total-successful-session-count": tally.successes,
                "total-failure-session-count": tally.failures,
            },
            "failure-details": details,
        }],
    })
}

fn report_id(day: &str, domain: &str, organization: &str) -> String {
    format!("{day}.{domain}@{organization}")
}

/// The report as a mail (RFC 8460 §5.3): `multipart/report;
/// report-type="tlsrpt"` with a short text and the JSON gzipped as
/// `application/tlsrpt+gzip`, from `from` to `to`.
pub fn message(
    day: &str,
    domain: &str,
    report: &serde_json::Value,
    (from, to): (&str, &[String]),
    by: &Submitter<'_>,
) -> io::Result<Vec<u8>> {
    use base64::Engine;
    use std::io::Write;
    let start = crate::util::parse_iso8601(day).unwrap_or(0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&serde_json::to_vec(report).map_err(io::Error::other)?)?;
    let gz = gz.finish()?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(gz);
    let mut wrapped = String::with_capacity(b64.len() + b64.len() / 76 * 2 + 2);
    for line in b64.as_bytes().chunks(76) {
        wrapped.push_str(&String::from_utf8_lossy(line));
        wrapped.push_str("\r\n");
    }
    let org = by.organization;
    let id = report_id(day, domain, org);
    let boundary = format!("tlsrpt-{}", crate::util::random_id()?);
    let file = format!("{org}!{domain}!{start}!{}.json.gz", start + 86_399);
    let now = crate::util::now_unix();
    Ok(format!(
        "From: {from}\r\n\
         To: {to}\r\n\
         Date: {date}\r\n\
         Subject: Report Domain: {domain} Submitter: {org} Report-ID: <{id}>\r\n\
         Message-ID: <{id}.{now}@{org}>\r\n\
         TLS-Report-Domain: {domain}\r\n\
         TLS-Report-Submitter: {org}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is an aggregate TLS report from {org} for {domain} on {day} (RFC 8460).\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: application/tlsrpt+gzip\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{file}\"\r\n\
         \r\n\
         {wrapped}\
         --{boundary}--\r\n",
        to = to.join(", "),
        date = crate::util::rfc5322_date(now),
    )
    .into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_of_sessions_becomes_a_report() {
        let r = TlsResults::in_memory();
        let p = crate::proto::mta_sts::policy(
            b"version: STSv1\nmode: enforce\nmx: mx.example.net\nmax_age: 86400\n",
        )
        .unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let fail = Outcome::Failure {
            result_type: "certificate-expired",
            host: "mx.example.net",
            ip: Some(ip),
        };
        for o in [Outcome::Success, Outcome::Success, fail, fail] {
            r.record_on("2026-11-30", "example.net", Judged::Sts(&p), o);
        }
        r.record_on(
            "2026-12-01",
            "example.net",
            Judged::Sts(&p),
            Outcome::Success,
        );
        let taken = r.take_before("2026-12-01");
        assert_eq!(taken.len(), 1);
        let (day, domain, tally) = &taken[0];
        assert_eq!((tally.successes, tally.failures), (2, 2));
        assert_eq!(tally.details[0].count, 2);
        let by = Submitter {
            organization: "mail.example.org",
            contact: "postmaster@example.org",
        };
        let json = report(day, domain, tally, &by);
        assert_eq!(json["date-range"]["start-datetime"], "2026-11-30T00:00:00Z");
        assert_eq!(json["date-range"]["end-datetime"], "2026-11-30T23:59:59Z");
        assert_eq!(
            json["policies"][0]["policy"]["mx-host"][0],
            "mx.example.net"
        );
        assert_eq!(
            json["policies"][0]["failure-details"][0]["receiving-ip"],
            "192.0.2.7"
        );
        // The later day stays.
        assert_eq!(r.of_day("2026-12-01")["example.net"].successes, 1);
        let m = message(day, domain, &json, ("a@b", &["c@d".into()]), &by).unwrap();
        let m = String::from_utf8(m).unwrap();
        assert!(m.contains("report-type=\"tlsrpt\""));
        assert!(m.contains("filename=\"mail.example.org!example.net!"));
    }
}
