//! The end of a transaction: trace headers, sender checks, and handing
//! the message to every destination — the store for mailboxes (durable
//! before the reply; where each owner's Sieve script says, `filter`), the
//! relay for forwards and webhooks, the outbound queue for submissions.
//!
//! Imports `openpgp`, `relay`, `store` (its interface), `util` and the
//! siblings.
//! Invariants: 250 only if every destination has the message; a temporary
//! failure anywhere answers 4xx, and the destinations that did get it are
//! remembered so the sending MTA's retry skips them; a filter's reject is
//! a 550 only when no other destination took the message; an alias that
//! forwards encrypted never forwards its copy in the clear; the MX's Received
//! header names the client's HELO and address, submission's its HELO only
//! unless `submission.hide_client_address` is off; content checks
//! (executables, viruses) read the message in memory only.

use super::Smtp;
use super::data::too_big;
use super::envelope::{Dest, Greeting, Transaction, today};
use super::retry;
use super::virus::Outcome;
use crate::net::conn::Conn;
use crate::relay::client::Status;
use crate::store::{Account, PgpKey, StoreError};
use crate::util::{now_unix, rfc5322_date};

/// Header limits: a header larger than this is refused at the end of data
/// (552 5.3.4), before anything parses it.
const MAX_HEADER_BYTES: usize = 1 << 20;
const MAX_HEADER_LINES: usize = 10_000;

/// What `deliver` needs of the session.
pub struct Envelope<'a> {
    pub greeting: &'a Greeting,
    pub tx: &'a Transaction,
    /// Submission: the authenticated account.
    pub account: Option<&'a Account>,
}

/// Relay hops a message may have made before we refuse it as a loop
/// (RFC 5321 §6.3 suggests counting Received headers; Postfix uses 50).
const MAX_HOPS: usize = 50;

/// How one destination fared.
enum Failure {
    Temporary(String),
    Permanent(String),
}

/// Adds trace headers and hands the message to every destination: the
/// store for mailboxes (durable before this returns), the relay for
/// forwards and webhooks. 250 only if every destination has it; a
/// temporary failure anywhere answers 4xx, and the destinations that did
/// get it are remembered so the sending MTA's retry skips them.
pub async fn deliver(ctx: &Smtp, conn: &Conn, env: &Envelope<'_>, body: Vec<u8>) -> Delivered {
    let mut checks = None;
    let reply = deliver_checked(ctx, conn, env, body, &mut checks).await;
    Delivered { reply, checks }
}

/// The reply to a finished message, and what the MX's sender checks found
/// (`spf=pass dkim=none dmarc=pass`, for the log).
pub struct Delivered {
    pub reply: String,
    pub checks: Option<String>,
}

async fn deliver_checked(
    ctx: &Smtp,
    conn: &Conn,
    env: &Envelope<'_>,
    body: Vec<u8>,
    checks: &mut Option<String>,
) -> String {
    if let Some(refusal) = header_refusal(&body) {
        return refusal;
    }
    let (greeting, tx) = (env.greeting, env.tx);
    if let (Some(sub), Some(account)) = (&ctx.submission, env.account) {
        let rcpts = super::submit::recipients(&tx.dests, &tx.remote);
        let from = tx.from.as_str();
        let client = (
            greeting.helo.as_str(),
            (!sub.hide_client_address).then(|| conn.peer.ip()),
        );
        return super::submit::queue_message(ctx, sub, account, client, from, rcpts, body).await;
    }
    if ctx.refuse_executables
        && !super::content::allowed_for_all(&tx.rcpts, &ctx.allow_executables)
        && let Some(refusal) = super::content::refusal(&body, ctx.mime_limits)
    {
        return refusal;
    }
    let body = match scanned(ctx, tx, body).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let (body, spam) = match filtered(ctx, conn, env, body).await {
        Ok(filtered) => filtered,
        Err(refusal) => return refusal,
    };
    let id = tx.id.as_str();
    let from = tx.from.as_str();
    // Mail for postmaster@ only is taken even when DMARC says reject
    // (RFC 5321 §4.5.1: postmaster takes mail from anyone); it carries
    // the failing result.
    let to_postmaster = !tx.rcpts.is_empty()
        && tx
            .rcpts
            .iter()
            .all(|r| r.rsplit_once('@').is_some_and(|(l, _)| l == "postmaster"));
    // Postmaster reads what fails too, in INBOX.
    let mut junk = spam && !to_postmaster;
    let relayed = match traced(
        ctx,
        conn,
        (greeting, from, id),
        &body,
        to_postmaster,
        checks,
        &mut junk,
    )
    .await
    {
        Ok(m) => m,
        Err(refusal) => return refusal,
    };
    let digest = retry::message_digest(from, &body);
    drop(body);

    let mut outcomes: Vec<(&Dest, Result<(), Failure>)> = Vec::new();
    let todo: Vec<&Dest> = tx
        .dests
        .iter()
        .filter(|d| !ctx.delivered.contains(&digest, &d.key()))
        .collect();
    let skipped = tx.dests.len() - todo.len();
    let rejected = store_copies(ctx, (from, &tx.rcpts, junk), &relayed, &todo, &mut outcomes).await;
    relay_copies(ctx, from, &relayed, &todo, &mut outcomes).await;
    match verdict(&outcomes, skipped) {
        Verdict::Temporary(t) => {
            for (d, r) in &outcomes {
                if r.is_ok() {
                    ctx.delivered.insert(&digest, &d.key());
                }
            }
            t
        }
        Verdict::Refused(p) => p,
        Verdict::Accepted => {
            // Others took it: those whose filter rejected it say so by
            // mail (RFC 5429 §2.1).
            if let Some(f) = &ctx.filters {
                for (alias, reason) in &rejected {
                    f.notify_reject(ctx, (alias, from), reason, &relayed).await;
                }
            }
            format!("250 2.0.0 Message accepted as {id}")
        }
    }
}

/// The message once clamd has seen it (`[mx.clamd]`, unless every
/// recipient is exempt): `Err` is the refusal of a virus (550 5.7.1) or,
/// when clamd could not say, the deferral (451 4.7.1); delivering unscanned
/// instead puts a header on top saying why.
async fn scanned(ctx: &Smtp, tx: &Transaction, body: Vec<u8>) -> Result<Vec<u8>, String> {
    let Some(clamd) = &ctx.clamd else {
        return Ok(body);
    };
    if super::content::allowed_for_all(&tx.rcpts, &clamd.exempt) {
        return Ok(body);
    }
    match super::virus::scan(clamd, &body).await {
        Outcome::Clean => Ok(body),
        Outcome::Infected(name) => {
            tracing::info!(id = %tx.id, virus = %name, "message refused: clamd found a virus");
            Err(format!(
                "550 5.7.1 Message refused: the virus scanner found {name} in it"
            ))
        }
        Outcome::Unscanned(why) if !clamd.deliver_unscanned => {
            tracing::warn!(id = %tx.id, %why, "message deferred: not scanned for viruses");
            Err("451 4.7.1 The message could not be scanned for viruses; try again later".into())
        }
        Outcome::Unscanned(why) => {
            tracing::warn!(id = %tx.id, %why, "message delivered without a virus scan, as mx.clamd.when_unreachable says");
            Ok(with_header(&super::virus::unscanned_header(&why), &body))
        }
    }
}

/// The message once rspamd has judged it (`[mx.rspamd]`, unless every
/// recipient is exempt), with its `X-Spam-Status` on top, and whether it
/// goes to Junk; `Err` is the refusal (550 5.7.1) or deferral (451 4.7.1)
/// rspamd's action asks for. Unchecked mail is delivered, marked.
async fn filtered(
    ctx: &Smtp,
    conn: &Conn,
    env: &Envelope<'_>,
    body: Vec<u8>,
) -> Result<(Vec<u8>, bool), String> {
    use super::spam;
    use crate::proto::rspamd::Action;
    let Some(rspamd) = &ctx.rspamd else {
        return Ok((body, false));
    };
    let tx = env.tx;
    if super::content::allowed_for_all(&tx.rcpts, &rspamd.exempt) {
        return Ok((body, false));
    }
    let about = spam::Envelope {
        client: conn.peer.ip(),
        helo: &env.greeting.helo,
        from: &tx.from,
        rcpts: &tx.rcpts,
        id: &tx.id,
    };
    let (header, junk) = match spam::check(rspamd, &body, &about).await {
        Ok(v) => {
            tracing::info!(id = %tx.id, action = v.action.as_str(), score = v.score, "rspamd's verdict");
            match v.action {
                Action::Reject => {
                    return Err("550 5.7.1 Message refused: the spam filter judged it spam".into());
                }
                Action::SoftReject | Action::Greylist => {
                    return Err("451 4.7.1 The spam filter asks to try again later".into());
                }
                Action::AddHeader | Action::RewriteSubject => (spam::status_header(&v), true),
                Action::NoAction => (spam::status_header(&v), false),
            }
        }
        Err(why) => {
            tracing::warn!(id = %tx.id, %why, "message delivered without a spam check");
            (spam::unchecked_header(&why), false)
        }
    };
    Ok((with_header(&header, &body), junk))
}

/// `body` with a header field (a whole `Name: value\r\n` line) on top.
fn with_header(header: &str, body: &[u8]) -> Vec<u8> {
    let mut marked = Vec::with_capacity(header.len() + body.len());
    marked.extend_from_slice(header.as_bytes());
    marked.extend_from_slice(body);
    marked
}

/// 552 for a header over the limits, 554 for a mail loop, before anything
/// parses the message.
fn header_refusal(body: &[u8]) -> Option<String> {
    let header_end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(body.len(), |i| i + 2);
    let header = body.get(..header_end).unwrap_or_default();
    if header_end > MAX_HEADER_BYTES
        || header.iter().filter(|&&b| b == b'\n').count() > MAX_HEADER_LINES
    {
        return Some(format!(
            "552 5.3.4 Message header too large (limits: {MAX_HEADER_BYTES} bytes, {MAX_HEADER_LINES} lines)"
        ));
    }
    (received_count(header) >= MAX_HOPS)
        .then(|| "554 5.4.6 Too many hops; mail loop suspected".to_string())
}

/// The message with this hop's Authentication-Results (above, RFC 8601
/// §2.1) and Received headers, less the results fields that claim this
/// server's authserv-id; `Err` is the refusal of a DMARC reject
/// (never for mail to postmaster@ only); `junk` is set when DMARC failed
/// under a quarantine policy (or a reject policy not enforced).
async fn traced(
    ctx: &Smtp,
    conn: &Conn,
    (greeting, from, id): (&Greeting, &str, &str),
    body: &[u8],
    to_postmaster: bool,
    checks: &mut Option<String>,
    junk: &mut bool,
) -> Result<Vec<u8>, String> {
    let with = match (greeting.esmtp, conn.is_tls()) {
        (true, true) => "ESMTPS",
        (true, false) => "ESMTP",
        (false, true) => "SMTPS",
        (false, false) => "SMTP",
    };
    // What a postmaster tracing a message needs (RFC 5321 §4.4): the
    // client's HELO and address, and the TLS it used.
    let address = address_literal(conn.peer.ip());
    let tls = if conn.is_tls() {
        format!(" ({})", conn.tls_description())
    } else {
        String::new()
    };
    let received = format!(
        "Received: from {} ({address})\r\n\tby {} (sealmail) with {with}{tls} id {id};\r\n\t{}\r\n",
        greeting.helo,
        ctx.hostname,
        rfc5322_date(now_unix())
    );
    let mut relayed = Vec::with_capacity(body.len() + 1024);
    if let Some(auth) = &ctx.auth {
        let verdict = auth.check(conn.peer.ip(), &greeting.helo, from, body).await;
        *checks = Some(verdict.summary.clone());
        // Postmaster reads what fails too, in INBOX.
        *junk |= verdict.junk && !to_postmaster;
        if verdict.dmarc_reject && !to_postmaster {
            return Err("550 5.7.1 Rejected: the sender's domain publishes a DMARC reject policy and this message fails it"
                .to_string());
        }
        relayed.extend_from_slice(verdict.header.as_bytes());
    }
    relayed.extend_from_slice(received.as_bytes());
    // Results claiming to be this server's are forged (RFC 8601 §5); the
    // checks above read the message as it came.
    relayed.extend_from_slice(&crate::proto::results::strip_claims(body, &ctx.authserv_id));
    Ok(relayed)
}

/// An address as a Received header's TCP-info writes it (RFC 5321 §4.4):
/// `[192.0.2.7]`, `[IPv6:2001:db8::7]`; a v4-mapped address as v4.
pub(super) fn address_literal(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(a) => format!("[{a}]"),
        std::net::IpAddr::V6(a) => format!("[IPv6:{a}]"),
    }
}

/// Files the copies of each mailbox destination: where its owner's Sieve
/// script says, else INBOX (the Junk folder when `junk`); Return-Path is
/// added at final delivery (RFC 5321 §4.4). A script's redirects and
/// replies are queued once its alias' copies are stored. Returns the
/// aliases whose script rejected the message, with the reason (each is a
/// 550 among the outcomes).
async fn store_copies<'d>(
    ctx: &Smtp,
    (from, rcpts, junk): (&str, &[String], bool),
    message: &[u8],
    todo: &[&'d Dest],
    outcomes: &mut Vec<(&'d Dest, Result<(), Failure>)>,
) -> Vec<(&'d str, String)> {
    let mut plans = Vec::new();
    for d in todo.iter().copied() {
        let Dest::Mailbox(alias) = d else { continue };
        let plan = match &ctx.filters {
            Some(f) => {
                let rcpt = envelope_rcpt(rcpts, alias);
                f.plan(&ctx.store, (alias, rcpt, from), message, junk).await
            }
            None => super::filter::Plan::plain(junk),
        };
        plans.push((d, alias.as_str(), plan));
    }
    let mut copies_left: usize = plans.iter().map(|(_, _, p)| p.placements.len()).sum();
    let mut stored: Option<Vec<u8>> = None;
    let mut rejected = Vec::new();
    for (d, alias, plan) in &plans {
        if let Some(reason) = &plan.reject {
            tracing::info!("Sieve rejected the message for one recipient");
            rejected.push((*alias, reason.clone()));
            outcomes.push((d, Err(Failure::Permanent(format!("550 5.7.1 {reason}")))));
            continue;
        }
        let mut result = Ok(());
        for to in &plan.placements {
            let copy = stored.get_or_insert_with(|| {
                let mut m = format!("Return-Path: <{from}>\r\n").into_bytes();
                m.reserve_exact(message.len());
                m.extend_from_slice(message);
                m
            });
            // The last copy takes the message itself: one message, one copy.
            copies_left -= 1;
            let copy = if copies_left == 0 {
                std::mem::take(copy)
            } else {
                copy.clone()
            };
            if let Err(e) = ctx.store.deliver_to(alias, copy, to.clone()).await {
                result = Err(store_failure(e));
                break;
            }
        }
        if result.is_ok()
            && let Some(f) = &ctx.filters
        {
            f.send(ctx, (alias, from), plan, message).await;
        }
        outcomes.push((d, result));
    }
    rejected
}

/// The RCPT that reached `alias`: itself, or the one recipient of the
/// transaction (an alias that forwards here), as Sieve's `envelope "to"`.
fn envelope_rcpt<'a>(rcpts: &'a [String], alias: &'a str) -> &'a str {
    match rcpts {
        [one] => one,
        _ => rcpts
            .iter()
            .find(|r| r.eq_ignore_ascii_case(alias))
            .map_or(alias, String::as_str),
    }
}

/// How a store failure answers the sender.
fn store_failure(e: StoreError) -> Failure {
    tracing::warn!(error = %e, "delivery failed");
    match e {
        StoreError::TooBig(n) => Failure::Permanent(too_big(n)),
        StoreError::OverQuota => {
            Failure::Temporary("452 4.2.2 Mailbox full; try again later".into())
        }
        StoreError::BadMessage(why) => {
            Failure::Permanent(format!("554 5.6.0 Message refused: {why}"))
        }
        _ => Failure::Temporary(
            "451 4.3.0 Temporary failure storing the message; try again later".into(),
        ),
    }
}

/// What the destinations' outcomes add up to.
enum Verdict {
    /// Some destination failed temporarily: the sender retries.
    Temporary(String),
    /// Nobody got it: the sender learns why.
    Refused(String),
    /// Every destination, or some (a refusal elsewhere is logged).
    Accepted,
}

fn verdict(outcomes: &[(&Dest, Result<(), Failure>)], skipped: usize) -> Verdict {
    let mut temporary = None;
    let mut permanent = None;
    let mut delivered = skipped;
    for (d, r) in outcomes {
        match r {
            Ok(()) => delivered += 1,
            Err(Failure::Temporary(t)) => {
                temporary.get_or_insert(t.clone());
            }
            Err(Failure::Permanent(p)) => {
                // Addresses (and remote replies, which quote them) only at
                // debug level.
                let kind = match d {
                    Dest::Mailbox(_) => "mailbox",
                    Dest::Forward { .. } | Dest::Return(_) => "forward",
                    Dest::Webhook { .. } => "webhook",
                };
                tracing::warn!(kind, "a destination refused the message");
                tracing::debug!(destination = ?d, reply = %p, "refusal");
                permanent.get_or_insert(p.clone());
            }
        }
    }
    match (temporary, permanent) {
        (Some(t), _) => Verdict::Temporary(t),
        (None, Some(p)) if delivered == 0 => Verdict::Refused(p),
        _ => Verdict::Accepted,
    }
}

/// The alias whose forwarded copies are encrypted, and its key.
type EncryptedBy<'a> = (&'a str, PgpKey);

/// Forwards (grouped by the SRS domain they are sent from) and webhooks.
async fn relay_copies<'d>(
    ctx: &Smtp,
    from: &str,
    message: &[u8],
    todo: &[&'d Dest],
    outcomes: &mut Vec<(&'d Dest, Result<(), Failure>)>,
) {
    let relayed: Vec<&Dest> = todo
        .iter()
        .copied()
        .filter(|d| !matches!(d, Dest::Mailbox(_)))
        .collect();
    if relayed.is_empty() {
        return;
    }
    let Some(relay) = &ctx.relay else {
        for d in relayed {
            outcomes.push((
                d,
                Err(Failure::Temporary(
                    "451 4.3.0 Forwarding is unavailable (no DNS resolver); try again later".into(),
                )),
            ));
        }
        return;
    };
    // One transaction per envelope sender (SRS at each forwarding alias'
    // domain, or the original sender for returns) and per message: the
    // copies of an alias that forwards encrypted are its own.
    let mut groups: Vec<(String, Option<EncryptedBy>, Vec<&Dest>)> = Vec::new();
    for d in relayed.iter().copied() {
        let (sender, encrypted_by) = match d {
            Dest::Forward { via, .. } => {
                let domain = via.rsplit_once('@').map_or("", |(_, dom)| dom);
                let key = match ctx.store.pgp_key(via).await {
                    Ok(Some(k)) if k.forward => Some((via.as_str(), k)),
                    _ => None,
                };
                (relay.srs.forward(from, domain, today()), key)
            }
            Dest::Return(_) => (from.to_string(), None),
            _ => continue,
        };
        let via = encrypted_by.as_ref().map(|(v, _)| *v);
        match groups
            .iter_mut()
            .find(|(s, e, _)| *s == sender && e.as_ref().map(|(v, _)| *v) == via)
        {
            Some((_, _, list)) => list.push(d),
            None => groups.push((sender, encrypted_by, vec![d])),
        }
    }
    for (sender, encrypted_by, list) in groups {
        let rcpts: Vec<String> = list
            .iter()
            .map(|d| match d {
                Dest::Forward { to, .. } | Dest::Return(to) => to.clone(),
                _ => String::new(),
            })
            .collect();
        let copy = match encrypted_by {
            Some((_, key)) => match encrypted_copy(key, message).await {
                Ok(copy) => copy,
                Err(why) => {
                    tracing::error!(error = %why, "an encrypted forward could not be made");
                    for d in list {
                        outcomes.push((
                            d,
                            Err(Failure::Temporary(
                                "451 4.3.0 Encrypting the forwarded copy failed; try again later"
                                    .into(),
                            )),
                        ));
                    }
                    continue;
                }
            },
            None => message.to_vec(),
        };
        let statuses = relay.send(&sender, &rcpts, &copy).await;
        for (d, st) in list.into_iter().zip(statuses) {
            outcomes.push((d, relay_failure(st, "Forwarding")));
        }
    }
    for d in relayed {
        if let Dest::Webhook { url, alias } = d {
            let st = relay
                .webhook(url, alias, from, message, ctx.mime_limits)
                .await;
            outcomes.push((d, relay_failure(st, "Webhook delivery")));
        }
    }
}

/// The message encrypted to the OpenPGP key of the alias that forwards it
/// (PGP/MIME, as its mailbox would keep it), off the executor.
async fn encrypted_copy(key: PgpKey, message: &[u8]) -> Result<Vec<u8>, String> {
    let message = message.to_vec();
    blocking::unblock(move || crate::openpgp::encrypt_for(&key.key, message, key.protect_subject))
        .await
}

fn relay_failure(st: Status, what: &str) -> Result<(), Failure> {
    match st {
        Status::Delivered => Ok(()),
        Status::Temporary(why) => Err(Failure::Temporary(format!(
            "451 4.4.0 {what} failed temporarily ({}); try again later",
            printable(&why)
        ))),
        Status::Permanent(why) => Err(Failure::Permanent(format!(
            "554 5.4.0 {what} refused: {}",
            printable(&why)
        ))),
    }
}

/// Text from elsewhere (a remote reply, a Sieve script's reject reason),
/// safe to put in one reply line: control characters become spaces.
pub(super) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| (' '..='~').contains(c))
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Received header fields in a header block.
fn received_count(header: &[u8]) -> usize {
    header
        .split(|&b| b == b'\n')
        .filter(|l| {
            l.get(..9)
                .is_some_and(|h| h.eq_ignore_ascii_case(b"received:"))
        })
        .count()
}
