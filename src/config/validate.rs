//! The second phase of configuration: raw TOML values checked one section
//! at a time into a `Config`, each error naming the file, the key and what
//! is wrong.
//!
//! Imports the parent's types and `store` (domain names, KDF and limit
//! values). Invariants: every value is checked against its range before it
//! is used; defaults are the ones `assets/sealmail.toml` documents.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::*;

pub(super) struct Validator<'a> {
    pub file: &'a Path,
}

impl Validator<'_> {
    pub(super) fn err<T>(&self, key: &str, problem: impl Into<String>) -> Result<T, ConfigError> {
        Err(ConfigError {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            problem: problem.into(),
        })
    }

    pub fn validate(&self, raw: raw::Raw, data_dir: &Path) -> Result<Config, ConfigError> {
        let server = raw.server.unwrap_or_default();
        let dev = server.dev.unwrap_or(false);
        let hostname = server.hostname.unwrap_or_else(|| "localhost".into());
        if crate::store::control::normalize_domain(&hostname).is_err() {
            return self.err(
                "server.hostname",
                format!("{hostname:?} is not a valid host name"),
            );
        }
        let tls = raw.tls.unwrap_or_default();
        let keys = raw.keys.unwrap_or_default();
        let key_ttl =
            self.duration("keys.cache_ttl", keys.cache_ttl.as_deref().unwrap_or("15m"))?;
        let lim = raw.limits.unwrap_or_default();
        let max_connections = match lim.max_connections {
            Some(n) => Some(self.range("limits.max_connections", n, 16, 1_000_000)? as usize),
            None => None,
        };
        let message_memory = self.size(
            "limits.message_memory",
            lim.message_memory.as_deref().unwrap_or("384M"),
        )?;
        let message_disk = self.size(
            "limits.message_disk",
            lim.message_disk.as_deref().unwrap_or("4G"),
        )?;
        let database_memory = self.size(
            "limits.database_memory",
            lim.database_memory.as_deref().unwrap_or("256M"),
        )?;
        if database_memory < 16 * 1024 * 1024 {
            return self.err("limits.database_memory", "must be at least 16M");
        }
        let open_mailboxes = self.range(
            "limits.open_mailboxes",
            lim.open_mailboxes.unwrap_or(1000),
            1,
            1_000_000,
        )? as usize;
        let (limits, connections_per_ip, password_checks) = self.limits(lim)?;
        if message_disk < limits.max_message_bytes {
            return self.err(
                "limits.message_disk",
                "must be at least limits.max_message_size",
            );
        }
        // A message of the largest size is held once while it arrives and
        // up to five times more while it is processed (IMAP APPEND).
        if message_memory < 6 * limits.max_message_bytes {
            return self.err(
                "limits.message_memory",
                "must be at least six times limits.max_message_size",
            );
        }
        let backup = raw.backup.unwrap_or_default();
        let submission = raw.submission.unwrap_or_default();
        Ok(Config {
            log: self.log(raw.log.unwrap_or_default(), data_dir)?,
            hide_client_address: submission.hide_client_address.unwrap_or(true),
            send_limits: self.send_limits(submission)?,
            queue: self.queue(raw.queue.unwrap_or_default())?,
            mx: self.mx(raw.mx.unwrap_or_default(), &hostname)?,
            cluster: self.cluster(raw.cluster.unwrap_or_default(), dev)?,
            nameservers: self.nameservers(raw.dns.unwrap_or_default())?,
            relay: self.relay(raw.relay.unwrap_or_default(), data_dir)?,
            backup_dir: data_dir.join(backup.dir.clone().unwrap_or_else(|| "backups".into())),
            backup_same_disk: backup.allow_same_disk.unwrap_or(false),
            backup_policy: self.backup_policy(&backup)?,
            backup_s3: self.s3(backup.s3)?,
            connections_per_ip,
            password_checks,
            max_connections,
            message_memory,
            message_disk,
            database_memory,
            open_mailboxes,
            file: self.file.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            hostname,
            dev,
            listen: self.listen(raw.listen.unwrap_or_default(), dev)?,
            web: self.web(raw.web.unwrap_or_default())?,
            acme: self.acme(raw.acme.unwrap_or_default(), data_dir)?,
            tls_cert: data_dir.join(tls.cert.unwrap_or_else(|| "tls/cert.pem".into())),
            tls_key: data_dir.join(tls.key.unwrap_or_else(|| "tls/key.pem".into())),
            key_ttl,
            kdf: self.kdf(&keys)?,
            limits,
        })
    }

    /// `[log]`: the format, and a file (relative to the data directory)
    /// instead of standard error.
    fn log(&self, l: raw::Log, data_dir: &Path) -> Result<crate::util::log::Settings, ConfigError> {
        use crate::util::log::Format;
        let format = match l.format.as_deref().unwrap_or("text") {
            "text" => Format::Text,
            "json" => Format::Json,
            other => {
                return self.err(
                    "log.format",
                    format!("{other:?}: expected \"text\" or \"json\""),
                );
            }
        };
        let file = match l.file.as_deref() {
            None => None,
            Some("") => {
                return self.err("log.file", "empty: leave it out to log to standard error");
            }
            Some(f) => Some(data_dir.join(f)),
        };
        Ok(crate::util::log::Settings {
            format,
            file,
            redact_addresses: l.redact_addresses.unwrap_or(false),
        })
    }

    /// `[listen]`: every address, loopback only in development mode.
    fn listen(&self, l: raw::Listen, dev: bool) -> Result<Listen, ConfigError> {
        let defaults = if dev {
            Listen::dev()
        } else {
            Listen::production()
        };
        Ok(Listen {
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
            http: self.optional_addr("listen.http", l.http, defaults.http, dev)?,
            https: self.optional_addr("listen.https", l.https, defaults.https, dev)?,
            metrics: self.optional_addr("listen.metrics", l.metrics, defaults.metrics, dev)?,
            managesieve: self.optional_addr(
                "listen.managesieve",
                l.managesieve,
                defaults.managesieve,
                dev,
            )?,
        })
    }

    /// `[keys]`: argon2id's costs.
    fn kdf(&self, k: &raw::Keys) -> Result<KdfParams, ConfigError> {
        let memory = self.size(
            "keys.argon2_memory",
            k.argon2_memory.as_deref().unwrap_or("19M"),
        )?;
        Ok(KdfParams {
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
        })
    }

    /// `[limits]`: message size, MIME bounds, connections per address,
    /// password checks at once.
    fn limits(&self, lim: raw::Limits) -> Result<(Limits, usize, usize), ConfigError> {
        let max_message_bytes = self.size(
            "limits.max_message_size",
            lim.max_message_size.as_deref().unwrap_or("50M"),
        )?;
        if !(1024..=1024 * 1024 * 1024).contains(&max_message_bytes) {
            return self.err("limits.max_message_size", "must be between 1K and 1G");
        }
        let limits = Limits {
            max_message_bytes,
            unindexed_max: crate::store::mailbox::UNINDEXED_MAX,
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
        let password_checks = self.range(
            "limits.password_checks",
            lim.password_checks.unwrap_or(4),
            1,
            256,
        )? as usize;
        Ok((limits, connections_per_ip, password_checks))
    }

    /// `[dns]`: the resolvers to ask (the system's when empty).
    fn nameservers(&self, dns: raw::Dns) -> Result<Vec<SocketAddr>, ConfigError> {
        let mut nameservers = Vec::new();
        for n in dns.nameservers.unwrap_or_default() {
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
        Ok(nameservers)
    }

    /// `[mx]`: sender checks and deadlines.
    fn mx(&self, mx: raw::Mx, hostname: &str) -> Result<Mx, ConfigError> {
        let authserv_id = mx.authserv_id.unwrap_or_else(|| hostname.to_string());
        if authserv_id.is_empty()
            || !authserv_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return self.err(
                "mx.authserv_id",
                format!("{authserv_id:?}: expected a host name"),
            );
        }
        let allow_executables = self.recipients(
            "mx.allow_executables",
            mx.allow_executables.unwrap_or_default(),
        )?;
        let clamd = match mx.clamd {
            Some(c) => self.clamd(c)?,
            None => None,
        };
        let rspamd = match mx.rspamd {
            Some(r) => self.rspamd(r)?,
            None => None,
        };
        let mut rate_exempt = Vec::new();
        for n in mx
            .rate_exempt
            .unwrap_or_else(|| vec!["127.0.0.0/8".into(), "::1".into()])
        {
            match crate::util::parse_network(n.trim()) {
                Some(net) => rate_exempt.push(net),
                None => {
                    return self.err(
                        "mx.rate_exempt",
                        format!("{n:?}: expected an address or a network (192.0.2.0/24)"),
                    );
                }
            }
        }
        let mut dnsbl = Vec::new();
        for zone in mx.dnsbl.unwrap_or_default() {
            match crate::store::control::normalize_domain(zone.trim().trim_end_matches('.')) {
                Ok(z) => dnsbl.push(z),
                Err(_) => {
                    return self.err(
                        "mx.dnsbl",
                        format!("{zone:?}: expected a blocklist zone such as \"zen.spamhaus.org\""),
                    );
                }
            }
        }
        let mx = Mx {
            check_senders: mx.check_senders.unwrap_or(true),
            dmarc_reject: mx.dmarc_reject.unwrap_or(true),
            dmarc_reports: mx.dmarc_reports.unwrap_or(false),
            authserv_id,
            refuse_executables: mx.refuse_executables.unwrap_or(true),
            allow_executables,
            clamd,
            rspamd,
            client_messages_per_minute: self.range(
                "mx.client_messages_per_minute",
                mx.client_messages_per_minute.unwrap_or(100),
                0,
                1_000_000,
            )? as u32,
            client_recipients_per_minute: self.range(
                "mx.client_recipients_per_minute",
                mx.client_recipients_per_minute.unwrap_or(500),
                0,
                1_000_000,
            )? as u32,
            rate_exempt,
            dnsbl,
            command_timeout: self.duration(
                "mx.command_timeout",
                mx.command_timeout.as_deref().unwrap_or("5m"),
            )?,
            data_timeout: self.duration(
                "mx.data_timeout",
                mx.data_timeout.as_deref().unwrap_or("10m"),
            )?,
            greet_pause: self
                .duration("mx.greet_pause", mx.greet_pause.as_deref().unwrap_or("1s"))?,
            max_recipients: self.range(
                "mx.max_recipients",
                mx.max_recipients.unwrap_or(100),
                100,
                100_000,
            )? as usize,
        };
        if mx.command_timeout.is_zero() || mx.data_timeout.is_zero() {
            return self.err("mx.command_timeout", "timeouts must be longer than 0s");
        }
        Ok(mx)
    }

    /// Addresses or whole domains, lowercase, as content checks' opt-outs
    /// name them.
    fn recipients(&self, key: &str, list: Vec<String>) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::with_capacity(list.len());
        for a in list {
            let a = a.trim().to_ascii_lowercase();
            let domain = a.rsplit_once('@').map_or(a.as_str(), |(_, d)| d);
            if crate::store::control::normalize_domain(domain).is_err() {
                return self.err(key, format!("{a:?}: expected an address or a domain"));
            }
            out.push(a);
        }
        Ok(out)
    }

    /// `[mx.clamd]`: `None` without a socket (the section's other keys
    /// are still checked).
    fn clamd(&self, c: raw::Clamd) -> Result<Option<Clamd>, ConfigError> {
        let deliver_unscanned = match c.when_unreachable.as_deref().unwrap_or("defer") {
            "defer" => false,
            "deliver" => true,
            other => {
                return self.err(
                    "mx.clamd.when_unreachable",
                    format!("{other:?}: expected \"defer\" or \"deliver\""),
                );
            }
        };
        let timeout = self.duration("mx.clamd.timeout", c.timeout.as_deref().unwrap_or("60s"))?;
        if timeout.is_zero() {
            return self.err("mx.clamd.timeout", "must be longer than 0s");
        }
        let exempt = self.recipients("mx.clamd.exempt", c.exempt.unwrap_or_default())?;
        let socket = match c.socket.as_deref().map(str::trim) {
            None | Some("") => return Ok(None),
            Some(s) if s.starts_with('/') => ClamdSocket::Unix(PathBuf::from(s)),
            Some(s) => match s.parse() {
                Ok(addr) => ClamdSocket::Tcp(addr),
                Err(_) => {
                    return self.err(
                        "mx.clamd.socket",
                        format!(
                            "{s:?}: expected clamd's LocalSocket (an absolute path) or its TCPSocket as ADDRESS:PORT"
                        ),
                    );
                }
            },
        };
        Ok(Some(Clamd {
            socket,
            deliver_unscanned,
            timeout,
            exempt,
        }))
    }

    /// `[mx.rspamd]`: `None` without an address.
    fn rspamd(&self, r: raw::Rspamd) -> Result<Option<Rspamd>, ConfigError> {
        let timeout = self.duration("mx.rspamd.timeout", r.timeout.as_deref().unwrap_or("30s"))?;
        if timeout.is_zero() {
            return self.err("mx.rspamd.timeout", "must be longer than 0s");
        }
        let exempt = self.recipients("mx.rspamd.exempt", r.exempt.unwrap_or_default())?;
        let address = match r.address.as_deref().map(str::trim) {
            None | Some("") => return Ok(None),
            Some(a) => a.parse::<SocketAddr>().ok().ok_or(()).or_else(|()| {
                self.err(
                    "mx.rspamd.address",
                    format!("{a:?}: expected rspamd's normal worker as ADDRESS:PORT (\"127.0.0.1:11333\")"),
                )
            })?,
        };
        Ok(Some(Rspamd {
            address,
            timeout,
            exempt,
        }))
    }

    /// `[cluster]`: this node's role and the link's settings.
    fn cluster(&self, c: raw::Cluster, dev: bool) -> Result<Cluster, ConfigError> {
        let role = match c.role.as_deref() {
            None => Role::Standalone,
            Some(r) => match Role::parse(r) {
                Some(role) => role,
                None => {
                    return self.err(
                        "cluster.role",
                        format!("{r:?} is not one of standalone, primary, secondary"),
                    );
                }
            },
        };
        let default = if dev {
            std::net::SocketAddr::from(([127, 0, 0, 1], 2744))
        } else {
            std::net::SocketAddr::from(([0, 0, 0, 0], 7443))
        };
        let timeout = self.duration("cluster.timeout", c.timeout.as_deref().unwrap_or("60s"))?;
        if timeout.is_zero() {
            return self.err("cluster.timeout", "must be longer than 0s");
        }
        Ok(Cluster {
            role,
            // Only a primary listens: the loopback rule of development
            // mode applies to it alone.
            listen: self.addr(
                "cluster.listen",
                c.listen,
                default,
                dev && role == Role::Primary,
            )?,
            timeout,
            primary: None,
        })
    }

    /// `[backup]`: the schedule and retention (none when `schedule` is off).
    fn backup_policy(&self, backup: &raw::Backup) -> Result<Option<BackupPolicy>, ConfigError> {
        Ok(if backup.schedule.unwrap_or(true) {
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
        })
    }

    /// `[backup.s3]`: an S3-compatible bucket instead of a directory.
    fn s3(&self, s3: Option<raw::S3>) -> Result<Option<S3>, ConfigError> {
        Ok(match s3 {
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
        })
    }

    /// `[submission]`: daily sending limits.
    fn send_limits(&self, sub: raw::Submission) -> Result<SendLimits, ConfigError> {
        Ok(SendLimits {
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
        })
    }

    /// `[queue]`: the retry schedule and kept bodies.
    fn queue(&self, q: raw::Queue) -> Result<QueuePolicy, ConfigError> {
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
        Ok(queue)
    }

    pub(super) fn addr(
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

    fn relay(&self, r: raw::Relay, data_dir: &Path) -> Result<Relay, ConfigError> {
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
        let mut tls_policy = std::collections::BTreeMap::new();
        for (domain, level) in r.tls_policy.unwrap_or_default() {
            let key = format!("relay.tls_policy.{domain}");
            let Ok(d) = crate::store::control::normalize_domain(&domain) else {
                return self.err(&key, "is not a domain name");
            };
            let level = match level.as_str() {
                "may" => TlsLevel::May,
                "encrypt" => TlsLevel::Encrypt,
                "verify" | "secure" => TlsLevel::Verify,
                "dane" => TlsLevel::Dane,
                "dane-only" => TlsLevel::DaneOnly,
                other => {
                    return self.err(
                        &key,
                        format!("{other:?}: expected \"may\", \"encrypt\", \"verify\", \"dane\" or \"dane-only\""),
                    );
                }
            };
            tls_policy.insert(d, level);
        }
        Ok(Relay {
            port,
            smarthost,
            smarthost_login,
            routes,
            tls_policy,
            mta_sts: r.mta_sts.unwrap_or(true),
            dane: r.dane.unwrap_or(true),
            tls_reports: r.tls_reports.unwrap_or(true),
            ca_file: r
                .ca_file
                .filter(|f| !f.trim().is_empty())
                .map(|f| data_dir.join(f)),
            https_port: self.range("relay.https_port", r.https_port.unwrap_or(443), 1, 65535)?
                as u16,
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

    pub(super) fn duration(&self, key: &str, s: &str) -> Result<Duration, ConfigError> {
        parse_duration(s).ok_or(()).or_else(|()| {
            self.err(
                key,
                format!("{s:?} is not a duration such as \"30s\", \"15m\", \"2h\" or \"1d\""),
            )
        })
    }
}
