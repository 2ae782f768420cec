//! The policies that `Config` hands to the queue, the backup scheduler and
//! submission: plain values, validated in `Config::validate`, used by the
//! subsystem that names them (which adds its own behaviour to them).
//!
//! Imports nothing of ours. Invariants: plain data with defaults.

use std::collections::BTreeMap;
use std::time::Duration;

/// The most days a domain may keep bodies of delivered mail.
pub const MAX_KEEP_DAYS: u32 = 30;

/// How the queue retries and what it keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuePolicy {
    /// Delay before the first retry; each further one doubles it.
    pub first_retry: Duration,
    /// The longest delay between two attempts.
    pub max_retry: Duration,
    /// A message not delivered after this bounces (Postfix: 5 days).
    pub lifetime: Duration,
    /// Domains that keep delivered bodies, and for how many days (≤ 30).
    pub keep_body_days: BTreeMap<String, u32>,
}

impl Default for QueuePolicy {
    fn default() -> QueuePolicy {
        QueuePolicy {
            first_retry: Duration::from_secs(5 * 60),
            max_retry: Duration::from_secs(3 * 3600),
            lifetime: Duration::from_secs(5 * 86_400),
            keep_body_days: BTreeMap::new(),
        }
    }
}

/// How often mailboxes are backed up and how many versions are kept.
#[derive(Clone, Copy, Debug)]
pub struct BackupPolicy {
    pub interval: Duration,
    pub keep_daily: usize,
    pub keep_weekly: usize,
    pub concurrency: usize,
}

/// Submitted messages per 24 hours; 0 means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendLimits {
    pub per_alias: u64,
    pub per_domain: u64,
}
