//! Submission (RFC 6409, ports 587 and 465): AUTH PLAIN and LOGIN over
//! TLS, the rule that a user sends only as addresses it owns, daily
//! limits, the header fixes a submission server makes, DKIM signing, and
//! the hand-over to the outbound queue.
//!
//! Imports `net`, `proto::sasl`, `queue`, `store` (its interface) and the
//! sibling `dkim`. Invariants: no AUTH without TLS; no MAIL without AUTH;
//! the envelope sender and every From address belong to the account
//! (553 5.7.1 otherwise); `250` only after the queue committed the message;
//! failed logins slow down and ban per address and per account, shared with
//! IMAP and POP3.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Smtp;
use super::dkim;
use crate::net::conn::{Conn, Line, with_timeout};
use crate::net::limits::{AuthThrottle, Refused};
use crate::proto::sasl::{self, SaslError};
use crate::queue::{Kind, NewMessage, NewRecipient, Queue};
use crate::store::{Account, DkimKey, StoreError};
use crate::util::{now_unix, random_id, rfc5322_date};

/// Longest line of a SASL exchange after the AUTH command.
const MAX_SASL_LINE: usize = 8192;
const SASL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long DKIM keys read from the control plane are reused.
const DKIM_CACHE: Duration = Duration::from_secs(60);

pub use crate::config::SendLimits;

/// What submission listeners share besides `Smtp`.
pub struct Submission {
    pub queue: Arc<Queue>,
    /// Tells the delivery loop that a message is waiting.
    pub wake: async_channel::Sender<()>,
    pub throttle: Arc<AuthThrottle>,
    /// A reload changes them; each message is counted against those in
    /// force.
    pub limits: crate::util::Live<SendLimits>,
    /// `submission.hide_client_address`.
    pub hide_client_address: bool,
    dkim: Mutex<HashMap<String, CachedKeys>>,
}

/// A domain's DKIM keys and when they were read.
type CachedKeys = (Instant, Arc<Vec<DkimKey>>);

impl Submission {
    pub fn new(
        queue: Arc<Queue>,
        wake: async_channel::Sender<()>,
        throttle: Arc<AuthThrottle>,
        limits: crate::util::Live<SendLimits>,
        hide_client_address: bool,
    ) -> Submission {
        Submission {
            queue,
            wake,
            throttle,
            limits,
            hide_client_address,
            dkim: Mutex::new(HashMap::new()),
        }
    }

    async fn dkim_keys(&self, ctx: &Smtp, domain: &str) -> Result<Arc<Vec<DkimKey>>, StoreError> {
        let cached = {
            let map = self.dkim.lock().unwrap_or_else(|e| e.into_inner());
            map.get(domain)
                .filter(|(t, _)| t.elapsed() < DKIM_CACHE)
                .map(|(_, k)| k.clone())
        };
        if let Some(k) = cached {
            return Ok(k);
        }
        let keys = Arc::new(ctx.store.dkim_keys(domain).await?);
        let mut map = self.dkim.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(domain.to_string(), (Instant::now(), keys.clone()));
        Ok(keys)
    }
}

/// Runs an AUTH exchange; on success the account is returned.
pub(super) async fn auth(
    ctx: &Smtp,
    sub: &Submission,
    conn: &mut Conn,
    mechanism: &str,
    initial: Option<String>,
) -> io::Result<Result<Account, u32>> {
    use crate::net::audit::{self, Login};
    let (peer, ip) = (conn.peer, conn.peer.ip());
    if sub.throttle.banned(ip) {
        audit::login("submission", peer, "", mechanism, Login::Banned);
        conn.reply("454 4.7.0 Too many failed logins from your address; try again later")
            .await?;
        return Ok(Err(1));
    }
    let credentials = match mechanism {
        "PLAIN" => {
            let response = match initial {
                Some(r) => r,
                None => match challenge(conn, "").await? {
                    Some(r) => r,
                    None => return Ok(Err(1)),
                },
            };
            // RFC 4954 §4: "=" is an empty initial response.
            let response = if response == "=" {
                String::new()
            } else {
                response
            };
            sasl::plain(&response)
        }
        "LOGIN" => {
            let user = match initial {
                Some(r) => sasl::login_field(&r),
                None => match challenge(conn, "VXNlcm5hbWU6").await? {
                    Some(r) => sasl::login_field(&r),
                    None => return Ok(Err(1)),
                },
            };
            match user {
                Ok(user) => match challenge(conn, "UGFzc3dvcmQ6").await? {
                    Some(r) => sasl::login_field(&r).map(|p| (user, p)),
                    None => return Ok(Err(1)),
                },
                Err(e) => Err(e),
            }
        }
        _ => {
            conn.reply("504 5.5.4 Unrecognized authentication mechanism; use PLAIN or LOGIN")
                .await?;
            return Ok(Err(1));
        }
    };
    let (user, password) = match credentials {
        Ok(c) => c,
        Err(e @ (SaslError::Base64 | SaslError::Malformed)) => {
            audit::login("submission", peer, "", mechanism, Login::Malformed);
            conn.reply(&format!(
                "501 5.5.2 Cannot decode the response: {}",
                e.describe()
            ))
            .await?;
            return Ok(Err(1));
        }
        Err(SaslError::AuthzMismatch) => {
            audit::login("submission", peer, "", mechanism, Login::Malformed);
            let wait = sub.throttle.failed_without_check(ip);
            smol::Timer::after(wait).await;
            conn.reply("535 5.7.8 Authentication failed: acting as another user is not allowed")
                .await?;
            return Ok(Err(1));
        }
    };
    let attempt = match sub.throttle.begin(ip, Some(&user)).await {
        Ok(a) => a,
        Err(refused) => {
            audit::login("submission", peer, &user, mechanism, refused.into());
            conn.reply(match refused {
                Refused::AddressBanned => {
                    "454 4.7.0 Too many failed logins from your address; try again later"
                }
                Refused::AccountBusy => {
                    "454 4.7.0 Too many logins to this account right now; try again shortly"
                }
            })
            .await?;
            return Ok(Err(1));
        }
    };
    match ctx.store.authenticate(&user, &password).await {
        Ok(account) => {
            attempt.succeeded();
            audit::login("submission", peer, &user, mechanism, Login::Ok);
            conn.reply("235 2.7.0 Authentication successful").await?;
            Ok(Ok(account))
        }
        Err(StoreError::AuthFailed) => {
            audit::login("submission", peer, &user, mechanism, Login::Failed);
            smol::Timer::after(attempt.failed()).await;
            conn.reply("535 5.7.8 Authentication credentials invalid")
                .await?;
            Ok(Err(1))
        }
        Err(e) => {
            audit::login("submission", peer, &user, mechanism, Login::Unavailable);
            tracing::warn!(error = %e, "submission: password check failed");
            conn.reply("454 4.7.0 Temporary authentication failure; try again later")
                .await?;
            Ok(Err(0))
        }
    }
}

/// Sends a `334` challenge and reads the answer; `None` if the client
/// cancelled (`*`) or sent something unusable, which is answered here.
async fn challenge(conn: &mut Conn, text: &str) -> io::Result<Option<String>> {
    conn.reply(&format!("334 {text}")).await?;
    conn.flush().await?;
    let line = match with_timeout(SASL_TIMEOUT, conn.read_line(MAX_SASL_LINE)).await? {
        Line::Complete(l) => l,
        Line::TooLong => {
            conn.reply("500 5.5.6 Authentication exchange line is too long")
                .await?;
            return Ok(None);
        }
        Line::Eof => return Err(io::ErrorKind::UnexpectedEof.into()),
    };
    let text = String::from_utf8_lossy(&line).trim().to_string();
    if text == "*" {
        conn.reply("501 5.0.0 Authentication cancelled").await?;
        return Ok(None);
    }
    Ok(Some(text))
}

/// Checks MAIL FROM for an authenticated session: the sender must be the
/// account's, and its daily limits must not be spent. `None` if accepted,
/// else the reply.
pub(super) async fn check_sender(
    sub: &Submission,
    account: &Account,
    from: &str,
) -> Option<String> {
    if !account.owns(from) {
        return Some(format!(
            "553 5.7.1 Sender address <{}> does not belong to {}",
            printable(from),
            account.address
        ));
    }
    let limits = sub.limits.get();
    if limits.per_alias == 0 && limits.per_domain == 0 {
        return None;
    }
    let alias = account.address.clone();
    let domain = crate::queue::domain_of(from);
    let q = sub.queue.clone();
    let since = q.clock.now() - 86_400;
    let d = domain.clone();
    let counts = blocking::unblock(move || q.sent_since(&alias, &d, since)).await;
    match counts {
        Ok((a, _)) if limits.per_alias > 0 && a >= limits.per_alias => Some(format!(
            "450 4.7.1 Daily sending limit of {} messages reached for {}; try again later",
            limits.per_alias, account.address
        )),
        Ok((_, d)) if limits.per_domain > 0 && d >= limits.per_domain => Some(format!(
            "450 4.7.1 Daily sending limit of {} messages reached for the domain {domain}; try again later",
            limits.per_domain
        )),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "submission: queue unavailable");
            Some("451 4.3.0 The mail queue is unavailable; try again later".into())
        }
    }
}

/// Where a submitted message goes, built from the session's recipients.
pub(super) fn recipients(dests: &[super::envelope::Dest], remote: &[String]) -> Vec<NewRecipient> {
    use super::envelope::Dest;
    let mut out: Vec<NewRecipient> = Vec::new();
    let mut push = |r: NewRecipient| {
        if !out.contains(&r) {
            out.push(r);
        }
    };
    for d in dests {
        match d {
            Dest::Mailbox(a) => push(NewRecipient {
                kind: Kind::Local,
                address: a.clone(),
                via: None,
            }),
            Dest::Forward { to, .. } | Dest::Return(to) => push(NewRecipient {
                kind: Kind::Remote,
                address: to.clone(),
                via: None,
            }),
            Dest::Webhook { url, alias } => push(NewRecipient {
                kind: Kind::Webhook,
                address: url.clone(),
                via: Some(alias.clone()),
            }),
        }
    }
    for r in remote {
        push(NewRecipient {
            kind: Kind::Remote,
            address: r.clone(),
            via: None,
        });
    }
    out
}

/// Prepares a submitted message (From check, missing Date/Message-ID, a
/// Received field, DKIM) and commits it to the queue. Returns the reply.
pub(super) async fn queue_message(
    ctx: &Smtp,
    sub: &Submission,
    account: &Account,
    (helo, address): (&str, Option<std::net::IpAddr>),
    from: &str,
    rcpts: Vec<NewRecipient>,
    body: Vec<u8>,
) -> String {
    let header_end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(body.len(), |i| i + 2);
    let Ok((headers, _)) = mailparse::parse_headers(&body[..header_end]) else {
        return "554 5.6.0 The message header cannot be parsed".into();
    };
    use mailparse::MailHeaderMap;
    let mut authors = Vec::new();
    for h in headers.get_all_headers("From") {
        match mailparse::addrparse_header(h) {
            Ok(list) => {
                for a in list.iter() {
                    match a {
                        mailparse::MailAddr::Single(s) => authors.push(s.addr.clone()),
                        mailparse::MailAddr::Group(g) => {
                            authors.extend(g.addrs.iter().map(|s| s.addr.clone()))
                        }
                    }
                }
            }
            Err(_) => return "554 5.6.0 The From header cannot be parsed".into(),
        }
    }
    if let Some(bad) = authors.iter().find(|a| !account.owns(a)) {
        return format!(
            "553 5.7.1 From address <{}> does not belong to {}",
            printable(bad),
            account.address
        );
    }
    let now = now_unix();
    let id = random_id().unwrap_or_default();
    let id = id.get(..16).unwrap_or(&id);
    // The client's address only when `submission.hide_client_address`
    // is off.
    let address = address.map_or(String::new(), |ip| {
        format!(" ({})", super::deliver::address_literal(ip))
    });
    let mut added = format!(
        "Received: from {}{address} by {} (sealmail) with ESMTPSA id {id};\r\n\t{}\r\n",
        printable(helo),
        ctx.hostname,
        rfc5322_date(now)
    );
    if authors.is_empty() {
        added.push_str(&format!("From: <{from}>\r\n"));
    }
    if headers.get_first_header("Date").is_none() {
        added.push_str(&format!("Date: {}\r\n", rfc5322_date(now)));
    }
    if headers.get_first_header("Message-ID").is_none() {
        added.push_str(&format!("Message-ID: <{id}@{}>\r\n", ctx.hostname));
    }
    let mut message = Vec::with_capacity(added.len() + body.len() + 2048);
    message.extend_from_slice(added.as_bytes());
    // Line ends as they will travel (the SMTP client sends CRLF), so the
    // DKIM body hash is over what the recipient gets.
    let mut prev = 0u8;
    for &b in &body {
        if b == b'\n' && prev != b'\r' {
            message.push(b'\r');
        }
        message.push(b);
        prev = b;
    }
    drop(body);
    let signing_domain = crate::queue::domain_of(authors.first().map_or(from, String::as_str));
    match sub.dkim_keys(ctx, &signing_domain).await {
        Ok(keys) if !keys.is_empty() => {
            let domain = signing_domain.clone();
            let signed = blocking::unblock(move || {
                let headers = dkim::sign(&domain, &keys, &message);
                (headers, message)
            })
            .await;
            message = signed.1;
            match signed.0 {
                Ok(h) => {
                    let mut m = h.into_bytes();
                    m.extend_from_slice(&message);
                    message = m;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "submission: DKIM signing failed; sent unsigned");
                }
            }
        }
        Ok(_) => {
            tracing::info!(domain = %signing_domain, "submission: the domain has no DKIM key; sent unsigned");
        }
        Err(e) => {
            tracing::warn!(error = %e, "submission: cannot read DKIM keys");
            return "451 4.3.0 Temporary failure; try again later".into();
        }
    }
    let m = NewMessage {
        alias: account.address.clone(),
        sender: from.to_string(),
        recipients: rcpts,
        body: message,
    };
    let q = sub.queue.clone();
    match blocking::unblock(move || q.enqueue(&m)).await {
        Ok(qid) => {
            let _ = sub.wake.try_send(());
            format!("250 2.0.0 Message queued as {qid}")
        }
        Err(e) => {
            tracing::error!(error = %e, "submission: could not queue a message");
            "451 4.3.0 Could not queue the message; try again later".into()
        }
    }
}

fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c))
        .take(200)
        .collect()
}
