//! Configuration in two phases: the raw TOML (`raw`) is validated into an
//! immutable [`Config`] that subsystems receive in an `Arc`.
//!
//! Imports `store` for plain values (`KdfParams`, mailbox and MIME limits)
//! and its domain-name check. Invariants: a `Config` exists only if every value was checked; an
//! error names the file, the key and what is wrong with it; the template in
//! `assets/sealmail.toml` documents every key with its default.

mod policy;
mod raw;
mod validate;
mod web;

pub use policy::{BackupPolicy, MAX_KEEP_DAYS, QueuePolicy, SendLimits};
pub use web::{Acme, Challenge, LETS_ENCRYPT, Web};

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::keys::KdfParams;
use crate::store::mailbox::Limits;
use crate::store::mime::Limits as MimeLimits;

/// The commented template `sealmail init` writes.
pub const TEMPLATE: &str = include_str!("../../assets/sealmail.toml");

/// The file name inside the data directory.
pub const FILE_NAME: &str = "sealmail.toml";

#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.problem)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Addresses of the protocol listeners.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub smtp: SocketAddr,
    pub submission: SocketAddr,
    pub submissions: SocketAddr,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    pub pop3: SocketAddr,
    pub pop3s: SocketAddr,
    /// HTTP: ACME's http-01 challenges, autoconfiguration, and a redirect
    /// to HTTPS for the rest (`None`: "off").
    pub http: Option<SocketAddr>,
    /// HTTPS: MTA-STS policies, autoconfiguration, ACME's tls-alpn-01.
    pub https: Option<SocketAddr>,
    /// Prometheus metrics (loopback unless told otherwise).
    pub metrics: Option<SocketAddr>,
    /// ManageSieve (RFC 5804): owners' Sieve scripts.
    pub managesieve: Option<SocketAddr>,
}

impl Listen {
    /// Standard ports on every address.
    pub fn production() -> Listen {
        let a = |p: u16| SocketAddr::from(([0, 0, 0, 0], p));
        Listen {
            smtp: a(25),
            submission: a(587),
            submissions: a(465),
            imap: a(143),
            imaps: a(993),
            pop3: a(110),
            pop3s: a(995),
            http: Some(a(80)),
            https: Some(a(443)),
            metrics: Some(SocketAddr::from(([127, 0, 0, 1], 9465))),
            managesieve: Some(a(4190)),
        }
    }

    /// Loopback high ports for `--dev`.
    pub fn dev() -> Listen {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        Listen {
            smtp: a(2525),
            submission: a(2587),
            submissions: a(2465),
            imap: a(2143),
            imaps: a(2993),
            pop3: a(2110),
            pop3s: a(2995),
            http: Some(a(2080)),
            https: Some(a(2443)),
            metrics: Some(a(2946)),
            managesieve: Some(a(2190)),
        }
    }
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub file: PathBuf,
    pub data_dir: PathBuf,
    pub hostname: String,
    pub dev: bool,
    pub listen: Listen,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// `[web]`: what the HTTPS listener serves.
    pub web: Web,
    /// `[acme]`: automatic certificates (`None`: off).
    pub acme: Option<Acme>,
    pub key_ttl: Duration,
    pub kdf: KdfParams,
    pub limits: Limits,
    /// Concurrent connections one client address may hold, all protocols.
    pub connections_per_ip: usize,
    /// Password checks (argon2) running at once, all protocols.
    pub password_checks: usize,
    /// Memory for messages being received and processed, all protocols
    /// (`util::MemoryBudget`).
    pub message_memory: u64,
    /// Disk for the encrypted spill files of messages being received
    /// (`util::spill::Spills`), all protocols.
    pub message_disk: u64,
    /// SQLite's memory, all databases: page caches of open mailboxes
    /// first (`store::db::limit_memory`).
    pub database_memory: u64,
    /// Mailbox files open at once beyond those in use: past it, the least
    /// recently used file no session needs is closed (its key stays cached).
    pub open_mailboxes: usize,
    /// Connections the server holds at once, all protocols (each protocol
    /// at most three quarters of them); `None`: derived from the
    /// open-files limit at start.
    pub max_connections: Option<usize>,
    pub mx: Mx,
    /// DNS servers for SPF/DKIM/DMARC and MX lookups; empty means
    /// /etc/resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    pub relay: Relay,
    /// Where `sealmail backup` keeps backups when no S3 store is set.
    pub backup_dir: PathBuf,
    /// `backup.allow_same_disk`: backups may share the data's filesystem.
    pub backup_same_disk: bool,
    /// An S3-compatible store for backups, which wins over `backup_dir`.
    pub backup_s3: Option<S3>,
    /// Scheduled backups; `None` when `backup.schedule` is off.
    pub backup_policy: Option<BackupPolicy>,
    /// Daily sending limits of the submission ports.
    pub send_limits: SendLimits,
    /// `submission.hide_client_address`: the Received header of submitted
    /// mail leaves out the client's address (where its owner sends from).
    pub hide_client_address: bool,
    /// Retries and body keeping of the outbound queue.
    pub queue: QueuePolicy,
    pub cluster: Cluster,
    /// `[log]`: format, file, address redaction (changeable by reload).
    pub log: crate::util::log::Settings,
}

/// What this node does with its peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything in one process (the default).
    Standalone,
    /// Everything, and secondaries' storage requests over the link.
    Primary,
    /// The protocol front ends; storage on the primary.
    Secondary,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "standalone" => Some(Role::Standalone),
            "primary" => Some(Role::Primary),
            "secondary" => Some(Role::Secondary),
            _ => None,
        }
    }
}

/// `[cluster]`: several nodes (docs/cluster.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub role: Role,
    /// Where a primary listens for its secondaries (wss).
    pub listen: SocketAddr,
    /// How long a secondary waits for the primary's reply to a request,
    /// a lost link's return included.
    pub timeout: Duration,
    /// A secondary's primary (`serve --primary`), over the one in
    /// `cluster.join`.
    pub primary: Option<String>,
}

/// An S3-compatible bucket. Credentials left out of the file come from
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` when the target is opened.
#[derive(Clone, PartialEq, Eq)]
pub struct S3 {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`, …
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Object keys start with this (no leading or trailing `/`).
    pub prefix: String,
    pub path_style: bool,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

impl fmt::Debug for S3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .finish_non_exhaustive()
    }
}

/// How mail leaves this server (forwards now, the outbound queue later).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relay {
    /// The port of MX hosts (Postfix's `smtp_tcp_port`).
    pub port: u16,
    /// Every message goes through this host instead of MX lookups.
    pub smarthost: Option<HostPort>,
    /// The login at the smarthost (AUTH PLAIN, only over TLS). The password
    /// comes from the file or `SEALMAIL_SMARTHOST_PASSWORD`.
    pub smarthost_login: Option<Login>,
    /// Per-domain next hops, which win over the smarthost and MX records.
    pub routes: std::collections::BTreeMap<String, HostPort>,
    /// Per-domain TLS levels (Postfix's `smtp_tls_policy_maps`); they win
    /// over MTA-STS. Other domains get `may`, or what MTA-STS says.
    pub tls_policy: std::collections::BTreeMap<String, TlsLevel>,
    /// Honour the MTA-STS policies of destinations (RFC 8461).
    pub mta_sts: bool,
    /// Use DANE (RFC 7672) for MX hosts with DNSSEC-authenticated TLSA
    /// records, as told by a validating resolver on loopback.
    pub dane: bool,
    /// Send daily TLS reports (RFC 8460) to MTA-STS domains that ask for
    /// them.
    pub tls_reports: bool,
    /// A PEM bundle of CAs trusted besides the public web roots, for the
    /// certificates of MX hosts, MTA-STS policy servers and webhooks.
    pub ca_file: Option<PathBuf>,
    /// The port MTA-STS policies are fetched from (443).
    pub https_port: u16,
}

/// The TLS a destination's policy asks for (Postfix's security levels).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsLevel {
    /// STARTTLS when offered, any certificate; plaintext when it fails.
    May,
    /// TLS required, any certificate.
    Encrypt,
    /// TLS required with a certificate valid for the MX host name.
    Verify,
    /// DANE where the host has DNSSEC-authenticated TLSA records, `may`
    /// elsewhere (what MX delivery does when `relay.dane` is on).
    Dane,
    /// DANE required: without authenticated TLSA records, mail waits.
    DaneOnly,
}

/// A user name and password for another server. Debug output hides the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A next hop: a host name or IP address, and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// `host`, `host:port`, `1.2.3.4:25`, `[::1]:25`; the port defaults
    /// to `default_port`.
    pub fn parse(s: &str, default_port: u16) -> Option<HostPort> {
        let s = s.trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Some(HostPort {
                host: a.ip().to_string(),
                port: a.port(),
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse().ok()?),
            _ => (s, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return None;
        }
        if host.parse::<std::net::IpAddr>().is_err()
            && crate::store::control::normalize_domain(host).is_err()
        {
            return None;
        }
        Some(HostPort {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// Inbound mail checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mx {
    /// Run SPF, DKIM and DMARC on inbound mail.
    pub check_senders: bool,
    /// Refuse mail failing DMARC under `p=reject` (550 5.7.1).
    pub dmarc_reject: bool,
    /// Count DMARC results of mail received and send the sender domains
    /// that ask (`rua`) a daily aggregate report (RFC 7489 §7.2).
    pub dmarc_reports: bool,
    /// The name this server's Authentication-Results carry (RFC 8601
    /// §2.5); incoming results fields naming it are removed. The host
    /// name unless set.
    pub authserv_id: String,
    /// Refuse mail with attachments that run when opened (550 5.7.1).
    pub refuse_executables: bool,
    /// Recipients (addresses or whole domains, lowercase) who take such
    /// attachments anyway; a message is let through only when all its
    /// recipients are listed.
    pub allow_executables: Vec<String>,
    /// Virus scanning through ClamAV's clamd (`[mx.clamd]`); `None` when
    /// no socket is set.
    pub clamd: Option<Clamd>,
    /// Spam filtering through rspamd (`[mx.rspamd]`); `None` when no
    /// address is set.
    pub rspamd: Option<Rspamd>,
    /// Messages (MAIL FROM) and recipients (RCPT TO) one client address
    /// (an IPv6 /64) may send per minute, 450 4.7.1 past them; 0 is no
    /// limit. Clients in `rate_exempt` are not counted.
    pub client_messages_per_minute: u32,
    pub client_recipients_per_minute: u32,
    pub rate_exempt: Vec<crate::util::Network>,
    /// DNS blocklist zones (RFC 5782) the MX asks about each client;
    /// recipients other than postmaster@ are refused for a listed one.
    pub dnsbl: Vec<String>,
    /// Time to send one command line (also caps the TLS handshake).
    pub command_timeout: Duration,
    /// Time for the whole of DATA or one BDAT chunk.
    pub data_timeout: Duration,
    /// How long the MX waits before its greeting; a client that talks in
    /// it gets 554 and is closed (Postfix's postscreen "pregreet" test).
    pub greet_pause: Duration,
    /// Recipients one transaction may name, MX and submission (452 4.5.3
    /// past it).
    pub max_recipients: usize,
}

/// `[mx.clamd]`: where clamd listens and what happens without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clamd {
    pub socket: ClamdSocket,
    /// Unreachable, too slow or unable to scan: defer (451, the default)
    /// or deliver with a header saying the message was not scanned.
    pub deliver_unscanned: bool,
    /// For the whole scan, connecting included.
    pub timeout: Duration,
    /// Recipients (addresses or whole domains, lowercase) whose mail is
    /// not scanned; a message is let through unscanned only when all its
    /// recipients are listed.
    pub exempt: Vec<String>,
}

/// `[mx.rspamd]`: where rspamd's normal worker listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rspamd {
    pub address: SocketAddr,
    /// For the whole check; past it the message is delivered with a header
    /// saying it was not checked.
    pub timeout: Duration,
    /// Recipients (addresses or whole domains, lowercase) whose mail is
    /// not checked, when all of a message's recipients are listed.
    pub exempt: Vec<String>,
}

/// clamd's `LocalSocket` or `TCPSocket`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClamdSocket {
    Unix(PathBuf),
    Tcp(std::net::SocketAddr),
}

/// Where backups go when `init` is not told (the Debian place for them;
/// the package makes it the service's).
pub const DEFAULT_BACKUP_DIR: &str = "/var/backups/sealmail";

/// Renders the template for a new data directory, with its backup
/// directory (`[backup] dir`, as written) and whether that may share the
/// data's disk.
pub fn render_template(
    hostname: &str,
    dev: bool,
    backup_dir: &str,
    allow_same_disk: bool,
) -> String {
    let l = if dev {
        Listen::dev()
    } else {
        Listen::production()
    };
    TEMPLATE
        .replace("{{hostname}}", hostname)
        .replace("{{dev}}", if dev { "true" } else { "false" })
        .replace(
            "{{backup_dir}}",
            &toml::Value::String(backup_dir.to_string()).to_string(),
        )
        .replace(
            "{{allow_same_disk}}",
            if allow_same_disk { "true" } else { "false" },
        )
        .replace("{{smtp}}", &l.smtp.to_string())
        .replace("{{submission}}", &l.submission.to_string())
        .replace("{{submissions}}", &l.submissions.to_string())
        .replace("{{imap}}", &l.imap.to_string())
        .replace("{{imaps}}", &l.imaps.to_string())
        .replace("{{pop3}}", &l.pop3.to_string())
        .replace("{{pop3s}}", &l.pop3s.to_string())
        .replace("{{http}}", &addr_or_off(l.http))
        .replace("{{https}}", &addr_or_off(l.https))
        .replace("{{metrics}}", &addr_or_off(l.metrics))
        .replace("{{managesieve}}", &addr_or_off(l.managesieve))
        .replace(
            "{{cluster}}",
            if dev {
                "127.0.0.1:2744"
            } else {
                "0.0.0.0:7443"
            },
        )
}

/// An optional listener's address as `sealmail.toml` writes it.
fn addr_or_off(a: Option<SocketAddr>) -> String {
    a.map_or_else(|| "off".to_string(), |a| a.to_string())
}

impl Config {
    /// Reads and validates `<data>/sealmail.toml`.
    pub fn load(data_dir: &Path) -> Result<Config, ConfigError> {
        let file = data_dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&file).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            problem: match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("cannot read: {e} (run `sealmail init` first)")
                }
                std::io::ErrorKind::PermissionDenied => format!(
                    "cannot read: {e} (run sealmail as the data directory's owner, e.g. sudo -u sealmail sealmail ...)"
                ),
                _ => format!("cannot read: {e}"),
            },
        })?;
        Config::parse(&text, &file, data_dir)
    }

    /// Parses and validates TOML text; `file` is only for messages.
    pub fn parse(text: &str, file: &Path, data_dir: &Path) -> Result<Config, ConfigError> {
        let raw: raw::Raw = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            problem: e.to_string().trim_end().replace('\n', " "),
        })?;
        validate::Validator { file }.validate(raw, data_dir)
    }
}

/// `512`, `512K`, `50M`, `2G`, `2GB`, `2GiB`, `1 T` (any case, bytes as
/// `B`): every unit is a power of 1024, as in Dovecot's and Postfix's
/// settings, so `2GB` and `2GiB` are the same size.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// A size as people read it: `2 GiB (2147483648 bytes)`.
pub fn describe_size(bytes: u64) -> String {
    let units = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    match units.iter().find(|(shift, _)| bytes >= 1u64 << shift) {
        Some((shift, name)) => {
            let value = bytes as f64 / (1u64 << shift) as f64;
            let shown = format!("{value:.2}");
            let shown = shown.trim_end_matches('0').trim_end_matches('.');
            format!("{shown} {name} ({bytes} bytes)")
        }
        None => format!("{bytes} bytes"),
    }
}

/// The dotted names of the settings whose values differ between two
/// texts of `sealmail.toml` (a text that does not parse counts as empty).
pub fn changed_keys(before: &str, after: &str) -> Vec<String> {
    fn walk(prefix: &str, a: Option<&toml::Value>, b: Option<&toml::Value>, out: &mut Vec<String>) {
        match (a, b) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&name, x.get(k), y.get(k), out);
                }
            }
            (a, b) if a != b => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let parse = |t: &str| t.parse::<toml::Table>().map(toml::Value::Table).ok();
    let empty = toml::Value::Table(toml::Table::new());
    let (a, b) = (parse(before), parse(after));
    let mut out = Vec::new();
    walk(
        "",
        Some(a.as_ref().unwrap_or(&empty)),
        Some(b.as_ref().unwrap_or(&empty)),
        &mut out,
    );
    out
}

/// `30s`, `15m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let mut chars = s.chars();
    let unit = match chars.next_back()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    let n: u64 = chars.as_str().trim().parse().ok()?;
    Some(Duration::from_secs(n.checked_mul(unit)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/d/sealmail.toml"), Path::new("/d"))
    }

    #[test]
    fn template_validates_in_both_modes() {
        let dev = parse(&render_template("mail.example.org", true, "backups", true)).unwrap();
        assert!(dev.dev);
        assert_eq!(dev.listen, Listen::dev());
        assert_eq!(dev.backup_dir, Path::new("/d/backups"));
        assert!(dev.backup_same_disk);
        let prod = parse(&render_template(
            "mail.example.org",
            false,
            "/srv/backup \"disk\"/sealmail",
            false,
        ))
        .unwrap();
        assert_eq!(prod.backup_dir, Path::new("/srv/backup \"disk\"/sealmail"));
        assert!(!prod.backup_same_disk);
        assert_eq!(prod.listen, Listen::production());
        assert_eq!(prod.limits.max_message_bytes, 50 << 20);
        assert_eq!(prod.key_ttl, Duration::from_secs(900));
        assert_eq!(prod.tls_cert, Path::new("/d/tls/cert.pem"));
        assert_eq!(prod.database_memory, 256 << 20);
        assert_eq!(prod.open_mailboxes, 1000);
    }

    #[test]
    fn clamd_socket_policy_and_exemptions() {
        assert_eq!(
            parse(&render_template("m.example.org", true, "b", true))
                .unwrap()
                .mx
                .clamd,
            None
        );
        let c =
            parse("[mx.clamd]\nsocket = \"/run/clamav/clamd.ctl\"\nexempt = [\"Lab.Example\"]\n")
                .unwrap()
                .mx
                .clamd
                .unwrap();
        assert_eq!(c.socket, ClamdSocket::Unix("/run/clamav/clamd.ctl".into()));
        assert!(!c.deliver_unscanned);
        assert_eq!(c.timeout, Duration::from_secs(60));
        assert_eq!(c.exempt, vec!["lab.example".to_string()]);
        let c = parse("[mx.clamd]\nsocket = \"127.0.0.1:3310\"\nwhen_unreachable = \"deliver\"\n")
            .unwrap()
            .mx
            .clamd
            .unwrap();
        assert_eq!(
            c.socket,
            ClamdSocket::Tcp("127.0.0.1:3310".parse().unwrap())
        );
        assert!(c.deliver_unscanned);
        for (text, key) in [
            ("socket = \"clamd.ctl\"", "mx.clamd.socket"),
            (
                "socket = \"/s\"\nwhen_unreachable = \"maybe\"",
                "mx.clamd.when_unreachable",
            ),
            ("socket = \"/s\"\ntimeout = \"0s\"", "mx.clamd.timeout"),
            (
                "socket = \"/s\"\nexempt = [\"not a domain!\"]",
                "mx.clamd.exempt",
            ),
        ] {
            let e = parse(&format!("[mx.clamd]\n{text}\n")).unwrap_err();
            assert_eq!(e.key, key, "{text}");
        }
    }

    #[test]
    fn tls_policy_levels() {
        let r = parse("[relay]\nca_file = \"ca.pem\"\n[relay.tls_policy]\n\"Bank.Example\" = \"verify\"\n\"b.example\" = \"encrypt\"\n")
            .unwrap()
            .relay;
        assert_eq!(r.tls_policy.get("bank.example"), Some(&TlsLevel::Verify));
        assert_eq!(r.tls_policy.get("b.example"), Some(&TlsLevel::Encrypt));
        assert_eq!(r.ca_file.as_deref(), Some(Path::new("/d/ca.pem")));
        assert!(r.mta_sts);
        assert_eq!(r.https_port, 443);
        let r =
            parse("[relay.tls_policy]\n\"x.example\" = \"dane-only\"\n\"y.example\" = \"dane\"\n")
                .unwrap()
                .relay;
        assert_eq!(r.tls_policy.get("x.example"), Some(&TlsLevel::DaneOnly));
        assert_eq!(r.tls_policy.get("y.example"), Some(&TlsLevel::Dane));
        for (level, says) in [("strict", "expected"), ("danish", "dane-only")] {
            let e = parse(&format!(
                "[relay.tls_policy]\n\"x.example\" = \"{level}\"\n"
            ))
            .unwrap_err();
            assert_eq!(e.key, "relay.tls_policy.x.example");
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn errors_name_file_key_and_problem() {
        let e = parse("[keys]\ncache_ttl = \"soon\"\n").unwrap_err();
        assert_eq!(e.key, "keys.cache_ttl");
        assert!(
            e.to_string()
                .starts_with("/d/sealmail.toml: keys.cache_ttl: \"soon\" is not a duration")
        );
        let e = parse("[server]\ndev = true\n[listen]\nimap = \"0.0.0.0:143\"\n").unwrap_err();
        assert_eq!(e.key, "listen.imap");
        let e = parse("[limits]\nmime_max_depth = 0\n").unwrap_err();
        assert_eq!(e.key, "limits.mime_max_depth");
        let e = parse("[limits]\ndatabase_memory = \"8M\"\n").unwrap_err();
        assert_eq!(e.key, "limits.database_memory");
        let e = parse("[limits]\nopen_mailboxes = 0\n").unwrap_err();
        assert_eq!(e.key, "limits.open_mailboxes");
        let e = parse("[server]\nhostnme = \"x\"\n").unwrap_err();
        assert!(e.problem.contains("hostnme"), "{e}");
        let e = parse("[server\n").unwrap_err();
        assert!(e.to_string().starts_with("/d/sealmail.toml: "), "{e}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("19M"), Some(19 << 20));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("x"), None);
        for two_gib in ["2G", "2g", "2GB", "2GiB", "2 gib", " 2G "] {
            assert_eq!(parse_size(two_gib), Some(2 << 30), "{two_gib}");
        }
        assert_eq!(parse_size("512B"), Some(512));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        for bad in [
            "",
            "G",
            "2X",
            "2GBs",
            "-2G",
            "2.5G",
            "99999999999999999999G",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(parse_size("99999999T"), None, "overflow");
        assert_eq!(describe_size(2 << 30), "2 GiB (2147483648 bytes)");
        assert_eq!(describe_size(1536 << 10), "1.5 MiB (1572864 bytes)");
        assert_eq!(describe_size(100), "100 bytes");
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(
            changed_keys(
                "[server]\nhostname = \"a\"\n[imap]\nx = 1\n",
                "[server]\nhostname = \"b\"\n[imap]\nx = 1\n[pop3]\ny = 2\n"
            ),
            ["pop3", "server.hostname"]
        );
        assert!(changed_keys("a = 1", "a = 1").is_empty());
        assert_eq!(parse_duration("2"), None);
    }

    #[test]
    fn relay_hops() {
        let c = parse(
            "[relay]\nport = 2526\nsmarthost = \"smtp.example.net:587\"\n[relay.routes]\n\"Example.ORG\" = \"[::1]:25\"\n",
        )
        .unwrap();
        assert_eq!(c.relay.port, 2526);
        assert_eq!(
            c.relay.smarthost,
            Some(HostPort {
                host: "smtp.example.net".into(),
                port: 587
            })
        );
        assert_eq!(
            c.relay.routes["example.org"],
            HostPort {
                host: "::1".into(),
                port: 25
            }
        );
        assert_eq!(HostPort::parse("mx.example.net", 25).unwrap().port, 25);
        assert!(HostPort::parse("bad host:25", 25).is_none());
        let e = parse("[relay]\nsmarthost = \"a b\"\n").unwrap_err();
        assert_eq!(e.key, "relay.smarthost");
        let e = parse("[dns]\nnameservers = [\"x\"]\n").unwrap_err();
        assert_eq!(e.key, "dns.nameservers");
    }

    #[test]
    fn smarthost_login() {
        let c = parse(
            "[relay]\nsmarthost = \"smtp.example.net:587\"\nsmarthost_user = \"me\"\nsmarthost_password = \"s3cret\"\n",
        )
        .unwrap();
        let login = c.relay.smarthost_login.unwrap();
        assert_eq!(
            (login.user.as_str(), login.password.as_str()),
            ("me", "s3cret")
        );
        assert!(!format!("{login:?}").contains("s3cret"));
        let e =
            parse("[relay]\nsmarthost_user = \"me\"\nsmarthost_password = \"x\"\n").unwrap_err();
        assert_eq!(e.key, "relay.smarthost_user");
        assert_eq!(parse("[relay]\n").unwrap().relay.smarthost_login, None);
    }
}
