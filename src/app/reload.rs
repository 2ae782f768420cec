//! Reload without restart: what SIGHUP re-reads (`sealmail.toml`, the
//! certificate) and puts in force for what comes next (the log, connection
//! caps, SMTP timeouts and limits, send limits); settings that size running
//! parts are named and wait for a restart.
//!
//! Imports the parent's imports. Invariants: a file that no longer
//! validates changes nothing; no open session is cut by a reload.

use std::sync::Arc;

use crate::config::Config;
use crate::net::limits::{ConnLimiter, default_max_connections, raise_open_files};
use crate::net::tls;
use crate::smtp;
use crate::util::Live;

/// What a reload changes in the running server, besides the certificate
/// and the log: each applies to what comes next (a connection, a command,
/// a message), and nothing open is cut.
#[derive(Clone)]
pub(super) struct Reloadable {
    pub(super) limiter: Arc<ConnLimiter>,
    pub(super) smtp_timeouts: Live<smtp::Timeouts>,
    pub(super) max_recipients: Live<usize>,
    pub(super) send_limits: Live<crate::config::SendLimits>,
}

/// The keys of `sealmail.toml` that `Reloadable`, the certificate
/// (`tls.`) and the log (`log.`) follow at a reload; others wait for a
/// restart.
const RELOADABLE: [&str; 9] = [
    "tls.",
    "log.",
    "limits.connections_per_ip",
    "limits.max_connections",
    "mx.command_timeout",
    "mx.data_timeout",
    "mx.greet_pause",
    "mx.max_recipients",
    "submission.",
];

impl Reloadable {
    pub(super) fn new(config: &Config, limiter: Arc<ConnLimiter>) -> Reloadable {
        let live = Reloadable {
            limiter,
            smtp_timeouts: Live::new(smtp_timeouts(config)),
            max_recipients: Live::new(config.mx.max_recipients),
            send_limits: Live::new(config.send_limits),
        };
        live.apply(config);
        live
    }

    fn apply(&self, config: &Config) {
        self.limiter.set(
            config.connections_per_ip,
            config
                .max_connections
                .unwrap_or_else(|| default_max_connections(raise_open_files())),
        );
        self.smtp_timeouts.set(smtp_timeouts(config));
        self.max_recipients.set(config.mx.max_recipients);
        self.send_limits.set(config.send_limits);
    }
}

fn smtp_timeouts(config: &Config) -> smtp::Timeouts {
    smtp::Timeouts {
        command: config.mx.command_timeout,
        data: config.mx.data_timeout,
        greet_pause: config.mx.greet_pause,
    }
}

/// Reloads on each message of `reload` until `stop` closes: a
/// `sealmail.toml` that no longer validates is refused (logged) and
/// nothing changes; otherwise the certificate and key are read again
/// (new handshakes use them, open sessions keep theirs), the log settings
/// and connection caps apply to what comes next (no session is cut), and
/// other settings that changed are named: they apply at the next restart.
pub(super) async fn reloads(
    config: Arc<Config>,
    (certificates, live): (Arc<tls::Certificates>, Reloadable),
    reload: async_channel::Receiver<()>,
    stop: async_channel::Receiver<()>,
) {
    let read = |c: &Config| std::fs::read_to_string(&c.file).unwrap_or_default();
    let mut text = read(&config);
    loop {
        let next = futures_lite::future::or(async { reload.recv().await.ok() }, async {
            let _ = stop.recv().await;
            None
        })
        .await;
        if next.is_none() {
            return;
        }
        let (running, certs, before) = (config.clone(), certificates.clone(), text.clone());
        let live = live.clone();
        let after = blocking::unblock(move || {
            let fresh = match Config::load(&running.data_dir) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "reload refused: the configuration in force stays");
                    return None;
                }
            };
            let after = read(&fresh);
            if let Err(e) = crate::util::log::apply(&fresh.log) {
                tracing::error!(error = %e, "log settings not applied: the ones in force stay");
            }
            live.apply(&fresh);
            if let Err(e) = certs.reload(&fresh.tls_cert, &fresh.tls_key) {
                tracing::error!(error = %e, "certificate not reloaded: the one in use stays");
            } else {
                tracing::info!(
                    sha256 = %hex::encode(certs.fingerprint()),
                    "certificate reloaded: new TLS handshakes use it"
                );
            }
            let (applied, changed): (Vec<String>, Vec<String>) =
                crate::config::changed_keys(&before, &after)
                    .into_iter()
                    .partition(|k| RELOADABLE.iter().any(|r| k.starts_with(r)));
            if !applied.is_empty() {
                tracing::info!(settings = %applied.join(", "), "changed in sealmail.toml: in force now");
            }
            if !changed.is_empty() {
                tracing::warn!(
                    settings = %changed.join(", "),
                    "changed in sealmail.toml: they take effect at the next restart"
                );
            }
            tracing::info!(file = %fresh.file.display(), "configuration reloaded");
            Some(after)
        })
        .await;
        if let Some(t) = after {
            text = t;
        }
    }
}
