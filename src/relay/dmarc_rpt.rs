//! DMARC aggregate reports about mail this server received (RFC 7489
//! §7.2), sent only when `mx.dmarc_reports` is on: each message whose
//! From domain publishes a DMARC record with `rua` is counted under its
//! UTC day and that domain, by source address and results; each day's
//! counts become one report per domain (mail-auth's XML, gzipped), mailed
//! by `app`'s daily task to the `rua` addresses that may receive it.
//!
//! Imports the sibling `daily`. Invariants: nothing of a message is kept
//! but its source address, From and MAIL FROM domains and the check
//! results; at most `MAX_DOMAINS` domains a day and `MAX_ROWS` distinct
//! rows a domain (past them messages still count in the last row's
//! kind, never in memory without bound); `rua` addresses of another
//! domain are used only when that domain agrees (RFC 7489 §7.1, checked
//! when sending).

use std::io;
use std::path::Path;

use mail_auth::report::{PolicyPublished, Record, Report};
use serde::{Deserialize, Serialize};

use super::daily::Daily;

/// The file the counts are kept in, in the data directory.
pub const FILE_NAME: &str = "dmarc-reports.json";

const MAX_DOMAINS: usize = 10_000;
const MAX_ROWS: usize = 1_000;

/// One domain's counts for one day.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counts {
    /// The policy as published, the last time a message was checked.
    pub policy: Option<PolicyPublished>,
    /// `mailto:` addresses of its `rua`.
    pub rua: Vec<String>,
    /// Distinct results (each with a count of 0) and how many messages
    /// had them.
    pub rows: Vec<(Record, u32)>,
}

/// The counts of every day not yet reported.
pub struct DmarcResults(Daily<Counts>);

impl DmarcResults {
    pub fn in_memory() -> DmarcResults {
        DmarcResults(Daily::in_memory(MAX_DOMAINS))
    }

    /// The counts saved in `data_dir` (`FILE_NAME`).
    pub fn load(data_dir: &Path) -> DmarcResults {
        DmarcResults(Daily::load(data_dir.join(FILE_NAME), MAX_DOMAINS))
    }

    /// Counts one message about `domain`, today.
    pub fn record(&self, domain: &str, policy: PolicyPublished, rua: Vec<String>, row: Record) {
        self.record_on(&super::daily::today(), domain, policy, rua, row);
    }

    pub fn record_on(
        &self,
        day: &str,
        domain: &str,
        policy: PolicyPublished,
        rua: Vec<String>,
        mut row: Record,
    ) {
        row.row.count = 0;
        self.0.update(day, domain, |c| {
            c.policy = Some(policy);
            c.rua = rua;
            if let Some((_, n)) = c.rows.iter_mut().find(|(r, _)| *r == row) {
                *n = n.saturating_add(1);
            } else if c.rows.len() < MAX_ROWS {
                c.rows.push((row, 1));
            } else if let Some((_, n)) = c.rows.last_mut() {
                *n = n.saturating_add(1);
            }
        });
    }

    pub fn save(&self) -> io::Result<()> {
        self.0.save()
    }

    pub fn is_dirty(&self) -> bool {
        self.0.is_dirty()
    }

    pub fn take_before(&self, today: &str) -> Vec<(String, String, Counts)> {
        self.0.take_before(today)
    }
}

/// The aggregate report of `domain`'s counts on `day`, from `org` (the
/// host name) whose contact is `email`.
pub fn report(day: &str, domain: &str, counts: &Counts, org: &str, email: &str) -> Report {
    let begin = crate::util::parse_iso8601(day).unwrap_or(0).max(0) as u64;
    let mut report = Report::new()
        .with_version(1.0)
        .with_org_name(org)
        .with_email(email)
        .with_report_id(format!("{day}.{domain}@{org}"))
        .with_date_range_begin(begin)
        .with_date_range_end(begin + 86_399);
    if let Some(p) = &counts.policy {
        report = report.with_policy_published(p.clone());
    }
    for (row, n) in &counts.rows {
        let mut row = row.clone();
        row.row.count = *n;
        report = report.with_record(row);
    }
    report
}

/// The `mailto:` addresses of a `rua` list.
pub fn mail_addresses(rua: &[mail_auth::dmarc::URI]) -> Vec<String> {
    rua.iter()
        .filter_map(|u| {
            let uri = u.uri();
            let rest = uri.strip_prefix("mailto:").unwrap_or(uri);
            let address = rest.split('!').next().unwrap_or_default().trim();
            address.contains('@').then(|| address.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_with_the_same_results_share_a_row() {
        let r = DmarcResults::in_memory();
        let policy = PolicyPublished::default();
        let row = |ip: &str| {
            Record::new()
                .with_source_ip(ip.parse().unwrap())
                .with_header_from("example.net")
        };
        for ip in ["192.0.2.1", "192.0.2.1", "192.0.2.2"] {
            r.record_on(
                "2026-11-30",
                "example.net",
                policy.clone(),
                vec!["d@example.net".into()],
                row(ip),
            );
        }
        let taken = r.take_before("2026-12-01");
        let (day, domain, counts) = &taken[0];
        assert_eq!(counts.rows.len(), 2);
        assert_eq!(counts.rows[0].1, 2);
        let xml = report(
            day,
            domain,
            counts,
            "mail.example.org",
            "postmaster@example.org",
        )
        .to_xml();
        assert!(
            xml.contains("<count>2</count>") && xml.contains("192.0.2.2"),
            "{xml}"
        );
        assert!(xml.contains("<begin>1795996800</begin>"), "{xml}");
    }
}
