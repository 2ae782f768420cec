//! One inbound SMTP connection: greeting, EHLO, the mail transaction,
//! DATA and BDAT, STARTTLS.
//!
//! Imports `net`, `proto::smtp`, `store`, `util`. Invariants: replies carry
//! RFC 3463 enhanced codes; the envelope is reset by RSET, EHLO/HELO and
//! STARTTLS; replies are flushed when no pipelined command is waiting.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::Smtp;
use super::retry;
use crate::net::conn::{Conn, Incoming, Stream, accept_tls, with_timeout};
use crate::net::listener::Accepted;
use crate::proto::smtp::{self as proto, Command, DataReceiver, ParseError};
use crate::relay::client::Status;
use crate::store::{Account, Recipient, Route, StoreError};
use crate::util::{now_unix, random_id, rfc5322_date};

/// RFC 5321 §4.5.3.2: 3 minutes for each DATA block (the command timeout
/// and the whole-DATA deadline are `Smtp::timeouts`).
const DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(3 * 60);
/// A TLS handshake gets at most this (or the command timeout if shorter).
const TLS_TIMEOUT: Duration = Duration::from_secs(30);
/// Errors (unknown commands, syntax, refused recipients, long lines) a
/// connection may make before it is closed (Postfix's
/// `smtpd_hard_error_limit`).
const MAX_ERRORS: u32 = 20;
/// Header limits: a header larger than this is refused at the end of data
/// (552 5.3.4), before anything parses it.
const MAX_HEADER_BYTES: usize = 1 << 20;
const MAX_HEADER_LINES: usize = 10_000;
/// Recipients per message (RFC 5321 §4.5.3.1.8 asks for at least 100).
const MAX_RECIPIENTS: usize = 100;
/// Unknown recipients answered at full speed before each further one waits.
const FREE_PROBES: u32 = 3;

/// The mail transaction in progress.
#[derive(Default)]
struct Envelope {
    helo: Option<String>,
    esmtp: bool,
    from: Option<String>,
    /// MAIL carried SMTPUTF8 (RFC 6531): non-ASCII addresses allowed.
    smtputf8: bool,
    /// Accepted RCPT addresses, lowercased.
    rcpts: Vec<String>,
    /// Errors on this connection so far (survives EHLO and RSET).
    errors: u32,
    /// What they expand to, without repeats.
    dests: Vec<Dest>,
    unknown_rcpts: u32,
    /// BDAT chunks so far, and whether they already went over the limit.
    chunks: Vec<u8>,
    chunks_too_big: bool,
    /// Submission: the authenticated account (kept across RSET and EHLO).
    account: Option<Account>,
    /// Submission: recipients at other domains.
    remote: Vec<String>,
}

impl Envelope {
    fn reset(&mut self) {
        self.from = None;
        self.smtputf8 = false;
        self.rcpts.clear();
        self.dests.clear();
        self.remote.clear();
        self.chunks = Vec::new();
        self.chunks_too_big = false;
    }
}

/// One place a message goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Dest {
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
    fn key(&self) -> String {
        match self {
            Dest::Mailbox(a) => format!("mailbox:{a}"),
            Dest::Forward { to, .. } | Dest::Return(to) => format!("forward:{}", to.to_lowercase()),
            Dest::Webhook { url, alias } => format!("webhook:{alias}:{url}"),
        }
    }
}

/// Local forward chains longer than this are cut (and logged).
const MAX_EXPANSION: usize = 16;

enum Next {
    Continue,
    Quit,
}

/// Serves one connection until QUIT, EOF, timeout or shutdown; with
/// `implicit_tls` (port 465) the TLS handshake comes first.
pub async fn serve(
    ctx: Arc<Smtp>,
    acc: Accepted,
    implicit_tls: bool,
    stop: async_channel::Receiver<()>,
) {
    let _guard = acc.guard;
    let stream = if implicit_tls {
        match accept_tls(acc.tcp, &ctx.tls, ctx.timeouts.command.min(TLS_TIMEOUT)).await {
            Ok(s) => s,
            Err(_) => return,
        }
    } else {
        Stream::Plain(acc.tcp)
    };
    let mut conn = Conn::new(stream, acc.peer);
    let greeting = format!("220 {} ESMTP sealmail\r\n", ctx.hostname);
    if conn.write_all(greeting.as_bytes()).await.is_err() || conn.flush().await.is_err() {
        return;
    }
    let mut env = Envelope::default();
    loop {
        let timeout = ctx.timeouts.command;
        let next = match conn.next_line(proto::MAX_LINE, timeout, &stop).await {
            Incoming::Line(l) => step(&ctx, &mut conn, &mut env, &l).await,
            Incoming::TooLong => {
                env.errors += 1;
                conn.reply("500 5.5.2 Line too long")
                    .await
                    .map(|()| Next::Continue)
            }
            Incoming::Shutdown => {
                let _ = conn
                    .reply("421 4.3.2 Server shutting down; try again later")
                    .await;
                break;
            }
            Incoming::TimedOut => {
                let _ = conn.reply("421 4.4.2 Timeout; closing connection").await;
                break;
            }
            Incoming::Closed => break,
        };
        match next {
            Ok(Next::Continue) => {}
            Ok(Next::Quit) | Err(_) => break,
        }
        if env.errors > MAX_ERRORS {
            let _ = conn
                .reply("421 4.7.0 Too many errors; closing connection")
                .await;
            break;
        }
        if conn.flush_unless_pipelined().await.is_err() {
            break;
        }
    }
    conn.close().await;
}

async fn step(ctx: &Smtp, conn: &mut Conn, env: &mut Envelope, line: &[u8]) -> io::Result<Next> {
    let cmd = match proto::parse(line) {
        Ok(c) => c,
        Err(ParseError::Unknown) => {
            env.errors += 1;
            conn.reply("500 5.5.2 Command not recognized").await?;
            return Ok(Next::Continue);
        }
        Err(ParseError::Syntax(why)) => {
            env.errors += 1;
            conn.reply(&format!("501 5.5.4 Syntax error: {why}"))
                .await?;
            return Ok(Next::Continue);
        }
    };
    match cmd {
        Command::Ehlo(domain) => ehlo(ctx, conn, env, domain, true).await?,
        Command::Helo(domain) => ehlo(ctx, conn, env, domain, false).await?,
        Command::StartTls if conn.is_tls() => conn.reply("503 5.5.1 TLS is already active").await?,
        Command::StartTls => {
            conn.reply("220 2.0.0 Ready to start TLS").await?;
            conn.flush().await?;
            conn.start_tls(&ctx.tls, ctx.timeouts.command.min(TLS_TIMEOUT))
                .await?;
            // RFC 3207 §4.2: forget everything learned before TLS.
            *env = Envelope {
                errors: env.errors,
                ..Envelope::default()
            };
        }
        Command::Mail { .. } | Command::Rcpt(_) | Command::Data | Command::Bdat { .. }
            if env.helo.is_none() =>
        {
            conn.reply("503 5.5.1 Send EHLO or HELO first").await?;
        }
        Command::Mail { .. } if ctx.submission.is_some() && env.account.is_none() => {
            conn.reply("530 5.7.0 Authentication required").await?;
        }
        Command::Mail {
            from,
            size,
            smtputf8,
        } => {
            if !smtputf8 && !from.is_ascii() {
                conn.reply("553 5.6.7 A non-ASCII address needs the SMTPUTF8 parameter")
                    .await?;
            } else {
                env.smtputf8 = smtputf8;
                mail(ctx, conn, env, from, size).await?;
            }
        }
        Command::Rcpt(to) if !env.smtputf8 && !to.is_ascii() => {
            conn.reply("553 5.6.7 A non-ASCII address needs SMTPUTF8 on MAIL")
                .await?;
        }
        Command::Rcpt(to) => rcpt(ctx, conn, env, to).await?,
        Command::Data => data(ctx, conn, env).await?,
        Command::Bdat { size, last } => bdat(ctx, conn, env, size, last).await?,
        Command::Rset => {
            env.reset();
            conn.reply("250 2.0.0 OK").await?;
        }
        Command::Noop => conn.reply("250 2.0.0 OK").await?,
        Command::Vrfy => {
            conn.reply(
                "252 2.1.5 Cannot verify; send the message and it will be delivered if it can",
            )
            .await?
        }
        Command::Help => conn.reply("214 2.0.0 See RFC 5321").await?,
        Command::Auth { mechanism, initial } => {
            let Some(sub) = &ctx.submission else {
                conn.reply("503 5.5.1 Authentication is for the submission ports (587, 465)")
                    .await?;
                return Ok(Next::Continue);
            };
            if !conn.is_tls() {
                env.errors += 1;
                conn.reply("530 5.7.0 Must issue a STARTTLS command first")
                    .await?;
            } else if env.helo.is_none() {
                conn.reply("503 5.5.1 Send EHLO first").await?;
            } else if env.account.is_some() {
                conn.reply("503 5.5.1 Already authenticated").await?;
            } else if env.from.is_some() {
                conn.reply("503 5.5.1 AUTH is not allowed during a mail transaction")
                    .await?;
            } else {
                match super::submit::auth(ctx, sub, conn, &mechanism, initial).await? {
                    Ok(account) => env.account = Some(account),
                    Err(errors) => env.errors += errors,
                }
            }
        }
        Command::Quit => {
            conn.reply("221 2.0.0 Bye").await?;
            return Ok(Next::Quit);
        }
    }
    Ok(Next::Continue)
}

async fn ehlo(
    ctx: &Smtp,
    conn: &mut Conn,
    env: &mut Envelope,
    domain: String,
    esmtp: bool,
) -> io::Result<()> {
    *env = Envelope {
        helo: Some(domain),
        esmtp,
        errors: env.errors,
        account: env.account.take(),
        ..Envelope::default()
    };
    if !esmtp {
        return conn.reply(&format!("250 {}", ctx.hostname)).await;
    }
    let mut lines = vec![
        ctx.hostname.clone(),
        "PIPELINING".into(),
        format!("SIZE {}", ctx.max_message_bytes),
        "8BITMIME".into(),
        "SMTPUTF8".into(),
        "ENHANCEDSTATUSCODES".into(),
        "CHUNKING".into(),
    ];
    if !conn.is_tls() {
        lines.push("STARTTLS".into());
    }
    // RFC 4954 §4 lets a server hide AUTH until TLS is up (Postfix's
    // smtpd_tls_auth_only): passwords never cross in the clear.
    if ctx.submission.is_some() && conn.is_tls() {
        lines.push("AUTH PLAIN LOGIN".into());
    }
    let last = lines.len() - 1;
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push_str(&format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }));
    }
    conn.write_all(out.as_bytes()).await
}

async fn mail(
    ctx: &Smtp,
    conn: &mut Conn,
    env: &mut Envelope,
    from: String,
    size: Option<u64>,
) -> io::Result<()> {
    if env.from.is_some() {
        return conn.reply("503 5.5.1 Nested MAIL command").await;
    }
    if size.is_some_and(|s| s > ctx.max_message_bytes) {
        return conn.reply(&too_big(ctx.max_message_bytes)).await;
    }
    if let (Some(sub), Some(account)) = (&ctx.submission, &env.account)
        && let Some(refusal) = super::submit::check_sender(sub, account, &from).await
    {
        env.errors += 1;
        return conn.reply(&refusal).await;
    }
    env.from = Some(from);
    conn.reply("250 2.1.0 Sender OK").await
}

async fn rcpt(ctx: &Smtp, conn: &mut Conn, env: &mut Envelope, to: String) -> io::Result<()> {
    if env.from.is_none() {
        return conn.reply("503 5.5.1 Send MAIL first").await;
    }
    if env.rcpts.len() >= MAX_RECIPIENTS {
        return conn
            .reply("452 4.5.3 Too many recipients; send the rest in another message")
            .await;
    }
    let lookup = ctx.store.lookup(&to).await;
    if ctx.submission.is_some() && matches!(lookup, Ok(Recipient::ForeignDomain)) {
        // An authenticated user may send anywhere.
        if !env.remote.iter().any(|r| r.eq_ignore_ascii_case(&to)) {
            env.remote.push(to.clone());
            env.rcpts.push(to.to_lowercase());
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
    match lookup {
        Ok(Recipient::Local(route)) => {
            if let Err(e) = expand(ctx, route, &mut env.dests).await {
                tracing::warn!(error = %e, "recipient lookup failed");
                return conn
                    .reply("451 4.3.0 Temporary lookup failure; try again later")
                    .await;
            }
            let to = to.to_lowercase();
            if !env.rcpts.contains(&to) {
                env.rcpts.push(to);
            }
            conn.reply("250 2.1.5 Recipient OK").await
        }
        Ok(Recipient::UnknownUser) if srs_return.is_some() => {
            let original = srs_return.unwrap_or_default();
            push_unique(&mut env.dests, Dest::Return(original));
            env.rcpts.push(to.to_lowercase());
            conn.reply("250 2.1.5 Recipient OK").await
        }
        Ok(Recipient::UnknownUser) => {
            env.errors += 1;
            env.unknown_rcpts += 1;
            if env.unknown_rcpts > FREE_PROBES {
                let wait = Duration::from_millis(250 * u64::from(env.unknown_rcpts - FREE_PROBES))
                    .min(Duration::from_secs(5));
                smol::Timer::after(wait).await;
            }
            conn.reply("550 5.1.1 No such user here").await
        }
        Ok(Recipient::ForeignDomain) => {
            env.errors += 1;
            conn.reply("550 5.7.1 Relaying denied").await
        }
        Err(e) => {
            tracing::warn!(error = %e, "recipient lookup failed");
            conn.reply("451 4.3.0 Temporary lookup failure; try again later")
                .await
        }
    }
}

fn today() -> u64 {
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
pub(super) async fn expand(
    ctx: &Smtp,
    route: Route,
    dests: &mut Vec<Dest>,
) -> Result<(), StoreError> {
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

async fn data(ctx: &Smtp, conn: &mut Conn, env: &mut Envelope) -> io::Result<()> {
    if env.from.is_none() || env.rcpts.is_empty() {
        // RFC 2920 §3.1: with pipelining, DATA after failed RCPTs gets 554.
        return conn.reply("554 5.5.1 No valid recipients").await;
    }
    if !env.chunks.is_empty() {
        return conn.reply("503 5.5.1 DATA cannot follow BDAT").await;
    }
    conn.reply("354 Start mail input; end with <CRLF>.<CRLF>")
        .await?;
    conn.flush().await?;
    let mut receiver = DataReceiver::new(ctx.max_message_bytes as usize);
    // A deadline for the whole of DATA, not just each read: a client
    // trickling a byte a minute is cut off all the same.
    let receive = async {
        loop {
            let (used, done) = receiver.feed(conn.buffered());
            conn.consume(used);
            if done {
                return Ok(());
            }
            if with_timeout(DATA_BLOCK_TIMEOUT, conn.fill()).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    };
    timed_out_421(with_timeout(ctx.timeouts.data, receive).await, conn).await?;
    let message = (!receiver.too_big).then(|| receiver.into_message());
    finish(ctx, conn, env, message).await
}

async fn bdat(
    ctx: &Smtp,
    conn: &mut Conn,
    env: &mut Envelope,
    size: u64,
    last: bool,
) -> io::Result<()> {
    // The chunk is read whatever happens, so the next command is found.
    let keep = env.from.is_some() && !env.rcpts.is_empty();
    let max = ctx.max_message_bytes;
    let receive = async {
        let mut left = size;
        while left > 0 {
            if conn.buffered().is_empty()
                && with_timeout(DATA_BLOCK_TIMEOUT, conn.fill()).await? == 0
            {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let take = conn.buffered().len().min(left as usize);
            if keep && !env.chunks_too_big {
                if (env.chunks.len() + take) as u64 > max {
                    env.chunks_too_big = true;
                    env.chunks = Vec::new();
                } else {
                    env.chunks.extend_from_slice(&conn.buffered()[..take]);
                }
            }
            conn.consume(take);
            left -= take as u64;
        }
        Ok(())
    };
    timed_out_421(with_timeout(ctx.timeouts.data, receive).await, conn).await?;
    if !keep {
        return conn.reply("554 5.5.1 No valid recipients").await;
    }
    if !last {
        return conn
            .reply(&format!("250 2.0.0 {size} octets received"))
            .await;
    }
    let message = (!env.chunks_too_big).then(|| std::mem::take(&mut env.chunks));
    finish(ctx, conn, env, message).await
}

/// Tells a client that ran out of time why the connection ends.
async fn timed_out_421(result: io::Result<()>, conn: &mut Conn) -> io::Result<()> {
    if let Err(e) = &result
        && e.kind() == io::ErrorKind::TimedOut
    {
        let _ = conn.reply("421 4.4.2 Timeout; closing connection").await;
    }
    result
}

/// Ends a transaction: delivers the message (`None`: it was too big),
/// answers, and resets the envelope.
async fn finish(
    ctx: &Smtp,
    conn: &mut Conn,
    env: &mut Envelope,
    message: Option<Vec<u8>>,
) -> io::Result<()> {
    let answer = match message {
        Some(m) => deliver(ctx, conn, env, m).await,
        None => too_big(ctx.max_message_bytes),
    };
    env.reset();
    conn.reply(&answer).await
}

fn too_big(max: u64) -> String {
    format!("552 5.3.4 Message size exceeds the limit of {max} bytes")
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
async fn deliver(ctx: &Smtp, conn: &Conn, env: &Envelope, body: Vec<u8>) -> String {
    let header_end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(body.len(), |i| i + 2);
    if header_end > MAX_HEADER_BYTES
        || body[..header_end].iter().filter(|&&b| b == b'\n').count() > MAX_HEADER_LINES
    {
        return format!(
            "552 5.3.4 Message header too large (limits: {MAX_HEADER_BYTES} bytes, {MAX_HEADER_LINES} lines)"
        );
    }
    if received_count(&body[..header_end]) >= MAX_HOPS {
        return "554 5.4.6 Too many hops; mail loop suspected".to_string();
    }
    if let (Some(sub), Some(account)) = (&ctx.submission, &env.account) {
        let rcpts = super::submit::recipients(&env.dests, &env.remote);
        let helo = env.helo.as_deref().unwrap_or("unknown");
        let from = env.from.as_deref().unwrap_or("");
        return super::submit::queue_message(ctx, sub, account, helo, from, rcpts, body).await;
    }
    let id = random_id().unwrap_or_default();
    let id = id.get(..16).unwrap_or(&id);
    let with = match (env.esmtp, conn.is_tls()) {
        (true, true) => "ESMTPS",
        (true, false) => "ESMTP",
        (false, true) => "SMTPS",
        (false, false) => "SMTP",
    };
    let from = env.from.as_deref().unwrap_or("");
    // Privacy: the Received header names the client's HELO, not its address.
    let received = format!(
        "Received: from {} by {} (sealmail) with {with} id {id};\r\n\t{}\r\n",
        env.helo.as_deref().unwrap_or("unknown"),
        ctx.hostname,
        rfc5322_date(now_unix())
    );
    // Authentication-Results goes above this hop's Received (RFC 8601 §2.1).
    let mut relayed = Vec::with_capacity(body.len() + 1024);
    if let Some(auth) = &ctx.auth {
        let helo = env.helo.as_deref().unwrap_or("");
        let verdict = auth.check(conn.peer.ip(), helo, from, &body).await;
        if verdict.dmarc_reject {
            return "550 5.7.1 Rejected: the sender's domain publishes a DMARC reject policy and this message fails it"
                .to_string();
        }
        relayed.extend_from_slice(verdict.header.as_bytes());
    }
    relayed.extend_from_slice(received.as_bytes());
    relayed.extend_from_slice(&body);
    let digest = retry::message_digest(from, &body);
    drop(body);

    let mut outcomes: Vec<(&Dest, Result<(), Failure>)> = Vec::new();
    let todo: Vec<&Dest> = env
        .dests
        .iter()
        .filter(|d| !ctx.delivered.contains(&digest, &d.key()))
        .collect();
    let skipped = env.dests.len() - todo.len();
    // Mailboxes: Return-Path is added at final delivery (RFC 5321 §4.4).
    let mut stored: Option<Vec<u8>> = None;
    for d in todo.iter().copied() {
        let Dest::Mailbox(alias) = d else { continue };
        let copy = stored.get_or_insert_with(|| {
            let mut m = format!("Return-Path: <{from}>\r\n").into_bytes();
            m.extend_from_slice(&relayed);
            m
        });
        let result = ctx.store.deliver(alias, copy.clone()).await.map_err(|e| {
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
        });
        outcomes.push((d, result.map(|_| ())));
    }
    relay_copies(ctx, from, &relayed, &todo, &mut outcomes).await;

    let mut temporary = None;
    let mut permanent = None;
    let mut delivered = skipped;
    for (d, r) in &outcomes {
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
    if let Some(t) = temporary {
        for (d, r) in &outcomes {
            if r.is_ok() {
                ctx.delivered.insert(&digest, &d.key());
            }
        }
        return t;
    }
    match permanent {
        // Nobody got it: the sender learns why.
        Some(p) if delivered == 0 => p,
        // Some destinations have it; a refusal elsewhere is logged (above).
        _ => format!("250 2.0.0 Message accepted as {id}"),
    }
}

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
    // One transaction per envelope sender: SRS at each forwarding alias'
    // domain, or the original sender for returns.
    let mut groups: Vec<(String, Vec<&Dest>)> = Vec::new();
    for d in relayed.iter().copied() {
        let sender = match d {
            Dest::Forward { via, .. } => {
                let domain = via.rsplit_once('@').map_or("", |(_, dom)| dom);
                relay.srs.forward(from, domain, today())
            }
            Dest::Return(_) => from.to_string(),
            _ => continue,
        };
        match groups.iter_mut().find(|(s, _)| *s == sender) {
            Some((_, list)) => list.push(d),
            None => groups.push((sender, vec![d])),
        }
    }
    for (sender, list) in groups {
        let rcpts: Vec<String> = list
            .iter()
            .map(|d| match d {
                Dest::Forward { to, .. } | Dest::Return(to) => to.clone(),
                _ => String::new(),
            })
            .collect();
        let statuses = relay.send(&sender, &rcpts, message).await;
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

/// Text from elsewhere, safe to put in one reply line.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c))
        .take(200)
        .collect()
}

/// Received header fields in a header block.
fn received_count(header: &[u8]) -> usize {
    header
        .split(|&b| b == b'\n')
        .filter(|l| l.len() >= 9 && l[..9].eq_ignore_ascii_case(b"received:"))
        .count()
}
