//! The not-authenticated state (RFC 3501 §6.2): STARTTLS, LOGIN and
//! AUTHENTICATE PLAIN (RFC 4616, with SASL-IR, RFC 4959).
//!
//! Imports `proto::{imap, sasl}`, `net::conn` and the `store` interface.
//! Invariants: no password is checked without TLS (outside development
//! mode on loopback); the throttle is asked before the check and told
//! after it; a successful login returns the `User` the session becomes.

use std::io;
use std::time::Duration;

use crate::imap::session::{Io, Next, TLS_TIMEOUT, User};
use crate::net::audit::{self, Login};
use crate::net::conn::Line;
use crate::net::limits::Refused;
use crate::proto::imap::{self as proto, Kind};
use crate::store::StoreError;

/// Runs a command of the not-authenticated state; `Some` user on login.
pub async fn run(io: &mut Io<'_>, tag: &str, kind: Kind) -> io::Result<(Next, Option<User>)> {
    let next = match kind {
        Kind::StartTls if io.conn.is_tls() => io.bad(Some(tag), "TLS is already active").await,
        Kind::StartTls => {
            io.ok(tag, "Begin TLS negotiation now").await?;
            io.conn.flush().await?;
            io.conn.start_tls(&io.ctx.tls, TLS_TIMEOUT).await?;
            Ok(Next::Continue)
        }
        Kind::Login { .. } | Kind::Authenticate { .. } if !io.auth_allowed() => {
            io.no(
                tag,
                "[PRIVACYREQUIRED] plaintext authentication is disallowed without TLS; use STARTTLS or port 993",
            )
            .await
        }
        Kind::Login { user, password } => {
            let (Ok(user), Ok(password)) = (String::from_utf8(user), String::from_utf8(password))
            else {
                audit::login("imap", io.conn.peer, "", "LOGIN", Login::Malformed);
                let delay = io.ctx.throttle.failed_without_check(io.conn.peer.ip());
                return Ok((failed(io, tag, delay).await?, None));
            };
            return login(io, tag, &user, &password, "LOGIN").await;
        }
        Kind::Authenticate { mechanism, initial } => {
            return authenticate(io, tag, &mechanism, initial).await;
        }
        _ => io.bad(Some(tag), "command not valid before login").await,
    }?;
    Ok((next, None))
}

/// AUTHENTICATE PLAIN, with the response inline (SASL-IR) or after `+`.
async fn authenticate(
    io: &mut Io<'_>,
    tag: &str,
    mechanism: &str,
    initial: Option<Vec<u8>>,
) -> io::Result<(Next, Option<User>)> {
    if mechanism != "PLAIN" {
        let next = io
            .no(tag, "[CANNOT] unsupported mechanism; PLAIN is offered")
            .await?;
        return Ok((next, None));
    }
    let response = match initial {
        Some(r) if r == b"=" => String::new(),
        Some(r) => String::from_utf8_lossy(&r).into_owned(),
        None => {
            io.conn.write_all(b"+ \r\n").await?;
            io.conn.flush().await?;
            match io.conn.read_line(proto::MAX_LINE).await? {
                Line::Complete(l) => String::from_utf8_lossy(&l).into_owned(),
                Line::TooLong => return Ok((io.bad(Some(tag), "line too long").await?, None)),
                Line::Eof => return Ok((Next::Close, None)),
            }
        }
    };
    if response.trim() == "*" {
        return Ok((io.bad(Some(tag), "authentication cancelled").await?, None));
    }
    match crate::proto::sasl::plain(&response) {
        Ok((user, password)) => login(io, tag, &user, &password, "PLAIN").await,
        Err(_) => Ok((io.bad(Some(tag), "malformed PLAIN response").await?, None)),
    }
}

async fn failed(io: &mut Io<'_>, tag: &str, delay: Duration) -> io::Result<Next> {
    smol::Timer::after(delay).await;
    io.no(tag, "[AUTHENTICATIONFAILED] Authentication failed.")
        .await
}

/// Checks the password and unlocks the mailbox (importing sealed mail).
async fn login(
    io: &mut Io<'_>,
    tag: &str,
    user: &str,
    password: &str,
    mechanism: &str,
) -> io::Result<(Next, Option<User>)> {
    let (peer, ip) = (io.conn.peer, io.conn.peer.ip());
    let attempt = match io.ctx.throttle.begin(ip, Some(user)).await {
        Ok(a) => a,
        Err(refused) => {
            audit::login("imap", peer, user, mechanism, refused.into());
            let text = match refused {
                Refused::AddressBanned => "[UNAVAILABLE] too many failed logins; try again later",
                Refused::AccountBusy => {
                    "[UNAVAILABLE] too many logins to this account right now; try again shortly"
                }
            };
            return Ok((io.no(tag, text).await?, None));
        }
    };
    let session = match io.ctx.store.unlock(user, password).await {
        Ok(s) => s,
        Err(StoreError::AuthFailed) => {
            audit::login("imap", peer, user, mechanism, Login::Failed);
            return Ok((failed(io, tag, attempt.failed()).await?, None));
        }
        Err(e) => {
            audit::login("imap", peer, user, mechanism, Login::Unavailable);
            tracing::warn!(error = %e, "IMAP login could not open a mailbox");
            let next = io
                .no(
                    tag,
                    "[UNAVAILABLE] the mailbox cannot be opened now; try again later",
                )
                .await?;
            return Ok((next, None));
        }
    };
    attempt.succeeded();
    audit::login("imap", peer, user, mechanism, Login::Ok);
    let events = match session.subscribe() {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "IMAP login could not follow mailbox changes");
            let next = io.no(tag, "[UNAVAILABLE] try again later").await?;
            return Ok((next, None));
        }
    };
    let caps = io.capabilities(true);
    let next = io
        .ok(tag, &format!("[CAPABILITY {caps}] Logged in"))
        .await?;
    Ok((next, Some(User::new(session, events))))
}
