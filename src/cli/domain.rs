//! `sealmail domain …`: the domains of the control plane, the DNS records
//! each needs (`domain dns`) and whether they are published so
//! (`domain check`).
//!
//! Imports `app`, `config`, `dns`, `proto::mta_sts`, `smtp::dkim`,
//! `store::{control, keys}`. Invariants: `domain dns` and `domain check`
//! read one list of expected records ([`Expected::records`]), so what is
//! checked is what is printed; a command that destroys mail says so and
//! needs an explicit flag.

use std::fmt;

use anyhow::{Result, bail};
use clap::Subcommand;

use crate::app;
use crate::config::Config;
use crate::dns::{Dns, Kind, LookupError};
use crate::store::keys;

#[derive(Subcommand)]
pub enum DomainCmd {
    /// Add a domain sealmail receives and sends mail for (with new DKIM
    /// keys; `domain dns` shows the records to publish), and its required
    /// postmaster@ and abuse@ addresses.
    Add {
        name: String,
        /// Forward postmaster@ and abuse@ of the domain to this address.
        /// Without it, postmaster@ gets a mailbox (its password is printed
        /// once) and abuse@ forwards to it.
        #[arg(long)]
        postmaster: Option<String>,
    },
    /// Print the DNS records to publish for a domain: MX, SPF, DKIM, DMARC,
    /// MTA-STS, TLS-RPT, client SRV records and the autoconfig names.
    Dns { name: String },
    /// Look the domain's records up (through `dns.nameservers`) and say,
    /// for each, whether it is published as `domain dns` prints it.
    Check { name: String },
    /// List domains and how many aliases each has.
    List,
    /// Remove a domain that has no aliases left but its postmaster@ and
    /// abuse@, which go with it.
    Remove {
        name: String,
        /// Confirm that postmaster@'s mailbox, if it has one, is destroyed.
        #[arg(long)]
        purge: bool,
    },
}

pub fn domain(config: &Config, cmd: DomainCmd) -> Result<()> {
    let mut control = app::open_control(config)?;
    match cmd {
        DomainCmd::Add { name, postmaster } => {
            if let Some(target) = &postmaster {
                crate::store::control::normalize_address(target)?;
            }
            let name = control.add_domain(&name)?;
            let keys =
                crate::smtp::dkim::generate(crate::util::now_unix()).map_err(anyhow::Error::msg)?;
            control.add_dkim_keys(&name, &keys)?;
            outln!("added {name}");
            let (pm, abuse) = (format!("postmaster@{name}"), format!("abuse@{name}"));
            match postmaster {
                Some(target) => {
                    for a in [&pm, &abuse] {
                        control.add_alias(a, None, config.kdf)?;
                        control.set_forward(a, std::slice::from_ref(&target))?;
                    }
                    outln!("{pm} and {abuse} forward to {target}");
                }
                None => {
                    let password = keys::generate_password()?;
                    control.add_alias(&pm, Some(password.as_str()), config.kdf)?;
                    control.add_alias(&abuse, None, config.kdf)?;
                    control.set_forward(&abuse, std::slice::from_ref(&pm))?;
                    outln!("{pm} has a mailbox; {abuse} forwards to it");
                    outln!(
                        "password of {pm} (shown once, not stored): {}",
                        password.as_str()
                    );
                }
            }
            outln!("publish its DNS records: sealmail domain dns {name}");
        }
        DomainCmd::Dns { name } => {
            let name = crate::store::control::normalize_domain(&name)?;
            if !control.has_domain(&name)? {
                bail!("domain {name} is not configured (add it with `sealmail domain add {name}`)");
            }
            let mut keys = control.dkim_keys(&name)?;
            if keys.is_empty() {
                keys = crate::smtp::dkim::generate(crate::util::now_unix())
                    .map_err(anyhow::Error::msg)?;
                control.add_dkim_keys(&name, &keys)?;
                eprintln!("{name} had no DKIM keys; created them");
            }
            out!("{}", dns_records(&name, &Expected::new(config, &keys)));
        }
        DomainCmd::List => {
            for (name, aliases) in control.list_domains()? {
                outln!("{name}\t{aliases} aliases");
            }
        }
        DomainCmd::Remove { name, purge } => {
            let name = crate::store::control::normalize_domain(&name)?;
            let going = control.list_aliases(Some(&name))?;
            let mailboxes: Vec<_> = going
                .iter()
                .filter(|a| crate::store::control::is_required(&a.address) && a.mailbox)
                .collect();
            if !purge
                && let Some(a) = mailboxes.first()
                && going
                    .iter()
                    .all(|a| crate::store::control::is_required(&a.address))
            {
                bail!(
                    "removing {name} destroys the mailbox of {} for good; add --purge to confirm",
                    a.address
                );
            }
            control.remove_domain(&name)?;
            for a in mailboxes {
                super::admin::remove_mailbox_files(config, &a.mailbox_id)?;
            }
            outln!("removed {name}");
        }
        DomainCmd::Check { name } => {
            let name = crate::store::control::normalize_domain(&name)?;
            if !control.has_domain(&name)? {
                bail!("domain {name} is not configured (add it with `sealmail domain add {name}`)");
            }
            let keys = control.dkim_keys(&name)?;
            drop(control);
            let expected = Expected::new(config, &keys);
            let dns = crate::dns::Dns::new(&config.nameservers).map_err(anyhow::Error::msg)?;
            let report = smol::block_on(check(&dns, &name, &expected));
            let mut bad = 0;
            for line in &report {
                if line.state != State::Ok {
                    bad += 1;
                }
                outln!("{line}");
            }
            if bad > 0 {
                bail!(
                    "{bad} of {} records of {name} are not as `sealmail domain dns {name}` prints them",
                    report.len()
                );
            }
            outln!("all {} records of {name} are published", report.len());
        }
    }
    Ok(())
}

/// A TXT value as quoted strings of at most 255 octets (RFC 1035 §3.3).
fn txt_strings(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a domain's records should say.
pub struct Expected {
    hostname: String,
    /// (selector, TXT value) of each DKIM key.
    dkim: Vec<(String, String)>,
    /// The MTA-STS policy's id.
    sts_id: String,
    /// Ports of submission (TLS, STARTTLS), IMAP (TLS, STARTTLS), POP3
    /// (TLS, STARTTLS).
    ports: [u16; 6],
    /// ManageSieve's port, when it listens.
    managesieve: Option<u16>,
}

/// One record as `domain dns` prints it and `domain check` looks for it.
struct Record {
    /// Why it is there (a zone-file comment).
    why: &'static str,
    name: String,
    kind: Kind,
    /// The value in presentation form (`domain check` compares this).
    value: String,
    /// TXT: a record of this prefix stands for this record (one SPF, one
    /// DMARC record per name), so another value is "different", not
    /// "missing".
    prefix: Option<&'static str>,
}

impl Expected {
    pub fn new(config: &Config, keys: &[crate::store::DkimKey]) -> Expected {
        let l = &config.listen;
        Expected {
            hostname: config.hostname.clone(),
            dkim: keys
                .iter()
                .map(|k| (k.selector.clone(), crate::smtp::dkim::record(k)))
                .collect(),
            sts_id: app::mta_sts_policy(config).id(),
            ports: [
                l.submissions.port(),
                l.submission.port(),
                l.imaps.port(),
                l.imap.port(),
                l.pop3s.port(),
                l.pop3.port(),
            ],
            managesieve: l.managesieve.map(|a| a.port()),
        }
    }

    /// Every record `domain` needs, in the order `domain dns` prints them.
    fn records(&self, domain: &str) -> Vec<Record> {
        let host = &self.hostname;
        let rec = |why, name: String, kind, value: String, prefix| Record {
            why,
            name,
            kind,
            value,
            prefix,
        };
        let mut out = vec![
            rec(
                "Mail for the domain goes to this server (which needs an A/AAAA record too).",
                domain.to_string(),
                Kind::Mx,
                format!("10 {host}"),
                None,
            ),
            rec(
                "Only the MX hosts send for the domain (SPF).",
                domain.to_string(),
                Kind::Txt,
                "v=spf1 mx -all".into(),
                Some("v=spf1"),
            ),
        ];
        for (selector, value) in &self.dkim {
            out.push(rec(
                "A DKIM public key of the signatures this server adds.",
                format!("{selector}._domainkey.{domain}"),
                Kind::Txt,
                value.clone(),
                Some("v=DKIM1"),
            ));
        }
        out.push(rec(
            "DMARC: mail failing SPF and DKIM alignment is quarantined; reports to postmaster.",
            format!("_dmarc.{domain}"),
            Kind::Txt,
            format!("v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"),
            Some("v=DMARC1"),
        ));
        out.push(rec(
            "TLS reporting (RFC 8460): senders report TLS failures to postmaster.",
            format!("_smtp._tls.{domain}"),
            Kind::Txt,
            format!("v=TLSRPTv1; rua=mailto:postmaster@{domain}"),
            Some("v=TLSRPTv1"),
        ));
        out.push(rec(
            "MTA-STS (RFC 8461): this server serves the policy at https://mta-sts.DOMAIN/ once it has a valid certificate ([acme]); the id follows the policy.",
            format!("_mta-sts.{domain}"),
            Kind::Txt,
            format!("v=STSv1; id={}", self.sts_id),
            Some("v=STSv1"),
        ));
        for (label, why) in [
            (
                "mta-sts",
                "The MTA-STS policy's host: this server (a CNAME to it, or its addresses).",
            ),
            (
                "autoconfig",
                "Thunderbird's autoconfiguration host: this server.",
            ),
            ("autodiscover", "Outlook's Autodiscover host: this server."),
            (
                "openpgpkey",
                "The Web Key Directory's host (OpenPGP keys owners published): this server.",
            ),
        ] {
            out.push(rec(
                why,
                format!("{label}.{domain}"),
                Kind::A,
                host.clone(),
                None,
            ));
        }
        let [submissions, submission, imaps, imap, pop3s, pop3] = self.ports;
        for (service, priority, port) in [
            ("submissions", 0, submissions),
            ("submission", 1, submission),
            ("imaps", 0, imaps),
            ("imap", 1, imap),
            ("pop3s", 10, pop3s),
            ("pop3", 11, pop3),
        ] {
            out.push(rec(
                "Where mail clients find the server (RFC 6186, RFC 8314).",
                format!("_{service}._tcp.{domain}"),
                Kind::Srv,
                format!("{priority} 1 {port} {host}"),
                None,
            ));
        }
        if let Some(port) = self.managesieve {
            out.push(rec(
                "Where Sieve clients find ManageSieve (RFC 5804 §1.8).",
                format!("_sieve._tcp.{domain}"),
                Kind::Srv,
                format!("0 1 {port} {host}"),
                None,
            ));
        }
        out.push(rec(
            "Where Outlook finds Autodiscover.",
            format!("_autodiscover._tcp.{domain}"),
            Kind::Srv,
            format!("0 1 443 {host}"),
            None,
        ));
        out
    }
}

/// The zone-file lines a domain needs, with what each one is for.
pub fn dns_records(domain: &str, expected: &Expected) -> String {
    let mut out = format!("; DNS records for {domain}. Publish them in its zone.\n");
    let mut last_why = "";
    for r in expected.records(domain) {
        if r.why != last_why {
            out.push_str(&format!("; {}\n", r.why));
            last_why = r.why;
        }
        let value = match r.kind {
            Kind::Txt => format!("TXT {}", txt_strings(&r.value)),
            Kind::Mx => format!("MX {}.", r.value),
            Kind::Srv => format!("SRV {}.", r.value),
            Kind::A | Kind::Aaaa => format!("CNAME {}.", r.value),
        };
        out.push_str(&format!("{}.\tIN {value}\n", r.name));
    }
    out
}

/// A record's state in DNS.
#[derive(Debug, PartialEq, Eq)]
pub enum State {
    Ok,
    Missing,
    /// Published with another value (what was found).
    Different(String),
    /// The lookup failed (the resolver's answer).
    Unknown(String),
}

/// One line of `domain check`.
pub struct Checked {
    pub state: State,
    pub name: String,
    pub kind: Kind,
    pub expected: String,
}

impl fmt::Display for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Txt => "TXT",
            Kind::Mx => "MX",
            Kind::Srv => "SRV",
            Kind::A | Kind::Aaaa => "address",
        };
        let head = format!("{kind} {}", self.name);
        match &self.state {
            State::Ok => write!(f, "OK         {head}"),
            State::Missing => write!(f, "MISSING    {head}: publish {:?}", self.expected),
            State::Different(found) => write!(
                f,
                "DIFFERENT  {head}: published {found:?}, should be {:?}",
                self.expected
            ),
            State::Unknown(e) => write!(f, "UNKNOWN    {head}: cannot look it up ({e})"),
        }
    }
}

/// Looks each expected record of `domain` up.
pub async fn check(dns: &Dns, domain: &str, expected: &Expected) -> Vec<Checked> {
    let mut out = Vec::new();
    for r in expected.records(domain) {
        let state = match r.kind {
            Kind::A | Kind::Aaaa => same_addresses(dns, &r.name, &r.value).await,
            kind => match dns.records(&r.name, kind).await {
                Ok(found) => compare(&found, &r),
                Err(LookupError::NotFound) => State::Missing,
                Err(LookupError::Temporary(e)) => State::Unknown(e),
            },
        };
        out.push(Checked {
            state,
            name: r.name,
            kind: r.kind,
            expected: r.value,
        });
    }
    out
}

/// Whether `found` holds the record: exactly (DKIM keys compared by their
/// `p=`), or another value of its prefix (different).
fn compare(found: &[String], r: &Record) -> State {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_lowercase()
    };
    if found.iter().any(|f| norm(f) == norm(&r.value)) {
        return State::Ok;
    }
    let key = |s: &str| {
        s.split(';')
            .find_map(|t| t.trim().strip_prefix("p=").map(str::to_string))
    };
    if r.value.starts_with("v=DKIM1")
        && found
            .iter()
            .any(|f| key(f).is_some() && key(f) == key(&r.value))
    {
        return State::Ok;
    }
    let similar: Vec<&String> = match r.prefix {
        Some(p) => found
            .iter()
            .filter(|f| f.to_ascii_lowercase().starts_with(&p.to_ascii_lowercase()))
            .collect(),
        None => found.iter().collect(),
    };
    if similar.is_empty() {
        State::Missing
    } else {
        State::Different(
            similar
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
        )
    }
}

/// Whether `name` reaches the addresses `host` has (by CNAME or by the
/// same A/AAAA records).
async fn same_addresses(dns: &Dns, name: &str, host: &str) -> State {
    let mut theirs = Vec::new();
    let mut ours = Vec::new();
    for kind in [Kind::A, Kind::Aaaa] {
        match dns.records(name, kind).await {
            Ok(a) => theirs.extend(a),
            Err(LookupError::NotFound) => {}
            Err(LookupError::Temporary(e)) => return State::Unknown(e),
        }
        if let Ok(a) = dns.records(host, kind).await {
            ours.extend(a);
        }
    }
    if theirs.is_empty() {
        State::Missing
    } else if ours.is_empty() {
        State::Unknown(format!("{host} has no address"))
    } else if theirs.iter().any(|a| ours.contains(a)) {
        State::Ok
    } else {
        State::Different(theirs.join(" "))
    }
}
