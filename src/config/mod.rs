//! Configuration in two phases: the raw TOML (`raw`) is validated into an
//! immutable [`Config`] that subsystems receive in an `Arc`.
//!
//! Imports `store::{keys::KdfParams, mailbox::Limits}` (plain values) and
//! `util`. Invariants: a `Config` exists only if every value was checked; an
//! error names the file, the key and what is wrong with it; the template in
//! `assets/sealmail.toml` documents every key with its default.

mod policy;
mod raw;

pub use policy::{BackupPolicy, MAX_KEEP_DAYS, QueuePolicy, SendLimits};

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
    pub key_ttl: Duration,
    pub kdf: KdfParams,
    pub limits: Limits,
    /// Concurrent connections one client address may hold, all protocols.
    pub connections_per_ip: usize,
    pub mx: Mx,
    /// DNS servers for SPF/DKIM/DMARC and MX lookups; empty means
    /// /etc/resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    pub relay: Relay,
    /// Where `sealmail backup` keeps backups when no S3 store is set.
    pub backup_dir: PathBuf,
    /// An S3-compatible store for backups, which wins over `backup_dir`.
    pub backup_s3: Option<S3>,
    /// Scheduled backups; `None` when `backup.schedule` is off.
    pub backup_policy: Option<BackupPolicy>,
    /// Daily sending limits of the submission ports.
    pub send_limits: SendLimits,
    /// Retries and body keeping of the outbound queue.
    pub queue: QueuePolicy,
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
    /// Time to send one command line (also caps the TLS handshake).
    pub command_timeout: Duration,
    /// Time for the whole of DATA or one BDAT chunk.
    pub data_timeout: Duration,
}

/// Renders the template for a new data directory.
pub fn render_template(hostname: &str, dev: bool) -> String {
    let l = if dev {
        Listen::dev()
    } else {
        Listen::production()
    };
    TEMPLATE
        .replace("{{hostname}}", hostname)
        .replace("{{dev}}", if dev { "true" } else { "false" })
        .replace("{{smtp}}", &l.smtp.to_string())
        .replace("{{submission}}", &l.submission.to_string())
        .replace("{{submissions}}", &l.submissions.to_string())
        .replace("{{imap}}", &l.imap.to_string())
        .replace("{{imaps}}", &l.imaps.to_string())
        .replace("{{pop3}}", &l.pop3.to_string())
        .replace("{{pop3s}}", &l.pop3s.to_string())
}

impl Config {
    /// Reads and validates `<data>/sealmail.toml`.
    pub fn load(data_dir: &Path) -> Result<Config, ConfigError> {
        let file = data_dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&file).map_err(|e| ConfigError {
            file: file.clone(),
            key: String::new(),
            problem: format!("cannot read: {e} (run `sealmail init` first)"),
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
        Validator { file }.validate(raw, data_dir)
    }
}

struct Validator<'a> {
    file: &'a Path,
}

impl Validator<'_> {
    fn err<T>(&self, key: &str, problem: impl Into<String>) -> Result<T, ConfigError> {
        Err(ConfigError {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            problem: problem.into(),
        })
    }

    fn validate(&self, raw: raw::Raw, data_dir: &Path) -> Result<Config, ConfigError> {
        let server = raw.server.unwrap_or_default();
        let dev = server.dev.unwrap_or(false);
        let hostname = server.hostname.unwrap_or_else(|| "localhost".into());
        if crate::store::control::normalize_domain(&hostname).is_err() {
            return self.err(
                "server.hostname",
                format!("{hostname:?} is not a valid host name"),
            );
        }
        let defaults = if dev {
            Listen::dev()
        } else {
            Listen::production()
        };
        let l = raw.listen.unwrap_or_default();
        let listen = Listen {
            smtp: self.addr("listen.smtp", l.smtp, defaults.smtp, dev)?,
            submission: self.addr("listen.submission", l.submission, defaults.submission, dev)?,
            submissions: self.addr(
                "listen.submissions",
                l.submissions,
                defaults.submissions,
                dev,
            )?,
            imap: self.addr("listen.imap", l.imap, defaults.imap, dev)?,
            imaps: self.addr("listen.imaps", l.imaps, defaults.imaps, dev)?,
            pop3: self.addr("listen.pop3", l.pop3, defaults.pop3, dev)?,
            pop3s: self.addr("listen.pop3s", l.pop3s, defaults.pop3s, dev)?,
        };
        let tls = raw.tls.unwrap_or_default();
        let k = raw.keys.unwrap_or_default();
        let key_ttl = self.duration("keys.cache_ttl", k.cache_ttl.as_deref().unwrap_or("15m"))?;
        let memory = self.size(
            "keys.argon2_memory",
            k.argon2_memory.as_deref().unwrap_or("19M"),
        )?;
        let kdf = KdfParams {
            memory_kib: self.range(
                "keys.argon2_memory",
                (memory / 1024) as i64,
                8,
                4 * 1024 * 1024,
            )? as u32,
            iterations: self.range(
                "keys.argon2_iterations",
                k.argon2_iterations.unwrap_or(2),
                1,
                100,
            )? as u32,
            parallelism: self.range(
                "keys.argon2_parallelism",
                k.argon2_parallelism.unwrap_or(1),
                1,
                16,
            )? as u32,
        };
        let lim = raw.limits.unwrap_or_default();
        let max_message_bytes = self.size(
            "limits.max_message_size",
            lim.max_message_size.as_deref().unwrap_or("50M"),
        )?;
        if !(1024..=1024 * 1024 * 1024).contains(&max_message_bytes) {
            return self.err("limits.max_message_size", "must be between 1K and 1G");
        }
        let limits = Limits {
            max_message_bytes,
            mime: MimeLimits {
                max_depth: self.range(
                    "limits.mime_max_depth",
                    lim.mime_max_depth.unwrap_or(32),
                    1,
                    128,
                )? as usize,
                max_parts: self.range(
                    "limits.mime_max_parts",
                    lim.mime_max_parts.unwrap_or(1000),
                    1,
                    100_000,
                )? as usize,
            },
        };
        let connections_per_ip = self.range(
            "limits.connections_per_ip",
            lim.connections_per_ip.unwrap_or(50),
            1,
            100_000,
        )? as usize;
        let mx = raw.mx.unwrap_or_default();
        let mut nameservers = Vec::new();
        for n in raw.dns.unwrap_or_default().nameservers.unwrap_or_default() {
            let addr = n.parse::<SocketAddr>().or_else(|_| {
                n.parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 53))
            });
            match addr {
                Ok(a) => nameservers.push(a),
                Err(_) => {
                    return self.err(
                        "dns.nameservers",
                        format!("{n:?} is not an IP address or address:port"),
                    );
                }
            }
        }
        let mx = Mx {
            check_senders: mx.check_senders.unwrap_or(true),
            dmarc_reject: mx.dmarc_reject.unwrap_or(true),
            command_timeout: self.duration(
                "mx.command_timeout",
                mx.command_timeout.as_deref().unwrap_or("5m"),
            )?,
            data_timeout: self.duration(
                "mx.data_timeout",
                mx.data_timeout.as_deref().unwrap_or("10m"),
            )?,
        };
        if mx.command_timeout.is_zero() || mx.data_timeout.is_zero() {
            return self.err("mx.command_timeout", "timeouts must be longer than 0s");
        }
        let relay = self.relay(raw.relay.unwrap_or_default())?;
        let backup = raw.backup.unwrap_or_default();
        let backup_dir = data_dir.join(backup.dir.unwrap_or_else(|| "backups".into()));
        let backup_policy = if backup.schedule.unwrap_or(true) {
            let interval = self.duration(
                "backup.interval",
                backup.interval.as_deref().unwrap_or("24h"),
            )?;
            if interval.is_zero() {
                return self.err("backup.interval", "must be longer than 0s");
            }
            Some(BackupPolicy {
                interval,
                keep_daily: self.range(
                    "backup.keep_daily",
                    backup.keep_daily.unwrap_or(7),
                    0,
                    3650,
                )? as usize,
                keep_weekly: self.range(
                    "backup.keep_weekly",
                    backup.keep_weekly.unwrap_or(4),
                    0,
                    520,
                )? as usize,
                concurrency: self.range(
                    "backup.concurrency",
                    backup.concurrency.unwrap_or(2),
                    1,
                    64,
                )? as usize,
            })
        } else {
            None
        };
        let backup_s3 = match backup.s3 {
            None => None,
            Some(s3) => {
                let Some(bucket) = s3.bucket.filter(|b| !b.trim().is_empty()) else {
                    return self.err(
                        "backup.s3.bucket",
                        "is required when [backup.s3] is present",
                    );
                };
                let endpoint = s3.endpoint.unwrap_or_default();
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    return self.err(
                        "backup.s3.endpoint",
                        format!("{endpoint:?} is not an http:// or https:// URL"),
                    );
                }
                Some(S3 {
                    endpoint: endpoint.trim_end_matches('/').to_string(),
                    region: s3.region.unwrap_or_else(|| "us-east-1".into()),
                    bucket,
                    prefix: s3.prefix.unwrap_or_default().trim_matches('/').to_string(),
                    path_style: s3.path_style.unwrap_or(false),
                    access_key: s3.access_key,
                    secret_key: s3.secret_key,
                })
            }
        };
        let sub = raw.submission.unwrap_or_default();
        let send_limits = SendLimits {
            per_alias: self.range(
                "submission.max_per_alias_per_day",
                sub.max_per_alias_per_day.unwrap_or(1000),
                0,
                100_000_000,
            )? as u64,
            per_domain: self.range(
                "submission.max_per_domain_per_day",
                sub.max_per_domain_per_day.unwrap_or(10_000),
                0,
                100_000_000,
            )? as u64,
        };
        let q = raw.queue.unwrap_or_default();
        let mut queue = QueuePolicy {
            first_retry: self.duration(
                "queue.first_retry",
                q.first_retry.as_deref().unwrap_or("5m"),
            )?,
            max_retry: self.duration("queue.max_retry", q.max_retry.as_deref().unwrap_or("3h"))?,
            lifetime: self.duration("queue.lifetime", q.lifetime.as_deref().unwrap_or("5d"))?,
            keep_body_days: Default::default(),
        };
        if queue.first_retry.is_zero() || queue.max_retry < queue.first_retry {
            return self.err(
                "queue.max_retry",
                "retries need first_retry > 0s and max_retry >= first_retry",
            );
        }
        if queue.lifetime.is_zero() {
            return self.err("queue.lifetime", "must be longer than 0s");
        }
        for (domain, days) in q.keep_body_days.unwrap_or_default() {
            let Ok(d) = crate::store::control::normalize_domain(&domain) else {
                return self.err(
                    "queue.keep_body_days",
                    format!("{domain:?} is not a domain"),
                );
            };
            let days = self.range("queue.keep_body_days", days, 0, i64::from(MAX_KEEP_DAYS))?;
            queue.keep_body_days.insert(d, days as u32);
        }
        Ok(Config {
            send_limits,
            queue,
            mx,
            nameservers,
            relay,
            backup_dir,
            backup_s3,
            backup_policy,
            connections_per_ip,
            file: self.file.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            hostname,
            dev,
            listen,
            tls_cert: data_dir.join(tls.cert.unwrap_or_else(|| "tls/cert.pem".into())),
            tls_key: data_dir.join(tls.key.unwrap_or_else(|| "tls/key.pem".into())),
            key_ttl,
            kdf,
            limits,
        })
    }

    fn addr(
        &self,
        key: &str,
        v: Option<String>,
        default: SocketAddr,
        dev: bool,
    ) -> Result<SocketAddr, ConfigError> {
        let a = match v {
            None => default,
            Some(s) => match s.parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => return self.err(
                    key,
                    format!(
                        "{s:?} is not an address:port such as \"127.0.0.1:2143\" or \"[::]:993\""
                    ),
                ),
            },
        };
        if dev && !a.ip().is_loopback() {
            return self.err(
                key,
                format!("{a} is not a loopback address, and server.dev is on"),
            );
        }
        Ok(a)
    }

    fn relay(&self, r: raw::Relay) -> Result<Relay, ConfigError> {
        let port = self.range("relay.port", r.port.unwrap_or(25), 1, 65535)? as u16;
        let hop = |key: &str, s: &str| {
            HostPort::parse(s, 25).ok_or(()).or_else(|()| {
                self.err(
                    key,
                    format!("{s:?} is not a host or host:port such as \"smtp.example.net:587\""),
                )
            })
        };
        let smarthost = match r.smarthost.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(hop("relay.smarthost", s)?),
        };
        let user = r.smarthost_user.filter(|u| !u.trim().is_empty());
        let password = r.smarthost_password.filter(|p| !p.is_empty()).or_else(|| {
            std::env::var("SEALMAIL_SMARTHOST_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
        });
        let smarthost_login = match (user, password) {
            (None, _) => None,
            (Some(_), _) if smarthost.is_none() => {
                return self.err("relay.smarthost_user", "is set but relay.smarthost is not");
            }
            (Some(_), None) => {
                return self.err(
                    "relay.smarthost_password",
                    "is needed with relay.smarthost_user (or set SEALMAIL_SMARTHOST_PASSWORD)",
                );
            }
            (Some(user), Some(password)) => Some(Login {
                user: user.trim().to_string(),
                password,
            }),
        };
        let mut routes = std::collections::BTreeMap::new();
        for (domain, to) in r.routes.unwrap_or_default() {
            let key = format!("relay.routes.{domain}");
            let Ok(d) = crate::store::control::normalize_domain(&domain) else {
                return self.err(&key, "is not a domain name");
            };
            routes.insert(d, hop(&key, &to)?);
        }
        Ok(Relay {
            port,
            smarthost,
            smarthost_login,
            routes,
        })
    }

    fn range(&self, key: &str, v: i64, min: i64, max: i64) -> Result<i64, ConfigError> {
        if (min..=max).contains(&v) {
            Ok(v)
        } else {
            self.err(key, format!("{v} is out of range {min}..={max}"))
        }
    }

    fn size(&self, key: &str, s: &str) -> Result<u64, ConfigError> {
        parse_size(s).ok_or(()).or_else(|()| {
            self.err(
                key,
                format!("{s:?} is not a size such as \"512K\", \"50M\" or \"2G\""),
            )
        })
    }

    fn duration(&self, key: &str, s: &str) -> Result<Duration, ConfigError> {
        parse_duration(s).ok_or(()).or_else(|()| {
            self.err(
                key,
                format!("{s:?} is not a duration such as \"30s\", \"15m\", \"2h\" or \"1d\""),
            )
        })
    }
}

/// `512`, `512K`, `50M`, `2G` (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let mut chars = s.chars();
    let mul = match chars.next_back()? {
        'k' | 'K' => 1u64 << 10,
        'm' | 'M' => 1 << 20,
        'g' | 'G' => 1 << 30,
        _ => return s.parse().ok(),
    };
    let num = chars.as_str();
    num.trim().parse::<u64>().ok()?.checked_mul(mul)
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
        let dev = parse(&render_template("mail.example.org", true)).unwrap();
        assert!(dev.dev);
        assert_eq!(dev.listen, Listen::dev());
        let prod = parse(&render_template("mail.example.org", false)).unwrap();
        assert_eq!(prod.listen, Listen::production());
        assert_eq!(prod.limits.max_message_bytes, 50 << 20);
        assert_eq!(prod.key_ttl, Duration::from_secs(900));
        assert_eq!(prod.tls_cert, Path::new("/d/tls/cert.pem"));
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
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
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
