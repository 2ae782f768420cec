//! The server's own reports to other domains: once a day (checked every
//! ten minutes, and at start), the previous days' TLS counts
//! (`relay::tls_rpt`) become one RFC 8460 report per policy domain that
//! publishes a `_smtp._tls` record with `mailto:` addresses, sent from
//! the server's postmaster through the outbound queue, DKIM-signed when
//! the postmaster's domain has keys. The counts, and the MTA-STS policies
//! kept for their max_age, are saved to the data directory at each check
//! and when the server stops.
//!
//! Imports `dns`, `queue`, `relay`, `smtp::dkim`, `store` and `util`.
//! Invariants: a day's counts leave memory only once taken to be
//! reported; a report that cannot be queued is logged and dropped (the
//! counts are statistics, not mail); without a postmaster alias nothing
//! is sent (the counts are still dropped when due, so the file stays
//! small).

use std::sync::Arc;
use std::time::Duration;

use crate::dns::LookupError;
use crate::queue::{Kind, NewMessage, NewRecipient, Queue};
use crate::relay::Relay;
use crate::relay::tls_rpt::{self, Submitter};
use crate::store::Store;

/// What the report task needs.
pub(super) struct Reporter {
    pub relay: Arc<Relay>,
    pub queue: Arc<Queue>,
    pub store: Store,
    pub hostname: String,
    /// Wakes the queue's worker after an enqueue.
    pub wake: async_channel::Sender<()>,
    /// `relay.tls_reports`: send them, or only keep counting.
    pub send: bool,
}

pub(super) async fn run(r: Reporter, stop: async_channel::Receiver<()>) {
    loop {
        if r.send {
            send_due(&r).await;
        }
        save(&r).await;
        if !crate::util::wait_or_stop(Duration::from_secs(600), &stop).await {
            break;
        }
    }
    save(&r).await;
}

async fn save(r: &Reporter) {
    let relay = r.relay.clone();
    if let Err(e) = blocking::unblock(move || relay.save_state()).await {
        tracing::warn!(error = %e, "TLS report counts or MTA-STS policies not saved");
    }
}

/// Sends the reports of every day before today.
async fn send_due(r: &Reporter) {
    let today = crate::util::date_only(crate::util::now_unix(), 0);
    let due = r.relay.tls_results.take_before(&today);
    if due.is_empty() {
        return;
    }
    let Some(postmaster) = r.store.own_postmaster(&r.hostname).await else {
        tracing::warn!(
            reports = due.len(),
            "TLS reports not sent: this server has no postmaster alias"
        );
        return;
    };
    let by = Submitter {
        organization: &r.hostname,
        contact: &postmaster,
    };
    for (day, domain, tally) in due {
        let rua = match r.relay.dns.tls_rpt_addresses(&domain).await {
            Ok(rua) if !rua.is_empty() => rua,
            Ok(_) | Err(LookupError::NotFound) => {
                tracing::debug!(%domain, "no TLS-RPT mail address published; no report");
                continue;
            }
            Err(LookupError::Temporary(why)) => {
                tracing::warn!(%domain, %why, "TLS-RPT record lookup failed; report dropped");
                continue;
            }
        };
        let report = tls_rpt::report(&day, &domain, &tally, &by);
        let message = match tls_rpt::message(&day, &domain, &report, (&postmaster, &rua), &by) {
            Ok(m) => signed(r, &postmaster, m).await,
            Err(e) => {
                tracing::warn!(%domain, error = %e, "TLS report not built");
                continue;
            }
        };
        let m = NewMessage {
            alias: postmaster.clone(),
            sender: postmaster.clone(),
            recipients: rua
                .iter()
                .map(|a| NewRecipient {
                    kind: Kind::Remote,
                    address: a.clone(),
                    via: None,
                })
                .collect(),
            body: message,
        };
        let queue = r.queue.clone();
        match blocking::unblock(move || queue.enqueue(&m)).await {
            Ok(qid) => {
                tracing::info!(%domain, %day, rua = %rua.join(","), queue_id = %qid, "TLS report queued");
                let _ = r.wake.try_send(());
            }
            Err(e) => tracing::warn!(%domain, error = %e, "TLS report not queued"),
        }
    }
}

/// `message` with a DKIM signature when the postmaster's domain has keys.
async fn signed(r: &Reporter, postmaster: &str, message: Vec<u8>) -> Vec<u8> {
    let domain = crate::queue::domain_of(postmaster);
    let keys = match r.store.dkim_keys(&domain).await {
        Ok(keys) if !keys.is_empty() => keys,
        _ => return message,
    };
    blocking::unblock(
        move || match crate::smtp::dkim::sign(&domain, &keys, &message) {
            Ok(header) => {
                let mut m = header.into_bytes();
                m.extend_from_slice(&message);
                m
            }
            Err(e) => {
                tracing::warn!(error = %e, "TLS report sent unsigned");
                message
            }
        },
    )
    .await
}
