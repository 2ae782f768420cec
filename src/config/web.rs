//! `[web]` and `[acme]`: what the HTTP(S) listener serves (the MTA-STS
//! policy of every domain) and the certificates it gets by itself (ACME,
//! RFC 8555).
//!
//! Imports `proto::mta_sts` and this module's siblings. Invariants: ACME
//! is off unless `acme.enabled` is set; a policy mode is one RFC 8461
//! knows; extra names are valid host names, lowercase.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;
use super::raw;
use super::validate::Validator;
use crate::proto::mta_sts::Mode;

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// `[web]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Web {
    /// The MTA-STS policy every domain served here publishes.
    pub mta_sts: Mode,
    /// Its `max_age` in seconds.
    pub mta_sts_max_age: u64,
}

/// How the ACME server checks that this server answers for a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// RFC 8737: a special certificate on port 443.
    TlsAlpn01,
    /// RFC 8555 §8.3: a token at `http://NAME/.well-known/acme-challenge/`.
    Http01,
}

/// `[acme]`: certificates from an ACME server for the server's name and
/// each domain's `mta-sts.`, `autoconfig.`, `autodiscover.` and `openpgpkey.`
/// names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acme {
    /// The directory URL (Let's Encrypt by default).
    pub directory: String,
    /// `mailto:` URLs the ACME server may write to about the account.
    pub contact: Vec<String>,
    /// Names asked for beyond those derived from the domains.
    pub names: Vec<String>,
    pub challenge: Challenge,
    /// The root that signs the directory's HTTPS certificate, trusted
    /// instead of the system's (a private or test ACME server); without
    /// it the system's roots (Debian's ca-certificates) are used.
    pub ca_file: Option<PathBuf>,
    /// A certificate is renewed this long before it expires.
    pub renew_before: Duration,
    /// How often what needs a certificate is looked at (12 hours).
    pub check_every: Duration,
}

impl Validator<'_> {
    /// An address, or `"off"` (or empty) for a listener that is not run.
    pub(super) fn optional_addr(
        &self,
        key: &str,
        v: Option<String>,
        default: Option<std::net::SocketAddr>,
        dev: bool,
    ) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        match (v.as_deref().map(str::trim), default) {
            (Some("off" | ""), _) | (None, None) => Ok(None),
            // `addr` reads the default only when no value was written.
            (_, d) => self
                .addr(
                    key,
                    v,
                    d.unwrap_or(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                    dev,
                )
                .map(Some),
        }
    }

    pub(super) fn web(&self, w: raw::Web) -> Result<Web, ConfigError> {
        let mta_sts = match w.mta_sts.as_deref().unwrap_or("enforce") {
            "enforce" => Mode::Enforce,
            "testing" => Mode::Testing,
            "none" => Mode::None,
            other => {
                return self.err(
                    "web.mta_sts",
                    format!("{other:?}: expected \"enforce\", \"testing\" or \"none\""),
                );
            }
        };
        let max_age = self.duration(
            "web.mta_sts_max_age",
            w.mta_sts_max_age.as_deref().unwrap_or("7d"),
        )?;
        if max_age.as_secs() > crate::proto::mta_sts::MAX_AGE {
            return self.err("web.mta_sts_max_age", "RFC 8461 allows at most a year");
        }
        Ok(Web {
            mta_sts,
            mta_sts_max_age: max_age.as_secs(),
        })
    }

    pub(super) fn acme(&self, a: raw::Acme, data_dir: &Path) -> Result<Option<Acme>, ConfigError> {
        if !a.enabled.unwrap_or(false) {
            return Ok(None);
        }
        let directory = a.directory.unwrap_or_else(|| LETS_ENCRYPT.into());
        if !directory.starts_with("https://") {
            return self.err(
                "acme.directory",
                format!("{directory:?}: an ACME directory is an https:// URL"),
            );
        }
        let mut contact = Vec::new();
        for c in a.contact.unwrap_or_default() {
            let url = if c.starts_with("mailto:") {
                c
            } else {
                format!("mailto:{c}")
            };
            if !url.contains('@') {
                return self.err(
                    "acme.contact",
                    format!("{url:?} is not an address such as \"postmaster@example.org\""),
                );
            }
            contact.push(url);
        }
        let mut names = Vec::new();
        for n in a.names.unwrap_or_default() {
            match crate::store::control::normalize_domain(&n) {
                Ok(n) => names.push(n),
                Err(_) => return self.err("acme.names", format!("{n:?} is not a host name")),
            }
        }
        let challenge = match a.challenge.as_deref().unwrap_or("tls-alpn-01") {
            "tls-alpn-01" => Challenge::TlsAlpn01,
            "http-01" => Challenge::Http01,
            other => {
                return self.err(
                    "acme.challenge",
                    format!("{other:?}: expected \"tls-alpn-01\" or \"http-01\""),
                );
            }
        };
        let renew_before = self.duration(
            "acme.renew_before",
            a.renew_before.as_deref().unwrap_or("30d"),
        )?;
        let check_every = self.duration(
            "acme.check_every",
            a.check_every.as_deref().unwrap_or("12h"),
        )?;
        if check_every < Duration::from_secs(1) {
            return self.err("acme.check_every", "must be at least 1s");
        }
        Ok(Some(Acme {
            check_every,
            directory,
            contact,
            names,
            challenge,
            ca_file: a.ca_file.map(|f| data_dir.join(f)),
            renew_before,
        }))
    }
}
