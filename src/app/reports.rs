//! The server's own reports to other domains: once a day (checked every
//! ten minutes, and at start), the previous days' TLS counts
//! (`relay::tls_rpt`) become one RFC 8460 report per policy domain that
//! publishes a `_smtp._tls` record with `mailto:` addresses, and the DMARC
//! counts of mail received (`relay::dmarc_rpt`, when `mx.dmarc_reports`
//! is on) one RFC 7489 aggregate report per domain to its `rua` (another
//! domain's only when it agrees, §7.1); each sent from the server's
//! postmaster through the outbound queue, DKIM-signed when the
//! postmaster's domain has keys. The counts, and the MTA-STS policies
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
    // Nothing changed, nothing written (and no thread woken for it).
    if !r.relay.state_changed() {
        return;
    }
    let relay = r.relay.clone();
    if let Err(e) = blocking::unblock(move || relay.save_state()).await {
        tracing::warn!(error = %e, "TLS report counts or MTA-STS policies not saved");
    }
}

/// Sends the reports of every day before today.
async fn send_due(r: &Reporter) {
    let today = crate::relay::daily::today();
    let tls = r.relay.tls_results.take_before(&today);
    let dmarc = r.relay.dmarc_results.take_before(&today);
    if tls.is_empty() && dmarc.is_empty() {
        return;
    }
    let Some(postmaster) = r.store.own_postmaster(&r.hostname).await else {
        tracing::warn!(
            reports = tls.len() + dmarc.len(),
            "reports not sent: this server has no postmaster alias"
        );
        return;
    };
    send_tls(r, &postmaster, tls).await;
    send_dmarc(r, &postmaster, dmarc).await;
}

/// DMARC aggregate reports (RFC 7489 §7.2), to the `rua` addresses that
/// may receive them: those of the domain itself, or of another domain
/// that publishes `DOMAIN._report._dmarc.OTHER` (§7.1).
async fn send_dmarc(
    r: &Reporter,
    postmaster: &str,
    due: Vec<(String, String, crate::relay::dmarc_rpt::Counts)>,
) {
    for (day, domain, counts) in due {
        let mut rua = Vec::new();
        for address in &counts.rua {
            let theirs = crate::queue::domain_of(address);
            let same = theirs == domain
                || theirs.ends_with(&format!(".{domain}"))
                || domain.ends_with(&format!(".{theirs}"));
            let agreed = same
                || r.relay
                    .dns
                    .txt_begins(&format!("{domain}._report._dmarc.{theirs}"), "v=DMARC1")
                    .await
                    .unwrap_or(false);
            if agreed {
                rua.push(address.clone());
            } else {
                tracing::info!(%domain, rua = %address, "DMARC report not sent: that domain does not agree to take reports for this one");
            }
        }
        if rua.is_empty() {
            continue;
        }
        let report =
            crate::relay::dmarc_rpt::report(&day, &domain, &counts, &r.hostname, postmaster);
        let message =
            match report.to_rfc5322(&r.hostname, postmaster, rua.iter().map(String::as_str)) {
                Ok(m) => signed(r, postmaster, m.into_bytes()).await,
                Err(e) => {
                    tracing::warn!(%domain, error = %e, "DMARC report not built");
                    continue;
                }
            };
        queue_report(r, postmaster, &rua, message, ("DMARC", &domain, &day)).await;
    }
}

/// TLS reports (RFC 8460 §5.3).
async fn send_tls(r: &Reporter, postmaster: &str, due: Vec<(String, String, tls_rpt::Tally)>) {
    let by = Submitter {
        organization: &r.hostname,
        contact: postmaster,
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
        let message = match tls_rpt::message(&day, &domain, &report, (postmaster, &rua), &by) {
            Ok(m) => signed(r, postmaster, m).await,
            Err(e) => {
                tracing::warn!(%domain, error = %e, "TLS report not built");
                continue;
            }
        };
        queue_report(r, postmaster, &rua, message, ("TLS", &domain, &day)).await;
    }
}

/// Queues a report from the postmaster to `rua`.
async fn queue_report(
    r: &Reporter,
    postmaster: &str,
    rua: &[String],
    message: Vec<u8>,
    (kind, domain, day): (&str, &str, &str),
) {
    let m = NewMessage {
        alias: postmaster.to_string(),
        sender: postmaster.to_string(),
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
            tracing::info!(%domain, %day, rua = %rua.join(","), queue_id = %qid, "{kind} report queued");
            let _ = r.wake.try_send(());
        }
        Err(e) => tracing::warn!(%domain, error = %e, "{kind} report not queued"),
    }
}

/// `message` with a DKIM signature when the postmaster's domain has keys.
async fn signed(r: &Reporter, postmaster: &str, message: Vec<u8>) -> Vec<u8> {
    let domain = crate::queue::domain_of(postmaster);
    crate::smtp::dkim::signed_if_keys(&r.store, &domain, message, "report").await
}
