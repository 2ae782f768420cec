//! Certificates from an ACME server (RFC 8555): one for the server's own
//! name (and `acme.names`), one per domain for its `mta-sts.`,
//! `autoconfig.`, `autodiscover.` and `openpgpkey.` names, so that a domain whose DNS is
//! not ready yet holds back no other certificate.
//!
//! The client is instant-acme, which runs on tokio's types: every call
//! into it is wrapped in `async_compat::Compat`, as the DNS resolver is,
//! so no tokio runtime serves connections. Challenges are answered by
//! this process's own listeners: tls-alpn-01 (RFC 8737) through
//! [`Certificates::set_challenge`], http-01 through [`Tokens`].
//!
//! Imports `config`, `net::tls`, `proto::x509`, `util`. Invariants: the
//! account key and every certificate key are written 0600 under
//! `tls/acme/` (a directory of mode 0700) before they are used; a
//! certificate is installed only after its chain and key are durable and
//! parse together, so a failed order leaves the one in force alone; an
//! order's challenges are withdrawn when it ends, whatever the outcome.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_compat::Compat;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};

use crate::config::{Acme as Settings, Challenge};
use crate::net::tls::Certificates;

/// ACME's http-01 tokens being answered, with their key authorizations.
#[derive(Debug, Default)]
pub struct Tokens(Mutex<HashMap<String, String>>);

impl Tokens {
    pub fn get(&self, token: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    fn put(&self, token: &str, authorization: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_string(), authorization.to_string());
    }

    fn remove(&self, token: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }
}

/// The names of one certificate; the first names its files.
pub type Group = Vec<String>;

/// The certificates this server asks for: its name (and `acme.names`),
/// then each domain's names.
pub fn groups(hostname: &str, extra: &[String], domains: &[String]) -> Vec<Group> {
    let mut own = vec![hostname.to_string()];
    own.extend(extra.iter().filter(|n| *n != hostname).cloned());
    let mut out = vec![own];
    for d in domains {
        out.push(
            ["mta-sts", "autoconfig", "autodiscover", "openpgpkey"]
                .iter()
                .map(|p| format!("{p}.{d}"))
                .collect(),
        );
    }
    out
}

/// The ACME client and what it serves challenges and certificates with.
pub struct Client {
    pub settings: Settings,
    /// `tls/acme/` of the data directory.
    pub dir: PathBuf,
    pub hostname: String,
    pub certificates: Arc<Certificates>,
    pub tokens: Arc<Tokens>,
    /// The domains served now (read at each round, off the executor).
    pub domains: Arc<dyn Fn() -> Vec<String> + Send + Sync>,
}

/// What one round did for one certificate.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// In force and not due for renewal.
    Current,
    /// Issued and installed.
    Issued,
    /// The order failed; the certificate in force (if any) stays.
    Failed(String),
}

impl Client {
    /// The chain and key files of a certificate.
    fn files(&self, group: &Group) -> (PathBuf, PathBuf, PathBuf) {
        let stem = group.first().map_or("default", String::as_str);
        (
            self.dir.join(format!("{stem}.pem")),
            self.dir.join(format!("{stem}.key")),
            self.dir.join(format!("{stem}.names")),
        )
    }

    /// Installs every certificate issued before whose names are still
    /// wanted (at start, before the listeners run).
    pub fn load_issued(&self) {
        for group in self.groups(&(self.domains)()) {
            let (chain, key, names) = self.files(&group);
            let (Ok(c), Ok(k), Ok(n)) = (
                std::fs::read(&chain),
                std::fs::read(&key),
                std::fs::read_to_string(&names),
            ) else {
                continue;
            };
            // The names the certificate was issued for, which may be
            // fewer than the group wants now (it is then due at once).
            let issued: Vec<String> = n.lines().map(str::to_string).collect();
            match self.certificates.install_issued(&issued, &c, &k) {
                Ok(()) => tracing::info!(names = %issued.join(" "), "ACME certificate loaded"),
                Err(e) => {
                    tracing::warn!(file = %chain.display(), error = %e, "ACME certificate unusable; a new one will be ordered")
                }
            }
        }
    }

    fn groups(&self, domains: &[String]) -> Vec<Group> {
        groups(&self.hostname, &self.settings.names, domains)
    }

    /// Whether `group` needs a new certificate: none yet, other names, or
    /// expiring within `renew_before`.
    fn due(&self, group: &Group, now: i64) -> bool {
        let (chain, _, names) = self.files(group);
        let Ok(text) = std::fs::read_to_string(&names) else {
            return true;
        };
        if text.lines().collect::<Vec<_>>() != group.iter().map(String::as_str).collect::<Vec<_>>()
        {
            return true;
        }
        let Some(expiry) = std::fs::read(&chain)
            .ok()
            .and_then(|pem| first_expiry(&pem))
        else {
            return true;
        };
        expiry - now <= self.settings.renew_before.as_secs() as i64
    }

    /// One round: orders each certificate that is due.
    pub async fn round(&self) -> Vec<(Group, Outcome)> {
        let now = crate::util::now_unix();
        let mut out = Vec::new();
        let mut account = None;
        let read = self.domains.clone();
        let domains = blocking::unblock(move || read()).await;
        for group in self.groups(&domains) {
            if !self.due(&group, now) {
                out.push((group, Outcome::Current));
                continue;
            }
            if account.is_none() {
                match Compat::new(self.account()).await {
                    Ok(a) => account = Some(a),
                    Err(e) => {
                        out.push((group, Outcome::Failed(format!("ACME account: {e}"))));
                        continue;
                    }
                }
            }
            let Some(acct) = &account else { continue };
            let outcome = match Compat::new(self.order(acct, &group)).await {
                Ok(()) => Outcome::Issued,
                Err(e) => Outcome::Failed(e),
            };
            out.push((group, outcome));
        }
        out
    }

    /// The account whose key is kept in `account.json`, made (and kept)
    /// on first use.
    async fn account(&self) -> Result<Account, String> {
        let file = self.dir.join("account.json");
        // A builder is used up by what it builds.
        let builder = || match &self.settings.ca_file {
            Some(ca) => Account::builder_with_root(ca).map_err(|e| e.to_string()),
            None => Account::builder().map_err(|e| e.to_string()),
        };
        if let Ok(text) = std::fs::read_to_string(&file) {
            let credentials: AccountCredentials =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            match builder()?.from_credentials(credentials).await {
                Ok(a) => return Ok(a),
                Err(e) => {
                    tracing::warn!(error = %e, "the ACME account in account.json was refused; making a new one")
                }
            }
        }
        let contact: Vec<&str> = self.settings.contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.clone(),
                None,
            )
            .await
            .map_err(|e| {
                format!(
                    "cannot make an ACME account at {}: {e}",
                    self.settings.directory
                )
            })?;
        let text = serde_json::to_vec(&credentials).map_err(|e| e.to_string())?;
        crate::util::write_durable(&file, &text, 0o600)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        tracing::info!(directory = %self.settings.directory, "ACME account made");
        Ok(account)
    }

    /// Orders a certificate for `group`, answering its challenges, and
    /// installs it. Challenges are withdrawn whatever happens.
    async fn order(&self, account: &Account, group: &Group) -> Result<(), String> {
        let mut answered = Vec::new();
        let result = self.order_inner(account, group, &mut answered).await;
        for (name, token) in answered {
            self.certificates.set_challenge(&name, None);
            if let Some(t) = token {
                self.tokens.remove(&t);
            }
        }
        result
    }

    async fn order_inner(
        &self,
        account: &Account,
        group: &Group,
        answered: &mut Vec<(String, Option<String>)>,
    ) -> Result<(), String> {
        let identifiers: Vec<Identifier> =
            group.iter().map(|n| Identifier::Dns(n.clone())).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("new order: {e}"))?;
        let kind = match self.settings.challenge {
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
            Challenge::Http01 => ChallengeType::Http01,
        };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| format!("authorization: {e}"))?;
            if authz.status == AuthorizationStatus::Valid {
                continue;
            }
            let name = match &authz.identifier().identifier {
                Identifier::Dns(n) => n.clone(),
                other => return Err(format!("unexpected identifier {other:?}")),
            };
            let mut challenge = authz.challenge(kind.clone()).ok_or_else(|| {
                format!("the ACME server offers no {kind:?} challenge for {name}")
            })?;
            let key_auth = challenge.key_authorization();
            match self.settings.challenge {
                Challenge::TlsAlpn01 => {
                    let cert = alpn_certificate(&name, key_auth.digest().as_ref())?;
                    self.certificates.set_challenge(&name, Some(cert));
                    answered.push((name, None));
                }
                Challenge::Http01 => {
                    self.tokens.put(&challenge.token, key_auth.as_str());
                    answered.push((name, Some(challenge.token.clone())));
                }
            }
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge ready: {e}"))?;
        }
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(Duration::from_secs(90));
        let status = order
            .poll_ready(&retries)
            .await
            .map_err(|e| format!("order: {e}"))?;
        if status != OrderStatus::Ready {
            let detail = order
                .state()
                .error
                .as_ref()
                .and_then(|p| p.detail.clone())
                .unwrap_or_default();
            return Err(format!("order is {status:?}, not ready: {detail}"));
        }
        let key_pem = order
            .finalize()
            .await
            .map_err(|e| format!("finalize: {e}"))?;
        let chain = order
            .poll_certificate(&retries)
            .await
            .map_err(|e| format!("certificate: {e}"))?;
        self.keep(group, chain.as_bytes(), key_pem.as_bytes())
    }

    /// Writes the chain, key and names durably, then serves them.
    fn keep(&self, group: &Group, chain: &[u8], key: &[u8]) -> Result<(), String> {
        // Parsed before anything is written: a bad answer changes nothing.
        crate::net::tls::certified_key_pem(chain, key).map_err(|e| e.to_string())?;
        let (chain_file, key_file, names_file) = self.files(group);
        let names = group.join("\n");
        for (file, bytes) in [
            (&key_file, key),
            (&chain_file, chain),
            (&names_file, names.as_bytes()),
        ] {
            crate::util::write_durable(file, bytes, 0o600)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
        self.certificates
            .install_issued(group, chain, key)
            .map_err(|e| e.to_string())
    }
}

/// The expiry of the first certificate of a PEM chain.
fn first_expiry(pem: &[u8]) -> Option<i64> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let first = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    crate::proto::x509::not_after(first.as_ref())
}

/// RFC 8737 §3: a self-signed certificate for `name` carrying the SHA-256
/// of the key authorization in a critical acmeIdentifier extension.
fn alpn_certificate(name: &str, digest: &[u8]) -> Result<rustls::sign::CertifiedKey, String> {
    let fail = |e: rcgen::Error| format!("challenge certificate: {e}");
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(fail)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    crate::net::tls::certified_key_der(cert.der().to_vec(), key.serialize_der())
        .map_err(|e| e.to_string())
}

/// Runs rounds until `stop`: at start, then every `every`; after a round
/// with failures, sooner (from a minute, doubling up to `every`).
pub async fn run(client: Arc<Client>, every: Duration, stop: async_channel::Receiver<()>) {
    if let Err(e) = crate::util::create_private_dir(&client.dir) {
        tracing::error!(dir = %client.dir.display(), error = %e, "ACME is off: cannot make its directory");
        return;
    }
    let mut retry = Duration::from_secs(60).min(every);
    loop {
        let outcomes = client.round().await;
        let mut failed = false;
        for (group, outcome) in outcomes {
            let names = group.join(" ");
            match outcome {
                Outcome::Current => tracing::debug!(%names, "ACME certificate current"),
                Outcome::Issued => tracing::info!(%names, "ACME certificate issued and in use"),
                Outcome::Failed(e) => {
                    failed = true;
                    tracing::error!(%names, error = %e, "ACME order failed; the certificate in use stays");
                }
            }
        }
        let wait = if failed {
            let w = retry;
            retry = (retry * 2).min(every);
            w
        } else {
            retry = Duration::from_secs(60).min(every);
            every
        };
        if !crate::util::wait_or_stop(wait, &stop).await {
            return;
        }
    }
}
