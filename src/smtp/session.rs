//! One SMTP connection: the greeting, the read loop and the one dispatch
//! from a command to its handler (`envelope` for MAIL and RCPT, `data` for
//! DATA and BDAT, `submit` for AUTH).
//!
//! Imports `net`, `proto::smtp` and the siblings. Invariants: replies carry
//! RFC 3463 enhanced codes; the state is `envelope::State` (EHLO/HELO and
//! STARTTLS replace it, RSET ends a transaction); replies are flushed when
//! no pipelined command is waiting; 20 errors close the connection.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::Smtp;
use super::envelope::{self, Client, Greeting, State};
use crate::net::conn::{Conn, Incoming, Stream, accept_tls};
use crate::net::listener::Accepted;
use crate::proto::smtp::{self as proto, Command, ParseError};

/// A TLS handshake gets at most this (or the command timeout if shorter).
const TLS_TIMEOUT: Duration = Duration::from_secs(30);
/// Errors (unknown commands, syntax, refused recipients, long lines) a
/// connection may make before it is closed (Postfix's
/// `smtpd_hard_error_limit`).
const MAX_ERRORS: u32 = 20;

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
        match accept_tls(
            acc.tcp,
            &ctx.tls,
            ctx.timeouts.get().command.min(TLS_TIMEOUT),
        )
        .await
        {
            Ok(s) => s,
            Err(_) => return,
        }
    } else {
        Stream::Plain(acc.tcp)
    };
    let mut conn = Conn::new(stream, acc.peer);
    if ctx.submission.is_none() && !early_talker_waited(&ctx, &mut conn).await {
        return;
    }
    let greeting = format!("220 {} ESMTP sealmail\r\n", ctx.hostname);
    if conn.write_all(greeting.as_bytes()).await.is_err() || conn.flush().await.is_err() {
        return;
    }
    let mut client = Client {
        state: State::Connected,
        errors: 0,
        unknown_rcpts: 0,
        account: None,
        transactions: 0,
        listed: None,
    };
    let (started, mut commands) = (std::time::Instant::now(), 0u32);
    let end = loop {
        let timeout = ctx.timeouts.get().command;
        let next = match conn.next_line(proto::MAX_LINE, timeout, &stop).await {
            Incoming::Line(l) => {
                commands += 1;
                step(&ctx, &mut conn, &mut client, &l).await
            }
            Incoming::TooLong => {
                client.errors += 1;
                conn.reply("500 5.5.2 Line too long")
                    .await
                    .map(|()| Next::Continue)
            }
            Incoming::Shutdown => {
                let _ = conn
                    .reply("421 4.3.2 Server shutting down; try again later")
                    .await;
                break "shutdown";
            }
            Incoming::TimedOut => {
                let _ = conn.reply("421 4.4.2 Timeout; closing connection").await;
                break "timeout";
            }
            Incoming::Closed => break "closed",
        };
        match next {
            Ok(Next::Continue) => {}
            Ok(Next::Quit) => break "quit",
            Err(_) => break "lost",
        }
        if client.errors > MAX_ERRORS {
            let _ = conn
                .reply("421 4.7.0 Too many errors; closing connection")
                .await;
            break "errors";
        }
        if conn.flush_unless_pipelined().await.is_err() {
            break "lost";
        }
    };
    conn.close().await;
    tracing::info!(
        target: "sealmail::smtp",
        client = %conn.peer.ip(),
        port = conn.peer.port(),
        tls = %conn.tls_description(),
        commands,
        transactions = client.transactions,
        errors = client.errors,
        end = %end,
        ms = started.elapsed().as_millis() as u64,
        "{} disconnect",
        ctx.port_name()
    );
}

/// The MX's pause before its greeting (Postfix postscreen's "pregreet"
/// test): a client that sends anything in it is not waiting for the
/// server, as spam software often does not; it gets 554 and is closed.
/// False when the connection is done.
async fn early_talker_waited(ctx: &Smtp, conn: &mut Conn) -> bool {
    let pause = ctx.timeouts.get().greet_pause;
    if pause.is_zero() {
        return true;
    }
    let talked = async { Some(conn.fill().await) };
    let quiet = async {
        smol::Timer::after(pause).await;
        None
    };
    match futures_lite::FutureExt::or(talked, quiet).await {
        None => true,
        Some(Ok(n)) if n > 0 => {
            tracing::info!(peer = %conn.peer, "MX client talked before the greeting; refused");
            let _ = conn
                .reply("554 5.5.1 Protocol error: you talked before the greeting")
                .await;
            conn.close().await;
            false
        }
        Some(_) => false,
    }
}

/// Parses one command line and runs it: the one dispatch of the SMTP
/// server.
async fn step(ctx: &Smtp, conn: &mut Conn, client: &mut Client, line: &[u8]) -> io::Result<Next> {
    let cmd = match proto::parse(line) {
        Ok(c) => c,
        Err(ParseError::Unknown) => {
            client.errors += 1;
            conn.reply("500 5.5.2 Command not recognized").await?;
            return Ok(Next::Continue);
        }
        Err(ParseError::Syntax(why)) => {
            client.errors += 1;
            conn.reply(&format!("501 5.5.4 Syntax error: {why}"))
                .await?;
            return Ok(Next::Continue);
        }
    };
    match cmd {
        Command::Ehlo(domain) => ehlo(ctx, conn, client, domain, true).await?,
        Command::Helo(domain) => ehlo(ctx, conn, client, domain, false).await?,
        Command::StartTls if conn.is_tls() => conn.reply("503 5.5.1 TLS is already active").await?,
        Command::StartTls => {
            conn.reply("220 2.0.0 Ready to start TLS").await?;
            conn.flush().await?;
            conn.start_tls(&ctx.tls, ctx.timeouts.get().command.min(TLS_TIMEOUT))
                .await?;
            // RFC 3207 §4.2: forget everything learned before TLS.
            client.state = State::Connected;
            client.unknown_rcpts = 0;
            client.account = None;
        }
        Command::Mail { .. } if matches!(client.state, State::Connected) => {
            conn.reply("503 5.5.1 Send EHLO or HELO first").await?;
        }
        Command::Mail { .. } if ctx.submission.is_some() && client.account.is_none() => {
            conn.reply("530 5.7.0 Authentication required").await?;
        }
        Command::Mail { from, smtputf8, .. } if !smtputf8 && !from.is_ascii() => {
            conn.reply("553 5.6.7 A non-ASCII address needs the SMTPUTF8 parameter")
                .await?;
        }
        Command::Mail {
            from,
            size,
            smtputf8,
        } => envelope::mail(ctx, conn, client, from, size, smtputf8).await?,
        Command::Rcpt(to) => {
            envelope::rcpt(ctx, conn, client, to).await?;
            let port = ctx.port_name();
            super::data::count("sealmail_recipients_total", port, conn.last_reply());
        }
        Command::Data => super::data::data(ctx, conn, client).await?,
        Command::Bdat { size, last } => super::data::bdat(ctx, conn, client, size, last).await?,
        Command::Rset => {
            client.state.reset();
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
            auth(ctx, conn, client, &mechanism, initial).await?
        }
        Command::Quit => {
            conn.reply("221 2.0.0 Bye").await?;
            return Ok(Next::Quit);
        }
    }
    Ok(Next::Continue)
}

/// AUTH (RFC 4954) on the submission ports, over TLS, once, outside a
/// transaction.
async fn auth(
    ctx: &Smtp,
    conn: &mut Conn,
    client: &mut Client,
    mechanism: &str,
    initial: Option<String>,
) -> io::Result<()> {
    let Some(sub) = &ctx.submission else {
        return conn
            .reply("503 5.5.1 Authentication is for the submission ports (587, 465)")
            .await;
    };
    if !conn.is_tls() {
        client.errors += 1;
        return conn
            .reply("530 5.7.0 Must issue a STARTTLS command first")
            .await;
    }
    match client.state {
        State::Connected => return conn.reply("503 5.5.1 Send EHLO first").await,
        State::Mail(..) => {
            return conn
                .reply("503 5.5.1 AUTH is not allowed during a mail transaction")
                .await;
        }
        State::Ready(_) if client.account.is_some() => {
            return conn.reply("503 5.5.1 Already authenticated").await;
        }
        State::Ready(_) => {}
    }
    match super::submit::auth(ctx, sub, conn, mechanism, initial).await? {
        Ok(account) => client.account = Some(account),
        Err(errors) => client.errors += errors,
    }
    Ok(())
}

/// EHLO and HELO (RFC 5321 §4.1.1.1): a fresh greeted state, and for EHLO
/// the extensions.
async fn ehlo(
    ctx: &Smtp,
    conn: &mut Conn,
    client: &mut Client,
    domain: String,
    esmtp: bool,
) -> io::Result<()> {
    client.state = State::Ready(Greeting {
        helo: domain,
        esmtp,
    });
    client.unknown_rcpts = 0;
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
    let last = lines.len().saturating_sub(1);
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push_str(&format!("250{}{l}\r\n", if i == last { ' ' } else { '-' }));
    }
    conn.write_all(out.as_bytes()).await
}
