//! `sealmail dmarc report DOMAIN --mailbox ADDRESS`: the DMARC aggregate
//! reports (RFC 7489 §7.2) that other servers mailed to the address a
//! domain publishes as `rua`, read from that alias' mailbox (with its
//! password) and summarised: how many messages claiming the domain each
//! sender address sent, and how many passed DMARC.
//!
//! Imports `store` (through `mailbox::unlock` and the export's message
//! walk). Invariants: the mailbox is only read; each report is parsed by
//! mail-auth from its message (XML, gzip or zip), at most `MAX_XML` bytes
//! of XML once decompressed; a message that is not a report, or is over
//! the limit, is counted and skipped, never fatal.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::Result;
use mail_auth::report::{ActionDisposition, DmarcResult, Report};

use crate::config::Config;

/// A report's XML may be this large once decompressed.
const MAX_XML: usize = 16 << 20;

/// What the reports about one domain add up to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub reports: usize,
    /// Report ids seen, so a report mailed twice counts once.
    pub ids: std::collections::BTreeSet<(String, String)>,
    pub first: Option<u64>,
    pub last: Option<u64>,
    /// Messages, and those that passed DMARC (aligned DKIM or SPF).
    pub messages: u64,
    pub passed: u64,
    /// Messages the receivers quarantined or rejected.
    pub quarantined: u64,
    pub rejected: u64,
    /// By sending address: (messages, passed).
    pub sources: BTreeMap<Option<IpAddr>, (u64, u64)>,
    /// By reporting organisation: (reports, messages).
    pub reporters: BTreeMap<String, (usize, u64)>,
    /// Messages that were not reports about the domain, or not reports.
    pub other: usize,
    pub unreadable: usize,
    /// Reports mailed more than once.
    pub repeated: usize,
}

impl Summary {
    /// Adds one message of the mailbox.
    pub fn add_message(&mut self, domain: &str, message: &[u8]) {
        match Report::parse_rfc5322(message, MAX_XML) {
            Ok(r) if r.policy_published.domain.eq_ignore_ascii_case(domain) => self.add(&r),
            Ok(_) => self.other += 1,
            Err(mail_auth::report::Error::NoReportsFound) => self.other += 1,
            Err(_) => self.unreadable += 1,
        }
    }

    fn add(&mut self, r: &Report) {
        let meta = &r.report_metadata;
        if !self
            .ids
            .insert((meta.org_name.clone(), meta.report_id.clone()))
        {
            self.repeated += 1;
            return;
        }
        self.reports += 1;
        let (begin, end) = (meta.date_range.begin, meta.date_range.end);
        self.first = Some(self.first.map_or(begin, |f| f.min(begin)));
        self.last = Some(self.last.map_or(end, |l| l.max(end)));
        let reporter = self.reporters.entry(meta.org_name.clone()).or_default();
        reporter.0 += 1;
        for rec in &r.record {
            let row = &rec.row;
            let n = u64::from(row.count);
            let pe = &row.policy_evaluated;
            let pass = pe.dkim == DmarcResult::Pass || pe.spf == DmarcResult::Pass;
            self.messages += n;
            reporter.1 += n;
            let source = self.sources.entry(row.source_ip).or_default();
            source.0 += n;
            if pass {
                self.passed += n;
                source.1 += n;
            }
            match pe.disposition {
                ActionDisposition::Quarantine => self.quarantined += n,
                ActionDisposition::Reject => self.rejected += n,
                _ => {}
            }
        }
    }

    /// The summary as the command prints it.
    pub fn render(&self, domain: &str) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let day = |t: Option<u64>| {
            t.map_or("?".to_string(), |t| {
                crate::util::date_only(i64::try_from(t).unwrap_or(0), 0)
            })
        };
        let _ = writeln!(
            out,
            "DMARC aggregate reports for {domain}: {} reports from {} organisations, {} to {}",
            self.reports,
            self.reporters.len(),
            day(self.first),
            day(self.last)
        );
        let _ = writeln!(
            out,
            "messages: {} (passed {}, failed {}; quarantined {}, rejected {})",
            self.messages,
            self.passed,
            self.messages - self.passed,
            self.quarantined,
            self.rejected
        );
        let mut sources: Vec<_> = self.sources.iter().collect();
        sources.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        let _ = writeln!(out, "by sending address (messages, passed, failed):");
        for (ip, (n, pass)) in sources {
            let ip = ip.map_or("unknown".to_string(), |ip| ip.to_string());
            let _ = writeln!(out, "  {ip:<40} {n:>8} {pass:>8} {:>8}", n - pass);
        }
        let _ = writeln!(out, "by reporter (reports, messages):");
        for (org, (reports, n)) in &self.reporters {
            let _ = writeln!(out, "  {org:<40} {reports:>8} {n:>8}");
        }
        if self.other + self.unreadable + self.repeated > 0 {
            let _ = writeln!(
                out,
                "skipped: {} repeated reports, {} messages not reports about {domain}, {} reports that could not be read",
                self.repeated, self.other, self.unreadable
            );
        }
        out
    }
}

/// `sealmail dmarc report`.
pub fn report(config: &Config, domain: &str, mailbox: &str, folder: &str) -> Result<()> {
    let session = super::mailbox::unlock(config, mailbox)?;
    let mut summary = Summary::default();
    smol::block_on(async {
        session.settle().await?;
        super::export::for_each_message(&session, folder, |m| {
            if let Some((_, body)) = m.sections.first() {
                summary.add_message(domain, body);
            }
            Ok(())
        })
        .await
    })?;
    outln!("{}", summary.render(domain).trim_end());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(org: &str, id: &str, domain: &str, rows: &[(&str, u32, &str, &str, &str)]) -> String {
        let mut records = String::new();
        for (ip, count, disposition, dkim, spf) in rows {
            records.push_str(&format!(
                "<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated><disposition>{disposition}</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row><identifiers><header_from>{domain}</header_from></identifiers><auth_results><spf><domain>{domain}</domain><result>pass</result></spf></auth_results></record>"
            ));
        }
        format!(
            "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>{org}</org_name><email>r@{org}</email><report_id>{id}</report_id><date_range><begin>1764460800</begin><end>1764547199</end></date_range></report_metadata><policy_published><domain>{domain}</domain><p>reject</p></policy_published>{records}</feedback>"
        )
    }

    fn mail(attachment: &str) -> Vec<u8> {
        format!("From: r@x\r\nSubject: Report\r\nMIME-Version: 1.0\r\nContent-Type: text/xml\r\n\r\n{attachment}").into_bytes()
    }

    #[test]
    fn reports_add_up_by_source_and_reporter() {
        let mut s = Summary::default();
        let a = xml(
            "google.com",
            "1",
            "example.org",
            &[
                ("192.0.2.1", 10, "none", "pass", "pass"),
                ("203.0.113.5", 3, "reject", "fail", "fail"),
            ],
        );
        s.add_message("example.org", &mail(&a));
        // The same report again counts once.
        s.add_message("example.org", &mail(&a));
        let b = xml(
            "yahoo.com",
            "7",
            "example.org",
            &[("192.0.2.1", 5, "quarantine", "fail", "pass")],
        );
        s.add_message("example.org", &mail(&b));
        s.add_message(
            "example.org",
            &mail(&xml("x.net", "9", "other.example", &[])),
        );
        s.add_message(
            "example.org",
            b"From: a@b\r\nSubject: hello\r\n\r\nnot a report\r\n",
        );
        assert_eq!((s.reports, s.messages, s.passed), (2, 18, 15));
        assert_eq!((s.quarantined, s.rejected), (5, 3));
        assert_eq!(s.sources[&Some("192.0.2.1".parse().unwrap())], (15, 15));
        assert_eq!(s.reporters["google.com"], (1, 13));
        assert_eq!((s.other, s.repeated), (2, 1));
        let text = s.render("example.org");
        assert!(text.starts_with("DMARC aggregate reports for example.org: 2 reports from 2 organisations, 2025-11-30 to 2025-11-30"), "{text}");
        assert!(
            text.contains("messages: 18 (passed 15, failed 3; quarantined 5, rejected 3)"),
            "{text}"
        );
    }
}
