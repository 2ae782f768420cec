//! The TOML file as written, before validation: every field optional, no
//! unknown keys accepted.
//!
//! Imports serde only. Invariants: nothing here is used by a subsystem;
//! `Config::validate` turns it into the immutable `Config`.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    pub server: Option<Server>,
    pub listen: Option<Listen>,
    pub tls: Option<Tls>,
    pub keys: Option<Keys>,
    pub limits: Option<Limits>,
    pub mx: Option<Mx>,
    pub dns: Option<Dns>,
    pub relay: Option<Relay>,
    pub backup: Option<Backup>,
    pub submission: Option<Submission>,
    pub queue: Option<Queue>,
    pub cluster: Option<Cluster>,
    pub log: Option<Log>,
    pub web: Option<Web>,
    pub acme: Option<Acme>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Web {
    pub mta_sts: Option<String>,
    pub mta_sts_max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    pub enabled: Option<bool>,
    pub directory: Option<String>,
    pub contact: Option<Vec<String>>,
    pub names: Option<Vec<String>>,
    pub challenge: Option<String>,
    pub ca_file: Option<String>,
    pub renew_before: Option<String>,
    pub check_every: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub role: Option<String>,
    pub listen: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    pub hide_client_address: Option<bool>,
    pub max_per_alias_per_day: Option<i64>,
    pub max_per_domain_per_day: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    pub first_retry: Option<String>,
    pub max_retry: Option<String>,
    pub lifetime: Option<String>,
    pub keep_body_days: Option<std::collections::BTreeMap<String, i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    pub dir: Option<String>,
    pub allow_same_disk: Option<bool>,
    pub schedule: Option<bool>,
    pub interval: Option<String>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub concurrency: Option<i64>,
    pub s3: Option<S3>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3 {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub path_style: Option<bool>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mx {
    pub check_senders: Option<bool>,
    pub dmarc_reject: Option<bool>,
    pub dmarc_reports: Option<bool>,
    pub authserv_id: Option<String>,
    pub refuse_executables: Option<bool>,
    pub allow_executables: Option<Vec<String>>,
    pub clamd: Option<Clamd>,
    pub rspamd: Option<Rspamd>,
    pub client_messages_per_minute: Option<i64>,
    pub client_recipients_per_minute: Option<i64>,
    pub rate_exempt: Option<Vec<String>>,
    pub dnsbl: Option<Vec<String>>,
    pub command_timeout: Option<String>,
    pub data_timeout: Option<String>,
    pub greet_pause: Option<String>,
    pub max_recipients: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clamd {
    pub socket: Option<String>,
    pub when_unreachable: Option<String>,
    pub timeout: Option<String>,
    pub exempt: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rspamd {
    pub address: Option<String>,
    pub timeout: Option<String>,
    pub exempt: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    pub nameservers: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    pub port: Option<i64>,
    pub smarthost: Option<String>,
    pub smarthost_user: Option<String>,
    pub smarthost_password: Option<String>,
    pub routes: Option<std::collections::BTreeMap<String, String>>,
    pub tls_policy: Option<std::collections::BTreeMap<String, String>>,
    pub mta_sts: Option<bool>,
    pub dane: Option<bool>,
    pub tls_reports: Option<bool>,
    pub ca_file: Option<String>,
    pub https_port: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: Option<String>,
    pub file: Option<String>,
    pub redact_addresses: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub hostname: Option<String>,
    pub dev: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub smtp: Option<String>,
    pub submission: Option<String>,
    pub submissions: Option<String>,
    pub imap: Option<String>,
    pub imaps: Option<String>,
    pub pop3: Option<String>,
    pub pop3s: Option<String>,
    pub http: Option<String>,
    pub https: Option<String>,
    pub metrics: Option<String>,
    pub managesieve: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    pub cache_ttl: Option<String>,
    pub argon2_memory: Option<String>,
    pub argon2_iterations: Option<i64>,
    pub argon2_parallelism: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_message_size: Option<String>,
    pub mime_max_depth: Option<i64>,
    pub mime_max_parts: Option<i64>,
    pub connections_per_ip: Option<i64>,
    pub password_checks: Option<i64>,
    pub max_connections: Option<i64>,
    pub message_memory: Option<String>,
    pub message_disk: Option<String>,
    pub database_memory: Option<String>,
    pub open_mailboxes: Option<i64>,
}
