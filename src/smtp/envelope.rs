//! The SMTP session's state and the envelope commands: what the client
//! has established (RFC 5321 §3.3, §4.1.4), MAIL, RCPT, and the expansion
//! of local recipients into destinations.
//!
//! Imports the sibling `submit`, `store` (its interface) and `util`.
//! Invariants: a transaction exists only after MAIL was accepted and only
//! inside the state that greeted (`State::Mail`); RSET, EHLO/HELO and
//! STARTTLS end it; recipients are unique and at most `max_recipients`.

use std::io;
use std::time::Duration;

use super::Smtp;
use crate::net::conn::Conn;
use crate::store::{Account, Recipient, Route, StoreError};
use crate::util::now_unix;

/// Unknown recipients answered at full speed before each further one waits.
const FREE_PROBES: u32 = 3;
/// Local forward chains longer than this are cut (and logged).
const MAX_EXPANSION: usize = 16;

/// What EHLO or HELO said.
#[derive(Clone, Debug)]
pub struct Greeting {
    pub helo: String,
    /// EHLO (extended SMTP) rather than HELO.
    pub esmtp: bool,
}

/// A mail transaction: from MAIL until the message is answered or RSET.
#[derive(Debug)]
pub struct Transaction {
    /// Names the transaction in the log and in the Received header.
    pub id: String,
    /// When MAIL was accepted (the log's `ms`).
    pub started: std::time::Instant,
    pub from: String,
    /// MAIL carried SMTPUTF8 (RFC 6531): non-ASCII addresses allowed.
    pub smtputf8: bool,
    /// Accepted RCPT addresses, lowercased.
    pub rcpts: Vec<String>,
    /// What they expand to, without repeats.
    pub dests: Vec<Dest>,
    /// Submission: recipients at other domains.
    pub remote: Vec<String>,
    /// BDAT chunks so far (what is not yet in `spilled`), and whether
    /// they already went over the limit or found no memory.
    pub chunks: Vec<u8>,
    pub spilled: crate::util::spill::Incoming,
    pub chunks_too_big: bool,
    pub chunks_dropped: bool,
    /// What the chunks hold of the memory budget.
    pub memory: crate::util::Reserved,
    /// MAIL's SIZE (RFC 1870): DATA holds that much memory before its 354.
    pub size: Option<u64>,
}

/// The session's state; each variant holds only what is valid in it.
#[derive(Debug)]
pub enum State {
    /// Connected (or just through STARTTLS): no EHLO or HELO yet.
    Connected,
    /// Greeted, no transaction.
    Ready(Greeting),
    /// A transaction after MAIL (boxed: it is most of the state's size).
    Mail(Greeting, Box<Transaction>),
}

impl State {
    /// Ends any transaction (RSET, and after each message).
    pub fn reset(&mut self) {
        if let State::Mail(..) = self
            && let State::Mail(greeting, _) = std::mem::replace(self, State::Connected)
        {
            *self = State::Ready(greeting);
        }
    }
}

/// What outlives a transaction on one connection.
pub struct Client {
    pub state: State,
    /// Errors on this connection so far (survives EHLO and RSET).
    pub errors: u32,
    /// Unknown recipients since the last EHLO (RCPT slows down past a few).
    pub unknown_rcpts: u32,
    /// Submission: the authenticated account (kept across RSET and EHLO).
    pub account: Option<Account>,
    /// Transactions that reached the end of their message (the log).
    pub transactions: u32,
    /// What the DNS blocklists said of the client, once asked: the zone
    /// that lists it, or `None`.
    pub listed: Option<Option<String>>,
}

/// One place a message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// INBOX of this alias.
    Mailbox(String),
    /// A copy relayed to `to`, its envelope sender rewritten (SRS) at the
    /// domain of `via`, the alias that forwards.
    Forward { to: String, via: String },
    /// Mail to an SRS address of ours, relayed to the original sender
    /// with its envelope sender unchanged (usually a bounce).
    Return(String),
    /// The parsed message POSTed to `url` on behalf of `alias`.
    Webhook { url: String, alias: String },
}

impl Dest {
    /// Names the destination in the retry memory.
    pub fn key(&self) -> String {
        match self {
            Dest::Mailbox(a) => format!("mailbox:{a}"),
            Dest::Forward { to, .. } | Dest::Return(to) => format!("forward:{}", to.to_lowercase()),
            Dest::Webhook { url, alias } => format!("webhook:{alias}:{url}"),
        }
    }
}

/// MAIL FROM (RFC 5321 §4.1.1.2, RFC 1870 SIZE).
pub async fn mail(
    ctx: &Smtp,
    conn: &mut Conn,
    client: &mut Client,
    from: String,
    size: Option<u64>,
    smtputf8: bool,
) -> io::Result<()> {
    let greeting = match &client.state {
        State::Connected => return conn.reply("503 5.5.1 Send EHLO or HELO first").await,
        State::Mail(..) => return conn.reply("503 5.5.1 Nested MAIL command").await,
        State::Ready(g) => g.clone(),
    };
    if size.is_some_and(|s| s > ctx.max_message_bytes) {
        return conn
            .reply(&super::data::too_big(ctx.max_message_bytes))
            .await;
    }
    if let (Some(sub), Some(account)) = (&ctx.submission, &client.account)
        && let Some(refusal) = super::submit::check_sender(sub, account, &from).await
    {
        client.errors += 1;
        return conn.reply(&refusal).await;
    }
    if ctx.submission.is_none() && !ctx.inbound_rate.message(conn.peer.ip()) {
        client.errors += 1;
        return conn
            .reply("450 4.7.1 Too many messages from your address; try again later")
            .await;
    }
    client.state = State::Mail(
        greeting,
        Box::new(Transaction {
            id: transaction_id(),
            started: std::time::Instant::now(),
            from,
            smtputf8,
            rcpts: Vec::new(),
            dests: Vec::new(),
            remote: Vec::new(),
            chunks: Vec::new(),
            spilled: crate::util::spill::Incoming::new(&ctx.spills),
            chunks_too_big: false,
            chunks_dropped: false,
            memory: ctx.memory.start(),
            size,
        }),
    );
    conn.reply("250 2.1.0 Sender OK").await
}

/// The log line of a refused recipient (the transaction's own line, at
/// its end, names those accepted).
fn refused_rcpt(conn: &Conn, id: String, to: &str, code: &str) {
    let to = crate::util::log::addr(to);
    tracing::info!(
        target: "sealmail::smtp",
        id = %id,
        client = %conn.peer.ip(),
        to = to.as_ref(),
        reply = %code,
        "rcpt refused"
    );
}

/// 12 random hex digits.
fn transaction_id() -> String {
    let id = crate::util::random_id().unwrap_or_default();
    id.get(..12).unwrap_or(&id).to_string()
}

/// RCPT TO (RFC 5321 §4.1.1.3): a local alias, an SRS return address of
/// ours, or (submission only) any foreign address.
pub async fn rcpt(ctx: &Smtp, conn: &mut Conn, client: &mut Client, to: String) -> io::Result<()> {
    let tx = match &mut client.state {
        State::Connected => return conn.reply("503 5.5.1 Send EHLO or HELO first").await,
        State::Ready(_) => return conn.reply("503 5.5.1 Send MAIL first").await,
        State::Mail(_, tx) => tx,
    };
    if !tx.smtputf8 && !to.is_ascii() {
        return conn
            .reply("553 5.6.7 A non-ASCII address needs SMTPUTF8 on MAIL")
            .await;
    }
    // RFC 5321 §4.5.3.1.8 asks for at least 100 (`mx.max_recipients`).
    if tx.rcpts.len() >= ctx.max_recipients.get() {
        return conn
            .reply("452 4.5.3 Too many recipients; send the rest in another message")
            .await;
    }
    if ctx.submission.is_none() && !ctx.inbound_rate.recipient(conn.peer.ip()) {
        client.errors += 1;
        return conn
            .reply("450 4.7.1 Too many recipients from your address; try again later")
            .await;
    }
    let to = if to == crate::proto::smtp::POSTMASTER {
        match ctx.store.own_postmaster(&ctx.hostname).await {
            Some(address) => address,
            None => {
                return conn
                    .reply("550 5.1.1 This server has no postmaster address")
                    .await;
            }
        }
    } else {
        to
    };
    let tx_id = tx.id.clone();
    if !is_postmaster(&to)
        && let Some(zone) = listed(ctx, conn, &mut client.listed).await
    {
        client.errors += 1;
        refused_rcpt(conn, tx_id, &to, "554 5.7.1");
        return conn
            .reply(&format!(
                "554 5.7.1 Service unavailable; client [{}] is listed by {zone}",
                conn.peer.ip()
            ))
            .await;
    }
    let lookup = ctx.store.lookup(&to).await;
    if ctx.submission.is_some() && matches!(lookup, Ok(Recipient::ForeignDomain)) {
        // An authenticated user may send anywhere.
        if !tx.remote.iter().any(|r| r.eq_ignore_ascii_case(&to)) {
            tx.remote.push(to.clone());
            tx.rcpts.push(to.to_lowercase());
        }
        return conn.reply("250 2.1.5 Recipient OK").await;
    }
    let srs_return = match (&lookup, &ctx.relay) {
        _ if ctx.submission.is_some() => None,
        (Ok(Recipient::UnknownUser), Some(relay)) => to
            .rsplit_once('@')
            .and_then(|(local, _)| relay.srs.reverse(local, today())),
        _ => None,
    };
    match (lookup, srs_return) {
        (Ok(Recipient::Local(route)), _) => {
            if let Err(e) = expand(ctx, route, &mut tx.dests).await {
                tracing::warn!(error = %e, "recipient lookup failed");
                return conn
                    .reply("451 4.3.0 Temporary lookup failure; try again later")
                    .await;
            }
            let to = to.to_lowercase();
            if !tx.rcpts.contains(&to) {
                tx.rcpts.push(to);
            }
            conn.reply("250 2.1.5 Recipient OK").await
        }
        (Ok(Recipient::UnknownUser), Some(original)) => {
            push_unique(&mut tx.dests, Dest::Return(original));
            tx.rcpts.push(to.to_lowercase());
            conn.reply("250 2.1.5 Recipient OK").await
        }
        (Ok(Recipient::UnknownUser), None) => {
            client.errors += 1;
            client.unknown_rcpts += 1;
            if client.unknown_rcpts > FREE_PROBES {
                let wait =
                    Duration::from_millis(250 * u64::from(client.unknown_rcpts - FREE_PROBES))
                        .min(Duration::from_secs(5));
                smol::Timer::after(wait).await;
            }
            refused_rcpt(conn, tx_id, &to, "550 5.1.1");
            conn.reply("550 5.1.1 No such user here").await
        }
        (Ok(Recipient::ForeignDomain), _) => {
            client.errors += 1;
            refused_rcpt(conn, tx_id, &to, "550 5.7.1");
            conn.reply("550 5.7.1 Relaying denied").await
        }
        (Err(e), _) => {
            tracing::warn!(error = %e, "recipient lookup failed");
            conn.reply("451 4.3.0 Temporary lookup failure; try again later")
                .await
        }
    }
}

/// Whether `address` is a postmaster@ (which takes mail from anyone,
/// RFC 5321 §4.5.1).
fn is_postmaster(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(local, _)| local.eq_ignore_ascii_case(crate::proto::smtp::POSTMASTER))
}

/// The blocklist zone that lists the MX client, asked once a connection
/// (`known` keeps the answer). A list that cannot be asked counts as not
/// listing it.
async fn listed(ctx: &Smtp, conn: &Conn, known: &mut Option<Option<String>>) -> Option<String> {
    if let Some(k) = known {
        return k.clone();
    }
    let mut found = None;
    if let Some(bl) = &ctx.dnsbl
        && ctx.submission.is_none()
    {
        let ip = conn.peer.ip();
        for zone in &bl.zones {
            match bl.dns.dnsbl(ip, zone).await {
                Ok(Some(code)) => {
                    tracing::info!(client = %ip, %zone, %code, "client listed by a DNS blocklist");
                    found = Some(zone.clone());
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%zone, error = ?e, "DNS blocklist not answered; counted as not listed")
                }
            }
        }
    }
    *known = Some(found.clone());
    found
}

/// Days since the epoch, for SRS timestamps.
pub fn today() -> u64 {
    (now_unix().max(0) / 86_400) as u64
}

fn push_unique(dests: &mut Vec<Dest>, d: Dest) {
    if !dests.contains(&d) {
        dests.push(d);
    }
}

/// Follows an alias' forwards through other local aliases (each visited
/// once, at most `MAX_EXPANSION`), collecting mailboxes, webhooks and
/// foreign forward targets.
pub async fn expand(ctx: &Smtp, route: Route, dests: &mut Vec<Dest>) -> Result<(), StoreError> {
    let mut seen = vec![route.address.clone()];
    let mut queue = vec![route];
    while let Some(r) = queue.pop() {
        if r.mailbox {
            push_unique(dests, Dest::Mailbox(r.address.clone()));
        }
        for url in &r.webhooks {
            push_unique(
                dests,
                Dest::Webhook {
                    url: url.clone(),
                    alias: r.address.clone(),
                },
            );
        }
        for target in &r.forward {
            let lower = target.to_lowercase();
            if seen.contains(&lower) {
                continue;
            }
            seen.push(lower);
            match ctx.store.lookup(target).await? {
                Recipient::Local(next) if seen.len() <= MAX_EXPANSION => queue.push(next),
                Recipient::Local(_) => {
                    tracing::warn!("local forwarding chain too long; cut");
                }
                Recipient::UnknownUser => {
                    tracing::warn!("a forward target is an unknown local address; skipped");
                }
                Recipient::ForeignDomain => push_unique(
                    dests,
                    Dest::Forward {
                        to: target.clone(),
                        via: r.address.clone(),
                    },
                ),
            }
        }
    }
    Ok(())
}
