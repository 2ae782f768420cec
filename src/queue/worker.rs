//! Delivery of queued mail: each round takes the recipients that are due,
//! gives every destination domain its own lane (one worker per domain, a
//! few transactions at a time), records each recipient's outcome, sends
//! bounces, and ends messages that are done.
//!
//! Imports `queue`, `relay` (next hops, SMTP client, webhooks) and the
//! store's interface (local mailboxes and bounces). Invariants: an outcome
//! is recorded only after the attempt ended; a bounce is marked sent only
//! after the store accepted it (INBOX or sealed spool); all queue database
//! work runs on the blocking pool.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::{Category, Due, Kind, Outcome, Queue, QueueError, dsn};
use crate::relay::Relay;
use crate::relay::client::{Session, Status, TlsUse};
use crate::store::{Store, StoreError};

/// Recipients taken per round.
const BATCH: usize = 2000;
/// Destination domains served at once.
const LANES: usize = 32;
/// Transactions at once to one destination domain.
const PER_LANE: usize = 4;
/// The longest sleep between rounds; enqueues wake the loop sooner.
const MAX_IDLE: Duration = Duration::from_secs(10);
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// What delivery needs.
pub struct Deliverer {
    pub queue: Arc<Queue>,
    /// `None` without a DNS resolver: remote recipients wait.
    pub relay: Option<Arc<Relay>>,
    pub store: Store,
    pub hostname: String,
    pub mime_limits: crate::store::mime::Limits,
}

/// Recipients of one message that go in one transaction.
struct Job {
    message_id: i64,
    sender: String,
    rcpts: Vec<Due>,
}

async fn blocking<T: Send + 'static>(
    queue: &Arc<Queue>,
    f: impl FnOnce(&Queue) -> Result<T, QueueError> + Send + 'static,
) -> Result<T, QueueError> {
    let q = queue.clone();
    blocking::unblock(move || f(&q)).await
}

/// Runs one round: every recipient due now gets one attempt. Returns how
/// many attempts were made.
pub async fn run_once(d: &Deliverer) -> Result<usize, QueueError> {
    let due = blocking(&d.queue, |q| q.due(BATCH)).await?;
    let attempts = due.len();
    // Lane → message → recipients, in due order.
    let mut lanes: BTreeMap<String, Vec<Job>> = BTreeMap::new();
    for r in due {
        let lane = match r.kind {
            Kind::Remote => format!("smtp:{}", r.domain),
            Kind::Local => "local".to_string(),
            Kind::Webhook => "webhook".to_string(),
        };
        let jobs = lanes.entry(lane).or_default();
        match jobs.iter_mut().find(|j| j.message_id == r.message_id) {
            Some(j) => j.rcpts.push(r),
            None => jobs.push(Job {
                message_id: r.message_id,
                sender: r.sender.clone(),
                rcpts: vec![r],
            }),
        }
    }
    let mut touched: BTreeSet<i64> = BTreeSet::new();
    let mut work = Vec::new();
    for (_, jobs) in lanes.into_iter().take(LANES) {
        touched.extend(jobs.iter().map(|j| j.message_id));
        work.push(lane(d, jobs));
    }
    crate::util::join_all(work).await;
    // Bounces left from an earlier round whose delivery to the sender failed.
    touched.extend(blocking(&d.queue, |q| q.unbounced()).await?);
    let touched: Vec<i64> = touched.into_iter().collect();
    let to_bounce = blocking(&d.queue, move |q| q.settle(&touched)).await?;
    for id in to_bounce {
        if let Err(e) = bounce_and_finish(d, id).await {
            tracing::warn!(error = %e, "queue: bounce or clean-up failed; retrying next round");
        }
    }
    Ok(attempts)
}

/// One destination: its jobs split over `PER_LANE` sequential runners.
async fn lane(d: &Deliverer, jobs: Vec<Job>) {
    let mut runners: Vec<Vec<Job>> = (0..PER_LANE).map(|_| Vec::new()).collect();
    for (i, j) in jobs.into_iter().enumerate() {
        runners[i % PER_LANE].push(j);
    }
    let work = runners
        .into_iter()
        .filter(|r| !r.is_empty())
        .map(|jobs| async move {
            // One connection carries this runner's transactions in turn.
            let mut session = None;
            for j in jobs {
                if let Err(e) = attempt(d, j, &mut session).await {
                    tracing::warn!(error = %e, "queue: could not record a delivery attempt");
                }
            }
            if let Some(s) = session {
                s.quit().await;
            }
        })
        .collect();
    crate::util::join_all(work).await;
}

/// Tries one job and records each recipient's outcome. `session` is the
/// lane's open connection, if any (see `Relay::send_domain`).
async fn attempt(d: &Deliverer, job: Job, session: &mut Option<Session>) -> Result<(), QueueError> {
    let id = job.message_id;
    let Some(body) = blocking(&d.queue, move |q| q.body(id)).await? else {
        // Deleted by the operator meanwhile (or damaged): nothing to send.
        let gone = Outcome::Permanent {
            reason: "the message was removed from the queue".into(),
            category: Category::Other,
        };
        return record_all(d, &job.rcpts, vec![gone; job.rcpts.len()]).await;
    };
    // INVARIANT: a job is made with its first recipient (`run_once`).
    let outcomes = match job.rcpts[0].kind {
        Kind::Remote => remote(d, &job, &body, session).await,
        Kind::Local => {
            let mut out = Vec::new();
            let mut copy = format!("Return-Path: <{}>\r\n", job.sender).into_bytes();
            copy.extend_from_slice(&body);
            for r in &job.rcpts {
                out.push(local(d, &r.address, copy.clone()).await);
            }
            out
        }
        Kind::Webhook => {
            let mut out = Vec::new();
            for r in &job.rcpts {
                let Some(relay) = &d.relay else {
                    out.push(no_resolver());
                    continue;
                };
                let via = r.via.as_deref().unwrap_or_default();
                let st = relay
                    .webhook(&r.address, via, &job.sender, &body, d.mime_limits)
                    .await;
                out.push(from_status(st, "webhook".into()));
            }
            out
        }
    };
    record_all(d, &job.rcpts, outcomes).await
}

async fn record_all(
    d: &Deliverer,
    rcpts: &[Due],
    outcomes: Vec<Outcome>,
) -> Result<(), QueueError> {
    for (r, outcome) in rcpts.iter().zip(&outcomes) {
        log_outcome(r, outcome);
    }
    let pairs: Vec<(i64, Outcome)> = rcpts.iter().map(|r| r.rcpt_id).zip(outcomes).collect();
    blocking(&d.queue, move |q| q.record_all(&pairs)).await
}

/// One line per recipient and attempt, as Postfix writes them: queue id,
/// recipient, attempt, seconds since the message was queued, status, the
/// enhanced status code (RFC 3463) of the answer or its class, and what
/// the next hop said.
fn log_outcome(r: &Due, outcome: &Outcome) {
    let (queue_id, attempt) = (r.qid.as_str(), r.attempts + 1);
    let delay = (crate::util::now_unix() - r.queued_at).max(0);
    let to = crate::util::log::addr(&r.address);
    let to = to.as_ref();
    let result = match outcome {
        Outcome::Delivered { .. } => "delivered",
        Outcome::Temporary { .. } => "deferred",
        Outcome::Permanent { .. } => "bounced",
    };
    crate::util::metrics::inc("sealmail_delivery_attempts_total", &[("result", result)]);
    match outcome {
        Outcome::Delivered { detail } => tracing::info!(
            target: "sealmail::queue",
            queue_id = %queue_id, to, attempt, delay, status = %"sent", dsn = %dsn(detail, '2'),
            detail = detail.as_str(),
            "delivery"
        ),
        Outcome::Temporary { reason, .. } => tracing::warn!(
            target: "sealmail::queue",
            queue_id = %queue_id, to, attempt, delay, status = %"deferred", dsn = %dsn(reason, '4'),
            reason = reason.as_str(),
            "delivery"
        ),
        Outcome::Permanent { reason, .. } => tracing::warn!(
            target: "sealmail::queue",
            queue_id = %queue_id, to, attempt, delay, status = %"bounced", dsn = %dsn(reason, '5'),
            reason = reason.as_str(),
            "delivery"
        ),
    }
}

/// The first enhanced status code (`class.subject.detail`, RFC 3463) in
/// `text` whose class is `class`; `class.0.0` when there is none.
fn dsn(text: &str, class: char) -> String {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|word| {
            let mut parts = word.split('.');
            parts
                .next()
                .is_some_and(|c| c.len() == 1 && c.starts_with(class))
                && parts.clone().count() == 2
                && parts.all(|p| (1..=3).contains(&p.len()))
        })
        .map_or_else(|| format!("{class}.0.0"), str::to_string)
}

fn no_resolver() -> Outcome {
    Outcome::Temporary {
        reason: "no DNS resolver is configured (dns.nameservers)".into(),
        category: Category::Dns,
    }
}

async fn remote(
    d: &Deliverer,
    job: &Job,
    body: &[u8],
    session: &mut Option<Session>,
) -> Vec<Outcome> {
    let Some(relay) = &d.relay else {
        return vec![no_resolver(); job.rcpts.len()];
    };
    // INVARIANT: a job is made with its first recipient (`run_once`).
    let domain = &job.rcpts[0].domain;
    let addrs: Vec<String> = job.rcpts.iter().map(|r| r.address.clone()).collect();
    let (statuses, via) = relay
        .send_domain(domain, &job.sender, &addrs, body, session)
        .await;
    let detail = match via {
        Some((host, tls)) => format!(
            "via {host}, {}",
            match tls {
                TlsUse::Verified => "TLS (certificate verified)",
                TlsUse::Unverified => "TLS (certificate not verified)",
                TlsUse::Plain => "no TLS",
            }
        ),
        None => String::new(),
    };
    statuses
        .into_iter()
        .map(|st| from_status(st, detail.clone()))
        .collect()
}

fn from_status(st: Status, detail: String) -> Outcome {
    match st {
        Status::Delivered => Outcome::Delivered { detail },
        Status::Temporary(reason) => Outcome::Temporary {
            category: Category::of(&reason),
            reason,
        },
        Status::Permanent(reason) => Outcome::Permanent {
            category: Category::of(&reason),
            reason,
        },
    }
}

async fn local(d: &Deliverer, address: &str, message: Vec<u8>) -> Outcome {
    match d.store.deliver(address, message).await {
        Ok(_) => Outcome::Delivered {
            detail: "delivered to a local mailbox".into(),
        },
        Err(e) => {
            let (permanent, category, reason) = match e {
                StoreError::OverQuota => (false, Category::Full, "452 4.2.2 Mailbox full".into()),
                StoreError::NoSuchAddress | StoreError::NoMailbox => (
                    true,
                    Category::UnknownUser,
                    "550 5.1.1 No such user here".into(),
                ),
                StoreError::TooBig(n) => (
                    true,
                    Category::Other,
                    format!("552 5.3.4 Message size exceeds the limit of {n} bytes"),
                ),
                StoreError::BadMessage(why) => (
                    true,
                    Category::Other,
                    format!("554 5.6.0 Message refused: {why}"),
                ),
                other => (
                    false,
                    Category::Other,
                    format!("451 4.3.0 Local delivery failed: {other}"),
                ),
            };
            if permanent {
                Outcome::Permanent { reason, category }
            } else {
                Outcome::Temporary { reason, category }
            }
        }
    }
}

/// Sends the bounce for a message's failed recipients (one report for all
/// of them) to the alias that sent it, then ends the message if it is done.
async fn bounce_and_finish(d: &Deliverer, id: i64) -> Result<(), QueueError> {
    let failed = blocking(&d.queue, move |q| q.bounces(id)).await?;
    if !failed.is_empty() {
        let (alias, sender, created) = blocking(&d.queue, move |q| q.origin(id)).await?;
        let original = blocking(&d.queue, move |q| q.body(id)).await?;
        let report = dsn::build(&dsn::Report {
            hostname: &d.hostname,
            sender: &sender,
            arrival: created,
            now: d.queue.clock.now(),
            failed: &failed,
            original: original.as_deref(),
        });
        let told = match d.store.deliver(&alias, report).await {
            Ok(_) => true,
            // The alias is gone: nobody is left to tell.
            Err(StoreError::NoSuchAddress | StoreError::NoMailbox) => {
                tracing::warn!("queue: the sender of a bounced message no longer exists");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "queue: could not deliver a bounce; will retry");
                false
            }
        };
        if !told {
            return Ok(());
        }
        let ids: Vec<i64> = failed.iter().map(|b| b.rcpt_id).collect();
        blocking(&d.queue, move |q| q.mark_bounced(&ids)).await?;
    }
    blocking(&d.queue, move |q| q.finish_if_done(id).map(drop)).await
}

/// Delivers until `stop`: a round whenever something is due, woken early
/// by `wake` (a new message), and a purge of old records every hour.
pub async fn run(
    d: Arc<Deliverer>,
    wake: async_channel::Receiver<()>,
    stop: async_channel::Receiver<()>,
) {
    let mut last_purge: Option<std::time::Instant> = None;
    loop {
        // A round in flight at shutdown is dropped: what it did not record
        // is tried again at the next start.
        let round = async { Some(run_once(&d).await) };
        let stopped = async {
            let _ = stop.recv().await;
            None
        };
        let busy = match futures_lite::future::or(round, stopped).await {
            None => return,
            Some(Ok(n)) => n >= BATCH,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "queue: delivery round failed");
                false
            }
        };
        if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            if let Err(e) = blocking(&d.queue, |q| q.purge()).await {
                tracing::warn!(error = %e, "queue: purge failed");
            }
            last_purge = Some(std::time::Instant::now());
        }
        let wait = if busy {
            Duration::ZERO
        } else {
            match blocking(&d.queue, |q| q.next_due()).await {
                Ok(Some(t)) => {
                    let secs = (t - d.queue.clock.now()).max(0) as u64;
                    Duration::from_secs(secs).min(MAX_IDLE)
                }
                _ => MAX_IDLE,
            }
        };
        if wait.is_zero() {
            if stop.is_closed() {
                return;
            }
            continue;
        }
        let woken = async {
            if wake.recv().await.is_err() {
                smol::Timer::after(wait).await;
            }
            // Let a burst of enqueues land before the round starts.
            smol::Timer::after(Duration::from_millis(20)).await;
            true
        };
        let stopped = async {
            let _ = stop.recv().await;
            false
        };
        let slept = async {
            smol::Timer::after(wait).await;
            true
        };
        let go_on = futures_lite::future::or(stopped, futures_lite::future::or(woken, slept)).await;
        if !go_on {
            return;
        }
        while wake.try_recv().is_ok() {}
    }
}

#[cfg(test)]
mod tests {
    use super::dsn;

    #[test]
    fn the_enhanced_status_code_is_found_or_defaulted() {
        let cases = [
            (
                "mx.example.net said: 550 5.1.1 <a@b>: user unknown",
                '5',
                "5.1.1",
            ),
            (
                "451 4.7.1 greylisted, try again in 5.0 minutes",
                '4',
                "4.7.1",
            ),
            ("connection refused by 192.0.2.1", '4', "4.0.0"),
            (
                "nomail.test publishes a null MX: it accepts no mail",
                '5',
                "5.0.0",
            ),
            ("250 2.0.0 Ok: queued as 12.34.56", '2', "2.0.0"),
            ("v1.2.3 says 5.7.26 unauthenticated", '5', "5.7.26"),
            ("4.4.1", '5', "5.0.0"),
            ("", '2', "2.0.0"),
        ];
        for (text, class, want) in cases {
            assert_eq!(dsn(text, class), want, "{text}");
        }
    }
}
